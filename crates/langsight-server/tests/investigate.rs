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
