//! Ingest, sessions and traces over real HTTP against the real server and SQLite.

use serde_json::{json, Value};
use test_support::{agent_run, session_id, TestServer};

#[tokio::test]
async fn a_30_span_run_shows_in_the_list_and_the_trace() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let sid = session_id();
    let r = admin.ingest(&agent_run(&sid, 30, None)).await;
    assert_eq!((r.status, &r.body), (202, &json!({"accepted": 30})));

    let list = admin.get("/api/agents/sessions").await;
    assert_eq!(list.status, 200, "{}", list.text);
    let sessions = list.body.as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    let s = &sessions[0];
    assert_eq!(s["session_id"], json!(sid));
    assert_eq!(s["agent_name"], json!("researcher"));
    // 30 spans: 1 root agent span, 3 LLM (agent) spans (i%10==7), 26 tool calls of which 3 failed.
    assert_eq!(s["tool_calls"], json!(26));
    assert_eq!(s["failed_calls"], json!(3));
    // search_issues failed and then succeeded each time: a fallback, not a failure.
    assert_eq!(s["health_tag"], json!("success_with_fallback"));
    assert_eq!(s["servers_used"], json!(["filesystem", "github"]));
    assert_eq!(s["total_input_tokens"], json!(3600));
    assert_eq!(s["model_id"], json!("claude-sonnet-4-6"));
    assert_eq!(s["has_prompt"], json!(true));
    assert_eq!(s["duration_ms"], json!(3050.0));

    let trace = admin.get(&format!("/api/agents/sessions/{sid}")).await;
    assert_eq!(trace.status, 200, "{}", trace.text);
    let t = &trace.body;
    assert_eq!(t["total_spans"], json!(30));
    assert_eq!(t["health_tag"], json!("success_with_fallback"), "ours: the stored tag comes with the trace");
    // Payloads on demand: the trace without them, then one span with them.
    let lean = admin.get(&format!("/api/agents/sessions/{sid}?payloads=false")).await.body;
    assert!(lean["spans_flat"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["input_json"].is_null() && s["output_json"].is_null()));
    assert_eq!(lean["total_spans"], json!(30));
    let one_id = t["spans_flat"][1]["span_id"].as_str().unwrap();
    let one = admin.get(&format!("/api/agents/sessions/{sid}/spans/{one_id}")).await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(one.body["input_json"], t["spans_flat"][1]["input_json"]);
    let missing = admin.get(&format!("/api/agents/sessions/{sid}/spans/nope")).await;
    assert_eq!(
        (missing.status, missing.detail()),
        (404, format!("Span 'nope' not found in session '{sid}'.").as_str())
    );
    assert_eq!(t["tool_calls"], json!(26));
    assert_eq!(t["failed_calls"], json!(3));
    assert_eq!(t["spans_flat"].as_array().unwrap().len(), 30);
    let roots = t["root_spans"].as_array().unwrap();
    assert_eq!(roots.len(), 1, "one root: the session span");
    assert_eq!(roots[0]["children"].as_array().unwrap().len(), 29);
    let child = &roots[0]["children"][0];
    assert_eq!(child["parent_span_id"], roots[0]["span_id"]);
    assert_eq!(child["latency_ms"], json!(80.0), "latency computed from the timestamps");
    let input: Value = serde_json::from_str(child["input_json"].as_str().unwrap()).unwrap();
    assert_eq!(input, json!({"query": "release notes", "page": 1}), "input_args stored as JSON text");
    server.stop().await;
}

#[tokio::test]
async fn unknown_session_is_404_with_the_original_text() {
    let server = TestServer::start().await;
    let r = server.admin().get("/api/agents/sessions/0123456789abcdef0123456789abcdef").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.detail(), "Session '0123456789abcdef0123456789abcdef' not found.");
}

#[tokio::test]
async fn tags_accumulate_across_batches_and_never_downgrade() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let sid = session_id();
    let span = |id: &str, tool: &str, status: &str, error: Value| {
        json!({"span_id": id, "session_id": sid, "server_name": "s", "tool_name": tool, "status": status,
               "error": error, "agent_name": "a", "started_at": chrono_now(), "ended_at": chrono_now()})
    };
    let tag = |body: &Value| body[0]["health_tag"].clone();
    admin.ingest(&json!([span("1", "t", "success", Value::Null)])).await;
    assert_eq!(tag(&admin.get("/api/agents/sessions").await.body), json!("success"));
    admin.ingest(&json!([span("2", "u", "timeout", Value::Null)])).await;
    assert_eq!(tag(&admin.get("/api/agents/sessions").await.body), json!("timeout"));
    admin.ingest(&json!([span("3", "v", "prevented", json!("loop_detected: same call 3 times"))])).await;
    assert_eq!(tag(&admin.get("/api/agents/sessions").await.body), json!("loop_detected"));
    // A later clean batch does not wash the loop away.
    admin.ingest(&json!([span("4", "u", "success", Value::Null)])).await;
    assert_eq!(tag(&admin.get("/api/agents/sessions").await.body), json!("loop_detected"));
    let filtered = admin.get("/api/agents/sessions?health_tag=loop_detected").await;
    assert_eq!(filtered.body.as_array().unwrap().len(), 1);
    let other = admin.get("/api/agents/sessions?health_tag=success").await;
    assert_eq!(other.body, json!([]));
    let bad = admin.get("/api/agents/sessions?health_tag=great").await;
    assert_eq!(bad.status, 422);
    assert!(bad.text.contains("loop_detected"), "lists the valid tags: {}", bad.text);
}

fn chrono_now() -> String {
    chrono::Utc::now().to_rfc3339()
}

#[tokio::test]
async fn list_filters_and_limits() {
    let server = TestServer::start().await;
    let admin = server.admin();
    for agent in ["alpha", "beta", "beta"] {
        let sid = session_id();
        let batch = json!([{"session_id": sid, "server_name": "s", "tool_name": "t", "status": "success",
            "agent_name": agent, "started_at": chrono_now(), "ended_at": chrono_now()}]);
        assert_eq!(admin.ingest(&batch).await.status, 202);
    }
    let old = json!([{"session_id": session_id(), "server_name": "s", "tool_name": "t", "status": "success",
        "started_at": "2020-01-01T00:00:00Z", "ended_at": "2020-01-01T00:00:01Z"}]);
    assert_eq!(admin.ingest(&old).await.status, 202);
    assert_eq!(
        admin.get("/api/agents/sessions").await.body.as_array().unwrap().len(),
        3,
        "the 2020 session is outside 24 h"
    );
    assert_eq!(admin.get("/api/agents/sessions?agent_name=beta").await.body.as_array().unwrap().len(), 2);
    assert_eq!(admin.get("/api/agents/sessions?limit=1").await.body.as_array().unwrap().len(), 1);
    for bad in ["hours=0", "hours=721", "limit=0", "limit=1001", "hours=abc"] {
        let r = admin.get(&format!("/api/agents/sessions?{bad}")).await;
        assert_eq!(r.status, 422, "{bad}");
        assert_eq!(r.body["detail"][0]["loc"][0], json!("query"), "{bad}: {}", r.text);
    }
}

/// Ours: search, sort, offset paging, the failed / clean choice and counts on the sessions list, all
/// optional (the original's parameters alone give the original's list).
#[tokio::test]
async fn list_searches_sorts_pages_and_counts_on_the_server() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let now = chrono::Utc::now();
    let at = |ms: i64| (now + chrono::Duration::milliseconds(ms)).to_rfc3339();
    // Three sessions, oldest first: "Planner" (3 spans, 4 s), "coder" (1 failed span, 1 s), "coder" (2 spans, 2 s).
    let mut ids = Vec::new();
    for (i, (agent, n, secs, status)) in
        [("Planner", 3, 4, "success"), ("coder", 1, 1, "error"), ("coder", 2, 2, "success")].into_iter().enumerate()
    {
        let sid = session_id();
        let start = -60_000 + i as i64 * 10_000;
        let batch: Vec<Value> = (0..n)
            .map(|k| {
                json!({"session_id": sid, "span_id": format!("{sid}-{k}"), "server_name": "s", "tool_name": "t",
                "status": status, "error": if status == "error" { json!("boom") } else { Value::Null },
                "agent_name": agent, "started_at": at(start + k), "ended_at": at(start + secs * 1000)})
            })
            .collect();
        assert_eq!(admin.ingest(&Value::Array(batch)).await.status, 202);
        ids.push(sid);
    }
    let order = |r: &test_support::Reply| -> Vec<usize> {
        let rows = r.body.as_array().unwrap_or_else(|| panic!("{}", r.text));
        rows.iter().map(|s| ids.iter().position(|id| s["session_id"] == json!(id)).unwrap()).collect()
    };
    let get = |q: &'static str| {
        let admin = admin.clone();
        async move { admin.get(&format!("/api/agents/sessions?{q}")).await }
    };
    assert_eq!(order(&get("").await), [2, 1, 0], "newest first by default");
    assert_eq!(order(&get("limit=1&offset=1").await), [1]);
    assert_eq!(order(&get("limit=2&offset=2").await), [0]);
    assert_eq!(order(&get("sort=started&order=asc").await), [0, 1, 2]);
    assert_eq!(order(&get("sort=duration").await), [0, 2, 1], "longest first");
    assert_eq!(order(&get("sort=spans&order=asc").await), [1, 2, 0]);
    assert_eq!(order(&get("sort=health").await)[0], 1, "the failure first");
    assert_eq!(order(&get("q=planner").await), [0], "any case");
    assert_eq!(order(&get("q=CODER&sort=duration&order=asc").await), [1, 2]);
    assert_eq!(order(&get("outcome=failed").await), [1]);
    assert_eq!(order(&get("outcome=clean&sort=spans").await), [0, 2]);
    let first = &ids[0][..10];
    assert_eq!(order(&admin.get(&format!("/api/agents/sessions?q={first}")).await), [0], "by session id");
    // Counts: every match (ignoring outcome and paging), and of them the failed.
    let counted = get("counts=true&limit=1&outcome=clean").await;
    assert_eq!(order(&counted), [2]);
    let header = |name: &str| counted.headers.get(name).and_then(|v| v.to_str().ok()).map(String::from);
    assert_eq!((header("x-total-count"), header("x-failed-count")), (Some("3".into()), Some("1".into())));
    let coders = get("counts=true&q=coder").await;
    assert_eq!(coders.headers.get("x-total-count").unwrap(), "2");
    assert!(get("").await.headers.get("x-total-count").is_none(), "counts only when asked");
    for bad in ["sort=cost", "order=up", "outcome=maybe", "offset=-1", "offset=10001"] {
        let r = admin.get(&format!("/api/agents/sessions?{bad}")).await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text);
        assert_eq!(r.body["detail"][0]["loc"][0], json!("query"), "{bad}: {}", r.text);
    }
}

#[tokio::test]
async fn concurrent_batches_are_all_committed() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let sessions: Vec<String> = (0..50).map(|_| session_id()).collect();
    let tasks: Vec<_> = sessions
        .iter()
        .map(|sid| {
            let (c, b) = (admin.clone(), agent_run(sid, 30, None));
            tokio::spawn(async move { c.ingest(&b).await.status })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 202);
    }
    let list = admin.get("/api/agents/sessions?limit=1000").await;
    assert_eq!(list.body.as_array().unwrap().len(), 50);
    for sid in sessions.iter().take(5) {
        let t = admin.get(&format!("/api/agents/sessions/{sid}")).await;
        assert_eq!(t.body["total_spans"], json!(30));
    }
    let metrics_free = server.admin().get("/metrics").await;
    assert_eq!(metrics_free.status, 404, "metrics stay hidden without LANGSIGHT_METRICS_TOKEN");
}

#[tokio::test]
async fn graceful_shutdown_commits_in_flight_batches() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let db = server.db_path.clone();
    let sessions: Vec<String> = (0..20).map(|_| session_id()).collect();
    let tasks: Vec<_> = sessions
        .iter()
        .map(|sid| {
            let (c, b) = (admin.clone(), agent_run(sid, 30, None));
            tokio::spawn(async move { c.ingest(&b).await.status })
        })
        .collect();
    let mut accepted = 0;
    for t in tasks {
        if t.await.unwrap() == 202 {
            accepted += 1;
        }
    }
    let stopped = server.stop().await;
    let conn = rusqlite::Connection::open(&db).unwrap();
    let stored: i64 = conn.query_row("SELECT count(*) FROM spans", [], |r| r.get(0)).unwrap();
    assert_eq!(stored, accepted * 30);
    drop(conn);
    let again =
        stopped.restart(|c| c.api_keys = vec![langsight_server::config::Secret(test_support::ADMIN_KEY.into())]).await;
    let list = again.admin().get("/api/agents/sessions?limit=1000").await;
    assert_eq!(list.body.as_array().unwrap().len(), accepted as usize);
}

#[tokio::test]
async fn server_invocations_and_logs_come_from_stored_tool_calls() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let sid = session_id();
    assert_eq!(admin.ingest(&agent_run(&sid, 30, None)).await.status, 202);
    let inv = admin.get("/api/health/servers/invocations").await;
    assert_eq!(inv.status, 200, "{}", inv.text);
    let rows = inv.body.as_array().unwrap();
    let github = rows.iter().find(|r| r["server_name"] == json!("github")).expect("github row");
    // agent_run: github serves even-numbered read_file calls plus every search_issues call (3 failed of 6).
    let total = github["total_calls"].as_i64().unwrap();
    assert!(total > 0);
    let rate = github["success_rate_pct"].as_f64().unwrap();
    assert!(rate > 0.0 && rate < 100.0, "some github calls failed: {rate}");
    assert!(rows.iter().all(|r| r["server_name"] != json!("crewai")), "agent spans are not tool calls");

    let logs = admin.get("/api/health/servers/github/logs?limit=5").await;
    let entries = logs.body.as_array().unwrap();
    assert_eq!(entries.len(), 5);
    assert!(entries.windows(2).all(|w| w[0]["started_at"].as_str() >= w[1]["started_at"].as_str()), "newest first");
    assert_eq!(entries[0]["session_id"], json!(sid));
    assert_eq!(admin.get("/api/health/servers/invocations?hours=0").await.status, 422);
}

#[tokio::test]
async fn blast_radius_and_drift_impact_from_stored_calls() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let (s1, s2) = (session_id(), session_id());
    admin.ingest(&agent_run(&s1, 30, None)).await;
    admin.ingest(&agent_run(&s2, 30, None)).await;
    let br = admin.get("/api/health/servers/github/blast-radius").await;
    assert_eq!(br.status, 200, "{}", br.text);
    assert_eq!(br.body["total_sessions_at_risk"], json!(2));
    assert_eq!(br.body["total_agents_affected"], json!(1));
    assert_eq!(br.body["severity"], json!("medium"));
    assert_eq!(br.body["server_status"], json!("unknown"));
    let agent = &br.body["affected_agents"][0];
    assert_eq!(agent["agent_name"], json!("researcher"));
    assert_eq!(agent["session_count"], json!(2));
    assert!(agent["error_rate_pct"].as_f64().unwrap() > 0.0);

    let di = admin.get("/api/health/servers/github/drift-impact?tool_name=search_issues").await;
    let rows = di.body.as_array().unwrap();
    assert_eq!(rows.len(), 2, "one row per agent and session: {}", di.text);
    assert!(rows.iter().all(|r| r["call_count"] == json!(6) && r["error_count"] == json!(3)), "{}", di.text);
    assert_eq!(admin.get("/api/health/servers/github/drift-impact").await.status, 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_old_sessions_on_the_leader() {
    let server = TestServer::start_with(|c| {
        c.api_keys = vec![langsight_server::config::Secret(test_support::ADMIN_KEY.into())];
        c.retention_days = 2;
        c.retention_interval = std::time::Duration::from_millis(200);
    })
    .await;
    let admin = server.admin();
    let (old, fresh) = (session_id(), session_id());
    let three_days_ago = chrono::Utc::now() - chrono::Duration::days(3);
    let ancient = json!([{"span_id": "r-1", "span_type": "tool_call", "session_id": old, "server_name": "github",
        "tool_name": "t", "started_at": three_days_ago.to_rfc3339(), "ended_at": three_days_ago.to_rfc3339(), "status": "success"}]);
    assert_eq!(admin.ingest(&ancient).await.status, 202);
    assert_eq!(admin.ingest(&agent_run(&fresh, 3, None)).await.status, 202);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let list = admin.get("/api/agents/sessions?hours=720").await.body;
        let ids: Vec<&str> = list.as_array().unwrap().iter().map(|s| s["session_id"].as_str().unwrap()).collect();
        if !ids.contains(&old.as_str()) {
            assert_eq!(ids, [fresh.as_str()], "recent data stays");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the old session was pruned: {ids:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(admin.get(&format!("/api/agents/sessions/{old}")).await.status, 404, "its spans went too");
    server.stop().await;
}
