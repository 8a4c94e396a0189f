//! Agent metadata, prevention settings (what the SDK fetches) and instance settings over real HTTP.

use langsight_server::config::Secret;
use serde_json::{json, Value};
use test_support::{agent_run, session_id, TestServer, ADMIN_KEY};

async fn project(server: &TestServer) -> String {
    let r = server.admin().post("/api/projects", &json!({"name": "Agents"})).await;
    r.body["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn prevention_settings_fall_back_to_the_project_default() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let p = project(&server).await;

    // Without a project nothing can be stored or found.
    assert_eq!(admin.get("/api/agents/researcher/prevention-config").await.detail(), "No prevention config found.");
    let r = admin.put("/api/agents/researcher/prevention-config", &json!({})).await;
    assert_eq!((r.status, r.detail()), (400, "Project required."));

    let d = admin.put(&format!("/api/projects/prevention-config?project_id={p}"), &json!({"loop_threshold": 4})).await;
    assert_eq!(d.status, 200, "{}", d.text);
    assert_eq!((d.body["agent_name"].clone(), d.body["is_default"].clone()), (json!("*"), json!(true)));
    assert_eq!((d.body["loop_threshold"].clone(), d.body["cb_failure_threshold"].clone()), (json!(4), json!(5)));
    assert_eq!(d.body["max_cost_usd"], Value::Null);

    let path = format!("/api/agents/researcher/prevention-config?project_id={p}");
    assert_eq!(admin.get(&path).await.body["agent_name"], json!("*"), "the default until the agent has its own");
    let own = admin.put(&path, &json!({"max_cost_usd": 2.5, "loop_action": "warn"})).await;
    assert_eq!(own.status, 200, "{}", own.text);
    let got = admin.get(&path).await.body;
    assert_eq!((got["agent_name"].clone(), got["max_cost_usd"].clone()), (json!("researcher"), json!(2.5)));
    assert_eq!((got["loop_threshold"].clone(), got["is_default"].clone()), (json!(3), json!(false)), "full replace");
    let list = admin.get(&format!("/api/agents/prevention-configs?project_id={p}")).await.body;
    assert_eq!(list.as_array().unwrap().len(), 2);

    for (body, field) in [
        (json!({"loop_threshold": 99}), "loop_threshold"),
        (json!({"loop_action": "explode"}), "loop_action"),
        (json!({"budget_soft_alert": 2.0}), "budget_soft_alert"),
        (json!({"max_cost_usd": 0}), "max_cost_usd"),
    ] {
        let r = admin.put(&path, &body).await;
        assert_eq!(r.status, 422, "{body}");
        assert_eq!(r.body["detail"][0]["loc"], json!(["body", field]), "{}", r.text);
    }

    // An SDK key bound to the project reads without naming it; it cannot write.
    let key = admin.post("/api/auth/api-keys", &json!({"name": "sdk", "role": "viewer", "project_id": p})).await;
    let sdk = server.client(key.body["key"].as_str());
    assert_eq!(sdk.get("/api/agents/researcher/prevention-config").await.body["max_cost_usd"], json!(2.5));
    assert_eq!(sdk.put("/api/agents/researcher/prevention-config", &json!({})).await.status, 403);

    assert_eq!(admin.delete(&path).await.status, 204);
    assert_eq!(admin.delete(&path).await.detail(), "No config found for this agent.");
    assert_eq!(admin.get(&path).await.body["agent_name"], json!("*"));
    assert_eq!(
        admin.get(&format!("/api/projects/prevention-config?project_id={p}")).await.body["loop_threshold"],
        json!(4)
    );
    server.stop().await;
}

#[tokio::test]
async fn agent_metadata_is_kept_per_project_and_discovered_from_sessions() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let p = project(&server).await;
    let path = format!("/api/agents/metadata/researcher?project_id={p}");
    let put = admin.put(&path, &json!({"description": "Finds things", "tags": ["core"], "status": "deprecated"})).await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!((put.body["status"].clone(), put.body["project_id"].clone()), (json!("deprecated"), json!(p)));
    let bad = admin.put(&path, &json!({"status": "retired"})).await;
    assert_eq!(bad.status, 422);
    assert!(bad.text.contains("active, deprecated, experimental"), "{}", bad.text);
    assert_eq!(admin.get(&path).await.body["tags"], json!(["core"]));
    assert!(admin.get("/api/agents/metadata").await.body.as_array().unwrap().is_empty(), "another scope");

    let r = admin.ingest(&agent_run(&session_id(), 6, Some(&p))).await;
    assert_eq!(r.status, 202);
    let found = admin.post(&format!("/api/agents/discover?project_id={p}"), &json!({})).await.body;
    assert!(!found["agents"].as_array().unwrap().contains(&json!("researcher")), "already known: {found}");
    let again = admin.post(&format!("/api/agents/discover?project_id={p}"), &json!({})).await.body;
    assert_eq!(again["discovered"], json!(0));
    let all = admin.get(&format!("/api/agents/metadata?project_id={p}")).await.body;
    assert_eq!(all.as_array().unwrap().len(), 1 + found["discovered"].as_u64().unwrap() as usize);

    // Discovery finds an agent with no metadata: one that only appears in a session (its metadata removed if
    // ingest already catalogued it), in this project only.
    let now = chrono::Utc::now().to_rfc3339();
    let summarizer = json!([{"span_id": "s1", "span_type": "tool_call", "session_id": session_id(), "server_name": "docs",
        "tool_name": "read", "agent_name": "summarizer", "started_at": now, "ended_at": now, "status": "success",
        "project_id": p}]);
    assert_eq!(admin.ingest(&summarizer).await.status, 202);
    let forget = admin.delete(&format!("/api/agents/metadata/summarizer?project_id={p}")).await;
    assert!(matches!(forget.status, 204 | 404), "{}", forget.text);
    let found = admin.post(&format!("/api/agents/discover?project_id={p}"), &json!({})).await;
    assert_eq!(found.status, 200, "{}", found.text);
    assert_eq!(found.body, json!({"discovered": 1, "agents": ["summarizer"]}));
    let meta = admin.get(&format!("/api/agents/metadata/summarizer?project_id={p}")).await;
    assert_eq!((meta.status, meta.body["agent_name"].clone()), (200, json!("summarizer")), "{}", meta.text);
    assert_eq!(admin.get("/api/agents/metadata/summarizer").await.status, 404, "registered in its project only");

    assert_eq!(admin.delete(&path).await.status, 204);
    let gone = admin.get(&path).await;
    assert_eq!((gone.status, gone.detail()), (404, "No metadata for agent 'researcher'"));
    server.stop().await;
}

#[tokio::test]
async fn provider_keys_are_masked_and_encrypted_and_redaction_drops_payloads() {
    let server = TestServer::start_with(|c| {
        c.api_keys = vec![Secret(ADMIN_KEY.into())];
        c.secret_key = Some(Secret("settings-secret".into()));
    })
    .await;
    let admin = server.admin();
    let fresh = admin.get("/api/settings").await.body;
    assert_eq!(fresh["redact_payloads"], json!(false));
    let providers = fresh["ai_providers"].as_object().unwrap();
    assert_eq!(providers.keys().collect::<Vec<_>>(), ["anthropic", "gemini", "ollama", "openai"]);

    let key = "sk-ant-0123456789abcdef";
    let put = admin
        .put(
            "/api/settings",
            &json!({"redact_payloads": false,
            "ai_providers": {"anthropic": {"api_key": key, "model": "claude-sonnet-4-6"}}}),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.body["ai_providers"]["anthropic"]["api_key"], json!("sk-a...cdef"));
    let got = admin.get("/api/settings").await.body;
    assert_eq!(
        got["ai_providers"]["anthropic"],
        json!({"api_key": "sk-a...cdef", "configured": true, "model": "claude-sonnet-4-6",
        "base_url": "https://api.anthropic.com", "base_url_source": "default", "key_source": "settings"})
    );
    // The stored document holds ciphertext, not the key.
    let stored: String = rusqlite::Connection::open(&server.db_path)
        .unwrap()
        .query_row("SELECT settings FROM instance_settings", [], |r| r.get(0))
        .unwrap();
    assert!(!stored.contains(key) && stored.contains("enc:v1:"), "{stored}");

    // Sending the mask back keeps the key; an unknown provider is refused by name.
    let keep = admin
        .put(
            "/api/settings",
            &json!({"redact_payloads": true,
        "ai_providers": {"anthropic": {"api_key": "sk-a...cdef"}}}),
        )
        .await;
    assert_eq!(keep.body["ai_providers"]["anthropic"]["model"], json!("claude-sonnet-4-6"));
    assert_eq!(admin.get("/api/settings").await.body["ai_providers"]["anthropic"]["api_key"], json!("sk-a...cdef"));
    let bad = admin.put("/api/settings", &json!({"redact_payloads": true, "ai_providers": {"mistral": {}}})).await;
    assert_eq!(bad.status, 422);
    assert!(bad.text.contains("unknown provider 'mistral'"), "{}", bad.text);
    assert_eq!(admin.put("/api/settings", &json!({})).await.status, 422, "redact_payloads is required");

    // Redaction is on: payloads and errors are not stored.
    let sid = session_id();
    assert_eq!(admin.ingest(&agent_run(&sid, 6, None)).await.status, 202);
    let spans = admin.get(&format!("/api/agents/sessions/{sid}")).await.body["spans_flat"].clone();
    for s in spans.as_array().unwrap() {
        assert!(s["input_json"].is_null() && s["output_json"].is_null() && s["error"].is_null(), "{s}");
    }

    let viewer_key = admin.post("/api/auth/api-keys", &json!({"name": "v", "role": "viewer"})).await;
    assert_eq!(server.client(viewer_key.body["key"].as_str()).get("/api/settings").await.status, 403);
    server.stop().await;
}
