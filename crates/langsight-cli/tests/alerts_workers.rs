//! Alerts across 4 workers sharing Redis: one failure seen by every worker is one delivery at a local
//! Slack-compatible receiver and one inbox row, the dedup key lives in Redis with its TTL, and a leadership
//! change during an outage does not page twice.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use test_support::process::ServerProcess;
use test_support::receiver::Receiver;
use test_support::redis::RedisTopology;

const KEY: &str = "alerts-workers-key";

fn fixture() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(|d| d.parent()).unwrap().join("mcp-fixture");
    assert!(bin.exists(), "build the fixture first: cargo build -p mcp-fixture");
    bin
}

fn start(dir: &Path, redis: &str, slack: &str) -> ServerProcess {
    let yaml = dir.join("langsight.yaml");
    std::fs::write(
        &yaml,
        format!(
            "alerts:\n  consecutive_failures: 2\nservers:\n  - name: fx\n    transport: stdio\n    command: {}\n    args: [\"--stdio\"]\n    env:\n      MCP_FIXTURE_STATE: {}\n    circuit_breaker:\n      failure_threshold: 50\n      cooldown_seconds: 30\n",
            fixture().display(),
            dir.join("state.json").display(),
        ),
    )
    .unwrap();
    ServerProcess::start(
        Path::new(env!("CARGO_BIN_EXE_langsight")),
        dir,
        4,
        &[
            ("LANGSIGHT_API_KEYS", KEY),
            ("LANGSIGHT_RATE_LIMIT_ENABLED", "false"),
            ("LANGSIGHT_MONITOR_INTERVAL_SECONDS", "1"),
            ("LANGSIGHT_REDIS_URL", redis),
            ("LANGSIGHT_SLACK_WEBHOOK", slack),
        ],
        &["--config", yaml.to_str().unwrap_or_default()],
    )
}

fn failing(session: &str, from: usize) -> Value {
    let now = chrono::Utc::now();
    Value::Array(
        (from..from + 2)
            .map(|i| {
                json!({
                    "span_id": format!("{session}-{i}"), "span_type": "tool_call", "session_id": session,
                    "server_name": "github", "tool_name": "create_issue", "agent_name": "triager",
                    "started_at": (now - chrono::Duration::seconds(2)).to_rfc3339(), "ended_at": now.to_rfc3339(),
                    "status": "error", "error": "HTTP 500",
                })
            })
            .collect(),
    )
}

async fn feed(url: &str) -> Value {
    test_support::http()
        .get(format!("{url}/api/alerts/feed?status=all&limit=200"))
        .header("X-API-Key", KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn of_type(feed: &Value, t: &str) -> usize {
    feed["alerts"].as_array().map(|a| a.iter().filter(|x| x["alert_type"] == json!(t)).count()).unwrap_or(0)
}

/// The pid in the latest `monitor.leader … holder=<worker>-<pid>` line.
fn leader_pid(server: &ServerProcess) -> Option<u32> {
    server.log_text().lines().rev().find(|l| l.contains("monitor.leader")).and_then(|l| {
        l.split("holder=").nth(1)?.split_whitespace().next()?.trim_matches('"').rsplit('-').next()?.parse().ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_page_once_per_failure() {
    let receiver = Receiver::start().await;
    let topo = tokio::task::spawn_blocking(RedisTopology::standalone).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    std::fs::write(&state, json!({"tools": [{"name": "t"}], "mode": "ok"}).to_string()).unwrap();
    let (d, url, slack) = (dir.path().to_path_buf(), topo.url.clone(), format!("{}/slack", receiver.url));
    let server = tokio::task::spawn_blocking(move || start(&d, &url, &slack)).await.unwrap();

    // One failing session, its spans sent in 8 concurrent requests on fresh connections (so they land on
    // different workers): one alert.
    let sid = test_support::session_id();
    let sends: Vec<_> = (0..8)
        .map(|i| {
            let (url, body) = (server.url.clone(), failing(&sid, i * 2));
            tokio::spawn(async move {
                let r = test_support::http()
                    .post(format!("{url}/api/traces/spans"))
                    .header("X-API-Key", KEY)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                (
                    r.status().as_u16(),
                    r.headers().get("x-langsight-worker").map(|v| v.to_str().unwrap_or("").to_string()),
                )
            })
        })
        .collect();
    let mut workers = std::collections::BTreeSet::new();
    for s in sends {
        let (status, worker) = s.await.unwrap();
        assert_eq!(status, 202);
        workers.extend(worker);
    }
    assert!(workers.len() > 1, "the batches reached several workers: {workers:?}");
    receiver.wait_for("/slack", 1, 10).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let failures: Vec<_> = receiver
        .requests("/slack")
        .into_iter()
        .filter(|r| r.json()["text"].as_str().unwrap_or("").contains("Agent session failed"))
        .collect();
    assert_eq!(failures.len(), 1, "exactly one delivery");
    assert_eq!(of_type(&feed(&server.url).await, "agent_failure"), 1, "exactly one inbox row");
    let dedup: Vec<(String, i64)> = topo.keys_with_ttl("langsight:alerts:dedup:*");
    let key = format!("langsight:alerts:dedup::agent_failure:{sid}");
    let ttl = dedup.iter().find(|(k, _)| k == &key).map(|(_, t)| *t).unwrap_or_else(|| panic!("{key} in {dedup:?}"));
    assert!((3_500_000..=3_600_000).contains(&ttl), "TTL {ttl} ms");

    // The MCP server goes down: one server_down page, even when the leader dies mid-outage.
    std::fs::write(&state, json!({"tools": [{"name": "t"}], "mode": "fail"}).to_string()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while of_type(&feed(&server.url).await, "server_down") == 0 {
        assert!(Instant::now() < deadline, "server_down fired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pid = leader_pid(&server).expect("a leader announced itself");
    let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(of_type(&feed(&server.url).await, "server_down"), 1, "one page per outage across a leader change");
    let downs = receiver
        .requests("/slack")
        .iter()
        .filter(|r| r.json()["text"].as_str().unwrap_or("").contains("is DOWN"))
        .count();
    assert_eq!(downs, 1);
    drop(server);
    drop(topo);
}
