//! The wire contract: every endpoint of the original's caller matrix (langsight-api.md §8 — what its SDK and
//! dashboard call), with realistic data, checked for status, field names and JSON types against the
//! documented shapes. Deliberate deviations are listed in docs/compatibility.md.
//!
//! Shapes: `"str"`, `"int"`, `"num"`, `"bool"`, `"obj"`, `"arr"`, `"any"`, with a trailing `?` for "or null";
//! an object shape requires each of its keys; `[shape]` requires a non-empty array whose items all match.

use langsight_monitor::{ServerSpec, Transport};
use langsight_server::config::{MonitoredServer, Secret};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;
use test_support::{agent_run, session_id, Client, TestServer, ADMIN_KEY};

fn conforms(v: &Value, shape: &Value, at: &str, errors: &mut Vec<String>) {
    match shape {
        Value::String(s) => {
            let (kind, nullable) = match s.strip_suffix('?') {
                Some(k) => (k, true),
                None => (s.as_str(), false),
            };
            let ok = (nullable && v.is_null())
                || match kind {
                    "str" => v.is_string(),
                    "int" => v.is_i64() || v.is_u64(),
                    "num" => v.is_number(),
                    "bool" => v.is_boolean(),
                    "obj" => v.is_object(),
                    "arr" => v.is_array(),
                    "any" => true,
                    _ => false,
                };
            if !ok {
                errors.push(format!("{at}: expected {s}, got {v}"));
            }
        }
        Value::Object(fields) => {
            let Some(obj) = v.as_object() else {
                errors.push(format!("{at}: expected an object, got {v}"));
                return;
            };
            for (k, s) in fields {
                match obj.get(k) {
                    Some(x) => conforms(x, s, &format!("{at}.{k}"), errors),
                    None => errors.push(format!("{at}: missing field '{k}'")),
                }
            }
        }
        Value::Array(items) => {
            let Some(arr) = v.as_array() else {
                errors.push(format!("{at}: expected an array, got {v}"));
                return;
            };
            if arr.is_empty() {
                errors.push(format!("{at}: expected at least one item (realistic data should produce some)"));
            }
            for (i, x) in arr.iter().enumerate() {
                conforms(x, &items[0], &format!("{at}[{i}]"), errors);
            }
        }
        _ => errors.push(format!("{at}: bad shape {shape}")),
    }
}

#[test]
fn the_shape_checker_catches_deviations() {
    let mut e = vec![];
    conforms(
        &json!({"a": 1, "b": null, "c": [{"x": true}]}),
        &json!({"a": "int", "b": "str?", "c": [{"x": "bool"}]}),
        "ok",
        &mut e,
    );
    assert!(e.is_empty(), "{e:?}");
    for (v, shape) in [
        (json!({"a": "1"}), json!({"a": "int"})),
        (json!({}), json!({"a": "any"})),
        (json!({"a": null}), json!({"a": "str"})),
        (json!([]), json!([{"x": "int"}])),
        (json!([{"x": 1.5}]), json!([{"x": "int"}])),
        (json!({"a": 1}), json!("arr")),
    ] {
        let mut e = vec![];
        conforms(&v, &shape, "bad", &mut e);
        assert_eq!(e.len(), 1, "{v} against {shape}: {e:?}");
    }
}

struct Walk {
    errors: Vec<String>,
    seen: usize,
}

impl Walk {
    async fn call(
        &mut self,
        c: &Client,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: u16,
        shape: Value,
    ) -> Value {
        self.seen += 1;
        let r = c.send(method.clone(), path, body.map(|b| serde_json::to_vec(&b).unwrap())).await;
        if r.status != status {
            self.errors.push(format!("{method} {path}: status {} (expected {status}): {}", r.status, r.text));
            return r.body;
        }
        if !shape.is_null() {
            conforms(&r.body, &shape, &format!("{method} {path}"), &mut self.errors);
        }
        r.body
    }
}

fn fixture_server(state: &std::path::Path) -> MonitoredServer {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(|d| d.parent()).unwrap().join("mcp-fixture");
    MonitoredServer {
        spec: ServerSpec {
            name: "docs".into(),
            transport: Transport::Stdio {
                command: bin.display().to_string(),
                args: vec!["--stdio".into()],
                env: vec![("MCP_FIXTURE_STATE".into(), state.display().to_string())],
            },
            timeout: Duration::from_secs(10),
            health_tool: None,
            health_tool_args: Default::default(),
        },
        breaker: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_the_sdk_and_dashboard_call_answers_in_the_documented_shape() {
    use Method as M;
    let fixture_dir = tempfile::tempdir().unwrap();
    let fixture_state = fixture_dir.path().join("state.json");
    let tools = |extra: bool| {
        let mut t = vec![json!({"name": "echo", "description": "Echo", "inputSchema": {"type": "object"}})];
        if extra {
            t.push(json!({"name": "search", "description": "Search", "inputSchema": {"type": "object"}}));
        }
        json!({"tools": t, "mode": "ok"}).to_string()
    };
    std::fs::write(&fixture_state, tools(false)).unwrap();
    let srv = TestServer::start_with(|c| {
        c.api_keys = vec![Secret(ADMIN_KEY.into())];
        c.monitor_enabled = false;
        c.servers = vec![fixture_server(&fixture_state)];
        c.osv_url = format!("http://127.0.0.1:{}", test_support::redis::free_port());
    })
    .await;
    let a = srv.admin();
    let mut w = Walk { errors: vec![], seen: 0 };

    // --- Data: a project, sessions (one failing, so an alert exists), a health check, prices, an SLO.
    let project = w.call(&a, M::POST, "/api/projects", Some(json!({"name": "Contract"})), 201, json!({
        "id": "str", "name": "str", "slug": "str", "created_by": "str", "created_at": "str", "member_count": "int", "your_role": "str?"})).await;
    let p = project["id"].as_str().unwrap_or_default().to_string();
    let q = format!("project_id={p}");
    let sid = session_id();
    // SDK: spans.
    w.call(&a, M::POST, "/api/traces/spans", Some(agent_run(&sid, 12, Some(&p))), 202, json!({"accepted": "int"}))
        .await;
    let failing = session_id();
    let now = chrono::Utc::now().to_rfc3339();
    let bad = json!([{"span_id": "f1", "span_type": "tool_call", "session_id": failing, "server_name": "docs", "tool_name": "echo",
        "agent_name": "researcher", "started_at": now, "ended_at": now, "status": "error", "error": "boom", "project_id": p}]);
    w.call(&a, M::POST, "/api/traces/spans", Some(bad), 202, json!({"accepted": "int"})).await;
    // Data for the lists that are empty without it: a loop the SDK prevented, a run whose root never reported
    // (idle for ten minutes: incomplete), and a tool whose last hour is far off its three earlier hours (anomaly).
    let at = |ago_s: i64, dur_ms: i64| {
        let start = chrono::Utc::now() - chrono::Duration::seconds(ago_s);
        (start.to_rfc3339(), (start + chrono::Duration::milliseconds(dur_ms)).to_rfc3339())
    };
    let span = |sid: &str, id: &str, agent: &str, (started, ended): (String, String), status: &str, error: Value| {
        json!({"span_id": id, "span_type": "tool_call", "session_id": sid, "server_name": "search", "tool_name": "lookup",
            "agent_name": agent, "started_at": started, "ended_at": ended, "status": status, "error": error, "project_id": p})
    };
    let (looping, unfinished) = (session_id(), session_id());
    let mut extra = vec![
        span(&looping, "loop1", "looper", at(5, 10), "prevented", json!("loop_detected: lookup repeated 3 times")),
        json!({"span_id": "orphan1", "parent_span_id": "root-never-arrived", "span_type": "tool_call",
            "session_id": unfinished, "server_name": "search", "tool_name": "lookup", "agent_name": "crashed",
            "started_at": at(600, 50).0, "ended_at": at(600, 50).1, "status": "success", "project_id": p}),
    ];
    for (hours_ago, ms) in [(2, 100), (3, 120), (4, 90)] {
        let sid = session_id();
        for i in 0..2 {
            extra.push(span(&sid, &format!("{sid}-{i}"), "steady", at(hours_ago * 3600, ms), "success", Value::Null));
        }
    }
    let spike = session_id();
    for i in 0..2 {
        extra.push(span(&spike, &format!("{spike}-{i}"), "steady", at(3, 2500), "error", json!("timeout")));
    }
    w.call(&a, M::POST, "/api/traces/spans", Some(Value::Array(extra)), 202, json!({"accepted": "int"})).await;
    // SDK: tool capture and the prevention config fetch (after the dashboard saved one).
    w.call(
        &a,
        M::POST,
        &format!("/api/servers/docs/tools?{q}"),
        Some(json!({"tools": [{"name": "echo", "description": "Echo", "input_schema": {"type": "object"}}]})),
        200,
        json!({"upserted": "int"}),
    )
    .await;

    let health = json!({"server_name": "str", "status": "str", "latency_ms": "num?", "tools": "arr", "tools_count": "int",
        "schema_hash": "str?", "checked_at": "str", "error": "str?", "project_id": "str"});
    w.call(&a, M::POST, "/api/health/check", None, 200, json!([health.clone()])).await;
    // The server gains a tool between two checks: schema drift is recorded.
    std::fs::write(&fixture_state, tools(true)).unwrap();
    w.call(&a, M::POST, "/api/health/check", None, 200, json!([health.clone()])).await;
    w.call(&a, M::GET, "/api/status", None, 200, json!({"status": "str"})).await;
    // Ours, for the dashboard's instance facts.
    let instance = json!({"version": "str", "storage_mode": "str", "workers": "int", "worker_id": "int?",
        "redis_topology": "str", "redis_tls": "bool", "redis_nodes": "int"});
    w.call(&a, M::GET, "/api/instance", None, 200, instance).await;

    // --- Health.
    w.call(&a, M::GET, "/api/health/servers", None, 200, json!([health.clone()])).await;
    w.call(&a, M::GET, &format!("/api/health/servers/invocations?{q}"), None, 200, json!([{"server_name": "str",
        "last_called_at": "str", "last_call_status": "str", "last_call_ok": "bool", "total_calls": "int", "success_rate_pct": "num"}])).await;
    w.call(&a, M::GET, "/api/health/servers/docs/history", None, 200, json!([health.clone()])).await;
    w.call(&a, M::GET, &format!("/api/health/servers/docs/logs?{q}"), None, 200, json!([{"started_at": "str", "agent_name": "str?",
        "tool_name": "str", "status": "str", "latency_ms": "num", "error": "str?", "session_id": "str?", "span_id": "str"}])).await;
    w.call(&a, M::GET, &format!("/api/health/servers/docs/blast-radius?{q}"), None, 200, json!({"server_name": "str",
        "server_status": "str", "hours": "int", "severity": "str", "total_sessions_at_risk": "int", "total_agents_affected": "int",
        "total_calls": "int", "affected_agents": [{"agent_name": "str", "call_count": "int", "session_count": "int",
        "error_count": "int", "error_rate_pct": "num", "avg_latency_ms": "num", "last_called_at": "str"}]})).await;
    w.call(&a, M::GET, "/api/health/servers/docs/drift-history", None, 200, json!([{"server_name": "str",
        "tool_name": "str", "drift_type": "str", "change_kind": "str", "param_name": "str?", "old_value": "str?",
        "new_value": "str?", "previous_hash": "str?", "current_hash": "str?", "has_breaking": "bool", "detected_at": "str"}]))
        .await;
    w.call(&a, M::GET, &format!("/api/health/servers/docs/drift-impact?tool_name=echo&{q}"), None, 200, json!([{"agent_name": "str?",
        "session_id": "str?", "call_count": "int", "error_count": "int", "avg_latency_ms": "num", "last_called_at": "str"}])).await;

    // --- Costs.
    let price = json!({"id": "str", "provider": "str", "model_id": "str", "display_name": "str", "input_per_1m_usd": "num",
        "output_per_1m_usd": "num", "cache_read_per_1m_usd": "num", "thinking_per_1m_usd": "num", "effective_from": "str",
        "effective_to": "str?", "notes": "str?", "is_custom": "bool", "is_active": "bool"});
    w.call(&a, M::GET, "/api/costs/models", None, 200, json!([price.clone()])).await;
    let created = w
        .call(
            &a,
            M::POST,
            "/api/costs/models",
            Some(json!({"provider": "acme", "model_id": "acme-1",
        "display_name": "Acme", "input_per_1m_usd": 1.0})),
            201,
            price.clone(),
        )
        .await;
    let id = created["id"].as_str().unwrap_or_default().to_string();
    let changed = w
        .call(
            &a,
            M::PATCH,
            &format!("/api/costs/models/{id}"),
            Some(json!({"provider": "acme", "model_id": "acme-1",
        "display_name": "Acme", "input_per_1m_usd": 2.0})),
            200,
            price.clone(),
        )
        .await;
    w.call(
        &a,
        M::DELETE,
        &format!("/api/costs/models/{}", changed["id"].as_str().unwrap_or_default()),
        None,
        204,
        Value::Null,
    )
    .await;
    w.call(&a, M::GET, &format!("/api/costs/breakdown?{q}"), None, 200, json!({"storage_mode": "str", "supports_costs": "bool",
        "hours": "int", "total_calls": "int", "total_cost_usd": "num", "llm_cost_usd": "num", "tool_cost_usd": "num",
        "total_input_tokens": "int", "total_output_tokens": "int",
        "by_tool": [{"server_name": "str", "tool_name": "str", "total_calls": "int", "cost_per_call_usd": "num",
            "total_cost_usd": "num", "cost_type": "str", "model_id": "str?", "total_input_tokens": "int", "total_output_tokens": "int"}],
        "by_agent": [{"agent_name": "str", "total_calls": "int", "total_cost_usd": "num"}],
        "by_session": [{"session_id": "str", "agent_name": "str?", "total_calls": "int", "total_cost_usd": "num"}]})).await;

    // --- Investigate, security scan.
    w.call(
        &a,
        M::POST,
        "/api/investigate",
        Some(json!({"server_names": ["docs"]})),
        200,
        json!({"report": "str",
        "provider_used": "str", "generated_at": "str", "evidence": [{"server_name": "str", "window_hours": "num",
        "total_checks": "int", "up_count": "int", "down_count": "int", "degraded_count": "int", "latest_status": "str",
        "latest_error": "str?", "avg_latency_ms": "num?", "schema_drift_events": "int", "recent_errors": "arr"}]}),
    )
    .await;
    w.call(
        &a,
        M::POST,
        "/api/security/scan",
        None,
        200,
        json!([{"server_name": "str", "scanned_at": "str", "error": "str?",
        "findings_count": "int", "critical_count": "int", "high_count": "int", "highest_severity": "str?",
        "findings": [{"severity": "str", "category": "str", "title": "str", "description": "str", "remediation": "str",
            "tool_name": "str?", "cve_id": "str?"}]}]),
    )
    .await;
    // Ours: the server's stored scans, in the findings' shape.
    let scan = json!({"server_name": "str", "project_id": "str?", "scanned_at": "str", "scanner_version": "str",
        "error": "str?", "findings_count": "int", "critical_count": "int", "high_count": "int", "medium_count": "int",
        "low_count": "int", "info_count": "int", "highest_severity": "str?", "findings": "arr"});
    w.call(&a, M::GET, "/api/security/scans?server_name=docs", None, 200, json!([scan])).await;

    // --- API keys.
    let key = w
        .call(
            &a,
            M::POST,
            "/api/auth/api-keys",
            Some(json!({"name": "ci"})),
            201,
            json!({"id": "str", "name": "str",
        "key": "str", "key_prefix": "str", "created_at": "str"}),
        )
        .await;
    w.call(
        &a,
        M::GET,
        "/api/auth/api-keys",
        None,
        200,
        json!([{"id": "str", "name": "str", "key_prefix": "str",
        "created_at": "str", "last_used_at": "str?", "revoked_at": "str?"}]),
    )
    .await;
    w.call(
        &a,
        M::DELETE,
        &format!("/api/auth/api-keys/{}", key["id"].as_str().unwrap_or_default()),
        None,
        204,
        Value::Null,
    )
    .await;

    // --- Agents.
    let session = json!({"session_id": "str", "agent_name": "str?", "first_call_at": "str", "last_call_at": "str",
        "tool_calls": "int", "failed_calls": "int", "duration_ms": "num", "servers_used": "arr", "agents_used": "arr",
        "health_tag": "str?", "total_input_tokens": "int?", "total_output_tokens": "int?", "model_id": "str?",
        "est_cost_usd": "num?", "has_prompt": "bool"});
    w.call(&a, M::GET, &format!("/api/agents/sessions?{q}"), None, 200, json!([session])).await;
    // Ours: searched, sorted and paged, the same shape.
    let sorted = format!("/api/agents/sessions?{q}&q=a&sort=duration&order=asc&offset=0&counts=true");
    w.call(&a, M::GET, &sorted, None, 200, json!([session.clone()])).await;
    let span = json!({"span_id": "str", "parent_span_id": "str?", "span_type": "str", "server_name": "str", "tool_name": "str",
        "agent_name": "str?", "started_at": "str", "ended_at": "str", "latency_ms": "num", "status": "str", "error": "str?",
        "trace_id": "str?", "project_id": "str?", "lineage_provenance": "str", "lineage_status": "str", "schema_version": "str"});
    w.call(
        &a,
        M::GET,
        &format!("/api/agents/sessions/{sid}?{q}"),
        None,
        200,
        json!({"session_id": "str", "spans_flat": [span.clone()],
        "root_spans": [span], "total_spans": "int", "tool_calls": "int", "failed_calls": "int", "duration_ms": "num?"}),
    )
    .await;
    w.call(
        &a,
        M::GET,
        &format!("/api/agents/loop-counts?{q}"),
        None,
        200,
        json!([{"agent_name": "str", "loop_count": "int"}]),
    )
    .await;
    w.call(
        &a,
        M::GET,
        &format!("/api/agents/summary?{q}"),
        None,
        200,
        json!([{"agent_name": "str?", "sessions": "int", "failed_sessions": "int", "tool_calls": "int",
                "failed_calls": "int", "input_tokens": "int", "output_tokens": "int", "est_cost_usd": "num",
                "last_call_at": "str?"}]),
    )
    .await;
    w.call(
        &a,
        M::GET,
        &format!("/api/agents/lineage?{q}"),
        None,
        200,
        json!({"window_hours": "int",
        "nodes": [{"id": "str", "type": "str", "label": "str", "metrics": "obj"}],
        "edges": [{"source": "str", "target": "str", "type": "str", "metrics": "obj"}]}),
    )
    .await;
    let meta = json!({"id": "str", "agent_name": "str", "description": "str", "owner": "str", "tags": "arr", "status": "str",
        "runbook_url": "str", "project_id": "str?", "created_at": "str", "updated_at": "str"});
    w.call(
        &a,
        M::PUT,
        &format!("/api/agents/metadata/researcher?{q}"),
        Some(json!({"description": "d"})),
        200,
        meta.clone(),
    )
    .await;
    w.call(&a, M::GET, &format!("/api/agents/metadata?{q}"), None, 200, json!([meta])).await;
    w.call(&a, M::DELETE, &format!("/api/agents/metadata/researcher?{q}"), None, 204, Value::Null).await;
    // With its metadata gone, the agent is found again in the sessions.
    let found = w
        .call(
            &a,
            M::POST,
            &format!("/api/agents/discover?{q}"),
            None,
            200,
            json!({"discovered": "int", "agents": ["str"]}),
        )
        .await;
    assert!(found["agents"].as_array().is_some_and(|a| a.contains(&json!("researcher"))), "{found}");
    let prevention = json!({"agent_name": "str", "loop_enabled": "bool", "loop_threshold": "int", "loop_action": "str",
        "max_steps": "int?", "max_cost_usd": "num?", "max_wall_time_s": "num?", "budget_soft_alert": "num", "cb_enabled": "bool",
        "cb_failure_threshold": "int", "cb_cooldown_seconds": "num", "cb_half_open_max_calls": "int", "is_default": "bool",
        "updated_at": "str"});
    w.call(&a, M::PUT, &format!("/api/projects/prevention-config?{q}"), Some(json!({})), 200, prevention.clone()).await;
    w.call(&a, M::GET, &format!("/api/projects/prevention-config?{q}"), None, 200, prevention.clone()).await;
    w.call(
        &a,
        M::PUT,
        &format!("/api/agents/researcher/prevention-config?{q}"),
        Some(json!({"max_steps": 40})),
        200,
        prevention.clone(),
    )
    .await;
    w.call(&a, M::GET, &format!("/api/agents/researcher/prevention-config?{q}"), None, 200, prevention.clone()).await;
    w.call(&a, M::GET, &format!("/api/agents/prevention-configs?{q}"), None, 200, json!([prevention])).await;
    w.call(&a, M::DELETE, &format!("/api/agents/researcher/prevention-config?{q}"), None, 204, Value::Null).await;

    // --- Projects and members, users.
    let invite = w
        .call(
            &a,
            M::POST,
            "/api/users/invite",
            Some(json!({"email": "ana@example.com", "role": "viewer"})),
            201,
            json!({"token": "str", "email": "str", "role": "str", "expires_at": "str", "invite_url": "str"}),
        )
        .await;
    let user = json!({"id": "str", "email": "str", "role": "str", "active": "bool", "created_at": "str", "last_login_at": "str?"});
    let ana = w
        .call(
            &a,
            M::POST,
            "/api/users/accept-invite",
            Some(json!({"token": invite["token"], "password": "a long passphrase 42"})),
            201,
            user.clone(),
        )
        .await;
    w.call(
        &a,
        M::POST,
        "/api/users/verify",
        Some(json!({"email": "ana@example.com", "password": "a long passphrase 42"})),
        200,
        json!({"id": "str", "email": "str", "role": "str", "name": "str"}),
    )
    .await;
    w.call(&a, M::GET, "/api/users", None, 200, json!([user.clone()])).await;
    let uid = ana["id"].as_str().unwrap_or_default().to_string();
    w.call(&a, M::PATCH, &format!("/api/users/{uid}/role"), Some(json!({"role": "admin"})), 200, user).await;
    let member = json!({"user_id": "str", "role": "str", "added_by": "str", "added_at": "str"});
    w.call(
        &a,
        M::POST,
        &format!("/api/projects/{p}/members"),
        Some(json!({"user_id": uid, "role": "member"})),
        201,
        member.clone(),
    )
    .await;
    w.call(&a, M::GET, &format!("/api/projects/{p}/members"), None, 200, json!([member])).await;
    w.call(&a, M::DELETE, &format!("/api/projects/{p}/members/{uid}"), None, 204, Value::Null).await;
    w.call(&a, M::DELETE, &format!("/api/users/{uid}"), None, 204, Value::Null).await;
    let proj = json!({"id": "str", "name": "str", "slug": "str", "created_by": "str", "created_at": "str", "member_count": "int", "your_role": "str?"});
    w.call(&a, M::GET, "/api/projects", None, 200, json!([proj.clone()])).await;
    w.call(&a, M::GET, &format!("/api/projects/{p}"), None, 200, proj.clone()).await;
    w.call(&a, M::PATCH, &format!("/api/projects/{p}"), Some(json!({"name": "Contract 2"})), 200, proj).await;

    // --- Alerts, audit.
    let alert_config = json!({"slack_webhook": "str?", "alert_types": "obj", "webhook_configured": "bool"});
    w.call(&a, M::GET, &format!("/api/alerts/config?{q}"), None, 200, alert_config.clone()).await;
    w.call(
        &a,
        M::POST,
        &format!("/api/alerts/config?{q}"),
        Some(json!({"alert_types": {"anomaly_warning": true}})),
        200,
        alert_config,
    )
    .await;
    w.call(&a, M::POST, "/api/alerts/test", None, 400, json!({"detail": "str"})).await;
    let fired = json!({"id": "str", "alert_type": "str", "severity": "str", "server_name": "str", "session_id": "str?", "title": "str",
        "message": "str", "fired_at": "str", "status": "str", "acked_at": "str?", "acked_by": "str?", "snoozed_until": "str?",
        "resolved_at": "str?", "project_id": "str"});
    let mut feed = Value::Null;
    for _ in 0..50 {
        feed = a.get(&format!("/api/alerts/feed?{q}&status=all")).await.body;
        if feed["alerts"].as_array().is_some_and(|x| !x.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    w.call(
        &a,
        M::GET,
        &format!("/api/alerts/feed?{q}&status=all"),
        None,
        200,
        json!({"total": "int", "limit": "int",
        "offset": "int", "alerts": [fired]}),
    )
    .await;
    w.call(
        &a,
        M::GET,
        &format!("/api/alerts/counts?{q}"),
        None,
        200,
        json!({"critical": "int", "warning": "int", "info": "int", "total": "int"}),
    )
    .await;
    let alert_id = feed["alerts"][0]["id"].as_str().unwrap_or("missing").to_string();
    let action = json!({"ok": "bool", "alert_id": "str", "status": "str"});
    w.call(
        &a,
        M::POST,
        &format!("/api/alerts/{alert_id}/ack?{q}"),
        Some(json!({"acked_by": "user"})),
        200,
        action.clone(),
    )
    .await;
    w.call(
        &a,
        M::POST,
        &format!("/api/alerts/{alert_id}/snooze?{q}"),
        Some(json!({"minutes": 60})),
        200,
        json!({"ok": "bool", "alert_id": "str", "status": "str", "minutes": "int"}),
    )
    .await;
    w.call(&a, M::POST, &format!("/api/alerts/{alert_id}/resolve?{q}"), Some(json!({})), 200, action).await;
    w.call(&a, M::GET, "/api/audit/logs", None, 200, json!({"total": "int", "limit": "int", "offset": "int",
        "events": [{"id": "int", "timestamp": "str", "event": "str", "user_id": "str", "ip": "str", "details": "obj"}]})).await;

    // --- SLOs.
    let slo = w.call(&a, M::POST, &format!("/api/slos?{q}"), Some(json!({"agent_name": "researcher", "metric": "success_rate", "target": 90})),
        201, json!({"id": "str", "agent_name": "str", "metric": "str", "target": "num", "window_hours": "int", "created_at": "str"})).await;
    w.call(
        &a,
        M::GET,
        &format!("/api/slos?{q}"),
        None,
        200,
        json!([{"id": "str", "agent_name": "str", "metric": "str",
        "target": "num", "window_hours": "int", "created_at": "str"}]),
    )
    .await;
    w.call(
        &a,
        M::GET,
        &format!("/api/slos/status?{q}"),
        None,
        200,
        json!([{"slo_id": "str", "agent_name": "str", "metric": "str",
        "target": "num", "current_value": "num?", "window_hours": "int", "status": "str", "evaluated_at": "str"}]),
    )
    .await;
    w.call(&a, M::DELETE, &format!("/api/slos/{}?{q}", slo["id"].as_str().unwrap_or_default()), None, 204, Value::Null)
        .await;

    // --- Monitoring, reliability.
    w.call(&a, M::GET, &format!("/api/monitoring/timeseries?{q}"), None, 200, json!([{"bucket": "str", "sessions": "int",
        "tool_calls": "int", "errors": "int", "error_rate": "num", "avg_latency_ms": "num", "p99_latency_ms": "num",
        "input_tokens": "int", "output_tokens": "int", "agents": "int", "failed_sessions": "int", "session_error_rate": "num",
        "session_p99_ms": "num"}])).await;
    w.call(&a, M::GET, &format!("/api/monitoring/models?{q}"), None, 200, json!([{"model_id": "str", "calls": "int",
        "input_tokens": "int", "output_tokens": "int", "avg_latency_ms": "num", "error_count": "int", "est_cost_usd": "num?"}])).await;
    w.call(
        &a,
        M::GET,
        &format!("/api/monitoring/tools?{q}"),
        None,
        200,
        json!([{"server_name": "str", "tool_name": "str",
        "calls": "int", "errors": "int", "avg_latency_ms": "num", "p99_latency_ms": "num", "success_rate": "num",
        "calls_per_session": "num", "content_errors": "int"}]),
    )
    .await;
    w.call(
        &a,
        M::GET,
        &format!("/api/monitoring/errors?{q}"),
        None,
        200,
        json!([{"category": "str", "count": "int",
        "llm_errors": "int", "tool_errors": "int", "pct": "num"}]),
    )
    .await;
    w.call(&a, M::GET, &format!("/api/monitoring/trends?{q}"), None, 200, json!({"cur_avg_latency_ms": "num?",
        "prev_avg_latency_ms": "num?", "avg_latency_delta_pct": "num?", "cur_p99_latency_ms": "num?", "prev_p99_latency_ms": "num?",
        "p99_latency_delta_pct": "num?", "cur_error_rate": "num?", "prev_error_rate": "num?", "error_rate_delta_pct": "num?",
        "cur_sessions": "num?", "prev_sessions": "num?", "sessions_delta_pct": "num?"})).await;
    w.call(
        &a,
        M::GET,
        &format!("/api/reliability/anomalies?{q}"),
        None,
        200,
        json!([{"server_name": "str", "tool_name": "str",
        "metric": "str", "current_value": "num", "baseline_mean": "num", "baseline_stddev": "num", "z_score": "num",
        "severity": "str", "sample_hours": "int"}]),
    )
    .await;
    w.call(&a, M::GET, &format!("/api/reliability/tools?{q}"), None, 200, json!([{"server_name": "str", "tool_name": "str",
        "window_hours": "int", "total_calls": "int", "success_calls": "int", "error_calls": "int", "timeout_calls": "int",
        "success_rate_pct": "num", "error_rate_pct": "num", "avg_latency_ms": "num", "max_latency_ms": "num",
        "p50_latency_ms": "num", "p95_latency_ms": "num", "p99_latency_ms": "num", "is_degraded": "bool", "error_breakdown": "obj"}])).await;
    w.call(
        &a,
        M::GET,
        &format!("/api/reliability/incomplete-sessions?{q}"),
        None,
        200,
        json!([{"session_id": "str",
        "agent_name": "str?", "last_activity": "str", "span_count": "int", "llm_calls": "int", "tool_calls": "int"}]),
    )
    .await;
    w.call(&a, M::POST, &format!("/api/reliability/tag-incomplete?{q}"), None, 200, json!({"tagged": "int"})).await;

    // --- Servers metadata.
    let server_meta = json!({"id": "str", "server_name": "str", "description": "str", "owner": "str", "tags": "arr",
        "transport": "str", "url": "str", "runbook_url": "str", "project_id": "str?", "created_at": "str", "updated_at": "str"});
    w.call(
        &a,
        M::PUT,
        &format!("/api/servers/metadata/docs?{q}"),
        Some(json!({"description": "Docs", "transport": "stdio"})),
        200,
        server_meta.clone(),
    )
    .await;
    w.call(&a, M::GET, &format!("/api/servers/metadata?{q}"), None, 200, json!([server_meta])).await;
    w.call(
        &a,
        M::GET,
        &format!("/api/servers/docs/tools?{q}"),
        None,
        200,
        json!([{"server_name": "str", "tool_name": "str",
        "description": "str?", "input_schema": "obj", "first_seen_at": "str", "last_seen_at": "str"}]),
    )
    .await;
    w.call(&a, M::DELETE, &format!("/api/servers/metadata/docs?{q}"), None, 204, Value::Null).await;
    // With its metadata gone, the server is found again in the tool calls.
    let found = w
        .call(
            &a,
            M::POST,
            &format!("/api/servers/discover?{q}"),
            None,
            200,
            json!({"discovered": "int", "servers": ["str"]}),
        )
        .await;
    assert!(found["servers"].as_array().is_some_and(|s| s.contains(&json!("docs"))), "{found}");

    // --- Settings.
    let settings = w
        .call(
            &a,
            M::GET,
            "/api/settings",
            None,
            200,
            json!({"redact_payloads": "bool", "ai_providers": {
        "anthropic": {"api_key": "str", "configured": "bool", "model": "str", "base_url": "str"}, "openai": "obj",
        "gemini": "obj", "ollama": "obj"}}),
        )
        .await;
    assert!(settings.is_object());
    w.call(
        &a,
        M::PUT,
        "/api/settings",
        Some(json!({"redact_payloads": false})),
        200,
        json!({"redact_payloads": "bool", "ai_providers": "obj"}),
    )
    .await;

    // --- Project delete last (the data above lives in it).
    w.call(&a, M::DELETE, &format!("/api/projects/{p}"), None, 204, Value::Null).await;

    assert!(w.errors.is_empty(), "{} of {} calls deviate:\n{}", w.errors.len(), w.seen, w.errors.join("\n"));
    assert_eq!(w.seen, 85, "every call of the walk was made");
    srv.stop().await;
}
