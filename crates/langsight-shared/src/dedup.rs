//! Alert dedup: the first caller for a key within the TTL gets `true` ("fire"), everyone else `false`.
//! In Redis this is `SET key 1 NX EX ttl` — one atomic command, so across any number of workers an alert
//! fires once. When Redis is down dedup fails open (the alert fires, maybe twice): a duplicate page is
//! better than a lost one.

use crate::redis::Redis;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

#[async_trait]
pub trait AlertDedup: Send + Sync {
    /// `scope` is `{project}:{type}:{scope}` of `langsight:alerts:dedup:{project}:{type}:{scope}`.
    async fn first_fire(&self, scope: &str, ttl_secs: u64) -> bool;
    /// Forgets the key, so the next `first_fire` for it fires (the condition ended; the next one is news).
    async fn release(&self, scope: &str);
}

#[derive(Default)]
pub struct MemoryDedup {
    until: Mutex<HashMap<String, u64>>,
}

#[async_trait]
impl AlertDedup for MemoryDedup {
    async fn first_fire(&self, scope: &str, ttl_secs: u64) -> bool {
        let now = crate::now_ms();
        let Ok(mut m) = self.until.lock() else { return true };
        if m.len() > 100_000 {
            m.retain(|_, until| *until > now);
        }
        match m.get(scope) {
            Some(until) if *until > now => false,
            _ => {
                m.insert(scope.to_string(), now + ttl_secs * 1000);
                true
            }
        }
    }

    async fn release(&self, scope: &str) {
        if let Ok(mut m) = self.until.lock() {
            m.remove(scope);
        }
    }
}

pub struct RedisDedup {
    redis: Arc<Redis>,
    prefix: String,
}

impl RedisDedup {
    pub fn new(redis: Arc<Redis>, prefix: &str) -> RedisDedup {
        RedisDedup { redis, prefix: prefix.to_string() }
    }
}

#[async_trait]
impl AlertDedup for RedisDedup {
    async fn first_fire(&self, scope: &str, ttl_secs: u64) -> bool {
        let key = format!("{}:alerts:dedup:{scope}", self.prefix);
        let cmd = redis::cmd("SET").arg(&key).arg(1).arg("NX").arg("EX").arg(ttl_secs.max(1)).clone();
        match self.redis.query::<Option<String>>(&cmd).await {
            Ok(set) => set.is_some(),
            Err(_) => {
                self.redis.metrics.fallback_dedup.fetch_add(1, Ordering::Relaxed);
                true
            }
        }
    }

    async fn release(&self, scope: &str) {
        let key = format!("{}:alerts:dedup:{scope}", self.prefix);
        let _ = self.redis.query::<i64>(redis::cmd("DEL").arg(&key)).await;
    }
}
