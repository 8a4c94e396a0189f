//! Circuit breakers, one per MCP server, shared by every worker.
//!
//! closed → open after `failure_threshold` consecutive failures; open rejects calls for `cooldown_ms`; then
//! half-open admits up to `half_open_max_calls` probes; that many successes close it, any failure re-opens
//! it. Every transition is a compare-and-set inside one Lua script on `langsight:cb:{server}` (a hash of
//! `state`, `consecutive_failures`, `opened_at`, `half_open_calls`, `half_open_successes`) using Redis `TIME`,
//! so workers with skewed clocks agree, and the key expires 2 × cooldown after its last change.
//!
//! If Redis is down the worker keeps its own breakers in memory until Redis is back.

use crate::redis::Redis;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    pub failure_threshold: u32,
    pub cooldown_ms: u64,
    pub half_open_max_calls: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig { failure_threshold: 5, cooldown_ms: 60_000, half_open_max_calls: 2 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
    fn parse(s: &str) -> BreakerState {
        match s {
            "open" => BreakerState::Open,
            "half_open" => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerStatus {
    pub state: BreakerState,
    pub consecutive_failures: u32,
    /// Milliseconds since the epoch when it last opened (Redis time in Redis mode).
    pub opened_at_ms: Option<u64>,
}

/// The result of an admission check or of recording an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// For `admit`: whether the call may go ahead.
    pub allowed: bool,
    pub before: BreakerState,
    pub after: BreakerState,
    pub status: BreakerStatus,
}

#[async_trait]
pub trait BreakerStore: Send + Sync {
    /// May a call to `server` go ahead now? (open → half-open once the cooldown has passed.)
    async fn admit(&self, server: &str, cfg: &BreakerConfig) -> Step;
    /// Records the outcome of a call that was admitted.
    async fn record(&self, server: &str, cfg: &BreakerConfig, success: bool) -> Step;
    async fn status(&self, server: &str) -> BreakerStatus;
    /// Re-creates an open breaker after a restart (rebuilt from stored health results) — only when no state
    /// exists for the server, so a live shared state always wins.
    async fn restore_open(&self, server: &str, cfg: &BreakerConfig, failures: u32, opened_at_ms: u64);
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    state: BreakerState,
    failures: u32,
    opened_at: u64,
    half_calls: u32,
    half_successes: u32,
}

impl Default for Entry {
    fn default() -> Self {
        Entry { state: BreakerState::Closed, failures: 0, opened_at: 0, half_calls: 0, half_successes: 0 }
    }
}

impl Entry {
    fn status(&self) -> BreakerStatus {
        BreakerStatus {
            state: self.state,
            consecutive_failures: self.failures,
            opened_at_ms: (self.opened_at > 0).then_some(self.opened_at),
        }
    }

    /// The same transitions as the Lua script below, for the memory backend.
    fn admit(&mut self, cfg: &BreakerConfig, now: u64) -> bool {
        match self.state {
            BreakerState::Closed => true,
            BreakerState::Open if now >= self.opened_at + cfg.cooldown_ms => {
                self.state = BreakerState::HalfOpen;
                self.half_calls = 1;
                self.half_successes = 0;
                true
            }
            BreakerState::Open => false,
            BreakerState::HalfOpen if self.half_calls < cfg.half_open_max_calls => {
                self.half_calls += 1;
                true
            }
            BreakerState::HalfOpen => false,
        }
    }

    fn record(&mut self, cfg: &BreakerConfig, success: bool, now: u64) {
        match (self.state, success) {
            (BreakerState::Closed, true) => self.failures = 0,
            (BreakerState::Closed, false) => {
                self.failures += 1;
                if self.failures >= cfg.failure_threshold {
                    self.state = BreakerState::Open;
                    self.opened_at = now;
                }
            }
            (BreakerState::HalfOpen, true) => {
                self.half_successes += 1;
                if self.half_successes >= cfg.half_open_max_calls {
                    *self = Entry::default();
                }
            }
            (BreakerState::HalfOpen, false) | (BreakerState::Open, false) => {
                self.failures += 1;
                self.state = BreakerState::Open;
                self.opened_at = now;
            }
            (BreakerState::Open, true) => {}
        }
    }
}

#[derive(Default)]
pub struct MemoryBreakers {
    entries: Mutex<HashMap<String, Entry>>,
}

impl MemoryBreakers {
    /// Applies `f` to the server's entry at the current wall-clock time.
    fn step(&self, server: &str, f: impl FnOnce(&mut Entry, u64) -> bool) -> Step {
        let now = crate::now_ms();
        let Ok(mut m) = self.entries.lock() else {
            let s = Entry::default().status();
            return Step { allowed: true, before: s.state, after: s.state, status: s };
        };
        let e = m.entry(server.to_string()).or_default();
        let before = e.state;
        let allowed = f(e, now);
        Step { allowed, before, after: e.state, status: e.status() }
    }
}

#[async_trait]
impl BreakerStore for MemoryBreakers {
    async fn admit(&self, server: &str, cfg: &BreakerConfig) -> Step {
        self.step(server, |e, now| e.admit(cfg, now))
    }

    async fn record(&self, server: &str, cfg: &BreakerConfig, success: bool) -> Step {
        self.step(server, |e, now| {
            e.record(cfg, success, now);
            true
        })
    }

    async fn status(&self, server: &str) -> BreakerStatus {
        self.entries.lock().ok().and_then(|m| m.get(server).copied()).unwrap_or_default().status()
    }

    async fn restore_open(&self, server: &str, _cfg: &BreakerConfig, failures: u32, opened_at_ms: u64) {
        if let Ok(mut m) = self.entries.lock() {
            m.entry(server.to_string()).or_insert(Entry {
                state: BreakerState::Open,
                failures,
                opened_at: opened_at_ms,
                half_calls: 0,
                half_successes: 0,
            });
        }
    }
}

/// KEYS[1] = breaker key; ARGV: failures, opened_at ms, ttl ms. Writes only when the key is absent.
const RESTORE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'state', 'open', 'consecutive_failures', ARGV[1], 'opened_at', ARGV[2],
  'half_open_calls', 0, 'half_open_successes', 0)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"#;

/// KEYS[1] = breaker key. ARGV: op ("admit" | "success" | "failure"), threshold, cooldown_ms, half_max.
/// Returns {allowed, state_before, state_after, failures, opened_at}.
const STEP: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local h = redis.call('HMGET', KEYS[1], 'state', 'consecutive_failures', 'opened_at', 'half_open_calls', 'half_open_successes')
local state = h[1] or 'closed'
local failures = tonumber(h[2] or '0')
local opened = tonumber(h[3] or '0')
local calls = tonumber(h[4] or '0')
local oks = tonumber(h[5] or '0')
local op = ARGV[1]
local threshold = tonumber(ARGV[2])
local cooldown = tonumber(ARGV[3])
local half_max = tonumber(ARGV[4])
local before = state
local allowed = 1
if op == 'admit' then
  if state == 'open' then
    if now >= opened + cooldown then
      state = 'half_open'; calls = 1; oks = 0
    else
      allowed = 0
    end
  elseif state == 'half_open' then
    if calls < half_max then calls = calls + 1 else allowed = 0 end
  end
elseif op == 'success' then
  if state == 'closed' then
    failures = 0
  elseif state == 'half_open' then
    oks = oks + 1
    if oks >= half_max then
      state = 'closed'; failures = 0; opened = 0; calls = 0; oks = 0
    end
  end
else
  failures = failures + 1
  if state == 'closed' then
    if failures >= threshold then state = 'open'; opened = now end
  else
    state = 'open'; opened = now
  end
end
redis.call('HSET', KEYS[1], 'state', state, 'consecutive_failures', failures, 'opened_at', opened,
  'half_open_calls', calls, 'half_open_successes', oks)
redis.call('PEXPIRE', KEYS[1], cooldown * 2)
return {allowed, before, state, failures, opened}
"#;

pub struct RedisBreakers {
    redis: Arc<Redis>,
    prefix: String,
    script: redis::Script,
    restore: redis::Script,
    local: MemoryBreakers,
}

impl RedisBreakers {
    pub fn new(redis: Arc<Redis>, prefix: &str) -> RedisBreakers {
        RedisBreakers {
            redis,
            prefix: prefix.to_string(),
            script: redis::Script::new(STEP),
            restore: redis::Script::new(RESTORE),
            local: MemoryBreakers::default(),
        }
    }

    async fn step(&self, server: &str, cfg: &BreakerConfig, op: &str) -> Option<Step> {
        let key = format!("{}:cb:{server}", self.prefix);
        let r = self
            .redis
            .script::<(i64, String, String, u32, u64)>(
                &self.script,
                &[&key],
                &[&op, &cfg.failure_threshold, &cfg.cooldown_ms.max(1), &cfg.half_open_max_calls.max(1)],
            )
            .await;
        match r {
            Ok((allowed, before, after, failures, opened)) => Some(Step {
                allowed: allowed == 1,
                before: BreakerState::parse(&before),
                after: BreakerState::parse(&after),
                status: BreakerStatus {
                    state: BreakerState::parse(&after),
                    consecutive_failures: failures,
                    opened_at_ms: (opened > 0).then_some(opened),
                },
            }),
            Err(_) => {
                self.redis.metrics.fallback_breaker.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

#[async_trait]
impl BreakerStore for RedisBreakers {
    async fn admit(&self, server: &str, cfg: &BreakerConfig) -> Step {
        match self.step(server, cfg, "admit").await {
            Some(s) => s,
            None => self.local.admit(server, cfg).await,
        }
    }

    async fn record(&self, server: &str, cfg: &BreakerConfig, success: bool) -> Step {
        match self.step(server, cfg, if success { "success" } else { "failure" }).await {
            Some(s) => s,
            None => self.local.record(server, cfg, success).await,
        }
    }

    async fn status(&self, server: &str) -> BreakerStatus {
        let key = format!("{}:cb:{server}", self.prefix);
        let cmd = redis::cmd("HMGET").arg(&key).arg("state").arg("consecutive_failures").arg("opened_at").clone();
        match self.redis.query::<(Option<String>, Option<u32>, Option<u64>)>(&cmd).await {
            Ok((state, failures, opened)) => BreakerStatus {
                state: BreakerState::parse(state.as_deref().unwrap_or("closed")),
                consecutive_failures: failures.unwrap_or(0),
                opened_at_ms: opened.filter(|o| *o > 0),
            },
            Err(_) => self.local.status(server).await,
        }
    }
    async fn restore_open(&self, server: &str, cfg: &BreakerConfig, failures: u32, opened_at_ms: u64) {
        let key = format!("{}:cb:{server}", self.prefix);
        let ttl = cfg.cooldown_ms.max(1) * 2;
        if self.redis.script::<i64>(&self.restore, &[&key], &[&failures, &opened_at_ms, &ttl]).await.is_err() {
            self.local.restore_open(server, cfg, failures, opened_at_ms).await;
        }
    }
}
