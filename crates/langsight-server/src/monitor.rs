//! The monitor loop: checks every configured MCP server each interval, through its circuit breaker, on
//! exactly one worker of the deployment (the holder of the `monitor` lease), storing each result and
//! publishing it as a `health:check` event.
//!
//! The breaker is wired in: while a server's circuit is open no check is sent to it; after the cooldown a
//! limited number of half-open probes decide whether it closes again. Its state lives in the shared breaker
//! store, so every worker reports the same circuit state.

use crate::config::MonitoredServer;
use crate::state::AppState;
use futures_util::StreamExt;
use langsight_core::time::{iso_z, now_micros};
use langsight_monitor::{check, CheckResult, Status};
use langsight_shared::breaker::{BreakerState, BreakerStatus};
use langsight_shared::bus::Event;
use langsight_storage::HealthRecord;
use serde_json::json;
use std::time::Duration;

/// Servers checked at once.
const CONCURRENCY: usize = 10;

/// What one round did for one server.
pub struct Outcome {
    pub record: HealthRecord,
    pub breaker: BreakerStatus,
    /// False when the open circuit prevented the check (nothing was sent to the server).
    pub checked: bool,
}

/// Starts the loop when monitoring is enabled and servers are configured.
pub fn spawn(state: AppState) -> Option<tokio::task::JoinHandle<()>> {
    if !state.config.monitor_enabled || state.config.servers.is_empty() {
        tracing::info!("monitor.skipped: no servers in the configuration or LANGSIGHT_MONITOR_ENABLED=false");
        return None;
    }
    Some(tokio::spawn(async move {
        let holder = format!("{}-{}", state.config.worker_id.unwrap_or(0), std::process::id());
        let interval = state.config.monitor_interval;
        // The lease outlives one interval, so a live leader keeps it; a dead leader's lease expires within
        // about one interval and another worker takes over.
        let lease_ms = (interval.as_millis() as u64).saturating_mul(3) / 2 + 1000;
        let mut leading = false;
        loop {
            if state.shared.leases.acquire("monitor", &holder, lease_ms).await {
                if !leading {
                    tracing::info!(holder = %holder, "monitor.leader: this worker runs the health checks");
                    leading = true;
                }
                run_round(&state).await;
            } else if leading {
                tracing::info!(holder = %holder, "monitor.follower: another worker leads");
                leading = false;
            }
            // Jitter (±10 %) so replicas started together do not check in lockstep.
            let jitter = (interval.as_millis() as u64 / 10).max(1);
            let offset = (now_micros() as u64 / 1000) % (2 * jitter);
            tokio::time::sleep(interval + Duration::from_millis(offset) - Duration::from_millis(jitter)).await;
        }
    }))
}

/// Checks every configured server once (bounded concurrency), stores and publishes the results.
pub async fn run_round(state: &AppState) -> Vec<Outcome> {
    let servers: Vec<MonitoredServer> = state.config.servers.clone();
    futures_util::stream::iter(servers)
        .map(|s| async move { check_one(state, &s).await })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await
}

async fn check_one(state: &AppState, server: &MonitoredServer) -> Outcome {
    let name = &server.spec.name;
    let admit = state.shared.breakers.admit(name, &server.breaker).await;
    if !admit.allowed {
        let record = HealthRecord {
            server_name: name.clone(),
            project_id: String::new(),
            status: Status::Down.as_str().into(),
            latency_ms: None,
            tools_count: 0,
            tools_json: "[]".into(),
            schema_hash: None,
            error: Some("circuit breaker open: checks paused until the cooldown ends".into()),
            checked_at: now_micros(),
        };
        return Outcome { record, breaker: admit.status, checked: false };
    }
    let result = check(&server.spec).await;
    let step = state.shared.breakers.record(name, &server.breaker, result.status != Status::Down).await;
    if step.before != step.after {
        tracing::warn!(server = %name, from = step.before.as_str(), to = step.after.as_str(), "monitor.circuit_changed");
    }
    let record = to_record(&result);
    if let Err(e) = state.storage.health.save_health(record.clone()).await {
        tracing::error!(server = %name, error = %e, "monitor.save_failed");
    }
    let event = json!({
        "server_name": name,
        "status": record.status,
        "latency_ms": record.latency_ms,
        "circuit_state": step.after.as_str(),
        "checked_at": iso_z(record.checked_at),
        "project_id": null,
        "error": record.error,
    });
    state.shared.bus.publish(None, vec![Event { name: "health:check".into(), data: event.to_string() }]).await;
    Outcome { record, breaker: step.status, checked: true }
}

fn to_record(r: &CheckResult) -> HealthRecord {
    let tools: Vec<_> = r
        .tools
        .iter()
        .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.input_schema}))
        .collect();
    HealthRecord {
        server_name: r.server_name.clone(),
        project_id: String::new(),
        status: r.status.as_str().into(),
        latency_ms: r.latency_ms,
        tools_count: r.tools.len() as i64,
        tools_json: serde_json::Value::Array(tools).to_string(),
        schema_hash: r.schema_hash.clone(),
        error: r.error.clone(),
        checked_at: now_micros(),
    }
}

/// The original's `HealthCheckResult`, plus the circuit state.
pub fn result_json(record: &HealthRecord, breaker: &BreakerStatus) -> serde_json::Value {
    let tools: serde_json::Value = serde_json::from_str(&record.tools_json).unwrap_or_else(|_| json!([]));
    json!({
        "server_name": record.server_name,
        "status": record.status,
        "latency_ms": record.latency_ms,
        "tools": tools,
        "tools_count": record.tools_count,
        "schema_hash": record.schema_hash,
        "checked_at": iso_z(record.checked_at),
        "error": record.error,
        "project_id": record.project_id,
        "circuit_state": breaker.state.as_str(),
        "circuit": {
            "state": breaker.state.as_str(),
            "consecutive_failures": breaker.consecutive_failures,
            "opened_at": breaker.opened_at_ms.map(|ms| iso_z(ms as i64 * 1000)),
        },
    })
}

/// A server known from the configuration but never checked.
pub fn unknown_json(name: &str) -> serde_json::Value {
    let closed = BreakerStatus { state: BreakerState::Closed, consecutive_failures: 0, opened_at_ms: None };
    let mut v = result_json(
        &HealthRecord {
            server_name: name.into(),
            project_id: String::new(),
            status: "unknown".into(),
            latency_ms: None,
            tools_count: 0,
            tools_json: "[]".into(),
            schema_hash: None,
            error: None,
            checked_at: now_micros(),
        },
        &closed,
    );
    v["status"] = json!("unknown");
    v
}
