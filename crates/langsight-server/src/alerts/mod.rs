//! Alerts: one path for every source (MCP health rules, session tags, SLOs, security), in this order:
//! dedup → per-project toggles → persist → `alert:fired` event → delivery.
//!
//! Dedup is the shared alert-dedup feature (`langsight:alerts:dedup:{project}:{type}:{scope}`, `SET NX EX`
//! in Redis), so an alert seen by every worker fires once. Delivery runs off the request path through a
//! bounded queue ([`deliver`]); every outcome is persisted, so nothing is lost silently.

pub mod anomaly;
pub mod deliver;
pub mod rules;
pub mod slo;

use crate::state::AppState;
use langsight_core::time::{iso_offset, now_micros};
use langsight_shared::bus::Event;
use langsight_storage::{AlertConfig, FiredAlert};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

/// An alert about to be raised.
#[derive(Debug, Clone)]
pub struct NewAlert {
    /// `""` for the operator's servers (visible in every project).
    pub project_id: String,
    pub alert_type: &'static str,
    /// `critical`, `warning` or `info`.
    pub severity: &'static str,
    pub server_name: String,
    pub session_id: Option<String>,
    pub title: String,
    pub message: String,
    /// What makes two alerts of one type the same alert (a server, a session, an SLO…).
    pub scope: String,
}

/// What [`fire`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fired {
    /// Persisted and queued for delivery, with its id.
    Yes(String),
    /// The same alert fired within the dedup window.
    Duplicate,
    /// The project turned this kind of alert off.
    Disabled,
}

/// Alert kinds and whether they are on when a project has not said (the original's defaults, plus ours).
pub const DEFAULT_TOGGLES: &[(&str, bool)] = &[
    ("agent_failure", true),
    ("slo_breached", true),
    ("anomaly_critical", true),
    ("anomaly_warning", false),
    ("security_critical", true),
    ("security_high", false),
    ("mcp_down", true),
    ("mcp_recovered", true),
    ("schema_drift", true),
    ("high_latency", true),
    ("circuit_breaker_open", true),
    ("circuit_breaker_recovered", true),
    ("loop_detected", true),
    ("budget_exceeded", true),
];

/// The toggle an alert type answers to.
pub fn toggle_of(alert_type: &str) -> &str {
    match alert_type {
        "server_down" => "mcp_down",
        "server_recovered" => "mcp_recovered",
        other => other,
    }
}

/// The stored alert types a feed filter name stands for. The original fired `agent_failure` for every
/// unhealthy session, where we fire `loop_detected` and `budget_exceeded` for those two tags, so its name
/// finds all three; the toggle names (`mcp_down`, `mcp_recovered`) find the types they switch, and the
/// original's enum names `anomaly_detected` / `security_finding` find the severity-split types its API
/// actually stored. Any other name is a stored type as is.
pub fn stored_types(filter: &str) -> &[&str] {
    match filter {
        "agent_failure" => &["agent_failure", "loop_detected", "budget_exceeded"],
        "mcp_down" => &["server_down"],
        "mcp_recovered" => &["server_recovered"],
        "anomaly_detected" => &["anomaly_critical", "anomaly_warning"],
        "security_finding" => &["security_critical", "security_high"],
        _ => &[],
    }
}

/// The project's toggles over the defaults.
pub fn effective_toggles(stored: Option<&AlertConfig>) -> std::collections::BTreeMap<String, bool> {
    let mut t: std::collections::BTreeMap<String, bool> =
        DEFAULT_TOGGLES.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    if let Some(c) = stored {
        for (k, v) in &c.alert_types {
            t.insert(k.clone(), *v);
        }
    }
    t
}

/// The dedup key's scope part: `{project}:{type}:{scope}`.
fn dedup_scope(a: &NewAlert) -> String {
    format!("{}:{}:{}", a.project_id, a.alert_type, a.scope)
}

/// Forgets that an alert fired, so the next one of its kind and scope fires at once: called when the
/// condition ends (a server recovers, an SLO is met again), so the next incident is not swallowed by the
/// dedup window of the previous one.
pub async fn rearm(state: &AppState, project_id: &str, alert_type: &str, scope: &str) {
    state.shared.dedup.release(&format!("{project_id}:{alert_type}:{scope}")).await;
}

/// Raises an alert. Never fails: storage trouble is logged and counted, and the alert is still delivered.
pub async fn fire(state: &AppState, a: NewAlert) -> Fired {
    if !state.shared.dedup.first_fire(&dedup_scope(&a), state.config.alerts.dedup_seconds).await {
        state.metrics.alerts_deduplicated.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(alert_type = a.alert_type, scope = %a.scope, "alert.duplicate");
        return Fired::Duplicate;
    }
    let stored = match state.storage.alerts.alert_config(&a.project_id).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "alert.config_unreadable: firing with default toggles");
            None
        }
    };
    if !effective_toggles(stored.as_ref()).get(toggle_of(a.alert_type)).copied().unwrap_or(true) {
        tracing::info!(alert_type = a.alert_type, project = %a.project_id, "alert.disabled_by_project");
        return Fired::Disabled;
    }
    let alert = FiredAlert {
        id: uuid::Uuid::new_v4().simple().to_string(),
        project_id: a.project_id.clone(),
        alert_type: a.alert_type.to_string(),
        severity: a.severity.to_string(),
        server_name: a.server_name.clone(),
        session_id: a.session_id.clone(),
        title: a.title.clone(),
        message: a.message.clone(),
        fired_at: now_micros(),
        status: "active".into(),
        acked_at: None,
        acked_by: None,
        snoozed_until: None,
        resolved_at: None,
    };
    if let Err(e) = state.storage.alerts.insert_alert(alert.clone()).await {
        tracing::error!(error = %e, alert_type = a.alert_type, "alert.persist_failed: delivering anyway");
    }
    state.metrics.alerts_fired.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(alert_type = a.alert_type, severity = a.severity, title = %a.title, "alert.fired");
    let scope = (!alert.project_id.is_empty()).then_some(alert.project_id.as_str());
    let event = Event { name: "alert:fired".into(), data: alert_json(&alert).to_string() };
    state.shared.bus.publish(scope, vec![event]).await;
    deliver::enqueue(state, alert.clone(), stored).await;
    Fired::Yes(alert.id)
}

/// The original's `FiredAlert` shape.
pub fn alert_json(a: &FiredAlert) -> Value {
    json!({
        "id": a.id,
        "alert_type": a.alert_type,
        "severity": a.severity,
        "server_name": a.server_name,
        "session_id": a.session_id,
        "title": a.title,
        "message": a.message,
        "fired_at": iso_offset(a.fired_at),
        "status": a.status,
        "acked_at": a.acked_at.map(iso_offset),
        "acked_by": a.acked_by,
        "snoozed_until": a.snoozed_until.map(iso_offset),
        "resolved_at": a.resolved_at.map(iso_offset),
        "project_id": a.project_id,
    })
}
