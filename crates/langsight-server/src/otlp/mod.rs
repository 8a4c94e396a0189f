//! OTLP/HTTP trace ingest: OTLP/JSON and OTLP/protobuf (what the OpenTelemetry Collector's `otlphttp` exporter
//! sends, usually gzip-compressed) decoded into one form, then mapped to spans with the GenAI and MCP semantic
//! conventions the original reads (langsight-api.md §3.17). Spans that are neither a tool call nor an LLM call
//! (HTTP handlers, database queries…) are skipped, as in the original.

pub mod proto;
mod wire;

use langsight_core::span::{
    fix_lineage, LineageProvenance, LineageStatus, Span, SpanStatus, SpanType, MAX_AGENT_NAME, MAX_ERROR, MAX_ID,
    MAX_MODEL, MAX_SERVER_NAME, MAX_TOOL_NAME,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

/// Most OTLP spans kept (tool and LLM calls) from one request; more is refused with a message to lower the
/// exporter's batch size. Each kept span costs about a kilobyte however small its encoding (an 11-byte
/// protobuf span becomes a full stored span), so without a cap a 10 MiB body of tiny spans would cost a
/// gigabyte. The Collector's default batch is 8,192 spans of every kind.
pub const MAX_OTLP_SPANS: usize = 20_000;
/// Longest attribute text kept (the longest field an attribute maps to is a tool name, 512 characters).
pub const MAX_ATTR_TEXT: usize = MAX_TOOL_NAME;
/// Array attributes are reduced to their first element (all the mapping reads), nested at most this deep.
const MAX_ARRAY_DEPTH: usize = 4;

/// An attribute value. Strings are cut to [`MAX_ATTR_TEXT`] characters and arrays keep only their first
/// element (nested at most a few levels), so an attribute costs a bounded amount however large it was sent.
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

/// The attribute keys the mapping reads; every other attribute is dropped as it is decoded.
const KNOWN_KEYS: [&str; 24] = [
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
    "gen_ai.request.model",
    "llm.model_name",
    "gen_ai.response.model",
    "gen_ai.tool.name",
    "mcp.tool.name",
    "mcp.server.name",
    "gen_ai.system",
    "session.id",
    "gen_ai.conversation.id",
    "gen_ai.agent.name",
    "gen_ai.agent.id",
    "gen_ai.response.finish_reasons",
    "gen_ai.usage.cache_read_input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
];

fn known(key: &str) -> bool {
    KNOWN_KEYS.contains(&key)
}

/// The first `max` characters of `s`, copied.
fn cut_str(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

/// Attributes by key, as the mapping reads them.
pub type Attrs = HashMap<String, Attr>;

/// One OTLP span, whatever the encoding: its own attributes in `attrs` and its resource's, shared by every
/// span of that resource, in `resource` (a span's attribute wins over the resource's). Only the attributes
/// the mapping reads are kept, and text is cut to the limits of the fields it maps to.
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
    pub attrs: Attrs,
    pub resource: Arc<Attrs>,
}

impl OtlpSpan {
    fn attr(&self, key: &str) -> Option<&Attr> {
        self.attrs.get(key).or_else(|| self.resource.get(key))
    }

    fn has(&self, key: &str) -> bool {
        self.attrs.contains_key(key) || self.resource.contains_key(key)
    }

    /// Whether the mapping keeps this span (a tool call or an LLM call), decided while decoding so the
    /// spans that are dropped (HTTP handlers, database queries…) are never held.
    fn kept(&self) -> bool {
        let text = |k: &str| self.attr(k).and_then(Attr::text).is_some_and(|s| !s.is_empty());
        text("gen_ai.tool.name")
            || text("mcp.tool.name")
            || name_parts(&self.name).is_some()
            || LLM_MARKERS.iter().any(|k| self.has(k))
    }
}

/// Why a body could not be read; each says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error("the body is not OTLP/protobuf (ExportTraceServiceRequest): {0}")]
    Protobuf(String),
    #[error("the body is not OTLP/JSON: {0}")]
    Json(String),
    #[error(
        "the request holds more than {MAX_OTLP_SPANS} tool and LLM spans; send smaller batches (in the \
         Collector, set the batch processor's send_batch_max_size)"
    )]
    TooManySpans,
}

/// Collects kept spans, refusing more than [`MAX_OTLP_SPANS`].
fn keep(out: &mut Vec<OtlpSpan>, span: OtlpSpan) -> Result<(), OtlpError> {
    if span.kept() {
        if out.len() >= MAX_OTLP_SPANS {
            return Err(OtlpError::TooManySpans);
        }
        out.push(span);
    }
    Ok(())
}

/// Decodes an `ExportTraceServiceRequest` in protobuf into the spans the mapping keeps. The message is walked
/// in place (see [`wire`]) rather than decoded into structs: structs cost far more than their encoding (an
/// empty span is 2 bytes on the wire and ~170 as a struct), so a small body could take gigabytes. It accepts
/// and refuses exactly what prost's decoder for [`proto::ExportTraceServiceRequest`] does.
pub fn from_protobuf(body: &[u8]) -> Result<Vec<OtlpSpan>, OtlpError> {
    let mut out = Vec::new();
    wire::decode_request(body, &mut |span| keep(&mut out, span)).map_err(|e| match e {
        wire::Error::Stop(e) => e,
        wire::Error::Wire(m) => OtlpError::Protobuf(m),
    })?;
    Ok(out)
}

/// A string borrowed from the body when it has no escapes.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

/// Decodes `raw` as `T`, `None` when it is not one (OTLP/JSON readers are lenient about types).
fn parse<'a, T: Deserialize<'a>>(raw: Option<&'a RawValue>) -> Option<T> {
    raw.and_then(|r| serde_json::from_str(r.get()).ok())
}

fn text<'a>(raw: Option<&'a RawValue>) -> Option<Cow<'a, str>> {
    parse::<Text>(raw).map(|t| t.0)
}

/// Calls `f` on each element of the JSON array `raw` (absent or not an array: none), one at a time, so the
/// elements are never held together.
fn each<'a, T: Deserialize<'a>>(
    raw: Option<&'a RawValue>,
    mut f: impl FnMut(usize, T) -> Result<(), OtlpError>,
) -> Result<(), OtlpError> {
    use serde::de::{Deserializer, SeqAccess, Visitor};
    struct Each<'f, T, F> {
        f: &'f mut F,
        stopped: &'f mut Option<OtlpError>,
        item: std::marker::PhantomData<T>,
    }
    impl<'de, T: Deserialize<'de>, F: FnMut(usize, T) -> Result<(), OtlpError>> Visitor<'de> for Each<'_, T, F> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut i = 0;
            while let Some(item) = seq.next_element::<T>()? {
                if let Err(e) = (self.f)(i, item) {
                    *self.stopped = Some(e);
                    return Err(serde::de::Error::custom("stopped"));
                }
                i += 1;
            }
            Ok(())
        }
    }
    let Some(raw) = raw.filter(|r| r.get().starts_with('[')) else { return Ok(()) };
    let mut stopped = None;
    let mut de = serde_json::Deserializer::from_str(raw.get());
    let result = (&mut de).deserialize_seq(Each { f: &mut f, stopped: &mut stopped, item: std::marker::PhantomData });
    match (result, stopped) {
        (_, Some(e)) => Err(e),
        (Err(e), None) => Err(OtlpError::Json(e.to_string())),
        (Ok(()), None) => Ok(()),
    }
}

/// An OTLP/JSON `AnyValue`, reduced like [`Attr`]: the first of `arrayValue`, `boolValue`, `doubleValue`,
/// `intValue` and `stringValue` present; `None` when none is, or its value has the wrong type.
fn json_attr(raw: &RawValue, depth: usize) -> Option<Attr> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Any<'a> {
        #[serde(borrow)]
        array_value: Option<&'a RawValue>,
        #[serde(borrow)]
        bool_value: Option<&'a RawValue>,
        #[serde(borrow)]
        double_value: Option<&'a RawValue>,
        #[serde(borrow)]
        int_value: Option<&'a RawValue>,
        #[serde(borrow)]
        string_value: Option<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct Values<'a> {
        #[serde(borrow)]
        values: Option<&'a RawValue>,
    }
    let any: Any = serde_json::from_str(raw.get()).ok()?;
    if any.array_value.is_some() {
        let values = parse::<Values>(any.array_value)?.values;
        if depth + 1 >= MAX_ARRAY_DEPTH {
            return Some(Attr::Array(Vec::new()));
        }
        // The first element that has a value; the others are skipped without being kept.
        let mut first = None;
        each::<&RawValue>(values, |_, v| {
            if first.is_none() {
                first = json_attr(v, depth + 1);
            }
            Ok(())
        })
        .ok()?;
        return Some(Attr::Array(first.into_iter().collect()));
    }
    if any.bool_value.is_some() {
        return parse::<bool>(any.bool_value).map(Attr::Bool);
    }
    if any.double_value.is_some() {
        return parse::<f64>(any.double_value).or_else(|| text(any.double_value)?.parse().ok()).map(Attr::Double);
    }
    if any.int_value.is_some() {
        return parse::<i64>(any.int_value).or_else(|| text(any.int_value)?.parse().ok()).map(Attr::Int);
    }
    text(any.string_value).map(|s| Attr::Str(cut_str(&s, MAX_ATTR_TEXT)))
}

/// Reads an OTLP/JSON `attributes` array into `into`, keeping only the keys the mapping reads.
fn json_attrs(into: &mut Attrs, kvs: Option<&RawValue>, at: &dyn Fn() -> String) -> Result<(), OtlpError> {
    #[derive(Deserialize)]
    struct KeyValue<'a> {
        #[serde(borrow)]
        key: Option<&'a RawValue>,
        #[serde(borrow)]
        value: Option<&'a RawValue>,
    }
    each::<Option<KeyValue>>(kvs, |i, kv| {
        let key = kv.as_ref().and_then(|kv| text(kv.key)).ok_or_else(|| {
            OtlpError::Json(format!("{}.attributes[{i}] has no \"key\"; every attribute needs a key", at()))
        })?;
        if known(&key) {
            if let Some(v) = kv.and_then(|kv| kv.value).and_then(|v| json_attr(v, 0)) {
                into.insert(key.into_owned(), v);
            }
        }
        Ok(())
    })
}

/// Decodes an `ExportTraceServiceRequest` in OTLP/JSON (ids in hex, 64-bit numbers as strings or numbers) into
/// the spans the mapping keeps. The body is walked level by level over borrowed slices, one span at a time,
/// never as a `serde_json::Value` tree (which costs 10–20 times the text), so memory follows the kept spans.
pub fn from_json(body: &[u8]) -> Result<Vec<OtlpSpan>, OtlpError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Request<'a> {
        #[serde(borrow)]
        resource_spans: Option<&'a RawValue>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ResourceSpans<'a> {
        #[serde(borrow)]
        resource: Option<&'a RawValue>,
        #[serde(borrow)]
        scope_spans: Option<&'a RawValue>,
        #[serde(borrow)]
        instrumentation_library_spans: Option<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct WithAttributes<'a> {
        #[serde(borrow)]
        attributes: Option<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct WithSpans<'a> {
        #[serde(borrow)]
        spans: Option<&'a RawValue>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct JsonSpan<'a> {
        #[serde(borrow)]
        trace_id: Option<&'a RawValue>,
        #[serde(borrow)]
        span_id: Option<&'a RawValue>,
        #[serde(borrow)]
        parent_span_id: Option<&'a RawValue>,
        #[serde(borrow)]
        name: Option<&'a RawValue>,
        #[serde(borrow)]
        start_time_unix_nano: Option<&'a RawValue>,
        #[serde(borrow)]
        end_time_unix_nano: Option<&'a RawValue>,
        #[serde(borrow)]
        attributes: Option<&'a RawValue>,
        #[serde(borrow)]
        status: Option<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct Status<'a> {
        #[serde(borrow)]
        code: Option<&'a RawValue>,
        #[serde(borrow)]
        message: Option<&'a RawValue>,
    }
    fn nanos(v: Option<&RawValue>) -> u64 {
        parse::<u64>(v).or_else(|| text(v)?.parse().ok()).unwrap_or(0)
    }
    fn id(v: Option<&RawValue>) -> String {
        cut_str(&text(v).unwrap_or_default(), MAX_ID).to_ascii_lowercase()
    }
    let bad = |m: String| OtlpError::Json(m);
    let request: Request = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    let resource_spans = request
        .resource_spans
        .filter(|r| r.get().starts_with('['))
        .ok_or_else(|| bad("expected an object with a \"resourceSpans\" array".into()))?;
    let mut out = Vec::new();
    each::<Option<ResourceSpans>>(Some(resource_spans), |ri, rs| {
        let Some(rs) = rs else { return Ok(()) };
        let mut base = Attrs::new();
        let resource_attrs = parse::<WithAttributes>(rs.resource).and_then(|r| r.attributes);
        json_attrs(&mut base, resource_attrs, &|| format!("resourceSpans[{ri}].resource"))?;
        let base = Arc::new(base);
        each::<Option<WithSpans>>(rs.scope_spans.or(rs.instrumentation_library_spans), |si, ss| {
            each::<Option<JsonSpan>>(ss.and_then(|ss| ss.spans), |i, s| {
                let Some(s) = s else { return Ok(()) };
                let mut attrs = Attrs::new();
                json_attrs(&mut attrs, s.attributes, &|| format!("resourceSpans[{ri}].scopeSpans[{si}].spans[{i}]"))?;
                let status = parse::<Status>(s.status);
                let code = match status.as_ref().and_then(|st| st.code) {
                    Some(c) if c.get().starts_with('"') => match text(Some(c)).as_deref() {
                        Some("STATUS_CODE_ERROR") => 2,
                        Some("STATUS_CODE_OK") => 1,
                        _ => 0,
                    },
                    Some(c) => parse::<serde_json::Number>(Some(c)).and_then(|n| n.as_i64()).unwrap_or(0) as i32,
                    None => 0,
                };
                let span = OtlpSpan {
                    trace_id: id(s.trace_id),
                    span_id: id(s.span_id),
                    parent_span_id: id(s.parent_span_id),
                    name: cut_str(&text(s.name).unwrap_or_default(), MAX_NAME),
                    start_ns: nanos(s.start_time_unix_nano),
                    end_ns: nanos(s.end_time_unix_nano),
                    status_code: code,
                    status_message: cut_str(&status.and_then(|st| text(st.message)).unwrap_or_default(), MAX_ERROR),
                    attrs,
                    resource: base.clone(),
                };
                keep(&mut out, span)
            })
        })
    })?;
    Ok(out)
}

/// Longest span name kept: `mcp.<server>.<tool>` at the server and tool limits.
const MAX_NAME: usize = 4 + MAX_SERVER_NAME + 1 + MAX_TOOL_NAME;

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

/// `mcp.<server>.<tool>` span names.
fn name_parts(name: &str) -> Option<(&str, &str)> {
    match name.strip_prefix("mcp.").and_then(|r| r.split_once('.')) {
        Some((server, tool)) if !server.is_empty() && !tool.is_empty() => Some((server, tool)),
        _ => None,
    }
}

/// Maps the OTLP spans to ours, in `project` (the lineage fix-ups of the SDK path applied to the batch);
/// spans that are neither tool nor LLM calls are dropped. Every text is cut to the SDK route's limit for its
/// field: an exporter cannot act on a 422 per span, and the original cut OTLP names the same way.
pub fn to_spans(otlp: &[OtlpSpan], project: Option<&str>, now_micros: i64) -> Vec<Span> {
    let mut spans: Vec<Span> = otlp.iter().filter_map(|o| to_span(o, project, now_micros)).collect();
    fix_lineage(&mut spans);
    spans
}

fn to_span(o: &OtlpSpan, project: Option<&str>, now_micros: i64) -> Option<Span> {
    let text = |k: &str| o.attr(k).and_then(Attr::text).filter(|s| !s.is_empty());
    let first = |keys: &[&str], max: usize| keys.iter().find_map(|k| text(k)).map(|s| cut_str(&s, max));
    let int = |keys: &[&str]| keys.iter().find_map(|k| o.attr(k).and_then(Attr::int)).filter(|n| *n >= 0);
    let (name_server, name_tool) = match name_parts(&o.name) {
        Some((server, tool)) => (Some(server), Some(tool)),
        None => (None, None),
    };
    let is_llm = LLM_MARKERS.iter().any(|k| o.has(k));
    let model = first(&["gen_ai.request.model", "llm.model_name", "gen_ai.response.model"], MAX_MODEL);
    let (tool_name, span_type) =
        match first(&["gen_ai.tool.name", "mcp.tool.name"], MAX_TOOL_NAME).or(name_tool.map(String::from)) {
            Some(tool) => (tool, SpanType::ToolCall),
            None if is_llm => (format!("generate/{}", model.as_deref().unwrap_or("llm")), SpanType::Agent),
            None => return None,
        };
    let server_name = first(&["mcp.server.name", "gen_ai.system"], MAX_SERVER_NAME)
        .or(name_server.map(String::from))
        .unwrap_or_else(|| if span_type == SpanType::Agent { "llm".into() } else { "unknown".into() });
    let started_at = if o.start_ns > 0 { (o.start_ns / 1_000) as i64 } else { now_micros };
    let ended_at = if o.end_ns > 0 { (o.end_ns / 1_000) as i64 } else { started_at };
    let status = match o.status_code {
        2 if o.status_message.to_lowercase().contains("timeout") => SpanStatus::Timeout,
        2 => SpanStatus::Error,
        _ => SpanStatus::Success,
    };
    let finish_reason =
        o.attr("gen_ai.response.finish_reasons").and_then(Attr::text).map(|s| cut_str(&s, MAX_MODEL).to_lowercase());
    let id = |s: &String| (!s.is_empty()).then(|| cut_str(s, MAX_ID));
    Some(Span {
        span_id: id(&o.span_id).unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        parent_span_id: id(&o.parent_span_id),
        span_type,
        trace_id: id(&o.trace_id),
        session_id: first(&["session.id", "gen_ai.conversation.id"], MAX_ID),
        server_name: cut_str(&server_name, MAX_SERVER_NAME),
        tool_name: cut_str(&tool_name, MAX_TOOL_NAME),
        started_at,
        ended_at,
        latency_ms: ((ended_at - started_at) as f64 / 10.0).round() / 100.0,
        status,
        error: (status != SpanStatus::Success).then(|| cut_str(&o.status_message, MAX_ERROR)).filter(|e| !e.is_empty()),
        agent_name: first(&["gen_ai.agent.name", "gen_ai.agent.id"], MAX_AGENT_NAME),
        input_json: None,
        output_json: None,
        llm_input: None,
        llm_output: None,
        replay_of: None,
        project_id: project.map(|p| cut_str(p, MAX_ID)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// xorshift: deterministic, no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    fn any(rng: &mut Rng, depth: usize) -> proto::AnyValue {
        use proto::any_value::Value as V;
        let value = match rng.below(if depth > 3 { 5 } else { 6 }) {
            0 => None,
            1 => Some(V::StringValue(["claude", "", "é", "mcp.a.b"][rng.below(4)].into())),
            2 => Some(V::BoolValue(rng.below(2) == 1)),
            3 => Some(V::IntValue(rng.next() as i64 % 1000)),
            4 => Some(V::DoubleValue(rng.below(100) as f64 / 3.0)),
            _ => Some(V::ArrayValue(proto::ArrayValue {
                values: (0..rng.below(3)).map(|_| any(rng, depth + 1)).collect(),
            })),
        };
        proto::AnyValue { value }
    }

    fn request(rng: &mut Rng) -> proto::ExportTraceServiceRequest {
        let keys =
            ["gen_ai.tool.name", "mcp.server.name", "session.id", "gen_ai.prompt", "other", "gen_ai.request.model"];
        let kvs = |rng: &mut Rng| -> Vec<proto::KeyValue> {
            (0..rng.below(4))
                .map(|_| proto::KeyValue {
                    key: keys[rng.below(keys.len())].into(),
                    value: (rng.below(5) > 0).then(|| any(rng, 0)),
                })
                .collect()
        };
        proto::ExportTraceServiceRequest {
            resource_spans: (0..1 + rng.below(2))
                .map(|_| proto::ResourceSpans {
                    resource: (rng.below(2) == 1).then(|| proto::Resource { attributes: kvs(rng) }),
                    scope_spans: vec![proto::ScopeSpans {
                        spans: (0..rng.below(4))
                            .map(|i| proto::Span {
                                trace_id: vec![1; 16],
                                span_id: vec![i as u8; 8],
                                parent_span_id: vec![],
                                name: ["mcp.gh.search", "GET /", ""][rng.below(3)].into(),
                                start_time_unix_nano: 1_700_000_000_000_000_000,
                                end_time_unix_nano: 1_700_000_001_000_000_000,
                                attributes: kvs(rng),
                                status: (rng.below(2) == 1)
                                    .then(|| proto::Status { message: "timeout".into(), code: rng.below(3) as i32 }),
                            })
                            .collect(),
                    }],
                })
                .collect(),
        }
    }

    /// The in-place walk accepts and refuses exactly what prost does, and reads the same values.
    #[test]
    fn the_protobuf_walk_agrees_with_prost() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..30_000 {
            let req = request(&mut rng);
            let mut bytes = req.encode_to_vec();
            if round % 2 == 1 && !bytes.is_empty() {
                for _ in 0..1 + rng.below(3) {
                    let at = rng.below(bytes.len());
                    match rng.below(3) {
                        0 => bytes[at] = rng.next() as u8,
                        1 => bytes.truncate(at),
                        _ => bytes.insert(at, rng.next() as u8),
                    }
                    if bytes.is_empty() {
                        break;
                    }
                }
            }
            let ours = from_protobuf(&bytes);
            let prost = proto::ExportTraceServiceRequest::decode(bytes.as_slice());
            assert_eq!(ours.is_ok(), prost.is_ok(), "round {round}: {bytes:?} ours {:?}", ours.as_ref().err());
        }
        // Nesting around prost's recursion limit, through arrays and through groups in unknown fields.
        for depth in 85..100 {
            let mut v = proto::AnyValue { value: Some(proto::any_value::Value::StringValue("x".into())) };
            for _ in 0..depth {
                v = proto::AnyValue {
                    value: Some(proto::any_value::Value::ArrayValue(proto::ArrayValue { values: vec![v] })),
                };
            }
            let req = proto::ExportTraceServiceRequest {
                resource_spans: vec![proto::ResourceSpans {
                    resource: Some(proto::Resource {
                        attributes: vec![proto::KeyValue { key: "gen_ai.system".into(), value: Some(v) }],
                    }),
                    scope_spans: vec![],
                }],
            };
            let bytes = req.encode_to_vec();
            let prost = proto::ExportTraceServiceRequest::decode(bytes.as_slice());
            assert_eq!(from_protobuf(&bytes).is_ok(), prost.is_ok(), "arrays nested {depth} deep");
        }
        for depth in 95..103 {
            // Field 99 as nested groups at the top level.
            let mut bytes = Vec::new();
            bytes.extend(std::iter::repeat_n(0x9b_u8, depth).flat_map(|b| [b, 0x06]));
            bytes.extend(std::iter::repeat_n([0x9c_u8, 0x06], depth).flatten());
            let prost = proto::ExportTraceServiceRequest::decode(bytes.as_slice());
            assert_eq!(from_protobuf(&bytes).is_ok(), prost.is_ok(), "groups nested {depth} deep");
        }
    }

    /// The attack of issue 16: one large resource attribute and thousands of spans. The resource's attributes
    /// are decoded once and shared, and an attribute the mapping does not read is never kept.
    #[test]
    fn resource_attributes_are_shared_not_copied() {
        let big = "x".repeat(500_000);
        let body = serde_json::json!({"resourceSpans": [{
            "resource": {"attributes": [{"key": "huge", "value": {"stringValue": big}},
                                        {"key": "gen_ai.system", "value": {"stringValue": big}}]},
            "scopeSpans": [{"spans": (0..2_000).map(|i| serde_json::json!({"name": format!("mcp.s.t{i}"), "spanId": format!("{i:016x}")})).collect::<Vec<_>>()}]
        }]});
        let spans = from_json(&serde_json::to_vec(&body).unwrap()).unwrap();
        assert_eq!(spans.len(), 2_000);
        assert!(spans.windows(2).all(|w| Arc::ptr_eq(&w[0].resource, &w[1].resource)));
        assert_eq!(spans[0].resource.len(), 1, "only attributes the mapping reads are kept");
        let mapped = to_spans(&spans, None, 0);
        assert_eq!(mapped[0].server_name.chars().count(), MAX_SERVER_NAME);
        // Dropped spans (neither tool nor LLM calls) are not held either.
        let empty =
            serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": vec![serde_json::json!({}); 5_000]}]}]});
        assert!(from_json(&serde_json::to_vec(&empty).unwrap()).unwrap().is_empty());
    }

    #[test]
    fn too_many_kept_spans_are_refused_with_what_to_do() {
        let spans: Vec<proto::Span> =
            (0..=MAX_OTLP_SPANS).map(|_| proto::Span { name: "mcp.a.b".into(), ..Default::default() }).collect();
        let req = proto::ExportTraceServiceRequest {
            resource_spans: vec![proto::ResourceSpans {
                resource: None,
                scope_spans: vec![proto::ScopeSpans { spans }],
            }],
        };
        let e = from_protobuf(&req.encode_to_vec()).unwrap_err();
        assert!(e.to_string().contains("send smaller batches"), "{e}");
    }
}
