//! Sentinel: find the master through the sentinels, connect to it, and confirm with `ROLE` that it really is
//! the master (a demoted master still answers PING). After a connection error the next command re-resolves,
//! which is how a failover is followed without a restart.

use super::{node_client, RedisSettings};
use crate::url::Topology;
use crate::SharedError;
use redis::aio::MultiplexedConnection;
use tokio::sync::Mutex;

pub(crate) struct SentinelConn {
    settings: RedisSettings,
    current: Mutex<Option<MultiplexedConnection>>,
}

impl SentinelConn {
    pub(crate) async fn connect(settings: &RedisSettings) -> Result<SentinelConn, SharedError> {
        let conn = connect_master(settings).await?;
        Ok(SentinelConn { settings: settings.clone(), current: Mutex::new(Some(conn)) })
    }

    pub(crate) async fn conn(&self) -> Result<MultiplexedConnection, redis::RedisError> {
        let mut cur = self.current.lock().await;
        if let Some(c) = cur.as_ref() {
            return Ok(c.clone());
        }
        let c = connect_master(&self.settings).await.map_err(|e| {
            redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, e.to_string()))
        })?;
        *cur = Some(c.clone());
        Ok(c)
    }

    pub(crate) async fn invalidate(&self) {
        *self.current.lock().await = None;
    }
}

/// Asks each sentinel in turn for the master's address.
pub(crate) async fn resolve_master(settings: &RedisSettings) -> Result<(String, u16), SharedError> {
    let Topology::Sentinel { sentinels, master, .. } = &settings.url.topology else {
        return Err(SharedError::Connect("not a sentinel URL".into()));
    };
    let mut errors = Vec::new();
    // Each sentinel gets a short attempt, so a dead one (dropping packets) cannot use up the whole budget.
    let per_attempt = settings.connect_timeout.min(std::time::Duration::from_secs(2));
    for (host, port) in sentinels {
        // Sentinels often run without a password while the data nodes have one: try without, then with —
        // the second attempt only when the first was refused for want of authentication.
        let mut needs_auth = false;
        for auth in [false, true] {
            if auth && (settings.url.credentials.password.is_none() || !needs_auth) {
                continue;
            }
            let attempt = async {
                let client = node_client(settings, host, *port, 0, auth)?;
                let mut c =
                    client.get_multiplexed_async_connection().await.map_err(|e| SharedError::Redis(e.to_string()))?;
                let addr: Option<(String, String)> = redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(master)
                    .query_async(&mut c)
                    .await
                    .map_err(|e| SharedError::Redis(e.to_string()))?;
                let (h, p) =
                    addr.ok_or_else(|| SharedError::Redis(format!("sentinel does not know master '{master}'")))?;
                let p: u16 = p.parse().map_err(|_| SharedError::Redis(format!("sentinel gave a bad port '{p}'")))?;
                Ok::<_, SharedError>((h, p))
            };
            match tokio::time::timeout(per_attempt, attempt).await {
                Ok(Ok(addr)) => return Ok(addr),
                Ok(Err(e)) => {
                    let text = e.to_string();
                    needs_auth = text.contains("NOAUTH") || text.to_ascii_lowercase().contains("auth");
                    errors.push(format!("{host}:{port}: {text}"));
                }
                Err(_) => errors.push(format!("{host}:{port}: timed out")),
            }
        }
    }
    Err(SharedError::Connect(format!("no sentinel could name master '{master}': {}", errors.join("; "))))
}

async fn connect_master(settings: &RedisSettings) -> Result<MultiplexedConnection, SharedError> {
    let Topology::Sentinel { db, .. } = &settings.url.topology else {
        return Err(SharedError::Connect("not a sentinel URL".into()));
    };
    let (host, port) = resolve_master(settings).await?;
    let client = node_client(settings, &host, port, *db, true)?;
    let mut conn = tokio::time::timeout(settings.connect_timeout, client.get_multiplexed_async_connection())
        .await
        .map_err(|_| SharedError::Connect(format!("master {host}:{port}: connect timed out")))?
        .map_err(|e| SharedError::Connect(format!("master {host}:{port}: {e}")))?;
    let role: Vec<redis::Value> =
        redis::cmd("ROLE").query_async(&mut conn).await.map_err(|e| SharedError::Connect(format!("ROLE: {e}")))?;
    let is_master = matches!(role.first(), Some(redis::Value::BulkString(b)) if b == b"master")
        || matches!(role.first(), Some(redis::Value::SimpleString(s)) if s == "master");
    if !is_master {
        return Err(SharedError::Connect(format!(
            "{host}:{port} is not the master (ROLE says otherwise); failover in progress?"
        )));
    }
    tracing::debug!(%host, port, "redis.sentinel.master");
    Ok(conn)
}
