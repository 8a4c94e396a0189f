//! Sessions: the list (from the rollups kept at ingest) and one session's trace as a tree.

use super::query::Params;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::{Extension, Json};
use langsight_core::health::HealthTag;
use langsight_core::span::{Span, SpanStatus};
use langsight_core::time::{now_micros, str_datetime};
use langsight_storage::{SessionQuery, SessionRow};
use serde_json::{json, Value};
use std::collections::HashMap;

/// Most spans returned for one trace (the original's cap).
const MAX_TRACE_SPANS: usize = 10_000;

pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let p = Params::parse(raw.as_deref());
    let hours = p.int("hours", 24, 1, 720)?;
    let limit = p.int("limit", 50, 1, 1000)?;
    let health_tag = match p.text("health_tag").filter(|t| !t.is_empty()) {
        Some(t) => Some(t.parse::<HealthTag>().map_err(|msg| {
            ApiError::Unprocessable(json!([{ "type": "enum", "loc": ["query", "health_tag"], "msg": msg, "input": t }]))
        })?),
        None => None,
    };
    let project = principal.scope(&state, p.text("project_id")).await?;
    let rows = state
        .storage
        .spans
        .list_sessions(SessionQuery {
            project_id: project,
            active_since: now_micros() - hours * 3_600_000_000,
            agent_name: p.text("agent_name").filter(|a| !a.is_empty()).map(String::from),
            health_tag,
            limit: limit as usize,
        })
        .await?;
    let prices = state.prices.get(&state).await?;
    // Serialised straight from the rows (the busiest read: no intermediate JSON tree).
    let sessions: Vec<AgentSession> = rows.iter().map(|r| AgentSession::new(r, &prices)).collect();
    let body = serde_json::to_vec(&sessions).map_err(|e| {
        tracing::error!(error = %e, "sessions list could not be serialised");
        ApiError::Internal
    })?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The original's `AgentSession`; the cost is the session's tokens at its model's active price (null when
/// the model is unknown or no tokens were reported).
#[derive(serde::Serialize)]
struct AgentSession<'a> {
    session_id: &'a str,
    agent_name: Option<&'a str>,
    first_call_at: String,
    last_call_at: String,
    tool_calls: u64,
    failed_calls: u64,
    duration_ms: f64,
    servers_used: &'a std::collections::BTreeSet<String>,
    agents_used: &'a std::collections::BTreeSet<String>,
    health_tag: Option<&'static str>,
    total_input_tokens: Option<i64>,
    total_output_tokens: Option<i64>,
    model_id: Option<&'a str>,
    est_cost_usd: Option<f64>,
    has_prompt: bool,
    project_id: &'a str,
}

impl<'a> AgentSession<'a> {
    fn new(row: &'a SessionRow, prices: &crate::analytics::pricing::Prices) -> AgentSession<'a> {
        let r = &row.rollup;
        let nonzero = |v: Option<i64>| v.filter(|n| *n != 0);
        AgentSession {
            session_id: &row.session_id,
            agent_name: r.agent_name.as_deref(),
            first_call_at: str_datetime(r.first_call_at),
            last_call_at: str_datetime(r.last_call_at),
            tool_calls: r.tool_calls,
            failed_calls: r.failed_calls,
            duration_ms: r.duration_ms(),
            servers_used: &r.servers_used,
            agents_used: &r.agents_used,
            health_tag: r.health_tag.map(HealthTag::as_str),
            total_input_tokens: nonzero(r.total_input_tokens),
            total_output_tokens: nonzero(r.total_output_tokens),
            model_id: r.model_id.as_deref(),
            est_cost_usd: est_cost(r, prices),
            has_prompt: r.has_prompt,
            project_id: &row.project_id,
        }
    }
}

fn est_cost(r: &langsight_core::session::SessionRollup, prices: &crate::analytics::pricing::Prices) -> Option<f64> {
    let model = r.model_id.as_deref()?;
    if r.total_input_tokens.is_none() && r.total_output_tokens.is_none() {
        return None;
    }
    let (i, o, t) =
        (r.total_input_tokens.unwrap_or(0), r.total_output_tokens.unwrap_or(0), r.total_thinking_tokens.unwrap_or(0));
    prices.cost(model, i, o, t).map(|c| crate::analytics::round(c, 6))
}

pub async fn trace(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(session_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let p = Params::parse(raw.as_deref());
    let project = principal.scope(&state, p.text("project_id")).await?;
    let _permit = state.trace_reads.acquire().await.map_err(|_| ApiError::Internal)?;
    let mut spans = state.storage.spans.session_spans(&session_id, project.as_deref(), MAX_TRACE_SPANS).await?;
    if spans.is_empty() {
        return Err(ApiError::NotFound(format!("Session '{session_id}' not found.")));
    }
    // Ours: `?payloads=false` leaves arguments, results, prompts and completions out (a 10,000-span trace with
    // large payloads is megabytes); the dashboard then loads one span's payload on demand.
    let payloads = !matches!(p.text("payloads"), Some("false" | "0"));
    if !payloads {
        for s in &mut spans {
            (s.input_json, s.output_json, s.llm_input, s.llm_output) = (None, None, None, None);
        }
    }
    let mut trace = session_trace(&session_id, &spans);
    // Ours: the session's stored tag and estimated cost, so a session page needs no second request.
    let row = state.storage.spans.get_session(project.as_deref(), &session_id).await?;
    let prices = state.prices.get(&state).await?;
    if let Some(o) = trace.as_object_mut() {
        o.insert("health_tag".into(), json!(row.as_ref().and_then(|r| r.rollup.health_tag).map(HealthTag::as_str)));
        o.insert("est_cost_usd".into(), json!(row.as_ref().and_then(|r| est_cost(&r.rollup, &prices))));
        o.insert("payloads_included".into(), json!(payloads));
    }
    Ok(Json(trace))
}

/// `GET /api/agents/sessions/{session_id}/spans/{span_id}`: one span with its payloads.
pub async fn span(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((session_id, span_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let p = Params::parse(raw.as_deref());
    let project = principal.scope(&state, p.text("project_id")).await?;
    let _permit = state.trace_reads.acquire().await.map_err(|_| ApiError::Internal)?;
    let spans = state.storage.spans.session_spans(&session_id, project.as_deref(), MAX_TRACE_SPANS).await?;
    spans
        .iter()
        .find(|s| s.span_id == span_id)
        .map(|s| Json(s.to_trace_json()))
        .ok_or_else(|| ApiError::NotFound(format!("Span '{span_id}' not found in session '{session_id}'.")))
}

/// The original's `SessionTrace`: flat spans, the parent/child tree, counts and duration.
fn session_trace(session_id: &str, spans: &[Span]) -> Value {
    let calls: Vec<&Span> = spans.iter().filter(|s| s.span_type.is_call()).collect();
    let failed = calls.iter().filter(|s| s.status != SpanStatus::Success).count();
    let first = spans.iter().map(|s| s.started_at).min().unwrap_or(0);
    let last = spans.iter().map(|s| s.ended_at).max().unwrap_or(0);
    json!({
        "session_id": session_id,
        "spans_flat": spans.iter().map(Span::to_trace_json).collect::<Vec<_>>(),
        "root_spans": span_tree(spans),
        "total_spans": spans.len(),
        "tool_calls": calls.len(),
        "failed_calls": failed,
        "duration_ms": (last - first) as f64 / 1000.0,
    })
}

/// Builds the tree without recursion (a 10,000-span chain must not overflow the stack). A span whose
/// parent is absent is a root; spans caught in a parent cycle, which no root reaches, are also shown as
/// roots rather than silently dropped.
fn span_tree(spans: &[Span]) -> Vec<Value> {
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(spans.len());
    for (i, s) in spans.iter().enumerate() {
        index.entry(s.span_id.as_str()).or_insert(i);
    }
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    let mut roots = Vec::new();
    for (i, s) in spans.iter().enumerate() {
        match s.parent_span_id.as_deref().and_then(|p| index.get(p)).copied() {
            Some(parent) if parent != i => children[parent].push(i),
            _ => roots.push(i),
        }
    }
    // Pre-order walk from the roots; then nodes that no root reached (cycles) become roots themselves.
    let mut visited = vec![false; spans.len()];
    let mut order = Vec::with_capacity(spans.len());
    let mut all_roots = Vec::new();
    let walk = |start: usize, visited: &mut Vec<bool>, order: &mut Vec<usize>| {
        let mut stack = vec![start];
        while let Some(n) = stack.pop() {
            if visited[n] {
                continue;
            }
            visited[n] = true;
            order.push(n);
            stack.extend(children[n].iter().rev().copied());
        }
    };
    for &r in &roots {
        all_roots.push(r);
        walk(r, &mut visited, &mut order);
    }
    for i in 0..spans.len() {
        if !visited[i] {
            all_roots.push(i);
            walk(i, &mut visited, &mut order);
        }
    }
    // Children appear after their parent in pre-order, so building in reverse has every child ready.
    let mut built: Vec<Option<Value>> = vec![None; spans.len()];
    for &n in order.iter().rev() {
        let mut v = spans[n].to_trace_json();
        let kids: Vec<Value> = children[n].iter().filter_map(|c| built[*c].take()).collect();
        if let Value::Object(m) = &mut v {
            m.insert("children".into(), Value::Array(kids));
        }
        built[n] = Some(v);
    }
    all_roots.into_iter().filter_map(|r| built[r].take()).collect()
}
