//! Slow clients against the real binary: a half-sent request head is closed, a body that never finishes gets
//! 408, and a live-view client that stops reading cannot make the server hold more than its byte budget.

use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};
use test_support::process::ServerProcess;

const KEY: &str = "security-slow-clients-key";

fn start(dir: &Path, extra: &[(&str, &str)]) -> ServerProcess {
    let mut envs = vec![
        ("LANGSIGHT_API_KEYS", KEY),
        ("LANGSIGHT_MONITOR_ENABLED", "false"),
        ("LANGSIGHT_RATE_LIMIT_ENABLED", "false"),
        ("LANGSIGHT_HEADER_READ_TIMEOUT_SECONDS", "1"),
        ("LANGSIGHT_BODY_READ_TIMEOUT_SECONDS", "1"),
    ];
    envs.extend_from_slice(extra);
    ServerProcess::start(Path::new(env!("CARGO_BIN_EXE_langsight")), dir, 1, &envs, &[])
}

/// Reads until the server closes the connection (or `limit` passes: a failing server); returns what came.
fn read_to_close(mut s: TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    s.set_read_timeout(Some(limit)).expect("set a read timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            // Reset by the server also means closed.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (got, true),
            Err(_) => return (got, false),
        }
    }
}

fn connect(url: &str) -> TcpStream {
    TcpStream::connect(url.trim_start_matches("http://")).expect("connect to the server")
}

#[test]
fn half_sent_requests_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);

    // Slowloris: the head never ends.
    let mut s = connect(&server.url);
    s.write_all(b"POST /api/traces/spans HTTP/1.1\r\nHost: localhost\r\nX-API-Key: ").unwrap();
    let started = Instant::now();
    let (_, closed) = read_to_close(s, Duration::from_secs(20));
    assert!(closed, "the server closed a connection whose request head never ended");
    assert!(started.elapsed() < Duration::from_secs(15), "within the header timeout, not the test's bound");

    // The head arrives, the body never finishes: 408 and the connection closes.
    let mut s = connect(&server.url);
    let head = format!(
        "POST /api/traces/spans HTTP/1.1\r\nHost: localhost\r\nX-API-Key: {KEY}\r\nContent-Type: application/json\r\n\
         Content-Length: 1000\r\n\r\n[{{\"span_id\""
    );
    s.write_all(head.as_bytes()).unwrap();
    let (got, closed) = read_to_close(s, Duration::from_secs(20));
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "a body that never finishes gets 408: {text}");
    assert!(text.contains("LANGSIGHT_BODY_READ_TIMEOUT_SECONDS"), "naming the setting: {text}");
    assert!(closed, "and the connection is closed");

    // An honest client is unaffected.
    let mut s = connect(&server.url);
    s.write_all(b"GET /api/liveness HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let (got, _) = read_to_close(s, Duration::from_secs(20));
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A live-view client that connects and never reads, while large batches stream past: the server keeps at
/// most the subscriber's byte budget for it (here 1 MiB), not the 200 batches a message-count ring would pin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_live_client_pins_at_most_its_byte_budget() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    // LANGSIGHT_TEST_SSE_BUDGET lets a developer rerun this with a huge budget to watch it fail.
    let budget = std::env::var("LANGSIGHT_TEST_SSE_BUDGET").unwrap_or_else(|_| "1048576".into());
    let server = tokio::task::spawn_blocking(move || {
        start(&d, &[("LANGSIGHT_SSE_CLIENT_BUFFER_BYTES", &budget), ("LANGSIGHT_SSE_REPLAY_BYTES", "1048576")])
    })
    .await
    .unwrap();
    let pid = server.pid();
    // Connect a stream and never read it. A second, reading stream proves events flowed.
    let mut idle = connect(&server.url);
    idle.write_all(format!("GET /api/live/events HTTP/1.1\r\nHost: localhost\r\nX-API-Key: {KEY}\r\n\r\n").as_bytes())
        .unwrap();
    let mut reader =
        test_support::sse::SseStream::connect(&format!("{}/api/live/events", server.url), Some(KEY), None).await;
    assert_eq!(reader.status, 200);
    let client = test_support::Client {
        base: server.url.clone(),
        key: Some(KEY.into()),
        http: test_support::http(),
        headers: vec![],
    };
    let long = "t".repeat(500);
    let batch = |b: usize| {
        let session = test_support::session_id();
        let now = chrono_now();
        let spans: Vec<serde_json::Value> = (0..600)
            .map(|i| {
                json!({"span_id": format!("{b}-{i}-{}", "p".repeat(200)), "session_id": session,
                       "server_name": "s".repeat(250), "tool_name": long, "agent_name": "a".repeat(250),
                       "started_at": now, "ended_at": now, "status": "success"})
            })
            .collect();
        serde_json::Value::Array(spans)
    };
    // Warm up (allocator arenas, SQLite caches), then measure what 200 more batches add.
    for b in 0..40 {
        assert_eq!(client.ingest(&batch(b)).await.status, 202);
    }
    let before = rss_kib(pid, "VmRSS:");
    for b in 40..240 {
        let r = client.ingest(&batch(b)).await;
        assert_eq!(r.status, 202, "{}", r.text);
    }
    // The reading stream saw the last batch: every message was fanned out, the idle client had its chance.
    let last = "239-599-";
    let seen = |f: &[test_support::sse::Frame]| f.iter().any(|f| f.data.as_deref().is_some_and(|d| d.contains(last)));
    let frames = reader.read_until(Duration::from_secs(120), seen).await;
    let after = rss_kib(pid, "VmRSS:");
    let grown_mib = after.saturating_sub(before) / 1024;
    // 200 messages of ~0.9 MiB of events each: a ring bounded by message count alone pins ~180 MiB for the
    // idle client (rerun with LANGSIGHT_TEST_SSE_BUDGET=1073741824 to see it).
    assert!(grown_mib < 60, "the idle client pinned {grown_mib} MiB (RSS {before} KiB → {after} KiB)");
    assert!(seen(&frames), "events flowed");
    drop(idle);
}

/// Now as epoch seconds (the span decoder takes numbers as well as RFC 3339 text).
fn chrono_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}
