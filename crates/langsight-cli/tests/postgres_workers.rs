//! 4 workers on one PostgreSQL database (plus Redis): concurrent batches of the same sessions arriving
//! through different workers are all stored and folded into the rollups exactly once each.

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;
use test_support::postgres::PgCluster;
use test_support::process::ServerProcess;
use test_support::redis::RedisTopology;

const KEY: &str = "pg-workers-key";

/// Batch `b` of session `s`: 5 tool calls with ids unique across the test.
fn batch(session: &str, b: usize) -> Value {
    let now = chrono::Utc::now();
    Value::Array(
        (0..5)
            .map(|i| {
                json!({
                    "span_id": format!("{session}-{b}-{i}"), "span_type": "tool_call", "session_id": session,
                    "server_name": "pg", "tool_name": "query", "agent_name": "analyst",
                    "started_at": (now - chrono::Duration::seconds(5)).to_rfc3339(), "ended_at": now.to_rfc3339(),
                    "status": "success",
                })
            })
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_share_one_postgres_without_losing_updates() {
    let cluster = tokio::task::spawn_blocking(PgCluster::start).await.unwrap();
    let pg = cluster.database("workers");
    let topo = tokio::task::spawn_blocking(RedisTopology::standalone).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (d, redis) = (dir.path().to_path_buf(), topo.url.clone());
    let server = tokio::task::spawn_blocking(move || {
        ServerProcess::start(
            Path::new(env!("CARGO_BIN_EXE_langsight")),
            &d,
            4,
            &[
                ("LANGSIGHT_API_KEYS", KEY),
                ("LANGSIGHT_REDIS_URL", &redis),
                ("LANGSIGHT_STORAGE_MODE", "postgres"),
                ("LANGSIGHT_POSTGRES_URL", &pg),
                ("LANGSIGHT_PG_POOL_MAX", "5"),
                ("LANGSIGHT_RATE_LIMIT_ENABLED", "false"),
            ],
            &[],
        )
    })
    .await
    .unwrap();
    let sessions: Vec<String> = (0..4).map(|_| test_support::session_id()).collect();
    let mut sends = Vec::new();
    for b in 0..10 {
        for s in &sessions {
            let (url, body) = (server.url.clone(), batch(s, b));
            sends.push(tokio::spawn(async move {
                let r = test_support::http()
                    .post(format!("{url}/api/traces/spans"))
                    .header("X-API-Key", KEY)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                (
                    r.status().as_u16(),
                    r.headers().get("x-langsight-worker").and_then(|v| v.to_str().ok()).map(String::from),
                )
            }));
        }
    }
    let mut workers = BTreeSet::new();
    for s in sends {
        let (status, worker) = s.await.unwrap();
        assert_eq!(status, 202);
        workers.extend(worker);
    }
    assert!(workers.len() > 1, "batches reached several workers: {workers:?}");
    let list: Value = test_support::http()
        .get(format!("{}/api/agents/sessions?limit=100", server.url))
        .header("X-API-Key", KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 4, "{list}");
    for r in rows {
        assert_eq!(r["tool_calls"], json!(50), "every batch folded exactly once: {r}");
    }
    drop(server);
    drop(topo);
    drop(cluster);
}
