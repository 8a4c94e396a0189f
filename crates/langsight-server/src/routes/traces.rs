//! `POST /api/traces/spans`: the SDK's ingest path.

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::http::LimitedBody;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
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
    let spans = decode_batch(&body).map_err(|r| ApiError::Unprocessable(r.detail()))?;
    let n = accept(&state, &principal, spans).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "accepted": n }))))
}

/// The steps every ingest path shares after decoding: project binding, the commit, then live events, metrics
/// and session-tag alerts. Returns how many spans were committed.
pub async fn accept(state: &AppState, principal: &Principal, mut spans: Vec<Span>) -> ApiResult<usize> {
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
    if principal.bound_project().is_none() && principal.require_admin().is_err() {
        writable_by_reader(state, principal, &spans).await?;
    }
    let n = spans.len();
    if n == 0 {
        return Ok(0);
    }
    if state.redact.redact(state).await {
        // The instance asks for no payloads: arguments, results, prompts, completions and errors go.
        for s in &mut spans {
            (s.input_json, s.output_json, s.llm_input, s.llm_output, s.error) = (None, None, None, None, None);
        }
    }
    let events = live_events(&spans);
    let batch = batch_sessions(&spans);
    let sightings = state.catalog.due(&spans, langsight_core::time::now_micros());
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
    // After the commit (a rejected batch registers nothing), before the answer (a 202's names are in the
    // catalog when the caller looks). Only names this process has not registered lately are written.
    crate::catalog::register(state, sightings).await;
    if !outcome.sessions.is_empty() {
        crate::alerts::rules::on_session_tags(state, outcome.sessions, batch).await;
    }
    Ok(n)
}

/// A viewer that is not bound to a project (an unbound viewer key, a viewer's dashboard session) may send
/// spans — the SDK's keys are often viewer keys — but only into projects its owner may read, and never
/// spans without a project (those are visible to instance admins only).
async fn writable_by_reader(state: &AppState, principal: &Principal, spans: &[Span]) -> ApiResult<()> {
    let mut checked: Vec<&str> = Vec::new();
    for (i, span) in spans.iter().enumerate() {
        let Some(p) = span.project() else {
            return Err(ApiError::Forbidden(format!(
                "span {i} names no project_id; a viewer key may only send spans into projects its owner can read. \
                 Set project_id, or use a key bound to the project."
            )));
        };
        if checked.contains(&p) {
            continue;
        }
        if principal.scope(state, Some(p)).await.is_err() {
            return Err(ApiError::Forbidden(format!(
                "This viewer key cannot write spans for project '{p}' (span {i}): its owner is not a member of \
                 that project. Use a key of project '{p}'."
            )));
        }
        checked.push(p);
    }
    Ok(())
}

/// Largest OTLP body once decompressed (a gzip bomb stops here). The decoders walk the body in place, so a
/// request's memory is about this much plus its kept spans; 32 MiB holds a Collector batch of several
/// thousand spans with room to spare.
const MAX_OTLP_DECOMPRESSED: u64 = 32 * 1024 * 1024;

/// Header naming the project of OTLP spans (collectors cannot put it in each span).
pub const OTLP_PROJECT_HEADER: &str = "x-langsight-project-id";

/// Inflates a gzip body of at most `limit` bytes decompressed (413 past it, 400 if it is not gzip), in two
/// passes: the first only counts the bytes, the second fills a buffer of exactly that size. Decompression is
/// cheap next to memory: a growing buffer (`read_to_end`) held up to twice the limit while it doubled, and a gzip
/// bomb is now refused without allocating anything for its output.
fn inflate_capped(body: &[u8], limit: usize) -> ApiResult<Vec<u8>> {
    use std::io::Read;
    let not_gzip = |e: std::io::Error| {
        ApiError::BadRequest(format!("the body is not valid gzip ({e}); send it uncompressed or gzip-compressed"))
    };
    let mut counter = flate2::read::GzDecoder::new(body).take(limit as u64 + 1);
    let size = std::io::copy(&mut counter, &mut std::io::sink()).map_err(not_gzip)?;
    if size > limit as u64 {
        return Err(ApiError::PayloadTooLarge);
    }
    let mut out = Vec::with_capacity(size as usize);
    flate2::read::GzDecoder::new(body).take(size).read_to_end(&mut out).map_err(not_gzip)?;
    Ok(out)
}

/// Decodes an OTLP/HTTP body (gzip or not; protobuf or JSON by `Content-Type`) into our spans. Public for
/// the fuzz targets (`fuzz/`), which drive it with arbitrary headers and bodies.
pub fn decode_otlp(headers: &HeaderMap, body: &[u8]) -> ApiResult<(Vec<Span>, bool)> {
    let header =
        |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let inflated: Vec<u8>;
    let body = match header(header::CONTENT_ENCODING).as_str() {
        "" | "identity" => body,
        "gzip" => {
            inflated = inflate_capped(body, MAX_OTLP_DECOMPRESSED as usize)?;
            &inflated
        }
        other => {
            return Err(ApiError::Unsupported(format!(
                "Content-Encoding '{other}' is not supported; send gzip or uncompressed"
            )))
        }
    };
    let protobuf = header(header::CONTENT_TYPE).contains("protobuf");
    let otlp = if protobuf { crate::otlp::from_protobuf(body) } else { crate::otlp::from_json(body) }
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let project =
        headers.get(OTLP_PROJECT_HEADER).and_then(|v| v.to_str().ok()).map(str::trim).filter(|p| !p.is_empty());
    Ok((crate::otlp::to_spans(&otlp, project, langsight_core::time::now_micros()), protobuf))
}

/// `POST /api/traces/otlp`: the original's endpoint (202 `{"accepted": n}`), now also taking protobuf.
pub async fn otlp(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    LimitedBody(body): LimitedBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (spans, _) = decode_otlp(&headers, &body)?;
    let n = accept(&state, &principal, spans).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "accepted": n }))))
}

/// `POST /v1/traces` (and under `/api/traces/otlp/`): the standard OTLP/HTTP answer — 200 with an empty
/// `ExportTraceServiceResponse` in the request's encoding — so collectors' `otlphttp` exporters work as is.
pub async fn otlp_standard(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    LimitedBody(body): LimitedBody,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let (spans, protobuf) = decode_otlp(&headers, &body)?;
    accept(&state, &principal, spans).await?;
    Ok(if protobuf {
        ([(header::CONTENT_TYPE, "application/x-protobuf")], Vec::<u8>::new()).into_response()
    } else {
        Json(json!({})).into_response()
    })
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
