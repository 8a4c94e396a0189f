//! Embedded SQLite backend: the zero-setup default.
//!
//! One file in WAL mode; every commit is fsynced before it is acknowledged, so it survives a crash of the
//! process or the machine.
//! Writes go through the group-commit [`writer`]; reads use a small pool of read-only connections on
//! blocking threads, which WAL lets run while the writer commits.

mod agents;
mod alerts;
mod checkpoint;
pub mod forward;
mod migrations;
mod pricing;
mod queries;
mod rollups;
mod security;
mod servers;
mod users;
mod wire;
mod writer;

use crate::{Closer, Probe, StorageError};
use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;
use writer::Writer;

/// Read connections: enough to overlap reads on two cores without contending on the WAL index.
const READERS: usize = 4;

pub struct SqliteStorage {
    path: PathBuf,
    writer: Mutex<Option<Writer>>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    checkpointer: Mutex<Option<checkpoint::Checkpointer>>,
    /// Read connections and the permits that hand them out. Shared with the blocking read tasks, which
    /// return their connection and permit themselves: a read whose caller went away (client disconnect,
    /// probe timeout) still gives its connection back.
    readers: Arc<Mutex<Vec<Connection>>>,
    reader_permits: Arc<Semaphore>,
}

/// Page cache of the writer connection, KiB: it holds the hot index pages every commit touches.
const WRITER_CACHE_KIB: i64 = 16_000;
/// Page cache of each reader, KiB. Reads are answered from rollups, session rows and covering indexes, and the
/// OS page cache backs every miss: 4 × 8 MiB keeps a server holding ten million spans under 100 MiB of RSS
/// (4 × 16 MiB put it at 126 MiB).
const READER_CACHE_KIB: i64 = 8_000;

fn configure(conn: &Connection, cache_kib: i64) -> Result<(), rusqlite::Error> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "cache_size", -cache_kib)?;
    // Savepoint sub-journals (one per group-commit job) in memory, not in a temporary file.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
}

/// Creates `path` readable and writable by its owner only (0600) before SQLite opens it, and tightens an
/// existing file that others could read: it holds password hashes, key hashes, provider keys and every payload.
/// SQLite gives its `-wal` and `-shm` files the database file's permissions.
pub fn private_file(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        match std::fs::metadata(path) {
            Ok(meta) => {
                if meta.permissions().mode() & 0o077 != 0 {
                    tracing::warn!(path = %path.display(), "storage.permissions_tightened: the database was readable by others; now 0600");
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
                }
            }
            Err(_) => {
                std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(path)?;
            }
        }
        for suffix in ["-wal", "-shm"] {
            let side = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
            if let Ok(meta) = std::fs::metadata(&side) {
                if meta.permissions().mode() & 0o077 != 0 {
                    std::fs::set_permissions(&side, std::fs::Permissions::from_mode(0o600))?;
                }
            }
        }
    }
    Ok(())
}

impl SqliteStorage {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStorage, StorageError> {
        SqliteStorage::open_with(path, checkpoint::Policy::default(), Default::default())
    }

    /// [`SqliteStorage::open`] for a worker whose supervisor runs the span writer ([`forward`]): no checkpoint
    /// thread, since the process that appends nearly all of the WAL is the one that can start it over without
    /// forcing (checkpoint.rs); a second process checkpointing the same WAL would only copy pages twice and force
    /// `RESTART`s that stall every writer.
    pub fn open_beside_writer(path: &Path) -> Result<SqliteStorage, StorageError> {
        let mut db = SqliteStorage::open(path)?;
        if let Some(mut c) = db.checkpointer.get_mut().ok().and_then(|c| c.take()) {
            c.stop();
        }
        Ok(db)
    }

    /// [`SqliteStorage::open`] with the WAL's checkpoint thresholds given (tests use small ones).
    pub(crate) fn open_with(
        path: &Path,
        policy: checkpoint::Policy,
        hand_over: Arc<checkpoint::HandOver>,
    ) -> Result<SqliteStorage, StorageError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StorageError::Open(format!(
                    "cannot create the directory {} for the SQLite database: {e}; set LANGSIGHT_SQLITE_PATH to a writable location",
                    dir.display()
                ))
            })?;
        }
        let open_err = |e: rusqlite::Error| {
            StorageError::Open(format!(
                "cannot open the SQLite database {}: {e}; set LANGSIGHT_SQLITE_PATH to a writable file",
                path.display()
            ))
        };
        private_file(path).map_err(|e| {
            StorageError::Open(format!(
                "cannot create the SQLite database {} with owner-only permissions: {e}; set LANGSIGHT_SQLITE_PATH to a writable file",
                path.display()
            ))
        })?;
        let mut conn = Connection::open(path).map_err(open_err)?;
        configure(&conn, WRITER_CACHE_KIB).map_err(open_err)?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StorageError::Open(format!(
                "the SQLite database {} cannot use WAL mode (got {mode}); put it on a local filesystem",
                path.display()
            )));
        }
        // NORMAL: SQLite does not fsync at commit; the writer's syncer thread does, before answering anyone
        // (see writer.rs), so 202 still means the spans survive a power loss while the next group's inserts
        // overlap this group's fsync.
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(open_err)?;
        // Checkpoints run on their own thread (see checkpoint.rs), never inside a commit.
        conn.pragma_update(None, "wal_autocheckpoint", 0).map_err(open_err)?;
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024).map_err(open_err)?;
        migrations::run(&mut conn)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let r = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
            )
            .map_err(open_err)?;
            configure(&r, READER_CACHE_KIB).map_err(open_err)?;
            readers.push(r);
        }
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let (writer, thread) = Writer::start(conn, PathBuf::from(wal), hand_over.clone())?;
        let checkpointer = checkpoint::Checkpointer::start(path, policy, hand_over)?;
        Ok(SqliteStorage {
            checkpointer: Mutex::new(Some(checkpointer)),
            path: path.to_path_buf(),
            writer: Mutex::new(Some(writer)),
            writer_thread: Mutex::new(Some(thread)),
            readers: Arc::new(Mutex::new(readers)),
            reader_permits: Arc::new(Semaphore::new(READERS)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn writer(&self) -> Result<Writer, StorageError> {
        self.writer
            .lock()
            .map_err(|_| StorageError::Backend("writer handle poisoned".into()))?
            .clone()
            .ok_or_else(|| StorageError::Unavailable("storage is shutting down".into()))
    }

    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StorageError> + Send + 'static,
    {
        self.writer()?.write(f).await
    }

    /// [`SqliteStorage::write`] for a job that may run twice ([`Writer::write_rerunnable`]).
    pub(crate) async fn write_rerunnable<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T, StorageError> + Send + 'static,
    {
        self.writer()?.write_rerunnable(f).await
    }

    /// Runs `f` on a pooled read connection on a blocking thread.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StorageError> + Send + 'static,
    {
        let permit = self
            .reader_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StorageError::Unavailable("storage is closed".into()))?;
        let pool = self.readers.clone();
        let conn = pool
            .lock()
            .map_err(|_| StorageError::Backend("reader pool poisoned".into()))?
            .pop()
            .ok_or_else(|| StorageError::Backend("reader pool empty despite a permit".into()))?;
        tokio::task::spawn_blocking(move || {
            let r = f(&conn);
            if let Ok(mut p) = pool.lock() {
                p.push(conn);
            }
            drop(permit);
            r
        })
        .await
        .map_err(|e| StorageError::Backend(format!("read task failed: {e}")))?
    }
}

#[async_trait]
impl Probe for SqliteStorage {
    fn name(&self) -> &'static str {
        "storage"
    }

    async fn ping(&self) -> Result<(), StorageError> {
        self.read(|c| Ok(c.query_row("SELECT count(*) FROM api_keys", [], |r| r.get::<_, i64>(0))?)).await?;
        // A writer that stopped (commit thread gone) makes the server unable to accept spans: not ready.
        self.writer()?;
        Ok(())
    }
}

#[async_trait]
impl Closer for SqliteStorage {
    async fn close(&self) {
        // Dropping the last Writer handle ends the thread after it drained the queue: every write accepted
        // before close is committed before we return.
        if let Ok(mut w) = self.writer.lock() {
            w.take();
        }
        let thread = self.writer_thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        let checkpointer = self.checkpointer.lock().ok().and_then(|mut c| c.take());
        if let Some(mut c) = checkpointer {
            let _ = tokio::task::spawn_blocking(move || c.stop()).await;
        }
        if let Ok(c) = self.write_checkpoint() {
            tracing::debug!(pages = c, "storage.checkpointed");
        }
    }
}

impl SqliteStorage {
    /// Folds the WAL into the main file at shutdown so the next start opens quickly.
    fn write_checkpoint(&self) -> Result<i64, rusqlite::Error> {
        let conn = Connection::open(&self.path)?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(2))
    }
}
