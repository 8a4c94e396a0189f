//! Secrets, attacked over HTTP against the real binary: the operator's AI provider key never travels to a URL
//! set through the API; API-set URLs pass the outbound URL policy; the database is owner-only; unencrypted
//! provider keys are named at start-up.

use serde_json::json;
use std::path::Path;
use test_support::process::ServerProcess;
use test_support::receiver::Receiver;
use test_support::{http, Client};

const BOOTSTRAP: &str = "security-secrets-bootstrap-key";
const ENV_KEY: &str = "sk-ant-operator-secret-0123456789";

fn start(dir: &Path, extra: &[(&str, &str)]) -> ServerProcess {
    let mut envs = vec![
        ("LANGSIGHT_API_KEYS", BOOTSTRAP),
        ("LANGSIGHT_MONITOR_ENABLED", "false"),
        ("LANGSIGHT_RATE_LIMIT_ENABLED", "false"),
    ];
    envs.extend_from_slice(extra);
    ServerProcess::start(Path::new(env!("CARGO_BIN_EXE_langsight")), dir, 1, &envs, &[])
}

fn admin(url: &str) -> Client {
    Client { base: url.to_string(), key: Some(BOOTSTRAP.into()), http: http(), headers: vec![] }
}

async fn investigate(c: &Client) -> serde_json::Value {
    let r = c.post("/api/investigate", &json!({"server_names": ["payments"], "provider": "anthropic"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_provider_key_never_goes_to_a_url_set_through_the_api() {
    // The operator's endpoint (ANTHROPIC_BASE_URL) and the attacker's, both local stand-ins that record requests.
    let operator = Receiver::start().await;
    let attacker = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let op_url = operator.url.clone();
    // Private addresses allowed for API-set URLs: the worst case, where only the key rule protects the key.
    let server = tokio::task::spawn_blocking(move || {
        start(
            &d,
            &[
                ("ANTHROPIC_API_KEY", ENV_KEY),
                ("ANTHROPIC_BASE_URL", &op_url),
                ("LANGSIGHT_ALLOW_PRIVATE_WEBHOOK_URLS", "true"),
            ],
        )
    })
    .await
    .unwrap();
    let root = admin(&server.url);

    let r = root
        .put(
            "/api/settings",
            &json!({"redact_payloads": false, "ai_providers": {"anthropic": {"base_url": attacker.url}}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    investigate(&root).await;
    // The investigation returned: the server made its call. It went to the operator's endpoint with the
    // operator's key, and nothing reached the URL set through the API.
    let got = operator.requests("/v1/messages");
    assert_eq!(got.len(), 1, "the operator's endpoint was called");
    assert_eq!(got[0].headers.get("x-api-key").and_then(|v| v.to_str().ok()), Some(ENV_KEY));
    assert!(attacker.requests("/v1/messages").is_empty(), "the env key never reaches an API-set URL");
    let shown = root.get("/api/settings").await.body;
    assert_eq!(shown["ai_providers"]["anthropic"]["base_url"], json!(operator.url), "{shown}");
    assert_eq!(shown["ai_providers"]["anthropic"]["base_url_source"], json!("operator"));
    assert_eq!(shown["ai_providers"]["gemini"]["base_url_source"], json!("default"), "every provider shows its URL");

    // A key saved through the API beside the URL is the only key that URL ever gets.
    let saved = "sk-ant-saved-through-the-api-42";
    let r = root
        .put(
            "/api/settings",
            &json!({"redact_payloads": false, "ai_providers": {"anthropic": {"api_key": saved, "base_url": attacker.url}}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    investigate(&root).await;
    let got = attacker.requests("/v1/messages");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].headers.get("x-api-key").and_then(|v| v.to_str().ok()), Some(saved));
    assert_eq!(operator.requests("/v1/messages").len(), 1, "the operator's endpoint got nothing more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_set_provider_urls_pass_the_outbound_url_policy_and_the_database_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let server = tokio::task::spawn_blocking(move || start(&d, &[])).await.unwrap();
    let root = admin(&server.url);
    for url in
        ["http://127.0.0.1:9/", "http://169.254.169.254/latest/", "http://[::ffff:10.0.0.1]/", "file:///etc/passwd"]
    {
        let r = root
            .put("/api/settings", &json!({"redact_payloads": false, "ai_providers": {"openai": {"api_key": "sk-x-123456789", "base_url": url}}}))
            .await;
        assert_eq!(r.status, 422, "{url} refused: {}", r.text);
        assert!(r.text.contains("base_url"), "the answer names the field: {}", r.text);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("langsight.db")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the database is owner-only: {mode:o}");
        let wal = dir.path().join("langsight.db-wal");
        if let Ok(m) = std::fs::metadata(&wal) {
            assert_eq!(m.permissions().mode() & 0o077, 0, "so is its WAL");
        }
    }

    // A provider key stored without LANGSIGHT_SECRET_KEY is named at the next start.
    let r = root
        .put(
            "/api/settings",
            &json!({"redact_payloads": false, "ai_providers": {"openai": {"api_key": "sk-plain-0123456789"}}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    drop(server);
    let d = dir.path().to_path_buf();
    let again = tokio::task::spawn_blocking(move || start(&d, &[])).await.unwrap();
    let log = again.log_text();
    assert!(
        log.contains("unencrypted_provider_keys") && log.contains("openai") && log.contains("LANGSIGHT_SECRET_KEY"),
        "the start-up log names the risk and the fix:\n{log}"
    );
}
