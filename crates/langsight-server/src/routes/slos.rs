//! `/api/slos`: service-level objectives on agents' sessions, their current status, and (on the monitor
//! leader) the `slo_breached` alerts the original never fired.

use crate::alerts::slo::evaluate;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::http::JsonBody;
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use langsight_core::time::{iso_offset, now_micros};
use langsight_storage::Slo;
use serde::Deserialize;
use serde_json::{json, Value};

/// The caller's project (`None` = an admin's global view).
async fn scope(state: &AppState, principal: &Principal, raw: Option<&str>) -> ApiResult<Option<String>> {
    Ok(super::query::scoped(state, principal, raw).await?.1)
}

fn slo_json(s: &Slo) -> Value {
    json!({
        "id": s.id,
        "agent_name": s.agent_name,
        "metric": s.metric,
        "target": s.target,
        "window_hours": s.window_hours,
        "created_at": iso_offset(s.created_at),
    })
}

pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<Value>>> {
    let project = scope(&state, &principal, raw.as_deref()).await?;
    let rows = state.storage.alerts.list_slos(project.as_deref()).await?;
    Ok(Json(rows.iter().map(slo_json).collect()))
}

#[derive(Deserialize)]
pub struct NewSlo {
    agent_name: String,
    metric: String,
    target: f64,
    #[serde(default = "default_window")]
    window_hours: i64,
}

fn default_window() -> i64 {
    24
}

fn invalid(field: &str, msg: &str, input: Value) -> ApiError {
    ApiError::Unprocessable(json!([{ "type": "value_error", "loc": ["body", field], "msg": msg, "input": input }]))
}

pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody<NewSlo>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    principal.require_admin()?;
    let project = scope(&state, &principal, raw.as_deref()).await?.unwrap_or_default();
    if body.agent_name.trim().is_empty() {
        return Err(invalid("agent_name", "agent_name must not be empty", json!(body.agent_name)));
    }
    if !["success_rate", "latency_p99"].contains(&body.metric.as_str()) {
        return Err(invalid("metric", "Input should be 'success_rate' or 'latency_p99'", json!(body.metric)));
    }
    if !(body.target > 0.0 && body.target.is_finite()) {
        return Err(invalid("target", "Input should be greater than 0", json!(body.target)));
    }
    if body.metric == "success_rate" && body.target > 100.0 {
        return Err(invalid("target", "A success_rate target is a percentage: at most 100", json!(body.target)));
    }
    if !(1..=720).contains(&body.window_hours) {
        return Err(invalid("window_hours", "Input should be between 1 and 720", json!(body.window_hours)));
    }
    let slo = Slo {
        id: uuid::Uuid::new_v4().simple().to_string()[..16].to_string(),
        project_id: project,
        agent_name: body.agent_name.trim().to_string(),
        metric: body.metric,
        target: body.target,
        window_hours: body.window_hours,
        created_at: now_micros(),
    };
    state.storage.alerts.create_slo(slo.clone()).await?;
    Ok((StatusCode::CREATED, Json(slo_json(&slo))))
}

pub async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<StatusCode> {
    principal.require_admin()?;
    let project = scope(&state, &principal, raw.as_deref()).await?;
    if state.storage.alerts.delete_slo(project.as_deref(), &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("SLO '{id}' not found.")))
    }
}

pub async fn status(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<Value>>> {
    let project = scope(&state, &principal, raw.as_deref()).await?;
    let rows = state.storage.alerts.list_slos(project.as_deref()).await?;
    let mut out = Vec::new();
    for s in &rows {
        let st = evaluate(&state, s)
            .await
            .unwrap_or(crate::alerts::slo::SloStatus { current_value: None, status: "no_data" });
        out.push(json!({
            "slo_id": s.id,
            "agent_name": s.agent_name,
            "metric": s.metric,
            "target": s.target,
            "current_value": st.current_value,
            "window_hours": s.window_hours,
            "status": st.status,
            "evaluated_at": iso_offset(now_micros()),
        }));
    }
    Ok(Json(out))
}
