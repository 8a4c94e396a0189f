//! Cross-cutting HTTP behaviour, outermost first: trusted hosts, CORS, security headers, request metrics;
//! and the body extractors that enforce the 10 MiB limit and answer bad JSON with a 422 saying what to fix.

use crate::error::ApiError;
use crate::metrics::normalise_path;
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;
use std::time::Instant;

pub const MAX_BODY: usize = 10 * 1024 * 1024;

/// Two `Host` rules, both against DNS rebinding (a web page on a name its owner points at this server, so the
/// browser treats our API as the page's own origin):
///
/// - When `LANGSIGHT_DASHBOARD_URL` is set, as in the original: `Host` must be the dashboard's host,
///   localhost, 127.0.0.1 or one of `LANGSIGHT_TRUSTED_HOSTS` (400 otherwise).
/// - When the server runs open (`LANGSIGHT_AUTH_DISABLED=true` and no API key exists), every request but the
///   probes must be addressed to localhost, a loopback address (any port), the dashboard's host or a
///   `LANGSIGHT_TRUSTED_HOSTS` entry (403 saying what to set otherwise). Open mode trusts whoever can reach
///   the port; a rebinding page must not be able to read everything or mint the first key.
pub async fn trusted_hosts(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let authority = request_authority(&req);
    let host = strip_port(&authority);
    let dashboard_host = state.config.dashboard_url.as_deref().map(dashboard_host);
    if let Some(dashboard_host) = dashboard_host {
        let allowed = host.eq_ignore_ascii_case(dashboard_host)
            || host == "localhost"
            || host == "127.0.0.1"
            || state.config.trusted_hosts.iter().any(|h| h.eq_ignore_ascii_case(host));
        if !allowed {
            return (StatusCode::BAD_REQUEST, "Invalid host header").into_response();
        }
    }
    let may_run_open = state.config.auth_disabled && state.config.api_keys.is_empty();
    if may_run_open
        && !matches!(req.uri().path(), "/api/liveness" | "/api/readiness")
        && !open_mode_host_allowed(&state, &authority, dashboard_host)
        && !state.keys.any_stored(&state).await
    {
        return open_mode_refusal(&authority);
    }
    next.run(req).await
}

/// The authority the request was addressed to: `Host`, else the request target's (HTTP/2, absolute form).
fn request_authority(req: &Request) -> String {
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// The host of `LANGSIGHT_DASHBOARD_URL` (`localhost` when it has none).
fn dashboard_host(url: &str) -> &str {
    url.split("://")
        .nth(1)
        .map(|rest| strip_port(rest.split('/').next().unwrap_or("")))
        .filter(|h| !h.is_empty())
        .unwrap_or("localhost")
}

/// Whether an open server may answer a request addressed to `authority` (lower-cased `host[:port]`):
/// localhost, 127.0.0.0/8, ::1, the dashboard's host, or a `LANGSIGHT_TRUSTED_HOSTS` entry (by name, or by
/// name and port). Other names are refused even when they resolve to loopback: that is what a rebinding name
/// does.
fn open_mode_host_allowed(state: &AppState, authority: &str, dashboard_host: Option<&str>) -> bool {
    let host = strip_port(authority);
    if host.is_empty() {
        return false;
    }
    let loopback = match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(std::net::IpAddr::V6(v6)) => v6.is_loopback() && authority.starts_with('['),
        Err(_) => false,
    };
    loopback
        || host == "localhost"
        || dashboard_host.is_some_and(|d| d.eq_ignore_ascii_case(host))
        || state.config.trusted_hosts.iter().any(|t| t.eq_ignore_ascii_case(host) || t.eq_ignore_ascii_case(authority))
}

fn open_mode_refusal(authority: &str) -> Response {
    let shown: String = authority.chars().take(100).collect();
    let name = strip_port(&shown);
    let detail = format!(
        "Host '{shown}' is not trusted. This server runs without authentication (LANGSIGHT_AUTH_DISABLED=true and \
         no API key exists), so it answers only requests addressed to localhost, a loopback address, the host of \
         LANGSIGHT_DASHBOARD_URL or a name in LANGSIGHT_TRUSTED_HOSTS: a web page on any other name could drive \
         the API through DNS rebinding. Open it as http://localhost:<port>, add '{name}' to \
         LANGSIGHT_TRUSTED_HOSTS, or set LANGSIGHT_API_KEYS to require keys."
    );
    (StatusCode::FORBIDDEN, axum::Json(json!({ "detail": detail }))).into_response()
}

/// The host of a `host[:port]` authority (`[v6]:port` unbracketed). A malformed authority (a port that is not
/// digits, text after `]`) comes back whole, so it matches no trusted name: `localhost:80@evil` is not
/// `localhost`.
pub(crate) fn strip_port(authority: &str) -> &str {
    let port_ok = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = authority.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((inside, "")) => inside,
            Some((inside, after)) if after.strip_prefix(':').is_some_and(port_ok) => inside,
            _ => authority,
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port_ok(port) => host,
        _ => authority,
    }
}

/// CORS for the configured origins (credentials allowed, so never `*`).
pub async fn cors(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let origin = req.headers().get(header::ORIGIN).and_then(|o| o.to_str().ok()).map(str::to_string);
    let allowed = origin.as_deref().is_some_and(|o| state.config.cors_origins.iter().any(|a| a == o || a == "*"));
    let preflight =
        req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        if !allowed {
            return (StatusCode::BAD_REQUEST, "Disallowed CORS origin").into_response();
        }
        let mut r = StatusCode::OK.into_response();
        let h = r.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, DELETE, PATCH, PUT"));
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Content-Type, X-API-Key, Authorization, Last-Event-ID"),
        );
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        add_cors_headers(h, origin.as_deref());
        return r;
    }
    let mut r = next.run(req).await;
    if allowed {
        add_cors_headers(r.headers_mut(), origin.as_deref());
    }
    r
}

fn add_cors_headers(h: &mut HeaderMap, origin: Option<&str>) {
    if let Some(v) = origin.and_then(|o| HeaderValue::from_str(o).ok()) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

pub async fn security_headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let https = req.headers().get("x-forwarded-proto").is_some_and(|v| v.as_bytes() == b"https");
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    if let Some(id) = state.config.worker_id {
        // Which worker answered: the first thing to know when debugging a multi-worker deployment.
        h.insert("x-langsight-worker", HeaderValue::from(id));
    }
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("x-xss-protection", HeaderValue::from_static("1; mode=block"));
    h.insert("referrer-policy", HeaderValue::from_static("strict-origin-when-cross-origin"));
    if https {
        h.insert("strict-transport-security", HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    }
    r
}

/// Counts requests and their durations, labelled by the route's normalised path. Probes and `/metrics`
/// itself are not counted (as in the original); unmatched paths share one label so scanners cannot blow up
/// the label set.
pub async fn record_metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if matches!(path, "/metrics" | "/api/liveness" | "/api/readiness") {
        return next.run(req).await;
    }
    let label =
        if req.extensions().get::<MatchedPath>().is_some() { normalise_path(path) } else { "<unmatched>".into() };
    let method = req.method().as_str().to_string();
    let started = Instant::now();
    let r = next.run(req).await;
    state.metrics.record_http(&method, &label, r.status().as_u16(), started.elapsed().as_secs_f64());
    r
}

/// The body deadline when the request did not come through `accept::serve` (never in the server itself).
const DEFAULT_BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// The request body, at most [`MAX_BODY`] bytes, within the connection's body deadline; larger bodies get the
/// original's 413, slower ones 408 (and the connection is closed).
pub struct LimitedBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for LimitedBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY as u64) {
            return Err(ApiError::PayloadTooLarge);
        }
        let deadline = req.extensions().get::<crate::accept::BodyDeadline>().map_or(DEFAULT_BODY_DEADLINE, |d| d.0);
        let body: Body = req.into_body();
        let read = tokio::time::timeout(deadline, axum::body::to_bytes(body, MAX_BODY)).await.map_err(|_| {
            ApiError::RequestTimeout(format!(
                "the request body did not arrive within {} s; send it in one go (LANGSIGHT_BODY_READ_TIMEOUT_SECONDS)",
                deadline.as_secs()
            ))
        })?;
        match read {
            Ok(b) => Ok(LimitedBody(b)),
            Err(e) => {
                // to_bytes fails for a length overrun or a broken connection; both end the request.
                let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
                while let Some(s) = source {
                    if s.is::<http_body_util::LengthLimitError>() {
                        return Err(ApiError::PayloadTooLarge);
                    }
                    source = s.source();
                }
                Err(ApiError::BadRequest(format!("could not read the request body: {e}")))
            }
        }
    }
}

/// A JSON body decoded into `T`; a decode failure is a 422 in FastAPI's list form naming the field.
pub struct JsonBody<T>(pub T);

/// [`JsonBody`] that must also be declared as JSON (`Content-Type: application/json`, parameters allowed);
/// anything else is a 415. For the login routes: a cross-site HTML form (or a `no-cors` fetch) can post
/// `text/plain`, urlencoded or multipart bodies without a CORS preflight, never `application/json`, so a
/// page elsewhere cannot submit credentials here and ride the answer (or the session cookie) it gets.
pub struct StrictJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for StrictJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let declared =
            req.headers().get(header::CONTENT_TYPE).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let essence = declared.as_deref().and_then(|v| v.split(';').next()).map(str::trim).unwrap_or("");
        if !essence.eq_ignore_ascii_case("application/json") {
            let got = match declared.as_deref() {
                Some(v) => format!("'{}'", v.chars().take(100).collect::<String>()),
                None => "none".to_string(),
            };
            return Err(ApiError::Unsupported(format!(
                "Content-Type must be application/json (got {got}): send the credentials as a JSON body with that \
                 header."
            )));
        }
        let JsonBody(v) = JsonBody::from_request(req, state).await?;
        Ok(StrictJson(v))
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let LimitedBody(bytes) = LimitedBody::from_request(req, state).await?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let result = serde_path_to_error::deserialize::<_, T>(&mut de);
        match result {
            Ok(v) => match de.end() {
                Ok(()) => Ok(JsonBody(v)),
                Err(e) => Err(ApiError::Unprocessable(json!([{
                    "type": "json_invalid", "loc": ["body"], "msg": format!("JSON decode error: {e}"), "input": null
                }]))),
            },
            Err(err) => {
                let mut loc = vec![json!("body")];
                for seg in err.path().iter() {
                    match seg {
                        serde_path_to_error::Segment::Seq { index } => loc.push(json!(index)),
                        serde_path_to_error::Segment::Map { key } => loc.push(json!(key)),
                        _ => {}
                    }
                }
                let e = err.inner();
                let msg = e.to_string();
                let (kind, msg) = if e.is_syntax() || e.is_eof() {
                    ("json_invalid", format!("JSON decode error: {msg}"))
                } else if let Some(f) = msg.strip_prefix("missing field `").and_then(|r| r.split('`').next()) {
                    loc.push(json!(f));
                    ("missing", format!("Field required: `{f}`"))
                } else {
                    ("value_error", msg.split(" at line ").next().unwrap_or(&msg).to_string())
                };
                Err(ApiError::Unprocessable(json!([{ "type": kind, "loc": loc, "msg": msg, "input": null }])))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::strip_port;

    #[test]
    fn authorities_are_split_strictly() {
        for (authority, host) in [
            ("localhost", "localhost"),
            ("localhost:8000", "localhost"),
            ("localhost:", "localhost"),
            ("127.0.0.1:80", "127.0.0.1"),
            ("[::1]:8000", "::1"),
            ("[::1]", "::1"),
            ("localhost:80@evil.example", "localhost:80@evil.example"),
            ("localhost:x", "localhost:x"),
            ("[::1]evil", "[::1]evil"),
            ("[::1]:80x", "[::1]:80x"),
            ("::1", ":"),
        ] {
            assert_eq!(strip_port(authority), host, "{authority}");
        }
    }
}
