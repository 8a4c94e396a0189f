//! `GET/PUT /api/settings`: payload redaction and AI provider keys (masked on the way out, encrypted at rest
//! when `LANGSIGHT_SECRET_KEY` is set).

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::http::JsonBody;
use crate::settings::{load, mask, open, provider_target, seal, Source, PROVIDERS};
use crate::state::AppState;
use crate::url_policy::{self, Purpose};
use axum::extract::State;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

fn secret(state: &AppState) -> Option<&str> {
    state.config.secret_key.as_ref().map(|s| s.0.as_str())
}

fn field<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

pub async fn get(State(state): State<AppState>, Extension(principal): Extension<Principal>) -> ApiResult<Json<Value>> {
    principal.require_admin()?;
    let mut doc = load(&state).await?;
    let mut providers = Map::new();
    for (name, _) in PROVIDERS {
        let target = provider_target(&state, &doc, name).map_err(|e| {
            tracing::error!(provider = name, error = %e, "settings.provider_key_unreadable");
            ApiError::Unavailable { detail: e.to_string(), retry_after_s: 60 }
        })?;
        providers.insert(
            name.into(),
            json!({
                "api_key": mask(&target.key),
                "configured": !target.key.is_empty() || (name == "ollama" && target.base_source != Source::Default),
                "model": target.model,
                // Where a call would go, and who chose it: an operator can see at a glance that no key of theirs
                // travels to an address someone set through the API.
                "base_url": target.base_url,
                "base_url_source": target.base_source.as_str(),
                "key_source": target.key_source.as_str(),
            }),
        );
    }
    doc.insert("ai_providers".into(), Value::Object(providers));
    Ok(Json(Value::Object(doc)))
}

#[derive(Deserialize)]
pub struct ProviderUpdate {
    #[serde(default)]
    api_key: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    base_url: String,
}

#[derive(Deserialize)]
pub struct SettingsUpdate {
    redact_payloads: bool,
    #[serde(default)]
    ai_providers: BTreeMap<String, ProviderUpdate>,
}

pub async fn put(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    meta: crate::audit::RequestMeta,
    JsonBody(body): JsonBody<SettingsUpdate>,
) -> ApiResult<Json<Value>> {
    principal.require_admin()?;
    let known: Vec<&str> = PROVIDERS.iter().map(|(n, _)| *n).collect();
    if let Some(bad) = body.ai_providers.keys().find(|p| !known.contains(&p.as_str())) {
        return Err(ApiError::Unprocessable(json!([{ "type": "value_error", "loc": ["body", "ai_providers", bad],
            "msg": format!("unknown provider '{bad}'; use one of {}", known.join(", ")), "input": bad }])));
    }
    let mut doc = load(&state).await?;
    let mut saved = doc.remove("ai_providers").and_then(|v| v.as_object().cloned()).unwrap_or_default();
    for (name, update) in body.ai_providers {
        let previous = saved.get(&name).cloned().unwrap_or(json!({}));
        // An empty or masked key in the body means "keep the stored one".
        let api_key = if update.api_key.is_empty() || update.api_key == "*masked*" || update.api_key.contains("...") {
            field(&previous, "api_key").to_string()
        } else {
            seal(&update.api_key, secret(&state))
        };
        let keep = |new: String, key: &str| if new.is_empty() { field(&previous, key).to_string() } else { new };
        let base_url = update.base_url.trim().to_string();
        if !base_url.is_empty() {
            // The server will send this provider's key and project data there: the outbound URL policy applies.
            url_policy::check(&base_url, Purpose::Webhook, state.config.allow_private_webhook_urls, false)
                .await
                .map_err(|e| {
                    ApiError::Unprocessable(
                        json!([{ "type": "value_error", "loc": ["body", "ai_providers", name, "base_url"],
                        "msg": format!("base_url is not allowed: {e}"), "input": base_url }]),
                    )
                })?;
        }
        let update = ProviderUpdate { base_url, ..update };
        saved.insert(
            name,
            json!({"api_key": api_key, "model": keep(update.model, "model"), "base_url": keep(update.base_url, "base_url")}),
        );
    }
    doc.insert("redact_payloads".into(), json!(body.redact_payloads));
    doc.insert("ai_providers".into(), Value::Object(saved.clone()));
    let text = serde_json::to_string(&doc).map_err(|_| ApiError::Internal)?;
    state.storage.agents.put_settings(text, langsight_core::time::now_micros()).await?;
    state.redact.invalidate();
    crate::audit::record(
        &state,
        &principal,
        &meta,
        "settings.updated",
        json!({"redact_payloads": body.redact_payloads}),
        "",
    );
    // The answer shows what was stored, keys masked (never decrypted).
    let mut shown = Map::new();
    for (name, p) in saved {
        let key = open(field(&p, "api_key"), secret(&state)).unwrap_or_default();
        shown.insert(
            name,
            json!({"api_key": mask(&key), "model": field(&p, "model"), "base_url": field(&p, "base_url")}),
        );
    }
    doc.insert("ai_providers".into(), Value::Object(shown));
    Ok(Json(Value::Object(doc)))
}
