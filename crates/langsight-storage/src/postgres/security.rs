//! [`SecurityStore`] for PostgreSQL.

use super::PgStorage;
use crate::model::SecurityScan;
use crate::{SecurityStore, StorageError, SCANS_KEPT_PER_SERVER};
use async_trait::async_trait;
use tokio_postgres::Row;

const COLUMNS: &str =
    "id, project_id, server_name, scanned_at, scanner_version, error, critical, high, medium, low, info, findings_json";

fn from_row(r: &Row) -> SecurityScan {
    SecurityScan {
        id: r.get(0),
        project_id: r.get(1),
        server_name: r.get(2),
        scanned_at: r.get(3),
        scanner_version: r.get(4),
        error: r.get(5),
        critical: r.get(6),
        high: r.get(7),
        medium: r.get(8),
        low: r.get(9),
        info: r.get(10),
        findings_json: r.get(11),
    }
}

#[async_trait]
impl SecurityStore for PgStorage {
    async fn save_scan(&self, s: SecurityScan) -> Result<(), StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            &format!(
                "INSERT INTO security_scans ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            ),
            &[
                &s.id,
                &s.project_id,
                &s.server_name,
                &s.scanned_at,
                &s.scanner_version,
                &s.error,
                &s.critical,
                &s.high,
                &s.medium,
                &s.low,
                &s.info,
                &s.findings_json,
            ],
        )
        .await?;
        tx.execute(
            "DELETE FROM security_scans WHERE project_id = $1 AND server_name = $2 AND id NOT IN \
             (SELECT id FROM security_scans WHERE project_id = $1 AND server_name = $2 \
              ORDER BY scanned_at DESC, id DESC LIMIT $3)",
            &[&s.project_id, &s.server_name, &(SCANS_KEPT_PER_SERVER as i64)],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn latest_scans(
        &self,
        project_id: &str,
        server: Option<&str>,
        completed_only: bool,
    ) -> Result<Vec<SecurityScan>, StorageError> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT DISTINCT ON (server_name) {COLUMNS} FROM security_scans WHERE project_id = $1 \
                     AND ($2::text IS NULL OR server_name = $2) AND (NOT $3 OR error IS NULL) \
                     ORDER BY server_name, scanned_at DESC, id DESC"
                ),
                &[&project_id, &server, &completed_only],
            )
            .await?;
        Ok(rows.iter().map(from_row).collect())
    }

    async fn scan_history(
        &self,
        project_id: &str,
        server: &str,
        limit: usize,
    ) -> Result<Vec<SecurityScan>, StorageError> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM security_scans WHERE project_id = $1 AND server_name = $2 \
                     ORDER BY scanned_at DESC, id DESC LIMIT $3"
                ),
                &[&project_id, &server, &(limit as i64)],
            )
            .await?;
        Ok(rows.iter().map(from_row).collect())
    }
}
