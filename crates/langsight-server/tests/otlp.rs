//! OTLP/HTTP ingest: the same spans sent as OTLP/JSON and as gzip-compressed OTLP/protobuf (encoded here by hand
//! from the published field numbers, independently of the server's decoder) are stored identically.

use serde_json::{json, Value};
use test_support::{session_id, TestServer, ADMIN_KEY};

const TRACE: &str = "5b8efff798038103d269b633813fc60c";
const ROOT: &str = "eee19b7ec3c1b174";
const TOOL: &str = "eee19b7ec3c1b175";
const LLM: &str = "eee19b7ec3c1b176";
const HTTP: &str = "eee19b7ec3c1b177";
/// Ten minutes ago, in whole milliseconds (as nanoseconds): recent enough for the sessions list.
fn t0() -> u64 {
    static T0: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *T0.get_or_init(|| (chrono::Utc::now().timestamp_millis() as u64 - 600_000) * 1_000_000)
}

/// (span id, name, start offset ms, duration ms, status code, status message, string attrs, int attrs)
type Fixture =
    (&'static str, &'static str, u64, u64, i32, &'static str, Vec<(&'static str, String)>, Vec<(&'static str, i64)>);

fn fixture(session: &str) -> Vec<Fixture> {
    vec![
        (
            TOOL,
            "mcp.github.search_issues",
            0,
            120,
            1,
            "",
            vec![("session.id", session.into()), ("gen_ai.agent.name", "triager".into())],
            vec![],
        ),
        (
            LLM,
            "chat claude",
            200,
            900,
            2,
            "upstream timeout after 30s",
            vec![
                ("session.id", session.into()),
                ("gen_ai.agent.name", "triager".into()),
                ("gen_ai.system", "anthropic".into()),
                ("gen_ai.request.model", "claude-sonnet-4-6".into()),
            ],
            vec![("gen_ai.usage.input_tokens", 1200), ("gen_ai.usage.output_tokens", 300)],
        ),
        (HTTP, "GET /health", 0, 5, 0, "", vec![("http.method", "GET".into())], vec![]),
    ]
}

fn as_json(session: &str) -> Value {
    let spans: Vec<Value> = fixture(session)
        .into_iter()
        .map(|(id, name, at, ms, code, msg, strs, ints)| {
            let mut attrs: Vec<Value> =
                strs.iter().map(|(k, v)| json!({"key": k, "value": {"stringValue": v}})).collect();
            attrs.extend(ints.iter().map(|(k, v)| json!({"key": k, "value": {"intValue": v.to_string()}})));
            if id == LLM {
                attrs.push(json!({"key": "gen_ai.response.finish_reasons",
                    "value": {"arrayValue": {"values": [{"stringValue": "STOP"}]}}}));
            }
            json!({"traceId": TRACE, "spanId": id, "parentSpanId": ROOT, "name": name,
                "startTimeUnixNano": (t0() + at * 1_000_000).to_string(), "endTimeUnixNano": (t0() + (at + ms) * 1_000_000).to_string(),
                "attributes": attrs, "status": {"code": code, "message": msg}})
        })
        .collect();
    json!({"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "triage-bot"}}]},
        "scopeSpans": [{"scope": {"name": "opentelemetry.instrumentation.mcp"}, "spans": spans}]}]})
}

// A minimal protobuf writer: (field << 3 | wire type) keys, varints, length-delimited fields, fixed64.
fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}
fn bytes_field(field: u64, data: &[u8], out: &mut Vec<u8>) {
    varint(field << 3 | 2, out);
    varint(data.len() as u64, out);
    out.extend_from_slice(data);
}
fn varint_field(field: u64, v: u64, out: &mut Vec<u8>) {
    varint(field << 3, out);
    varint(v, out);
}
fn fixed64_field(field: u64, v: u64, out: &mut Vec<u8>) {
    varint(field << 3 | 1, out);
    out.extend_from_slice(&v.to_le_bytes());
}
fn key_value(key: &str, any_value: Vec<u8>) -> Vec<u8> {
    let mut kv = Vec::new();
    bytes_field(1, key.as_bytes(), &mut kv);
    bytes_field(2, &any_value, &mut kv);
    kv
}
fn string_value(s: &str) -> Vec<u8> {
    let mut v = Vec::new();
    bytes_field(1, s.as_bytes(), &mut v);
    v
}

fn as_protobuf(session: &str) -> Vec<u8> {
    let mut scope = Vec::new();
    for (id, name, at, ms, code, msg, strs, ints) in fixture(session) {
        let mut span = Vec::new();
        bytes_field(1, &hex::decode(TRACE).unwrap(), &mut span);
        bytes_field(2, &hex::decode(id).unwrap(), &mut span);
        bytes_field(4, &hex::decode(ROOT).unwrap(), &mut span);
        bytes_field(5, name.as_bytes(), &mut span);
        varint_field(6, 3, &mut span); // kind: CLIENT (not read, must be skipped)
        fixed64_field(7, t0() + at * 1_000_000, &mut span);
        fixed64_field(8, t0() + (at + ms) * 1_000_000, &mut span);
        for (k, v) in strs {
            bytes_field(9, &key_value(k, string_value(&v)), &mut span);
        }
        for (k, v) in ints {
            let mut any = Vec::new();
            varint_field(3, v as u64, &mut any);
            bytes_field(9, &key_value(k, any), &mut span);
        }
        if id == LLM {
            let mut array = Vec::new();
            bytes_field(1, &string_value("STOP"), &mut array);
            let mut any = Vec::new();
            bytes_field(5, &array, &mut any);
            bytes_field(9, &key_value("gen_ai.response.finish_reasons", any), &mut span);
        }
        let mut status = Vec::new();
        bytes_field(2, msg.as_bytes(), &mut status);
        varint_field(3, code as u64, &mut status);
        bytes_field(15, &status, &mut span);
        bytes_field(2, &span, &mut scope);
    }
    let mut resource = Vec::new();
    bytes_field(1, &key_value("service.name", string_value("triage-bot")), &mut resource);
    let mut rs = Vec::new();
    bytes_field(1, &resource, &mut rs);
    bytes_field(2, &scope, &mut rs);
    let mut req = Vec::new();
    bytes_field(1, &rs, &mut req);
    req
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

async fn post(server: &TestServer, path: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = test_support::http().post(format!("{}{path}", server.url)).header("X-API-Key", ADMIN_KEY).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn json_and_protobuf_exports_store_the_same_spans() {
    let (by_json, by_protobuf) = (TestServer::start().await, TestServer::start().await);
    let session = session_id();

    let body = serde_json::to_vec(&as_json(&session)).unwrap();
    let r = post(&by_json, "/api/traces/otlp", body, &[("Content-Type", "application/json")]).await;
    assert_eq!(r.status(), 202);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"accepted": 2}), "the HTTP span is not a tool or LLM call");

    // What a Collector's otlphttp exporter sends: gzip-compressed protobuf to <endpoint>/v1/traces.
    let r = post(
        &by_protobuf,
        "/v1/traces",
        gzip(&as_protobuf(&session)),
        &[("Content-Type", "application/x-protobuf"), ("Content-Encoding", "gzip")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-protobuf");
    assert!(r.bytes().await.unwrap().is_empty(), "an empty ExportTraceServiceResponse");

    let a = by_json.admin().get(&format!("/api/agents/sessions/{session}")).await;
    let b = by_protobuf.admin().get(&format!("/api/agents/sessions/{session}")).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["spans_flat"], b.body["spans_flat"], "identical stored spans");
    let spans = a.body["spans_flat"].as_array().unwrap();
    assert_eq!(spans.len(), 2);
    let tool = spans.iter().find(|s| s["span_id"] == json!(TOOL)).unwrap();
    assert_eq!((tool["server_name"].clone(), tool["tool_name"].clone()), (json!("github"), json!("search_issues")));
    assert_eq!((tool["agent_name"].clone(), tool["status"].clone()), (json!("triager"), json!("success")));
    assert_eq!((tool["trace_id"].clone(), tool["latency_ms"].clone()), (json!(TRACE), json!(120.0)));
    assert_eq!(tool["lineage_provenance"], json!("inferred_otel"));
    assert_eq!(tool["lineage_status"], json!("incomplete"), "its parent was not exported");
    let llm = spans.iter().find(|s| s["span_id"] == json!(LLM)).unwrap();
    assert_eq!(
        (llm["span_type"].clone(), llm["tool_name"].clone()),
        (json!("agent"), json!("generate/claude-sonnet-4-6"))
    );
    assert_eq!((llm["server_name"].clone(), llm["model_id"].clone()), (json!("anthropic"), json!("claude-sonnet-4-6")));
    assert_eq!((llm["input_tokens"].clone(), llm["output_tokens"].clone()), (json!(1200), json!(300)));
    assert_eq!((llm["status"].clone(), llm["error"].clone()), (json!("timeout"), json!("upstream timeout after 30s")));
    assert_eq!(llm["finish_reason"], json!("stop"));

    // Like SDK spans: the session is listed, tagged and counted.
    let list = by_protobuf.admin().get("/api/agents/sessions").await.body;
    assert_eq!(list[0]["session_id"], json!(session));
    assert_eq!(list[0]["health_tag"], json!("timeout"));
    by_json.stop().await;
    by_protobuf.stop().await;
}

#[tokio::test]
async fn the_project_comes_from_the_header_and_bad_bodies_say_what_to_fix() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let p = admin.post("/api/projects", &json!({"name": "Otel"})).await.body["id"].as_str().unwrap().to_string();
    let session = session_id();
    let body = serde_json::to_vec(&as_json(&session)).unwrap();
    let r = post(
        &server,
        "/api/traces/otlp/v1/traces",
        body,
        &[("Content-Type", "application/json"), ("X-LangSight-Project-Id", &p)],
    )
    .await;
    assert_eq!(r.status(), 200);
    let scoped = admin.get(&format!("/api/agents/sessions?project_id={p}")).await.body;
    assert_eq!(scoped[0]["session_id"], json!(session));

    let r = post(&server, "/api/traces/otlp", b"{not json".to_vec(), &[("Content-Type", "application/json")]).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("not OTLP/JSON"));
    let keyless = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "x", "attributes": [{"value": {"stringValue": "v"}}]}]}]}]});
    let r = post(&server, "/api/traces/otlp", serde_json::to_vec(&keyless).unwrap(), &[]).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("spans[0].attributes[0] has no \\\"key\\\""));
    let r = post(&server, "/v1/traces", b"\xff\xff\xff".to_vec(), &[("Content-Type", "application/x-protobuf")]).await;
    assert_eq!(r.status(), 400);
    let r = post(
        &server,
        "/v1/traces",
        b"plain".to_vec(),
        &[("Content-Type", "application/x-protobuf"), ("Content-Encoding", "gzip")],
    )
    .await;
    assert_eq!(r.status(), 400);
    let r =
        post(&server, "/v1/traces", vec![], &[("Content-Type", "application/x-protobuf"), ("Content-Encoding", "br")])
            .await;
    assert_eq!(r.status(), 415);
    let r = test_support::http().post(format!("{}/v1/traces", server.url)).body(vec![]).send().await.unwrap();
    assert_eq!(r.status(), 401, "a key is needed like every ingest path");
    server.stop().await;
}

async fn scrape(server: &TestServer) -> String {
    let r = test_support::http().get(format!("{}/metrics", server.url)).bearer_auth("scrape").send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// The value of the metric line that starts with `series` (0 when absent).
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

/// OTLP spans go the same way as SDK spans after decoding: each stored tool/LLM span is a `span:new` event on
/// the live view (in export order; the plain HTTP span is in neither store nor stream), and counted in the
/// ingest and live-view metrics.
#[tokio::test]
async fn otlp_spans_are_streamed_live_and_counted_in_metrics() {
    use std::time::Duration;
    use test_support::sse::SseStream;
    let server = TestServer::start_with(|c| {
        c.api_keys = vec![langsight_server::config::Secret(ADMIN_KEY.into())];
        c.metrics_token = Some(langsight_server::config::Secret("scrape".into()));
    })
    .await;
    let before = scrape(&server).await;
    let mut live = SseStream::connect(&format!("{}/api/live/events", server.url), Some(ADMIN_KEY), None).await;
    assert_eq!(live.status, 200);
    assert!(live.next(Duration::from_secs(5)).await.unwrap().comments[0].starts_with("connected"));

    let (by_json, by_protobuf) = (session_id(), session_id());
    let body = serde_json::to_vec(&as_json(&by_json)).unwrap();
    let r = post(&server, "/api/traces/otlp", body, &[("Content-Type", "application/json")]).await;
    assert_eq!(r.status(), 202);
    let r = post(
        &server,
        "/v1/traces",
        gzip(&as_protobuf(&by_protobuf)),
        &[("Content-Type", "application/x-protobuf"), ("Content-Encoding", "gzip")],
    )
    .await;
    assert_eq!(r.status(), 200);

    let spans = |frames: &[test_support::sse::Frame]| -> Vec<(String, String, String)> {
        frames
            .iter()
            .filter(|f| f.event.as_deref() == Some("span:new"))
            .map(|f| {
                let d = f.json();
                let s = |k: &str| d[k].as_str().unwrap_or_default().to_string();
                (s("session_id"), s("span_id"), s("server_name"))
            })
            .collect()
    };
    let frames = live.read_until(Duration::from_secs(10), |f| spans(f).len() >= 4).await;
    let got = spans(&frames);
    // Each export's tool and LLM span, in the export's order, and nothing else (the two exports' events are
    // published off their request paths, so their relative order is not fixed).
    assert_eq!(got.len(), 4, "{got:?}");
    for sid in [&by_json, &by_protobuf] {
        let of_session: Vec<(String, String, String)> = got.iter().filter(|(s, _, _)| s == sid).cloned().collect();
        let expected =
            vec![(sid.to_string(), TOOL.into(), "github".into()), (sid.to_string(), LLM.into(), "anthropic".into())];
        assert_eq!(of_session, expected, "{got:?}");
    }
    let tool = frames.iter().find(|f| f.event.as_deref() == Some("span:new")).unwrap().json();
    assert_eq!((tool["tool_name"].clone(), tool["agent_name"].clone()), (json!("search_issues"), json!("triager")));
    assert_eq!(tool["latency_ms"], json!(120.0));

    let after = scrape(&server).await;
    let grew = |series: &str| metric(&after, series) - metric(&before, series);
    assert_eq!(grew("langsight_spans_ingested_total"), 4.0, "{after}");
    assert_eq!(grew("langsight_sse_events_published_total"), 4.0, "{after}");
    assert!(grew("langsight_sse_events_delivered_total") >= 4.0, "{after}");
    assert_eq!(
        grew(r#"langsight_http_requests_total{method="POST",path="/api/traces/otlp",status="202"}"#),
        1.0,
        "{after}"
    );
    assert_eq!(grew(r#"langsight_http_requests_total{method="POST",path="/v1/traces",status="200"}"#), 1.0, "{after}");
    drop(live); // an open stream would hold the graceful stop until its drain timeout
    server.stop().await;
}
