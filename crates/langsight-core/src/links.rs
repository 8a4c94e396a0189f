//! What a session's spans say once parents are known: delegation edges (a span of one agent under a span of
//! another, per hour of the child), whether some span names a parent the session does not hold, and its LLM calls.
//! Computed from all of a session's spans — at ingest for a session's first batch, by the server's link pass when
//! later batches arrive — and stored on the session row as a [`Contribution`], so a recomputation merges only the
//! difference into the delegation rollups.

use crate::rollup::{delegation_dims, RollupBatch, RollupError, RollupKind, Stats, HOUR};
use crate::sketch::hash_str;
use crate::span::{Span, SpanType};
use std::collections::{BTreeMap, HashMap, HashSet};

/// What the link rules read of a span.
#[derive(Debug, Clone, Copy)]
pub struct LinkView<'a> {
    pub span_id: &'a str,
    pub parent: Option<&'a str>,
    pub agent: Option<&'a str>,
    pub started_at: i64,
    /// An agent span naming a model (what the unfinished-sessions list counts as an LLM call).
    pub llm_call: bool,
}

impl<'a> From<&'a Span> for LinkView<'a> {
    fn from(s: &'a Span) -> LinkView<'a> {
        LinkView {
            span_id: &s.span_id,
            parent: s.parent_span_id.as_deref(),
            agent: s.agent_name.as_deref(),
            started_at: s.started_at,
            llm_call: s.span_type == SpanType::Agent && s.model_id.is_some(),
        }
    }
}

/// (hour, parent agent, child agent) → children: what a session adds to the delegation rollups.
pub type Contribution = BTreeMap<(i64, String, String), u64>;

/// A session's links.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionLinks {
    pub contribution: Contribution,
    pub missing_parents: bool,
    pub llm_calls: i64,
}

/// The links of one session's spans. The parent's agent is that of the last copy of its id naming an agent (as
/// the span scan's last-seen rule).
pub fn session_links(spans: &[LinkView]) -> SessionLinks {
    let mut agent_of: HashMap<&str, &str> = HashMap::with_capacity(spans.len());
    let mut ids: HashSet<&str> = HashSet::with_capacity(spans.len());
    for s in spans {
        ids.insert(s.span_id);
        if let Some(a) = s.agent.filter(|a| !a.is_empty()) {
            agent_of.insert(s.span_id, a);
        }
    }
    let mut out = SessionLinks::default();
    for s in spans {
        out.llm_calls += i64::from(s.llm_call);
        let Some(parent) = s.parent.filter(|p| !p.is_empty()) else { continue };
        out.missing_parents |= !ids.contains(parent);
        let Some(child_agent) = s.agent.filter(|a| !a.is_empty()) else { continue };
        if let Some(parent_agent) = agent_of.get(parent).filter(|p| **p != child_agent) {
            let hour = RollupKind::Delegation.bucket(s.started_at);
            *out.contribution.entry((hour, parent_agent.to_string(), child_agent.to_string())).or_default() += 1;
        }
    }
    out
}

/// The stored form of a contribution (JSON rows).
pub fn encode(c: &Contribution) -> Vec<u8> {
    let rows: Vec<(i64, &str, &str, u64)> = c.iter().map(|((h, p, a), n)| (*h, p.as_str(), a.as_str(), *n)).collect();
    serde_json::to_vec(&rows).unwrap_or_default()
}

pub fn decode(bytes: &[u8]) -> Result<Contribution, RollupError> {
    if bytes.is_empty() {
        return Ok(Contribution::new());
    }
    let rows: Vec<(i64, String, String, u64)> =
        serde_json::from_slice(bytes).map_err(|e| RollupError::BadValue(format!("session links: {e}")))?;
    Ok(rows.into_iter().map(|(h, p, a, n)| ((h, p, a), n)).collect())
}

/// What to merge for a session: the new counts above what was added before. A key only in the old record is an
/// hour retention deleted (spans are never removed otherwise), so nothing is subtracted.
pub fn delegation_delta(project: &str, session: &str, old: &Contribution, new: &Contribution) -> RollupBatch {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn span<'a>(id: &'a str, parent: Option<&'a str>, agent: Option<&'a str>, at: i64) -> LinkView<'a> {
        LinkView { span_id: id, parent, agent, started_at: at, llm_call: agent == Some("boss") }
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
        let l = session_links(&spans);
        assert!(!l.missing_parents);
        assert_eq!(l.llm_calls, 2);
        let want: Contribution =
            [((2, "boss".into(), "worker".into()), 1), ((3, "boss".into(), "worker".into()), 1)].into();
        assert_eq!(l.contribution, want);
        assert!(session_links(&spans[..2]).missing_parents, "c1's parent is not stored yet");
        // Recomputing with one more child adds one; recomputing unchanged adds nothing.
        let c = l.contribution;
        let mut more = c.clone();
        *more.get_mut(&(3, "boss".into(), "worker".into())).unwrap() += 1;
        let d = delegation_delta("p", "s", &c, &more);
        assert_eq!(d.0.values().map(|s| s.spans).sum::<u64>(), 1);
        assert!(delegation_delta("p", "s", &more, &more).is_empty());
        assert_eq!(decode(&encode(&more)).unwrap(), more);
        assert!(decode(b"not json").is_err());
    }
}
