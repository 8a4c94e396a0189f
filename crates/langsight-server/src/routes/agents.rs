//! `/api/agents/metadata*`, `/api/agents/discover` and the prevention settings the SDK fetches
//! (`/api/agents/{agent}/prevention-config`, with the project default under agent `"*"`).

use super::query::scoped;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::http::JsonBody;
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use langsight_core::time::{iso_offset, now_micros, str_datetime};
use langsight_storage::{AgentMetadata, PreventionRow, SessionQuery};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

const STATUSES: [&str; 3] = ["active", "deprecated", "experimental"];

fn invalid(field: &str, msg: String, input: Value) -> ApiError {
    ApiError::Unprocessable(json!([{ "type": "value_error", "loc": ["body", field], "msg": msg, "input": input }]))
}

fn metadata_json(m: &AgentMetadata) -> Value {
    json!({
        "id": m.id,
        "agent_name": m.agent_name,
        "description": m.description,
        "owner": m.owner,
        "tags": m.tags,
        "status": m.status,
        "runbook_url": m.runbook_url,
        "project_id": (!m.project_id.is_empty()).then_some(&m.project_id),
        "created_at": str_datetime(m.created_at),
        "updated_at": str_datetime(m.updated_at),
        // Ours: when spans first and last named the agent (registered at ingest); null before any span.
        "first_seen_at": m.first_seen_at.map(str_datetime),
        "last_seen_at": m.last_seen_at.map(str_datetime),
    })
}

fn no_metadata(name: &str) -> ApiError {
    ApiError::NotFound(format!("No metadata for agent '{name}'"))
}

pub async fn list_metadata(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<Value>>> {
    let (_, project) = scoped(&state, &principal, raw.as_deref()).await?;
    let rows = state.storage.agents.list_agents(project.as_deref().unwrap_or("")).await?;
    Ok(Json(rows.iter().map(metadata_json).collect()))
}

pub async fn get_metadata(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let (_, project) = scoped(&state, &principal, raw.as_deref()).await?;
    let row = state.storage.agents.get_agent(project.as_deref().unwrap_or(""), &name).await?;
    Ok(Json(metadata_json(&row.ok_or_else(|| no_metadata(&name))?)))
}

#[derive(Deserialize)]
pub struct MetadataUpdate {
    #[serde(default)]
    description: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default = "active")]
    status: String,
    #[serde(default)]
    runbook_url: String,
}

fn active() -> String {
    "active".into()
}

pub async fn put_metadata(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody<MetadataUpdate>,
) -> ApiResult<Json<Value>> {
    principal.require_admin()?;
    let (_, project) = scoped(&state, &principal, raw.as_deref()).await?;
    if !STATUSES.contains(&body.status.as_str()) {
        return Err(invalid("status", format!("status must be one of {}", STATUSES.join(", ")), json!(body.status)));
    }
    if name.trim().is_empty() || name.len() > 256 {
        return Err(ApiError::unprocessable("agent_name must be 1 to 256 characters"));
    }
    let now = now_micros();
    let row = state
        .storage
        .agents
        .upsert_agent(AgentMetadata {
            id: uuid::Uuid::new_v4().simple().to_string(),
            project_id: project.unwrap_or_default(),
            agent_name: name,
            description: body.description,
            owner: body.owner,
            tags: body.tags,
            status: body.status,
            runbook_url: body.runbook_url,
            created_at: now,
            updated_at: now,
            first_seen_at: None,
            last_seen_at: None,
        })
        .await?;
    Ok(Json(metadata_json(&row)))
}

pub async fn delete_metadata(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<StatusCode> {
    principal.require_admin()?;
    let (_, project) = scoped(&state, &principal, raw.as_deref()).await?;
    let project = project.unwrap_or_default();
    if !state.storage.agents.delete_agent(&project, &name).await? {
        return Err(no_metadata(&name));
    }
    // An agent still sending spans comes back at its next span, with fresh first/last seen.
    state.catalog.forget_agent(&project, &name);
    Ok(StatusCode::NO_CONTENT)
}

/// Registers every agent seen in the last 30 days' sessions that has no metadata yet.
pub async fn discover(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    principal.require_admin()?;
    let (_, project) = scoped(&state, &principal, raw.as_deref()).await?;
    let sessions = state
        .storage
        .spans
        .list_sessions(SessionQuery {
            project_id: project.clone(),
            active_since: now_micros() - 30 * 86_400_000_000,
            agent_name: None,
            health_tag: None,
            limit: 10_000,
            ..SessionQuery::default()
        })
        .await?;
    let seen: std::collections::BTreeSet<&String> = sessions.iter().flat_map(|s| s.rollup.agents_used.keys()).collect();
    let owner = project.unwrap_or_default();
    let known: Vec<String> =
        state.storage.agents.list_agents(&owner).await?.into_iter().map(|a| a.agent_name).collect();
    let mut added = Vec::new();
    for name in seen.into_iter().filter(|n| !n.is_empty() && !known.contains(n)) {
        let now = now_micros();
        state
            .storage
            .agents
            .upsert_agent(AgentMetadata {
                id: uuid::Uuid::new_v4().simple().to_string(),
                project_id: owner.clone(),
                agent_name: name.clone(),
                description: String::new(),
                owner: String::new(),
                tags: vec![],
                status: "active".into(),
                runbook_url: String::new(),
                created_at: now,
                updated_at: now,
                first_seen_at: None,
                last_seen_at: None,
            })
            .await?;
        added.push(name.clone());
    }
    Ok(Json(json!({"discovered": added.len(), "agents": added})))
}

/// Prevention settings; a PUT replaces them all (omitted fields take their defaults), as in the original.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Prevention {
    #[serde(default = "yes")]
    loop_enabled: bool,
    #[serde(default = "three")]
    loop_threshold: i64,
    #[serde(default = "terminate")]
    loop_action: String,
    #[serde(default)]
    max_steps: Option<i64>,
    #[serde(default)]
    max_cost_usd: Option<f64>,
    #[serde(default)]
    max_wall_time_s: Option<f64>,
    #[serde(default = "soft_alert")]
    budget_soft_alert: f64,
    #[serde(default = "yes")]
    cb_enabled: bool,
    #[serde(default = "five")]
    cb_failure_threshold: i64,
    #[serde(default = "sixty")]
    cb_cooldown_seconds: f64,
    #[serde(default = "two")]
    cb_half_open_max_calls: i64,
}

fn yes() -> bool {
    true
}
fn three() -> i64 {
    3
}
fn terminate() -> String {
    "terminate".into()
}
fn soft_alert() -> f64 {
    0.8
}
fn five() -> i64 {
    5
}
fn sixty() -> f64 {
    60.0
}
fn two() -> i64 {
    2
}

impl Prevention {
    fn validate(&self) -> ApiResult<()> {
        let range = |field: &str, ok: bool, what: &str, v: Value| -> ApiResult<()> {
            if ok {
                Ok(())
            } else {
                Err(invalid(field, format!("{field} must be {what}"), v))
            }
        };
        range("loop_threshold", (1..=50).contains(&self.loop_threshold), "1 to 50", json!(self.loop_threshold))?;
        range(
            "loop_action",
            ["terminate", "warn"].contains(&self.loop_action.as_str()),
            "'terminate' or 'warn'",
            json!(self.loop_action),
        )?;
        range("max_steps", self.max_steps.is_none_or(|n| n >= 1), "at least 1 (or null)", json!(self.max_steps))?;
        let positive = |v: Option<f64>| v.is_none_or(|x| x.is_finite() && x > 0.0);
        range("max_cost_usd", positive(self.max_cost_usd), "above 0 (or null)", json!(self.max_cost_usd))?;
        range("max_wall_time_s", positive(self.max_wall_time_s), "above 0 (or null)", json!(self.max_wall_time_s))?;
        range(
            "budget_soft_alert",
            (0.1..=1.0).contains(&self.budget_soft_alert),
            "0.1 to 1.0",
            json!(self.budget_soft_alert),
        )?;
        range("cb_failure_threshold", self.cb_failure_threshold >= 1, "at least 1", json!(self.cb_failure_threshold))?;
        range(
            "cb_cooldown_seconds",
            self.cb_cooldown_seconds.is_finite() && self.cb_cooldown_seconds >= 1.0,
            "at least 1.0",
            json!(self.cb_cooldown_seconds),
        )?;
        range(
            "cb_half_open_max_calls",
            self.cb_half_open_max_calls >= 1,
            "at least 1",
            json!(self.cb_half_open_max_calls),
        )
    }
}

fn prevention_json(row: &PreventionRow) -> ApiResult<Value> {
    let config: Prevention = serde_json::from_str(&row.config_json).map_err(|e| {
        tracing::error!(error = %e, agent = %row.agent_name, "stored prevention config unreadable");
        ApiError::Internal
    })?;
    let mut v = serde_json::to_value(config).map_err(|_| ApiError::Internal)?;
    if let Some(o) = v.as_object_mut() {
        o.insert("agent_name".into(), json!(row.agent_name));
        o.insert("is_default".into(), json!(row.agent_name == "*"));
        o.insert("updated_at".into(), json!(iso_offset(row.updated_at)));
    }
    Ok(v)
}

pub async fn list_prevention(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<Value>>> {
    let (_, project) = scoped(&state, &principal, raw.as_deref()).await?;
    let Some(project) = project else { return Ok(Json(vec![])) };
    let rows = state.storage.agents.list_prevention(&project).await?;
    Ok(Json(rows.iter().map(prevention_json).collect::<ApiResult<_>>()?))
}

/// The effective settings of an agent: its own, else the project default (what the SDK asks for).
pub async fn get_prevention(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(agent): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let (_, project) = scoped(&state, &principal, raw.as_deref()).await?;
    let missing = || ApiError::NotFound("No prevention config found.".into());
    let project = project.ok_or_else(missing)?;
    let row = match state.storage.agents.get_prevention(&project, &agent).await? {
        Some(r) => r,
        None => state.storage.agents.get_prevention(&project, "*").await?.ok_or_else(missing)?,
    };
    Ok(Json(prevention_json(&row)?))
}

async fn save(state: &AppState, project: Option<String>, agent: String, body: Prevention) -> ApiResult<Value> {
    let project = project.ok_or_else(|| ApiError::BadRequest("Project required.".into()))?;
    body.validate()?;
    let row = PreventionRow {
        project_id: project,
        agent_name: agent,
        config_json: serde_json::to_string(&body).map_err(|_| ApiError::Internal)?,
        updated_at: now_micros(),
    };
    state.storage.agents.put_prevention(row.clone()).await?;
    prevention_json(&row)
}

pub async fn put_prevention(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(agent): Path<String>,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody<Prevention>,
) -> ApiResult<Json<Value>> {
    principal.require_admin()?;
    let (_, project) = scoped(&state, &principal, raw.as_deref()).await?;
    Ok(Json(save(&state, project, agent, body).await?))
}

pub async fn delete_prevention(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(agent): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<StatusCode> {
    principal.require_admin()?;
    let (_, project) = scoped(&state, &principal, raw.as_deref()).await?;
    let project = project.ok_or_else(|| ApiError::NotFound("Not found.".into()))?;
    if !state.storage.agents.delete_prevention(&project, &agent).await? {
        return Err(ApiError::NotFound("No config found for this agent.".into()));
    }
    Ok(StatusCode::NO_CONTENT)
}

pub async fn get_project_default(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let (_, project) = scoped(&state, &principal, raw.as_deref()).await?;
    let project = project.ok_or_else(|| ApiError::NotFound("Not found.".into()))?;
    let row = state.storage.agents.get_prevention(&project, "*").await?;
    Ok(Json(prevention_json(&row.ok_or_else(|| ApiError::NotFound("No project default set.".into()))?)?))
}

pub async fn put_project_default(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody<Prevention>,
) -> ApiResult<Json<Value>> {
    principal.require_admin()?;
    let (_, project) = scoped(&state, &principal, raw.as_deref()).await?;
    Ok(Json(save(&state, project, "*".into(), body).await?))
}
