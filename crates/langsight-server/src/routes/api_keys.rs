//! `/api/auth/api-keys`: create (the raw key is shown once), list, revoke.

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::http::JsonBody;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use langsight_core::keys::{generate_api_key, new_id};
use langsight_core::time::{iso_z, now_micros};
use langsight_storage::{ApiKeyRecord, KeyRole, NewApiKey};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
pub struct CreateKey {
    name: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    project_id: Option<String>,
    /// Absent → 365 days; explicit `null` → never expires (the original's semantics).
    #[serde(default = "default_expiry", deserialize_with = "nullable")]
    expires_in_days: Option<i64>,
}

fn default_expiry() -> Option<i64> {
    Some(365)
}

fn nullable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Option::<i64>::deserialize(d)
}

pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    meta: crate::audit::RequestMeta,
    JsonBody(body): JsonBody<CreateKey>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    principal.require_admin()?;
    let name = body.name.trim();
    if name.is_empty() {
        return Err(ApiError::unprocessable("Key name cannot be empty"));
    }
    if name.chars().count() > 200 {
        return Err(ApiError::unprocessable("Key name is too long (at most 200 characters)"));
    }
    let role = match body.role.as_deref() {
        None => KeyRole::Admin,
        Some(r) => KeyRole::parse(r)
            .ok_or_else(|| ApiError::unprocessable(format!("role must be 'admin' or 'viewer', got '{r}'")))?,
    };
    if body.expires_in_days.is_some_and(|d| d <= 0) {
        return Err(ApiError::unprocessable("expires_in_days must be > 0 or null"));
    }
    if body.expires_in_days.is_some_and(|d| d > 36_500) {
        return Err(ApiError::unprocessable(
            "expires_in_days must be at most 36500 (100 years), or null for no expiry",
        ));
    }
    let project_id = body.project_id.filter(|p| !p.is_empty());
    if let Some(bound) = principal.bound_project() {
        // A key confined to one project cannot mint keys for another (or unbound ones).
        if project_id.as_deref() != Some(bound) {
            return Err(ApiError::Forbidden(format!(
                "This API key is bound to project '{bound}' and can only create keys bound to that project; \
                 send \"project_id\": \"{bound}\"."
            )));
        }
    }
    if let Some(p) = &project_id {
        if state.storage.projects.get_project(p).await?.is_none() {
            return Err(ApiError::NotFound(format!(
                "Project '{p}' not found. Create it with POST /api/projects before binding a key to it."
            )));
        }
    }
    let key = generate_api_key();
    let now = now_micros();
    // The key acts for the user who made it (a dashboard user, or the owner of the key used): it dies with
    // that user's account and never outranks them.
    let user_id = principal.user_id().map(String::from);
    let rec = state
        .storage
        .keys
        .create_api_key(NewApiKey {
            id: new_id(),
            name: name.to_string(),
            key_hash: key.hash,
            key_prefix: key.prefix,
            role,
            user_id,
            project_id,
            created_at: now,
            expires_at: body.expires_in_days.map(|d| now + d * 86_400_000_000),
        })
        .await?;
    state.keys.invalidate();
    tracing::info!(key_id = %rec.id, role = role.as_str(), "api_key.created");
    let details = json!({"key_id": rec.id, "name": rec.name, "role": role.as_str()});
    crate::audit::record(
        &state,
        &principal,
        &meta,
        "api_key.created",
        details,
        rec.project_id.as_deref().unwrap_or(""),
    );
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": rec.id,
            "name": rec.name,
            "key": key.raw,
            "key_prefix": rec.key_prefix,
            "created_at": iso_z(rec.created_at),
            "role": rec.role.as_str(),
            "project_id": rec.project_id,
            "expires_at": rec.expires_at.map(iso_z),
        })),
    ))
}

fn key_json(k: &ApiKeyRecord) -> Value {
    json!({
        "id": k.id,
        "name": k.name,
        "key_prefix": k.key_prefix,
        "created_at": iso_z(k.created_at),
        "last_used_at": k.last_used_at.map(iso_z),
        "revoked_at": k.revoked_at.map(iso_z),
        "role": k.role.as_str(),
        "project_id": k.project_id,
        "expires_at": k.expires_at.map(iso_z),
    })
}

pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Json<Vec<Value>>> {
    principal.require_admin()?;
    let keys = state.storage.keys.list_api_keys().await?;
    let bound = principal.bound_project();
    Ok(Json(keys.iter().filter(|k| bound.is_none() || k.project_id.as_deref() == bound).map(key_json).collect()))
}

pub async fn revoke(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(key_id): Path<String>,
    meta: crate::audit::RequestMeta,
) -> ApiResult<StatusCode> {
    principal.require_admin()?;
    let not_found = || ApiError::NotFound("API key not found or already revoked".into());
    if let Some(bound) = principal.bound_project() {
        let keys = state.storage.keys.list_api_keys().await?;
        if !keys.iter().any(|k| k.id == key_id && k.project_id.as_deref() == Some(bound)) {
            return Err(not_found());
        }
    }
    if !state.storage.keys.revoke_api_key(&key_id).await? {
        return Err(not_found());
    }
    state.keys.invalidate();
    tracing::info!(key_id = %key_id, "api_key.revoked");
    crate::audit::record(&state, &principal, &meta, "api_key.revoked", json!({"key_id": key_id}), "");
    Ok(StatusCode::NO_CONTENT)
}
