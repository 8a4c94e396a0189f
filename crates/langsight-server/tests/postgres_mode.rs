//! The server in `postgres` storage mode, over HTTP: the API works the same on PostgreSQL, and a PostgreSQL
//! restart makes requests fail fast with 503 (never hang, never 500) until it is back, then they recover by
//! themselves.

use langsight_server::config::{Secret, StorageMode};
use serde_json::json;
use std::time::{Duration, Instant};
use test_support::postgres::PgCluster;
use test_support::{agent_run, session_id, TestServer, ADMIN_KEY};

async fn server(url: &str) -> TestServer {
    let url = url.to_string();
    TestServer::start_with(move |c| {
        c.api_keys = vec![Secret(ADMIN_KEY.into())];
        c.storage_mode = StorageMode::Postgres;
        c.postgres_url = Some(Secret(url));
        c.pg_pool_max = 8;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_works_on_postgres() {
    let cluster = tokio::task::spawn_blocking(PgCluster::start).await.unwrap();
    let s = server(&cluster.database("api")).await;
    let admin = s.admin();
    let ready = admin.get("/api/readiness").await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert!(ready.text.contains("postgres"), "{}", ready.text);
    let p =
        admin.post("/api/projects", &json!({"name": "Postgres team"})).await.body["id"].as_str().unwrap().to_string();
    let sid = session_id();
    assert_eq!(admin.ingest(&agent_run(&sid, 20, Some(&p))).await.status, 202);
    let list = admin.get(&format!("/api/agents/sessions?project_id={p}")).await;
    assert_eq!(list.body[0]["session_id"], json!(sid), "{}", list.text);
    assert_eq!(list.body[0]["health_tag"], json!("success_with_fallback"));
    let trace = admin.get(&format!("/api/agents/sessions/{sid}?project_id={p}")).await;
    assert_eq!(trace.body["total_spans"], json!(20), "{}", trace.text);
    // The per-agent summary groups session rows in PostgreSQL: one session, tagged with a fallback (not failed).
    let summary = admin.get(&format!("/api/agents/summary?project_id={p}")).await;
    assert_eq!(summary.status, 200, "{}", summary.text);
    let sessions: i64 = summary.body.as_array().unwrap().iter().map(|a| a["sessions"].as_i64().unwrap_or(0)).sum();
    let failed: i64 = summary.body.as_array().unwrap().iter().map(|a| a["failed_sessions"].as_i64().unwrap_or(0)).sum();
    assert_eq!((sessions, failed), (1, 1), "success_with_fallback is not 'success': {}", summary.text);
    // A stored key authenticates; a failing session raises one alert.
    let key = admin.post("/api/auth/api-keys", &json!({"name": "sdk", "project_id": p})).await;
    let sdk = s.client(key.body["key"].as_str());
    let failing = json!([{"span_id": "f1", "span_type": "tool_call", "session_id": session_id(), "server_name": "db",
        "tool_name": "q", "started_at": chrono::Utc::now().to_rfc3339(), "ended_at": chrono::Utc::now().to_rfc3339(),
        "status": "error", "error": "boom"}]);
    assert_eq!(sdk.ingest(&failing).await.status, 202);
    let feed = admin.get(&format!("/api/alerts/feed?project_id={p}")).await;
    assert_eq!(feed.body["total"], json!(1), "{}", feed.text);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_fails_fast_then_recovers() {
    let mut cluster = tokio::task::spawn_blocking(PgCluster::start).await.unwrap();
    let s = server(&cluster.database("outage")).await;
    let admin = s.admin();
    assert_eq!(admin.ingest(&agent_run(&session_id(), 5, None)).await.status, 202);

    cluster = tokio::task::spawn_blocking(move || {
        cluster.stop_now();
        cluster
    })
    .await
    .unwrap();
    let started = Instant::now();
    let r = admin.ingest(&agent_run(&session_id(), 5, None)).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(r.headers.contains_key("retry-after"));
    assert!(started.elapsed() < Duration::from_secs(6), "failed fast: {:?}", started.elapsed());
    assert_eq!(admin.get("/api/agents/sessions").await.status, 503);
    let ready = admin.get("/api/readiness").await;
    assert_eq!(ready.status, 503, "{}", ready.text);
    assert_eq!(admin.get("/api/liveness").await.status, 200, "the process itself is alive");

    let _cluster = tokio::task::spawn_blocking(move || {
        cluster.restart();
        cluster
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = admin.ingest(&agent_run(&session_id(), 5, None)).await;
        if r.status == 202 {
            break;
        }
        assert!(Instant::now() < deadline, "recovered by itself: {} {}", r.status, r.text);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(admin.get("/api/agents/sessions").await.body.as_array().unwrap().len(), 2, "nothing accepted was lost");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_works_in_dual_mode() {
    langsight_server::install_tls();
    let cluster = tokio::task::spawn_blocking(PgCluster::start).await.unwrap();
    let ch = tokio::task::spawn_blocking(test_support::clickhouse::ClickHouseServer::start).await.unwrap();
    let (pg_url, ch_url) = (cluster.database("dual_api"), ch.url.clone());
    let s = TestServer::start_with(move |c| {
        c.api_keys = vec![Secret(ADMIN_KEY.into())];
        c.storage_mode = StorageMode::Dual;
        c.postgres_url = Some(Secret(pg_url));
        c.clickhouse.url = ch_url;
        c.clickhouse.database = "langsight_api".into();
        // Only reads and shutdown flush the spool here.
        c.clickhouse.spool_flush_every = Duration::from_secs(3600);
    })
    .await;
    let admin = s.admin();
    let ready = admin.get("/api/readiness").await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert!(ready.text.contains("clickhouse") && ready.text.contains("postgres"), "{}", ready.text);
    let sid = session_id();
    assert_eq!(admin.ingest(&agent_run(&sid, 20, None)).await.status, 202);
    let list = admin.get("/api/agents/sessions").await;
    assert_eq!(list.body[0]["session_id"], json!(sid), "{}", list.text);
    let trace = admin.get(&format!("/api/agents/sessions/{sid}")).await;
    assert_eq!(trace.body["total_spans"], json!(20), "spans read back from ClickHouse: {}", trace.text);
    let inv = admin.get("/api/health/servers/invocations").await;
    assert!(inv.text.contains("github"), "{}", inv.text);
    // Accepted and never read: shutdown sends it to ClickHouse instead of leaving it in the spool.
    assert_eq!(admin.ingest(&agent_run(&session_id(), 7, None)).await.status, 202);
    let stopped = s.stop().await;
    let spool = stopped.db_path.parent().unwrap().join("spool").join("langsight_api");
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0, "the spool is empty after shutdown");
    let ch_query = langsight_storage::clickhouse::ClickHouse::open(&ch.url, "langsight_api", "default", "").await;
    let n = ch_query.unwrap().query("SELECT count() FROM langsight_api.spans").await.unwrap();
    assert_eq!(n.trim(), "27", "every accepted span is in ClickHouse");
    drop(ch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_down_spools_then_replays_without_losing_a_span() {
    langsight_server::install_tls();
    let cluster = tokio::task::spawn_blocking(PgCluster::start).await.unwrap();
    let mut ch = tokio::task::spawn_blocking(test_support::clickhouse::ClickHouseServer::start).await.unwrap();
    let spool = tempfile::tempdir().unwrap();
    let (pg_url, ch_url, spool_dir) = (cluster.database("dual_spool"), ch.url.clone(), spool.path().to_path_buf());
    let s = TestServer::start_with(move |c| {
        c.api_keys = vec![Secret(ADMIN_KEY.into())];
        c.storage_mode = StorageMode::Dual;
        c.postgres_url = Some(Secret(pg_url));
        c.clickhouse.url = ch_url;
        c.clickhouse.database = "langsight_spool".into();
        c.clickhouse.spool_dir = spool_dir;
        c.clickhouse.spool_replay_every = Duration::from_millis(200);
    })
    .await;
    let admin = s.admin();
    // The database's own directory under LANGSIGHT_SPOOL_DIR.
    let files = spool.path().join("langsight_spool");
    let before = session_id();
    assert_eq!(admin.ingest(&agent_run(&before, 10, None)).await.status, 202);

    ch = tokio::task::spawn_blocking(move || {
        ch.stop();
        ch
    })
    .await
    .unwrap();
    // ClickHouse is down: batches are still accepted (spooled durably) and sessions still listed.
    let during: Vec<String> = (0..3).map(|_| session_id()).collect();
    for sid in &during {
        let r = admin.ingest(&agent_run(sid, 10, None)).await;
        assert_eq!(r.status, 202, "{}", r.text);
    }
    // All of them wait in the spool, on disk (the flusher's failed flushes hand its segments to the replayer).
    let spooled: u64 = std::fs::read_dir(&files).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    assert!(spooled > 3 * 10 * 200, "30 spans spooled: {spooled} bytes");
    assert_eq!(admin.get("/api/agents/sessions").await.body.as_array().unwrap().len(), 4);

    let _ch = tokio::task::spawn_blocking(move || {
        ch.restart();
        ch
    })
    .await
    .unwrap();
    // Replayed when ClickHouse returns: every span of every session readable, the spool empty.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut complete = true;
        for sid in during.iter().chain(std::iter::once(&before)) {
            let t = admin.get(&format!("/api/agents/sessions/{sid}")).await;
            complete &= t.body["total_spans"] == json!(10);
        }
        if complete && std::fs::read_dir(&files).unwrap().count() == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "spooled batches replayed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.stop().await;
}

/// A full spool answers 503 (with Retry-After) instead of accepting what it cannot keep, and stores nothing of
/// the refused batch (no session row without its spans); once ClickHouse is back the spool drains and the same
/// batch is accepted and read back whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_answers_503_then_recovers() {
    langsight_server::install_tls();
    let cluster = tokio::task::spawn_blocking(PgCluster::start).await.unwrap();
    let mut ch = tokio::task::spawn_blocking(test_support::clickhouse::ClickHouseServer::start).await.unwrap();
    let spool = tempfile::tempdir().unwrap();
    let (pg_url, ch_url, spool_dir) = (cluster.database("dual_full"), ch.url.clone(), spool.path().to_path_buf());
    let s = TestServer::start_with(move |c| {
        c.api_keys = vec![Secret(ADMIN_KEY.into())];
        c.storage_mode = StorageMode::Dual;
        c.postgres_url = Some(Secret(pg_url));
        c.clickhouse.url = ch_url;
        c.clickhouse.database = "langsight_full".into();
        c.clickhouse.spool_dir = spool_dir;
        c.clickhouse.spool_max_bytes = 40_000;
        c.clickhouse.spool_replay_every = Duration::from_millis(200);
    })
    .await;
    let admin = s.admin();
    let files = spool.path().join("langsight_full");
    ch = tokio::task::spawn_blocking(move || {
        ch.stop();
        ch
    })
    .await
    .unwrap();
    // Batches are spooled until the next one would not fit: that one is refused.
    let mut spooled = Vec::new();
    let refused = loop {
        let sid = session_id();
        let r = admin.ingest(&agent_run(&sid, 10, None)).await;
        match r.status {
            202 => spooled.push(sid),
            503 => {
                assert!(r.headers.contains_key("retry-after"), "{:?}", r.headers);
                assert!(r.detail().starts_with("Storage temporarily unavailable"), "{}", r.text);
                break sid;
            }
            other => panic!("unexpected {other}: {}", r.text),
        }
        assert!(spooled.len() < 100, "the spool never filled up");
    };
    assert!(!spooled.is_empty(), "some batches fit in the spool first");
    let pending: u64 = std::fs::read_dir(&files).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    assert!(pending <= 40_000, "the spool stays within its limit: {pending} bytes");
    // Refused for want of room (batches are alike: one more would not have fitted), not for another reason.
    assert!(pending + pending / spooled.len() as u64 > 40_000, "{pending} bytes in {} batches", spooled.len());
    let listed = admin.get("/api/agents/sessions?limit=1000").await;
    let ids: Vec<&str> = listed.body.as_array().unwrap().iter().filter_map(|x| x["session_id"].as_str()).collect();
    assert!(!ids.contains(&refused.as_str()), "nothing of the refused batch is stored: {ids:?}");
    assert_eq!(ids.len(), spooled.len());

    let _ch = tokio::task::spawn_blocking(move || {
        ch.restart();
        ch
    })
    .await
    .unwrap();
    // The spool drains by itself; the refused batch, sent again, is accepted; everything reads back whole.
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(&files).unwrap().count() > 0 {
        assert!(Instant::now() < deadline, "the spool drained after ClickHouse returned");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = admin.ingest(&agent_run(&refused, 10, None)).await;
    assert_eq!(r.status, 202, "{}", r.text);
    for sid in spooled.iter().chain(std::iter::once(&refused)) {
        let t = admin.get(&format!("/api/agents/sessions/{sid}")).await;
        assert_eq!(t.body["total_spans"], json!(10), "session {sid} whole: {}", t.text);
    }
    s.stop().await;
}
