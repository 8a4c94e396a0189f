//! One span writer for several worker processes on one SQLite file.
//!
//! SQLite lets one connection write at a time. Workers that each ran their own group-commit writer on the
//! shared file took turns through the file lock: a writer that found it taken slept in its busy handler, each
//! commit began with a page cache another process had invalidated, groups were smaller, and no process could
//! start the WAL over without forcing it — 2 and 4 workers stored fewer spans per second than one
//! (BENCHMARKS.md). So the supervisor keeps the database open and runs the only span writer: each worker sends
//! its decoded batches over a Unix socket ([`ForwardedSpans`]) and the writer ([`serve`]) puts them into its group
//! commits, answering each batch only after the commit holding it is fsynced — a worker's 202 still means
//! stored. Reads, and the rare other writes (keys, alerts, health), stay in the workers: they are correct
//! under the file lock and gain nothing from a hop.
//!
//! A frame is `u32` length (of what follows), `u64` request id, payload ([`super::wire`]); answers carry the id
//! of their request and may come in any order. A worker that cannot reach the writer stores the batch itself
//! (correct, only slower); one whose writer went away with a batch in flight answers 503, since the batch may or
//! may not have been committed — the same as a single server dying mid-request.

use super::wire;
use crate::model::*;
use crate::{SpanStore, StorageError};
use langsight_core::span::Span;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, Semaphore};

/// The largest frame either end reads. A request body is limited far below this (the HTTP body limit); a
/// larger length can only be a damaged stream, which is closed.
const MAX_FRAME: usize = 256 << 20;
/// Batches one connection may have in the writer at once; past it the writer stops reading that worker.
const MAX_IN_FLIGHT: usize = 1_024;

fn frame(id: u64, payload: impl FnOnce(&mut wire::Out)) -> Vec<u8> {
    let mut out = wire::Out(Vec::with_capacity(4096));
    out.0.extend_from_slice(&[0; 4]);
    out.0.extend_from_slice(&id.to_le_bytes());
    payload(&mut out);
    let len = (out.0.len() - 4) as u32;
    out.0[..4].copy_from_slice(&len.to_le_bytes());
    out.0
}

/// Reads one frame into `buf` (its payload) and returns its id; `None` at a clean end of stream.
async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> std::io::Result<Option<u64>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if !(8..=MAX_FRAME).contains(&len) {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("a frame of {len} bytes")));
    }
    let mut id = [0u8; 8];
    r.read_exact(&mut id).await?;
    // Read into spare capacity: a batch-sized buffer need not be zero-filled first.
    buf.clear();
    let want = len - 8;
    if r.take(want as u64).read_to_end(buf).await? < want {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the stream ended inside a frame"));
    }
    Ok(Some(u64::from_le_bytes(id)))
}

/// What the writer process did, for its shutdown log line and for tests.
#[derive(Debug, Default)]
pub struct WriterCounts {
    pub batches: AtomicU64,
    pub spans: AtomicU64,
}

/// Runs the span writer on `listener` until the task is dropped: every connection's batches go to `store`.
pub async fn serve(listener: UnixListener, store: Arc<dyn SpanStore>, counts: Arc<WriterCounts>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(stream, store.clone(), counts.clone()));
            }
            Err(e) => {
                // Out of file descriptors and the like: the workers fall back to writing themselves meanwhile.
                tracing::warn!(error = %e, "storage.span_writer.accept_failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(stream: UnixStream, store: Arc<dyn SpanStore>, counts: Arc<WriterCounts>) {
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(MAX_IN_FLIGHT);
    let sender = tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            if let Err(e) = wr.write_all(&f).await {
                tracing::warn!(error = %e, "storage.span_writer.reply_failed: the worker went away");
                return;
            }
        }
    });
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut buf = Vec::new();
    loop {
        let id = match read_frame(&mut rd, &mut buf).await {
            Ok(Some(id)) => id,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(error = %e, "storage.span_writer.bad_stream: closing the connection");
                break;
            }
        };
        let Ok(permit) = permits.clone().acquire_owned().await else { break };
        let spans = wire::get_spans(&buf);
        let (store, counts, tx) = (store.clone(), counts.clone(), tx.clone());
        tokio::spawn(async move {
            let result = match spans {
                Ok(spans) => {
                    let n = spans.len() as u64;
                    let result = store.ingest(spans).await;
                    if result.is_ok() {
                        counts.batches.fetch_add(1, Ordering::Relaxed);
                        counts.spans.fetch_add(n, Ordering::Relaxed);
                    }
                    result
                }
                Err(e) => Err(StorageError::Backend(format!("the span writer could not read a batch: {}", e.0))),
            };
            let _ = tx.send(frame(id, |out| wire::put_outcome(out, &result))).await;
            drop(permit);
        });
    }
    // In-flight batches still finish and answer; the sender ends when the last of them dropped its handle.
    drop(tx);
    let _ = sender.await;
}

type Waiting = HashMap<u64, oneshot::Sender<Vec<u8>>>;

/// One open connection to the writer. `waiting` is `None` once the connection died: a request can then not
/// register an answer that would never come. Frames are written by one task fed through a channel, so a request
/// whose caller went away mid-send (a client disconnect drops the handler) never leaves half a frame behind.
struct Link {
    out: mpsc::Sender<Vec<u8>>,
    waiting: Arc<std::sync::Mutex<Option<Waiting>>>,
    next_id: AtomicU64,
}

/// Marks the link dead: every request still waiting learns its answer will not come (its sender is dropped).
fn die(waiting: &std::sync::Mutex<Option<Waiting>>) {
    if let Ok(mut w) = waiting.lock() {
        w.take();
    }
}

impl Link {
    async fn open(socket: &Path) -> std::io::Result<Arc<Link>> {
        let (mut rd, mut wr) = UnixStream::connect(socket).await?.into_split();
        let waiting: Arc<std::sync::Mutex<Option<Waiting>>> = Arc::new(std::sync::Mutex::new(Some(HashMap::new())));
        let (out, mut frames) = mpsc::channel::<Vec<u8>>(MAX_IN_FLIGHT);
        let answers = waiting.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            loop {
                match read_frame(&mut rd, &mut buf).await {
                    Ok(Some(id)) => {
                        let to = answers.lock().ok().and_then(|mut w| w.as_mut().and_then(|w| w.remove(&id)));
                        if let Some(to) = to {
                            let _ = to.send(std::mem::take(&mut buf));
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "storage.forward.bad_stream");
                        break;
                    }
                }
            }
            die(&answers);
        });
        let dead = waiting.clone();
        tokio::spawn(async move {
            while let Some(f) = frames.recv().await {
                if let Err(e) = wr.write_all(&f).await {
                    tracing::warn!(error = %e, "storage.forward.send_failed");
                    break;
                }
            }
            die(&dead);
        });
        Ok(Arc::new(Link { out, waiting, next_id: AtomicU64::new(1) }))
    }

    fn alive(&self) -> bool {
        self.waiting.lock().map(|w| w.is_some()).unwrap_or(false)
    }

    /// Sends one batch; `Err(None)` when the link was already dead (nothing was sent), `Err(Some)` when the
    /// batch may have reached the writer but its answer cannot.
    async fn send(&self, spans: &[Span]) -> Result<Vec<u8>, Option<StorageError>> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (to, answer) = oneshot::channel();
        if self.waiting.lock().ok().and_then(|mut w| w.as_mut().map(|w| w.insert(id, to))).is_none() {
            return Err(None);
        }
        if self.out.send(frame(id, |out| wire::put_spans(out, spans))).await.is_err() {
            return Err(None); // the sending task had ended: this frame was never written
        }
        answer.await.map_err(|_| {
            Some(StorageError::Unavailable(
                "the span writer process went away before confirming the batch; it may or may not be stored, send it again"
                    .into(),
            ))
        })
    }
}

/// The span store of a worker whose supervisor runs the span writer: `ingest` goes to the writer process, all
/// else to the worker's own connections (`local`).
pub struct ForwardedSpans {
    local: Arc<dyn SpanStore>,
    socket: PathBuf,
    link: tokio::sync::Mutex<Option<Arc<Link>>>,
    /// Batches stored by the worker itself because the writer could not be reached.
    pub fallbacks: AtomicU64,
    unreachable: std::sync::atomic::AtomicBool,
}

impl ForwardedSpans {
    pub fn new(local: Arc<dyn SpanStore>, socket: PathBuf) -> ForwardedSpans {
        ForwardedSpans {
            local,
            socket,
            link: tokio::sync::Mutex::new(None),
            fallbacks: AtomicU64::new(0),
            unreachable: Default::default(),
        }
    }

    /// The open link, connecting if there is none or the last one died; `None` if the writer cannot be reached.
    async fn link(&self) -> Option<Arc<Link>> {
        let mut slot = self.link.lock().await;
        if let Some(l) = slot.as_ref().filter(|l| l.alive()) {
            return Some(l.clone());
        }
        match Link::open(&self.socket).await {
            Ok(l) => {
                if self.unreachable.swap(false, Ordering::Relaxed) {
                    tracing::info!(socket = %self.socket.display(), "storage.forward.reconnected");
                }
                *slot = Some(l.clone());
                Some(l)
            }
            Err(e) => {
                *slot = None;
                // Said once per outage, not once per batch.
                if !self.unreachable.swap(true, Ordering::Relaxed) {
                    tracing::warn!(socket = %self.socket.display(), error = %e, "storage.forward.unreachable: this worker stores its batches itself until the span writer is back");
                }
                None
            }
        }
    }
}

span_store_with_own_ingest!(ForwardedSpans, local, {
    async fn ingest(&self, spans: Vec<Span>) -> Result<IngestOutcome, StorageError> {
        if spans.is_empty() {
            return Ok(IngestOutcome::default());
        }
        // A link that died between the check and the send is replaced once; nothing was sent on it.
        for _ in 0..2 {
            let Some(link) = self.link().await else { break };
            match link.send(&spans).await {
                Ok(answer) => {
                    return wire::get_outcome(&answer).map_err(|e| {
                        StorageError::Backend(format!("the span writer's answer could not be read: {}", e.0))
                    })?
                }
                Err(Some(lost)) => return Err(lost),
                Err(None) => continue,
            }
        }
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        self.local.ingest(spans).await
    }
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::SqliteStorage;
    use langsight_core::span::decode_batch;

    /// `n` tool calls of session `sid`, every third failing.
    fn batch(sid: &str, from: usize, n: usize) -> Vec<Span> {
        let spans: Vec<serde_json::Value> = (from..from + n)
            .map(|i| {
                serde_json::json!({"span_id": format!("{sid}-{i}"), "session_id": sid, "server_name": "s",
                    "tool_name": "t", "status": if i % 3 == 0 { "error" } else { "success" },
                    "started_at": 1_700_000_000 + i, "ended_at": 1_700_000_000 + i})
            })
            .collect();
        decode_batch(&serde_json::to_vec(&spans).unwrap()).unwrap()
    }

    struct Setup {
        _dir: tempfile::TempDir,
        socket: PathBuf,
        writer: Arc<SqliteStorage>,
        worker: Arc<ForwardedSpans>,
        counts: Arc<WriterCounts>,
        serving: tokio::task::JoinHandle<()>,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("f.db");
        let writer = Arc::new(SqliteStorage::open(&db).unwrap());
        let socket = dir.path().join("spans.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let counts = Arc::new(WriterCounts::default());
        let serving = tokio::spawn(serve(listener, writer.clone(), counts.clone()));
        let local: Arc<dyn SpanStore> = Arc::new(SqliteStorage::open_beside_writer(&db).unwrap());
        let worker = Arc::new(ForwardedSpans::new(local, socket.clone()));
        Setup { _dir: dir, socket, writer, worker, counts, serving }
    }

    /// Concurrent batches from a worker are committed by the writer process's store, each answered with its
    /// own outcome, and the worker's own reads see them as soon as it has the answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_workers_batches_are_committed_by_the_writer_and_answered_each() {
        let s = setup();
        let mut tasks = Vec::new();
        for i in 0..40usize {
            let worker = s.worker.clone();
            tasks.push(tokio::spawn(async move {
                let sid = format!("{:032x}", i % 4);
                worker.ingest(batch(&sid, i * 10, 10)).await.map(|o| (sid, o))
            }));
        }
        let mut first_seen = std::collections::BTreeMap::new();
        for t in tasks {
            let (sid, outcome) = t.await.unwrap().unwrap();
            assert_eq!(outcome.accepted, 10);
            for u in outcome.sessions {
                assert_eq!(u.session_id, sid, "a batch is told about its own session only");
                if u.previous.is_none() {
                    *first_seen.entry(sid.clone()).or_insert(0) += 1;
                }
            }
        }
        assert_eq!(s.counts.batches.load(Ordering::Relaxed), 40, "every batch went through the writer");
        assert_eq!(s.counts.spans.load(Ordering::Relaxed), 400);
        assert_eq!(s.worker.fallbacks.load(Ordering::Relaxed), 0);
        assert_eq!(first_seen.values().copied().collect::<Vec<_>>(), vec![1; 4], "one first tag per session");
        for k in 0..4 {
            let row = s.worker.get_session(None, &format!("{k:032x}")).await.unwrap().expect("stored");
            assert_eq!((row.rollup.span_count, row.rollup.tool_calls), (100, 100), "session {k}");
            assert_eq!(
                row.rollup.failed_calls,
                (0..40usize)
                    .filter(|i| i % 4 == k)
                    .map(|i| (i * 10..i * 10 + 10).filter(|j| j % 3 == 0).count() as u64)
                    .sum::<u64>()
            );
        }
        assert_eq!(s.writer.session_spans(&format!("{:032x}", 0), None, 1_000).await.unwrap().len(), 100);
    }

    /// With no writer to reach, the worker stores the batch itself; when the writer dies holding a batch, the
    /// worker cannot know whether it was committed and says so (503), never a 202 it cannot back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_worker_writes_itself_without_a_writer_and_refuses_when_one_dies_mid_batch() {
        let s = setup();
        s.worker.ingest(batch(&"b".repeat(32), 0, 5)).await.unwrap();
        assert_eq!(s.counts.batches.load(Ordering::Relaxed), 1);
        // The writer goes away: its task ends (dropping the listener) and its socket file is gone.
        s.serving.abort();
        let _ = s.serving.await;
        std::fs::remove_file(&s.socket).unwrap();
        // The link to the old writer is still open (its connection task lives on), so stop that one too: a
        // writer process that exited closes them all.
        let l = s.worker.link.lock().await.take().unwrap();
        die(&l.waiting);
        s.worker.ingest(batch(&"a".repeat(32), 0, 7)).await.unwrap();
        assert_eq!(s.worker.fallbacks.load(Ordering::Relaxed), 1);
        assert_eq!(s.counts.batches.load(Ordering::Relaxed), 1, "the writer took nothing more");
        assert_eq!(s.worker.session_spans(&"a".repeat(32), None, 100).await.unwrap().len(), 7);

        // A writer that reads the batch, then dies before answering.
        let listener = UnixListener::bind(&s.socket).unwrap();
        let dying = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            read_frame(&mut stream, &mut buf).await.unwrap().expect("a frame");
        });
        let err = s.worker.ingest(batch(&"c".repeat(32), 0, 3)).await.unwrap_err();
        dying.await.unwrap();
        assert!(matches!(&err, StorageError::Unavailable(m) if m.contains("may or may not")), "{err}");
        assert_eq!(s.worker.fallbacks.load(Ordering::Relaxed), 1, "an answer lost in flight is not written again");
    }
}
