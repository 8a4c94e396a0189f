//! Helpers shared by the fuzz targets: a span encoder in the SDK's wire form (so a decoded batch can be sent
//! again), span comparison, and the invariants every span we store must hold however it arrived.

use langsight_core::span::{self, Span};
use langsight_server::otlp::{self, OtlpSpan};
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// `span` as the SDK would send it to `POST /api/traces/spans`: every field explicit, timestamps as
/// ISO-8601 with microseconds, `input_args` verbatim (spliced in as text: a `Value` would re-format it).
pub fn span_to_wire(s: &Span) -> String {
    let mut text = serde_json::to_string(&json!({
        "span_id": s.span_id,
        "parent_span_id": s.parent_span_id,
        "span_type": s.span_type.as_str(),
        "trace_id": s.trace_id,
        "session_id": s.session_id,
        "server_name": s.server_name,
        "tool_name": s.tool_name,
        "started_at": langsight_core::time::iso_z(s.started_at),
        "ended_at": langsight_core::time::iso_z(s.ended_at),
        "latency_ms": s.latency_ms,
        "status": s.status.as_str(),
        "error": s.error,
        "agent_name": s.agent_name,
        "output_result": s.output_json,
        "llm_input": s.llm_input,
        "llm_output": s.llm_output,
        "replay_of": s.replay_of,
        "project_id": s.project_id,
        "input_tokens": s.input_tokens,
        "output_tokens": s.output_tokens,
        "model_id": s.model_id,
        "finish_reason": s.finish_reason,
        "cache_read_tokens": s.cache_read_tokens,
        "cache_creation_tokens": s.cache_creation_tokens,
        "thinking_tokens": s.thinking_tokens,
        "target_agent_name": s.target_agent_name,
        "lineage_provenance": s.lineage_provenance.as_str(),
        "lineage_status": s.lineage_status.as_str(),
        "schema_version": s.schema_version,
    }))
    .expect("a span serialises");
    if let Some(raw) = &s.input_json {
        let raw: &RawValue = serde_json::from_str(raw).expect("a decoded span's input_args is JSON");
        text.pop(); // the closing brace
        text.push_str(",\"input_args\":");
        text.push_str(raw.get());
        text.push('}');
    }
    text
}

/// A batch in the wire form, as bytes.
pub fn batch_to_wire(spans: &[Span]) -> Vec<u8> {
    format!("[{}]", spans.iter().map(span_to_wire).collect::<Vec<_>>().join(",")).into_bytes()
}

/// Floats within a couple of ULPs: serde_json's default float parser is fast, not always exact to the last
/// bit, so a number printed and read back may move by one ULP.
fn close(a: f64, b: f64) -> bool {
    if a == b {
        return true;
    }
    if a.is_nan() || b.is_nan() || a.signum() != b.signum() {
        return false;
    }
    a.to_bits().abs_diff(b.to_bits()) <= 2
}

/// Panics, naming the field, unless `a` and `b` are the same span.
pub fn assert_same_span(a: &Span, b: &Span) {
    assert!(close(a.latency_ms, b.latency_ms), "latency_ms {} != {}", a.latency_ms, b.latency_ms);
    let mut b = b.clone();
    b.latency_ms = a.latency_ms;
    assert_eq!(a, &b);
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// Deepest nesting of objects and arrays in well-formed JSON text (brackets inside strings skipped).
fn nesting(json: &str) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
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
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// The limits every stored span holds, whichever route it came through (the SDK's batch or OTLP).
pub fn assert_span_limits(s: &Span) {
    assert!(chars(&s.server_name) <= span::MAX_SERVER_NAME, "server_name over its limit");
    assert!(chars(&s.tool_name) <= span::MAX_TOOL_NAME, "tool_name over its limit");
    assert!(chars(&s.span_id) <= span::MAX_ID, "span_id over its limit");
    assert!(chars(&s.schema_version) <= span::MAX_SCHEMA_VERSION, "schema_version over its limit");
    for (field, v, max) in [
        ("parent_span_id", &s.parent_span_id, span::MAX_ID),
        ("trace_id", &s.trace_id, span::MAX_ID),
        ("session_id", &s.session_id, span::MAX_ID),
        ("replay_of", &s.replay_of, span::MAX_ID),
        ("project_id", &s.project_id, span::MAX_ID),
        ("model_id", &s.model_id, span::MAX_MODEL),
        ("finish_reason", &s.finish_reason, span::MAX_MODEL),
        ("target_agent_name", &s.target_agent_name, span::MAX_AGENT_NAME),
        ("agent_name", &s.agent_name, span::MAX_AGENT_NAME),
        ("error", &s.error, span::MAX_ERROR),
        ("output_json", &s.output_json, span::MAX_PAYLOAD),
        ("llm_input", &s.llm_input, span::MAX_PAYLOAD),
        ("llm_output", &s.llm_output, span::MAX_PAYLOAD),
    ] {
        if let Some(v) = v {
            assert!(chars(v) <= max, "{field} has {} characters, over {max}", chars(v));
        }
    }
    assert!(s.latency_ms.is_finite(), "latency_ms {} is not finite", s.latency_ms);
    // Years 1..=9999, what every backend and renderer handles.
    for t in [s.started_at, s.ended_at] {
        assert!((-62_135_596_800_000_000..=253_402_300_799_000_000).contains(&t), "timestamp {t} out of range");
    }
    for tokens in [s.input_tokens, s.output_tokens, s.cache_read_tokens, s.cache_creation_tokens, s.thinking_tokens]
        .into_iter()
        .flatten()
    {
        assert!(tokens >= 0, "negative token count {tokens}");
    }
    if let Some(input) = &s.input_json {
        // Syntax only: JSON has no number range, and `21e308` (out of f64's) is a valid part of an object.
        let json = serde_json::from_str::<serde::de::IgnoredAny>(input).is_ok();
        assert!(json && input.starts_with('{'), "input_json is not a JSON object");
        assert!(nesting(input) <= span::MAX_PAYLOAD_DEPTH, "input_json nests deeper than the limit");
    }
}

/// The OTLP mapping's output must be what the SDK route would accept: the same limits, and the same span
/// after a trip through the SDK's wire form. OTLP session ids are free text (collectors send their own),
/// so that one rule of the SDK route is not asked of them.
pub fn check_otlp_spans(otlp: &[OtlpSpan]) {
    let now = 1_773_748_800_000_000;
    let spans = otlp::to_spans(otlp, Some("fuzz-project"), now);
    assert!(spans.len() <= otlp.len(), "more spans out than in");
    for s in &spans {
        assert_span_limits(s);
        assert_eq!(s.project_id.as_deref(), Some("fuzz-project"));
        if let Some(session) = &s.session_id {
            assert!(chars(session) <= 256, "OTLP session id over 256 characters");
        }
    }
    let mut sdk_form = spans.clone();
    for s in &mut sdk_form {
        if !s.session_id.as_deref().is_some_and(span::is_valid_session_id) {
            s.session_id = None;
        }
    }
    match span::decode_batch(&batch_to_wire(&sdk_form)) {
        Ok(again) => {
            assert_eq!(again.len(), sdk_form.len());
            for (a, b) in sdk_form.iter().zip(&again) {
                assert_same_span(a, b);
            }
        }
        Err(e) => panic!("an OTLP span the SDK route would refuse: {}", e.detail()),
    }
}
