//! `POST /api/security/scan`: OWASP MCP checks, tool poisoning and known vulnerabilities for the servers in
//! scope (the operator's servers, and with a project its registered HTTP servers), with `security_critical` /
//! `security_high` alerts for what it finds. Every scan is stored ([`crate::scans`]): the newest grades the
//! scorecard, and `GET /api/security/findings` lists the newest per server.

use super::query::scoped;
use crate::auth::Principal;
use crate::error::ApiResult;
use crate::monitor::{targets, vet};
use crate::scans;
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use axum::{Extension, Json};
use futures_util::StreamExt;
use langsight_core::time::{iso_z, now_micros};
use langsight_monitor::security::scan_pinned as scan_server;
use serde_json::Value;

/// Servers scanned at once.
const CONCURRENCY: usize = 8;

pub async fn scan(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<Value>>> {
    principal.require_admin()?;
    let (params, project) = scoped(&state, &principal, raw.as_deref()).await?;
    let only = params.text("server_name").filter(|s| !s.is_empty()).map(String::from);
    let mut servers = targets(&state, project.as_deref()).await;
    if let Some(name) = &only {
        servers.retain(|t| &t.server.spec.name == name);
    }
    let state_ref = &state;
    let mut results: Vec<(String, Value)> = futures_util::stream::iter(servers)
        .map(|t| async move {
            let at = now_micros();
            let pinned = match vet(state_ref, &t).await {
                Ok(pinned) => pinned,
                Err(why) => {
                    let stored = scans::refused(&t.project_id, &t.server.spec.name, format!("not scanned: {why}"), at);
                    let mut v = scans::scan_json(&stored);
                    scans::store(state_ref, stored).await;
                    original_shape(&mut v);
                    return (t.project_id, v);
                }
            };
            // Connects only to the vetted addresses (see `monitor::vet`).
            let report = scan_server(&t.server.spec, &state_ref.config.osv_url, pinned.as_ref()).await;
            scans::alert(state_ref, &t.project_id, &report).await;
            scans::store(state_ref, scans::record(&t.project_id, &report, at)).await;
            (t.project_id, report.to_json(&iso_z(at)))
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    results.sort_by(|a, b| a.1["server_name"].as_str().cmp(&b.1["server_name"].as_str()).then(a.0.cmp(&b.0)));
    Ok(Json(results.into_iter().map(|(_, v)| v).collect()))
}

/// Keeps only the original's fields of a scan result.
fn original_shape(v: &mut Value) {
    if let Some(o) = v.as_object_mut() {
        for k in ["project_id", "scanner_version", "medium_count", "low_count", "info_count"] {
            o.remove(k);
        }
    }
}

/// `GET /api/security/findings[?server_name=]`: the newest scan of each server in the caller's scope — the
/// project's own servers, and the operator's servers the project does not shadow with one of the same name.
pub async fn findings(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<Value>>> {
    let (params, project) = scoped(&state, &principal, raw.as_deref()).await?;
    let only = params.text("server_name").filter(|s| !s.is_empty()).map(String::from);
    let mut latest = match &project {
        Some(p) => state.storage.security.latest_scans(p, only.as_deref(), false).await?,
        None => Vec::new(),
    };
    for s in state.storage.security.latest_scans("", only.as_deref(), false).await? {
        if !latest.iter().any(|x| x.server_name == s.server_name) {
            latest.push(s);
        }
    }
    latest.sort_by(|a, b| a.server_name.cmp(&b.server_name));
    Ok(Json(latest.iter().map(scans::scan_json).collect()))
}

/// `GET /api/security/scans?server_name=…[&limit=30]` (ours): one server's stored scans, newest first (at most
/// `limit`, 1..100: the scans kept per server), under the same scope as the findings — the project's scans of
/// that server, or the operator's when the project has none. Each entry has the findings' shape, so counts by
/// severity over time and what each scan found come from one read.
pub async fn scans(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<Value>>> {
    let (params, project) = scoped(&state, &principal, raw.as_deref()).await?;
    let limit = params.int("limit", 30, 1, langsight_storage::SCANS_KEPT_PER_SERVER as i64)? as usize;
    let Some(server) = params.text("server_name").filter(|s| !s.is_empty()) else {
        return Err(crate::error::ApiError::Unprocessable(serde_json::json!([{
            "type": "missing", "loc": ["query", "server_name"], "msg": "Field required: the server whose scans to list",
            "input": null
        }])));
    };
    let mut history = match &project {
        Some(p) => state.storage.security.scan_history(p, server, limit).await?,
        None => Vec::new(),
    };
    if history.is_empty() {
        history = state.storage.security.scan_history("", server, limit).await?;
    }
    Ok(Json(history.iter().map(scans::scan_json).collect()))
}
