//! The link pass: what needs a span's parent — delegation edges (a span of one agent under a span of another)
//! and sessions with missing parents ([`langsight_core::links`]) — cannot be folded span by span, because a parent
//! may arrive in a later batch (the SDK sends a parent when it ends, after its children). Ingest links a session's
//! first batch itself; a later batch only marks the session due (its span count moves away from the count
//! recorded), and this pass reads each due session's spans
//! (narrowly: ids, parents, agents, start times), recomputes its delegation edges per hour and whether a parent
//! is missing, and merges into the [`RollupKind::Delegation`] rows only the difference from what it added for
//! that session before. Recomputing a session twice changes nothing, so workers may run it concurrently: each
//! session's record is compare-and-set on the count read.
//!
//! It runs in the background every [`INTERVAL`], and before a read that needs it ([`catch_up`]), so a lineage
//! request sees spans committed before it.

use crate::error::ApiResult;
use crate::state::AppState;
use langsight_core::links::{self, Contribution, LinkView};
use langsight_storage::{LinkSpan, LinkUpdate, UnlinkedSession};
use std::collections::{BTreeMap, HashMap};

/// Due sessions read per step.
const STEP: usize = 500;
/// How often the background pass looks for due sessions.
pub const INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);
/// Due sessions a read links before answering at most; the background pass does the rest.
const CATCH_UP: usize = 5_000;

/// A record that does not decode (written by hand) counts as empty: the session's edges are then added again.
fn stored(bytes: &[u8]) -> Contribution {
    links::decode(bytes).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "analytics.links_unreadable: recounting the session");
        Contribution::new()
    })
}

fn view(s: &LinkSpan) -> LinkView<'_> {
    LinkView {
        span_id: &s.span_id,
        parent: s.parent_span_id.as_deref(),
        agent: s.agent_name.as_deref(),
        started_at: s.started_at,
        llm_call: s.llm_call,
    }
}

/// Spans a step reads at most (whatever the sessions' number): the memory of a step is its spans'.
const SPAN_BUDGET: i64 = 200_000;

/// How many of the due sessions (in order) one step links: as many as fit in [`SPAN_BUDGET`], at least one (a
/// session larger than the budget is read alone).
fn within_budget(due: &[UnlinkedSession]) -> usize {
    let mut spans = 0i64;
    let mut n = 0;
    for s in due {
        spans = spans.saturating_add(s.span_count.max(0));
        if n > 0 && spans > SPAN_BUDGET {
            break;
        }
        n += 1;
    }
    n
}

/// Links up to `limit` due sessions; returns how many were recorded (0: nothing was due).
pub async fn run(state: &AppState, limit: usize) -> ApiResult<usize> {
    let mut done = 0;
    while done < limit {
        let asked = STEP.min(limit - done);
        let mut due = state.storage.spans.unlinked_sessions(asked).await?;
        if due.is_empty() {
            break;
        }
        let fetched = due.len();
        due.truncate(within_budget(&due));
        let mut by_project: BTreeMap<&str, Vec<&UnlinkedSession>> = BTreeMap::new();
        for s in &due {
            by_project.entry(&s.project_id).or_default().push(s);
        }
        let mut updates = Vec::with_capacity(due.len());
        for (project, sessions) in by_project {
            let ids: Vec<String> = sessions.iter().map(|s| s.session_id.clone()).collect();
            let since = sessions.iter().map(|s| s.first_call_at).min().unwrap_or(0);
            let spans = state.storage.spans.link_spans(project, &ids, since).await?;
            let mut per_session: HashMap<&str, Vec<LinkView>> = HashMap::new();
            for s in &spans {
                per_session.entry(&s.session_id).or_default().push(view(s));
            }
            for s in sessions {
                let members = per_session.get(s.session_id.as_str()).map(Vec::as_slice).unwrap_or_default();
                let new = links::session_links(members);
                let old = stored(&s.links);
                updates.push(LinkUpdate {
                    project_id: s.project_id.clone(),
                    session_id: s.session_id.clone(),
                    expect_linked: s.linked_count,
                    linked_count: s.span_count,
                    links: links::encode(&new.contribution),
                    missing_parents: new.missing_parents,
                    llm_calls: new.llm_calls,
                    delta: links::delegation_delta(&s.project_id, &s.session_id, &old, &new.contribution),
                });
            }
        }
        done += updates.len();
        state.storage.spans.commit_links(updates).await?;
        // Fewer than asked and none left for the next step: nothing else is due.
        if fetched < asked && due.len() == fetched {
            break;
        }
    }
    Ok(done)
}

/// Links what is due before a read that needs it (bounded by [`CATCH_UP`]: after an upgrade the background
/// pass works through the backlog, and reads meanwhile see what it has linked).
/// A failure is logged, not returned: the read then serves what is linked already.
pub async fn catch_up(state: &AppState) -> ApiResult<()> {
    if let Err(e) = run(state, CATCH_UP).await {
        tracing::warn!(error = ?e, "analytics.links_catch_up_failed: answering with the sessions linked so far");
    }
    Ok(())
}

/// Links due sessions in the background, every [`INTERVAL`] (at once again while there is a backlog), logging
/// the backlog's progress after an upgrade.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut total = 0usize;
        loop {
            match run(&state, 20 * STEP).await {
                Ok(n) if n >= 20 * STEP => {
                    total += n;
                    tracing::info!(sessions = total, "analytics.links: linking sessions stored before the upgrade");
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = ?e, "analytics.links_failed: retrying"),
            }
            tokio::time::sleep(INTERVAL).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due(span_count: i64) -> UnlinkedSession {
        UnlinkedSession {
            project_id: String::new(),
            session_id: String::new(),
            first_call_at: 0,
            span_count,
            linked_count: 0,
            links: Vec::new(),
        }
    }

    #[test]
    fn a_step_reads_sessions_up_to_its_span_budget_and_a_huge_one_alone() {
        let small: Vec<_> = (0..500).map(|_| due(30)).collect();
        assert_eq!(within_budget(&small), 500);
        let big: Vec<_> = (0..10).map(|_| due(SPAN_BUDGET / 4)).collect();
        assert_eq!(within_budget(&big), 4);
        assert_eq!(within_budget(&[due(SPAN_BUDGET * 10), due(1)]), 1);
        assert_eq!(within_budget(&[]), 0);
    }
}
