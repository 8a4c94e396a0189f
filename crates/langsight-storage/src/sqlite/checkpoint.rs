//! Background WAL checkpoints.
//!
//! A commit appends to the WAL; a checkpoint copies WAL pages back into the database file and fsyncs it.
//! SQLite runs checkpoints inside the committing connection by default, which would stall the group-commit
//! writer (and every request waiting on it) several times a second under load. So the writer's automatic
//! checkpoints are off, and this thread checkpoints in `PASSIVE` mode, which never blocks the writer or
//! readers: ingest latency no longer carries the cost of copying pages.

use crate::StorageError;
use rusqlite::Connection;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Past this many WAL pages (4 KiB each) a `RESTART` checkpoint briefly holds new writes so the WAL can
/// start over. Under sustained load passive checkpoints rarely catch the WAL's very end, and without this
/// it would grow without bound.
const RESTART_PAGES: i64 = 16_384;
/// A `RESTART` holds the writer while it copies what the passive checkpoint has not: it is run only when that
/// remainder is this small (a few milliseconds of copying), so it never stalls commits for long…
const RESTART_GAP_PAGES: i64 = 512;
/// …unless the WAL keeps outgrowing the passive checkpoints: past this size it restarts whatever the remainder.
const FORCE_RESTART_PAGES: i64 = 4 * RESTART_PAGES;
const POLL: Duration = Duration::from_millis(100);

pub(crate) struct Checkpointer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    pub(crate) fn start(path: &Path) -> Result<Checkpointer, StorageError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(conn, flag))
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

fn run(conn: Connection, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(POLL);
        let checkpoint = |mode: &str| -> Result<(i64, i64), rusqlite::Error> {
            conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| Ok((r.get(1)?, r.get(2)?)))
        };
        match checkpoint("PASSIVE") {
            Ok((log, copied)) if restart_due(log, copied) => {
                if let Err(e) = checkpoint("RESTART") {
                    tracing::warn!(error = %e, log, "storage.checkpoint_restart_failed");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "storage.checkpoint_failed"),
        }
    }
}

/// Whether to restart the WAL after a passive checkpoint that left `log` frames of which `copied` are in the
/// database file.
fn restart_due(log: i64, copied: i64) -> bool {
    (log > RESTART_PAGES && log - copied <= RESTART_GAP_PAGES) || log > FORCE_RESTART_PAGES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_waits_for_the_passive_checkpoint_to_catch_up_unless_the_wal_runs_away() {
        assert!(!restart_due(RESTART_PAGES, RESTART_PAGES), "a small WAL is left to passive checkpoints");
        assert!(restart_due(RESTART_PAGES + 1, RESTART_PAGES + 1 - RESTART_GAP_PAGES), "caught up: restart");
        assert!(!restart_due(RESTART_PAGES + 1, 0), "a big remainder would hold the writer: not yet");
        assert!(restart_due(FORCE_RESTART_PAGES + 1, 0), "a runaway WAL restarts anyway");
    }
}
