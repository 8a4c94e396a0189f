use super::*;

fn span_json(extra: Value) -> Value {
    let mut base = json!({
        "span_id": "s1", "server_name": "github", "tool_name": "search",
        "started_at": "2026-03-17T12:00:00Z", "ended_at": "2026-03-17T12:00:00.250Z",
        "status": "success", "session_id": "0123456789abcdef0123456789abcdef"
    });
    if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
        for (k, v) in e {
            b.insert(k, v);
        }
    }
    base
}

fn decode(v: Value) -> Result<Vec<Span>, SpanRejection> {
    decode_batch(&serde_json::to_vec(&v).unwrap())
}

fn first_error(r: Result<Vec<Span>, SpanRejection>) -> FieldError {
    match r {
        Err(SpanRejection::Invalid(e)) => e[0].clone(),
        other => panic!("expected field errors, got {other:?}"),
    }
}

#[test]
fn fills_defaults_and_computes_latency() {
    let spans = decode(json!([span_json(json!({"span_id": null}))])).unwrap();
    let s = &spans[0];
    assert_eq!(s.span_type, SpanType::ToolCall);
    assert_eq!(s.latency_ms, 250.0);
    assert_eq!(s.schema_version, "1.0");
    assert_eq!(s.lineage_provenance, LineageProvenance::Explicit);
    assert_eq!(s.lineage_status, LineageStatus::Complete);
    assert_eq!(s.span_id.len(), 36, "a uuid4 is generated for a null span_id");
}

#[test]
fn keeps_given_latency_and_input_args_as_json() {
    let spans = decode(json!([span_json(json!({"latency_ms": 7.5, "input_args": {"q": "x"}}))])).unwrap();
    assert_eq!(spans[0].latency_ms, 7.5);
    assert_eq!(spans[0].input_json.as_deref(), Some(r#"{"q":"x"}"#));
}

#[test]
fn empty_array_is_accepted() {
    assert_eq!(decode(json!([])).unwrap().len(), 0);
}

#[test]
fn missing_required_field_names_the_span_and_field() {
    let mut s = span_json(json!({}));
    s.as_object_mut().unwrap().remove("tool_name");
    let e = first_error(decode(json!([span_json(json!({})), s])));
    assert_eq!(e.kind, "missing");
    assert_eq!(e.loc, vec![json!("body"), json!(1), json!("tool_name")]);
}

#[test]
fn bad_literal_lists_the_accepted_values() {
    let e = first_error(decode(json!([span_json(json!({"status": "fine"}))])));
    assert_eq!(e.kind, "literal_error");
    assert_eq!(e.loc, vec![json!("body"), json!(0), json!("status")]);
    assert!(e.msg.contains("'success', 'error', 'timeout' or 'prevented'"), "{}", e.msg);
}

#[test]
fn bad_datetime_is_explained() {
    let e = first_error(decode(json!([span_json(json!({"started_at": "noon"}))])));
    assert_eq!(e.kind, "datetime_parsing");
    assert_eq!(e.loc, vec![json!("body"), json!(0), json!("started_at")]);
}

#[test]
fn oversize_fields_are_rejected_not_truncated() {
    let e = first_error(decode(json!([span_json(json!({"server_name": "x".repeat(257)}))])));
    assert_eq!(e.kind, "string_too_long");
    assert!(e.msg.contains("at most 256"));
    // 256 multi-byte characters are within the limit: pydantic counts characters, not bytes.
    assert!(decode(json!([span_json(json!({"server_name": "é".repeat(256)}))])).is_ok());
    let e = first_error(decode(json!([span_json(json!({"error": "e".repeat(8193)}))])));
    assert_eq!(e.loc[2], json!("error"));
}

#[test]
fn session_id_must_be_a_uuid() {
    assert!(is_valid_session_id("0123456789ABCDEF0123456789abcdef"));
    assert!(is_valid_session_id("01234567-89ab-cdef-0123-456789abcdef"));
    assert!(!is_valid_session_id("sess-1"));
    assert!(!is_valid_session_id("01234567089ab0cdef001230456789abcdef"));
    match decode(json!([span_json(json!({"session_id": "sess-1"}))])) {
        Err(SpanRejection::BadSessionId(v)) => assert_eq!(v, "sess-1"),
        other => panic!("{other:?}"),
    }
    let detail = SpanRejection::BadSessionId("x".into()).detail();
    assert!(detail.as_str().unwrap().starts_with("session_id must be a UUID4 (hex or standard form), got 'x'."));
}

#[test]
fn malformed_json_and_non_arrays_are_422_not_panics() {
    assert_eq!(first_error(decode_batch(b"[{")).kind, "json_invalid");
    assert_eq!(first_error(decode_batch(b"")).kind, "json_invalid");
    assert_eq!(first_error(decode(json!({"spans": []}))).kind, "list_type");
    assert_eq!(first_error(decode(json!([span_json(json!({"input_args": [1]}))]))).kind, "dict_type");
    assert_eq!(first_error(decode(json!([span_json(json!({"input_tokens": -1}))]))).kind, "greater_than_equal");
}

#[test]
fn lineage_fixups() {
    let spans = decode(json!([
        span_json(json!({"span_id": "a"})),
        span_json(json!({"span_id": "b", "parent_span_id": "a"})),
        span_json(json!({"span_id": "c", "parent_span_id": "elsewhere"})),
        span_json(json!({"span_id": "d", "span_type": "handoff", "tool_name": "→ billing"})),
    ]))
    .unwrap();
    assert_eq!(spans[1].lineage_status, LineageStatus::Complete);
    assert_eq!(spans[2].lineage_status, LineageStatus::Incomplete);
    assert_eq!(spans[3].target_agent_name.as_deref(), Some("billing"));
    assert_eq!(spans[3].lineage_provenance, LineageProvenance::DerivedLegacy);
}

/// A small deterministic xorshift generator: the fuzz loop needs reproducible randomness, not a crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Property: whatever the bytes, the decoder returns Ok or a rejection — it never panics — and every
/// accepted span satisfies the documented limits. Inputs are mutations of a valid batch (so most reach deep
/// into the decoder) plus splices of interesting tokens.
#[test]
fn fuzz_decoder_never_panics() {
    let seed = serde_json::to_vec(&json!([
        span_json(json!({"input_args": {"a": [1, 2, {"b": null}]}, "latency_ms": null, "input_tokens": 5})),
        span_json(json!({"span_type": "handoff", "tool_name": "→ x", "parent_span_id": "s1"})),
    ]))
    .unwrap();
    let tokens: [&[u8]; 14] = [
        b"null",
        b"-1",
        b"1e999",
        b"\"\\ud800\"",
        b"{",
        b"}",
        b"[",
        b"]",
        b",",
        b"\"",
        b"9999999999999999999999",
        b"\"\xff\xfe\"",
        b"\"2026-13-45T99:99:99Z\"",
        b"true",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut accepted = 0;
    for _ in 0..30_000 {
        let mut buf = seed.clone();
        for _ in 0..1 + rng.below(4) {
            let pos = rng.below(buf.len() + 1);
            match rng.below(4) {
                0 if pos < buf.len() => buf[pos] = rng.next() as u8,
                1 if pos < buf.len() => {
                    buf.remove(pos);
                }
                2 => {
                    let t = tokens[rng.below(tokens.len())];
                    buf.splice(pos..pos, t.iter().copied());
                }
                _ => {
                    let end = (pos + rng.below(16)).min(buf.len());
                    buf.drain(pos..end);
                }
            }
        }
        if let Ok(spans) = decode_batch(&buf) {
            accepted += 1;
            for s in spans {
                assert!(s.server_name.chars().count() <= MAX_SERVER_NAME);
                assert!(s.session_id.as_deref().is_none_or(is_valid_session_id));
                assert!(s.latency_ms.is_finite());
            }
        }
    }
    assert!(accepted > 0, "some mutations stay valid; otherwise the fuzz loop tests nothing deep");
}

#[test]
fn every_text_field_has_a_limit() {
    for (field, max) in [
        ("span_id", MAX_ID),
        ("parent_span_id", MAX_ID),
        ("trace_id", MAX_ID),
        ("session_id", MAX_ID),
        ("replay_of", MAX_ID),
        ("project_id", MAX_ID),
        ("model_id", MAX_MODEL),
        ("finish_reason", MAX_MODEL),
        ("target_agent_name", MAX_AGENT_NAME),
        ("schema_version", MAX_SCHEMA_VERSION),
    ] {
        let at_limit = decode(json!([span_json(json!({ field: "7".repeat(max) }))]));
        if field != "session_id" {
            assert!(at_limit.is_ok(), "{field} at its limit is accepted");
        }
        let e = first_error(decode(json!([span_json(json!({})), span_json(json!({ field: "é".repeat(max + 1) }))])));
        assert_eq!(e.kind, "string_too_long", "{field}");
        assert_eq!(e.loc, vec![json!("body"), json!(1), json!(field)]);
    }
}

#[test]
fn input_args_are_limited_in_size_and_depth() {
    let big = json!({"a": "x".repeat(MAX_PAYLOAD)});
    let e = first_error(decode(json!([span_json(json!({"input_args": big}))])));
    assert_eq!((e.kind, &e.loc[2]), ("too_long", &json!("input_args")));
    let mut deep = json!({});
    for _ in 0..MAX_PAYLOAD_DEPTH {
        deep = json!({ "a": deep });
    }
    let e = first_error(decode(json!([span_json(json!({"input_args": deep}))])));
    assert_eq!((e.kind, &e.loc[2]), ("too_deep", &json!("input_args")));
    let ok = deep["a"].clone();
    assert!(decode(json!([span_json(json!({"input_args": ok}))])).is_ok(), "64 levels are accepted");
    // Brackets inside strings do not count.
    let strings = json!({"a": "[[[[{{{{".repeat(100)});
    assert!(decode(json!([span_json(json!({"input_args": strings}))])).is_ok());
    // A body nested far beyond serde_json's limit inside input_args is refused, not a crash.
    let body = format!(
        r#"[{{"server_name":"s","tool_name":"t","status":"success","started_at":1,"ended_at":1,"input_args":{{"a":{}1{}}}}}]"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert_eq!(first_error(decode_batch(body.as_bytes())).kind, "too_long");
}
