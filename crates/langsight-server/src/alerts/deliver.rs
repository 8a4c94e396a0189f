//! Delivery: Slack (Block Kit) and a generic signed JSON webhook, outside the request path.
//!
//! Alerts go through a bounded queue to one delivery task per process; each channel is tried up to
//! `LANGSIGHT_ALERT_DELIVERY_ATTEMPTS` times with a growing delay, and the outcome (delivered, or failed with
//! the last error) is persisted in `alert_deliveries` and counted. A full queue is itself a recorded failure.
//!
//! URLs stored through the API are untrusted: before every send they pass the URL policy and the connection
//! is pinned to the addresses that passed, with redirects off, so neither DNS nor a redirect can aim the
//! delivery at an internal address. The operator's URLs (env, YAML) are used as given.

use crate::state::AppState;
use crate::url_policy::{self, Purpose};
use hmac::{Hmac, Mac};
use langsight_core::time::now_micros;
use langsight_storage::{AlertConfig, DeliveryRecord, FiredAlert};
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;

/// Alerts waiting for delivery, per process.
const QUEUE: usize = 1024;
/// One HTTP request's deadline (the original's 5 s).
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Slack,
    Webhook,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Slack => "slack",
            Kind::Webhook => "webhook",
        }
    }
}

/// Where one alert goes.
#[derive(Debug, Clone)]
pub struct Channel {
    pub kind: Kind,
    pub url: String,
    /// From the operator's configuration: no URL policy.
    pub trusted: bool,
}

struct Job {
    alert: FiredAlert,
    channels: Vec<Channel>,
}

/// The sending half, kept in the app state.
pub struct Deliverer {
    tx: mpsc::Sender<Job>,
}

impl Deliverer {
    /// Starts the delivery task. It holds only a weak reference to the state, and ends when the state does.
    pub fn start(state: std::sync::Weak<crate::state::Inner>) -> Deliverer {
        let (tx, mut rx) = mpsc::channel::<Job>(QUEUE);
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                let Some(inner) = state.upgrade() else { break };
                let state = AppState(inner);
                // Channels and alerts are delivered concurrently so one slow receiver delays nobody else.
                for channel in job.channels {
                    let (state, alert) = (state.clone(), job.alert.clone());
                    tokio::spawn(async move { deliver_one(&state, &alert, &channel).await });
                }
            }
        });
        Deliverer { tx }
    }
}

/// The channels of an alert: the project's stored URLs (untrusted), else the operator's (trusted).
pub fn channels(state: &AppState, stored: Option<&AlertConfig>) -> Vec<Channel> {
    let ops = &state.config.alerts;
    let pick = |api: Option<&String>, operator: &Option<String>, kind: Kind| match api.filter(|u| !u.is_empty()) {
        Some(u) => Some(Channel { kind, url: u.clone(), trusted: false }),
        None => operator.clone().map(|u| Channel { kind, url: u, trusted: true }),
    };
    [
        pick(stored.and_then(|c| c.slack_webhook.as_ref()), &ops.slack_webhook, Kind::Slack),
        pick(stored.and_then(|c| c.webhook_url.as_ref()), &ops.webhook_url, Kind::Webhook),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Queues an alert for its channels; never waits. A full queue is recorded as a failed delivery.
pub async fn enqueue(state: &AppState, alert: FiredAlert, stored: Option<AlertConfig>) {
    let channels = channels(state, stored.as_ref());
    if channels.is_empty() {
        return;
    }
    let kinds: Vec<Kind> = channels.iter().map(|c| c.kind).collect();
    let Some(deliverer) = state.deliverer.get() else { return };
    if let Err(e) = deliverer.tx.try_send(Job { alert, channels }) {
        let job = match e {
            mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j) => j,
        };
        tracing::error!(alert = %job.alert.id, "alert.delivery_queue_full: recorded as failed");
        for kind in kinds {
            record(state, &job.alert, kind, false, 0, Some("delivery queue full".into())).await;
        }
    }
}

async fn record(state: &AppState, alert: &FiredAlert, kind: Kind, ok: bool, attempts: u32, error: Option<String>) {
    let counter = if ok { &state.metrics.alert_deliveries_ok } else { &state.metrics.alert_deliveries_failed };
    counter.fetch_add(1, Ordering::Relaxed);
    let row = DeliveryRecord {
        alert_id: alert.id.clone(),
        channel: kind.as_str().into(),
        status: if ok { "delivered" } else { "failed" }.into(),
        attempts,
        last_error: error,
        at: now_micros(),
    };
    if let Err(e) = state.storage.alerts.record_delivery(row).await {
        tracing::error!(error = %e, alert = %alert.id, "alert.delivery_record_failed");
    }
}

async fn deliver_one(state: &AppState, alert: &FiredAlert, channel: &Channel) {
    let attempts = state.config.alerts.delivery_attempts.max(1);
    let mut delay = state.config.alerts.retry_base;
    let mut last_error = String::new();
    for attempt in 1..=attempts {
        match send(state, alert, channel).await {
            Ok(()) => {
                tracing::info!(alert = %alert.id, channel = channel.kind.as_str(), attempt, "alert.delivered");
                record(state, alert, channel.kind, true, attempt, None).await;
                return;
            }
            Err(SendError::Refused(reason)) => {
                // The URL policy said no: retrying cannot help.
                tracing::warn!(alert = %alert.id, channel = channel.kind.as_str(), %reason, "alert.delivery_refused");
                record(state, alert, channel.kind, false, attempt, Some(reason)).await;
                return;
            }
            Err(SendError::Failed(e)) => {
                // The URL may carry a token: log the error, never the URL.
                tracing::warn!(alert = %alert.id, channel = channel.kind.as_str(), attempt, error = %e, "alert.delivery_retry");
                last_error = e;
            }
        }
        if attempt < attempts {
            tokio::time::sleep(delay).await;
            delay = (delay * 4).min(MAX_BACKOFF);
        }
    }
    tracing::error!(alert = %alert.id, channel = channel.kind.as_str(), attempts, "alert.delivery_failed");
    record(state, alert, channel.kind, false, attempts, Some(last_error)).await;
}

pub enum SendError {
    /// The URL may not be contacted.
    Refused(String),
    /// The receiver failed or could not be reached (worth retrying).
    Failed(String),
}

/// One HTTP POST of the alert to the channel.
pub async fn send(state: &AppState, alert: &FiredAlert, channel: &Channel) -> Result<(), SendError> {
    let body = match channel.kind {
        Kind::Slack => slack_payload(alert, state.config.dashboard_url.as_deref()),
        Kind::Webhook => webhook_payload(alert, state.config.dashboard_url.as_deref()),
    };
    let body = serde_json::to_vec(&body).map_err(|e| SendError::Failed(e.to_string()))?;
    let mut headers = vec![];
    if channel.kind == Kind::Webhook {
        if let Some(secret) = &state.config.alerts.webhook_secret {
            let ts = (now_micros() / 1_000_000).to_string();
            headers.push(("X-LangSight-Timestamp", ts.clone()));
            headers.push(("X-LangSight-Signature", sign(&secret.0, &ts, &body)));
        }
    }
    post(state, &channel.url, channel.trusted, Purpose::Webhook, body, &headers).await
}

/// POSTs JSON to `url`; an untrusted URL passes the URL policy first and is pinned to the checked addresses.
pub async fn post(
    state: &AppState,
    url: &str,
    trusted: bool,
    purpose: Purpose,
    body: Vec<u8>,
    headers: &[(&str, String)],
) -> Result<(), SendError> {
    langsight_shared::redis::install_crypto_provider();
    let mut builder = reqwest::Client::builder().timeout(SEND_TIMEOUT).redirect(reqwest::redirect::Policy::none());
    if !trusted {
        let checked = url_policy::check(url, purpose, state.config.allow_private_webhook_urls, false)
            .await
            .map_err(|e| SendError::Refused(format!("Webhook URL is not allowed: {e}")))?;
        builder = builder.resolve_to_addrs(&checked.host, &checked.addrs);
    }
    let client = builder.build().map_err(|e| SendError::Failed(format!("cannot build the HTTP client: {e}")))?;
    let mut req = client.post(url).header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req.send().await.map_err(|e| SendError::Failed(describe(&e)))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(SendError::Failed(format!("receiver answered HTTP {}", resp.status().as_u16())))
    }
}

/// A reqwest error without the URL (which may hold a token).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_redirect() {
        "redirect refused"
    } else {
        "request failed"
    };
    match std::error::Error::source(e) {
        Some(src) => format!("{kind}: {src}"),
        None => kind.to_string(),
    }
}

/// `sha256=` + hex HMAC-SHA256 over `{timestamp}.{body}` with the shared secret.
pub fn sign(secret: &str, ts: &str, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return String::new() };
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn context_url(alert: &FiredAlert, dashboard: Option<&str>) -> Option<String> {
    let base = dashboard?;
    Some(match (&alert.session_id, alert.alert_type.as_str()) {
        (Some(sid), _) => format!("{base}/sessions/{sid}"),
        (None, "server_down" | "server_recovered" | "schema_drift" | "high_latency")
        | (None, "circuit_breaker_open" | "circuit_breaker_recovered") => format!("{base}/health"),
        (None, t) if t.starts_with("security") => format!("{base}/security"),
        _ => format!("{base}/alerts"),
    })
}

fn severity_emoji(sev: &str) -> &'static str {
    match sev {
        "critical" => ":red_circle:",
        "warning" => ":warning:",
        "info" => ":large_green_circle:",
        _ => ":bell:",
    }
}

fn type_emoji(t: &str) -> &'static str {
    match t {
        "server_down" => ":x:",
        "server_recovered" => ":white_check_mark:",
        "schema_drift" => ":twisted_rightwards_arrows:",
        "high_latency" => ":hourglass_flowing_sand:",
        "slo_breached" => ":chart_with_downwards_trend:",
        "anomaly_critical" | "anomaly_warning" | "anomaly_detected" => ":mag:",
        "security_critical" | "security_high" | "security_finding" => ":shield:",
        "loop_detected" => ":repeat:",
        "budget_exceeded" => ":no_entry_sign:",
        "circuit_breaker_open" => ":zap:",
        "circuit_breaker_recovered" => ":large_green_circle:",
        _ => ":robot_face:",
    }
}

/// Slack's header text is limited to 150 characters.
fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

/// The original's Block Kit message (§3.8), with the header clipped to Slack's limit.
pub fn slack_payload(a: &FiredAlert, dashboard: Option<&str>) -> Value {
    let sev = severity_emoji(&a.severity);
    let time = chrono::DateTime::from_timestamp_micros(a.fired_at)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default();
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": clip(&format!("{} {}", type_emoji(&a.alert_type), a.title), 150), "emoji": true}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": clip(&a.message, 3000)}, "fields": [
            {"type": "mrkdwn", "text": format!("*Server*\n`{}`", a.server_name)},
            {"type": "mrkdwn", "text": format!("*Severity*\n{sev} {}", a.severity.to_uppercase())},
            {"type": "mrkdwn", "text": format!("*Type*\n{}", a.alert_type)},
            {"type": "mrkdwn", "text": format!("*Time*\n{time} UTC")},
        ]}),
        json!({"type": "divider"}),
    ];
    if let Some(url) = context_url(a, dashboard) {
        blocks.push(json!({"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "View in Dashboard →", "emoji": true}, "url": url, "style": "primary"}]}));
    }
    json!({ "text": format!("{sev} {}", a.title), "blocks": blocks })
}

/// The generic webhook body: the alert's fields plus its dashboard link.
pub fn webhook_payload(a: &FiredAlert, dashboard: Option<&str>) -> Value {
    let mut v = super::alert_json(a);
    v["context_url"] = json!(context_url(a, dashboard));
    v
}
