//! `POST /api/investigate`: a root-cause report on MCP servers from their recent health checks and schema
//! drift. The rule-based report always works; with an AI provider key configured (settings or environment)
//! the evidence is also sent to that provider, and any provider failure falls back to the rule-based report.

use super::health::owner;
use super::query::scoped;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::http::JsonBody;
use crate::settings::{load, provider_target, ProviderTarget, Source};
use crate::state::AppState;
use crate::url_policy::{self, Purpose};
use axum::extract::{RawQuery, State};
use axum::{Extension, Json};
use langsight_core::time::{iso_z, now_micros};
use serde::Deserialize;
use serde_json::{json, Value};
use std::fmt::Write;
use std::time::Duration;

#[derive(Deserialize)]
pub struct Request {
    server_names: Vec<String>,
    #[serde(default = "one_hour")]
    window_hours: f64,
    #[serde(default = "anthropic")]
    provider: String,
    #[serde(default)]
    model: Option<String>,
}

fn one_hour() -> f64 {
    1.0
}
fn anthropic() -> String {
    "anthropic".into()
}

/// What the report is built from, per server.
struct Evidence {
    server: String,
    total: usize,
    up: usize,
    down: usize,
    degraded: usize,
    latest_status: String,
    latest_error: Option<String>,
    avg_latency: Option<f64>,
    drift_events: usize,
    recent_errors: Vec<(i64, String)>,
}

impl Evidence {
    fn to_json(&self, window_hours: f64) -> Value {
        json!({
            "server_name": self.server, "window_hours": window_hours, "total_checks": self.total,
            "up_count": self.up, "down_count": self.down, "degraded_count": self.degraded,
            "latest_status": self.latest_status, "latest_error": self.latest_error,
            "avg_latency_ms": self.avg_latency.map(|l| (l * 100.0).round() / 100.0),
            "schema_drift_events": self.drift_events,
            "recent_errors": self.recent_errors.iter().map(|(at, e)| json!({"checked_at": iso_z(*at), "error": e})).collect::<Vec<_>>(),
        })
    }

    /// The likely cause and what to do, from the pattern of checks.
    fn diagnosis(&self) -> (&'static str, &'static str) {
        let error = self.latest_error.as_deref().unwrap_or("").to_lowercase();
        if self.total == 0 {
            ("No health checks in the window.", "Run a check (`POST /api/health/check`) or widen the window.")
        } else if self.drift_events > 0 {
            (
                "The tool schema changed in the window.",
                "Review the drift history; update agents that call the changed tools.",
            )
        } else if self.down == self.total {
            if error.contains("timed out") || error.contains("timeout") {
                (
                    "The server stopped answering (every check timed out).",
                    "Check the process or host is alive and not overloaded; restart it.",
                )
            } else if error.contains("refused") || error.contains("connect") || error.contains("spawn") {
                (
                    "The server is not reachable (connection refused or process failed to start).",
                    "Start the server or fix its command/URL in the configuration.",
                )
            } else if error.contains("401") || error.contains("403") || error.contains("auth") {
                ("The server rejects our credentials.", "Rotate or fix the credential configured for this server.")
            } else {
                (
                    "The server is down for every check in the window.",
                    "Read the latest error below and the server's own logs.",
                )
            }
        } else if self.down > 0 {
            (
                "The server is flapping: some checks fail.",
                "Look for resource limits, restarts or network instability around the failures below.",
            )
        } else if self.degraded > 0 {
            ("The server answers but is degraded.", "Check its health tool's output and dependencies.")
        } else {
            ("No problem found: every check passed.", "Nothing to do for this server.")
        }
    }
}

async fn gather(state: &AppState, project: Option<&str>, server: &str, since: i64) -> ApiResult<Evidence> {
    let owner = owner(state, project, server).await?;
    let rows = state.storage.health.health_history(&owner, server, 1000).await?;
    let rows: Vec<_> = rows.into_iter().filter(|r| r.checked_at >= since).collect();
    let count = |s: &str| rows.iter().filter(|r| r.status == s).count();
    let latencies: Vec<f64> = rows.iter().filter_map(|r| r.latency_ms).collect();
    let drift = state.storage.health.drift_history(&owner, server, 1000).await?;
    let mut drift_events: Vec<i64> = drift.iter().filter(|d| d.detected_at >= since).map(|d| d.detected_at).collect();
    drift_events.dedup();
    Ok(Evidence {
        server: server.to_string(),
        total: rows.len(),
        up: count("up"),
        down: count("down"),
        degraded: count("degraded"),
        latest_status: rows.first().map(|r| r.status.clone()).unwrap_or_else(|| "no_data".into()),
        latest_error: rows.first().and_then(|r| r.error.clone()),
        avg_latency: (!latencies.is_empty()).then(|| latencies.iter().sum::<f64>() / latencies.len() as f64),
        drift_events: drift_events.len(),
        recent_errors: rows.iter().filter_map(|r| r.error.clone().map(|e| (r.checked_at, e))).take(5).collect(),
    })
}

fn rule_based(evidence: &[Evidence], window_hours: f64, note: Option<&str>) -> String {
    let mut md = format!("# Investigation: {} server(s), last {window_hours} h\n\n", evidence.len());
    if let Some(n) = note {
        let _ = writeln!(md, "> {n}\n");
    }
    for e in evidence {
        let (cause, action) = e.diagnosis();
        let _ = writeln!(md, "## {}\n", e.server);
        let _ = writeln!(
            md,
            "- Checks: {} ({} up, {} degraded, {} down); latest: **{}**",
            e.total, e.up, e.degraded, e.down, e.latest_status
        );
        if let Some(l) = e.avg_latency {
            let _ = writeln!(md, "- Average latency: {l:.1} ms");
        }
        if e.drift_events > 0 {
            let _ = writeln!(md, "- Schema drift events: {}", e.drift_events);
        }
        if let Some(err) = &e.latest_error {
            let _ = writeln!(md, "- Latest error: `{}`", err.replace('`', "'"));
        }
        let _ = writeln!(md, "\n**Likely cause:** {cause}\n\n**Next step:** {action}\n");
    }
    md
}

/// The provider's key, model and endpoint (see [`crate::settings::provider_target`]): `None` when no key is
/// configured. An endpoint saved through the API passes the outbound URL policy again now, and the call is
/// pinned to the addresses that passed, so a DNS answer changed since cannot redirect the key.
async fn provider(state: &AppState, provider: &str) -> Result<Option<(ProviderTarget, reqwest::Client)>, String> {
    let doc = load(state).await.map_err(|e| e.to_string())?;
    let target = provider_target(state, &doc, provider).map_err(|e| e.to_string())?;
    // Ollama needs no key (the original sends the placeholder "ollama"): asking for it is enough to use it.
    if target.key.is_empty() && provider != "ollama" {
        return Ok(None);
    }
    let mut http =
        reqwest::Client::builder().timeout(Duration::from_secs(60)).redirect(reqwest::redirect::Policy::none());
    if target.base_source == Source::Settings {
        let checked =
            url_policy::check(&target.base_url, Purpose::Webhook, state.config.allow_private_webhook_urls, false)
                .await
                .map_err(|e| format!("the base URL saved in the settings is not allowed: {e}"))?;
        http = http.resolve_to_addrs(&checked.host, &checked.addrs);
    }
    Ok(Some((target, http.build().map_err(|e| e.to_string())?)))
}

/// The original's default model per provider, used when neither the request nor the settings name one.
fn default_model(provider: &str) -> &'static str {
    match provider {
        "anthropic" => "claude-sonnet-4-6",
        "openai" => "gpt-4o",
        "gemini" => "gemini-2.0-flash",
        _ => "llama3.2",
    }
}

/// Asks the provider for a report; `Err` says why it could not. Anthropic speaks its Messages API; OpenAI,
/// Gemini and Ollama the chat-completions format, as the original calls them (Gemini through its
/// OpenAI-compatible endpoint `/v1beta/openai/`, Ollama through `/v1/` with the placeholder key `ollama`).
async fn ask(
    http: &reqwest::Client,
    provider: &str,
    key: &str,
    model: &str,
    base: &str,
    prompt: &str,
) -> Result<String, String> {
    let model = if model.is_empty() { default_model(provider) } else { model };
    let base = base.trim_end_matches('/');
    let chat = json!({"model": model, "max_tokens": 2048, "messages": [
        {"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]});
    let (url, req) = match provider {
        "anthropic" => {
            let body = json!({"model": model, "max_tokens": 2048, "system": SYSTEM,
                "messages": [{"role": "user", "content": prompt}]});
            let url = format!("{base}/v1/messages");
            (url.clone(), http.post(url).header("x-api-key", key).header("anthropic-version", "2023-06-01").json(&body))
        }
        "openai" => {
            let url = format!("{base}/v1/chat/completions");
            (url.clone(), http.post(url).bearer_auth(key).json(&chat))
        }
        "gemini" => {
            let url = format!("{base}/v1beta/openai/chat/completions");
            (url.clone(), http.post(url).bearer_auth(key).json(&chat))
        }
        "ollama" => {
            let url = format!("{base}/v1/chat/completions");
            let key = if key.is_empty() { "ollama" } else { key };
            (url.clone(), http.post(url).bearer_auth(key).json(&chat))
        }
        other => {
            return Err(format!("unknown provider '{other}'; valid values: anthropic, openai, gemini, ollama"));
        }
    };
    let resp = req.send().await.map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("{url} answered {status}"));
    }
    let v: Value = resp.json().await.map_err(|e| format!("{url}: unreadable answer: {e}"))?;
    let text = if provider == "anthropic" {
        // The first text block (a reply may open with other block types).
        v.get("content")
            .and_then(Value::as_array)
            .and_then(|blocks| blocks.iter().find(|b| b["type"] == "text"))
            .and_then(|b| b["text"].as_str())
    } else {
        v.pointer("/choices/0/message/content").and_then(Value::as_str)
    };
    text.filter(|t| !t.trim().is_empty()).map(String::from).ok_or_else(|| format!("{url}: the answer had no text"))
}

/// What the provider is asked to be, as in the original's prompt.
const SYSTEM: &str = "You are an SRE investigating MCP server incidents. For each issue give the Root Cause, the \
    Evidence, the Impact and the Recommended Actions. Stdio servers without health checks are normal.";

pub async fn investigate(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody<Request>,
) -> ApiResult<Json<Value>> {
    principal.require_admin()?;
    let (_, project) = scoped(&state, &principal, raw.as_deref()).await?;
    let bad = |field: &str, msg: &str, input: Value| {
        ApiError::Unprocessable(json!([{ "type": "value_error", "loc": ["body", field], "msg": msg, "input": input }]))
    };
    if body.server_names.is_empty() || body.server_names.len() > 10 {
        return Err(bad("server_names", "List should have 1 to 10 items", json!(body.server_names)));
    }
    if !(0.5..=168.0).contains(&body.window_hours) {
        return Err(bad("window_hours", "window_hours must be 0.5 to 168", json!(body.window_hours)));
    }
    let since = now_micros() - (body.window_hours * 3_600_000_000.0) as i64;
    let mut evidence = Vec::with_capacity(body.server_names.len());
    for name in &body.server_names {
        evidence.push(gather(&state, project.as_deref(), name, since).await?);
    }
    let evidence_json: Vec<Value> = evidence.iter().map(|e| e.to_json(body.window_hours)).collect();
    let note =
        |why: &str| format!("The {} provider could not be used ({why}); this is the rule-based report.", body.provider);
    let (report, used) = match provider(&state, &body.provider).await {
        Ok(None) => (rule_based(&evidence, body.window_hours, None), "rule-based".to_string()),
        Err(why) => {
            tracing::warn!(provider = %body.provider, error = %why, "investigate.provider_refused");
            (rule_based(&evidence, body.window_hours, Some(&note(&why))), "rule-based".to_string())
        }
        Ok(Some((target, http))) => {
            let model = body.model.clone().unwrap_or(target.model.clone());
            let prompt = format!(
                "You are an SRE. Find the most likely root cause of these MCP server problems and the next steps. \
                 Answer in Markdown.\n\nEvidence (JSON):\n{}",
                serde_json::to_string_pretty(&evidence_json).unwrap_or_default()
            );
            match ask(&http, &body.provider, &target.key, &model, &target.base_url, &prompt).await {
                Ok(text) => (text, body.provider.clone()),
                Err(why) => {
                    tracing::warn!(provider = %body.provider, error = %why, "investigate.provider_failed");
                    (rule_based(&evidence, body.window_hours, Some(&note(&why))), "rule-based".to_string())
                }
            }
        }
    };
    Ok(Json(
        json!({"report": report, "provider_used": used, "evidence": evidence_json, "generated_at": iso_z(now_micros())}),
    ))
}
