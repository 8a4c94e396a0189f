//! The worker supervisor: `langsight serve --workers N`.
//!
//! The parent checks what every worker will need (configuration, Redis, storage migrations) once, so a bad
//! setting fails fast with one clear message instead of N crash-looping workers. It then reserves the port,
//! starts N copies of itself as workers (marked by `LANGSIGHT_WORKER_ID`), which each listen on that port
//! with `SO_REUSEPORT` — the kernel spreads connections over them — and waits for each to report `READY`.
//! A worker that dies is restarted (a crash loop gives up instead of spinning); SIGTERM or SIGINT is passed
//! to every worker, which drains its in-flight requests and commits what it accepted, and the parent waits
//! for all of them.
//!
//! With SQLite the supervisor also keeps the database open and runs the only span writer: workers send their
//! decoded batches to it over a Unix socket in a private directory (`langsight_storage::sqlite::forward`), so
//! several workers commit as one writer instead of taking turns through the file lock.

use crate::config::Config;
use crate::StartupError;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A worker must say READY within this time.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// More restarts than this within [`CRASH_WINDOW`] is a crash loop: stop everything and exit non-zero.
const MAX_RESTARTS: usize = 5;
const CRASH_WINDOW: Duration = Duration::from_secs(60);
/// How long SIGTERM may take before the worker is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(40);

/// Tokio's own setting for the threads of a runtime; an operator's value is passed through untouched.
pub const RUNTIME_THREADS_VAR: &str = "TOKIO_WORKER_THREADS";

/// The threads of each worker's runtime: the cores shared out among the workers, at least one each.
///
/// Every runtime sizes itself to all the cores by default, so N workers ran N × cores threads on the same cores:
/// idle threads searched for work and woke each other for every request, and 4 workers on 2 cores stored 16 %
/// fewer spans than one worker; with one thread each, 8 % fewer (BENCHMARKS.md).
pub fn worker_runtime_threads(cores: usize, workers: usize) -> usize {
    (cores / workers.max(1)).max(1)
}

/// The supervisor's runtime threads (unless the operator set `TOKIO_WORKER_THREADS`). It supervises, and on SQLite
/// it reads the workers' batches off their sockets and decodes them for the span writer — cheap next to the
/// writer's own thread (~0.2 µs a span in a profile of 4 workers, against the writer's ~6), so one thread keeps up
/// with what one SQLite writer can commit.
pub const SUPERVISOR_RUNTIME_THREADS: usize = 1;

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

struct Worker {
    id: usize,
    child: Child,
}

fn spawn_worker(id: usize, config: &Config, port: u16, writer: Option<&Path>) -> Result<Worker, StartupError> {
    let exe = std::env::current_exe().map_err(|e| StartupError::Workers(format!("cannot find own binary: {e}")))?;
    let mut cmd = Command::new(exe);
    cmd.arg("serve")
        .env("LANGSIGHT_WORKER_ID", id.to_string())
        .env("LANGSIGHT_HOST", &config.host)
        .env("LANGSIGHT_PORT", port.to_string())
        .env("LANGSIGHT_WORKERS", config.workers.to_string())
        // The supervisor's resolved level, so `--log-level` reaches the workers as well.
        .env("LANGSIGHT_LOG_LEVEL", &config.log_level)
        .env("LANGSIGHT_SQLITE_PATH", &config.sqlite_path)
        // One stream-token key for all workers, so a token minted by one is accepted by the others.
        .env("LANGSIGHT_WORKER_SECRET", &config.stream_secret.0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(file) = &config.config_file {
        cmd.env("LANGSIGHT_CONFIG_PATH", file);
    }
    if std::env::var_os(RUNTIME_THREADS_VAR).is_none() {
        cmd.env(RUNTIME_THREADS_VAR, worker_runtime_threads(cores(), config.workers).to_string());
    }
    match writer {
        Some(socket) => cmd.env("LANGSIGHT_SPAN_WRITER_SOCKET", socket),
        None => cmd.env_remove("LANGSIGHT_SPAN_WRITER_SOCKET"),
    };
    let mut child = cmd.spawn().map_err(|e| StartupError::Workers(format!("cannot start worker {id}: {e}")))?;
    // Wait for READY on the worker's stdout, on a thread so a silent worker cannot hang us past the timeout.
    let stdout = child.stdout.take().ok_or_else(|| StartupError::Workers("worker stdout missing".into()))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let ready = lines.by_ref().map_while(Result::ok).any(|l| l.starts_with("READY"));
        let _ = tx.send(ready);
        for _ in lines {} // keep draining so the worker never blocks on a full pipe
    });
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(true) => Ok(Worker { id, child }),
        _ => {
            let _ = child.kill();
            let status = child.wait().ok();
            Err(StartupError::Workers(format!(
                "worker {id} did not start (exit status {status:?}); its log above says why"
            )))
        }
    }
}

/// Reserves the port (bound, not listening, so it takes no connections) so that `--port 0` resolves to one
/// port for every worker and nobody else grabs it between worker starts.
fn reserve_port(host: &str, port: u16) -> Result<(socket2::Socket, u16), StartupError> {
    use std::net::ToSocketAddrs;
    let err = |e: std::io::Error| StartupError::Bind { addr: format!("{host}:{port}"), source: e };
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(err)?
        .next()
        .ok_or_else(|| err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address")))?;
    let s = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None).map_err(err)?;
    s.set_reuse_address(true).map_err(err)?;
    s.set_reuse_port(true).map_err(err)?;
    s.bind(&addr.into()).map_err(err)?;
    let actual = s.local_addr().map_err(err)?.as_socket().map(|a| a.port()).unwrap_or(port);
    Ok((s, actual))
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) with a PID we spawned and still own (not yet waited for); no memory is involved.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

/// Runs the supervisor until SIGTERM/SIGINT. Returns an error (non-zero exit) when start-up fails or a
/// worker crash-loops.
pub async fn supervise(config: Config) -> Result<(), StartupError> {
    // Fail fast, once, on what every worker needs.
    crate::open_shared(&config).await?;
    let storage = crate::open_storage(&config).await?;
    let writer = match config.storage_mode {
        crate::config::StorageMode::Sqlite => Some(SpanWriter::start(storage.spans.clone())?),
        _ => {
            storage.closer.close().await;
            None
        }
    };
    let socket = writer.as_ref().map(|w| w.socket.clone());
    let result = run_workers(&config, socket.as_deref()).await;
    if let Some(w) = writer {
        // Every worker has stopped and had its answers: nothing is in flight any more.
        w.stop();
        storage.closer.close().await;
    }
    result
}

/// The supervisor's span writer: a Unix socket in a directory only this user can enter, served until stopped.
struct SpanWriter {
    dir: PathBuf,
    socket: PathBuf,
    task: tokio::task::JoinHandle<()>,
    counts: std::sync::Arc<langsight_storage::sqlite::forward::WriterCounts>,
}

impl SpanWriter {
    fn start(spans: std::sync::Arc<dyn langsight_storage::SpanStore>) -> Result<SpanWriter, StartupError> {
        use std::os::unix::fs::DirBuilderExt;
        let failed = |e: std::io::Error| {
            StartupError::Workers(format!(
                "cannot create the span writer's socket under {}: {e}; set TMPDIR to a writable directory",
                std::env::temp_dir().display()
            ))
        };
        let dir = std::env::temp_dir().join(format!(
            "langsight-writer-{}-{}",
            std::process::id(),
            langsight_core::time::now_micros()
        ));
        std::fs::DirBuilder::new().mode(0o700).create(&dir).map_err(failed)?;
        let socket = dir.join("spans.sock");
        let listener = tokio::net::UnixListener::bind(&socket).map_err(failed)?;
        let counts = std::sync::Arc::new(langsight_storage::sqlite::forward::WriterCounts::default());
        let task = tokio::spawn(langsight_storage::sqlite::forward::serve(listener, spans, counts.clone()));
        tracing::info!(socket = %socket.display(), "storage.span_writer.listening");
        Ok(SpanWriter { dir, socket, task, counts })
    }

    fn stop(self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
        use std::sync::atomic::Ordering::Relaxed;
        tracing::info!(
            batches = self.counts.batches.load(Relaxed),
            spans = self.counts.spans.load(Relaxed),
            "storage.span_writer.stopped"
        );
    }
}

async fn run_workers(config: &Config, writer: Option<&Path>) -> Result<(), StartupError> {
    let (reservation, port) = reserve_port(&config.host, config.port)?;
    let mut workers = Vec::with_capacity(config.workers);
    for id in 0..config.workers {
        match tokio::task::block_in_place(|| spawn_worker(id, config, port, writer)) {
            Ok(w) => workers.push(w),
            Err(e) => {
                stop_all(&mut workers);
                return Err(e);
            }
        }
    }
    drop(reservation); // the workers hold the port now
    let runtime_threads = tokio::runtime::Handle::current().metrics().num_workers();
    tracing::info!(addr = %format!("{}:{port}", config.host), workers = config.workers, runtime_threads, "api.listening");

    let mut restarts: Vec<Instant> = Vec::new();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| StartupError::Workers(format!("cannot listen for SIGTERM: {e}")))?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        for i in 0..workers.len() {
            let exited = match workers[i].child.try_wait() {
                Ok(Some(status)) => Some(status),
                _ => None,
            };
            let Some(status) = exited else { continue };
            let id = workers[i].id;
            restarts.retain(|t| t.elapsed() < CRASH_WINDOW);
            if restarts.len() >= MAX_RESTARTS {
                tracing::error!(worker = id, %status, "worker.crash_loop: giving up");
                stop_all(&mut workers);
                return Err(StartupError::Workers(format!(
                    "worker {id} exited ({status}) and {MAX_RESTARTS} restarts within {CRASH_WINDOW:?} failed; see the log above"
                )));
            }
            restarts.push(Instant::now());
            tracing::warn!(worker = id, %status, "worker.exited: restarting");
            match tokio::task::block_in_place(|| spawn_worker(id, config, port, writer)) {
                Ok(w) => workers[i] = w,
                Err(e) => tracing::error!(worker = id, error = %e, "worker.restart_failed"),
            }
        }
    }
    tracing::info!("api.shutting_down: stopping workers");
    tokio::task::block_in_place(|| stop_all(&mut workers));
    tracing::info!("api.shutdown");
    Ok(())
}

/// SIGTERM to every worker, then wait; SIGKILL whoever is still there after the drain timeout.
fn stop_all(workers: &mut [Worker]) {
    for w in workers.iter() {
        signal(&w.child, libc::SIGTERM);
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    for w in workers.iter_mut() {
        loop {
            match w.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    tracing::warn!(worker = w.id, "worker.kill: did not stop in time");
                    let _ = w.child.kill();
                    let _ = w.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}
