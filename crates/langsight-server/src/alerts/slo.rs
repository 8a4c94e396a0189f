//! SLO evaluation: on demand for `GET /api/slos/status`, and every `LANGSIGHT_SLO_EVAL_INTERVAL_SECONDS` on
//! the monitor leader, which fires `slo_breached` (the original defined SLOs but never alerted on them).
//!
//! `success_rate`: percent of the agent's sessions in the window without a failed call. `latency_p99`: the
//! 99th percentile (nearest rank) of session durations — the original took the maximum.

use super::{fire, rearm, NewAlert};
use crate::state::AppState;
use langsight_core::time::now_micros;
use langsight_storage::{SessionQuery, Slo, StorageError};

/// Sessions read per evaluation (the original's cap).
const MAX_SESSIONS: usize = 10_000;

#[derive(Debug, Clone, PartialEq)]
pub struct SloStatus {
    pub current_value: Option<f64>,
    /// `ok`, `breached` or `no_data`.
    pub status: &'static str,
}

pub async fn evaluate(state: &AppState, slo: &Slo) -> Result<SloStatus, StorageError> {
    let query = SessionQuery {
        project_id: (!slo.project_id.is_empty()).then(|| slo.project_id.clone()),
        active_since: now_micros() - slo.window_hours * 3_600_000_000,
        agent_name: Some(slo.agent_name.clone()),
        health_tag: None,
        limit: MAX_SESSIONS,
        ..SessionQuery::default()
    };
    let sessions = state.storage.spans.list_sessions(query).await?;
    if sessions.is_empty() {
        return Ok(SloStatus { current_value: None, status: "no_data" });
    }
    let (value, ok) = match slo.metric.as_str() {
        "success_rate" => {
            let clean = sessions.iter().filter(|s| s.rollup.failed_calls == 0).count();
            let rate = (clean as f64 * 100.0 / sessions.len() as f64 * 100.0).round() / 100.0;
            (rate, rate >= slo.target)
        }
        _ => {
            let mut durations: Vec<f64> = sessions.iter().map(|s| s.rollup.duration_ms()).collect();
            durations.sort_by(|a, b| a.total_cmp(b));
            let rank = ((0.99 * durations.len() as f64).ceil() as usize).clamp(1, durations.len());
            let p99 = (durations[rank - 1] * 100.0).round() / 100.0;
            (p99, p99 <= slo.target)
        }
    };
    Ok(SloStatus { current_value: Some(value), status: if ok { "ok" } else { "breached" } })
}

/// Evaluates every SLO of every project once; a breach fires `slo_breached` (deduplicated per SLO), and an
/// SLO that is met again re-arms its alert.
pub async fn run_once(state: &AppState) {
    let slos = match state.storage.alerts.list_slos(None).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "slo.list_failed");
            return;
        }
    };
    for slo in slos {
        let status = match evaluate(state, &slo).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, slo = %slo.id, "slo.evaluation_failed");
                continue;
            }
        };
        match status.status {
            "breached" => {
                let value = status.current_value.unwrap_or_default();
                let (what, unit) = match slo.metric.as_str() {
                    "success_rate" => ("success rate", "%"),
                    _ => ("p99 session latency", "ms"),
                };
                fire(
                    state,
                    NewAlert {
                        project_id: slo.project_id.clone(),
                        alert_type: "slo_breached",
                        severity: "warning",
                        server_name: slo.agent_name.clone(),
                        session_id: None,
                        title: format!("SLO breached: {} {what}", slo.agent_name),
                        message: format!(
                            "Agent `{}` {what} is {value}{unit} over the last {}h; the objective is {}{unit}.",
                            slo.agent_name, slo.window_hours, slo.target
                        ),
                        scope: slo.id.clone(),
                    },
                )
                .await;
            }
            "ok" => rearm(state, &slo.project_id, "slo_breached", &slo.id).await,
            _ => {}
        }
    }
}
