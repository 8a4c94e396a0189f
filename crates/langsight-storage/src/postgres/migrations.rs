//! Versioned PostgreSQL migrations, applied at start-up in one transaction each under a transaction-level
//! advisory lock, so workers and replicas starting together apply each migration exactly once.

use crate::StorageError;

/// Append only: a released migration is never edited.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/001_metadata.sql")),
    (2, include_str!("migrations/002_alerts_servers.sql")),
    (3, include_str!("migrations/003_spans_health.sql")),
    (4, include_str!("migrations/004_sessions_by_start.sql")),
    (5, include_str!("migrations/005_spans_by_time.sql")),
    (6, include_str!("migrations/006_model_pricing.sql")),
    (7, include_str!("migrations/007_agents.sql")),
    (8, include_str!("migrations/008_user_sessions.sql")),
    (9, include_str!("migrations/009_security_scans.sql")),
    (10, include_str!("migrations/010_catalog_seen.sql")),
    (11, include_str!("migrations/011_rollups.sql")),
    (12, include_str!("migrations/012_session_costs.sql")),
    (13, include_str!("migrations/013_session_costs_index.sql")),
    (14, include_str!("migrations/014_rollup_backfill_clickhouse.sql")),
    (15, include_str!("migrations/015_session_links.sql")),
];

/// An arbitrary constant naming our lock among the database's advisory locks.
const LOCK_KEY: i64 = 0x4c61_6e67_5369_6768; // "LangSigh"

pub async fn run(client: &mut deadpool_postgres::Object) -> Result<(), StorageError> {
    // One transaction under the lock for the bookkeeping table and every pending migration: PostgreSQL DDL is
    // transactional, so a failed migration leaves the previous schema intact, and a second starter waits on
    // the lock, then finds nothing left to do.
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY]).await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS langsight_schema (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .await?;
    for (version, sql) in MIGRATIONS {
        if tx.query_opt("SELECT 1 FROM langsight_schema WHERE version = $1", &[version]).await?.is_some() {
            continue;
        }
        tx.batch_execute(sql)
            .await
            .map_err(|e| StorageError::Open(format!("PostgreSQL migration {version} failed: {e}")))?;
        tx.execute(
            "INSERT INTO langsight_schema (version, applied_at) VALUES ($1, $2)",
            &[version, &langsight_core::time::now_micros()],
        )
        .await?;
        tracing::info!(version, "storage.migrated backend=postgres");
    }
    tx.commit().await?;
    let newest: Option<i32> = client.query_one("SELECT max(version) FROM langsight_schema", &[]).await?.get(0);
    let known = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    if newest.unwrap_or(0) > known {
        return Err(StorageError::Open(format!(
            "the PostgreSQL schema is at version {}, newer than this binary knows ({known}); upgrade langsight",
            newest.unwrap_or(0)
        )));
    }
    Ok(())
}
