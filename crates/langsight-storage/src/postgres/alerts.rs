//! [`AlertStore`] for PostgreSQL.

use super::PgStorage;
use crate::model::{AlertAction, AlertConfig, AlertQuery, DeliveryRecord, FiredAlert, Slo};
use crate::{AlertStore, StorageError};
use async_trait::async_trait;
use tokio_postgres::Row;

const COLUMNS: &str =
    "id, project_id, alert_type, severity, server_name, session_id, title, message, fired_at, status, \
    acked_at, acked_by, snoozed_until, resolved_at";

/// `$1` is the project (NULL = every project); a project sees its own alerts and the global ones.
const VISIBLE: &str = "($1::text IS NULL OR project_id = $1)";

fn alert_from_row(r: &Row) -> FiredAlert {
    FiredAlert {
        id: r.get(0),
        project_id: r.get(1),
        alert_type: r.get(2),
        severity: r.get(3),
        server_name: r.get(4),
        session_id: r.get(5),
        title: r.get(6),
        message: r.get(7),
        fired_at: r.get(8),
        status: r.get(9),
        acked_at: r.get(10),
        acked_by: r.get(11),
        snoozed_until: r.get(12),
        resolved_at: r.get(13),
    }
}

fn slo_from_row(r: &Row) -> Slo {
    Slo {
        id: r.get(0),
        project_id: r.get(1),
        agent_name: r.get(2),
        metric: r.get(3),
        target: r.get(4),
        window_hours: r.get(5),
        created_at: r.get(6),
    }
}

#[async_trait]
impl AlertStore for PgStorage {
    async fn insert_alert(&self, a: FiredAlert) -> Result<(), StorageError> {
        self.client()
            .await?
            .execute(
                &format!("INSERT INTO fired_alerts ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"),
                &[&a.id, &a.project_id, &a.alert_type, &a.severity, &a.server_name, &a.session_id, &a.title, &a.message, &a.fired_at, &a.status, &a.acked_at, &a.acked_by, &a.snoozed_until, &a.resolved_at],
            )
            .await?;
        Ok(())
    }

    async fn get_alert(&self, project_id: Option<&str>, id: &str) -> Result<Option<FiredAlert>, StorageError> {
        let row = self
            .client()
            .await?
            .query_opt(&format!("SELECT {COLUMNS} FROM fired_alerts WHERE {VISIBLE} AND id = $2"), &[&project_id, &id])
            .await?;
        Ok(row.as_ref().map(alert_from_row))
    }

    async fn list_alerts(&self, q: AlertQuery) -> Result<(u64, Vec<FiredAlert>), StorageError> {
        let status = q.status.filter(|s| s != "all");
        // $4 = the alert types (NULL = any).
        let types = (!q.alert_types.is_empty()).then_some(&q.alert_types);
        let filter = format!(
            "{VISIBLE} AND ($2::text IS NULL OR ($2 = 'snoozed' AND status = 'snoozed' AND snoozed_until > $3) \
             OR ($2 <> 'snoozed' AND status = $2)) AND ($4::text[] IS NULL OR alert_type = ANY($4))"
        );
        let client = self.client().await?;
        let total: i64 = client
            .query_one(
                &format!("SELECT count(*) FROM fired_alerts WHERE {filter}"),
                &[&q.project_id, &status, &q.now, &types],
            )
            .await?
            .get(0);
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM fired_alerts WHERE {filter} ORDER BY fired_at DESC, id LIMIT $5 OFFSET $6"
                ),
                &[&q.project_id, &status, &q.now, &types, &(q.limit as i64), &(q.offset as i64)],
            )
            .await?;
        Ok((total as u64, rows.iter().map(alert_from_row).collect()))
    }

    async fn alert_counts(&self, project_id: Option<&str>) -> Result<(u64, u64, u64), StorageError> {
        let rows = self
            .client()
            .await?
            .query(
                &format!("SELECT severity, count(*) FROM fired_alerts WHERE {VISIBLE} AND status = 'active' GROUP BY severity"),
                &[&project_id],
            )
            .await?;
        let mut out = (0, 0, 0);
        for r in rows {
            let (sev, n): (String, i64) = (r.get(0), r.get(1));
            match sev.as_str() {
                "critical" => out.0 += n as u64,
                "warning" => out.1 += n as u64,
                _ => out.2 += n as u64,
            }
        }
        Ok(out)
    }

    async fn update_alert(
        &self,
        project_id: Option<&str>,
        id: &str,
        action: AlertAction,
        at: i64,
    ) -> Result<bool, StorageError> {
        let client = self.client().await?;
        let n = match action {
            AlertAction::Ack { by } => {
                client
                    .execute(
                        &format!(
                            "UPDATE fired_alerts SET status = 'acked', acked_at = $3, acked_by = $4 \
                             WHERE {VISIBLE} AND id = $2 AND status = 'active'"
                        ),
                        &[&project_id, &id, &at, &by],
                    )
                    .await?
            }
            AlertAction::Resolve => {
                client
                    .execute(
                        &format!(
                            "UPDATE fired_alerts SET status = 'resolved', resolved_at = $3 \
                             WHERE {VISIBLE} AND id = $2 AND status <> 'resolved'"
                        ),
                        &[&project_id, &id, &at],
                    )
                    .await?
            }
            AlertAction::Snooze { until } => {
                client
                    .execute(
                        &format!(
                            "UPDATE fired_alerts SET status = 'snoozed', snoozed_until = $3 \
                             WHERE {VISIBLE} AND id = $2 AND status <> 'resolved'"
                        ),
                        &[&project_id, &id, &until],
                    )
                    .await?
            }
        };
        Ok(n > 0)
    }

    async fn record_delivery(&self, d: DeliveryRecord) -> Result<(), StorageError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO alert_deliveries (alert_id, channel, status, attempts, last_error, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&d.alert_id, &d.channel, &d.status, &i64::from(d.attempts), &d.last_error, &d.at],
            )
            .await?;
        Ok(())
    }

    async fn deliveries(&self, alert_id: &str) -> Result<Vec<DeliveryRecord>, StorageError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT alert_id, channel, status, attempts, last_error, updated_at FROM alert_deliveries \
                 WHERE alert_id = $1 ORDER BY id",
                &[&alert_id],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| DeliveryRecord {
                alert_id: r.get(0),
                channel: r.get(1),
                status: r.get(2),
                attempts: r.get::<_, i64>(3) as u32,
                last_error: r.get(4),
                at: r.get(5),
            })
            .collect())
    }

    async fn alert_config(&self, project_id: &str) -> Result<Option<AlertConfig>, StorageError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT slack_webhook, webhook_url, alert_types_json FROM alert_config WHERE project_id = $1",
                &[&project_id],
            )
            .await?;
        Ok(row.map(|r| {
            let types: String = r.get(2);
            AlertConfig {
                slack_webhook: r.get(0),
                webhook_url: r.get(1),
                alert_types: serde_json::from_str(&types).unwrap_or_default(),
            }
        }))
    }

    async fn save_alert_config(&self, project_id: &str, c: AlertConfig) -> Result<(), StorageError> {
        let types = serde_json::to_string(&c.alert_types).unwrap_or_else(|_| "{}".into());
        self.client()
            .await?
            .execute(
                "INSERT INTO alert_config (project_id, slack_webhook, webhook_url, alert_types_json, updated_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (project_id) DO UPDATE SET \
                 slack_webhook = excluded.slack_webhook, webhook_url = excluded.webhook_url, \
                 alert_types_json = excluded.alert_types_json, updated_at = excluded.updated_at",
                &[&project_id, &c.slack_webhook, &c.webhook_url, &types, &langsight_core::time::now_micros()],
            )
            .await?;
        Ok(())
    }

    async fn create_slo(&self, s: Slo) -> Result<(), StorageError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO agent_slos (id, project_id, agent_name, metric, target, window_hours, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&s.id, &s.project_id, &s.agent_name, &s.metric, &s.target, &s.window_hours, &s.created_at],
            )
            .await?;
        Ok(())
    }

    async fn list_slos(&self, project_id: Option<&str>) -> Result<Vec<Slo>, StorageError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id, project_id, agent_name, metric, target, window_hours, created_at FROM agent_slos \
                 WHERE $1::text IS NULL OR project_id = $1 ORDER BY created_at, id",
                &[&project_id],
            )
            .await?;
        Ok(rows.iter().map(slo_from_row).collect())
    }

    async fn delete_slo(&self, project_id: Option<&str>, id: &str) -> Result<bool, StorageError> {
        let n = self
            .client()
            .await?
            .execute(
                "DELETE FROM agent_slos WHERE id = $2 AND ($1::text IS NULL OR project_id = $1)",
                &[&project_id, &id],
            )
            .await?;
        Ok(n > 0)
    }
}
