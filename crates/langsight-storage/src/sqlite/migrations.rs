//! Versioned schema migrations, applied in order at start-up inside one transaction each.
//!
//! The applied version is SQLite's `user_version`, set in the same transaction as the migration, so a crash
//! mid-migration leaves the previous version intact. `BEGIN IMMEDIATE` takes the write lock first: several
//! workers starting at once apply each migration exactly once.

use crate::StorageError;
use rusqlite::{Connection, TransactionBehavior};

/// Append only: a released migration is never edited, a change is a new file.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/001_initial.sql")),
    (2, include_str!("migrations/002_health.sql")),
    (3, include_str!("migrations/003_drift.sql")),
    (4, include_str!("migrations/004_servers.sql")),
    (5, include_str!("migrations/005_alerts.sql")),
    (6, include_str!("migrations/006_tool_hourly.sql")),
    (7, include_str!("migrations/007_users.sql")),
    (8, include_str!("migrations/008_spans_by_time.sql")),
    (9, include_str!("migrations/009_model_pricing.sql")),
    (10, include_str!("migrations/010_agents.sql")),
    (11, include_str!("migrations/011_user_sessions.sql")),
    (12, include_str!("migrations/012_security_scans.sql")),
    (13, include_str!("migrations/013_catalog_seen.sql")),
    (14, include_str!("migrations/014_rollups.sql")),
    (15, include_str!("migrations/015_session_costs.sql")),
];

pub fn run(conn: &mut Connection) -> Result<i64, StorageError> {
    for (version, sql) in MIGRATIONS {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if current >= *version {
            continue;
        }
        tx.execute_batch(sql).map_err(|e| StorageError::Open(format!("SQLite migration {version} failed: {e}")))?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        tracing::info!(version, "storage.migrated");
    }
    latest_known(conn)
}

fn latest_known(conn: &Connection) -> Result<i64, StorageError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let newest = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    if current > newest {
        return Err(StorageError::Open(format!(
            "the SQLite database is at schema version {current}, newer than this binary knows ({newest}); \
             upgrade langsight or point LANGSIGHT_SQLITE_PATH at another file"
        )));
    }
    Ok(current)
}
