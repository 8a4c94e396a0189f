//! Alerts end to end in one process: a failing session raises one alert (persisted, `alert:fired`, one Slack
//! and one signed webhook delivery at a local receiver), the inbox actions, per-project toggles, delivery
//! retries against a failing receiver, the SSRF rules on URLs set through the API, SLO breaches firing again
//! after the dedup window, and MCP server down / recovered / circuit alerts from the monitor.

use hmac::{Hmac, Mac};
use langsight_monitor::{ServerSpec, Transport};
use langsight_server::config::{MonitoredServer, Secret};
use langsight_shared::breaker::BreakerConfig;
use serde_json::{json, Value};
use sha2::Sha256;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use test_support::receiver::Receiver;
use test_support::sse::SseStream;
use test_support::{session_id, TestServer, ADMIN_KEY};

/// A session whose only tool always fails: tagged `tool_failure`.
fn failing(session: &str, project: Option<&str>, from: usize, n: usize) -> Value {
    let now = chrono::Utc::now();
    let spans: Vec<Value> = (from..from + n)
        .map(|i| {
            json!({
                "span_id": format!("{session}-{i}"), "span_type": "tool_call", "session_id": session,
                "server_name": "github", "tool_name": "create_issue", "agent_name": "triager",
                "started_at": (now - chrono::Duration::seconds(5)).to_rfc3339(), "ended_at": now.to_rfc3339(),
                "status": "error", "error": "HTTP 500 from upstream", "project_id": project,
            })
        })
        .collect();
    Value::Array(spans)
}

fn with_receiver(c: &mut langsight_server::config::Config, r: &Receiver) {
    c.api_keys = vec![Secret(ADMIN_KEY.into())];
    c.alerts.slack_webhook = Some(format!("{}/slack", r.url));
    c.alerts.webhook_url = Some(format!("{}/hook", r.url));
    c.alerts.webhook_secret = Some(Secret("s3cret".into()));
    c.alerts.retry_base = Duration::from_millis(50);
    c.dashboard_url = Some("https://langsight.example".into());
}

async fn feed(server: &TestServer, query: &str) -> Value {
    let r = server.admin().get(&format!("/api/alerts/feed?{query}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

/// Waits until `n` delivery outcomes of the alert are recorded (a channel records its outcome after its last
/// send), and returns them.
async fn recorded_deliveries(server: &TestServer, alert_id: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = server.admin().get(&format!("/api/alerts/{alert_id}/deliveries")).await.body;
        let rows = rows.as_array().cloned().unwrap_or_default();
        if rows.len() >= n {
            return rows;
        }
        assert!(Instant::now() < deadline, "{n} recorded deliveries of {alert_id}: {rows:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A counter from `/metrics` (the server needs the metrics token `scrape`).
async fn metric(server: &TestServer, name: &str) -> f64 {
    let text = test_support::http()
        .get(format!("{}/metrics", server.url))
        .bearer_auth("scrape")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{name} in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_session_alerts_once_on_every_channel() {
    let receiver = Receiver::start().await;
    let server = TestServer::start_with(|c| with_receiver(c, &receiver)).await;
    let mut events = SseStream::connect(&format!("{}/api/live/events", server.url), Some(ADMIN_KEY), None).await;
    let sid = session_id();
    // The same session arrives in three batches: one alert.
    for from in [0, 3, 6] {
        assert_eq!(server.admin().ingest(&failing(&sid, None, from, 3)).await.status, 202);
    }
    // The session rules run before the 202, and an alert is stored before it is queued: one alert in the feed
    // now means one was queued. Each channel records its outcome after its last send, so once both outcomes are
    // recorded the receiver's counts are final.
    let body = feed(&server, "status=active").await;
    assert_eq!(body["total"], json!(1), "{body}");
    let alert = body["alerts"][0].clone();
    let deliveries = recorded_deliveries(&server, alert["id"].as_str().unwrap(), 2).await;
    let outcomes: Vec<(&str, &str, i64)> = deliveries
        .iter()
        .map(|d| (d["channel"].as_str().unwrap(), d["status"].as_str().unwrap(), d["attempts"].as_i64().unwrap()))
        .collect();
    assert!(outcomes.contains(&("slack", "delivered", 1)), "{outcomes:?}");
    assert!(outcomes.contains(&("webhook", "delivered", 1)), "{outcomes:?}");
    let (slack, hooks) = (receiver.requests("/slack"), receiver.requests("/hook"));
    assert_eq!((slack.len(), hooks.len()), (1, 1));

    let payload = slack[0].json();
    assert_eq!(payload["text"], json!(":red_circle: Agent session failed: tool failure"));
    assert_eq!(payload["blocks"][0]["text"]["text"], json!(":robot_face: Agent session failed: tool failure"));
    let fields = payload["blocks"][1]["fields"].as_array().unwrap();
    assert_eq!(fields[1]["text"], json!("*Severity*\n:red_circle: CRITICAL"));
    assert_eq!(payload["blocks"][3]["elements"][0]["url"], json!(format!("https://langsight.example/sessions/{sid}")));

    // The webhook is signed: HMAC-SHA256 over "{timestamp}.{body}" with the shared secret.
    let hook = &hooks[0];
    let ts = hook.headers["x-langsight-timestamp"].to_str().unwrap();
    let sig = hook.headers["x-langsight-signature"].to_str().unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(&hook.body);
    assert_eq!(sig, format!("sha256={}", hex::encode(mac.finalize().into_bytes())));
    assert!((chrono::Utc::now().timestamp() - ts.parse::<i64>().unwrap()).abs() < 60);
    assert_eq!(hook.json()["session_id"], json!(sid));
    assert_eq!(hook.json()["alert_type"], json!("agent_failure"));

    assert_eq!(
        alert["message"],
        json!(format!("Session `{sid}` ended with health tag **tool_failure**. Agent: triager, failed tool calls: 3."))
    );
    let ev = events
        .read_until(Duration::from_secs(5), |f| f.iter().any(|f| f.event.as_deref() == Some("alert:fired")))
        .await;
    let fired = ev.iter().find(|f| f.event.as_deref() == Some("alert:fired")).expect("alert:fired").json();
    // docs/live.md: the event carries the alert as the feed lists it, every field.
    assert_eq!(fired, alert);
    let counts = server.admin().get("/api/alerts/counts").await.body;
    assert_eq!(counts, json!({"critical": 1, "warning": 0, "info": 0, "total": 1}));

    // Inbox actions with the original's texts.
    let id = alert["id"].as_str().unwrap();
    let admin = server.admin();
    assert_eq!(
        admin.post(&format!("/api/alerts/{id}/ack"), &json!({"acked_by": "user"})).await.body,
        json!({"ok": true, "alert_id": id, "status": "acked"})
    );
    assert_eq!(
        admin.post(&format!("/api/alerts/{id}/ack"), &json!({})).await.detail(),
        "Alert not found or already in final state"
    );
    assert_eq!(feed(&server, "status=acked").await["alerts"][0]["acked_by"], json!("admin"));
    let bad = admin.post(&format!("/api/alerts/{id}/snooze"), &json!({"minutes": 7})).await;
    assert_eq!((bad.status, bad.detail()), (422, "minutes must be one of: 15, 60, 240, 1440"));
    assert_eq!(
        admin.post(&format!("/api/alerts/{id}/snooze"), &json!({"minutes": 15})).await.body["status"],
        json!("snoozed")
    );
    assert_eq!(feed(&server, "status=snoozed").await["total"], json!(1));
    assert_eq!(admin.post(&format!("/api/alerts/{id}/resolve"), &json!({})).await.body["status"], json!("resolved"));
    assert_eq!(
        admin.post(&format!("/api/alerts/{id}/resolve"), &json!({})).await.detail(),
        "Alert not found or already resolved"
    );
    assert_eq!(feed(&server, "status=all").await["total"], json!(1));
    assert_eq!(server.admin().get("/api/alerts/feed?status=bogus").await.status, 422);
    drop(events);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_receiver_is_retried_then_recorded_as_failed_without_slowing_requests() {
    let receiver = Receiver::start().await;
    receiver.answer(500);
    let server = TestServer::start_with(|c| {
        with_receiver(c, &receiver);
        c.alerts.webhook_url = None;
        c.alerts.delivery_attempts = 3;
        c.alerts.retry_base = Duration::from_millis(200);
    })
    .await;
    let started = Instant::now();
    assert_eq!(server.admin().ingest(&failing(&session_id(), None, 0, 2)).await.status, 202);
    assert!(started.elapsed() < Duration::from_millis(500), "ingest waited for delivery: {:?}", started.elapsed());
    // 3 attempts with backoff (200 ms, then 800 ms), then a recorded failure.
    let id = feed(&server, "status=all").await["alerts"][0]["id"].as_str().unwrap().to_string();
    let rows = recorded_deliveries(&server, &id, 1).await;
    assert_eq!(rows[0]["status"], json!("failed"), "{rows:?}");
    assert_eq!(rows[0]["attempts"], json!(3));
    assert_eq!(rows[0]["last_error"], json!("receiver answered HTTP 500"));
    // The failure is recorded when the channel gives up, after its last attempt: the count is final.
    assert_eq!(receiver.requests("/slack").len(), 3, "no attempts after giving up");
    server.stop().await;
}

/// A hostname other than `localhost` that resolves to a loopback or private address here (the machine's own
/// name, or another loopback alias from /etc/hosts): the "name that resolves to a private address" case.
async fn private_name() -> String {
    let mut names: Vec<String> =
        std::fs::read_to_string("/etc/hostname").map(|h| vec![h.trim().to_string()]).unwrap_or_default();
    for line in std::fs::read_to_string("/etc/hosts").unwrap_or_default().lines() {
        let mut parts = line.split_whitespace();
        if parts.next().is_some_and(|ip| ip.starts_with("127.") || ip == "::1") {
            names.extend(parts.filter(|n| !n.starts_with('#')).map(String::from));
        }
    }
    for n in names.into_iter().filter(|n| !n.is_empty() && n != "localhost" && !n.ends_with(".localhost")) {
        let loopback =
            tokio::net::lookup_host((n.as_str(), 80)).await.is_ok_and(|mut a| a.any(|a| a.ip().is_loopback()));
        if loopback {
            return n;
        }
    }
    panic!("this machine has no hostname resolving to a loopback address other than localhost (see /etc/hosts)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_urls_from_the_api_pass_the_ssrf_rules() {
    let receiver = Receiver::start().await;
    let server = TestServer::start_with(|c| c.api_keys = vec![Secret(ADMIN_KEY.into())]).await;
    let admin = server.admin();
    let resolving = format!("http://{}:9/hook", private_name().await);
    for (url, why) in [
        (resolving.as_str(), "resolves to a blocked address: 127."),
        ("http://169.254.169.254/latest/meta-data", "cloud-metadata"),
        ("http://localhost:9/hook", "LANGSIGHT_ALLOW_PRIVATE_WEBHOOK_URLS=true"),
        ("http://10.1.2.3/hook", "private"),
        ("http://app.localhost/hook", "private"),
        ("ftp://example.com/hook", "scheme must be http or https"),
        (receiver.url.as_str(), "private"),
    ] {
        let r = admin.post("/api/alerts/config", &json!({"slack_webhook": url})).await;
        assert_eq!(r.status, 400, "{url}: {}", r.text);
        assert!(r.detail().starts_with("Webhook URL is not allowed: "), "{}", r.text);
        assert!(r.detail().contains(why), "{url}: {}", r.detail());
    }
    let none = admin.post("/api/alerts/test", &json!({})).await;
    assert_eq!(
        (none.status, none.detail()),
        (400, "No Slack webhook URL configured. Set it in Settings → Notifications.")
    );
    server.stop().await;

    // With private networks allowed, a receiver on loopback is accepted, never echoed, and a redirect is not followed.
    let server = TestServer::start_with(|c| {
        c.api_keys = vec![Secret(ADMIN_KEY.into())];
        c.allow_private_webhook_urls = true;
    })
    .await;
    let admin = server.admin();
    assert!(admin
        .post("/api/alerts/config", &json!({"slack_webhook": "http://169.254.169.254/x"}))
        .await
        .detail()
        .contains("cloud-metadata"));
    let saved = admin.post("/api/alerts/config", &json!({"slack_webhook": format!("{}/slack", receiver.url)})).await;
    assert_eq!(saved.status, 200, "{}", saved.text);
    assert_eq!(
        (saved.body["slack_webhook"].clone(), saved.body["webhook_configured"].clone()),
        (Value::Null, json!(true))
    );
    assert!(!admin.get("/api/alerts/config").await.text.contains(&receiver.url), "the webhook is never echoed");
    let ok = admin.post("/api/alerts/test", &json!({})).await;
    assert_eq!(ok.body, json!({"ok": true, "message": "Test notification sent successfully"}), "{}", ok.text);
    assert_eq!(receiver.requests("/slack").len(), 1);
    receiver.answer(302);
    let redirected = admin.post("/api/alerts/test", &json!({})).await;
    assert_eq!(redirected.status, 502, "{}", redirected.text);
    assert!(receiver.requests("/trap").is_empty(), "redirects are not followed");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toggles_are_per_project() {
    let receiver = Receiver::start().await;
    let server = TestServer::start_with(|c| with_receiver(c, &receiver)).await;
    let admin = server.admin();
    let mk = |name: &'static str| {
        let admin = admin.clone();
        async move { admin.post("/api/projects", &json!({"name": name})).await.body["id"].as_str().unwrap().to_string() }
    };
    let (quiet, loud) = (mk("quiet").await, mk("loud").await);
    let off = admin
        .post(&format!("/api/alerts/config?project_id={quiet}"), &json!({"alert_types": {"agent_failure": false}}))
        .await;
    assert_eq!(off.body["alert_types"]["agent_failure"], json!(false));
    assert_eq!(off.body["alert_types"]["mcp_down"], json!(true), "defaults are kept");
    assert_eq!(off.body["alert_types"]["anomaly_warning"], json!(false));
    assert_eq!(admin.ingest(&failing(&session_id(), Some(&quiet), 0, 2)).await.status, 202);
    assert_eq!(admin.ingest(&failing(&session_id(), Some(&loud), 0, 2)).await.status, 202);
    // Both sessions' rules ran before their 202s: the quiet project's alert was refused then, not later.
    assert_eq!(feed(&server, &format!("project_id={quiet}")).await["total"], json!(0));
    let loud_feed = feed(&server, &format!("project_id={loud}")).await;
    assert_eq!(loud_feed["total"], json!(1));
    // The loud alert's delivery is recorded after its send: the receiver has everything it will get.
    recorded_deliveries(&server, loud_feed["alerts"][0]["id"].as_str().unwrap(), 2).await;
    assert_eq!(receiver.requests("/slack").len(), 1);
    // An admin's global view shows every project's alerts.
    assert_eq!(feed(&server, "status=all").await["total"], json!(1));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_slo_breach_fires_within_an_interval_and_again_after_the_dedup_window() {
    let receiver = Receiver::start().await;
    let server = TestServer::start_with(|c| {
        with_receiver(c, &receiver);
        c.alerts.slo_interval = Duration::from_millis(300);
        c.alerts.dedup_seconds = 3;
        c.metrics_token = Some(Secret("scrape".into()));
    })
    .await;
    let admin = server.admin();
    let slo =
        admin.post("/api/slos", &json!({"agent_name": "triager", "metric": "success_rate", "target": 99.0})).await;
    assert_eq!(slo.status, 201, "{}", slo.text);
    assert_eq!(slo.body["window_hours"], json!(24));
    for bad in [
        json!({"agent_name": "a", "metric": "p50", "target": 1}),
        json!({"agent_name": "a", "metric": "success_rate", "target": 0}),
        json!({"agent_name": "a", "metric": "latency_p99", "target": 5, "window_hours": 721}),
    ] {
        assert_eq!(admin.post("/api/slos", &bad).await.status, 422, "{bad}");
    }
    assert_eq!(admin.get("/api/slos/status").await.body[0]["status"], json!("no_data"));
    assert_eq!(admin.ingest(&failing(&session_id(), None, 0, 1)).await.status, 202);
    let status = admin.get("/api/slos/status").await.body;
    assert_eq!((status[0]["status"].clone(), status[0]["current_value"].clone()), (json!("breached"), json!(0.0)));

    let breached =
        |b: &Value| b["alerts"].as_array().unwrap().iter().filter(|a| a["alert_type"] == json!("slo_breached")).count();
    let deadline = Instant::now() + Duration::from_secs(3);
    while breached(&feed(&server, "status=all").await) == 0 {
        assert!(Instant::now() < deadline, "slo_breached within an evaluation interval");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Still breached: the next evaluations run and are deduplicated (counted, not fired) ...
    let deduplicated = metric(&server, "langsight_alerts_deduplicated_total").await;
    let deadline = Instant::now() + Duration::from_secs(3);
    while metric(&server, "langsight_alerts_deduplicated_total").await < deduplicated + 2.0 {
        assert!(Instant::now() < deadline, "two more evaluations, each deduplicated");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ... until the dedup window (3 s) has passed since the first alert; then it fires again.
    let deadline = Instant::now() + Duration::from_secs(6);
    let alerts = loop {
        let body = feed(&server, "status=all").await;
        if breached(&body) >= 2 {
            break body;
        }
        assert!(Instant::now() < deadline, "fires again after the dedup window");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut fired_at: Vec<chrono::DateTime<chrono::FixedOffset>> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["alert_type"] == json!("slo_breached"))
        .map(|a| chrono::DateTime::parse_from_rfc3339(a["fired_at"].as_str().unwrap()).unwrap())
        .collect();
    fired_at.sort();
    let gap = fired_at[1] - fired_at[0];
    assert!(gap >= chrono::Duration::milliseconds(2900), "silent within the window: fired again after {gap}");
    let id = slo.body["id"].as_str().unwrap();
    assert_eq!(admin.delete(&format!("/api/slos/{id}")).await.status, 204);
    assert_eq!(admin.delete(&format!("/api/slos/{id}")).await.detail(), format!("SLO '{id}' not found."));
    server.stop().await;
}

/// The `checked_at` of a server's latest stored checks (newest first).
async fn checked_at(server: &TestServer, name: &str) -> Vec<String> {
    let r = server.admin().get(&format!("/api/health/servers/{name}/history?limit=100")).await;
    r.body
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["checked_at"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// Waits until `n` checks not in `seen` are stored (the monitor ran them, with their rules).
async fn wait_for_new_checks(server: &TestServer, name: &str, seen: &[String], n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let fresh = checked_at(server, name).await.into_iter().filter(|c| !seen.contains(c)).count();
        if fresh >= n {
            return;
        }
        assert!(Instant::now() < deadline, "{n} new checks of {name} (saw {fresh})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn fixture() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(|d| d.parent()).unwrap().join("mcp-fixture");
    assert!(bin.exists(), "build the fixture first: cargo build -p mcp-fixture");
    bin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_server_down_recovered_and_circuit_alerts() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let write = |mode: &str| {
        std::fs::write(
            &state,
            json!({"tools": [{"name": "t", "inputSchema": {"type": "object"}}], "mode": mode}).to_string(),
        )
        .unwrap()
    };
    write("ok");
    let server = TestServer::start_with(|c| {
        with_receiver(c, &receiver);
        c.alerts.consecutive_failures = 2;
        // Not a latency test: one check slowed threefold by a loaded machine fired `high_latency` here once.
        c.alerts.latency_spike_multiplier = 1_000.0;
        c.monitor_interval = Duration::from_millis(300);
        c.servers = vec![MonitoredServer {
            spec: ServerSpec {
                name: "fx".into(),
                transport: Transport::Stdio {
                    command: fixture().display().to_string(),
                    args: vec!["--stdio".into()],
                    env: vec![("MCP_FIXTURE_STATE".into(), state.display().to_string())],
                },
                timeout: Duration::from_secs(10),
                health_tool: None,
                health_tool_args: Default::default(),
            },
            breaker: BreakerConfig { failure_threshold: 3, cooldown_ms: 1500, half_open_max_calls: 1 },
        }];
    })
    .await;
    let types = |b: &Value| -> Vec<String> {
        let mut t: Vec<String> =
            b["alerts"].as_array().unwrap().iter().map(|a| a["alert_type"].as_str().unwrap().to_string()).collect();
        t.sort();
        t
    };
    // A healthy check first (waited for, not slept for).
    wait_for_new_checks(&server, "fx", &[], 1).await;
    write("fail");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !types(&feed(&server, "status=all").await).contains(&"circuit_breaker_open".to_string()) {
        assert!(Instant::now() < deadline, "down and circuit alerts: {:?}", types(&feed(&server, "status=all").await));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    write("ok");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !types(&feed(&server, "status=all").await).contains(&"server_recovered".to_string()) {
        assert!(Instant::now() < deadline, "recovery alert: {:?}", types(&feed(&server, "status=all").await));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Two more checks after the recovery went through the rules (the second one is stored only after the
    // first one's rules ran): any repeated alert would be in the inbox now.
    let seen = checked_at(&server, "fx").await;
    wait_for_new_checks(&server, "fx", &seen, 2).await;
    let all = feed(&server, "status=all").await;
    assert_eq!(
        types(&all),
        ["circuit_breaker_open", "circuit_breaker_recovered", "server_down", "server_recovered"],
        "each once"
    );
    let down =
        all["alerts"].as_array().unwrap().iter().find(|a| a["alert_type"] == json!("server_down")).unwrap().clone();
    assert_eq!(down["title"], json!("MCP server 'fx' is DOWN"));
    assert!(
        down["message"].as_str().unwrap().starts_with("Server 'fx' has been unreachable for 2 consecutive checks."),
        "{down}"
    );
    assert_eq!(down["project_id"], json!(""));
    // Each of the four alerts is delivered once: its outcomes are recorded after its sends, so once all are
    // recorded the receiver has everything it will get.
    for a in all["alerts"].as_array().unwrap() {
        recorded_deliveries(&server, a["id"].as_str().unwrap(), 2).await;
    }
    assert_eq!(receiver.requests("/slack").len(), 4);
    server.stop().await;
}

/// Six past hours of a healthy tool (one error in ten, steady latency), then a bad current hour.
fn error_rate_jump() -> Value {
    let now = chrono::Utc::now();
    let span = |h: i64, i: usize, ok: bool| {
        // The current hour's spans sit within milliseconds of now, so they stay in this hour.
        let back = if h == 0 { chrono::Duration::milliseconds(i as i64) } else { chrono::Duration::seconds(i as i64) };
        let at = now - chrono::Duration::hours(h) - back;
        json!({
            "span_id": format!("h{h}-{i}"), "span_type": "tool_call", "session_id": format!("{:032x}", h + 1),
            "server_name": "pg", "tool_name": "query", "agent_name": "analyst", "latency_ms": 40.0,
            "started_at": at.to_rfc3339(), "ended_at": (at + chrono::Duration::milliseconds(40)).to_rfc3339(),
            "status": if ok { "success" } else { "error" },
        })
    };
    let mut spans = Vec::new();
    for h in 1..=6 {
        for i in 0..10 {
            spans.push(span(h, i, i != 0 || h % 2 == 0));
        }
    }
    for i in 0..10 {
        spans.push(span(0, i, i >= 8));
    }
    Value::Array(spans)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_anomalies_shows_them_without_firing_alerts() {
    let server = TestServer::start_with(|c| {
        c.api_keys = vec![Secret(ADMIN_KEY.into())];
        c.alerts.anomaly_interval = Duration::from_secs(3600);
    })
    .await;
    let admin = server.admin();
    assert_eq!(admin.ingest(&error_rate_jump()).await.status, 202);
    let found = admin.get("/api/reliability/anomalies").await;
    assert_eq!(found.status, 200, "{}", found.text);
    let a = found.body.as_array().unwrap().iter().find(|a| a["metric"] == json!("error_rate")).unwrap().clone();
    // Baseline hourly error rates 0.1, 0, 0.1, 0, 0.1, 0 (mean 0.05, population std 0.05); now 0.8: z = 15.
    assert_eq!((a["server_name"].clone(), a["tool_name"].clone()), (json!("pg"), json!("query")));
    assert_eq!((a["current_value"].clone(), a["baseline_mean"].clone()), (json!(0.8), json!(0.05)));
    assert_eq!(
        (a["z_score"].clone(), a["severity"].clone(), a["sample_hours"].clone()),
        (json!(15.0), json!("critical"), json!(6))
    );
    assert!(admin
        .get("/api/reliability/anomalies?z_threshold=5&baseline_hours=24")
        .await
        .body
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["z_score"].as_f64().unwrap().abs() >= 5.0));
    let bad = admin.get("/api/reliability/anomalies?z_threshold=9").await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.body["detail"][0]["loc"], json!(["query", "z_threshold"]));
    // Raising an alert stores it before anything answers; the reads above have answered, so an alert they
    // raised would be in the feed now (the leader's own rule waits an hour before its first run).
    assert_eq!(feed(&server, "status=all").await["total"], json!(0), "reading fired nothing");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_whose_error_rate_jumps_raises_an_anomaly() {
    let server = TestServer::start_with(|c| {
        c.api_keys = vec![Secret(ADMIN_KEY.into())];
        c.alerts.anomaly_interval = Duration::from_millis(300);
    })
    .await;
    let r = server.admin().ingest(&error_rate_jump()).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let deadline = Instant::now() + Duration::from_secs(5);
    let alert = loop {
        let body = feed(&server, "status=all").await;
        if let Some(a) =
            body["alerts"].as_array().unwrap().iter().find(|a| a["alert_type"] == json!("anomaly_critical"))
        {
            break a.clone();
        }
        assert!(Instant::now() < deadline, "anomaly alert: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(alert["title"], json!("Anomaly detected: query on pg"));
    assert!(alert["message"].as_str().unwrap().contains("anomalous `error_rate`"), "{alert}");
    server.stop().await;
}

/// The original fired `agent_failure` for every unhealthy session; we fire `loop_detected` and
/// `budget_exceeded` for those tags. The feed's type filter takes the original's name and finds all three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_filters_by_type_and_takes_the_originals_names() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let now = chrono::Utc::now().to_rfc3339();
    let prevented = |sid: &str, error: &str| {
        json!([{"span_id": format!("{sid}-p"), "session_id": sid, "server_name": "github", "tool_name": "search",
                "agent_name": "triager", "started_at": now, "ended_at": now, "status": "prevented", "error": error}])
    };
    assert_eq!(admin.ingest(&failing(&session_id(), None, 0, 2)).await.status, 202);
    assert_eq!(admin.ingest(&prevented(&session_id(), "loop_detected: same call 3 times")).await.status, 202);
    assert_eq!(admin.ingest(&prevented(&session_id(), "budget_exceeded: max_steps 10")).await.status, 202);
    let types = |body: &Value| {
        let mut t: Vec<String> =
            body["alerts"].as_array().unwrap().iter().map(|a| a["alert_type"].as_str().unwrap().to_string()).collect();
        t.sort();
        t
    };
    let all = feed(&server, "status=all").await;
    assert_eq!(types(&all), ["agent_failure", "budget_exceeded", "loop_detected"], "{all}");

    let original = feed(&server, "status=all&alert_type=agent_failure").await;
    assert_eq!(types(&original), ["agent_failure", "budget_exceeded", "loop_detected"]);
    assert_eq!(original["total"], json!(3));
    let page = feed(&server, "status=all&alert_type=agent_failure&limit=1").await;
    assert_eq!(
        (page["total"].clone(), page["alerts"].as_array().unwrap().len()),
        (json!(3), 1),
        "total counts the filter"
    );
    assert_eq!(types(&feed(&server, "status=all&alert_type=loop_detected").await), ["loop_detected"]);
    assert_eq!(
        types(&feed(&server, "status=all&alert_type=budget_exceeded,loop_detected").await),
        ["budget_exceeded", "loop_detected"]
    );
    let none = feed(&server, "status=all&alert_type=mcp_down").await;
    assert_eq!((none["total"].clone(), none["alerts"].clone()), (json!(0), json!([])));
    let too_many = vec!["x"; 33].join(",");
    let bad = admin.get(&format!("/api/alerts/feed?alert_type={too_many}")).await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    server.stop().await;
}

/// The latency-spike rule: checks (run on demand, so each one's rules have run when its answer arrives) build
/// a baseline; a check at over 3× the baseline raises one `high_latency`, a second slow check none (the spike is
/// the same), a fast check ends it, and the next spike is news again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latency_spike_alerts_once_per_spike() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let write = |delay_ms: u64| {
        let tools = json!([{"name": "t", "inputSchema": {"type": "object"}}]);
        std::fs::write(&state, json!({"tools": tools, "mode": "ok", "delay_ms": delay_ms}).to_string()).unwrap()
    };
    write(0);
    let server = TestServer::start_with(|c| {
        with_receiver(c, &receiver);
        c.monitor_enabled = false;
        c.alerts.latency_spike_multiplier = 3.0;
        c.servers = vec![MonitoredServer {
            spec: ServerSpec {
                name: "fx".into(),
                transport: Transport::Stdio {
                    command: fixture().display().to_string(),
                    args: vec!["--stdio".into()],
                    env: vec![("MCP_FIXTURE_STATE".into(), state.display().to_string())],
                },
                timeout: Duration::from_secs(20),
                health_tool: None,
                health_tool_args: Default::default(),
            },
            breaker: BreakerConfig::default(),
        }];
    })
    .await;
    let admin = server.admin();
    let check = || async {
        let r = admin.post("/api/health/check", &json!({})).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body[0]["status"], json!("up"), "{}", r.text);
        r.body[0]["latency_ms"].as_f64().unwrap()
    };
    let spikes = || async {
        let all = feed(&server, "status=all").await;
        all["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["alert_type"] == json!("high_latency"))
            .cloned()
            .collect::<Vec<Value>>()
    };
    let mut fast = Vec::new();
    for _ in 0..3 {
        fast.push(check().await);
    }
    assert!(spikes().await.is_empty(), "steady checks raise nothing: {fast:?}");
    // Slow enough to be over 3× whatever the baseline of a spawned stdio server is on this machine.
    let slow_ms = (fast.iter().cloned().fold(0.0, f64::max) * 4.0).max(1500.0) as u64;
    write(slow_ms);
    let slow = check().await;
    let got = spikes().await;
    assert_eq!(got.len(), 1, "one high_latency for the spike ({slow} ms after {fast:?}): {got:?}");
    assert_eq!(got[0]["title"], json!("High latency on 'fx'"));
    assert_eq!(got[0]["severity"], json!("warning"));
    let message = got[0]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("Server 'fx' latency is {slow:.0}ms — ")) && message.contains("x baseline"),
        "{message}"
    );
    check().await;
    assert_eq!(spikes().await.len(), 1, "the same spike does not page again");
    write(0);
    check().await;
    assert_eq!(spikes().await.len(), 1, "back to normal: no alert");
    write(slow_ms * 2);
    check().await;
    assert_eq!(spikes().await.len(), 2, "a new spike after recovery is news again");
    // Each spike paged once (delivery outcomes are recorded after the sends).
    for a in spikes().await {
        recorded_deliveries(&server, a["id"].as_str().unwrap(), 2).await;
    }
    assert_eq!(receiver.requests("/slack").len(), 2);
    server.stop().await;
}
