//! `POST /api/investigate`: evidence from stored health checks, the rule-based report, and the fallback when
//! the configured AI provider cannot be reached.

use langsight_monitor::{ServerSpec, Transport};
use langsight_server::config::{MonitoredServer, Secret};
use serde_json::json;
use std::time::Duration;
use test_support::{TestServer, ADMIN_KEY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_come_from_the_evidence_and_fall_back_to_rules() {
    let srv = TestServer::start_with(|c| {
        c.api_keys = vec![Secret(ADMIN_KEY.into())];
        c.monitor_enabled = false;
        // The stand-in provider endpoints below are on loopback.
        c.allow_private_webhook_urls = true;
        c.servers = vec![MonitoredServer {
            spec: ServerSpec {
                name: "broken".into(),
                transport: Transport::Stdio { command: "/nonexistent/mcp-server".into(), args: vec![], env: vec![] },
                timeout: Duration::from_secs(5),
                health_tool: None,
                health_tool_args: Default::default(),
            },
            breaker: Default::default(),
        }];
    })
    .await;
    let admin = srv.admin();
    for _ in 0..2 {
        assert_eq!(admin.post("/api/health/check", &json!({})).await.status, 200);
    }
    let r = admin.post("/api/investigate", &json!({"server_names": ["broken", "ghost"], "window_hours": 1})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["provider_used"], json!("rule-based"), "no provider key configured");
    let ev = r.body["evidence"].as_array().unwrap();
    assert_eq!((ev[0]["total_checks"].clone(), ev[0]["down_count"].clone()), (json!(2), json!(2)));
    assert_eq!(ev[0]["latest_status"], json!("down"));
    assert_eq!(ev[0]["recent_errors"].as_array().unwrap().len(), 2);
    assert_eq!((ev[1]["total_checks"].clone(), ev[1]["latest_status"].clone()), (json!(0), json!("no_data")));
    let report = r.body["report"].as_str().unwrap();
    assert!(
        report.contains("## broken") && report.contains("2 down") && report.contains("**Likely cause:**"),
        "{report}"
    );
    assert!(report.contains("No health checks in the window."), "{report}");

    // A configured provider that cannot be reached: the rule-based report, saying why.
    let closed = format!("http://127.0.0.1:{}", test_support::redis::free_port());
    let put = admin
        .put(
            "/api/settings",
            &json!({"redact_payloads": false,
            "ai_providers": {"anthropic": {"api_key": "sk-ant-test-0123456789", "base_url": closed}}}),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    let r = admin.post("/api/investigate", &json!({"server_names": ["broken"]})).await;
    assert_eq!(r.body["provider_used"], json!("rule-based"));
    assert!(r.body["report"].as_str().unwrap().contains("The anthropic provider could not be used"), "{}", r.text);

    for body in [
        json!({"server_names": []}),
        json!({"server_names": vec!["s"; 11]}),
        json!({"server_names": ["s"], "window_hours": 500}),
    ] {
        let bad = admin.post("/api/investigate", &body).await;
        assert_eq!(bad.status, 422, "{body}");
    }
    let viewer = admin.post("/api/auth/api-keys", &json!({"name": "v", "role": "viewer"})).await;
    let denied =
        srv.client(viewer.body["key"].as_str()).post("/api/investigate", &json!({"server_names": ["x"]})).await;
    assert_eq!(denied.status, 403);
    srv.stop().await;
}

/// One request a provider stand-in received.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: axum::http::HeaderMap,
    body: serde_json::Value,
}

/// A local stand-in for every provider: records each request and answers in the format of the API its path
/// belongs to (Anthropic Messages, or chat completions for OpenAI, Gemini's and Ollama's compatible
/// endpoints), naming the path in the text. A request for the model `silent` gets an answer without text.
async fn provider_stand_in() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Seen>>>) {
    use axum::extract::{Request, State};
    type Log = std::sync::Arc<std::sync::Mutex<Vec<Seen>>>;
    async fn answer(State(log): State<Log>, req: Request) -> axum::response::Response {
        use axum::response::IntoResponse;
        let (parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let path = parts.uri.path().to_string();
        log.lock().unwrap().push(Seen { path: path.clone(), headers: parts.headers, body: body.clone() });
        let text = format!("report from {path} by {}", body["model"].as_str().unwrap_or("?"));
        let silent = body["model"] == "silent";
        let reply = match path.as_str() {
            "/v1/messages" if silent => json!({"content": []}),
            "/v1/messages" => json!({"id": "msg_1", "type": "message", "role": "assistant",
                "content": [{"type": "thinking", "thinking": "…"}, {"type": "text", "text": text}]}),
            "/v1/chat/completions" | "/v1beta/openai/chat/completions" if silent => json!({"choices": []}),
            "/v1/chat/completions" | "/v1beta/openai/chat/completions" => {
                json!({"id": "c1", "object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]})
            }
            _ => return (axum::http::StatusCode::NOT_FOUND, "no such endpoint").into_response(),
        };
        axum::Json(reply).into_response()
    }
    let log: Log = Default::default();
    let app = axum::Router::new().fallback(answer).with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_provider_is_asked_in_its_own_format() {
    let (stand_in, log) = provider_stand_in().await;
    let ollama_url = stand_in.clone();
    let srv = TestServer::start_with(|c| {
        c.api_keys = vec![Secret(ADMIN_KEY.into())];
        c.monitor_enabled = false;
        // The stand-in is on loopback: base URLs saved through the API may point there.
        c.allow_private_webhook_urls = true;
        // Ollama needs no key: the operator's base URL is where it runs.
        c.ai_base_urls.insert("ollama".into(), ollama_url);
    })
    .await;
    let admin = srv.admin();
    let key = |p: &str| format!("{p}-test-key-0123456789");
    let providers = json!({
        "anthropic": {"api_key": key("anthropic"), "base_url": stand_in},
        "openai": {"api_key": key("openai"), "base_url": stand_in},
        "gemini": {"api_key": key("gemini"), "base_url": stand_in},
    });
    let put = admin.put("/api/settings", &json!({"redact_payloads": false, "ai_providers": providers})).await;
    assert_eq!(put.status, 200, "{}", put.text);

    let cases = [
        ("anthropic", "/v1/messages", "claude-sonnet-4-6"),
        ("openai", "/v1/chat/completions", "gpt-4o"),
        ("gemini", "/v1beta/openai/chat/completions", "gemini-2.0-flash"),
        ("ollama", "/v1/chat/completions", "llama3.2"),
    ];
    for (provider, path, model) in cases {
        log.lock().unwrap().clear();
        let r = admin.post("/api/investigate", &json!({"server_names": ["api-gateway"], "provider": provider})).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["provider_used"], json!(provider), "{provider}: {}", r.text);
        assert_eq!(r.body["report"], json!(format!("report from {path} by {model}")), "{provider}: {}", r.text);
        let seen = log.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "{provider}: {seen:?}");
        let req = &seen[0];
        assert_eq!(req.path, path, "{provider}");
        let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok()).map(String::from);
        assert_eq!(header("content-type").as_deref(), Some("application/json"), "{provider}");
        let messages = req.body["messages"].as_array().unwrap_or_else(|| panic!("{provider}: {}", req.body));
        let user = messages.iter().find(|m| m["role"] == "user").unwrap_or_else(|| panic!("{provider}: {messages:?}"));
        assert!(user["content"].as_str().unwrap().contains("\"server_name\": \"api-gateway\""), "the evidence");
        assert_eq!(req.body["max_tokens"], json!(2048), "{provider}");
        if provider == "anthropic" {
            assert_eq!(header("x-api-key"), Some(key("anthropic")));
            assert_eq!(header("anthropic-version").as_deref(), Some("2023-06-01"));
            assert_eq!(header("authorization"), None, "the key travels in x-api-key only");
            assert!(req.body["system"].as_str().is_some_and(|s| !s.is_empty()), "{}", req.body);
            assert_eq!(messages.len(), 1, "the system prompt is a field, not a message");
        } else {
            let bearer = if provider == "ollama" { "ollama".to_string() } else { key(provider) };
            assert_eq!(header("authorization"), Some(format!("Bearer {bearer}")), "{provider}");
            assert_eq!(header("x-api-key"), None, "{provider}");
            assert_eq!(messages[0]["role"], json!("system"), "{provider}");
        }
    }

    // An answer without text, or a model the request names: parsed, not guessed.
    for provider in ["anthropic", "openai", "gemini", "ollama"] {
        let r = admin
            .post("/api/investigate", &json!({"server_names": ["x"], "provider": provider, "model": "silent"}))
            .await;
        assert_eq!(r.body["provider_used"], json!("rule-based"), "{provider}: {}", r.text);
        assert!(r.body["report"].as_str().unwrap().contains("the answer had no text"), "{provider}: {}", r.text);
    }
    let r = admin
        .post("/api/investigate", &json!({"server_names": ["x"], "provider": "gemini", "model": "gemini-2.5-pro"}))
        .await;
    assert_eq!(r.body["report"], json!("report from /v1beta/openai/chat/completions by gemini-2.5-pro"));
    srv.stop().await;
}
