//! [`KeyStore`] for PostgreSQL.

use super::PgStorage;
use crate::model::{ApiKeyRecord, KeyRole, NewApiKey};
use crate::{KeyStore, StorageError};
use async_trait::async_trait;
use tokio_postgres::Row;

const COLUMNS: &str =
    "id, name, key_prefix, role, user_id, project_id, created_at, expires_at, revoked_at, last_used_at";

fn key_from_row(r: &Row) -> ApiKeyRecord {
    let role: String = r.get(3);
    ApiKeyRecord {
        id: r.get(0),
        name: r.get(1),
        key_prefix: r.get(2),
        // An unknown stored role grants the least.
        role: KeyRole::parse(&role).unwrap_or(KeyRole::Viewer),
        user_id: r.get(4),
        project_id: r.get(5),
        created_at: r.get(6),
        expires_at: r.get(7),
        revoked_at: r.get(8),
        last_used_at: r.get(9),
    }
}

#[async_trait]
impl KeyStore for PgStorage {
    async fn create_api_key(&self, k: NewApiKey) -> Result<ApiKeyRecord, StorageError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO api_keys (id, name, key_hash, key_prefix, role, user_id, project_id, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[&k.id, &k.name, &k.key_hash, &k.key_prefix, &k.role.as_str(), &k.user_id, &k.project_id, &k.created_at, &k.expires_at],
            )
            .await?;
        Ok(ApiKeyRecord {
            id: k.id,
            name: k.name,
            key_prefix: k.key_prefix,
            role: k.role,
            user_id: k.user_id,
            project_id: k.project_id,
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked_at: None,
            last_used_at: None,
        })
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StorageError> {
        let rows = self
            .client()
            .await?
            .query(&format!("SELECT {COLUMNS} FROM api_keys ORDER BY created_at DESC, seq DESC"), &[])
            .await?;
        Ok(rows.iter().map(key_from_row).collect())
    }

    async fn revoke_api_key(&self, id: &str) -> Result<bool, StorageError> {
        let now = langsight_core::time::now_micros();
        let n = self
            .client()
            .await?
            .execute("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL", &[&id, &now])
            .await?;
        Ok(n == 1)
    }

    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>, StorageError> {
        let row = self
            .client()
            .await?
            .query_opt(&format!("SELECT {COLUMNS} FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL"), &[&hash])
            .await?;
        Ok(row.as_ref().map(key_from_row))
    }

    async fn count_active_api_keys(&self) -> Result<u64, StorageError> {
        let n: i64 =
            self.client().await?.query_one("SELECT count(*) FROM api_keys WHERE revoked_at IS NULL", &[]).await?.get(0);
        Ok(n as u64)
    }

    async fn touch_api_key(&self, id: &str, at: i64) -> Result<(), StorageError> {
        self.client().await?.execute("UPDATE api_keys SET last_used_at = $2 WHERE id = $1", &[&id, &at]).await?;
        Ok(())
    }
}
