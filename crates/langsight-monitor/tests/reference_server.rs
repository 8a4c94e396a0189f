//! Health checks against the official MCP reference server (`@modelcontextprotocol/server-everything`,
//! installed from npm by `scripts/test`), over stdio and over Streamable HTTP.

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

#[tokio::test]
async fn the_reference_server_is_up_over_streamable_http() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = Command::new("node")
        .args([everything().as_str(), "streamableHttp"])
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs");
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("the server logs until it listens").unwrap();
        if line.contains("listening on port") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines.by_ref() {});
    let url = format!("http://127.0.0.1:{port}/mcp");
    let r = check(&spec(Transport::StreamableHttp { url, headers: vec![] })).await;
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(r.status, Status::Up, "{:?}", r.error);
    assert_eq!(r.tools.len(), EVERYTHING_TOOLS);
}
