//! The rules that turn observations into alerts: MCP health results (down, recovered, drift, latency spike,
//! circuit transitions) on the monitor leader, and session health tags on ingest.
//!
//! Health rules keep a little state per server (failures in a row, latency baseline, what already fired) in
//! the leader's memory, seeded from stored results when a worker becomes leader, so a leadership change
//! neither forgets an outage nor repeats its alert (the shared dedup window catches the rest).

use super::{fire, rearm, NewAlert};
use crate::state::AppState;
use langsight_core::health::HealthTag;
use langsight_shared::breaker::BreakerState;
use langsight_storage::{HealthRecord, SessionTagUpdate};
use std::collections::HashMap;
use std::sync::Mutex;

/// What the rules remember about one server.
#[derive(Debug, Default, Clone)]
struct ServerState {
    last_status: Option<String>,
    failures: u32,
    /// Exponentially weighted latency of healthy checks.
    baseline_ms: Option<f64>,
    alerted_down: bool,
    alerted_latency: bool,
}

/// Per-server rule state of this (leader) process.
#[derive(Default)]
pub struct HealthRules {
    servers: Mutex<HashMap<String, ServerState>>,
}

/// One check as the rules see it.
pub struct Observation<'a> {
    pub project_id: &'a str,
    pub record: &'a HealthRecord,
    /// Schema drift found by this check: `(breaking, description)`.
    pub drift: Option<(bool, String)>,
    pub circuit: (BreakerState, BreakerState),
    /// False when the open circuit kept the check from being sent.
    pub checked: bool,
}

impl HealthRules {
    /// Restores a server's state from its stored results (newest first), once per process.
    pub async fn seed(&self, state: &AppState, project_id: &str, server: &str) {
        let key = super::super::monitor::breaker_key(project_id, server);
        if self.servers.lock().map(|m| m.contains_key(&key)).unwrap_or(true) {
            return;
        }
        let history = state.storage.health.health_history(project_id, server, 20).await.unwrap_or_default();
        let mut s = ServerState::default();
        for r in history.iter().rev() {
            s.observe(&r.status, r.latency_ms);
        }
        // An outage that had already reached the threshold was alerted by the previous leader.
        s.alerted_down = s.failures >= state.config.alerts.consecutive_failures;
        if let Ok(mut m) = self.servers.lock() {
            m.entry(key).or_insert(s);
        }
    }

    /// Applies the rules to one check and fires what they say.
    pub async fn evaluate(&self, state: &AppState, o: Observation<'_>) {
        let name = o.record.server_name.as_str();
        let key = super::super::monitor::breaker_key(o.project_id, name);
        let settings = &state.config.alerts;
        let mut alerts = Vec::new();
        let mut rearms: Vec<&'static str> = Vec::new();
        let base = |alert_type: &'static str, severity: &'static str, title: String, message: String| NewAlert {
            project_id: o.project_id.to_string(),
            alert_type,
            severity,
            server_name: name.to_string(),
            session_id: None,
            title,
            message,
            scope: name.to_string(),
        };
        {
            let Ok(mut map) = self.servers.lock() else { return };
            let s = map.entry(key).or_default();
            let status = o.record.status.as_str();
            if o.checked {
                if status == "down" {
                    let n = s.failures + 1;
                    if n >= settings.consecutive_failures && !s.alerted_down {
                        s.alerted_down = true;
                        alerts.push(base(
                            "server_down",
                            "critical",
                            format!("MCP server '{name}' is DOWN"),
                            format!(
                                "Server '{name}' has been unreachable for {n} consecutive checks. Error: {}",
                                o.record.error.as_deref().unwrap_or("unknown")
                            ),
                        ));
                    }
                } else if s.alerted_down {
                    // Back after an alerted outage (drift alone does not count as an outage here).
                    s.alerted_down = false;
                    let latency = o.record.latency_ms.map(|l| format!("Latency: {l:.0}ms, ")).unwrap_or_default();
                    alerts.push(base(
                        "server_recovered",
                        "info",
                        format!("MCP server '{name}' recovered"),
                        format!("Server '{name}' is back online. {latency}tools: {}", o.record.tools_count),
                    ));
                    rearms.push("server_down");
                }
                if status == "up" {
                    let spike = match (o.record.latency_ms, s.baseline_ms) {
                        (Some(l), Some(b)) if b > 0.0 && l >= b * settings.latency_spike_multiplier => Some((l, b)),
                        _ => None,
                    };
                    match spike {
                        Some((l, b)) if !s.alerted_latency => {
                            s.alerted_latency = true;
                            alerts.push(base(
                                "high_latency",
                                "warning",
                                format!("High latency on '{name}'"),
                                format!("Server '{name}' latency is {l:.0}ms — {:.1}x baseline ({b:.0}ms).", l / b),
                            ));
                        }
                        None if s.alerted_latency => {
                            s.alerted_latency = false;
                            rearms.push("high_latency");
                        }
                        _ => {}
                    }
                } else if s.alerted_latency {
                    s.alerted_latency = false;
                    rearms.push("high_latency");
                }
                s.observe(status, o.record.latency_ms);
            }
        }
        if let Some((breaking, detail)) = &o.drift {
            let mut a = base(
                "schema_drift",
                if *breaking { "critical" } else { "warning" },
                format!("Schema drift detected on '{name}'"),
                format!("Tool schema changed on server '{name}'. Details: {detail}. Verify this was an intentional deployment."),
            );
            // Each new schema is its own alert.
            a.scope = format!("{name}:{}", o.record.schema_hash.as_deref().unwrap_or(""));
            alerts.push(a);
        }
        match o.circuit {
            (before, BreakerState::Open) if before != BreakerState::Open => {
                alerts.push(base(
                    "circuit_breaker_open",
                    "critical",
                    format!("Circuit opened for MCP server '{name}'"),
                    format!(
                        "Checks of '{name}' are paused after repeated failures; a probe follows after the cooldown."
                    ),
                ));
                rearms.push("circuit_breaker_recovered");
            }
            (before, BreakerState::Closed) if before != BreakerState::Closed => {
                alerts.push(base(
                    "circuit_breaker_recovered",
                    "info",
                    format!("Circuit closed for MCP server '{name}'"),
                    format!("'{name}' answered its probes; checks run normally again."),
                ));
                rearms.push("circuit_breaker_open");
            }
            _ => {}
        }
        for t in rearms {
            rearm(state, o.project_id, t, name).await;
        }
        for a in alerts {
            if a.alert_type == "server_down" {
                rearm(state, o.project_id, "server_recovered", name).await;
            }
            fire(state, a).await;
        }
    }
}

impl ServerState {
    fn observe(&mut self, status: &str, latency_ms: Option<f64>) {
        match status {
            "up" => {
                self.failures = 0;
                if let Some(l) = latency_ms.filter(|l| *l > 0.0) {
                    self.baseline_ms = Some(match self.baseline_ms {
                        Some(b) => 0.9 * b + 0.1 * l,
                        None => l,
                    });
                }
            }
            "down" => self.failures += 1,
            _ => {}
        }
        self.last_status = Some(status.to_string());
    }
}

/// The alert a session tag raises, if any.
fn tag_alert(tag: HealthTag) -> Option<(&'static str, &'static str)> {
    match tag {
        HealthTag::LoopDetected => Some(("loop_detected", "warning")),
        HealthTag::BudgetExceeded => Some(("budget_exceeded", "critical")),
        t if t.is_failure() => Some(("agent_failure", "critical")),
        _ => None,
    }
}

/// What the batch said about one session: its first agent and how many of its spans failed.
#[derive(Debug, Default, Clone)]
pub struct BatchSession {
    pub agent: Option<String>,
    pub failed: usize,
}

/// Session tags changed by an ingest: a session that newly ends in a failure tag (or a different kind of
/// failure) raises one alert. Several workers ingesting one session's spans see the tag change once (the
/// stored tag is updated in the same transaction), and the dedup window catches any race.
pub async fn on_session_tags(state: &AppState, updates: Vec<SessionTagUpdate>, batch: HashMap<String, BatchSession>) {
    for u in updates {
        let Some((alert_type, severity)) = tag_alert(u.current) else { continue };
        if u.previous.and_then(tag_alert).map(|p| p.0) == Some(alert_type) {
            continue;
        }
        let info = batch.get(&u.session_id).cloned().unwrap_or_default();
        let agent = info.agent.unwrap_or_else(|| "unknown".into());
        let tag = u.current.as_str();
        fire(
            state,
            NewAlert {
                project_id: u.project_id.clone(),
                alert_type,
                severity,
                server_name: agent.clone(),
                session_id: Some(u.session_id.clone()),
                title: format!("Agent session failed: {}", tag.replace('_', " ")),
                message: format!(
                    "Session `{}` ended with health tag **{tag}**. Agent: {agent}, failed tool calls: {}.",
                    u.session_id, info.failed
                ),
                scope: u.session_id.clone(),
            },
        )
        .await;
    }
}
