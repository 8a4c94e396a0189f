//! `langsight serve --workers N` as a user runs it, against real Redis topologies: start-up refusals,
//! exact shared rate limits through the shared port, Redis outages and Sentinel failover under load.

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use test_support::process::ServerProcess;
use test_support::redis::{Kind, RedisTopology};
use test_support::{agent_run, session_id};

const KEYS: &str = "wk-key-0000000000001,wk-key-0000000000002,wk-key-0000000000003,wk-key-0000000000004";

fn command(dir: &Path, envs: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_langsight"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("LANGSIGHT_SQLITE_PATH", dir.join("langsight.db"))
        .env("LANGSIGHT_API_KEYS", KEYS)
        .current_dir(dir)
        .args(["serve", "--port", "0"]);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

/// Starts the supervisor with the test keys and waits until every worker is ready.
fn start(dir: &Path, workers: usize, envs: &[(&str, &str)]) -> ServerProcess {
    let mut all = vec![("LANGSIGHT_API_KEYS", KEYS)];
    all.extend_from_slice(envs);
    ServerProcess::start(Path::new(env!("CARGO_BIN_EXE_langsight")), dir, workers, &all, &[])
}

/// A distinct client address for a label (the test connects through 127.0.0.1, a trusted proxy, so
/// `X-Forwarded-For` names the client; made-up API keys would share the address's bucket).
fn client_ip(label: &str) -> String {
    let h = label.bytes().fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619));
    format!("10.{}.{}.{}", (h >> 16) & 0xff, (h >> 8) & 0xff, h & 0xff)
}

/// 300 concurrent GETs of a 200/min route from one client: (accepted, limited, workers seen).
async fn burst(url: &str, client: &str) -> (usize, usize, BTreeSet<String>) {
    let ip = client_ip(client);
    let tasks: Vec<_> = (0..300)
        .map(|_| {
            // A client per request: new connections, so SO_REUSEPORT spreads them over the workers.
            let (url, ip) = (url.to_string(), ip.clone());
            tokio::spawn(async move {
                let r = test_support::http()
                    .get(format!("{url}/api/status"))
                    .header("X-Forwarded-For", ip)
                    .send()
                    .await
                    .unwrap();
                let worker = r.headers().get("x-langsight-worker").map(|v| v.to_str().unwrap().to_string());
                (r.status().as_u16(), worker)
            })
        })
        .collect();
    let (mut ok, mut limited, mut seen) = (0, 0, BTreeSet::new());
    for t in tasks {
        let (status, worker) = t.await.unwrap();
        match status {
            200 => ok += 1,
            429 => limited += 1,
            other => panic!("unexpected status {other}"),
        }
        seen.extend(worker);
    }
    (ok, limited, seen)
}

fn stderr_of(mut cmd: Command, limit: Duration) -> (bool, String, Duration) {
    let started = Instant::now();
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let id = child.id();
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        let _ = Command::new("kill").args(["-KILL", &id.to_string()]).status();
    });
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    let status = child.wait().unwrap();
    (status.success(), err, started.elapsed())
}

#[test]
fn workers_refuse_to_start_without_usable_redis() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, err, _) = stderr_of(command(dir.path(), &[("LANGSIGHT_WORKERS", "4")]), Duration::from_secs(20));
    assert!(!ok);
    assert!(err.contains("LANGSIGHT_WORKERS=4") && err.contains("LANGSIGHT_REDIS_URL"), "{err}");

    let port = test_support::redis::free_port();
    let url = format!("redis://:pw@127.0.0.1:{port}/0");
    let (ok, err, took) = stderr_of(
        command(dir.path(), &[("LANGSIGHT_WORKERS", "4"), ("LANGSIGHT_REDIS_URL", &url)]),
        Duration::from_secs(30),
    );
    assert!(!ok);
    assert!(err.contains("Redis is unreachable") && err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(!err.contains(":pw@"), "the password is never printed: {err}");
    assert!(took < Duration::from_secs(7), "refused within ~6 s, took {took:?}");

    let (ok, err, _) = stderr_of(
        command(dir.path(), &[("LANGSIGHT_WORKERS", "2"), ("LANGSIGHT_REDIS_URL", "redis:/oops")]),
        Duration::from_secs(20),
    );
    assert!(!ok);
    assert!(err.contains("redis+sentinel://") && err.contains("redis+cluster://"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_without_redis_limits_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), 1, &[]);
    let (ok, limited, _) = burst(&server.url, "one-worker-client-key").await;
    assert_eq!((ok, limited), (200, 100));
    let info = instance(&server.url).await;
    assert_eq!(
        (&info["workers"], &info["redis_topology"], &info["redis_nodes"]),
        (&json!(1), &json!("none"), &json!(0))
    );
}

/// `GET /api/instance` (what the dashboard's Settings → Instance shows) with a key.
async fn instance(url: &str) -> Value {
    let r = test_support::http()
        .get(format!("{url}/api/instance"))
        .header("X-API-Key", "wk-key-0000000000002")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.unwrap()
}

async fn four_workers_share_limits(kind: Kind) {
    let topo = tokio::task::spawn_blocking(move || RedisTopology::start(kind)).await.unwrap();
    // Sentinels and replicas hold connections of their own: count ours as the difference.
    let baseline = info_field(&topo, "clients", "connected_clients");
    let dir = tempfile::tempdir().unwrap();
    let mut envs = vec![("LANGSIGHT_REDIS_URL", topo.url.clone())];
    if let Some(ca) = &topo.ca_file {
        envs.push(("LANGSIGHT_REDIS_CA_FILE", ca.display().to_string()));
    }
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        let envs: Vec<(String, String)> = envs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move || {
            let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            start(&dir, 4, &envs)
        }
    })
    .await
    .unwrap();
    let (ok, limited, workers) = burst(&server.url, &format!("client-{kind:?}")).await;
    assert_eq!((ok, limited), (200, 100), "{kind:?}");
    assert!(workers.len() >= 2, "requests reached several workers: {workers:?}");
    // Ingest through the workers lands in the one database.
    let sid = session_id();
    ingest_run(&server.url, &sid, 30).await;
    let ready: Value =
        test_support::http_get(format!("{}/api/readiness", server.url)).await.unwrap().json().await.unwrap();
    assert_eq!(ready["storage"]["redis"], json!("ok"));
    // The instance reports its workers and Redis topology, never the URL's password or hosts.
    let info = instance(&server.url).await;
    let topology = match kind {
        Kind::Standalone => "standalone",
        Kind::Tls => "tls",
        Kind::Sentinel => "sentinel",
        Kind::Cluster => "cluster",
    };
    assert_eq!((&info["workers"], &info["redis_topology"]), (&json!(4), &json!(topology)), "{info}");
    assert!(info["redis_nodes"].as_u64().is_some_and(|n| n >= 1), "{info}");
    let (_, after_scheme) = topo.url.split_once("://").unwrap();
    let (userinfo, hosts) = after_scheme.split_once('@').unwrap_or(("", after_scheme));
    let password = userinfo.rsplit(':').next().unwrap_or("");
    let host = hosts.split([':', ',', '/']).next().unwrap_or("");
    assert!(password.len() >= 4 && !info.to_string().contains(password), "{kind:?}: {info}");
    assert!(!host.is_empty() && !info.to_string().contains(host), "{kind:?}: {info}");
    // Only the documented key families, each with a TTL.
    for (key, ttl) in topo.keys_with_ttl("langsight:*") {
        assert!(ttl > 0 || ttl == -2, "{key} without TTL");
        let known =
            key.starts_with("langsight:rl:") || key == "langsight:events:admin" || key.starts_with("langsight:leader:");
        assert!(known, "unexpected key {key}");
    }
    // A handful of connections per worker (commands + the event subscription), far under the pool's 20, and
    // little memory.
    let clients = info_field(&topo, "clients", "connected_clients") - baseline;
    assert!(clients <= 4 * 3, "{clients} connections for 4 workers");
    let used = info_field(&topo, "memory", "used_memory");
    assert!(used < 10 * 1024 * 1024, "used_memory {used}");
    drop(server);
    // Graceful shutdown closes the workers' connections.
    let deadline = Instant::now() + Duration::from_secs(5);
    while info_field(&topo, "clients", "connected_clients") > baseline {
        assert!(Instant::now() < deadline, "connections closed on shutdown");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn info_field(topo: &RedisTopology, section: &str, field: &str) -> u64 {
    let info = topo.cli(&["info", section]).unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in INFO {section}: {info}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_share_limits_on_standalone() {
    four_workers_share_limits(Kind::Standalone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_share_limits_on_tls() {
    four_workers_share_limits(Kind::Tls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_share_limits_on_sentinel() {
    four_workers_share_limits(Kind::Sentinel).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_share_limits_on_cluster() {
    four_workers_share_limits(Kind::Cluster).await;
}

/// Ingest load from 8 tasks (each its own client address, so none meets the per-client limit), each batch a new
/// session, until `during` completes; `during` gets the running count of accepted batches so it can wait on the
/// load's progress instead of on time. Returns (status counts, accepted session ids) and checks liveness every
/// 200 ms throughout.
async fn ingest_load<F, Fut>(url: &str, during: F) -> (BTreeMap<u16, usize>, Vec<String>)
where
    F: FnOnce(Arc<AtomicUsize>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let progress = Arc::new(AtomicUsize::new(0));
    let liveness_failures = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (url, stop, progress) = (url.to_string(), stop.clone(), progress.clone());
        let key = KEYS.split(',').nth(i % 4).unwrap().to_string();
        let ip = client_ip(&format!("ingest-load-{i}-{}", session_id()));
        tasks.push(tokio::spawn(async move {
            let http = test_support::http();
            let mut out = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let sid = session_id();
                let r = http
                    .post(format!("{url}/api/traces/spans"))
                    .header("X-API-Key", &key)
                    .header("X-Forwarded-For", &ip)
                    .json(&agent_run(&sid, 30, None))
                    .send()
                    .await;
                let status = r.map(|r| r.status().as_u16()).unwrap_or(0);
                if status == 202 {
                    progress.fetch_add(1, Ordering::Relaxed);
                }
                out.push((status, sid));
            }
            out
        }));
    }
    let live = {
        let (url, failures, stop) = (url.to_string(), liveness_failures.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let ok = test_support::http_get(format!("{url}/api/liveness"))
                    .await
                    .map(|r| r.status().as_u16() == 200)
                    .unwrap_or(false);
                if !ok {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    during(progress).await;
    stop.store(true, Ordering::Relaxed);
    let mut counts = BTreeMap::new();
    let mut accepted = Vec::new();
    for t in tasks {
        for (status, sid) in t.await.unwrap() {
            *counts.entry(status).or_insert(0) += 1;
            if status == 202 {
                accepted.push(sid);
            }
        }
    }
    live.await.unwrap();
    assert_eq!(liveness_failures.load(Ordering::Relaxed), 0, "liveness stayed 200");
    (counts, accepted)
}

/// Waits until the load has had `more` further batches accepted (the guard only catches a stalled load).
async fn load_progressed(progress: &AtomicUsize, more: usize) {
    let target = progress.load(Ordering::Relaxed) + more;
    let deadline = Instant::now() + Duration::from_secs(60);
    while progress.load(Ordering::Relaxed) < target {
        assert!(Instant::now() < deadline, "the ingest load stalled at {}", progress.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Bursts until all workers share one limit again (exactly 200 of 300 accepted: a worker still on its local
/// fallback would let its share through on top). The guard only catches workers that never follow.
async fn until_limits_shared(url: &str, guard: Duration, what: &str) {
    let deadline = Instant::now() + guard;
    loop {
        let (ok, _, _) = burst(url, &format!("{what}-{}", session_id())).await;
        if ok == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "limits shared again {what} (last: {ok} accepted)");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn scrape(url: &str) -> String {
    let r = test_support::http().get(url).bearer_auth("scrape").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.text().await.unwrap()
}

fn crate_password() -> &'static str {
    test_support::redis::PASSWORD
}

fn stored_sessions(db: &Path) -> BTreeMap<String, i64> {
    let conn = rusqlite_lite::open(db);
    rusqlite_lite::session_counts(&conn)
}

/// Reading the database directly, to prove nothing accepted was lost.
mod rusqlite_lite {
    use std::collections::BTreeMap;
    use std::path::Path;
    pub fn open(p: &Path) -> rusqlite::Connection {
        rusqlite::Connection::open(p).unwrap()
    }
    pub fn session_counts(c: &rusqlite::Connection) -> BTreeMap<String, i64> {
        let mut stmt = c.prepare("SELECT session_id, count(*) FROM spans GROUP BY session_id").unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_dying_under_ingest_load_loses_nothing() {
    let mut topo = tokio::task::spawn_blocking(RedisTopology::standalone).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url_env = topo.url.clone();
    let d = dir.path().to_path_buf();
    let server = tokio::task::spawn_blocking(move || {
        start(&d, 4, &[("LANGSIGHT_REDIS_URL", &url_env), ("LANGSIGHT_METRICS_TOKEN", "scrape")])
    })
    .await
    .unwrap();
    let port = topo.ports[0];
    // A live-view client: the worker it reaches follows the event log, and must follow it again after the outage.
    let live = test_support::sse::SseStream::connect(
        &format!("{}/api/live/events", server.url),
        Some("wk-key-0000000000001"),
        None,
    )
    .await;
    assert_eq!(live.status, 200);
    let (topo_tx, topo_rx) = tokio::sync::oneshot::channel();
    let metrics_url = format!("{}/metrics", server.url);
    let server_url = server.url.clone();
    let during = |progress: Arc<AtomicUsize>| async move {
        load_progressed(&progress, 20).await;
        topo.kill_node(port);
        // Workers report the outage: Redis down, requests served by the fallbacks; readiness stays 200 throughout.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let m = scrape(&metrics_url).await;
            assert!(m.contains(r#"langsight_shared_state_backend{backend="standalone"} 1"#));
            let ready = test_support::http_get(metrics_url.replace("/metrics", "/api/readiness")).await.unwrap();
            assert_eq!(ready.status().as_u16(), 200, "readiness stays 200 while Redis is down");
            let body: Value = ready.json().await.unwrap();
            if m.contains("langsight_redis_up 0") && body["storage"]["redis"] == json!("degraded") {
                break;
            }
            assert!(Instant::now() < deadline, "workers never reported the outage (redis_up 0, degraded)");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The load goes on during the outage.
        load_progressed(&progress, 20).await;
        let topo = tokio::task::spawn_blocking(move || {
            topo.restart_standalone();
            topo
        })
        .await
        .unwrap();
        // Shared limits are back: a fresh client gets exactly 200 through all workers; the load goes on.
        until_limits_shared(&server_url, Duration::from_secs(30), "after-restart").await;
        load_progressed(&progress, 20).await;
        let _ = topo_tx.send(topo);
    };
    let (counts, accepted) = ingest_load(&server.url, during).await;
    let topo = topo_rx.await.unwrap();
    assert!(counts.keys().all(|s| *s == 202), "every request accepted, none 5xx: {counts:?}");
    assert!(accepted.len() >= 60, "the load ran: {counts:?}");
    let m = scrape(&format!("{}/metrics", server.url)).await;
    assert!(m.contains("langsight_redis_up 1"), "redis_up back to 1");
    assert!(m.contains("langsight_redis_command_seconds_count"), "command latency histogram");
    let mut server = server;
    server.stop(); // graceful stop of every worker
    let log = server.log_text();
    assert!(log.contains("redis.down"), "the outage was noticed and logged");
    assert!(log.contains("redis.recovered"), "the recovery was noticed and logged");
    assert!(
        log.contains("redis.pubsub.resubscribed"),
        "the event bus of the worker with a live-view client resubscribed"
    );
    drop(live);
    assert!(!log.contains(crate_password()), "the password never reaches the log");
    let stored = stored_sessions(&dir.path().join("langsight.db"));
    for sid in &accepted {
        assert_eq!(stored.get(sid), Some(&30), "session {sid} fully stored");
    }
    drop(topo);
}

/// Deterministic without retries: the primary dies only once the load runs, the test then waits on the
/// sentinels' own view (every sentinel names the replica, which says it is master), then on every worker sharing
/// limits through the new master, then on more load accepted after that — never on a guess of the election time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_under_load_keeps_serving_and_sharing() {
    let mut topo = tokio::task::spawn_blocking(RedisTopology::sentinel).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url_env = topo.url.clone();
    let d = dir.path().to_path_buf();
    let server = tokio::task::spawn_blocking(move || start(&d, 4, &[("LANGSIGHT_REDIS_URL", &url_env)])).await.unwrap();
    let (primary, replica) = (topo.ports[0], topo.ports[1]);
    assert_eq!(topo.masters_seen_by_sentinels(), vec![Some(primary); 3], "the sentinels start on the primary");
    let (topo_tx, topo_rx) = tokio::sync::oneshot::channel();
    let server_url = server.url.clone();
    let during = |progress: Arc<AtomicUsize>| async move {
        load_progressed(&progress, 16).await;
        topo.kill_node(primary);
        // An election that fails once is retried after 2 × failover-timeout (10 s): the guard is far above that.
        let topo = tokio::task::spawn_blocking(move || {
            topo.wait_for_promotion(replica, Duration::from_secs(90));
            topo
        })
        .await
        .unwrap();
        until_limits_shared(&server_url, Duration::from_secs(60), "after-failover").await;
        // The load kept going and goes on through the new master.
        load_progressed(&progress, 16).await;
        let _ = topo_tx.send(topo);
    };
    let (counts, accepted) = ingest_load(&server.url, during).await;
    let topo = topo_rx.await.unwrap();
    assert!(counts.keys().all(|s| *s == 202), "no request failed during failover: {counts:?}");
    assert_eq!(topo.masters_seen_by_sentinels(), vec![Some(replica); 3], "the replica stays the master");
    let mut server = server;
    server.stop();
    let log = server.log_text();
    assert!(log.contains("redis.down"), "workers noticed the primary's death");
    assert!(log.contains("redis.recovered"), "workers followed the failover");
    let stored = stored_sessions(&dir.path().join("langsight.db"));
    assert!(accepted.len() >= 32, "the load ran: {counts:?}");
    for sid in &accepted {
        assert_eq!(stored.get(sid), Some(&30), "session {sid} fully stored");
    }
}

/// Several workers on one SQLite file commit through the supervisor's one span writer: every batch any worker
/// accepted was written by it (its count at shutdown), each 202 is readable at once on any worker, and its
/// socket lives in a directory only this user can enter, removed at shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_workers_commit_through_the_supervisors_one_writer() {
    use std::os::unix::fs::PermissionsExt;
    let topo = tokio::task::spawn_blocking(RedisTopology::standalone).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (d, url_env) = (dir.path().to_path_buf(), topo.url.clone());
    let server = tokio::task::spawn_blocking(move || start(&d, 4, &[("LANGSIGHT_REDIS_URL", &url_env)])).await.unwrap();
    let log = server.log_text();
    let socket = log
        .lines()
        .find(|l| l.contains("storage.span_writer.listening"))
        .and_then(|l| l.split("socket=").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| panic!("the supervisor runs a span writer:\n{log}"));
    let private = socket.parent().unwrap();
    assert_eq!(std::fs::metadata(private).unwrap().permissions().mode() & 0o777, 0o700, "{}", private.display());
    // The cores are shared out among the runtimes: each worker's runtime gets its share, the supervisor's one thread.
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let listening: Vec<&str> = log.lines().filter(|l| l.contains("api.listening")).collect();
    let (supervisor, workers): (Vec<&str>, Vec<&str>) = listening.iter().partition(|l| l.contains("workers="));
    let share = format!("runtime_threads={}", (cores / 4).max(1));
    assert_eq!(workers.len(), 4, "{log}");
    assert!(workers.iter().all(|l| l.split_whitespace().any(|f| f == share)), "each worker: {share}\n{log}");
    assert!(supervisor.iter().any(|l| l.split_whitespace().any(|f| f == "runtime_threads=1")), "{log}");

    let (batches, per_batch) = (24usize, 30usize);
    let mut tasks = Vec::new();
    for _ in 0..batches {
        let url = server.url.clone();
        tasks.push(tokio::spawn(async move {
            let sid = session_id();
            // A client per request: new connections, so SO_REUSEPORT spreads the batches over the workers.
            let worker = ingest_run(&url, &sid, per_batch).await;
            // Committed before the 202: any worker reads the whole session now.
            let trace: Value = test_support::http()
                .get(format!("{url}/api/agents/sessions/{sid}"))
                .header("X-API-Key", "wk-key-0000000000001")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(trace["spans_flat"].as_array().map(Vec::len), Some(per_batch), "{trace}");
            (sid, worker)
        }));
    }
    let mut workers = BTreeSet::new();
    let mut sids = BTreeSet::new();
    for t in tasks {
        let (sid, worker) = t.await.unwrap();
        workers.insert(worker);
        sids.insert(sid);
    }
    assert!(workers.len() >= 2, "batches reached several workers: {workers:?}");

    // A worker killed outright is restarted, and the new process hands its batches to the same writer.
    // Children are listed per thread of the supervisor (whichever thread spawned them).
    let children: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", server.pid()))
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| c.split_whitespace().map(String::from).collect::<Vec<_>>())
        .collect();
    let victim = children.first().expect("the supervisor has workers").clone();
    let _ = Command::new("kill").args(["-KILL", &victim]).status();
    let (mut server, restarted_id) = tokio::task::spawn_blocking(move || {
        server.wait_for_log("worker.exited: restarting", Duration::from_secs(20));
        let log = server.log_text();
        let line = log.lines().find(|l| l.contains("worker.exited: restarting")).unwrap_or_default();
        let id = line.split("worker=").nth(1).and_then(|w| w.split_whitespace().next()).unwrap_or_default();
        let id = id.to_string();
        (server, id)
    })
    .await
    .unwrap();
    assert!(!restarted_id.is_empty(), "the restart names its worker");
    let mut more = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let sid = session_id();
        let worker = ingest_run(&server.url, &sid, per_batch).await;
        sids.insert(sid);
        more += 1;
        if worker == restarted_id {
            break;
        }
        assert!(Instant::now() < deadline, "no batch reached the restarted worker {restarted_id}");
    }
    let batches = batches + more;
    tokio::task::spawn_blocking(move || {
        server.stop();
        server
    })
    .await
    .map(|server| {
        let log = server.log_text();
        let stopped = log.lines().find(|l| l.contains("storage.span_writer.stopped")).unwrap_or_default();
        assert!(
            stopped.contains(&format!("batches={batches} "))
                && stopped.contains(&format!("spans={}", batches * per_batch)),
            "every accepted batch went through the supervisor's writer: {stopped:?}\n{log}"
        );
        assert!(!private.exists(), "the socket's directory is removed at shutdown");
    })
    .unwrap();
    let stored = stored_sessions(&dir.path().join("langsight.db"));
    assert_eq!(stored.len(), batches);
    assert!(sids.iter().all(|s| stored.get(s) == Some(&(per_batch as i64))), "{stored:?}");
}

/// Posts an `n`-span agent run of session `sid` on a new connection, expects 202, and returns which worker took it.
async fn ingest_run(url: &str, sid: &str, n: usize) -> String {
    let r = test_support::http()
        .post(format!("{url}/api/traces/spans"))
        .header("X-API-Key", "wk-key-0000000000001")
        .json(&agent_run(sid, n, None))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    r.headers().get("x-langsight-worker").and_then(|w| w.to_str().ok()).unwrap_or_default().to_string()
}
