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
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
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

/// Buckets the memory limiter keeps at most. A flood of distinct clients (every address of an IPv6 /64 is
/// one) would otherwise grow the map without bound; at the cap the bucket whose window ends soonest is
/// dropped, which can only give that one client a fresh window early.
pub const MEMORY_MAX_BUCKETS: usize = 100_000;
/// Expired buckets removed per hit, at most: each hit adds at most one heap entry and removes up to this
/// many expired ones, so eviction work per request stays constant however many buckets exist.
const EVICT_PER_HIT: usize = 4;

/// The fixed-window algorithm in one process.
///
/// Buckets live in a map; a min-heap of window ends finds the expired ones, a few per hit (never a scan of
/// every bucket), and the heap's top is what goes first when the map is full.
pub struct MemoryRateLimiter {
    state: Mutex<Windows>,
    max_buckets: usize,
}

#[derive(Default)]
struct Windows {
    /// bucket → (window end in ms, hits)
    map: HashMap<Arc<str>, (u64, u64)>,
    /// (window end, bucket) for every window opened; an entry whose end no longer matches the map is stale
    /// (that window expired and another opened) and is dropped when it surfaces.
    ends: BinaryHeap<Reverse<(u64, Arc<str>)>>,
    /// Heap entries examined by eviction, for tests: proves the work per hit is bounded.
    examined: u64,
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        MemoryRateLimiter::with_max_buckets(MEMORY_MAX_BUCKETS)
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn hit(&self, bucket: &str, limit: u64, window_ms: u64) -> Decision {
        self.hit_now(bucket, limit, window_ms, crate::now_ms())
    }
}

impl MemoryRateLimiter {
    pub fn with_max_buckets(max_buckets: usize) -> MemoryRateLimiter {
        MemoryRateLimiter { state: Mutex::new(Windows::default()), max_buckets: max_buckets.max(1) }
    }

    fn hit_now(&self, bucket: &str, limit: u64, window_ms: u64, now: u64) -> Decision {
        let Ok(mut guard) = self.state.lock() else {
            return decide(0, window_ms, limit);
        };
        let w = &mut *guard;
        w.evict_expired(now, EVICT_PER_HIT);
        if let Some(entry) = w.map.get_mut(bucket) {
            if entry.0 > now {
                entry.1 += 1;
                return decide(entry.1, entry.0 - now, limit);
            }
            // The window expired: a new one opens now.
            *entry = (now + window_ms, 1);
            let end = entry.0;
            let key = w.map.get_key_value(bucket).map(|(k, _)| k.clone()).unwrap_or_else(|| Arc::from(bucket));
            w.ends.push(Reverse((end, key)));
            return decide(1, window_ms, limit);
        }
        while w.map.len() >= self.max_buckets {
            if !w.evict_one() {
                break;
            }
        }
        let key: Arc<str> = Arc::from(bucket);
        w.map.insert(key.clone(), (now + window_ms, 1));
        w.ends.push(Reverse((now + window_ms, key)));
        decide(1, window_ms, limit)
    }

    /// Buckets held now.
    pub fn buckets(&self) -> usize {
        self.state.lock().map(|w| w.map.len()).unwrap_or(0)
    }
}

impl Windows {
    /// Removes up to `budget` expired heap entries (and their buckets when still current).
    fn evict_expired(&mut self, now: u64, budget: usize) {
        for _ in 0..budget {
            match self.ends.peek() {
                Some(Reverse((end, _))) if *end <= now => {
                    self.evict_one();
                }
                _ => break,
            }
        }
    }

    /// Pops the heap's top and removes its bucket if that entry is the bucket's current window. Returns
    /// whether a bucket was removed or the heap still has entries to try.
    fn evict_one(&mut self) -> bool {
        let Some(Reverse((end, key))) = self.ends.pop() else { return false };
        self.examined += 1;
        if self.map.get(&key).is_some_and(|(current, _)| *current == end) {
            self.map.remove(&key);
        }
        true
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

    #[test]
    fn a_flood_of_distinct_clients_keeps_memory_and_work_per_hit_bounded() {
        let cap = 50_000;
        let m = MemoryRateLimiter::with_max_buckets(cap);
        let n = 200_000u64;
        // 200k distinct clients inside one window: the map never exceeds the cap, the heap stays beside it,
        // and each hit examines a bounded number of entries (no scan of every bucket).
        let mut examined = 0;
        for i in 0..n {
            let d = m.hit_now(&format!("client-{i}:/api/status"), 5, 60_000, 1_000_000 + i / 100);
            assert!(d.allowed);
            let w = m.state.lock().unwrap();
            assert!(w.map.len() <= cap, "{} buckets after {i} clients", w.map.len());
            assert!(w.ends.len() <= cap, "{} heap entries after {i} clients", w.ends.len());
            assert!(w.examined - examined <= 1, "hit {i} examined {} entries", w.examined - examined);
            examined = w.examined;
        }
        assert_eq!(m.buckets(), cap);
        // At the cap the bucket whose window ends soonest went first: the newest clients are all still counted.
        for i in (n - 10)..n {
            let d = m.hit_now(&format!("client-{i}:/api/status"), 5, 60_000, 1_000_000 + n / 100);
            assert_eq!(d.remaining, 3, "client {i} kept its count");
        }

        // Once windows end, buckets go a few per hit: the map drains without a full scan.
        let m = MemoryRateLimiter::with_max_buckets(cap);
        for i in 0..cap as u64 {
            m.hit_now(&format!("x{i}"), 5, 60_000, 1_000_000);
        }
        let later = 1_060_000;
        m.hit_now("fresh", 5, 60_000, later);
        let w = m.state.lock().unwrap();
        assert_eq!(w.examined, EVICT_PER_HIT as u64, "one hit evicts a few expired buckets, not all");
        assert_eq!(w.map.len(), cap - EVICT_PER_HIT + 1);
        drop(w);
        for i in 0..(cap as u64 / EVICT_PER_HIT as u64) {
            m.hit_now(&format!("y{}", i % 10), 5, 60_000, later + 1);
        }
        assert_eq!(m.buckets(), 11, "every expired bucket drained; 10 live clients and 'fresh' remain");
    }

    #[test]
    fn a_reopened_window_survives_its_stale_heap_entry() {
        let m = MemoryRateLimiter::default();
        for i in 0..10 {
            m.hit_now(&format!("k{i}"), 2, 1000, 0);
        }
        // k9's window reopens before eviction reached its old heap entry (only a few go per hit).
        assert_eq!(m.hit_now("k9", 2, 1000, 1000).remaining, 1);
        m.hit_now("other", 2, 1000, 1001);
        m.hit_now("other", 2, 1000, 1001); // pops k8 and the stale (1000, k9)
        let (examined, heap) = m.state.lock().map(|w| (w.examined, w.ends.len())).unwrap();
        assert_eq!((examined, heap), (10, 2), "k0..k9's first windows and nothing else were popped");
        assert!(m.hit_now("k9", 2, 1000, 1002).allowed, "second hit of the new window");
        assert!(!m.hit_now("k9", 2, 1000, 1003).allowed, "the new window kept its count");
    }
}
