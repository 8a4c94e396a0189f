//! The durable local spool of `dual` mode: where spans wait for ClickHouse.
//!
//! Every accepted group's spans are appended to this process's open *segment* (RowBinary, fsynced before the
//! group commits), and a flusher sends the whole segment to ClickHouse as one insert every `flush_every` or
//! once it holds [`FLUSH_BYTES`]: a few large inserts a second instead of one per group, which is what
//! ClickHouse is built for (each insert is a part to write and merge; one per group kept 18.16 at a full core).
//! A read of spans first flushes what this process has accepted ([`Spool::settle`]), so a 202 is followed by
//! reads that see it. While ClickHouse cannot take a segment it stays in the directory and a replayer sends it
//! when ClickHouse answers again; only a full spool refuses (503 with Retry-After).
//!
//! Files are claimed by renaming before they are sent, so several workers sharing the directory never send one
//! file twice; a claim or an open segment left by a worker that died is taken over after a minute (a live
//! worker's open segment is never that old: it is closed at every flush, failed or not). A crash between an
//! insert and the file's removal sends those rows again: a duplicate raw span, as an SDK's retry makes; the
//! rollups are folded in PostgreSQL at ingest, once.

use super::ClickHouse;
use crate::StorageError;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A segment holding this much is flushed at once instead of at the next tick: it bounds one insert's size
/// (ClickHouse reads the body into blocks as it comes; our side reads the file back whole).
pub const FLUSH_BYTES: u64 = 16 << 20;

/// A claim or an open segment whose file has not changed for this long belongs to a worker that died.
const STALE: Duration = Duration::from_secs(60);

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    seq: AtomicU64,
    /// The open segment (none until the first append after a flush).
    open: Mutex<Option<Segment>>,
    /// Groups appended, and the count every one of which has been through a flush: a read waits for the
    /// flush covering what was appended before it began.
    appended: AtomicU64,
    flushed: AtomicU64,
    /// One flush at a time; readers arriving during one wait for it and then find their groups covered.
    flushing: tokio::sync::Mutex<()>,
    /// Wakes the flusher early (a segment reached [`FLUSH_BYTES`]).
    full: tokio::sync::Notify,
    /// Whether the last flush failed (logs the first failure of an outage as a warning, the rest quietly).
    failing: AtomicBool,
    /// How long a claim or an open segment must lie untouched before it counts as a dead worker's.
    stale_after: Duration,
}

/// The file a process appends to between flushes: `open.<table>.<pid>.<micros>.<n>.rowbinary`, starting with
/// the column list and a newline, then rows in ClickHouse's RowBinary.
struct Segment {
    file: std::fs::File,
    path: PathBuf,
    len: u64,
}

impl Spool {
    /// The spool of ClickHouse database `database`: its own directory under `root` (`LANGSIGHT_SPOOL_DIR`), so
    /// deployments sharing a root never send each other's rows to the wrong database. Files a build before
    /// per-database directories left in `root` (JSON rows from an outage) are taken into this one.
    pub fn for_database(root: &Path, database: &str, max_bytes: u64) -> Result<Spool, StorageError> {
        let spool = Spool::new(root, max_bytes).and_then(|_| Spool::new(&root.join(database), max_bytes))?;
        for entry in std::fs::read_dir(root).into_iter().flatten().filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".jsonl") && !name.starts_with('.') {
                let _ = std::fs::rename(entry.path(), spool.dir.join(name.trim_start_matches("claimed.")));
            }
        }
        Ok(spool)
    }

    pub fn new(dir: &Path, max_bytes: u64) -> Result<Spool, StorageError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StorageError::Open(format!(
                "cannot create the ClickHouse spool directory {} (LANGSIGHT_SPOOL_DIR): {e}",
                dir.display()
            ))
        })?;
        // Spooled batches are raw spans with their payloads: owner-only, like the SQLite file.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
                StorageError::Open(format!(
                    "cannot make the ClickHouse spool directory {} (LANGSIGHT_SPOOL_DIR) owner-only: {e}",
                    dir.display()
                ))
            })?;
        }
        Ok(Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            seq: AtomicU64::new(0),
            open: Mutex::new(None),
            appended: AtomicU64::new(0),
            flushed: AtomicU64::new(0),
            flushing: tokio::sync::Mutex::new(()),
            full: tokio::sync::Notify::new(),
            failing: AtomicBool::new(false),
            stale_after: STALE,
        })
    }

    /// The same spool, taking other workers' files for dead after `after` instead of a minute (tests).
    pub fn with_stale_after(mut self, after: Duration) -> Spool {
        self.stale_after = after;
        self
    }

    /// Appends rows already encoded as RowBinary for `columns` of `table` to the open segment and fsyncs them:
    /// once this returns they are durable and will reach ClickHouse. Refuses when the spool is full.
    pub async fn append_rows(
        self: &Arc<Self>,
        table: &'static str,
        columns: &'static str,
        rows: Vec<u8>,
    ) -> Result<(), StorageError> {
        let spool = self.clone();
        let len = tokio::task::spawn_blocking(move || spool.append_blocking(table, columns, &rows))
            .await
            .map_err(|e| StorageError::Backend(format!("spool write task failed: {e}")))??;
        if len >= FLUSH_BYTES {
            self.full.notify_one();
        }
        Ok(())
    }

    fn append_blocking(&self, table: &str, columns: &str, rows: &[u8]) -> Result<u64, StorageError> {
        let io = |e: std::io::Error| StorageError::Unavailable(format!("cannot write the ClickHouse spool: {e}"));
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if self.pending_bytes() + rows.len() as u64 > self.max_bytes {
            return Err(StorageError::Unavailable(
                "ClickHouse is unreachable and the local spool is full (LANGSIGHT_SPOOL_MAX_MB)".into(),
            ));
        }
        if open.is_none() {
            let n = self.seq.fetch_add(1, Ordering::Relaxed);
            let path = self.dir.join(format!(
                "open.{table}.{}.{}.{n}.rowbinary",
                std::process::id(),
                langsight_core::time::now_micros()
            ));
            let mut file = create_owner_only(&path).map_err(io)?;
            file.write_all(format!("{columns}\n").as_bytes()).map_err(io)?;
            // The new name must survive a crash as well as the rows written under it.
            std::fs::File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io)?;
            *open = Some(Segment { file, path, len: columns.len() as u64 + 1 });
        }
        let Some(segment) = open.as_mut() else { unreachable!("opened above") };
        let written = segment.file.write_all(rows).and_then(|()| segment.file.sync_data());
        if let Err(e) = written {
            // A partial row would make the whole segment unreadable to ClickHouse: cut it off, or give the
            // segment up (it goes to the replayer as it was before this append) when even that fails.
            if segment.file.set_len(segment.len).and_then(|()| segment.file.sync_data()).is_err() {
                *open = None;
            }
            return Err(io(e));
        }
        segment.len += rows.len() as u64;
        self.appended.fetch_add(1, Ordering::SeqCst);
        Ok(segment.len)
    }

    /// Makes every group appended before this call readable in ClickHouse (flushing the open segment if a
    /// flush has not already covered them). A failed flush is not the reader's error: the rows stay spooled
    /// and the read shows what ClickHouse has.
    pub async fn settle(&self, ch: &ClickHouse) {
        let target = self.appended.load(Ordering::SeqCst);
        if self.flushed.load(Ordering::SeqCst) >= target {
            return;
        }
        let _one = self.flushing.lock().await;
        if self.flushed.load(Ordering::SeqCst) >= target {
            return;
        }
        if let Err(e) = self.flush_locked(ch).await {
            tracing::debug!(error = %e, "clickhouse.spool_flush_failed before a read");
        }
    }

    /// Sends the open segment to ClickHouse as one insert.
    pub async fn flush(&self, ch: &ClickHouse) -> Result<(), StorageError> {
        let _one = self.flushing.lock().await;
        self.flush_locked(ch).await
    }

    async fn flush_locked(&self, ch: &ClickHouse) -> Result<(), StorageError> {
        let (segment, upto) = {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            (open.take(), self.appended.load(Ordering::SeqCst))
        };
        let result = match segment {
            None => Ok(()),
            Some(segment) => {
                drop(segment.file);
                let name = file_name(&segment.path);
                let claimed = self.dir.join(format!("claimed.{}", name.trim_start_matches("open.")));
                // Only a worker that took this segment for dead's (it was a minute old) could have it now.
                match std::fs::rename(&segment.path, &claimed) {
                    Ok(()) => self.send(ch, &claimed).await,
                    Err(_) => Ok(()),
                }
            }
        };
        self.flushed.fetch_max(upto, Ordering::SeqCst);
        match &result {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("clickhouse.spool_flushing_again");
                }
            }
            Err(e) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "clickhouse.unreachable: accepted spans wait in the spool");
                }
            }
        }
        result
    }

    /// Flushes every `every`, or at once when a segment fills, until the process ends.
    pub fn spawn_flusher(self: Arc<Self>, ch: Arc<ClickHouse>, every: Duration) {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = self.full.notified() => {}
                }
                let _ = self.flush(&ch).await;
            }
        });
    }

    /// Bytes waiting in the spool.
    pub fn pending_bytes(&self) -> u64 {
        std::fs::read_dir(&self.dir)
            .map(|d| d.filter_map(Result::ok).filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
            .unwrap_or(0)
    }

    /// Sends every spooled file to ClickHouse (oldest first); stops at the first failure. Spooled files are
    /// closed segments (RowBinary) and, from builds before segments, JSON rows (`.jsonl`).
    pub async fn replay(&self, ch: &ClickHouse) -> Result<usize, StorageError> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        let mut sent = 0;
        for path in files {
            let name = file_name(&path);
            if name.starts_with('.') {
                continue;
            }
            // A claim or an open segment is another worker's until it has been left alone for a minute.
            let left = name.starts_with("claimed.") || name.starts_with("open.");
            if left && !is_stale(&path, self.stale_after) {
                continue;
            }
            let claimed =
                self.dir.join(format!("claimed.{}", name.trim_start_matches("claimed.").trim_start_matches("open.")));
            if std::fs::rename(&path, &claimed).is_err() {
                continue; // another worker took it
            }
            self.send(ch, &claimed).await?;
            sent += 1;
        }
        Ok(sent)
    }

    /// Inserts one claimed file and removes it; on failure gives it back (unclaimed) for the next round.
    async fn send(&self, ch: &ClickHouse, claimed: &Path) -> Result<(), StorageError> {
        let name = file_name(claimed);
        let rest = name.trim_start_matches("claimed.");
        let table = rest.split('.').next().unwrap_or_default().to_string();
        // The claim is fresh from now on: rename keeps the file's old time, which would read as a dead
        // worker's claim to the others at once.
        let touched = std::fs::File::options()
            .write(true)
            .open(claimed)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
        let body = touched.and_then(|()| std::fs::read(claimed));
        let inserted = match body {
            Err(e) => Err(StorageError::Unavailable(format!("cannot read the spooled file {name}: {e}"))),
            Ok(body) if rest.ends_with(".rowbinary") => match body.iter().position(|&b| b == b'\n') {
                Some(at) => {
                    let columns = String::from_utf8_lossy(&body[..at]).into_owned();
                    if columns.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ',' | ' ')) {
                        ch.insert_row_binary(&table, &columns, body[at + 1..].to_vec()).await
                    } else {
                        Err(StorageError::Backend(format!("spooled file {name} has a bad column list")))
                    }
                }
                None => Err(StorageError::Backend(format!("spooled file {name} has no column list"))),
            },
            Ok(body) => ch.insert_raw(&table, String::from_utf8_lossy(&body).into_owned()).await,
        };
        match inserted {
            Ok(()) => {
                let _ = std::fs::remove_file(claimed);
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::rename(claimed, self.dir.join(rest));
                Err(e)
            }
        }
    }

    /// Replays every `every` until the process ends.
    pub fn spawn_replayer(self: Arc<Self>, ch: Arc<ClickHouse>, every: Duration) {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match self.replay(&ch).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(files = n, "clickhouse.spool_replayed"),
                    Err(e) => tracing::debug!(error = %e, "clickhouse.spool_replay_waiting"),
                }
            }
        });
    }
}

/// A new file readable and writable by its owner only: spooled rows are raw spans with their payloads.
fn create_owner_only(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

fn file_name(path: &Path) -> String {
    path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string()
}

/// Untouched for `after`: its worker is gone.
fn is_stale(path: &Path, after: Duration) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map(|t| t.elapsed().unwrap_or_default() >= after)
        .unwrap_or(false)
}
