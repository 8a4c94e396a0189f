//! Counters the server renders on `/metrics`: whether Redis is up, how long its commands take, and how
//! often a feature fell back to local state.

use std::sync::atomic::{AtomicU64, Ordering};

/// Command latency buckets (seconds): loopback Redis answers in well under a millisecond.
pub const COMMAND_BUCKETS: &[f64] = &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0];

pub struct LatencyHistogram {
    pub counts: Vec<AtomicU64>,
    pub sum_nanos: AtomicU64,
    pub count: AtomicU64,
}

impl LatencyHistogram {
    fn new() -> Self {
        LatencyHistogram {
            counts: COMMAND_BUCKETS.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, seconds: f64) {
        if let Some(i) = COMMAND_BUCKETS.iter().position(|b| seconds <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_nanos.fetch_add((seconds * 1e9) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

pub struct SharedMetrics {
    /// 1 when Redis answers, 0 when the worker runs on fallbacks; -1 (never set) without Redis.
    pub redis_up: AtomicU64,
    pub command_seconds: LatencyHistogram,
    pub fallback_rate_limit: AtomicU64,
    pub fallback_dedup: AtomicU64,
    pub fallback_bus: AtomicU64,
    pub fallback_breaker: AtomicU64,
    pub pubsub_reconnects: AtomicU64,
    /// Event-log messages this worker's reader took from Redis (it reads only while it has subscribers).
    pub bus_messages_read: AtomicU64,
}

impl Default for SharedMetrics {
    fn default() -> Self {
        SharedMetrics {
            redis_up: AtomicU64::new(0),
            command_seconds: LatencyHistogram::new(),
            fallback_rate_limit: AtomicU64::new(0),
            fallback_dedup: AtomicU64::new(0),
            fallback_bus: AtomicU64::new(0),
            fallback_breaker: AtomicU64::new(0),
            pubsub_reconnects: AtomicU64::new(0),
            bus_messages_read: AtomicU64::new(0),
        }
    }
}
