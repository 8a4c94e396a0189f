//! The monitor loop with a real MCP server (the fixture over stdio): results stored and served, the
//! circuit breaker wired in (no checks while open, half-open probe, recovery), `health:check` events.

use langsight_monitor::{ServerSpec, Transport};
use langsight_server::config::{MonitoredServer, Secret};
use langsight_shared::breaker::BreakerConfig;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use test_support::sse::SseStream;
use test_support::{TestServer, ADMIN_KEY};

fn fixture() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(|d| d.parent()).unwrap().join("mcp-fixture");
    assert!(bin.exists(), "build the fixture first: cargo build -p mcp-fixture");
    bin
}

fn write_state(path: &Path, tools: &[&str], mode: &str) {
    let tools: Vec<_> = tools.iter().map(|t| json!({"name": t, "inputSchema": {"type": "object"}})).collect();
    std::fs::write(path, json!({"tools": tools, "mode": mode}).to_string()).unwrap();
}

fn checks(log: &Path) -> usize {
    std::fs::read_to_string(log).map(|s| s.lines().count()).unwrap_or(0)
}

/// The fixture as a monitored stdio server named `fx`, reading `state` and counting checks in `log`.
fn fixture_server(state: &Path, log: Option<&Path>, breaker: BreakerConfig) -> MonitoredServer {
    let mut env = vec![("MCP_FIXTURE_STATE".to_string(), state.display().to_string())];
    if let Some(log) = log {
        env.push(("MCP_FIXTURE_LOG".to_string(), log.display().to_string()));
    }
    MonitoredServer {
        spec: ServerSpec {
            name: "fx".into(),
            transport: Transport::Stdio { command: fixture().display().to_string(), args: vec!["--stdio".into()], env },
            timeout: Duration::from_secs(10),
            health_tool: None,
            health_tool_args: Default::default(),
        },
        breaker,
    }
}

/// One round of checks now (`POST /api/health/check`), which must find `fx`'s circuit open and leave the server
/// alone.
async fn paused_round(server: &TestServer) {
    let r = server.admin().post("/api/health/check", &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let fx = r.body.as_array().and_then(|a| a.iter().find(|s| s["server_name"] == json!("fx"))).cloned();
    let fx = fx.unwrap_or_else(|| panic!("fx in {}", r.text));
    assert_eq!((fx["status"].clone(), fx["circuit_state"].clone()), (json!("down"), json!("open")), "{fx}");
    assert!(fx["error"].as_str().unwrap_or_default().starts_with("circuit breaker open"), "{fx}");
}

async fn wait_for(server: &TestServer, what: &str, mut pred: impl FnMut(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = server.admin().get("/api/health/servers").await;
        if let Some(s) = r.body.as_array().and_then(|a| a.first()) {
            if pred(s) {
                return s.clone();
            }
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {}", r.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_checks_stores_and_respects_the_circuit_breaker() {
    let dir = tempfile::tempdir().unwrap();
    let (state, log) = (dir.path().join("state.json"), dir.path().join("checks.log"));
    write_state(&state, &["search", "read_file"], "ok");
    let server = TestServer::start_with(|c| {
        c.api_keys = vec![Secret(ADMIN_KEY.into())];
        c.monitor_interval = Duration::from_millis(300);
        c.servers = vec![fixture_server(
            &state,
            Some(&log),
            BreakerConfig { failure_threshold: 2, cooldown_ms: 2000, half_open_max_calls: 1 },
        )];
    })
    .await;
    let mut events = SseStream::connect(&format!("{}/api/live/events", server.url), Some(ADMIN_KEY), None).await;

    let up = wait_for(&server, "up", |s| s["status"] == json!("up")).await;
    assert_eq!(up["tools_count"], json!(2));
    assert_eq!(up["circuit_state"], json!("closed"));
    assert!(up["schema_hash"].is_string());
    let ev = events
        .read_until(Duration::from_secs(10), |f| f.iter().any(|f| f.event.as_deref() == Some("health:check")))
        .await;
    let hc = ev.iter().find(|f| f.event.as_deref() == Some("health:check")).expect("health:check event").json();
    // docs/live.md's fields, each with its type, and no other.
    let mut fields: Vec<&str> = hc.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort();
    assert_eq!(fields, ["checked_at", "circuit_state", "error", "latency_ms", "project_id", "server_name", "status"]);
    assert_eq!((hc["server_name"].clone(), hc["circuit_state"].clone()), (json!("fx"), json!("closed")));
    assert_eq!((hc["status"].clone(), hc["error"].clone()), (json!("up"), Value::Null), "{hc}");
    assert_eq!(hc["project_id"], Value::Null, "a server from the configuration: {hc}");
    assert!(hc["latency_ms"].as_f64().is_some_and(|l| l >= 0.0), "{hc}");
    let at = hc["checked_at"].as_str().unwrap_or_default();
    assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "ISO 8601: {hc}");

    // The server starts failing: down, and after 2 failures the circuit opens.
    write_state(&state, &["search", "read_file"], "fail");
    let open = wait_for(&server, "circuit open", |s| s["circuit_state"] == json!("open")).await;
    assert_eq!(open["status"], json!("down"));
    assert!(open["error"].as_str().unwrap().contains("tools/list failed"));
    // While open, nothing is sent to the server: two rounds (run on demand, so each has run when its answer
    // arrives) take the breaker's answer instead of contacting the server.
    let during = checks(&log);
    paused_round(&server).await;
    paused_round(&server).await;
    assert_eq!(checks(&log), during, "no checks during the cooldown");
    // It recovers; after the cooldown a half-open probe succeeds and closes the circuit.
    write_state(&state, &["search", "read_file"], "ok");
    let closed =
        wait_for(&server, "recovery", |s| s["circuit_state"] == json!("closed") && s["status"] == json!("up")).await;
    assert_eq!(closed["circuit"]["consecutive_failures"], json!(0));

    let history = server.admin().get("/api/health/servers/fx/history?limit=100").await;
    let statuses: Vec<&str> = history.body.as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert!(statuses.contains(&"down") && statuses.contains(&"up"), "{statuses:?}");
    assert_eq!(server.admin().get("/api/health/servers/nope").await.status, 404);
    let card = server.admin().get("/api/health/servers/fx/scorecard").await;
    assert_eq!(card.status, 200, "{}", card.text);
    let availability = &card.body["dimensions"][0];
    assert_eq!(availability["name"], json!("availability"));
    let score = availability["score"].as_f64().unwrap();
    assert!(score > 0.0 && score < 100.0, "some checks failed, some passed: {score}");
    assert!(["A+", "A", "B", "C", "D", "F"].contains(&card.body["grade"].as_str().unwrap()));
    let now = server.admin().post("/api/health/check", &json!({})).await;
    assert_eq!(now.status, 200, "{}", now.text);
    assert_eq!(now.body[0]["server_name"], json!("fx"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_drift_is_detected_classified_and_one_shot() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    write_state(&state, &["search", "read_file"], "ok");
    let server = TestServer::start_with(|c| {
        c.api_keys = vec![Secret(ADMIN_KEY.into())];
        c.monitor_interval = Duration::from_millis(300);
        c.servers = vec![fixture_server(&state, None, BreakerConfig::default())];
    })
    .await;
    let first = wait_for(&server, "up", |s| s["status"] == json!("up")).await;
    // A tool disappears and another arrives: breaking drift, reported once.
    write_state(&state, &["search", "write_file"], "ok");
    let drifted = wait_for(&server, "drift", |s| s["schema_hash"] != first["schema_hash"]).await;
    let history = server.admin().get("/api/health/servers/fx/history?limit=100").await;
    let drift_row =
        history.body.as_array().unwrap().iter().find(|r| r["status"] == json!("degraded")).expect("a degraded check");
    assert!(drift_row["error"].as_str().unwrap().starts_with("schema drift (BREAKING): "), "{drift_row}");
    assert!(drift_row["error"].as_str().unwrap().ends_with("— 2 change(s)"));
    let rows = server.admin().get("/api/health/servers/fx/drift-history").await;
    let kinds: Vec<(String, String, String)> = rows
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["tool_name"].as_str().unwrap().into(),
                r["drift_type"].as_str().unwrap().into(),
                r["change_kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(kinds.contains(&("read_file".into(), "breaking".into(), "tool_removed".into())), "{kinds:?}");
    assert!(kinds.contains(&("write_file".into(), "compatible".into(), "tool_added".into())), "{kinds:?}");
    // One-shot: the next check with the same tools is up again.
    let again =
        wait_for(&server, "up again", |s| s["status"] == json!("up") && s["schema_hash"] == drifted["schema_hash"])
            .await;
    assert_eq!(again["tools_count"], json!(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_circuit_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (state, log) = (dir.path().join("state.json"), dir.path().join("checks.log"));
    write_state(&state, &["t"], "fail");
    let servers = vec![fixture_server(
        &state,
        Some(&log),
        BreakerConfig { failure_threshold: 2, cooldown_ms: 60_000, half_open_max_calls: 1 },
    )];
    let config = |c: &mut langsight_server::config::Config, servers: &Vec<MonitoredServer>| {
        c.api_keys = vec![Secret(ADMIN_KEY.into())];
        c.monitor_interval = Duration::from_millis(300);
        c.servers = servers.clone();
    };
    let server = TestServer::start_with(|c| config(c, &servers)).await;
    wait_for(&server, "circuit open", |s| s["circuit_state"] == json!("open")).await;
    let stopped = server.stop().await;
    // A new process (memory shared state: nothing survived but the stored results).
    let before = checks(&log);
    let again = stopped.restart(|c| config(c, &servers)).await;
    paused_round(&again).await;
    paused_round(&again).await;
    let s = again.admin().get("/api/health/servers").await;
    assert_eq!(s.body[0]["circuit_state"], json!("open"), "{}", s.text);
    assert_eq!(checks(&log), before, "no check sent to a server whose circuit is still open");
}
