//! [`AgentStore`] for PostgreSQL.

use super::PgStorage;
use crate::model::{AgentMetadata, CatalogSighting, PreventionRow};
use crate::{AgentStore, StorageError};
use async_trait::async_trait;
use langsight_core::time::Micros;
use tokio_postgres::Row;

const COLUMNS: &str =
    "id, project_id, agent_name, description, owner, tags_json, status, runbook_url, created_at, updated_at";
/// [`COLUMNS`] and the sightings (written only by `record_sightings`).
const READ: &str =
    "id, project_id, agent_name, description, owner, tags_json, status, runbook_url, created_at, updated_at, first_seen_at, last_seen_at";

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
        first_seen_at: r.get(10),
        last_seen_at: r.get(11),
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
                &format!("SELECT {READ} FROM agent_metadata WHERE project_id = $1 ORDER BY agent_name"),
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
                &format!("SELECT {READ} FROM agent_metadata WHERE project_id = $1 AND agent_name = $2"),
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
                     runbook_url = excluded.runbook_url, updated_at = excluded.updated_at RETURNING {READ}"
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

    async fn record_sightings(&self, sightings: Vec<CatalogSighting>) -> Result<(), StorageError> {
        if sightings.iter().all(|s| s.agents.is_empty() && s.servers.is_empty()) {
            return Ok(());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // One statement per table and project. Names are deduplicated (ON CONFLICT may touch a row once per
        // statement) and sorted, so concurrent registrations lock rows in the same order and cannot deadlock.
        // A new row gets a random 32-hex id and empty metadata; an existing row only has its sightings
        // widened (LEAST/GREATEST skip NULLs), so user edits and `updated_at` stay as they were.
        let agents = tx
            .prepare(
                "INSERT INTO agent_metadata (id, project_id, agent_name, description, owner, tags_json, status, \
                 runbook_url, created_at, updated_at, first_seen_at, last_seen_at) \
                 SELECT md5(random()::text || clock_timestamp()::text || n), $1, n, '', '', '[]', 'active', '', \
                 $3, $3, $3, $3 FROM unnest($2::text[]) AS t(n) ORDER BY n \
                 ON CONFLICT (project_id, agent_name) DO UPDATE SET \
                 first_seen_at = LEAST(agent_metadata.first_seen_at, excluded.first_seen_at), \
                 last_seen_at = GREATEST(agent_metadata.last_seen_at, excluded.last_seen_at)",
            )
            .await?;
        let servers = tx
            .prepare(
                "INSERT INTO server_metadata (id, project_id, server_name, description, owner, tags_json, \
                 transport, url, runbook_url, created_at, updated_at, first_seen_at, last_seen_at) \
                 SELECT md5(random()::text || clock_timestamp()::text || n), $1, n, '', '', '[]', '', '', '', \
                 $3, $3, $3, $3 FROM unnest($2::text[]) AS t(n) ORDER BY n \
                 ON CONFLICT (project_id, server_name) DO UPDATE SET \
                 first_seen_at = LEAST(server_metadata.first_seen_at, excluded.first_seen_at), \
                 last_seen_at = GREATEST(server_metadata.last_seen_at, excluded.last_seen_at)",
            )
            .await?;
        let mut sightings = sightings;
        sightings.sort_by(|a, b| a.project_id.cmp(&b.project_id));
        for s in &sightings {
            let names: Vec<&str> =
                s.agents.iter().map(String::as_str).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
            if !names.is_empty() {
                tx.execute(&agents, &[&s.project_id, &names, &s.at]).await?;
            }
        }
        for s in &sightings {
            let names: Vec<&str> =
                s.servers.iter().map(String::as_str).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
            if !names.is_empty() {
                tx.execute(&servers, &[&s.project_id, &names, &s.at]).await?;
            }
        }
        tx.commit().await?;
        Ok(())
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
