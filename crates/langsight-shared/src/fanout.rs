//! In-process fan-out of bus messages to live-view subscribers, each with a backlog bounded by messages *and*
//! bytes.
//!
//! tokio's broadcast channel bounds the ring by message count only, and a subscriber that stops reading pins
//! every message of the ring: 200 ingest batches of 20 MB of events each is 4 GB held by one idle stream. Here
//! each subscriber has its own queue of shared messages; a publish that would take a queue past its message or
//! byte budget drops that subscriber's oldest messages instead (it learns how many messages it lost, as with
//! `broadcast`'s `Lagged`), so what one slow reader can pin is its budget, whatever it does.

use crate::bus::BusMessage;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::Notify;

/// Why [`Subscriber::recv`] returned no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    /// The subscriber fell behind its budget and lost this many messages; later ones follow.
    Lagged(u64),
    /// Every sender is gone: nothing more will come.
    Closed,
}

/// Why [`Subscriber::try_recv`] returned no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    Empty,
    Lagged(u64),
    Closed,
}

/// A subscriber's budget.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub messages: usize,
    pub bytes: usize,
}

#[derive(Default)]
struct Queue {
    messages: VecDeque<(Arc<BusMessage>, usize)>,
    bytes: usize,
    lagged: u64,
    closed: bool,
}

struct Slot {
    queue: Mutex<Queue>,
    notify: Notify,
}

struct Inner {
    budget: Budget,
    subscribers: Mutex<Vec<Weak<Slot>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let subs = self.subscribers.get_mut().map(std::mem::take).unwrap_or_default();
        for slot in subs.iter().filter_map(Weak::upgrade) {
            if let Ok(mut q) = slot.queue.lock() {
                q.closed = true;
            }
            slot.notify.notify_one();
        }
    }
}

/// The sending side; clones share the subscribers. When the last clone is dropped, subscribers see `Closed`.
#[derive(Clone)]
pub struct Fanout(Arc<Inner>);

impl Fanout {
    pub fn new(budget: Budget) -> Fanout {
        Fanout(Arc::new(Inner {
            budget: Budget { messages: budget.messages.max(1), bytes: budget.bytes.max(1) },
            subscribers: Mutex::new(Vec::new()),
        }))
    }

    /// Queues `msg` for every live subscriber (dropping the backlog of any that would exceed its budget) and
    /// forgets subscribers that were dropped. Returns how many subscribers received it.
    pub fn send(&self, msg: Arc<BusMessage>) -> usize {
        let size = crate::bus::message_bytes(&msg);
        let budget = self.0.budget;
        let Ok(mut subs) = self.0.subscribers.lock() else { return 0 };
        let mut delivered = 0;
        subs.retain(|weak| {
            let Some(slot) = weak.upgrade() else { return false };
            if let Ok(mut q) = slot.queue.lock() {
                // Too far behind: free its oldest messages now, and tell it what it lost when it reads again.
                while q.messages.len() + 1 > budget.messages || q.bytes + size > budget.bytes {
                    let Some((_, old)) = q.messages.pop_front() else { break };
                    q.bytes -= old;
                    q.lagged += 1;
                }
                if size > budget.bytes {
                    q.lagged += 1;
                } else {
                    q.bytes += size;
                    q.messages.push_back((msg.clone(), size));
                    delivered += 1;
                }
            }
            slot.notify.notify_one();
            true
        });
        delivered
    }

    pub fn subscribe(&self) -> Subscriber {
        let slot = Arc::new(Slot { queue: Mutex::new(Queue::default()), notify: Notify::new() });
        if let Ok(mut subs) = self.0.subscribers.lock() {
            subs.push(Arc::downgrade(&slot));
        }
        Subscriber { slot }
    }

    /// Subscribers still registered (dropped ones are forgotten at the next send).
    pub fn subscriber_count(&self) -> usize {
        self.0.subscribers.lock().map(|s| s.iter().filter(|w| w.strong_count() > 0).count()).unwrap_or(0)
    }
}

/// One subscriber's queue.
pub struct Subscriber {
    slot: Arc<Slot>,
}

impl Subscriber {
    /// The next message, waiting for one if none is queued.
    pub async fn recv(&mut self) -> Result<Arc<BusMessage>, RecvError> {
        loop {
            match self.try_recv() {
                Ok(m) => return Ok(m),
                Err(TryRecvError::Lagged(n)) => return Err(RecvError::Lagged(n)),
                Err(TryRecvError::Closed) => return Err(RecvError::Closed),
                // `notify_one` leaves a permit when nobody waits, so a send between the check and here is not lost.
                Err(TryRecvError::Empty) => self.slot.notify.notified().await,
            }
        }
    }

    /// The next queued message, without waiting.
    pub fn try_recv(&mut self) -> Result<Arc<BusMessage>, TryRecvError> {
        let Ok(mut q) = self.slot.queue.lock() else { return Err(TryRecvError::Closed) };
        if q.lagged > 0 {
            return Err(TryRecvError::Lagged(std::mem::take(&mut q.lagged)));
        }
        if let Some((m, size)) = q.messages.pop_front() {
            q.bytes -= size;
            return Ok(m);
        }
        if q.closed {
            return Err(TryRecvError::Closed);
        }
        Err(TryRecvError::Empty)
    }

    /// Bytes of messages waiting for this subscriber.
    pub fn queued_bytes(&self) -> usize {
        self.slot.queue.lock().map(|q| q.bytes).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{Delivery, Event, MsgId};

    fn msg(seq: u64, bytes: usize) -> Arc<BusMessage> {
        Arc::new(BusMessage {
            id: MsgId { ms: 1, seq },
            kind: Delivery::Message,
            project: None,
            events: vec![Event { name: "span:new".into(), data: "x".repeat(bytes) }].into(),
            published_ms: 0,
        })
    }

    #[tokio::test]
    async fn an_idle_subscriber_holds_at_most_its_byte_budget_and_learns_what_it_lost() {
        let fan = Fanout::new(Budget { messages: 1000, bytes: 100_000 });
        let mut idle = fan.subscribe();
        let mut reader = fan.subscribe();
        for i in 0..100 {
            fan.send(msg(i, 10_000));
            assert!(idle.queued_bytes() <= 100_000, "an idle subscriber is bounded by bytes");
            assert_eq!(reader.recv().await.map(|m| m.id.seq), Ok(i), "a reading subscriber loses nothing");
        }
        let mut lost = 0;
        let mut got = Vec::new();
        loop {
            match idle.try_recv() {
                Ok(m) => got.push(m.id.seq),
                Err(TryRecvError::Lagged(n)) => lost += n,
                Err(_) => break,
            }
        }
        assert_eq!(lost + got.len() as u64, 100, "every message is either delivered or counted as lost");
        assert_eq!(got.last(), Some(&99), "the newest messages are the ones kept");
    }

    #[tokio::test]
    async fn a_message_larger_than_the_budget_is_counted_not_queued() {
        let fan = Fanout::new(Budget { messages: 10, bytes: 1000 });
        let mut s = fan.subscribe();
        fan.send(msg(0, 5000));
        assert_eq!(s.queued_bytes(), 0);
        assert_eq!(s.try_recv().err(), Some(TryRecvError::Lagged(1)));
        fan.send(msg(1, 10));
        assert_eq!(s.recv().await.map(|m| m.id.seq), Ok(1));
    }

    #[tokio::test]
    async fn subscribers_see_closed_when_the_sender_goes_and_dropped_ones_are_forgotten() {
        let fan = Fanout::new(Budget { messages: 10, bytes: 1000 });
        let dropped = fan.subscribe();
        let mut s = fan.subscribe();
        drop(dropped);
        fan.send(msg(0, 1));
        assert_eq!(fan.subscriber_count(), 1);
        drop(fan);
        assert_eq!(s.recv().await.map(|m| m.id.seq), Ok(0));
        assert_eq!(s.recv().await.err(), Some(RecvError::Closed));
    }
}
