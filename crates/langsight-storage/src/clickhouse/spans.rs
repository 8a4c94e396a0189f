//! The `dual` mode's span store: raw spans in ClickHouse, session rollups and hourly tool aggregates in
//! PostgreSQL (transactional upserts, which ClickHouse is not built for). A batch is accepted only when both
//! hold it.

use super::health::{int, opt_text, rows, text};
use super::{quote, ClickHouse};
use crate::model::*;
use crate::postgres::PgStorage;
use crate::{SpanStore, StorageError};
use async_trait::async_trait;
use langsight_core::rollup::RollupBatch;
use langsight_core::span::{LineageProvenance, LineageStatus, Span, SpanStatus, SpanType};
use serde_json::{Map, Value};
use std::sync::Arc;

pub struct DualSpans {
    pub pg: Arc<PgStorage>,
    pub ch: Arc<ClickHouse>,
    /// Where batches go while ClickHouse is unreachable (none: ingest answers 503 then).
    pub spool: Option<Arc<super::spool::Spool>>,
}

const COLUMNS: &str = "span_id, parent_span_id, span_type, trace_id, session_id, server_name, tool_name, \
    started_at, ended_at, latency_ms, status, error, agent_name, input_json, output_json, llm_input, llm_output, \
    replay_of, project_id, input_tokens, output_tokens, model_id, finish_reason, cache_read_tokens, \
    cache_creation_tokens, thinking_tokens, target_agent_name, lineage_provenance, lineage_status, schema_version";

/// The columns [`span_row_binary`] writes, in its order.
const BINARY_COLUMNS: &str = "span_id, parent_span_id, span_type, trace_id, session_id, server_name, tool_name, \
    started_at, ended_at, latency_ms, status, error, agent_name, input_json, output_json, llm_input, llm_output, \
    replay_of, project_id, input_tokens, output_tokens, model_id, finish_reason, cache_read_tokens, \
    cache_creation_tokens, thinking_tokens, target_agent_name, lineage_provenance, lineage_status, schema_version, \
    ingested_at";

/// A span as its ClickHouse row in `RowBinary`; `ingested_at` (now, µs) tells the rollup backfill this row's
/// rollups were kept at ingest (rows written before that column existed read 0).
fn span_row_binary(s: &Span, ingested_at: i64, out: &mut super::RowBinary) {
    out.string(&s.span_id);
    out.opt_string(s.parent_span_id.as_deref());
    out.string(s.span_type.as_str());
    out.opt_string(s.trace_id.as_deref());
    out.opt_string(s.session_id.as_deref());
    out.string(&s.server_name);
    out.string(&s.tool_name);
    out.int64(s.started_at);
    out.int64(s.ended_at);
    out.float64(s.latency_ms);
    out.string(s.status.as_str());
    out.opt_string(s.error.as_deref());
    out.opt_string(s.agent_name.as_deref());
    out.opt_string(s.input_json.as_deref());
    out.opt_string(s.output_json.as_deref());
    out.opt_string(s.llm_input.as_deref());
    out.opt_string(s.llm_output.as_deref());
    out.opt_string(s.replay_of.as_deref());
    out.string(s.project().unwrap_or(""));
    out.opt_int64(s.input_tokens);
    out.opt_int64(s.output_tokens);
    out.opt_string(s.model_id.as_deref());
    out.opt_string(s.finish_reason.as_deref());
    out.opt_int64(s.cache_read_tokens);
    out.opt_int64(s.cache_creation_tokens);
    out.opt_int64(s.thinking_tokens);
    out.opt_string(s.target_agent_name.as_deref());
    out.string(s.lineage_provenance.as_str());
    out.string(s.lineage_status.as_str());
    out.string(&s.schema_version);
    out.int64(ingested_at);
}

fn opt_int(m: &Map<String, Value>, k: &str) -> Option<i64> {
    match m.get(k) {
        None | Some(Value::Null) => None,
        _ => Some(int(m, k)),
    }
}

fn span_from(m: &Map<String, Value>) -> Result<Span, StorageError> {
    let bad = |what: &str, v: String| StorageError::Backend(format!("stored span has a bad {what} '{v}'"));
    let (span_type, status, provenance, lineage, project) = (
        text(m, "span_type"),
        text(m, "status"),
        text(m, "lineage_provenance"),
        text(m, "lineage_status"),
        text(m, "project_id"),
    );
    Ok(Span {
        span_id: text(m, "span_id"),
        parent_span_id: opt_text(m, "parent_span_id"),
        span_type: SpanType::parse(&span_type).ok_or_else(|| bad("span_type", span_type.clone()))?,
        trace_id: opt_text(m, "trace_id"),
        session_id: opt_text(m, "session_id"),
        server_name: text(m, "server_name"),
        tool_name: text(m, "tool_name"),
        started_at: int(m, "started_at"),
        ended_at: int(m, "ended_at"),
        latency_ms: m.get("latency_ms").and_then(Value::as_f64).unwrap_or_default(),
        status: SpanStatus::parse(&status).ok_or_else(|| bad("status", status.clone()))?,
        error: opt_text(m, "error"),
        agent_name: opt_text(m, "agent_name"),
        input_json: opt_text(m, "input_json"),
        output_json: opt_text(m, "output_json"),
        llm_input: opt_text(m, "llm_input"),
        llm_output: opt_text(m, "llm_output"),
        replay_of: opt_text(m, "replay_of"),
        project_id: (!project.is_empty()).then_some(project),
        input_tokens: opt_int(m, "input_tokens"),
        output_tokens: opt_int(m, "output_tokens"),
        model_id: opt_text(m, "model_id"),
        finish_reason: opt_text(m, "finish_reason"),
        cache_read_tokens: opt_int(m, "cache_read_tokens"),
        cache_creation_tokens: opt_int(m, "cache_creation_tokens"),
        thinking_tokens: opt_int(m, "thinking_tokens"),
        target_agent_name: opt_text(m, "target_agent_name"),
        lineage_provenance: LineageProvenance::parse(&provenance)
            .ok_or_else(|| bad("lineage_provenance", provenance.clone()))?,
        lineage_status: LineageStatus::parse(&lineage).ok_or_else(|| bad("lineage_status", lineage.clone()))?,
        schema_version: text(m, "schema_version"),
    })
}

/// Columns of a span fact (analytics folds and the rollup backfill).
const FACT_COLUMNS: &str = "span_id, parent_span_id, span_type, session_id, server_name, tool_name, agent_name, \
    target_agent_name, started_at, ended_at, latency_ms, status, substring(error, 1, 1200) AS error, model_id, \
    input_tokens, output_tokens, thinking_tokens, lineage_provenance, project_id";

fn fact_from(m: &Map<String, Value>) -> Result<SpanFact, StorageError> {
    let bad = |what: &str, v: String| StorageError::Backend(format!("stored span has a bad {what} '{v}'"));
    let (span_type, status) = (text(m, "span_type"), text(m, "status"));
    Ok(SpanFact {
        span_id: text(m, "span_id"),
        parent_span_id: opt_text(m, "parent_span_id"),
        span_type: SpanType::parse(&span_type).ok_or_else(|| bad("span_type", span_type.clone()))?,
        session_id: opt_text(m, "session_id"),
        server_name: text(m, "server_name"),
        tool_name: text(m, "tool_name"),
        agent_name: opt_text(m, "agent_name"),
        target_agent_name: opt_text(m, "target_agent_name"),
        started_at: int(m, "started_at"),
        ended_at: int(m, "ended_at"),
        latency_ms: m.get("latency_ms").and_then(Value::as_f64).unwrap_or_default(),
        status: SpanStatus::parse(&status).ok_or_else(|| bad("status", status.clone()))?,
        // Cut to the fact length here: ClickHouse 18.16's substringUTF8 counts a 4-byte character
        // as four, so the cut is made on 1,200 bytes (≥ 300 characters) and then by characters.
        error: opt_text(m, "error")
            .map(|e| langsight_core::rollup::error_head(Some(&e)).unwrap_or_default().to_string()),
        model_id: opt_text(m, "model_id"),
        input_tokens: opt_int(m, "input_tokens"),
        output_tokens: opt_int(m, "output_tokens"),
        thinking_tokens: opt_int(m, "thinking_tokens"),
        explicit_lineage: text(m, "lineage_provenance") == "explicit",
        project_id: Some(text(m, "project_id")).filter(|p| !p.is_empty()),
        cursor: FactCursor { started_at: int(m, "started_at"), tiebreak: text(m, "span_id") },
    })
}

/// `AND project_id = '…'` for a project, nothing for every project.
fn project_filter(project_id: Option<&str>, include_global: bool) -> String {
    match project_id {
        Some(p) if include_global => format!(" AND (project_id = {} OR project_id = '')", quote(p)),
        Some(p) => format!(" AND project_id = {}", quote(p)),
        None => String::new(),
    }
}

impl DualSpans {
    /// The raw spans into the spool's open segment (fsynced; the flusher sends it to ClickHouse in bulk), or
    /// straight into ClickHouse when there is no spool.
    async fn store_raw(&self, spans: &[Span]) -> Result<(), StorageError> {
        let now = langsight_core::time::now_micros();
        let mut body = super::RowBinary(Vec::with_capacity(spans.len() * 512));
        for s in spans {
            span_row_binary(s, now, &mut body);
        }
        match &self.spool {
            Some(spool) => spool.append_rows("spans", BINARY_COLUMNS, body.0).await,
            None => self.ch.insert_row_binary("spans", BINARY_COLUMNS, body.0).await,
        }
    }

    /// Before a read of spans: every span this process has accepted reaches ClickHouse first.
    async fn settle(&self) {
        if let Some(spool) = &self.spool {
            spool.settle(&self.ch).await;
        }
    }

    /// Folds the next page of ClickHouse spans written before rollups were kept into the PostgreSQL rollups
    /// (migration 14 explains the cursor). A page ends on a whole sort key: rows sharing the last key (an SDK's
    /// re-sent span) are all read with it, so none is skipped or folded twice across pages.
    async fn backfill_clickhouse(&self, page: usize) -> Result<Option<BackfillProgress>, StorageError> {
        let mut client = self.pg.client().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_one(
                "SELECT cutoff, after_project, after_started, after_span, done, total, finished \
                 FROM rollup_backfill_clickhouse WHERE id = 1 FOR UPDATE",
                &[],
            )
            .await?;
        let (cutoff, done, finished): (i64, i64, bool) = (row.get(0), row.get(4), row.get(6));
        if finished {
            return Ok(None);
        }
        let db = self.ch.database();
        let backlog = format!("{db}.spans WHERE ingested_at = 0 AND started_at < {cutoff}");
        let total: i64 = match row.get::<_, Option<i64>>(5) {
            Some(t) => t,
            None => {
                let n = self.ch.query(&format!("SELECT count() FROM {backlog}")).await?;
                n.trim().parse().map_err(|e| StorageError::Backend(format!("ClickHouse count '{n}': {e}")))?
            }
        };
        let after = match (row.get::<_, Option<String>>(1), row.get::<_, Option<i64>>(2), row.get::<_, Option<String>>(3))
        {
            (Some(p), Some(at), Some(id)) => format!(
                " AND (project_id > {p} OR (project_id = {p} AND (started_at > {at} OR (started_at = {at} AND span_id > {id}))))",
                p = quote(&p),
                id = quote(&id)
            ),
            _ => String::new(),
        };
        let key = |f: &SpanFact| (f.project_id.clone().unwrap_or_default(), f.started_at, f.span_id.clone());
        let out = self
            .ch
            .query(&format!(
                "SELECT {FACT_COLUMNS} FROM {backlog}{after} ORDER BY project_id, started_at, span_id LIMIT {page} \
                 FORMAT JSONEachRow"
            ))
            .await?;
        let mut facts = rows(&out)?.iter().map(fact_from).collect::<Result<Vec<_>, _>>()?;
        if facts.len() >= page {
            if let Some(last) = facts.last().map(key) {
                facts.retain(|f| key(f) != last);
                let (p, at, id) = &last;
                let out = self
                    .ch
                    .query(&format!(
                        "SELECT {FACT_COLUMNS} FROM {backlog} AND project_id = {} AND started_at = {at} \
                         AND span_id = {} FORMAT JSONEachRow",
                        quote(p),
                        quote(id)
                    ))
                    .await?;
                facts.extend(rows(&out)?.iter().map(fact_from).collect::<Result<Vec<_>, _>>()?);
            }
        }
        let done = done + facts.len() as i64;
        match facts.last().map(key) {
            Some((p, at, id)) => {
                crate::postgres::merge_rollups(&tx, &RollupBatch::from_views(facts.iter().map(fact_view))).await?;
                tx.execute(
                    "UPDATE rollup_backfill_clickhouse SET after_project = $1, after_started = $2, after_span = $3, \
                     done = $4, total = $5 WHERE id = 1",
                    &[&p, &at, &id, &done, &total],
                )
                .await?;
            }
            None => {
                tx.execute("UPDATE rollup_backfill_clickhouse SET finished = true, total = $1 WHERE id = 1", &[&total])
                    .await?;
            }
        }
        tx.commit().await?;
        if facts.is_empty() {
            return Ok(None);
        }
        Ok(Some(BackfillProgress { spans: facts.len() as u64, done: done as u64, total: total as u64 }))
    }

    /// The spans into ClickHouse while the same spans are folded into PostgreSQL's session rollups and hourly
    /// aggregates, at the same time rather than one after the other (a group costs the slower of the two
    /// instead of their sum). The transaction commits only once ClickHouse has the spans, so a failed insert
    /// leaves no rollup behind.
    async fn store_and_fold(&self, spans: &[Span]) -> Result<IngestOutcome, Written> {
        let mut client = self.pg.client().await.map_err(Written::Nothing)?;
        let tx = client.transaction().await.map_err(|e| Written::Nothing(e.into()))?;
        let (raw, folded) = tokio::join!(self.store_raw(spans), crate::postgres::fold(&tx, spans));
        // On any error below the transaction is dropped, which rolls it back.
        raw.map_err(Written::Nothing)?;
        let sessions = folded.map_err(Written::SpansOnly)?;
        tx.commit().await.map_err(|e| Written::SpansOnly(e.into()))?;
        Ok(IngestOutcome { accepted: spans.len(), sessions })
    }

    /// The session rollups and hourly aggregates in PostgreSQL, in one transaction.
    async fn fold(&self, spans: &[Span]) -> Result<IngestOutcome, StorageError> {
        let mut client = self.pg.client().await?;
        let tx = client.transaction().await?;
        let sessions = crate::postgres::fold(&tx, spans).await?;
        tx.commit().await?;
        Ok(IngestOutcome { accepted: spans.len(), sessions })
    }
}

/// How far a failed write got: what a retry batch by batch must redo.
enum Written {
    /// Nothing is stored (the ClickHouse insert failed, or PostgreSQL could not be reached): redo everything.
    Nothing(StorageError),
    /// The spans are in ClickHouse, the rollups are not: fold again, do not insert again.
    SpansOnly(StorageError),
}

impl Written {
    fn into_error(self) -> StorageError {
        match self {
            Written::Nothing(e) | Written::SpansOnly(e) => e,
        }
    }
}

#[async_trait]
impl SpanStore for DualSpans {
    async fn ingest(&self, spans: Vec<Span>) -> Result<IngestOutcome, StorageError> {
        if spans.is_empty() {
            return Ok(IngestOutcome::default());
        }
        self.store_and_fold(&spans).await.map_err(Written::into_error)
    }

    /// One ClickHouse INSERT for the whole group beside one PostgreSQL transaction for its rollups. A failure
    /// falls back to batch by batch, from the step that failed (spans already in ClickHouse are not sent twice).
    async fn ingest_group(&self, batches: Vec<Vec<Span>>) -> Vec<Result<IngestOutcome, StorageError>> {
        if batches.len() == 1 {
            let mut batches = batches;
            return vec![self.ingest(batches.remove(0)).await];
        }
        let all: Vec<Span> = batches.iter().flatten().cloned().collect();
        match self.store_and_fold(&all).await {
            Ok(merged) => crate::group_commit::split_outcome(&batches, merged).into_iter().map(Ok).collect(),
            Err(Written::Nothing(e)) => {
                tracing::warn!(error = %e, batches = batches.len(), "grouped ClickHouse insert failed; one by one");
                crate::group_commit::one_by_one(self, batches).await
            }
            Err(Written::SpansOnly(e)) => {
                tracing::warn!(error = %e, batches = batches.len(), "grouped rollup fold failed; one by one");
                let mut out = Vec::with_capacity(batches.len());
                for batch in &batches {
                    out.push(self.fold(batch).await);
                }
                out
            }
        }
    }

    async fn list_sessions(&self, query: SessionQuery) -> Result<Vec<SessionRow>, StorageError> {
        self.pg.list_sessions(query).await
    }

    async fn count_sessions(&self, query: SessionQuery) -> Result<SessionCounts, StorageError> {
        self.pg.count_sessions(query).await
    }

    async fn server_invocations(
        &self,
        project_id: Option<&str>,
        since: i64,
    ) -> Result<Vec<ServerInvocations>, StorageError> {
        self.settle().await;
        let db = self.ch.database();
        let out = self
            .ch
            .query(&format!(
                "SELECT server_name, max(started_at) AS last_called_at, argMax(status, started_at) AS last_call_status, \
                 count() AS total_calls, countIf(status = 'success') AS success_calls FROM {db}.spans \
                 WHERE started_at >= {since} AND server_name != '' AND span_type = 'tool_call'{} \
                 GROUP BY server_name ORDER BY last_called_at DESC FORMAT JSONEachRow",
                project_filter(project_id, false)
            ))
            .await?;
        Ok(rows(&out)?
            .iter()
            .map(|m| ServerInvocations {
                server_name: text(m, "server_name"),
                last_called_at: int(m, "last_called_at"),
                last_call_status: text(m, "last_call_status"),
                total_calls: int(m, "total_calls"),
                success_calls: int(m, "success_calls"),
            })
            .collect())
    }

    async fn tool_hours(&self, project_id: Option<&str>, since_hour: i64) -> Result<Vec<ToolHour>, StorageError> {
        self.pg.tool_hours(project_id, since_hour).await
    }

    async fn server_calls(
        &self,
        server: &str,
        project_id: Option<&str>,
        since: i64,
        limit: usize,
    ) -> Result<Vec<Span>, StorageError> {
        self.settle().await;
        let db = self.ch.database();
        let out = self
            .ch
            .query(&format!(
                "SELECT {COLUMNS} FROM {db}.spans WHERE server_name = {} AND span_type = 'tool_call' AND started_at >= {since}{} \
                 ORDER BY started_at DESC LIMIT {limit} FORMAT JSONEachRow",
                quote(server),
                project_filter(project_id, true)
            ))
            .await?;
        rows(&out)?.iter().map(span_from).collect()
    }

    async fn prune_before(&self, before: i64) -> Result<u64, StorageError> {
        self.settle().await;
        let db = self.ch.database();
        let n: u64 = self
            .ch
            .query(&format!("SELECT count() FROM {db}.spans WHERE started_at < {before}"))
            .await?
            .trim()
            .parse()
            .unwrap_or(0);
        if n > 0 {
            // Whole months before the cutoff's month go by dropping their partitions (cheap); the cutoff's own
            // month keeps its newer rows, its older ones go by a delete mutation.
            let cutoff_month = self
                .ch
                .query(&format!("SELECT toYYYYMM(toDateTime(intDiv({before}, 1000000)))"))
                .await?
                .trim()
                .to_string();
            let months = self
                .ch
                .query(&format!(
                    "SELECT DISTINCT toYYYYMM(toDateTime(intDiv(started_at, 1000000))) AS m FROM {db}.spans \
                     WHERE started_at < {before} ORDER BY m"
                ))
                .await?;
            for m in months.lines().map(str::trim).filter(|m| !m.is_empty() && *m != cutoff_month) {
                if m.chars().all(|c| c.is_ascii_digit()) {
                    self.ch.query(&format!("ALTER TABLE {db}.spans DROP PARTITION {m}")).await?;
                }
            }
            self.ch.query(&format!("ALTER TABLE {db}.spans DELETE WHERE started_at < {before}")).await?;
            self.ch.wait_mutations("spans").await?;
        }
        // Rollups and aggregates live in PostgreSQL (its spans table stays empty in this mode).
        self.pg.prune_before(before).await?;
        Ok(n)
    }

    async fn get_session(
        &self,
        project_id: Option<&str>,
        session_id: &str,
    ) -> Result<Option<SessionRow>, StorageError> {
        self.pg.get_session(project_id, session_id).await
    }

    async fn session_costs(&self, query: CostRankQuery) -> Result<Vec<SessionCost>, StorageError> {
        self.pg.session_costs(query).await
    }

    async fn agent_sessions(
        &self,
        project_id: Option<&str>,
        active_since: i64,
    ) -> Result<Vec<AgentSessions>, StorageError> {
        self.pg.agent_sessions(project_id, active_since).await
    }

    async fn rollups(&self, query: RollupQuery) -> Result<Vec<RollupRow>, StorageError> {
        self.pg.rollups(query).await
    }

    async fn backfill_rollups(&self, page: usize) -> Result<Option<BackfillProgress>, StorageError> {
        if let Some(progress) = self.pg.backfill_rollups(page).await? {
            return Ok(Some(progress));
        }
        self.backfill_clickhouse(page).await
    }

    async fn unlinked_sessions(&self, limit: usize) -> Result<Vec<UnlinkedSession>, StorageError> {
        self.pg.unlinked_sessions(limit).await
    }

    /// One ClickHouse read per 64 KiB of session ids, bounded below by the sessions' earliest start: the table's
    /// sort key begins (project, started_at), so recent sessions read only recent parts.
    async fn link_spans(
        &self,
        project_id: &str,
        session_ids: &[String],
        since: i64,
    ) -> Result<Vec<LinkSpan>, StorageError> {
        self.settle().await;
        let db = self.ch.database();
        let mut found = Vec::new();
        // Lists of at most 64 KiB of ids: ClickHouse refuses queries over 256 KiB by default.
        let mut rest = session_ids;
        while !rest.is_empty() {
            let (mut n, mut bytes) = (0, 0);
            while n < rest.len() && (n == 0 || bytes + rest[n].len() < 64 * 1024) {
                bytes += rest[n].len() + 4;
                n += 1;
            }
            let list = rest[..n].iter().map(|s| quote(s)).collect::<Vec<_>>().join(", ");
            rest = &rest[n..];
            let out = self
                .ch
                .query(&format!(
                    "SELECT session_id, span_id, parent_span_id, agent_name, started_at, \
                     span_type = 'agent' AND model_id IS NOT NULL AS llm_call FROM {db}.spans \
                     WHERE project_id = {} AND started_at >= {since} AND session_id IN ({list}) FORMAT JSONEachRow",
                    quote(project_id)
                ))
                .await?;
            found.extend(rows(&out)?.iter().map(|m| LinkSpan {
                session_id: text(m, "session_id"),
                span_id: text(m, "span_id"),
                parent_span_id: opt_text(m, "parent_span_id"),
                agent_name: opt_text(m, "agent_name"),
                started_at: int(m, "started_at"),
                llm_call: int(m, "llm_call") != 0,
            }));
        }
        Ok(found)
    }

    async fn commit_links(&self, updates: Vec<LinkUpdate>) -> Result<usize, StorageError> {
        self.pg.commit_links(updates).await
    }

    async fn incomplete_sessions(&self, query: IncompleteQuery) -> Result<Vec<IncompleteSession>, StorageError> {
        self.pg.incomplete_sessions(query).await
    }

    async fn mark_incomplete(&self, project_id: &str, session_id: &str) -> Result<bool, StorageError> {
        self.pg.mark_incomplete(project_id, session_id).await
    }

    async fn span_facts(&self, q: FactQuery) -> Result<Vec<SpanFact>, StorageError> {
        self.settle().await;
        let db = self.ch.database();
        let project = match &q.project_id {
            Some(p) => project_filter(Some(p), q.include_global),
            None => String::new(),
        };
        let after = match &q.after {
            Some(c) => format!(
                " AND (started_at > {at} OR (started_at = {at} AND span_id > {}))",
                quote(&c.tiebreak),
                at = c.started_at
            ),
            None => String::new(),
        };
        let out = self
            .ch
            .query(&format!(
                "SELECT {FACT_COLUMNS} FROM {db}.spans WHERE started_at >= {} AND started_at < {}{project}{after} ORDER BY started_at, span_id LIMIT {} \
                 FORMAT JSONEachRow",
                q.since, q.until, q.limit
            ))
            .await?;
        rows(&out)?.iter().map(fact_from).collect()
    }

    async fn session_spans(
        &self,
        session_id: &str,
        project_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Span>, StorageError> {
        self.settle().await;
        let db = self.ch.database();
        let out = self
            .ch
            .query(&format!(
                "SELECT {COLUMNS} FROM {db}.spans WHERE session_id = {}{} ORDER BY started_at LIMIT {limit} FORMAT JSONEachRow",
                quote(session_id),
                project_filter(project_id, false)
            ))
            .await?;
        rows(&out)?.iter().map(span_from).collect()
    }
}
