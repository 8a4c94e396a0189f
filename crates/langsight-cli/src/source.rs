//! Where data commands read from: a running server (`LANGSIGHT_URL`, with `LANGSIGHT_API_KEY`), or — with no
//! URL — the local database directly, through the same API served in-process on a loopback port for the
//! duration of the command (so local and remote answers are computed by the same code).

use langsight_server::config::{Config, Flags, Secret};
use reqwest::Method;
use serde_json::Value;
use std::path::PathBuf;

/// Why a command could not get its data; the exit code says which kind.
#[derive(Debug)]
pub enum SourceError {
    /// The server or database could not be used at all (exit 2).
    Unavailable(String),
    /// The server answered with an error (exit 1), e.g. an unknown session.
    Answer { status: u16, detail: String },
}

impl SourceError {
    pub fn exit(&self) -> std::process::ExitCode {
        match self {
            SourceError::Unavailable(m) => {
                eprintln!("langsight: {m}");
                std::process::ExitCode::from(2)
            }
            SourceError::Answer { status, detail } => {
                eprintln!("langsight: {detail} (HTTP {status})");
                std::process::ExitCode::from(1)
            }
        }
    }
}

/// The API a command talks to (cheap to clone into the command's future).
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    url: String,
    key: Option<String>,
}

/// The API plus, in local mode, the in-process server behind it.
pub struct Source {
    pub api: Api,
    local: Option<langsight_server::RunningServer>,
}

impl Source {
    pub async fn open(config: Option<PathBuf>) -> Result<Source, SourceError> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .map_err(|e| SourceError::Unavailable(format!("cannot build the HTTP client: {e}")))?;
        if let Some(url) = std::env::var("LANGSIGHT_URL").ok().filter(|u| !u.trim().is_empty()) {
            let key = std::env::var("LANGSIGHT_API_KEY").ok().filter(|k| !k.is_empty());
            let api = Api { http, url: url.trim_end_matches('/').to_string(), key };
            return Ok(Source { api, local: None });
        }
        let mut config =
            Config::load(Flags { config, ..Flags::default() }).map_err(|e| SourceError::Unavailable(e.to_string()))?;
        // Private to this command: loopback, a free port, one process, no monitor, a throwaway admin key.
        let key = langsight_core::keys::generate_api_key().raw;
        config.host = "127.0.0.1".into();
        config.port = 0;
        config.workers = 1;
        config.worker_id = None;
        config.redis_url = None;
        config.monitor_enabled = false;
        config.api_keys = vec![Secret(key.clone())];
        config.rate_limits.enabled = false;
        let server = langsight_server::start(config).await.map_err(|e| {
            SourceError::Unavailable(format!(
                "cannot open the local database ({e}); or set LANGSIGHT_URL to use a server"
            ))
        })?;
        let url = format!("http://{}", server.addr);
        Ok(Source { api: Api { http, url, key: Some(key) }, local: Some(server) })
    }

    /// Stops the in-process server, if any (its writes are committed).
    pub async fn close(self) {
        if let Some(s) = self.local {
            s.shutdown().await;
        }
    }
}

impl Api {
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, SourceError> {
        let text = self.call_text(method, path, body).await?;
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A GET whose successful answer is returned as text: for answers too deeply nested to parse into a
    /// [`Value`] (serde_json stops at 128 levels; a session trace can nest thousands).
    pub async fn get_text(&self, path: &str) -> Result<String, SourceError> {
        self.call_text(Method::GET, path, None).await
    }

    async fn call_text(&self, method: Method, path: &str, body: Option<Value>) -> Result<String, SourceError> {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(k) = &self.key {
            req = req.header("X-API-Key", k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| {
            SourceError::Unavailable(format!("cannot reach LANGSIGHT_URL={} ({e}); is the server running?", self.url))
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        if (200..300).contains(&status) {
            return Ok(text);
        }
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let detail = match value.get("detail") {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => text,
        };
        if status == 401 || status == 403 {
            return Err(SourceError::Unavailable(format!(
                "the server refused the request: {detail} (set LANGSIGHT_API_KEY to an admin key)"
            )));
        }
        Err(SourceError::Answer { status, detail })
    }

    pub async fn get(&self, path: &str) -> Result<Value, SourceError> {
        self.call(Method::GET, path, None).await
    }
}
