//! `/api/costs`: model pricing with history, and the cost breakdown of a window.

use super::query::{scoped, Params};
use crate::analytics::rolled::{self, Source};
use crate::analytics::Window;
use crate::auth::Principal;
use crate::config::StorageMode;
use crate::error::{ApiError, ApiResult};
use crate::http::JsonBody;
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use langsight_core::time::{iso_offset, now_micros};
use langsight_storage::ModelPrice;
use serde::Deserialize;
use serde_json::{json, Value};

fn price_json(p: &ModelPrice) -> Value {
    json!({
        "id": p.id,
        "provider": p.provider,
        "model_id": p.model_id,
        "display_name": p.display_name,
        "input_per_1m_usd": p.input_per_1m_usd,
        "output_per_1m_usd": p.output_per_1m_usd,
        "cache_read_per_1m_usd": p.cache_read_per_1m_usd,
        "thinking_per_1m_usd": p.thinking_per_1m_usd,
        "effective_from": iso_offset(p.effective_from),
        "effective_to": p.effective_to.map(iso_offset),
        "notes": p.notes,
        "is_custom": p.is_custom,
        "is_active": p.effective_to.is_none(),
    })
}

pub async fn list_models(State(state): State<AppState>) -> ApiResult<Json<Vec<Value>>> {
    Ok(Json(state.storage.pricing.list_prices().await?.iter().map(price_json).collect()))
}

#[derive(Deserialize)]
pub struct NewPrice {
    provider: String,
    model_id: String,
    display_name: String,
    #[serde(default)]
    input_per_1m_usd: f64,
    #[serde(default)]
    output_per_1m_usd: f64,
    #[serde(default)]
    cache_read_per_1m_usd: f64,
    #[serde(default)]
    thinking_per_1m_usd: f64,
    #[serde(default)]
    notes: Option<String>,
}

impl NewPrice {
    /// A row from the body; prices must be finite and not negative (the original took anything).
    fn into_price(self) -> ApiResult<ModelPrice> {
        for (field, v) in [
            ("input_per_1m_usd", self.input_per_1m_usd),
            ("output_per_1m_usd", self.output_per_1m_usd),
            ("cache_read_per_1m_usd", self.cache_read_per_1m_usd),
            ("thinking_per_1m_usd", self.thinking_per_1m_usd),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(ApiError::Unprocessable(json!([{ "type": "greater_than_equal", "loc": ["body", field],
                    "msg": "Input should be a price in USD per million tokens, 0 or more", "input": v }])));
            }
        }
        if self.model_id.trim().is_empty() {
            return Err(ApiError::Unprocessable(json!([{ "type": "value_error", "loc": ["body", "model_id"],
                "msg": "model_id must not be empty", "input": self.model_id }])));
        }
        Ok(ModelPrice {
            id: uuid::Uuid::new_v4().simple().to_string(),
            provider: self.provider,
            model_id: self.model_id,
            display_name: self.display_name,
            input_per_1m_usd: self.input_per_1m_usd,
            output_per_1m_usd: self.output_per_1m_usd,
            cache_read_per_1m_usd: self.cache_read_per_1m_usd,
            thinking_per_1m_usd: self.thinking_per_1m_usd,
            effective_from: now_micros(),
            effective_to: None,
            notes: self.notes,
            is_custom: true,
        })
    }
}

pub async fn create_model(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    JsonBody(body): JsonBody<NewPrice>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    principal.require_admin()?;
    let price = body.into_price()?;
    state.storage.pricing.add_price(price.clone(), None).await?;
    state.prices.invalidate();
    Ok((StatusCode::CREATED, Json(price_json(&price))))
}

/// A price change: the old row is retired and a new one takes over from now (history is kept).
pub async fn update_model(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<NewPrice>,
) -> ApiResult<Json<Value>> {
    principal.require_admin()?;
    let price = body.into_price()?;
    if !state.storage.pricing.add_price(price.clone(), Some(id.clone())).await? {
        return Err(ApiError::NotFound(format!("No active price with id '{id}' (it may have been changed already).")));
    }
    state.prices.invalidate();
    Ok(Json(price_json(&price)))
}

/// Retires a price (an unknown id is still 204, as in the original).
pub async fn delete_model(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    principal.require_admin()?;
    state.storage.pricing.retire_price(&id, now_micros()).await?;
    state.prices.invalidate();
    Ok(StatusCode::NO_CONTENT)
}

pub fn storage_mode(state: &AppState) -> &'static str {
    match state.config.storage_mode {
        StorageMode::Sqlite => "sqlite",
        StorageMode::Postgres => "postgres",
        StorageMode::Dual => "dual",
    }
}

pub async fn breakdown(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let (p, project): (Params, _) = scoped(&state, &principal, raw.as_deref()).await?;
    let hours = p.int("hours", 24, 1, 720)?;
    Ok(Json(rolled::costs(&state, &Window::last_hours(project, hours), hours, Source::Rollups).await?))
}
