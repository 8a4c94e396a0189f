//! `/api/servers`: MCP server metadata per project, discovery from traced tool calls, and the tools agents
//! reported (the SDK's tool capture). A registered server with an HTTP URL is also health-checked by the
//! monitor; its URL must pass the SSRF rules (`url_policy`) unless `LANGSIGHT_ALLOW_PRIVATE_MCP_URLS=true`.

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::http::JsonBody;
use crate::state::AppState;
use crate::url_policy::{self, Purpose};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use langsight_core::time::{now_micros, str_datetime};
use langsight_storage::{ServerMetadata, ServerTool};
use serde::Deserialize;
use serde_json::{json, Value};

/// Transports a registration may name (empty = not said).
const TRANSPORTS: &[&str] = &["", "stdio", "sse", "streamable_http"];

/// The storage key of the caller's project (`""` = saved without a project).
async fn project_key(state: &AppState, principal: &Principal, raw: Option<String>) -> ApiResult<String> {
    Ok(super::query::scoped(state, principal, raw.as_deref()).await?.1.unwrap_or_default())
}

fn metadata_json(m: &ServerMetadata) -> Value {
    json!({
        "id": m.id,
        "server_name": m.server_name,
        "description": m.description,
        "owner": m.owner,
        "tags": m.tags,
        "transport": m.transport,
        "url": m.url,
        "runbook_url": m.runbook_url,
        "project_id": (!m.project_id.is_empty()).then_some(&m.project_id),
        "created_at": str_datetime(m.created_at),
        "updated_at": str_datetime(m.updated_at),
        // Ours: when tool-call spans first and last named the server (registered at ingest); null before any.
        "first_seen_at": m.first_seen_at.map(str_datetime),
        "last_seen_at": m.last_seen_at.map(str_datetime),
    })
}

fn not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!("No metadata for server '{name}'"))
}

fn field_error(field: &str, msg: String, input: &str) -> ApiError {
    ApiError::Unprocessable(json!([{ "type": "value_error", "loc": ["body", field], "msg": msg, "input": input }]))
}

pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<Value>>> {
    let project = project_key(&state, &principal, raw).await?;
    let rows = state.storage.servers.list_servers(Some(&project)).await?;
    Ok(Json(rows.iter().map(metadata_json).collect()))
}

pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let project = project_key(&state, &principal, raw).await?;
    let m = state.storage.servers.get_server(&project, &name).await?.ok_or_else(|| not_found(&name))?;
    Ok(Json(metadata_json(&m)))
}

/// Unknown fields are ignored, as the original does.
#[derive(Deserialize)]
pub struct MetadataUpdate {
    #[serde(default)]
    description: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    transport: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    runbook_url: String,
}

pub async fn put(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody<MetadataUpdate>,
) -> ApiResult<Json<Value>> {
    principal.require_admin()?;
    let project = project_key(&state, &principal, raw).await?;
    if name.trim().is_empty() || name.len() > 200 {
        return Err(ApiError::unprocessable("server_name must be 1 to 200 characters."));
    }
    let transport = match body.transport.trim() {
        "http" => "streamable_http".to_string(),
        t if TRANSPORTS.contains(&t) => t.to_string(),
        other => {
            return Err(field_error(
                "transport",
                format!("Value error, transport '{other}' is not supported. Supported: stdio, sse, streamable_http."),
                other,
            ))
        }
    };
    let url = body.url.trim().to_string();
    if !url.is_empty() {
        // Unresolvable names are kept (the server may live on a network resolved later); every check
        // applies the rules again before connecting.
        url_policy::check(&url, Purpose::McpServer, state.config.allow_private_mcp_urls, true)
            .await
            .map_err(|e| field_error("url", format!("Value error, {e}"), &url))?;
    }
    let runbook = &body.runbook_url;
    if !(runbook.is_empty() || runbook.starts_with("http://") || runbook.starts_with("https://")) {
        return Err(field_error(
            "runbook_url",
            "Value error, runbook_url must be an http(s) URL".into(),
            &body.runbook_url,
        ));
    }
    let now = now_micros();
    let saved = state
        .storage
        .servers
        .upsert_server(ServerMetadata {
            id: uuid::Uuid::new_v4().simple().to_string(),
            project_id: project,
            server_name: name,
            description: body.description,
            owner: body.owner,
            tags: body.tags,
            transport,
            url,
            runbook_url: body.runbook_url,
            created_at: now,
            updated_at: now,
            first_seen_at: None,
            last_seen_at: None,
        })
        .await?;
    Ok(Json(metadata_json(&saved)))
}

pub async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<StatusCode> {
    principal.require_admin()?;
    let project = project_key(&state, &principal, raw).await?;
    if state.storage.servers.delete_server(&project, &name).await? {
        // A server still called comes back at its next tool call, with fresh first/last seen.
        state.catalog.forget_server(&project, &name);
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&name))
    }
}

/// Registers every server seen in the project's tool calls that has no metadata yet.
pub async fn discover(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    principal.require_admin()?;
    let project = project_key(&state, &principal, raw).await?;
    let scope = (!project.is_empty()).then_some(project.as_str());
    let seen = state.storage.spans.server_invocations(scope, 0).await?;
    let known = state.storage.servers.list_servers(Some(&project)).await?;
    let mut added = Vec::new();
    for s in seen {
        if s.server_name.is_empty() || known.iter().any(|k| k.server_name == s.server_name) {
            continue;
        }
        let now = now_micros();
        state
            .storage
            .servers
            .upsert_server(ServerMetadata {
                id: uuid::Uuid::new_v4().simple().to_string(),
                project_id: project.clone(),
                server_name: s.server_name.clone(),
                description: String::new(),
                owner: String::new(),
                tags: vec![],
                transport: String::new(),
                url: String::new(),
                runbook_url: String::new(),
                created_at: now,
                updated_at: now,
                first_seen_at: None,
                last_seen_at: None,
            })
            .await?;
        added.push(s.server_name);
    }
    added.sort();
    Ok(Json(json!({ "discovered": added.len(), "servers": added })))
}

/// `project_id` in the body is ignored (the scope decides), as in the original.
#[derive(Deserialize)]
pub struct ToolsBody {
    tools: Vec<ToolIn>,
}

#[derive(Deserialize)]
pub struct ToolIn {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default, alias = "inputSchema")]
    input_schema: Option<Value>,
}

/// The SDK's tool capture: upserts the tools an agent saw on `list_tools()`.
pub async fn put_tools(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody<ToolsBody>,
) -> ApiResult<Json<Value>> {
    principal.require_admin()?;
    let project = project_key(&state, &principal, raw).await?;
    if body.tools.len() > 1000 {
        return Err(ApiError::unprocessable("At most 1000 tools per request."));
    }
    let tools: Vec<(String, String, String)> = body
        .tools
        .into_iter()
        .filter(|t| !t.name.is_empty())
        .map(|t| {
            let schema = match t.input_schema {
                Some(Value::String(s)) => serde_json::from_str::<Value>(&s).unwrap_or_else(|_| json!({})),
                Some(v @ Value::Object(_)) => v,
                _ => json!({}),
            };
            (t.name, t.description.unwrap_or_default(), schema.to_string())
        })
        .collect();
    if tools.is_empty() {
        return Ok(Json(json!({ "upserted": 0 })));
    }
    let n = state.storage.servers.upsert_tools(&project, &name, tools, now_micros()).await?;
    Ok(Json(json!({ "upserted": n })))
}

fn tool_json(t: &ServerTool) -> Value {
    json!({
        "server_name": t.server_name,
        "tool_name": t.tool_name,
        "description": t.description,
        "input_schema": serde_json::from_str::<Value>(&t.input_schema).unwrap_or_else(|_| json!({})),
        "first_seen_at": str_datetime(t.first_seen_at),
        "last_seen_at": str_datetime(t.last_seen_at),
    })
}

pub async fn tools(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<Value>>> {
    let project = project_key(&state, &principal, raw).await?;
    let rows = state.storage.servers.list_tools(&project, &name).await?;
    Ok(Json(rows.iter().map(tool_json).collect()))
}
