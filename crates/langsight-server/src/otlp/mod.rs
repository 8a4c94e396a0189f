//! OTLP/HTTP trace ingest: OTLP/JSON and OTLP/protobuf (what the OpenTelemetry Collector's `otlphttp` exporter
//! sends, usually gzip-compressed) decoded into one form, then mapped to spans with the GenAI and MCP semantic
//! conventions the original reads (langsight-api.md §3.17). Spans that are neither a tool call nor an LLM call
//! (HTTP handlers, database queries…) are skipped, as in the original.

pub mod proto;

use langsight_core::span::{fix_lineage, LineageProvenance, LineageStatus, Span, SpanStatus, SpanType};
use serde_json::Value;
use std::collections::HashMap;

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    Array(Vec<Attr>),
}

impl Attr {
    fn text(&self) -> Option<String> {
        match self {
            Attr::Str(s) => Some(s.clone()),
            Attr::Int(i) => Some(i.to_string()),
            Attr::Double(d) => Some(d.to_string()),
            Attr::Bool(b) => Some(b.to_string()),
            Attr::Array(a) => a.first().and_then(Attr::text),
        }
    }

    fn int(&self) -> Option<i64> {
        match self {
            Attr::Int(i) => Some(*i),
            Attr::Double(d) if d.is_finite() => Some(*d as i64),
            Attr::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

/// One OTLP span, whatever the encoding; `attrs` holds the resource's attributes overridden by the span's.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpSpan {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    pub start_ns: u64,
    pub end_ns: u64,
    pub status_code: i32,
    pub status_message: String,
    pub attrs: HashMap<String, Attr>,
}

/// Why a body could not be read; each says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error("the body is not OTLP/protobuf (ExportTraceServiceRequest): {0}")]
    Protobuf(String),
    #[error("the body is not OTLP/JSON: {0}")]
    Json(String),
}

/// Decodes an `ExportTraceServiceRequest` in protobuf.
pub fn from_protobuf(body: &[u8]) -> Result<Vec<OtlpSpan>, OtlpError> {
    use prost::Message;
    let req = proto::ExportTraceServiceRequest::decode(body).map_err(|e| OtlpError::Protobuf(e.to_string()))?;
    fn attr(v: &proto::AnyValue) -> Option<Attr> {
        use proto::any_value::Value as V;
        Some(match v.value.as_ref()? {
            V::StringValue(s) => Attr::Str(s.clone()),
            V::BoolValue(b) => Attr::Bool(*b),
            V::IntValue(i) => Attr::Int(*i),
            V::DoubleValue(d) => Attr::Double(*d),
            V::ArrayValue(a) => Attr::Array(a.values.iter().filter_map(attr).collect()),
        })
    }
    fn attrs(into: &mut HashMap<String, Attr>, kvs: &[proto::KeyValue]) {
        for kv in kvs {
            if let Some(v) = kv.value.as_ref().and_then(attr) {
                into.insert(kv.key.clone(), v);
            }
        }
    }
    let mut out = Vec::new();
    for rs in &req.resource_spans {
        let mut base = HashMap::new();
        if let Some(r) = &rs.resource {
            attrs(&mut base, &r.attributes);
        }
        for s in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
            let mut a = base.clone();
            attrs(&mut a, &s.attributes);
            let status = s.status.clone().unwrap_or_default();
            out.push(OtlpSpan {
                trace_id: hex::encode(&s.trace_id),
                span_id: hex::encode(&s.span_id),
                parent_span_id: hex::encode(&s.parent_span_id),
                name: s.name.clone(),
                start_ns: s.start_time_unix_nano,
                end_ns: s.end_time_unix_nano,
                status_code: status.code,
                status_message: status.message,
                attrs: a,
            });
        }
    }
    Ok(out)
}

/// Decodes an `ExportTraceServiceRequest` in OTLP/JSON (ids in hex, 64-bit numbers as strings or numbers).
pub fn from_json(body: &[u8]) -> Result<Vec<OtlpSpan>, OtlpError> {
    let bad = |m: String| OtlpError::Json(m);
    let v: Value = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    fn attr(v: &Value) -> Option<Attr> {
        let (kind, inner) = v.as_object()?.iter().next()?;
        Some(match kind.as_str() {
            "stringValue" => Attr::Str(inner.as_str()?.to_string()),
            "boolValue" => Attr::Bool(inner.as_bool()?),
            "intValue" => Attr::Int(inner.as_i64().or_else(|| inner.as_str()?.parse().ok())?),
            "doubleValue" => Attr::Double(inner.as_f64().or_else(|| inner.as_str()?.parse().ok())?),
            "arrayValue" => Attr::Array(inner.get("values")?.as_array()?.iter().filter_map(attr).collect()),
            _ => return None,
        })
    }
    fn attrs(into: &mut HashMap<String, Attr>, kvs: Option<&Value>, at: &str) -> Result<(), OtlpError> {
        for (i, kv) in kvs.and_then(Value::as_array).into_iter().flatten().enumerate() {
            let key = kv.get("key").and_then(Value::as_str).ok_or_else(|| {
                OtlpError::Json(format!("{at}.attributes[{i}] has no \"key\"; every attribute needs a key"))
            })?;
            if let Some(v) = kv.get("value").and_then(attr) {
                into.insert(key.to_string(), v);
            }
        }
        Ok(())
    }
    fn nanos(v: Option<&Value>) -> u64 {
        v.and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok())).unwrap_or(0)
    }
    fn id(v: Option<&Value>) -> String {
        v.and_then(Value::as_str).unwrap_or("").to_ascii_lowercase()
    }
    let resource_spans = v
        .get("resourceSpans")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("expected an object with a \"resourceSpans\" array".into()))?;
    let mut out = Vec::new();
    for (ri, rs) in resource_spans.iter().enumerate() {
        let mut base = HashMap::new();
        attrs(&mut base, rs.pointer("/resource/attributes"), &format!("resourceSpans[{ri}].resource"))?;
        let scopes = rs.get("scopeSpans").or_else(|| rs.get("instrumentationLibrarySpans"));
        for (si, ss) in scopes.and_then(Value::as_array).into_iter().flatten().enumerate() {
            for (i, s) in ss.get("spans").and_then(Value::as_array).into_iter().flatten().enumerate() {
                let mut a = base.clone();
                attrs(&mut a, s.get("attributes"), &format!("resourceSpans[{ri}].scopeSpans[{si}].spans[{i}]"))?;
                let code = match s.pointer("/status/code") {
                    Some(Value::Number(n)) => n.as_i64().unwrap_or(0) as i32,
                    Some(Value::String(c)) if c == "STATUS_CODE_ERROR" => 2,
                    Some(Value::String(c)) if c == "STATUS_CODE_OK" => 1,
                    _ => 0,
                };
                out.push(OtlpSpan {
                    trace_id: id(s.get("traceId")),
                    span_id: id(s.get("spanId")),
                    parent_span_id: id(s.get("parentSpanId")),
                    name: s.get("name").and_then(Value::as_str).unwrap_or("").to_string(),
                    start_ns: nanos(s.get("startTimeUnixNano")),
                    end_ns: nanos(s.get("endTimeUnixNano")),
                    status_code: code,
                    status_message: s.pointer("/status/message").and_then(Value::as_str).unwrap_or("").to_string(),
                    attrs: a,
                });
            }
        }
    }
    Ok(out)
}

const LLM_MARKERS: [&str; 10] = [
    "gen_ai.prompt",
    "llm.prompts",
    "gen_ai.completion",
    "llm.completions",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.prompt_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.prompt",
    "llm.token_count.completion",
];

fn cut(s: String, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_string(),
        None => s,
    }
}

/// Maps the OTLP spans to ours, in `project` (the lineage fix-ups of the SDK path applied to the batch);
/// spans that are neither tool nor LLM calls are dropped.
pub fn to_spans(otlp: &[OtlpSpan], project: Option<&str>, now_micros: i64) -> Vec<Span> {
    let mut spans: Vec<Span> = otlp.iter().filter_map(|o| to_span(o, project, now_micros)).collect();
    fix_lineage(&mut spans);
    spans
}

fn to_span(o: &OtlpSpan, project: Option<&str>, now_micros: i64) -> Option<Span> {
    let text = |k: &str| o.attrs.get(k).and_then(Attr::text).filter(|s| !s.is_empty());
    let first = |keys: &[&str]| keys.iter().find_map(|k| text(k));
    let int = |keys: &[&str]| keys.iter().find_map(|k| o.attrs.get(*k).and_then(Attr::int));
    // `mcp.<server>.<tool>` span names.
    let (name_server, name_tool) = match o.name.strip_prefix("mcp.").and_then(|r| r.split_once('.')) {
        Some((server, tool)) if !server.is_empty() && !tool.is_empty() => (Some(server), Some(tool)),
        _ => (None, None),
    };
    let is_llm = LLM_MARKERS.iter().any(|k| o.attrs.contains_key(*k));
    let model = first(&["gen_ai.request.model", "llm.model_name", "gen_ai.response.model"]);
    let (tool_name, span_type) = match first(&["gen_ai.tool.name", "mcp.tool.name"]).or(name_tool.map(String::from)) {
        Some(tool) => (tool, SpanType::ToolCall),
        None if is_llm => (format!("generate/{}", model.as_deref().unwrap_or("llm")), SpanType::Agent),
        None => return None,
    };
    let server_name = first(&["mcp.server.name", "gen_ai.system"])
        .or(name_server.map(String::from))
        .unwrap_or_else(|| if span_type == SpanType::Agent { "llm".into() } else { "unknown".into() });
    let started_at = if o.start_ns > 0 { (o.start_ns / 1_000) as i64 } else { now_micros };
    let ended_at = if o.end_ns > 0 { (o.end_ns / 1_000) as i64 } else { started_at };
    let status = match o.status_code {
        2 if o.status_message.to_lowercase().contains("timeout") => SpanStatus::Timeout,
        2 => SpanStatus::Error,
        _ => SpanStatus::Success,
    };
    let finish_reason = o.attrs.get("gen_ai.response.finish_reasons").and_then(Attr::text).map(|s| s.to_lowercase());
    let nonempty = |s: &String| (!s.is_empty()).then(|| s.clone());
    Some(Span {
        span_id: nonempty(&o.span_id).unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        parent_span_id: nonempty(&o.parent_span_id),
        span_type,
        trace_id: nonempty(&o.trace_id),
        session_id: first(&["session.id", "gen_ai.conversation.id"]).map(|s| cut(s, 256)),
        server_name: cut(server_name, 256),
        tool_name: cut(tool_name, 512),
        started_at,
        ended_at,
        latency_ms: ((ended_at - started_at) as f64 / 10.0).round() / 100.0,
        status,
        error: (status != SpanStatus::Success).then(|| cut(o.status_message.clone(), 8192)).filter(|e| !e.is_empty()),
        agent_name: first(&["gen_ai.agent.name", "gen_ai.agent.id"]).map(|s| cut(s, 256)),
        input_json: None,
        output_json: None,
        llm_input: None,
        llm_output: None,
        replay_of: None,
        project_id: project.map(String::from),
        input_tokens: int(&["gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"]),
        output_tokens: int(&[
            "gen_ai.usage.output_tokens",
            "gen_ai.usage.completion_tokens",
            "llm.token_count.completion",
        ]),
        model_id: model,
        finish_reason,
        cache_read_tokens: int(&["gen_ai.usage.cache_read_input_tokens"]),
        cache_creation_tokens: int(&["gen_ai.usage.cache_creation_input_tokens"]),
        thinking_tokens: None,
        target_agent_name: None,
        lineage_provenance: LineageProvenance::InferredOtel,
        lineage_status: LineageStatus::Complete,
        schema_version: "1.0".into(),
    })
}
