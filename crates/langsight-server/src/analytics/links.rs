//! The link pass: what needs a span's parent — delegation edges (a span of one agent under a span of another)
//! and sessions with missing parents — cannot be folded when a span arrives, because its parent may arrive
//! later (the SDK sends a parent when it ends, after its children). So ingest only marks the session due (its
//! span count moves away from the count the pass recorded), and this pass reads each due session's spans
//! (narrowly: ids, parents, agents, start times), recomputes its delegation edges per hour and whether a parent
//! is missing, and merges into the [`RollupKind::Delegation`] rows only the difference from what it added for
//! that session before. Recomputing a session twice changes nothing, so workers may run it concurrently: each
//! session's record is compare-and-set on the count read.
//!
//! It runs in the background every [`INTERVAL`], and before a read that needs it ([`catch_up`]), so a lineage
//! request sees spans committed before it.

use crate::error::ApiResult;
use crate::state::AppState;
use langsight_core::rollup::{delegation_dims, RollupBatch, RollupKind, Stats, HOUR};
use langsight_core::sketch::hash_str;
use langsight_storage::{LinkSpan, LinkUpdate, UnlinkedSession};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Due sessions read per step.
const STEP: usize = 500;
/// How often the background pass looks for due sessions.
pub const INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);
/// Due sessions a read links before answering at most; the background pass does the rest.
const CATCH_UP: usize = 5_000;

/// (hour, parent agent, child agent) → children: what the pass added for one session.
type Contribution = BTreeMap<(i64, String, String), u64>;

fn encode(c: &Contribution) -> Vec<u8> {
    let rows: Vec<(i64, &str, &str, u64)> = c.iter().map(|((h, p, a), n)| (*h, p.as_str(), a.as_str(), *n)).collect();
    serde_json::to_vec(&rows).unwrap_or_default()
}

/// A record that does not decode (written by hand) counts as empty: the session's edges are then added again.
fn decode(bytes: &[u8]) -> Contribution {
    if bytes.is_empty() {
        return Contribution::new();
    }
    match serde_json::from_slice::<Vec<(i64, String, String, u64)>>(bytes) {
        Ok(rows) => rows.into_iter().map(|(h, p, a, n)| ((h, p, a), n)).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "analytics.links_unreadable: recounting the session");
            Contribution::new()
        }
    }
}

/// One session's delegation edges and whether some span names a parent it does not hold. The parent's agent is
/// that of the last stored copy of its id that names an agent (as the span scan's last-seen rule).
fn session_links(spans: &[&LinkSpan]) -> (Contribution, bool) {
    let mut agent_of: HashMap<&str, &str> = HashMap::with_capacity(spans.len());
    let mut ids: HashSet<&str> = HashSet::with_capacity(spans.len());
    for s in spans {
        ids.insert(&s.span_id);
        if let Some(a) = s.agent_name.as_deref().filter(|a| !a.is_empty()) {
            agent_of.insert(&s.span_id, a);
        }
    }
    let mut out = Contribution::new();
    let mut missing = false;
    for s in spans {
        let Some(parent) = s.parent_span_id.as_deref().filter(|p| !p.is_empty()) else { continue };
        missing |= !ids.contains(parent);
        let Some(child_agent) = s.agent_name.as_deref().filter(|a| !a.is_empty()) else { continue };
        if let Some(parent_agent) = agent_of.get(parent).filter(|p| **p != child_agent) {
            let hour = RollupKind::Delegation.bucket(s.started_at);
            *out.entry((hour, parent_agent.to_string(), child_agent.to_string())).or_default() += 1;
        }
    }
    (out, missing)
}

/// What to merge for a session: the new counts above what was added before. A key only in the old record is an
/// hour retention deleted (spans are never removed otherwise), so nothing is subtracted.
fn delta(project: &str, session: &str, old: &Contribution, new: &Contribution) -> RollupBatch {
    let mut batch = RollupBatch::default();
    for (key @ (hour, parent, child), n) in new {
        let before = old.get(key).copied().unwrap_or(0);
        if *n <= before {
            continue;
        }
        let mut stats = Stats { spans: n - before, last_at: hour * HOUR, ..Stats::default() };
        stats.sessions.add_hash(hash_str(session));
        batch.0.insert((RollupKind::Delegation, project.to_string(), *hour, delegation_dims(parent, child)), stats);
    }
    batch
}

/// Links up to `limit` due sessions; returns how many were recorded (0: nothing was due).
pub async fn run(state: &AppState, limit: usize) -> ApiResult<usize> {
    let mut done = 0;
    while done < limit {
        let due = state.storage.spans.unlinked_sessions(STEP.min(limit - done)).await?;
        if due.is_empty() {
            break;
        }
        let mut by_project: BTreeMap<&str, Vec<&UnlinkedSession>> = BTreeMap::new();
        for s in &due {
            by_project.entry(&s.project_id).or_default().push(s);
        }
        let mut updates = Vec::with_capacity(due.len());
        for (project, sessions) in by_project {
            let ids: Vec<String> = sessions.iter().map(|s| s.session_id.clone()).collect();
            let since = sessions.iter().map(|s| s.first_call_at).min().unwrap_or(0);
            let spans = state.storage.spans.link_spans(project, &ids, since).await?;
            let mut per_session: HashMap<&str, Vec<&LinkSpan>> = HashMap::new();
            for s in &spans {
                per_session.entry(&s.session_id).or_default().push(s);
            }
            for s in sessions {
                let members = per_session.get(s.session_id.as_str()).map(Vec::as_slice).unwrap_or_default();
                let (new, missing_parents) = session_links(members);
                let llm_calls = members.iter().filter(|m| m.llm_call).count() as i64;
                let old = decode(&s.links);
                updates.push(LinkUpdate {
                    project_id: s.project_id.clone(),
                    session_id: s.session_id.clone(),
                    expect_linked: s.linked_count,
                    linked_count: s.span_count,
                    links: encode(&new),
                    missing_parents,
                    llm_calls,
                    delta: delta(&s.project_id, &s.session_id, &old, &new),
                });
            }
        }
        let n = updates.len();
        state.storage.spans.commit_links(updates).await?;
        done += n;
        if n < STEP {
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

    fn span(id: &str, parent: Option<&str>, agent: Option<&str>, at: i64) -> LinkSpan {
        LinkSpan {
            session_id: "s".into(),
            span_id: id.into(),
            parent_span_id: parent.map(String::from),
            agent_name: agent.map(String::from),
            started_at: at,
            llm_call: false,
        }
    }

    #[test]
    fn delegations_count_children_of_another_agents_span_once_whatever_the_order() {
        let spans = [
            span("c1", Some("p"), Some("worker"), 2 * HOUR + 5),
            span("c2", Some("p"), Some("worker"), 3 * HOUR),
            span("own", Some("p"), Some("boss"), 3 * HOUR),
            span("p", None, Some("boss"), 2 * HOUR),
            span("anon", Some("p"), None, 2 * HOUR),
        ];
        let refs: Vec<&LinkSpan> = spans.iter().collect();
        let (c, missing) = session_links(&refs);
        assert!(!missing);
        let want: Contribution =
            [((2, "boss".into(), "worker".into()), 1), ((3, "boss".into(), "worker".into()), 1)].into();
        assert_eq!(c, want);
        let (_, missing) = session_links(&refs[..2]);
        assert!(missing, "c1's parent is not stored yet");
        // Recomputing with one more child adds one; recomputing unchanged adds nothing.
        let mut more = c.clone();
        *more.get_mut(&(3, "boss".into(), "worker".into())).unwrap() += 1;
        let d = delta("p", "s", &c, &more);
        assert_eq!(d.0.values().map(|s| s.spans).sum::<u64>(), 1);
        assert!(delta("p", "s", &more, &more).is_empty());
        assert_eq!(decode(&encode(&more)), more);
    }
}
