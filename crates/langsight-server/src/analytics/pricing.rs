//! Model token prices: the built-in list seeded at start-up, and the lookup the cost figures use (cached
//! briefly, since every sessions list prices its rows).

use crate::state::AppState;
use langsight_storage::{ModelPrice, StorageError, TokenPrice};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a worker reuses the active prices it read; changes made through this worker apply at once, through
/// another worker within this time.
const CACHE_TTL: Duration = Duration::from_secs(30);

/// Provider prefixes stripped when a model id is not priced as sent (`anthropic/claude-…` → `claude-…`).
const PREFIXES: [&str; 5] = ["models/", "anthropic/", "openai/", "google/", "meta/"];

/// (provider, model, input, output, cache read) in USD per million tokens: the original's start-up seed.
const SEED: [(&str, &str, f64, f64, f64); 16] = [
    ("anthropic", "claude-opus-4-6", 15.0, 75.0, 1.50),
    ("anthropic", "claude-sonnet-4-6", 3.0, 15.0, 0.30),
    ("anthropic", "claude-haiku-4-5-20251001", 0.80, 4.0, 0.08),
    ("openai", "gpt-4o", 2.50, 10.0, 0.0),
    ("openai", "gpt-4o-mini", 0.15, 0.60, 0.0),
    ("openai", "o3", 10.0, 40.0, 0.0),
    ("openai", "o3-mini", 1.10, 4.40, 0.0),
    ("google", "gemini-1.5-pro", 1.25, 5.0, 0.0),
    ("google", "gemini-1.5-flash", 0.075, 0.30, 0.0),
    ("google", "gemini-2.0-flash", 0.10, 0.40, 0.0),
    ("google", "gemini-2.5-flash", 0.15, 0.60, 0.0375),
    ("google", "gemini-2.5-pro", 1.25, 10.0, 0.31),
    ("meta", "llama-3.1-70b", 0.0, 0.0, 0.0),
    ("meta", "llama-3.3-70b", 0.0, 0.0, 0.0),
    ("aws", "amazon.nova-pro-v1", 0.80, 3.20, 0.0),
    ("aws", "amazon.nova-lite-v1", 0.06, 0.24, 0.0),
];

/// The built-in rows (ids are stable per model, so every worker seeds the same rows).
pub fn seed_rows(now: i64) -> Vec<ModelPrice> {
    SEED.iter()
        .map(|(provider, model, input, output, cache)| ModelPrice {
            id: format!("seed-{model}"),
            provider: provider.to_string(),
            model_id: model.to_string(),
            display_name: model.to_string(),
            input_per_1m_usd: *input,
            output_per_1m_usd: *output,
            cache_read_per_1m_usd: *cache,
            thinking_per_1m_usd: 0.0,
            effective_from: now,
            effective_to: None,
            notes: None,
            is_custom: false,
        })
        .collect()
}

/// The active price of each model.
#[derive(Debug, Default)]
pub struct Prices(HashMap<String, ModelPrice>);

impl Prices {
    pub fn from_rows(rows: Vec<ModelPrice>) -> Prices {
        let mut map = HashMap::new();
        for r in rows.into_iter().filter(|r| r.effective_to.is_none()) {
            map.entry(r.model_id.clone()).or_insert(r);
        }
        Prices(map)
    }

    /// The price of `model`, as sent or without a provider prefix.
    pub fn get(&self, model: &str) -> Option<&ModelPrice> {
        self.0
            .get(model)
            .or_else(|| PREFIXES.iter().find_map(|p| model.strip_prefix(p)).and_then(|bare| self.0.get(bare)))
    }

    /// Every model id [`get`](Prices::get) prices, with its price: each priced model as named and behind each
    /// provider prefix. A store ranking sessions by a plain join on this list prices exactly as `get` does.
    pub fn token_prices(&self) -> Vec<TokenPrice> {
        let mut ids: Vec<String> = self.0.keys().cloned().collect();
        ids.extend(self.0.keys().flat_map(|k| PREFIXES.iter().map(move |p| format!("{p}{k}"))));
        ids.sort();
        ids.dedup();
        ids.into_iter()
            .filter_map(|id| {
                let p = self.get(&id)?;
                Some(TokenPrice {
                    input_per_1m: p.input_per_1m_usd,
                    output_per_1m: p.output_per_1m_usd,
                    thinking_per_1m: p.thinking_per_1m_usd,
                    model_id: id,
                })
            })
            .collect()
    }

    /// USD for these token counts (input, output and thinking; cache reads are not priced, as in the original).
    pub fn cost(&self, model: &str, input: i64, output: i64, thinking: i64) -> Option<f64> {
        self.get(model).map(|p| {
            input as f64 / 1e6 * p.input_per_1m_usd
                + output as f64 / 1e6 * p.output_per_1m_usd
                + thinking as f64 / 1e6 * p.thinking_per_1m_usd
        })
    }
}

/// The per-worker cache of [`Prices`].
#[derive(Default)]
pub struct PriceCache(Mutex<Option<(Instant, Arc<Prices>)>>);

impl PriceCache {
    pub async fn get(&self, state: &AppState) -> Result<Arc<Prices>, StorageError> {
        if let Some((at, prices)) = self.0.lock().ok().and_then(|c| c.clone()) {
            if at.elapsed() < CACHE_TTL {
                return Ok(prices);
            }
        }
        let prices = Arc::new(Prices::from_rows(state.storage.pricing.list_prices().await?));
        if let Ok(mut c) = self.0.lock() {
            *c = Some((Instant::now(), prices.clone()));
        }
        Ok(prices)
    }

    pub fn invalidate(&self) {
        if let Ok(mut c) = self.0.lock() {
            *c = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixed_models_find_their_price_and_retired_rows_do_not_count() {
        let mut rows = seed_rows(1);
        let mut old = rows[1].clone();
        old.id = "old".into();
        old.input_per_1m_usd = 99.0;
        old.effective_to = Some(1);
        rows.insert(0, old);
        let p = Prices::from_rows(rows);
        assert_eq!(p.get("anthropic/claude-sonnet-4-6").map(|r| r.input_per_1m_usd), Some(3.0));
        assert!(p.get("unknown-model").is_none());
        // 1M input at $3, 0.5M output at $15.
        assert_eq!(p.cost("claude-sonnet-4-6", 1_000_000, 500_000, 0), Some(10.5));
    }

    #[test]
    fn the_token_price_list_prices_every_id_as_the_lookup_does() {
        let mut rows = seed_rows(1);
        let mut prefixed = rows[0].clone();
        prefixed.model_id = "anthropic/claude-sonnet-4-6".into();
        prefixed.input_per_1m_usd = 7.0;
        rows.push(prefixed);
        let p = Prices::from_rows(rows);
        let list = p.token_prices();
        let table: HashMap<&str, f64> = list.iter().map(|t| (t.model_id.as_str(), t.input_per_1m)).collect();
        assert_eq!(table.len(), list.len(), "one row per id");
        for id in [
            "gpt-4o",
            "openai/gpt-4o",
            "models/gpt-4o",
            "anthropic/claude-sonnet-4-6",
            "models/anthropic/claude-sonnet-4-6",
            "claude-sonnet-4-6",
            "openai/anthropic/claude-sonnet-4-6",
            "gpt-4o-2024",
            "unknown",
            "anthropic/openai/gpt-4o",
        ] {
            assert_eq!(table.get(id).copied(), p.get(id).map(|r| r.input_per_1m_usd), "{id}");
        }
        assert_eq!(table["anthropic/claude-sonnet-4-6"], 7.0, "an exact id wins over the stripped one");
    }
}
