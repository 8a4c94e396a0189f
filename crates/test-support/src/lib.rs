//! Test harness: the real server, in this process, on a free loopback port with its own temporary
//! database, and a small client for it. Each [`TestServer`] is isolated: tests run in parallel safely.

pub mod clickhouse;
pub mod postgres;
pub mod process;
pub mod receiver;
pub mod redis;
pub mod sse;

use langsight_server::config::{Config, Secret};
use langsight_server::RunningServer;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Mutex;

type ExitHook = Box<dyn FnOnce() + Send>;
static EXIT_HOOKS: Mutex<Vec<ExitHook>> = Mutex::new(Vec::new());

extern "C" fn run_exit_hooks() {
    let hooks = EXIT_HOOKS.lock().map(|mut h| std::mem::take(&mut *h)).unwrap_or_default();
    for hook in hooks {
        // A panic cannot unwind out of this `extern "C"` function (it would abort a run that passed): contained.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(hook)).is_err() {
            eprintln!("test-support: an exit hook panicked; a test server may be left running");
        }
    }
}

/// Runs `f` when the test process exits. What a test keeps in a `static` (one server shared by the tests of a
/// process) is never dropped, so without this its server and directory outlive the run.
pub fn at_exit(f: impl FnOnce() + Send + 'static) {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| {
        // SAFETY: `atexit` with a plain `extern "C"` function that takes no arguments; it runs once, at exit.
        if unsafe { libc::atexit(run_exit_hooks) } != 0 {
            eprintln!("test-support: atexit failed; servers kept in statics will outlive this process");
        }
    });
    if let Ok(mut hooks) = EXIT_HOOKS.lock() {
        hooks.push(Box::new(f));
    }
}

/// A bootstrap (global admin) key every test server accepts.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789abcdef";

pub struct TestServer {
    pub url: String,
    pub db_path: PathBuf,
    server: Option<RunningServer>,
    /// Kept alive so the database outlives the server; removed on drop.
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// A server with [`ADMIN_KEY`] as bootstrap key.
    pub async fn start() -> TestServer {
        Self::start_with(|c| c.api_keys = vec![Secret(ADMIN_KEY.into())]).await
    }

    /// A server whose configuration `tweak` adjusts (starting from defaults and a private database).
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temporary directory for the test database");
        let db_path = dir.path().join("langsight.db");
        let mut config = Config::for_database(&db_path);
        // Dual mode's spool beside the database, not in the home directory other tests share.
        config.clickhouse.spool_dir = dir.path().join("spool");
        tweak(&mut config);
        Self::start_in(dir, db_path, config).await
    }

    async fn start_in(dir: tempfile::TempDir, db_path: PathBuf, config: Config) -> TestServer {
        // The server's warnings and errors (a 500's cause, a slow commit) in the test's output, which the runner
        // shows when the test fails.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
            .try_init();
        let server = langsight_server::start(config).await.expect("test server starts");
        TestServer { url: format!("http://{}", server.addr), db_path, server: Some(server), _dir: dir }
    }

    pub fn client(&self, key: Option<&str>) -> Client {
        Client { base: self.url.clone(), key: key.map(String::from), http: http(), headers: vec![] }
    }

    pub fn admin(&self) -> Client {
        self.client(Some(ADMIN_KEY))
    }

    /// Graceful shutdown (drain, commit, close). The database stays, for inspection or a restart.
    pub async fn stop(mut self) -> StoppedServer {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        StoppedServer { db_path: self.db_path.clone(), dir: self._dir }
    }
}

/// A stopped server's database, kept until this is dropped.
pub struct StoppedServer {
    pub db_path: PathBuf,
    dir: tempfile::TempDir,
}

impl StoppedServer {
    /// Starts a new server on the same database.
    pub async fn restart(self, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = Config::for_database(&self.db_path);
        tweak(&mut config);
        TestServer::start_in(self.dir, self.db_path, config).await
    }
}

/// A response reduced to what tests assert on.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// The `detail` string of an error body ("" if absent).
    pub fn detail(&self) -> &str {
        self.body.get("detail").and_then(Value::as_str).unwrap_or("")
    }
}

#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub key: Option<String>,
    pub http: reqwest::Client,
    /// Sent with every request (e.g. a dashboard proxy's identity headers).
    pub headers: Vec<(String, String)>,
}

impl Client {
    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Vec<u8>>) -> Reply {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(k) = &self.key {
            req = req.header("X-API-Key", k);
        }
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        if let Some(b) = body {
            req = req.header("Content-Type", "application/json").body(b);
        }
        let resp = req.send().await.expect("request reaches the test server");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, headers, body, text }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(reqwest::Method::POST, path, Some(serde_json::to_vec(body).unwrap_or_default())).await
    }

    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> Reply {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send(reqwest::Method::PUT, path, Some(serde_json::to_vec(body).unwrap_or_default())).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    pub async fn ingest(&self, spans: &Value) -> Reply {
        self.post("/api/traces/spans", spans).await
    }
}

/// An HTTP client for tests (with the TLS provider installed, which reqwest needs before building one).
pub fn http() -> reqwest::Client {
    langsight_server::install_tls();
    reqwest::Client::new()
}

/// `GET url` with a fresh client (like `reqwest::get`).
pub async fn http_get(url: impl reqwest::IntoUrl) -> reqwest::Result<reqwest::Response> {
    http().get(url).send().await
}

/// A fresh 32-hex session id.
pub fn session_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A batch of `n` spans shaped like an agent run: a root agent span, tool calls under it (one in ten
/// failing, then retried successfully), and LLM spans with tokens. Times are recent.
pub fn agent_run(session: &str, n: usize, project: Option<&str>) -> Value {
    let start = chrono::Utc::now() - chrono::Duration::seconds(60);
    let at = |ms: i64| (start + chrono::Duration::milliseconds(ms)).to_rfc3339();
    let root = format!("{session}-root");
    let mut spans = vec![json!({
        "span_id": root, "span_type": "agent", "session_id": session, "server_name": "crewai",
        "tool_name": "session", "agent_name": "researcher", "started_at": at(0), "ended_at": at(n as i64 * 100 + 50),
        "status": "success", "project_id": project, "llm_input": "Find the latest release notes",
    })];
    for i in 1..n {
        let (span_type, server, tool, status) = match i % 10 {
            3 => ("tool_call", "github", "search_issues", "error"),
            4 => ("tool_call", "github", "search_issues", "success"),
            7 => ("agent", "anthropic", "generate/claude-sonnet", "success"),
            _ => ("tool_call", if i % 2 == 0 { "github" } else { "filesystem" }, "read_file", "success"),
        };
        spans.push(json!({
            "span_id": format!("{session}-{i}"), "parent_span_id": root, "span_type": span_type,
            "session_id": session, "trace_id": session, "server_name": server, "tool_name": tool,
            "agent_name": "researcher", "started_at": at(i as i64 * 100), "ended_at": at(i as i64 * 100 + 80),
            "latency_ms": null, "status": status, "error": if status == "error" { json!("rate limited") } else { Value::Null },
            "input_args": {"query": "release notes", "page": i}, "output_result": "ok",
            "project_id": project, "model_id": if span_type == "agent" { json!("claude-sonnet-4-6") } else { Value::Null },
            "input_tokens": if span_type == "agent" { json!(1200) } else { Value::Null },
            "output_tokens": if span_type == "agent" { json!(300) } else { Value::Null },
        }));
    }
    Value::Array(spans)
}
