//! The monitor loop: checks every configured MCP server each interval, through its circuit breaker, on
//! exactly one worker of the deployment (the holder of the `monitor` lease), storing each result and
//! publishing it as a `health:check` event.
//!
//! Two kinds of servers are checked: the operator's (from `.langsight.yaml`, global, trusted as written) and
//! the ones projects registered through `/api/servers/metadata` with a URL (checked against the SSRF rules
//! before every check, unless `LANGSIGHT_ALLOW_PRIVATE_MCP_URLS` allows private networks).
//!
//! The breaker is wired in: while a server's circuit is open no check is sent to it; after the cooldown a
//! limited number of half-open probes decide whether it closes again. Its state lives in the shared breaker
//! store, so every worker reports the same circuit state.

use crate::alerts::rules::Observation;
use crate::config::MonitoredServer;
use crate::state::AppState;
use futures_util::StreamExt;
use langsight_core::time::{iso_z, now_micros};
use langsight_monitor::drift::{classify, DriftType};
use langsight_monitor::{check_pinned, CheckResult, Pinned, Status, ToolInfo};
use langsight_shared::breaker::{BreakerState, BreakerStatus};
use langsight_shared::bus::Event;
use langsight_storage::{DriftRecord, HealthRecord};
use serde_json::json;
use std::time::Duration;

/// Servers checked at once.
const CONCURRENCY: usize = 10;

/// A server the monitor checks, with the project that registered it (`""` for the operator's).
#[derive(Clone)]
pub struct Target {
    pub project_id: String,
    pub server: MonitoredServer,
    /// Registered through the API: its URL passes the SSRF rules before each check.
    pub from_api: bool,
}

/// The circuit-breaker key of a server: its name for the operator's servers, `{project}/{name}` for a
/// project's (two projects may register servers of the same name at different URLs).
pub fn breaker_key(project_id: &str, name: &str) -> String {
    if project_id.is_empty() {
        name.to_string()
    } else {
        format!("{project_id}/{name}")
    }
}

/// The operator's servers plus every project's API-registered servers that have an HTTP URL; `project`
/// narrows the project servers to one project.
pub async fn targets(state: &AppState, project: Option<&str>) -> Vec<Target> {
    let mut out: Vec<Target> = state
        .config
        .servers
        .iter()
        .map(|s| Target { project_id: String::new(), server: s.clone(), from_api: false })
        .collect();
    let registered = match state.storage.servers.list_servers(project).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "monitor.registered_servers_unreadable");
            return out;
        }
    };
    for m in registered {
        if let Some(server) = api_server(&m) {
            out.push(Target { project_id: m.project_id.clone(), server, from_api: true });
        }
    }
    out
}

/// How a server registered through the API is checked: HTTP transports only (the API never starts local
/// processes); `sse` when said so or when the URL ends in `/sse`, Streamable HTTP otherwise.
fn api_server(m: &langsight_storage::ServerMetadata) -> Option<MonitoredServer> {
    use langsight_monitor::Transport;
    if m.url.is_empty() || m.transport == "stdio" {
        return None;
    }
    let sse = m.transport == "sse" || (m.transport.is_empty() && m.url.trim_end_matches('/').ends_with("/sse"));
    let transport = if sse {
        Transport::Sse { url: m.url.clone(), headers: vec![] }
    } else {
        Transport::StreamableHttp { url: m.url.clone(), headers: vec![] }
    };
    Some(MonitoredServer {
        spec: langsight_monitor::ServerSpec {
            name: m.server_name.clone(),
            transport,
            timeout: Duration::from_secs(5),
            health_tool: None,
            health_tool_args: Default::default(),
        },
        breaker: Default::default(),
    })
}

/// What one round did for one server.
pub struct Outcome {
    pub record: HealthRecord,
    pub breaker: BreakerStatus,
    /// False when the open circuit prevented the check (nothing was sent to the server).
    pub checked: bool,
    /// The server checked (the scheduled security scan reads its definition).
    pub target: Target,
}

/// Starts the loop when monitoring is enabled and servers are configured.
pub fn spawn(state: AppState) -> Option<tokio::task::JoinHandle<()>> {
    if !state.config.monitor_enabled {
        tracing::info!("monitor.skipped: LANGSIGHT_MONITOR_ENABLED=false");
        return None;
    }
    Some(tokio::spawn(async move {
        rebuild_breakers(&state).await;
        let holder = format!("{}-{}", state.config.worker_id.unwrap_or(0), std::process::id());
        let interval = state.config.monitor_interval;
        // The lease outlives one interval, so a live leader keeps it; a dead leader's lease expires within
        // about one interval and another worker takes over.
        let lease_ms = (interval.as_millis() as u64).saturating_mul(3) / 2 + 1000;
        // SLOs are evaluated by the same leader, on their own interval.
        let slo_state = state.clone();
        let slo_holder = holder.clone();
        let slos = tokio::spawn(async move {
            loop {
                tokio::time::sleep(slo_state.config.alerts.slo_interval).await;
                if slo_state.shared.leases.acquire("monitor", &slo_holder, lease_ms).await {
                    crate::alerts::slo::run_once(&slo_state).await;
                }
            }
        });
        let _abort_slos = AbortOnDrop(slos);
        let (anomaly_state, anomaly_holder) = (state.clone(), holder.clone());
        let anomalies = tokio::spawn(async move {
            loop {
                tokio::time::sleep(anomaly_state.config.alerts.anomaly_interval).await;
                if anomaly_state.shared.leases.acquire("monitor", &anomaly_holder, lease_ms).await {
                    crate::alerts::anomaly::run_once(&anomaly_state).await;
                }
            }
        });
        let _abort_anomalies = AbortOnDrop(anomalies);
        let (retention_state, retention_holder) = (state.clone(), holder.clone());
        let retention = tokio::spawn(async move {
            loop {
                if retention_state.shared.leases.acquire("monitor", &retention_holder, lease_ms).await {
                    apply_retention(&retention_state).await;
                }
                tokio::time::sleep(retention_state.config.retention_interval).await;
            }
        });
        let _abort_retention = AbortOnDrop(retention);
        // Scheduled security scans ride on the rounds (see `scans::scheduled`), in the background so a slow
        // vulnerability database never delays the next health round; one batch at a time.
        let scanning = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut scan_batch: Option<AbortOnDrop> = None;
        let mut leading = false;
        loop {
            if state.shared.leases.acquire("monitor", &holder, lease_ms).await {
                if !leading {
                    tracing::info!(holder = %holder, "monitor.leader: this worker runs the health checks");
                    leading = true;
                }
                let outcomes = run_round(&state, None).await;
                if let Some(every) = state.config.security_scan_interval {
                    use std::sync::atomic::Ordering;
                    if !scanning.swap(true, Ordering::AcqRel) {
                        let (scan_state, flag) = (state.clone(), scanning.clone());
                        // The previous batch has finished (the flag was clear): replacing it aborts nothing.
                        drop(scan_batch.replace(AbortOnDrop(tokio::spawn(async move {
                            crate::scans::scheduled(&scan_state, &outcomes, every).await;
                            flag.store(false, Ordering::Release);
                        }))));
                    }
                }
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

/// Deletes data older than `LANGSIGHT_RETENTION_DAYS` (spans, sessions, hourly aggregates, health history
/// but each server's latest result, drift); run by the leader, so once per deployment.
pub async fn apply_retention(state: &AppState) {
    let days = state.config.retention_days;
    if days == 0 {
        return;
    }
    let before = now_micros() - days as i64 * 86_400_000_000;
    match state.storage.spans.prune_before(before).await {
        Ok(n) if n > 0 => tracing::info!(spans = n, days, "retention.pruned"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "retention.spans_failed"),
    }
    if let Err(e) = state.storage.health.prune_health_before(before).await {
        tracing::warn!(error = %e, "retention.health_failed");
    }
}

/// Stops a spawned task when the owner stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// After a restart, a server whose last `failure_threshold` stored checks all failed, the newest within the
/// cooldown, gets its open circuit back — the breaker does not forget an outage because the process restarted.
/// Shared state that survived (Redis) is never overwritten.
pub async fn rebuild_breakers(state: &AppState) {
    for t in targets(state, None).await {
        let s = &t.server;
        let n = s.breaker.failure_threshold as usize;
        let Ok(rows) = state.storage.health.health_history(&t.project_id, &s.spec.name, n).await else { continue };
        if rows.len() < n || rows.iter().any(|r| r.status != Status::Down.as_str()) {
            continue;
        }
        let newest_ms = (rows[0].checked_at / 1000) as u64;
        let now_ms = (now_micros() / 1000) as u64;
        if now_ms.saturating_sub(newest_ms) < s.breaker.cooldown_ms {
            let key = breaker_key(&t.project_id, &s.spec.name);
            state.shared.breakers.restore_open(&key, &s.breaker, n as u32, newest_ms).await;
            tracing::info!(server = %s.spec.name, "monitor.breaker_restored: open after a restart, from stored results");
        }
    }
}

/// Checks every server once (bounded concurrency), stores and publishes the results; `project` narrows the
/// API-registered servers to one project.
pub async fn run_round(state: &AppState, project: Option<&str>) -> Vec<Outcome> {
    let servers = targets(state, project).await;
    futures_util::stream::iter(servers)
        .map(|t| async move { check_one(state, &t).await })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await
}

async fn check_one(state: &AppState, target: &Target) -> Outcome {
    let server = &target.server;
    let name = &server.spec.name;
    let key = breaker_key(&target.project_id, name);
    state.health_rules.seed(state, &target.project_id, name).await;
    let admit = state.shared.breakers.admit(&key, &server.breaker).await;
    if !admit.allowed {
        let record = HealthRecord {
            server_name: name.clone(),
            project_id: target.project_id.clone(),
            status: Status::Down.as_str().into(),
            latency_ms: None,
            tools_count: 0,
            tools_json: "[]".into(),
            schema_hash: None,
            error: Some("circuit breaker open: checks paused until the cooldown ends".into()),
            checked_at: now_micros(),
        };
        let circuit = (admit.status.state, admit.status.state);
        let o = Observation { project_id: &target.project_id, record: &record, drift: None, circuit, checked: false };
        state.health_rules.evaluate(state, o).await;
        return Outcome { record, breaker: admit.status, checked: false, target: target.clone() };
    }
    let result = check_target(target, state.config.allow_private_mcp_urls).await;
    let step = state.shared.breakers.record(&key, &server.breaker, result.status != Status::Down).await;
    if step.before != step.after {
        tracing::warn!(server = %name, from = step.before.as_str(), to = step.after.as_str(), "monitor.circuit_changed");
    }
    let mut record = to_record(&result);
    record.project_id = target.project_id.clone();
    let drift = detect_drift(state, &result, &mut record).await;
    if let Err(e) = state.storage.health.save_health(record.clone()).await {
        tracing::error!(server = %name, error = %e, "monitor.save_failed");
    }
    let event = json!({
        "server_name": name,
        "status": record.status,
        "latency_ms": record.latency_ms,
        "circuit_state": step.after.as_str(),
        "checked_at": iso_z(record.checked_at),
        "project_id": (!target.project_id.is_empty()).then_some(&target.project_id),
        "error": record.error,
    });
    let scope = (!target.project_id.is_empty()).then_some(target.project_id.as_str());
    state.shared.bus.publish(scope, vec![Event { name: "health:check".into(), data: event.to_string() }]).await;
    let o = Observation {
        project_id: &target.project_id,
        record: &record,
        drift,
        circuit: (step.before, step.after),
        checked: true,
    };
    state.health_rules.evaluate(state, o).await;
    Outcome { record, breaker: step.status, checked: true, target: target.clone() }
}

/// Checks one server. An API-registered server's URL is vetted first and the check then connects only to the
/// addresses that passed ([`vet`]); the operator's servers are checked as configured.
pub async fn check_target(target: &Target, allow_private: bool) -> CheckResult {
    check_target_with(target, allow_private, crate::url_policy::system_lookup).await
}

/// [`check_target`] with the name lookup given (tests answer it themselves).
pub async fn check_target_with<F, Fut>(target: &Target, allow_private: bool, resolve: F) -> CheckResult
where
    F: FnOnce(String, u16) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<Vec<std::net::SocketAddr>>>,
{
    match vet_with(target, allow_private, resolve).await {
        Err(reason) => CheckResult {
            server_name: target.server.spec.name.clone(),
            status: Status::Down,
            latency_ms: None,
            tools: vec![],
            schema_hash: None,
            server_version: None,
            protocol_version: None,
            error: Some(format!("blocked URL — {reason}")),
        },
        Ok(pinned) => check_pinned(&target.server.spec, pinned.as_ref()).await,
    }
}

/// Whether an API-registered server's URL may be contacted now, and at which addresses: `Err` says why not;
/// `Ok(Some(pin))` holds the addresses that passed, which the connection must use (a second lookup could
/// answer differently: DNS rebinding); `Ok(None)` for the operator's servers, trusted as configured. The
/// rules are applied at every check, so a DNS answer that changed since registration is caught too.
pub async fn vet(state: &AppState, target: &Target) -> Result<Option<Pinned>, String> {
    vet_with(target, state.config.allow_private_mcp_urls, crate::url_policy::system_lookup).await
}

async fn vet_with<F, Fut>(target: &Target, allow_private: bool, resolve: F) -> Result<Option<Pinned>, String>
where
    F: FnOnce(String, u16) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<Vec<std::net::SocketAddr>>>,
{
    if !target.from_api {
        return Ok(None);
    }
    let url = match &target.server.spec.transport {
        langsight_monitor::Transport::Sse { url, .. } | langsight_monitor::Transport::StreamableHttp { url, .. } => url,
        langsight_monitor::Transport::Stdio { .. } => return Err("the API cannot register local processes".into()),
    };
    let purpose = crate::url_policy::Purpose::McpServer;
    let checked =
        crate::url_policy::check_with(url, purpose, allow_private, false, resolve).await.map_err(|e| e.to_string())?;
    Ok(Some(Pinned { host: checked.host, addrs: checked.addrs }))
}

/// Compares the tool list with the last stored one. A change marks this one check `degraded` with the
/// original's error text (`schema drift (BREAKING|compatible): old → new — n change(s)`) and stores one row per
/// change; the next check with the same tools is `up` again. Returns `(breaking, description)` of a drift.
async fn detect_drift(state: &AppState, result: &CheckResult, record: &mut HealthRecord) -> Option<(bool, String)> {
    let current = result.schema_hash.as_ref()?;
    let baseline = match state.storage.health.latest_snapshot(&record.project_id, &result.server_name).await {
        Ok(Some(b)) => b,
        Ok(None) => return None, // first snapshot: nothing to compare with
        Err(e) => {
            tracing::warn!(error = %e, "monitor.drift_baseline_failed");
            return None;
        }
    };
    let previous = baseline.schema_hash.clone().filter(|p| p != current)?;
    let old: Vec<ToolInfo> = serde_json::from_str::<Vec<serde_json::Value>>(&baseline.tools_json)
        .unwrap_or_default()
        .into_iter()
        .map(|t| ToolInfo {
            name: t["name"].as_str().unwrap_or_default().to_string(),
            description: t["description"].as_str().map(String::from),
            input_schema: t["input_schema"].clone(),
        })
        .collect();
    let changes = classify(&old, &result.tools);
    let has_breaking = changes.iter().any(|c| c.drift_type == DriftType::Breaking);
    let label = if has_breaking { "BREAKING" } else { "compatible" };
    let mut error = format!("schema drift ({label}): {previous} → {current}");
    if !changes.is_empty() {
        error.push_str(&format!(" — {} change(s)", changes.len()));
    }
    if record.status == Status::Up.as_str() {
        record.status = Status::Degraded.as_str().into();
        record.error = Some(error.clone());
    }
    let now = now_micros();
    let row = |tool: &str, drift_type: &str, kind: &str| DriftRecord {
        server_name: result.server_name.clone(),
        project_id: record.project_id.clone(),
        tool_name: tool.into(),
        drift_type: drift_type.into(),
        change_kind: kind.into(),
        param_name: None,
        old_value: None,
        new_value: None,
        previous_hash: previous.clone(),
        current_hash: current.clone(),
        has_breaking,
        detected_at: now,
    };
    let rows: Vec<DriftRecord> = if changes.is_empty() {
        vec![row("", "unknown", "hash_changed")]
    } else {
        changes
            .iter()
            .map(|c| DriftRecord {
                param_name: c.param_name.clone(),
                old_value: c.old_value.clone(),
                new_value: c.new_value.clone(),
                ..row(&c.tool_name, c.drift_type.as_str(), c.kind)
            })
            .collect()
    };
    tracing::warn!(server = %result.server_name, breaking = has_breaking, changes = rows.len(), "monitor.schema_drift");
    if let Err(e) = state.storage.health.save_drift(rows).await {
        tracing::error!(error = %e, "monitor.drift_save_failed");
    }
    Some((has_breaking, error))
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

#[cfg(test)]
mod tests {
    use super::*;
    use langsight_monitor::{ServerSpec, Transport};
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Stands for the address the policy vetted: records each request head, answers 404.
    async fn recorder() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
                    let _ = sock
                        .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .await;
                });
            }
        });
        (addr, rx)
    }

    fn registered(url: String, sse: bool) -> Target {
        let transport = if sse {
            Transport::Sse { url, headers: vec![] }
        } else {
            Transport::StreamableHttp { url, headers: vec![] }
        };
        let spec = ServerSpec {
            name: "rebinder".into(),
            transport,
            timeout: Duration::from_secs(10),
            health_tool: None,
            health_tool_args: Default::default(),
        };
        Target {
            project_id: "p1".into(),
            server: MonitoredServer { spec, breaker: Default::default() },
            from_api: true,
        }
    }

    /// The lookup the policy sees: one fixed answer. The system resolver, which the HTTP client would use
    /// without the pin, has no answer at all for the `.invalid` name, so any connection came from the pin.
    fn answer(addr: SocketAddr) -> impl FnOnce(String, u16) -> std::future::Ready<std::io::Result<Vec<SocketAddr>>> {
        move |_, port| std::future::ready(Ok(vec![SocketAddr::new(addr.ip(), port)]))
    }

    #[tokio::test]
    async fn registered_servers_are_checked_at_the_addresses_the_policy_vetted() {
        for sse in [false, true] {
            let (addr, mut seen) = recorder().await;
            let url = format!("http://rebind-check.invalid:{}/{}", addr.port(), if sse { "sse" } else { "mcp" });
            let r = check_target_with(&registered(url.clone(), sse), true, answer(addr)).await;
            assert_eq!(r.status, Status::Down, "the recorder is no MCP server");
            let head = seen.try_recv().unwrap_or_else(|_| panic!("{url}: not connected to the vetted address: {r:?}"));
            let host = format!("host: rebind-check.invalid:{}", addr.port());
            assert!(head.to_ascii_lowercase().contains(&host), "{head}");
        }
    }

    #[tokio::test]
    async fn a_refused_answer_is_never_contacted() {
        let (addr, mut seen) = recorder().await;
        let url = format!("http://rebind-check.invalid:{}/mcp", addr.port());
        // The lookup answers loopback and private networks are not allowed: blocked, nothing sent.
        let r = check_target_with(&registered(url, false), false, answer(addr)).await;
        let error = r.error.unwrap_or_default();
        assert!(error.starts_with("blocked URL") && error.contains("LANGSIGHT_ALLOW_PRIVATE_MCP_URLS"), "{error}");
        assert!(seen.try_recv().is_err());
    }
}
