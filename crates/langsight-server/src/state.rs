//! What every handler shares.

use crate::auth::KeyCache;
use crate::config::Config;
use crate::metrics::Metrics;
use langsight_shared::SharedState;
use langsight_storage::Storage;
use std::sync::Arc;
use tokio::sync::Semaphore;

#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub storage: Storage,
    /// Rate limiter, event bus, breakers, dedup, leases: in memory or in Redis.
    pub shared: SharedState,
    pub metrics: Metrics,
    pub keys: KeyCache,
    /// The first-run setup token (only while no user exists; see `routes::setup`).
    pub setup_token: crate::routes::SetupToken,
    /// Bounds concurrent session-trace reads (`LANGSIGHT_MAX_CONCURRENT_TRACE_READS`): a trace can be 10,000
    /// spans, and a burst of them must not starve ingest of memory or read connections.
    pub trace_reads: Semaphore,
    /// The alert delivery queue; set once the runtime runs (see `start`).
    pub deliverer: std::sync::OnceLock<crate::alerts::deliver::Deliverer>,
    /// MCP health alert rules' memory (used by the monitor leader).
    pub health_rules: crate::alerts::rules::HealthRules,
    /// Active model prices, cached briefly (every sessions list prices its rows).
    pub prices: crate::analytics::pricing::PriceCache,
    /// Cost-breakdown session rankings in flight, by (project, hours): concurrent identical requests share one.
    pub cost_rankings:
        crate::analytics::single_flight::SingleFlight<(Option<String>, i64), Arc<Vec<langsight_storage::SessionCost>>>,
    /// The payload-redaction switch of the instance settings, cached briefly (read at every ingest).
    pub redact: crate::settings::RedactCache,
    /// Catalog names this process registered lately, so ingest writes only new or stale ones.
    pub catalog: crate::catalog::CatalogCache,
    /// Set when shutdown begins: live streams end (with a reconnect hint) instead of holding the drain until
    /// its timeout, since an event stream never finishes by itself.
    pub shutting_down: tokio::sync::watch::Sender<bool>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(config: Config, storage: Storage, shared: SharedState) -> AppState {
        let trace_reads = Semaphore::new(config.max_concurrent_trace_reads);
        AppState(Arc::new(Inner {
            keys: KeyCache::default(),
            setup_token: Default::default(),
            metrics: Metrics::default(),
            config,
            storage,
            shared,
            trace_reads,
            deliverer: std::sync::OnceLock::new(),
            health_rules: Default::default(),
            prices: Default::default(),
            cost_rankings: Default::default(),
            redact: Default::default(),
            catalog: Default::default(),
            shutting_down: tokio::sync::watch::channel(false).0,
        }))
    }
}
