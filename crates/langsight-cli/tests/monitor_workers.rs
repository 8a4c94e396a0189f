//! The monitor across 4 workers sharing Redis: one check per interval cluster-wide, leadership moves when
//! the leader dies, and every worker reports the same circuit state.

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use test_support::process::ServerProcess;
use test_support::redis::RedisTopology;

const KEY: &str = "monitor-workers-key";

fn fixture() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(|d| d.parent()).unwrap().join("mcp-fixture");
    assert!(bin.exists(), "build the fixture first: cargo build -p mcp-fixture");
    bin
}

fn checks(log: &Path) -> usize {
    std::fs::read_to_string(log).map(|s| s.lines().count()).unwrap_or(0)
}

fn start(dir: &Path, redis: &str) -> ServerProcess {
    let yaml = dir.join("langsight.yaml");
    std::fs::write(
        &yaml,
        format!(
            "servers:\n  - name: fx\n    transport: stdio\n    command: {}\n    args: [\"--stdio\"]\n    env:\n      MCP_FIXTURE_STATE: {}\n      MCP_FIXTURE_LOG: {}\n    circuit_breaker:\n      failure_threshold: 2\n      cooldown_seconds: 30\n",
            fixture().display(),
            dir.join("state.json").display(),
            dir.join("checks.log").display()
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
        ],
        &["--config", yaml.to_str().unwrap_or_default()],
    )
}

/// The pid in the latest `monitor.leader … holder=<worker>-<pid>` line.
fn leader_pid(server: &ServerProcess) -> Option<u32> {
    server.log_text().lines().rev().find(|l| l.contains("monitor.leader")).and_then(|l| {
        l.split("holder=").nth(1)?.split_whitespace().next()?.trim_matches('"').rsplit('-').next()?.parse().ok()
    })
}

async fn circuit_states(url: &str) -> BTreeSet<String> {
    let mut states = BTreeSet::new();
    for _ in 0..12 {
        // A client per request: new connections reach different workers.
        let r = test_support::http()
            .get(format!("{url}/api/health/servers"))
            .header("X-API-Key", KEY)
            .send()
            .await
            .unwrap();
        let body: Value = r.json().await.unwrap();
        states.insert(body[0]["circuit_state"].as_str().unwrap_or("none").to_string());
    }
    states
}

/// Waits until `n` checks of `fx` are stored, and returns their times, oldest first.
async fn stored_checks(url: &str, n: usize) -> Vec<chrono::DateTime<chrono::FixedOffset>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = test_support::http()
            .get(format!("{url}/api/health/servers/fx/history?limit=100"))
            .header("X-API-Key", KEY)
            .send()
            .await
            .unwrap();
        let body: Value = r.json().await.unwrap_or_default();
        let mut times: Vec<_> = body
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| chrono::DateTime::parse_from_rfc3339(c["checked_at"].as_str()?).ok())
            .collect();
        if times.len() >= n {
            times.sort();
            return times;
        }
        assert!(Instant::now() < deadline, "{n} stored checks: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_checks_once_per_interval_and_leadership_moves() {
    let topo = tokio::task::spawn_blocking(RedisTopology::standalone).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("state.json"), json!({"tools": [{"name": "t"}], "mode": "ok"}).to_string()).unwrap();
    let d = dir.path().to_path_buf();
    let url = topo.url.clone();
    let server = tokio::task::spawn_blocking(move || start(&d, &url)).await.unwrap();
    let log = dir.path().join("checks.log");

    // Wait for six stored checks (the event), then look at their times: one leader checks once per 1 s
    // interval, so consecutive checks are about a second apart; four workers checking on their own would
    // put four checks in every interval, most of them far closer together.
    let times = stored_checks(&server.url, 6).await;
    let gaps: Vec<i64> = times.windows(2).map(|w| (w[1] - w[0]).num_milliseconds()).collect();
    assert!(gaps.iter().all(|g| *g >= 500), "checks {gaps:?} ms apart with 4 workers");
    assert!(checks(&log) >= 6, "each stored check reached the server");

    // Kill the leader: another worker takes over within about one lease.
    let pid = leader_pid(&server).expect("a leader announced itself");
    let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    let killed_at = checks(&log);
    let deadline = Instant::now() + Duration::from_secs(8);
    while checks(&log) < killed_at + 2 {
        assert!(Instant::now() < deadline, "checks resumed after the leader died");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The server fails: the circuit opens, and every worker says so.
    std::fs::write(dir.path().join("state.json"), json!({"tools": [{"name": "t"}], "mode": "fail"}).to_string())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let states = circuit_states(&server.url).await;
        if states.len() == 1 && states.contains("open") {
            break;
        }
        assert!(Instant::now() < deadline, "all workers report the open circuit: {states:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    drop(server);
    drop(topo);
}
