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

/// Every `monitor.leader … holder=<worker>-<pid>` line of the log, in order: (line index, holder).
fn leaders(server: &ServerProcess) -> Vec<(usize, String)> {
    server
        .log_text()
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("monitor.leader"))
        .filter_map(|(i, l)| {
            Some((i, l.split("holder=").nth(1)?.split_whitespace().next()?.trim_matches('"').to_string()))
        })
        .collect()
}

fn pid_of(holder: &str) -> u32 {
    holder.rsplit('-').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("holder {holder:?} ends in a pid"))
}

/// The `checked_at` of the fixture server's latest stored checks (most recent first, up to 100).
async fn checks(url: &str) -> Vec<String> {
    let r = test_support::http()
        .get(format!("{url}/api/health/servers/fx/history?limit=100"))
        .header("X-API-Key", KEY)
        .send()
        .await
        .unwrap();
    let rows: Value = r.json().await.unwrap();
    rows.as_array().unwrap().iter().map(|r| r["checked_at"].as_str().unwrap().to_string()).collect()
}

fn slack_texts(receiver: &Receiver, needle: &str) -> usize {
    receiver.requests("/slack").iter().filter(|r| r.json()["text"].as_str().unwrap_or("").contains(needle)).count()
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
    // Every worker has run the session rule before answering 202 (firing, dedup and the inbox row are on the
    // request path): the inbox is final now, and only a fired alert is delivered.
    let inbox = feed(&server.url).await;
    assert_eq!(of_type(&inbox, "agent_failure"), 1, "exactly one inbox row");
    // The delivery's outcome is recorded after its send: once it is, the receiver has all it will get.
    let deliveries = delivered(&server.url, &inbox, "agent_failure").await;
    assert_eq!(slack_texts(&receiver, "Agent session failed"), 1, "exactly one delivery");
    let dedup: Vec<(String, i64)> = topo.keys_with_ttl("langsight:alerts:dedup:*");
    let key = format!("langsight:alerts:dedup::agent_failure:{sid}");
    let ttl = dedup.iter().find(|(k, _)| k == &key).map(|(_, t)| *t).unwrap_or_else(|| panic!("{key} in {dedup:?}"));
    assert!((3_500_000..=3_600_000).contains(&ttl), "TTL {ttl} ms");
    assert_eq!(deliveries.as_array().map(Vec::len), Some(1), "one delivery attempt: {deliveries}");

    // The MCP server goes down: one server_down page, even when the leader dies mid-outage.
    std::fs::write(&state, json!({"tools": [{"name": "t"}], "mode": "fail"}).to_string()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while of_type(&feed(&server.url).await, "server_down") == 0 {
        assert!(Instant::now() < deadline, "server_down fired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The page has gone out before the leader dies: delivery is from memory, so a leader killed between storing
    // the alert and sending it would take the page with it, and this test is about not paging twice.
    delivered(&server.url, &feed(&server.url).await, "server_down").await;
    let (_, old) = leaders(&server).pop().expect("a leader announced itself");
    let old_pid = pid_of(&old);
    let seen_before_kill = server.log_text().lines().count();
    let _ = Command::new("kill").args(["-KILL", &old_pid.to_string()]).status();
    // Another worker takes the lease and says so (its holder id names another process).
    let deadline = Instant::now() + Duration::from_secs(20);
    let new = loop {
        let fresh: Vec<String> =
            leaders(&server).into_iter().filter(|(i, _)| *i >= seen_before_kill).map(|(_, h)| h).collect();
        if let Some(h) = fresh.last() {
            break h.clone();
        }
        assert!(Instant::now() < deadline, "no new leader after the old one ({old}) died");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(pid_of(&new), old_pid, "the lease moved: {old} -> {new}");
    // The new leader checks the still-failing server (three stored results that were not there when it took
    // over; the old leader is dead, so they are the new one's): each went through the alert rules, which with
    // consecutive_failures 2 would have paged again without the shared dedup and the seeded outage state.
    let before: std::collections::BTreeSet<String> = checks(&server.url).await.into_iter().collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let after = checks(&server.url).await;
        if after.iter().filter(|c| !before.contains(*c)).count() >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "the new leader ({new}) ran no checks");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(of_type(&feed(&server.url).await, "server_down"), 1, "one page per outage across a leader change");
    assert_eq!(slack_texts(&receiver, "is DOWN"), 1);
    drop(server);
    drop(topo);
}

/// Waits until the delivery of the feed's one alert of `alert_type` is recorded (after its send) and returns the
/// delivery records.
async fn delivered(url: &str, feed: &Value, alert_type: &str) -> Value {
    let id = feed["alerts"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["alert_type"] == json!(alert_type)))
        .and_then(|a| a["id"].as_str())
        .unwrap_or_else(|| panic!("a {alert_type} alert in {feed}"))
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let deliveries: Value = test_support::http()
            .get(format!("{url}/api/alerts/{id}/deliveries"))
            .header("X-API-Key", KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if deliveries.as_array().is_some_and(|d| !d.is_empty()) {
            return deliveries;
        }
        assert!(Instant::now() < deadline, "the {alert_type} delivery was recorded: {deliveries}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
