//! The audit log: who did what, from where. Writes are fire-and-forget (an audit row must never fail the
//! request it describes); the log is read by admins at `GET /api/audit/logs`.

use crate::auth::Principal;
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use langsight_storage::AuditEvent;
use serde_json::Value;
use std::convert::Infallible;
use std::net::SocketAddr;

/// Where a request came from (the client behind trusted proxies).
#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub ip: String,
}

impl FromRequestParts<AppState> for RequestMeta {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        Ok(RequestMeta { ip: crate::rate_limit::client_ip(state, peer, &parts.headers) })
    }
}

/// Records an event by `principal`.
pub fn record(state: &AppState, principal: &Principal, meta: &RequestMeta, event: &str, details: Value, project: &str) {
    record_as(state, &principal.actor(), meta, event, details, project);
}

/// Records an event by a named actor (logins, where no principal exists yet).
pub fn record_as(state: &AppState, actor: &str, meta: &RequestMeta, event: &str, details: Value, project: &str) {
    let row = AuditEvent {
        id: 0,
        at: langsight_core::time::now_micros(),
        event: event.to_string(),
        user_id: actor.to_string(),
        ip: meta.ip.clone(),
        details: details.to_string(),
        project_id: project.to_string(),
    };
    let state = state.clone();
    tokio::spawn(async move {
        if let Err(e) = state.storage.users.audit(row).await {
            tracing::warn!(error = %e, "audit.write_failed");
        }
    });
}

/// `a***@example.com`: enough to recognise, not enough to harvest.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => format!("{}***@{domain}", local.chars().next().unwrap_or('*')),
        None => "***".into(),
    }
}
