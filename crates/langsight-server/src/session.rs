//! Browser sessions for the built-in dashboard: `POST /api/auth/login` checks the password (with the same
//! lockout as `/api/users/verify`), records a session server-side and sets a signed, HttpOnly, SameSite=Strict
//! cookie naming it; requests carrying it are that user (session, role and memberships re-read from storage
//! every time, so a logout, password change, deactivation or role change applies at once). Writes made with the cookie must also carry `X-LangSight-CSRF: 1`, a header no cross-site form can send.

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

/// A fresh session id: 256 random bits, hex. Only its hash is stored (see [`id_hash`]).
pub fn new_id() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// What storage keeps of a session id: a database reader cannot turn it into a cookie.
pub fn id_hash(id: &str) -> String {
    hex::encode(<Sha256 as sha2::Digest>::digest(id.as_bytes()))
}

/// The cookie value for session `id`, valid until `expires` (epoch seconds).
pub fn token(state: &AppState, id: &str, expires: i64) -> String {
    let payload = format!("{id}.{expires}");
    format!("{payload}.{}", sign(state, &payload))
}

/// The session id of a well-signed, unexpired session cookie in `headers`. Whether the session is still live
/// (not logged out, not ended by a password change) is storage's answer: see [`user_id`].
pub fn session_id(state: &AppState, headers: &HeaderMap) -> Option<String> {
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

/// The user of the live session the request's cookie names: `Ok(None)` when there is no valid cookie,
/// `Err(Ended)` when the cookie is genuine but the session was ended server-side.
pub async fn user_id(state: &AppState, headers: &HeaderMap) -> Result<Option<String>, SessionLookup> {
    let Some(id) = session_id(state, headers) else { return Ok(None) };
    match state.storage.users.session_user(&id_hash(&id), langsight_core::time::now_micros()).await {
        Ok(Some(user)) => Ok(Some(user)),
        Ok(None) => Err(SessionLookup::Ended),
        Err(e) => Err(SessionLookup::Storage(e)),
    }
}

/// Why a genuine cookie does not make a session.
#[derive(Debug)]
pub enum SessionLookup {
    /// Logged out, ended by a password change or deactivation, or expired.
    Ended,
    Storage(langsight_storage::StorageError),
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
