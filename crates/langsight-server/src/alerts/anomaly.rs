//! Anomaly detection (z-score) over the hourly tool-call aggregates, as in the original's reliability
//! engine: per (server, tool), the mean and population standard deviation of the hourly error rate and
//! average latency over the baseline window (hours with calls, at least 3 of them), against the current
//! window. `z = (current − mean) / max(stddev, floor)` with floors 0.01 (error rate) and 10 ms (latency);
//! anomalous when |z| ≥ the threshold, critical from 3.
//!
//! Computing anomalies never fires alerts by itself (the API reads them too); the monitor leader's rule
//! loop does, and only for deteriorations (an error rate that drops is not a page).

use super::{fire, NewAlert};
use crate::state::AppState;
use langsight_storage::ToolHour;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    pub project_id: String,
    pub server_name: String,
    pub tool_name: String,
    /// `error_rate` or `avg_latency_ms`.
    pub metric: &'static str,
    pub current_value: f64,
    pub baseline_mean: f64,
    pub baseline_stddev: f64,
    pub z_score: f64,
    /// `critical` (|z| ≥ 3) or `warning`.
    pub severity: &'static str,
    pub sample_hours: usize,
}

fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

/// Anomalies in `rows` (hourly aggregates), comparing the hours from `current_from` on with the earlier
/// ones; sorted by |z|, largest first.
pub fn detect(rows: &[ToolHour], current_from: i64, z_threshold: f64) -> Vec<Anomaly> {
    type Key<'a> = (&'a str, &'a str, &'a str);
    let mut baseline: BTreeMap<Key, Vec<(f64, f64)>> = BTreeMap::new();
    let mut current: BTreeMap<Key, (i64, i64, f64)> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.calls > 0) {
        let key = (r.project_id.as_str(), r.server_name.as_str(), r.tool_name.as_str());
        if r.hour >= current_from {
            let c = current.entry(key).or_default();
            c.0 += r.calls;
            c.1 += r.errors;
            c.2 += r.latency_sum_ms;
        } else {
            baseline
                .entry(key)
                .or_default()
                .push((r.errors as f64 / r.calls as f64, r.latency_sum_ms / r.calls as f64));
        }
    }
    let mut out = Vec::new();
    for (key, (calls, errors, latency)) in current {
        let Some(hours) = baseline.get(&key).filter(|h| h.len() >= 3) else { continue };
        let now = [(errors as f64 / calls as f64), latency / calls as f64];
        for (i, (metric, floor)) in [("error_rate", 0.01), ("avg_latency_ms", 10.0)].into_iter().enumerate() {
            let values: Vec<f64> = hours.iter().map(|h| if i == 0 { h.0 } else { h.1 }).collect();
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
            let std = var.sqrt().max(floor);
            let z = (now[i] - mean) / std;
            if !z.is_finite() || z.abs() < z_threshold {
                continue;
            }
            out.push(Anomaly {
                project_id: key.0.to_string(),
                server_name: key.1.to_string(),
                tool_name: key.2.to_string(),
                metric,
                current_value: round(now[i], 4),
                baseline_mean: round(mean, 4),
                baseline_stddev: round(std, 4),
                z_score: round(z, 2),
                severity: if z.abs() >= 3.0 { "critical" } else { "warning" },
                sample_hours: values.len(),
            });
        }
    }
    out.sort_by(|a, b| b.z_score.abs().total_cmp(&a.z_score.abs()));
    out
}

/// One pass of the anomaly rule: the last hour against the previous 7 days, every project.
pub async fn run_once(state: &AppState) {
    let now_hour = langsight_core::time::now_micros().div_euclid(3_600_000_000);
    let rows = match state.storage.spans.tool_hours(None, now_hour - 168).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "anomaly.read_failed");
            return;
        }
    };
    for a in detect(&rows, now_hour, state.config.alerts.anomaly_z_threshold) {
        if a.z_score <= 0.0 {
            continue;
        }
        fire(
            state,
            NewAlert {
                project_id: a.project_id.clone(),
                alert_type: if a.severity == "critical" { "anomaly_critical" } else { "anomaly_warning" },
                severity: a.severity,
                server_name: a.server_name.clone(),
                session_id: None,
                title: format!("Anomaly detected: {} on {}", a.tool_name, a.server_name),
                message: format!(
                    "Tool `{}` on `{}` shows anomalous `{}` (z-score: {:.1}). This deviates significantly from the 168h baseline.",
                    a.tool_name, a.server_name, a.metric, a.z_score
                ),
                scope: format!("{}:{}:{}", a.server_name, a.tool_name, a.metric),
            },
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hour(h: i64, calls: i64, errors: i64, latency: f64) -> ToolHour {
        ToolHour {
            project_id: String::new(),
            server_name: "pg".into(),
            tool_name: "query".into(),
            hour: h,
            calls,
            errors,
            latency_sum_ms: latency * calls as f64,
        }
    }

    #[test]
    fn z_scores_by_hand() {
        // Baseline error rates 0.0, 0.1, 0.2 (mean 0.1, population std 0.08165); latency 100 ms flat (std
        // floored to 10 ms). Current hour: 50 % errors at 150 ms.
        let rows = vec![hour(1, 10, 0, 100.0), hour(2, 10, 1, 100.0), hour(3, 10, 2, 100.0), hour(10, 10, 5, 150.0)];
        let found = detect(&rows, 10, 2.0);
        assert_eq!(found.len(), 2, "{found:?}");
        let err = found.iter().find(|a| a.metric == "error_rate").unwrap();
        assert_eq!((err.current_value, err.baseline_mean, err.baseline_stddev), (0.5, 0.1, 0.0816));
        assert_eq!(err.z_score, 4.9);
        assert_eq!(err.severity, "critical");
        let lat = found.iter().find(|a| a.metric == "avg_latency_ms").unwrap();
        assert_eq!((lat.z_score, lat.baseline_stddev, lat.sample_hours), (5.0, 10.0, 3));
        // Too little history: nothing.
        assert!(detect(&rows[1..], 10, 2.0).is_empty());
        // Within the threshold: nothing.
        assert!(detect(
            &[hour(1, 10, 1, 100.0), hour(2, 10, 1, 100.0), hour(3, 10, 1, 100.0), hour(10, 10, 1, 105.0)],
            10,
            2.0
        )
        .is_empty());
    }
}
