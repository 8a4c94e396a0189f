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
pub const OWNER_DEACTIVATED: &str =
    "This API key belongs to a deactivated account and no longer works. Ask an admin for a new key.";
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

/// What a route needs from its caller. Every protected route names one when it is registered
/// (`routes::Api`), so a new route cannot forget to say who may call it; [`require`] enforces it before the
/// handler runs, and the handler still narrows project-scoped work to the caller's project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Instance-wide state: users, invitations, roles, instance settings, model prices, the audit log,
    /// creating projects. Bootstrap keys, admin users and unbound admin keys; never a project-bound key.
    InstanceAdmin,
    /// A read that spans the instance but is answered per caller (the project list: a user sees their
    /// memberships). Refused to project-bound keys, which have no business outside their project.
    InstanceRead,
    /// Changes inside a project: admins, including admin keys bound to that project.
    ProjectAdmin,
    /// Reads inside a project (the handler resolves which one with [`Principal::scope`]).
    ProjectRead,
    /// Sending spans: any valid credential, into the projects it may write (see `routes::traces::accept`).
    Ingest,
    /// About the caller itself (who am I, change my password).
    Authenticated,
}

impl Capability {
    pub const ALL: [Capability; 6] = [
        Capability::InstanceAdmin,
        Capability::InstanceRead,
        Capability::ProjectAdmin,
        Capability::ProjectRead,
        Capability::Ingest,
        Capability::Authenticated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Capability::InstanceAdmin => "instance admin",
            Capability::InstanceRead => "instance read",
            Capability::ProjectAdmin => "project admin",
            Capability::ProjectRead => "project reader",
            Capability::Ingest => "ingest",
            Capability::Authenticated => "authenticated",
        }
    }
}

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

    /// Whether this caller administers the whole instance: a bootstrap key, open mode, an admin user, or an
    /// admin key bound to no project (whose owner, if any, was checked to be an active admin when the key
    /// was resolved).
    pub fn is_instance_admin(&self) -> bool {
        match self {
            Principal::StoredKey(k) => k.role == KeyRole::Admin && self.bound_project().is_none(),
            _ => self.is_global_admin(),
        }
    }

    /// Checks `need` (the rule every protected route goes through, see [`Capability`]).
    pub fn require(&self, need: Capability) -> ApiResult<()> {
        match need {
            Capability::InstanceAdmin => {
                if let Some(bound) = self.bound_project() {
                    return Err(ApiError::Forbidden(bound_refusal(bound)));
                }
                if self.is_instance_admin() {
                    return Ok(());
                }
                match self {
                    Principal::Session(_) => Err(ApiError::Forbidden(VIEWER_SESSION_WRITE.into())),
                    _ => Err(ApiError::Forbidden(VIEWER_WRITE.into())),
                }
            }
            Capability::InstanceRead => match self.bound_project() {
                Some(bound) => Err(ApiError::Forbidden(bound_refusal(bound))),
                None => Ok(()),
            },
            Capability::ProjectAdmin => self.require_admin(),
            Capability::ProjectRead | Capability::Ingest | Capability::Authenticated => Ok(()),
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

/// The 403 text for a project-bound key on an instance-wide route: names the binding and what to use instead.
pub fn bound_refusal(bound: &str) -> String {
    format!(
        "This API key is bound to project '{bound}' and cannot act on instance-wide state (users, settings, \
         model prices, the audit log, the project list). Use an admin key that is not bound to a project, or \
         log in as an admin."
    )
}

/// Middleware for one protected route: refuses callers without `need` before the handler runs.
pub async fn require(need: Capability, req: Request, next: Next) -> Result<Response, ApiError> {
    match req.extensions().get::<Principal>() {
        Some(p) => p.require(need)?,
        // `authenticate` runs first on every protected route; without a principal nothing is allowed.
        None => return Err(ApiError::Unauthenticated(MISSING_KEY.into())),
    }
    Ok(next.run(req).await)
}

/// A stored key as resolved: unknown (or revoked), valid (role capped by its owner's), or owned by a user who
/// no longer exists or was deactivated.
#[derive(Debug, Clone)]
enum KeyLookup {
    Unknown,
    Valid(ApiKeyRecord),
    OwnerInactive,
}

/// Short-lived cache of stored-key lookups, so ingest at thousands of requests per second does not read the
/// key table for each one.
pub struct KeyCache {
    /// Bumped by every invalidation: a lookup that started before one must not cache its (stale) answer.
    generation: std::sync::atomic::AtomicU64,
    /// Tells open live streams that a key, user or session changed here, so they re-check their credential
    /// at once instead of at their next periodic check.
    changed: tokio::sync::watch::Sender<u64>,
    by_hash: Mutex<HashMap<String, (Instant, KeyLookup)>>,
    any_stored: Mutex<Option<(Instant, bool)>>,
    touched: Mutex<HashMap<String, Micros>>,
}

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache {
            generation: Default::default(),
            changed: tokio::sync::watch::channel(0).0,
            by_hash: Default::default(),
            any_stored: Default::default(),
            touched: Default::default(),
        }
    }
}

impl KeyCache {
    /// Forgets everything: called after a key is created or revoked here, or a user's role or state changed.
    pub fn invalidate(&self) {
        let g = self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        self.changed.send_replace(g);
        if let Ok(mut m) = self.by_hash.lock() {
            m.clear();
        }
        if let Ok(mut a) = self.any_stored.lock() {
            *a = None;
        }
    }

    /// A receiver that changes whenever [`KeyCache::invalidate`] runs.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    async fn lookup(&self, state: &AppState, raw: &str) -> ApiResult<KeyLookup> {
        self.lookup_hash(state, hash_api_key(raw)).await
    }

    async fn lookup_hash(&self, state: &AppState, hash: String) -> ApiResult<KeyLookup> {
        if let Some((at, rec)) = self.by_hash.lock().ok().and_then(|m| m.get(&hash).cloned()) {
            if at.elapsed() < CACHE_TTL {
                return Ok(rec);
            }
        }
        let generation = self.generation.load(std::sync::atomic::Ordering::SeqCst);
        let rec = match state.storage.keys.api_key_by_hash(&hash).await? {
            None => KeyLookup::Unknown,
            Some(mut rec) => match rec.user_id.clone() {
                None => KeyLookup::Valid(rec),
                // A key acts for its owner: it dies with the owner's account and never outranks the owner.
                Some(owner) => match state.storage.users.user_by_id(&owner).await? {
                    Some(u) if u.active => {
                        if u.role != "admin" {
                            rec.role = KeyRole::Viewer;
                        }
                        KeyLookup::Valid(rec)
                    }
                    _ => KeyLookup::OwnerInactive,
                },
            },
        };
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

    /// Whether any stored key exists (cached like lookups; a failing lookup counts as "yes"). Also asked by
    /// the open-mode `Host` check in `http::trusted_hosts`.
    pub async fn any_stored(&self, state: &AppState) -> bool {
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
            .and_then(|m| m.get(&hash).map(|(at, rec)| at.elapsed() < CACHE_TTL && matches!(rec, KeyLookup::Valid(_))))
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

/// What a principal's authority rests on, so a long-lived live stream can re-check it: a key that is revoked,
/// a user who is deactivated or a session that is logged out stops the streams it opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A bootstrap key (valid until the operator restarts without it).
    Bootstrap,
    /// Open mode: valid while no key exists.
    Open,
    /// A stored key, by its hash (a lookup handle, not a secret: the raw key cannot be derived from it).
    Key(String),
    /// A dashboard session, by the hash of its id.
    Session(String),
    /// A user vouched for by the dashboard proxy.
    User(String),
}

impl Credential {
    /// The credential behind `principal` as resolved from `headers`.
    pub fn of(state: &AppState, principal: &Principal, headers: &HeaderMap) -> Credential {
        match principal {
            Principal::BootstrapKey => Credential::Bootstrap,
            Principal::Open => Credential::Open,
            Principal::StoredKey(_) => Credential::Key(presented_key(headers).map(hash_api_key).unwrap_or_default()),
            Principal::Session(u) => match crate::session::session_id(state, headers) {
                Some(id) if presented_key(headers).is_none() => Credential::Session(crate::session::id_hash(&id)),
                _ => Credential::User(u.id.clone()),
            },
        }
    }

    /// A compact text form for signed stream tokens.
    pub fn encode(&self) -> String {
        match self {
            Credential::Bootstrap => "b".into(),
            Credential::Open => "o".into(),
            Credential::Key(h) => format!("k{h}"),
            Credential::Session(h) => format!("s{h}"),
            Credential::User(id) => format!("u{}", hex::encode(id)),
        }
    }

    pub fn decode(text: &str) -> Option<Credential> {
        let (tag, rest) = text.split_at_checked(1)?;
        Some(match tag {
            "b" => Credential::Bootstrap,
            "o" => Credential::Open,
            "k" => Credential::Key(rest.to_string()),
            "s" => Credential::Session(rest.to_string()),
            "u" => Credential::User(String::from_utf8(hex::decode(rest).ok()?).ok()?),
            _ => return None,
        })
    }

    /// Whether it still grants access (storage errors count as "still valid": a database hiccup must not
    /// cut every live view; the next check decides).
    pub async fn still_valid(&self, state: &AppState) -> bool {
        let user_active = |id: String| async move {
            state.storage.users.user_by_id(&id).await.map(|u| u.is_some_and(|u| u.active)).unwrap_or(true)
        };
        match self {
            Credential::Bootstrap => true,
            Credential::Open => {
                state.config.auth_disabled && state.config.api_keys.is_empty() && !state.keys.any_stored(state).await
            }
            Credential::Key(hash) => match state.keys.lookup_hash(state, hash.clone()).await {
                Ok(KeyLookup::Valid(rec)) => rec.expires_at.is_none_or(|exp| now_micros() < exp),
                Ok(_) => false,
                Err(_) => true,
            },
            Credential::Session(hash) => match state.storage.users.session_user(hash, now_micros()).await {
                Ok(Some(user)) => user_active(user).await,
                Ok(None) => false,
                Err(_) => true,
            },
            Credential::User(id) => user_active(id.clone()).await,
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
        let ended = || ApiError::Unauthenticated("Your session has ended: log in again.".into());
        let session = match crate::session::user_id(state, headers).await {
            Ok(s) => s,
            Err(crate::session::SessionLookup::Ended) => return Err(ended()),
            Err(crate::session::SessionLookup::Storage(e)) => return Err(e.into()),
        };
        if let Some(id) = session {
            let user = state.storage.users.user_by_id(&id).await?;
            let Some(user) = user.filter(|u| u.active) else { return Err(ended()) };
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
    let found = state.keys.lookup(state, key).await?;
    if let KeyLookup::OwnerInactive = found {
        return Err(ApiError::Forbidden(OWNER_DEACTIVATED.into()));
    }
    if let KeyLookup::Valid(rec) = found {
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
    let by_cookie =
        presented_key(req.headers()).is_none() && crate::session::session_id(&state, req.headers()).is_some();
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
