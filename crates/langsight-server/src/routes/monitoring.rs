//! `/api/monitoring/*` and `/api/reliability/tools`, `/api/agents/loop-counts`, `/api/agents/lineage`: figures
//! folded from the window's spans by [`crate::analytics`].

use super::query::scoped;
use crate::analytics::rolled::{self, Source};
use crate::analytics::Window;
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use axum::{Extension, Json};
use langsight_core::time::now_micros;
use serde_json::Value;

const DAY: i64 = 86_400_000_000;

/// The scoped window of `?hours=` (default `default`, 1..=`max`).
async fn window(
    state: &AppState,
    principal: &Principal,
    raw: Option<String>,
    default: i64,
    max: i64,
) -> ApiResult<(super::query::Params, Window, i64)> {
    let (p, project) = scoped(state, principal, raw.as_deref()).await?;
    let hours = p.int("hours", default, 1, max)?;
    Ok((p, Window::last_hours(project, hours), hours))
}

pub async fn timeseries(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let (_, w, hours) = window(&state, &principal, raw, 24, 720).await?;
    Ok(Json(rolled::timeseries(&state, &w, hours, Source::Rollups).await?))
}

pub async fn models(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let (_, w, _) = window(&state, &principal, raw, 24, 720).await?;
    Ok(Json(rolled::models(&state, &w, Source::Rollups).await?))
}

pub async fn tools(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let (_, w, _) = window(&state, &principal, raw, 24, 720).await?;
    Ok(Json(rolled::tools(&state, &w, Source::Rollups).await?))
}

pub async fn trends(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let (_, project) = scoped(&state, &principal, raw.as_deref()).await?;
    Ok(Json(rolled::trends(&state, project, Source::Rollups).await?))
}

pub async fn errors(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let (_, w, _) = window(&state, &principal, raw, 24, 720).await?;
    Ok(Json(rolled::errors(&state, &w, Source::Rollups).await?))
}

pub async fn reliability_tools(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let (p, w, hours) = window(&state, &principal, raw, 24, 720).await?;
    let server = p.text("server_name").filter(|s| !s.is_empty()).map(String::from);
    Ok(Json(rolled::reliability_tools(&state, &w, server, hours, Source::Rollups).await?))
}

pub async fn loop_counts(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let (_, w, _) = window(&state, &principal, raw, 24, 720).await?;
    Ok(Json(rolled::loop_counts(&state, &w, Source::Rollups).await?))
}

/// `GET /api/agents/summary?hours=168[&agent_name=…]`: per-agent sessions, failures, calls, tokens and cost over
/// every session of the window (ours; the dashboard's agent tables and cards).
pub async fn agent_summary(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let (p, w, _) = window(&state, &principal, raw, 168, 720).await?;
    let agent = p.text("agent_name").filter(|s| !s.is_empty()).map(String::from);
    Ok(Json(rolled::agent_summary(&state, &w, agent.as_deref()).await?))
}

pub async fn lineage(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let (_, w, hours) = window(&state, &principal, raw, 168, 720).await?;
    Ok(Json(rolled::lineage(&state, &w, hours, Source::Rollups).await?))
}

/// `GET /api/reliability/anomalies`: reading never fires alerts (the monitor leader's rule does that).
pub async fn anomalies(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let (p, project) = scoped(&state, &principal, raw.as_deref()).await?;
    let current = p.int("current_hours", 1, 1, 24)?;
    let baseline = p.int("baseline_hours", 168, 24, 720)?;
    let z = p.float("z_threshold", 2.0, 1.0, 5.0)?;
    let now_hour = now_micros().div_euclid(3_600_000_000);
    let current_from = now_hour - (current - 1);
    let rows = state.storage.spans.tool_hours(project.as_deref(), current_from - baseline).await?;
    let found = crate::alerts::anomaly::detect(&rows, current_from, z);
    Ok(Json(Value::Array(
        found
            .iter()
            .map(|a| {
                serde_json::json!({
                    "server_name": a.server_name, "tool_name": a.tool_name, "metric": a.metric,
                    "current_value": a.current_value, "baseline_mean": a.baseline_mean,
                    "baseline_stddev": a.baseline_stddev, "z_score": a.z_score, "severity": a.severity,
                    "sample_hours": a.sample_hours,
                })
            })
            .collect(),
    )))
}

/// Unfinished runs, idle for `stale_minutes`, over the last 24 hours.
async fn unfinished(
    state: &AppState,
    principal: &Principal,
    raw: Option<&str>,
) -> ApiResult<Vec<crate::analytics::reliability::Unfinished>> {
    let (p, project) = scoped(state, principal, raw).await?;
    let stale = p.int("stale_minutes", 5, 1, 60)?;
    let now = now_micros();
    rolled::incomplete(state, project, now - DAY, now - stale * 60_000_000, Source::Rollups).await
}

/// `GET /api/reliability/incomplete-sessions`.
pub async fn incomplete_sessions(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let rows = unfinished(&state, &principal, raw.as_deref()).await?;
    Ok(Json(Value::Array(
        rows.iter()
            .map(|u| {
                serde_json::json!({
                    "session_id": u.session_id, "agent_name": u.agent_name,
                    "last_activity": langsight_core::time::iso_offset(u.last_activity), "span_count": u.span_count,
                    "llm_calls": u.llm_calls, "tool_calls": u.tool_calls,
                })
            })
            .collect(),
    )))
}

/// `POST /api/reliability/tag-incomplete`: tags the unfinished sessions `incomplete` (never over a failure tag).
pub async fn tag_incomplete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    principal.require_admin()?;
    let rows = unfinished(&state, &principal, raw.as_deref()).await?;
    let mut tagged = 0;
    for u in &rows {
        tagged += state.storage.spans.mark_incomplete(&u.project_id, &u.session_id).await? as u64;
    }
    Ok(Json(serde_json::json!({ "tagged": tagged })))
}
