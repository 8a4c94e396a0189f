//! Health checks against the official MCP reference server (`@modelcontextprotocol/server-everything`,
//! installed from npm by `scripts/test`), over stdio, Streamable HTTP and the legacy HTTP+SSE transport.

use langsight_monitor::{check, ServerSpec, Status, Transport};
use serde_json::Map;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Tools the reference server version we install (2026.8.31) exposes.
const EVERYTHING_TOOLS: usize = 13;

fn everything() -> String {
    let path = std::env::var("LANGSIGHT_TEST_EVERYTHING").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/langsight-test-npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
    });
    assert!(
        std::path::Path::new(&path).exists(),
        "the MCP reference server is not installed; run ./scripts/test (it installs it) or set LANGSIGHT_TEST_EVERYTHING"
    );
    path
}

fn spec(transport: Transport) -> ServerSpec {
    ServerSpec {
        name: "everything".into(),
        transport,
        timeout: Duration::from_secs(30),
        health_tool: None,
        health_tool_args: Map::new(),
    }
}

#[tokio::test]
async fn the_reference_server_is_up_over_stdio() {
    let r = check(&spec(Transport::Stdio {
        command: "node".into(),
        args: vec![everything(), "stdio".into()],
        env: vec![],
    }))
    .await;
    assert_eq!(r.status, Status::Up, "{:?}", r.error);
    assert_eq!(r.tools.len(), EVERYTHING_TOOLS);
    assert!(r.tools.iter().any(|t| t.name == "echo"));
}

/// Starts the reference server in an HTTP mode on a free port; killed when dropped.
struct HttpEverything {
    child: std::process::Child,
    port: u16,
}

impl HttpEverything {
    fn start(mode: &str, ready: &str) -> HttpEverything {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = Command::new("node")
            .args([everything().as_str(), mode])
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node runs");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        loop {
            let line = lines.next().expect("the server logs until it listens").unwrap();
            if line.contains(ready) {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines.by_ref() {});
        HttpEverything { child, port }
    }
}

impl Drop for HttpEverything {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_reference_server_is_up_over_streamable_http() {
    let server = HttpEverything::start("streamableHttp", "listening on port");
    let url = format!("http://127.0.0.1:{}/mcp", server.port);
    let r = check(&spec(Transport::StreamableHttp { url, headers: vec![] })).await;
    assert_eq!(r.status, Status::Up, "{:?}", r.error);
    assert_eq!(r.tools.len(), EVERYTHING_TOOLS);
}

#[tokio::test]
async fn the_reference_server_is_up_over_legacy_sse() {
    let server = HttpEverything::start("sse", "Server is running on port");
    let url = format!("http://127.0.0.1:{}/sse", server.port);
    let r = check(&spec(Transport::Sse { url, headers: vec![("X-Probe".into(), "langsight".into())] })).await;
    assert_eq!(r.status, Status::Up, "{:?}", r.error);
    assert_eq!(r.tools.len(), EVERYTHING_TOOLS);
    assert!(r.latency_ms.is_some_and(|ms| ms > 0.0));
    // The same tool surface as over stdio: the transport does not change the hash.
    let stdio = check(&spec(Transport::Stdio {
        command: "node".into(),
        args: vec![everything(), "stdio".into()],
        env: vec![],
    }))
    .await;
    assert_eq!(r.schema_hash, stdio.schema_hash);

    // A path that is not an SSE stream is down with the HTTP status named.
    let bad = format!("http://127.0.0.1:{}/nope", server.port);
    let r = check(&spec(Transport::Sse { url: bad, headers: vec![] })).await;
    assert_eq!(r.status, Status::Down);
    assert!(r.error.as_deref().unwrap().contains("answered HTTP 404"), "{:?}", r.error);
}
