//! [`PricingStore`] for SQLite.

use super::SqliteStorage;
use crate::model::ModelPrice;
use crate::{PricingStore, StorageError};
use async_trait::async_trait;
use rusqlite::{params, Connection, Row};

const COLUMNS: &str = "id, provider, model_id, display_name, input_per_1m_usd, output_per_1m_usd, \
    cache_read_per_1m_usd, thinking_per_1m_usd, effective_from, effective_to, notes, is_custom";

fn from_row(r: &Row) -> rusqlite::Result<ModelPrice> {
    Ok(ModelPrice {
        id: r.get(0)?,
        provider: r.get(1)?,
        model_id: r.get(2)?,
        display_name: r.get(3)?,
        input_per_1m_usd: r.get(4)?,
        output_per_1m_usd: r.get(5)?,
        cache_read_per_1m_usd: r.get(6)?,
        thinking_per_1m_usd: r.get(7)?,
        effective_from: r.get(8)?,
        effective_to: r.get(9)?,
        notes: r.get(10)?,
        is_custom: r.get(11)?,
    })
}

fn insert(conn: &Connection, p: &ModelPrice) -> Result<(), StorageError> {
    conn.execute(
        &format!("INSERT INTO model_pricing ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"),
        params![
            p.id,
            p.provider,
            p.model_id,
            p.display_name,
            p.input_per_1m_usd,
            p.output_per_1m_usd,
            p.cache_read_per_1m_usd,
            p.thinking_per_1m_usd,
            p.effective_from,
            p.effective_to,
            p.notes,
            p.is_custom
        ],
    )?;
    Ok(())
}

#[async_trait]
impl PricingStore for SqliteStorage {
    async fn list_prices(&self) -> Result<Vec<ModelPrice>, StorageError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM model_pricing ORDER BY provider, model_id, effective_from DESC, id"
            ))?;
            let rows = stmt.query_map([], from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn add_price(&self, price: ModelPrice, retire: Option<String>) -> Result<bool, StorageError> {
        self.write(move |conn| {
            if let Some(old) = retire {
                let n = conn.execute(
                    "UPDATE model_pricing SET effective_to = ?2 WHERE id = ?1 AND effective_to IS NULL",
                    params![old, price.effective_from],
                )?;
                if n == 0 {
                    return Ok(false);
                }
            }
            insert(conn, &price)?;
            Ok(true)
        })
        .await
    }

    async fn retire_price(&self, id: &str, at: i64) -> Result<bool, StorageError> {
        let id = id.to_string();
        self.write(move |conn| {
            let n = conn.execute(
                "UPDATE model_pricing SET effective_to = ?2 WHERE id = ?1 AND effective_to IS NULL",
                params![id, at],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn seed_prices(&self, prices: Vec<ModelPrice>) -> Result<usize, StorageError> {
        self.write(move |conn| {
            let mut added = 0;
            for p in &prices {
                let known: i64 = conn.query_row(
                    "SELECT count(*) FROM model_pricing WHERE model_id = ?1",
                    params![p.model_id],
                    |r| r.get(0),
                )?;
                if known == 0 {
                    insert(conn, p)?;
                    added += 1;
                }
            }
            Ok(added)
        })
        .await
    }
}
