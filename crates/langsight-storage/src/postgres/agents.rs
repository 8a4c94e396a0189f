//! [`AgentStore`] for PostgreSQL.

use super::PgStorage;
use crate::model::{AgentMetadata, PreventionRow};
use crate::{AgentStore, StorageError};
use async_trait::async_trait;
use langsight_core::time::Micros;
use tokio_postgres::Row;

const COLUMNS: &str =
    "id, project_id, agent_name, description, owner, tags_json, status, runbook_url, created_at, updated_at";

fn agent_from(r: &Row) -> AgentMetadata {
    let tags: String = r.get(5);
    AgentMetadata {
        id: r.get(0),
        project_id: r.get(1),
        agent_name: r.get(2),
        description: r.get(3),
        owner: r.get(4),
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        status: r.get(6),
        runbook_url: r.get(7),
        created_at: r.get(8),
        updated_at: r.get(9),
    }
}

fn prevention_from(r: &Row) -> PreventionRow {
    PreventionRow { project_id: r.get(0), agent_name: r.get(1), config_json: r.get(2), updated_at: r.get(3) }
}

#[async_trait]
impl AgentStore for PgStorage {
    async fn list_agents(&self, project_id: &str) -> Result<Vec<AgentMetadata>, StorageError> {
        let rows = self
            .client()
            .await?
            .query(
                &format!("SELECT {COLUMNS} FROM agent_metadata WHERE project_id = $1 ORDER BY agent_name"),
                &[&project_id],
            )
            .await?;
        Ok(rows.iter().map(agent_from).collect())
    }

    async fn get_agent(&self, project_id: &str, agent: &str) -> Result<Option<AgentMetadata>, StorageError> {
        let row = self
            .client()
            .await?
            .query_opt(
                &format!("SELECT {COLUMNS} FROM agent_metadata WHERE project_id = $1 AND agent_name = $2"),
                &[&project_id, &agent],
            )
            .await?;
        Ok(row.as_ref().map(agent_from))
    }

    async fn upsert_agent(&self, m: AgentMetadata) -> Result<AgentMetadata, StorageError> {
        let tags = serde_json::to_string(&m.tags).unwrap_or_else(|_| "[]".into());
        let row = self
            .client()
            .await?
            .query_one(
                &format!(
                    "INSERT INTO agent_metadata ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (project_id, agent_name) DO UPDATE SET description = excluded.description, \
                     owner = excluded.owner, tags_json = excluded.tags_json, status = excluded.status, \
                     runbook_url = excluded.runbook_url, updated_at = excluded.updated_at RETURNING {COLUMNS}"
                ),
                &[
                    &m.id,
                    &m.project_id,
                    &m.agent_name,
                    &m.description,
                    &m.owner,
                    &tags,
                    &m.status,
                    &m.runbook_url,
                    &m.created_at,
                    &m.updated_at,
                ],
            )
            .await?;
        Ok(agent_from(&row))
    }

    async fn delete_agent(&self, project_id: &str, agent: &str) -> Result<bool, StorageError> {
        let n = self
            .client()
            .await?
            .execute("DELETE FROM agent_metadata WHERE project_id = $1 AND agent_name = $2", &[&project_id, &agent])
            .await?;
        Ok(n > 0)
    }

    async fn list_prevention(&self, project_id: &str) -> Result<Vec<PreventionRow>, StorageError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT project_id, agent_name, config_json, updated_at FROM prevention_configs \
                 WHERE project_id = $1 ORDER BY agent_name",
                &[&project_id],
            )
            .await?;
        Ok(rows.iter().map(prevention_from).collect())
    }

    async fn get_prevention(&self, project_id: &str, agent: &str) -> Result<Option<PreventionRow>, StorageError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT project_id, agent_name, config_json, updated_at FROM prevention_configs \
                 WHERE project_id = $1 AND agent_name = $2",
                &[&project_id, &agent],
            )
            .await?;
        Ok(row.as_ref().map(prevention_from))
    }

    async fn put_prevention(&self, row: PreventionRow) -> Result<(), StorageError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO prevention_configs (project_id, agent_name, config_json, updated_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (project_id, agent_name) DO UPDATE SET \
                 config_json = excluded.config_json, updated_at = excluded.updated_at",
                &[&row.project_id, &row.agent_name, &row.config_json, &row.updated_at],
            )
            .await?;
        Ok(())
    }

    async fn delete_prevention(&self, project_id: &str, agent: &str) -> Result<bool, StorageError> {
        let n = self
            .client()
            .await?
            .execute("DELETE FROM prevention_configs WHERE project_id = $1 AND agent_name = $2", &[&project_id, &agent])
            .await?;
        Ok(n > 0)
    }

    async fn get_settings(&self) -> Result<Option<String>, StorageError> {
        let row = self.client().await?.query_opt("SELECT settings FROM instance_settings WHERE id = 1", &[]).await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn put_settings(&self, json: String, at: Micros) -> Result<(), StorageError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO instance_settings (id, settings, updated_at) VALUES (1, $1, $2) \
                 ON CONFLICT (id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at",
                &[&json, &at],
            )
            .await?;
        Ok(())
    }
}
