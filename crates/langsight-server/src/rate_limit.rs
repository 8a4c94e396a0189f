//! Rate limiting of every routed request, before authentication (as in the original), with its per-route
//! limits kept in force whatever the backend — the original's Redis mode silently replaced them all with
//! 200/minute.
//!
//! Bucket = client key × route template (`/api/agents/sessions/{session_id}` is one bucket, not one per id).
//! Client key: the first `X-Forwarded-For` entry when the peer is a trusted proxy, else `key:` + the first 16
//! characters of `X-API-Key`, else the peer IP. Login-type routes key by IP only (a stolen key must not give a
//! fresh budget for password guessing).

use crate::config::{Limit, RateLimits};
use crate::state::AppState;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::net::{IpAddr, SocketAddr};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Keying {
    Default,
    /// Peer IP (or the trusted proxy's forwarded IP) only.
    Login,
}

fn limit_for(route: &str, limits: &RateLimits) -> (Limit, Keying) {
    match route {
        "/api/traces/spans" => (limits.spans, Keying::Default),
        "/api/traces/otlp" | "/api/traces/otlp/v1/traces" | "/v1/traces" => (limits.otlp, Keying::Default),
        "/api/investigate" => (limits.investigate, Keying::Default),
        "/api/users/accept-invite" => (limits.accept_invite, Keying::Default),
        "/api/users/verify" | "/api/auth/login" | "/api/setup/admin" => (limits.login, Keying::Login),
        "/api/users/me/change-password" => (limits.change_password, Keying::Login),
        _ => (limits.default, Keying::Default),
    }
}

/// The client behind trusted proxies: walking `X-Forwarded-For` from the right (the entries our proxies
/// appended), the first address that is not a trusted proxy. The left-most entry — what the original used —
/// is whatever the client wrote, so it would let anyone pick a fresh bucket per request.
fn forwarded_for(state: &AppState, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<String> {
    let trusted = |ip: IpAddr| state.config.trusted_proxy_cidrs.iter().any(|c| c.contains(ip));
    if !trusted(peer?) {
        return None;
    }
    let xff = headers.get("x-forwarded-for")?.to_str().ok()?;
    let hops: Vec<IpAddr> = xff.split(',').filter_map(|h| h.trim().parse().ok()).collect();
    hops.iter().rev().find(|ip| !trusted(**ip)).or(hops.first()).map(|ip| ip.to_string())
}

/// The client's address as we best know it (forwarded by a trusted proxy, else the peer), for audit logs.
pub fn client_ip(state: &AppState, peer: Option<IpAddr>, headers: &HeaderMap) -> String {
    forwarded_for(state, peer, headers).or(peer.map(|p| p.to_string())).unwrap_or_else(|| "unknown".into())
}

fn client_key(state: &AppState, peer: Option<IpAddr>, headers: &HeaderMap, keying: Keying) -> String {
    if let Some(ip) = forwarded_for(state, peer, headers) {
        return ip;
    }
    if keying == Keying::Default {
        // Limiting runs before authentication: only a key known to be valid gets its own bucket, otherwise
        // random keys would each get a fresh budget. Unknown keys share their address's bucket.
        if let Some(k) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
            if state.keys.is_known_valid(state, k) {
                return format!("key:{}", k.chars().take(16).collect::<String>());
            }
        }
    }
    peer.map(|p| p.to_string()).unwrap_or_else(|| "unknown".into())
}

/// Probes and scrapes are never limited: an orchestrator probing liveness or a Prometheus scraping from one
/// address must not get a 429 for a healthy instance (and restart it) because that address is busy. They are
/// cheap and answer without touching user data (`/metrics` is behind its own token).
const UNLIMITED: [&str; 3] = ["/api/liveness", "/api/readiness", "/metrics"];

pub async fn limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(route) = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()) else {
        return next.run(req).await; // unmatched paths (404) are not limited
    };
    if !state.config.rate_limits.enabled || UNLIMITED.contains(&route.as_str()) {
        return next.run(req).await;
    }
    let (limit, keying) = limit_for(&route, &state.config.rate_limits);
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let client = client_key(&state, peer, req.headers(), keying);
    let bucket = format!("{client}:{route}");
    let d = state.shared.rate_limiter.hit(&bucket, limit.count, limit.window_ms).await;
    let outcome = match (d.allowed, d.fallback) {
        (true, false) => "allowed",
        (false, false) => "limited",
        (true, true) => "allowed_local",
        (false, true) => "limited_local",
    };
    state.metrics.record_rate_limit(&route, outcome);
    let reset_s = d.reset_ms.div_ceil(1000).max(1);
    let mut r = if d.allowed {
        next.run(req).await
    } else {
        let mut r = (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({ "error": format!("Rate limit exceeded: {}", limit.describe()) })),
        )
            .into_response();
        r.headers_mut().insert("retry-after", HeaderValue::from(reset_s));
        r
    };
    let h = r.headers_mut();
    h.insert("ratelimit-limit", HeaderValue::from(limit.count));
    h.insert("ratelimit-remaining", HeaderValue::from(d.remaining));
    h.insert("ratelimit-reset", HeaderValue::from(reset_s));
    r
}
