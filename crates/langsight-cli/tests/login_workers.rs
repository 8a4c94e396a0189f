//! Brute force across 4 workers sharing Redis: whichever worker each attempt reaches, the 11th wrong password
//! within the window is refused as locked, the right password too, and the lock survives a restart.

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;
use test_support::process::ServerProcess;
use test_support::redis::RedisTopology;

const EMAIL: &str = "ops@example.com";
const PASSWORD: &str = "correct horse battery staple";

fn start(dir: &Path, redis: &str) -> ServerProcess {
    ServerProcess::start(
        Path::new(env!("CARGO_BIN_EXE_langsight")),
        dir,
        4,
        &[
            ("LANGSIGHT_API_KEYS", "login-workers-key"),
            ("LANGSIGHT_REDIS_URL", redis),
            ("LANGSIGHT_ADMIN_EMAIL", EMAIL),
            ("LANGSIGHT_ADMIN_PASSWORD", PASSWORD),
            // The per-address login rate limit would answer first; this test is about the lockout.
            ("LANGSIGHT_RATE_LIMIT_LOGIN", "1000/minute"),
        ],
        &[],
    )
}

async fn attempt(url: &str, password: &str) -> (u16, Value, Option<String>) {
    // A fresh client per attempt: new connections spread over the workers.
    let r = test_support::http()
        .post(format!("{url}/api/users/verify"))
        .json(&json!({"email": EMAIL, "password": password}))
        .send()
        .await
        .unwrap();
    let worker = r.headers().get("x-langsight-worker").and_then(|v| v.to_str().ok()).map(String::from);
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null), worker)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lockout_holds_across_workers_and_restarts() {
    let topo = tokio::task::spawn_blocking(RedisTopology::standalone).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (d, url) = (dir.path().to_path_buf(), topo.url.clone());
    let mut server = tokio::task::spawn_blocking(move || start(&d, &url)).await.unwrap();

    assert_eq!(attempt(&server.url, PASSWORD).await.0, 200, "the bootstrapped admin logs in");
    let mut workers = BTreeSet::new();
    for i in 0..10 {
        let (status, body, worker) = attempt(&server.url, "wrong password, again").await;
        assert_eq!((status, body["detail"].as_str()), (401, Some("Invalid email or password.")), "attempt {i}");
        workers.extend(worker);
    }
    assert!(workers.len() > 1, "the attempts reached several workers: {workers:?}");
    let locked = "Account temporarily locked after too many failed attempts. Try again later.";
    for _ in 0..4 {
        let (status, body, _) = attempt(&server.url, PASSWORD).await;
        assert_eq!(
            (status, body["detail"].as_str()),
            (429, Some(locked)),
            "locked on every worker, right password included"
        );
    }

    server.stop();
    let (d, url) = (dir.path().to_path_buf(), topo.url.clone());
    let server = tokio::task::spawn_blocking(move || start(&d, &url)).await.unwrap();
    let (status, body, _) = attempt(&server.url, PASSWORD).await;
    assert_eq!((status, body["detail"].as_str()), (429, Some(locked)), "the lock survives a restart");
    drop(server);
    drop(topo);
}
