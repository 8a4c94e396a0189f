//! The single writer: group commit.
//!
//! SQLite allows one writer at a time, and the cost of a durable commit is dominated by its fsync. So every
//! write of the process goes through one thread that owns the write connection: it takes the first queued
//! job, drains whatever else queued meanwhile, runs them all in one `BEGIN IMMEDIATE` transaction (each in
//! its own savepoint, so one failing job does not undo the others), commits once, and only then answers
//! every job. Under load a commit carries many requests; idle, a single request commits alone without
//! waiting for company. A caller is answered only after the commit that holds its data returned.

use crate::StorageError;
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

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
    pub(crate) fn start(conn: Connection) -> Result<(Writer, std::thread::JoinHandle<()>), StorageError> {
        let (queue, rx) = mpsc::channel::<Work>(4096);
        let handle = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, rx))
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
        self.queue
            .send(work)
            .await
            .map_err(|_| StorageError::Unavailable("storage is shutting down".into()))?;
        rx.await.map_err(|_| StorageError::Unavailable("the storage writer stopped".into()))?
    }
}

fn run(mut conn: Connection, mut rx: mpsc::Receiver<Work>) {
    let mut batch: Vec<Work> = Vec::with_capacity(MAX_JOBS_PER_COMMIT);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_JOBS_PER_COMMIT {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        commit_group(&mut conn, &mut batch);
    }
    tracing::debug!("storage.writer.stopped");
}

fn commit_group(conn: &mut Connection, batch: &mut Vec<Work>) {
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
        conn.execute_batch("COMMIT")?;
        Ok(())
    })();
    if let Err(e) = &result {
        tracing::error!(error = %e, "storage.commit_failed");
        let _ = conn.execute_batch("ROLLBACK");
    }
    // Jobs never run (BEGIN failed) are dropped with the batch: their callers see "writer stopped"-like
    // errors through the dropped reply channel, never a false success.
    batch.clear();
    let commit = result.as_ref().map(|_| ());
    for d in delivers {
        d(commit);
    }
}
