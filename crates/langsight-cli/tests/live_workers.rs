//! The live view across worker processes: every subscriber gets exactly the events it is entitled to,
//! whichever worker it is connected to and whichever worker stored the spans.

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};
use test_support::process::ServerProcess;
use test_support::redis::RedisTopology;
use test_support::sse::{Frame, SseStream};
use test_support::{agent_run, session_id};

const KEY: &str = "live-workers-admin-key";

fn start(dir: &Path, workers: usize, redis: Option<&str>) -> ServerProcess {
    let mut envs = vec![
        ("LANGSIGHT_API_KEYS", KEY),
        ("LANGSIGHT_RATE_LIMIT_ENABLED", "false"),
        ("LANGSIGHT_SSE_CLIENT_BUFFER", "4096"),
    ];
    if let Some(url) = redis {
        envs.push(("LANGSIGHT_REDIS_URL", url));
    }
    ServerProcess::start(Path::new(env!("CARGO_BIN_EXE_langsight")), dir, workers, &envs, &[])
}

async fn post(url: &str, path: &str, body: &Value) -> Value {
    let r = test_support::http().post(format!("{url}{path}")).header("X-API-Key", KEY).json(body).send().await.unwrap();
    r.json().await.unwrap()
}

fn span_ids(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .filter(|f| f.event.as_deref() == Some("span:new"))
        .map(|f| f.json()["span_id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A span event as a subscriber received it: (event id, span id).
type Received = (EventId, String);

/// An event id `{ms}-{seq}:{index}`: the log message (ordered) and the span's index in it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct EventId {
    message: (u64, u64),
    index: u64,
}

impl EventId {
    fn parse(id: &str) -> EventId {
        let bad = || -> ! { panic!("event id {id:?} is not ms-seq:index") };
        let (message, index) = id.split_once(':').unwrap_or_else(|| bad());
        let (ms, seq) = message.split_once('-').unwrap_or_else(|| bad());
        let n = |s: &str| s.parse::<u64>().unwrap_or_else(|_| bad());
        EventId { message: (n(ms), n(seq)), index: n(index) }
    }
}

/// 20 subscribers (8 admin, 6 per project) over the workers, ingest for `secs` into A, B and no project.
async fn exact_delivery(workers: usize, redis: Option<&str>, secs: u64) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let r = redis.map(String::from);
    let server = tokio::task::spawn_blocking(move || start(&d, workers, r.as_deref())).await.unwrap();
    let a = post(&server.url, "/api/projects", &json!({"name": "A"})).await["id"].as_str().unwrap().to_string();
    let b = post(&server.url, "/api/projects", &json!({"name": "B"})).await["id"].as_str().unwrap().to_string();
    let mut subscribers = Vec::new();
    for i in 0..20 {
        let scope = match i % 10 {
            0..=3 => None,
            4..=6 => Some(a.clone()),
            _ => Some(b.clone()),
        };
        let q = scope.as_ref().map(|p| format!("?project_id={p}")).unwrap_or_default();
        let mut s = SseStream::connect(&format!("{}/api/live/events{q}", server.url), Some(KEY), None).await;
        assert_eq!(s.status, 200);
        assert!(s.next(Duration::from_secs(5)).await.unwrap().comments[0].starts_with("connected"));
        subscribers.push((scope, s));
    }
    let workers_seen: BTreeSet<String> = subscribers
        .iter()
        .filter_map(|(_, s)| s.headers.get("x-langsight-worker").map(|v| v.to_str().unwrap().to_string()))
        .collect();
    if workers > 1 {
        assert!(workers_seen.len() >= 2, "subscribers spread over workers: {workers_seen:?}");
    }
    // Subscribers read concurrently with the load, each on its own task.
    let readers: Vec<_> = subscribers
        .into_iter()
        .map(|(scope, mut s)| {
            tokio::spawn(async move {
                let mut frames = Vec::new();
                while let Some(f) = s.next(Duration::from_secs(4)).await {
                    frames.push(f);
                }
                (scope, frames)
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let loaders: Vec<_> = (0..4)
        .map(|i| {
            let (url, a, b) = (server.url.clone(), a.clone(), b.clone());
            tokio::spawn(async move {
                let http = test_support::http();
                let mut accepted: Vec<(Option<String>, String)> = Vec::new();
                let mut n = 0;
                while Instant::now() < deadline {
                    let project = match (n + i) % 3 {
                        0 => Some(a.clone()),
                        1 => Some(b.clone()),
                        _ => None,
                    };
                    n += 1;
                    let sid = session_id();
                    let batch = agent_run(&sid, 10, project.as_deref());
                    let r = http
                        .post(format!("{url}/api/traces/spans"))
                        .header("X-API-Key", KEY)
                        .json(&batch)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status().as_u16(), 202);
                    for s in batch.as_array().unwrap() {
                        accepted.push((project.clone(), s["span_id"].as_str().unwrap().to_string()));
                    }
                }
                accepted
            })
        })
        .collect();
    let mut by_project: BTreeMap<Option<String>, BTreeSet<String>> = BTreeMap::new();
    let mut total = 0;
    for l in loaders {
        for (p, id) in l.await.unwrap() {
            by_project.entry(p).or_default().insert(id);
            total += 1;
        }
    }
    assert!(total > 500, "the load ran: {total} spans");
    // (scope, [(event id, span id)]) per subscriber, in the order received.
    let mut streams: Vec<(Option<String>, Vec<Received>)> = Vec::new();
    for r in readers {
        let (scope, frames) = r.await.unwrap();
        assert!(!frames.iter().any(|f| f.event.as_deref() == Some("missed")), "{scope:?} kept up and missed nothing");
        let got = span_ids(&frames);
        let unique: BTreeSet<String> = got.iter().cloned().collect();
        assert_eq!(unique.len(), got.len(), "{scope:?}: no event twice");
        let expected: BTreeSet<String> = match &scope {
            None => by_project.values().flatten().cloned().collect(),
            Some(p) => by_project.get(&Some(p.clone())).cloned().unwrap_or_default(),
        };
        assert_eq!(
            unique,
            expected,
            "{scope:?}: exactly its events ({} expected, {} got)",
            expected.len(),
            unique.len()
        );
        let events: Vec<(EventId, String)> = frames
            .iter()
            .filter(|f| f.event.as_deref() == Some("span:new"))
            .map(|f| {
                let id = f.id.as_deref().unwrap_or_else(|| panic!("{scope:?}: a span event without id: {f:?}"));
                (EventId::parse(id), f.json()["span_id"].as_str().unwrap().to_string())
            })
            .collect();
        // Ids increase strictly along the stream: one order, not just the right count.
        for w in events.windows(2) {
            assert!(w[0].0 < w[1].0, "{scope:?}: ids out of order: {:?} then {:?}", w[0], w[1]);
        }
        // A batch's spans arrive in the batch's order, one message with consecutive indexes.
        let mut by_session: BTreeMap<&str, Vec<&(EventId, String)>> = BTreeMap::new();
        for e in &events {
            by_session.entry(&e.1[..32]).or_default().push(e);
        }
        for (sid, evs) in by_session {
            let order: Vec<String> = evs.iter().map(|e| e.1.clone()).collect();
            let batch: Vec<String> =
                std::iter::once(format!("{sid}-root")).chain((1..10).map(|i| format!("{sid}-{i}"))).collect();
            assert_eq!(order, batch, "{scope:?}: session {sid} in batch order");
            let (first, last) = (&evs[0].0, &evs[evs.len() - 1].0);
            assert_eq!(first.message, last.message, "{scope:?}: one batch, one message");
            assert_eq!(last.index - first.index, evs.len() as u64 - 1, "{scope:?}: consecutive indexes");
        }
        streams.push((scope, events));
    }
    // Every subscriber sees the same order, whichever worker it is on: the admin streams are identical and each
    // project stream is the admin stream filtered to the project.
    let admin = streams.iter().find(|(s, _)| s.is_none()).map(|(_, e)| e.clone()).unwrap();
    let project_of: BTreeMap<&str, Option<&String>> =
        by_project.iter().flat_map(|(p, ids)| ids.iter().map(move |id| (id.as_str(), p.as_ref()))).collect();
    for (scope, events) in &streams {
        let expected: Vec<(EventId, String)> = admin
            .iter()
            .filter(|(_, span)| scope.is_none() || project_of[span.as_str()] == scope.as_ref())
            .cloned()
            .collect();
        assert!(*events == expected, "{scope:?}: the same events in the same order as every admin stream");
    }
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_delivers_every_event_exactly_once() {
    exact_delivery(1, None, 6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_with_redis_deliver_every_event_exactly_once() {
    let topo = tokio::task::spawn_blocking(RedisTopology::standalone).await.unwrap();
    exact_delivery(4, Some(&topo.url), 6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_survive_a_redis_restart_and_say_what_may_be_missing() {
    let mut topo = tokio::task::spawn_blocking(RedisTopology::standalone).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let url = topo.url.clone();
    let server = tokio::task::spawn_blocking(move || start(&d, 2, Some(&url))).await.unwrap();
    let mut subs = Vec::new();
    for _ in 0..4 {
        let mut s = SseStream::connect(&format!("{}/api/live/events", server.url), Some(KEY), None).await;
        assert!(s.next(Duration::from_secs(5)).await.is_some());
        subs.push(s);
    }
    let before = session_id();
    post(&server.url, "/api/traces/spans", &agent_run(&before, 3, None)).await;
    for s in subs.iter_mut() {
        let got = s.read_until(Duration::from_secs(5), |f| span_ids(f).len() >= 3).await;
        assert_eq!(span_ids(&got).len(), 3);
    }
    let port = topo.ports[0];
    topo.kill_node(port);
    // While Redis is down, ingest still answers 202 — at once (before the workers noticed) and from every worker
    // (new connections spread over them) — and stores the spans.
    let mut during = Vec::new();
    for _ in 0..6 {
        let sid = session_id();
        let r = test_support::http()
            .post(format!("{}/api/traces/spans", server.url))
            .header("X-API-Key", KEY)
            .json(&agent_run(&sid, 2, None))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202, "ingest while Redis is down");
        assert_eq!(r.json::<Value>().await.unwrap(), json!({"accepted": 2}));
        during.push(sid);
    }
    for sid in &during {
        let r = test_support::http()
            .get(format!("{}/api/agents/sessions/{sid}", server.url))
            .header("X-API-Key", KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.json::<Value>().await.unwrap()["total_spans"], json!(2), "stored while Redis was down");
    }
    let mut topo = tokio::task::spawn_blocking(move || {
        topo.restart_standalone();
        topo
    })
    .await
    .unwrap();
    // No settling pause: the loop below posts until each stream carries an event stored after the restart.
    let after = session_id();
    let deadline = Instant::now() + Duration::from_secs(15);
    for s in subs.iter_mut() {
        // Each stream says events may be missing, then carries on with new events.
        let mut frames = Vec::new();
        while !span_ids(&frames).iter().any(|id| id.starts_with(&after)) {
            assert!(Instant::now() < deadline, "stream continues after the restart: {frames:?}");
            post(&server.url, "/api/traces/spans", &agent_run(&after, 1, None)).await;
            frames.extend(s.drain(Duration::from_millis(300)).await);
        }
        let missed = frames.iter().find(|f| f.event.as_deref() == Some("missed"));
        assert!(missed.is_some(), "the interruption is announced: {frames:?}");
    }
    drop(subs); // open streams would hold the graceful stop until its drain timeout
    drop(server);
    topo.kill_node(topo.ports[0]);
}
