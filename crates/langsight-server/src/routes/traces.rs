//! `POST /api/traces/spans`: the SDK's ingest path.

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::http::LimitedBody;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use langsight_core::span::{decode_batch, Span};
use langsight_shared::bus::Event;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Per session of the batch: its first agent and its failed spans (for the failure alert's text).
fn batch_sessions(spans: &[Span]) -> std::collections::HashMap<String, crate::alerts::rules::BatchSession> {
    let mut out: std::collections::HashMap<String, crate::alerts::rules::BatchSession> = Default::default();
    for s in spans {
        let Some(sid) = &s.session_id else { continue };
        let e = out.entry(sid.clone()).or_default();
        if e.agent.is_none() {
            e.agent = s.agent_name.clone();
        }
        if s.status != langsight_core::span::SpanStatus::Success {
            e.failed += 1;
        }
    }
    out
}

/// Decodes and validates the whole batch, checks the caller may write to the spans' projects, stores it, and
/// answers 202 only after the commit: a 202 is a promise that the spans survive a crash.
pub async fn ingest(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    LimitedBody(body): LimitedBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut spans = decode_batch(&body).map_err(|r| ApiError::Unprocessable(r.detail()))?;
    if let Some(bound) = principal.bound_project() {
        // The original let any key write into any project; a bound key writes only to its own. Spans that
        // name no project are filed under the key's project.
        for (i, span) in spans.iter_mut().enumerate() {
            match span.project() {
                Some(p) if p != bound => {
                    return Err(ApiError::Forbidden(format!(
                        "This API key is bound to project '{bound}' and cannot write spans for project '{p}' \
                         (span {i}). Send these spans with a key of project '{p}', or drop their project_id."
                    )))
                }
                Some(_) => {}
                None => span.project_id = Some(bound.to_string()),
            }
        }
    }
    let n = spans.len();
    let events = live_events(&spans);
    let batch = batch_sessions(&spans);
    let started = Instant::now();
    let outcome = state.storage.spans.ingest(spans).await?;
    // Committed: now tell the live view, off the request path (the 202 does not wait on Redis).
    if !events.is_empty() {
        state.metrics.sse_events_published.fetch_add(n as u64, Ordering::Relaxed);
        let bus = state.shared.bus.clone();
        tokio::spawn(async move {
            for (project, events) in events {
                bus.publish(project.as_deref(), events).await;
            }
        });
    }
    state.metrics.ingest_commit_seconds.observe(started.elapsed().as_secs_f64());
    state.metrics.ingest_batch_spans.observe(n as f64);
    state.metrics.spans_ingested.fetch_add(n as u64, Ordering::Relaxed);
    debug_assert_eq!(outcome.accepted, n);
    if !outcome.sessions.is_empty() {
        crate::alerts::rules::on_session_tags(&state, outcome.sessions, batch).await;
    }
    Ok((StatusCode::ACCEPTED, Json(json!({ "accepted": n }))))
}

/// One `span:new` event per span, grouped by project (one bus message per project of the batch). The
/// payload fields are the original's.
fn live_events(spans: &[Span]) -> Vec<(Option<String>, Vec<Event>)> {
    let mut groups: Vec<(Option<String>, Vec<Event>)> = Vec::new();
    for s in spans {
        let project = s.project().map(str::to_string);
        let data = json!({
            "project_id": project,
            "session_id": s.session_id,
            "agent_name": s.agent_name,
            "server_name": s.server_name,
            "tool_name": s.tool_name,
            "status": s.status.as_str(),
            "latency_ms": s.latency_ms,
            "started_at": langsight_core::time::iso_offset(s.started_at),
            "span_id": s.span_id,
        })
        .to_string();
        let event = Event { name: "span:new".into(), data };
        match groups.iter_mut().find(|(p, _)| *p == project) {
            Some((_, v)) => v.push(event),
            None => groups.push((project, vec![event])),
        }
    }
    groups
}
