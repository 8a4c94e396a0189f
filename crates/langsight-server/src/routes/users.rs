//! `/api/users`: login (`verify`, used by the dashboard), invitations, roles, deactivation, password
//! changes; and `/api/audit/logs`.
//!
//! Login lockout lives in storage, so it holds across workers, hosts and restarts: `max_failures` wrong
//! passwords within the window lock the account for the lock time, checked before any hashing; a locked
//! account is refused even with the right password.

use super::query::Params;
use crate::audit::{mask_email, record, record_as, RequestMeta};
use crate::auth::Principal;
use crate::config::password_problem;
use crate::error::{ApiError, ApiResult};
use crate::http::{JsonBody, StrictJson};
use crate::passwords;
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use langsight_core::time::{iso_offset, now_micros};
use langsight_storage::{AcceptInvite, Invite, User};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const LOCKED: &str = "Account temporarily locked after too many failed attempts. Try again later.";
const BAD_LOGIN: &str = "Invalid email or password.";
/// Invitations are valid this long.
const INVITE_TTL_MICROS: i64 = 72 * 3_600_000_000;

fn user_json(u: &User) -> Value {
    json!({
        "id": u.id,
        "email": u.email,
        "role": u.role,
        "active": u.active,
        "created_at": iso_offset(u.created_at),
        "last_login_at": u.last_login_at.map(iso_offset),
    })
}

pub(super) fn field_error(field: &str, msg: &str) -> ApiError {
    ApiError::Unprocessable(json!([{ "type": "value_error", "loc": ["body", field], "msg": msg, "input": null }]))
}

/// A plausible email (what pydantic's `EmailStr` would let through, roughly), lower-cased.
pub(super) fn email_of(raw: &str) -> ApiResult<String> {
    let e = raw.trim().to_lowercase();
    let ok = e.len() <= 254
        && e.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.'))
        && !e.chars().any(|c| c.is_whitespace());
    if ok {
        Ok(e)
    } else {
        Err(field_error("email", "value is not a valid email address"))
    }
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Start-up: creates the admin from the environment if one is configured, then, if still no user exists,
/// issues the first-run setup token and logs how to create the first admin (see [`super::setup`]).
pub async fn bootstrap_admin(state: &AppState, port: u16) -> Result<(), String> {
    env_admin(state).await?;
    super::setup::announce(state, port).await
}

/// A new, active user with a fresh id.
pub(super) fn new_user(email: String, password_hash: String, role: &str) -> User {
    User {
        id: uuid::Uuid::new_v4().simple().to_string(),
        email,
        password_hash,
        role: role.to_string(),
        active: true,
        created_at: now_micros(),
        last_login_at: None,
    }
}

/// Creates the first admin from `LANGSIGHT_ADMIN_EMAIL`/`LANGSIGHT_ADMIN_PASSWORD` when no user exists.
async fn env_admin(state: &AppState) -> Result<(), String> {
    let (Some(email), Some(password)) = (&state.config.users.admin_email, &state.config.users.admin_password) else {
        return Ok(());
    };
    match state.storage.users.count_users().await {
        Ok(0) => {}
        Ok(_) => return Ok(()),
        Err(e) => return Err(format!("cannot read users: {e}")),
    }
    let hash = passwords::hash(password.0.clone()).await.ok_or("password hashing failed")?;
    let user = new_user(email.clone(), hash, "admin");
    match state.storage.users.create_user(user).await {
        Ok(()) | Err(langsight_storage::StorageError::Conflict(_)) => {
            tracing::info!(email = %mask_email(email), "users.admin_bootstrapped");
            Ok(())
        }
        Err(e) => Err(format!("cannot create the admin user: {e}")),
    }
}

#[derive(Deserialize)]
pub struct Login {
    email: String,
    password: String,
}

pub async fn verify(
    State(state): State<AppState>,
    meta: RequestMeta,
    StrictJson(body): StrictJson<Login>,
) -> ApiResult<Json<Value>> {
    let u = check_login(&state, &meta, body).await?;
    let name = u.email.split('@').next().unwrap_or_default().to_string();
    Ok(Json(json!({"id": u.id, "email": u.email, "role": u.role, "name": name})))
}

/// Checks an email and password under the lockout rules; the user on success.
async fn check_login(state: &AppState, meta: &RequestMeta, body: Login) -> ApiResult<langsight_storage::User> {
    let email = body.email.trim().to_lowercase();
    let now = now_micros();
    // Locked accounts are refused before any hashing: a brute force costs us nothing.
    if state.storage.users.locked_until(&email, now).await?.is_some() {
        record_as(state, &email, meta, "login.locked", json!({"email": mask_email(&email)}), "");
        return Err(ApiError::TooManyRequests(LOCKED.into()));
    }
    let user = state.storage.users.user_by_email(&email).await?.filter(|u| u.active);
    // No real password is longer than 128 characters (the most we let anyone set); longer input is a wrong
    // password, not work for the hasher.
    let ok = body.password.len() <= 1024
        && passwords::verify(body.password, user.as_ref().map(|u| u.password_hash.clone())).await;
    match user {
        Some(u) if ok => {
            state.storage.users.clear_login_failures(&email).await?;
            state.storage.users.touch_login(&u.id, now).await?;
            record_as(state, &u.id, meta, "login.success", json!({}), "");
            Ok(u)
        }
        _ => {
            let locked = state.storage.users.record_login_failure(&email, now, state.config.users.lockout).await?;
            record_as(state, &email, meta, "login.failed", json!({"email": mask_email(&email)}), "");
            if locked.is_some() {
                tracing::warn!(email = %mask_email(&email), "login.account_locked");
                record_as(state, &email, meta, "login.lockout", json!({"email": mask_email(&email)}), "");
            }
            Err(ApiError::Unauthenticated(BAD_LOGIN.into()))
        }
    }
}

/// `POST /api/auth/login`: the dashboard's login; sets the session cookie.
pub async fn login(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: axum::http::HeaderMap,
    StrictJson(body): StrictJson<Login>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let u = check_login(&state, &meta, body).await?;
    let expires = chrono::Utc::now().timestamp() + crate::session::LIFETIME_SECS;
    let session = crate::session::new_id();
    state
        .storage
        .users
        .create_session(&crate::session::id_hash(&session), &u.id, now_micros(), expires * 1_000_000)
        .await?;
    let token = crate::session::token(&state, &session, expires);
    let cookie =
        crate::session::set_cookie(&token, crate::session::LIFETIME_SECS, crate::session::is_https(&state, &headers));
    let body = json!({"id": u.id, "email": u.email, "role": u.role});
    Ok(([(axum::http::header::SET_COOKIE, cookie)], Json(body)).into_response())
}

/// `POST /api/auth/logout`: ends the browser session server-side (a copy of the cookie stops working too).
pub async fn logout(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    if let Some(id) = crate::session::session_id(&state, &headers) {
        state.storage.users.end_session(&crate::session::id_hash(&id), now_micros()).await?;
    }
    let cookie = crate::session::set_cookie("", 0, crate::session::is_https(&state, &headers));
    Ok(([(axum::http::header::SET_COOKIE, cookie)], StatusCode::NO_CONTENT).into_response())
}

/// `GET /api/auth/me`: who the caller is (the dashboard shows or hides write controls by `role`).
pub async fn me(axum::Extension(principal): axum::Extension<crate::auth::Principal>) -> Json<Value> {
    use crate::auth::Principal;
    let (email, role) = match &principal {
        Principal::Session(u) => (Some(u.email.clone()), u.role.clone()),
        Principal::StoredKey(k) => {
            (None, if k.role == langsight_storage::KeyRole::Admin { "admin".into() } else { "viewer".into() })
        }
        Principal::BootstrapKey | Principal::Open => (None, "admin".into()),
    };
    Json(json!({"email": email, "role": role, "project_id": principal.bound_project()}))
}

#[derive(Deserialize)]
pub struct NewInvite {
    email: String,
    #[serde(default = "default_role")]
    role: String,
}

fn default_role() -> String {
    "viewer".into()
}

fn check_role(role: &str) -> ApiResult<()> {
    if role == "admin" || role == "viewer" {
        Ok(())
    } else {
        Err(ApiError::Unprocessable(json!([{
            "type": "literal_error", "loc": ["body", "role"], "msg": "Input should be 'admin' or 'viewer'", "input": role,
        }])))
    }
}

pub async fn invite(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    meta: RequestMeta,
    JsonBody(body): JsonBody<NewInvite>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    principal.require_admin()?;
    let email = email_of(&body.email)?;
    check_role(&body.role)?;
    if state.storage.users.user_by_email(&email).await?.is_some() {
        return Err(ApiError::Conflict(format!("A user with email '{email}' already exists.")));
    }
    let token = hex::encode(rand::random::<[u8; 32]>());
    let now = now_micros();
    state
        .storage
        .users
        .create_invite(Invite {
            token_hash: token_hash(&token),
            email: email.clone(),
            role: body.role.clone(),
            created_by: principal.user_id().map(String::from),
            created_at: now,
            expires_at: now + INVITE_TTL_MICROS,
            used_at: None,
        })
        .await?;
    record(
        &state,
        &principal,
        &meta,
        "user.invite_created",
        json!({"email": mask_email(&email), "role": body.role}),
        "",
    );
    let base = state
        .config
        .dashboard_url
        .clone()
        .unwrap_or_else(|| format!("http://{}:{}", state.config.host, state.config.port));
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "token": token,
            "email": email,
            "role": body.role,
            "expires_at": iso_offset(now + INVITE_TTL_MICROS),
            "invite_url": format!("{}/accept-invite?token={token}", base.trim_end_matches('/')),
        })),
    ))
}

#[derive(Deserialize)]
pub struct Accept {
    token: String,
    password: String,
}

pub async fn accept_invite(
    State(state): State<AppState>,
    meta: RequestMeta,
    StrictJson(body): StrictJson<Accept>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if body.token.len() != 64 {
        return Err(field_error("token", "String should have 64 characters"));
    }
    if let Some(problem) = password_problem(&body.password) {
        return Err(field_error("password", &format!("Password is too weak: {problem}.")));
    }
    let hash = passwords::hash(body.password).await.ok_or(ApiError::Internal)?;
    // Email and role come from the invitation, inside the same transaction.
    let user = new_user(String::new(), hash, "");
    match state.storage.users.accept_invite(&token_hash(&body.token), user, now_micros()).await? {
        AcceptInvite::Created(u) => {
            record_as(&state, &u.id, &meta, "user.account_created", json!({"role": u.role}), "");
            Ok((StatusCode::CREATED, Json(user_json(&u))))
        }
        AcceptInvite::Unknown => Err(ApiError::NotFound("Invalid or expired invite token.".into())),
        AcceptInvite::Used => Err(ApiError::Gone("This invite has already been used.".into())),
        AcceptInvite::Expired => Err(ApiError::Gone("This invite has expired. Ask an admin to send a new one.".into())),
        AcceptInvite::EmailTaken => Err(ApiError::Conflict("An account with this email already exists.".into())),
    }
}

pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Json<Vec<Value>>> {
    principal.require_admin()?;
    Ok(Json(state.storage.users.list_users().await?.iter().map(user_json).collect()))
}

#[derive(Deserialize)]
pub struct RoleChange {
    role: String,
}

pub async fn set_role(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(user_id): Path<String>,
    meta: RequestMeta,
    JsonBody(body): JsonBody<RoleChange>,
) -> ApiResult<Json<Value>> {
    principal.require_admin()?;
    check_role(&body.role)?;
    let u = state
        .storage
        .users
        .set_user_role(&user_id, &body.role)
        .await?
        .ok_or_else(|| ApiError::NotFound("User not found.".into()))?;
    // Keys act with their owner's role at most: forget what this process cached about them.
    state.keys.invalidate();
    record(&state, &principal, &meta, "user.role_changed", json!({"user_id": user_id, "new_role": body.role}), "");
    Ok(Json(user_json(&u)))
}

pub async fn deactivate(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(user_id): Path<String>,
    meta: RequestMeta,
) -> ApiResult<StatusCode> {
    principal.require_admin()?;
    if principal.user_id() == Some(user_id.as_str()) {
        return Err(ApiError::BadRequest("You cannot deactivate your own account.".into()));
    }
    if !state.storage.users.deactivate_user(&user_id).await? {
        return Err(ApiError::NotFound("User not found.".into()));
    }
    // Their dashboard sessions end now, and their API keys stop working (see `auth::KeyLookup`).
    state.storage.users.end_user_sessions(&user_id, None, now_micros()).await?;
    state.keys.invalidate();
    record(&state, &principal, &meta, "user.deactivated", json!({"user_id": user_id}), "");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// Works (the original's always answered 401), and revokes the user's API keys.
pub async fn change_password(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: axum::http::HeaderMap,
    meta: RequestMeta,
    StrictJson(body): StrictJson<PasswordChange>,
) -> ApiResult<StatusCode> {
    let Some(id) = principal.user_id().map(String::from) else {
        return Err(ApiError::Unauthenticated("Authentication required.".into()));
    };
    let user =
        state.storage.users.user_by_id(&id).await?.ok_or_else(|| ApiError::NotFound("User not found.".into()))?;
    if !passwords::verify(body.current_password, Some(user.password_hash.clone())).await {
        return Err(ApiError::Unauthenticated("Current password is incorrect.".into()));
    }
    if password_problem(&body.new_password).is_some() {
        return Err(ApiError::unprocessable("New password is too weak."));
    }
    let hash = passwords::hash(body.new_password).await.ok_or(ApiError::Internal)?;
    let revoked = state.storage.users.set_password(&id, &hash, now_micros()).await?;
    state.keys.invalidate();
    // Every other dashboard session of this user ends (a stolen cookie dies with the old password); the
    // session that made the change stays.
    let current = crate::session::session_id(&state, &headers).map(|s| crate::session::id_hash(&s));
    let ended = state.storage.users.end_user_sessions(&id, current.as_deref(), now_micros()).await?;
    record(
        &state,
        &principal,
        &meta,
        "user.password_changed",
        json!({"keys_revoked": revoked, "sessions_ended": ended}),
        "",
    );
    Ok(StatusCode::NO_CONTENT)
}

pub async fn audit_logs(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    principal.require_admin()?;
    if principal.bound_project().is_some() {
        return Err(ApiError::Forbidden("The audit log spans every project: use a key not bound to a project.".into()));
    }
    let p = Params::parse(raw.as_deref());
    let limit = p.int("limit", 50, 1, 500)?;
    let offset = p.int("offset", 0, 0, i64::MAX)?;
    let (total, rows) = state.storage.users.audit_log(limit as usize, offset as usize).await?;
    let events: Vec<Value> = rows
        .iter()
        .map(|e| {
            json!({
                "id": e.id,
                "timestamp": iso_offset(e.at),
                "event": e.event,
                "user_id": e.user_id,
                "ip": e.ip,
                "details": serde_json::from_str::<Value>(&e.details).unwrap_or_else(|_| json!({})),
            })
        })
        .collect();
    Ok(Json(json!({"total": total, "limit": limit, "offset": offset, "events": events})))
}
