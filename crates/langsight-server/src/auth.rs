//! Who is calling, and what they may see.
//!
//! [`authenticate`] runs on every protected `/api` route and resolves the caller to a [`Principal`] (or answers
//! 401/403 with the original's texts). Handlers then ask the principal: [`Principal::require_admin`] for
//! writes, [`Principal::scope`] for which project a read covers (the original's `get_active_project_id`).

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use langsight_core::keys::hash_api_key;
use langsight_core::time::{now_micros, Micros};
use langsight_storage::{ApiKeyRecord, KeyRole};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

pub const AUTH_REQUIRED: &str = "Authentication is required. Configure LANGSIGHT_API_KEYS or create API keys via the \
    dashboard. To explicitly disable auth (local dev only): set LANGSIGHT_AUTH_DISABLED=true.";
pub const MISSING_KEY: &str = "Missing X-API-Key header";
pub const INVALID_KEY: &str = "Invalid API key";
pub const EXPIRED_KEY: &str = "API key has expired";
pub const VIEWER_WRITE: &str = "Write operations require an admin API key";
pub const VIEWER_SESSION_WRITE: &str = "Write operations require admin role";
pub const DEACTIVATED: &str = "Account has been deactivated";
pub const ROLE_CHANGED: &str = "Your role has been changed. Please log in again.";
/// Proxy signatures older or newer than this are ignored.
const PROXY_SKEW_SECS: i64 = 60;
pub const PROJECT_NOT_FOUND: &str = "Project not found.";
pub const PROJECT_REQUIRED: &str = "project_id query parameter is required. Select a project or contact an admin to \
    gain project access.";

/// How long a verified stored key, or the "do stored keys exist" answer, is reused without a lookup.
/// Revocation through this process takes effect at once (the cache is cleared); through another process
/// within this time.
const CACHE_TTL: Duration = Duration::from_secs(5);
/// `last_used_at` is written at most this often per key: a write per request would double ingest's writes.
const TOUCH_EVERY: Micros = 60_000_000;

/// The authenticated caller.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A key from `LANGSIGHT_API_KEYS`: global admin.
    BootstrapKey,
    /// A stored key.
    StoredKey(ApiKeyRecord),
    /// No key exists and auth is explicitly disabled.
    Open,
    /// A dashboard user, vouched for by our trusted proxy's signed headers and re-read from storage.
    Session(langsight_storage::User),
}

impl Principal {
    pub fn is_global_admin(&self) -> bool {
        match self {
            Principal::BootstrapKey | Principal::Open => true,
            Principal::Session(u) => u.role == "admin",
            Principal::StoredKey(_) => false,
        }
    }

    /// The project a stored key is bound to.
    pub fn bound_project(&self) -> Option<&str> {
        match self {
            Principal::StoredKey(k) => k.project_id.as_deref().filter(|p| !p.is_empty()),
            _ => None,
        }
    }

    /// The identity memberships are recorded under: the key's user, else the key itself.
    pub fn member_id(&self) -> Option<&str> {
        match self {
            Principal::StoredKey(k) => Some(k.user_id.as_deref().unwrap_or(&k.id)),
            Principal::Session(u) => Some(&u.id),
            _ => None,
        }
    }

    /// The user acting, if one is known (a session, or a stored key created by a user).
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Principal::Session(u) => Some(&u.id),
            Principal::StoredKey(k) => k.user_id.as_deref(),
            _ => None,
        }
    }

    /// Who did it, for audit logs and `acked_by`.
    pub fn actor(&self) -> String {
        match self {
            Principal::Session(u) => u.id.clone(),
            Principal::StoredKey(k) => k.user_id.clone().unwrap_or_else(|| format!("key:{}", k.id)),
            Principal::BootstrapKey => "admin".into(),
            Principal::Open => "anonymous".into(),
        }
    }

    /// Writes need an admin: bootstrap keys, admin stored keys, and open mode (where
    /// `LANGSIGHT_AUTH_DISABLED=true` allows writes too — the original's env flag only opened reads).
    pub fn require_admin(&self) -> ApiResult<()> {
        match self {
            Principal::StoredKey(k) if k.role == KeyRole::Viewer => Err(ApiError::Forbidden(VIEWER_WRITE.into())),
            Principal::Session(u) if u.role != "admin" => Err(ApiError::Forbidden(VIEWER_SESSION_WRITE.into())),
            _ => Ok(()),
        }
    }

    /// The project a scoped read covers (`None` = every project), following the original's rules: a bound
    /// key always reads its own project; the yaml `project_id` pins everyone; admins may omit the parameter;
    /// others must name a project they belong to, and get 404 (not 403) for one they do not, so project ids
    /// cannot be probed.
    pub async fn scope(&self, state: &AppState, requested: Option<&str>) -> ApiResult<Option<String>> {
        if let Some(bound) = self.bound_project() {
            return Ok(Some(bound.to_string()));
        }
        if let Some(pinned) = &state.config.project_id {
            return Ok(Some(pinned.clone()));
        }
        let requested = requested.filter(|p| !p.is_empty());
        let Some(project) = requested else {
            return if self.is_global_admin() { Ok(None) } else { Err(ApiError::BadRequest(PROJECT_REQUIRED.into())) };
        };
        match self {
            Principal::BootstrapKey | Principal::Open => Ok(Some(project.to_string())),
            Principal::Session(u) if u.role == "admin" => Ok(Some(project.to_string())),
            Principal::StoredKey(k) if k.role == KeyRole::Admin => Ok(Some(project.to_string())),
            Principal::StoredKey(_) | Principal::Session(_) => {
                let member = self.member_id().unwrap_or_default();
                match state.storage.projects.member_role(project, member).await? {
                    Some(_) => Ok(Some(project.to_string())),
                    None => Err(ApiError::NotFound(PROJECT_NOT_FOUND.into())),
                }
            }
        }
    }
}

/// Short-lived cache of stored-key lookups, so ingest at thousands of requests per second does not read the
/// key table for each one.
#[derive(Default)]
pub struct KeyCache {
    /// Bumped by every invalidation: a lookup that started before one must not cache its (stale) answer.
    generation: std::sync::atomic::AtomicU64,
    by_hash: Mutex<HashMap<String, (Instant, Option<ApiKeyRecord>)>>,
    any_stored: Mutex<Option<(Instant, bool)>>,
    touched: Mutex<HashMap<String, Micros>>,
}

impl KeyCache {
    /// Forgets everything: called after a key is created or revoked here.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut m) = self.by_hash.lock() {
            m.clear();
        }
        if let Ok(mut a) = self.any_stored.lock() {
            *a = None;
        }
    }

    async fn lookup(&self, state: &AppState, raw: &str) -> ApiResult<Option<ApiKeyRecord>> {
        let hash = hash_api_key(raw);
        if let Some((at, rec)) = self.by_hash.lock().ok().and_then(|m| m.get(&hash).cloned()) {
            if at.elapsed() < CACHE_TTL {
                return Ok(rec);
            }
        }
        let generation = self.generation.load(std::sync::atomic::Ordering::SeqCst);
        let rec = state.storage.keys.api_key_by_hash(&hash).await?;
        if self.generation.load(std::sync::atomic::Ordering::SeqCst) != generation {
            return Ok(rec); // a key was created or revoked meanwhile: answer, but do not cache
        }
        if let Ok(mut m) = self.by_hash.lock() {
            if m.len() > 10_000 {
                m.clear(); // Bounded: garbage keys from a scanner must not grow memory.
            }
            m.insert(hash, (Instant::now(), rec.clone()));
        }
        Ok(rec)
    }

    async fn any_stored(&self, state: &AppState) -> bool {
        if let Some((at, v)) = self.any_stored.lock().ok().and_then(|a| *a) {
            if at.elapsed() < CACHE_TTL {
                return v;
            }
        }
        // A failing lookup counts as "keys exist": fail closed.
        let generation = self.generation.load(std::sync::atomic::Ordering::SeqCst);
        let v = state.storage.keys.count_active_api_keys().await.map(|n| n > 0).unwrap_or(true);
        if self.generation.load(std::sync::atomic::Ordering::SeqCst) != generation {
            return v;
        }
        if let Ok(mut a) = self.any_stored.lock() {
            *a = Some((Instant::now(), v));
        }
        v
    }

    /// Whether `raw` is a bootstrap key or a stored key this process verified recently (no I/O: used by
    /// the rate limiter, which runs before authentication).
    pub fn is_known_valid(&self, state: &AppState, raw: &str) -> bool {
        if is_bootstrap_key(state, raw) {
            return true;
        }
        let hash = hash_api_key(raw);
        self.by_hash
            .lock()
            .ok()
            .and_then(|m| m.get(&hash).map(|(at, rec)| at.elapsed() < CACHE_TTL && rec.is_some()))
            .unwrap_or(false)
    }

    fn should_touch(&self, id: &str, now: Micros) -> bool {
        let Ok(mut t) = self.touched.lock() else { return false };
        match t.get(id) {
            Some(last) if now - last < TOUCH_EVERY => false,
            _ => {
                t.insert(id.to_string(), now);
                true
            }
        }
    }
}

/// The presented credential: `X-API-Key`, else `Authorization: Bearer`.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(k) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(k);
    }
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

fn is_bootstrap_key(state: &AppState, key: &str) -> bool {
    // Compare against every key without early exit, so timing reveals neither which nor whether.
    let mut found = subtle::Choice::from(0);
    for k in &state.config.api_keys {
        found |= k.0.as_bytes().ct_eq(key.as_bytes());
    }
    found.into()
}

/// The user id and role our dashboard proxy vouches for: only from a trusted proxy address, with
/// `X-Proxy-Signature` = hex HMAC-SHA256(`LANGSIGHT_PROXY_SECRET`, `"{id}:{role}:{ts}"`) and `X-Proxy-Timestamp`
/// within 60 s. Anything else (no secret, untrusted peer, bad or stale signature) is ignored.
fn proxy_identity(state: &AppState, peer: Option<std::net::IpAddr>, headers: &HeaderMap) -> Option<(String, String)> {
    use hmac::{Hmac, Mac};
    let secret = state.config.users.proxy_secret.as_ref()?;
    let peer = peer?;
    if !state.config.trusted_proxy_cidrs.iter().any(|c| c.contains(peer)) {
        return None;
    }
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let id = text("x-user-id").filter(|v| !v.is_empty())?;
    let role = text("x-user-role").unwrap_or("");
    let ts_text = text("x-proxy-timestamp")?;
    let ts: i64 = ts_text.parse().ok()?;
    if (now_micros() / 1_000_000 - ts).abs() > PROXY_SKEW_SECS {
        return None;
    }
    let sig = hex::decode(text("x-proxy-signature")?).ok()?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.0.as_bytes()).ok()?;
    mac.update(format!("{id}:{role}:{ts_text}").as_bytes());
    mac.verify_slice(&sig).ok()?;
    Some((id.to_string(), role.to_string()))
}

pub async fn resolve(state: &AppState, headers: &HeaderMap) -> ApiResult<Principal> {
    resolve_from(state, None, headers).await
}

/// [`resolve`] with the TCP peer, which proxy identity headers need.
pub async fn resolve_from(
    state: &AppState,
    peer: Option<std::net::IpAddr>,
    headers: &HeaderMap,
) -> ApiResult<Principal> {
    if let Some((id, role)) = proxy_identity(state, peer, headers) {
        let user = state.storage.users.user_by_id(&id).await?;
        let Some(user) = user.filter(|u| u.active) else {
            return Err(ApiError::Forbidden(DEACTIVATED.into()));
        };
        if !role.is_empty() && role != user.role {
            return Err(ApiError::Forbidden(ROLE_CHANGED.into()));
        }
        return Ok(Principal::Session(user));
    }
    let key = presented_key(headers);
    if key.is_none() {
        if let Some(id) = crate::session::user_id(state, headers) {
            let user = state.storage.users.user_by_id(&id).await?;
            let Some(user) = user.filter(|u| u.active) else {
                return Err(ApiError::Unauthenticated("Your session has ended: log in again.".into()));
            };
            return Ok(Principal::Session(user));
        }
    }
    let has_bootstrap = !state.config.api_keys.is_empty();
    if key.is_none() {
        if !has_bootstrap && !state.keys.any_stored(state).await {
            return if state.config.auth_disabled {
                Ok(Principal::Open)
            } else {
                Err(ApiError::Unauthenticated(AUTH_REQUIRED.into()))
            };
        }
        return Err(ApiError::Unauthenticated(MISSING_KEY.into()));
    }
    let key = key.unwrap_or_default();
    if has_bootstrap && is_bootstrap_key(state, key) {
        return Ok(Principal::BootstrapKey);
    }
    if let Some(rec) = state.keys.lookup(state, key).await? {
        let now = now_micros();
        if rec.expires_at.is_some_and(|exp| now >= exp) {
            return Err(ApiError::Forbidden(EXPIRED_KEY.into()));
        }
        if state.keys.should_touch(&rec.id, now) {
            let (st, id) = (state.clone(), rec.id.clone());
            tokio::spawn(async move {
                if let Err(e) = st.storage.keys.touch_api_key(&id, now).await {
                    tracing::debug!(error = %e, "api_key.touch_failed");
                }
            });
        }
        return Ok(Principal::StoredKey(rec));
    }
    if !has_bootstrap && !state.keys.any_stored(state).await && state.config.auth_disabled {
        // No key exists at all and auth is off: a stray header does not lock the caller out.
        return Ok(Principal::Open);
    }
    Err(ApiError::Forbidden(INVALID_KEY.into()))
}

/// Middleware for protected routes: resolves the principal and stores it in the request's extensions.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Result<Response, ApiError> {
    let peer = req.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    let principal = resolve_from(&state, peer, req.headers()).await?;
    // A browser session writes only with the CSRF header (cross-site pages cannot set it).
    let by_cookie = presented_key(req.headers()).is_none() && crate::session::user_id(&state, req.headers()).is_some();
    let safe =
        matches!(*req.method(), axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS);
    if by_cookie && !safe && req.headers().get(crate::session::CSRF_HEADER).is_none() {
        return Err(ApiError::Forbidden(format!(
            "Writes with a session cookie need the {} header (the dashboard sends it).",
            crate::session::CSRF_HEADER
        )));
    }
    req.extensions_mut().insert(principal);
    Ok(next.run(req).await)
}
