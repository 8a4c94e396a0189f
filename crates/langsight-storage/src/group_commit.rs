//! Group commit for the networked span stores (`postgres`, `dual`): concurrent ingest requests are merged
//! into one write — one PostgreSQL transaction, one ClickHouse INSERT — instead of one each.
//!
//! A request still gets its answer only after the merged write has committed, so "202 means committed" holds.
//! Nothing waits on a timer: while one group is being written the next one gathers, so an idle server writes
//! a lone batch at once and a busy one writes fewer, larger groups (ClickHouse in particular wants few large
//! inserts, and every PostgreSQL commit costs a WAL flush). The embedded SQLite store does the same inside its
//! own writer thread and is not wrapped.

use crate::model::*;
use crate::{SpanStore, StorageError};
use langsight_core::span::Span;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Mutex};

/// Spans gathered into one group at most; a group is also cut when no more requests are waiting.
const MAX_GROUP_SPANS: usize = 5_000;
/// Groups written at the same time: one gathers while another writes.
const WRITERS: usize = 2;
/// Requests waiting to join a group before new ones wait for room (back-pressure, not loss).
const QUEUE: usize = 1_024;

struct Job {
    spans: Vec<Span>,
    done: oneshot::Sender<Result<IngestOutcome, StorageError>>,
}

/// A [`SpanStore`] that merges concurrent `ingest` calls and hands the groups to the inner store's
/// [`SpanStore::ingest_group`]; every other call goes straight through.
pub struct GroupCommit {
    inner: Arc<dyn SpanStore>,
    queue: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Wraps `inner` and starts the writer tasks (needs a Tokio runtime).
    pub fn spawn(inner: Arc<dyn SpanStore>) -> Arc<GroupCommit> {
        let (queue, rx) = mpsc::channel::<Job>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..WRITERS {
            let (inner, rx) = (inner.clone(), rx.clone());
            tokio::spawn(async move {
                while let Some(group) = gather(&rx).await {
                    write(&*inner, group).await;
                }
            });
        }
        Arc::new(GroupCommit { inner, queue })
    }
}

/// Waits for one job, then takes whatever else is already waiting, up to [`MAX_GROUP_SPANS`].
/// `None` once every sender is gone.
async fn gather(rx: &Mutex<mpsc::Receiver<Job>>) -> Option<Vec<Job>> {
    let mut rx = rx.lock().await;
    let first = rx.recv().await?;
    let mut total = first.spans.len();
    let mut group = vec![first];
    while total < MAX_GROUP_SPANS {
        match rx.try_recv() {
            Ok(job) => {
                total += job.spans.len();
                group.push(job);
            }
            Err(_) => break,
        }
    }
    Some(group)
}

async fn write(inner: &dyn SpanStore, group: Vec<Job>) {
    let (batches, answers): (Vec<Vec<Span>>, Vec<_>) = group.into_iter().map(|j| (j.spans, j.done)).unzip();
    let results = inner.ingest_group(batches).await;
    for (answer, result) in answers.into_iter().zip(results) {
        // The requester may have gone (client disconnected); its spans are committed all the same.
        let _ = answer.send(result);
    }
}

/// Each batch on its own, in order: the default of [`SpanStore::ingest_group`] and every backend's fallback when a
/// merged write failed.
pub async fn one_by_one<S: SpanStore + ?Sized>(
    store: &S,
    batches: Vec<Vec<Span>>,
) -> Vec<Result<IngestOutcome, StorageError>> {
    let mut out = Vec::with_capacity(batches.len());
    for batch in batches {
        out.push(store.ingest(batch).await);
    }
    out
}

/// Splits a merged outcome back per batch: each batch is credited with its own spans, and each session's tag
/// change goes to the first batch that touched that session (so it is announced once). One pass over the
/// spans builds a session → first batch index, so a group of many sessions costs linear, not quadratic, time.
pub fn split_outcome(batches: &[Vec<Span>], merged: IngestOutcome) -> Vec<IngestOutcome> {
    let mut out: Vec<IngestOutcome> =
        batches.iter().map(|b| IngestOutcome { accepted: b.len(), sessions: Vec::new() }).collect();
    let mut owner: std::collections::HashMap<(&str, &str), usize> = std::collections::HashMap::new();
    for (i, batch) in batches.iter().enumerate() {
        for s in batch {
            if let Some(session) = s.session() {
                owner.entry((s.project().unwrap_or(""), session)).or_insert(i);
            }
        }
    }
    for update in merged.sessions {
        if let Some(&i) = owner.get(&(update.project_id.as_str(), update.session_id.as_str())) {
            out[i].sessions.push(update);
        }
    }
    out
}

span_store_with_own_ingest!(GroupCommit, inner, {
    async fn ingest(&self, spans: Vec<Span>) -> Result<IngestOutcome, StorageError> {
        if spans.is_empty() {
            return Ok(IngestOutcome::default());
        }
        let (done, answer) = oneshot::channel();
        let gone = || StorageError::Unavailable("the span writer has stopped (server shutting down)".into());
        self.queue.send(Job { spans, done }).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
});

#[cfg(test)]
mod tests {
    use super::*;
    use langsight_core::health::HealthTag;
    use langsight_core::span::decode_batch;

    fn batch(sessions: &[String]) -> Vec<Span> {
        let body: Vec<serde_json::Value> = sessions
            .iter()
            .map(|sid| {
                serde_json::json!({"server_name": "s", "tool_name": "t", "status": "success", "session_id": sid,
                                   "started_at": 1, "ended_at": 1})
            })
            .collect();
        decode_batch(&serde_json::to_vec(&body).unwrap()).unwrap()
    }

    /// 200 batches of 500 sessions each (100,000 sessions): the old per-update scan of every span did
    /// 100,000 × 100,000 / 2 comparisons (minutes); the index makes it one pass. Counted, not timed: every
    /// update lands in the batch that first named its session.
    #[test]
    fn a_group_touching_many_sessions_splits_in_one_pass() {
        let ids: Vec<String> = (0..100_000u64).map(|i| format!("{i:032x}")).collect();
        let mut batches: Vec<Vec<Span>> = ids.chunks(500).map(batch).collect();
        // The first session appears again in the last batch: it still belongs to the first.
        batches.last_mut().unwrap().extend(batch(&ids[..1]));
        let merged = IngestOutcome {
            accepted: 100_001,
            sessions: ids
                .iter()
                .map(|sid| SessionTagUpdate {
                    project_id: String::new(),
                    session_id: sid.clone(),
                    previous: None,
                    current: HealthTag::Success,
                })
                .collect(),
        };
        let started = std::time::Instant::now();
        let split = split_outcome(&batches, merged);
        assert_eq!(split.len(), 200);
        assert!(split.iter().all(|o| o.sessions.len() == 500));
        assert_eq!(split[0].sessions[0].session_id, ids[0]);
        assert_eq!(split[199].accepted, 501);
        eprintln!("split 100,000 sessions over 200 batches in {:?}", started.elapsed());
    }
}
