//! Browser sessions for the built-in dashboard: `POST /api/auth/login` checks the password (with the same
//! lockout as `/api/users/verify`) and sets a signed, HttpOnly, SameSite=Strict cookie; requests carrying it are
//! that user (role and memberships re-read from storage every time, so a deactivation or role change applies at
//! once). Writes made with the cookie must also carry `X-LangSight-CSRF: 1`, a header no cross-site form can send.

use crate::state::AppState;
use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const COOKIE: &str = "langsight_session";
pub const CSRF_HEADER: &str = "x-langsight-csrf";
/// A session lasts twelve hours.
pub const LIFETIME_SECS: i64 = 12 * 3600;

fn sign(state: &AppState, payload: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(format!("session:{}", state.config.stream_secret.0).as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(payload.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The cookie value for `user_id`, valid until `expires` (epoch seconds).
pub fn token(state: &AppState, user_id: &str, expires: i64) -> String {
    let payload = format!("{user_id}.{expires}");
    format!("{payload}.{}", sign(state, &payload))
}

/// The user id of a valid, unexpired session cookie in `headers`.
pub fn user_id(state: &AppState, headers: &HeaderMap) -> Option<String> {
    let raw = headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(&format!("{COOKIE}=")).map(String::from))?;
    let (payload, mac) = raw.rsplit_once('.')?;
    let expected = sign(state, payload);
    if !bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), mac.as_bytes())) {
        return None;
    }
    let (id, expires) = payload.rsplit_once('.')?;
    (expires.parse::<i64>().ok()? > chrono::Utc::now().timestamp()).then(|| id.to_string())
}

/// The `Set-Cookie` value: `Secure` when the dashboard is served over HTTPS.
pub fn set_cookie(value: &str, max_age: i64, secure: bool) -> String {
    format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Whether the request reached us over HTTPS (directly configured or through a proxy saying so).
pub fn is_https(state: &AppState, headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|p| p.eq_ignore_ascii_case("https"))
        || state.config.dashboard_url.as_deref().is_some_and(|u| u.starts_with("https://"))
}
