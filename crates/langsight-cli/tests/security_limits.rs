//! Crash-proof, bounded reads and writes (issue 16), attacked over HTTP against the real binary: deep parent
//! chains, OTLP memory amplification, oversized span fields, and sessions hoarding names.

use serde_json::{json, Value};
use std::io::Write;
use test_support::process::ServerProcess;
use test_support::session_id;

const KEY: &str = "limits-test-key";

fn start(dir: &std::path::Path) -> ServerProcess {
    ServerProcess::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_langsight")),
        dir,
        1,
        &[
            ("LANGSIGHT_API_KEYS", KEY),
            ("LANGSIGHT_RATE_LIMIT_ENABLED", "false"),
            ("LANGSIGHT_MONITOR_ENABLED", "false"),
        ],
        &[],
    )
}

async fn post(url: &str, path: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = test_support::http().post(format!("{url}{path}")).header("X-API-Key", KEY).body(body);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
        req = req.header("Content-Type", "application/json");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("the server answers (it is still alive)");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

async fn get(url: &str, path: &str) -> (u16, String) {
    let r = test_support::http()
        .get(format!("{url}{path}"))
        .header("X-API-Key", KEY)
        .send()
        .await
        .expect("the server answers (it is still alive)");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// A span starting `i` milliseconds after a recent instant, so stored order is chain order.
fn span(session: &str, id: &str, parent: Option<&str>, i: usize) -> Value {
    let t = chrono::Utc::now() - chrono::Duration::minutes(30) + chrono::Duration::milliseconds(i as i64);
    json!({"span_id": id, "parent_span_id": parent, "session_id": session, "server_name": "srv",
           "tool_name": "t", "started_at": t.to_rfc3339(), "ended_at": t.to_rfc3339(), "status": "success"})
}

/// Sends a parent chain `depth` deep into one session, in batches that fit the body limit.
async fn ingest_chain(url: &str, session: &str, depth: usize) {
    let ids: Vec<String> = (0..depth).map(|i| format!("c{i}")).collect();
    for chunk in (0..depth).collect::<Vec<_>>().chunks(20_000) {
        let batch: Vec<Value> =
            chunk.iter().map(|&i| span(session, &ids[i], i.checked_sub(1).map(|p| ids[p].as_str()), i)).collect();
        let (status, body) = post(url, "/api/traces/spans", serde_json::to_vec(&batch).unwrap(), &[]).await;
        assert_eq!(status, 202, "{body}");
    }
}

/// The trace fields we check; `root_spans` nests thousands deep, deeper than serde_json parses into a Value.
#[derive(serde::Deserialize)]
struct Trace {
    total_spans: usize,
    spans_flat: Vec<Value>,
}

/// Opens the trace and checks it holds one unbroken chain of `expected` spans.
async fn open_chain(url: &str, session: &str, expected: usize) {
    let (status, text) = get(url, &format!("/api/agents/sessions/{session}")).await;
    assert_eq!(status, 200, "{}", &text[..text.len().min(300)]);
    let trace: Trace = serde_json::from_str(&text).expect("the trace is JSON");
    assert_eq!((trace.total_spans, trace.spans_flat.len()), (expected, expected));
    // One chain: every span but the last has exactly one child, nested `expected` levels deep.
    assert_eq!(text.matches("\"children\":[{").count(), expected - 1);
    assert_eq!(text.matches("\"children\":[]").count(), 1);
    let depth = 2 * expected + 2;
    assert_eq!(langsight_core::span::too_deep(&text, depth), None);
    assert!(langsight_core::span::too_deep(&text, depth - 1).is_some(), "the chain is nested, not flattened");
}

/// Issue 16: a session whose spans form a parent chain 7,000+ deep aborted the whole server with a stack
/// overflow when its trace was opened. Now a 10,000-deep and a 100,000-deep chain open (the trace holds the
/// original's cap of 10,000 spans, here the first 10,000 links of the chain), the server stays up, and the
/// CLI draws the tree.
#[tokio::test(flavor = "multi_thread")]
async fn deep_parent_chains_open_without_killing_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let (ten_k, hundred_k) = (session_id(), session_id());
    ingest_chain(&server.url, &ten_k, 10_000).await;
    ingest_chain(&server.url, &hundred_k, 100_000).await;
    open_chain(&server.url, &ten_k, 10_000).await;
    open_chain(&server.url, &hundred_k, 10_000).await;
    // Opened twice, and the server still answers other requests.
    open_chain(&server.url, &ten_k, 10_000).await;
    let (status, _) = get(&server.url, "/api/agents/sessions").await;
    assert_eq!(status, 200);

    // The CLI's trace view and its --json output read the same trace without recursion.
    let cli = |json_out: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_langsight"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("LANGSIGHT_URL", &server.url)
            .env("LANGSIGHT_API_KEY", KEY)
            .args(["sessions", "--id", &ten_k]);
        if json_out {
            cmd.arg("--json");
        }
        cmd.output().unwrap()
    };
    let out = cli(false);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 2 + 10_000, "a header and one line per span");
    assert!(text.lines().last().unwrap_or("").contains("[depth 9999]"));
    let out = cli(true);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).matches("\"children\":[").count(), 10_000);
}

/// Peak resident memory of the server process so far, in MiB.
fn peak_mib(server: &ServerProcess) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM in /proc/<pid>/status");
    kb / 1024
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field(tag: u64, data: &[u8], out: &mut Vec<u8>) {
    varint(tag << 3 | 2, out);
    varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

/// OTLP/protobuf: one resource with a string attribute `key` of `value`, and `names` as spans.
fn otlp_protobuf(key: &str, value: &str, names: &[String]) -> Vec<u8> {
    let mut any = Vec::new();
    field(1, value.as_bytes(), &mut any);
    let mut kv = Vec::new();
    field(1, key.as_bytes(), &mut kv);
    field(2, &any, &mut kv);
    let mut resource = Vec::new();
    field(1, &kv, &mut resource);
    let mut scope = Vec::new();
    for name in names {
        let mut span = Vec::new();
        if !name.is_empty() {
            field(5, name.as_bytes(), &mut span);
        }
        field(2, &span, &mut scope);
    }
    let mut rs = Vec::new();
    field(1, &resource, &mut rs);
    field(2, &scope, &mut rs);
    let mut req = Vec::new();
    field(1, &rs, &mut req);
    req
}

fn otlp_json(key: &str, value: &str, names: &[String]) -> Vec<u8> {
    let spans: Vec<Value> = names.iter().map(|n| if n.is_empty() { json!({}) } else { json!({"name": n}) }).collect();
    serde_json::to_vec(&json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": key, "value": {"stringValue": value}}]},
        "scopeSpans": [{"spans": spans}]
    }]}))
    .unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Issue 16: a 0.5 MB OTLP body (one 500 KB resource attribute, 2,000 empty spans) took the server from
/// 15 MiB to ~1 GiB, and 1 MB killed it: the resource's attributes were copied into every span before the
/// spans were filtered. Every shape here — JSON, protobuf, gzip, attributes the mapping reads or not, spans
/// kept or dropped, a gzip bomb — must leave the peak resident memory under 150 MiB.
#[tokio::test(flavor = "multi_thread")]
async fn otlp_bodies_cannot_amplify_memory() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let before = peak_mib(&server);
    let empty: Vec<String> = vec![String::new(); 2_000];
    let tools: Vec<String> = (0..2_000).map(|i| format!("mcp.srv.tool{i}")).collect();
    let mut figures = Vec::new();
    for (size, key, names, kept) in [
        (500_000, "huge", &empty, 0),
        (1_000_000, "huge", &empty, 0),
        (1_000_000, "gen_ai.system", &empty, 0),
        (1_000_000, "mcp.server.name", &tools, 2_000),
    ] {
        let value = "x".repeat(size);
        for (label, body, headers) in [
            ("json", otlp_json(key, &value, names), vec![("Content-Type", "application/json")]),
            ("protobuf", otlp_protobuf(key, &value, names), vec![("Content-Type", "application/x-protobuf")]),
            (
                "protobuf+gzip",
                gzip(&otlp_protobuf(key, &value, names)),
                vec![("Content-Type", "application/x-protobuf"), ("Content-Encoding", "gzip")],
            ),
        ] {
            let (status, text) = post(&server.url, "/api/traces/otlp", body, &headers).await;
            assert_eq!(status, 202, "{label} {key} {size}: {text}");
            assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["accepted"], json!(kept), "{label}");
            figures.push(format!("{label} {key} {size} B × {} spans: {} MiB", names.len(), peak_mib(&server)));
        }
    }
    // A gzip bomb: 100 MiB of zeros in ~100 KB is cut off at the decompressed limit.
    let bomb = gzip(&vec![0u8; 100 * 1024 * 1024]);
    let (status, _) = post(
        &server.url,
        "/v1/traces",
        bomb,
        &[("Content-Type", "application/x-protobuf"), ("Content-Encoding", "gzip")],
    )
    .await;
    assert_eq!(status, 413);
    figures.push(format!("gzip bomb: {} MiB", peak_mib(&server)));
    let after = peak_mib(&server);
    eprintln!("peak RSS before {before} MiB, after {after} MiB\n{}", figures.join("\n"));
    assert!(after < 150, "peak RSS {after} MiB (from {before} MiB):\n{}", figures.join("\n"));
    // The server is alive and stored the kept spans with their server name cut to the limit.
    let (status, _) = get(&server.url, "/api/agents/sessions").await;
    assert_eq!(status, 200);
}

/// Issue 16: an 8 MB `span_id` or a 9 MB `project_id` was stored (and sent to every live subscriber). Every
/// text field now has a limit, enforced with the original's 422 naming span and field, and nothing of a
/// refused batch is stored.
#[tokio::test(flavor = "multi_thread")]
async fn every_oversized_span_field_is_refused_naming_span_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let big = |n: usize| Value::String("a".repeat(n));
    let mut deep = json!({});
    for _ in 0..65 {
        deep = json!({ "a": deep });
    }
    let cases: Vec<(&str, Value)> = vec![
        ("span_id", big(8_000_000)),
        ("parent_span_id", big(257)),
        ("trace_id", big(257)),
        ("session_id", big(257)),
        ("project_id", big(9_000_000)),
        ("replay_of", big(257)),
        ("model_id", big(257)),
        ("finish_reason", big(257)),
        ("target_agent_name", big(257)),
        ("schema_version", big(65)),
        ("server_name", big(257)),
        ("tool_name", big(513)),
        ("agent_name", big(257)),
        ("error", big(8_193)),
        ("output_result", big(131_073)),
        ("llm_input", big(131_073)),
        ("llm_output", big(131_073)),
        ("input_args", json!({ "a": "x".repeat(131_072) })),
        ("input_args", deep),
    ];
    let session = session_id();
    for (field, value) in cases {
        let good = span(&session, "ok", None, 0);
        let mut bad = span(&session, "bad", None, 1);
        bad[field] = value;
        let (status, text) =
            post(&server.url, "/api/traces/spans", serde_json::to_vec(&json!([good, bad])).unwrap(), &[]).await;
        assert_eq!(status, 422, "{field}: {}", &text[..text.len().min(300)]);
        assert!(text.len() < 4_096, "{field}: the error does not echo the value ({} bytes)", text.len());
        let detail: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(detail["detail"][0]["loc"], json!(["body", 1, field]), "{field}: {text}");
    }
    let (_, list) = get(&server.url, "/api/agents/sessions").await;
    assert_eq!(serde_json::from_str::<Value>(&list).unwrap(), json!([]), "nothing of a refused batch is stored");
    let (status, _) = get(&server.url, &format!("/api/agents/sessions/{session}")).await;
    assert_eq!(status, 404);

    // OTLP spans are cut to the same limits (an exporter cannot act on a 422 per span).
    let long = "s".repeat(100_000);
    let otlp = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "name": "call", "spanId": "ab".repeat(50_000), "attributes": [
            {"key": "mcp.tool.name", "value": {"stringValue": long}},
            {"key": "mcp.server.name", "value": {"stringValue": long}},
            {"key": "session.id", "value": {"stringValue": session}}]}]}]}]});
    let (status, text) = post(&server.url, "/api/traces/otlp", serde_json::to_vec(&otlp).unwrap(), &[]).await;
    assert_eq!((status, text.as_str()), (202, r#"{"accepted":1}"#));
    let (_, trace) = get(&server.url, &format!("/api/agents/sessions/{session}")).await;
    let trace: Value = serde_json::from_str(&trace).unwrap();
    let stored = &trace["spans_flat"][0];
    assert_eq!(stored["span_id"].as_str().unwrap().len(), 256);
    assert_eq!(stored["server_name"].as_str().unwrap().len(), 256);
    assert_eq!(stored["tool_name"].as_str().unwrap().len(), 512);
}

/// Issue 16: 66k distinct names in one session made every later one-span ingest into it take 764 ms and
/// the sessions list 16.7 MB. The rollup keeps 256 names of each kind and counts the spans of the others.
#[tokio::test(flavor = "multi_thread")]
async fn one_session_cannot_hoard_names() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let session = session_id();
    // The review's figure. It also keeps the ingest path honest: a per-name linear scan (the catalog's, once)
    // turns these three batches from ~2 s into ~5 minutes.
    let total = 66_000;
    for chunk in (0..total).collect::<Vec<usize>>().chunks(22_000) {
        let batch: Vec<Value> = chunk
            .iter()
            .map(|&i| {
                let mut s = span(&session, &format!("s{i}"), None, i);
                s["server_name"] = json!(format!("server-{i:06}"));
                s["agent_name"] = json!(format!("agent-{i:06}"));
                s["tool_name"] = json!(format!("tool-{i:06}"));
                s
            })
            .collect();
        let (status, text) = post(&server.url, "/api/traces/spans", serde_json::to_vec(&batch).unwrap(), &[]).await;
        assert_eq!(status, 202, "{text}");
    }
    // One more span into the same session is accepted, and the list stays small.
    let (status, _) = post(
        &server.url,
        "/api/traces/spans",
        serde_json::to_vec(&json!([span(&session, "one-more", None, total)])).unwrap(),
        &[],
    )
    .await;
    assert_eq!(status, 202);
    let (status, text) = get(&server.url, "/api/agents/sessions").await;
    assert_eq!(status, 200);
    assert!(text.len() < 64 * 1024, "the sessions list is {} bytes", text.len());
    let list: Value = serde_json::from_str(&text).unwrap();
    let s = &list[0];
    assert_eq!(s["servers_used"].as_array().map(Vec::len), Some(256));
    assert_eq!(s["agents_used"].as_array().map(Vec::len), Some(256));
    assert_eq!(s["servers_used"][0], json!("server-000000"), "the first names in sort order are kept");
    // The extra span's server "srv" sorts after every "server-…" name: dropped and counted.
    assert_eq!(s["servers_dropped"], json!(total - 256 + 1));
    assert_eq!(s["agents_dropped"], json!(total - 256));
    assert_eq!(s["tools_dropped"], json!(total - 256 + 1));
    assert_eq!(s["tool_calls"], json!(total + 1));
    // The filter by agent still finds a kept agent.
    let (_, filtered) = get(&server.url, "/api/agents/sessions?agent_name=agent-000001").await;
    assert_eq!(serde_json::from_str::<Value>(&filtered).unwrap()[0]["session_id"], json!(session));
}
