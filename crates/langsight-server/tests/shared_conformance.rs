//! One conformance suite for the shared-state seam, run against memory and every Redis topology (real
//! servers started by the harness). For Redis, two independent `SharedState`s play two workers.

use langsight_shared::breaker::{BreakerConfig, BreakerState};
use langsight_shared::bus::{BusLimits, Delivery, Event};
use langsight_shared::redis::RedisSettings;
use langsight_shared::url::RedisUrl;
use langsight_shared::SharedState;
use std::time::Duration;
use test_support::redis::{Kind, RedisTopology};

/// The subscriber's next message (at most 5 s away, and not lagged).
async fn next(rx: &mut langsight_shared::fanout::Subscriber) -> std::sync::Arc<langsight_shared::bus::BusMessage> {
    tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("delivered").expect("no lag")
}

fn prefix() -> String {
    format!("lstest{}", uuid::Uuid::new_v4().simple())
}

async fn connect(topo: &RedisTopology, prefix: &str) -> SharedState {
    let mut settings = RedisSettings::new(RedisUrl::parse(&topo.url).expect("harness URL parses"));
    settings.ca_file = topo.ca_file.clone();
    SharedState::redis(settings, prefix, BusLimits::default()).await.expect("connects to the harness Redis")
}

/// The behaviour every backend must show. `a` and `b` are two workers (the same instance in memory mode).
async fn suite(a: &SharedState, b: &SharedState) {
    // Rate limiting: exactly `limit` accepted across both workers, concurrently.
    let mut tasks = Vec::new();
    for i in 0..300 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move { s.rate_limiter.hit("key:client1:/api/status", 200, 60_000).await }));
    }
    let mut allowed = 0;
    for t in tasks {
        let d = t.await.unwrap();
        assert!(!d.fallback, "decisions come from the shared store");
        if d.allowed {
            allowed += 1;
        } else {
            assert!(d.reset_ms > 0 && d.reset_ms <= 60_000, "reset within the window: {}", d.reset_ms);
        }
    }
    assert_eq!(allowed, 200);
    assert!(a.rate_limiter.hit("key:client2:/api/status", 200, 60_000).await.allowed, "buckets are independent");

    // Alert dedup: one first fire across workers.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move { s.dedup.first_fire("p1:server_down:github", 3600).await }));
    }
    let mut fired = 0;
    for t in tasks {
        if t.await.unwrap() {
            fired += 1;
        }
    }
    assert_eq!(fired, 1);
    assert!(b.dedup.first_fire("p1:server_down:slack", 3600).await);

    // Circuit breaker: opened by one worker, seen by the other; cooldown; half-open probes; closing.
    let cfg = BreakerConfig { failure_threshold: 3, cooldown_ms: 400, half_open_max_calls: 2 };
    a.breakers.record("pg", &cfg, false).await;
    b.breakers.record("pg", &cfg, false).await;
    assert_eq!(a.breakers.status("pg").await.state, BreakerState::Closed);
    let step = a.breakers.record("pg", &cfg, false).await;
    assert_eq!((step.before, step.after), (BreakerState::Closed, BreakerState::Open));
    assert!(step.status.opened_at_ms.is_some());
    assert!(!b.breakers.admit("pg", &cfg).await.allowed, "the other worker is protected at once");
    tokio::time::sleep(Duration::from_millis(450)).await;
    let probe = b.breakers.admit("pg", &cfg).await;
    assert!(probe.allowed);
    assert_eq!(probe.after, BreakerState::HalfOpen);
    assert!(a.breakers.admit("pg", &cfg).await.allowed, "second probe");
    assert!(!a.breakers.admit("pg", &cfg).await.allowed, "no third probe while half-open");
    a.breakers.record("pg", &cfg, true).await;
    let closed = b.breakers.record("pg", &cfg, true).await;
    assert_eq!(closed.after, BreakerState::Closed);
    assert_eq!(a.breakers.status("pg").await.consecutive_failures, 0);
    // A failure while half-open re-opens at once.
    for _ in 0..3 {
        a.breakers.record("slack", &cfg, false).await;
    }
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(a.breakers.admit("slack", &cfg).await.allowed);
    assert_eq!(b.breakers.record("slack", &cfg, false).await.after, BreakerState::Open);

    // Restoring after a restart creates an open breaker only where no state exists.
    b.breakers.restore_open("restored", &cfg, 3, 1_700_000_000_000).await;
    assert_eq!(a.breakers.status("restored").await.state, BreakerState::Open);
    b.breakers.restore_open("pg", &cfg, 3, 1_700_000_000_000).await;
    assert_eq!(a.breakers.status("pg").await.state, BreakerState::Closed, "live state wins");

    // Leadership: one holder; renewal; release; expiry hands over.
    assert!(a.leases.acquire("monitor", "w1", 5_000).await);
    if a.redis.is_some() {
        assert!(!b.leases.acquire("monitor", "w2", 5_000).await, "held by w1");
    }
    assert!(a.leases.acquire("monitor", "w1", 300).await, "renewal");
    a.leases.release("monitor", "w1").await;
    assert!(b.leases.acquire("monitor", "w2", 300).await);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(a.leases.acquire("monitor", "w1", 5_000).await, "an expired lease is taken over");

    // Event bus: messages published by either worker reach every worker's subscribers, in one order, with
    // ids, and can be replayed from any id still in the window.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !(a.bus.connected() && b.bus.connected()) {
        assert!(tokio::time::Instant::now() < deadline, "bus followers up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut rx_a, mut rx_b) = (a.bus.subscribe().await, b.bus.subscribe().await);
    let ev = |d: &str| vec![Event { name: "span:new".into(), data: d.into() }];
    for i in 0..10 {
        let publisher = if i % 2 == 0 { a } else { b };
        publisher.bus.publish(Some("project-1"), ev(&i.to_string())).await;
    }
    a.bus.publish(None, ev("unscoped")).await;
    let mut seen_a = Vec::new();
    let mut seen_b = Vec::new();
    for _ in 0..11 {
        let m = tokio::time::timeout(Duration::from_secs(5), rx_a.recv()).await.expect("delivered").expect("no lag");
        assert_eq!(m.kind, Delivery::Message);
        seen_a.push(m);
        seen_b.push(tokio::time::timeout(Duration::from_secs(5), rx_b.recv()).await.unwrap().unwrap());
    }
    let ids_a: Vec<_> = seen_a.iter().map(|m| m.id).collect();
    let ids_b: Vec<_> = seen_b.iter().map(|m| m.id).collect();
    assert_eq!(ids_a, ids_b, "one order everywhere");
    assert!(ids_a.windows(2).all(|w| w[0] < w[1]), "ids increase");
    assert_eq!(seen_a[0].project.as_deref(), Some("project-1"));
    assert_eq!(seen_a[10].project, None);
    let mut datas: Vec<String> = seen_a[..10].iter().map(|m| m.events[0].data.clone()).collect();
    datas.sort_by_key(|d| d.parse::<u32>().unwrap());
    assert_eq!(datas, (0..10).map(|i| i.to_string()).collect::<Vec<_>>());
    let replay = b.bus.replay(ids_a[3]).await;
    assert!(replay.complete);
    assert_eq!(replay.messages.iter().map(|m| m.id).collect::<Vec<_>>(), ids_a[3..].to_vec());
}

#[tokio::test]
async fn memory_backend_conforms() {
    let s = SharedState::memory();
    suite(&s, &s).await;
}

async fn redis_conforms(kind: Kind) {
    let topo = tokio::task::spawn_blocking(move || RedisTopology::start(kind)).await.unwrap();
    let p = prefix();
    let (a, b) = (connect(&topo, &p).await, connect(&topo, &p).await);
    suite(&a, &b).await;
    unwatched_workers_read_nothing(&topo, &p, &b).await;
    // Every key the suite left has a TTL, and only the documented families exist.
    let keys = topo.keys_with_ttl(&format!("{p}:*"));
    assert!(!keys.is_empty());
    for (key, ttl) in &keys {
        assert!(*ttl > 0 || *ttl == -2, "{key} has no TTL ({ttl})");
        let family = key.strip_prefix(&format!("{p}:")).and_then(|k| k.split(':').next()).unwrap_or("");
        assert!(["rl", "cb", "alerts", "leader", "events"].contains(&family), "unexpected key family: {key}");
    }
    // The breaker key is `{prefix}:cb:{server}` with TTL 2 × cooldown (120 s for the default 60 s).
    a.breakers.record("postgres-mcp", &BreakerConfig::default(), false).await;
    let cb = topo.keys_with_ttl(&format!("{p}:cb:postgres-mcp"));
    assert_eq!(cb.len(), 1);
    assert!(cb[0].1 > 110_000 && cb[0].1 <= 120_000, "breaker TTL: {}", cb[0].1);
    let rl = keys.iter().find(|(k, _)| k.contains(":rl:")).expect("rate-limit key");
    assert!(rl.1 <= 60_000);
}

/// A worker with no live-view subscriber reads nothing of the event log (each message would cross from Redis and
/// be decoded by every worker), and its first subscriber still gets every message published after it subscribed.
async fn unwatched_workers_read_nothing(topo: &RedisTopology, prefix: &str, publisher: &SharedState) {
    use std::sync::atomic::Ordering::Relaxed;
    let quiet = connect(topo, prefix).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !quiet.bus.connected() {
        assert!(tokio::time::Instant::now() < deadline, "bus follower up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let read = || quiet.redis.as_ref().map(|r| r.metrics.bus_messages_read.load(Relaxed)).unwrap_or(0);
    let ev = |d: &str| vec![Event { name: "span:new".into(), data: d.into() }];
    let mut watcher = publisher.bus.subscribe().await;
    for i in 0..20 {
        publisher.bus.publish(None, ev(&format!("unwatched-{i}"))).await;
    }
    for _ in 0..20 {
        next(&mut watcher).await;
    }
    // The log holds all twenty and a worker that listens has read them; now the quiet worker gets a subscriber.
    let mut rx = quiet.bus.subscribe().await;
    publisher.bus.publish(None, ev("watched")).await;
    let first = next(&mut rx).await;
    assert_eq!(first.events[0].data, "watched", "the first message after subscribing, nothing older");
    // A reader that had followed the log would have read the twenty before this one (one order).
    assert_eq!(read(), 1, "the unwatched worker read only what came after its subscriber");

    // Its last subscriber gone, it rests again once its pending read ends (a message ends it at once).
    assert!(quiet.bus.reading());
    drop(rx);
    publisher.bus.publish(None, ev("ends the pending read")).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while quiet.bus.reading() {
        assert!(tokio::time::Instant::now() < deadline, "a worker whose last subscriber left kept reading");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = read();
    for i in 0..20 {
        publisher.bus.publish(None, ev(&format!("unwatched-again-{i}"))).await;
    }
    for _ in 0..21 {
        next(&mut watcher).await;
    }
    let mut rx = quiet.bus.subscribe().await;
    publisher.bus.publish(None, ev("watched again")).await;
    let first = next(&mut rx).await;
    assert_eq!(first.events[0].data, "watched again");
    assert_eq!(read(), before + 1, "resting, it read none of the twenty, only what came after its new subscriber");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_standalone_conforms() {
    redis_conforms(Kind::Standalone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_tls_conforms() {
    redis_conforms(Kind::Tls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sentinel_conforms() {
    redis_conforms(Kind::Sentinel).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_conforms() {
    redis_conforms(Kind::Cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_falls_back_and_recovers() {
    let mut topo = tokio::task::spawn_blocking(RedisTopology::standalone).await.unwrap();
    let s = connect(&topo, &prefix()).await;
    assert!(!s.rate_limiter.hit("b", 10, 60_000).await.fallback);
    let port = topo.ports[0];
    topo.kill_node(port);
    // Requests keep flowing on local fallbacks, without waiting on the dead server.
    let started = std::time::Instant::now();
    for _ in 0..20 {
        s.rate_limiter.hit("b", 10, 60_000).await;
    }
    assert!(started.elapsed() < Duration::from_secs(3), "no request waits on a dead Redis: {:?}", started.elapsed());
    assert!(s.rate_limiter.hit("b", 10, 60_000).await.fallback);
    assert!(s.dedup.first_fire("x:y:z", 60).await, "dedup fails open");
    let mut early = s.bus.subscribe().await;
    s.bus.publish(None, vec![Event { name: "n".into(), data: "still delivered locally".into() }]).await;
    let local = early.recv().await.unwrap();
    assert_eq!(local.events[0].data, "still delivered locally");
    assert_eq!(local.kind, Delivery::LocalOnly);
    assert!(s.metrics.fallback_rate_limit.load(std::sync::atomic::Ordering::Relaxed) > 0);
    assert_eq!(s.metrics.redis_up.load(std::sync::atomic::Ordering::Relaxed), 0);
    // Redis comes back (empty): shared behaviour resumes by itself, the bus resubscribes.
    let topo = tokio::task::spawn_blocking(move || {
        topo.restart_standalone();
        topo
    })
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s.rate_limiter.hit("b", 10, 60_000).await.fallback || !s.bus.connected() {
        assert!(std::time::Instant::now() < deadline, "shared state resumes after Redis returns");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(s.metrics.redis_up.load(std::sync::atomic::Ordering::Relaxed), 1);
    let mut rx = s.bus.subscribe().await;
    s.bus.publish(None, vec![Event { name: "n".into(), data: "through redis again".into() }]).await;
    let mut kinds = Vec::new();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        kinds.push(msg.kind.clone());
        if msg.kind == Delivery::Message {
            assert_eq!(msg.events[0].data, "through redis again");
            break;
        }
    }
    // The subscriber that came in while Redis was down (its reader could not start in time) was told, when the
    // reader started, that events may be missing; then it gets the log again.
    let mut kinds = Vec::new();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), early.recv()).await.unwrap().unwrap();
        kinds.push(msg.kind.clone());
        if msg.kind == Delivery::Message {
            assert_eq!(msg.events[0].data, "through redis again");
            break;
        }
    }
    assert!(kinds.contains(&Delivery::Gap), "{kinds:?}");
    drop(topo);
}

/// A resting reader's idle connection can die unnoticed (a Redis `timeout`, a proxy, a restart). The subscriber
/// that wakes it waits while it reconnects, so what is published right after the subscriber is in still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resting_reader_whose_connection_died_still_delivers() {
    let topo = tokio::task::spawn_blocking(RedisTopology::standalone).await.unwrap();
    let p = prefix();
    let (quiet, publisher) = (connect(&topo, &p).await, connect(&topo, &p).await);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !(quiet.bus.connected() && publisher.bus.connected()) || quiet.bus.reading() {
        assert!(tokio::time::Instant::now() < deadline, "bus followers up and resting");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Both readers rest (no subscriber); their idle connections are the ones whose last command was XREVRANGE.
    let clients = topo.cli(&["client", "list"]).unwrap_or_default();
    let resting: Vec<&str> = clients
        .lines()
        .filter(|l| l.contains(" cmd=xrevrange "))
        .filter_map(|l| l.split_whitespace().find_map(|f| f.strip_prefix("id=")))
        .collect();
    assert_eq!(resting.len(), 2, "{clients}");
    for id in resting {
        assert_eq!(topo.cli(&["client", "kill", "id", id]).map(|o| o.trim().to_string()), Some("1".into()));
    }
    let mut rx = quiet.bus.subscribe().await;
    publisher.bus.publish(None, vec![Event { name: "n".into(), data: "right after".into() }]).await;
    let msg = next(&mut rx).await;
    assert_eq!((msg.kind.clone(), msg.events[0].data.as_str()), (Delivery::Message, "right after"));
}
