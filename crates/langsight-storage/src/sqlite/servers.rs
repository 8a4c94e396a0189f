//! The SQL of [`ServerStore`] for SQLite.

use super::SqliteStorage;
use crate::model::{ServerMetadata, ServerTool};
use crate::{ServerStore, StorageError};
use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row};

const COLUMNS: &str =
    "id, project_id, server_name, description, owner, tags_json, transport, url, runbook_url, created_at, updated_at";
/// [`COLUMNS`] and the sightings (written only by `record_sightings`).
const READ: &str =
    "id, project_id, server_name, description, owner, tags_json, transport, url, runbook_url, created_at, updated_at, first_seen_at, last_seen_at";

fn from_row(r: &Row) -> rusqlite::Result<ServerMetadata> {
    let tags: String = r.get(5)?;
    Ok(ServerMetadata {
        id: r.get(0)?,
        project_id: r.get(1)?,
        server_name: r.get(2)?,
        description: r.get(3)?,
        owner: r.get(4)?,
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        transport: r.get(6)?,
        url: r.get(7)?,
        runbook_url: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
        first_seen_at: r.get(11)?,
        last_seen_at: r.get(12)?,
    })
}

#[async_trait]
impl ServerStore for SqliteStorage {
    async fn upsert_server(&self, m: ServerMetadata) -> Result<ServerMetadata, StorageError> {
        self.write(move |conn| {
            let tags = serde_json::to_string(&m.tags).unwrap_or_else(|_| "[]".into());
            conn.prepare_cached(&format!(
                "INSERT INTO server_metadata ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
                 ON CONFLICT (project_id, server_name) DO UPDATE SET description = excluded.description, \
                 owner = excluded.owner, tags_json = excluded.tags_json, transport = excluded.transport, \
                 url = excluded.url, runbook_url = excluded.runbook_url, updated_at = excluded.updated_at"
            ))?
            .execute(params![
                m.id,
                m.project_id,
                m.server_name,
                m.description,
                m.owner,
                tags,
                m.transport,
                m.url,
                m.runbook_url,
                m.created_at,
                m.updated_at
            ])?;
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {READ} FROM server_metadata WHERE project_id = ?1 AND server_name = ?2"
                ))?
                .query_row(params![m.project_id, m.server_name], from_row)?)
        })
        .await
    }

    async fn get_server(&self, project_id: &str, name: &str) -> Result<Option<ServerMetadata>, StorageError> {
        let (project_id, name) = (project_id.to_string(), name.to_string());
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {READ} FROM server_metadata WHERE project_id = ?1 AND server_name = ?2"
                ))?
                .query_row(params![project_id, name], from_row)
                .optional()?)
        })
        .await
    }

    async fn list_servers(&self, project_id: Option<&str>) -> Result<Vec<ServerMetadata>, StorageError> {
        let project_id = project_id.map(String::from);
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {READ} FROM server_metadata WHERE ?1 IS NULL OR project_id = ?1 ORDER BY project_id, server_name"
            ))?;
            let rows = stmt.query_map(params![project_id], from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn delete_server(&self, project_id: &str, name: &str) -> Result<bool, StorageError> {
        let (project_id, name) = (project_id.to_string(), name.to_string());
        self.write(move |conn| {
            let n = conn.execute(
                "DELETE FROM server_metadata WHERE project_id = ?1 AND server_name = ?2",
                params![project_id, name],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn upsert_tools(
        &self,
        project_id: &str,
        server: &str,
        tools: Vec<(String, String, String)>,
        at: i64,
    ) -> Result<usize, StorageError> {
        let (project_id, server) = (project_id.to_string(), server.to_string());
        self.write(move |conn| {
            let mut stmt = conn.prepare_cached(
                "INSERT INTO server_tools (project_id, server_name, tool_name, description, input_schema, first_seen_at, \
                 last_seen_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) ON CONFLICT (project_id, server_name, tool_name) \
                 DO UPDATE SET description = excluded.description, input_schema = excluded.input_schema, \
                 last_seen_at = excluded.last_seen_at",
            )?;
            for (name, description, schema) in &tools {
                stmt.execute(params![project_id, server, name, description, schema, at])?;
            }
            Ok(tools.len())
        })
        .await
    }

    async fn list_tools(&self, project_id: &str, server: &str) -> Result<Vec<ServerTool>, StorageError> {
        let (project_id, server) = (project_id.to_string(), server.to_string());
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT server_name, tool_name, description, input_schema, first_seen_at, last_seen_at FROM server_tools \
                 WHERE project_id = ?1 AND server_name = ?2 ORDER BY tool_name",
            )?;
            let rows = stmt.query_map(params![project_id, server], |r| {
                Ok(ServerTool {
                    server_name: r.get(0)?,
                    tool_name: r.get(1)?,
                    description: r.get(2)?,
                    input_schema: r.get(3)?,
                    first_seen_at: r.get(4)?,
                    last_seen_at: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}
