//! The single writer: group commit.
//!
//! SQLite allows one writer at a time, and the cost of a durable commit is dominated by its fsync. So every
//! write of the process goes through one thread that owns the write connection: it takes the first queued
//! job, drains whatever else queued meanwhile, runs them all in one `BEGIN IMMEDIATE` transaction (each in
//! its own savepoint, so one failing job does not undo the others), commits once, and only then answers
//! every job. Under load a commit carries many requests; idle, a single request commits alone without
//! waiting for company. A caller is answered only after the commit that holds its data is on disk.
//!
//! Durability is split from the commit: the connection runs with `synchronous=NORMAL` (no fsync inside
//! COMMIT) and a second thread, the syncer, fsyncs the WAL file after each commit and only then answers
//! that commit's callers. While the syncer waits on the disk the writer already runs the next group, so
//! the fsync no longer serialises with the inserts; consecutive commits that queue up share one fsync.

use crate::StorageError;
use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use tokio::sync::{mpsc, oneshot};

/// A committed group on its way to the syncer: its callers and whether the commit itself succeeded.
struct Committed {
    delivers: Vec<Deliver>,
    commit: Result<(), StorageError>,
}

/// Called after the group's commit with its result.
pub(crate) type Deliver = Box<dyn FnOnce(Result<(), &StorageError>) + Send>;
/// A unit of work: runs inside the group's transaction and says whether to keep its changes.
pub(crate) type Work = Box<dyn FnOnce(&Connection) -> (bool, Deliver) + Send>;

/// Most jobs in one transaction: bounds the latency a commit adds to the first job in it.
const MAX_JOBS_PER_COMMIT: usize = 256;

#[derive(Clone)]
pub(crate) struct Writer {
    queue: mpsc::Sender<Work>,
}

impl Writer {
    /// Starts the writer thread; it ends when every `Writer` handle is dropped and the queue is drained.
    pub(crate) fn start(
        conn: Connection,
        wal_path: PathBuf,
    ) -> Result<(Writer, std::thread::JoinHandle<()>), StorageError> {
        let (queue, rx) = mpsc::channel::<Work>(4096);
        let (synced_tx, synced_rx) = std_mpsc::channel::<Committed>();
        let syncer = std::thread::Builder::new()
            .name("sqlite-syncer".into())
            .spawn(move || sync_loop(wal_path, synced_rx))
            .map_err(|e| StorageError::Open(format!("cannot start the SQLite syncer thread: {e}")))?;
        let handle = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                run(conn, rx, synced_tx);
                // The writer's sender is gone: the syncer drains what is left, then ends.
                let _ = syncer.join();
            })
            .map_err(|e| StorageError::Open(format!("cannot start the SQLite writer thread: {e}")))?;
        Ok((Writer { queue }, handle))
    }

    /// Runs `f` in the next group transaction and returns its result once that transaction committed.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StorageError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let work: Work = Box::new(move |conn| {
            let result = f(conn);
            let keep = result.is_ok();
            let deliver: Deliver = Box::new(move |commit| {
                let answer = match (result, commit) {
                    (Ok(v), Ok(())) => Ok(v),
                    (Err(e), _) => Err(e),
                    (Ok(_), Err(e)) => Err(StorageError::Unavailable(format!("commit failed: {e}"))),
                };
                let _ = tx.send(answer);
            });
            (keep, deliver)
        });
        self.queue.send(work).await.map_err(|_| StorageError::Unavailable("storage is shutting down".into()))?;
        rx.await.map_err(|_| StorageError::Unavailable("the storage writer stopped".into()))?
    }
}

fn run(mut conn: Connection, mut rx: mpsc::Receiver<Work>, synced: std_mpsc::Sender<Committed>) {
    let mut batch: Vec<Work> = Vec::with_capacity(MAX_JOBS_PER_COMMIT);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_JOBS_PER_COMMIT {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        let committed = commit_group(&mut conn, &mut batch);
        if let Err(std_mpsc::SendError(c)) = synced.send(committed) {
            // The syncer is gone (it never exits first); answer without the durability promise rather than hang.
            for d in c.delivers {
                d(Err(&StorageError::Unavailable("the storage syncer stopped".into())));
            }
        }
    }
    tracing::debug!("storage.writer.stopped");
}

fn commit_group(conn: &mut Connection, batch: &mut Vec<Work>) -> Committed {
    let mut delivers: Vec<Deliver> = Vec::with_capacity(batch.len());
    let result = (|| -> Result<(), StorageError> {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        for work in batch.drain(..) {
            conn.execute_batch("SAVEPOINT job")?;
            let (keep, deliver) = work(conn);
            delivers.push(deliver);
            if keep {
                conn.execute_batch("RELEASE job")?;
            } else {
                conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
            }
        }
        // The group's analytics rollups, merged once per row for all its jobs.
        super::rollups::flush_pending(conn)?;
        conn.execute_batch("COMMIT")?;
        Ok(())
    })();
    if let Err(e) = &result {
        super::rollups::discard_pending();
        tracing::error!(error = %e, "storage.commit_failed");
        let _ = conn.execute_batch("ROLLBACK");
    }
    // Jobs never run (BEGIN failed) are dropped with the batch: their callers see the reply channel close,
    // an error, never a false success.
    batch.clear();
    Committed { delivers, commit: result }
}

/// fsyncs the WAL for every committed group, then answers its callers. Groups that queued while an fsync
/// ran are covered by the next single fsync.
fn sync_loop(wal_path: PathBuf, rx: std_mpsc::Receiver<Committed>) {
    let mut wal: Option<std::fs::File> = None;
    while let Ok(first) = rx.recv() {
        let mut groups = vec![first];
        while let Ok(more) = rx.try_recv() {
            groups.push(more);
        }
        let needs_sync = groups.iter().any(|g| g.commit.is_ok());
        let synced: Result<(), StorageError> = if needs_sync {
            if wal.is_none() {
                wal = std::fs::File::open(&wal_path).ok();
            }
            match wal.as_ref().map(|f| f.sync_data()) {
                Some(Ok(())) => Ok(()),
                Some(Err(e)) => {
                    wal = None;
                    Err(StorageError::Unavailable(format!("fsync of the WAL failed: {e}")))
                }
                None => Err(StorageError::Unavailable(format!("cannot open {} to fsync it", wal_path.display()))),
            }
        } else {
            Ok(())
        };
        if let Err(e) = &synced {
            tracing::error!(error = %e, "storage.sync_failed");
        }
        for g in groups {
            let outcome = match (&g.commit, &synced) {
                (Err(e), _) => Err(e),
                (Ok(()), Err(e)) => Err(e),
                (Ok(()), Ok(())) => Ok(()),
            };
            for d in g.delivers {
                d(outcome);
            }
        }
    }
}
