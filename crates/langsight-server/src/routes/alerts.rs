//! `/api/alerts`: per-project settings (toggles, Slack and webhook URLs), a test message, and the inbox
//! (feed, counts, ack / resolve / snooze). Webhook URLs set here pass the SSRF rules; they are never echoed.

use super::query::Params;
use crate::alerts::deliver::{self, Channel, Kind, SendError};
use crate::alerts::{alert_json, effective_toggles};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::http::JsonBody;
use crate::state::AppState;
use crate::url_policy::{self, Purpose};
use axum::extract::{Path, RawQuery, State};
use axum::{Extension, Json};
use langsight_core::time::now_micros;
use langsight_storage::{AlertAction, AlertConfig, AlertQuery, FiredAlert};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The caller's project (`None` = an admin's global view).
async fn scope(state: &AppState, principal: &Principal, raw: Option<&str>) -> ApiResult<Option<String>> {
    Ok(super::query::scoped(state, principal, raw).await?.1)
}

/// The project whose alert settings the caller means; `""` is the instance's global settings, which only an
/// instance admin may read or change (they hold the operator's Slack and webhook targets).
async fn config_scope(state: &AppState, principal: &Principal, raw: Option<&str>) -> ApiResult<String> {
    let project = scope(state, principal, raw).await?.unwrap_or_default();
    if project.is_empty() {
        principal.require(crate::auth::Capability::InstanceAdmin)?;
    }
    Ok(project)
}

fn config_json(state: &AppState, stored: Option<&AlertConfig>) -> Value {
    let slack = stored.and_then(|c| c.slack_webhook.clone()).or_else(|| state.config.alerts.slack_webhook.clone());
    let webhook = stored.and_then(|c| c.webhook_url.clone()).or_else(|| state.config.alerts.webhook_url.clone());
    json!({
        "slack_webhook": null,
        "alert_types": effective_toggles(stored),
        "webhook_configured": slack.is_some(),
        "generic_webhook_configured": webhook.is_some(),
    })
}

pub async fn get_config(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let project = config_scope(&state, &principal, raw.as_deref()).await?;
    let stored = state.storage.alerts.alert_config(&project).await?;
    Ok(Json(config_json(&state, stored.as_ref())))
}

#[derive(Deserialize)]
pub struct ConfigUpdate {
    /// `null` keeps the current value; `""` removes it.
    #[serde(default)]
    slack_webhook: Option<String>,
    #[serde(default)]
    webhook_url: Option<String>,
    #[serde(default)]
    alert_types: Option<BTreeMap<String, bool>>,
}

/// A URL set through the API must pass the SSRF rules (400 with the reason).
async fn checked_url(state: &AppState, url: Option<String>) -> ApiResult<Option<Option<String>>> {
    match url.map(|u| u.trim().to_string()) {
        None => Ok(None),
        Some(u) if u.is_empty() => Ok(Some(None)),
        Some(u) => {
            url_policy::check(&u, Purpose::Webhook, state.config.allow_private_webhook_urls, false)
                .await
                .map_err(|e| ApiError::BadRequest(format!("Webhook URL is not allowed: {e}")))?;
            Ok(Some(Some(u)))
        }
    }
}

pub async fn post_config(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
    meta: crate::audit::RequestMeta,
    JsonBody(body): JsonBody<ConfigUpdate>,
) -> ApiResult<Json<Value>> {
    principal.require_admin()?;
    let project = config_scope(&state, &principal, raw.as_deref()).await?;
    let slack = checked_url(&state, body.slack_webhook).await?;
    let webhook = checked_url(&state, body.webhook_url).await?;
    let mut config = state.storage.alerts.alert_config(&project).await?.unwrap_or_default();
    if let Some(s) = slack {
        config.slack_webhook = s;
    }
    if let Some(w) = webhook {
        config.webhook_url = w;
    }
    if let Some(types) = body.alert_types {
        // Defaults are materialised with the change, as in the original.
        let mut merged = effective_toggles(Some(&config));
        merged.extend(types);
        config.alert_types = merged;
    }
    state.storage.alerts.save_alert_config(&project, config.clone()).await?;
    tracing::info!(project = %project, "alerts.config_changed");
    let details = json!({"alert_types": config.alert_types, "slack_webhook_set": config.slack_webhook.is_some(), "webhook_url_set": config.webhook_url.is_some()});
    crate::audit::record(&state, &principal, &meta, "alerts.config_changed", details, &project);
    Ok(Json(config_json(&state, Some(&config))))
}

/// Sends a fixed test message to the project's Slack webhook (else the operator's).
pub async fn test(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    principal.require_admin()?;
    let project = config_scope(&state, &principal, raw.as_deref()).await?;
    let stored = state.storage.alerts.alert_config(&project).await?;
    let channels = deliver::channels(&state, stored.as_ref());
    let Some(channel) = channels.iter().find(|c| c.kind == Kind::Slack).or(channels.first()) else {
        return Err(ApiError::BadRequest(
            "No Slack webhook URL configured. Set it in Settings → Notifications.".into(),
        ));
    };
    let alert = FiredAlert {
        id: "test".into(),
        project_id: project,
        alert_type: "server_recovered".into(),
        severity: "info".into(),
        server_name: "langsight".into(),
        session_id: None,
        title: "LangSight test notification".into(),
        message: "If you can read this, LangSight alerts reach this channel.".into(),
        fired_at: now_micros(),
        status: "active".into(),
        acked_at: None,
        acked_by: None,
        snoozed_until: None,
        resolved_at: None,
    };
    let channel = Channel { kind: channel.kind, url: channel.url.clone(), trusted: channel.trusted };
    match deliver::send(&state, &alert, &channel).await {
        Ok(()) => Ok(Json(json!({"ok": true, "message": "Test notification sent successfully"}))),
        Err(SendError::Refused(reason)) => Err(ApiError::BadRequest(reason)),
        Err(SendError::Failed(e)) => {
            tracing::warn!(error = %e, "alerts.test_failed");
            Err(ApiError::BadGateway(
                "Failed to send test notification. Check the webhook URL in Settings and verify Slack is reachable."
                    .into(),
            ))
        }
    }
}

/// Most names one `alert_type` filter may list.
const MAX_FEED_TYPES: usize = 32;

/// `?alert_type=a,b` (ours; the original's feed has no type filter): the stored types to list, with the
/// original's names mapped to ours ([`crate::alerts::stored_types`]). Empty = every type.
fn feed_types(raw: Option<&str>) -> ApiResult<Vec<String>> {
    let names: Vec<&str> = raw.unwrap_or("").split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
    if names.len() > MAX_FEED_TYPES || names.iter().any(|n| n.len() > 64) {
        return Err(ApiError::Unprocessable(json!([{
            "type": "value_error", "loc": ["query", "alert_type"],
            "msg": format!("at most {MAX_FEED_TYPES} comma-separated alert types of at most 64 characters"),
            "input": raw,
        }])));
    }
    let mut out: Vec<String> = Vec::new();
    for name in names {
        let stored = crate::alerts::stored_types(name);
        for t in if stored.is_empty() { std::slice::from_ref(&name) } else { stored } {
            if !out.iter().any(|o| o == t) {
                out.push(t.to_string());
            }
        }
    }
    Ok(out)
}

pub async fn feed(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let p = Params::parse(raw.as_deref());
    let project = principal.scope(&state, p.text("project_id")).await?;
    let limit = p.int("limit", 50, 1, 200)?;
    let offset = p.int("offset", 0, 0, i64::MAX)?;
    let status = p.text("status").unwrap_or("active").to_string();
    if !["active", "acked", "snoozed", "resolved", "all"].contains(&status.as_str()) {
        return Err(ApiError::Unprocessable(json!([{
            "type": "enum", "loc": ["query", "status"],
            "msg": "Input should be 'active', 'acked', 'snoozed', 'resolved' or 'all'", "input": status
        }])));
    }
    let alert_types = feed_types(p.text("alert_type"))?;
    let (total, rows) = state
        .storage
        .alerts
        .list_alerts(AlertQuery {
            project_id: project,
            status: Some(status),
            limit: limit as usize,
            offset: offset as usize,
            now: now_micros(),
            alert_types,
        })
        .await?;
    Ok(Json(json!({
        "total": total,
        "limit": limit,
        "offset": offset,
        "alerts": rows.iter().map(alert_json).collect::<Vec<_>>(),
    })))
}

pub async fn counts(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let project = scope(&state, &principal, raw.as_deref()).await?;
    let (critical, warning, info) = state.storage.alerts.alert_counts(project.as_deref()).await?;
    Ok(Json(json!({"critical": critical, "warning": warning, "info": info, "total": critical + warning + info})))
}

async fn act(
    state: &AppState,
    principal: &Principal,
    raw: Option<&str>,
    id: &str,
    action: AlertAction,
    missing: &str,
) -> ApiResult<()> {
    principal.require_admin()?;
    let project = scope(state, principal, raw).await?;
    if state.storage.alerts.update_alert(project.as_deref(), id, action, now_micros()).await? {
        Ok(())
    } else {
        Err(ApiError::NotFound(missing.into()))
    }
}

pub async fn ack(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let by = principal.actor();
    act(&state, &principal, raw.as_deref(), &id, AlertAction::Ack { by }, "Alert not found or already in final state")
        .await?;
    Ok(Json(json!({"ok": true, "alert_id": id, "status": "acked"})))
}

pub async fn resolve(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    act(&state, &principal, raw.as_deref(), &id, AlertAction::Resolve, "Alert not found or already resolved").await?;
    Ok(Json(json!({"ok": true, "alert_id": id, "status": "resolved"})))
}

#[derive(Deserialize)]
pub struct Snooze {
    #[serde(default = "default_minutes")]
    minutes: i64,
}

fn default_minutes() -> i64 {
    60
}

pub async fn snooze(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody<Snooze>,
) -> ApiResult<Json<Value>> {
    principal.require_admin()?;
    if ![15, 60, 240, 1440].contains(&body.minutes) {
        return Err(ApiError::unprocessable("minutes must be one of: 15, 60, 240, 1440"));
    }
    let until = now_micros() + body.minutes * 60_000_000;
    act(&state, &principal, raw.as_deref(), &id, AlertAction::Snooze { until }, "Alert not found or already resolved")
        .await?;
    Ok(Json(json!({"ok": true, "alert_id": id, "status": "snoozed", "minutes": body.minutes})))
}

/// How each channel's deliveries of one alert went (ours: the original kept no record).
pub async fn deliveries(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<Value>>> {
    let project = scope(&state, &principal, raw.as_deref()).await?;
    if state.storage.alerts.get_alert(project.as_deref(), &id).await?.is_none() {
        return Err(ApiError::NotFound("Alert not found".into()));
    }
    let rows = state.storage.alerts.deliveries(&id).await?;
    Ok(Json(
        rows.iter()
            .map(|d| {
                json!({
                    "alert_id": d.alert_id,
                    "channel": d.channel,
                    "status": d.status,
                    "attempts": d.attempts,
                    "last_error": d.last_error,
                    "at": langsight_core::time::iso_offset(d.at),
                })
            })
            .collect(),
    ))
}
