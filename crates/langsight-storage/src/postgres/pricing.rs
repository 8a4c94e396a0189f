//! [`PricingStore`] for PostgreSQL.

use super::PgStorage;
use crate::model::ModelPrice;
use crate::{PricingStore, StorageError};
use async_trait::async_trait;
use tokio_postgres::Row;

const COLUMNS: &str = "id, provider, model_id, display_name, input_per_1m_usd, output_per_1m_usd, \
    cache_read_per_1m_usd, thinking_per_1m_usd, effective_from, effective_to, notes, is_custom";

fn from_row(r: &Row) -> ModelPrice {
    ModelPrice {
        id: r.get(0),
        provider: r.get(1),
        model_id: r.get(2),
        display_name: r.get(3),
        input_per_1m_usd: r.get(4),
        output_per_1m_usd: r.get(5),
        cache_read_per_1m_usd: r.get(6),
        thinking_per_1m_usd: r.get(7),
        effective_from: r.get(8),
        effective_to: r.get(9),
        notes: r.get(10),
        is_custom: r.get(11),
    }
}

async fn insert(client: &deadpool_postgres::Transaction<'_>, p: &ModelPrice) -> Result<(), StorageError> {
    client
        .execute(
            &format!(
                "INSERT INTO model_pricing ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            ),
            &[
                &p.id,
                &p.provider,
                &p.model_id,
                &p.display_name,
                &p.input_per_1m_usd,
                &p.output_per_1m_usd,
                &p.cache_read_per_1m_usd,
                &p.thinking_per_1m_usd,
                &p.effective_from,
                &p.effective_to,
                &p.notes,
                &p.is_custom,
            ],
        )
        .await?;
    Ok(())
}

#[async_trait]
impl PricingStore for PgStorage {
    async fn list_prices(&self) -> Result<Vec<ModelPrice>, StorageError> {
        let rows = self
            .client()
            .await?
            .query(
                &format!("SELECT {COLUMNS} FROM model_pricing ORDER BY provider, model_id, effective_from DESC, id"),
                &[],
            )
            .await?;
        Ok(rows.iter().map(from_row).collect())
    }

    async fn add_price(&self, price: ModelPrice, retire: Option<String>) -> Result<bool, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if let Some(old) = retire {
            let n = tx
                .execute(
                    "UPDATE model_pricing SET effective_to = $2 WHERE id = $1 AND effective_to IS NULL",
                    &[&old, &price.effective_from],
                )
                .await?;
            if n == 0 {
                return Ok(false);
            }
        }
        insert(&tx, &price).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn retire_price(&self, id: &str, at: i64) -> Result<bool, StorageError> {
        let n = self
            .client()
            .await?
            .execute("UPDATE model_pricing SET effective_to = $2 WHERE id = $1 AND effective_to IS NULL", &[&id, &at])
            .await?;
        Ok(n > 0)
    }

    async fn seed_prices(&self, prices: Vec<ModelPrice>) -> Result<usize, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Several workers may seed at once: one at a time, so no model is seeded twice.
        tx.execute("LOCK TABLE model_pricing IN SHARE ROW EXCLUSIVE MODE", &[]).await?;
        let mut added = 0;
        for p in &prices {
            let known: i64 =
                tx.query_one("SELECT count(*) FROM model_pricing WHERE model_id = $1", &[&p.model_id]).await?.get(0);
            if known == 0 {
                insert(&tx, p).await?;
                added += 1;
            }
        }
        tx.commit().await?;
        Ok(added)
    }
}
