//! PostgreSQL backend (`postgres` and `dual` modes): a connection pool, versioned migrations under an
//! advisory lock (several workers may start at once), and the stores, one module per domain.
//!
//! Every domain is built here, so `postgres` mode keeps everything in PostgreSQL.

mod agents;
mod alerts;
mod health;
mod keys;
mod migrations;
mod pricing;
mod projects;
mod rollups;
mod security;
mod servers;
mod spans;

pub(crate) use rollups::merge_into as merge_rollups;
pub(crate) use spans::fold;
mod users;

use crate::StorageError;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::time::Duration;

pub struct PgStorage {
    pool: Pool,
}

/// A pool error or an unreachable server is "unavailable" (retry later), not a server fault.
impl From<deadpool_postgres::PoolError> for StorageError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StorageError::Unavailable(format!("PostgreSQL connection: {e}"))
    }
}

impl From<tokio_postgres::Error> for StorageError {
    fn from(e: tokio_postgres::Error) -> Self {
        if let Some(db) = e.as_db_error() {
            if *db.code() == tokio_postgres::error::SqlState::UNIQUE_VIOLATION {
                return StorageError::Conflict(db.message().to_string());
            }
            return StorageError::Backend(format!("{}: {}", db.code().code(), db.message()));
        }
        if e.is_closed() {
            return StorageError::Unavailable(format!("PostgreSQL connection closed: {e}"));
        }
        StorageError::Backend(e.to_string())
    }
}

impl PgStorage {
    /// Connects (`max` connections at most), checks the server answers, and migrates the schema.
    /// `url` is never logged: it may hold a password.
    pub async fn open(url: &str, max: usize) -> Result<PgStorage, StorageError> {
        let config: tokio_postgres::Config = url.parse().map_err(|e| {
            StorageError::Open(format!(
                "LANGSIGHT_POSTGRES_URL is not a valid PostgreSQL URL ({e}); expected postgres://user:password@host:5432/db"
            ))
        })?;
        let manager = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(max.max(1))
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StorageError::Open(format!("cannot build the PostgreSQL pool: {e}")))?;
        let mut client = pool.get().await.map_err(|e| {
            StorageError::Open(format!(
                "cannot connect to PostgreSQL at LANGSIGHT_POSTGRES_URL ({e}); check the host, port, credentials and that the server runs"
            ))
        })?;
        migrations::run(&mut client).await?;
        drop(client);
        Ok(PgStorage { pool })
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StorageError> {
        Ok(self.pool.get().await?)
    }
}

#[async_trait::async_trait]
impl crate::Probe for PgStorage {
    fn name(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<(), StorageError> {
        self.client().await?.simple_query("SELECT 1").await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl crate::Closer for PgStorage {
    async fn close(&self) {
        self.pool.close();
    }
}
