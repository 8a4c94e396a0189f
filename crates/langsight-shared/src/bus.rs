//! The event bus: an ordered, replayable log of events that every worker follows.
//!
//! A publish appends one message (the events of one ingest request, say) to the log and every worker's
//! subscribers receive it, in the same order everywhere, each message with an id `ms-seq`. A subscriber that
//! reconnects asks for what came after the last id it saw ([`EventBus::replay`]) and learns whether the log
//! still reaches back that far.
//!
//! In memory the log is a ring buffer. In Redis it is the stream `langsight:events:admin` (the seed's admin
//! channel name: the stream carries every project's events, each tagged with its project), capped by length
//! (`MAXLEN ~`) and age (`MINID ~`) and expiring when idle. Each worker follows it with a single blocking
//! `XREAD` on its own connection — one Redis connection per worker whatever the number of SSE clients — and
//! fans messages out in-process. A stream rather than pub/sub because a stream gives ids, one global order,
//! and replay; and a worker that loses its connection for a moment resumes from its last id without losing
//! anything (pub/sub would drop what was sent meanwhile).
//!
//! When Redis cannot be reached, a publish is still delivered to this worker's subscribers (without an id: it
//! cannot be replayed), and when the reader finds that the log no longer contains its last id (Redis restarted
//! empty) it tells subscribers that events may have been lost.

use crate::fanout::{Budget, Fanout, Subscriber};
use crate::redis::Redis;
use async_trait::async_trait;
use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// A position in the log: milliseconds and a sequence within that millisecond (Redis stream id form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MsgId {
    pub ms: u64,
    pub seq: u64,
}

impl fmt::Display for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl FromStr for MsgId {
    type Err = ();
    fn from_str(s: &str) -> Result<MsgId, ()> {
        let (ms, seq) = s.split_once('-').ok_or(())?;
        Ok(MsgId { ms: ms.parse().map_err(|_| ())?, seq: seq.parse().map_err(|_| ())? })
    }
}

/// One event: its SSE name and its JSON data, rendered once by the publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub name: String,
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// A message of the log.
    Message,
    /// Delivered by this worker alone while Redis was unreachable: no id, not replayable.
    LocalOnly,
    /// The log lost entries this worker had not read (Redis restarted empty, or the reader fell too far
    /// behind): subscribers may have missed events.
    Gap,
}

#[derive(Debug, Clone)]
pub struct BusMessage {
    pub id: MsgId,
    pub kind: Delivery,
    /// The project the events belong to; `None` = unscoped (admin subscribers only).
    pub project: Option<Arc<str>>,
    pub events: Arc<[Event]>,
    /// Publisher's wall clock, for publish → deliver latency.
    pub published_ms: u64,
}

/// What a reconnecting subscriber gets.
#[derive(Debug, Default)]
pub struct Replay {
    pub messages: Vec<Arc<BusMessage>>,
    /// False when the log no longer reaches back to the requested id: events may be missing before
    /// `messages`.
    pub complete: bool,
}

/// How much of the log is kept for replay.
#[derive(Debug, Clone, Copy)]
pub struct BusLimits {
    /// Messages kept (not events: one message holds one publish).
    pub replay_messages: usize,
    /// Bytes of event data the in-process ring keeps at most: under heavy ingest 10,000 messages of span
    /// batches would otherwise hold hundreds of MiB.
    pub replay_bytes: usize,
    pub replay_age: Duration,
    /// Messages a local subscriber may fall behind before it loses the oldest.
    pub subscriber_buffer: usize,
    /// Bytes of event data a local subscriber may fall behind before it loses the oldest: what a live-view
    /// client that stops reading can pin, however large the batches (`LANGSIGHT_SSE_CLIENT_BUFFER_BYTES`).
    pub subscriber_bytes: usize,
}

impl BusLimits {
    fn budget(&self) -> Budget {
        Budget { messages: self.subscriber_buffer, bytes: self.subscriber_bytes }
    }
}

impl Default for BusLimits {
    fn default() -> Self {
        BusLimits {
            replay_messages: 10_000,
            replay_bytes: 16 << 20,
            replay_age: Duration::from_secs(300),
            subscriber_buffer: 200,
            subscriber_bytes: 4 << 20,
        }
    }
}

#[async_trait]
pub trait EventBus: Send + Sync {
    /// Appends one message. Never fails the caller.
    async fn publish(&self, project: Option<&str>, events: Vec<Event>);
    /// Messages published from its return on, in log order. A receiver more than `subscriber_buffer` messages or
    /// `subscriber_bytes` bytes behind loses the oldest (`RecvError::Lagged(n)`).
    async fn subscribe(&self) -> Subscriber;
    /// Messages from `from` on (inclusive), oldest first; `complete` says whether `from` itself was still in
    /// the log (so nothing before the returned messages is missing).
    async fn replay(&self, from: MsgId) -> Replay;
    /// Whether this worker currently follows the shared log (always true in memory mode).
    fn connected(&self) -> bool;
    /// Whether this worker reads the shared log now: it rests while it has no subscriber (always true in memory
    /// mode).
    fn reading(&self) -> bool;
}

fn now_ms() -> u64 {
    crate::now_ms()
}

/// The in-process log: ring buffer + broadcast. Also the Redis bus's local fallback.
pub struct MemoryBus {
    limits: BusLimits,
    /// Last id, the messages, and the bytes of event data they hold.
    ring: Mutex<(MsgId, VecDeque<Arc<BusMessage>>, usize)>,
    tx: Fanout,
}

/// What a message weighs in the replay ring and a subscriber's budget.
pub fn message_bytes(m: &BusMessage) -> usize {
    m.events.iter().map(|e| e.name.len() + e.data.len()).sum::<usize>() + 64
}

impl MemoryBus {
    pub fn new(limits: BusLimits) -> MemoryBus {
        MemoryBus { limits, ring: Mutex::new((MsgId::default(), VecDeque::new(), 0)), tx: Fanout::new(limits.budget()) }
    }
}

#[async_trait]
impl EventBus for MemoryBus {
    async fn publish(&self, project: Option<&str>, events: Vec<Event>) {
        let now = now_ms();
        let Ok(mut ring) = self.ring.lock() else { return };
        let last = ring.0;
        let id = if now > last.ms { MsgId { ms: now, seq: 0 } } else { MsgId { ms: last.ms, seq: last.seq + 1 } };
        ring.0 = id;
        let msg = Arc::new(BusMessage {
            id,
            kind: Delivery::Message,
            project: project.map(Arc::from),
            events: events.into(),
            published_ms: now,
        });
        ring.2 += message_bytes(&msg);
        ring.1.push_back(msg.clone());
        let min_ms = now.saturating_sub(self.limits.replay_age.as_millis() as u64);
        while ring.1.len() > self.limits.replay_messages
            || (ring.2 > self.limits.replay_bytes && ring.1.len() > 1)
            || ring.1.front().is_some_and(|m| m.id.ms < min_ms)
        {
            if let Some(old) = ring.1.pop_front() {
                ring.2 = ring.2.saturating_sub(message_bytes(&old));
            }
        }
        // Sent under the lock so subscribers see ids in order.
        let _ = self.tx.send(msg);
    }

    async fn subscribe(&self) -> Subscriber {
        self.tx.subscribe()
    }

    async fn replay(&self, from: MsgId) -> Replay {
        let Ok(ring) = self.ring.lock() else { return Replay::default() };
        let complete = ring.1.iter().any(|m| m.id == from);
        Replay { messages: ring.1.iter().filter(|m| m.id >= from).cloned().collect(), complete }
    }

    fn connected(&self) -> bool {
        true
    }

    fn reading(&self) -> bool {
        true
    }
}

/// XADD with both caps and the idle expiry, one round trip.
/// KEYS[1] stream; ARGV: maxlen, min id, ttl ms, project, events JSON, published ms.
const APPEND: &str = r#"
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'p', ARGV[4], 'e', ARGV[5], 't', ARGV[6])
redis.call('XTRIM', KEYS[1], 'MINID', '~', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return id
"#;

pub struct RedisBus {
    redis: Arc<Redis>,
    key: String,
    limits: BusLimits,
    append: redis::Script,
    tx: Fanout,
    following: Arc<AtomicBool>,
    reader: Arc<Reader>,
    task: tokio::task::JoinHandle<()>,
    /// Running average size of an appended message (bytes), to turn the byte budget into a stream length.
    avg_bytes: std::sync::atomic::AtomicUsize,
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Encodes events as a JSON array of `[name, data]` pairs (data is already JSON text).
fn encode(events: &[Event]) -> String {
    let mut s = String::with_capacity(events.iter().map(|e| e.name.len() + e.data.len() + 8).sum::<usize>() + 2);
    s.push('[');
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push('[');
        push_json_string(&mut s, &e.name);
        s.push(',');
        push_json_string(&mut s, &e.data);
        s.push(']');
    }
    s.push(']');
    s
}

/// Appends `s` as a JSON string. Every ingest's events are encoded here on their way to the stream, so runs of plain text
/// are copied whole and only the bytes JSON must escape (all ASCII, so never inside a multi-byte character) are
/// rewritten — a char-by-char copy was 3 % of a multi-worker server's CPU.
fn push_json_string(out: &mut String, s: &str) {
    use std::fmt::Write as _;
    out.push('"');
    let mut plain = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let escaped = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[plain..i]);
        if escaped.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escaped);
        }
        plain = i + 1;
    }
    out.push_str(&s[plain..]);
    out.push('"');
}

fn decode(events: &str) -> Option<Vec<Event>> {
    let v: Vec<(String, String)> = serde_json::from_str(events).ok()?;
    Some(v.into_iter().map(|(name, data)| Event { name, data }).collect())
}

type Entry = (String, Vec<(String, String)>);

fn to_message(entry: Entry) -> Option<Arc<BusMessage>> {
    let (id, fields) = entry;
    let id: MsgId = id.parse().ok()?;
    let mut project = None;
    let mut events = None;
    let mut published_ms = id.ms;
    for (k, v) in fields {
        match k.as_str() {
            "p" => project = (!v.is_empty()).then(|| Arc::<str>::from(v.as_str())),
            "e" => events = decode(&v),
            "t" => published_ms = v.parse().unwrap_or(id.ms),
            _ => {}
        }
    }
    Some(Arc::new(BusMessage { id, kind: Delivery::Message, project, events: events?.into(), published_ms }))
}

/// Parses an XRANGE / XREAD entry list.
fn entries(v: redis::Value) -> Vec<Entry> {
    redis::from_redis_value::<Vec<Entry>>(v).unwrap_or_default()
}

impl RedisBus {
    pub fn start(redis: Arc<Redis>, prefix: &str, limits: BusLimits) -> RedisBus {
        let key = format!("{prefix}:events:admin");
        let tx = Fanout::new(limits.budget());
        let following = Arc::new(AtomicBool::new(false));
        let reader = Arc::new(Reader {
            state: tokio::sync::watch::Sender::new(ReaderState::Down),
            wake: Notify::new(),
            owe_gap: AtomicBool::new(false),
        });
        let task = tokio::spawn(follow(redis.clone(), key.clone(), tx.clone(), following.clone(), reader.clone()));
        RedisBus {
            redis,
            key,
            limits,
            append: redis::Script::new(APPEND),
            tx,
            following,
            reader,
            task,
            avg_bytes: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

/// What the worker's reader is doing, as a subscriber needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReaderState {
    /// Not connected to Redis (starting, or reconnecting): it starts from a point read when it connects.
    Down,
    /// Reading the log: every message after its position reaches every registered subscriber.
    Reading,
    /// No subscriber here: it reads nothing until one arrives, then starts from the log's end as it is then.
    Rest,
}

/// The reader's state and its wake-up call, shared with [`RedisBus::subscribe`].
///
/// Every worker reading every message of the log is what several workers cost most beyond one: with 4 workers
/// each ingest batch's events crossed from Redis and were decoded four times, mostly by workers nobody watched
/// (docs/decisions.md). So a worker reads only while it has subscribers. The rest is decided under the state's
/// lock after counting subscribers, and a subscriber reads the state after registering: either the reader saw
/// it (and keeps reading), or it sees `Rest` and wakes the reader, which reads the log's end only then.
struct Reader {
    state: tokio::sync::watch::Sender<ReaderState>,
    wake: Notify,
    /// A subscriber stopped waiting for the reader to start (Redis did not answer in time): it may miss what is
    /// published until the reader starts, which then tells its subscribers that events may be missing.
    owe_gap: AtomicBool,
}

/// How long a subscriber waits for a resting reader to start (a Redis that does not answer: the stream opens
/// anyway, with local deliveries, as when Redis is down).
const RESUME_WAIT: Duration = Duration::from_secs(2);

/// The log's last id (the default id when it is empty).
async fn log_end(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> redis::RedisResult<MsgId> {
    let top: redis::Value =
        redis::cmd("XREVRANGE").arg(key).arg("+").arg("-").arg("COUNT").arg(1).query_async(conn).await?;
    Ok(entries(top).into_iter().next().and_then(|(id, _)| id.parse::<MsgId>().ok()).unwrap_or_default())
}

/// Tells subscribers that events after `id` may be missing.
fn gap(id: MsgId) -> Arc<BusMessage> {
    Arc::new(BusMessage {
        id,
        kind: Delivery::Gap,
        project: None,
        events: Arc::from(Vec::new()),
        published_ms: now_ms(),
    })
}

/// The worker's single reader: blocking XREAD from the last id seen while this worker has subscribers,
/// reconnecting as needed.
async fn follow(redis: Arc<Redis>, key: String, tx: Fanout, following: Arc<AtomicBool>, reader: Arc<Reader>) {
    let mut last: Option<MsgId> = None;
    let mut backoff = Duration::from_millis(100);
    let mut first_connect = true;
    loop {
        reader.state.send_replace(ReaderState::Down);
        let conn = redis.blocking_connection(&key).await;
        let mut conn = match conn {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "redis.bus.connect_failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        // Where to start: after the last id seen — if the log still has it; otherwise say events may be lost.
        // The first time (and after a rest), after the log's current last entry (read explicitly: `$` would
        // skip an entry appended between two reads).
        let start = match last {
            None => match log_end(&mut conn, &key).await {
                Ok(id) => {
                    last = Some(id);
                    id.to_string()
                }
                Err(e) => {
                    tracing::debug!(error = %e, "redis.bus.start_failed");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            },
            Some(l) if l == MsgId::default() => l.to_string(),
            Some(l) => {
                let still: redis::RedisResult<redis::Value> =
                    redis::cmd("XRANGE").arg(&key).arg(l.to_string()).arg(l.to_string()).query_async(&mut conn).await;
                let present = still.map(|v| !entries(v).is_empty()).unwrap_or(false);
                if !present {
                    tracing::warn!(last = %l, "redis.bus.gap: the event log lost entries while this worker was away");
                    let _ = tx.send(gap(l));
                }
                l.to_string()
            }
        };
        if reader.owe_gap.swap(false, Ordering::AcqRel) {
            let _ = tx.send(gap(last.unwrap_or_default()));
        }
        following.store(true, Ordering::Relaxed);
        reader.state.send_replace(ReaderState::Reading);
        backoff = Duration::from_millis(100);
        if first_connect {
            tracing::debug!(key = %key, "redis.bus.following");
        } else {
            redis.metrics.pubsub_reconnects.fetch_add(1, Ordering::Relaxed);
            tracing::info!(key = %key, "redis.pubsub.resubscribed: following the event log again");
        }
        first_connect = false;
        let mut cursor = start;
        loop {
            // Nobody here listens: rest until a subscriber arrives (decided under the state's lock, see `Reader`).
            let mut rest = false;
            reader.state.send_if_modified(|state| {
                rest = tx.subscriber_count() == 0;
                let was = *state;
                if rest {
                    *state = ReaderState::Rest;
                }
                was != *state
            });
            if rest {
                reader.wake.notified().await;
                match log_end(&mut conn, &key).await {
                    Ok(id) => {
                        // Nothing was missed while resting: no one was here to miss it.
                        last = Some(id);
                        cursor = id.to_string();
                        reader.state.send_replace(ReaderState::Reading);
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "redis.pubsub.disconnected: reconnecting to the event log");
                        last = None;
                        break;
                    }
                }
            }
            let r: redis::RedisResult<redis::Value> = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(1000)
                .arg("BLOCK")
                .arg(2000)
                .arg("STREAMS")
                .arg(&key)
                .arg(&cursor)
                .query_async(&mut conn)
                .await;
            let v = match r {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, "redis.pubsub.disconnected: reconnecting to the event log");
                    break;
                }
            };
            // XREAD answers [[key, [entries…]]] or nil on timeout.
            let streams: Vec<(String, redis::Value)> = redis::from_redis_value(v).unwrap_or_default();
            for (_, list) in streams {
                for entry in entries(list) {
                    redis.metrics.bus_messages_read.fetch_add(1, Ordering::Relaxed);
                    if let Some(msg) = to_message(entry) {
                        cursor = msg.id.to_string();
                        last = Some(msg.id);
                        let _ = tx.send(msg);
                    }
                }
            }
        }
        following.store(false, Ordering::Relaxed);
        reader.state.send_replace(ReaderState::Down);
        tokio::time::sleep(backoff).await;
    }
}

#[async_trait]
impl EventBus for RedisBus {
    async fn publish(&self, project: Option<&str>, events: Vec<Event>) {
        let now = now_ms();
        let min_id = format!("{}-0", now.saturating_sub(self.limits.replay_age.as_millis() as u64));
        let ttl = self.limits.replay_age.as_millis() as u64;
        let encoded = encode(&events);
        // Redis trims by count only: keep as many messages as the byte budget holds at the recent average size
        // (never fewer than 100, never more than the message cap), so heavy span batches do not fill Redis's
        // memory.
        let size = encoded.len() + 64;
        let avg = match self.avg_bytes.load(Ordering::Relaxed) {
            0 => size,
            a => (a * 15 + size) / 16,
        };
        self.avg_bytes.store(avg, Ordering::Relaxed);
        let maxlen = (self.limits.replay_bytes / avg.max(1)).max(100).min(self.limits.replay_messages);
        let r = self
            .redis
            .script::<String>(
                &self.append,
                &[&self.key],
                &[&maxlen, &min_id, &ttl, &project.unwrap_or(""), &encoded, &now],
            )
            .await;
        if r.is_err() {
            self.redis.metrics.fallback_bus.fetch_add(1, Ordering::Relaxed);
            let _ = self.tx.send(Arc::new(BusMessage {
                id: MsgId::default(),
                kind: Delivery::LocalOnly,
                project: project.map(Arc::from),
                events: events.into(),
                published_ms: now,
            }));
        }
    }

    async fn subscribe(&self) -> Subscriber {
        let subscriber = self.tx.subscribe();
        // Registered first, then the reader's state read (see `Reader`): a resting reader is woken and starts
        // from the log's end as it is after this registration, so every message published from here on arrives.
        let mut state = self.reader.state.subscribe();
        let now = *state.borrow_and_update();
        if now != ReaderState::Reading {
            if now == ReaderState::Rest {
                self.reader.wake.notify_one();
            }
            // Until it reads (its connection may have died while it rested: then it reconnects first). Not
            // forever: with Redis down the stream opens anyway, and the reader owes its subscribers a gap notice.
            let started = state.wait_for(|s| *s == ReaderState::Reading);
            if tokio::time::timeout(RESUME_WAIT, started).await.is_err() {
                self.reader.owe_gap.store(true, Ordering::Release);
                tracing::warn!("redis.bus.slow_start: the event-log reader did not start in time");
            }
        }
        subscriber
    }

    async fn replay(&self, from: MsgId) -> Replay {
        let cmd = redis::cmd("XRANGE")
            .arg(&self.key)
            .arg(from.to_string())
            .arg("+")
            .arg("COUNT")
            .arg(self.limits.replay_messages.max(1))
            .clone();
        let Ok(v) = self.redis.query_bulk::<redis::Value>(&cmd).await else {
            return Replay::default();
        };
        let messages: Vec<Arc<BusMessage>> = entries(v).into_iter().filter_map(to_message).collect();
        let complete = messages.first().is_some_and(|m| m.id == from);
        Replay { messages, complete }
    }

    fn connected(&self) -> bool {
        self.following.load(Ordering::Relaxed)
    }

    fn reading(&self) -> bool {
        *self.reader.state.borrow() == ReaderState::Reading
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_order_and_parse() {
        let a: MsgId = "1700000000000-3".parse().unwrap();
        assert!(a < "1700000000000-10".parse().unwrap());
        assert!(a < "1700000000001-0".parse().unwrap());
        assert_eq!(a.to_string(), "1700000000000-3");
        assert!("x-1".parse::<MsgId>().is_err());
    }

    #[test]
    fn events_round_trip_through_the_stream_encoding() {
        let events = vec![
            Event { name: "span:new".into(), data: r#"{"a":"q\"uote\n"}"#.into() },
            Event { name: "alert:fired".into(), data: "{}".into() },
            Event { name: "ünï\u{1}c\u{1f}de\\".into(), data: "\"\r\t\u{7f}€𝄞\"\\\"".into() },
        ];
        assert_eq!(decode(&encode(&events)).unwrap(), events);
    }

    #[tokio::test]
    async fn memory_log_replays_and_knows_its_window() {
        let bus = MemoryBus::new(BusLimits { replay_messages: 3, ..BusLimits::default() });
        for i in 0..5 {
            bus.publish(None, vec![Event { name: "e".into(), data: i.to_string() }]).await;
        }
        let all = bus.replay(MsgId::default()).await;
        assert_eq!(all.messages.len(), 3);
        let oldest_kept = all.messages[0].id;
        let r = bus.replay(oldest_kept).await;
        assert!(r.complete);
        assert_eq!(r.messages.len(), 3, "inclusive of the id asked for");
        let too_old = bus.replay(MsgId { ms: 1, seq: 0 }).await;
        assert!(!too_old.complete, "the window no longer reaches back that far");
    }

    #[tokio::test]
    async fn memory_log_keeps_to_its_byte_budget() {
        // 100 messages of ~1 KiB against a 10 KiB budget: only the newest few stay, the newest always.
        let bus = MemoryBus::new(BusLimits { replay_bytes: 10 * 1024, ..BusLimits::default() });
        for i in 0..100 {
            bus.publish(None, vec![Event { name: "span:new".into(), data: format!("{i:01024}") }]).await;
        }
        let kept = bus.replay(MsgId::default()).await.messages;
        assert!((5..=10).contains(&kept.len()), "{} kept", kept.len());
        assert_eq!(kept.last().unwrap().events[0].data, format!("{:01024}", 99));
    }
}
