//! The SQL of each domain trait for SQLite.

use super::SqliteStorage;
use crate::model::*;
use crate::{HealthStore, KeyStore, ProjectStore, SpanStore, StorageError};
use async_trait::async_trait;
use langsight_core::health::HealthTag;
use langsight_core::links::{self, LinkView};
use langsight_core::rollup::RollupBatch;
use langsight_core::session::SessionRollup;
use langsight_core::span::{LineageProvenance, LineageStatus, Span, SpanStatus, SpanType};
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::collections::HashMap;

const INSERT_SPAN: &str = "INSERT INTO spans (span_id, parent_span_id, span_type, trace_id, session_id, server_name, \
    tool_name, started_at, ended_at, latency_ms, status, error, agent_name, input_json, output_json, llm_input, \
    llm_output, replay_of, project_id, input_tokens, output_tokens, model_id, finish_reason, cache_read_tokens, \
    cache_creation_tokens, thinking_tokens, target_agent_name, lineage_provenance, lineage_status, schema_version, \
    seq, session_seq) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, \
    ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32)";

/// The seqs of session `?1`'s spans stored before sessions had keys (migration 21), by the id index that now
/// holds only those.
pub(super) const UNKEYED_SPANS: &str = "SELECT seq FROM spans WHERE session_id = ?1 AND session_seq IS NULL";

const SPAN_COLUMNS: &str = "span_id, parent_span_id, span_type, trace_id, session_id, server_name, tool_name, \
    started_at, ended_at, latency_ms, status, error, agent_name, input_json, output_json, llm_input, llm_output, \
    replay_of, project_id, input_tokens, output_tokens, model_id, finish_reason, cache_read_tokens, \
    cache_creation_tokens, thinking_tokens, target_agent_name, lineage_provenance, lineage_status, schema_version";

/// The columns of a [`SpanFact`], in [`fact_from_row`]'s order.
pub(super) const FACT_COLUMNS: &str =
    "span_id, parent_span_id, span_type, session_id, server_name, tool_name, agent_name, \
    target_agent_name, started_at, ended_at, latency_ms, status, substr(error, 1, 300), model_id, input_tokens, \
    output_tokens, thinking_tokens, lineage_provenance, project_id, seq";

pub(super) fn fact_from_row(r: &Row) -> rusqlite::Result<SpanFact> {
    let text = |i: usize| -> rusqlite::Result<String> { r.get(i) };
    let bad = |i: usize, v: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, format!("bad value '{v}'").into())
    };
    let (span_type, status) = (text(2)?, text(11)?);
    Ok(SpanFact {
        span_id: r.get(0)?,
        parent_span_id: r.get(1)?,
        span_type: SpanType::parse(&span_type).ok_or_else(|| bad(2, span_type.clone()))?,
        session_id: r.get(3)?,
        server_name: r.get(4)?,
        tool_name: r.get(5)?,
        agent_name: r.get(6)?,
        target_agent_name: r.get(7)?,
        started_at: r.get(8)?,
        ended_at: r.get(9)?,
        latency_ms: r.get(10)?,
        status: SpanStatus::parse(&status).ok_or_else(|| bad(11, status.clone()))?,
        error: r.get(12)?,
        model_id: r.get(13)?,
        input_tokens: r.get(14)?,
        output_tokens: r.get(15)?,
        thinking_tokens: r.get(16)?,
        explicit_lineage: text(17)? == "explicit",
        project_id: Some(text(18)?).filter(|p| !p.is_empty()),
        cursor: FactCursor { started_at: r.get(8)?, tiebreak: r.get::<_, i64>(19)?.to_string() },
    })
}

/// Folds the batch's tool calls into `tool_hourly`, one upsert per (project, server, tool, hour).
fn update_tool_hours(conn: &Connection, spans: &[Span]) -> Result<(), StorageError> {
    let groups = tool_hour_groups(spans);
    let mut stmt = conn.prepare_cached(
        "INSERT INTO tool_hourly (project_id, server_name, tool_name, hour, calls, errors, latency_sum) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (project_id, server_name, tool_name, hour) DO UPDATE SET \
         calls = calls + excluded.calls, errors = errors + excluded.errors, latency_sum = latency_sum + excluded.latency_sum",
    )?;
    for ((p, server, tool, hour), (calls, errors, latency)) in groups {
        stmt.execute(params![p, server, tool, hour, calls, errors, latency])?;
    }
    Ok(())
}

/// The seq the next stored span gets: SQLite's own choice for a rowid (the largest plus one), made here so a
/// new session's key — its first span's seq — is known before its spans are written. The caller holds the write
/// lock, so nothing takes these numbers in between.
fn next_seq(conn: &Connection) -> Result<i64, StorageError> {
    Ok(conn.prepare_cached("SELECT coalesce(max(seq), 0) + 1 FROM spans")?.query_row([], |r| r.get(0))?)
}

/// Stores the spans as seqs `first`, `first + 1`, …, each with its session's key (`keys`, by position).
fn insert_spans(conn: &Connection, spans: &[Span], first: i64, keys: &[Option<i64>]) -> Result<(), StorageError> {
    let mut stmt = conn.prepare_cached(INSERT_SPAN)?;
    for (i, s) in spans.iter().enumerate() {
        stmt.execute(params![
            s.span_id,
            s.parent_span_id,
            s.span_type.as_str(),
            s.trace_id,
            s.session_id,
            s.server_name,
            s.tool_name,
            s.started_at,
            s.ended_at,
            s.latency_ms,
            s.status.as_str(),
            s.error,
            s.agent_name,
            s.input_json,
            s.output_json,
            s.llm_input,
            s.llm_output,
            s.replay_of,
            s.project().unwrap_or(""),
            s.input_tokens,
            s.output_tokens,
            s.model_id,
            s.finish_reason,
            s.cache_read_tokens,
            s.cache_creation_tokens,
            s.thinking_tokens,
            s.target_agent_name,
            s.lineage_provenance.as_str(),
            s.lineage_status.as_str(),
            s.schema_version,
            first + i as i64,
            keys.get(i).copied().flatten(),
        ])?;
    }
    Ok(())
}

fn span_from_row(r: &Row) -> rusqlite::Result<Span> {
    let text = |i: usize| -> rusqlite::Result<String> { r.get(i) };
    let bad = |i: usize, what: &str, v: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, format!("bad {what} '{v}'").into())
    };
    let span_type = text(2)?;
    let status = text(10)?;
    let provenance = text(27)?;
    let lineage = text(28)?;
    let project: String = text(18)?;
    Ok(Span {
        span_id: r.get(0)?,
        parent_span_id: r.get(1)?,
        span_type: SpanType::parse(&span_type).ok_or_else(|| bad(2, "span_type", span_type.clone()))?,
        trace_id: r.get(3)?,
        session_id: r.get(4)?,
        server_name: r.get(5)?,
        tool_name: r.get(6)?,
        started_at: r.get(7)?,
        ended_at: r.get(8)?,
        latency_ms: r.get(9)?,
        status: SpanStatus::parse(&status).ok_or_else(|| bad(10, "status", status.clone()))?,
        error: r.get(11)?,
        agent_name: r.get(12)?,
        input_json: r.get(13)?,
        output_json: r.get(14)?,
        llm_input: r.get(15)?,
        llm_output: r.get(16)?,
        replay_of: r.get(17)?,
        project_id: (!project.is_empty()).then_some(project),
        input_tokens: r.get(19)?,
        output_tokens: r.get(20)?,
        model_id: r.get(21)?,
        finish_reason: r.get(22)?,
        cache_read_tokens: r.get(23)?,
        cache_creation_tokens: r.get(24)?,
        thinking_tokens: r.get(25)?,
        target_agent_name: r.get(26)?,
        lineage_provenance: LineageProvenance::parse(&provenance)
            .ok_or_else(|| bad(27, "lineage_provenance", provenance.clone()))?,
        lineage_status: LineageStatus::parse(&lineage).ok_or_else(|| bad(28, "lineage_status", lineage.clone()))?,
        schema_version: r.get(29)?,
    })
}

/// Folds the batch into the session rollups (read, absorb, write back) inside the ingest transaction.
/// The transaction holds SQLite's write lock, so concurrent ingests — from this process or another worker
/// on the same file — apply one after the other and no update is lost.
///
/// A session's first batch is linked here too ([`langsight_core::links`]: delegation deltas into `rollups`, the
/// record on the new row), so the link pass re-reads only sessions that receive a later batch.
///
/// Runs before the spans are stored (as seqs from `first_seq` on): returns, by span position, the key of the
/// span's session — the one its row keeps, or for a new session (or one stored before keys existed) the seq its
/// first span in this batch will get.
fn update_sessions(
    conn: &Connection,
    spans: &[Span],
    first_seq: i64,
    rollups: &mut RollupBatch,
) -> Result<(Vec<SessionTagUpdate>, Vec<Option<i64>>), StorageError> {
    let mut groups: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    for (i, s) in spans.iter().enumerate() {
        if let Some(session) = s.session() {
            groups.entry((s.project().unwrap_or(""), session)).or_default().push(i);
        }
    }
    let mut keys = vec![None; spans.len()];
    let mut select =
        conn.prepare_cached("SELECT rollup, first_seq FROM sessions WHERE project_id = ?1 AND session_id = ?2")?;
    let mut upsert = conn.prepare_cached(
        "INSERT INTO sessions (project_id, session_id, first_call_at, last_call_at, health_tag, rollup, model_id, \
         input_tokens, output_tokens, thinking_tokens, span_count, agent_name, linked_count, links, missing_parents, \
         llm_calls, first_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17) \
         ON CONFLICT (project_id, session_id) DO UPDATE SET \
         first_call_at = excluded.first_call_at, last_call_at = excluded.last_call_at, \
         health_tag = excluded.health_tag, rollup = excluded.rollup, model_id = excluded.model_id, \
         input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens, \
         thinking_tokens = excluded.thinking_tokens, span_count = excluded.span_count, \
         agent_name = excluded.agent_name, first_seq = coalesce(first_seq, excluded.first_seq)",
    )?;
    let mut updates = Vec::with_capacity(groups.len());
    for ((project, session), positions) in groups {
        let found: Option<(String, Option<i64>)> =
            select.query_row(params![project, session], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
        let (stored, key) = match found {
            Some((rollup, key)) => (Some(rollup), key),
            None => (None, None),
        };
        let key = key.unwrap_or(first_seq + positions[0] as i64);
        for &i in &positions {
            keys[i] = Some(key);
        }
        let members = || positions.iter().map(|&i| &spans[i]);
        // A new row's link record (ignored on conflict: only a first batch is linked here).
        let first = if stored.is_none() {
            let views: Vec<LinkView> = members().map(LinkView::from).collect();
            let l = links::session_links(&views);
            rollups.absorb(links::delegation_delta(project, session, &Default::default(), &l.contribution));
            Some(l)
        } else {
            None
        };
        let mut rollup: SessionRollup = match stored {
            Some(json) => serde_json::from_str(&json)?,
            None => SessionRollup::default(),
        };
        let previous = rollup.health_tag;
        for s in members() {
            rollup.absorb(s);
        }
        let current = rollup.retag();
        upsert.execute(params![
            project,
            session,
            rollup.first_call_at,
            rollup.last_call_at,
            current.as_str(),
            serde_json::to_string(&rollup)?,
            rollup.model_id,
            rollup.total_input_tokens,
            rollup.total_output_tokens,
            rollup.total_thinking_tokens,
            rollup.span_count as i64,
            rollup.agent_name,
            if first.is_some() { rollup.span_count as i64 } else { 0 },
            first.as_ref().map(|l| links::encode(&l.contribution)),
            first.as_ref().is_some_and(|l| l.missing_parents),
            first.as_ref().map_or(0, |l| l.llm_calls),
            key,
        ])?;
        updates.push(SessionTagUpdate {
            project_id: project.to_string(),
            session_id: session.to_string(),
            previous,
            current,
        });
    }
    Ok((updates, keys))
}

/// The cost ranking (`?1` window start, `?2` project, `?3` sessions read, `?4` rows returned, `?5` the prices as
/// a JSON array of `[model, input, output, thinking]`): the newest sessions stream from the covering index
/// `sessions_window`, each priced by a lookup in the (small) price list, and only the ranked rows are built.
/// Joining the two instead made SQLite copy the 5,000 sessions into a temporary table with an automatic index
/// (twice the time, measured in the shell).
pub(crate) const SESSION_COSTS: &str = "WITH p(model, i, o, t) AS MATERIALIZED (SELECT value ->> 0, value ->> 1, \
     value ->> 2, value ->> 3 FROM json_each(?5)) \
     SELECT session_id, agent_name, model_id, input_tokens, output_tokens, thinking_tokens, span_count FROM ( \
     SELECT session_id, agent_name, model_id, input_tokens, output_tokens, thinking_tokens, span_count, \
     (SELECT coalesce(s.input_tokens, 0) / 1e6 * p.i + coalesce(s.output_tokens, 0) / 1e6 * p.o \
     + coalesce(s.thinking_tokens, 0) / 1e6 * p.t FROM p WHERE p.model = s.model_id) AS cost \
     FROM sessions s WHERE last_call_at >= ?1 AND (?2 IS NULL OR project_id = ?2) AND model_id IS NOT NULL \
     ORDER BY first_call_at DESC LIMIT ?3) \
     WHERE cost IS NOT NULL AND (input_tokens IS NOT NULL OR output_tokens IS NOT NULL) \
     ORDER BY cost DESC, session_id LIMIT ?4";

/// The sessions list's filters (`?1` window start, `?2` project, `?3` health tag, `?4` agent, `?7` failed or
/// clean), over `sessions s`.
const SESSION_FILTERS: &str = "last_call_at >= ?1 AND (?2 IS NULL OR project_id = ?2) \
     AND (?3 IS NULL OR health_tag = ?3) AND (?4 IS NULL OR EXISTS (SELECT 1 FROM json_each(s.rollup, '$.agents_used') \
     WHERE key = ?4 OR value = ?4)) AND (?7 IS NULL OR (coalesce(health_tag, 'success') <> 'success') = ?7)";

/// The agent filter inside [`SESSION_FILTERS`], replaced where the rollup should be read only for an agent.
const SESSION_AGENT: &str = "(?4 IS NULL OR EXISTS (SELECT 1 FROM json_each(s.rollup, '$.agents_used') \
     WHERE key = ?4 OR value = ?4))";

/// The newest `?9` sessions of the window that pass the filters, with the sort key `{KEY}` and the columns a
/// search looks at: a bounded, index-ordered read of the `sessions_window` index alone. `{AGENT}` is the agent
/// filter when there is one (it reads the rollup's agent list, so only then is the table read); `?4` is always
/// bound.
const SESSION_WINDOW: &str = "SELECT project_id, session_id, first_call_at, agent_name, health_tag, {KEY} AS k \
     FROM sessions s WHERE last_call_at >= ?1 AND (?2 IS NULL OR project_id = ?2) \
     AND (?3 IS NULL OR health_tag = ?3) AND {AGENT} AND (?7 IS NULL OR (coalesce(health_tag, 'success') <> 'success') = ?7) \
     ORDER BY first_call_at DESC LIMIT ?9";

/// The agent filter of [`SESSION_WINDOW`].
fn window_agent(q: &SessionQuery) -> &'static str {
    if q.agent_name.is_some() {
        "EXISTS (SELECT 1 FROM json_each(s.rollup, '$.agents_used') WHERE key = ?4 OR value = ?4)"
    } else {
        "(?4 IS NULL)"
    }
}

/// `?8`: lower-cased text the session id or the agent name contains (none = every row).
const SESSION_SEARCH: &str =
    "(?8 IS NULL OR instr(lower(session_id), ?8) > 0 OR instr(lower(coalesce(agent_name, '')), ?8) > 0)";

/// The sessions list's statement: the plain request (no search, newest first) reads the start-time index
/// backwards and stops after the page; a search or another order reads the newest MAX_SESSIONS_SCANNED
/// sessions of the window (same index order, columns only, no rollup), searches and sorts them, and reads only
/// the page's rows in full.
fn session_list_sql(q: &SessionQuery) -> String {
    if q.is_plain() && q.offset == 0 {
        format!(
            "SELECT project_id, session_id, rollup FROM sessions s WHERE {SESSION_FILTERS} \
             ORDER BY first_call_at DESC LIMIT ?5 OFFSET ?6"
        )
    } else if q.is_plain() {
        // A later page: SQLite would read every skipped row (and its rollup text); the same index walk over
        // the window index's columns skips them in the index (1 ms at offset 10,000, not 200 ms), and only
        // the page's rows are read in full.
        format!(
            "SELECT s.project_id, s.session_id, s.rollup FROM (SELECT project_id, session_id, first_call_at \
             FROM sessions s WHERE {SESSION_FILTERS} ORDER BY first_call_at DESC LIMIT ?5 OFFSET ?6) p \
             JOIN sessions s ON s.project_id = p.project_id AND s.session_id = p.session_id \
             ORDER BY p.first_call_at DESC"
        )
        .replace(SESSION_AGENT, window_agent(q))
    } else {
        let (key, dir) = (q.sort.sql(), if q.ascending { "ASC" } else { "DESC" });
        format!(
            "SELECT s.project_id, s.session_id, s.rollup FROM (SELECT project_id, session_id, first_call_at, k \
             FROM ({SESSION_WINDOW}) WHERE {SESSION_SEARCH} ORDER BY k {dir}, first_call_at DESC, session_id \
             LIMIT ?5 OFFSET ?6) p JOIN sessions s ON s.project_id = p.project_id AND s.session_id = p.session_id \
             ORDER BY p.k {dir}, p.first_call_at DESC, p.session_id"
        )
        .replace("{KEY}", key)
        .replace("{AGENT}", window_agent(q))
    }
}

#[async_trait]
impl SpanStore for SqliteStorage {
    async fn ingest(&self, spans: Vec<Span>) -> Result<IngestOutcome, StorageError> {
        if spans.is_empty() {
            return Ok(IngestOutcome::default());
        }
        // Folded here, on the request's task: the writer thread only merges the deltas of its group.
        // Rerunnable (see writer.rs): a second run, after its group's first attempt was rolled back, has no
        // deltas left and folds the spans again on the writer — rare, so the common run need not copy them.
        let mut deltas = Some(RollupBatch::from_spans(&spans));
        self.write_rerunnable(move |conn| {
            let mut rollups = deltas.take().unwrap_or_else(|| RollupBatch::from_spans(&spans));
            let first = next_seq(conn)?;
            let (sessions, keys) = update_sessions(conn, &spans, first, &mut rollups)?;
            insert_spans(conn, &spans, first, &keys)?;
            update_tool_hours(conn, &spans)?;
            super::rollups::defer(rollups);
            Ok(IngestOutcome { accepted: spans.len(), sessions })
        })
        .await
    }

    async fn list_sessions(&self, q: SessionQuery) -> Result<Vec<SessionRow>, StorageError> {
        self.read(move |conn| {
            let needle = q.needle();
            let sql = session_list_sql(&q);
            let mut stmt = conn.prepare_cached(&sql)?;
            let (tag, limit, offset) = (q.health_tag.map(HealthTag::as_str), q.limit as i64, q.offset as i64);
            let base = params![q.active_since, q.project_id, tag, q.agent_name, limit, offset, q.failed];
            let extra = params![needle, MAX_SESSIONS_SCANNED as i64];
            // The plain statement has no search or cap parameter (SQLite refuses surplus values).
            let all: Vec<&dyn rusqlite::ToSql> =
                base.iter().chain(if q.is_plain() { &[][..] } else { extra }).copied().collect();
            let rows = stmt.query_map(&all[..], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (project_id, session_id, json) = row?;
                out.push(SessionRow { project_id, session_id, rollup: serde_json::from_str(&json)? });
            }
            Ok(out)
        })
        .await
    }

    async fn count_sessions(&self, q: SessionQuery) -> Result<SessionCounts, StorageError> {
        self.read(move |conn| {
            let sql = format!(
                "SELECT count(*), coalesce(sum(coalesce(health_tag, 'success') <> 'success'), 0) \
                 FROM ({SESSION_WINDOW}) WHERE {SESSION_SEARCH}"
            )
            .replace("{KEY}", "0")
            .replace("{AGENT}", window_agent(&q));
            let mut stmt = conn.prepare_cached(&sql)?;
            let needle = q.needle();
            let (total, failed): (i64, i64) = stmt.query_row(
                params![
                    q.active_since,
                    q.project_id,
                    q.health_tag.map(HealthTag::as_str),
                    q.agent_name,
                    0i64,
                    0i64,
                    q.failed,
                    needle,
                    MAX_SESSIONS_SCANNED as i64,
                ],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok(SessionCounts { total: total.max(0) as u64, failed: failed.max(0) as u64 })
        })
        .await
    }

    async fn server_invocations(
        &self,
        project_id: Option<&str>,
        since: i64,
    ) -> Result<Vec<ServerInvocations>, StorageError> {
        let project_id = project_id.map(str::to_string);
        self.read(move |conn| {
            // The last call's status: SQLite returns the bare column from the row holding max(started_at).
            let mut stmt = conn.prepare_cached(
                "SELECT server_name, max(started_at), status, count(*), sum(status = 'success') FROM spans \
                 WHERE started_at / 1000000 >= ?1 / 1000000 AND started_at >= ?1 AND server_name != '' \
                 AND span_type = 'tool_call' \
                 AND (?2 IS NULL OR project_id = ?2) GROUP BY server_name ORDER BY 2 DESC",
            )?;
            let rows = stmt.query_map(params![since, project_id], |r| {
                Ok(ServerInvocations {
                    server_name: r.get(0)?,
                    last_called_at: r.get(1)?,
                    last_call_status: r.get(2)?,
                    total_calls: r.get(3)?,
                    success_calls: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn tool_hours(&self, project_id: Option<&str>, since_hour: i64) -> Result<Vec<ToolHour>, StorageError> {
        let project_id = project_id.map(str::to_string);
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT project_id, server_name, tool_name, hour, calls, errors, latency_sum FROM tool_hourly \
                 WHERE hour >= ?1 AND (?2 IS NULL OR project_id = ?2) ORDER BY project_id, server_name, tool_name, hour",
            )?;
            let rows = stmt.query_map(params![since_hour, project_id], |r| {
                Ok(ToolHour {
                    project_id: r.get(0)?,
                    server_name: r.get(1)?,
                    tool_name: r.get(2)?,
                    hour: r.get(3)?,
                    calls: r.get(4)?,
                    errors: r.get(5)?,
                    latency_sum_ms: r.get(6)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn server_calls(
        &self,
        server: &str,
        project_id: Option<&str>,
        since: i64,
        limit: usize,
    ) -> Result<Vec<Span>, StorageError> {
        let (server, project_id) = (server.to_string(), project_id.map(str::to_string));
        self.read(move |conn| {
            let sql = format!(
                "SELECT {SPAN_COLUMNS} FROM spans WHERE server_name = ?1 AND span_type = 'tool_call' \
                 AND started_at / 1000000 >= ?2 / 1000000 AND started_at >= ?2 \
                 AND (?3 IS NULL OR project_id = ?3 OR project_id = '') \
                 ORDER BY started_at / 1000000 DESC, started_at DESC LIMIT ?4"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![server, since, project_id, limit as i64], span_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn prune_before(&self, before: i64) -> Result<u64, StorageError> {
        self.write(move |conn| {
            let n = conn.execute(
                "DELETE FROM spans WHERE started_at / 1000000 <= ?1 / 1000000 AND started_at < ?1",
                params![before],
            )?;
            conn.execute("DELETE FROM sessions WHERE last_call_at < ?1", params![before])?;
            conn.execute("DELETE FROM tool_hourly WHERE hour < ?1", params![before.div_euclid(3_600_000_000)])?;
            super::rollups::prune(conn, before)?;
            Ok(n as u64)
        })
        .await
    }

    async fn get_session(
        &self,
        project_id: Option<&str>,
        session_id: &str,
    ) -> Result<Option<SessionRow>, StorageError> {
        let (project_id, session_id) = (project_id.map(str::to_string), session_id.to_string());
        self.read(move |conn| {
            let row = conn
                .query_row(
                    "SELECT project_id, rollup FROM sessions WHERE session_id = ?1 AND (?2 IS NULL OR project_id = ?2) \
                     AND rollup <> '' LIMIT 1",
                    params![session_id, project_id],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
                )
                .optional()?;
            match row {
                Some((project_id, json)) => {
                    Ok(Some(SessionRow { project_id, session_id, rollup: serde_json::from_str(&json)? }))
                }
                None => Ok(None),
            }
        })
        .await
    }

    async fn session_costs(&self, q: CostRankQuery) -> Result<Vec<SessionCost>, StorageError> {
        let prices: Vec<(&str, f64, f64, f64)> = q
            .prices
            .iter()
            .map(|p| (p.model_id.as_str(), p.input_per_1m, p.output_per_1m, p.thinking_per_1m))
            .collect();
        let prices = serde_json::to_string(&prices)?;
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(SESSION_COSTS)?;
            let (read, top) = (q.read as i64, q.top as i64);
            let rows = stmt.query_map(params![q.active_since, q.project_id, read, top, prices], |r| {
                Ok(SessionCost {
                    session_id: r.get(0)?,
                    agent_name: r.get(1)?,
                    model_id: r.get(2)?,
                    input_tokens: r.get(3)?,
                    output_tokens: r.get(4)?,
                    thinking_tokens: r.get(5)?,
                    span_count: r.get::<_, Option<i64>>(6)?.unwrap_or(0),
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn agent_sessions(
        &self,
        project_id: Option<&str>,
        active_since: i64,
    ) -> Result<Vec<AgentSessions>, StorageError> {
        let project_id = project_id.map(str::to_string);
        self.read(move |conn| {
            // Every column is in the covering index `sessions_window`.
            let mut stmt = conn.prepare_cached(
                "SELECT agent_name, model_id, count(*), sum(coalesce(health_tag, 'success') <> 'success'), \
                 coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0), coalesce(sum(thinking_tokens), 0), \
                 max(last_call_at) FROM sessions WHERE last_call_at >= ?1 AND (?2 IS NULL OR project_id = ?2) \
                 GROUP BY agent_name, model_id",
            )?;
            let rows = stmt.query_map(params![active_since, project_id], |r| {
                Ok(AgentSessions {
                    agent_name: r.get(0)?,
                    model_id: r.get(1)?,
                    sessions: r.get(2)?,
                    failed: r.get(3)?,
                    input_tokens: r.get(4)?,
                    output_tokens: r.get(5)?,
                    thinking_tokens: r.get(6)?,
                    last_call_at: r.get(7)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn rollups(&self, q: RollupQuery) -> Result<Vec<RollupRow>, StorageError> {
        self.read(move |conn| super::rollups::read(conn, &q)).await
    }

    async fn backfill_rollups(&self, page: usize) -> Result<Option<BackfillProgress>, StorageError> {
        self.write(move |conn| super::rollups::backfill(conn, page)).await
    }

    async fn unlinked_sessions(&self, limit: usize) -> Result<Vec<UnlinkedSession>, StorageError> {
        self.read(move |conn| super::rollups::unlinked(conn, limit)).await
    }

    async fn link_spans(
        &self,
        project_id: &str,
        session_ids: &[String],
        _since: i64,
    ) -> Result<Vec<LinkSpan>, StorageError> {
        let (project, sessions) = (project_id.to_string(), session_ids.to_vec());
        self.read(move |conn| super::rollups::link_spans(conn, &project, &sessions)).await
    }

    async fn commit_links(&self, updates: Vec<LinkUpdate>) -> Result<usize, StorageError> {
        self.write(move |conn| super::rollups::commit_links(conn, &updates)).await
    }

    async fn incomplete_sessions(&self, query: IncompleteQuery) -> Result<Vec<IncompleteSession>, StorageError> {
        self.read(move |conn| super::rollups::incomplete(conn, &query)).await
    }

    async fn mark_incomplete(&self, project_id: &str, session_id: &str) -> Result<bool, StorageError> {
        let (project_id, session_id) = (project_id.to_string(), session_id.to_string());
        self.write(move |conn| {
            let n = conn.execute(
                "UPDATE sessions SET health_tag = 'incomplete', rollup = json_set(rollup, '$.health_tag', 'incomplete') \
                 WHERE project_id = ?1 AND session_id = ?2 AND rollup <> '' \
                 AND (health_tag IS NULL OR health_tag IN ('success', 'success_with_fallback'))",
                params![project_id, session_id],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn span_facts(&self, q: FactQuery) -> Result<Vec<SpanFact>, StorageError> {
        self.read(move |conn| {
            // In the time index's order — by second, then seq (the rowid it holds) — so no sort; the cursor is the
            // last row's second (from its `started_at`) and seq.
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {FACT_COLUMNS} FROM spans WHERE started_at / 1000000 >= max(?1, coalesce(?5, ?1)) / 1000000 \
                 AND started_at / 1000000 <= (?2 - 1) / 1000000 AND started_at >= ?1 AND started_at < ?2 \
                 AND (?3 IS NULL OR project_id = ?3 OR (?4 AND project_id = '')) \
                 AND (?5 IS NULL OR started_at / 1000000 > ?5 / 1000000 OR (started_at / 1000000 = ?5 / 1000000 AND seq > ?6)) \
                 ORDER BY started_at / 1000000, seq LIMIT ?7"
            ))?;
            let (after_at, after_seq) = match &q.after {
                Some(c) => (Some(c.started_at), c.tiebreak.parse::<i64>().unwrap_or(i64::MAX)),
                None => (None, 0),
            };
            let rows = stmt.query_map(
                params![q.since, q.until, q.project_id, q.include_global, after_at, after_seq, q.limit as i64],
                fact_from_row,
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn session_spans(
        &self,
        session_id: &str,
        project_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Span>, StorageError> {
        let session_id = session_id.to_string();
        let project_id = project_id.map(str::to_string);
        self.read(move |conn| {
            // Without a project the session's key is looked up in each project's part of the primary key: the
            // recursive part walks the distinct project ids, one index seek each.
            let sql = format!(
                "WITH RECURSIVE p(id) AS (SELECT min(project_id) FROM sessions UNION ALL \
                 SELECT (SELECT min(project_id) FROM sessions WHERE project_id > p.id) FROM p WHERE p.id IS NOT NULL) \
                 SELECT {SPAN_COLUMNS} FROM spans WHERE seq IN ( \
                 SELECT seq FROM spans WHERE session_seq IN (SELECT first_seq FROM sessions WHERE session_id = ?1 \
                 AND project_id IN (SELECT id FROM p WHERE ?2 IS NULL UNION ALL SELECT ?2 WHERE ?2 IS NOT NULL)) \
                 UNION ALL {UNKEYED_SPANS}) \
                 AND session_id = ?1 AND (?2 IS NULL OR project_id = ?2) ORDER BY started_at, seq LIMIT ?3"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![session_id, project_id, limit as i64], span_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}

const KEY_COLUMNS: &str =
    "id, name, key_prefix, role, user_id, project_id, created_at, expires_at, revoked_at, last_used_at";

fn key_from_row(r: &Row) -> rusqlite::Result<ApiKeyRecord> {
    let role: String = r.get(3)?;
    Ok(ApiKeyRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        key_prefix: r.get(2)?,
        // An unknown stored role grants the least.
        role: KeyRole::parse(&role).unwrap_or(KeyRole::Viewer),
        user_id: r.get(4)?,
        project_id: r.get(5)?,
        created_at: r.get(6)?,
        expires_at: r.get(7)?,
        revoked_at: r.get(8)?,
        last_used_at: r.get(9)?,
    })
}

#[async_trait]
impl KeyStore for SqliteStorage {
    async fn create_api_key(&self, k: NewApiKey) -> Result<ApiKeyRecord, StorageError> {
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO api_keys (id, name, key_hash, key_prefix, role, user_id, project_id, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![k.id, k.name, k.key_hash, k.key_prefix, k.role.as_str(), k.user_id, k.project_id, k.created_at, k.expires_at],
            )?;
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
        })
        .await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StorageError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at DESC, rowid DESC"))?;
            let rows = stmt.query_map([], key_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn revoke_api_key(&self, id: &str) -> Result<bool, StorageError> {
        let id = id.to_string();
        let now = langsight_core::time::now_micros();
        self.write(move |conn| {
            let n = conn.execute(
                "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, now],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>, StorageError> {
        let hash = hash.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = ?1 AND revoked_at IS NULL"
            ))?;
            Ok(stmt.query_row(params![hash], key_from_row).optional()?)
        })
        .await
    }

    async fn count_active_api_keys(&self) -> Result<u64, StorageError> {
        self.read(|conn| {
            let n: i64 = conn.query_row("SELECT count(*) FROM api_keys WHERE revoked_at IS NULL", [], |r| r.get(0))?;
            Ok(n as u64)
        })
        .await
    }

    async fn touch_api_key(&self, id: &str, at: i64) -> Result<(), StorageError> {
        let id = id.to_string();
        self.write(move |conn| {
            conn.execute("UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1", params![id, at])?;
            Ok(())
        })
        .await
    }
}

const PROJECT_SELECT: &str = "SELECT p.id, p.name, p.slug, p.created_by, p.created_at, \
    (SELECT count(*) FROM project_members m WHERE m.project_id = p.id) FROM projects p";

fn project_from_row(r: &Row) -> rusqlite::Result<Project> {
    Ok(Project {
        id: r.get(0)?,
        name: r.get(1)?,
        slug: r.get(2)?,
        created_by: r.get(3)?,
        created_at: r.get(4)?,
        member_count: r.get::<_, i64>(5)? as u64,
    })
}

#[async_trait]
impl ProjectStore for SqliteStorage {
    async fn create_project(&self, p: NewProject) -> Result<Project, StorageError> {
        self.write(move |conn| {
            // Slug collisions get a short random suffix, as in the original.
            let taken = |slug: &str| -> Result<bool, StorageError> {
                Ok(conn
                    .query_row("SELECT 1 FROM projects WHERE slug = ?1", params![slug], |_| Ok(()))
                    .optional()?
                    .is_some())
            };
            let mut slug = p.slug.clone();
            while taken(&slug)? {
                slug = format!("{}-{}", p.slug, &langsight_core::keys::new_id()[..6]);
            }
            conn.execute(
                "INSERT INTO projects (id, name, slug, created_by, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![p.id, p.name, slug, p.created_by, p.created_at],
            )?;
            let mut member_count = 0;
            if let Some(owner) = &p.owner_member {
                conn.execute(
                    "INSERT INTO project_members (project_id, user_id, role, added_by, added_at) VALUES (?1, ?2, 'owner', ?2, ?3)",
                    params![p.id, owner, p.created_at],
                )?;
                member_count = 1;
            }
            Ok(Project { id: p.id, name: p.name, slug, created_by: p.created_by, created_at: p.created_at, member_count })
        })
        .await
    }

    async fn list_projects(&self) -> Result<Vec<Project>, StorageError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!("{PROJECT_SELECT} ORDER BY p.created_at, p.id"))?;
            let rows = stmt.query_map([], project_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn get_project(&self, id: &str) -> Result<Option<Project>, StorageError> {
        let id = id.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!("{PROJECT_SELECT} WHERE p.id = ?1"))?;
            Ok(stmt.query_row(params![id], project_from_row).optional()?)
        })
        .await
    }

    async fn member_role(&self, project_id: &str, principal: &str) -> Result<Option<String>, StorageError> {
        let (project_id, principal) = (project_id.to_string(), principal.to_string());
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT role FROM project_members WHERE project_id = ?1 AND user_id = ?2",
                    params![project_id, principal],
                    |r| r.get(0),
                )
                .optional()?)
        })
        .await
    }

    async fn memberships(&self, principal: &str) -> Result<Vec<(Project, String)>, StorageError> {
        let principal = principal.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "{PROJECT_SELECT} JOIN project_members pm ON pm.project_id = p.id WHERE pm.user_id = ?1 ORDER BY p.created_at"
            ))?;
            let sql_role = conn.prepare_cached("SELECT role FROM project_members WHERE project_id = ?1 AND user_id = ?2");
            let mut sql_role = sql_role?;
            let projects = stmt.query_map(params![principal], project_from_row)?.collect::<Result<Vec<_>, _>>()?;
            let mut out = Vec::with_capacity(projects.len());
            for p in projects {
                let role: String = sql_role.query_row(params![p.id, principal], |r| r.get(0))?;
                out.push((p, role));
            }
            Ok(out)
        })
        .await
    }

    async fn update_project(&self, id: &str, name: &str, slug: &str) -> Result<Option<Project>, StorageError> {
        let (id, name, slug) = (id.to_string(), name.to_string(), slug.to_string());
        self.write(move |conn| {
            let exists = conn.query_row("SELECT 1 FROM projects WHERE id = ?1", params![id], |_| Ok(())).optional()?;
            if exists.is_none() {
                return Ok(None);
            }
            let mut unique = slug.clone();
            while conn
                .query_row("SELECT 1 FROM projects WHERE slug = ?1 AND id <> ?2", params![unique, id], |_| Ok(()))
                .optional()?
                .is_some()
            {
                unique = format!("{slug}-{}", &langsight_core::keys::new_id()[..6]);
            }
            conn.execute("UPDATE projects SET name = ?2, slug = ?3 WHERE id = ?1", params![id, name, unique])?;
            Ok(conn
                .prepare_cached(&format!("{PROJECT_SELECT} WHERE p.id = ?1"))?
                .query_row(params![id], project_from_row)
                .optional()?)
        })
        .await
    }

    async fn delete_project(&self, id: &str) -> Result<bool, StorageError> {
        let id = id.to_string();
        self.write(move |conn| {
            conn.execute("DELETE FROM project_members WHERE project_id = ?1", params![id])?;
            Ok(conn.execute("DELETE FROM projects WHERE id = ?1", params![id])? > 0)
        })
        .await
    }

    async fn list_members(&self, project_id: &str) -> Result<Vec<Member>, StorageError> {
        let project_id = project_id.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT user_id, role, added_by, added_at FROM project_members WHERE project_id = ?1 ORDER BY added_at, user_id",
            )?;
            let rows = stmt.query_map(params![project_id], |r| {
                Ok(Member { user_id: r.get(0)?, role: r.get(1)?, added_by: r.get(2)?, added_at: r.get(3)? })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn upsert_member(&self, project_id: &str, m: Member) -> Result<(), StorageError> {
        let project_id = project_id.to_string();
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO project_members (project_id, user_id, role, added_by, added_at) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role",
                params![project_id, m.user_id, m.role, m.added_by, m.added_at],
            )?;
            Ok(())
        })
        .await
    }

    async fn set_member_role(
        &self,
        project_id: &str,
        user_id: &str,
        role: &str,
    ) -> Result<Option<Member>, StorageError> {
        let (project_id, user_id, role) = (project_id.to_string(), user_id.to_string(), role.to_string());
        self.write(move |conn| {
            conn.execute(
                "UPDATE project_members SET role = ?3 WHERE project_id = ?1 AND user_id = ?2",
                params![project_id, user_id, role],
            )?;
            Ok(conn
                .query_row(
                    "SELECT user_id, role, added_by, added_at FROM project_members WHERE project_id = ?1 AND user_id = ?2",
                    params![project_id, user_id],
                    |r| Ok(Member { user_id: r.get(0)?, role: r.get(1)?, added_by: r.get(2)?, added_at: r.get(3)? }),
                )
                .optional()?)
        })
        .await
    }

    async fn remove_member(&self, project_id: &str, user_id: &str) -> Result<bool, StorageError> {
        let (project_id, user_id) = (project_id.to_string(), user_id.to_string());
        self.write(move |conn| {
            Ok(conn.execute(
                "DELETE FROM project_members WHERE project_id = ?1 AND user_id = ?2",
                params![project_id, user_id],
            )? > 0)
        })
        .await
    }
}

const HEALTH_COLUMNS: &str =
    "server_name, project_id, status, latency_ms, tools_count, tools, schema_hash, error, checked_at";

fn health_from_row(r: &Row) -> rusqlite::Result<HealthRecord> {
    Ok(HealthRecord {
        server_name: r.get(0)?,
        project_id: r.get(1)?,
        status: r.get(2)?,
        latency_ms: r.get(3)?,
        tools_count: r.get(4)?,
        tools_json: r.get(5)?,
        schema_hash: r.get(6)?,
        error: r.get(7)?,
        checked_at: r.get(8)?,
    })
}

#[async_trait]
impl HealthStore for SqliteStorage {
    async fn save_health(&self, h: HealthRecord) -> Result<(), StorageError> {
        self.write(move |conn| {
            conn.prepare_cached(&format!(
                "INSERT INTO health_results ({HEALTH_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ))?
            .execute(params![
                h.server_name,
                h.project_id,
                h.status,
                h.latency_ms,
                h.tools_count,
                h.tools_json,
                h.schema_hash,
                h.error,
                h.checked_at
            ])?;
            Ok(())
        })
        .await
    }

    async fn latest_health(&self, project_id: &str) -> Result<Vec<HealthRecord>, StorageError> {
        let project_id = project_id.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {HEALTH_COLUMNS} FROM health_results h WHERE project_id = ?1 AND id = \
                 (SELECT max(id) FROM health_results x WHERE x.project_id = h.project_id AND x.server_name = h.server_name) \
                 ORDER BY server_name"
            ))?;
            let rows = stmt.query_map(params![project_id], health_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn latest_snapshot(&self, project_id: &str, server: &str) -> Result<Option<HealthRecord>, StorageError> {
        let (project_id, server) = (project_id.to_string(), server.to_string());
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {HEALTH_COLUMNS} FROM health_results WHERE project_id = ?1 AND server_name = ?2 \
                 AND schema_hash IS NOT NULL ORDER BY id DESC LIMIT 1"
            ))?;
            Ok(stmt.query_row(params![project_id, server], health_from_row).optional()?)
        })
        .await
    }

    async fn prune_health_before(&self, before: i64) -> Result<u64, StorageError> {
        self.write(move |conn| {
            let n = conn.execute(
                "DELETE FROM health_results WHERE checked_at < ?1 AND id NOT IN \
                 (SELECT max(id) FROM health_results GROUP BY project_id, server_name)",
                params![before],
            )?;
            conn.execute("DELETE FROM schema_drift_events WHERE detected_at < ?1", params![before])?;
            Ok(n as u64)
        })
        .await
    }

    async fn save_drift(&self, rows: Vec<DriftRecord>) -> Result<(), StorageError> {
        self.write(move |conn| {
            let mut stmt = conn.prepare_cached(
                "INSERT INTO schema_drift_events (server_name, project_id, tool_name, drift_type, change_kind, param_name, \
                 old_value, new_value, previous_hash, current_hash, has_breaking, detected_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?;
            for r in &rows {
                stmt.execute(params![
                    r.server_name,
                    r.project_id,
                    r.tool_name,
                    r.drift_type,
                    r.change_kind,
                    r.param_name,
                    r.old_value,
                    r.new_value,
                    r.previous_hash,
                    r.current_hash,
                    r.has_breaking,
                    r.detected_at
                ])?;
            }
            Ok(())
        })
        .await
    }

    async fn drift_history(
        &self,
        project_id: &str,
        server: &str,
        limit: usize,
    ) -> Result<Vec<DriftRecord>, StorageError> {
        let (project_id, server) = (project_id.to_string(), server.to_string());
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT server_name, project_id, tool_name, drift_type, change_kind, param_name, old_value, new_value, \
                 previous_hash, current_hash, has_breaking, detected_at FROM schema_drift_events \
                 WHERE project_id = ?1 AND server_name = ?2 ORDER BY id DESC LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![project_id, server, limit as i64], |r| {
                Ok(DriftRecord {
                    server_name: r.get(0)?,
                    project_id: r.get(1)?,
                    tool_name: r.get(2)?,
                    drift_type: r.get(3)?,
                    change_kind: r.get(4)?,
                    param_name: r.get(5)?,
                    old_value: r.get(6)?,
                    new_value: r.get(7)?,
                    previous_hash: r.get(8)?,
                    current_hash: r.get(9)?,
                    has_breaking: r.get(10)?,
                    detected_at: r.get(11)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn health_history(
        &self,
        project_id: &str,
        server: &str,
        limit: usize,
    ) -> Result<Vec<HealthRecord>, StorageError> {
        let (project_id, server) = (project_id.to_string(), server.to_string());
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {HEALTH_COLUMNS} FROM health_results WHERE project_id = ?1 AND server_name = ?2 \
                 ORDER BY id DESC LIMIT ?3"
            ))?;
            let rows = stmt.query_map(params![project_id, server, limit as i64], health_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spans of a session stored before sessions had keys (schema 20) are read whole after the upgrade, beside
    /// the spans a later batch brings under the session's new key — by project and without, by the session reads
    /// and the link pass — while a new session's spans are found by its key alone (the id index no longer takes
    /// them).
    #[tokio::test]
    async fn a_session_stored_before_keys_reads_whole_after_the_upgrade() {
        const OLD: &str = "01d00000000000000000000000000000";
        const NEW: &str = "9e000000000000000000000000000000";
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("old.db");
        {
            let mut conn = Connection::open(&path).expect("database");
            crate::sqlite::migrations::run_until(&mut conn, 20).expect("schema 20");
            for (i, span) in ["old-0", "old-1"].into_iter().enumerate() {
                conn.execute(
                    "INSERT INTO spans (span_id, span_type, session_id, server_name, tool_name, started_at, ended_at, \
                     latency_ms, status, project_id, lineage_provenance, lineage_status, schema_version) \
                     VALUES (?1, 'tool_call', ?3, 's', 't', ?2, ?2, 1.0, 'success', 'p', 'explicit', 'complete', '1.0')",
                    params![span, 1_700_000_000_000_000i64 + i as i64, OLD],
                )
                .expect("old span");
            }
            let rollup = serde_json::to_string(&SessionRollup::default()).expect("rollup");
            conn.execute(
                "INSERT INTO sessions (project_id, session_id, first_call_at, last_call_at, rollup, span_count, \
                 linked_count) VALUES ('p', ?2, 0, 0, ?1, 2, 2)",
                [rollup.as_str(), OLD],
            )
            .expect("old session");
        }
        let db = SqliteStorage::open(&path).expect("upgrade");
        let batch = |sid: &str, from: usize, n: usize| -> Vec<Span> {
            let name = if sid == OLD { "old" } else { "new" };
            let spans: Vec<serde_json::Value> = (from..from + n)
                .map(|i| {
                    serde_json::json!({"span_id": format!("{name}-{i}"), "session_id": sid, "server_name": "s",
                        "tool_name": "t", "status": "success", "project_id": "p",
                        "started_at": 1_700_000_010 + i, "ended_at": 1_700_000_010 + i})
                })
                .collect();
            langsight_core::span::decode_batch(&serde_json::to_vec(&spans).expect("json")).expect("batch")
        };
        let mut mixed = batch(OLD, 2, 2);
        mixed.extend(batch(NEW, 0, 3));
        mixed.swap(1, 3); // the sessions' spans interleaved in the batch
        db.ingest(mixed).await.expect("ingest");
        db.ingest(batch(NEW, 3, 1)).await.expect("a later batch of the new session");
        let ids = |spans: Vec<Span>| spans.into_iter().map(|s| s.span_id).collect::<Vec<_>>();
        let old = ["old-0", "old-1", "old-2", "old-3"];
        let new = ["new-0", "new-1", "new-2", "new-3"];
        for project in [Some("p"), None] {
            assert_eq!(ids(db.session_spans(OLD, project, 100).await.expect("old")), old, "{project:?}");
            assert_eq!(ids(db.session_spans(NEW, project, 100).await.expect("new")), new, "{project:?}");
        }
        assert!(db.session_spans(NEW, Some("q"), 100).await.expect("other project").is_empty());
        assert_eq!(ids(db.session_spans(NEW, None, 2).await.expect("limit")), ["new-0", "new-1"]);
        let (linked, unkeyed, keyed_new) = db
            .read(|conn| {
                let linked = super::super::rollups::link_spans(conn, "p", &[OLD.into(), NEW.into()])?;
                let unkeyed: i64 = conn.query_row(
                    "SELECT count(*) FROM spans INDEXED BY spans_by_session WHERE session_id IS NOT NULL \
                     AND session_seq IS NULL",
                    [],
                    |r| r.get(0),
                )?;
                let keyed_new: (i64, i64) = conn.query_row(
                    "SELECT count(DISTINCT session_seq), min(seq) = min(session_seq) FROM spans WHERE session_id = ?1",
                    [NEW],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                let rows: i64 =
                    conn.query_row("SELECT count(*) FROM sessions WHERE session_id IN (?1, ?2)", [OLD, NEW], |r| {
                        r.get(0)
                    })?;
                assert_eq!(rows, 2, "a later batch updates its session's row (the key is unique), never adds one");
                Ok((linked, unkeyed, keyed_new))
            })
            .await
            .expect("reads");
        let mut linked: Vec<String> = linked.into_iter().map(|l| l.span_id).collect();
        linked.sort();
        assert_eq!(linked, [&new[..], &old[..]].concat(), "the link pass reads every span of both sessions");
        assert_eq!(unkeyed, 2, "only the spans stored before the upgrade stay in the id index");
        assert_eq!(keyed_new, (1, 1), "one key for the new session, its first span's seq");
    }

    /// The plan of each form of the sessions list: the plain request walks a start-time index with no sort
    /// step (so it stops after the page), and the bounded window of a search or sort is read in that index's
    /// order too, not by sorting every session of the window.
    #[test]
    fn the_plain_sessions_list_reads_the_start_index_in_order() {
        let mut conn = Connection::open_in_memory().expect("memory database");
        crate::sqlite::migrations::run(&mut conn).expect("schema");
        let plan = |q: &SessionQuery| -> String {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {}", session_list_sql(q))).expect("plan");
            let p = params![0, q.project_id, None::<String>, None::<String>, 50, 0, None::<bool>];
            let extra = params![None::<String>, 10_000];
            let all: Vec<&dyn rusqlite::ToSql> =
                p.iter().chain(if q.is_plain() { &[][..] } else { extra }).copied().collect();
            let rows = stmt.query_map(&all[..], |r| r.get::<_, String>(3)).expect("plan rows");
            rows.map(|r| r.expect("plan row")).collect::<Vec<_>>().join(" | ")
        };
        for project in [None, Some("p".to_string())] {
            let plain = SessionQuery { project_id: project.clone(), limit: 50, ..Default::default() };
            let p = plan(&plain);
            assert!(p.contains("USING INDEX sessions_"), "{project:?}: {p}");
            assert!(!p.contains("TEMP B-TREE"), "the plain list sorts nothing ({project:?}): {p}");
            let later = SessionQuery { offset: 5_000, ..plain.clone() };
            let p = plan(&later);
            assert!(p.contains("COVERING INDEX sessions_window"), "a later page skips in the index ({project:?}): {p}");
            let sorted = SessionQuery { sort: SessionSort::Duration, search: Some("x".into()), ..plain };
            let p = plan(&sorted);
            // The window comes from one index alone (no rollup read); only the page's rows are looked up.
            assert!(p.contains("COVERING INDEX sessions_window"), "{project:?}: {p}");
        }
    }
}
