//! [`HealthStore`] for PostgreSQL.

use super::PgStorage;
use crate::model::{DriftRecord, HealthRecord};
use crate::{HealthStore, StorageError};
use async_trait::async_trait;
use tokio_postgres::Row;

const COLUMNS: &str = "server_name, project_id, status, latency_ms, tools_count, tools, schema_hash, error, checked_at";

fn health_from_row(r: &Row) -> HealthRecord {
    HealthRecord {
        server_name: r.get(0),
        project_id: r.get(1),
        status: r.get(2),
        latency_ms: r.get(3),
        tools_count: r.get(4),
        tools_json: r.get(5),
        schema_hash: r.get(6),
        error: r.get(7),
        checked_at: r.get(8),
    }
}

#[async_trait]
impl HealthStore for PgStorage {
    async fn save_health(&self, h: HealthRecord) -> Result<(), StorageError> {
        self.client()
            .await?
            .execute(
                &format!("INSERT INTO health_results ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"),
                &[
                    &h.server_name,
                    &h.project_id,
                    &h.status,
                    &h.latency_ms,
                    &h.tools_count,
                    &h.tools_json,
                    &h.schema_hash,
                    &h.error,
                    &h.checked_at,
                ],
            )
            .await?;
        Ok(())
    }

    async fn latest_health(&self, project_id: &str) -> Result<Vec<HealthRecord>, StorageError> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT DISTINCT ON (server_name) {COLUMNS} FROM health_results WHERE project_id = $1 \
                     ORDER BY server_name, id DESC"
                ),
                &[&project_id],
            )
            .await?;
        Ok(rows.iter().map(health_from_row).collect())
    }

    async fn health_history(
        &self,
        project_id: &str,
        server: &str,
        limit: usize,
    ) -> Result<Vec<HealthRecord>, StorageError> {
        let rows = self
            .client()
            .await?
            .query(
                &format!("SELECT {COLUMNS} FROM health_results WHERE project_id = $1 AND server_name = $2 ORDER BY id DESC LIMIT $3"),
                &[&project_id, &server, &(limit as i64)],
            )
            .await?;
        Ok(rows.iter().map(health_from_row).collect())
    }

    async fn latest_snapshot(&self, project_id: &str, server: &str) -> Result<Option<HealthRecord>, StorageError> {
        let row = self
            .client()
            .await?
            .query_opt(
                &format!(
                    "SELECT {COLUMNS} FROM health_results WHERE project_id = $1 AND server_name = $2 \
                     AND schema_hash IS NOT NULL ORDER BY id DESC LIMIT 1"
                ),
                &[&project_id, &server],
            )
            .await?;
        Ok(row.as_ref().map(health_from_row))
    }

    async fn prune_health_before(&self, before: i64) -> Result<u64, StorageError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "DELETE FROM health_results WHERE checked_at < $1 AND id NOT IN \
                 (SELECT max(id) FROM health_results GROUP BY project_id, server_name)",
                &[&before],
            )
            .await?;
        client.execute("DELETE FROM schema_drift_events WHERE detected_at < $1", &[&before]).await?;
        Ok(n)
    }

    async fn save_drift(&self, rows: Vec<DriftRecord>) -> Result<(), StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let stmt = tx
            .prepare(
                "INSERT INTO schema_drift_events (server_name, project_id, tool_name, drift_type, change_kind, param_name, \
                 old_value, new_value, previous_hash, current_hash, has_breaking, detected_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .await?;
        for r in &rows {
            tx.execute(
                &stmt,
                &[
                    &r.server_name,
                    &r.project_id,
                    &r.tool_name,
                    &r.drift_type,
                    &r.change_kind,
                    &r.param_name,
                    &r.old_value,
                    &r.new_value,
                    &r.previous_hash,
                    &r.current_hash,
                    &r.has_breaking,
                    &r.detected_at,
                ],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn drift_history(
        &self,
        project_id: &str,
        server: &str,
        limit: usize,
    ) -> Result<Vec<DriftRecord>, StorageError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT server_name, project_id, tool_name, drift_type, change_kind, param_name, old_value, new_value, \
                 previous_hash, current_hash, has_breaking, detected_at FROM schema_drift_events \
                 WHERE project_id = $1 AND server_name = $2 ORDER BY id DESC LIMIT $3",
                &[&project_id, &server, &(limit as i64)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| DriftRecord {
                server_name: r.get(0),
                project_id: r.get(1),
                tool_name: r.get(2),
                drift_type: r.get(3),
                change_kind: r.get(4),
                param_name: r.get(5),
                old_value: r.get(6),
                new_value: r.get(7),
                previous_hash: r.get(8),
                current_hash: r.get(9),
                has_breaking: r.get(10),
                detected_at: r.get(11),
            })
            .collect())
    }
}
