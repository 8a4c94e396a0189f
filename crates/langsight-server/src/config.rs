//! Configuration: defaults → `.langsight.yaml` → `LANGSIGHT_*` environment → command-line flags, parsed once
//! at start-up into [`Config`] and validated there, so a bad setting refuses the start with a message that
//! names the variable and the fix instead of failing on the first request.

use langsight_shared::url::RedisUrl;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Every `LANGSIGHT_*` variable the server, its CLI, the SDK or the dashboard reads. Anything else with the
/// prefix is warned about at start-up — including the original's `LANGSIGHT_ENV` and `LANGSIGHT_PG_POOL_MIN`,
/// which nothing here acts on (no behaviour depends on a "development" switch; PostgreSQL connections open on
/// demand up to `LANGSIGHT_PG_POOL_MAX`), so setting them must not look as if it did something.
pub const KNOWN_ENV: &[&str] = &[
    "LANGSIGHT_API_KEYS",
    "LANGSIGHT_HEADER_READ_TIMEOUT_SECONDS",
    "LANGSIGHT_SSE_CLIENT_BUFFER_BYTES",
    "LANGSIGHT_BODY_READ_TIMEOUT_SECONDS",
    "LANGSIGHT_AUTH_DISABLED",
    "LANGSIGHT_CORS_ORIGINS",
    "LANGSIGHT_DASHBOARD_URL",
    "LANGSIGHT_TRUSTED_PROXY_CIDRS",
    "LANGSIGHT_STORAGE_MODE",
    "LANGSIGHT_SQLITE_PATH",
    "LANGSIGHT_POSTGRES_URL",
    "LANGSIGHT_CLICKHOUSE_URL",
    "LANGSIGHT_CLICKHOUSE_DATABASE",
    "LANGSIGHT_CLICKHOUSE_USERNAME",
    "LANGSIGHT_CLICKHOUSE_PASSWORD",
    "LANGSIGHT_PG_POOL_MAX",
    "LANGSIGHT_REDIS_URL",
    "LANGSIGHT_REDIS_CA_FILE",
    "LANGSIGHT_MONITOR_ENABLED",
    "LANGSIGHT_MONITOR_INTERVAL_SECONDS",
    "LANGSIGHT_SLACK_WEBHOOK",
    "LANGSIGHT_HEALTH_CHECK_INTERVAL_SECONDS",
    "LANGSIGHT_SECURITY_SCAN_INTERVAL_SECONDS",
    "LANGSIGHT_LOG_LEVEL",
    "LANGSIGHT_WORKERS",
    "LANGSIGHT_CONFIG_PATH",
    "LANGSIGHT_TRUSTED_HOSTS",
    "LANGSIGHT_PROXY_SECRET",
    "LANGSIGHT_METRICS_TOKEN",
    "LANGSIGHT_SSE_MAX_CLIENTS",
    "LANGSIGHT_SSE_CLIENT_BUFFER",
    "LANGSIGHT_MAX_CONCURRENT_TRACE_READS",
    "LANGSIGHT_ADMIN_EMAIL",
    "LANGSIGHT_ADMIN_PASSWORD",
    "LANGSIGHT_SECRET_KEY",
    "LANGSIGHT_WEBHOOK_SECRET",
    "LANGSIGHT_REDACT_PAYLOADS",
    "LANGSIGHT_OSV_URL",
    "LANGSIGHT_RETENTION_DAYS",
    "LANGSIGHT_ALLOW_PRIVATE_WEBHOOK_URLS",
    "LANGSIGHT_ALLOW_PRIVATE_MCP_URLS",
    "LANGSIGHT_ALERT_WEBHOOK_URL",
    "LANGSIGHT_SPOOL_DIR",
    "LANGSIGHT_SPOOL_MAX_MB",
    "LANGSIGHT_LOGIN_MAX_FAILURES",
    "LANGSIGHT_LOGIN_WINDOW_SECONDS",
    "LANGSIGHT_LOGIN_LOCK_SECONDS",
    "LANGSIGHT_ALERT_DEDUP_SECONDS",
    "LANGSIGHT_ALERT_CONSECUTIVE_FAILURES",
    "LANGSIGHT_ALERT_LATENCY_SPIKE_MULTIPLIER",
    "LANGSIGHT_ALERT_DELIVERY_ATTEMPTS",
    "LANGSIGHT_ALERT_RETRY_BASE_MS",
    "LANGSIGHT_SLO_EVAL_INTERVAL_SECONDS",
    "LANGSIGHT_ANOMALY_INTERVAL_SECONDS",
    "LANGSIGHT_ANOMALY_Z_THRESHOLD",
    "LANGSIGHT_HOST",
    "LANGSIGHT_PORT",
    "LANGSIGHT_WORKER_ID",
    "LANGSIGHT_WORKER_SECRET",
    "LANGSIGHT_SPAN_WRITER_SOCKET",
    "LANGSIGHT_SSE_REPLAY_MESSAGES",
    "LANGSIGHT_SSE_REPLAY_BYTES",
    "LANGSIGHT_SSE_REPLAY_SECONDS",
    "LANGSIGHT_SSE_KEEPALIVE_SECONDS",
    "LANGSIGHT_REDIS_POOL_MAX",
    "LANGSIGHT_RATE_LIMIT_ENABLED",
    "LANGSIGHT_RATE_LIMIT_DEFAULT",
    "LANGSIGHT_RATE_LIMIT_SPANS",
    "LANGSIGHT_RATE_LIMIT_OTLP",
    "LANGSIGHT_RATE_LIMIT_LOGIN",
    "LANGSIGHT_RATE_LIMIT_ACCEPT_INVITE",
    "LANGSIGHT_RATE_LIMIT_CHANGE_PASSWORD",
    "LANGSIGHT_RATE_LIMIT_INVESTIGATE",
    // Read by the SDK and the dashboard, commonly present in the same environment.
    "LANGSIGHT_URL",
    "LANGSIGHT_API_KEY",
    "LANGSIGHT_API_URL",
    "LANGSIGHT_PROJECT_ID",
    "LANGSIGHT_AGENT_NAME",
    "LANGSIGHT_TEST_MODE",
    "LANGSIGHT_DASHBOARD_KEY",
    "LANGSIGHT_OTEL_COLLECTOR_KEY",
];

/// A setting that stops the server from starting. The message says which setting and how to fix it.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{var}={value:?} is invalid: {reason}")]
    Invalid { var: &'static str, value: String, reason: String },
    #[error("cannot read the config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{0}")]
    Unsupported(String),
}

/// Where the spans and metadata live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageMode {
    Sqlite,
    /// Everything in PostgreSQL (`LANGSIGHT_POSTGRES_URL`).
    Postgres,
    /// PostgreSQL plus ClickHouse (`LANGSIGHT_CLICKHOUSE_URL`) for spans, health history and drift.
    Dual,
}

/// A secret-bearing string whose `Debug` never shows it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("\"***\"")
        }
    }
}

/// An IP network from `LANGSIGHT_TRUSTED_PROXY_CIDRS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix)) };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(self.prefix)) };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V4(ip)) => {
                Cidr { addr: IpAddr::V6(net), prefix: self.prefix }.contains(IpAddr::V6(ip.to_ipv6_mapped()))
            }
            (IpAddr::V4(_), IpAddr::V6(ip)) => ip.to_ipv4_mapped().is_some_and(|v4| self.contains(IpAddr::V4(v4))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub storage_mode: StorageMode,
    pub sqlite_path: PathBuf,
    /// Data older than this is deleted by the monitor leader (`LANGSIGHT_RETENTION_DAYS`, 90; 0 keeps all).
    pub retention_days: u64,
    /// How often the leader applies retention (1 h).
    pub retention_interval: std::time::Duration,
    /// `LANGSIGHT_POSTGRES_URL` (may hold a password: never logged).
    pub postgres_url: Option<Secret>,
    /// Connections per process to PostgreSQL (`LANGSIGHT_PG_POOL_MAX`, 20).
    pub pg_pool_max: usize,
    /// ClickHouse for `dual` mode.
    pub clickhouse: ClickHouseSettings,
    /// Bootstrap keys from `LANGSIGHT_API_KEYS`: global admins.
    pub api_keys: Vec<Secret>,
    /// `LANGSIGHT_AUTH_DISABLED` or yaml `auth_disabled`: open access while no key exists.
    pub auth_disabled: bool,
    pub cors_origins: Vec<String>,
    pub dashboard_url: Option<String>,
    pub trusted_hosts: Vec<String>,
    pub trusted_proxy_cidrs: Vec<Cidr>,
    /// Bearer token for `/metrics`; unset hides the endpoint (404).
    pub metrics_token: Option<Secret>,
    pub workers: usize,
    /// Set in worker processes started by the supervisor (their index); such a worker shares the port.
    pub worker_id: Option<usize>,
    /// Set by the supervisor in its workers when it runs the span writer (SQLite): the Unix socket their
    /// ingest goes to (`langsight_storage::sqlite::forward`).
    pub span_writer_socket: Option<PathBuf>,
    /// `LANGSIGHT_REDIS_URL`, parsed: shared state lives in Redis when set.
    pub redis_url: Option<RedisUrl>,
    pub redis_ca_file: Option<PathBuf>,
    pub redis_pool_max: usize,
    pub rate_limits: RateLimits,
    pub sse: SseSettings,
    /// MCP servers from `.langsight.yaml` (trusted: the operator wrote them).
    pub servers: Vec<MonitoredServer>,
    pub monitor_enabled: bool,
    pub alerts: AlertSettings,
    /// yaml `costs.rules`: call-based tool prices (none: every tool call costs $0.001, as in the original).
    pub cost_rules: Vec<CostRule>,
    pub users: UserSettings,
    /// MCP server URLs submitted through the API may target private networks (never cloud metadata).
    pub allow_private_mcp_urls: bool,
    /// Webhook URLs submitted through the API may target private networks (never cloud metadata).
    pub allow_private_webhook_urls: bool,
    pub monitor_interval: std::time::Duration,
    /// How often the monitor leader rescans each monitored server (`LANGSIGHT_SECURITY_SCAN_INTERVAL_SECONDS`,
    /// 3600 as in the original; `0` = `None`, no scheduled scans): the scorecard grades from the newest scan.
    pub security_scan_interval: Option<std::time::Duration>,
    /// Signs the short-lived stream tokens browsers use for `/api/live/events` (`LANGSIGHT_SECRET_KEY`, else
    /// a random key shared by the workers of one supervisor).
    pub stream_secret: Secret,
    /// `LANGSIGHT_SECRET_KEY` when set: the key that encrypts provider API keys in the stored settings.
    pub secret_key: Option<Secret>,
    /// `LANGSIGHT_REDACT_PAYLOADS=true`: payloads are dropped at ingest whatever the stored settings say.
    pub redact_payloads: bool,
    /// The OSV API the security scan asks about known vulnerabilities (`LANGSIGHT_OSV_URL`).
    pub osv_url: String,
    /// yaml `project_id`: pins every scoped read to one project.
    pub project_id: Option<String>,
    /// The operator's base URL per AI provider (`ANTHROPIC_BASE_URL`, `OPENAI_BASE_URL`, `GEMINI_BASE_URL`,
    /// `OLLAMA_BASE_URL`, or yaml `ai_providers.<name>.base_url`): the only place besides the provider's
    /// default endpoint that a provider key from the environment is sent to.
    pub ai_base_urls: std::collections::BTreeMap<String, String>,
    /// A request head must arrive within this (`LANGSIGHT_HEADER_READ_TIMEOUT_SECONDS`, 30): a half-sent
    /// request is closed instead of holding a connection forever.
    pub header_read_timeout: std::time::Duration,
    /// A request body must arrive within this once the handler reads it (`LANGSIGHT_BODY_READ_TIMEOUT_SECONDS`,
    /// 60; 408 after).
    pub body_read_timeout: std::time::Duration,
    pub max_concurrent_trace_reads: usize,
    /// The log filter (`--log-level`, else `LANGSIGHT_LOG_LEVEL`, else yaml `log_level`, else `info`): one of
    /// [`LOG_LEVELS`], validated here so a typo refuses the start instead of silently logging at `info`.
    pub log_level: String,
    /// Where the configuration file was found, if any.
    pub config_file: Option<PathBuf>,
    /// Variables with our prefix that we do not know: reported as warnings once logging is up.
    pub unknown_env: Vec<String>,
}

/// A limit of `count` requests per `window_ms`, written `N/minute` (also `second`, `hour`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub count: u64,
    pub window_ms: u64,
}

impl Limit {
    pub fn parse(var: &'static str, v: &str) -> Result<Limit, ConfigError> {
        let bad = || ConfigError::Invalid {
            var,
            value: v.into(),
            reason: "expected N/second, N/minute or N/hour (e.g. 200/minute)".into(),
        };
        let (n, unit) = v.trim().split_once('/').ok_or_else(bad)?;
        let count: u64 = n.trim().parse().ok().filter(|n| *n > 0).ok_or_else(bad)?;
        let window_ms = match unit.trim().trim_start_matches('1').trim() {
            "s" | "sec" | "second" => 1_000,
            "m" | "min" | "minute" => 60_000,
            "h" | "hour" => 3_600_000,
            _ => return Err(bad()),
        };
        Ok(Limit { count, window_ms })
    }

    /// The original's wording: `200 per 1 minute`.
    pub fn describe(&self) -> String {
        let unit = match self.window_ms {
            1_000 => "second",
            60_000 => "minute",
            _ => "hour",
        };
        format!("{} per 1 {unit}", self.count)
    }
}

/// Per-route limits (the original's defaults), each overridable by its variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub enabled: bool,
    pub default: Limit,
    pub spans: Limit,
    pub otlp: Limit,
    pub login: Limit,
    pub accept_invite: Limit,
    pub change_password: Limit,
    pub investigate: Limit,
}

impl RateLimits {
    fn from_env(get: &dyn Fn(&str) -> Option<String>) -> Result<RateLimits, ConfigError> {
        let limit = |var: &'static str, default: &str| -> Result<Limit, ConfigError> {
            Limit::parse(var, &get(var).unwrap_or_else(|| default.to_string()))
        };
        Ok(RateLimits {
            enabled: match get("LANGSIGHT_RATE_LIMIT_ENABLED") {
                Some(v) => parse_bool("LANGSIGHT_RATE_LIMIT_ENABLED", &v)?,
                None => true,
            },
            default: limit("LANGSIGHT_RATE_LIMIT_DEFAULT", "200/minute")?,
            spans: limit("LANGSIGHT_RATE_LIMIT_SPANS", "10000/minute")?,
            otlp: limit("LANGSIGHT_RATE_LIMIT_OTLP", "60/minute")?,
            login: limit("LANGSIGHT_RATE_LIMIT_LOGIN", "10/minute")?,
            accept_invite: limit("LANGSIGHT_RATE_LIMIT_ACCEPT_INVITE", "5/minute")?,
            change_password: limit("LANGSIGHT_RATE_LIMIT_CHANGE_PASSWORD", "5/minute")?,
            investigate: limit("LANGSIGHT_RATE_LIMIT_INVESTIGATE", "10/minute")?,
        })
    }
}

/// The live view's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseSettings {
    /// Streams per worker (`LANGSIGHT_SSE_MAX_CLIENTS`).
    pub max_clients: usize,
    /// Messages a client may fall behind before losing the oldest (`LANGSIGHT_SSE_CLIENT_BUFFER`).
    pub client_buffer: usize,
    /// Bytes of events a subscriber may fall behind before it loses the oldest (`LANGSIGHT_SSE_CLIENT_BUFFER_BYTES`,
    /// 4 MiB): bounds what a client that stops reading can pin, whatever the batch sizes.
    pub client_buffer_bytes: usize,
    /// Replay window for `Last-Event-ID`: messages and age.
    pub replay_messages: usize,
    /// Event bytes the in-process replay ring keeps at most (`LANGSIGHT_SSE_REPLAY_BYTES`, 16 MiB).
    pub replay_bytes: usize,
    pub replay_seconds: u64,
    /// Idle time before a `: keepalive` comment.
    pub keepalive_seconds: u64,
}

/// The parts of `.langsight.yaml` this server reads. Unknown keys are ignored, as in the original.
/// Where `dual` mode's ClickHouse is (`LANGSIGHT_CLICKHOUSE_URL`, `_DATABASE`, `_USERNAME`, `_PASSWORD`).
#[derive(Debug, Clone)]
pub struct ClickHouseSettings {
    pub url: String,
    pub database: String,
    pub username: String,
    pub password: Secret,
    /// Where batches wait while ClickHouse is down (`LANGSIGHT_SPOOL_DIR`, `~/.langsight/spool`).
    pub spool_dir: PathBuf,
    /// The spool's size limit; beyond it ingest answers 503 (`LANGSIGHT_SPOOL_MAX_MB`, 1024).
    pub spool_max_bytes: u64,
    /// How often spooled batches are retried.
    pub spool_replay_every: std::time::Duration,
    /// How often the spans accepted since the last flush go to ClickHouse, in one insert (a read of spans
    /// flushes first, so this bounds only when other workers' reads see them).
    pub spool_flush_every: std::time::Duration,
}

/// Users, login and the dashboard proxy.
#[derive(Debug, Clone)]
pub struct UserSettings {
    /// First admin, created at start-up when no user exists (`LANGSIGHT_ADMIN_EMAIL`/`_PASSWORD`).
    pub admin_email: Option<String>,
    pub admin_password: Option<Secret>,
    /// HMAC key the dashboard proxy signs `X-User-Id`/`X-User-Role` with (`LANGSIGHT_PROXY_SECRET`); unset
    /// means proxy identity headers are ignored.
    pub proxy_secret: Option<Secret>,
    /// Failed logins within the window that lock an account, the window, and the lock
    /// (`LANGSIGHT_LOGIN_MAX_FAILURES` 10, `_WINDOW_SECONDS` 300, `_LOCK_SECONDS` 300).
    pub lockout: langsight_storage::LockoutPolicy,
}

/// Passwords nobody should use (the original's list).
pub const WEAK_PASSWORDS: &[&str] = &["admin", "password", "langsight", "changeme", "secret", "123456"];

/// Why a password is refused, if it is.
pub fn password_problem(p: &str) -> Option<&'static str> {
    if p.chars().count() < 12 {
        Some("use at least 12 characters")
    } else if p.chars().count() > 128 {
        Some("use at most 128 characters")
    } else if WEAK_PASSWORDS.iter().any(|w| p.eq_ignore_ascii_case(w)) {
        Some("avoid common passwords")
    } else {
        None
    }
}

/// How alerts are raised, deduplicated and delivered.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// Slack incoming webhook of the operator (`LANGSIGHT_SLACK_WEBHOOK`, yaml `alerts.slack_webhook`): trusted.
    pub slack_webhook: Option<String>,
    /// Generic JSON webhook of the operator (`LANGSIGHT_ALERT_WEBHOOK_URL`, yaml `alerts.webhook_url`): trusted.
    pub webhook_url: Option<String>,
    /// Signs generic-webhook deliveries (`LANGSIGHT_WEBHOOK_SECRET`).
    pub webhook_secret: Option<Secret>,
    /// An alert of one kind and scope fires at most once per this window (`LANGSIGHT_ALERT_DEDUP_SECONDS`, 3600).
    pub dedup_seconds: u64,
    /// Failed checks in a row before `server_down` (`alerts.consecutive_failures`, 3).
    pub consecutive_failures: u32,
    /// `high_latency` when a check takes this many times the server's baseline (`alerts.latency_spike_multiplier`, 3.0).
    pub latency_spike_multiplier: f64,
    /// Delivery attempts per channel before the delivery is recorded as failed (4).
    pub delivery_attempts: u32,
    /// First retry delay; each next one is 4× longer, capped at 60 s (1000 ms).
    pub retry_base: std::time::Duration,
    /// How often the monitor leader evaluates SLOs (`LANGSIGHT_SLO_EVAL_INTERVAL_SECONDS`, 60).
    pub slo_interval: std::time::Duration,
    /// How often the leader looks for tool anomalies (`LANGSIGHT_ANOMALY_INTERVAL_SECONDS`, 300).
    pub anomaly_interval: std::time::Duration,
    /// |z| from which a deviation is an anomaly (`LANGSIGHT_ANOMALY_Z_THRESHOLD`, 2.0; 1 to 5).
    pub anomaly_z_threshold: f64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FileAlerts {
    slack_webhook: Option<String>,
    webhook_url: Option<String>,
    consecutive_failures: Option<u32>,
    latency_spike_multiplier: Option<f64>,
}

/// yaml `costs:`: call-based prices for tools.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FileCosts {
    rules: Vec<CostRule>,
}

/// One yaml `costs.rules` entry: a price per call for the tools matching both globs. The first match wins.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CostRule {
    #[serde(default = "any")]
    pub server: String,
    #[serde(default = "any")]
    pub tool: String,
    #[serde(default = "default_cost_per_call")]
    pub cost_per_call: f64,
}

fn any() -> String {
    "*".into()
}

fn default_cost_per_call() -> f64 {
    0.001
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FileConfig {
    alerts: FileAlerts,
    costs: FileCosts,
    storage: FileStorage,
    servers: Vec<FileServer>,
    auth_disabled: Option<bool>,
    project_id: Option<String>,
    log_level: Option<String>,
    ai_providers: std::collections::BTreeMap<String, FileProvider>,
}

/// One `ai_providers:` entry of `.langsight.yaml`: the operator's endpoint for that provider.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FileProvider {
    base_url: Option<String>,
}

/// One `servers:` entry of `.langsight.yaml` (the original's MCPServer).
#[derive(Debug, Deserialize)]
struct FileServer {
    name: String,
    transport: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    #[serde(default = "default_timeout")]
    timeout_seconds: f64,
    #[serde(default)]
    health_tool: Option<String>,
    #[serde(default)]
    health_tool_args: Option<serde_json::Value>,
    #[serde(default)]
    circuit_breaker: Option<FileBreaker>,
}

fn default_timeout() -> f64 {
    5.0
}

#[derive(Debug, Deserialize)]
struct FileBreaker {
    #[serde(default = "default_threshold")]
    failure_threshold: u32,
    #[serde(default = "default_cooldown")]
    cooldown_seconds: f64,
    #[serde(default = "default_half_open")]
    half_open_max_calls: u32,
}

fn default_threshold() -> u32 {
    5
}
fn default_cooldown() -> f64 {
    60.0
}
fn default_half_open() -> u32 {
    2
}

/// A server the monitor checks, with its breaker settings.
#[derive(Debug, Clone)]
pub struct MonitoredServer {
    pub spec: langsight_monitor::ServerSpec,
    pub breaker: langsight_shared::breaker::BreakerConfig,
}

/// `${VAR}` → the variable's value; a missing variable refuses the start, naming it.
fn expand(value: &str, env: &HashMap<String, String>, server: &str) -> Result<String, ConfigError> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| ConfigError::Unsupported(format!("servers[{server}]: unclosed ${{ in '{value}'")))?;
        let var = &after[..end];
        let v = env.get(var).ok_or_else(|| ConfigError::Unsupported(format!(
            "servers[{server}] uses ${{{var}}}, which is not set in the environment; export {var} or edit the server entry"
        )))?;
        out.push_str(v);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn monitored(servers: Vec<FileServer>, env: &HashMap<String, String>) -> Result<Vec<MonitoredServer>, ConfigError> {
    use langsight_monitor::Transport;
    let mut out = Vec::new();
    for s in servers {
        let name = s.name.clone();
        let x = |v: &str| expand(v, env, &name);
        let need_url = || {
            s.url.as_deref().map(x).transpose()?.ok_or_else(|| {
                ConfigError::Unsupported(format!("servers[{name}]: transport '{}' needs a url", s.transport))
            })
        };
        let transport = match s.transport.as_str() {
            "stdio" => Transport::Stdio {
                command: s.command.as_deref().map(x).transpose()?.ok_or_else(|| {
                    ConfigError::Unsupported(format!("servers[{name}]: transport 'stdio' needs a command"))
                })?,
                args: s.args.iter().map(|a| x(a)).collect::<Result<_, _>>()?,
                env: s.env.iter().map(|(k, v)| Ok((k.clone(), x(v)?))).collect::<Result<_, ConfigError>>()?,
            },
            "streamable_http" => Transport::StreamableHttp {
                url: need_url()?,
                headers: s.headers.iter().map(|(k, v)| Ok((k.clone(), x(v)?))).collect::<Result<_, ConfigError>>()?,
            },
            "sse" => Transport::Sse {
                url: need_url()?,
                headers: s.headers.iter().map(|(k, v)| Ok((k.clone(), x(v)?))).collect::<Result<_, ConfigError>>()?,
            },
            other => {
                return Err(ConfigError::Unsupported(format!(
                    "servers[{name}]: transport '{other}' is not supported. Supported: stdio, sse, streamable_http."
                )))
            }
        };
        let cb = s.circuit_breaker.unwrap_or(FileBreaker {
            failure_threshold: default_threshold(),
            cooldown_seconds: default_cooldown(),
            half_open_max_calls: default_half_open(),
        });
        out.push(MonitoredServer {
            spec: langsight_monitor::ServerSpec {
                name: s.name,
                transport,
                timeout: std::time::Duration::from_secs_f64(s.timeout_seconds.clamp(0.1, 600.0)),
                health_tool: s.health_tool,
                health_tool_args: s.health_tool_args.and_then(|v| v.as_object().cloned()).unwrap_or_default(),
            },
            breaker: langsight_shared::breaker::BreakerConfig {
                failure_threshold: cb.failure_threshold.max(1),
                cooldown_ms: (cb.cooldown_seconds.max(0.1) * 1000.0) as u64,
                half_open_max_calls: cb.half_open_max_calls.max(1),
            },
        });
    }
    Ok(out)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FileStorage {
    mode: Option<String>,
    sqlite_path: Option<String>,
    postgres_url: Option<String>,
    pg_pool_max: Option<usize>,
    clickhouse_url: Option<String>,
    clickhouse_database: Option<String>,
    clickhouse_username: Option<String>,
    clickhouse_password: Option<String>,
}

/// Command-line values; `None` means "not given".
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub config: Option<PathBuf>,
    pub workers: Option<usize>,
    pub log_level: Option<String>,
    /// Read no configuration file at all (tests and embedding: only the environment given counts).
    pub skip_config_file: bool,
}

fn home_dir(env: &HashMap<String, String>) -> PathBuf {
    env.get("HOME").filter(|h| !h.is_empty()).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."))
}

fn expand_home(p: &str, env: &HashMap<String, String>) -> PathBuf {
    match p.strip_prefix("~/") {
        Some(rest) => home_dir(env).join(rest),
        None => PathBuf::from(p),
    }
}

/// The log levels a setting may name: the tracing levels, plus the original's (Python) `warning` and
/// `critical`, which map to `warn` and `error` so its configuration keeps working.
pub const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "warning", "error", "critical", "off"];

/// A log level from the flag, the variable or the yaml key (`var` names whichever it came from).
fn parse_log_level(var: &'static str, v: &str) -> Result<String, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "warning" => Ok("warn".into()),
        "critical" => Ok("error".into()),
        l if LOG_LEVELS.contains(&l) => Ok(l.to_string()),
        _ => Err(ConfigError::Invalid {
            var,
            value: v.into(),
            reason: "expected one of trace, debug, info, warn, error, off".into(),
        }),
    }
}

fn parse_bool(var: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(ConfigError::Invalid { var, value: v.into(), reason: "expected true or false".into() }),
    }
}

fn parse_num<T: std::str::FromStr>(var: &'static str, v: &str, what: &str) -> Result<T, ConfigError> {
    v.trim().parse().map_err(|_| ConfigError::Invalid { var, value: v.into(), reason: format!("expected {what}") })
}

fn comma_list(v: &str) -> Vec<String> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

pub fn parse_cidrs(v: &str) -> Result<Vec<Cidr>, ConfigError> {
    let var = "LANGSIGHT_TRUSTED_PROXY_CIDRS";
    let mut out = Vec::new();
    for item in comma_list(v) {
        let (addr, prefix) = match item.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (item.as_str(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| ConfigError::Invalid {
            var,
            value: v.into(),
            reason: format!("'{item}' is not an IP network; write e.g. 127.0.0.1/32,::1/128"),
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = match prefix {
            Some(p) => p.parse().ok().filter(|p| *p <= max).ok_or_else(|| ConfigError::Invalid {
                var,
                value: v.into(),
                reason: format!("'{item}' has an invalid prefix length (0..={max})"),
            })?,
            None => max,
        };
        if prefix == 0 {
            return Err(ConfigError::Invalid {
                var,
                value: v.into(),
                reason: format!(
                    "{item} trusts the entire internet. Specify the actual proxy IP or subnet (e.g. 172.16.0.0/12 for Docker)."
                ),
            });
        }
        out.push(Cidr { addr, prefix });
    }
    Ok(out)
}

impl Config {
    /// Builds the configuration from the process environment and flags.
    pub fn load(flags: Flags) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        Config::from_sources(flags, &env)
    }

    /// Builds the configuration from explicit sources (tests pass their own environment).
    pub fn from_sources(flags: Flags, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let get = |k: &str| env.get(k).map(String::as_str).filter(|v| !v.trim().is_empty());
        let config_path = flags.config.clone().or_else(|| get("LANGSIGHT_CONFIG_PATH").map(PathBuf::from));
        let (mut file, config_file) = if flags.skip_config_file {
            (FileConfig::default(), None)
        } else {
            load_file(config_path.as_deref(), env)?
        };
        let mut file_servers = std::mem::take(&mut file.servers);

        let mut storage_mode = file.storage.mode.clone().unwrap_or_else(|| "sqlite".into());
        if let Some(m) = get("LANGSIGHT_STORAGE_MODE") {
            storage_mode = m.trim().to_ascii_lowercase();
        }
        let storage_mode = match storage_mode.as_str() {
            "sqlite" => StorageMode::Sqlite,
            "postgres" => StorageMode::Postgres,
            "dual" => StorageMode::Dual,
            other => {
                return Err(ConfigError::Invalid {
                    var: "LANGSIGHT_STORAGE_MODE",
                    value: other.into(),
                    reason: "expected one of: sqlite, postgres, dual".into(),
                })
            }
        };
        let postgres_url = get("LANGSIGHT_POSTGRES_URL")
            .map(String::from)
            .or_else(|| file.storage.postgres_url.clone())
            .filter(|u| !u.trim().is_empty())
            .map(Secret);
        if storage_mode != StorageMode::Sqlite && postgres_url.is_none() {
            return Err(ConfigError::Unsupported(
                "LANGSIGHT_STORAGE_MODE=postgres or dual needs LANGSIGHT_POSTGRES_URL (or storage.postgres_url), e.g. \
                 postgres://langsight:secret@localhost:5432/langsight"
                    .into(),
            ));
        }
        let clickhouse = ClickHouseSettings {
            url: get("LANGSIGHT_CLICKHOUSE_URL")
                .map(String::from)
                .or_else(|| file.storage.clickhouse_url.clone())
                .unwrap_or_else(|| "http://localhost:8123".into()),
            database: get("LANGSIGHT_CLICKHOUSE_DATABASE")
                .map(String::from)
                .or_else(|| file.storage.clickhouse_database.clone())
                .unwrap_or_else(|| "langsight".into()),
            username: get("LANGSIGHT_CLICKHOUSE_USERNAME")
                .map(String::from)
                .or_else(|| file.storage.clickhouse_username.clone())
                .unwrap_or_else(|| "default".into()),
            password: Secret(
                get("LANGSIGHT_CLICKHOUSE_PASSWORD")
                    .map(String::from)
                    .or_else(|| file.storage.clickhouse_password.clone())
                    .unwrap_or_default(),
            ),
            spool_dir: get("LANGSIGHT_SPOOL_DIR")
                .map(|p| expand_home(p, env))
                .unwrap_or_else(|| home_dir(env).join(".langsight").join("spool")),
            spool_max_bytes: match get("LANGSIGHT_SPOOL_MAX_MB") {
                Some(v) => parse_num::<u64>("LANGSIGHT_SPOOL_MAX_MB", v, "a whole number of MiB")?.max(1),
                None => 1024,
            } * 1024
                * 1024,
            spool_replay_every: std::time::Duration::from_secs(2),
            spool_flush_every: std::time::Duration::from_millis(250),
        };
        let retention_days = match get("LANGSIGHT_RETENTION_DAYS") {
            Some(v) => parse_num::<u64>("LANGSIGHT_RETENTION_DAYS", v, "a whole number of days (0 keeps everything)")?,
            None => 90,
        };
        let pg_pool_max = match get("LANGSIGHT_PG_POOL_MAX") {
            Some(v) => parse_num::<usize>("LANGSIGHT_PG_POOL_MAX", v, "a whole number ≥ 1")?.max(1),
            None => file.storage.pg_pool_max.unwrap_or(20).max(1),
        };
        let sqlite_path = get("LANGSIGHT_SQLITE_PATH")
            .map(|p| expand_home(p, env))
            .or_else(|| file.storage.sqlite_path.as_deref().map(|p| expand_home(p, env)))
            .unwrap_or_else(|| home_dir(env).join(".langsight").join("langsight.db"));

        let workers = match flags.workers {
            Some(w) => w,
            None => get("LANGSIGHT_WORKERS")
                .map(|v| parse_num("LANGSIGHT_WORKERS", v, "a whole number ≥ 1"))
                .transpose()?
                .unwrap_or(1),
        };
        if workers == 0 {
            return Err(ConfigError::Invalid {
                var: "LANGSIGHT_WORKERS",
                value: "0".into(),
                reason: "at least one worker is needed".into(),
            });
        }
        let redis_url = get("LANGSIGHT_REDIS_URL")
            .map(|u| RedisUrl::parse(u).map_err(|e| ConfigError::Unsupported(e.to_string())))
            .transpose()?;
        if workers > 1 && redis_url.is_none() {
            return Err(ConfigError::Unsupported(format!(
                "LANGSIGHT_WORKERS={workers} requires LANGSIGHT_REDIS_URL to be set: without Redis each worker would \
                 keep its own rate limits, events and circuit breakers. Set LANGSIGHT_REDIS_URL=redis://host:6379, \
                 or keep LANGSIGHT_WORKERS=1 for a single instance."
            )));
        }
        let worker_id = get("LANGSIGHT_WORKER_ID")
            .map(|v| parse_num::<usize>("LANGSIGHT_WORKER_ID", v, "a worker index"))
            .transpose()?;
        let redis_ca_file = get("LANGSIGHT_REDIS_CA_FILE").map(PathBuf::from);
        if let Some(ca) = &redis_ca_file {
            if !ca.is_file() {
                return Err(ConfigError::Invalid {
                    var: "LANGSIGHT_REDIS_CA_FILE",
                    value: ca.display().to_string(),
                    reason: "no such file; give the PEM file of the CA that signed the Redis certificate".into(),
                });
            }
        }
        let redis_pool_max = get("LANGSIGHT_REDIS_POOL_MAX")
            .map(|v| parse_num::<usize>("LANGSIGHT_REDIS_POOL_MAX", v, "a whole number ≥ 2"))
            .transpose()?
            .unwrap_or(20);
        if redis_pool_max < 2 {
            return Err(ConfigError::Invalid {
                var: "LANGSIGHT_REDIS_POOL_MAX",
                value: redis_pool_max.to_string(),
                reason: "a worker needs at least 2 connections (commands and the event subscription)".into(),
            });
        }
        let rate_limits = RateLimits::from_env(&|k: &str| get(k).map(String::from))?;
        let positive = |var: &'static str, default: u64| -> Result<u64, ConfigError> {
            let v = get(var).map(|v| parse_num::<u64>(var, v, "a whole number ≥ 1")).transpose()?.unwrap_or(default);
            if v == 0 {
                return Err(ConfigError::Invalid { var, value: "0".into(), reason: "must be at least 1".into() });
            }
            Ok(v)
        };
        let sse = SseSettings {
            max_clients: positive("LANGSIGHT_SSE_MAX_CLIENTS", 1000)? as usize,
            client_buffer: positive("LANGSIGHT_SSE_CLIENT_BUFFER", 200)? as usize,
            client_buffer_bytes: positive("LANGSIGHT_SSE_CLIENT_BUFFER_BYTES", 4 << 20)? as usize,
            replay_messages: positive("LANGSIGHT_SSE_REPLAY_MESSAGES", 10_000)? as usize,
            replay_bytes: positive("LANGSIGHT_SSE_REPLAY_BYTES", 16 << 20)? as usize,
            replay_seconds: positive("LANGSIGHT_SSE_REPLAY_SECONDS", 300)?,
            keepalive_seconds: positive("LANGSIGHT_SSE_KEEPALIVE_SECONDS", 15)?,
        };
        let servers = monitored(std::mem::take(&mut file_servers), env)?;
        let monitor_enabled = match get("LANGSIGHT_MONITOR_ENABLED") {
            Some(v) => parse_bool("LANGSIGHT_MONITOR_ENABLED", v)?,
            None => true,
        };
        let monitor_interval = std::time::Duration::from_secs(positive("LANGSIGHT_MONITOR_INTERVAL_SECONDS", 60)?);
        let security_scan_interval = get("LANGSIGHT_SECURITY_SCAN_INTERVAL_SECONDS")
            .map(|v| {
                parse_num::<u64>(
                    "LANGSIGHT_SECURITY_SCAN_INTERVAL_SECONDS",
                    v,
                    "a whole number of seconds (0 disables)",
                )
            })
            .transpose()?
            .map_or(Some(3600), |s| (s > 0).then_some(s))
            .map(std::time::Duration::from_secs);
        let nonempty = |v: Option<&str>| v.map(str::trim).filter(|v| !v.is_empty()).map(String::from);
        let multiplier = match get("LANGSIGHT_ALERT_LATENCY_SPIKE_MULTIPLIER") {
            Some(v) => parse_num::<f64>("LANGSIGHT_ALERT_LATENCY_SPIKE_MULTIPLIER", v, "a number above 1 (e.g. 3.0)")?,
            None => file.alerts.latency_spike_multiplier.unwrap_or(3.0),
        };
        if !(multiplier > 1.0 && multiplier.is_finite()) {
            return Err(ConfigError::Invalid {
                var: "LANGSIGHT_ALERT_LATENCY_SPIKE_MULTIPLIER",
                value: multiplier.to_string(),
                reason: "must be a number above 1 (alerts.latency_spike_multiplier in the yaml)".into(),
            });
        }
        let alerts = AlertSettings {
            slack_webhook: nonempty(get("LANGSIGHT_SLACK_WEBHOOK")).or(nonempty(file.alerts.slack_webhook.as_deref())),
            webhook_url: nonempty(get("LANGSIGHT_ALERT_WEBHOOK_URL")).or(nonempty(file.alerts.webhook_url.as_deref())),
            webhook_secret: nonempty(get("LANGSIGHT_WEBHOOK_SECRET")).map(Secret),
            dedup_seconds: positive("LANGSIGHT_ALERT_DEDUP_SECONDS", 3600)?,
            consecutive_failures: match get("LANGSIGHT_ALERT_CONSECUTIVE_FAILURES") {
                Some(_) => positive("LANGSIGHT_ALERT_CONSECUTIVE_FAILURES", 3)? as u32,
                None => file.alerts.consecutive_failures.unwrap_or(3).max(1),
            },
            latency_spike_multiplier: multiplier,
            delivery_attempts: positive("LANGSIGHT_ALERT_DELIVERY_ATTEMPTS", 4)?.min(20) as u32,
            retry_base: std::time::Duration::from_millis(positive("LANGSIGHT_ALERT_RETRY_BASE_MS", 1000)?),
            slo_interval: std::time::Duration::from_secs(positive("LANGSIGHT_SLO_EVAL_INTERVAL_SECONDS", 60)?),
            anomaly_interval: std::time::Duration::from_secs(positive("LANGSIGHT_ANOMALY_INTERVAL_SECONDS", 300)?),
            anomaly_z_threshold: match get("LANGSIGHT_ANOMALY_Z_THRESHOLD") {
                Some(v) => {
                    let z = parse_num::<f64>("LANGSIGHT_ANOMALY_Z_THRESHOLD", v, "a number from 1 to 5")?;
                    if !(1.0..=5.0).contains(&z) {
                        return Err(ConfigError::Invalid {
                            var: "LANGSIGHT_ANOMALY_Z_THRESHOLD",
                            value: v.into(),
                            reason: "must be from 1 to 5".into(),
                        });
                    }
                    z
                }
                None => 2.0,
            },
        };
        let admin_password = nonempty(get("LANGSIGHT_ADMIN_PASSWORD"));
        if let Some(problem) = admin_password.as_deref().and_then(password_problem) {
            return Err(ConfigError::Unsupported(format!(
                "LANGSIGHT_ADMIN_PASSWORD is too weak ({problem}). Use at least 12 characters and avoid common \
                 passwords, then start again"
            )));
        }
        let secs = |var: &'static str, default: u64| positive(var, default).map(|s| s as i64 * 1_000_000);
        let users = UserSettings {
            admin_email: nonempty(get("LANGSIGHT_ADMIN_EMAIL")).map(|e| e.to_lowercase()),
            admin_password: admin_password.map(Secret),
            proxy_secret: nonempty(get("LANGSIGHT_PROXY_SECRET")).map(Secret),
            lockout: langsight_storage::LockoutPolicy {
                max_failures: positive("LANGSIGHT_LOGIN_MAX_FAILURES", 10)? as u32,
                window_micros: secs("LANGSIGHT_LOGIN_WINDOW_SECONDS", 300)?,
                lock_micros: secs("LANGSIGHT_LOGIN_LOCK_SECONDS", 300)?,
            },
        };
        let flag = |var: &'static str| get(var).map(|v| parse_bool(var, v)).transpose().map(|v| v.unwrap_or(false));
        let allow_private_mcp_urls = flag("LANGSIGHT_ALLOW_PRIVATE_MCP_URLS")?;
        let allow_private_webhook_urls = flag("LANGSIGHT_ALLOW_PRIVATE_WEBHOOK_URLS")?;
        // Encrypts provider keys in the stored settings; unset keeps them in plain text (said at start-up).
        let secret_key = get("LANGSIGHT_SECRET_KEY").filter(|s| !s.trim().is_empty()).map(|s| Secret(s.to_string()));
        let redact_payloads = flag("LANGSIGHT_REDACT_PAYLOADS")?;
        let osv_url =
            get("LANGSIGHT_OSV_URL").filter(|s| !s.trim().is_empty()).unwrap_or("https://api.osv.dev").to_string();
        let stream_secret = Secret(
            get("LANGSIGHT_SECRET_KEY")
                .or_else(|| get("LANGSIGHT_WORKER_SECRET"))
                .map(String::from)
                .unwrap_or_else(|| langsight_core::keys::generate_api_key().hash),
        );

        let auth_disabled = match get("LANGSIGHT_AUTH_DISABLED") {
            Some(v) => parse_bool("LANGSIGHT_AUTH_DISABLED", v)?,
            None => false,
        } || file.auth_disabled.unwrap_or(false);

        let port = match flags.port {
            Some(p) => p,
            None => get("LANGSIGHT_PORT")
                .map(|v| parse_num("LANGSIGHT_PORT", v, "a port number 0..65535"))
                .transpose()?
                .unwrap_or(8000),
        };
        let host = flags
            .host
            .clone()
            .or_else(|| get("LANGSIGHT_HOST").map(String::from))
            .unwrap_or_else(|| "127.0.0.1".into());

        let dashboard_url = get("LANGSIGHT_DASHBOARD_URL").map(|s| s.trim().trim_end_matches('/').to_string());
        let max_reads = get("LANGSIGHT_MAX_CONCURRENT_TRACE_READS")
            .map(|v| parse_num::<usize>("LANGSIGHT_MAX_CONCURRENT_TRACE_READS", v, "a whole number ≥ 1"))
            .transpose()?
            .unwrap_or(5);
        if max_reads == 0 {
            return Err(ConfigError::Invalid {
                var: "LANGSIGHT_MAX_CONCURRENT_TRACE_READS",
                value: "0".into(),
                reason: "at least 1 is needed".into(),
            });
        }

        let header_read_timeout =
            std::time::Duration::from_secs(positive("LANGSIGHT_HEADER_READ_TIMEOUT_SECONDS", 30)?);
        let body_read_timeout = std::time::Duration::from_secs(positive("LANGSIGHT_BODY_READ_TIMEOUT_SECONDS", 60)?);
        let mut ai_base_urls = std::collections::BTreeMap::new();
        for (provider, var) in [
            ("anthropic", "ANTHROPIC_BASE_URL"),
            ("openai", "OPENAI_BASE_URL"),
            ("gemini", "GEMINI_BASE_URL"),
            ("ollama", "OLLAMA_BASE_URL"),
        ] {
            let from_file = file.ai_providers.get(provider).and_then(|p| p.base_url.clone());
            if let Some(url) =
                get(var).map(String::from).or(from_file).map(|u| u.trim().trim_end_matches('/').to_string())
            {
                if !reqwest::Url::parse(&url).is_ok_and(|u| u.scheme() == "http" || u.scheme() == "https") {
                    return Err(ConfigError::Invalid {
                        var,
                        value: url,
                        reason: "must be an http:// or https:// URL".into(),
                    });
                }
                ai_base_urls.insert(provider.to_string(), url);
            }
        }

        let log_level = match (&flags.log_level, get("LANGSIGHT_LOG_LEVEL"), &file.log_level) {
            (Some(v), _, _) => parse_log_level("--log-level", v)?,
            (None, Some(v), _) => parse_log_level("LANGSIGHT_LOG_LEVEL", v)?,
            (None, None, Some(v)) => parse_log_level("log_level", v)?,
            (None, None, None) => "info".to_string(),
        };

        let mut unknown_env: Vec<String> =
            env.keys().filter(|k| k.starts_with("LANGSIGHT_") && !KNOWN_ENV.contains(&k.as_str())).cloned().collect();
        unknown_env.sort();

        Ok(Config {
            host,
            port,
            storage_mode,
            postgres_url,
            pg_pool_max,
            clickhouse,
            retention_days,
            retention_interval: std::time::Duration::from_secs(3600),
            sqlite_path,
            api_keys: get("LANGSIGHT_API_KEYS").map(comma_list).unwrap_or_default().into_iter().map(Secret).collect(),
            auth_disabled,
            cors_origins: comma_list(get("LANGSIGHT_CORS_ORIGINS").unwrap_or("http://localhost:3003")),
            dashboard_url,
            trusted_hosts: comma_list(get("LANGSIGHT_TRUSTED_HOSTS").unwrap_or("api")),
            trusted_proxy_cidrs: parse_cidrs(get("LANGSIGHT_TRUSTED_PROXY_CIDRS").unwrap_or("127.0.0.1/32,::1/128"))?,
            metrics_token: get("LANGSIGHT_METRICS_TOKEN").map(|t| Secret(t.trim().to_string())),
            workers,
            worker_id,
            span_writer_socket: get("LANGSIGHT_SPAN_WRITER_SOCKET").filter(|_| worker_id.is_some()).map(PathBuf::from),
            redis_url,
            redis_ca_file,
            redis_pool_max,
            rate_limits,
            sse,
            servers,
            monitor_enabled,
            alerts,
            cost_rules: file.costs.rules,
            users,
            allow_private_mcp_urls,
            allow_private_webhook_urls,
            monitor_interval,
            security_scan_interval,
            stream_secret,
            secret_key,
            redact_payloads,
            osv_url,
            project_id: file.project_id.filter(|p| !p.trim().is_empty()),
            ai_base_urls,
            header_read_timeout,
            body_read_timeout,
            max_concurrent_trace_reads: max_reads,
            log_level,
            config_file,
            unknown_env,
        })
    }

    /// A configuration for tests and embedding: defaults, a given database file, no environment.
    pub fn for_database(path: &Path) -> Config {
        let mut env = HashMap::new();
        env.insert("LANGSIGHT_SQLITE_PATH".to_string(), path.display().to_string());
        let mut c = Config::from_sources(Flags { skip_config_file: true, ..Flags::default() }, &env)
            .unwrap_or_else(|e| panic!("default configuration must be valid: {e}"));
        c.port = 0;
        c
    }
}

/// Reads the yaml file: the given path (which must exist when given explicitly),
/// else the first of `./.langsight.yaml`, `./.langsight.yml`, `~/.langsight.yaml`, `~/.langsight.yml`.
fn load_file(
    explicit: Option<&Path>,
    env: &HashMap<String, String>,
) -> Result<(FileConfig, Option<PathBuf>), ConfigError> {
    let candidates: Vec<PathBuf> = match explicit {
        Some(p) => {
            if !p.exists() {
                return Err(ConfigError::File {
                    path: p.to_path_buf(),
                    reason: "no such file (given by --config or LANGSIGHT_CONFIG_PATH)".into(),
                });
            }
            vec![p.to_path_buf()]
        }
        None => {
            let home = home_dir(env);
            vec![
                PathBuf::from(".langsight.yaml"),
                PathBuf::from(".langsight.yml"),
                home.join(".langsight.yaml"),
                home.join(".langsight.yml"),
            ]
        }
    };
    for path in candidates {
        if !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ConfigError::File { path: path.clone(), reason: e.to_string() })?;
        if text.trim().is_empty() {
            return Ok((FileConfig::default(), Some(path)));
        }
        let file: FileConfig = serde_yaml::from_str(&text)
            .map_err(|e| ConfigError::File { path: path.clone(), reason: format!("invalid YAML: {e}") })?;
        return Ok((file, Some(path)));
    }
    Ok((FileConfig::default(), None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        let mut m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        m.insert("HOME".into(), "/home/test".into());
        m
    }

    fn no_file() -> Flags {
        Flags { skip_config_file: true, ..Flags::default() }
    }

    #[test]
    fn defaults_need_no_configuration() {
        let c = Config::from_sources(no_file(), &env(&[])).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 8000));
        assert_eq!(c.sqlite_path, PathBuf::from("/home/test/.langsight/langsight.db"));
        assert!(c.api_keys.is_empty() && !c.auth_disabled);
    }

    #[test]
    fn flags_beat_env_beat_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.yaml");
        std::fs::write(&file, "storage:\n  sqlite_path: /from/file.db\nauth_disabled: true\nunknown: 1\n").unwrap();
        let flags = Flags { config: Some(file.clone()), port: Some(9001), ..Flags::default() };
        let c = Config::from_sources(flags.clone(), &env(&[("LANGSIGHT_PORT", "9000")])).unwrap();
        assert_eq!(c.port, 9001);
        assert_eq!(c.sqlite_path, PathBuf::from("/from/file.db"));
        assert!(c.auth_disabled);
        let c = Config::from_sources(flags, &env(&[("LANGSIGHT_SQLITE_PATH", "~/x.db")])).unwrap();
        assert_eq!(c.sqlite_path, PathBuf::from("/home/test/x.db"));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = Config::from_sources(no_file(), &env(&[("LANGSIGHT_AUTH_DISABLED", "maybe")])).unwrap_err();
        assert!(e.to_string().contains("LANGSIGHT_AUTH_DISABLED"), "{e}");
        let e = Config::from_sources(no_file(), &env(&[("LANGSIGHT_TRUSTED_PROXY_CIDRS", "0.0.0.0/0")])).unwrap_err();
        assert!(e.to_string().contains("trusts the entire internet"), "{e}");
        let e = Config::from_sources(no_file(), &env(&[("LANGSIGHT_WORKERS", "4")])).unwrap_err();
        assert!(e.to_string().contains("LANGSIGHT_REDIS_URL"), "{e}");
        let e = Config::from_sources(no_file(), &env(&[("LANGSIGHT_REDIS_URL", "localhost:6379")])).unwrap_err();
        assert!(e.to_string().contains("redis+sentinel://"), "{e}");
        let e = Config::from_sources(no_file(), &env(&[("LANGSIGHT_RATE_LIMIT_SPANS", "lots")])).unwrap_err();
        assert!(e.to_string().contains("LANGSIGHT_RATE_LIMIT_SPANS"), "{e}");
        let e = Config::from_sources(Flags { config: Some("/no/such.yaml".into()), ..Flags::default() }, &env(&[]))
            .unwrap_err();
        assert!(e.to_string().contains("/no/such.yaml"), "{e}");
    }

    #[test]
    fn unknown_prefixed_variables_are_reported_and_secrets_hidden() {
        let c =
            Config::from_sources(no_file(), &env(&[("LANGSIGHT_API_KEY5", "x"), ("LANGSIGHT_API_KEYS", "k1, k2,")]))
                .unwrap();
        assert_eq!(c.unknown_env, vec!["LANGSIGHT_API_KEY5".to_string()]);
        assert_eq!(c.api_keys.len(), 2);
        assert!(!format!("{c:?}").contains("k1"));
    }

    #[test]
    fn log_level_follows_flag_then_env_then_file_then_default() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.yaml");
        std::fs::write(&file, "log_level: WARNING\n").unwrap();
        let with_file = |flag: Option<&str>| Flags {
            config: Some(file.clone()),
            log_level: flag.map(String::from),
            ..Flags::default()
        };
        assert_eq!(Config::from_sources(no_file(), &env(&[])).unwrap().log_level, "info");
        assert_eq!(Config::from_sources(with_file(None), &env(&[])).unwrap().log_level, "warn");
        let debug_env = env(&[("LANGSIGHT_LOG_LEVEL", "debug")]);
        assert_eq!(Config::from_sources(with_file(None), &debug_env).unwrap().log_level, "debug");
        assert_eq!(Config::from_sources(with_file(Some("error")), &debug_env).unwrap().log_level, "error");
        let e = Config::from_sources(no_file(), &env(&[("LANGSIGHT_LOG_LEVEL", "verbose")])).unwrap_err();
        assert!(e.to_string().contains("LANGSIGHT_LOG_LEVEL"), "{e}");
        std::fs::write(&file, "log_level: loud\n").unwrap();
        let e = Config::from_sources(with_file(None), &env(&[])).unwrap_err();
        assert!(e.to_string().starts_with("log_level=\"loud\""), "{e}");
    }

    #[test]
    fn settings_nothing_acts_on_are_reported_as_unknown() {
        let c =
            Config::from_sources(no_file(), &env(&[("LANGSIGHT_ENV", "production"), ("LANGSIGHT_PG_POOL_MIN", "2")]))
                .unwrap();
        assert_eq!(c.unknown_env, vec!["LANGSIGHT_ENV".to_string(), "LANGSIGHT_PG_POOL_MIN".to_string()]);
    }

    #[test]
    fn rate_limits_parse() {
        let c = Config::from_sources(no_file(), &env(&[("LANGSIGHT_RATE_LIMIT_DEFAULT", "50/second")])).unwrap();
        assert_eq!(c.rate_limits.default, Limit { count: 50, window_ms: 1000 });
        assert_eq!(c.rate_limits.spans.describe(), "10000 per 1 minute");
        assert_eq!(Limit::parse("X", "5/1 hour").unwrap().window_ms, 3_600_000);
    }

    #[test]
    fn cidrs_match_addresses() {
        let c = parse_cidrs("10.0.0.0/8, ::1").unwrap();
        assert!(c[0].contains("10.2.3.4".parse().unwrap()));
        assert!(!c[0].contains("11.0.0.1".parse().unwrap()));
        assert!(c[1].contains("::1".parse().unwrap()));
    }
}
