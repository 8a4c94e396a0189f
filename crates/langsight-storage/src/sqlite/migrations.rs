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
    (16, include_str!("migrations/016_session_costs_index.sql")),
    (17, include_str!("migrations/017_sessions_window.sql")),
    (18, include_str!("migrations/018_one_session_index.sql")),
    (19, include_str!("migrations/019_session_links.sql")),
    (20, include_str!("migrations/020_spans_by_second.sql")),
    (21, include_str!("migrations/021_spans_by_session_key.sql")),
    (22, include_str!("migrations/022_sessions_by_arrival.sql")),
];

pub fn run(conn: &mut Connection) -> Result<i64, StorageError> {
    run_until(conn, i64::MAX)
}

/// Applies the migrations up to `last` (tests upgrade a database written by an older schema).
pub(super) fn run_until(conn: &mut Connection, last: i64) -> Result<i64, StorageError> {
    for (version, sql) in MIGRATIONS.iter().take_while(|m| m.0 <= last) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A database written before migration 15 holds sessions whose token figures live only in the rollup text:
    /// the upgrade copies them into the columns the cost ranking reads, and that ranking uses its covering index.
    #[test]
    fn the_upgrade_fills_session_cost_columns_from_stored_rollups() {
        let mut conn = Connection::open_in_memory().expect("memory database");
        run_until(&mut conn, 14).expect("schema 14");
        let rollup = r#"{"agent_name":"planner","first_call_at":1,"last_call_at":2,"span_count":7,"tool_calls":3,
            "failed_calls":0,"total_latency_ms":1.5,"total_input_tokens":120,"total_output_tokens":30,
            "total_thinking_tokens":null,"model_id":"gpt-4o","has_prompt":false,"prevented_tag":null,
            "has_schema_drift":false,"has_timeout":false,"has_error":false,"health_tag":"success"}"#;
        conn.execute(
            "INSERT INTO sessions (project_id, session_id, first_call_at, last_call_at, health_tag, rollup) \
             VALUES ('p', 's1', 1, 2, 'success', ?1), ('p', 'placeholder', 1, 2, NULL, '')",
            [rollup],
        )
        .expect("old sessions");
        assert_eq!(run(&mut conn).expect("upgrade"), MIGRATIONS.last().map(|m| m.0).unwrap_or(0));
        type CostColumns = (Option<String>, Option<i64>, Option<i64>, Option<i64>, i64, Option<String>);
        let row: CostColumns = conn
            .query_row(
                "SELECT model_id, input_tokens, output_tokens, thinking_tokens, span_count, agent_name \
                 FROM sessions WHERE session_id = 's1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .expect("upgraded session");
        assert_eq!(row, (Some("gpt-4o".into()), Some(120), Some(30), None, 7, Some("planner".into())));
        let placeholder: Option<String> = conn
            .query_row("SELECT model_id FROM sessions WHERE session_id = 'placeholder'", [], |r| r.get(0))
            .expect("placeholder session");
        assert_eq!(placeholder, None, "a session without a rollup has no model to rank by");
        let mut explain =
            conn.prepare(&format!("EXPLAIN QUERY PLAN {}", crate::sqlite::queries::SESSION_COSTS)).expect("explain");
        let plan: Vec<String> = explain
            .query_map(rusqlite::params![0, None::<String>, 5000, 100, "[]"], |r| r.get(3))
            .expect("plan")
            .collect::<Result<_, _>>()
            .expect("plan rows");
        let plan = plan.join("; ");
        assert!(plan.contains("COVERING INDEX sessions_window"), "the cost ranking reads an index only: {plan}");
    }
}
