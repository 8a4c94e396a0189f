//! `/api/health`: MCP servers' latest results, history, and on-demand checks, each with its circuit state.
//! Operator servers (from `.langsight.yaml`) are global: they are listed for every caller.

use super::query::Params;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::monitor::{result_json, run_round, unknown_json};
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::{Extension, Json};
use serde_json::Value;

pub async fn servers(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<Value>>> {
    let p = Params::parse(raw.as_deref());
    principal.scope(&state, p.text("project_id")).await?;
    let latest = state.storage.health.latest_health("").await?;
    let mut out = Vec::new();
    for r in &latest {
        let cb = state.shared.breakers.status(&r.server_name).await;
        out.push(result_json(r, &cb));
    }
    for s in &state.config.servers {
        if !latest.iter().any(|r| r.server_name == s.spec.name) {
            out.push(unknown_json(&s.spec.name));
        }
    }
    Ok(Json(out))
}

pub async fn server(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let p = Params::parse(raw.as_deref());
    principal.scope(&state, p.text("project_id")).await?;
    let history = state.storage.health.health_history("", &name, 1).await?;
    let Some(latest) = history.first() else {
        return Err(ApiError::NotFound(format!("No health data found for server '{name}'. Run a check first.")));
    };
    let cb = state.shared.breakers.status(&name).await;
    Ok(Json(result_json(latest, &cb)))
}

pub async fn history(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<Value>>> {
    let p = Params::parse(raw.as_deref());
    let limit = p.int("limit", 10, 1, 100)?;
    principal.scope(&state, p.text("project_id")).await?;
    let rows = state.storage.health.health_history("", &name, limit as usize).await?;
    if rows.is_empty() && !state.config.servers.iter().any(|s| s.spec.name == name) {
        return Err(ApiError::NotFound("Server not found.".into()));
    }
    let cb = state.shared.breakers.status(&name).await;
    Ok(Json(rows.iter().map(|r| result_json(r, &cb)).collect()))
}

/// Checks every configured server now (through the breakers), stores and returns the results.
pub async fn check_now(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Json<Vec<Value>>> {
    principal.require_admin()?;
    let mut outcomes = run_round(&state).await;
    outcomes.sort_by(|a, b| a.record.server_name.cmp(&b.record.server_name));
    Ok(Json(outcomes.iter().map(|o| result_json(&o.record, &o.breaker)).collect()))
}

/// Drift rows of one server, newest first (the original's flat form).
pub async fn drift_history(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<Value>>> {
    let p = Params::parse(raw.as_deref());
    let limit = p.int("limit", 20, 1, 100)?;
    principal.scope(&state, p.text("project_id")).await?;
    let rows = state.storage.health.drift_history("", &name, limit as usize).await?;
    Ok(Json(
        rows.iter()
            .map(|r| {
                serde_json::json!({
                    "server_name": r.server_name,
                    "tool_name": r.tool_name,
                    "drift_type": r.drift_type,
                    "change_kind": r.change_kind,
                    "param_name": r.param_name,
                    "old_value": r.old_value,
                    "new_value": r.new_value,
                    "previous_hash": r.previous_hash,
                    "current_hash": r.current_hash,
                    "has_breaking": r.has_breaking,
                    "detected_at": langsight_core::time::iso_z(r.detected_at),
                })
            })
            .collect(),
    ))
}

/// Tool calls per server over `hours` (1..720, 168) from stored spans.
pub async fn invocations(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<Value>>> {
    let p = Params::parse(raw.as_deref());
    let hours = p.int("hours", 168, 1, 720)?;
    let project = principal.scope(&state, p.text("project_id")).await?;
    let since = langsight_core::time::now_micros() - hours * 3_600_000_000;
    let rows = state.storage.spans.server_invocations(project.as_deref(), since).await?;
    Ok(Json(
        rows.iter()
            .map(|r| {
                let pct = if r.total_calls > 0 { r.success_calls as f64 * 100.0 / r.total_calls as f64 } else { 0.0 };
                serde_json::json!({
                    "server_name": r.server_name,
                    "last_called_at": langsight_core::time::iso_offset(r.last_called_at),
                    "last_call_status": r.last_call_status,
                    "last_call_ok": r.last_call_status == "success",
                    "total_calls": r.total_calls,
                    "success_rate_pct": (pct * 10.0).round() / 10.0,
                })
            })
            .collect(),
    ))
}

/// A server's recent tool calls from stored spans: `hours` (1..168, 24), `limit` (1..1000, 200).
pub async fn logs(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<Value>>> {
    let p = Params::parse(raw.as_deref());
    let hours = p.int("hours", 24, 1, 168)?;
    let limit = p.int("limit", 200, 1, 1000)?;
    let project = principal.scope(&state, p.text("project_id")).await?;
    let since = langsight_core::time::now_micros() - hours * 3_600_000_000;
    let spans = state.storage.spans.server_calls(&name, project.as_deref(), since, limit as usize).await?;
    Ok(Json(
        spans
            .iter()
            .map(|s| {
                serde_json::json!({
                    "started_at": langsight_core::time::iso_offset(s.started_at),
                    "agent_name": s.agent_name.clone().unwrap_or_default(),
                    "tool_name": s.tool_name,
                    "status": s.status.as_str(),
                    "latency_ms": s.latency_ms,
                    "error": s.error,
                    "session_id": s.session_id.clone().unwrap_or_default(),
                    "span_id": s.span_id,
                })
            })
            .collect(),
    ))
}
