//! The live view over real HTTP, one worker, memory event log.

use langsight_server::config::Secret;
use serde_json::{json, Value};
use std::time::Duration;
use test_support::sse::{Frame, SseStream};
use test_support::{agent_run, session_id, TestServer, ADMIN_KEY};

const WAIT: Duration = Duration::from_secs(5);

/// Reads until the root span of `marker` (a session ingested last) arrives, and returns the span ids before
/// it. Events reach a stream in the order they were stored, so anything the stream was going to carry from
/// earlier batches — a leak from another project, a duplicate — is among them: the marker proves the stream
/// had its chance, with no waiting for silence.
async fn spans_before(s: &mut SseStream, marker: &str) -> Vec<String> {
    let root = format!("{marker}-root");
    let frames = s.read_until(WAIT, |f| spans_of(f).contains(&root)).await;
    let spans = spans_of(&frames);
    let at = spans.iter().position(|id| *id == root).unwrap_or_else(|| panic!("the marker {root} arrived: {spans:?}"));
    spans[..at].to_vec()
}

fn spans_of(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .filter(|f| f.event.as_deref() == Some("span:new"))
        .map(|f| f.json()["span_id"].as_str().unwrap().to_string())
        .collect()
}

/// True once `n` span events arrived; counts incrementally (the predicate runs after every frame).
fn has_span_count(n: usize) -> impl FnMut(&[Frame]) -> bool {
    let mut counted = 0;
    let mut seen_frames = 0;
    move |f| {
        counted += f[seen_frames..].iter().filter(|f| f.event.as_deref() == Some("span:new")).count();
        seen_frames = f.len();
        counted >= n
    }
}

async fn stream(server: &TestServer, query: &str, key: Option<&str>) -> SseStream {
    let mut s = SseStream::connect(&format!("{}/api/live/events{query}", server.url), key, None).await;
    assert_eq!(s.status, 200);
    let hello = s.next(WAIT).await.expect("connected comment");
    assert!(hello.comments[0].starts_with("connected at "), "{hello:?}");
    s
}

#[tokio::test]
async fn streams_span_events_with_ids_and_the_original_headers_and_payload() {
    let server = TestServer::start().await;
    let mut s = stream(&server, "", Some(ADMIN_KEY)).await;
    assert_eq!(s.headers["content-type"], "text/event-stream; charset=utf-8");
    assert_eq!(s.headers["cache-control"], "no-cache");
    assert_eq!(s.headers["x-accel-buffering"], "no");
    let sid = session_id();
    assert_eq!(server.admin().ingest(&agent_run(&sid, 3, None)).await.status, 202);
    let frames = s.read_until(WAIT, has_span_count(3)).await;
    assert_eq!(spans_of(&frames), vec![format!("{sid}-root"), format!("{sid}-1"), format!("{sid}-2")]);
    let f = &frames[0];
    assert!(f.id.as_deref().unwrap().contains(':'), "every event has an id: {f:?}");
    let data = f.json();
    // docs/live.md's fields (the original's, and span_id), and no other.
    let mut fields: Vec<&str> = data.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "agent_name",
            "latency_ms",
            "project_id",
            "server_name",
            "session_id",
            "span_id",
            "started_at",
            "status",
            "tool_name"
        ],
        "{data}"
    );
    assert_eq!(data["span_id"], json!(format!("{sid}-root")));
    assert_eq!(data["session_id"], json!(sid));
    assert_eq!(data["status"], json!("success"));
}

#[tokio::test]
async fn projects_see_only_their_events_admins_see_all_and_unscoped_go_to_admins() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let a = admin.post("/api/projects", &json!({"name": "A"})).await.body["id"].as_str().unwrap().to_string();
    let b = admin.post("/api/projects", &json!({"name": "B"})).await.body["id"].as_str().unwrap().to_string();
    let key_a = admin.post("/api/auth/api-keys", &json!({"name": "a", "project_id": a, "role": "viewer"})).await.body
        ["key"]
        .as_str()
        .unwrap()
        .to_string();
    let mut s_admin = stream(&server, "", Some(ADMIN_KEY)).await;
    let mut s_a = stream(&server, "", Some(&key_a)).await; // bound key: project A whatever it asks
    let mut s_b = stream(&server, &format!("?project_id={b}"), Some(ADMIN_KEY)).await;
    let (sa, sb, sn) = (session_id(), session_id(), session_id());
    admin.ingest(&agent_run(&sa, 5, Some(&a))).await;
    admin.ingest(&agent_run(&sb, 4, Some(&b))).await;
    admin.ingest(&agent_run(&sn, 3, None)).await;
    // Markers, one per project, stored after everything else.
    let (ma, mb) = (session_id(), session_id());
    admin.ingest(&agent_run(&ma, 1, Some(&a))).await;
    admin.ingest(&agent_run(&mb, 1, Some(&b))).await;
    let all = spans_before(&mut s_admin, &mb).await;
    assert_eq!(all.len(), 13, "every project's and the unscoped events: {all:?}");
    let only_a = spans_before(&mut s_a, &ma).await;
    assert_eq!(only_a.len(), 5, "{only_a:?}");
    assert!(only_a.iter().all(|s| s.starts_with(&sa)), "{only_a:?}");
    let only_b = spans_before(&mut s_b, &mb).await;
    assert_eq!(only_b.len(), 4, "{only_b:?}");
    assert!(only_b.iter().all(|s| s.starts_with(&sb)), "{only_b:?}");
}

#[tokio::test]
async fn scoping_errors_come_before_the_stream() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let unbound = admin.post("/api/auth/api-keys", &json!({"name": "v", "role": "viewer"})).await.body["key"]
        .as_str()
        .unwrap()
        .to_string();
    let r = server.client(Some(&unbound)).get("/api/live/events").await;
    assert_eq!(r.status, 400);
    let r = server.client(Some(&unbound)).get("/api/live/events?project_id=not-mine").await;
    assert_eq!((r.status, r.detail()), (404, "Project not found."));
    let r = server.client(None).get("/api/live/events").await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn a_reconnecting_client_resumes_with_no_gap_and_no_duplicate() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let mut s = stream(&server, "", Some(ADMIN_KEY)).await;
    let first = session_id();
    admin.ingest(&agent_run(&first, 10, None)).await;
    // Read only part of the first batch, then drop the connection.
    let partial = s.read_until(WAIT, has_span_count(4)).await;
    let seen = spans_of(&partial);
    let last_id = partial.iter().rev().find_map(|f| f.id.clone()).unwrap();
    drop(s);
    let second = session_id();
    admin.ingest(&agent_run(&second, 7, None)).await;
    let mut again =
        SseStream::connect(&format!("{}/api/live/events", server.url), Some(ADMIN_KEY), Some(&last_id)).await;
    let frames = again.read_until(WAIT, has_span_count(10 + 7 - seen.len())).await;
    assert!(!frames.iter().any(|f| f.event.as_deref() == Some("missed")), "nothing was lost: {frames:?}");
    let mut all = seen.clone();
    all.extend(spans_of(&frames));
    let mut expected: Vec<String> =
        (0..10).map(|i| if i == 0 { format!("{first}-root") } else { format!("{first}-{i}") }).collect();
    expected.extend((0..7).map(|i| if i == 0 { format!("{second}-root") } else { format!("{second}-{i}") }));
    assert_eq!(all, expected, "every event exactly once, in order");
    // Nothing more arrives before a batch stored afterwards: no duplicates trailing behind.
    let marker = session_id();
    admin.ingest(&agent_run(&marker, 1, None)).await;
    assert_eq!(spans_before(&mut again, &marker).await, Vec::<String>::new(), "no duplicate trails behind");
}

#[tokio::test]
async fn resuming_beyond_the_replay_window_is_announced() {
    let server = TestServer::start_with(|c| {
        c.api_keys = vec![Secret(ADMIN_KEY.into())];
        c.sse.replay_messages = 2;
    })
    .await;
    let admin = server.admin();
    let mut s = stream(&server, "", Some(ADMIN_KEY)).await;
    admin.ingest(&agent_run(&session_id(), 1, None)).await;
    let old = s.read_until(WAIT, has_span_count(1)).await;
    let old_id = old.iter().find_map(|f| f.id.clone()).unwrap();
    drop(s);
    for _ in 0..4 {
        admin.ingest(&agent_run(&session_id(), 1, None)).await;
    }
    let mut again =
        SseStream::connect(&format!("{}/api/live/events", server.url), Some(ADMIN_KEY), Some(&old_id)).await;
    let frames = again.read_until(WAIT, has_span_count(2)).await;
    let missed = frames.iter().find(|f| f.event.as_deref() == Some("missed")).expect("a missed frame");
    assert_eq!(missed.json()["reason"], json!("replay_window_exceeded"));
    assert_eq!(spans_of(&frames).len(), 2, "what the window still holds is replayed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_told_what_it_missed_and_does_not_slow_others() {
    let server = TestServer::start_with(|c| {
        c.api_keys = vec![Secret(ADMIN_KEY.into())];
        c.sse.client_buffer = 256;
        c.rate_limits.enabled = false;
    })
    .await;
    let admin = server.admin();
    let mut slow = stream(&server, "", Some(ADMIN_KEY)).await; // connected, then not read for a while
    let mut fast = stream(&server, "", Some(ADMIN_KEY)).await;
    let reader = tokio::spawn(async move {
        let frames = fast.read_until(Duration::from_secs(60), has_span_count(1500 * 30)).await;
        assert!(!frames.iter().any(|f| f.event.as_deref() == Some("missed")), "the fast client missed nothing");
        spans_of(&frames).len()
    });
    // Enough events (~13 MB of frames) to fill the slow client's socket buffers, so that its server-side
    // buffer overflows; four publishers at a time, which a reading client keeps up with.
    let mut tasks = Vec::new();
    for chunk in 0..2 {
        let admin = admin.clone();
        let batches: Vec<Value> = (0..750).map(|_| agent_run(&session_id(), 30, None)).collect();
        tasks.push(tokio::spawn(async move {
            for b in batches {
                assert_eq!(admin.ingest(&b).await.status, 202, "chunk {chunk}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(reader.await.unwrap(), 1500 * 30, "the fast client got every event");
    let told = |f: &[Frame]| f.iter().any(|f| f.event.as_deref() == Some("missed"));
    let frames = slow.read_until(Duration::from_secs(60), told).await;
    let missed: Vec<&Frame> = frames.iter().filter(|f| f.event.as_deref() == Some("missed")).collect();
    assert!(!missed.is_empty(), "the slow client is told it missed messages");
    assert_eq!(missed[0].json()["reason"], json!("slow_client"));
    assert!(missed[0].json()["missed_messages"].as_u64().unwrap() > 0);
    let metrics = server.admin().get("/metrics").await; // hidden without a token: check the counter another way
    assert_eq!(metrics.status, 404);
}

#[tokio::test]
async fn keepalive_max_clients_and_browser_tokens() {
    let server = TestServer::start_with(|c| {
        c.api_keys = vec![Secret(ADMIN_KEY.into())];
        c.sse.keepalive_seconds = 1;
        c.sse.max_clients = 2;
    })
    .await;
    let admin = server.admin();
    let p = admin.post("/api/projects", &json!({"name": "P"})).await.body["id"].as_str().unwrap().to_string();
    let mut one = stream(&server, "", Some(ADMIN_KEY)).await;
    let ka = one.next(Duration::from_secs(3)).await.expect("keepalive");
    assert_eq!(ka.comments, vec!["keepalive".to_string()]);

    // A token minted for project P works without any header, and only shows P.
    let t = admin.post(&format!("/api/live/token?project_id={p}"), &json!({})).await;
    assert_eq!(t.status, 200, "{}", t.text);
    let url = format!("{}{}", server.url, t.body["stream_url"].as_str().unwrap());
    let mut browser = SseStream::connect(&url, None, None).await;
    assert_eq!(browser.status, 200);
    assert!(browser.next(WAIT).await.unwrap().comments[0].starts_with("connected at"));
    let (sp, so) = (session_id(), session_id());
    admin.ingest(&agent_run(&sp, 2, Some(&p))).await;
    admin.ingest(&agent_run(&so, 2, None)).await;
    let marker = session_id();
    admin.ingest(&agent_run(&marker, 1, Some(&p))).await;
    let got = spans_before(&mut browser, &marker).await;
    assert_eq!(got, vec![format!("{sp}-root"), format!("{sp}-1")], "P's events only");

    // Third stream on a worker capped at 2: the original's error frame, then the stream ends.
    let mut third = SseStream::connect(&format!("{}/api/live/events", server.url), Some(ADMIN_KEY), None).await;
    assert_eq!(third.status, 200);
    let f = third.next(WAIT).await.unwrap();
    assert_eq!(f.event.as_deref(), Some("error"));
    assert_eq!(f.json(), json!({"message": "Too many connections", "max": 2}));
    assert_eq!(third.end_within(WAIT).await, Some(vec![]), "the stream ends after its error frame");

    let bad = SseStream::connect(&format!("{}/api/live/events?token=forged.123.abc", server.url), None, None).await;
    assert_eq!(bad.status, 401);
}
