//! Costs, monitoring, reliability and lineage over real HTTP, on a fixed dataset whose figures were
//! computed by hand (the comments show the arithmetic).

use langsight_server::config::CostRule;
use serde_json::{json, Value};
use test_support::{session_id, TestServer};

fn span(id: &str, session: &str, kind: &str, [server, tool]: [&str; 2], agent: &str, ms: i64, status: &str) -> Value {
    let t0 = chrono::Utc::now() - chrono::Duration::minutes(2);
    json!({
        "span_id": id, "span_type": kind, "session_id": session, "server_name": server, "tool_name": tool,
        "agent_name": agent, "started_at": t0.to_rfc3339(),
        "ended_at": (t0 + chrono::Duration::milliseconds(ms)).to_rfc3339(), "status": status,
    })
}

/// Two sessions: a planner that calls tools, fails twice and hands off; a writer that loops once.
fn dataset(sa: &str, sb: &str) -> Value {
    let mut s = vec![
        span("a1", sa, "agent", ["anthropic", "generate/claude-sonnet-4-6"], "planner", 1000, "success"),
        span("a2", sa, "tool_call", ["github", "search_issues"], "planner", 100, "success"),
        span("a3", sa, "tool_call", ["github", "search_issues"], "planner", 300, "error"),
        span("a4", sa, "tool_call", ["filesystem", "read_file"], "planner", 5000, "timeout"),
        span("a5", sa, "handoff", ["crew", "→ writer"], "planner", 1, "success"),
        span("b1", sb, "tool_call", ["filesystem", "read_file"], "writer", 200, "success"),
        span("b2", sb, "agent", ["openai", "generate/gpt-4o"], "writer", 2000, "success"),
        span("b3", sb, "tool_call", ["github", "search_issues"], "writer", 10, "prevented"),
    ];
    s[0]["model_id"] = json!("claude-sonnet-4-6");
    s[0]["input_tokens"] = json!(1_000_000);
    s[0]["output_tokens"] = json!(100_000);
    for child in &mut s[1..5] {
        child["parent_span_id"] = json!("a1");
    }
    s[2]["error"] = json!("rate limit exceeded (429)");
    s[3]["error"] = json!("timed out after 5s");
    s[6]["model_id"] = json!("openai/gpt-4o");
    s[6]["input_tokens"] = json!(200_000);
    s[6]["output_tokens"] = json!(10_000);
    s[7]["error"] = json!("loop detected: same call 3 times");
    Value::Array(s)
}

fn find<'a>(rows: &'a Value, key: &str, value: &str) -> &'a Value {
    rows.as_array().unwrap().iter().find(|r| r[key] == json!(value)).unwrap_or_else(|| panic!("{value} in {rows}"))
}

fn close(v: &Value, expected: f64) -> bool {
    (v.as_f64().unwrap_or(f64::NAN) - expected).abs() < 1e-6
}

/// Quantiles come from the rollups' latency sketch: within 1 % of the exact value.
fn near(v: &Value, expected: f64) -> bool {
    (v.as_f64().unwrap_or(f64::NAN) - expected).abs() <= expected.abs() * 0.01
}

#[tokio::test]
async fn figures_match_the_hand_computed_ones() {
    let server = TestServer::start_with(|c| {
        c.api_keys = vec![langsight_server::config::Secret(test_support::ADMIN_KEY.into())];
        c.cost_rules = vec![
            CostRule { server: "git*".into(), tool: "*".into(), cost_per_call: 0.01 },
            CostRule { server: "*".into(), tool: "*".into(), cost_per_call: 0.002 },
        ]
    })
    .await;
    let admin = server.admin();
    let (sa, sb) = (session_id(), session_id());
    let r = admin.ingest(&dataset(&sa, &sb)).await;
    assert_eq!(r.status, 202, "{}", r.text);

    // Costs. Tokens: sonnet 1M in × $3 + 0.1M out × $15 = 4.5; gpt-4o (found without "openai/") 0.2M × $2.5 +
    // 0.01M × $10 = 0.6. Calls: github 3 × 0.01 = 0.03, filesystem 2 × 0.002 = 0.004. The handoff is not priced.
    let c = admin.get("/api/costs/breakdown?hours=1").await;
    assert_eq!(c.status, 200, "{}", c.text);
    let c = c.body;
    assert_eq!((c["storage_mode"].clone(), c["supports_costs"].clone()), (json!("sqlite"), json!(true)));
    assert_eq!(c["total_calls"], json!(7));
    assert!(close(&c["llm_cost_usd"], 5.1) && close(&c["tool_cost_usd"], 0.034), "{c}");
    assert!(close(&c["total_cost_usd"], 5.134), "{c}");
    assert_eq!((c["total_input_tokens"].clone(), c["total_output_tokens"].clone()), (json!(1_200_000), json!(110_000)));
    let tools = c["by_tool"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["tool_name"].as_str().unwrap()).collect();
    assert_eq!(names, ["generate/claude-sonnet-4-6", "generate/gpt-4o", "search_issues", "read_file"], "by cost");
    assert_eq!(tools[0]["cost_type"], json!("token_based"));
    assert_eq!(tools[0]["total_input_tokens"], json!(1_000_000), "a plain sum, not sum × calls");
    assert_eq!(tools[2]["cost_type"], json!("call_based"));
    assert!(close(&tools[2]["cost_per_call_usd"], 0.01) && close(&tools[3]["total_cost_usd"], 0.004));
    // planner: 4.5 + 2 × 0.01 + 0.002; writer: 0.6 + 0.01 + 0.002.
    assert!(close(&find(&c["by_agent"], "agent_name", "planner")["total_cost_usd"], 4.522), "{c}");
    assert!(close(&find(&c["by_agent"], "agent_name", "writer")["total_cost_usd"], 0.612), "{c}");
    assert_eq!(c["by_session"][0]["session_id"], json!(sa));

    // The sessions list prices each session's tokens.
    let list = admin.get("/api/agents/sessions").await.body;
    assert!(close(&find(&list, "session_id", &sa)["est_cost_usd"], 4.5), "{list}");
    assert!(close(&find(&list, "session_id", &sb)["est_cost_usd"], 0.6), "{list}");

    // Monitoring, tools: github 3 calls (2 not successful), latency (100 + 300 + 10) / 3; filesystem 2 calls,
    // p99 = 200 + 0.99 × (5000 − 200).
    let t = admin.get("/api/monitoring/tools?hours=1").await.body;
    let gh = find(&t, "server_name", "github");
    assert_eq!((gh["calls"].clone(), gh["errors"].clone()), (json!(3), json!(2)));
    assert!(close(&gh["avg_latency_ms"], 410.0 / 3.0) && close(&gh["calls_per_session"], 1.5), "{gh}");
    let fs = find(&t, "server_name", "filesystem");
    assert!(near(&fs["p99_latency_ms"], 4952.0) && close(&fs["success_rate"], 50.0), "{fs}");

    let m = admin.get("/api/monitoring/models?hours=1").await.body;
    assert!(close(&find(&m, "model_id", "claude-sonnet-4-6")["est_cost_usd"], 4.5), "{m}");
    assert!(close(&find(&m, "model_id", "openai/gpt-4o")["est_cost_usd"], 0.6), "{m}");

    // Errors: the 429 is a rate limit, the timeout a timeout, the loop an other_error; a third each.
    let e = admin.get("/api/monitoring/errors?hours=1").await.body;
    for cat in ["rate_limit", "timeout", "other_error"] {
        let row = find(&e, "category", cat);
        assert_eq!((row["count"].clone(), row["tool_errors"].clone()), (json!(1), json!(1)), "{e}");
        assert!(close(&row["pct"], 33.3), "{e}");
    }

    // Timeseries, 5-minute buckets: everything started in one. 5 tool calls, 3 not successful, both sessions
    // had a failure, 1.2M input tokens.
    let ts = admin.get("/api/monitoring/timeseries?hours=1").await.body;
    let b = &ts[0];
    assert_eq!(ts.as_array().unwrap().len(), 1, "{ts}");
    assert_eq!((b["sessions"].clone(), b["tool_calls"].clone(), b["errors"].clone()), (json!(2), json!(5), json!(3)));
    assert!(close(&b["error_rate"], 0.6) && close(&b["session_error_rate"], 1.0), "{b}");
    assert_eq!((b["input_tokens"].clone(), b["agents"].clone()), (json!(1_200_000), json!(2)));

    let trends = admin.get("/api/monitoring/trends").await.body;
    assert_eq!((trends["cur_sessions"].clone(), trends["prev_sessions"].clone()), (json!(2.0), json!(0.0)));
    assert!(close(&trends["cur_error_rate"], 0.6) && trends["error_rate_delta_pct"].is_null(), "{trends}");

    // Reliability: the prevented call is neither an error nor a timeout; the 429 is a server error.
    let r = admin.get("/api/reliability/tools?hours=1").await.body;
    let gh = find(&r, "server_name", "github");
    assert_eq!((gh["success_calls"].clone(), gh["error_calls"].clone()), (json!(1), json!(1)));
    assert!(close(&gh["success_rate_pct"], 33.33) && gh["is_degraded"] == json!(true), "{gh}");
    assert_eq!(gh["error_breakdown"]["server"], json!(1));
    let fs = find(&r, "server_name", "filesystem");
    assert_eq!((fs["timeout_calls"].clone(), fs["error_breakdown"]["timeout"].clone()), (json!(1), json!(1)));
    let only = admin.get("/api/reliability/tools?hours=1&server_name=github").await.body;
    assert_eq!(only.as_array().unwrap().len(), 1);

    let loops = admin.get("/api/agents/loop-counts").await.body;
    assert_eq!(loops, json!([{"agent_name": "writer", "loop_count": 1}]));

    // Lineage: four agent→server edges and the planner→writer handoff.
    let g = admin.get("/api/agents/lineage").await.body;
    let edges = g["edges"].as_array().unwrap();
    assert_eq!(edges.iter().filter(|e| e["type"] == json!("calls")).count(), 4, "{g}");
    let handoff = edges.iter().find(|e| e["type"] == json!("handoff")).unwrap();
    assert_eq!((handoff["source"].clone(), handoff["target"].clone()), (json!("agent:planner"), json!("agent:writer")));
    let planner = find(&g["nodes"], "id", "agent:planner");
    assert_eq!(
        (planner["metrics"]["total_calls"].clone(), planner["metrics"]["error_count"].clone()),
        (json!(3), json!(2))
    );
    server.stop().await;
}

#[tokio::test]
async fn model_prices_keep_their_history() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let seeded = admin.get("/api/costs/models").await.body;
    assert_eq!(seeded.as_array().unwrap().len(), 16, "the built-in list");
    assert!(seeded.as_array().unwrap().iter().all(|p| p["is_active"] == json!(true) && p["is_custom"] == json!(false)));

    let body = json!({"provider": "acme", "model_id": "acme-1", "display_name": "Acme 1", "input_per_1m_usd": 1.0,
        "output_per_1m_usd": 2.0});
    let created = admin.post("/api/costs/models", &body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["is_custom"], json!(true));
    let id = created.body["id"].as_str().unwrap().to_string();

    let changed = admin
        .send(
            reqwest::Method::PATCH,
            &format!("/api/costs/models/{id}"),
            Some(
                serde_json::to_vec(&json!({"provider": "acme", "model_id": "acme-1", "display_name": "Acme 1",
                "input_per_1m_usd": 4.0}))
                .unwrap(),
            ),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_ne!(changed.body["id"], json!(id), "a new row");
    let rows = admin.get("/api/costs/models").await.body;
    let acme: Vec<&Value> = rows.as_array().unwrap().iter().filter(|p| p["model_id"] == json!("acme-1")).collect();
    assert_eq!(acme.len(), 2, "history kept");
    assert_eq!(acme[0]["input_per_1m_usd"], json!(4.0), "newest first");
    assert_eq!((acme[0]["is_active"].clone(), acme[1]["is_active"].clone()), (json!(true), json!(false)));
    assert!(acme[1]["effective_to"].is_string());

    // The retired row cannot be changed again; a bad price is refused with the field named.
    let again = admin
        .send(reqwest::Method::PATCH, &format!("/api/costs/models/{id}"), Some(serde_json::to_vec(&body).unwrap()))
        .await;
    assert_eq!(again.status, 404, "{}", again.text);
    let bad = admin
        .post(
            "/api/costs/models",
            &json!({"provider": "x", "model_id": "y", "display_name": "y",
        "input_per_1m_usd": -1}),
        )
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.text.contains("input_per_1m_usd"), "{}", bad.text);

    let new_id = changed.body["id"].as_str().unwrap().to_string();
    assert_eq!(admin.delete(&format!("/api/costs/models/{new_id}")).await.status, 204);
    let rows = admin.get("/api/costs/models").await.body;
    assert!(rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["model_id"] == json!("acme-1"))
        .all(|p| p["is_active"] == json!(false)));

    // Viewers read prices but cannot change them.
    let created = admin.post("/api/auth/api-keys", &json!({"name": "v", "role": "viewer"})).await;
    let viewer = server.client(created.body["key"].as_str());
    assert_eq!(viewer.get("/api/costs/models").await.status, 200);
    assert_eq!(viewer.post("/api/costs/models", &body).await.status, 403);
    server.stop().await;
}

#[tokio::test]
async fn unfinished_runs_are_listed_and_tagged_without_hiding_failures() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let at = |minutes_ago: i64| (chrono::Utc::now() - chrono::Duration::minutes(minutes_ago)).to_rfc3339();
    let child = |id: &str, session: &str, parent: &str, minutes_ago: i64, status: &str| {
        json!({"span_id": id, "parent_span_id": parent, "span_type": "tool_call", "session_id": session,
            "server_name": "github", "tool_name": "search", "agent_name": "crawler", "started_at": at(minutes_ago),
            "ended_at": at(minutes_ago), "status": status})
    };
    let (crashed, finished, running, failed) = (session_id(), session_id(), session_id(), session_id());
    let mut root = child("b-root", &finished, "", 10, "success");
    root["span_type"] = json!("agent");
    root.as_object_mut().unwrap().remove("parent_span_id");
    let spans = json!([
        child("a1", &crashed, "a-root-never-sent", 10, "success"),
        child("a2", &crashed, "a-root-never-sent", 9, "success"),
        root,
        child("b1", &finished, "b-root", 10, "success"),
        child("c1", &running, "c-root-not-yet", 0, "success"),
        child("d1", &failed, "d-root-never-sent", 10, "error"),
    ]);
    assert_eq!(admin.ingest(&spans).await.status, 202);

    let listed = admin.get("/api/reliability/incomplete-sessions?stale_minutes=5").await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let ids: Vec<&str> = listed.body.as_array().unwrap().iter().map(|s| s["session_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2, "{}", listed.text);
    assert!(ids.contains(&crashed.as_str()) && ids.contains(&failed.as_str()), "{ids:?}");
    let a = find(&listed.body, "session_id", &crashed);
    assert_eq!(
        (a["span_count"].clone(), a["tool_calls"].clone(), a["agent_name"].clone()),
        (json!(2), json!(2), json!("crawler"))
    );

    let tagged = admin.post("/api/reliability/tag-incomplete?stale_minutes=5", &json!({})).await;
    assert_eq!(tagged.body, json!({"tagged": 1}), "the failed run keeps its failure tag");
    let list = admin.get("/api/agents/sessions").await.body;
    assert_eq!(find(&list, "session_id", &crashed)["health_tag"], json!("incomplete"));
    assert_eq!(find(&list, "session_id", &failed)["health_tag"], json!("tool_failure"));
    assert_eq!(find(&list, "session_id", &finished)["health_tag"], json!("success"));
    let viewer = admin.post("/api/auth/api-keys", &json!({"name": "v", "role": "viewer"})).await;
    assert_eq!(
        server.client(viewer.body["key"].as_str()).post("/api/reliability/tag-incomplete", &json!({})).await.status,
        403
    );
    server.stop().await;
}

/// Per-agent figures count every session of the window, not a page of the sessions list: 1,100 sessions of one
/// agent (the dashboard's list reads 1,000) and the two hand-computed sessions of the fixed dataset.
#[tokio::test]
async fn the_agent_summary_counts_every_session() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let (sa, sb) = (session_id(), session_id());
    assert_eq!(admin.ingest(&dataset(&sa, &sb)).await.status, 202);
    let bulk: Vec<Value> = (0..1_100)
        .map(|i| {
            span(
                &format!("bulk-{i}"),
                &session_id(),
                "tool_call",
                ["github", "read_file"],
                "bulk",
                5,
                if i % 10 == 0 { "error" } else { "success" },
            )
        })
        .collect();
    for chunk in bulk.chunks(500) {
        assert_eq!(admin.ingest(&Value::Array(chunk.to_vec())).await.status, 202);
    }
    let r = admin.get("/api/agents/summary?hours=24").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let b = find(&r.body, "agent_name", "bulk");
    // Every tenth bulk session failed its only call.
    assert_eq!((b["sessions"].clone(), b["failed_sessions"].clone()), (json!(1_100), json!(110)), "{b}");
    assert_eq!((b["tool_calls"].clone(), b["failed_calls"].clone()), (json!(1_100), json!(110)), "{b}");
    // planner: its session's tokens (sonnet 1M in, 0.1M out = $4.5); 3 tool calls, 2 not successful (the
    // session's health counts it failed). writer: gpt-4o behind "openai/" = $0.6; 2 calls, 1 prevented.
    let p = find(&r.body, "agent_name", "planner");
    assert_eq!(
        (p["sessions"].clone(), p["input_tokens"].clone(), p["output_tokens"].clone()),
        (json!(1), json!(1_000_000), json!(100_000)),
        "{p}"
    );
    assert!(close(&p["est_cost_usd"], 4.5), "{p}");
    assert_eq!((p["tool_calls"].clone(), p["failed_calls"].clone()), (json!(3), json!(2)), "{p}");
    let w = find(&r.body, "agent_name", "writer");
    assert!(close(&w["est_cost_usd"], 0.6), "{w}");
    assert_eq!((w["tool_calls"].clone(), w["failed_calls"].clone()), (json!(2), json!(1)), "{w}");
    assert_eq!(r.body[0]["agent_name"], json!("bulk"), "largest first");
    // The failed-session count agrees with the sessions list's own.
    let list = admin.get("/api/agents/sessions?hours=24&counts=true&limit=1").await;
    let failed: i64 =
        list.headers.get("x-failed-count").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(-1);
    let summed: i64 = r.body.as_array().unwrap().iter().map(|a| a["failed_sessions"].as_i64().unwrap_or(0)).sum();
    assert_eq!(summed, failed, "{}", r.body);
    // One agent.
    let one = admin.get("/api/agents/summary?hours=24&agent_name=writer").await.body;
    assert_eq!(one.as_array().map(|a| a.len()), Some(1), "{one}");
    assert_eq!(one[0]["agent_name"], json!("writer"));
}
