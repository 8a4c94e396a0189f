//! The event bus: publish a message on a topic (a project id, or `admin`) and every worker's local
//! subscribers receive it.
//!
//! Each worker holds exactly one Redis subscription (`PSUBSCRIBE langsight:events:*`) and fans messages out
//! to its own subscribers through an in-process broadcast channel, so the number of Redis connections never
//! depends on the number of SSE clients. The subscription reconnects and resubscribes by itself (with a
//! log line and a metric) after Redis restarts or a Sentinel failover. If a publish cannot reach Redis, the
//! message still reaches this worker's subscribers.

use crate::redis::Redis;
use async_trait::async_trait;
use futures_util::StreamExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// Messages buffered per worker for subscribers that fall behind (they then see `Lagged`).
pub const LOCAL_CAPACITY: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusMessage {
    /// `admin` or a project id.
    pub topic: Arc<str>,
    pub payload: Arc<str>,
}

#[async_trait]
pub trait EventBus: Send + Sync {
    /// Delivers to every worker's subscribers. Never fails the caller.
    async fn publish(&self, topic: &str, payload: &str);
    fn subscribe(&self) -> broadcast::Receiver<BusMessage>;
    /// Whether messages from other workers currently arrive (always true in memory mode).
    fn connected(&self) -> bool;
}

pub struct MemoryBus {
    tx: broadcast::Sender<BusMessage>,
}

impl MemoryBus {
    pub fn new(capacity: usize) -> MemoryBus {
        MemoryBus { tx: broadcast::channel(capacity).0 }
    }
}

#[async_trait]
impl EventBus for MemoryBus {
    async fn publish(&self, topic: &str, payload: &str) {
        let _ = self.tx.send(BusMessage { topic: topic.into(), payload: payload.into() });
    }
    fn subscribe(&self) -> broadcast::Receiver<BusMessage> {
        self.tx.subscribe()
    }
    fn connected(&self) -> bool {
        true
    }
}

pub struct RedisBus {
    redis: Arc<Redis>,
    prefix: String,
    tx: broadcast::Sender<BusMessage>,
    subscribed: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RedisBus {
    pub fn start(redis: Arc<Redis>, prefix: &str) -> RedisBus {
        let (tx, _) = broadcast::channel(LOCAL_CAPACITY);
        let subscribed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let task = tokio::spawn(subscribe_loop(redis.clone(), prefix.to_string(), tx.clone(), subscribed.clone()));
        RedisBus { redis, prefix: prefix.to_string(), tx, subscribed, task }
    }
}

async fn subscribe_loop(
    redis: Arc<Redis>,
    prefix: String,
    tx: broadcast::Sender<BusMessage>,
    subscribed: Arc<std::sync::atomic::AtomicBool>,
) {
    let pattern = format!("{prefix}:events:*");
    let strip = format!("{prefix}:events:");
    let mut backoff = Duration::from_millis(100);
    let mut first = true;
    loop {
        let attempt = async {
            let client = redis.pubsub_client().await.map_err(|e| e.to_string())?;
            let mut ps = tokio::time::timeout(redis.settings.connect_timeout, client.get_async_pubsub())
                .await
                .map_err(|_| "connect timed out".to_string())?
                .map_err(|e| e.to_string())?;
            ps.psubscribe(&pattern).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(ps)
        };
        match attempt.await {
            Ok(mut ps) => {
                subscribed.store(true, Ordering::Relaxed);
                backoff = Duration::from_millis(100);
                if first {
                    tracing::debug!(pattern = %pattern, "redis.pubsub.subscribed");
                } else {
                    tracing::info!(pattern = %pattern, "redis.pubsub.resubscribed");
                }
                first = false;
                let mut stream = ps.on_message();
                while let Some(msg) = stream.next().await {
                    let channel = msg.get_channel_name().to_string();
                    let Ok(payload) = msg.get_payload::<String>() else { continue };
                    let topic = channel.strip_prefix(&strip).unwrap_or(&channel);
                    let _ = tx.send(BusMessage { topic: topic.into(), payload: payload.into() });
                }
                subscribed.store(false, Ordering::Relaxed);
                redis.metrics.pubsub_reconnects.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("redis.pubsub.disconnected: resubscribing");
            }
            Err(e) => {
                tracing::debug!(error = %e, "redis.pubsub.connect_failed");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

#[async_trait]
impl EventBus for RedisBus {
    async fn publish(&self, topic: &str, payload: &str) {
        let channel = format!("{}:events:{topic}", self.prefix);
        let cmd = redis::cmd("PUBLISH").arg(&channel).arg(payload).clone();
        if self.redis.query::<i64>(&cmd).await.is_err() {
            self.redis.metrics.fallback_bus.fetch_add(1, Ordering::Relaxed);
            let _ = self.tx.send(BusMessage { topic: topic.into(), payload: payload.into() });
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<BusMessage> {
        self.tx.subscribe()
    }

    fn connected(&self) -> bool {
        self.subscribed.load(Ordering::Relaxed)
    }
}
