//! Every setting the README documents does something. For each `LANGSIGHT_*` variable of the README's
//! settings table there is an entry here; the server is started twice from an environment — once without the
//! variable, once with it — and an observation is taken of each run (a route's answer, where it listens, a
//! file it wrote, or the refusal of the start). The two observations must differ, so an entry fails when the
//! variable is ignored. A documented variable without an entry fails the test, as does an entry for a
//! variable the README no longer lists.
//!
//! Most observations go through the running server. Those marked `Field` only show that the variable reaches
//! its configuration field (the README says what each drives; those paths — dual-mode storage, alert
//! delivery, timers of an hour — have their own suites); they are listed in `FIELD_ONLY` so that the number
//! of such entries cannot grow unnoticed.

use langsight_server::config::{Config, Flags, KNOWN_ENV};
use langsight_server::RunningServer;
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};
use test_support::receiver::Receiver;
use test_support::ADMIN_KEY;

const OLD_SESSION: &str = "0123456789abcdef0123456789abcdef";
/// Older than the default retention (90 days): its removal shows that a retention pass ran.
const ANCIENT_SESSION: &str = "fedcba9876543210fedcba9876543210";
const ADMIN_EMAIL: &str = "owner@example.com";
const ADMIN_PASSWORD: &str = "a-long-and-unusual-passphrase";
const PROXY_SECRET: &str = "proxy-hmac-key";

/// One entry: the variable, the value to set, and variables set in both runs (the context the effect needs).
struct Entry {
    var: &'static str,
    value: &'static str,
    context: &'static [(&'static str, &'static str)],
}

const fn e(var: &'static str, value: &'static str) -> Entry {
    Entry { var, value, context: &[] }
}

const fn with(var: &'static str, value: &'static str, context: &'static [(&'static str, &'static str)]) -> Entry {
    Entry { var, value, context }
}

const LIMIT_1: &[(&str, &str)] = &[("LANGSIGHT_RATE_LIMIT_DEFAULT", "1/minute")];
const NO_KEYS: &[(&str, &str)] = &[("LANGSIGHT_API_KEYS", "")];
/// A configuration file naming one MCP server that cannot start (checked on demand, the monitor off).
const FAILING_SERVER: &[(&str, &str)] =
    &[("LANGSIGHT_CONFIG_PATH", "{dir}/failing.yaml"), ("LANGSIGHT_MONITOR_ENABLED", "false")];
/// The operator's webhook at a receiver that answers 500, so every delivery is retried to the end.
const DOWN_HOOK_FAST_RETRIES: &[(&str, &str)] =
    &[("LANGSIGHT_ALERT_WEBHOOK_URL", "{down}/attempts"), ("LANGSIGHT_ALERT_RETRY_BASE_MS", "10")];
const DOWN_HOOK_TWO_ATTEMPTS: &[(&str, &str)] =
    &[("LANGSIGHT_ALERT_WEBHOOK_URL", "{down}/retry"), ("LANGSIGHT_ALERT_DELIVERY_ATTEMPTS", "2")];
const ADMIN: &[(&str, &str)] = &[("LANGSIGHT_ADMIN_EMAIL", ADMIN_EMAIL), ("LANGSIGHT_ADMIN_PASSWORD", ADMIN_PASSWORD)];

/// `{dir}` is the run's private directory, `{port}` a free port, `{hook}` the local webhook receiver.
const ENTRIES: &[Entry] = &[
    e("LANGSIGHT_HOST", "127.0.0.2"),
    e("LANGSIGHT_PORT", "{port}"),
    with("LANGSIGHT_CONFIG_PATH", "{dir}/settings.yaml", NO_KEYS),
    e("LANGSIGHT_STORAGE_MODE", "postgres"),
    with("LANGSIGHT_POSTGRES_URL", "postgres://u:p@127.0.0.1:1/db", &[("LANGSIGHT_STORAGE_MODE", "postgres")]),
    e("LANGSIGHT_RETENTION_DAYS", "1"),
    e("LANGSIGHT_CLICKHOUSE_URL", "http://127.0.0.1:18123"),
    e("LANGSIGHT_CLICKHOUSE_DATABASE", "other"),
    e("LANGSIGHT_CLICKHOUSE_USERNAME", "reader"),
    e("LANGSIGHT_CLICKHOUSE_PASSWORD", "pw"),
    e("LANGSIGHT_SPOOL_DIR", "{dir}/spool"),
    e("LANGSIGHT_SPOOL_MAX_MB", "7"),
    e("LANGSIGHT_PG_POOL_MAX", "3"),
    e("LANGSIGHT_SQLITE_PATH", "{dir}/other.db"),
    e("LANGSIGHT_API_KEYS", "settings-test-key-0123456789"),
    with("LANGSIGHT_AUTH_DISABLED", "true", NO_KEYS),
    e("LANGSIGHT_METRICS_TOKEN", "scrape-token"),
    e("LANGSIGHT_CORS_ORIGINS", "http://cors.test"),
    e("LANGSIGHT_DASHBOARD_URL", "https://dash.test"),
    with("LANGSIGHT_TRUSTED_HOSTS", "elsewhere.test", &[("LANGSIGHT_DASHBOARD_URL", "https://dash.test")]),
    with("LANGSIGHT_TRUSTED_PROXY_CIDRS", "10.0.0.0/8", LIMIT_1),
    e("LANGSIGHT_MAX_CONCURRENT_TRACE_READS", "2"),
    e("LANGSIGHT_WORKERS", "2"),
    e("LANGSIGHT_REDIS_URL", "redis://127.0.0.1:1"),
    e("LANGSIGHT_REDIS_CA_FILE", "{dir}/no-such-ca.pem"),
    with("LANGSIGHT_RATE_LIMIT_ENABLED", "false", LIMIT_1),
    e("LANGSIGHT_RATE_LIMIT_DEFAULT", "1/minute"),
    e("LANGSIGHT_RATE_LIMIT_SPANS", "1/minute"),
    e("LANGSIGHT_RATE_LIMIT_OTLP", "1/minute"),
    e("LANGSIGHT_RATE_LIMIT_LOGIN", "1/minute"),
    e("LANGSIGHT_RATE_LIMIT_ACCEPT_INVITE", "1/minute"),
    e("LANGSIGHT_RATE_LIMIT_CHANGE_PASSWORD", "1/minute"),
    e("LANGSIGHT_RATE_LIMIT_INVESTIGATE", "1/minute"),
    e("LANGSIGHT_MONITOR_INTERVAL_SECONDS", "7"),
    e("LANGSIGHT_MONITOR_ENABLED", "false"),
    e("LANGSIGHT_ALLOW_PRIVATE_MCP_URLS", "true"),
    e("LANGSIGHT_SLACK_WEBHOOK", "https://hooks.slack.com/services/T0/B0/x"),
    e("LANGSIGHT_ALERT_WEBHOOK_URL", "https://hooks.example.com/langsight"),
    with("LANGSIGHT_WEBHOOK_SECRET", "signing-secret", &[("LANGSIGHT_ALERT_WEBHOOK_URL", "{hook}/signed")]),
    e("LANGSIGHT_ALLOW_PRIVATE_WEBHOOK_URLS", "true"),
    e("LANGSIGHT_ALERT_DEDUP_SECONDS", "60"),
    with("LANGSIGHT_ALERT_CONSECUTIVE_FAILURES", "5", FAILING_SERVER),
    e("LANGSIGHT_ALERT_LATENCY_SPIKE_MULTIPLIER", "4.5"),
    with("LANGSIGHT_ALERT_DELIVERY_ATTEMPTS", "2", DOWN_HOOK_FAST_RETRIES),
    with("LANGSIGHT_ALERT_RETRY_BASE_MS", "50", DOWN_HOOK_TWO_ATTEMPTS),
    e("LANGSIGHT_SLO_EVAL_INTERVAL_SECONDS", "5"),
    e("LANGSIGHT_ANOMALY_INTERVAL_SECONDS", "9"),
    e("LANGSIGHT_ANOMALY_Z_THRESHOLD", "3.5"),
    with("LANGSIGHT_ADMIN_EMAIL", ADMIN_EMAIL, &[("LANGSIGHT_ADMIN_PASSWORD", ADMIN_PASSWORD)]),
    with("LANGSIGHT_ADMIN_PASSWORD", ADMIN_PASSWORD, &[("LANGSIGHT_ADMIN_EMAIL", ADMIN_EMAIL)]),
    with("LANGSIGHT_PROXY_SECRET", PROXY_SECRET, ADMIN),
    with("LANGSIGHT_LOGIN_MAX_FAILURES", "1", ADMIN),
    e("LANGSIGHT_LOGIN_WINDOW_SECONDS", "30"),
    e("LANGSIGHT_LOGIN_LOCK_SECONDS", "30"),
    e("LANGSIGHT_LOG_LEVEL", "debug"),
    e("LANGSIGHT_SECRET_KEY", "an-operator-secret-key"),
    e("LANGSIGHT_REDACT_PAYLOADS", "true"),
    e("LANGSIGHT_OSV_URL", "http://127.0.0.1:9/osv"),
    e("LANGSIGHT_SECURITY_SCAN_INTERVAL_SECONDS", "0"),
    e("LANGSIGHT_HEADER_READ_TIMEOUT_SECONDS", "3"),
    e("LANGSIGHT_BODY_READ_TIMEOUT_SECONDS", "4"),
    e("LANGSIGHT_SSE_CLIENT_BUFFER_BYTES", "65536"),
];

/// Entries observed only through their configuration field (see the module docs). `LANGSIGHT_LOG_LEVEL` is
/// observed on the binary's log in crates/langsight-cli/tests/log_level.rs.
const FIELD_ONLY: &[&str] = &[
    "LANGSIGHT_CLICKHOUSE_URL",
    "LANGSIGHT_CLICKHOUSE_DATABASE",
    "LANGSIGHT_CLICKHOUSE_USERNAME",
    "LANGSIGHT_CLICKHOUSE_PASSWORD",
    "LANGSIGHT_SPOOL_DIR",
    "LANGSIGHT_SPOOL_MAX_MB",
    "LANGSIGHT_PG_POOL_MAX",
    "LANGSIGHT_MAX_CONCURRENT_TRACE_READS",
    "LANGSIGHT_MONITOR_INTERVAL_SECONDS",
    "LANGSIGHT_MONITOR_ENABLED",
    "LANGSIGHT_ALERT_DEDUP_SECONDS",
    "LANGSIGHT_ALERT_LATENCY_SPIKE_MULTIPLIER",
    "LANGSIGHT_SLO_EVAL_INTERVAL_SECONDS",
    "LANGSIGHT_ANOMALY_INTERVAL_SECONDS",
    "LANGSIGHT_ANOMALY_Z_THRESHOLD",
    "LANGSIGHT_LOGIN_WINDOW_SECONDS",
    "LANGSIGHT_LOGIN_LOCK_SECONDS",
    "LANGSIGHT_LOG_LEVEL",
    "LANGSIGHT_OSV_URL",
    // Its schedule is proven by security_scans.rs (the leader scans on its interval).
    "LANGSIGHT_SECURITY_SCAN_INTERVAL_SECONDS",
    // Both timeouts are proven on the binary by crates/langsight-cli/tests/security_slow_clients.rs.
    "LANGSIGHT_HEADER_READ_TIMEOUT_SECONDS",
    "LANGSIGHT_BODY_READ_TIMEOUT_SECONDS",
    // Proven by security_slow_clients.rs (an idle client pins at most this).
    "LANGSIGHT_SSE_CLIENT_BUFFER_BYTES",
];

/// The `LANGSIGHT_*` variables of the README's settings table: the first column's names (`_REST` continues
/// the first name's `LANGSIGHT_WORD`; `…_*` takes the upper-case names of the meaning column), plus variables
/// the meaning column names.
fn documented() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).expect("README.md");
    let table = readme.split("| Setting |").nth(1).expect("the README's settings table");
    let mut out: Vec<String> = Vec::new();
    let mut add = |v: String| {
        if !out.contains(&v) {
            out.push(v);
        }
    };
    for row in table.lines().skip(2).take_while(|l| l.starts_with('|')) {
        let cells: Vec<&str> = row.trim().trim_matches('|').split(" | ").collect();
        let spans = |cell: &str| -> Vec<String> {
            cell.split('`').enumerate().filter(|(i, _)| i % 2 == 1).map(|(_, s)| s.to_string()).collect()
        };
        let names = spans(cells[0]);
        let meaning = spans(cells.last().copied().unwrap_or_default());
        let mut prefix = String::new();
        for name in names {
            if let Some(rest) = name.strip_prefix('_') {
                add(format!("{prefix}_{rest}"));
            } else if let Some(stem) = name.strip_suffix('*') {
                for suffix in meaning.iter().filter(|m| m.chars().all(|c| c.is_ascii_uppercase() || c == '_')) {
                    add(format!("{stem}{suffix}"));
                }
            } else if name.starts_with("LANGSIGHT_") {
                prefix = name.splitn(3, '_').take(2).collect::<Vec<_>>().join("_");
                add(name);
            }
        }
        for m in meaning {
            if let Some(v) = m.split('=').next().filter(|v| v.starts_with("LANGSIGHT_") && !v.ends_with('*')) {
                add(v.to_string());
            }
        }
    }
    out
}

/// A local webhook receiver shared by the runs (each run posts to its own path).
static RECEIVER: std::sync::OnceLock<Receiver> = std::sync::OnceLock::new();

fn receiver() -> &'static Receiver {
    RECEIVER.get().expect("the receiver is started first")
}

/// A receiver that answers every request with HTTP 500.
static DOWN_RECEIVER: std::sync::OnceLock<Receiver> = std::sync::OnceLock::new();

fn down_receiver() -> &'static Receiver {
    DOWN_RECEIVER.get().expect("the failing receiver is started first")
}

/// Ingests a session whose tool call failed (one `agent_failure` alert, raised before the 202) and returns
/// the alert with its delivery record once that is written (after the channel's last attempt).
async fn failed_delivery(run: &Run) -> Option<(serde_json::Value, serde_json::Value)> {
    let sid = test_support::session_id();
    let now = chrono::Utc::now().to_rfc3339();
    let span = json!([{"span_id": "f", "session_id": sid, "server_name": "github", "tool_name": "create_issue",
        "agent_name": "triager", "started_at": now, "ended_at": now, "status": "error", "error": "HTTP 500"}]);
    let r = test_support::http()
        .post(format!("{}/api/traces/spans", run.url()))
        .header("X-API-Key", ADMIN_KEY)
        .json(&span)
        .send()
        .await
        .ok()?;
    assert_eq!(r.status(), 202);
    let feed = body(run, "/api/alerts/feed?status=all").await;
    let alert = feed["alerts"].as_array()?.iter().find(|a| a["session_id"] == json!(sid))?.clone();
    let id = alert["id"].as_str()?.to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = body(run, &format!("/api/alerts/{id}/deliveries")).await;
        if let Some(row) = rows.as_array().and_then(|r| r.first()) {
            return Some((alert, row.clone()));
        }
        assert!(Instant::now() < deadline, "the delivery of {id} was recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One start of the server from an environment, in its own directory.
struct Run {
    dir: tempfile::TempDir,
    env: HashMap<String, String>,
    started: Result<RunningServer, String>,
    port: u16,
}

impl Run {
    fn url(&self) -> String {
        match &self.started {
            Ok(s) => format!("http://{}", s.addr),
            Err(_) => String::new(),
        }
    }
    fn dir(&self) -> &Path {
        self.dir.path()
    }
    fn config(&self) -> Config {
        Config::from_sources(Flags::default(), &self.env).expect("the run's configuration")
    }
}

async fn launch(entry: &Entry, set: bool) -> Run {
    let dir = tempfile::tempdir().expect("a directory per run");
    let port = test_support::redis::free_port();
    let fill = |v: &str| {
        v.replace("{dir}", &dir.path().display().to_string())
            .replace("{port}", &port.to_string())
            .replace("{hook}", &receiver().url)
            .replace("{down}", &down_receiver().url)
    };
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("HOME".into(), dir.path().display().to_string());
    env.insert("LANGSIGHT_SQLITE_PATH".into(), dir.path().join("langsight.db").display().to_string());
    env.insert("LANGSIGHT_PORT".into(), "0".into());
    env.insert("LANGSIGHT_API_KEYS".into(), ADMIN_KEY.into());
    for (k, v) in entry.context {
        env.insert(k.to_string(), fill(v));
    }
    std::fs::write(dir.path().join("settings.yaml"), "auth_disabled: true\n").expect("yaml");
    let failing = "servers:\n  - name: gone\n    transport: stdio\n    command: /nonexistent/mcp-server\n";
    std::fs::write(dir.path().join("failing.yaml"), failing).expect("yaml");
    if entry.var == "LANGSIGHT_RETENTION_DAYS" {
        seed_old_span(&env).await;
    }
    if set {
        env.insert(entry.var.to_string(), fill(entry.value));
    }
    let started = match Config::from_sources(Flags::default(), &env) {
        Err(e) => Err(format!("refused: {e}")),
        Ok(config) => langsight_server::start(config).await.map_err(|e| format!("failed: {e}")),
    };
    Run { dir, env, started, port }
}

/// Spans of ten and of a hundred days ago in the run's database, stored by a server that is then stopped.
async fn seed_old_span(env: &HashMap<String, String>) {
    let config = Config::from_sources(Flags::default(), env).expect("seed configuration");
    let server = langsight_server::start(config).await.expect("seed server");
    let ago = |days| (chrono::Utc::now() - chrono::Duration::days(days)).to_rfc3339();
    for (span, session, at) in [("old", OLD_SESSION, ago(10)), ("ancient", ANCIENT_SESSION, ago(100))] {
        let r = test_support::http()
            .post(format!("http://{}/api/traces/spans", server.addr))
            .header("X-API-Key", ADMIN_KEY)
            .json(&json!([{"span_id": span, "session_id": session, "server_name": "s", "tool_name": "t",
                            "started_at": at, "ended_at": at, "status": "success"}]))
            .send()
            .await
            .expect("seed ingest");
        assert_eq!(r.status(), 202, "{:?}", r.text().await);
    }
    server.shutdown().await;
}

/// `status` of one request, or the run's refusal.
async fn status(
    run: &Run,
    method: &str,
    path: &str,
    key: Option<&str>,
    headers: &[(&str, &str)],
    body: &str,
) -> String {
    if let Err(e) = &run.started {
        return e.clone();
    }
    let http = reqwest::Client::builder().build().expect("client");
    let mut req = http.request(method.parse().expect("method"), format!("{}{path}", run.url()));
    if let Some(k) = key {
        req = req.header("X-API-Key", k);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if !body.is_empty() {
        req = req.header("Content-Type", "application/json").body(body.to_string());
    }
    match req.send().await {
        Ok(r) => r.status().as_u16().to_string(),
        Err(e) => format!("error: {e}"),
    }
}

/// The statuses of the same request sent twice: a limit of 1 answers the second with 429.
async fn twice(run: &Run, method: &str, path: &str, key: Option<&str>, headers: &[(&str, &str)], body: &str) -> String {
    let a = status(run, method, path, key, headers, body).await;
    let b = status(run, method, path, key, headers, body).await;
    format!("{a} {b}")
}

async fn body(run: &Run, path: &str) -> serde_json::Value {
    let r = test_support::http().get(format!("{}{path}", run.url())).header("X-API-Key", ADMIN_KEY).send().await;
    match r {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(_) => serde_json::Value::Null,
    }
}

/// What the run shows for `var`; `None` when the variable has no entry.
async fn observe(var: &str, run: &Run) -> Option<String> {
    let login = |password: &'static str| json!({"email": ADMIN_EMAIL, "password": password}).to_string();
    let field = |f: &dyn Fn(&Config) -> String| f(&run.config());
    Some(match var {
        "LANGSIGHT_HOST" => run.started.as_ref().map(|s| s.addr.ip().to_string()).unwrap_or_else(Clone::clone),
        "LANGSIGHT_PORT" => {
            run.started.as_ref().map(|s| (s.addr.port() == run.port).to_string()).unwrap_or_else(Clone::clone)
        }
        "LANGSIGHT_CONFIG_PATH" | "LANGSIGHT_AUTH_DISABLED" => {
            status(run, "GET", "/api/agents/sessions", None, &[], "").await
        }
        "LANGSIGHT_STORAGE_MODE"
        | "LANGSIGHT_POSTGRES_URL"
        | "LANGSIGHT_WORKERS"
        | "LANGSIGHT_REDIS_URL"
        | "LANGSIGHT_REDIS_CA_FILE" => match &run.started {
            Ok(_) => "started".into(),
            Err(e) => e.chars().take(60).collect(),
        },
        "LANGSIGHT_RETENTION_DAYS" => {
            // Retention runs when the leader starts. The hundred-day-old session goes under any retention, so
            // its removal is the event that shows a pass ran; then the ten-day-old one tells which retention.
            let deadline = Instant::now() + Duration::from_secs(10);
            let ancient = format!("/api/agents/sessions/{ANCIENT_SESSION}");
            while status(run, "GET", &ancient, Some(ADMIN_KEY), &[], "").await == "200" {
                assert!(Instant::now() < deadline, "a retention pass ran");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            status(run, "GET", &format!("/api/agents/sessions/{OLD_SESSION}"), Some(ADMIN_KEY), &[], "").await
        }
        "LANGSIGHT_SQLITE_PATH" => run.dir().join("other.db").exists().to_string(),
        "LANGSIGHT_API_KEYS" => {
            status(run, "GET", "/api/agents/sessions", Some("settings-test-key-0123456789"), &[], "").await
        }
        "LANGSIGHT_METRICS_TOKEN" => {
            status(run, "GET", "/metrics", None, &[("Authorization", "Bearer scrape-token")], "").await
        }
        "LANGSIGHT_CORS_ORIGINS" => {
            let r = test_support::http()
                .get(format!("{}/api/status", run.url()))
                .header("Origin", "http://cors.test")
                .send()
                .await
                .ok()?;
            format!("{:?}", r.headers().get("access-control-allow-origin"))
        }
        "LANGSIGHT_DASHBOARD_URL" | "LANGSIGHT_TRUSTED_HOSTS" => {
            status(run, "GET", "/api/status", Some(ADMIN_KEY), &[("Host", "elsewhere.test")], "").await
        }
        "LANGSIGHT_TRUSTED_PROXY_CIDRS" => {
            let a = status(run, "GET", "/api/status", None, &[("X-Forwarded-For", "198.51.100.1")], "").await;
            let b = status(run, "GET", "/api/status", None, &[("X-Forwarded-For", "198.51.100.2")], "").await;
            format!("{a} {b}")
        }
        "LANGSIGHT_RATE_LIMIT_ENABLED" | "LANGSIGHT_RATE_LIMIT_DEFAULT" => {
            twice(run, "GET", "/api/status", None, &[], "").await
        }
        "LANGSIGHT_RATE_LIMIT_SPANS" => twice(run, "POST", "/api/traces/spans", Some(ADMIN_KEY), &[], "[]").await,
        "LANGSIGHT_RATE_LIMIT_OTLP" => twice(run, "POST", "/api/traces/otlp", Some(ADMIN_KEY), &[], "{}").await,
        "LANGSIGHT_RATE_LIMIT_LOGIN" => twice(run, "POST", "/api/users/verify", None, &[], &login("wrong")).await,
        "LANGSIGHT_RATE_LIMIT_ACCEPT_INVITE" => {
            let b = json!({"token": "no-such-invite", "password": ADMIN_PASSWORD}).to_string();
            twice(run, "POST", "/api/users/accept-invite", None, &[], &b).await
        }
        "LANGSIGHT_RATE_LIMIT_CHANGE_PASSWORD" => {
            let b = json!({"current_password": "x", "new_password": ADMIN_PASSWORD}).to_string();
            twice(run, "POST", "/api/users/me/change-password", Some(ADMIN_KEY), &[], &b).await
        }
        "LANGSIGHT_RATE_LIMIT_INVESTIGATE" => {
            let b = json!({"server_names": ["nothing"]}).to_string();
            twice(run, "POST", "/api/investigate", Some(ADMIN_KEY), &[], &b).await
        }
        "LANGSIGHT_ALLOW_PRIVATE_MCP_URLS" => {
            let b = json!({"url": "http://127.0.0.1:9/mcp"}).to_string();
            status(run, "PUT", "/api/servers/metadata/local", Some(ADMIN_KEY), &[], &b).await
        }
        "LANGSIGHT_ALLOW_PRIVATE_WEBHOOK_URLS" => {
            let b = json!({"webhook_url": "http://127.0.0.1:9/hook"}).to_string();
            status(run, "POST", "/api/alerts/config", Some(ADMIN_KEY), &[], &b).await
        }
        "LANGSIGHT_SLACK_WEBHOOK" => body(run, "/api/alerts/config").await["webhook_configured"].to_string(),
        "LANGSIGHT_ALERT_WEBHOOK_URL" => {
            body(run, "/api/alerts/config").await["generic_webhook_configured"].to_string()
        }
        "LANGSIGHT_ADMIN_EMAIL" | "LANGSIGHT_ADMIN_PASSWORD" => {
            status(run, "POST", "/api/users/verify", None, &[], &login(ADMIN_PASSWORD)).await
        }
        "LANGSIGHT_LOGIN_MAX_FAILURES" => {
            status(run, "POST", "/api/users/verify", None, &[], &login("wrong-password")).await;
            status(run, "POST", "/api/users/verify", None, &[], &login(ADMIN_PASSWORD)).await
        }
        "LANGSIGHT_CLICKHOUSE_URL" => field(&|c| c.clickhouse.url.clone()),
        "LANGSIGHT_CLICKHOUSE_DATABASE" => field(&|c| c.clickhouse.database.clone()),
        "LANGSIGHT_CLICKHOUSE_USERNAME" => field(&|c| c.clickhouse.username.clone()),
        "LANGSIGHT_CLICKHOUSE_PASSWORD" => field(&|c| c.clickhouse.password.0.clone()),
        "LANGSIGHT_SPOOL_DIR" => field(&|c| c.clickhouse.spool_dir.display().to_string()),
        "LANGSIGHT_SPOOL_MAX_MB" => field(&|c| c.clickhouse.spool_max_bytes.to_string()),
        "LANGSIGHT_PG_POOL_MAX" => field(&|c| c.pg_pool_max.to_string()),
        "LANGSIGHT_MAX_CONCURRENT_TRACE_READS" => field(&|c| c.max_concurrent_trace_reads.to_string()),
        "LANGSIGHT_MONITOR_INTERVAL_SECONDS" => field(&|c| format!("{:?}", c.monitor_interval)),
        "LANGSIGHT_MONITOR_ENABLED" => field(&|c| c.monitor_enabled.to_string()),
        "LANGSIGHT_WEBHOOK_SECRET" => {
            // A test notification to the operator's webhook: signed only with the secret.
            let before = receiver().requests("/signed").len();
            let sent = status(run, "POST", "/api/alerts/test", Some(ADMIN_KEY), &[], "{}").await;
            let got = receiver().requests("/signed");
            let signed = got.get(before).map(|r| r.headers.contains_key("x-langsight-signature"));
            format!("{sent}, signed: {signed:?}")
        }
        "LANGSIGHT_ALERT_DEDUP_SECONDS" => field(&|c| c.alerts.dedup_seconds.to_string()),
        "LANGSIGHT_ALERT_CONSECUTIVE_FAILURES" => {
            // Three failed checks, each through the alert rules before its answer: a page at the default of 3.
            for _ in 0..3 {
                status(run, "POST", "/api/health/check", Some(ADMIN_KEY), &[], "{}").await;
            }
            let feed = body(run, "/api/alerts/feed?status=all").await;
            let alerts = feed["alerts"].as_array().cloned().unwrap_or_default();
            let down = alerts.iter().filter(|a| a["alert_type"] == "server_down").count();
            format!("{down} server_down after 3 failed checks")
        }
        "LANGSIGHT_ALERT_LATENCY_SPIKE_MULTIPLIER" => field(&|c| c.alerts.latency_spike_multiplier.to_string()),
        "LANGSIGHT_ALERT_DELIVERY_ATTEMPTS" => {
            let (_, row) = failed_delivery(run).await?;
            format!("{} after {} attempts", row["status"], row["attempts"])
        }
        "LANGSIGHT_ALERT_RETRY_BASE_MS" => {
            // Two attempts, one delay between them: the record is written that delay after the alert.
            let (alert, row) = failed_delivery(run).await?;
            let at = |v: &serde_json::Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_default()).ok();
            let took = at(&row["at"])? - at(&alert["fired_at"])?;
            format!(
                "{} after {} attempts, one second or more: {}",
                row["status"],
                row["attempts"],
                took.num_milliseconds() >= 1000
            )
        }
        "LANGSIGHT_SLO_EVAL_INTERVAL_SECONDS" => field(&|c| format!("{:?}", c.alerts.slo_interval)),
        "LANGSIGHT_ANOMALY_INTERVAL_SECONDS" => field(&|c| format!("{:?}", c.alerts.anomaly_interval)),
        "LANGSIGHT_ANOMALY_Z_THRESHOLD" => field(&|c| c.alerts.anomaly_z_threshold.to_string()),
        "LANGSIGHT_PROXY_SECRET" => {
            // The dashboard proxy's signed identity of the first admin: believed only with the secret set.
            let verified = test_support::http()
                .post(format!("{}/api/users/verify", run.url()))
                .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
                .send()
                .await
                .ok()?;
            let id = verified.json::<serde_json::Value>().await.ok()?["id"].as_str()?.to_string();
            let ts = chrono::Utc::now().timestamp().to_string();
            let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(PROXY_SECRET.as_bytes()).ok()?;
            hmac::Mac::update(&mut mac, format!("{id}:admin:{ts}").as_bytes());
            let signature = hex::encode(hmac::Mac::finalize(mac).into_bytes());
            let identity = [
                ("X-User-Id", id.as_str()),
                ("X-User-Role", "admin"),
                ("X-Proxy-Timestamp", &ts),
                ("X-Proxy-Signature", &signature),
            ];
            status(run, "GET", "/api/auth/me", None, &identity, "").await
        }
        "LANGSIGHT_LOGIN_WINDOW_SECONDS" => field(&|c| c.users.lockout.window_micros.to_string()),
        "LANGSIGHT_LOGIN_LOCK_SECONDS" => field(&|c| c.users.lockout.lock_micros.to_string()),
        "LANGSIGHT_LOG_LEVEL" => field(&|c| c.log_level.clone()),
        "LANGSIGHT_SECRET_KEY" => {
            // A provider key saved through the API: in the database file as written, or encrypted.
            let key = "sk-ant-settings-test-plaintext-0123456789";
            let b = json!({"redact_payloads": false, "ai_providers": {"anthropic": {"api_key": key}}}).to_string();
            let saved = status(run, "PUT", "/api/settings", Some(ADMIN_KEY), &[], &b).await;
            let mut bytes = Vec::new();
            for file in ["langsight.db", "langsight.db-wal"] {
                bytes.extend(std::fs::read(run.dir().join(file)).unwrap_or_default());
            }
            let plain = bytes.windows(key.len()).any(|w| w == key.as_bytes());
            format!("{saved}, key readable in the database file: {plain}")
        }
        "LANGSIGHT_REDACT_PAYLOADS" => {
            // A run with arguments, results and prompts: how many of its spans kept their arguments.
            let sid = test_support::session_id();
            let r = test_support::http()
                .post(format!("{}/api/traces/spans", run.url()))
                .header("X-API-Key", ADMIN_KEY)
                .json(&test_support::agent_run(&sid, 5, None))
                .send()
                .await
                .ok()?;
            assert_eq!(r.status(), 202);
            let trace = body(run, &format!("/api/agents/sessions/{sid}")).await;
            let spans = trace["spans_flat"].as_array()?;
            let kept = spans.iter().filter(|s| !s["input_json"].is_null()).count();
            format!("{kept} of {} spans kept their arguments", spans.len())
        }
        "LANGSIGHT_OSV_URL" => field(&|c| c.osv_url.clone()),
        "LANGSIGHT_SECURITY_SCAN_INTERVAL_SECONDS" => field(&|c| format!("{:?}", c.security_scan_interval)),
        "LANGSIGHT_HEADER_READ_TIMEOUT_SECONDS" => field(&|c| format!("{:?}", c.header_read_timeout)),
        "LANGSIGHT_BODY_READ_TIMEOUT_SECONDS" => field(&|c| format!("{:?}", c.body_read_timeout)),
        "LANGSIGHT_SSE_CLIENT_BUFFER_BYTES" => field(&|c| c.sse.client_buffer_bytes.to_string()),
        _ => return None,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn every_documented_setting_changes_what_the_server_does() {
    let _ = RECEIVER.set(Receiver::start().await);
    let down = Receiver::start().await;
    down.answer(500);
    let _ = DOWN_RECEIVER.set(down);
    let documented = documented();
    assert!(documented.len() >= 50, "the README's settings table was read: {documented:?}");
    let mut failures = Vec::new();
    for var in &documented {
        if !KNOWN_ENV.contains(&var.as_str()) {
            failures.push(format!("{var} is documented but missing from KNOWN_ENV (it would be reported as unknown)"));
        }
        if !ENTRIES.iter().any(|e| e.var == var) {
            failures.push(format!("{var} is documented but has no entry here"));
        }
    }
    for entry in ENTRIES {
        if !documented.iter().any(|d| d == entry.var) {
            failures.push(format!("{} has an entry but the README no longer documents it", entry.var));
            continue;
        }
        let without = launch(entry, false).await;
        let before = observe(entry.var, &without).await;
        let with = launch(entry, true).await;
        let after = observe(entry.var, &with).await;
        for run in [without, with] {
            if let Ok(s) = run.started {
                s.shutdown().await;
            }
        }
        match (before, after) {
            (None, _) | (_, None) => failures.push(format!("{}: no observation", entry.var)),
            (Some(b), Some(a)) if a == b => {
                failures.push(format!("{}={}: nothing observable changed ({a})", entry.var, entry.value))
            }
            (Some(b), Some(a)) => eprintln!("{}: {b} → {a}", entry.var),
        }
    }
    let field_only: Vec<&str> = ENTRIES.iter().map(|e| e.var).filter(|v| FIELD_ONLY.contains(v)).collect();
    assert_eq!(field_only.len(), FIELD_ONLY.len(), "FIELD_ONLY names only entries");
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The two variables nothing acts on are gone: a start with them reports them as unknown.
#[test]
fn dropped_settings_are_reported_as_unknown() {
    let mut env = HashMap::new();
    env.insert("HOME".to_string(), "/nonexistent".to_string());
    env.insert("LANGSIGHT_ENV".to_string(), "production".to_string());
    env.insert("LANGSIGHT_PG_POOL_MIN".to_string(), "2".to_string());
    let c = Config::from_sources(Flags { skip_config_file: true, ..Flags::default() }, &env).unwrap();
    assert_eq!(c.unknown_env, ["LANGSIGHT_ENV", "LANGSIGHT_PG_POOL_MIN"]);
}
