//! `/api/health`: MCP servers' latest results, history, and on-demand checks, each with its circuit state.
//! Operator servers (from `.langsight.yaml`) are global: they are listed for every caller. Servers a project
//! registered through `/api/servers/metadata` are listed for that project only; a project server shadows an
//! operator server of the same name within its project.

use super::query::scoped;
use crate::analytics::rolled::{self, Source};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::monitor::{breaker_key, result_json, run_round, unknown_json};
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::{Extension, Json};
use serde_json::Value;

/// The start of a window of `hours` ending now.
fn window_start(hours: i64) -> i64 {
    langsight_core::time::now_micros() - hours * 3_600_000_000
}

/// Which stored results a server name means for this scope: the project's own server when it registered
/// one of that name with results, else the operator's.
pub(super) async fn owner(state: &AppState, project: Option<&str>, name: &str) -> ApiResult<String> {
    if let Some(p) = project {
        if !state.storage.health.health_history(p, name, 1).await?.is_empty()
            || state.storage.servers.get_server(p, name).await?.is_some_and(|m| !m.url.is_empty())
        {
            return Ok(p.to_string());
        }
    }
    Ok(String::new())
}

pub async fn servers(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<Value>>> {
    let (_, project) = scoped(&state, &principal, raw.as_deref()).await?;
    let mut latest = match &project {
        Some(p) => state.storage.health.latest_health(p).await?,
        None => Vec::new(),
    };
    for r in state.storage.health.latest_health("").await? {
        if !latest.iter().any(|x| x.server_name == r.server_name) {
            latest.push(r);
        }
    }
    latest.sort_by(|a, b| a.server_name.cmp(&b.server_name));
    let mut out = Vec::new();
    for r in &latest {
        let cb = state.shared.breakers.status(&breaker_key(&r.project_id, &r.server_name)).await;
        out.push(result_json(r, &cb));
    }
    let mut known: Vec<String> = state.config.servers.iter().map(|s| s.spec.name.clone()).collect();
    if let Some(p) = &project {
        let registered = state.storage.servers.list_servers(Some(p)).await?;
        known.extend(registered.into_iter().filter(|m| !m.url.is_empty()).map(|m| m.server_name));
    }
    for name in known {
        if !latest.iter().any(|r| r.server_name == name) && !out.iter().any(|v| v["server_name"] == name.as_str()) {
            out.push(unknown_json(&name));
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
    let (_, project) = scoped(&state, &principal, raw.as_deref()).await?;
    let owner = owner(&state, project.as_deref(), &name).await?;
    let history = state.storage.health.health_history(&owner, &name, 1).await?;
    let Some(latest) = history.first() else {
        return Err(ApiError::NotFound(format!("No health data found for server '{name}'. Run a check first.")));
    };
    let cb = state.shared.breakers.status(&breaker_key(&owner, &name)).await;
    Ok(Json(result_json(latest, &cb)))
}

pub async fn history(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<Value>>> {
    let (p, project) = scoped(&state, &principal, raw.as_deref()).await?;
    let limit = p.int("limit", 10, 1, 100)?;
    let owner = owner(&state, project.as_deref(), &name).await?;
    let rows = state.storage.health.health_history(&owner, &name, limit as usize).await?;
    if rows.is_empty() && owner.is_empty() && !state.config.servers.iter().any(|s| s.spec.name == name) {
        return Err(ApiError::NotFound("Server not found.".into()));
    }
    let cb = state.shared.breakers.status(&breaker_key(&owner, &name)).await;
    Ok(Json(rows.iter().map(|r| result_json(r, &cb)).collect()))
}

/// Checks the operator's servers and the scope's registered servers now (through the breakers), stores and
/// returns the results. An admin without a project checks every project's servers.
pub async fn check_now(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<Value>>> {
    principal.require_admin()?;
    let (_, project) = scoped(&state, &principal, raw.as_deref()).await?;
    let mut outcomes = run_round(&state, project.as_deref()).await;
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
    let (p, project) = scoped(&state, &principal, raw.as_deref()).await?;
    let limit = p.int("limit", 20, 1, 100)?;
    let owner = owner(&state, project.as_deref(), &name).await?;
    let rows = state.storage.health.drift_history(&owner, &name, limit as usize).await?;
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
    let (p, project) = scoped(&state, &principal, raw.as_deref()).await?;
    let since = window_start(p.int("hours", 168, 1, 720)?);
    let rows = rolled::invocations(&state, project, since, Source::Rollups).await?;
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
    let (p, project) = scoped(&state, &principal, raw.as_deref()).await?;
    let since = window_start(p.int("hours", 24, 1, 168)?);
    let limit = p.int("limit", 200, 1, 1000)?;
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

/// Spans scanned for the per-agent views (newest first); enough for any realistic window on one server.
const IMPACT_SCAN: usize = 100_000;

#[derive(Default)]
struct AgentAgg {
    sessions: std::collections::BTreeSet<String>,
    calls: i64,
    errors: i64,
    latency_sum: f64,
    last: i64,
}

impl AgentAgg {
    fn add(&mut self, s: &langsight_core::span::Span) {
        self.sessions.insert(s.session_id.clone().unwrap_or_default());
        self.calls += 1;
        if s.status == langsight_core::span::SpanStatus::Error {
            self.errors += 1;
        }
        self.latency_sum += s.latency_ms;
        self.last = self.last.max(s.started_at);
    }

    fn avg_latency(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            (self.latency_sum / self.calls as f64 * 100.0).round() / 100.0
        }
    }
}

/// Which agents and sessions depend on a server: `hours` (1..168, 24).
pub async fn blast_radius(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let (p, project) = scoped(&state, &principal, raw.as_deref()).await?;
    let hours = p.int("hours", 24, 1, 168)?;
    let used = rolled::server_use(&state, project.clone(), &name, window_start(hours), Source::Rollups).await?;
    let mut affected: Vec<(&String, &rolled::AgentUse)> = used.agents.iter().collect();
    affected.sort_by(|a, b| b.1.calls.cmp(&a.1.calls).then(a.0.cmp(b.0)));
    affected.truncate(50);
    let (n_agents, n_sessions) = (affected.len(), used.sessions as usize);
    let severity = if n_agents > 5 || n_sessions > 100 {
        "critical"
    } else if n_agents > 2 || n_sessions > 20 {
        "high"
    } else if n_agents > 0 {
        "medium"
    } else {
        "low"
    };
    let owner = owner(&state, project.as_deref(), &name).await?;
    let status = state.storage.health.health_history(&owner, &name, 1).await?.first().map(|h| h.status.clone());
    Ok(Json(serde_json::json!({
        "server_name": name,
        "server_status": status.unwrap_or_else(|| "unknown".into()),
        "hours": hours,
        "severity": severity,
        "total_sessions_at_risk": n_sessions,
        "total_agents_affected": n_agents,
        "total_calls": used.calls,
        "affected_agents": affected.iter().map(|(agent, a)| serde_json::json!({
            "agent_name": agent,
            "call_count": a.calls,
            "session_count": a.sessions,
            "error_count": a.errors,
            "error_rate_pct": (a.errors as f64 * 1000.0 / a.calls.max(1) as f64).round() / 10.0,
            "avg_latency_ms": if a.calls == 0 { 0.0 } else { (a.latency_sum / a.calls as f64 * 100.0).round() / 100.0 },
            "last_called_at": langsight_core::time::str_datetime(a.last_at),
        })).collect::<Vec<_>>(),
    })))
}

/// Who called one tool of a server recently, per agent and session: `tool_name` (required), `hours` (1..168, 24).
pub async fn drift_impact(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<Value>>> {
    let (p, project) = scoped(&state, &principal, raw.as_deref()).await?;
    let Some(tool) = p.text("tool_name").filter(|t| !t.is_empty()).map(String::from) else {
        return Err(ApiError::Unprocessable(serde_json::json!([{
            "type": "missing", "loc": ["query", "tool_name"], "msg": "Field required: the tool whose callers to list", "input": null
        }])));
    };
    let since = window_start(p.int("hours", 24, 1, 168)?);
    let spans = state.storage.spans.server_calls(&name, project.as_deref(), since, IMPACT_SCAN).await?;
    let wanted = project.unwrap_or_default();
    let mut groups: std::collections::BTreeMap<(String, String), AgentAgg> = Default::default();
    for s in spans.iter().filter(|s| s.tool_name == tool && s.project().unwrap_or("") == wanted) {
        let key = (s.agent_name.clone().unwrap_or_default(), s.session_id.clone().unwrap_or_default());
        groups.entry(key).or_default().add(s);
    }
    let mut rows: Vec<_> = groups.into_iter().collect();
    rows.sort_by(|a, b| b.1.calls.cmp(&a.1.calls).then(a.0.cmp(&b.0)));
    rows.truncate(100);
    Ok(Json(
        rows.iter()
            .map(|((agent, session), a)| {
                serde_json::json!({
                    "agent_name": agent,
                    "session_id": session,
                    "call_count": a.calls,
                    "error_count": a.errors,
                    "avg_latency_ms": a.avg_latency(),
                    "last_called_at": langsight_core::time::str_datetime(a.last),
                })
            })
            .collect(),
    ))
}

/// The server's grade from its stored checks (last 7 days), drift events and recent tool-call error rate.
pub async fn scorecard(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    use langsight_monitor::scorecard::{compute, ScoreInputs};
    let (_, project) = scoped(&state, &principal, raw.as_deref()).await?;
    let owner = owner(&state, project.as_deref(), &name).await?;
    let now = langsight_core::time::now_micros();
    let week = now - 7 * 24 * 3_600_000_000;
    let history: Vec<_> = state
        .storage
        .health
        .health_history(&owner, &name, 336)
        .await?
        .into_iter()
        .filter(|h| h.checked_at >= week)
        .collect();
    let mut latencies: Vec<f64> = history.iter().filter(|h| h.status == "up").filter_map(|h| h.latency_ms).collect();
    latencies.sort_by(f64::total_cmp);
    let p99 = (!latencies.is_empty()).then(|| latencies[((latencies.len() as f64 * 0.99) as usize).saturating_sub(1)]);
    let cv = if latencies.len() > 1 {
        let mean = latencies.iter().sum::<f64>() / latencies.len() as f64;
        let var = latencies.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / latencies.len() as f64;
        if mean > 0.0 {
            var.sqrt() / mean
        } else {
            0.0
        }
    } else {
        0.0
    };
    // Drift events (not their individual change rows), breaking when any change of the event was.
    let drifts = state.storage.health.drift_history(&owner, &name, 200).await?;
    let mut events: std::collections::BTreeMap<(String, i64), bool> = Default::default();
    for d in drifts.iter().filter(|d| d.detected_at >= week) {
        *events.entry((d.current_hash.clone(), d.detected_at)).or_default() |= d.has_breaking;
    }
    let calls = state.storage.spans.server_invocations(project.as_deref(), window_start(24)).await?;
    let error_rate_pct = calls
        .iter()
        .find(|c| c.server_name == name)
        .filter(|c| c.total_calls > 0)
        .map(|c| (c.total_calls - c.success_calls) as f64 * 100.0 / c.total_calls as f64)
        .unwrap_or(0.0);
    // The newest scan that ran (a scan that could not reach the server grades nothing).
    let scan = state.storage.security.latest_scans(&owner, Some(&name), true).await?.into_iter().next();
    let count = |f: fn(&langsight_storage::SecurityScan) -> i64| scan.as_ref().map_or(0, |s| f(s).max(0) as u64);
    let inputs = ScoreInputs {
        total_checks: history.len() as u64,
        successful_checks: history.iter().filter(|h| h.status == "up").count() as u64,
        consecutive_failures: history.iter().take_while(|h| h.status == "down").count() as u64,
        error_rate_pct,
        latency_cv: cv,
        breaking_drifts: events.values().filter(|b| **b).count() as u64,
        compatible_drifts: events.values().filter(|b| !**b).count() as u64,
        current_p99_ms: p99,
        security_scanned: scan.is_some(),
        critical_findings: count(|s| s.critical),
        high_findings: count(|s| s.high),
        medium_findings: count(|s| s.medium),
        low_findings: count(|s| s.low),
        ..ScoreInputs::default()
    };
    let card = compute(&inputs);
    let round1 = |x: f64| (x * 10.0).round() / 10.0;
    Ok(Json(serde_json::json!({
        "server_name": name,
        "grade": card.grade,
        "score": round1(card.score),
        "cap_applied": card.cap_applied,
        "computed_at": langsight_core::time::iso_offset(now),
        "dimensions": card.dimensions.iter().map(|d| serde_json::json!({
            "name": d.name, "score": round1(d.score), "weight": d.weight, "notes": d.notes,
        })).collect::<Vec<_>>(),
    })))
}
