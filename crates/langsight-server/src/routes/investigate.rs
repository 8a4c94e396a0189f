//! `POST /api/investigate`: a root-cause report on MCP servers from their recent health checks and schema
//! drift. The rule-based report always works; with an AI provider key configured (settings or environment)
//! the evidence is also sent to that provider, and any provider failure falls back to the rule-based report.

use super::health::owner;
use super::query::scoped;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::http::JsonBody;
use crate::settings::{load, open, PROVIDERS};
use crate::state::AppState;
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

/// The provider's key and model: the saved settings first, then the environment.
async fn provider_key(state: &AppState, provider: &str) -> Option<(String, String, String)> {
    let doc = load(state).await.ok()?;
    let saved = doc.get("ai_providers").and_then(|p| p.get(provider)).cloned().unwrap_or(json!({}));
    let text = |k: &str| saved.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let secret = state.config.secret_key.as_ref().map(|s| s.0.as_str());
    let env = PROVIDERS.iter().find(|(p, _)| *p == provider).map(|(_, e)| *e).unwrap_or("");
    let key = open(&text("api_key"), secret)
        .ok()
        .filter(|k| !k.is_empty())
        .or_else(|| (!env.is_empty()).then(|| std::env::var(env).ok()).flatten().filter(|k| !k.is_empty()))?;
    Some((key, text("model"), text("base_url")))
}

/// Asks the provider for a report; `Err` says why it could not.
async fn ask(provider: &str, key: &str, model: &str, base: &str, prompt: &str) -> Result<String, String> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().map_err(|e| e.to_string())?;
    let (url, req) = match provider {
        "anthropic" => {
            let base = if base.is_empty() { "https://api.anthropic.com" } else { base };
            let model = if model.is_empty() { "claude-sonnet-4-6" } else { model };
            let body = json!({"model": model, "max_tokens": 1500, "messages": [{"role": "user", "content": prompt}]});
            let url = format!("{}/v1/messages", base.trim_end_matches('/'));
            (url.clone(), http.post(url).header("x-api-key", key).header("anthropic-version", "2023-06-01").json(&body))
        }
        "openai" => {
            let base = if base.is_empty() { "https://api.openai.com" } else { base };
            let model = if model.is_empty() { "gpt-4o" } else { model };
            let body = json!({"model": model, "messages": [{"role": "user", "content": prompt}]});
            let url = format!("{}/v1/chat/completions", base.trim_end_matches('/'));
            (url.clone(), http.post(url).bearer_auth(key).json(&body))
        }
        other => return Err(format!("provider '{other}' is not supported for investigations yet")),
    };
    let resp = req.send().await.map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status();
    let v: Value = resp.json().await.map_err(|e| format!("{url}: unreadable answer: {e}"))?;
    if !status.is_success() {
        return Err(format!("{url} answered {status}"));
    }
    v.pointer("/content/0/text")
        .or_else(|| v.pointer("/choices/0/message/content"))
        .and_then(Value::as_str)
        .map(String::from)
        .ok_or_else(|| "the answer had no text".into())
}

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
    let (report, used) = match provider_key(&state, &body.provider).await {
        None => (rule_based(&evidence, body.window_hours, None), "rule-based".to_string()),
        Some((key, saved_model, base)) => {
            let model = body.model.clone().unwrap_or(saved_model);
            let prompt = format!(
                "You are an SRE. Find the most likely root cause of these MCP server problems and the next steps. \
                 Answer in Markdown.\n\nEvidence (JSON):\n{}",
                serde_json::to_string_pretty(&evidence_json).unwrap_or_default()
            );
            match ask(&body.provider, &key, &model, &base, &prompt).await {
                Ok(text) => (text, body.provider.clone()),
                Err(why) => {
                    tracing::warn!(provider = %body.provider, error = %why, "investigate.provider_failed");
                    let note = format!(
                        "The {} provider could not be used ({why}); this is the rule-based report.",
                        body.provider
                    );
                    (rule_based(&evidence, body.window_hours, Some(&note)), "rule-based".to_string())
                }
            }
        }
    };
    Ok(Json(
        json!({"report": report, "provider_used": used, "evidence": evidence_json, "generated_at": iso_z(now_micros())}),
    ))
}
