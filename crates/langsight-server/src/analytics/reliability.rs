//! `GET /api/reliability/tools` and `GET /api/agents/loop-counts`.

use super::{key, mean, quantile, round};
use langsight_core::span::{SpanStatus, SpanType};
use langsight_storage::SpanFact;
use serde_json::{json, Value};
use std::collections::HashMap;

#[derive(Default)]
struct ToolRow {
    latencies: Vec<f64>,
    success: u64,
    errors: u64,
    timeouts: u64,
    err_timeout: u64,
    err_connection: u64,
    err_params: u64,
    err_server: u64,
}

/// Per-tool reliability over tool calls, optionally of one server.
pub struct Tools {
    server: Option<String>,
    rows: HashMap<(String, String), ToolRow>,
}

impl Tools {
    pub fn new(server: Option<String>) -> Tools {
        Tools { server, rows: HashMap::new() }
    }

    pub fn add(&mut self, f: &SpanFact) {
        if f.span_type != SpanType::ToolCall || self.server.as_ref().is_some_and(|s| *s != f.server_name) {
            return;
        }
        let r = self.rows.entry((f.server_name.clone(), f.tool_name.clone())).or_default();
        r.latencies.push(f.latency_ms);
        match f.status {
            SpanStatus::Success => r.success += 1,
            SpanStatus::Timeout => r.timeouts += 1,
            SpanStatus::Error => r.errors += 1,
            SpanStatus::Prevented => {}
        }
        if f.status != SpanStatus::Success {
            let e = f.error.as_deref().unwrap_or("").to_lowercase();
            let has = |needles: &[&str]| needles.iter().any(|n| e.contains(n));
            if has(&["timeout", "timed out"]) {
                r.err_timeout += 1;
            } else if has(&["connection", "unreachable", "refused"]) {
                r.err_connection += 1;
            } else if has(&["validation", "required", "invalid", "parameter"]) {
                r.err_params += 1;
            } else if f.status == SpanStatus::Error {
                r.err_server += 1;
            }
        }
    }

    pub fn finish(self, hours: i64) -> Value {
        let mut rows: Vec<_> = self.rows.into_iter().collect();
        rows.sort_by(|a, b| b.1.latencies.len().cmp(&a.1.latencies.len()).then_with(|| a.0.cmp(&b.0)));
        Value::Array(
            rows.into_iter()
                .map(|((server, tool), mut r)| {
                    let total = r.latencies.len() as u64;
                    let success_rate = round(r.success as f64 / total.max(1) as f64 * 100.0, 2);
                    let max = r.latencies.iter().copied().fold(0.0, f64::max);
                    let avg = round(mean(r.latencies.iter().sum(), total), 2);
                    let p50 = round(quantile(&mut r.latencies, 0.50), 2);
                    let p95 = round(quantile(&mut r.latencies, 0.95), 2);
                    let p99 = round(quantile(&mut r.latencies, 0.99), 2);
                    json!({
                        "server_name": server,
                        "tool_name": tool,
                        "window_hours": hours,
                        "total_calls": total,
                        "success_calls": r.success,
                        "error_calls": r.errors,
                        "timeout_calls": r.timeouts,
                        "success_rate_pct": success_rate,
                        "error_rate_pct": round(100.0 - success_rate, 2),
                        "avg_latency_ms": avg,
                        "max_latency_ms": round(max, 2),
                        "p50_latency_ms": p50,
                        "p95_latency_ms": p95,
                        "p99_latency_ms": p99,
                        "is_degraded": success_rate < 95.0 || p95 > 2000.0,
                        "error_breakdown": {
                            "timeout": r.err_timeout, "connection": r.err_connection,
                            "params": r.err_params, "server": r.err_server,
                        },
                    })
                })
                .collect(),
        )
    }
}

/// Prevented spans whose reason mentions a loop, per agent.
#[derive(Default)]
pub struct LoopCounts(HashMap<String, u64>);

impl LoopCounts {
    pub fn add(&mut self, f: &SpanFact) {
        if f.status == SpanStatus::Prevented && f.error.as_deref().is_some_and(|e| e.contains("loop")) {
            *self.0.entry(f.agent_name.clone().unwrap_or_default()).or_default() += 1;
        }
    }

    pub fn finish(self) -> Value {
        let mut rows: Vec<_> = self.0.into_iter().collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Value::Array(rows.into_iter().map(|(a, n)| json!({"agent_name": a, "loop_count": n})).collect())
    }
}

#[derive(Default)]
struct SessionSeen {
    project: String,
    agent: Option<String>,
    ids: std::collections::HashSet<u64>,
    parents: std::collections::HashSet<u64>,
    spans: u64,
    llm_calls: u64,
    tool_calls: u64,
    last: i64,
}

/// Runs that stopped without finishing: sessions whose spans name a parent that never arrived (the root of
/// the run never reported — typically a crashed or killed agent) and with no activity for a while.
#[derive(Default)]
pub struct Incomplete(HashMap<String, SessionSeen>);

/// One unfinished session.
pub struct Unfinished {
    pub project_id: String,
    pub session_id: String,
    pub agent_name: Option<String>,
    pub last_activity: i64,
    pub span_count: u64,
    pub llm_calls: u64,
    pub tool_calls: u64,
}

impl Incomplete {
    pub fn add(&mut self, f: &SpanFact) {
        let Some(session) = f.session_id.as_deref().filter(|s| !s.is_empty()) else { return };
        let s = self.0.entry(session.to_string()).or_default();
        s.project = f.project_id.clone().unwrap_or_default();
        if s.agent.is_none() {
            s.agent = f.agent_name.clone();
        }
        s.ids.insert(key(&f.span_id));
        if let Some(p) = f.parent_span_id.as_deref().filter(|p| !p.is_empty()) {
            s.parents.insert(key(p));
        }
        s.spans += 1;
        s.llm_calls += (f.span_type == SpanType::Agent && f.model_id.is_some()) as u64;
        s.tool_calls += f.span_type.is_call() as u64;
        s.last = s.last.max(f.ended_at);
    }

    /// Sessions idle since before `stale_before` with a missing parent, most recent first.
    pub fn finish(self, stale_before: i64) -> Vec<Unfinished> {
        let mut out: Vec<Unfinished> = self
            .0
            .into_iter()
            .filter(|(_, s)| s.last < stale_before && s.parents.iter().any(|p| !s.ids.contains(p)))
            .map(|(session_id, s)| Unfinished {
                project_id: s.project,
                session_id,
                agent_name: s.agent,
                last_activity: s.last,
                span_count: s.spans,
                llm_calls: s.llm_calls,
                tool_calls: s.tool_calls,
            })
            .collect();
        out.sort_by(|a, b| b.last_activity.cmp(&a.last_activity).then_with(|| a.session_id.cmp(&b.session_id)));
        out
    }
}
