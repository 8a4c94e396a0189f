//! The durable local spool of `dual` mode: while ClickHouse cannot take a batch, its rows are appended to a
//! file in the spool directory and fsynced, so the batch is still accepted and nothing is lost; a replayer
//! sends spooled files to ClickHouse when it answers again and deletes them once inserted. Only a full spool
//! refuses (503 with Retry-After).
//!
//! Files are claimed by renaming before they are replayed, so several workers sharing the directory never send
//! one file twice; a claim left by a worker that died is taken over after a minute.

use super::ClickHouse;
use crate::StorageError;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    seq: AtomicU64,
}

impl Spool {
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
        Ok(Spool { dir: dir.to_path_buf(), max_bytes, seq: AtomicU64::new(0) })
    }

    /// Bytes waiting in the spool.
    pub fn pending_bytes(&self) -> u64 {
        std::fs::read_dir(&self.dir)
            .map(|d| d.filter_map(Result::ok).filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
            .unwrap_or(0)
    }

    /// Writes one batch (JSONEachRow text for `table`) durably; refuses when the spool is full.
    pub async fn append(&self, table: &str, body: String) -> Result<(), StorageError> {
        if self.pending_bytes() + body.len() as u64 > self.max_bytes {
            return Err(StorageError::Unavailable(
                "ClickHouse is unreachable and the local spool is full (LANGSIGHT_SPOOL_MAX_MB)".into(),
            ));
        }
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let name = format!("{table}.{}.{}.{n}.jsonl", std::process::id(), langsight_core::time::now_micros());
        let (tmp, path) = (self.dir.join(format!(".{name}.tmp")), self.dir.join(name));
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f = options.open(&tmp)?;
            f.write_all(body.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            if let Some(dir) = path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(|e| StorageError::Backend(format!("spool write task failed: {e}")))?
        .map_err(|e| StorageError::Unavailable(format!("cannot write the ClickHouse spool: {e}")))
    }

    /// Sends every spooled file to ClickHouse (oldest first); stops at the first failure.
    pub async fn replay(&self, ch: &ClickHouse) -> Result<usize, StorageError> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        let mut sent = 0;
        for path in files {
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(String::from) else { continue };
            if name.starts_with('.') {
                continue;
            }
            // Claim: a fresh file by renaming it; a claim older than a minute was left by a dead worker.
            let (table, claimed) = if let Some(rest) = name.strip_prefix("claimed.") {
                let stale = std::fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .map(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(60))
                    .unwrap_or(false);
                if !stale {
                    continue;
                }
                (rest.split('.').next().unwrap_or_default().to_string(), path.clone())
            } else {
                let claimed = self.dir.join(format!("claimed.{name}"));
                if std::fs::rename(&path, &claimed).is_err() {
                    continue; // another worker took it
                }
                (name.split('.').next().unwrap_or_default().to_string(), claimed)
            };
            let body = match std::fs::read_to_string(&claimed) {
                Ok(b) => b,
                Err(_) => continue,
            };
            match ch.insert_raw(&table, body).await {
                Ok(()) => {
                    let _ = std::fs::remove_file(&claimed);
                    sent += 1;
                }
                Err(e) => {
                    // Give it back for the next round.
                    let _ = std::fs::rename(
                        &claimed,
                        self.dir.join(
                            claimed
                                .file_name()
                                .and_then(|n| n.to_str())
                                .unwrap_or_default()
                                .trim_start_matches("claimed."),
                        ),
                    );
                    return Err(e);
                }
            }
        }
        Ok(sent)
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
