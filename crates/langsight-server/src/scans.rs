//! Security scans that count: every scan — on demand (`POST /api/security/scan`, `langsight security-scan`)
//! or scheduled by the monitor leader — is stored per project and server, fires the `security_*` alerts, and
//! the newest completed scan grades the scorecard's security dimension.
//!
//! Scheduled scans reuse the health check the monitor round just made (tools, status, error), so a scan never
//! opens a second connection to an MCP server; only the CVE lookup goes out, to `LANGSIGHT_OSV_URL`.

use crate::alerts::{fire, NewAlert};
use crate::monitor::{Outcome, Target};
use crate::state::AppState;
use langsight_core::time::{iso_z, now_micros, Micros};
use langsight_monitor::security::{assess, ScanReport, Severity};
use langsight_monitor::{CheckResult, Status, ToolInfo};
use langsight_storage::SecurityScan;
use serde_json::{json, Value};
use std::time::Duration;

/// Names the scanner in every stored scan: findings of different scanner versions are not comparable.
pub const SCANNER_VERSION: &str = concat!("langsight-rs ", env!("CARGO_PKG_VERSION"));

/// Scans run at once by the scheduler.
const CONCURRENCY: usize = 8;

/// Fires `security_critical` (else `security_high`) for a report with such findings. The alert pipeline's
/// dedup keeps a scheduled scan from paging again for the same server within the window.
pub async fn alert(state: &AppState, project_id: &str, report: &ScanReport) {
    let (critical, high) = (report.count(Severity::Critical), report.count(Severity::High));
    if critical + high == 0 {
        return;
    }
    let (kind, severity, n, word) = if critical > 0 {
        ("security_critical", "critical", critical, "critical")
    } else {
        ("security_high", "warning", high, "high")
    };
    fire(
        state,
        NewAlert {
            project_id: project_id.to_string(),
            alert_type: kind,
            severity,
            server_name: report.server_name.clone(),
            session_id: None,
            title: format!("Security findings on {}", report.server_name),
            message: format!(
                "{n} {word} finding(s) on `{}`; first: {}",
                report.server_name,
                report.findings.first().map(|f| f.title.as_str()).unwrap_or("")
            ),
            scope: report.server_name.clone(),
        },
    )
    .await;
}

/// The stored form of a report.
pub fn record(project_id: &str, report: &ScanReport, at: Micros) -> SecurityScan {
    let n = |s| report.count(s) as i64;
    SecurityScan {
        id: uuid::Uuid::new_v4().simple().to_string(),
        project_id: project_id.to_string(),
        server_name: report.server_name.clone(),
        scanned_at: at,
        scanner_version: SCANNER_VERSION.into(),
        error: report.error.clone(),
        critical: n(Severity::Critical),
        high: n(Severity::High),
        medium: n(Severity::Medium),
        low: n(Severity::Low),
        info: n(Severity::Info),
        findings_json: Value::Array(report.findings.iter().map(|f| f.to_json()).collect()).to_string(),
    }
}

/// A scan that could not run at all (the URL policy refused the server), stored so the dashboard says why.
pub fn refused(project_id: &str, server: &str, why: String, at: Micros) -> SecurityScan {
    SecurityScan {
        id: uuid::Uuid::new_v4().simple().to_string(),
        project_id: project_id.to_string(),
        server_name: server.to_string(),
        scanned_at: at,
        scanner_version: SCANNER_VERSION.into(),
        error: Some(why),
        critical: 0,
        high: 0,
        medium: 0,
        low: 0,
        info: 0,
        findings_json: "[]".into(),
    }
}

/// Stores a scan; a storage failure is logged, never fails the scan's answer.
pub async fn store(state: &AppState, scan: SecurityScan) {
    let server = scan.server_name.clone();
    if let Err(e) = state.storage.security.save_scan(scan).await {
        tracing::error!(server = %server, error = %e, "security.scan_save_failed");
    }
}

/// A stored scan as the dashboard and `GET /api/security/findings` show it: the original's scan result
/// (`server_name, scanned_at, error, findings_count, critical_count, high_count, highest_severity, findings`)
/// plus `project_id`, `scanner_version` and the medium/low/info counts.
pub fn scan_json(s: &SecurityScan) -> Value {
    let findings: Value = serde_json::from_str(&s.findings_json).unwrap_or_else(|_| json!([]));
    let count = findings.as_array().map(Vec::len).unwrap_or(0);
    let highest = [("critical", s.critical), ("high", s.high), ("medium", s.medium), ("low", s.low), ("info", s.info)]
        .into_iter()
        .find(|(_, n)| *n > 0)
        .map(|(name, _)| name);
    json!({
        "server_name": s.server_name,
        "project_id": (!s.project_id.is_empty()).then_some(&s.project_id),
        "scanned_at": iso_z(s.scanned_at),
        "scanner_version": s.scanner_version,
        "error": s.error,
        "findings_count": count,
        "critical_count": s.critical,
        "high_count": s.high,
        "medium_count": s.medium,
        "low_count": s.low,
        "info_count": s.info,
        "highest_severity": highest,
        "findings": findings,
    })
}

/// The check a stored health result describes (status, error, tools), for [`assess`].
fn check_of(record: &langsight_storage::HealthRecord) -> CheckResult {
    let status = match record.status.as_str() {
        "up" => Status::Up,
        "degraded" => Status::Degraded,
        _ => Status::Down,
    };
    let tools = serde_json::from_str::<Vec<Value>>(&record.tools_json)
        .unwrap_or_default()
        .into_iter()
        .map(|t| ToolInfo {
            name: t["name"].as_str().unwrap_or_default().to_string(),
            description: t["description"].as_str().map(String::from),
            input_schema: t["input_schema"].clone(),
        })
        .collect();
    CheckResult {
        server_name: record.server_name.clone(),
        status,
        latency_ms: record.latency_ms,
        tools,
        schema_hash: record.schema_hash.clone(),
        server_version: None,
        protocol_version: None,
        error: record.error.clone(),
    }
}

/// Whether a server's newest scan (completed or not) is older than `every`, or it has none.
async fn due(state: &AppState, target: &Target, every: Duration, now: Micros) -> bool {
    match state.storage.security.latest_scans(&target.project_id, Some(&target.server.spec.name), false).await {
        Ok(scans) => scans.first().is_none_or(|s| now - s.scanned_at >= every.as_micros() as i64),
        Err(e) => {
            tracing::warn!(error = %e, "security.schedule_unreadable");
            false
        }
    }
}

/// The scheduled scans of one monitor round: each server that was checked (not held back by an open circuit)
/// and whose newest scan is older than `every` is assessed from this round's check, stored and alerted.
/// Returns how many were scanned.
pub async fn scheduled(state: &AppState, outcomes: &[Outcome], every: Duration) -> usize {
    let now = now_micros();
    let mut work = Vec::new();
    for o in outcomes.iter().filter(|o| o.checked) {
        if due(state, &o.target, every, now).await {
            work.push(o);
        }
    }
    let scanned = work.len();
    // In chunks rather than a mapped stream: the futures borrow `state`, which a spawned task must be able to
    // prove outlives them.
    for chunk in work.chunks(CONCURRENCY) {
        let mut batch = Vec::with_capacity(chunk.len());
        for o in chunk {
            batch.push(async move {
                let report = assess(&o.target.server.spec, check_of(&o.record), &state.config.osv_url).await;
                alert(state, &o.target.project_id, &report).await;
                store(state, record(&o.target.project_id, &report, now_micros())).await;
                tracing::info!(server = %report.server_name, findings = report.findings.len(), "security.scheduled_scan");
            });
        }
        futures_util::future::join_all(batch).await;
    }
    scanned
}
