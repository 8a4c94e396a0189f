//! One health check.

use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, PaginatedRequestParams, ProtocolVersion,
};
use rmcp::transport::{ConfigureCommandExt, StreamableHttpClientTransport, TokioChildProcess};
use rmcp::ServiceExt;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Pages of `tools/list` followed at most (a server answering cursors forever must not loop us).
const MAX_PAGES: usize = 50;

#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    /// A child process speaking MCP on stdin/stdout.
    Stdio { command: String, args: Vec<String>, env: Vec<(String, String)> },
    /// Streamable HTTP at `url`, with extra headers (e.g. authorization).
    StreamableHttp { url: String, headers: Vec<(String, String)> },
    /// The legacy HTTP+SSE transport (a GET event stream plus POSTs to the endpoint it announces).
    Sse { url: String, headers: Vec<(String, String)> },
}

#[derive(Debug, Clone)]
pub struct ServerSpec {
    pub name: String,
    pub transport: Transport,
    /// Bounds the whole check: start, handshake, tool listing and the health tool.
    pub timeout: Duration,
    pub health_tool: Option<String>,
    pub health_tool_args: Map<String, Value>,
}

/// Where an HTTP check may connect: the addresses the outbound URL policy judged for the URL's host name.
/// The check's HTTP client connects only to these and never looks the name up itself, so a DNS answer that
/// changes between the policy check and the connection (DNS rebinding: public when judged, 169.254.169.254 or
/// 127.0.0.1 when connected) cannot send the check anywhere the policy did not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    /// The URL's host exactly as the HTTP client will look it up (`url::Url::host_str`).
    pub host: String,
    /// The judged addresses; the URL's port is used whatever port these carry.
    pub addrs: Vec<SocketAddr>,
}

impl Pinned {
    /// An HTTP client builder that resolves `url`'s host to the pinned addresses only. Refuses a URL whose host
    /// is not the pinned one: the client would look that name up afresh, and the pin would protect nothing.
    pub(crate) fn apply(&self, url: &str, builder: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid url '{url}': {e}"))?;
        let host = parsed.host_str().unwrap_or_default();
        if !host.eq_ignore_ascii_case(&self.host) {
            return Err(format!(
                "internal error: the vetted addresses are for '{}', the URL's host is '{host}'; not connecting",
                self.host
            ));
        }
        if self.addrs.is_empty() {
            return Err(format!("no vetted address for '{host}'; not connecting"));
        }
        Ok(builder.resolve_to_addrs(host, &self.addrs))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Up,
    Degraded,
    Down,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Up => "up",
            Status::Degraded => "degraded",
            Status::Down => "down",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolInfo {
    pub name: String,
    pub description: Option<String>,
    pub input_schema: Value,
}

#[derive(Debug, Clone)]
pub struct CheckResult {
    pub server_name: String,
    pub status: Status,
    /// Connect + handshake time (the original's definition); `None` when the check failed.
    pub latency_ms: Option<f64>,
    pub tools: Vec<ToolInfo>,
    /// SHA-256 over the tools' names and schemas, sorted by name; `None` when the check failed.
    pub schema_hash: Option<String>,
    pub server_version: Option<String>,
    pub protocol_version: Option<String>,
    pub error: Option<String>,
}

impl CheckResult {
    fn down(spec: &ServerSpec, error: String) -> CheckResult {
        CheckResult {
            server_name: spec.name.clone(),
            status: Status::Down,
            latency_ms: None,
            tools: Vec::new(),
            schema_hash: None,
            server_version: None,
            protocol_version: None,
            error: Some(error),
        }
    }
}

/// A stable hash of the tool surface: names, descriptions and input schemas, sorted by name (key order inside
/// schemas is canonical because serde_json maps are sorted); 32 hex characters like the original's.
pub fn schema_hash(tools: &[ToolInfo]) -> String {
    let mut sorted: Vec<&ToolInfo> = tools.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut h = Sha256::new();
    for t in sorted {
        h.update(t.name.as_bytes());
        h.update([0]);
        h.update(t.description.as_deref().unwrap_or("\u{0}null").as_bytes());
        h.update([0]);
        h.update(t.input_schema.to_string().as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())[..32].to_string()
}

enum Failure {
    /// The server answered but the health tool did not work: degraded.
    HealthTool(String),
    /// Anything else: down.
    Down(String),
}

/// Runs one check. Never fails; never outlives `spec.timeout` (plus a moment to stop a child process).
pub async fn check(spec: &ServerSpec) -> CheckResult {
    check_pinned(spec, None).await
}

/// [`check`], with an HTTP server's connections confined to `pinned` (the addresses its URL was vetted with).
/// Without a pin the HTTP client resolves the host itself: for the operator's own servers only.
pub async fn check_pinned(spec: &ServerSpec, pinned: Option<&Pinned>) -> CheckResult {
    // https servers need rustls' process-wide provider (we build only `ring`); installing twice is a no-op.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let started = Instant::now();
    match tokio::time::timeout(spec.timeout, run(spec, pinned, started)).await {
        Ok(Ok(r)) => r,
        Ok(Err(Failure::Down(e))) => CheckResult::down(spec, e),
        Ok(Err(Failure::HealthTool(e))) => CheckResult { status: Status::Degraded, ..CheckResult::down(spec, e) },
        Err(_) => CheckResult::down(spec, format!("timeout after {}s", spec.timeout.as_secs_f64())),
    }
}

fn client_config() -> ClientConfig {
    ClientConfig::new(ClientCapabilities::default(), Implementation::new("langsight", env!("CARGO_PKG_VERSION")))
        .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
}

/// The redirects rmcp's default Streamable HTTP client follows: same-origin 307 and 308 only (they keep the
/// JSON-RPC body; another origin would receive the session id and our headers), at most 10.
fn same_origin_307_308() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let keeps_body = matches!(
            attempt.status(),
            reqwest::StatusCode::TEMPORARY_REDIRECT | reqwest::StatusCode::PERMANENT_REDIRECT
        );
        let same_origin = attempt.previous().first().is_some_and(|first| first.origin() == attempt.url().origin());
        if !keeps_body || !same_origin {
            attempt.stop()
        } else if attempt.previous().len() > 10 {
            attempt.error("more than 10 redirects")
        } else {
            attempt.follow()
        }
    })
}

async fn run(spec: &ServerSpec, pinned: Option<&Pinned>, started: Instant) -> Result<CheckResult, Failure> {
    let client = match &spec.transport {
        Transport::Stdio { command, args, env } => {
            let cmd = tokio::process::Command::new(command).configure(|c| {
                // A minimal environment: the child sees PATH and HOME plus what the server entry sets.
                c.env_clear();
                for var in ["PATH", "HOME", "LANG"] {
                    if let Ok(v) = std::env::var(var) {
                        c.env(var, v);
                    }
                }
                c.args(args).envs(env.iter().map(|(k, v)| (k, v))).kill_on_drop(true);
            });
            let (transport, _stderr) = TokioChildProcess::builder(cmd)
                .stderr(std::process::Stdio::null())
                .spawn()
                .map_err(|e| Failure::Down(format!("cannot start '{command}': {e}")))?;
            client_config().serve(transport).await.map_err(|e| Failure::Down(format!("initialize failed: {e}")))?
        }
        Transport::StreamableHttp { url, headers } => {
            let mut map = std::collections::HashMap::new();
            for (k, v) in headers {
                let name = http::HeaderName::from_bytes(k.as_bytes())
                    .map_err(|e| Failure::Down(format!("invalid header name '{k}': {e}")))?;
                let value = http::HeaderValue::from_str(v)
                    .map_err(|e| Failure::Down(format!("invalid value of header '{k}': {e}")))?;
                map.insert(name, value);
            }
            let cfg =
                rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(url.as_str())
                    .custom_headers(map)
                    .reinit_on_expired_session(false);
            let transport = match pinned {
                None => StreamableHttpClientTransport::from_config(cfg),
                Some(pin) => {
                    // rmcp's default client, with name resolution confined to the pin.
                    let builder = reqwest::Client::builder().pool_max_idle_per_host(0).redirect(same_origin_307_308());
                    let client = pin
                        .apply(url, builder)
                        .map_err(Failure::Down)?
                        .build()
                        .map_err(|e| Failure::Down(format!("cannot build the HTTP client: {e}")))?;
                    StreamableHttpClientTransport::with_client(client, cfg)
                }
            };
            client_config().serve(transport).await.map_err(|e| Failure::Down(format!("initialize failed: {e}")))?
        }
        Transport::Sse { url, headers } => {
            let transport = crate::sse::connect(url, headers, pinned).await.map_err(Failure::Down)?;
            client_config().serve(transport).await.map_err(|e| Failure::Down(format!("initialize failed: {e}")))?
        }
    };
    let latency_ms = (started.elapsed().as_secs_f64() * 1000.0 * 100.0).round() / 100.0;
    client.set_response_cache_config(rmcp::ClientCacheConfig::disabled()).await;
    let info = client.peer_info();
    let server_version = info.as_ref().and_then(|i| i.server_info.as_ref()).map(|s| s.version.clone());
    let protocol_version = info.as_ref().map(|i| i.protocol_version.to_string());

    let mut tools = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let params = cursor.take().map(|c| PaginatedRequestParams::default().with_cursor(Some(c)));
        let page = client.list_tools(params).await.map_err(|e| Failure::Down(format!("tools/list failed: {e}")))?;
        for t in page.tools {
            tools.push(ToolInfo {
                name: t.name.to_string(),
                description: t.description.map(|d| d.to_string()),
                input_schema: Value::Object((*t.input_schema).clone()),
            });
        }
        match page.next_cursor {
            Some(c) if !c.is_empty() => cursor = Some(c),
            _ => break,
        }
    }

    if let Some(tool) = &spec.health_tool {
        if !tools.iter().any(|t| &t.name == tool) {
            let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
            names.sort();
            return Err(Failure::HealthTool(format!(
                "health_tool '{tool}' not found in tools/list. Available: {}",
                names.join(", ")
            )));
        }
        let params = CallToolRequestParams::new(tool.clone()).with_arguments(spec.health_tool_args.clone());
        match client.call_tool(params).await {
            Ok(r) if r.is_error == Some(true) => {
                let text: Vec<String> = r.content.iter().filter_map(|c| c.as_text()).map(|t| t.text.clone()).collect();
                return Err(Failure::HealthTool(format!("health_tool '{tool}' returned error: {}", text.join(" "))));
            }
            Ok(_) => {}
            Err(e) => return Err(Failure::HealthTool(format!("health_tool '{tool}' call failed: {e}"))),
        }
    }
    let hash = schema_hash(&tools);
    let _ = client.cancel().await;
    Ok(CheckResult {
        server_name: spec.name.clone(),
        status: Status::Up,
        latency_ms: Some(latency_ms),
        tools,
        schema_hash: Some(hash),
        server_version,
        protocol_version,
        error: None,
    })
}
