//! The SQL of [`AlertStore`] for SQLite.

use super::SqliteStorage;
use crate::model::{AlertAction, AlertConfig, AlertQuery, DeliveryRecord, FiredAlert, Slo};
use crate::{AlertStore, StorageError};
use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row};

const COLUMNS: &str =
    "id, project_id, alert_type, severity, server_name, session_id, title, message, fired_at, status, \
    acked_at, acked_by, snoozed_until, resolved_at";

/// `?1` is the project (NULL = every project); a project sees its own alerts and the global ones.
const VISIBLE: &str = "(?1 IS NULL OR project_id = ?1)";

fn alert_from_row(r: &Row) -> rusqlite::Result<FiredAlert> {
    Ok(FiredAlert {
        id: r.get(0)?,
        project_id: r.get(1)?,
        alert_type: r.get(2)?,
        severity: r.get(3)?,
        server_name: r.get(4)?,
        session_id: r.get(5)?,
        title: r.get(6)?,
        message: r.get(7)?,
        fired_at: r.get(8)?,
        status: r.get(9)?,
        acked_at: r.get(10)?,
        acked_by: r.get(11)?,
        snoozed_until: r.get(12)?,
        resolved_at: r.get(13)?,
    })
}

fn slo_from_row(r: &Row) -> rusqlite::Result<Slo> {
    Ok(Slo {
        id: r.get(0)?,
        project_id: r.get(1)?,
        agent_name: r.get(2)?,
        metric: r.get(3)?,
        target: r.get(4)?,
        window_hours: r.get(5)?,
        created_at: r.get(6)?,
    })
}

#[async_trait]
impl AlertStore for SqliteStorage {
    async fn insert_alert(&self, a: FiredAlert) -> Result<(), StorageError> {
        self.write(move |conn| {
            conn.prepare_cached(&format!(
                "INSERT INTO fired_alerts ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
            ))?
            .execute(params![
                a.id,
                a.project_id,
                a.alert_type,
                a.severity,
                a.server_name,
                a.session_id,
                a.title,
                a.message,
                a.fired_at,
                a.status,
                a.acked_at,
                a.acked_by,
                a.snoozed_until,
                a.resolved_at
            ])?;
            Ok(())
        })
        .await
    }

    async fn get_alert(&self, project_id: Option<&str>, id: &str) -> Result<Option<FiredAlert>, StorageError> {
        let (project_id, id) = (project_id.map(String::from), id.to_string());
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(&format!("SELECT {COLUMNS} FROM fired_alerts WHERE {VISIBLE} AND id = ?2"))?
                .query_row(params![project_id, id], alert_from_row)
                .optional()?)
        })
        .await
    }

    async fn list_alerts(&self, q: AlertQuery) -> Result<(u64, Vec<FiredAlert>), StorageError> {
        self.read(move |conn| {
            let status = q.status.filter(|s| s != "all");
            // ?2 = status filter (NULL = any), ?3 = now (a snoozed alert counts as snoozed until its time),
            // ?4 = the alert types as a JSON array (NULL = any).
            let types = (!q.alert_types.is_empty()).then(|| serde_json::Value::from(q.alert_types.clone()).to_string());
            let filter = format!(
                "{VISIBLE} AND (?2 IS NULL OR (?2 = 'snoozed' AND status = 'snoozed' AND snoozed_until > ?3) \
                 OR (?2 <> 'snoozed' AND status = ?2)) \
                 AND (?4 IS NULL OR alert_type IN (SELECT value FROM json_each(?4)))"
            );
            let total: i64 = conn
                .prepare_cached(&format!("SELECT count(*) FROM fired_alerts WHERE {filter}"))?
                .query_row(params![q.project_id, status, q.now, types], |r| r.get(0))?;
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM fired_alerts WHERE {filter} ORDER BY fired_at DESC, id LIMIT ?5 OFFSET ?6"
            ))?;
            let rows = stmt.query_map(
                params![q.project_id, status, q.now, types, q.limit as i64, q.offset as i64],
                alert_from_row,
            )?;
            Ok((total as u64, rows.collect::<Result<Vec<_>, _>>()?))
        })
        .await
    }

    async fn alert_counts(&self, project_id: Option<&str>) -> Result<(u64, u64, u64), StorageError> {
        let project_id = project_id.map(String::from);
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT severity, count(*) FROM fired_alerts WHERE {VISIBLE} AND status = 'active' GROUP BY severity"
            ))?;
            let mut out = (0, 0, 0);
            let rows = stmt.query_map(params![project_id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            for row in rows {
                let (sev, n) = row?;
                match sev.as_str() {
                    "critical" => out.0 += n as u64,
                    "warning" => out.1 += n as u64,
                    _ => out.2 += n as u64,
                }
            }
            Ok(out)
        })
        .await
    }

    async fn update_alert(
        &self,
        project_id: Option<&str>,
        id: &str,
        action: AlertAction,
        at: i64,
    ) -> Result<bool, StorageError> {
        let (project_id, id) = (project_id.map(String::from), id.to_string());
        self.write(move |conn| {
            let n = match action {
                AlertAction::Ack { by } => conn.execute(
                    &format!(
                        "UPDATE fired_alerts SET status = 'acked', acked_at = ?3, acked_by = ?4 \
                         WHERE {VISIBLE} AND id = ?2 AND status = 'active'"
                    ),
                    params![project_id, id, at, by],
                )?,
                AlertAction::Resolve => conn.execute(
                    &format!(
                        "UPDATE fired_alerts SET status = 'resolved', resolved_at = ?3 \
                         WHERE {VISIBLE} AND id = ?2 AND status <> 'resolved'"
                    ),
                    params![project_id, id, at],
                )?,
                AlertAction::Snooze { until } => conn.execute(
                    &format!(
                        "UPDATE fired_alerts SET status = 'snoozed', snoozed_until = ?3 \
                         WHERE {VISIBLE} AND id = ?2 AND status <> 'resolved'"
                    ),
                    params![project_id, id, until],
                )?,
            };
            Ok(n > 0)
        })
        .await
    }

    async fn record_delivery(&self, d: DeliveryRecord) -> Result<(), StorageError> {
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO alert_deliveries (alert_id, channel, status, attempts, last_error, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![d.alert_id, d.channel, d.status, d.attempts, d.last_error, d.at])?;
            Ok(())
        })
        .await
    }

    async fn deliveries(&self, alert_id: &str) -> Result<Vec<DeliveryRecord>, StorageError> {
        let alert_id = alert_id.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT alert_id, channel, status, attempts, last_error, updated_at FROM alert_deliveries \
                 WHERE alert_id = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map(params![alert_id], |r| {
                Ok(DeliveryRecord {
                    alert_id: r.get(0)?,
                    channel: r.get(1)?,
                    status: r.get(2)?,
                    attempts: r.get(3)?,
                    last_error: r.get(4)?,
                    at: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn alert_config(&self, project_id: &str) -> Result<Option<AlertConfig>, StorageError> {
        let project_id = project_id.to_string();
        self.read(move |conn| {
            let row = conn
                .prepare_cached(
                    "SELECT slack_webhook, webhook_url, alert_types_json FROM alert_config WHERE project_id = ?1",
                )?
                .query_row(params![project_id], |r| {
                    Ok((r.get::<_, Option<String>>(0)?, r.get::<_, Option<String>>(1)?, r.get::<_, String>(2)?))
                })
                .optional()?;
            Ok(row.map(|(slack_webhook, webhook_url, types)| AlertConfig {
                slack_webhook,
                webhook_url,
                alert_types: serde_json::from_str(&types).unwrap_or_default(),
            }))
        })
        .await
    }

    async fn save_alert_config(&self, project_id: &str, c: AlertConfig) -> Result<(), StorageError> {
        let project_id = project_id.to_string();
        self.write(move |conn| {
            let types = serde_json::to_string(&c.alert_types).unwrap_or_else(|_| "{}".into());
            conn.execute(
                "INSERT INTO alert_config (project_id, slack_webhook, webhook_url, alert_types_json, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (project_id) DO UPDATE SET \
                 slack_webhook = excluded.slack_webhook, webhook_url = excluded.webhook_url, \
                 alert_types_json = excluded.alert_types_json, updated_at = excluded.updated_at",
                params![project_id, c.slack_webhook, c.webhook_url, types, langsight_core::time::now_micros()],
            )?;
            Ok(())
        })
        .await
    }

    async fn create_slo(&self, s: Slo) -> Result<(), StorageError> {
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO agent_slos (id, project_id, agent_name, metric, target, window_hours, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![s.id, s.project_id, s.agent_name, s.metric, s.target, s.window_hours, s.created_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn list_slos(&self, project_id: Option<&str>) -> Result<Vec<Slo>, StorageError> {
        let project_id = project_id.map(String::from);
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, project_id, agent_name, metric, target, window_hours, created_at FROM agent_slos \
                 WHERE ?1 IS NULL OR project_id = ?1 ORDER BY created_at, id",
            )?;
            let rows = stmt.query_map(params![project_id], slo_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn delete_slo(&self, project_id: Option<&str>, id: &str) -> Result<bool, StorageError> {
        let (project_id, id) = (project_id.map(String::from), id.to_string());
        self.write(move |conn| {
            let n = conn.execute(
                "DELETE FROM agent_slos WHERE id = ?2 AND (?1 IS NULL OR project_id = ?1)",
                params![project_id, id],
            )?;
            Ok(n > 0)
        })
        .await
    }
}
