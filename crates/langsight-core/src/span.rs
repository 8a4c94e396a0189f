//! Spans: one per tool call, LLM call, handoff or workflow step.
//!
//! [`decode_batch`] turns the body of `POST /api/traces/spans` into validated [`Span`]s, or a [`SpanRejection`]
//! that says exactly which field of which span to fix. The rules are the original's (`ToolCallSpan` in its
//! SDK plus the ingest route): the same required fields, defaults, length limits and session-id rule, so its
//! SDK's batches are accepted and rejected exactly as before. The decoder never panics, whatever the bytes.

use crate::time::{parse_timestamp_number, parse_timestamp_str, Micros};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use std::fmt;

/// Maximum characters (Unicode code points, as pydantic counts) per field. The first five are the original's;
/// the original left every other text field unbounded, so one span could carry a multi-megabyte id that then
/// sat in every index, rollup and live subscriber's buffer. The added limits are far above anything an SDK or
/// exporter sends (ids are UUIDs or 32 hex digits, project ids UUIDs, model names a few dozen characters).
pub const MAX_SERVER_NAME: usize = 256;
pub const MAX_TOOL_NAME: usize = 512;
pub const MAX_AGENT_NAME: usize = 256;
pub const MAX_ERROR: usize = 8192;
pub const MAX_PAYLOAD: usize = 131_072;
/// Ids: `span_id`, `parent_span_id`, `trace_id`, `session_id`, `replay_of`, `project_id`.
pub const MAX_ID: usize = 256;
/// `model_id` and `finish_reason`.
pub const MAX_MODEL: usize = 256;
/// `schema_version`.
pub const MAX_SCHEMA_VERSION: usize = 64;
/// Deepest nesting of `input_args` (objects and arrays). Payloads are stored as text and parsed again by
/// readers with recursive parsers (serde_json stops at 128, browsers and Python at a few hundred to a
/// thousand), so a deeper payload is refused where the sender can still be told.
pub const MAX_PAYLOAD_DEPTH: usize = 64;

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? } default $default:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name { $(#[serde(rename = $text)] $variant),+ }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str { match self { $($name::$variant => $text),+ } }
            pub fn parse(s: &str) -> Option<Self> { match s { $($text => Some($name::$variant),)+ _ => None } }
            /// pydantic's wording for a bad literal: `Input should be 'a', 'b' or 'c'`.
            pub fn expected() -> String {
                let v: Vec<String> = Self::ALL.iter().map(|x| format!("'{}'", x.as_str())).collect();
                match v.split_last() {
                    Some((last, rest)) if !rest.is_empty() => format!("Input should be {} or {}", rest.join(", "), last),
                    _ => format!("Input should be {}", v.join("")),
                }
            }
        }
        impl Default for $name { fn default() -> Self { $name::$default } }
    };
}

string_enum!(
    /// What a span records.
    SpanType { ToolCall => "tool_call", Node => "node", Agent => "agent", Handoff => "handoff",
      LlmIntent => "llm_intent", UserMessage => "user_message", Topology => "topology" } default ToolCall);
string_enum!(
    /// How the call ended. `prevented` spans are calls a guard (loop, budget, circuit breaker) stopped.
    SpanStatus { Success => "success", Error => "error", Timeout => "timeout", Prevented => "prevented" } default Success);
string_enum!(
    /// How the span's parent link was established.
    LineageProvenance { Explicit => "explicit", DerivedParent => "derived_parent", DerivedTiming => "derived_timing",
      DerivedLegacy => "derived_legacy", InferredOtel => "inferred_otel" } default Explicit);
string_enum!(
    /// Whether the span's parent link could be checked.
    LineageStatus { Complete => "complete", Incomplete => "incomplete", Orphaned => "orphaned",
      InvalidParent => "invalid_parent", SessionMismatch => "session_mismatch", TraceMismatch => "trace_mismatch" } default Complete);

impl SpanType {
    /// Spans counted as "tool calls" in session summaries.
    pub fn is_call(self) -> bool {
        matches!(self, SpanType::ToolCall | SpanType::Node)
    }
}

/// A validated span, as stored. Optional text fields are `None` when absent or null.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub span_type: SpanType,
    pub trace_id: Option<String>,
    pub session_id: Option<String>,
    pub server_name: String,
    pub tool_name: String,
    pub started_at: Micros,
    pub ended_at: Micros,
    pub latency_ms: f64,
    pub status: SpanStatus,
    pub error: Option<String>,
    pub agent_name: Option<String>,
    /// `input_args` as JSON text (the original stores `json.dumps(input_args)` in `input_json`).
    pub input_json: Option<String>,
    /// `output_result` (stored as `output_json` by the original).
    pub output_json: Option<String>,
    pub llm_input: Option<String>,
    pub llm_output: Option<String>,
    pub replay_of: Option<String>,
    pub project_id: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub model_id: Option<String>,
    pub finish_reason: Option<String>,
    pub cache_read_tokens: Option<i64>,
    pub cache_creation_tokens: Option<i64>,
    pub thinking_tokens: Option<i64>,
    pub target_agent_name: Option<String>,
    pub lineage_provenance: LineageProvenance,
    pub lineage_status: LineageStatus,
    pub schema_version: String,
}

impl Span {
    /// The non-empty session id, if any (empty strings are "no session" as in the original).
    pub fn session(&self) -> Option<&str> {
        self.session_id.as_deref().filter(|s| !s.is_empty())
    }

    /// The non-empty project id, if any.
    pub fn project(&self) -> Option<&str> {
        self.project_id.as_deref().filter(|s| !s.is_empty())
    }

    /// The span as the original's trace endpoint returns it (a ClickHouse row: absent ids are `""`, payloads
    /// and errors `null`).
    pub fn to_trace_json(&self) -> Value {
        let s = |v: &Option<String>| v.clone().unwrap_or_default();
        json!({
            "span_id": self.span_id,
            "parent_span_id": s(&self.parent_span_id),
            "span_type": self.span_type.as_str(),
            "server_name": self.server_name,
            "tool_name": self.tool_name,
            "agent_name": s(&self.agent_name),
            "started_at": crate::time::iso_offset(self.started_at),
            "ended_at": crate::time::iso_offset(self.ended_at),
            "latency_ms": self.latency_ms,
            "status": self.status.as_str(),
            "error": self.error,
            "trace_id": s(&self.trace_id),
            "session_id": s(&self.session_id),
            "input_json": self.input_json,
            "output_json": self.output_json,
            "llm_input": self.llm_input,
            "llm_output": self.llm_output,
            "replay_of": s(&self.replay_of),
            "project_id": s(&self.project_id),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "model_id": s(&self.model_id),
            "target_agent_name": s(&self.target_agent_name),
            "lineage_provenance": self.lineage_provenance.as_str(),
            "lineage_status": self.lineage_status.as_str(),
            "schema_version": self.schema_version,
            "finish_reason": s(&self.finish_reason),
            "cache_read_tokens": self.cache_read_tokens,
            "cache_creation_tokens": self.cache_creation_tokens,
            "thinking_tokens": self.thinking_tokens,
        })
    }
}

/// One problem with the request body, in FastAPI's validation-error shape
/// (`{"type", "loc", "msg", "input"}`), so clients that parse the original's 422s parse ours.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub loc: Vec<Value>,
    pub msg: String,
    pub input: Value,
}

/// Why a batch was refused. Every variant is answered with 422 and the whole batch is rejected.
#[derive(Debug, Clone, PartialEq)]
pub enum SpanRejection {
    /// Field-level problems (missing, wrong type, too long, bad literal, unparsable JSON).
    Invalid(Vec<FieldError>),
    /// A session id that is not a UUID; the original answers with this exact string detail.
    BadSessionId(String),
}

impl SpanRejection {
    /// The `detail` value of the 422 body.
    pub fn detail(&self) -> Value {
        match self {
            SpanRejection::Invalid(errors) => json!(errors),
            SpanRejection::BadSessionId(value) => Value::String(format!(
                "session_id must be a UUID4 (hex or standard form), got '{value}'. \
                 Use LangSightClient.wrap() / wrap_llm() to auto-generate a valid session_id."
            )),
        }
    }
}

/// Wire form of a span; borrowed nowhere so a decode error can never leave half a batch behind.
#[derive(Deserialize)]
struct WireSpan {
    #[serde(default)]
    span_id: Option<String>,
    #[serde(default)]
    parent_span_id: Option<String>,
    #[serde(default, deserialize_with = "literal")]
    span_type: Option<SpanType>,
    #[serde(default)]
    trace_id: Option<String>,
    #[serde(default)]
    session_id: Option<String>,
    server_name: String,
    tool_name: String,
    #[serde(deserialize_with = "timestamp")]
    started_at: Micros,
    #[serde(deserialize_with = "timestamp")]
    ended_at: Micros,
    #[serde(default)]
    latency_ms: Option<f64>,
    #[serde(deserialize_with = "required_literal")]
    status: SpanStatus,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    agent_name: Option<String>,
    #[serde(default)]
    input_args: Option<Box<RawValue>>,
    #[serde(default)]
    output_result: Option<String>,
    #[serde(default)]
    llm_input: Option<String>,
    #[serde(default)]
    llm_output: Option<String>,
    #[serde(default)]
    replay_of: Option<String>,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    input_tokens: Option<i64>,
    #[serde(default)]
    output_tokens: Option<i64>,
    #[serde(default)]
    model_id: Option<String>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    cache_read_tokens: Option<i64>,
    #[serde(default)]
    cache_creation_tokens: Option<i64>,
    #[serde(default)]
    thinking_tokens: Option<i64>,
    #[serde(default)]
    target_agent_name: Option<String>,
    #[serde(default, deserialize_with = "literal")]
    lineage_provenance: Option<LineageProvenance>,
    #[serde(default, deserialize_with = "literal")]
    lineage_status: Option<LineageStatus>,
    #[serde(default)]
    schema_version: Option<String>,
}

/// Marker in custom deserializer errors so [`classify`] can recover the error type pydantic would report.
const LITERAL_MARK: &str = "literal_error: ";
const DATETIME_MARK: &str = "datetime_parsing: ";

trait Literal: Sized {
    fn parse_literal(s: &str) -> Option<Self>;
    fn expected_text() -> String;
}
macro_rules! impl_literal {
    ($($t:ty),*) => {$(impl Literal for $t {
        fn parse_literal(s: &str) -> Option<Self> { <$t>::parse(s) }
        fn expected_text() -> String { <$t>::expected() }
    })*};
}
impl_literal!(SpanType, SpanStatus, LineageProvenance, LineageStatus);

fn required_literal<'de, D: Deserializer<'de>, T: Literal>(d: D) -> Result<T, D::Error> {
    let s = String::deserialize(d)?;
    T::parse_literal(&s).ok_or_else(|| de::Error::custom(format!("{LITERAL_MARK}{}, got '{s}'", T::expected_text())))
}

fn literal<'de, D: Deserializer<'de>, T: Literal>(d: D) -> Result<Option<T>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) => T::parse_literal(&s)
            .map(Some)
            .ok_or_else(|| de::Error::custom(format!("{LITERAL_MARK}{}, got '{s}'", T::expected_text()))),
    }
}

fn timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Micros, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Micros;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an ISO-8601 datetime string or a Unix timestamp")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Micros, E> {
            parse_timestamp_str(s).ok_or_else(|| {
                E::custom(format!(
                    "{DATETIME_MARK}Input should be a valid datetime (ISO 8601, e.g. 2026-03-17T12:00:00Z), got '{}'",
                    s.chars().take(64).collect::<String>()
                ))
            })
        }
        fn visit_f64<E: de::Error>(self, n: f64) -> Result<Micros, E> {
            parse_timestamp_number(n)
                .ok_or_else(|| E::custom(format!("{DATETIME_MARK}Input should be a valid datetime, got {n}")))
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<Micros, E> {
            self.visit_f64(n as f64)
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> Result<Micros, E> {
            self.visit_f64(n as f64)
        }
    }
    d.deserialize_any(V)
}

/// Decodes and validates a batch. On success the spans have their defaults filled, `latency_ms` computed
/// when absent, and the lineage fix-ups of [`fix_lineage`] applied.
pub fn decode_batch(body: &[u8]) -> Result<Vec<Span>, SpanRejection> {
    let wire: Vec<WireSpan> = match serde_json::from_slice(body) {
        Ok(w) => w,
        Err(_) => return Err(SpanRejection::Invalid(vec![explain_decode_error(body)])),
    };
    let mut errors = Vec::new();
    for (i, w) in wire.iter().enumerate() {
        check_len(&mut errors, i, "span_id", w.span_id.as_ref(), MAX_ID);
        check_len(&mut errors, i, "parent_span_id", w.parent_span_id.as_ref(), MAX_ID);
        check_len(&mut errors, i, "trace_id", w.trace_id.as_ref(), MAX_ID);
        check_len(&mut errors, i, "session_id", w.session_id.as_ref(), MAX_ID);
        check_len(&mut errors, i, "server_name", Some(&w.server_name), MAX_SERVER_NAME);
        check_len(&mut errors, i, "tool_name", Some(&w.tool_name), MAX_TOOL_NAME);
        check_len(&mut errors, i, "agent_name", w.agent_name.as_ref(), MAX_AGENT_NAME);
        check_len(&mut errors, i, "error", w.error.as_ref(), MAX_ERROR);
        check_len(&mut errors, i, "output_result", w.output_result.as_ref(), MAX_PAYLOAD);
        check_len(&mut errors, i, "llm_input", w.llm_input.as_ref(), MAX_PAYLOAD);
        check_len(&mut errors, i, "llm_output", w.llm_output.as_ref(), MAX_PAYLOAD);
        check_len(&mut errors, i, "replay_of", w.replay_of.as_ref(), MAX_ID);
        check_len(&mut errors, i, "project_id", w.project_id.as_ref(), MAX_ID);
        check_len(&mut errors, i, "model_id", w.model_id.as_ref(), MAX_MODEL);
        check_len(&mut errors, i, "finish_reason", w.finish_reason.as_ref(), MAX_MODEL);
        check_len(&mut errors, i, "target_agent_name", w.target_agent_name.as_ref(), MAX_AGENT_NAME);
        check_len(&mut errors, i, "schema_version", w.schema_version.as_ref(), MAX_SCHEMA_VERSION);
        if let Some(raw) = &w.input_args {
            let text = raw.get();
            if text.len() > MAX_PAYLOAD && text.chars().count() > MAX_PAYLOAD {
                errors.push(FieldError {
                    kind: "too_long",
                    loc: vec![json!("body"), json!(i), json!("input_args")],
                    msg: format!(
                        "input_args should be at most {MAX_PAYLOAD} characters of JSON (got {}); \
                         truncate large arguments before sending",
                        text.chars().count()
                    ),
                    input: Value::Null,
                });
            } else if let Some(depth) = too_deep(text, MAX_PAYLOAD_DEPTH) {
                errors.push(FieldError {
                    kind: "too_deep",
                    loc: vec![json!("body"), json!(i), json!("input_args")],
                    msg: format!(
                        "input_args should nest at most {MAX_PAYLOAD_DEPTH} objects or arrays deep (got at least \
                         {depth}); flatten the arguments or send them as a string"
                    ),
                    input: Value::Null,
                });
            } else if !text.starts_with('{') {
                errors.push(FieldError {
                    kind: "dict_type",
                    loc: vec![json!("body"), json!(i), json!("input_args")],
                    msg: "Input should be a valid dictionary (a JSON object) or null".into(),
                    input: serde_json::from_str(raw.get()).unwrap_or(Value::Null),
                });
            }
        }
        for (name, v) in [
            ("input_tokens", w.input_tokens),
            ("output_tokens", w.output_tokens),
            ("cache_read_tokens", w.cache_read_tokens),
            ("cache_creation_tokens", w.cache_creation_tokens),
            ("thinking_tokens", w.thinking_tokens),
        ] {
            if let Some(n) = v.filter(|n| *n < 0) {
                errors.push(FieldError {
                    kind: "greater_than_equal",
                    loc: vec![json!("body"), json!(i), json!(name)],
                    msg: "Input should be greater than or equal to 0 (token counts cannot be negative)".into(),
                    input: json!(n),
                });
            }
        }
        if let Some(l) = w.latency_ms.filter(|l| !l.is_finite()) {
            errors.push(FieldError {
                kind: "finite_number",
                loc: vec![json!("body"), json!(i), json!("latency_ms")],
                msg: "Input should be a finite number".into(),
                input: json!(l.to_string()),
            });
        }
    }
    if !errors.is_empty() {
        return Err(SpanRejection::Invalid(errors));
    }
    if let Some(bad) = wire.iter().filter_map(|w| w.session_id.as_deref()).find(|s| !is_valid_session_id(s)) {
        return Err(SpanRejection::BadSessionId(bad.to_string()));
    }
    let mut spans: Vec<Span> = wire.into_iter().map(Span::from).collect();
    fix_lineage(&mut spans);
    Ok(spans)
}

/// The nesting depth of well-formed JSON text when it exceeds `max` (counted without recursion, brackets inside
/// strings skipped), else `None`.
pub fn too_deep(json: &str, max: usize) -> Option<usize> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for b in json.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Some(depth);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

fn check_len(errors: &mut Vec<FieldError>, i: usize, field: &str, value: Option<&String>, max: usize) {
    if let Some(v) = value {
        // Bytes >= chars, so only count characters when the byte length could exceed the limit.
        if v.len() > max && v.chars().count() > max {
            errors.push(FieldError {
                kind: "string_too_long",
                loc: vec![json!("body"), json!(i), json!(field)],
                msg: format!("String should have at most {max} characters (got {})", v.chars().count()),
                input: Value::String(v.chars().take(64).chain("…".chars()).collect()),
            });
        }
    }
}

impl From<WireSpan> for Span {
    fn from(w: WireSpan) -> Self {
        let latency_ms =
            w.latency_ms.unwrap_or_else(|| ((w.ended_at - w.started_at) as f64 / 1000.0 * 100.0).round() / 100.0);
        Span {
            span_id: w.span_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            parent_span_id: w.parent_span_id,
            span_type: w.span_type.unwrap_or_default(),
            trace_id: w.trace_id,
            session_id: w.session_id,
            server_name: w.server_name,
            tool_name: w.tool_name,
            started_at: w.started_at,
            ended_at: w.ended_at,
            latency_ms,
            status: w.status,
            error: w.error,
            agent_name: w.agent_name,
            input_json: w.input_args.map(|r| r.get().to_string()),
            output_json: w.output_result,
            llm_input: w.llm_input,
            llm_output: w.llm_output,
            replay_of: w.replay_of,
            project_id: w.project_id,
            input_tokens: w.input_tokens,
            output_tokens: w.output_tokens,
            model_id: w.model_id,
            finish_reason: w.finish_reason,
            cache_read_tokens: w.cache_read_tokens,
            cache_creation_tokens: w.cache_creation_tokens,
            thinking_tokens: w.thinking_tokens,
            target_agent_name: w.target_agent_name,
            lineage_provenance: w.lineage_provenance.unwrap_or_default(),
            lineage_status: w.lineage_status.unwrap_or_default(),
            schema_version: w.schema_version.unwrap_or_else(|| "1.0".to_string()),
        }
    }
}

/// `^[0-9a-f]{32}$` or the dashed 8-4-4-4-12 form, case-insensitive (the original's rule).
pub fn is_valid_session_id(s: &str) -> bool {
    let b = s.as_bytes();
    match b.len() {
        32 => b.iter().all(u8::is_ascii_hexdigit),
        36 => b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        }),
        _ => false,
    }
}

/// The ingest-time lineage rules: a span whose parent is not in the same batch is `incomplete` (when it
/// claimed `complete`), and a legacy handoff named `→ agent` gets its target from the name.
pub fn fix_lineage(spans: &mut [Span]) {
    let ids: std::collections::HashSet<String> = spans.iter().map(|s| s.span_id.clone()).collect();
    for s in spans.iter_mut() {
        if let Some(parent) = s.parent_span_id.as_deref() {
            if !parent.is_empty() && !ids.contains(parent) && s.lineage_status == LineageStatus::Complete {
                s.lineage_status = LineageStatus::Incomplete;
            }
        }
        if s.span_type == SpanType::Handoff && s.target_agent_name.as_deref().is_none_or(str::is_empty) {
            if let Some(target) = s.tool_name.strip_prefix("→ ") {
                s.target_agent_name = Some(target.to_string());
                s.lineage_provenance = LineageProvenance::DerivedLegacy;
            }
        }
    }
}

/// Re-decodes a body that failed the fast path with path tracking, to say where and what is wrong.
fn explain_decode_error(body: &[u8]) -> FieldError {
    let mut de = serde_json::Deserializer::from_slice(body);
    let result: Result<Vec<WireSpan>, _> = serde_path_to_error::deserialize(&mut de);
    let Err(err) = result else {
        // The fast path failed but the tracked one did not: only possible for trailing garbage.
        return FieldError {
            kind: "json_invalid",
            loc: vec![json!("body")],
            msg: "JSON decode error: trailing characters after the array".into(),
            input: json!({}),
        };
    };
    let mut loc = vec![json!("body")];
    for seg in err.path().iter() {
        match seg {
            serde_path_to_error::Segment::Seq { index } => loc.push(json!(index)),
            serde_path_to_error::Segment::Map { key } => loc.push(json!(key)),
            serde_path_to_error::Segment::Enum { variant } => loc.push(json!(variant)),
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    classify(err.inner(), loc)
}

fn classify(e: &serde_json::Error, mut loc: Vec<Value>) -> FieldError {
    let text = e.to_string();
    // serde_json appends " at line L column C"; keep it for syntax errors, where it is the useful part.
    let bare = text.rsplit_once(" at line ").map(|(m, _)| m.to_string()).unwrap_or_else(|| text.clone());
    if e.is_syntax() || e.is_eof() {
        return FieldError {
            kind: "json_invalid",
            loc: vec![json!("body"), json!(e.column())],
            msg: format!("JSON decode error: {text}"),
            input: json!({}),
        };
    }
    if let Some(field) = bare.strip_prefix("missing field `").and_then(|r| r.strip_suffix('`')) {
        loc.push(json!(field));
        return FieldError { kind: "missing", loc, msg: format!("Field required: `{field}`"), input: Value::Null };
    }
    if let Some(m) = bare.strip_prefix(LITERAL_MARK) {
        return FieldError { kind: "literal_error", loc, msg: m.to_string(), input: Value::Null };
    }
    if let Some(m) = bare.strip_prefix(DATETIME_MARK) {
        return FieldError { kind: "datetime_parsing", loc, msg: m.to_string(), input: Value::Null };
    }
    if loc.len() == 1 {
        return FieldError {
            kind: "list_type",
            loc,
            msg: format!("Input should be a valid list (a JSON array of spans): {bare}"),
            input: Value::Null,
        };
    }
    FieldError { kind: "type_error", loc, msg: format!("Invalid value: {bare}"), input: Value::Null }
}

#[cfg(test)]
mod tests;
