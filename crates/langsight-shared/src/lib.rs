//! State that every worker of a LangSight deployment must agree on.
//!
//! Five features, one trait each, each with a memory and a Redis backend side by side:
//!
//! | feature | trait | Redis keys |
//! |---|---|---|
//! | rate limiting | [`rate_limit::RateLimiter`] | `langsight:rl:{client}:{route}` (TTL = window) |
//! | event bus | [`bus::EventBus`] | stream `langsight:events:admin` (every project's events, in order) |
//! | circuit breakers | [`breaker::BreakerStore`] | `langsight:cb:{server}` (TTL = 2 × cooldown) |
//! | alert dedup | [`dedup::AlertDedup`] | `langsight:alerts:dedup:{project}:{type}:{scope}` (TTL 1 h) |
//! | leadership | [`lease::LeaderLease`] | `langsight:leader:{name}` (TTL = lease) |
//!
//! The backend is chosen once at start-up ([`SharedState::memory`] or [`SharedState::redis`]); callers
//! never know which. Every Redis-side decision that must be atomic is one Lua script (one round trip) over
//! one key, so it is Cluster-safe without hash tags; time comes from Redis (`TIME`, TTLs), never a worker's
//! clock. When Redis fails mid-run each feature degrades on its own terms (see each module) and recovers by
//! itself.

pub mod breaker;
pub mod bus;
pub mod dedup;
pub mod fanout;
pub mod lease;
pub mod metrics;
pub mod rate_limit;
pub mod redis;
pub mod url;

use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    /// Start-up could not reach Redis; the message carries the cause.
    #[error("LANGSIGHT_REDIS_URL is set but Redis is unreachable: {0}. Check that Redis is running and the URL (host, port, password, TLS) is correct.")]
    Connect(String),
    /// Redis is marked down: the caller should use its fallback without waiting.
    #[error("redis is down")]
    Down,
    #[error("redis error: {0}")]
    Redis(String),
}

/// The five shared features of one worker.
#[derive(Clone)]
pub struct SharedState {
    pub rate_limiter: Arc<dyn rate_limit::RateLimiter>,
    pub bus: Arc<dyn bus::EventBus>,
    pub breakers: Arc<dyn breaker::BreakerStore>,
    pub dedup: Arc<dyn dedup::AlertDedup>,
    pub leases: Arc<dyn lease::LeaderLease>,
    pub metrics: Arc<metrics::SharedMetrics>,
    /// The Redis connection, when shared state lives there.
    pub redis: Option<Arc<redis::Redis>>,
    /// Key prefix, `langsight` in production (tests use their own to stay apart).
    pub prefix: String,
}

impl SharedState {
    /// In-process state: one worker, no Redis.
    pub fn memory() -> SharedState {
        Self::memory_with(bus::BusLimits::default())
    }

    pub fn memory_with(limits: bus::BusLimits) -> SharedState {
        let metrics = Arc::new(metrics::SharedMetrics::default());
        SharedState {
            rate_limiter: Arc::new(rate_limit::MemoryRateLimiter::default()),
            bus: Arc::new(bus::MemoryBus::new(limits)),
            breakers: Arc::new(breaker::MemoryBreakers::default()),
            dedup: Arc::new(dedup::MemoryDedup::default()),
            leases: Arc::new(lease::MemoryLeases::default()),
            metrics,
            redis: None,
            prefix: "langsight".into(),
        }
    }

    /// Shared state in Redis: connects and PINGs (refusing with the cause when unreachable), starts the
    /// health pinger and the event bus subscription.
    pub async fn redis(
        settings: redis::RedisSettings,
        prefix: &str,
        limits: bus::BusLimits,
    ) -> Result<SharedState, SharedError> {
        let metrics = Arc::new(metrics::SharedMetrics::default());
        let conn = redis::Redis::connect(settings, metrics.clone()).await?;
        conn.spawn_health_checks(Duration::from_millis(500));
        let prefix = prefix.to_string();
        let local_rl = Arc::new(rate_limit::MemoryRateLimiter::default());
        Ok(SharedState {
            rate_limiter: Arc::new(rate_limit::RedisRateLimiter::new(conn.clone(), &prefix, local_rl)),
            bus: Arc::new(bus::RedisBus::start(conn.clone(), &prefix, limits)),
            breakers: Arc::new(breaker::RedisBreakers::new(conn.clone(), &prefix)),
            dedup: Arc::new(dedup::RedisDedup::new(conn.clone(), &prefix)),
            leases: Arc::new(lease::RedisLeases::new(conn.clone(), &prefix)),
            metrics,
            redis: Some(conn),
            prefix,
        })
    }

    /// `"memory"`, or the Redis topology name.
    pub fn backend_name(&self) -> &'static str {
        match &self.redis {
            None => "memory",
            Some(r) => r.settings.url.topology_name(),
        }
    }
}

/// Wall-clock milliseconds since the epoch, for the memory backends (the Redis ones use Redis time).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
