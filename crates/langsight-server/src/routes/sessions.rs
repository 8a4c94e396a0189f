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
use langsight_core::tree::{self, Step};
use langsight_storage::{SessionQuery, SessionRow, SessionSort, MAX_SESSIONS_SCANNED};
use serde_json::{json, Map, Value};

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
    // Ours, all optional (absent = the original's list): `q` searches the session id and agent name, `sort`
    // orders by a column (`order=asc|desc`, default desc), `offset` pages, `outcome=failed|clean` keeps one
    // kind, and `counts=true` adds `X-Total-Count` / `X-Failed-Count` (matching sessions, of them failed).
    let invalid = |name: &str, msg: &str, input: &str| {
        ApiError::Unprocessable(json!([{ "type": "enum", "loc": ["query", name], "msg": msg, "input": input }]))
    };
    let sort = match p.text("sort").filter(|t| !t.is_empty()) {
        Some(t) => SessionSort::parse(t).ok_or_else(|| {
            let names: Vec<&str> = SessionSort::ALL.iter().map(|(n, _)| *n).collect();
            invalid("sort", &format!("Input should be one of {}", names.join(", ")), t)
        })?,
        None => SessionSort::Started,
    };
    let ascending = match p.text("order").filter(|t| !t.is_empty()) {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(t) => return Err(invalid("order", "Input should be 'asc' or 'desc'", t)),
    };
    let failed = match p.text("outcome").filter(|t| !t.is_empty()) {
        None => None,
        Some("failed") => Some(true),
        Some("clean") => Some(false),
        Some(t) => return Err(invalid("outcome", "Input should be 'failed' or 'clean'", t)),
    };
    let offset = p.int("offset", 0, 0, MAX_SESSIONS_SCANNED as i64)?;
    let search = p.text("q").map(str::trim).filter(|t| !t.is_empty()).map(|t| t.chars().take(200).collect());
    let counts = matches!(p.text("counts"), Some("true" | "1"));
    let project = principal.scope(&state, p.text("project_id")).await?;
    let query = SessionQuery {
        project_id: project,
        active_since: now_micros() - hours * 3_600_000_000,
        agent_name: p.text("agent_name").filter(|a| !a.is_empty()).map(String::from),
        health_tag,
        failed,
        search,
        sort,
        ascending,
        offset: offset as usize,
        limit: limit as usize,
    };
    let tally = if counts {
        // The counts ignore `outcome`: they are what the failed / clean choice chooses between.
        Some(state.storage.spans.count_sessions(SessionQuery { failed: None, ..query.clone() }).await?)
    } else {
        None
    };
    let rows = state.storage.spans.list_sessions(query).await?;
    let prices = state.prices.get(&state).await?;
    // Serialised straight from the rows (the busiest read: no intermediate JSON tree).
    let sessions: Vec<AgentSession> = rows.iter().map(|r| AgentSession::new(r, &prices)).collect();
    let body = serde_json::to_vec(&sessions).map_err(|e| {
        tracing::error!(error = %e, "sessions list could not be serialised");
        ApiError::Internal
    })?;
    let mut response = ([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Some(t) = tally {
        let h = response.headers_mut();
        h.insert("x-total-count", axum::http::HeaderValue::from(t.total));
        h.insert("x-failed-count", axum::http::HeaderValue::from(t.failed));
    }
    Ok(response)
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
    servers_used: Vec<&'a str>,
    agents_used: Vec<&'a str>,
    /// Ours: spans whose server or agent is not listed because the session has more than
    /// [`langsight_core::session::MAX_ROLLUP_NAMES`] of them (the first names in sort order are listed).
    servers_dropped: u64,
    agents_dropped: u64,
    tools_dropped: u64,
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
            servers_used: r.servers_used.keys().map(String::as_str).collect(),
            agents_used: r.agents_used.keys().map(String::as_str).collect(),
            servers_dropped: r.servers_dropped,
            agents_dropped: r.agents_dropped,
            tools_dropped: r.tools_dropped,
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
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
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
    // Ours: the session's stored tag and estimated cost, so a session page needs no second request.
    let row = state.storage.spans.get_session(project.as_deref(), &session_id).await?;
    let prices = state.prices.get(&state).await?;
    let mut extra = Map::new();
    extra.insert("health_tag".into(), json!(row.as_ref().and_then(|r| r.rollup.health_tag).map(HealthTag::as_str)));
    extra.insert("est_cost_usd".into(), json!(row.as_ref().and_then(|r| est_cost(&r.rollup, &prices))));
    extra.insert("payloads_included".into(), json!(payloads));
    let body = session_trace(&session_id, &spans, extra).map_err(|e| {
        tracing::error!(error = %e, "session trace could not be serialised");
        ApiError::Internal
    })?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response())
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

/// The original's `SessionTrace` (flat spans, the parent/child tree, counts and duration) plus `extra`, as JSON
/// bytes. The tree is written straight to bytes with an explicit stack: a nested `serde_json::Value` would be
/// serialised and dropped recursively, and a parent chain some thousands of spans deep (anyone with a key can
/// send one) would overflow the stack and abort the whole process. The bytes are what `serde_json` gives for
/// the equivalent `Value` (same key order, compact form).
fn session_trace(session_id: &str, spans: &[Span], extra: Map<String, Value>) -> Result<Vec<u8>, serde_json::Error> {
    let calls: Vec<&Span> = spans.iter().filter(|s| s.span_type.is_call()).collect();
    let failed = calls.iter().filter(|s| s.status != SpanStatus::Success).count();
    let first = spans.iter().map(|s| s.started_at).min().unwrap_or(0);
    let last = spans.iter().map(|s| s.ended_at).max().unwrap_or(0);
    let mut top = Map::new();
    top.insert("session_id".into(), json!(session_id));
    top.insert("spans_flat".into(), Value::Array(spans.iter().map(Span::to_trace_json).collect()));
    top.insert("root_spans".into(), Value::Null);
    top.insert("total_spans".into(), json!(spans.len()));
    top.insert("tool_calls".into(), json!(calls.len()));
    top.insert("failed_calls".into(), json!(failed));
    top.insert("duration_ms".into(), json!((last - first) as f64 / 1000.0));
    top.extend(extra);
    let (prefix, suffix) = split_object(&top, "root_spans")?;
    let mut out = prefix;
    write_forest(&mut out, spans)?;
    out.extend_from_slice(&suffix);
    Ok(out)
}

/// A JSON object serialised around one key's value: the bytes up to and including `"hole":`, and the bytes
/// after the value (up to the closing brace), so the caller can write that value itself.
fn split_object(map: &Map<String, Value>, hole: &str) -> Result<(Vec<u8>, Vec<u8>), serde_json::Error> {
    let (mut prefix, mut suffix) = (vec![b'{'], Vec::new());
    let mut in_suffix = false;
    for (i, (k, v)) in map.iter().enumerate() {
        let out = if in_suffix { &mut suffix } else { &mut prefix };
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, k)?;
        out.push(b':');
        if k == hole {
            in_suffix = true;
        } else {
            serde_json::to_writer(&mut *out, v)?;
        }
    }
    if in_suffix { &mut suffix } else { &mut prefix }.push(b'}');
    Ok((prefix, suffix))
}

/// Writes the forest as a JSON array of spans, each with its `children` array, depth-first with an explicit
/// stack (one frame per open ancestor, heap-allocated), so depth costs memory, never call-stack.
fn write_forest(out: &mut Vec<u8>, spans: &[Span]) -> Result<(), serde_json::Error> {
    let links: Vec<(&str, Option<&str>)> =
        spans.iter().map(|s| (s.span_id.as_str(), s.parent_span_id.as_deref())).collect();
    let tree = tree::build(&links);
    // What closes each open span: `]` of its children and the rest of its object after `children`.
    let mut closers: Vec<Vec<u8>> = Vec::new();
    let mut first = true;
    out.push(b'[');
    tree.walk(|step| {
        match step {
            Step::Enter { node, .. } => {
                if !first {
                    out.push(b',');
                }
                let mut object = match spans[node].to_trace_json() {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                object.insert("children".into(), Value::Null);
                let (prefix, rest) = split_object(&object, "children")?;
                out.extend_from_slice(&prefix);
                out.push(b'[');
                closers.push(rest);
                first = true;
            }
            Step::Leave { .. } => {
                out.push(b']');
                out.extend_from_slice(&closers.pop().unwrap_or_default());
                first = false;
            }
        }
        Ok(())
    })?;
    out.push(b']');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use langsight_core::span::decode_batch;

    /// The answer as it was built before (a nested `Value`), for shallow trees only.
    fn nested(spans: &[Span], extra: Map<String, Value>) -> Vec<u8> {
        let links: Vec<(&str, Option<&str>)> =
            spans.iter().map(|s| (s.span_id.as_str(), s.parent_span_id.as_deref())).collect();
        let t = tree::build(&links);
        fn node(n: usize, spans: &[Span], t: &tree::Tree) -> Value {
            let mut v = spans[n].to_trace_json();
            let kids: Vec<Value> = t.children[n].iter().map(|c| node(*c, spans, t)).collect();
            v.as_object_mut().unwrap().insert("children".into(), Value::Array(kids));
            v
        }
        let calls = spans.iter().filter(|s| s.span_type.is_call()).count();
        let failed = spans.iter().filter(|s| s.span_type.is_call() && s.status != SpanStatus::Success).count();
        let first = spans.iter().map(|s| s.started_at).min().unwrap_or(0);
        let last = spans.iter().map(|s| s.ended_at).max().unwrap_or(0);
        let mut v = json!({
            "session_id": "s",
            "spans_flat": spans.iter().map(Span::to_trace_json).collect::<Vec<_>>(),
            "root_spans": t.roots.iter().map(|r| node(*r, spans, &t)).collect::<Vec<_>>(),
            "total_spans": spans.len(),
            "tool_calls": calls,
            "failed_calls": failed,
            "duration_ms": (last - first) as f64 / 1000.0,
        });
        v.as_object_mut().unwrap().extend(extra);
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn streamed_tree_is_byte_identical_to_the_nested_value() {
        let span = |id: &str, parent: Option<&str>, status: &str| {
            json!({"span_id": id, "parent_span_id": parent, "server_name": "gh", "tool_name": "t\"x",
                   "status": status, "started_at": "2026-03-17T12:00:00Z", "ended_at": "2026-03-17T12:00:01Z",
                   "input_args": {"q": [1, {"a": null}]}, "error": "é"})
        };
        let body = json!([
            span("root", None, "success"),
            span("c1", Some("root"), "error"),
            span("c2", Some("root"), "success"),
            span("g1", Some("c1"), "timeout"),
            span("orphan", Some("missing"), "success"),
            span("x", Some("y"), "success"),
            span("y", Some("x"), "success"),
        ]);
        let spans = decode_batch(&serde_json::to_vec(&body).unwrap()).unwrap();
        let mut extra = Map::new();
        extra.insert("health_tag".into(), json!("tool_failure"));
        extra.insert("est_cost_usd".into(), Value::Null);
        extra.insert("payloads_included".into(), json!(true));
        let streamed = session_trace("s", &spans, extra.clone()).unwrap();
        assert_eq!(String::from_utf8(streamed).unwrap(), String::from_utf8(nested(&spans, extra)).unwrap());
        let one = session_trace("s", &spans[..1], Map::new()).unwrap();
        assert_eq!(one, nested(&spans[..1], Map::new()));
    }

    #[test]
    fn a_50_000_deep_chain_is_written_whole() {
        let body: Vec<Value> = (0..50_000)
            .map(|i| {
                json!({"span_id": format!("s{i}"), "parent_span_id": (i > 0).then(|| format!("s{}", i - 1)),
                       "server_name": "gh", "tool_name": "t", "status": "success",
                       "started_at": "2026-03-17T12:00:00Z", "ended_at": "2026-03-17T12:00:01Z"})
            })
            .collect();
        let spans = decode_batch(&serde_json::to_vec(&body).unwrap()).unwrap();
        let out = session_trace("s", &spans, Map::new()).unwrap();
        assert_eq!(langsight_core::span::too_deep(std::str::from_utf8(&out).unwrap(), 100_002), None);
        assert!(langsight_core::span::too_deep(std::str::from_utf8(&out).unwrap(), 100_001).is_some());
        assert_eq!(out.windows(11).filter(|w| w == b"\"children\":").count(), 50_000);
        assert!(out.ends_with(b"}"));
    }
}
