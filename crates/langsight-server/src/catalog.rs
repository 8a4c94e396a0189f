//! The agent and server catalog filled at ingest, as the original does: every agent a span names, and the
//! server of every tool call, gets a catalog entry in the span's project (`/api/agents/metadata`,
//! `/api/servers/metadata`) with first and last seen.
//!
//! The ingest path must not pay a write per batch for this. [`CatalogCache`] remembers which (project, kind,
//! name) this process registered within the last [`REFRESH`]; only names outside it are written, so a steady
//! stream of known agents costs one small upsert per name per minute per process, and a batch naming
//! nothing new costs a few hash lookups. The upsert itself is idempotent (it only widens first/last seen),
//! so a race between workers or a forgotten cache entry costs a redundant write, never a wrong row.

use langsight_core::span::{Span, SpanType, MAX_AGENT_NAME, MAX_SERVER_NAME};
use langsight_core::time::Micros;
use langsight_storage::CatalogSighting;
use std::collections::HashMap;
use std::sync::Mutex;

/// How long a registration stands before the name's `last_seen_at` is written again: last seen is exact to
/// about this much.
pub const REFRESH: Micros = 60_000_000;

/// Most names one batch may write. A batch naming more (a client minting names) registers the first ones;
/// the rest stay unmarked and are registered by later batches that name them.
pub const MAX_PER_BATCH: usize = 100;

/// Entries the cache holds. Past it, registrations older than [`REFRESH`] (which no longer save a write)
/// are dropped, and if that is not enough, everything: the cost is one redundant upsert per active name.
const CAPACITY: usize = 20_000;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Agent,
    Server,
}

/// This process's recent registrations: (project, kind, name) → when written.
#[derive(Default)]
pub struct CatalogCache {
    written: Mutex<HashMap<(String, Kind, String), Micros>>,
}

impl CatalogCache {
    /// The names of the batch that need a write at `now` (new to this process, or last written more than
    /// [`REFRESH`] ago), grouped by project, at most [`MAX_PER_BATCH`] in all. Spans without a project
    /// register under `""`, the catalog read without a project.
    pub fn due(&self, spans: &[Span], now: Micros) -> Vec<CatalogSighting> {
        // Distinct names first, in batch order (a set beside the list: a batch can name tens of thousands, and a
        // linear `contains` per span made that quadratic), then one lock for the lookups.
        let mut names: Vec<(&str, Kind, &str)> = Vec::new();
        let mut seen: std::collections::HashSet<(&str, Kind, &str)> = std::collections::HashSet::new();
        for s in spans {
            let project = s.project().unwrap_or("");
            if let Some(agent) = s.agent_name.as_deref().filter(|a| !a.is_empty() && a.len() <= MAX_AGENT_NAME) {
                if seen.insert((project, Kind::Agent, agent)) {
                    names.push((project, Kind::Agent, agent));
                }
            }
            let server = s.server_name.as_str();
            if s.span_type == SpanType::ToolCall
                && !server.is_empty()
                && server.len() <= MAX_SERVER_NAME
                && seen.insert((project, Kind::Server, server))
            {
                names.push((project, Kind::Server, server));
            }
        }
        if names.is_empty() {
            return Vec::new();
        }
        let written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<CatalogSighting> = Vec::new();
        let mut count = 0;
        for (project, kind, name) in names {
            if count == MAX_PER_BATCH {
                break;
            }
            let key = (project.to_string(), kind, name.to_string());
            if written.get(&key).is_some_and(|at| now - at < REFRESH) {
                continue;
            }
            count += 1;
            let i = match out.iter().position(|s| s.project_id == project) {
                Some(i) => i,
                None => {
                    out.push(CatalogSighting { project_id: project.to_string(), at: now, ..Default::default() });
                    out.len() - 1
                }
            };
            match kind {
                Kind::Agent => out[i].agents.push(key.2),
                Kind::Server => out[i].servers.push(key.2),
            }
        }
        out
    }

    /// Remembers sightings once they are stored (not before: a failed write is retried by the next batch).
    pub fn written(&self, sightings: &[CatalogSighting]) {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        let now = sightings.iter().map(|s| s.at).max().unwrap_or(0);
        if written.len() + sightings.iter().map(|s| s.agents.len() + s.servers.len()).sum::<usize>() > CAPACITY {
            written.retain(|_, at| now - *at < REFRESH);
            if written.len() >= CAPACITY / 2 {
                written.clear();
            }
        }
        for s in sightings {
            for (kind, names) in [(Kind::Agent, &s.agents), (Kind::Server, &s.servers)] {
                for name in names {
                    written.insert((s.project_id.clone(), kind, name.clone()), s.at);
                }
            }
        }
    }

    /// Forgets one registration (its catalog entry was deleted), so the next span naming it registers it
    /// again at once.
    pub fn forget_agent(&self, project_id: &str, name: &str) {
        self.forget(project_id, Kind::Agent, name);
    }

    pub fn forget_server(&self, project_id: &str, name: &str) {
        self.forget(project_id, Kind::Server, name);
    }

    fn forget(&self, project_id: &str, kind: Kind, name: &str) {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        written.remove(&(project_id.to_string(), kind, name.to_string()));
    }
}

/// Registers what the committed batch named (fail-open, as in the original: a catalog failure is logged and
/// never fails the ingest that already committed).
pub async fn register(state: &crate::state::AppState, sightings: Vec<CatalogSighting>) {
    if sightings.is_empty() {
        return;
    }
    match state.storage.agents.record_sightings(sightings.clone()).await {
        Ok(()) => state.catalog.written(&sightings),
        Err(e) => tracing::warn!(error = %e, "catalog.register_failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(project: Option<&str>, agent: Option<&str>, server: &str, span_type: SpanType) -> Span {
        let body = serde_json::json!([{
            "span_id": "s", "server_name": server, "tool_name": "t",
            "started_at": "2026-01-01T00:00:00Z", "ended_at": "2026-01-01T00:00:00Z", "status": "success"
        }])
        .to_string();
        let mut s = langsight_core::span::decode_batch(body.as_bytes()).expect("span").remove(0);
        s.project_id = project.map(String::from);
        s.agent_name = agent.map(String::from);
        s.span_type = span_type;
        s
    }

    #[test]
    fn only_unknown_or_stale_names_are_due_and_tool_calls_name_servers() {
        let cache = CatalogCache::default();
        let spans = vec![
            span(Some("p"), Some("a"), "crew", SpanType::Agent),
            span(Some("p"), Some("a"), "github", SpanType::ToolCall),
            span(None, Some("b"), "github", SpanType::ToolCall),
        ];
        let due = cache.due(&spans, 1_000);
        assert_eq!(due.len(), 2);
        assert_eq!(
            (due[0].project_id.as_str(), &due[0].agents, &due[0].servers),
            ("p", &vec!["a".to_string()], &vec!["github".to_string()])
        );
        assert_eq!((due[1].project_id.as_str(), &due[1].agents), ("", &vec!["b".to_string()]));
        cache.written(&due);
        assert!(cache.due(&spans, 1_000 + REFRESH - 1).is_empty(), "known within the refresh interval");
        assert_eq!(cache.due(&spans, 1_000 + REFRESH).len(), 2, "refreshed after it");
        cache.forget_agent("p", "a");
        assert_eq!(cache.due(&spans, 2_000)[0].agents, vec!["a".to_string()]);
    }

    #[test]
    fn a_batch_writes_at_most_the_cap() {
        let cache = CatalogCache::default();
        let spans: Vec<Span> =
            (0..250).map(|i| span(Some("p"), Some(&format!("agent-{i}")), "", SpanType::Agent)).collect();
        let due = cache.due(&spans, 0);
        assert_eq!(due[0].agents.len(), MAX_PER_BATCH);
        cache.written(&due);
        assert_eq!(cache.due(&spans, 1)[0].agents.first().map(String::as_str), Some("agent-100"));
    }
}
