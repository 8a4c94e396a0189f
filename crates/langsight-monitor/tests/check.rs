//! Health checks against a real MCP server (the project's fixture, over stdio and Streamable HTTP).

use langsight_monitor::{check, check_pinned, Pinned, ServerSpec, Status, Transport};
use serde_json::{json, Map};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The fixture binary, built by the same `cargo test`/`nextest` run into the shared target directory.
fn fixture() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let bin = dir.join("mcp-fixture");
    assert!(bin.exists(), "build the fixture first: cargo build -p mcp-fixture ({})", bin.display());
    bin
}

fn stdio(name: &str, state: Option<&std::path::Path>, timeout: Duration) -> ServerSpec {
    let mut env = Vec::new();
    if let Some(s) = state {
        env.push(("MCP_FIXTURE_STATE".to_string(), s.display().to_string()));
    }
    ServerSpec {
        name: name.into(),
        transport: Transport::Stdio { command: fixture().display().to_string(), args: vec!["--stdio".into()], env },
        timeout,
        health_tool: None,
        health_tool_args: Map::new(),
    }
}

fn write_state(path: &std::path::Path, tools: &[&str], mode: &str) {
    let tools: Vec<_> = tools
        .iter()
        .map(|t| json!({"name": t, "description": format!("{t} tool"), "inputSchema": {"type": "object", "properties": {"q": {"type": "string"}}}}))
        .collect();
    std::fs::write(path, json!({"tools": tools, "mode": mode}).to_string()).unwrap();
}

/// Live `mcp-fixture` processes whose parent is this test process.
fn fixture_children() -> usize {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let comm = stat.split('(').nth(1).and_then(|r| r.split(')').next()).unwrap_or("");
            let ppid = stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().nth(1)).unwrap_or("");
            let state = stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().next()).unwrap_or("");
            comm.starts_with("mcp-fixture") && ppid == me && state != "X"
        })
        .count()
}

#[tokio::test]
async fn stdio_server_is_up_with_its_tools_and_a_stable_schema_hash() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    write_state(&state, &["search", "read_file", "echo"], "ok");
    let r = check(&stdio("fx", Some(&state), Duration::from_secs(10))).await;
    assert_eq!(r.status, Status::Up, "{:?}", r.error);
    assert_eq!(r.tools.len(), 3);
    assert!(r.latency_ms.unwrap() > 0.0);
    assert_eq!(r.server_version.as_deref(), Some("1.0.0"));
    let again = check(&stdio("fx", Some(&state), Duration::from_secs(10))).await;
    assert_eq!(again.schema_hash, r.schema_hash, "same tools, same hash");
    write_state(&state, &["search", "read_file"], "ok");
    let changed = check(&stdio("fx", Some(&state), Duration::from_secs(10))).await;
    assert_eq!(changed.tools.len(), 2);
    assert_ne!(changed.schema_hash, r.schema_hash, "a removed tool changes the hash");
}

#[tokio::test]
async fn failures_map_to_down_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    write_state(&state, &["echo"], "fail");
    let r = check(&stdio("fx", Some(&state), Duration::from_secs(10))).await;
    assert_eq!(r.status, Status::Down);
    assert!(r.error.as_deref().unwrap().contains("tools/list failed"), "{:?}", r.error);
    assert!(r.latency_ms.is_none() && r.schema_hash.is_none());

    let mut missing = stdio("nope", None, Duration::from_secs(5));
    missing.transport = Transport::Stdio { command: "/nonexistent/mcp-server".into(), args: vec![], env: vec![] };
    let r = check(&missing).await;
    assert_eq!(r.status, Status::Down);
    assert!(r.error.as_deref().unwrap().starts_with("cannot start '/nonexistent/mcp-server'"), "{:?}", r.error);

    let mut sse = stdio("legacy", None, Duration::from_secs(5));
    sse.transport = Transport::Sse { url: "http://127.0.0.1:1/sse".into(), headers: vec![] };
    let r = check(&sse).await;
    assert_eq!(r.status, Status::Down);
    assert!(
        r.error.as_deref().unwrap().starts_with("cannot open the SSE stream at http://127.0.0.1:1/sse"),
        "{:?}",
        r.error
    );
}

#[tokio::test]
async fn a_hanging_server_times_out_and_leaves_no_process_behind() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    write_state(&state, &["echo"], "hang");
    let started = Instant::now();
    let r = check(&stdio("slow", Some(&state), Duration::from_secs(1))).await;
    assert_eq!(r.status, Status::Down);
    assert_eq!(r.error.as_deref(), Some("timeout after 1s"));
    assert!(started.elapsed() < Duration::from_secs(3), "bounded by the timeout: {:?}", started.elapsed());
    // The child is killed and reaped (no zombie) shortly after.
    let deadline = Instant::now() + Duration::from_secs(5);
    while fixture_children() > 0 {
        assert!(Instant::now() < deadline, "the hung child was not reaped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn health_tool_failures_degrade() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    write_state(&state, &["echo", "ping"], "ok");
    let mut spec = stdio("fx", Some(&state), Duration::from_secs(10));
    spec.health_tool = Some("ping".into());
    assert_eq!(check(&spec).await.status, Status::Up);
    spec.health_tool = Some("missing".into());
    let r = check(&spec).await;
    assert_eq!(r.status, Status::Degraded);
    assert_eq!(r.error.as_deref(), Some("health_tool 'missing' not found in tools/list. Available: echo, ping"));
    write_state(&state, &["echo", "ping"], "tool_error");
    spec.health_tool = Some("ping".into());
    let r = check(&spec).await;
    assert_eq!(r.status, Status::Degraded);
    assert!(r.error.as_deref().unwrap().starts_with("health_tool 'ping' returned error"), "{:?}", r.error);
}

#[tokio::test]
async fn streamable_http_server_is_checked_and_its_death_noticed() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    write_state(&state, &["a", "b"], "ok");
    let mut server = Command::new(fixture())
        .arg("--http")
        .env("MCP_FIXTURE_STATE", &state)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("LISTENING ").unwrap().to_string();
    let spec = ServerSpec {
        name: "http-fx".into(),
        transport: Transport::StreamableHttp { url: url.clone(), headers: vec![("X-Token".into(), "t".into())] },
        timeout: Duration::from_secs(10),
        health_tool: None,
        health_tool_args: Map::new(),
    };
    let r = check(&spec).await;
    assert_eq!(r.status, Status::Up, "{:?}", r.error);
    assert_eq!(r.tools.len(), 2);
    // The pinned client (what servers registered through the API get) completes the same check.
    let addr: std::net::SocketAddr = url.trim_start_matches("http://").trim_end_matches("/mcp").parse().unwrap();
    let pin = Pinned { host: addr.ip().to_string(), addrs: vec![addr] };
    let r = check_pinned(&spec, Some(&pin)).await;
    assert_eq!((r.status, r.tools.len()), (Status::Up, 2), "{:?}", r.error);
    server.kill().unwrap();
    server.wait().unwrap();
    let r = check(&spec).await;
    assert_eq!(r.status, Status::Down);
    assert!(r.error.is_some());
}
