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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_checks_once_per_interval_and_leadership_moves() {
    let topo = tokio::task::spawn_blocking(RedisTopology::standalone).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("state.json"), json!({"tools": [{"name": "t"}], "mode": "ok"}).to_string()).unwrap();
    let d = dir.path().to_path_buf();
    let url = topo.url.clone();
    let server = tokio::task::spawn_blocking(move || start(&d, &url)).await.unwrap();
    let log = dir.path().join("checks.log");

    // Over ~5 s at a 1 s interval: about 5 checks in all, not 4 × 5.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = checks(&log);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let in_window = checks(&log) - before;
    assert!((3..=8).contains(&in_window), "{in_window} checks in 5 s with 4 workers");

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
