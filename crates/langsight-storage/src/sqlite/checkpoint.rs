//! WAL checkpoints, kept off the commit path.
//!
//! A commit appends to the WAL; a checkpoint copies WAL pages back into the database file and fsyncs it.
//! SQLite runs checkpoints inside the committing connection by default, which would stall the group-commit
//! writer (and every request waiting on it) several times a second under load. So the writer's automatic
//! checkpoints are off, and this thread checkpoints in `PASSIVE` mode, which never blocks the writer or
//! readers.
//!
//! The WAL only starts over (and stops growing) when a write transaction begins on a fully copied WAL. Under
//! sustained load that moment never comes by itself: the writer appends while each passive pass copies. A
//! `RESTART` checkpoint forces it, but it takes the write lock and holds it while it copies and fsyncs
//! whatever is left — measured at 0.4–6 s under load, every request stalled behind it. Instead, once the WAL
//! is large this thread runs passes back to back until one has little to copy, then hands over: the writer,
//! between two groups, runs the last short passive pass itself (nothing can append meanwhile), and its next
//! transaction starts the WAL over. The stall is that last pass — what was appended during one short pass.

use crate::StorageError;
use rusqlite::Connection;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// When the checkpoint thread hands the WAL's restart to the writer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    /// Past this many WAL pages (4 KiB each, 64 MiB) the WAL should start over. Each start-over costs the writer
    /// one pass, 10–75 ms under load; a WAL four times larger made the passes rarer but longer (p99 137–169 ms
    /// against 90–107, BENCHMARKS.md).
    pub restart_pages: i64,
    /// A pass that copied at most this many pages leaves about as few behind for the writer's pass, whose cost
    /// is mostly the two fsyncs every checkpoint makes (10–75 ms under load, timed; 10–23 ms with nothing to copy).
    pub hand_over_pages: i64,
    /// Past this many pages (256 MiB) a `RESTART` is forced: the stall is accepted over an unbounded file. One
    /// process's hand-over starts its WAL over long before; this is for what it cannot: readers keeping old
    /// snapshots open, or other worker processes appending while this one's writer runs its pass.
    pub force_restart_pages: i64,
    /// Pause between passes while the WAL is small.
    pub poll: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            restart_pages: 16_384,
            hand_over_pages: 1_024,
            force_restart_pages: 65_536,
            poll: Duration::from_millis(100),
        }
    }
}

/// What the checkpoint thread does after a passive pass.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// The WAL is small: pause.
    Sleep,
    /// Large, and the pass had much to copy: another pass at once, to close the gap.
    Again,
    /// Large, and the gap is small: the writer finishes it.
    HandOver,
    /// Far too large: force a `RESTART`.
    Force,
}

/// `log`: WAL pages after the pass; `copied`: pages this pass copied.
fn next(policy: &Policy, log: i64, copied: i64) -> Next {
    if log > policy.force_restart_pages {
        Next::Force
    } else if log <= policy.restart_pages {
        Next::Sleep
    } else if copied <= policy.hand_over_pages {
        Next::HandOver
    } else {
        Next::Again
    }
}

/// After a hand-over at `at` pages: whether a WAL of `log` pages is still the one the writer copied, waiting for
/// its next transaction to start it over (a restarted WAL is shorter; one that kept growing needs another pass).
fn awaiting_restart(policy: &Policy, at: i64, log: i64) -> bool {
    log >= at && log <= at + policy.restart_pages
}

/// The hand-over between the checkpoint thread and the writer.
#[derive(Default)]
pub(crate) struct HandOver {
    wanted: AtomicBool,
    /// Passes the writer ran.
    taken: AtomicU64,
}

impl HandOver {
    /// Called by the writer between groups: runs the last pass if the checkpoint thread asked for it.
    pub(crate) fn run_if_wanted(&self, conn: &Connection) {
        if self.wanted.load(Ordering::Acquire) {
            match checkpoint(conn, "PASSIVE", "writer") {
                Ok(_) => {
                    self.taken.fetch_add(1, Ordering::Relaxed);
                }
                // BUSY: the checkpoint thread stopped waiting and runs a pass itself; it asks again later.
                Err(e) => tracing::debug!(error = %e, "storage.writer_checkpoint_skipped"),
            }
            self.wanted.store(false, Ordering::Release);
        }
    }
}

/// How long the checkpoint thread waits for an idle writer to take the hand-over before running passes again
/// (an idle writer needs none: the passes catch up and its next transaction starts the WAL over).
const HAND_OVER_WAIT: Duration = Duration::from_secs(1);

/// One checkpoint in `mode`: (WAL pages, pages copied into the database file so far).
/// `by`: who runs it, for the log of slow ones.
pub(crate) fn checkpoint(conn: &Connection, mode: &str, by: &str) -> Result<(i64, i64), rusqlite::Error> {
    let began = Instant::now();
    let done = conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| Ok((r.get(1)?, r.get(2)?)));
    if began.elapsed() >= super::writer::SLOW {
        tracing::info!(ms = began.elapsed().as_millis() as u64, mode, by, pages = ?done.as_ref().ok(), "storage.slow_checkpoint");
    }
    done
}

pub(crate) struct Checkpointer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    pub(crate) fn start(path: &Path, policy: Policy, hand_over: Arc<HandOver>) -> Result<Checkpointer, StorageError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(conn, flag, policy, hand_over))
            .map_err(|e| StorageError::Open(format!("cannot start the SQLite checkpoint thread: {e}")))?;
        Ok(Checkpointer { stop, thread: Some(thread) })
    }

    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(conn: Connection, stop: Arc<AtomicBool>, policy: Policy, hand_over: Arc<HandOver>) {
    let mut copied_before = 0;
    let mut handed_over_at: Option<i64> = None;
    while !stop.load(Ordering::Relaxed) {
        if hand_over.wanted.load(Ordering::Acquire) {
            // The writer runs the next pass; wait for it (briefly: it may be idle).
            let asked = Instant::now();
            while hand_over.wanted.load(Ordering::Acquire) && asked.elapsed() < HAND_OVER_WAIT {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            hand_over.wanted.store(false, Ordering::Release);
        }
        let (log, copied) = match checkpoint(&conn, "PASSIVE", "checkpoint thread") {
            Ok(pages) => pages,
            Err(e) => {
                tracing::warn!(error = %e, "storage.checkpoint_failed");
                std::thread::sleep(policy.poll);
                continue;
            }
        };
        // A restarted WAL counts from zero again.
        let this_pass = if copied >= copied_before { copied - copied_before } else { copied };
        copied_before = copied;
        if let Some(at) = handed_over_at {
            // The writer ran the last pass; its next transaction starts the WAL over. Until then the WAL is
            // still long but already copied: handing over again would only stall the writer for nothing. If
            // it does not start over (a reader held an old snapshot) and grows again, ask again.
            if awaiting_restart(&policy, at, log) {
                std::thread::sleep(policy.poll);
                continue;
            }
            handed_over_at = None;
        }
        match next(&policy, log, this_pass) {
            Next::Sleep => std::thread::sleep(policy.poll),
            Next::Again => {}
            Next::HandOver => {
                handed_over_at = Some(log);
                hand_over.wanted.store(true, Ordering::Release);
            }
            Next::Force => {
                tracing::warn!(
                    pages = log,
                    "storage.checkpoint_forced: the WAL kept growing; restarting it holds writes"
                );
                if let Err(e) = checkpoint(&conn, "RESTART", "checkpoint thread") {
                    tracing::warn!(error = %e, pages = log, "storage.checkpoint_restart_failed");
                }
                copied_before = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::SqliteStorage;
    use crate::SpanStore;

    /// The WAL header's checkpoint sequence number: SQLite bumps it each time the WAL starts over.
    fn wal_restarts(db: &Path) -> u32 {
        use std::io::Read;
        let mut header = [0u8; 16];
        let read = std::fs::File::open(format!("{}-wal", db.display())).and_then(|mut f| f.read_exact(&mut header));
        if read.is_err() {
            return 0;
        }
        u32::from_be_bytes([header[12], header[13], header[14], header[15]])
    }

    fn batch(n: usize) -> Vec<langsight_core::span::Span> {
        let session = format!("{n:032x}");
        let spans: Vec<serde_json::Value> = (0..30)
            .map(|i| {
                serde_json::json!({
                    "span_id": format!("{session}-{i}"), "session_id": session, "server_name": "github",
                    "tool_name": "search_issues", "started_at": "2026-12-01T10:00:00Z", "ended_at": "2026-12-01T10:00:01Z",
                    "status": "success", "output_result": "x".repeat(400),
                })
            })
            .collect();
        langsight_core::span::decode_batch(serde_json::to_string(&spans).expect("json").as_bytes())
            .expect("valid batch")
    }

    /// Under sustained writes the WAL starts over again and again, and the writer never once waits for the
    /// write lock: no checkpoint holds it (a `RESTART` would, for as long as it copies and fsyncs).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_starts_over_under_sustained_writes_and_the_writer_never_waits_for_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("c.db");
        // A WAL this small is past its restart size after a few commits, so passes hand over instead of catching up
        // by themselves in a pause between two commits (which a fast disk made happen every time at 256 pages).
        let policy = Policy {
            restart_pages: 16,
            hand_over_pages: 64,
            force_restart_pages: 100_000,
            poll: Duration::from_millis(5),
        };
        let hand_over = Arc::new(HandOver::default());
        let store = Arc::new(SqliteStorage::open_with(&db, policy, hand_over.clone()).expect("open"));
        let waits_before = crate::sqlite::writer::lock_waits();
        let stop = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for w in 0..8 {
            let (store, stop) = (store.clone(), stop.clone());
            writers.push(tokio::spawn(async move {
                let mut n = w * 1_000_000;
                while !stop.load(Ordering::Relaxed) {
                    store.ingest(batch(n)).await.expect("ingest");
                    n += 1;
                }
            }));
        }
        // Until the WAL has started over three times and the writer ran a last pass (a bounded wait: at most 60 s
        // of writes).
        let began = Instant::now();
        while (wal_restarts(&db) < 3 || hand_over.taken.load(Ordering::Relaxed) == 0)
            && began.elapsed() < Duration::from_secs(60)
            && !writers.iter().any(|w| w.is_finished())
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.await.expect("writer task");
        }
        assert!(wal_restarts(&db) >= 3, "the WAL never started over three times: {}", wal_restarts(&db));
        assert_eq!(crate::sqlite::writer::lock_waits() - waits_before, 0, "the writer waited for the write lock");
        assert!(hand_over.taken.load(Ordering::Relaxed) > 0, "the writer never ran the last pass of a large WAL");
    }

    #[test]
    fn a_large_wal_is_handed_to_the_writer_only_once_a_pass_had_little_to_copy() {
        let p = Policy::default();
        assert_eq!(next(&p, p.restart_pages, 0), Next::Sleep, "a small WAL is left to passive passes");
        assert_eq!(next(&p, p.restart_pages + 1, p.hand_over_pages + 1), Next::Again, "a big gap: close it first");
        assert_eq!(next(&p, p.restart_pages + 1, p.hand_over_pages), Next::HandOver, "a small gap: the writer ends it");
        assert_eq!(next(&p, p.force_restart_pages + 1, 0), Next::Force, "a runaway WAL restarts anyway");
        let at = p.restart_pages + 10;
        assert!(awaiting_restart(&p, at, at), "copied by the writer, not yet restarted: no second hand-over");
        assert!(!awaiting_restart(&p, at, 300), "restarted: back to the usual rule");
        assert!(!awaiting_restart(&p, at, at + p.restart_pages + 1), "never restarted and grew again: ask again");
    }
}
