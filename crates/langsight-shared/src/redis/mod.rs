//! The Redis connection of one worker, for every topology.
//!
//! One multiplexed command connection (standalone, TLS and Sentinel) or one cluster connection (a socket per
//! node), plus one pub/sub connection held by the event bus: a worker needs a handful of sockets, well under
//! the 20 the pool may use, and never one per SSE client. Every command runs under a short timeout; the first
//! failure marks Redis down, after which callers skip Redis at once (each feature falls back as documented)
//! until a background ping finds it back — so an outage costs requests nothing but the shared behaviour.

mod sentinel;

use crate::metrics::SharedMetrics;
use crate::url::{RedisUrl, Topology};
use crate::SharedError;
use redis::aio::ConnectionManager;
use redis::{FromRedisValue, ToRedisArgs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub url: RedisUrl,
    /// PEM file of the CA that signed the server certificate (`rediss://` with a private CA).
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// A command slower than this counts as a failure: requests must not wait on a sick Redis.
    pub command_timeout: Duration,
    /// Upper bound of sockets per worker (`LANGSIGHT_REDIS_POOL_MAX`, default 20).
    pub pool_max: usize,
}

impl RedisSettings {
    pub fn new(url: RedisUrl) -> RedisSettings {
        RedisSettings {
            url,
            ca_file: None,
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(1),
            pool_max: 20,
        }
    }
}

enum Backend {
    Single(ConnectionManager),
    Sentinel(Box<sentinel::SentinelConn>),
    Cluster(redis::cluster_async::ClusterConnection),
}

pub struct Redis {
    pub settings: RedisSettings,
    backend: Backend,
    up: AtomicBool,
    pub metrics: Arc<SharedMetrics>,
}

/// `user:password@` for a redis-rs URL, percent-encoded.
fn userinfo(url: &RedisUrl) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    match (&url.credentials.username, &url.credentials.password) {
        (None, None) => String::new(),
        (u, p) => {
            format!("{}:{}@", u.as_deref().map(enc).unwrap_or_default(), p.as_deref().map(enc).unwrap_or_default())
        }
    }
}

fn host_for_url(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// A redis-rs client for one node.
pub(crate) fn node_client(
    settings: &RedisSettings,
    host: &str,
    port: u16,
    db: i64,
    auth: bool,
) -> Result<redis::Client, SharedError> {
    let scheme = if settings.url.tls { "rediss" } else { "redis" };
    let creds = if auth { userinfo(&settings.url) } else { String::new() };
    let url = format!("{scheme}://{creds}{}:{port}/{db}", host_for_url(host));
    let info = connection_info(&url).map_err(|e| SharedError::Connect(format!("{}: {e}", settings.url)))?;
    let client = if settings.url.tls {
        redis::Client::build_with_tls(info, tls_certs(settings)?)
    } else {
        redis::Client::open(info)
    };
    client.map_err(|e| SharedError::Connect(format!("{}: {e}", settings.url)))
}

/// Connection parameters with TCP keepalive on (a dead peer is noticed within about a minute even when idle)
/// and Nagle off (commands are small and latency-bound).
fn connection_info(url: &str) -> redis::RedisResult<redis::ConnectionInfo> {
    use redis::IntoConnectionInfo;
    let keepalive =
        socket2::TcpKeepalive::new().with_time(Duration::from_secs(30)).with_interval(Duration::from_secs(10));
    Ok(url
        .into_connection_info()?
        .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true).set_keepalive(keepalive)))
}

fn tls_certs(settings: &RedisSettings) -> Result<redis::TlsCertificates, SharedError> {
    let root_cert =
        match &settings.ca_file {
            Some(p) => Some(std::fs::read(p).map_err(|e| {
                SharedError::Connect(format!("cannot read LANGSIGHT_REDIS_CA_FILE {}: {e}", p.display()))
            })?),
            None => None,
        };
    Ok(redis::TlsCertificates { client_tls: None, root_cert })
}

fn is_connection_error(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(e.code(), Some("READONLY") | Some("MASTERDOWN") | Some("LOADING") | Some("CLUSTERDOWN"))
}

/// Runs `$body` with `$c` bound to a `&mut` connection of whichever backend, under the command timeout;
/// a connection error on Sentinel drops the cached master so the next call re-resolves it.
macro_rules! on_connection {
    ($self:ident, $c:ident => $body:expr) => {{
        // Sentinel: finding the master can take several sentinel round trips after a failover; that is
        // bounded by the connect timeout, outside the (short) command timeout.
        let sentinel = match &$self.backend {
            Backend::Sentinel(s) => Some(s.conn().await),
            _ => None,
        };
        let run = async {
            match (&$self.backend, sentinel) {
                (Backend::Single(m), _) => {
                    let $c = &mut m.clone();
                    $body
                }
                (Backend::Cluster(cl), _) => {
                    let $c = &mut cl.clone();
                    $body
                }
                (Backend::Sentinel(s), Some(conn)) => {
                    let $c = &mut conn?;
                    let r = $body;
                    if let Err(e) = &r {
                        if is_connection_error(e) {
                            s.invalidate().await;
                        }
                    }
                    r
                }
                (Backend::Sentinel(_), None) => {
                    Err(redis::RedisError::from(std::io::Error::other("sentinel connection missing")))
                }
            }
        };
        match tokio::time::timeout($self.settings.command_timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "redis command timed out",
            ))),
        }
    }};
}

impl Redis {
    /// Connects and PINGs; fails within the connect timeout with the cause.
    pub async fn connect(settings: RedisSettings, metrics: Arc<SharedMetrics>) -> Result<Arc<Redis>, SharedError> {
        install_crypto_provider();
        let url = settings.url.clone();
        let backend = tokio::time::timeout(settings.connect_timeout + Duration::from_secs(1), async {
            match &url.topology {
                Topology::Standalone { host, port, db } => {
                    let client = node_client(&settings, host, *port, *db, true)?;
                    let config = redis::aio::ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(settings.connect_timeout))
                        .set_response_timeout(Some(settings.command_timeout))
                        .set_number_of_retries(1);
                    let mgr = ConnectionManager::new_with_config(client, config)
                        .await
                        .map_err(|e| SharedError::Connect(format!("{url}: {e}")))?;
                    Ok::<_, SharedError>(Backend::Single(mgr))
                }
                Topology::Sentinel { .. } => {
                    Ok(Backend::Sentinel(Box::new(sentinel::SentinelConn::connect(&settings).await?)))
                }
                Topology::Cluster { nodes } => {
                    let scheme = if url.tls { "rediss" } else { "redis" };
                    let infos = nodes
                        .iter()
                        .map(|(h, p)| connection_info(&format!("{scheme}://{}{}:{p}", userinfo(&url), host_for_url(h))))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| SharedError::Connect(format!("{url}: {e}")))?;
                    let mut b = redis::cluster::ClusterClientBuilder::new(infos)
                        .connection_timeout(settings.connect_timeout)
                        .response_timeout(settings.command_timeout)
                        .retries(2);
                    if url.tls {
                        b = b.certs(tls_certs(&settings)?);
                    }
                    let client = b.build().map_err(|e| SharedError::Connect(format!("{url}: {e}")))?;
                    let conn =
                        client.get_async_connection().await.map_err(|e| SharedError::Connect(format!("{url}: {e}")))?;
                    Ok(Backend::Cluster(conn))
                }
            }
        })
        .await
        .map_err(|_| SharedError::Connect(format!("{url}: no answer within {:?}", settings.connect_timeout)))??;
        let redis = Arc::new(Redis { settings, backend, up: AtomicBool::new(true), metrics });
        let pong: String = redis
            .query_unguarded(&redis::cmd("PING"))
            .await
            .map_err(|e| SharedError::Connect(format!("{url}: PING failed: {e}")))?;
        if pong != "PONG" {
            return Err(SharedError::Connect(format!("{url}: PING answered {pong:?}")));
        }
        redis.metrics.redis_up.store(1, Ordering::Relaxed);
        Ok(redis)
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn mark_down(&self, why: &str) {
        if self.up.swap(false, Ordering::Relaxed) {
            tracing::warn!(url = %self.settings.url, error = why, "redis.down: shared state falls back to local until Redis answers again");
            self.metrics.redis_up.store(0, Ordering::Relaxed);
        }
    }

    fn mark_up(&self) {
        if !self.up.swap(true, Ordering::Relaxed) {
            tracing::info!(url = %self.settings.url, "redis.recovered: shared state resumes");
            self.metrics.redis_up.store(1, Ordering::Relaxed);
        }
    }

    /// Pings every `every` and flips the up/down state; runs until the process ends.
    pub fn spawn_health_checks(self: &Arc<Self>, every: Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(r) = weak.upgrade() else { break };
                match r.query_unguarded::<String>(&redis::cmd("PING")).await {
                    Ok(_) => r.mark_up(),
                    Err(e) => r.mark_down(&e.to_string()),
                }
            }
        });
    }

    async fn query_unguarded<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, redis::RedisError> {
        on_connection!(self, c => cmd.query_async(c).await)
    }

    /// Runs a command unless Redis is known to be down; failures mark it down.
    pub async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, SharedError> {
        if !self.is_up() {
            return Err(SharedError::Down);
        }
        let started = Instant::now();
        let r = self.query_unguarded(cmd).await;
        self.metrics.command_seconds.observe(started.elapsed().as_secs_f64());
        self.outcome(r)
    }

    /// A bulk read (replays): up to 5 s, and a slow answer does not mark Redis down for everything else.
    pub async fn query_bulk<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, SharedError> {
        if !self.is_up() {
            return Err(SharedError::Down);
        }
        let run = async {
            match &self.backend {
                Backend::Single(m) => cmd.query_async(&mut m.clone()).await,
                Backend::Cluster(cl) => cmd.query_async(&mut cl.clone()).await,
                Backend::Sentinel(s) => cmd.query_async(&mut s.conn().await?).await,
            }
        };
        match tokio::time::timeout(Duration::from_secs(5), run).await {
            Ok(r) => r.map_err(|e| SharedError::Redis(e.to_string())),
            Err(_) => Err(SharedError::Redis("bulk read timed out".into())),
        }
    }

    /// Runs a Lua script (EVALSHA, loading it on NOSCRIPT): one round trip, atomic on the server.
    pub async fn script<T: FromRedisValue>(
        &self,
        script: &redis::Script,
        keys: &[&str],
        args: &[&dyn ToRedisArgsDyn],
    ) -> Result<T, SharedError> {
        if !self.is_up() {
            return Err(SharedError::Down);
        }
        let mut inv = script.prepare_invoke();
        for k in keys {
            inv.key(*k);
        }
        for a in args {
            inv.arg(a.to_args());
        }
        let started = Instant::now();
        let r = on_connection!(self, c => inv.invoke_async(c).await);
        self.metrics.command_seconds.observe(started.elapsed().as_secs_f64());
        self.outcome(r)
    }

    fn outcome<T>(&self, r: Result<T, redis::RedisError>) -> Result<T, SharedError> {
        match r {
            Ok(v) => Ok(v),
            Err(e) if is_connection_error(&e) => {
                self.mark_down(&e.to_string());
                Err(SharedError::Redis(e.to_string()))
            }
            Err(e) => Err(SharedError::Redis(e.to_string())),
        }
    }

    /// A dedicated connection for blocking reads of `key` (`XREAD BLOCK` would stall a shared multiplexed
    /// connection): to the server, the current Sentinel master, or the cluster node that owns the key's slot
    /// (found by following `MOVED`).
    pub async fn blocking_connection(&self, key: &str) -> Result<redis::aio::MultiplexedConnection, SharedError> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.settings.connect_timeout))
            .set_response_timeout(Some(Duration::from_secs(10)));
        let connect = |client: redis::Client| {
            let config = config.clone();
            async move {
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map_err(|e| SharedError::Redis(e.to_string()))
            }
        };
        match &self.settings.url.topology {
            Topology::Standalone { host, port, db } => {
                connect(node_client(&self.settings, host, *port, *db, true)?).await
            }
            Topology::Sentinel { db, .. } => {
                let (host, port) = sentinel::resolve_master(&self.settings).await?;
                connect(node_client(&self.settings, &host, port, *db, true)?).await
            }
            Topology::Cluster { nodes } => {
                let mut last = SharedError::Down;
                let mut candidates: Vec<(String, u16)> = nodes.clone();
                let mut tried = 0;
                while let Some((h, p)) = candidates.pop() {
                    tried += 1;
                    if tried > nodes.len() + 3 {
                        break;
                    }
                    let mut conn = match connect(node_client(&self.settings, &h, p, 0, true)?).await {
                        Ok(c) => c,
                        Err(e) => {
                            last = e;
                            continue;
                        }
                    };
                    let probe: redis::RedisResult<redis::Value> = redis::cmd("XRANGE")
                        .arg(key)
                        .arg("-")
                        .arg("+")
                        .arg("COUNT")
                        .arg(1)
                        .query_async(&mut conn)
                        .await;
                    match probe {
                        Ok(_) => return Ok(conn),
                        Err(e) if e.code() == Some("MOVED") => {
                            // "MOVED <slot> <host>:<port>"
                            let target = e.redirect_node().map(|(addr, _)| addr.to_string()).unwrap_or_default();
                            if let Some((th, tp)) = target.rsplit_once(':') {
                                if let Ok(tp) = tp.parse() {
                                    candidates.push((th.trim_matches(|c| c == '[' || c == ']').to_string(), tp));
                                }
                            }
                        }
                        Err(e) => last = SharedError::Redis(e.to_string()),
                    }
                }
                Err(last)
            }
        }
    }
}

/// Object-safe script arguments.
pub trait ToRedisArgsDyn: Send + Sync {
    fn to_args(&self) -> Vec<Vec<u8>>;
}

impl<T: ToRedisArgs + Send + Sync> ToRedisArgsDyn for T {
    fn to_args(&self) -> Vec<Vec<u8>> {
        self.to_redis_args()
    }
}

/// rustls needs one process-wide crypto provider; we build only `ring`. Safe to call any number of times.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
