//! [`HealthStore`] on ClickHouse (the `dual` mode's health history and drift).

use super::{quote, ClickHouse};
use crate::model::{DriftRecord, HealthRecord};
use crate::{HealthStore, StorageError};
use async_trait::async_trait;
use serde_json::{json, Map, Value};

/// JSONEachRow output, one object per line.
pub(super) fn rows(text: &str) -> Result<Vec<Map<String, Value>>, StorageError> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match serde_json::from_str::<Value>(l)? {
            Value::Object(m) => Ok(m),
            other => Err(StorageError::Backend(format!("ClickHouse returned a non-object row: {other}"))),
        })
        .collect()
}

/// 64-bit integers come quoted by default (`output_format_json_quote_64bit_integers`).
pub(super) fn int(m: &Map<String, Value>, k: &str) -> i64 {
    match m.get(k) {
        Some(Value::Number(n)) => n.as_i64().unwrap_or_default(),
        Some(Value::String(s)) => s.parse().unwrap_or_default(),
        _ => 0,
    }
}

pub(super) fn text(m: &Map<String, Value>, k: &str) -> String {
    m.get(k).and_then(Value::as_str).unwrap_or_default().to_string()
}

pub(super) fn opt_text(m: &Map<String, Value>, k: &str) -> Option<String> {
    m.get(k).and_then(Value::as_str).map(String::from)
}

fn health_from(m: &Map<String, Value>) -> HealthRecord {
    HealthRecord {
        server_name: text(m, "server_name"),
        project_id: text(m, "project_id"),
        status: text(m, "status"),
        latency_ms: m.get("latency_ms").and_then(Value::as_f64),
        tools_count: int(m, "tools_count"),
        tools_json: text(m, "tools"),
        schema_hash: opt_text(m, "schema_hash"),
        error: opt_text(m, "error"),
        checked_at: int(m, "checked_at"),
    }
}

const HEALTH: &str = "server_name, project_id, status, latency_ms, tools_count, tools, schema_hash, error, checked_at";

impl ClickHouse {
    /// Waits for this table's mutations (18.16 has no synchronous ALTER DELETE).
    pub(super) async fn wait_mutations(&self, table: &str) -> Result<(), StorageError> {
        for _ in 0..200 {
            let pending = self
                .query(&format!(
                    "SELECT count() FROM system.mutations WHERE database = {} AND table = {} AND is_done = 0",
                    quote(&self.database),
                    quote(table)
                ))
                .await?;
            if pending.trim() == "0" {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        Err(StorageError::Unavailable(format!("ClickHouse mutation on {table} did not finish")))
    }
}

#[async_trait]
impl HealthStore for ClickHouse {
    async fn save_health(&self, h: HealthRecord) -> Result<(), StorageError> {
        let row = json!({
            "server_name": h.server_name, "project_id": h.project_id, "status": h.status, "latency_ms": h.latency_ms,
            "tools_count": h.tools_count, "tools": h.tools_json, "schema_hash": h.schema_hash, "error": h.error,
            "checked_at": h.checked_at,
        });
        self.insert("health_results", &[row]).await
    }

    async fn latest_health(&self, project_id: &str) -> Result<Vec<HealthRecord>, StorageError> {
        let db = &self.database;
        let out = self
            .query(&format!(
                "SELECT server_name, project_id, argMax(status, checked_at) AS status, \
                 argMax(latency_ms, checked_at) AS latency_ms, argMax(tools_count, checked_at) AS tools_count, \
                 argMax(tools, checked_at) AS tools, argMax(schema_hash, checked_at) AS schema_hash, \
                 argMax(error, checked_at) AS error, max(checked_at) AS newest FROM {db}.health_results \
                 WHERE project_id = {} GROUP BY server_name, project_id ORDER BY server_name FORMAT JSONEachRow",
                quote(project_id)
            ))
            .await?;
        Ok(rows(&out)?.iter().map(|m| HealthRecord { checked_at: int(m, "newest"), ..health_from(m) }).collect())
    }

    async fn health_history(
        &self,
        project_id: &str,
        server: &str,
        limit: usize,
    ) -> Result<Vec<HealthRecord>, StorageError> {
        let db = &self.database;
        let out = self
            .query(&format!(
                "SELECT {HEALTH} FROM {db}.health_results WHERE project_id = {} AND server_name = {} \
                 ORDER BY checked_at DESC LIMIT {limit} FORMAT JSONEachRow",
                quote(project_id),
                quote(server)
            ))
            .await?;
        Ok(rows(&out)?.iter().map(health_from).collect())
    }

    async fn latest_snapshot(&self, project_id: &str, server: &str) -> Result<Option<HealthRecord>, StorageError> {
        let db = &self.database;
        let out = self
            .query(&format!(
                "SELECT {HEALTH} FROM {db}.health_results WHERE project_id = {} AND server_name = {} \
                 AND isNotNull(schema_hash) ORDER BY checked_at DESC LIMIT 1 FORMAT JSONEachRow",
                quote(project_id),
                quote(server)
            ))
            .await?;
        Ok(rows(&out)?.first().map(health_from))
    }

    async fn save_drift(&self, drift: Vec<DriftRecord>) -> Result<(), StorageError> {
        let rows: Vec<Value> = drift
            .iter()
            .map(|r| {
                json!({
                    "server_name": r.server_name, "project_id": r.project_id, "tool_name": r.tool_name,
                    "drift_type": r.drift_type, "change_kind": r.change_kind, "param_name": r.param_name,
                    "old_value": r.old_value, "new_value": r.new_value, "previous_hash": r.previous_hash,
                    "current_hash": r.current_hash, "has_breaking": u8::from(r.has_breaking), "detected_at": r.detected_at,
                })
            })
            .collect();
        self.insert("schema_drift_events", &rows).await
    }

    async fn drift_history(
        &self,
        project_id: &str,
        server: &str,
        limit: usize,
    ) -> Result<Vec<DriftRecord>, StorageError> {
        let db = &self.database;
        let out = self
            .query(&format!(
                "SELECT * FROM {db}.schema_drift_events WHERE project_id = {} AND server_name = {} \
                 ORDER BY detected_at DESC, tool_name DESC LIMIT {limit} FORMAT JSONEachRow",
                quote(project_id),
                quote(server)
            ))
            .await?;
        Ok(rows(&out)?
            .iter()
            .map(|m| DriftRecord {
                server_name: text(m, "server_name"),
                project_id: text(m, "project_id"),
                tool_name: text(m, "tool_name"),
                drift_type: text(m, "drift_type"),
                change_kind: text(m, "change_kind"),
                param_name: opt_text(m, "param_name"),
                old_value: opt_text(m, "old_value"),
                new_value: opt_text(m, "new_value"),
                previous_hash: text(m, "previous_hash"),
                current_hash: text(m, "current_hash"),
                has_breaking: int(m, "has_breaking") != 0,
                detected_at: int(m, "detected_at"),
            })
            .collect())
    }

    async fn prune_health_before(&self, before: i64) -> Result<u64, StorageError> {
        let db = &self.database;
        // Each server's newest result is kept: list them, and spare them explicitly.
        let latest = rows(
            &self
                .query(&format!(
                    "SELECT project_id, server_name, max(checked_at) AS newest FROM {db}.health_results \
                     GROUP BY project_id, server_name FORMAT JSONEachRow"
                ))
                .await?,
        )?;
        let mut cond = format!("checked_at < {before}");
        for m in &latest {
            cond.push_str(&format!(
                " AND NOT (project_id = {} AND server_name = {} AND checked_at = {})",
                quote(&text(m, "project_id")),
                quote(&text(m, "server_name")),
                int(m, "newest")
            ));
        }
        let n: u64 = self
            .query(&format!("SELECT count() FROM {db}.health_results WHERE {cond}"))
            .await?
            .trim()
            .parse()
            .unwrap_or(0);
        if n > 0 {
            self.query(&format!("ALTER TABLE {db}.health_results DELETE WHERE {cond}")).await?;
            self.wait_mutations("health_results").await?;
        }
        self.query(&format!("ALTER TABLE {db}.schema_drift_events DELETE WHERE detected_at < {before}")).await?;
        self.wait_mutations("schema_drift_events").await?;
        Ok(n)
    }
}
