//! The HTTP routes, one module per domain, assembled with the cross-cutting layers of [`crate::http`].

mod agents;
mod alerts;
mod api_keys;
pub(crate) mod costs;
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
mod setup;
mod slos;
mod traces;
mod users;

use crate::auth::authenticate;
use crate::auth::Capability;
use crate::http::{cors, record_metrics, security_headers, trusted_hosts};
use crate::state::AppState;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::Method;
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::IntoResponse;
use axum::routing::{get, on, post, MethodFilter};
use axum::{Json, Router};
use serde_json::json;

pub use setup::SetupToken;
pub use traces::decode_otlp;
pub use users::bootstrap_admin;

/// One protected route: its method, path and the capability it needs (listed by [`route_table`] for the test
/// that walks every route with every kind of caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRule {
    pub method: &'static str,
    pub path: &'static str,
    pub needs: Capability,
}

/// The protected API under construction. Routes can only be added with the capability they need, so the
/// authorization rule is stated once per route, next to its path, and enforced by [`crate::auth::require`]
/// before the handler runs.
struct Api {
    router: Router<AppState>,
    table: Vec<RouteRule>,
}

impl Api {
    fn add<H, T>(mut self, method: Method, path: &'static str, needs: Capability, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = match method {
            Method::GET => MethodFilter::GET,
            Method::POST => MethodFilter::POST,
            Method::PUT => MethodFilter::PUT,
            Method::PATCH => MethodFilter::PATCH,
            Method::DELETE => MethodFilter::DELETE,
            _ => unreachable!("the API uses GET, POST, PUT, PATCH and DELETE only"),
        };
        let route = on(filter, handler).route_layer(from_fn(move |req, next| crate::auth::require(needs, req, next)));
        self.router = self.router.route(path, route);
        self.table.push(RouteRule { method: method_name(&method), path, needs });
        self
    }
    fn get<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, needs: Capability, h: H) -> Self {
        self.add(Method::GET, path, needs, h)
    }
    fn post<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, needs: Capability, h: H) -> Self {
        self.add(Method::POST, path, needs, h)
    }
    fn put<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, needs: Capability, h: H) -> Self {
        self.add(Method::PUT, path, needs, h)
    }
    fn patch<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, needs: Capability, h: H) -> Self {
        self.add(Method::PATCH, path, needs, h)
    }
    fn delete<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, needs: Capability, h: H) -> Self {
        self.add(Method::DELETE, path, needs, h)
    }
}

fn method_name(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        _ => "DELETE",
    }
}

/// Every protected route with the capability it needs.
pub fn route_table() -> Vec<RouteRule> {
    api().table
}

/// The protected routes. Capabilities: see [`Capability`]; handlers of project routes still confine the
/// caller to its project with `Principal::scope`.
fn api() -> Api {
    use Capability::{Authenticated, Ingest, InstanceAdmin, InstanceRead, ProjectAdmin, ProjectRead};
    Api { router: Router::new(), table: Vec::new() }
        .post("/api/traces/spans", Ingest, traces::ingest)
        .post("/api/traces/otlp", Ingest, traces::otlp)
        .post("/api/traces/otlp/v1/traces", Ingest, traces::otlp_standard)
        .post("/v1/traces", Ingest, traces::otlp_standard)
        .get("/api/agents/sessions", ProjectRead, sessions::list)
        .get("/api/agents/sessions/{session_id}", ProjectRead, sessions::trace)
        .get("/api/agents/sessions/{session_id}/spans/{span_id}", ProjectRead, sessions::span)
        .get("/api/agents/loop-counts", ProjectRead, monitoring::loop_counts)
        .get("/api/agents/summary", ProjectRead, monitoring::agent_summary)
        .get("/api/agents/metadata", ProjectRead, agents::list_metadata)
        .get("/api/agents/metadata/{agent_name}", ProjectRead, agents::get_metadata)
        .put("/api/agents/metadata/{agent_name}", ProjectAdmin, agents::put_metadata)
        .delete("/api/agents/metadata/{agent_name}", ProjectAdmin, agents::delete_metadata)
        .post("/api/agents/discover", ProjectAdmin, agents::discover)
        .get("/api/agents/prevention-configs", ProjectRead, agents::list_prevention)
        .get("/api/agents/{agent_name}/prevention-config", ProjectRead, agents::get_prevention)
        .put("/api/agents/{agent_name}/prevention-config", ProjectAdmin, agents::put_prevention)
        .delete("/api/agents/{agent_name}/prevention-config", ProjectAdmin, agents::delete_prevention)
        .get("/api/projects/prevention-config", ProjectRead, agents::get_project_default)
        .put("/api/projects/prevention-config", ProjectAdmin, agents::put_project_default)
        .get("/api/settings", InstanceAdmin, settings::get)
        .put("/api/settings", InstanceAdmin, settings::put)
        .get("/api/auth/me", Authenticated, users::me)
        .get("/api/instance", Authenticated, probes::instance)
        .post("/api/security/scan", ProjectAdmin, security::scan)
        .get("/api/security/findings", ProjectRead, security::findings)
        .get("/api/security/scans", ProjectRead, security::scans)
        .post("/api/investigate", ProjectAdmin, investigate::investigate)
        .get("/api/agents/lineage", ProjectRead, monitoring::lineage)
        .get("/api/costs/models", ProjectRead, costs::list_models)
        .post("/api/costs/models", InstanceAdmin, costs::create_model)
        .patch("/api/costs/models/{entry_id}", InstanceAdmin, costs::update_model)
        .delete("/api/costs/models/{entry_id}", InstanceAdmin, costs::delete_model)
        .get("/api/costs/breakdown", ProjectRead, costs::breakdown)
        .get("/api/monitoring/timeseries", ProjectRead, monitoring::timeseries)
        .get("/api/monitoring/models", ProjectRead, monitoring::models)
        .get("/api/monitoring/tools", ProjectRead, monitoring::tools)
        .get("/api/monitoring/trends", ProjectRead, monitoring::trends)
        .get("/api/monitoring/errors", ProjectRead, monitoring::errors)
        .get("/api/reliability/tools", ProjectRead, monitoring::reliability_tools)
        .get("/api/reliability/anomalies", ProjectRead, monitoring::anomalies)
        .get("/api/reliability/incomplete-sessions", ProjectRead, monitoring::incomplete_sessions)
        .post("/api/reliability/tag-incomplete", ProjectAdmin, monitoring::tag_incomplete)
        .post("/api/auth/api-keys", ProjectAdmin, api_keys::create)
        .get("/api/auth/api-keys", ProjectAdmin, api_keys::list)
        .delete("/api/auth/api-keys/{key_id}", ProjectAdmin, api_keys::revoke)
        .get("/api/projects", InstanceRead, projects::list)
        .post("/api/projects", InstanceAdmin, projects::create)
        .get("/api/projects/{project_id}", ProjectRead, projects::get)
        .patch("/api/projects/{project_id}", ProjectAdmin, projects::update)
        .delete("/api/projects/{project_id}", ProjectAdmin, projects::delete)
        .get("/api/projects/{project_id}/members", ProjectRead, projects::members)
        .post("/api/projects/{project_id}/members", ProjectAdmin, projects::add_member)
        .patch("/api/projects/{project_id}/members/{user_id}", ProjectAdmin, projects::set_member_role)
        .delete("/api/projects/{project_id}/members/{user_id}", ProjectAdmin, projects::remove_member)
        .get("/api/users", InstanceAdmin, users::list)
        .post("/api/users/invite", InstanceAdmin, users::invite)
        .patch("/api/users/{user_id}/role", InstanceAdmin, users::set_role)
        .delete("/api/users/{user_id}", InstanceAdmin, users::deactivate)
        .post("/api/users/me/change-password", Authenticated, users::change_password)
        .get("/api/audit/logs", InstanceAdmin, users::audit_logs)
        .post("/api/live/token", ProjectRead, live::token)
        .get("/api/health/servers", ProjectRead, health::servers)
        .get("/api/health/servers/invocations", ProjectRead, health::invocations)
        .get("/api/health/servers/{server_name}", ProjectRead, health::server)
        .get("/api/health/servers/{server_name}/logs", ProjectRead, health::logs)
        .get("/api/health/servers/{server_name}/blast-radius", ProjectRead, health::blast_radius)
        .get("/api/health/servers/{server_name}/drift-impact", ProjectRead, health::drift_impact)
        .get("/api/health/servers/{server_name}/scorecard", ProjectRead, health::scorecard)
        .get("/api/health/servers/{server_name}/history", ProjectRead, health::history)
        .get("/api/health/servers/{server_name}/drift-history", ProjectRead, health::drift_history)
        .post("/api/health/check", ProjectAdmin, health::check_now)
        .get("/api/alerts/config", ProjectRead, alerts::get_config)
        .post("/api/alerts/config", ProjectAdmin, alerts::post_config)
        .post("/api/alerts/test", ProjectAdmin, alerts::test)
        .get("/api/alerts/feed", ProjectRead, alerts::feed)
        .get("/api/alerts/counts", ProjectRead, alerts::counts)
        .post("/api/alerts/{alert_id}/ack", ProjectAdmin, alerts::ack)
        .post("/api/alerts/{alert_id}/resolve", ProjectAdmin, alerts::resolve)
        .post("/api/alerts/{alert_id}/snooze", ProjectAdmin, alerts::snooze)
        .get("/api/alerts/{alert_id}/deliveries", ProjectRead, alerts::deliveries)
        .get("/api/slos", ProjectRead, slos::list)
        .post("/api/slos", ProjectAdmin, slos::create)
        .get("/api/slos/status", ProjectRead, slos::status)
        .delete("/api/slos/{slo_id}", ProjectAdmin, slos::delete)
        .get("/api/servers/metadata", ProjectRead, servers::list)
        .get("/api/servers/metadata/{server_name}", ProjectRead, servers::get)
        .put("/api/servers/metadata/{server_name}", ProjectAdmin, servers::put)
        .delete("/api/servers/metadata/{server_name}", ProjectAdmin, servers::delete)
        .post("/api/servers/discover", ProjectAdmin, servers::discover)
        .get("/api/servers/{server_name}/tools", ProjectRead, servers::tools)
        .post("/api/servers/{server_name}/tools", ProjectAdmin, servers::put_tools)
}

pub fn router(state: AppState) -> Router {
    let protected = api().router.route_layer(from_fn_with_state(state.clone(), authenticate));
    // The dashboard's page, modules, style and icon (also the invitation link's page).
    let public = crate::dashboard::routes()
        .route("/api/setup/status", get(setup::status))
        .route("/api/setup/admin", post(setup::create_admin))
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
