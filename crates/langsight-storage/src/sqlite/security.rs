//! The SQL of [`SecurityStore`] for SQLite.

use super::SqliteStorage;
use crate::model::SecurityScan;
use crate::{SecurityStore, StorageError, SCANS_KEPT_PER_SERVER};
use async_trait::async_trait;
use rusqlite::{params, Row};

const COLUMNS: &str =
    "id, project_id, server_name, scanned_at, scanner_version, error, critical, high, medium, low, info, findings_json";

fn from_row(r: &Row) -> rusqlite::Result<SecurityScan> {
    Ok(SecurityScan {
        id: r.get(0)?,
        project_id: r.get(1)?,
        server_name: r.get(2)?,
        scanned_at: r.get(3)?,
        scanner_version: r.get(4)?,
        error: r.get(5)?,
        critical: r.get(6)?,
        high: r.get(7)?,
        medium: r.get(8)?,
        low: r.get(9)?,
        info: r.get(10)?,
        findings_json: r.get(11)?,
    })
}

#[async_trait]
impl SecurityStore for SqliteStorage {
    async fn save_scan(&self, s: SecurityScan) -> Result<(), StorageError> {
        self.write(move |conn| {
            conn.prepare_cached(&format!(
                "INSERT INTO security_scans ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
            ))?
            .execute(params![
                s.id,
                s.project_id,
                s.server_name,
                s.scanned_at,
                s.scanner_version,
                s.error,
                s.critical,
                s.high,
                s.medium,
                s.low,
                s.info,
                s.findings_json
            ])?;
            conn.prepare_cached(
                "DELETE FROM security_scans WHERE project_id = ?1 AND server_name = ?2 AND id NOT IN \
                 (SELECT id FROM security_scans WHERE project_id = ?1 AND server_name = ?2 \
                  ORDER BY scanned_at DESC, id DESC LIMIT ?3)",
            )?
            .execute(params![s.project_id, s.server_name, SCANS_KEPT_PER_SERVER as i64])?;
            Ok(())
        })
        .await
    }

    async fn latest_scans(
        &self,
        project_id: &str,
        server: Option<&str>,
        completed_only: bool,
    ) -> Result<Vec<SecurityScan>, StorageError> {
        let (project_id, server) = (project_id.to_string(), server.map(String::from));
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM security_scans WHERE project_id = ?1 AND (?2 IS NULL OR server_name = ?2) \
                 AND (?3 = 0 OR error IS NULL) ORDER BY server_name, scanned_at DESC, id DESC"
            ))?;
            let rows = stmt.query_map(params![project_id, server, completed_only], from_row)?;
            let mut out: Vec<SecurityScan> = Vec::new();
            for row in rows {
                let row = row?;
                if out.last().is_none_or(|l| l.server_name != row.server_name) {
                    out.push(row);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn scan_history(
        &self,
        project_id: &str,
        server: &str,
        limit: usize,
    ) -> Result<Vec<SecurityScan>, StorageError> {
        let (project_id, server) = (project_id.to_string(), server.to_string());
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM security_scans WHERE project_id = ?1 AND server_name = ?2 \
                 ORDER BY scanned_at DESC, id DESC LIMIT ?3"
            ))?;
            let rows = stmt.query_map(params![project_id, server, limit as i64], from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}
