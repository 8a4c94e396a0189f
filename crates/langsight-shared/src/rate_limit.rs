//! Rate limiting: at most `limit` requests per `window` for each bucket (client key × route template).
//!
//! Algorithm: a fixed window that opens at the bucket's first request — the first hit starts a counter that
//! expires after the window; hits beyond the limit are refused until it expires. It is exact (never more
//! than `limit` accepted per window, whatever the number of workers), costs one key per active bucket whose
//! TTL is the window itself, and is one atomic script in Redis (`INCR` + `PEXPIRE` + `PTTL`).
//!
//! When Redis is down the worker falls back to the same algorithm in memory (limits then hold per worker),
//! counts the fallback, and returns to the shared counters as soon as Redis answers.

use crate::redis::Redis;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u64,
    pub remaining: u64,
    /// Milliseconds until the window resets.
    pub reset_ms: u64,
    /// Whether the decision came from the local fallback because the shared store was unreachable.
    pub fallback: bool,
}

#[async_trait]
pub trait RateLimiter: Send + Sync {
    async fn hit(&self, bucket: &str, limit: u64, window_ms: u64) -> Decision;
}

fn decide(count: u64, ttl_ms: u64, limit: u64) -> Decision {
    Decision {
        allowed: count <= limit,
        limit,
        remaining: limit.saturating_sub(count),
        reset_ms: ttl_ms,
        fallback: false,
    }
}

#[derive(Default)]
pub struct MemoryRateLimiter {
    /// bucket → (window end in ms, hits)
    windows: Mutex<HashMap<String, (u64, u64)>>,
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn hit(&self, bucket: &str, limit: u64, window_ms: u64) -> Decision {
        self.hit_now(bucket, limit, window_ms, crate::now_ms())
    }
}

impl MemoryRateLimiter {
    fn hit_now(&self, bucket: &str, limit: u64, window_ms: u64, now: u64) -> Decision {
        let Ok(mut w) = self.windows.lock() else {
            return decide(0, window_ms, limit);
        };
        if w.len() > 100_000 {
            // Expired windows are dropped lazily; bound memory against a flood of distinct clients.
            w.retain(|_, (end, _)| *end > now);
        }
        let entry = w.entry(bucket.to_string()).or_insert((now + window_ms, 0));
        if entry.0 <= now {
            *entry = (now + window_ms, 0);
        }
        entry.1 += 1;
        decide(entry.1, entry.0 - now, limit)
    }
}

const HIT: &str = r#"
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
"#;

pub struct RedisRateLimiter {
    redis: Arc<Redis>,
    prefix: String,
    script: redis::Script,
    local: Arc<MemoryRateLimiter>,
}

impl RedisRateLimiter {
    pub fn new(redis: Arc<Redis>, prefix: &str, local: Arc<MemoryRateLimiter>) -> RedisRateLimiter {
        RedisRateLimiter { redis, prefix: prefix.to_string(), script: redis::Script::new(HIT), local }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn hit(&self, bucket: &str, limit: u64, window_ms: u64) -> Decision {
        let key = format!("{}:rl:{bucket}", self.prefix);
        match self.redis.script::<(u64, i64)>(&self.script, &[&key], &[&window_ms]).await {
            Ok((n, ttl)) => decide(n, ttl.max(0) as u64, limit),
            Err(_) => {
                self.redis.metrics.fallback_rate_limit.fetch_add(1, Ordering::Relaxed);
                Decision { fallback: true, ..self.local.hit(bucket, limit, window_ms).await }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_window_from_first_hit() {
        let m = MemoryRateLimiter::default();
        for i in 1..=3 {
            let d = m.hit_now("b", 3, 1000, 10_000 + i);
            assert!(d.allowed);
            assert_eq!(d.remaining, 3 - i);
        }
        let d = m.hit_now("b", 3, 1000, 10_500);
        assert!(!d.allowed);
        assert_eq!(d.reset_ms, 501);
        assert!(m.hit_now("other", 3, 1000, 10_500).allowed, "buckets are independent");
        assert!(m.hit_now("b", 3, 1000, 11_001).allowed, "a new window opens after expiry");
    }
}
