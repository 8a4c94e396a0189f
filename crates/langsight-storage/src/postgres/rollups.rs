//! The analytics rollups in PostgreSQL (`postgres` mode, and `dual` mode beside the session rollups): merged
//! in the ingest transaction, read by bucket range, built for spans stored before they existed.
//!
//! A group's rows are merged in three round trips whatever their number: create the missing rows, lock and
//! read them all in key order (concurrent workers lock in the same order, so they wait, never deadlock),
//! write the merged values back.

use super::spans::{fact_from_row, FACT_COLUMNS};
use crate::model::*;
use crate::StorageError;
use langsight_core::rollup::{RollupBatch, RollupKind, Stats};
use std::collections::HashMap;

pub(crate) async fn merge_into(
    tx: &deadpool_postgres::Transaction<'_>,
    batch: &RollupBatch,
) -> Result<(), StorageError> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut kinds: Vec<i16> = Vec::with_capacity(batch.0.len());
    let mut buckets: Vec<i64> = Vec::with_capacity(batch.0.len());
    let mut projects: Vec<&str> = Vec::with_capacity(batch.0.len());
    let mut dims: Vec<&str> = Vec::with_capacity(batch.0.len());
    for (kind, project, bucket, d) in batch.0.keys() {
        kinds.push(*kind as i16);
        buckets.push(*bucket);
        projects.push(project);
        dims.push(d);
    }
    let create = tx
        .prepare_cached(
            "INSERT INTO rollups (kind, bucket, project_id, dims, value) \
             SELECT k, b, p, d, ''::bytea FROM unnest($1::smallint[], $2::bigint[], $3::text[], $4::text[]) AS u(k, b, p, d) \
             ORDER BY k, b, p, d ON CONFLICT DO NOTHING",
        )
        .await?;
    tx.execute(&create, &[&kinds, &buckets, &projects, &dims]).await?;
    let lock = tx
        .prepare_cached(
            "SELECT r.kind, r.bucket, r.project_id, r.dims, r.value FROM rollups r \
             JOIN unnest($1::smallint[], $2::bigint[], $3::text[], $4::text[]) AS u(k, b, p, d) \
             ON r.kind = u.k AND r.bucket = u.b AND r.project_id = u.p AND r.dims = u.d \
             ORDER BY r.kind, r.bucket, r.project_id, r.dims FOR UPDATE OF r",
        )
        .await?;
    let mut stored: HashMap<(i16, i64, String, String), Vec<u8>> = HashMap::with_capacity(batch.0.len());
    for r in tx.query(&lock, &[&kinds, &buckets, &projects, &dims]).await? {
        stored.insert((r.get(0), r.get(1), r.get(2), r.get(3)), r.get(4));
    }
    let mut values: Vec<Vec<u8>> = Vec::with_capacity(batch.0.len());
    for ((kind, project, bucket, d), delta) in &batch.0 {
        let key = (*kind as i16, *bucket, project.clone(), d.clone());
        let merged = match stored.get(&key).filter(|v| !v.is_empty()) {
            Some(bytes) => {
                let mut s = Stats::from_bytes(bytes).map_err(|e| StorageError::Backend(e.to_string()))?;
                s.merge(delta);
                s
            }
            None => delta.clone(),
        };
        values.push(merged.to_bytes());
    }
    let write = tx
        .prepare_cached(
            "UPDATE rollups r SET value = u.v \
             FROM unnest($1::smallint[], $2::bigint[], $3::text[], $4::text[], $5::bytea[]) AS u(k, b, p, d, v) \
             WHERE r.kind = u.k AND r.bucket = u.b AND r.project_id = u.p AND r.dims = u.d",
        )
        .await?;
    tx.execute(&write, &[&kinds, &buckets, &projects, &dims, &values]).await?;
    Ok(())
}

pub(crate) async fn read(client: &deadpool_postgres::Object, q: &RollupQuery) -> Result<Vec<RollupRow>, StorageError> {
    let statement = client
        .prepare_cached(
            "SELECT project_id, bucket, dims, value FROM rollups WHERE kind = $1 AND bucket >= $2 AND bucket < $3 \
             AND ($4::text IS NULL OR project_id = $4 OR ($5 AND project_id = '')) AND value <> ''::bytea",
        )
        .await?;
    let rows =
        client.query(&statement, &[&(q.kind as i16), &q.since, &q.until, &q.project_id, &q.include_global]).await?;
    Ok(rows
        .iter()
        .map(|r| RollupRow { project_id: r.get(0), bucket: r.get(1), dims: r.get(2), value: r.get(3) })
        .collect())
}

/// Deletes rollup buckets that ended before `before` (whole buckets: the bucket holding `before` stays).
pub(crate) async fn prune(tx: &deadpool_postgres::Transaction<'_>, before: i64) -> Result<(), StorageError> {
    for kind in [RollupKind::Hourly, RollupKind::Slot, RollupKind::Delegation] {
        tx.execute("DELETE FROM rollups WHERE kind = $1 AND bucket < $2", &[&(kind as i16), &kind.bucket(before)])
            .await?;
    }
    Ok(())
}

/// Folds the next `page` spans of the pre-rollup backlog and records the progress (caller's transaction).
pub(crate) async fn backfill(
    tx: &deadpool_postgres::Transaction<'_>,
    page: usize,
) -> Result<Option<BackfillProgress>, StorageError> {
    let row = tx.query_one("SELECT after, upto, done, total FROM rollup_backfill WHERE id = 1 FOR UPDATE", &[]).await?;
    let (after, upto, done, total): (i64, i64, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
    if after >= upto {
        return Ok(None);
    }
    let rows = tx
        .query(
            &format!("SELECT {FACT_COLUMNS} FROM spans WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3"),
            &[&after, &upto, &(page as i64)],
        )
        .await?;
    let facts = rows.iter().map(fact_from_row).collect::<Result<Vec<_>, _>>()?;
    let last = match facts.last() {
        Some(f) => f.cursor.tiebreak.parse::<i64>().map_err(|e| StorageError::Backend(e.to_string()))?,
        None => upto,
    };
    merge_into(tx, &RollupBatch::from_views(facts.iter().map(fact_view))).await?;
    let done = done + facts.len() as i64;
    tx.execute("UPDATE rollup_backfill SET after = $1, done = $2 WHERE id = 1", &[&last, &done]).await?;
    Ok(Some(BackfillProgress { spans: facts.len() as u64, done: done as u64, total: total as u64 }))
}

/// Sessions due for the link pass, through the partial index of due sessions: the planner prices a column-to-column
/// `<>` as matching nearly every row and scans the table instead (100 ms at a million spans) unless the order asked
/// is the index's.
pub(crate) async fn unlinked(
    client: &deadpool_postgres::Object,
    limit: usize,
) -> Result<Vec<UnlinkedSession>, StorageError> {
    let statement = client
        .prepare_cached(
            "SELECT project_id, session_id, first_call_at, span_count, linked_count, links FROM sessions \
             WHERE span_count <> linked_count ORDER BY project_id, session_id LIMIT $1",
        )
        .await?;
    let rows = client.query(&statement, &[&(limit as i64)]).await?;
    Ok(rows
        .iter()
        .map(|r| UnlinkedSession {
            project_id: r.get(0),
            session_id: r.get(1),
            first_call_at: r.get(2),
            span_count: r.get(3),
            linked_count: r.get(4),
            links: r.get::<_, Option<Vec<u8>>>(5).unwrap_or_default(),
        })
        .collect())
}

/// The spans of some sessions of one project, by the session index.
pub(crate) async fn link_spans(
    client: &deadpool_postgres::Object,
    project: &str,
    sessions: &[String],
) -> Result<Vec<LinkSpan>, StorageError> {
    let statement = client
        .prepare_cached(
            "SELECT session_id, span_id, parent_span_id, agent_name, started_at, \
             span_type = 'agent' AND model_id IS NOT NULL FROM spans WHERE session_id = ANY($1) AND project_id = $2 ORDER BY seq",
        )
        .await?;
    let rows = client.query(&statement, &[&sessions, &project]).await?;
    Ok(rows
        .iter()
        .map(|r| LinkSpan {
            session_id: r.get(0),
            span_id: r.get(1),
            parent_span_id: r.get(2),
            agent_name: r.get(3),
            started_at: r.get(4),
            llm_call: r.get(5),
        })
        .collect())
}

/// Applies the link pass's updates whose sessions still hold the linked count read, then merges their deltas
/// (caller's transaction). Sessions are updated in key order, then rollups: the order ingest locks them in.
pub(crate) async fn commit_links(
    tx: &deadpool_postgres::Transaction<'_>,
    mut updates: Vec<LinkUpdate>,
) -> Result<usize, StorageError> {
    updates.sort_by(|a, b| (&a.project_id, &a.session_id).cmp(&(&b.project_id, &b.session_id)));
    let update = tx
        .prepare_cached(
            "UPDATE sessions SET linked_count = $1, links = $2, missing_parents = $3, llm_calls = $7 \
             WHERE project_id = $4 AND session_id = $5 AND linked_count = $6",
        )
        .await?;
    let mut delta = RollupBatch::default();
    let mut applied = 0;
    for u in updates {
        let n = tx
            .execute(
                &update,
                &[
                    &u.linked_count,
                    &u.links,
                    &u.missing_parents,
                    &u.project_id,
                    &u.session_id,
                    &u.expect_linked,
                    &u.llm_calls,
                ],
            )
            .await?;
        if n == 1 {
            delta.absorb(u.delta);
            applied += 1;
        }
    }
    merge_into(tx, &delta).await?;
    Ok(applied)
}

/// Sessions with a missing parent, through their partial index (ordered by last activity).
pub(crate) async fn incomplete(
    client: &deadpool_postgres::Object,
    q: &IncompleteQuery,
) -> Result<Vec<IncompleteSession>, StorageError> {
    let statement = client
        .prepare_cached(
            "SELECT project_id, session_id, agent_name, last_call_at, span_count, llm_calls, rollup FROM sessions \
             WHERE missing_parents AND last_call_at >= $1 AND last_call_at < $2 \
             AND ($3::text IS NULL OR project_id = $3) ORDER BY last_call_at DESC, session_id LIMIT $4",
        )
        .await?;
    let rows = client.query(&statement, &[&q.active_since, &q.idle_before, &q.project_id, &(q.limit as i64)]).await?;
    rows.iter()
        .map(|r| {
            Ok(IncompleteSession {
                project_id: r.get(0),
                session_id: r.get(1),
                agent_name: r.get(2),
                last_call_at: r.get(3),
                span_count: r.get(4),
                llm_calls: r.get(5),
                tool_calls: session_tool_calls(r.get::<_, &str>(6))?,
            })
        })
        .collect()
}
