//! Every setting the README documents does something. For each `LANGSIGHT_*` variable of the README's
//! settings table there is an entry here; the server is started twice from an environment — once without the
//! variable, once with it — and an observation is taken of each run (a route's answer, where it listens, a
//! file it wrote, or the refusal of the start). The two observations must differ, so an entry fails when the
//! variable is ignored. A documented variable without an entry fails the test, as does an entry for a
//! variable the README no longer lists.
//!
//! Observations go through the running server. Where the effect of a setting is that something does *not*
//! happen (a check, a scan, an alert, a closed connection), the observation is taken at an event that shows
//! the server had its chance: another loop's first pass (the anomaly rule or the SLO evaluation, run on a short
//! interval in both runs), the live view's keepalive, a later pass of the same loop, or the monitor's rounds;
//! never after a sleep. Entries still observed only through their configuration field are listed in
//! `FIELD_ONLY`, with where their effect is proven, so that the number of such entries cannot grow unnoticed.

use langsight_server::config::{Config, Flags, KNOWN_ENV};
use langsight_server::RunningServer;
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
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
const ADMIN_TWO_FAILURES: &[(&str, &str)] = &[
    ("LANGSIGHT_ADMIN_EMAIL", ADMIN_EMAIL),
    ("LANGSIGHT_ADMIN_PASSWORD", ADMIN_PASSWORD),
    ("LANGSIGHT_LOGIN_MAX_FAILURES", "2"),
];
const ADMIN_ONE_FAILURE: &[(&str, &str)] = &[
    ("LANGSIGHT_ADMIN_EMAIL", ADMIN_EMAIL),
    ("LANGSIGHT_ADMIN_PASSWORD", ADMIN_PASSWORD),
    ("LANGSIGHT_LOGIN_MAX_FAILURES", "1"),
];
/// The anomaly rule every 3 s: its first alert is the clock that shows a faster loop had its chance.
const ANOMALY_CLOCK: &[(&str, &str)] =
    &[("LANGSIGHT_ANOMALY_INTERVAL_SECONDS", "3"), ("LANGSIGHT_RATE_LIMIT_ENABLED", "false")];
/// The SLO evaluation every 3 s: its first `slo_breached` is the clock for the anomaly interval.
const SLO_CLOCK: &[(&str, &str)] =
    &[("LANGSIGHT_SLO_EVAL_INTERVAL_SECONDS", "3"), ("LANGSIGHT_RATE_LIMIT_ENABLED", "false")];
/// The anomaly rule every second (its passes are observed through the alerts they fire).
const ANOMALY_EVERY_SECOND: &[(&str, &str)] =
    &[("LANGSIGHT_ANOMALY_INTERVAL_SECONDS", "1"), ("LANGSIGHT_RATE_LIMIT_ENABLED", "false")];
/// The failing server monitored, with the anomaly rule as the clock.
const MONITORED_ANOMALY_CLOCK: &[(&str, &str)] = &[
    ("LANGSIGHT_CONFIG_PATH", "{dir}/failing.yaml"),
    ("LANGSIGHT_ANOMALY_INTERVAL_SECONDS", "3"),
    ("LANGSIGHT_RATE_LIMIT_ENABLED", "false"),
];
/// The live view's keepalive after 3 idle seconds: a timer of the server that shows shorter ones had their
/// chance.
const KEEPALIVE_CLOCK: &[(&str, &str)] = &[("LANGSIGHT_SSE_KEEPALIVE_SECONDS", "3")];
const MONITORED_KEEPALIVE_CLOCK: &[(&str, &str)] =
    &[("LANGSIGHT_CONFIG_PATH", "{dir}/failing.yaml"), ("LANGSIGHT_SSE_KEEPALIVE_SECONDS", "2")];
/// The MCP fixture (a stdio server whose delay a file sets), checked on demand.
const FIXTURE_ON_DEMAND: &[(&str, &str)] =
    &[("LANGSIGHT_CONFIG_PATH", "{dir}/fixture.yaml"), ("LANGSIGHT_MONITOR_ENABLED", "false")];
/// The fixture launched as `npx -y fixture-mcp-server@1.4.2` (a package OSV can be asked about), OSV at a
/// closed port.
const PUBLISHED_ON_DEMAND: &[(&str, &str)] = &[
    ("LANGSIGHT_CONFIG_PATH", "{dir}/published.yaml"),
    ("LANGSIGHT_MONITOR_ENABLED", "false"),
    ("LANGSIGHT_OSV_URL", "http://127.0.0.1:9"),
];
const PUBLISHED_MONITORED: &[(&str, &str)] = &[
    ("LANGSIGHT_CONFIG_PATH", "{dir}/published.yaml"),
    ("LANGSIGHT_MONITOR_INTERVAL_SECONDS", "1"),
    ("LANGSIGHT_OSV_URL", "http://127.0.0.1:9"),
    ("LANGSIGHT_RATE_LIMIT_ENABLED", "false"),
];

/// `postgres` mode in a database of its own (`{pgdb}`), nothing in the background.
const POSTGRES: &[(&str, &str)] = &[
    ("LANGSIGHT_STORAGE_MODE", "postgres"),
    ("LANGSIGHT_POSTGRES_URL", "{pgdb}"),
    ("LANGSIGHT_MONITOR_ENABLED", "false"),
];
/// `dual` mode: a database of its own and the shared ClickHouse (`{ch}`).
const DUAL: &[(&str, &str)] = &[
    ("LANGSIGHT_STORAGE_MODE", "dual"),
    ("LANGSIGHT_POSTGRES_URL", "{pgdb}"),
    ("LANGSIGHT_CLICKHOUSE_URL", "{ch}"),
    ("LANGSIGHT_MONITOR_ENABLED", "false"),
];
/// `dual` mode with ClickHouse at a closed port.
const DUAL_CLOSED: &[(&str, &str)] = &[
    ("LANGSIGHT_STORAGE_MODE", "dual"),
    ("LANGSIGHT_POSTGRES_URL", "{pgdb}"),
    ("LANGSIGHT_CLICKHOUSE_URL", "http://127.0.0.1:9"),
    ("LANGSIGHT_MONITOR_ENABLED", "false"),
];

/// `{dir}` is the run's private directory, `{port}` a free port, `{hook}` the local webhook receiver.
const ENTRIES: &[Entry] = &[
    e("LANGSIGHT_HOST", "127.0.0.2"),
    e("LANGSIGHT_PORT", "{port}"),
    with("LANGSIGHT_CONFIG_PATH", "{dir}/settings.yaml", NO_KEYS),
    e("LANGSIGHT_STORAGE_MODE", "postgres"),
    with("LANGSIGHT_POSTGRES_URL", "postgres://u:p@127.0.0.1:1/db", &[("LANGSIGHT_STORAGE_MODE", "postgres")]),
    e("LANGSIGHT_RETENTION_DAYS", "1"),
    with("LANGSIGHT_CLICKHOUSE_URL", "{ch}", DUAL_CLOSED),
    with("LANGSIGHT_CLICKHOUSE_DATABASE", "settings_other", DUAL),
    with("LANGSIGHT_CLICKHOUSE_USERNAME", "reader", DUAL),
    with("LANGSIGHT_CLICKHOUSE_PASSWORD", "pw", DUAL),
    with("LANGSIGHT_SPOOL_DIR", "{dir}/spool", DUAL),
    with("LANGSIGHT_SPOOL_MAX_MB", "1", DUAL),
    with("LANGSIGHT_PG_POOL_MAX", "1", POSTGRES),
    e("LANGSIGHT_SQLITE_PATH", "{dir}/other.db"),
    e("LANGSIGHT_API_KEYS", "settings-test-key-0123456789"),
    with("LANGSIGHT_AUTH_DISABLED", "true", NO_KEYS),
    e("LANGSIGHT_METRICS_TOKEN", "scrape-token"),
    e("LANGSIGHT_CORS_ORIGINS", "http://cors.test"),
    e("LANGSIGHT_DASHBOARD_URL", "https://dash.test"),
    with("LANGSIGHT_TRUSTED_HOSTS", "elsewhere.test", &[("LANGSIGHT_DASHBOARD_URL", "https://dash.test")]),
    with("LANGSIGHT_TRUSTED_PROXY_CIDRS", "10.0.0.0/8", LIMIT_1),
    with("LANGSIGHT_MAX_CONCURRENT_TRACE_READS", "1", POSTGRES),
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
    with("LANGSIGHT_MONITOR_INTERVAL_SECONDS", "1", MONITORED_ANOMALY_CLOCK),
    with("LANGSIGHT_MONITOR_ENABLED", "false", MONITORED_KEEPALIVE_CLOCK),
    e("LANGSIGHT_ALLOW_PRIVATE_MCP_URLS", "true"),
    e("LANGSIGHT_SLACK_WEBHOOK", "https://hooks.slack.com/services/T0/B0/x"),
    e("LANGSIGHT_ALERT_WEBHOOK_URL", "https://hooks.example.com/langsight"),
    with("LANGSIGHT_WEBHOOK_SECRET", "signing-secret", &[("LANGSIGHT_ALERT_WEBHOOK_URL", "{hook}/signed")]),
    e("LANGSIGHT_ALLOW_PRIVATE_WEBHOOK_URLS", "true"),
    with("LANGSIGHT_ALERT_DEDUP_SECONDS", "1", ANOMALY_EVERY_SECOND),
    with("LANGSIGHT_ALERT_CONSECUTIVE_FAILURES", "5", FAILING_SERVER),
    with("LANGSIGHT_ALERT_LATENCY_SPIKE_MULTIPLIER", "1000", FIXTURE_ON_DEMAND),
    with("LANGSIGHT_ALERT_DELIVERY_ATTEMPTS", "2", DOWN_HOOK_FAST_RETRIES),
    with("LANGSIGHT_ALERT_RETRY_BASE_MS", "50", DOWN_HOOK_TWO_ATTEMPTS),
    with("LANGSIGHT_SLO_EVAL_INTERVAL_SECONDS", "1", ANOMALY_CLOCK),
    with("LANGSIGHT_ANOMALY_INTERVAL_SECONDS", "1", SLO_CLOCK),
    with("LANGSIGHT_ANOMALY_Z_THRESHOLD", "4", ANOMALY_EVERY_SECOND),
    with("LANGSIGHT_ADMIN_EMAIL", ADMIN_EMAIL, &[("LANGSIGHT_ADMIN_PASSWORD", ADMIN_PASSWORD)]),
    with("LANGSIGHT_ADMIN_PASSWORD", ADMIN_PASSWORD, &[("LANGSIGHT_ADMIN_EMAIL", ADMIN_EMAIL)]),
    with("LANGSIGHT_PROXY_SECRET", PROXY_SECRET, ADMIN),
    with("LANGSIGHT_LOGIN_MAX_FAILURES", "1", ADMIN),
    with("LANGSIGHT_LOGIN_WINDOW_SECONDS", "1", ADMIN_TWO_FAILURES),
    with("LANGSIGHT_LOGIN_LOCK_SECONDS", "1", ADMIN_ONE_FAILURE),
    e("LANGSIGHT_LOG_LEVEL", "debug"),
    e("LANGSIGHT_SECRET_KEY", "an-operator-secret-key"),
    e("LANGSIGHT_REDACT_PAYLOADS", "true"),
    with("LANGSIGHT_OSV_URL", "{hook}/osv", PUBLISHED_ON_DEMAND),
    with("LANGSIGHT_SECURITY_SCAN_INTERVAL_SECONDS", "0", PUBLISHED_MONITORED),
    with("LANGSIGHT_HEADER_READ_TIMEOUT_SECONDS", "1", KEEPALIVE_CLOCK),
    with("LANGSIGHT_BODY_READ_TIMEOUT_SECONDS", "1", KEEPALIVE_CLOCK),
    e("LANGSIGHT_SSE_CLIENT_BUFFER_BYTES", "65536"),
];

/// Entries observed only through their configuration field (see the module docs). `LANGSIGHT_LOG_LEVEL` is
/// observed on the binary's log in crates/langsight-cli/tests/log_level.rs (the level is applied by the
/// binary's logger, which this in-process server does not install).
const FIELD_ONLY: &[&str] = &["LANGSIGHT_LOG_LEVEL"];

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
            .replace("{ch}", &if v.contains("{ch}") { clickhouse_url() } else { String::new() })
            .replace("{pgdb}", &if v.contains("{pgdb}") { pg_database(port) } else { String::new() })
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
    write_fixture_configs(dir.path());
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

fn fixture() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary");
    exe.parent().and_then(|d| d.parent()).expect("the target directory").join("mcp-fixture")
}

fn fixture_state(delay_ms: u64) -> String {
    let tools = json!([{"name": "search", "description": "Search the docs.",
                        "inputSchema": {"type": "object", "properties": {"q": {"type": "string"}}}}]);
    json!({"mode": "ok", "tools": tools, "delay_ms": delay_ms}).to_string()
}

/// `fixture.yaml` (the MCP fixture over stdio, its state in `fx.json`) and `published.yaml` (the fixture
/// launched as `npx -y fixture-mcp-server@1.4.2` through a local `npx` script).
fn write_fixture_configs(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let fx = fixture().display().to_string();
    let d = dir.display();
    std::fs::write(dir.join("fx.json"), fixture_state(0)).expect("fixture state");
    std::fs::write(dir.join("published.json"), fixture_state(0)).expect("fixture state");
    let yaml = format!(
        "servers:\n  - name: fx\n    transport: stdio\n    command: {fx}\n    args: [\"--stdio\"]\n    \
         env: {{ MCP_FIXTURE_STATE: \"{d}/fx.json\" }}\n    timeout_seconds: 20\n"
    );
    std::fs::write(dir.join("fixture.yaml"), yaml).expect("yaml");
    std::fs::create_dir_all(dir.join("bin")).expect("bin");
    std::fs::write(dir.join("bin/npx"), format!("#!/bin/sh\nexec '{fx}' --stdio\n")).expect("npx");
    std::fs::set_permissions(dir.join("bin/npx"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let yaml = format!(
        "servers:\n  - name: published\n    transport: stdio\n    command: {d}/bin/npx\n    \
         args: [\"-y\", \"fixture-mcp-server@1.4.2\"]\n    env: {{ MCP_FIXTURE_STATE: \"{d}/published.json\" }}\n    \
         timeout_seconds: 20\n"
    );
    std::fs::write(dir.join("published.yaml"), yaml).expect("yaml");
}

/// One on-demand check of the fixture (its rules have run when the answer arrives): its latency.
async fn fixture_check(run: &Run) -> Option<f64> {
    let r = test_support::http()
        .post(format!("{}/api/health/check", run.url()))
        .header("X-API-Key", ADMIN_KEY)
        .json(&json!({}))
        .send()
        .await
        .ok()?;
    let b: serde_json::Value = r.json().await.ok()?;
    assert_eq!(b[0]["status"], "up", "the fixture is up: {b}");
    b[0]["latency_ms"].as_f64()
}

async fn ingest(run: &Run, spans: serde_json::Value) {
    let r = test_support::http()
        .post(format!("{}/api/traces/spans", run.url()))
        .header("X-API-Key", ADMIN_KEY)
        .json(&spans)
        .send()
        .await
        .expect("ingest");
    assert_eq!(r.status(), 202, "{:?}", r.text().await);
}

/// Every alert of the run (all states).
async fn alerts(run: &Run) -> Vec<serde_json::Value> {
    body(run, "/api/alerts/feed?status=all&limit=200").await["alerts"].as_array().cloned().unwrap_or_default()
}

fn anomaly_of(alert: &serde_json::Value, tool: &str) -> bool {
    alert["title"] == json!(format!("Anomaly detected: {tool} on settings"))
}

/// Polls the alerts until one matches (a positive wait: it ends on the event).
async fn wait_alert(run: &Run, what: &str, matches: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !alerts(run).await.iter().any(&matches) {
        assert!(Instant::now() < deadline, "{what} was alerted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Tool calls that make each `(tool, latency)` anomalous when latency is over 100 ms: 100 ms in each of the
/// three previous hours, `latency` ms now (z = (latency − 100) / 10).
async fn anomalous(run: &Run, tools: &[(&str, i64)]) {
    // The rule compares the current hour with the earlier ones: not in the half minute before the hour turns
    // (an entry's passes would see these spans in the previous hour).
    let into_hour = chrono::Utc::now().timestamp().rem_euclid(3600);
    if into_hour > 3570 {
        tokio::time::sleep(Duration::from_secs((3601 - into_hour) as u64)).await;
    }
    let now = chrono::Utc::now();
    let sid = test_support::session_id();
    let mut spans = Vec::new();
    for (tool, latency) in tools {
        for (h, ms) in [(3, 100), (2, 100), (1, 100), (0, *latency)] {
            let end = now - chrono::Duration::hours(h);
            let start = end - chrono::Duration::milliseconds(ms);
            spans.push(json!({"span_id": format!("{tool}-{h}"), "session_id": sid, "server_name": "settings",
                "tool_name": tool, "started_at": start.to_rfc3339(), "ended_at": end.to_rfc3339(),
                "status": "success"}));
        }
    }
    ingest(run, json!(spans)).await;
}

/// Makes `tool` anomalous and waits for its alert: an anomaly pass ran after this call began and fired it.
async fn anomaly_pass(run: &Run, tool: &str, latency: i64) {
    anomalous(run, &[(tool, latency)]).await;
    wait_alert(run, &format!("the anomaly of {tool}"), |a| anomaly_of(a, tool)).await;
}

/// An SLO (success rate ≥ 99 %) that a failed session breaches.
async fn breached_slo(run: &Run) {
    let slo = json!({"agent_name": "slo-agent", "metric": "success_rate", "target": 99.0}).to_string();
    let created = status(run, "POST", "/api/slos", Some(ADMIN_KEY), &[], &slo).await;
    assert!(created.starts_with('2'), "the SLO is created: {created}");
    let now = chrono::Utc::now().to_rfc3339();
    ingest(
        run,
        json!([{"span_id": "s", "session_id": test_support::session_id(), "server_name": "github",
            "tool_name": "create_issue", "agent_name": "slo-agent", "started_at": now, "ended_at": now,
            "status": "error", "error": "HTTP 500"}]),
    )
    .await;
}

/// Stored checks of a server.
async fn checks(run: &Run, server: &str) -> usize {
    body(run, &format!("/api/health/servers/{server}/history?limit=100")).await.as_array().map_or(0, Vec::len)
}

/// Waits for the live view's first keepalive (sent after the configured idle seconds).
async fn keepalive(run: &Run) {
    let mut r = test_support::http()
        .get(format!("{}/api/live/events", run.url()))
        .header("X-API-Key", ADMIN_KEY)
        .send()
        .await
        .expect("the live view");
    assert_eq!(r.status(), 200);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !String::from_utf8_lossy(&seen).contains(": keepalive") {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, r.chunk()).await {
            Ok(Ok(Some(c))) => seen.extend_from_slice(&c),
            other => panic!("no keepalive on the live view: {other:?}"),
        }
    }
}

/// A connection to the run that has sent `bytes`.
fn raw_connection(run: &Run, bytes: &[u8]) -> Option<std::net::TcpStream> {
    use std::io::Write;
    let addr = run.started.as_ref().ok()?.addr;
    let mut c = std::net::TcpStream::connect(addr).ok()?;
    c.write_all(bytes).ok()?;
    Some(c)
}

/// What the server did with the connection so far: closed it, answered (the status line), or neither.
fn connection_state(mut c: std::net::TcpStream) -> String {
    use std::io::Read;
    c.set_nonblocking(true).expect("non-blocking");
    let mut buf = [0u8; 256];
    match c.read(&mut buf) {
        Ok(0) => "closed".into(),
        Ok(n) => format!("answered {}", String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default()),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => "open, no answer".into(),
        Err(e) => format!("closed ({})", e.kind()),
    }
}

/// The test's PostgreSQL cluster and ClickHouse, started the first time an entry needs them.
static PG: std::sync::OnceLock<test_support::postgres::PgCluster> = std::sync::OnceLock::new();
static CH: std::sync::OnceLock<(String, std::sync::Mutex<test_support::clickhouse::ClickHouseServer>)> =
    std::sync::OnceLock::new();

fn pg() -> &'static test_support::postgres::PgCluster {
    PG.get_or_init(|| {
        test_support::at_exit(|| {
            if let Some(pg) = PG.get() {
                pg.shut_down();
            }
        });
        tokio::task::block_in_place(test_support::postgres::PgCluster::start)
    })
}

/// A new database for one run.
fn pg_database(port: u16) -> String {
    pg().database(&format!("settings_{port}"))
}

fn clickhouse() -> &'static (String, std::sync::Mutex<test_support::clickhouse::ClickHouseServer>) {
    CH.get_or_init(|| {
        test_support::at_exit(|| {
            // A test that panicked while holding it (a restart that failed) poisons the lock; one still holding
            // it at exit is left alone rather than waited for.
            let Some((_, ch)) = CH.get() else { return };
            let mut ch = match ch.try_lock() {
                Ok(ch) => ch,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return,
            };
            ch.shut_down();
        });
        let ch = tokio::task::block_in_place(test_support::clickhouse::ClickHouseServer::start);
        (ch.url.clone(), std::sync::Mutex::new(ch))
    })
}

fn clickhouse_url() -> String {
    clickhouse().0.clone()
}

/// Runs `f` while the test's ClickHouse is stopped, and starts it again.
async fn with_clickhouse_stopped<F: std::future::Future<Output = String>>(f: impl FnOnce() -> F) -> String {
    tokio::task::block_in_place(|| clickhouse().1.lock().expect("ClickHouse").stop());
    let out = f().await;
    tokio::task::block_in_place(|| clickhouse().1.lock().expect("ClickHouse").restart());
    out
}

/// Rows of a session in `database.spans` of the test's ClickHouse (`-` when there is no such table).
async fn ch_rows(database: &str, session: &str) -> String {
    let q = format!("SELECT count() FROM {database}.spans WHERE session_id = '{session}'");
    let r = test_support::http().post(clickhouse_url()).body(q).send().await.expect("ClickHouse answers");
    if r.status().is_success() {
        r.text().await.unwrap_or_default().trim().to_string()
    } else {
        "-".into()
    }
}

/// Ingests a one-span session and returns its id.
async fn one_session(run: &Run) -> String {
    let sid = test_support::session_id();
    let now = chrono::Utc::now().to_rfc3339();
    ingest(
        run,
        json!([{"span_id": "one", "session_id": sid, "server_name": "s", "tool_name": "t", "started_at": now,
                "ended_at": now, "status": "success"}]),
    )
    .await;
    // In dual mode the spans may still wait in the spool; reading the trace sends them to ClickHouse first.
    get(run, &format!("/api/agents/sessions/{sid}")).await;
    sid
}

/// The status of a GET with the admin key.
fn get(run: &Run, path: &str) -> impl std::future::Future<Output = String> + Send + 'static {
    let url = format!("{}{path}", run.url());
    async move {
        match test_support::http().get(url).header("X-API-Key", ADMIN_KEY).send().await {
            Ok(r) => r.status().as_u16().to_string(),
            Err(e) => format!("error: {e}"),
        }
    }
}

/// A psql session of the test holding an exclusive lock on tables of the run's database until dropped.
struct Locker {
    child: std::process::Child,
    db: String,
}

fn psql(db: &str, sql: &str) -> String {
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL")
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin/psql"))
        .find(|p| p.exists())
        .expect("psql");
    let out = std::process::Command::new(bin)
        .args(["-h", "127.0.0.1", "-p", &pg().port.to_string(), "-U", "postgres", "-d", db, "-tAc", sql])
        .output()
        .expect("psql runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Locker {
    fn lock(run: &Run, tables: &str) -> Locker {
        let db = format!("settings_{}", run.env["LANGSIGHT_POSTGRES_URL"].rsplit('_').next().expect("db"));
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL")
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin/psql"))
            .find(|p| p.exists())
            .expect("psql");
        let child = std::process::Command::new(bin)
            .env("PGAPPNAME", "settings-locker")
            .args(["-h", "127.0.0.1", "-p", &pg().port.to_string(), "-U", "postgres", "-d", &db, "-c"])
            .arg(format!("LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120)"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("psql starts");
        let locker = Locker { child, db };
        let deadline = Instant::now() + Duration::from_secs(20);
        let held = "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
                    WHERE a.application_name = 'settings-locker' AND l.mode = 'AccessExclusiveLock' AND l.granted";
        let want = tables.split(',').count().to_string();
        while psql(&locker.db, held) != want {
            assert!(Instant::now() < deadline, "the test holds the lock on {tables}");
            std::thread::sleep(Duration::from_millis(50));
        }
        locker
    }

    /// Backends of the run waiting on a lock in a statement containing `sql`.
    fn waiting(&self, sql: &str) -> usize {
        let q = format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND wait_event_type = 'Lock' \
             AND application_name <> 'settings-locker' AND query LIKE '%{sql}%'",
            self.db
        );
        psql(&self.db, &q).parse().unwrap_or(0)
    }

    fn wait_waiting(&self, sql: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.waiting(sql) < n {
            assert!(Instant::now() < deadline, "a statement with {sql} waits on the lock");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Locker {
    fn drop(&mut self) {
        psql(
            &self.db,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'settings-locker'",
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
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
        "LANGSIGHT_CLICKHOUSE_URL" => {
            // At a closed port the start is refused; at the test's ClickHouse the spans land there.
            if let Err(e) = &run.started {
                return Some(e.chars().take(60).collect());
            }
            let sid = one_session(run).await;
            format!("rows in ClickHouse's langsight.spans: {}", ch_rows("langsight", &sid).await)
        }
        "LANGSIGHT_CLICKHOUSE_DATABASE" => {
            // The database ClickHouse creates and the spans go to.
            let sid = one_session(run).await;
            let (a, b) = (ch_rows("langsight", &sid).await, ch_rows("settings_other", &sid).await);
            format!("rows in langsight: {a}, in settings_other: {b}")
        }
        "LANGSIGHT_CLICKHOUSE_USERNAME" | "LANGSIGHT_CLICKHOUSE_PASSWORD" => {
            // ClickHouse knows only `default` without a password: another user or a password is refused by
            // ClickHouse, and the start with it.
            match &run.started {
                Ok(_) => "started".into(),
                Err(e) => format!(
                    "refused; ClickHouse named the user or password: {}",
                    e.contains("Code: 192") || e.contains("Code: 193")
                ),
            }
        }
        "LANGSIGHT_SPOOL_DIR" => {
            // ClickHouse stopped: the accepted batch is fsynced to the spool before the 202.
            let got = with_clickhouse_stopped(|| async {
                let sid = test_support::session_id();
                let now = chrono::Utc::now().to_rfc3339();
                let span = json!([{"span_id": "sp", "session_id": sid, "server_name": "s", "tool_name": "t",
                                   "started_at": now, "ended_at": now, "status": "success"}]);
                status(run, "POST", "/api/traces/spans", Some(ADMIN_KEY), &[], &span.to_string()).await
            })
            .await;
            let files = std::fs::read_dir(run.dir().join("spool")).map(|d| d.count()).unwrap_or(0);
            format!("{got}, files in the run's spool/: {files}")
        }
        "LANGSIGHT_SPOOL_MAX_MB" => {
            // ClickHouse stopped: a batch of about 1.5 MB fits a spool of 1024 MiB, not one of 1 MiB.
            with_clickhouse_stopped(|| async {
                let sid = test_support::session_id();
                let now = chrono::Utc::now().to_rfc3339();
                let spans: Vec<_> = (0..300)
                    .map(|i| {
                        json!({"span_id": format!("big{i}"), "session_id": sid, "server_name": "s",
                        "tool_name": "t", "started_at": now, "ended_at": now, "status": "success",
                        "input_args": {"q": "x".repeat(5000)}})
                    })
                    .collect();
                status(run, "POST", "/api/traces/spans", Some(ADMIN_KEY), &[], &json!(spans).to_string()).await
            })
            .await
        }
        "LANGSIGHT_PG_POOL_MAX" => {
            // One request waits on a table lock with its connection; another request (another table) gets a
            // connection of a pool of 20, and none of a pool of 1 (503 when the pool's 5 s wait ends).
            let sid = one_session(run).await;
            let locker = Locker::lock(run, "spans");
            let held = tokio::spawn(get(run, &format!("/api/agents/sessions/{sid}")));
            locker.wait_waiting("FROM spans", 1);
            let other = status(run, "GET", "/api/slos", Some(ADMIN_KEY), &[], "").await;
            drop(locker);
            let _ = held.await;
            format!("another read while one waits on a lock: {other}")
        }
        "LANGSIGHT_MAX_CONCURRENT_TRACE_READS" => {
            // Session traces and the session list wait on locked tables. A first trace read waits in
            // PostgreSQL; a second one is sent, then a list read: once the list read waits in PostgreSQL too,
            // the second trace read has had its chance, and waits there beside the first (5 allowed) or not (1).
            let (a, b) = (one_session(run).await, one_session(run).await);
            let locker = Locker::lock(run, "spans, sessions");
            let first = tokio::spawn(get(run, &format!("/api/agents/sessions/{a}")));
            locker.wait_waiting("FROM spans", 1);
            let second = raw_connection(
                run,
                format!("GET /api/agents/sessions/{b} HTTP/1.1\r\nHost: localhost\r\nX-API-Key: {ADMIN_KEY}\r\n\r\n")
                    .as_bytes(),
            );
            let list = tokio::spawn(get(run, "/api/agents/sessions"));
            locker.wait_waiting("FROM sessions", 1);
            let traces = locker.waiting("FROM spans");
            drop(locker);
            let _ = (first.await, list.await, second);
            format!("trace reads waiting in PostgreSQL: {traces}")
        }
        "LANGSIGHT_MONITOR_INTERVAL_SECONDS" => {
            // Rounds from the start until the anomaly rule's first pass (3 s): one at 60 s, several at 1 s.
            anomaly_pass(run, "monitor-clock", 1000).await;
            format!("more than one check of 'gone' by the first anomaly pass: {}", checks(run, "gone").await > 1)
        }
        "LANGSIGHT_MONITOR_ENABLED" => {
            // The first round runs at start; by the live view's first keepalive (2 s) it has stored its check.
            keepalive(run).await;
            format!("checks of 'gone' by the first keepalive: {}", checks(run, "gone").await)
        }
        "LANGSIGHT_WEBHOOK_SECRET" => {
            // A test notification to the operator's webhook: signed only with the secret.
            let before = receiver().requests("/signed").len();
            let sent = status(run, "POST", "/api/alerts/test", Some(ADMIN_KEY), &[], "{}").await;
            let got = receiver().requests("/signed");
            let signed = got.get(before).map(|r| r.headers.contains_key("x-langsight-signature"));
            format!("{sent}, signed: {signed:?}")
        }
        "LANGSIGHT_ALERT_DEDUP_SECONDS" => {
            // An anomaly that every pass (1 s) finds again. A later pass that fires a smaller anomaly first
            // handled this one (passes fire the largest |z| first), more than a second after its first alert.
            anomaly_pass(run, "repeated", 3000).await;
            anomaly_pass(run, "after-repeated", 1000).await;
            let n = alerts(run).await.iter().filter(|a| anomaly_of(a, "repeated")).count();
            format!("the repeated anomaly paged more than once: {}", n > 1)
        }
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
        "LANGSIGHT_ALERT_LATENCY_SPIKE_MULTIPLIER" => {
            // Three steady checks make the baseline; a check at least 4× slower (300 ms or more, a few dozen
            // times a stdio spawn) pages at 3×, not at 1000× (each check's rules run before its answer).
            let mut fast = Vec::new();
            for _ in 0..3 {
                fast.push(fixture_check(run).await?);
            }
            let fast_max = fast.iter().cloned().fold(0.0, f64::max);
            let slow_ms = (fast_max * 4.0).max(300.0) as u64;
            std::fs::write(run.dir().join("fx.json"), fixture_state(slow_ms)).ok()?;
            let slow = fixture_check(run).await?;
            let n = alerts(run).await.iter().filter(|a| a["alert_type"] == "high_latency").count();
            assert!(slow >= 3.0 * fast_max, "the slow check is a spike at 3x: {slow} ms after {fast:?}");
            format!("{n} high_latency after a check at least 4x slower")
        }
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
        "LANGSIGHT_SLO_EVAL_INTERVAL_SECONDS" => {
            // A breached SLO, evaluated at 60 s or 1 s; observed at the anomaly rule's first pass (3 s).
            breached_slo(run).await;
            anomaly_pass(run, "slo-clock", 1000).await;
            let n = alerts(run).await.iter().filter(|a| a["alert_type"] == "slo_breached").count();
            format!("{n} slo_breached by the first anomaly pass")
        }
        "LANGSIGHT_ANOMALY_INTERVAL_SECONDS" => {
            // An anomaly, looked for at 300 s or 1 s; observed at the SLO evaluation's first breach (3 s).
            anomalous(run, &[("early", 1000)]).await;
            breached_slo(run).await;
            wait_alert(run, "slo_breached", |a| a["alert_type"] == "slo_breached").await;
            let n = alerts(run).await.iter().filter(|a| anomaly_of(a, "early")).count();
            format!("{n} anomaly alerts by the first SLO evaluation")
        }
        "LANGSIGHT_ANOMALY_Z_THRESHOLD" => {
            // z = 3.5 (mild; critical, so paged by default) beside z = 90 (loud) in one batch: the pass that
            // pages the loud one saw the mild one; a later pass (another anomaly) shows that pass finished.
            anomalous(run, &[("mild", 135), ("loud", 1000)]).await;
            wait_alert(run, "the loud anomaly", |a| anomaly_of(a, "loud")).await;
            anomaly_pass(run, "after-loud", 1000).await;
            let n = alerts(run).await.iter().filter(|a| anomaly_of(a, "mild")).count();
            format!("{n} alerts for z = 3.5")
        }
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
        "LANGSIGHT_LOGIN_WINDOW_SECONDS" => {
            // Two wrong passwords lock the account when they fall in one window: 1.2 s apart, they do in 300 s
            // and do not in 1 s (the wait is the window the setting sets, not a wait for nothing to happen).
            status(run, "POST", "/api/users/verify", None, &[], &login("wrong-password")).await;
            tokio::time::sleep(Duration::from_millis(1200)).await;
            status(run, "POST", "/api/users/verify", None, &[], &login("wrong-password")).await;
            status(run, "POST", "/api/users/verify", None, &[], &login(ADMIN_PASSWORD)).await
        }
        "LANGSIGHT_LOGIN_LOCK_SECONDS" => {
            // One wrong password locks the account; 1.2 s later the right one is refused (300 s) or not (1 s).
            status(run, "POST", "/api/users/verify", None, &[], &login("wrong-password")).await;
            tokio::time::sleep(Duration::from_millis(1200)).await;
            status(run, "POST", "/api/users/verify", None, &[], &login(ADMIN_PASSWORD)).await
        }
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
        "LANGSIGHT_OSV_URL" => {
            // A scan of the server launched from a published package asks OSV about it: at the closed port
            // of the context, or at the local stand-in.
            let before = receiver().requests("/osv/v1/query").len();
            status(run, "POST", "/api/health/check", Some(ADMIN_KEY), &[], "{}").await;
            let scanned = status(run, "POST", "/api/security/scan", Some(ADMIN_KEY), &[], "{}").await;
            let asked = receiver().requests("/osv/v1/query").len() - before;
            format!("scan {scanned}, queries at the stand-in: {asked}")
        }
        "LANGSIGHT_SECURITY_SCAN_INTERVAL_SECONDS" => {
            // The leader scans from its round's check (every second here), unless the interval is 0. By the
            // third stored check the first round's scan (local, OSV at a closed port) has had its chance.
            let deadline = Instant::now() + Duration::from_secs(20);
            while checks(run, "published").await < 3 {
                assert!(Instant::now() < deadline, "three monitor rounds");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let scans = body(run, "/api/security/scans?server_name=published").await;
            format!("scans stored by the third round: {}", scans.as_array().map_or(0, Vec::len))
        }
        "LANGSIGHT_HEADER_READ_TIMEOUT_SECONDS" => {
            // Half a request head, then the live view's first keepalive (3 s): closed at 1 s, open at 30 s.
            let conn = raw_connection(run, b"GET /api/status HTTP/1.1\r\nHost: localhost\r\n")?;
            keepalive(run).await;
            connection_state(conn)
        }
        "LANGSIGHT_BODY_READ_TIMEOUT_SECONDS" => {
            // A head promising ten bytes of body and two of them: 408 at 1 s, still waiting at 60 s.
            let head = format!(
                "POST /api/traces/spans HTTP/1.1\r\nHost: localhost\r\nX-API-Key: {ADMIN_KEY}\r\n\
                 Content-Type: application/json\r\nContent-Length: 10\r\n\r\n[]"
            );
            let conn = raw_connection(run, head.as_bytes())?;
            keepalive(run).await;
            connection_state(conn)
        }
        "LANGSIGHT_SSE_CLIENT_BUFFER_BYTES" => {
            // One ingest request whose span events are about 120 KB: queued for a live-view client as one
            // message, more than a 64 KiB budget lets it fall behind (the client is told it missed it), well
            // within 4 MiB (the client gets the events). Either frame ends the wait.
            let mut r = test_support::http()
                .get(format!("{}/api/live/events", run.url()))
                .header("X-API-Key", ADMIN_KEY)
                .send()
                .await
                .ok()?;
            let mut got = Vec::new();
            // The first frame (`: connected`): the subscription exists.
            while got.is_empty() {
                got.extend_from_slice(&r.chunk().await.ok()??);
            }
            let sid = test_support::session_id();
            let now = chrono::Utc::now().to_rfc3339();
            let spans: Vec<_> = (0..100)
                .map(|i| {
                    json!({"span_id": format!("big-{i}"), "session_id": sid, "server_name": "s".repeat(250),
                    "tool_name": "t".repeat(500), "agent_name": "a".repeat(250), "started_at": now,
                    "ended_at": now, "status": "success"})
                })
                .collect();
            ingest(run, json!(spans)).await;
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let text = String::from_utf8_lossy(&got);
                if text.contains("event: missed") {
                    break if text.contains("slow_client") { "missed (slow_client)" } else { "missed" }.to_string();
                }
                if text.contains(&sid) {
                    break "delivered".to_string();
                }
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, r.chunk()).await {
                    Ok(Ok(Some(c))) => got.extend_from_slice(&c),
                    other => panic!("neither the events nor a missed notice: {other:?}"),
                }
            }
        }
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
    // While working on a few entries: `SETTINGS_ONLY=VAR,VAR` runs only those, and the test then fails anyway.
    let only = std::env::var("SETTINGS_ONLY").ok();
    for entry in ENTRIES {
        if only.as_ref().is_some_and(|o| !o.split(',').any(|v| v == entry.var)) {
            continue;
        }
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
    assert!(only.is_none(), "SETTINGS_ONLY ran only some entries");
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
