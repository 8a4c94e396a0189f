//! The analytics rollups in SQLite: merged in the ingest commit, read by bucket range, built for old spans.
//!
//! Ingest jobs do not write rollup rows themselves: each successful job adds its deltas to the writer
//! thread's pending batch, and the writer merges that batch into the rows just before the group's COMMIT
//! ([`flush_pending`]). A commit carrying fifty requests then reads and writes each touched row once, not
//! fifty times, and the rows still commit with their spans or not at all.

use super::queries::{fact_from_row, FACT_COLUMNS};
use crate::model::*;
use crate::StorageError;
use langsight_core::rollup::{RollupBatch, RollupKind, Stats};
use rusqlite::{params, Connection, OptionalExtension};
use std::cell::RefCell;

thread_local! {
    /// Deltas of the jobs of the group being committed on this (the writer) thread.
    static PENDING: RefCell<RollupBatch> = RefCell::new(RollupBatch::default());
}

/// Adds a job's deltas to the group being committed. Call it last in the job, after everything that can
/// fail: a job whose savepoint is rolled back must not leave deltas behind.
pub(crate) fn defer(batch: RollupBatch) {
    PENDING.with(|p| p.borrow_mut().absorb(batch));
}

/// Merges the group's deltas into the stored rows (inside the group's transaction, before COMMIT).
pub(crate) fn flush_pending(conn: &Connection) -> Result<(), StorageError> {
    let batch = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
    if batch.is_empty() {
        return Ok(());
    }
    merge_into(conn, &batch)
}

/// Drops the deltas of a group whose transaction failed.
pub(crate) fn discard_pending() {
    PENDING.with(|p| *p.borrow_mut() = RollupBatch::default());
}

/// Read, merge, write back each row of `batch` (the caller holds the write lock).
pub(crate) fn merge_into(conn: &Connection, batch: &RollupBatch) -> Result<(), StorageError> {
    let mut select = conn.prepare_cached(
        "SELECT value FROM rollups WHERE kind = ?1 AND bucket = ?2 AND project_id = ?3 AND dims = ?4",
    )?;
    let mut upsert = conn.prepare_cached(
        "INSERT INTO rollups (kind, bucket, project_id, dims, value) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (kind, bucket, project_id, dims) DO UPDATE SET value = excluded.value",
    )?;
    for ((kind, project, bucket, dims), delta) in &batch.0 {
        let kind = *kind as i64;
        let stored: Option<Vec<u8>> =
            select.query_row(params![kind, bucket, project, dims], |r| r.get(0)).optional()?;
        let merged = match stored {
            Some(bytes) => {
                let mut s = Stats::from_bytes(&bytes).map_err(|e| StorageError::Backend(e.to_string()))?;
                s.merge(delta);
                s
            }
            None => delta.clone(),
        };
        upsert.execute(params![kind, bucket, project, dims, merged.to_bytes()])?;
    }
    Ok(())
}

pub(crate) fn read(conn: &Connection, q: &RollupQuery) -> Result<Vec<RollupRow>, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT project_id, bucket, dims, value FROM rollups WHERE kind = ?1 AND bucket >= ?2 AND bucket < ?3 \
         AND (?4 IS NULL OR project_id = ?4 OR (?5 AND project_id = ''))",
    )?;
    let rows = stmt.query_map(params![q.kind as i64, q.since, q.until, q.project_id, q.include_global], |r| {
        Ok(RollupRow { project_id: r.get(0)?, bucket: r.get(1)?, dims: r.get(2)?, value: r.get(3)? })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Deletes rollup buckets that ended before `before` (whole buckets: the bucket holding `before` stays).
pub(crate) fn prune(conn: &Connection, before: i64) -> Result<(), StorageError> {
    for kind in [RollupKind::Hourly, RollupKind::Slot, RollupKind::Delegation] {
        conn.execute("DELETE FROM rollups WHERE kind = ?1 AND bucket < ?2", params![kind as i64, kind.bucket(before)])?;
    }
    Ok(())
}

/// Folds the next `page` spans of the pre-rollup backlog and records the progress, in one transaction.
pub(crate) fn backfill(conn: &Connection, page: usize) -> Result<Option<BackfillProgress>, StorageError> {
    let (after, upto, done, total): (i64, i64, i64, i64) =
        conn.query_row("SELECT after, upto, done, total FROM rollup_backfill WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
    if after >= upto {
        return Ok(None);
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {FACT_COLUMNS} FROM spans WHERE seq > ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3"
    ))?;
    let facts = stmt.query_map(params![after, upto, page as i64], fact_from_row)?.collect::<Result<Vec<_>, _>>()?;
    let last = match facts.last() {
        Some(f) => f.cursor.tiebreak.parse::<i64>().map_err(|e| StorageError::Backend(e.to_string()))?,
        None => upto,
    };
    merge_into(conn, &RollupBatch::from_views(facts.iter().map(fact_view)))?;
    let done = done + facts.len() as i64;
    conn.execute("UPDATE rollup_backfill SET after = ?1, done = ?2 WHERE id = 1", params![last, done])?;
    Ok(Some(BackfillProgress { spans: facts.len() as u64, done: done as u64, total: total as u64 }))
}

/// Sessions due for the link pass (read through the partial index of due sessions).
pub(crate) fn unlinked(conn: &Connection, limit: usize) -> Result<Vec<UnlinkedSession>, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT project_id, session_id, first_call_at, span_count, linked_count, links FROM sessions \
         INDEXED BY sessions_unlinked WHERE span_count <> linked_count LIMIT ?1",
    )?;
    let rows = stmt.query_map(params![limit as i64], |r| {
        Ok(UnlinkedSession {
            project_id: r.get(0)?,
            session_id: r.get(1)?,
            first_call_at: r.get(2)?,
            span_count: r.get(3)?,
            linked_count: r.get(4)?,
            links: r.get::<_, Option<Vec<u8>>>(5)?.unwrap_or_default(),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The spans of some sessions of one project, by each session's key (and, for spans stored before keys existed,
/// by the id index).
pub(crate) fn link_spans(conn: &Connection, project: &str, sessions: &[String]) -> Result<Vec<LinkSpan>, StorageError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT span_id, parent_span_id, agent_name, started_at, span_type = 'agent' AND model_id IS NOT NULL \
         FROM spans WHERE seq IN (SELECT seq FROM spans WHERE session_seq = \
         (SELECT first_seq FROM sessions WHERE project_id = ?2 AND session_id = ?1) UNION ALL {}) \
         AND session_id = ?1 AND project_id = ?2 ORDER BY seq",
        super::queries::UNKEYED_SPANS
    ))?;
    let mut out = Vec::new();
    for session in sessions {
        let rows = stmt.query_map(params![session, project], |r| {
            Ok(LinkSpan {
                session_id: session.clone(),
                span_id: r.get(0)?,
                parent_span_id: r.get(1)?,
                agent_name: r.get(2)?,
                started_at: r.get(3)?,
                llm_call: r.get(4)?,
            })
        })?;
        for row in rows {
            out.push(row?);
        }
    }
    Ok(out)
}

/// Applies the link pass's updates whose sessions still hold the linked count read (the caller holds the write
/// lock, so the check and the write are one step).
pub(crate) fn commit_links(conn: &Connection, updates: &[LinkUpdate]) -> Result<usize, StorageError> {
    let mut update = conn.prepare_cached(
        "UPDATE sessions SET linked_count = ?1, links = ?2, missing_parents = ?3, llm_calls = ?7 \
         WHERE project_id = ?4 AND session_id = ?5 AND linked_count = ?6",
    )?;
    let mut applied = 0;
    for u in updates {
        let n = update.execute(params![
            u.linked_count,
            u.links,
            u.missing_parents,
            u.project_id,
            u.session_id,
            u.expect_linked,
            u.llm_calls
        ])?;
        if n == 1 {
            merge_into(conn, &u.delta)?;
            applied += 1;
        }
    }
    Ok(applied)
}

/// Sessions with a missing parent, through their partial index (ordered by last activity).
pub(crate) fn incomplete(conn: &Connection, q: &IncompleteQuery) -> Result<Vec<IncompleteSession>, StorageError> {
    let mut stmt = conn.prepare_cached(
        "SELECT project_id, session_id, agent_name, last_call_at, span_count, llm_calls, rollup FROM sessions \
         INDEXED BY sessions_missing_parents WHERE missing_parents = 1 AND last_call_at >= ?1 AND last_call_at < ?2 \
         AND (?3 IS NULL OR project_id = ?3) ORDER BY last_call_at DESC, session_id LIMIT ?4",
    )?;
    let rows = stmt.query_map(params![q.active_since, q.idle_before, q.project_id, q.limit as i64], |r| {
        Ok((
            IncompleteSession {
                project_id: r.get(0)?,
                session_id: r.get(1)?,
                agent_name: r.get(2)?,
                last_call_at: r.get(3)?,
                span_count: r.get(4)?,
                llm_calls: r.get(5)?,
                tool_calls: 0,
            },
            r.get::<_, String>(6)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (mut s, rollup) = row?;
        s.tool_calls = session_tool_calls(&rollup)?;
        out.push(s);
    }
    Ok(out)
}
