//! First run: `POST /api/setup/admin` creates the first admin of an instance that has no user, so
//! `langsight serve` with nothing configured does not serve a login form nobody can pass.
//!
//! Who may call it (the route is public, like login, and rate limited like login):
//! - a browser on this machine: the TCP peer is a loopback address, the request carries no forwarding
//!   header (a reverse proxy on this host connects from loopback too, for anyone on the internet), and
//!   `Host` (and `Origin`, when sent) name localhost or a loopback address (not a rebinding name);
//! - anyone presenting the one-time setup token that the start-up log prints with the dashboard URL
//!   (compared in constant time, forgotten once an admin exists).
//!
//! Once any user exists it answers 409, forever: storage creates the user only if the table is empty, in one
//! atomic step, so two concurrent calls cannot both create an admin.

use crate::audit::{mask_email, record_as, RequestMeta};
use crate::config::password_problem;
use crate::error::{ApiError, ApiResult};
use crate::http::StrictJson;
use crate::passwords;
use crate::state::AppState;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Mutex;
use subtle::ConstantTimeEq;

const ALREADY: &str = "This instance is already set up: log in, or ask an admin for an invitation.";
const NOT_LOCAL: &str = "The first admin can be created only from a browser on the server's own machine \
    (http://localhost:<port>) or with the setup token printed in the server's start-up log.";

/// The one-time setup token of this process: generated at start-up when no user exists, printed once in the
/// log, and dropped as soon as an admin exists, so it can never be used twice.
#[derive(Default)]
pub struct SetupToken(Mutex<Option<String>>);

impl SetupToken {
    /// Makes a fresh token (32 random bytes, hex) and returns it for the start-up log.
    pub fn issue(&self) -> String {
        let token = hex::encode(rand::random::<[u8; 32]>());
        if let Ok(mut t) = self.0.lock() {
            *t = Some(token.clone());
        }
        token
    }

    /// Whether `presented` is the live token, compared in constant time (no timing leak of a prefix).
    fn matches(&self, presented: &str) -> bool {
        let Ok(t) = self.0.lock() else { return false };
        t.as_deref().is_some_and(|t| bool::from(t.as_bytes().ct_eq(presented.as_bytes())))
    }

    fn consume(&self) {
        if let Ok(mut t) = self.0.lock() {
            *t = None;
        }
    }
}

/// Forwarding headers a reverse proxy adds: their presence means the loopback peer is a proxy acting for
/// someone else, whoever that is.
const FORWARDING: [&str; 4] = ["x-forwarded-for", "forwarded", "x-real-ip", "x-forwarded-host"];

/// Whether `host` (a `Host`/`Origin` authority, port allowed) names this machine: localhost, 127.0.0.0/8 or
/// `[::1]`. Other names are refused even when they resolve to loopback (DNS rebinding).
fn loopback_authority(authority: &str) -> bool {
    let authority = authority.trim().to_ascii_lowercase();
    let host = crate::http::strip_port(&authority);
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(std::net::IpAddr::V6(v6)) => v6.is_loopback() && authority.starts_with('['),
        Err(_) => host == "localhost",
    }
}

/// The request comes from a browser on this machine, addressed to a local name, with no proxy in between.
fn is_local(peer: Option<SocketAddr>, headers: &HeaderMap) -> bool {
    let peer_local = peer.is_some_and(|p| match p.ip() {
        std::net::IpAddr::V4(v4) => v4.is_loopback(),
        std::net::IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    });
    let forwarded = FORWARDING.iter().any(|h| headers.contains_key(*h));
    let text = |name: header::HeaderName| headers.get(name).map(|v| v.to_str().unwrap_or("\u{0}"));
    let host_local = text(header::HOST).is_some_and(loopback_authority);
    let origin_local = match text(header::ORIGIN) {
        None => true,
        Some(o) => o.split_once("://").is_some_and(|(_, rest)| loopback_authority(rest.trim_end_matches('/'))),
    };
    peer_local && !forwarded && host_local && origin_local
}

/// `GET /api/setup/status`: whether the instance still needs its first admin, and whether this browser may
/// create it without the token (so the dashboard asks for the token only when it is needed).
pub async fn status(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let needs = state.storage.users.count_users().await? == 0;
    Ok(Json(json!({"needs_setup": needs, "local": needs && is_local(Some(peer), &headers)})))
}

#[derive(Deserialize)]
pub struct FirstAdmin {
    email: String,
    password: String,
    #[serde(default)]
    token: Option<String>,
}

/// `POST /api/setup/admin`: creates the first admin (201 with the user); the dashboard then logs in with the
/// same password through `/api/auth/login`.
pub async fn create_admin(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    meta: RequestMeta,
    StrictJson(body): StrictJson<FirstAdmin>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    // Cheap refusal first: once set up, nobody learns anything else from this route.
    if state.storage.users.count_users().await? > 0 {
        return Err(ApiError::Conflict(ALREADY.into()));
    }
    let by_token = body.token.as_deref().is_some_and(|t| state.setup_token.matches(t));
    if !by_token && !is_local(Some(peer), &headers) {
        tracing::warn!(ip = %meta.ip, "setup.refused: not local and no valid setup token");
        return Err(ApiError::Forbidden(NOT_LOCAL.into()));
    }
    let email = super::users::email_of(&body.email)?;
    if let Some(problem) = password_problem(&body.password) {
        return Err(super::users::field_error("password", &format!("Password is too weak: {problem}.")));
    }
    let hash = passwords::hash(body.password).await.ok_or(ApiError::Internal)?;
    let user = super::users::new_user(email.clone(), hash, "admin");
    if !state.storage.users.create_first_user(user.clone()).await? {
        return Err(ApiError::Conflict(ALREADY.into()));
    }
    state.setup_token.consume();
    let how = if by_token { "token" } else { "loopback" };
    tracing::info!(email = %mask_email(&email), via = how, "setup.first_admin_created");
    record_as(&state, &user.id, &meta, "user.first_admin_created", json!({"via": how}), "");
    Ok((StatusCode::CREATED, Json(json!({"id": user.id, "email": user.email, "role": user.role}))))
}

/// Issues the setup token when no user exists and says, once, how to finish setting up. Called at start-up
/// after the admin from the environment (if any) was created; `port` is the one actually bound (`--port 0`).
pub async fn announce(state: &AppState, port: u16) -> Result<(), String> {
    match state.storage.users.count_users().await {
        Ok(0) => {}
        Ok(_) => return Ok(()),
        Err(e) => return Err(format!("cannot read users: {e}")),
    }
    let token = state.setup_token.issue();
    let host = match state.config.host.as_str() {
        "0.0.0.0" | "::" | "[::]" => "localhost",
        h => h,
    };
    let url = state
        .config
        .dashboard_url
        .clone()
        .unwrap_or_else(|| format!("http://{host}:{port}"))
        .trim_end_matches('/')
        .to_string();
    tracing::warn!(
        url = %url,
        "setup.first_run: no user exists yet. Open {url}/ in a browser on this machine to create the first admin, \
         or from elsewhere open {url}/#/setup?token={token} (one-time setup token: {token})"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(header::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_a_direct_local_browser_is_local() {
        let lo: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        assert!(is_local(Some(lo), &headers(&[("host", "localhost:8000")])));
        assert!(is_local(Some(lo), &headers(&[("host", "[::1]:8000"), ("origin", "http://127.0.0.1:8000")])));
        assert!(!is_local(Some(remote), &headers(&[("host", "localhost:8000")])));
        assert!(!is_local(Some(lo), &headers(&[("host", "rebind.example:8000")])));
        assert!(!is_local(Some(lo), &headers(&[("host", "localhost:8000"), ("x-forwarded-for", "203.0.113.9")])));
        assert!(!is_local(Some(lo), &headers(&[("host", "localhost"), ("origin", "http://evil.example")])));
        assert!(!is_local(Some(lo), &headers(&[("host", "localhost.evil.example")])));
        assert!(!is_local(None, &headers(&[("host", "localhost")])));
        assert!(!is_local(Some(lo), &headers(&[])));
    }

    #[test]
    fn the_token_matches_only_itself_and_only_until_consumed() {
        let t = SetupToken::default();
        assert!(!t.matches(""));
        let token = t.issue();
        assert!(t.matches(&token) && !t.matches(&token[1..]) && !t.matches(&format!("{token}0")));
        t.consume();
        assert!(!t.matches(&token));
    }
}
