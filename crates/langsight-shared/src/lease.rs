//! Leadership: one holder of a named lease at a time (the MCP monitor and other once-per-cluster loops).
//! The holder renews before the lease runs out; if it dies, the lease expires and another worker takes it.
//! In Redis: `SET NX PX` to take, a compare-and-renew script to keep, compare-and-delete to release.
//! Without Redis (and in memory mode) the single process always leads.

use crate::redis::Redis;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[async_trait]
pub trait LeaderLease: Send + Sync {
    /// Takes or renews the lease `name` for `holder`; true while `holder` leads.
    async fn acquire(&self, name: &str, holder: &str, ttl_ms: u64) -> bool;
    async fn release(&self, name: &str, holder: &str);
}

#[derive(Default)]
pub struct MemoryLeases {
    held: Mutex<HashMap<String, (String, u64)>>,
}

#[async_trait]
impl LeaderLease for MemoryLeases {
    async fn acquire(&self, name: &str, holder: &str, ttl_ms: u64) -> bool {
        let now = crate::now_ms();
        let Ok(mut m) = self.held.lock() else { return false };
        match m.get(name) {
            Some((h, until)) if h != holder && *until > now => false,
            _ => {
                m.insert(name.to_string(), (holder.to_string(), now + ttl_ms));
                true
            }
        }
    }

    async fn release(&self, name: &str, holder: &str) {
        if let Ok(mut m) = self.held.lock() {
            if m.get(name).is_some_and(|(h, _)| h == holder) {
                m.remove(name);
            }
        }
    }
}

const ACQUIRE: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"#;

const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

pub struct RedisLeases {
    redis: Arc<Redis>,
    prefix: String,
    acquire: redis::Script,
    release: redis::Script,
}

impl RedisLeases {
    pub fn new(redis: Arc<Redis>, prefix: &str) -> RedisLeases {
        RedisLeases {
            redis,
            prefix: prefix.to_string(),
            acquire: redis::Script::new(ACQUIRE),
            release: redis::Script::new(RELEASE),
        }
    }
}

#[async_trait]
impl LeaderLease for RedisLeases {
    /// On a Redis error nobody can prove leadership: false, so at most one worker ever leads.
    async fn acquire(&self, name: &str, holder: &str, ttl_ms: u64) -> bool {
        let key = format!("{}:leader:{name}", self.prefix);
        matches!(self.redis.script::<i64>(&self.acquire, &[&key], &[&holder, &ttl_ms.max(1)]).await, Ok(1))
    }

    async fn release(&self, name: &str, holder: &str) {
        let key = format!("{}:leader:{name}", self.prefix);
        let _ = self.redis.script::<i64>(&self.release, &[&key], &[&holder]).await;
    }
}
