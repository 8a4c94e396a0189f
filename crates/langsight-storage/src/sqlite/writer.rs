//! The single writer: group commit.
//!
//! SQLite allows one writer at a time, and the cost of a durable commit is dominated by its fsync. So every
//! write of the process goes through one thread that owns the write connection: it takes the first queued
//! job, drains whatever else queued meanwhile, runs them all in one `BEGIN IMMEDIATE` transaction, commits
//! once, and only then answers every job. Under load a commit carries many requests; idle, a single request
//! commits alone without waiting for company. A caller is answered only after the commit that holds its data
//! is on disk.
//!
//! One failing job must not undo the others. A job that can run twice ([`Writer::write_rerunnable`], span
//! ingest) runs straight in the transaction; if one of them fails, the group's transaction is rolled back and
//! each is run again in its own savepoint. Every other job runs in its own savepoint from the start. A
//! savepoint is not free: SQLite copies each page a job changes that existed before the savepoint into a
//! sub-journal, once per job (docs/decisions.md).
//!
//! Durability is split from the commit: the connection runs with `synchronous=NORMAL` (no fsync inside
//! COMMIT) and a second thread, the syncer, fsyncs the WAL file after each commit and only then answers
//! that commit's callers. While the syncer waits on the disk the writer already runs the next group, so
//! the fsync no longer serialises with the inserts; consecutive commits that queue up share one fsync.

use super::checkpoint::HandOver;
use crate::StorageError;
use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
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

/// A unit of work that can run again if its group's first attempt is rolled back.
trait Rerun: Send {
    /// Runs the job inside the group's transaction; false = its changes must not be kept.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Its caller's answer, given the group's commit result, from the job's last run.
    fn finish(self: Box<Self>) -> Deliver;
}

enum Job {
    Once(Work),
    Rerun(Box<dyn Rerun>),
}

struct Rerunnable<F, T> {
    f: F,
    result: Option<Result<T, StorageError>>,
    reply: oneshot::Sender<Result<T, StorageError>>,
}

impl<F, T> Rerun for Rerunnable<F, T>
where
    F: FnMut(&Connection) -> Result<T, StorageError> + Send,
    T: Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let result = (self.f)(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>) -> Deliver {
        let Rerunnable { result, reply, .. } = *self;
        let result = result.unwrap_or_else(|| Err(StorageError::Unavailable("the write did not run".into())));
        Box::new(move |commit| {
            let _ = reply.send(answer(result, commit));
        })
    }
}

/// A job's own result combined with its group's commit.
fn answer<T>(result: Result<T, StorageError>, commit: Result<(), &StorageError>) -> Result<T, StorageError> {
    match (result, commit) {
        (Ok(v), Ok(())) => Ok(v),
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(StorageError::Unavailable(format!("commit failed: {e}"))),
    }
}

/// A group commit or an fsync slower than this is logged (it holds every request of the group).
pub(crate) const SLOW: Duration = Duration::from_millis(100);

/// Most jobs in one transaction: bounds the latency a commit adds to the first job in it.
const MAX_JOBS_PER_COMMIT: usize = 256;

#[derive(Clone)]
pub(crate) struct Writer {
    queue: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread; it ends when every `Writer` handle is dropped and the queue is drained.
    pub(crate) fn start(
        conn: Connection,
        wal_path: PathBuf,
        hand_over: Arc<HandOver>,
    ) -> Result<(Writer, std::thread::JoinHandle<()>), StorageError> {
        conn.busy_handler(Some(wait_for_lock))?;
        let (queue, rx) = mpsc::channel::<Job>(4096);
        let (synced_tx, synced_rx) = std_mpsc::channel::<Committed>();
        let syncer = std::thread::Builder::new()
            .name("sqlite-syncer".into())
            .spawn(move || sync_loop(wal_path, synced_rx))
            .map_err(|e| StorageError::Open(format!("cannot start the SQLite syncer thread: {e}")))?;
        let handle = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                run(conn, rx, synced_tx, &hand_over);
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
                let _ = tx.send(answer(result, commit));
            });
            (keep, deliver)
        });
        self.submit(Job::Once(work), rx).await
    }

    /// Like [`Writer::write`] for a job that may run twice: first with the rest of its group, without a savepoint
    /// of its own, and again in its own savepoint if a job beside it failed. `f` must leave nothing behind but its
    /// database changes and its result (the rollups it defers are discarded with a rolled-back attempt).
    pub(crate) async fn write_rerunnable<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T, StorageError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        self.submit(Job::Rerun(Box::new(Rerunnable { f, result: None, reply })), rx).await
    }

    async fn submit<T>(&self, job: Job, rx: oneshot::Receiver<Result<T, StorageError>>) -> Result<T, StorageError> {
        self.queue.send(job).await.map_err(|_| StorageError::Unavailable("storage is shutting down".into()))?;
        rx.await.map_err(|_| StorageError::Unavailable("the storage writer stopped".into()))?
    }
}

/// Times the writer found the write lock taken: by another worker process on the same file, or by a forced
/// `RESTART` checkpoint. One process's own checkpoints never take it (checkpoint.rs).
static LOCK_WAITS: AtomicU64 = AtomicU64::new(0);

#[cfg(test)]
pub(crate) fn lock_waits() -> u64 {
    LOCK_WAITS.load(Ordering::Relaxed)
}

/// The writer's busy handler: waits up to 5 s for the write lock, counting each wait.
fn wait_for_lock(attempt: i32) -> bool {
    LOCK_WAITS.fetch_add(1, Ordering::Relaxed);
    if attempt >= 1_000 {
        return false;
    }
    std::thread::sleep(Duration::from_millis(5));
    true
}

fn run(mut conn: Connection, mut rx: mpsc::Receiver<Job>, synced: std_mpsc::Sender<Committed>, hand_over: &HandOver) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_JOBS_PER_COMMIT);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_JOBS_PER_COMMIT {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        let (began, jobs) = (Instant::now(), batch.len());
        let committed = commit_group(&mut conn, &mut batch);
        if began.elapsed() >= SLOW {
            tracing::warn!(ms = began.elapsed().as_millis() as u64, jobs, "storage.slow_commit");
        }
        if let Err(std_mpsc::SendError(c)) = synced.send(committed) {
            // The syncer is gone (it never exits first); answer without the durability promise rather than hang.
            for d in c.delivers {
                d(Err(&StorageError::Unavailable("the storage syncer stopped".into())));
            }
        }
        hand_over.run_if_wanted(&conn);
    }
    tracing::debug!("storage.writer.stopped");
}

/// Runs `job` in its own savepoint and keeps its changes only if it says so.
fn in_savepoint(conn: &Connection, job: impl FnOnce(&Connection) -> bool) -> Result<(), StorageError> {
    conn.execute_batch("SAVEPOINT job")?;
    if job(conn) {
        conn.execute_batch("RELEASE job")?;
    } else {
        conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
    }
    Ok(())
}

fn commit_group(conn: &mut Connection, batch: &mut Vec<Job>) -> Committed {
    let mut delivers: Vec<Deliver> = Vec::with_capacity(batch.len());
    let mut again: Vec<Box<dyn Rerun>> = Vec::new();
    let mut once: Vec<Work> = Vec::new();
    for job in batch.drain(..) {
        match job {
            Job::Once(w) => once.push(w),
            Job::Rerun(r) => again.push(r),
        }
    }
    let result = (|| -> Result<(), StorageError> {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        // The rerunnable jobs first, straight in the transaction; `all` stops at the first failure.
        if !again.iter_mut().all(|job| job.run(conn)) {
            conn.execute_batch("ROLLBACK")?;
            super::rollups::discard_pending();
            tracing::debug!(
                jobs = again.len(),
                "storage.group_rerun: a job failed; each runs again in its own savepoint"
            );
            conn.execute_batch("BEGIN IMMEDIATE")?;
            for job in again.iter_mut() {
                in_savepoint(conn, |c| job.run(c))?;
            }
        }
        delivers.extend(again.drain(..).map(|job| job.finish()));
        for work in once.drain(..) {
            in_savepoint(conn, |c| {
                let (keep, deliver) = work(c);
                delivers.push(deliver);
                keep
            })?;
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
    // Jobs never run or never finished (BEGIN failed) are dropped here: their callers see the reply channel
    // close, an error, never a false success.
    drop((again, once));
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
            let began = Instant::now();
            let result = wal.as_ref().map(|f| f.sync_data());
            if began.elapsed() >= SLOW {
                tracing::warn!(ms = began.elapsed().as_millis() as u64, groups = groups.len(), "storage.slow_fsync");
            }
            match result {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn started(dir: &std::path::Path) -> Writer {
        let path = dir.join("w.db");
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (x INTEGER NOT NULL)").expect("schema");
        let (writer, _thread) =
            Writer::start(conn, dir.join("w.db-wal"), Arc::new(HandOver::default())).expect("writer");
        writer
    }

    fn rows(dir: &std::path::Path) -> Vec<i64> {
        let conn = Connection::open(dir.join("w.db")).expect("open");
        let mut stmt = conn.prepare("SELECT x FROM t ORDER BY x").expect("select");
        let rows = stmt.query_map([], |r| r.get(0)).expect("rows");
        rows.map(|r| r.expect("row")).collect()
    }

    /// Holds the writer until `n` more jobs are queued behind the blocking one, so they form one group.
    async fn in_one_group(writer: &Writer, n: usize, release: std::sync::mpsc::Sender<()>) {
        while writer.queue.max_capacity() - writer.queue.capacity() < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        release.send(()).expect("release the blocker");
    }

    /// A rerunnable job runs without a savepoint; when one of its group fails, the group is rolled back and
    /// each is run again in its own savepoint: the failing job's writes are undone, nobody else's.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_job_undoes_only_its_own_writes_when_the_group_ran_without_savepoints() {
        let dir = tempfile::tempdir().expect("temp dir");
        let writer = started(dir.path());
        for round in 0..2 {
            let fail = round == 1;
            let (release, wait) = std::sync::mpsc::channel::<()>();
            let (running, started) = std::sync::mpsc::channel::<()>();
            let blocker = tokio::spawn({
                let w = writer.clone();
                async move {
                    w.write(move |_| {
                        let _ = running.send(());
                        wait.recv().map_err(|_| StorageError::Backend("the test ended".into()))
                    })
                    .await
                }
            });
            while started.try_recv().is_err() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let runs: Arc<Vec<AtomicUsize>> = Arc::new((0..3).map(|_| AtomicUsize::new(0)).collect());
            let mut jobs = Vec::new();
            for i in 0..3usize {
                let (w, runs) = (writer.clone(), runs.clone());
                let x = (round * 10 + i) as i64;
                jobs.push(tokio::spawn(async move {
                    w.write_rerunnable(move |conn| {
                        runs[i].fetch_add(1, Ordering::SeqCst);
                        conn.execute("INSERT INTO t (x) VALUES (?1)", [x])?;
                        if fail && i == 1 {
                            return Err(StorageError::Backend("this job fails after writing".into()));
                        }
                        Ok(x)
                    })
                    .await
                }));
                // In order: the failing job is second, so the first has run when the failure is seen.
                while writer.queue.max_capacity() - writer.queue.capacity() < i + 1 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            let once = tokio::spawn({
                let w = writer.clone();
                let x = (round * 10 + 3) as i64;
                async move { w.write(move |conn| Ok(conn.execute("INSERT INTO t (x) VALUES (?1)", [x])?)).await }
            });
            in_one_group(&writer, 4, release).await;
            blocker.await.expect("blocker").expect("blocker ok");
            let mut results = Vec::new();
            for j in jobs {
                results.push(j.await.expect("job"));
            }
            once.await.expect("once").expect("the savepointed job beside them is kept");
            let runs: Vec<usize> = runs.iter().map(|r| r.load(Ordering::SeqCst)).collect();
            if fail {
                assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
                assert!(results[1].is_err(), "the failing job is told so");
                assert_eq!(
                    runs,
                    vec![2, 2, 1],
                    "first attempt stops at the failure; each then runs in its own savepoint"
                );
            } else {
                assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
                assert_eq!(runs, vec![1, 1, 1], "nothing failed: each ran once, in the group's transaction");
            }
        }
        assert_eq!(rows(dir.path()), vec![0, 1, 2, 3, 10, 12, 13], "only the failing job's row is missing");
    }
}
