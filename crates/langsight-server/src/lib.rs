//! The LangSight API server.
//!
//! Layout: [`config`] (layered settings, validated at start-up), [`state`] (what handlers share), [`auth`]
//! (principals, admin checks, project scoping), [`http`] (cross-cutting layers and body extractors),
//! [`routes`] (one module per API domain), [`metrics`] (Prometheus text), [`error`] (request errors).
//! [`start`] opens storage and binds the listener; [`serve`] adds signal handling for the binary.

pub mod accept;
pub mod alerts;
pub mod analytics;
pub mod audit;
pub mod auth;
pub mod catalog;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod http;
pub mod metrics;
pub mod monitor;
pub mod otlp;
pub mod passwords;
pub mod rate_limit;
pub mod routes;
pub mod scans;
pub mod session;
pub mod settings;
pub mod state;
pub mod url_policy;
pub mod workers;

use config::{Config, ConfigError, StorageMode};
use langsight_storage::sqlite::SqliteStorage;
use langsight_storage::{Storage, StorageError};
use state::AppState;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::oneshot;

/// Why the server refused to start. Each message names the setting to change.
#[derive(Debug, Error)]
pub enum StartupError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error(
        "cannot listen on {addr}: {source}. Choose another --port / LANGSIGHT_PORT, or stop the process using it."
    )]
    Bind { addr: String, source: std::io::Error },
    #[error("{0}")]
    Redis(#[from] langsight_shared::SharedError),
    #[error("workers: {0}")]
    Workers(String),
    #[error("admin bootstrap (LANGSIGHT_ADMIN_EMAIL / LANGSIGHT_ADMIN_PASSWORD): {0}")]
    Bootstrap(String),
}

/// How long shutdown waits for in-flight requests before closing storage anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn open_storage(config: &Config) -> Result<Storage, StartupError> {
    let storage = open_backend(config).await?;
    // The built-in model prices, for models with no row yet (an edited or retired price is not re-added).
    let seed = analytics::pricing::seed_rows(langsight_core::time::now_micros());
    storage.pricing.seed_prices(seed).await?;
    Ok(storage)
}

async fn open_backend(config: &Config) -> Result<Storage, StartupError> {
    match config.storage_mode {
        StorageMode::Sqlite => {
            let path = config.sqlite_path.clone();
            let forward = config.span_writer_socket.clone();
            let beside_writer = forward.is_some();
            let db = tokio::task::spawn_blocking(move || {
                if beside_writer {
                    SqliteStorage::open_beside_writer(&path)
                } else {
                    SqliteStorage::open(&path)
                }
            })
            .await
            .map_err(|e| StorageError::Open(format!("opening SQLite failed: {e}")))??;
            tracing::info!(path = %db.path().display(), "storage.opened mode=sqlite");
            let db = Arc::new(db);
            let mut storage = Storage::sqlite(db.clone());
            if let Some(socket) = forward {
                // Spans go to the supervisor's writer; everything else stays on this worker's connections.
                storage.spans = Arc::new(langsight_storage::sqlite::forward::ForwardedSpans::new(db, socket));
            }
            Ok(storage)
        }
        StorageMode::Postgres => {
            let url = config.postgres_url.as_ref().map(|u| u.0.clone()).unwrap_or_default();
            let db = langsight_storage::postgres::PgStorage::open(&url, config.pg_pool_max).await?;
            tracing::info!(pool_max = config.pg_pool_max, "storage.opened mode=postgres");
            Ok(Storage::postgres(Arc::new(db)))
        }
        StorageMode::Dual => {
            let url = config.postgres_url.as_ref().map(|u| u.0.clone()).unwrap_or_default();
            let pg = langsight_storage::postgres::PgStorage::open(&url, config.pg_pool_max).await?;
            let c = &config.clickhouse;
            let ch = Arc::new(
                langsight_storage::clickhouse::ClickHouse::open(&c.url, &c.database, &c.username, &c.password.0)
                    .await?,
            );
            let spool = Arc::new(langsight_storage::clickhouse::spool::Spool::for_database(
                &c.spool_dir,
                &c.database,
                c.spool_max_bytes,
            )?);
            spool.clone().spawn_replayer(ch.clone(), c.spool_replay_every);
            spool.clone().spawn_flusher(ch.clone(), c.spool_flush_every);
            tracing::info!(database = %c.database, spool = %c.spool_dir.display(), "storage.opened mode=dual");
            Ok(Storage::dual(Arc::new(pg), ch, Some(spool)))
        }
    }
}

/// The shared state chosen once at start-up: Redis when `LANGSIGHT_REDIS_URL` is set, memory otherwise.
pub async fn open_shared(config: &Config) -> Result<langsight_shared::SharedState, StartupError> {
    let Some(url) = &config.redis_url else {
        return Ok(langsight_shared::SharedState::memory_with(bus_limits(config)));
    };
    let mut settings = langsight_shared::redis::RedisSettings::new(url.clone());
    settings.ca_file = config.redis_ca_file.clone();
    settings.pool_max = config.redis_pool_max;
    let shared = langsight_shared::SharedState::redis(settings, "langsight", bus_limits(config)).await?;
    tracing::info!("redis.connected url={url}");
    Ok(shared)
}

fn bus_limits(config: &Config) -> langsight_shared::bus::BusLimits {
    langsight_shared::bus::BusLimits {
        replay_messages: config.sse.replay_messages,
        replay_bytes: config.sse.replay_bytes,
        replay_age: Duration::from_secs(config.sse.replay_seconds),
        subscriber_buffer: config.sse.client_buffer,
        subscriber_bytes: config.sse.client_buffer_bytes,
    }
}

/// The listening socket. Workers of one supervisor share the port through `SO_REUSEPORT`, the kernel
/// spreading connections over them; a lone server does not set it, so a second server on a taken port fails
/// instead of silently sharing it.
fn bind(host: &str, port: u16, reuse_port: bool) -> std::io::Result<tokio::net::TcpListener> {
    use std::net::ToSocketAddrs;
    let addr = (host, port).to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{host} resolves to no address"))
    })?;
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    tokio::net::TcpListener::from_std(socket.into())
}

/// A server running in this process.
pub struct RunningServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// Stops accepting, lets in-flight requests finish (up to 30 s), commits and closes storage.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Waits until the server stops by itself (it does not, unless its task fails).
    pub async fn wait(mut self) {
        let _ = (&mut self.task).await;
    }
}

/// Installs the process-wide TLS crypto provider (ring) that our HTTP and Redis clients use; idempotent.
pub fn install_tls() {
    langsight_shared::redis::install_crypto_provider();
}

pub async fn start(config: Config) -> Result<RunningServer, StartupError> {
    install_tls();
    for var in &config.unknown_env {
        tracing::warn!(variable = %var, "config.unknown_variable: {var} is not a LangSight setting (typo?); it is ignored");
    }
    if config.secret_key.is_none() {
        tracing::info!("settings: LANGSIGHT_SECRET_KEY is not set; AI provider keys saved through /api/settings are stored unencrypted");
    }
    if config.api_keys.is_empty() && !config.auth_disabled {
        tracing::info!("auth: no LANGSIGHT_API_KEYS set; requests need a stored API key, or set LANGSIGHT_AUTH_DISABLED=true for local use");
    }
    if config.auth_disabled && config.api_keys.is_empty() {
        tracing::warn!(
            "auth: running WITHOUT authentication until an API key is created (LANGSIGHT_AUTH_DISABLED=true)"
        );
    }
    let storage = open_storage(&config).await?;
    if config.secret_key.is_none() {
        warn_plain_provider_keys(&storage).await;
    }
    let shared = open_shared(&config).await?;
    let addr = format!("{}:{}", config.host, config.port);
    let listener = bind(&config.host, config.port, config.worker_id.is_some())
        .map_err(|source| StartupError::Bind { addr: addr.clone(), source })?;
    let local = listener.local_addr().map_err(|source| StartupError::Bind { addr, source })?;
    let state = AppState::new(config, storage.clone(), shared);
    routes::bootstrap_admin(&state, local.port()).await.map_err(StartupError::Bootstrap)?;
    let _ = state.deliverer.set(alerts::deliver::Deliverer::start(std::sync::Arc::downgrade(&state.0)));
    let monitor = monitor::spawn(state.clone());
    let backfill = analytics::rolled::spawn_backfill(state.clone());
    let links = analytics::links::spawn(state.clone());
    let timeouts = accept::Timeouts { header: state.config.header_read_timeout, body: state.config.body_read_timeout };
    let shutdown_notice = state.shutting_down.clone();
    let app = routes::router(state);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let (drained_tx, drained_rx) = oneshot::channel::<()>();
        let server = accept::serve(listener, app, timeouts, async move {
            let _ = stop_rx.await;
            tracing::info!("api.shutting_down: draining in-flight requests");
            shutdown_notice.send_replace(true);
            let _ = drained_tx.send(());
        });
        tokio::pin!(server);
        // Wait for the drain, but not forever: a stuck client must not keep storage from closing.
        tokio::select! {
            _ = &mut server => {}
            _ = async { let _ = drained_rx.await; tokio::time::sleep(DRAIN_TIMEOUT).await } => {
                tracing::warn!("api.drain_timeout: closing with requests still in flight");
            }
        }
        if let Some(m) = monitor {
            m.abort();
        }
        backfill.abort();
        links.abort();
        storage.closer.close().await;
        tracing::info!("api.shutdown");
    });
    // The runtime's size as built (a worker's is set by its supervisor: workers.rs).
    let runtime_threads = tokio::runtime::Handle::current().metrics().num_workers();
    tracing::info!(addr = %local, runtime_threads, "api.listening");
    if state_ready_line() {
        // The supervisor waits for this line on the worker's stdout before it reports the port as served.
        println!("READY {local}");
    }
    Ok(RunningServer { addr: local, stop: Some(stop_tx), task })
}

/// Says loudly when AI provider keys sit in storage unencrypted: anyone who can read the database file or a
/// backup of it can use them.
async fn warn_plain_provider_keys(storage: &Storage) {
    let Ok(Some(text)) = storage.agents.get_settings().await else { return };
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(&text) else { return };
    let stored: Vec<&str> = doc
        .get("ai_providers")
        .and_then(|p| p.as_object())
        .map(|p| {
            p.iter()
                .filter(|(_, v)| v.get("api_key").and_then(|k| k.as_str()).is_some_and(|k| !k.is_empty()))
                .map(|(name, _)| name.as_str())
                .collect()
        })
        .unwrap_or_default();
    if !stored.is_empty() {
        tracing::warn!(
            providers = %stored.join(","),
            "settings.unencrypted_provider_keys: AI provider keys ({}) are stored in the database WITHOUT encryption \
             because LANGSIGHT_SECRET_KEY is not set; anyone who can read the database or a backup can use them. Set \
             LANGSIGHT_SECRET_KEY and save the keys again through /api/settings",
            stored.join(", ")
        );
    }
}

fn state_ready_line() -> bool {
    std::env::var_os("LANGSIGHT_WORKER_ID").is_some()
}

/// Runs until SIGTERM or SIGINT, then shuts down gracefully.
pub async fn serve(config: Config) -> Result<(), StartupError> {
    let server = start(config).await?;
    shutdown_signal().await;
    server.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
