//! ClickHouse over its HTTP interface, for the `dual` mode's analytics (spans, health history, drift).
//!
//! Used by the `dual` storage mode, with a durable local spool ([`spool`]) for ClickHouse outages.

mod health;
mod spans;
pub mod spool;

pub use spans::DualSpans;

use crate::StorageError;

/// The schema, one statement per `;`, with `{db}` for the database.
const SCHEMA: &str = include_str!("schema.sql");

pub struct ClickHouse {
    http: reqwest::Client,
    url: String,
    database: String,
    user: String,
    password: String,
}

impl ClickHouse {
    /// A client for `url` (`http://host:8123`), checked with `SELECT 1`; creates the database and tables.
    pub async fn open(url: &str, database: &str, user: &str, password: &str) -> Result<ClickHouse, StorageError> {
        if !database.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || database.is_empty() {
            return Err(StorageError::Open(format!(
                "LANGSIGHT_CLICKHOUSE_DATABASE '{database}' must be letters, digits and underscores"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| StorageError::Open(format!("cannot build the ClickHouse HTTP client: {e}")))?;
        let ch = ClickHouse {
            http,
            url: url.trim_end_matches('/').to_string(),
            database: database.into(),
            user: user.into(),
            password: password.into(),
        };
        ch.query("SELECT 1").await.map_err(|e| {
            StorageError::Open(format!(
                "cannot reach ClickHouse at LANGSIGHT_CLICKHOUSE_URL ({e}); check the URL and credentials"
            ))
        })?;
        ch.query(&format!("CREATE DATABASE IF NOT EXISTS {}", ch.database)).await?;
        // Comments first (they may contain `;`), then one statement per `;`.
        let sql: String = SCHEMA.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
        for stmt in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            ch.query(&stmt.replace("{db}", &ch.database)).await?;
        }
        ch.ensure_ingested_at().await?;
        Ok(ch)
    }

    /// Tables created before `spans.ingested_at` existed get it, with 0 for the rows they hold: those rows were
    /// written before rollups were kept, and the rollup backfill folds exactly them. Several workers may start
    /// at once: a second ALTER failing because the column now exists is success.
    async fn ensure_ingested_at(&self) -> Result<(), StorageError> {
        let has = || async {
            let n = self
                .query(&format!(
                    "SELECT count() FROM system.columns WHERE database = {} AND table = 'spans' AND name = 'ingested_at'",
                    quote(&self.database)
                ))
                .await?;
            Ok::<bool, StorageError>(n.trim() != "0")
        };
        if has().await? {
            return Ok(());
        }
        let added =
            self.query(&format!("ALTER TABLE {}.spans ADD COLUMN ingested_at Int64 DEFAULT 0", self.database)).await;
        match added {
            Ok(_) => Ok(()),
            Err(_) if has().await? => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Runs a statement and returns the response body (use `FORMAT JSONEachRow` for rows).
    pub async fn query(&self, sql: &str) -> Result<String, StorageError> {
        self.post(None, sql.to_string()).await
    }

    /// Inserts rows (JSON objects, one per line) into `table` of our database.
    pub async fn insert(&self, table: &str, rows: &[serde_json::Value]) -> Result<(), StorageError> {
        self.insert_raw(table, json_lines(rows)).await
    }

    /// Inserts JSONEachRow text into `table`.
    pub async fn insert_raw(&self, table: &str, body: String) -> Result<(), StorageError> {
        if !table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(StorageError::Backend(format!("bad table name '{table}'")));
        }
        let q = format!("INSERT INTO {}.{table} FORMAT JSONEachRow", self.database);
        self.post(Some(q), body).await.map(|_| ())
    }

    /// Inserts rows already encoded as ClickHouse's `RowBinary` for `columns` (in that order). The binary form
    /// costs ClickHouse a fraction of parsing JSON rows, which bounded dual-mode ingest (BENCHMARKS.md).
    pub async fn insert_row_binary(&self, table: &str, columns: &str, body: Vec<u8>) -> Result<(), StorageError> {
        if !table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(StorageError::Backend(format!("bad table name '{table}'")));
        }
        let q = format!("INSERT INTO {}.{table} ({columns}) FORMAT RowBinary", self.database);
        self.post(Some(q), body).await.map(|_| ())
    }

    async fn post(&self, query: Option<String>, body: impl Into<reqwest::Body>) -> Result<String, StorageError> {
        let mut url = reqwest::Url::parse(&self.url)
            .map_err(|e| StorageError::Open(format!("LANGSIGHT_CLICKHOUSE_URL is not a valid URL: {e}")))?;
        if let Some(q) = query {
            url.query_pairs_mut().append_pair("query", &q);
        }
        let mut req = self.http.post(url).header("X-ClickHouse-User", &self.user).body(body);
        if !self.password.is_empty() {
            req = req.header("X-ClickHouse-Key", &self.password);
        }
        let resp = req.send().await.map_err(|e| StorageError::Unavailable(format!("ClickHouse unreachable: {e}")))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| StorageError::Unavailable(format!("ClickHouse read failed: {e}")))?;
        if status.is_success() {
            Ok(text)
        } else {
            Err(StorageError::Backend(format!("ClickHouse answered {status}: {}", text.trim())))
        }
    }

    pub fn database(&self) -> &str {
        &self.database
    }
}

/// Rows as JSONEachRow text.
pub fn json_lines(rows: &[serde_json::Value]) -> String {
    let mut body = String::new();
    for r in rows {
        body.push_str(&r.to_string());
        body.push('\n');
    }
    body
}

/// Appends values in ClickHouse's `RowBinary` encoding: each column in table order, strings as a LEB128 length
/// and their bytes, integers and floats little-endian, `Nullable` as a 1/0 null byte before the value.
pub struct RowBinary(pub Vec<u8>);

impl RowBinary {
    pub fn string(&mut self, s: &str) {
        let mut n = s.len() as u64;
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                self.0.push(byte);
                break;
            }
            self.0.push(byte | 0x80);
        }
        self.0.extend_from_slice(s.as_bytes());
    }

    pub fn opt_string(&mut self, s: Option<&str>) {
        self.nullable(s, Self::string);
    }

    pub fn int64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    pub fn opt_int64(&mut self, v: Option<i64>) {
        self.nullable(v, Self::int64);
    }

    /// `Nullable(T)`: the null byte, then the value when there is one.
    fn nullable<T>(&mut self, v: Option<T>, write: impl FnOnce(&mut Self, T)) {
        self.0.push(u8::from(v.is_none()));
        if let Some(v) = v {
            write(self, v);
        }
    }

    pub fn float64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
}

/// A string literal for ClickHouse SQL (backslash and quote escaped).
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Shutdown in `dual` mode: what the spool's open segment holds goes to ClickHouse now rather than at the next
/// start (it would wait there, durable, for a minute before another worker took it), then PostgreSQL closes.
pub struct DualCloser {
    pub pg: std::sync::Arc<crate::postgres::PgStorage>,
    pub ch: std::sync::Arc<ClickHouse>,
    pub spool: Option<std::sync::Arc<spool::Spool>>,
}

#[async_trait::async_trait]
impl crate::Closer for DualCloser {
    async fn close(&self) {
        if let Some(spool) = &self.spool {
            if let Err(e) = spool.flush(&self.ch).await {
                tracing::warn!(error = %e, "clickhouse.spool_flush_at_shutdown_failed: the spans stay spooled");
            }
        }
        crate::Closer::close(&*self.pg).await;
    }
}

#[async_trait::async_trait]
impl crate::Probe for ClickHouse {
    fn name(&self) -> &'static str {
        "clickhouse"
    }

    async fn ping(&self) -> Result<(), StorageError> {
        self.query("SELECT 1").await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::RowBinary;

    #[test]
    fn row_binary_lengths_are_leb128_and_nulls_lead_their_value() {
        let mut r = RowBinary(Vec::new());
        r.string(&"a".repeat(127));
        assert_eq!(&r.0[..2], &[127, b'a']);
        let mut r = RowBinary(Vec::new());
        r.string(&"b".repeat(128));
        assert_eq!(&r.0[..3], &[0x80, 0x01, b'b']);
        let mut r = RowBinary(Vec::new());
        r.string(&"c".repeat(300));
        assert_eq!(&r.0[..2], &[0xac, 0x02]);
        assert_eq!(r.0.len(), 302);
        let mut r = RowBinary(Vec::new());
        r.opt_string(None);
        r.opt_string(Some("é"));
        r.opt_int64(Some(-2));
        r.float64(1.5);
        let mut want = vec![1, 0, 2, 0xc3, 0xa9, 0];
        want.extend_from_slice(&(-2i64).to_le_bytes());
        want.extend_from_slice(&1.5f64.to_le_bytes());
        assert_eq!(r.0, want);
    }
}
