//! The HTTP routes, one module per domain, assembled with the cross-cutting layers of [`crate::http`].

mod agents;
mod alerts;
mod api_keys;
mod costs;
mod health;
mod investigate;
mod live;
mod monitoring;
mod probes;
mod projects;
mod query;
mod security;
mod servers;
mod sessions;
mod settings;
mod slos;
mod traces;
mod users;

use crate::auth::authenticate;
use crate::http::{cors, record_metrics, security_headers, trusted_hosts};
use crate::state::AppState;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use serde_json::json;

pub use users::bootstrap_admin;

pub fn router(state: AppState) -> Router {
    let protected = Router::new()
        .route("/api/traces/spans", post(traces::ingest))
        .route("/api/traces/otlp", post(traces::otlp))
        .route("/api/traces/otlp/v1/traces", post(traces::otlp_standard))
        .route("/v1/traces", post(traces::otlp_standard))
        .route("/api/agents/sessions", get(sessions::list))
        .route("/api/agents/sessions/{session_id}", get(sessions::trace))
        .route("/api/agents/sessions/{session_id}/spans/{span_id}", get(sessions::span))
        .route("/api/agents/loop-counts", get(monitoring::loop_counts))
        .route("/api/agents/metadata", get(agents::list_metadata))
        .route(
            "/api/agents/metadata/{agent_name}",
            get(agents::get_metadata).put(agents::put_metadata).delete(agents::delete_metadata),
        )
        .route("/api/agents/discover", post(agents::discover))
        .route("/api/agents/prevention-configs", get(agents::list_prevention))
        .route(
            "/api/agents/{agent_name}/prevention-config",
            get(agents::get_prevention).put(agents::put_prevention).delete(agents::delete_prevention),
        )
        .route("/api/projects/prevention-config", get(agents::get_project_default).put(agents::put_project_default))
        .route("/api/settings", get(settings::get).put(settings::put))
        .route("/api/auth/me", get(users::me))
        .route("/api/security/scan", post(security::scan))
        .route("/api/investigate", post(investigate::investigate))
        .route("/api/agents/lineage", get(monitoring::lineage))
        .route("/api/costs/models", get(costs::list_models).post(costs::create_model))
        .route("/api/costs/models/{entry_id}", patch(costs::update_model).delete(costs::delete_model))
        .route("/api/costs/breakdown", get(costs::breakdown))
        .route("/api/monitoring/timeseries", get(monitoring::timeseries))
        .route("/api/monitoring/models", get(monitoring::models))
        .route("/api/monitoring/tools", get(monitoring::tools))
        .route("/api/monitoring/trends", get(monitoring::trends))
        .route("/api/monitoring/errors", get(monitoring::errors))
        .route("/api/reliability/tools", get(monitoring::reliability_tools))
        .route("/api/reliability/anomalies", get(monitoring::anomalies))
        .route("/api/reliability/incomplete-sessions", get(monitoring::incomplete_sessions))
        .route("/api/reliability/tag-incomplete", post(monitoring::tag_incomplete))
        .route("/api/auth/api-keys", post(api_keys::create).get(api_keys::list))
        .route("/api/auth/api-keys/{key_id}", delete(api_keys::revoke))
        .route("/api/projects", get(projects::list).post(projects::create))
        .route("/api/projects/{project_id}", get(projects::get).patch(projects::update).delete(projects::delete))
        .route("/api/projects/{project_id}/members", get(projects::members).post(projects::add_member))
        .route(
            "/api/projects/{project_id}/members/{user_id}",
            patch(projects::set_member_role).delete(projects::remove_member),
        )
        .route("/api/users", get(users::list))
        .route("/api/users/invite", post(users::invite))
        .route("/api/users/{user_id}/role", patch(users::set_role))
        .route("/api/users/{user_id}", delete(users::deactivate))
        .route("/api/users/me/change-password", post(users::change_password))
        .route("/api/audit/logs", get(users::audit_logs))
        .route("/api/live/token", post(live::token))
        .route("/api/health/servers", get(health::servers))
        .route("/api/health/servers/invocations", get(health::invocations))
        .route("/api/health/servers/{server_name}", get(health::server))
        .route("/api/health/servers/{server_name}/logs", get(health::logs))
        .route("/api/health/servers/{server_name}/blast-radius", get(health::blast_radius))
        .route("/api/health/servers/{server_name}/drift-impact", get(health::drift_impact))
        .route("/api/health/servers/{server_name}/scorecard", get(health::scorecard))
        .route("/api/health/servers/{server_name}/history", get(health::history))
        .route("/api/health/servers/{server_name}/drift-history", get(health::drift_history))
        .route("/api/health/check", post(health::check_now))
        .route("/api/alerts/config", get(alerts::get_config).post(alerts::post_config))
        .route("/api/alerts/test", post(alerts::test))
        .route("/api/alerts/feed", get(alerts::feed))
        .route("/api/alerts/counts", get(alerts::counts))
        .route("/api/alerts/{alert_id}/ack", post(alerts::ack))
        .route("/api/alerts/{alert_id}/resolve", post(alerts::resolve))
        .route("/api/alerts/{alert_id}/snooze", post(alerts::snooze))
        .route("/api/alerts/{alert_id}/deliveries", get(alerts::deliveries))
        .route("/api/slos", get(slos::list).post(slos::create))
        .route("/api/slos/status", get(slos::status))
        .route("/api/slos/{slo_id}", delete(slos::delete))
        .route("/api/servers/metadata", get(servers::list))
        .route("/api/servers/metadata/{server_name}", get(servers::get).put(servers::put).delete(servers::delete))
        .route("/api/servers/discover", post(servers::discover))
        .route("/api/servers/{server_name}/tools", get(servers::tools).post(servers::put_tools))
        .route_layer(from_fn_with_state(state.clone(), authenticate));
    let public = Router::new()
        .route("/", get(crate::dashboard::index))
        .route("/app.js", get(crate::dashboard::app_js))
        .route("/app.css", get(crate::dashboard::app_css))
        .route("/api/status", get(probes::status))
        .route("/api/liveness", get(probes::liveness))
        .route("/api/users/verify", post(users::verify))
        .route("/api/auth/login", post(users::login))
        .route("/api/auth/logout", post(users::logout))
        .route("/api/users/accept-invite", post(users::accept_invite))
        .route("/api/readiness", get(probes::readiness))
        .route("/metrics", get(probes::metrics))
        // Authenticates itself: by key like every route, or by a stream token for browsers.
        .route("/api/live/events", get(live::events));
    public
        .merge(protected)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(state.clone(), crate::rate_limit::limit))
        .layer(from_fn_with_state(state.clone(), record_metrics))
        .layer(DefaultBodyLimit::disable())
        .layer(from_fn_with_state(state.clone(), security_headers))
        .layer(from_fn_with_state(state.clone(), cors))
        .layer(from_fn_with_state(state.clone(), trusted_hosts))
        .with_state(state)
}

async fn not_found() -> impl IntoResponse {
    (StatusCode::NOT_FOUND, Json(json!({"detail": "Not Found"})))
}

async fn method_not_allowed() -> impl IntoResponse {
    (StatusCode::METHOD_NOT_ALLOWED, Json(json!({"detail": "Method Not Allowed"})))
}
