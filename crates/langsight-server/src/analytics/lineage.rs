//! `GET /api/agents/lineage`: which agents call which servers and hand off to which agents.

use super::{key, mean, round};
use langsight_core::span::{SpanStatus, SpanType};
use langsight_storage::SpanFact;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Default)]
struct CallEdge {
    calls: u64,
    errors: u64,
    latency: f64,
    sessions: HashSet<String>,
}

#[derive(Default)]
struct HandoffEdge {
    count: u64,
    sessions: HashSet<String>,
}

/// Folds facts into the graph. Delegation (a span of one agent under a span of another) needs the parent's
/// agent, so the agent of every span with one is remembered for the window — as hashes and agent numbers, so a
/// million spans cost tens of megabytes, not hundreds.
#[derive(Default)]
pub struct Lineage {
    calls: BTreeMap<(String, String), CallEdge>,
    handoffs: BTreeMap<(String, String), HandoffEdge>,
    agents: Vec<String>,
    agent_index: HashMap<String, u32>,
    agent_of: HashMap<u64, u32>,
    /// (parent span, child agent) → children seen and their sessions.
    children: HashMap<(u64, u32), (u64, HashSet<u64>)>,
}

impl Lineage {
    pub fn add(&mut self, f: &SpanFact) {
        let Some(agent) = f.agent_name.as_deref().filter(|a| !a.is_empty()) else { return };
        let session = f.session_id.clone().unwrap_or_default();
        let idx = match self.agent_index.get(agent) {
            Some(i) => *i,
            None => {
                self.agents.push(agent.to_string());
                let i = (self.agents.len() - 1) as u32;
                self.agent_index.insert(agent.to_string(), i);
                i
            }
        };
        self.agent_of.insert(key(&f.span_id), idx);
        if let Some(parent) = f.parent_span_id.as_deref().filter(|p| !p.is_empty()) {
            let e = self.children.entry((key(parent), idx)).or_default();
            e.0 += 1;
            e.1.insert(key(&session));
        }
        match f.span_type {
            SpanType::ToolCall => {
                let e = self.calls.entry((agent.to_string(), f.server_name.clone())).or_default();
                e.calls += 1;
                e.errors += (f.status != SpanStatus::Success) as u64;
                e.latency += f.latency_ms;
                e.sessions.insert(session);
            }
            SpanType::Handoff => {
                let target = match f.target_agent_name.as_deref().filter(|t| !t.is_empty()) {
                    Some(t) => t.to_string(),
                    None => f.tool_name.replacen("→ ", "", 1),
                };
                let e = self.handoffs.entry((agent.to_string(), target)).or_default();
                e.count += 1;
                e.sessions.insert(session);
            }
            _ => {}
        }
    }

    pub fn finish(mut self, hours: i64) -> Value {
        // Delegations become handoff edges unless that edge exists already.
        let mut delegations: BTreeMap<(String, String), (u64, HashSet<u64>)> = BTreeMap::new();
        for ((parent, child_agent), (count, sessions)) in std::mem::take(&mut self.children) {
            if let Some(parent_agent) = self.agent_of.get(&parent) {
                if *parent_agent != child_agent {
                    let names =
                        (self.agents[*parent_agent as usize].clone(), self.agents[child_agent as usize].clone());
                    let e = delegations.entry(names).or_default();
                    e.0 += count;
                    e.1.extend(sessions);
                }
            }
        }
        let mut graph = Graph::default();
        for (k, e) in self.calls {
            graph.calls.insert(
                k,
                Call { calls: e.calls, errors: e.errors, latency: e.latency, sessions: e.sessions.len() as u64 },
            );
        }
        for (k, e) in self.handoffs {
            graph.handoffs.insert(k, (e.count, e.sessions.len() as u64));
        }
        for (k, (count, sessions)) in delegations {
            graph.handoffs.entry(k).or_insert((count, sessions.len() as u64));
        }
        graph.render(hours)
    }
}

/// One agent → server edge.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Call {
    pub calls: u64,
    pub errors: u64,
    pub latency: f64,
    pub sessions: u64,
}

/// The lineage graph's edges, however they were counted (a span scan or the rollups).
#[derive(Debug, Default)]
pub struct Graph {
    /// (agent, server) → its calls.
    pub calls: BTreeMap<(String, String), Call>,
    /// (from agent, to agent) → (hand-offs, sessions): explicit hand-offs, then delegations where no hand-off
    /// edge exists.
    pub handoffs: BTreeMap<(String, String), (u64, u64)>,
}

impl Graph {
    pub fn render(self, hours: i64) -> Value {
        // Nodes: (total calls, errors, latency sum, max session count).
        let mut agents: BTreeMap<String, (u64, u64, f64, u64)> = BTreeMap::new();
        let mut servers: BTreeMap<String, (u64, u64, f64)> = BTreeMap::new();
        for ((agent, server), e) in &self.calls {
            let a = agents.entry(agent.clone()).or_default();
            a.0 += e.calls;
            a.1 += e.errors;
            a.2 += e.latency;
            a.3 = a.3.max(e.sessions);
            let s = servers.entry(server.clone()).or_default();
            s.0 += e.calls;
            s.1 += e.errors;
            s.2 += e.latency;
        }
        for (from, to) in self.handoffs.keys() {
            agents.entry(from.clone()).or_default();
            agents.entry(to.clone()).or_default();
        }
        let mut nodes: Vec<Value> = agents
            .iter()
            .map(|(name, (calls, errors, latency, sessions))| {
                json!({"id": format!("agent:{name}"), "type": "agent", "label": name, "metrics": {
                    "total_calls": calls, "error_count": errors,
                    "avg_latency_ms": round(mean(*latency, *calls), 2), "sessions": sessions,
                }})
            })
            .collect();
        nodes.extend(servers.iter().map(|(name, (calls, errors, latency))| {
            json!({"id": format!("server:{name}"), "type": "server", "label": name, "metrics": {
                "total_calls": calls, "error_count": errors, "avg_latency_ms": round(mean(*latency, *calls), 2),
            }})
        }));
        let mut edges: Vec<Value> = self
            .calls
            .iter()
            .map(|((agent, server), e)| {
                json!({"source": format!("agent:{agent}"), "target": format!("server:{server}"), "type": "calls",
                    "metrics": {"call_count": e.calls, "error_count": e.errors,
                        "avg_latency_ms": round(mean(e.latency, e.calls), 2), "session_count": e.sessions}})
            })
            .collect();
        edges.extend(self.handoffs.iter().map(|((from, to), (count, sessions))| {
            json!({"source": format!("agent:{from}"), "target": format!("agent:{to}"), "type": "handoff",
                "metrics": {"handoff_count": count, "session_count": sessions}})
        }));
        json!({"window_hours": hours, "nodes": nodes, "edges": edges})
    }
}
