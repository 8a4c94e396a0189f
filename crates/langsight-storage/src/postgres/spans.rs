//! [`SpanStore`] for PostgreSQL: spans, session rollups and hourly tool aggregates written in one
//! transaction per batch. Session rows are locked in a fixed order before they are folded, so concurrent
//! ingests from several workers or hosts into the same sessions serialise instead of losing updates or
//! deadlocking.

use super::PgStorage;
use crate::model::*;
use crate::{SpanStore, StorageError};
use async_trait::async_trait;
use langsight_core::health::HealthTag;
use langsight_core::links::{self, LinkView};
use langsight_core::rollup::RollupBatch;
use langsight_core::session::SessionRollup;
use langsight_core::span::{LineageProvenance, LineageStatus, Span, SpanStatus, SpanType};
use std::collections::BTreeMap;
use tokio_postgres::Row;

const COLUMNS: &str = "span_id, parent_span_id, span_type, trace_id, session_id, server_name, tool_name, \
    started_at, ended_at, latency_ms, status, error, agent_name, input_json, output_json, llm_input, llm_output, \
    replay_of, project_id, input_tokens, output_tokens, model_id, finish_reason, cache_read_tokens, \
    cache_creation_tokens, thinking_tokens, target_agent_name, lineage_provenance, lineage_status, schema_version";

/// The columns of a [`SpanFact`], in [`fact_from_row`]'s order.
pub(super) const FACT_COLUMNS: &str = "span_id, parent_span_id, span_type, session_id, server_name, tool_name, \
    agent_name, target_agent_name, started_at, ended_at, latency_ms, status, substr(error, 1, 300), model_id, \
    input_tokens, output_tokens, thinking_tokens, lineage_provenance, project_id, seq";

pub(super) fn fact_from_row(r: &Row) -> Result<SpanFact, StorageError> {
    let bad = |what: &str, v: String| StorageError::Backend(format!("stored span has a bad {what} '{v}'"));
    let (span_type, status): (String, String) = (r.get(2), r.get(11));
    Ok(SpanFact {
        span_id: r.get(0),
        parent_span_id: r.get(1),
        span_type: SpanType::parse(&span_type).ok_or_else(|| bad("span_type", span_type.clone()))?,
        session_id: r.get(3),
        server_name: r.get(4),
        tool_name: r.get(5),
        agent_name: r.get(6),
        target_agent_name: r.get(7),
        started_at: r.get(8),
        ended_at: r.get(9),
        latency_ms: r.get(10),
        status: SpanStatus::parse(&status).ok_or_else(|| bad("status", status.clone()))?,
        error: r.get(12),
        model_id: r.get(13),
        input_tokens: r.get(14),
        output_tokens: r.get(15),
        thinking_tokens: r.get(16),
        explicit_lineage: r.get::<_, String>(17) == "explicit",
        project_id: Some(r.get::<_, String>(18)).filter(|p| !p.is_empty()),
        cursor: FactCursor { started_at: r.get(8), tiebreak: r.get::<_, i64>(19).to_string() },
    })
}

fn span_from_row(r: &Row) -> Result<Span, StorageError> {
    let text = |i: usize| -> String { r.get(i) };
    let bad = |what: &str, v: String| StorageError::Backend(format!("stored span has a bad {what} '{v}'"));
    let (span_type, status, provenance, lineage, project) = (text(2), text(10), text(27), text(28), text(18));
    Ok(Span {
        span_id: r.get(0),
        parent_span_id: r.get(1),
        span_type: SpanType::parse(&span_type).ok_or_else(|| bad("span_type", span_type.clone()))?,
        trace_id: r.get(3),
        session_id: r.get(4),
        server_name: r.get(5),
        tool_name: r.get(6),
        started_at: r.get(7),
        ended_at: r.get(8),
        latency_ms: r.get(9),
        status: SpanStatus::parse(&status).ok_or_else(|| bad("status", status.clone()))?,
        error: r.get(11),
        agent_name: r.get(12),
        input_json: r.get(13),
        output_json: r.get(14),
        llm_input: r.get(15),
        llm_output: r.get(16),
        replay_of: r.get(17),
        project_id: (!project.is_empty()).then_some(project),
        input_tokens: r.get(19),
        output_tokens: r.get(20),
        model_id: r.get(21),
        finish_reason: r.get(22),
        cache_read_tokens: r.get(23),
        cache_creation_tokens: r.get(24),
        thinking_tokens: r.get(25),
        target_agent_name: r.get(26),
        lineage_provenance: LineageProvenance::parse(&provenance)
            .ok_or_else(|| bad("lineage_provenance", provenance.clone()))?,
        lineage_status: LineageStatus::parse(&lineage).ok_or_else(|| bad("lineage_status", lineage.clone()))?,
        schema_version: r.get(29),
    })
}

/// All spans of a batch in one binary `COPY`: no SQL to parse and no arrays to build and unpack, each value
/// sent once in its binary form (measured against the `unnest` insert it replaced in BENCHMARKS.md).
async fn insert_spans(tx: &deadpool_postgres::Transaction<'_>, spans: &[Span]) -> Result<(), StorageError> {
    use tokio_postgres::types::Type;
    /// The types of [`COLUMNS`], in order.
    const TYPES: [Type; 30] = [
        Type::TEXT,   // span_id
        Type::TEXT,   // parent_span_id
        Type::TEXT,   // span_type
        Type::TEXT,   // trace_id
        Type::TEXT,   // session_id
        Type::TEXT,   // server_name
        Type::TEXT,   // tool_name
        Type::INT8,   // started_at
        Type::INT8,   // ended_at
        Type::FLOAT8, // latency_ms
        Type::TEXT,   // status
        Type::TEXT,   // error
        Type::TEXT,   // agent_name
        Type::TEXT,   // input_json
        Type::TEXT,   // output_json
        Type::TEXT,   // llm_input
        Type::TEXT,   // llm_output
        Type::TEXT,   // replay_of
        Type::TEXT,   // project_id
        Type::INT8,   // input_tokens
        Type::INT8,   // output_tokens
        Type::TEXT,   // model_id
        Type::TEXT,   // finish_reason
        Type::INT8,   // cache_read_tokens
        Type::INT8,   // cache_creation_tokens
        Type::INT8,   // thinking_tokens
        Type::TEXT,   // target_agent_name
        Type::TEXT,   // lineage_provenance
        Type::TEXT,   // lineage_status
        Type::TEXT,   // schema_version
    ];
    let sink = tx.copy_in(&format!("COPY spans ({COLUMNS}) FROM STDIN (FORMAT binary)")).await?;
    let mut writer = std::pin::pin!(tokio_postgres::binary_copy::BinaryCopyInWriter::new(sink, &TYPES));
    for s in spans {
        let project = s.project().unwrap_or("");
        writer
            .as_mut()
            .write(&[
                &s.span_id,
                &s.parent_span_id,
                &s.span_type.as_str(),
                &s.trace_id,
                &s.session_id,
                &s.server_name,
                &s.tool_name,
                &s.started_at,
                &s.ended_at,
                &s.latency_ms,
                &s.status.as_str(),
                &s.error,
                &s.agent_name,
                &s.input_json,
                &s.output_json,
                &s.llm_input,
                &s.llm_output,
                &s.replay_of,
                &project,
                &s.input_tokens,
                &s.output_tokens,
                &s.model_id,
                &s.finish_reason,
                &s.cache_read_tokens,
                &s.cache_creation_tokens,
                &s.thinking_tokens,
                &s.target_agent_name,
                &s.lineage_provenance.as_str(),
                &s.lineage_status.as_str(),
                &s.schema_version,
            ])
            .await?;
    }
    writer.finish().await?;
    Ok(())
}

/// Folds a batch into the hourly tool aggregates and the session rollups, inside the caller's transaction.
/// Used by `postgres` mode after inserting the spans, and by `dual` mode (spans in ClickHouse).
pub(crate) async fn fold(
    tx: &deadpool_postgres::Transaction<'_>,
    spans: &[Span],
) -> Result<Vec<SessionTagUpdate>, StorageError> {
    // The hourly tool aggregates in one upsert, rows taken in key order (the ordinality) so concurrent writers
    // lock them in the same order.
    let hours = tool_hour_groups(spans);
    if !hours.is_empty() {
        let n = hours.len();
        let (mut projects, mut servers, mut tools, mut at) =
            (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut calls, mut errors, mut latency) =
            (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        for ((p, server, tool, hour), (c, e, l)) in &hours {
            projects.push(*p);
            servers.push(*server);
            tools.push(*tool);
            at.push(*hour);
            calls.push(*c);
            errors.push(*e);
            latency.push(*l);
        }
        let upsert_hours = tx
            .prepare_cached(
                "INSERT INTO tool_hourly (project_id, server_name, tool_name, hour, calls, errors, latency_sum) \
                 SELECT p, s, t, h, c, e, l FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], \
                 $5::bigint[], $6::bigint[], $7::float8[]) WITH ORDINALITY AS u(p, s, t, h, c, e, l, o) ORDER BY o \
                 ON CONFLICT (project_id, server_name, tool_name, hour) DO UPDATE SET \
                 calls = tool_hourly.calls + excluded.calls, errors = tool_hourly.errors + excluded.errors, \
                 latency_sum = tool_hourly.latency_sum + excluded.latency_sum",
            )
            .await?;
        tx.execute(&upsert_hours, &[&projects, &servers, &tools, &at, &calls, &errors, &latency]).await?;
    }

    // Session rollups: make sure each row exists, lock them in key order, fold, write back.
    let mut groups: BTreeMap<(&str, &str), Vec<&Span>> = BTreeMap::new();
    for s in spans {
        if let Some(session) = s.session() {
            groups.entry((s.project().unwrap_or(""), session)).or_default().push(s);
        }
    }
    // Three round trips whatever the number of sessions: create the missing rows, lock and read them all, write
    // them back. Rows are created and locked in key order (the byte order of the map, passed as the ordinality):
    // the order the link pass locks them in too, so concurrent writers wait for each other, never deadlock.
    let projects: Vec<&str> = groups.keys().map(|k| k.0).collect();
    let sessions: Vec<&str> = groups.keys().map(|k| k.1).collect();
    let create = tx
        .prepare_cached(
            "INSERT INTO sessions (project_id, session_id, first_call_at, last_call_at, health_tag, rollup) \
             SELECT p, sid, 0, 0, NULL, '' FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(p, sid, o) \
             ORDER BY o ON CONFLICT (project_id, session_id) DO NOTHING",
        )
        .await?;
    tx.execute(&create, &[&projects, &sessions]).await?;
    let lock = tx
        .prepare_cached(
            "SELECT u.o, t.rollup FROM sessions t \
             JOIN unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(p, sid, o) \
             ON t.project_id = u.p AND t.session_id = u.sid ORDER BY u.o FOR UPDATE OF t",
        )
        .await?;
    let mut stored: Vec<Option<String>> = vec![None; groups.len()];
    for r in tx.query(&lock, &[&projects, &sessions]).await? {
        let slot = usize::try_from(r.get::<_, i64>(0) - 1).ok().and_then(|i| stored.get_mut(i));
        if let Some(slot) = slot {
            *slot = Some(r.get(1));
        }
    }
    let mut w = SessionWrites::default();
    let mut updates = Vec::with_capacity(groups.len());
    let mut delegations = RollupBatch::default();
    for (((project, session), members), stored) in groups.into_iter().zip(stored) {
        let stored = stored.ok_or_else(|| {
            StorageError::Backend(format!("session {project}/{session} disappeared while its batch was written"))
        })?;
        // A session's first batch is linked here ([`langsight_core::links`]); later ones by the link pass.
        let first = stored.is_empty().then(|| {
            let views: Vec<LinkView> = members.iter().map(|s| LinkView::from(*s)).collect();
            links::session_links(&views)
        });
        if let Some(l) = &first {
            delegations.absorb(links::delegation_delta(project, session, &Default::default(), &l.contribution));
        }
        let mut rollup: SessionRollup =
            if stored.is_empty() { SessionRollup::default() } else { serde_json::from_str(&stored)? };
        let previous = rollup.health_tag;
        for s in members {
            rollup.absorb(s);
        }
        let current = rollup.retag();
        let agents: Vec<&String> = rollup.agents_used.keys().collect();
        w.first_call_at.push(rollup.first_call_at);
        w.last_call_at.push(rollup.last_call_at);
        w.health_tag.push(current.as_str());
        w.agents.push(serde_json::to_string(&agents)?);
        w.rollup.push(serde_json::to_string(&rollup)?);
        w.span_count.push(rollup.span_count as i64);
        w.first.push(first.is_some());
        w.links.push(first.as_ref().map(|l| links::encode(&l.contribution)));
        w.missing_parents.push(first.as_ref().is_some_and(|l| l.missing_parents));
        w.llm_calls.push(first.as_ref().map_or(0, |l| l.llm_calls));
        w.model_id.push(rollup.model_id);
        w.input_tokens.push(rollup.total_input_tokens);
        w.output_tokens.push(rollup.total_output_tokens);
        w.thinking_tokens.push(rollup.total_thinking_tokens);
        w.agent_name.push(rollup.agent_name);
        updates.push(SessionTagUpdate {
            project_id: project.to_string(),
            session_id: session.to_string(),
            previous,
            current,
        });
    }
    let write = tx
        .prepare_cached(
            "UPDATE sessions t SET first_call_at = u.f, last_call_at = u.l, health_tag = u.h, \
             agents = ARRAY(SELECT jsonb_array_elements_text(u.a::jsonb)), rollup = u.r, model_id = u.m, \
             input_tokens = u.it, output_tokens = u.ot, thinking_tokens = u.tt, span_count = u.n, agent_name = u.an, \
             linked_count = CASE WHEN u.first THEN u.n ELSE t.linked_count END, \
             links = CASE WHEN u.first THEN u.lk ELSE t.links END, \
             missing_parents = CASE WHEN u.first THEN u.mp ELSE t.missing_parents END, \
             llm_calls = CASE WHEN u.first THEN u.lc ELSE t.llm_calls END \
             FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[], \
             $8::text[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::text[], $14::bool[], \
             $15::bytea[], $16::bool[], $17::bigint[]) \
             AS u(p, sid, f, l, h, a, r, m, it, ot, tt, n, an, first, lk, mp, lc) \
             WHERE t.project_id = u.p AND t.session_id = u.sid",
        )
        .await?;
    tx.execute(
        &write,
        &[
            &projects,
            &sessions,
            &w.first_call_at,
            &w.last_call_at,
            &w.health_tag,
            &w.agents,
            &w.rollup,
            &w.model_id,
            &w.input_tokens,
            &w.output_tokens,
            &w.thinking_tokens,
            &w.span_count,
            &w.agent_name,
            &w.first,
            &w.links,
            &w.missing_parents,
            &w.llm_calls,
        ],
    )
    .await?;
    let mut rollups = RollupBatch::from_spans(spans);
    rollups.absorb(delegations);
    super::rollups::merge_into(tx, &rollups).await?;
    Ok(updates)
}

/// The new state of a group's sessions, one array per column (in the order of the group's keys).
#[derive(Default)]
struct SessionWrites {
    first_call_at: Vec<i64>,
    last_call_at: Vec<i64>,
    health_tag: Vec<&'static str>,
    /// Each session's agents as a JSON array: PostgreSQL arrays must be rectangular, so a text[] per row cannot
    /// travel inside one parameter.
    agents: Vec<String>,
    rollup: Vec<String>,
    model_id: Vec<Option<String>>,
    input_tokens: Vec<Option<i64>>,
    output_tokens: Vec<Option<i64>>,
    thinking_tokens: Vec<Option<i64>>,
    span_count: Vec<i64>,
    agent_name: Vec<Option<String>>,
    /// True where this batch is the session's first (its links are computed here).
    first: Vec<bool>,
    links: Vec<Option<Vec<u8>>>,
    missing_parents: Vec<bool>,
    llm_calls: Vec<i64>,
}

fn spans_from_rows(rows: &[Row]) -> Result<Vec<Span>, StorageError> {
    rows.iter().map(span_from_row).collect()
}

/// The sessions list's filters: `$1` window start, `$2` project, `$3` health tag, `$4` agent, `failed` failed
/// or clean.
fn pg_session_filters(failed: &str) -> String {
    format!(
        "last_call_at >= $1 AND rollup <> '' AND ($2::text IS NULL OR project_id = $2) \
         AND ($3::text IS NULL OR health_tag = $3) AND ($4::text IS NULL OR $4 = ANY(agents)) \
         AND ({failed}::bool IS NULL OR (coalesce(health_tag, 'success') <> 'success') = {failed})"
    )
}

/// The newest `cap` sessions of the window that pass the filters, with the sort key `key` and the columns a
/// search looks at: a bounded, index-ordered read of columns only.
fn pg_session_window(key: &str, failed: &str, cap: &str) -> String {
    format!(
        "SELECT project_id, session_id, first_call_at, agent_name, health_tag, {key} AS k FROM sessions \
         WHERE {} ORDER BY first_call_at DESC LIMIT {cap}",
        pg_session_filters(failed)
    )
}

/// Lower-cased text the session id or the agent name contains (null = every row).
fn pg_session_search(needle: &str) -> String {
    format!(
        "({needle}::text IS NULL OR strpos(lower(session_id), {needle}) > 0 \
         OR strpos(lower(coalesce(agent_name, '')), {needle}) > 0)"
    )
}

#[async_trait]
impl SpanStore for PgStorage {
    async fn ingest(&self, spans: Vec<Span>) -> Result<IngestOutcome, StorageError> {
        if spans.is_empty() {
            return Ok(IngestOutcome::default());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        insert_spans(&tx, &spans).await?;
        let updates = fold(&tx, &spans).await?;
        tx.commit().await?;
        Ok(IngestOutcome { accepted: spans.len(), sessions: updates })
    }

    /// All batches in one transaction (one commit, one WAL flush). If that fails, each batch is retried on its
    /// own so one bad batch cannot fail the requests it was grouped with.
    async fn ingest_group(&self, batches: Vec<Vec<Span>>) -> Vec<Result<IngestOutcome, StorageError>> {
        if batches.len() > 1 {
            let all: Vec<Span> = batches.iter().flatten().cloned().collect();
            match self.ingest(all).await {
                Ok(merged) => {
                    return crate::group_commit::split_outcome(&batches, merged).into_iter().map(Ok).collect()
                }
                Err(e) => {
                    tracing::warn!(error = %e, batches = batches.len(), "group commit failed; writing batches one by one")
                }
            }
        }
        crate::group_commit::one_by_one(self, batches).await
    }

    async fn list_sessions(&self, q: SessionQuery) -> Result<Vec<SessionRow>, StorageError> {
        // The hottest read: prepared once per connection, not parsed and planned on every request.
        let client = self.client().await?;
        let (tag, limit, offset) = (q.health_tag.map(HealthTag::as_str), q.limit as i64, q.offset as i64);
        let rows = if q.is_plain() {
            // The common request: the start-time index read backwards, stopping after the page.
            let sql = format!(
                "SELECT project_id, session_id, rollup FROM sessions WHERE {} ORDER BY first_call_at DESC \
                 LIMIT $5 OFFSET $6",
                pg_session_filters("$7")
            );
            let statement = client.prepare_cached(&sql).await?;
            client
                .query(&statement, &[&q.active_since, &q.project_id, &tag, &q.agent_name, &limit, &offset, &q.failed])
                .await?
        } else {
            // Search or another order: the newest MAX_SESSIONS_SCANNED sessions of the window (index order,
            // columns only), searched and sorted; only the page's rows are then read in full.
            let dir = if q.ascending { "ASC" } else { "DESC" };
            let sql = format!(
                "SELECT s.project_id, s.session_id, s.rollup FROM (SELECT project_id, session_id, first_call_at, k \
                 FROM ({}) w WHERE {} ORDER BY k {dir}, first_call_at DESC, session_id LIMIT $5 OFFSET $6) p \
                 JOIN sessions s ON s.project_id = p.project_id AND s.session_id = p.session_id \
                 ORDER BY p.k {dir}, p.first_call_at DESC, p.session_id",
                pg_session_window(q.sort.sql(), "$7", "$9"),
                pg_session_search("$8")
            );
            let statement = client.prepare_cached(&sql).await?;
            let (needle, cap) = (q.needle(), MAX_SESSIONS_SCANNED as i64);
            client
                .query(
                    &statement,
                    &[&q.active_since, &q.project_id, &tag, &q.agent_name, &limit, &offset, &q.failed, &needle, &cap],
                )
                .await?
        };
        rows.iter()
            .map(|r| {
                let json: String = r.get(2);
                Ok(SessionRow { project_id: r.get(0), session_id: r.get(1), rollup: serde_json::from_str(&json)? })
            })
            .collect()
    }

    async fn count_sessions(&self, q: SessionQuery) -> Result<SessionCounts, StorageError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT count(*), count(*) FILTER (WHERE coalesce(health_tag, 'success') <> 'success') FROM ({}) w \
             WHERE {}",
            pg_session_window("0", "$5", "$7"),
            pg_session_search("$6")
        );
        let statement = client.prepare_cached(&sql).await?;
        let (tag, needle, cap) = (q.health_tag.map(HealthTag::as_str), q.needle(), MAX_SESSIONS_SCANNED as i64);
        let row = client
            .query_one(&statement, &[&q.active_since, &q.project_id, &tag, &q.agent_name, &q.failed, &needle, &cap])
            .await?;
        let (total, failed): (i64, i64) = (row.get(0), row.get(1));
        Ok(SessionCounts { total: total.max(0) as u64, failed: failed.max(0) as u64 })
    }

    async fn server_invocations(
        &self,
        project_id: Option<&str>,
        since: i64,
    ) -> Result<Vec<ServerInvocations>, StorageError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT server_name, max(started_at), \
                 (array_agg(status ORDER BY started_at DESC, seq DESC))[1], count(*), \
                 count(*) FILTER (WHERE status = 'success') FROM spans \
                 WHERE started_at >= $1 AND server_name <> '' AND span_type = 'tool_call' \
                 AND ($2::text IS NULL OR project_id = $2) GROUP BY server_name ORDER BY 2 DESC",
                &[&since, &project_id],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| ServerInvocations {
                server_name: r.get(0),
                last_called_at: r.get(1),
                last_call_status: r.get(2),
                total_calls: r.get(3),
                success_calls: r.get(4),
            })
            .collect())
    }

    async fn tool_hours(&self, project_id: Option<&str>, since_hour: i64) -> Result<Vec<ToolHour>, StorageError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT project_id, server_name, tool_name, hour, calls, errors, latency_sum FROM tool_hourly \
                 WHERE hour >= $1 AND ($2::text IS NULL OR project_id = $2) ORDER BY project_id, server_name, tool_name, hour",
                &[&since_hour, &project_id],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| ToolHour {
                project_id: r.get(0),
                server_name: r.get(1),
                tool_name: r.get(2),
                hour: r.get(3),
                calls: r.get(4),
                errors: r.get(5),
                latency_sum_ms: r.get(6),
            })
            .collect())
    }

    async fn server_calls(
        &self,
        server: &str,
        project_id: Option<&str>,
        since: i64,
        limit: usize,
    ) -> Result<Vec<Span>, StorageError> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM spans WHERE server_name = $1 AND span_type = 'tool_call' AND started_at >= $2 \
                     AND ($3::text IS NULL OR project_id = $3 OR project_id = '') ORDER BY started_at DESC LIMIT $4"
                ),
                &[&server, &since, &project_id, &(limit as i64)],
            )
            .await?;
        spans_from_rows(&rows)
    }

    async fn prune_before(&self, before: i64) -> Result<u64, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let n = tx.execute("DELETE FROM spans WHERE started_at < $1", &[&before]).await?;
        tx.execute("DELETE FROM sessions WHERE last_call_at < $1", &[&before]).await?;
        tx.execute("DELETE FROM tool_hourly WHERE hour < $1", &[&before.div_euclid(3_600_000_000)]).await?;
        super::rollups::prune(&tx, before).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn get_session(
        &self,
        project_id: Option<&str>,
        session_id: &str,
    ) -> Result<Option<SessionRow>, StorageError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT project_id, rollup FROM sessions WHERE session_id = $1 AND ($2::text IS NULL OR project_id = $2) \
                 AND rollup <> '' LIMIT 1",
                &[&session_id, &project_id],
            )
            .await?;
        match row {
            Some(r) => {
                let json: String = r.get(1);
                Ok(Some(SessionRow {
                    project_id: r.get(0),
                    session_id: session_id.to_string(),
                    rollup: serde_json::from_str(&json)?,
                }))
            }
            None => Ok(None),
        }
    }

    async fn mark_incomplete(&self, project_id: &str, session_id: &str) -> Result<bool, StorageError> {
        let n = self
            .client()
            .await?
            .execute(
                "UPDATE sessions SET health_tag = 'incomplete', \
                 rollup = jsonb_set(rollup::jsonb, '{health_tag}', '\"incomplete\"')::text \
                 WHERE project_id = $1 AND session_id = $2 AND rollup <> '' \
                 AND (health_tag IS NULL OR health_tag IN ('success', 'success_with_fallback'))",
                &[&project_id, &session_id],
            )
            .await?;
        Ok(n > 0)
    }

    async fn span_facts(&self, q: FactQuery) -> Result<Vec<SpanFact>, StorageError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {FACT_COLUMNS} FROM spans \
                 WHERE started_at >= $1 AND started_at < $2 \
                 AND ($3::text IS NULL OR project_id = $3 OR ($4 AND project_id = '')) \
                 AND ($5::bigint IS NULL OR started_at > $5 OR (started_at = $5 AND seq > $6)) \
                 ORDER BY started_at, seq LIMIT $7"
            ))
            .await?;
        let (after_at, after_seq) = match &q.after {
            Some(c) => (Some(c.started_at), c.tiebreak.parse::<i64>().unwrap_or(i64::MAX)),
            None => (None, 0),
        };
        let limit = q.limit as i64;
        let rows = client
            .query(&statement, &[&q.since, &q.until, &q.project_id, &q.include_global, &after_at, &after_seq, &limit])
            .await?;
        rows.iter().map(fact_from_row).collect()
    }

    async fn session_costs(&self, q: CostRankQuery) -> Result<Vec<SessionCost>, StorageError> {
        let client = self.client().await?;
        // The newest `read` sessions come from the covering index `sessions_costs`; the prices join them as
        // arrays (exact doubles in the binary protocol), and only the `top` rows travel back.
        let statement = client
            .prepare_cached(
                "SELECT s.session_id, s.agent_name, s.model_id, s.input_tokens, s.output_tokens, \
                 s.thinking_tokens, s.span_count FROM (SELECT session_id, agent_name, model_id, input_tokens, \
                 output_tokens, thinking_tokens, span_count FROM sessions WHERE last_call_at >= $1 \
                 AND ($2::text IS NULL OR project_id = $2) AND model_id IS NOT NULL \
                 ORDER BY first_call_at DESC LIMIT $3) s \
                 JOIN unnest($5::text[], $6::float8[], $7::float8[], $8::float8[]) AS p(model, i, o, t) \
                 ON p.model = s.model_id WHERE s.input_tokens IS NOT NULL OR s.output_tokens IS NOT NULL \
                 ORDER BY coalesce(s.input_tokens, 0)::float8 / 1e6 * p.i \
                 + coalesce(s.output_tokens, 0)::float8 / 1e6 * p.o \
                 + coalesce(s.thinking_tokens, 0)::float8 / 1e6 * p.t DESC, s.session_id LIMIT $4",
            )
            .await?;
        let models: Vec<&str> = q.prices.iter().map(|p| p.model_id.as_str()).collect();
        let column = |f: fn(&TokenPrice) -> f64| q.prices.iter().map(f).collect::<Vec<f64>>();
        let (i, o, t) = (column(|p| p.input_per_1m), column(|p| p.output_per_1m), column(|p| p.thinking_per_1m));
        let (read, top) = (q.read as i64, q.top as i64);
        let rows =
            client.query(&statement, &[&q.active_since, &q.project_id, &read, &top, &models, &i, &o, &t]).await?;
        Ok(rows
            .iter()
            .map(|r| SessionCost {
                session_id: r.get(0),
                agent_name: r.get(1),
                model_id: r.get(2),
                input_tokens: r.get(3),
                output_tokens: r.get(4),
                thinking_tokens: r.get(5),
                span_count: r.get(6),
            })
            .collect())
    }

    async fn agent_sessions(
        &self,
        project_id: Option<&str>,
        active_since: i64,
    ) -> Result<Vec<AgentSessions>, StorageError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT agent_name, model_id, count(*), \
                 count(*) FILTER (WHERE coalesce(health_tag, 'success') <> 'success'), \
                 coalesce(sum(input_tokens), 0)::bigint, coalesce(sum(output_tokens), 0)::bigint, \
                 coalesce(sum(thinking_tokens), 0)::bigint, max(last_call_at) FROM sessions \
                 WHERE last_call_at >= $1 AND ($2::text IS NULL OR project_id = $2) GROUP BY agent_name, model_id",
            )
            .await?;
        let rows = client.query(&statement, &[&active_since, &project_id]).await?;
        Ok(rows
            .iter()
            .map(|r| AgentSessions {
                agent_name: r.get(0),
                model_id: r.get(1),
                sessions: r.get(2),
                failed: r.get(3),
                input_tokens: r.get(4),
                output_tokens: r.get(5),
                thinking_tokens: r.get(6),
                last_call_at: r.get(7),
            })
            .collect())
    }

    async fn rollups(&self, q: RollupQuery) -> Result<Vec<RollupRow>, StorageError> {
        super::rollups::read(&self.client().await?, &q).await
    }

    async fn backfill_rollups(&self, page: usize) -> Result<Option<BackfillProgress>, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let progress = super::rollups::backfill(&tx, page).await?;
        tx.commit().await?;
        Ok(progress)
    }

    async fn unlinked_sessions(&self, limit: usize) -> Result<Vec<UnlinkedSession>, StorageError> {
        super::rollups::unlinked(&self.client().await?, limit).await
    }

    async fn link_spans(
        &self,
        project_id: &str,
        session_ids: &[String],
        _since: i64,
    ) -> Result<Vec<LinkSpan>, StorageError> {
        super::rollups::link_spans(&self.client().await?, project_id, session_ids).await
    }

    async fn commit_links(&self, updates: Vec<LinkUpdate>) -> Result<usize, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let applied = super::rollups::commit_links(&tx, updates).await?;
        tx.commit().await?;
        Ok(applied)
    }

    async fn incomplete_sessions(&self, query: IncompleteQuery) -> Result<Vec<IncompleteSession>, StorageError> {
        super::rollups::incomplete(&self.client().await?, &query).await
    }

    async fn session_spans(
        &self,
        session_id: &str,
        project_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Span>, StorageError> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM spans WHERE session_id = $1 AND ($2::text IS NULL OR project_id = $2) \
                     ORDER BY started_at, seq LIMIT $3"
                ),
                &[&session_id, &project_id, &(limit as i64)],
            )
            .await?;
        spans_from_rows(&rows)
    }
}
