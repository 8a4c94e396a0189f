//! [`AgentStore`] for SQLite.

use super::SqliteStorage;
use crate::model::{AgentMetadata, CatalogSighting, PreventionRow};
use crate::{AgentStore, StorageError};
use async_trait::async_trait;
use langsight_core::time::Micros;
use rusqlite::{params, OptionalExtension, Row};

const COLUMNS: &str =
    "id, project_id, agent_name, description, owner, tags_json, status, runbook_url, created_at, updated_at";
/// [`COLUMNS`] and the sightings (written only by `record_sightings`).
const READ: &str =
    "id, project_id, agent_name, description, owner, tags_json, status, runbook_url, created_at, updated_at, first_seen_at, last_seen_at";

fn agent_from(r: &Row) -> rusqlite::Result<AgentMetadata> {
    let tags: String = r.get(5)?;
    Ok(AgentMetadata {
        id: r.get(0)?,
        project_id: r.get(1)?,
        agent_name: r.get(2)?,
        description: r.get(3)?,
        owner: r.get(4)?,
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        status: r.get(6)?,
        runbook_url: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
        first_seen_at: r.get(10)?,
        last_seen_at: r.get(11)?,
    })
}

fn prevention_from(r: &Row) -> rusqlite::Result<PreventionRow> {
    Ok(PreventionRow { project_id: r.get(0)?, agent_name: r.get(1)?, config_json: r.get(2)?, updated_at: r.get(3)? })
}

#[async_trait]
impl AgentStore for SqliteStorage {
    async fn list_agents(&self, project_id: &str) -> Result<Vec<AgentMetadata>, StorageError> {
        let project_id = project_id.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {READ} FROM agent_metadata WHERE project_id = ?1 ORDER BY agent_name"
            ))?;
            let rows = stmt.query_map(params![project_id], agent_from)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn get_agent(&self, project_id: &str, agent: &str) -> Result<Option<AgentMetadata>, StorageError> {
        let (project_id, agent) = (project_id.to_string(), agent.to_string());
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    &format!("SELECT {READ} FROM agent_metadata WHERE project_id = ?1 AND agent_name = ?2"),
                    params![project_id, agent],
                    agent_from,
                )
                .optional()?)
        })
        .await
    }

    async fn upsert_agent(&self, m: AgentMetadata) -> Result<AgentMetadata, StorageError> {
        self.write(move |conn| {
            let tags = serde_json::to_string(&m.tags).unwrap_or_else(|_| "[]".into());
            Ok(conn.query_row(
                &format!(
                    "INSERT INTO agent_metadata ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                     ON CONFLICT (project_id, agent_name) DO UPDATE SET description = excluded.description, \
                     owner = excluded.owner, tags_json = excluded.tags_json, status = excluded.status, \
                     runbook_url = excluded.runbook_url, updated_at = excluded.updated_at RETURNING {READ}"
                ),
                params![
                    m.id,
                    m.project_id,
                    m.agent_name,
                    m.description,
                    m.owner,
                    tags,
                    m.status,
                    m.runbook_url,
                    m.created_at,
                    m.updated_at
                ],
                agent_from,
            )?)
        })
        .await
    }

    async fn delete_agent(&self, project_id: &str, agent: &str) -> Result<bool, StorageError> {
        let (project_id, agent) = (project_id.to_string(), agent.to_string());
        self.write(move |conn| {
            Ok(conn.execute(
                "DELETE FROM agent_metadata WHERE project_id = ?1 AND agent_name = ?2",
                params![project_id, agent],
            )? > 0)
        })
        .await
    }

    async fn record_sightings(&self, sightings: Vec<CatalogSighting>) -> Result<(), StorageError> {
        if sightings.iter().all(|s| s.agents.is_empty() && s.servers.is_empty()) {
            return Ok(());
        }
        self.write(move |conn| {
            // A new row gets a random 32-hex id (the original's uuid4 hex) and empty metadata; an existing row
            // only has its sightings widened, so user edits and `updated_at` stay as they were.
            let mut agent = conn.prepare_cached(
                "INSERT INTO agent_metadata (id, project_id, agent_name, description, owner, tags_json, status, \
                 runbook_url, created_at, updated_at, first_seen_at, last_seen_at) \
                 VALUES (lower(hex(randomblob(16))), ?1, ?2, '', '', '[]', 'active', '', ?3, ?3, ?3, ?3) \
                 ON CONFLICT (project_id, agent_name) DO UPDATE SET \
                 first_seen_at = min(coalesce(first_seen_at, excluded.first_seen_at), excluded.first_seen_at), \
                 last_seen_at = max(coalesce(last_seen_at, excluded.last_seen_at), excluded.last_seen_at)",
            )?;
            for s in &sightings {
                for name in &s.agents {
                    agent.execute(params![s.project_id, name, s.at])?;
                }
            }
            let mut server = conn.prepare_cached(
                "INSERT INTO server_metadata (id, project_id, server_name, description, owner, tags_json, \
                 transport, url, runbook_url, created_at, updated_at, first_seen_at, last_seen_at) \
                 VALUES (lower(hex(randomblob(16))), ?1, ?2, '', '', '[]', '', '', '', ?3, ?3, ?3, ?3) \
                 ON CONFLICT (project_id, server_name) DO UPDATE SET \
                 first_seen_at = min(coalesce(first_seen_at, excluded.first_seen_at), excluded.first_seen_at), \
                 last_seen_at = max(coalesce(last_seen_at, excluded.last_seen_at), excluded.last_seen_at)",
            )?;
            for s in &sightings {
                for name in &s.servers {
                    server.execute(params![s.project_id, name, s.at])?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn list_prevention(&self, project_id: &str) -> Result<Vec<PreventionRow>, StorageError> {
        let project_id = project_id.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT project_id, agent_name, config_json, updated_at FROM prevention_configs \
                 WHERE project_id = ?1 ORDER BY agent_name",
            )?;
            let rows = stmt.query_map(params![project_id], prevention_from)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn get_prevention(&self, project_id: &str, agent: &str) -> Result<Option<PreventionRow>, StorageError> {
        let (project_id, agent) = (project_id.to_string(), agent.to_string());
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT project_id, agent_name, config_json, updated_at FROM prevention_configs \
                     WHERE project_id = ?1 AND agent_name = ?2",
                    params![project_id, agent],
                    prevention_from,
                )
                .optional()?)
        })
        .await
    }

    async fn put_prevention(&self, row: PreventionRow) -> Result<(), StorageError> {
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO prevention_configs (project_id, agent_name, config_json, updated_at) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (project_id, agent_name) DO UPDATE SET \
                 config_json = excluded.config_json, updated_at = excluded.updated_at",
                params![row.project_id, row.agent_name, row.config_json, row.updated_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn delete_prevention(&self, project_id: &str, agent: &str) -> Result<bool, StorageError> {
        let (project_id, agent) = (project_id.to_string(), agent.to_string());
        self.write(move |conn| {
            Ok(conn.execute(
                "DELETE FROM prevention_configs WHERE project_id = ?1 AND agent_name = ?2",
                params![project_id, agent],
            )? > 0)
        })
        .await
    }

    async fn get_settings(&self) -> Result<Option<String>, StorageError> {
        self.read(|conn| {
            Ok(conn.query_row("SELECT settings FROM instance_settings WHERE id = 1", [], |r| r.get(0)).optional()?)
        })
        .await
    }

    async fn put_settings(&self, json: String, at: Micros) -> Result<(), StorageError> {
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO instance_settings (id, settings, updated_at) VALUES (1, ?1, ?2) \
                 ON CONFLICT (id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at",
                params![json, at],
            )?;
            Ok(())
        })
        .await
    }
}
