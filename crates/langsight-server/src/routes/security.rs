//! `POST /api/security/scan`: OWASP MCP checks, tool poisoning and known vulnerabilities for the servers in
//! scope (the operator's servers, and with a project its registered HTTP servers), with `security_critical` /
//! `security_high` alerts for what it finds.

use super::query::scoped;
use crate::alerts::{fire, NewAlert};
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::monitor::{targets, vet};
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use axum::{Extension, Json};
use futures_util::StreamExt;
use langsight_core::time::{iso_z, now_micros};
use langsight_monitor::security::{scan_pinned as scan_server, Severity};
use serde_json::{json, Value};

/// Servers scanned at once.
const CONCURRENCY: usize = 8;

pub async fn scan(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<Value>>> {
    principal.require_admin()?;
    let (_, project) = scoped(&state, &principal, raw.as_deref()).await?;
    let servers = targets(&state, project.as_deref()).await;
    let state_ref = &state;
    let mut results: Vec<(String, Value)> = futures_util::stream::iter(servers)
        .map(|t| async move {
            let scanned_at = iso_z(now_micros());
            let pinned = match vet(state_ref, &t).await {
                Ok(pinned) => pinned,
                Err(why) => {
                    let v = json!({"server_name": t.server.spec.name, "scanned_at": scanned_at,
                        "error": format!("not scanned: {why}"), "findings_count": 0, "critical_count": 0,
                        "high_count": 0, "highest_severity": null, "findings": []});
                    return (t.project_id, v);
                }
            };
            // Connects only to the vetted addresses (see `monitor::vet`).
            let report = scan_server(&t.server.spec, &state_ref.config.osv_url, pinned.as_ref()).await;
            let (critical, high) = (report.count(Severity::Critical), report.count(Severity::High));
            if critical + high > 0 {
                let (kind, severity, n) = if critical > 0 {
                    ("security_critical", "critical", critical)
                } else {
                    ("security_high", "warning", high)
                };
                fire(
                    state_ref,
                    NewAlert {
                        project_id: t.project_id.clone(),
                        alert_type: kind,
                        severity,
                        server_name: report.server_name.clone(),
                        session_id: None,
                        title: format!("Security findings on {}", report.server_name),
                        message: format!(
                            "{n} {} finding(s) on `{}`; first: {}",
                            if critical > 0 { "critical" } else { "high" },
                            report.server_name,
                            report.findings.first().map(|f| f.title.as_str()).unwrap_or("")
                        ),
                        scope: report.server_name.clone(),
                    },
                )
                .await;
            }
            let v = report.to_json(&scanned_at);
            (t.project_id, v)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    results.sort_by(|a, b| a.1["server_name"].as_str().cmp(&b.1["server_name"].as_str()).then(a.0.cmp(&b.0)));
    Ok(Json(results.into_iter().map(|(_, v)| v).collect()))
}
