//! Probes and metrics: unauthenticated, cheap, and honest about readiness.

use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use langsight_core::COMPATIBLE_VERSION;
use serde_json::{json, Map, Value};
use subtle::ConstantTimeEq;

pub async fn status() -> Json<Value> {
    Json(json!({"status": "ok", "version": COMPATIBLE_VERSION}))
}

/// `GET /api/instance` (ours, any authenticated caller): what this instance runs — version, storage mode, the
/// worker count (and which worker answered) and the Redis topology (`none`, `standalone`, `tls` for standalone
/// over TLS, `sentinel`, `cluster`; with `redis_tls` and the number of configured nodes). Never hosts,
/// passwords or user names: the URL's credentials stay in the process.
pub async fn instance(State(state): State<AppState>) -> Json<Value> {
    use langsight_shared::url::Topology;
    let c = &state.config;
    let (topology, nodes) = match c.redis_url.as_ref().map(|u| (&u.topology, u.tls)) {
        None => ("none", 0),
        Some((Topology::Standalone { .. }, false)) => ("standalone", 1),
        Some((Topology::Standalone { .. }, true)) => ("tls", 1),
        Some((Topology::Sentinel { sentinels, .. }, _)) => ("sentinel", sentinels.len()),
        Some((Topology::Cluster { nodes }, _)) => ("cluster", nodes.len()),
    };
    Json(json!({
        "version": COMPATIBLE_VERSION,
        "storage_mode": super::costs::storage_mode(&state),
        "workers": c.workers,
        "worker_id": c.worker_id,
        "redis_topology": topology,
        "redis_tls": c.redis_url.as_ref().is_some_and(|u| u.tls),
        "redis_nodes": nodes,
    }))
}

pub async fn liveness() -> Json<Value> {
    Json(json!({"status": "alive"}))
}

/// Ready when every backend answers. Failures are reported as `"error"` only: the cause is logged, never
/// shown to an unauthenticated caller (the original leaked exception text here).
pub async fn readiness(State(state): State<AppState>) -> Response {
    let mut report = Map::new();
    let mut ready = true;
    for probe in &state.storage.probes {
        let ok = match tokio::time::timeout(std::time::Duration::from_secs(3), probe.ping()).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!(backend = probe.name(), error = %e, "readiness.backend_failed");
                false
            }
            Err(_) => {
                tracing::warn!(backend = probe.name(), "readiness.backend_timeout");
                false
            }
        };
        ready &= ok;
        report.insert(probe.name().into(), Value::String(if ok { "ok" } else { "error" }.into()));
    }
    // Redis down degrades shared behaviour but the instance keeps serving (fallbacks), so it stays ready.
    if let Some(redis) = &state.shared.redis {
        report.insert("redis".into(), Value::String(if redis.is_up() { "ok" } else { "degraded" }.into()));
    }
    if state.storage.probes.is_empty() {
        ready = false;
        report.insert("storage".into(), Value::String("error".into()));
    }
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "version": COMPATIBLE_VERSION,
        "storage": report,
    });
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body)).into_response()
}

/// Prometheus text format behind `LANGSIGHT_METRICS_TOKEN`: unset → 404, wrong/missing → 401.
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(token) = &state.config.metrics_token else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim())
        .unwrap_or("");
    if !bool::from(presented.as_bytes().ct_eq(token.0.as_bytes())) {
        return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
    }
    let mut body = state.metrics.render();
    state.metrics.render_shared(&mut body, &state.shared);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}
