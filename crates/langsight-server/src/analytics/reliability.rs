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
        match langsight_core::rollup::reliability_class(f.status, f.error.as_deref()) {
            Some("timeout") => r.err_timeout += 1,
            Some("connection") => r.err_connection += 1,
            Some("params") => r.err_params += 1,
            Some(_) => r.err_server += 1,
            None => {}
        }
    }

    pub fn finish(self, hours: i64) -> Value {
        let rows = self
            .rows
            .into_iter()
            .map(|(k, mut r)| {
                let f = ReliabilityFigures {
                    total: r.latencies.len() as u64,
                    success: r.success,
                    errors: r.errors,
                    timeouts: r.timeouts,
                    latency_sum: r.latencies.iter().sum(),
                    max: r.latencies.iter().copied().fold(0.0, f64::max),
                    p50: quantile(&mut r.latencies, 0.50),
                    p95: quantile(&mut r.latencies, 0.95),
                    p99: quantile(&mut r.latencies, 0.99),
                    breakdown: [r.err_timeout, r.err_connection, r.err_params, r.err_server],
                };
                (k, f)
            })
            .collect();
        render_tools(rows, hours)
    }
}

/// A tool's reliability figures.
pub struct ReliabilityFigures {
    pub total: u64,
    pub success: u64,
    pub errors: u64,
    pub timeouts: u64,
    pub latency_sum: f64,
    pub max: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    /// Failed calls by [`langsight_core::rollup::RELIABILITY_CLASSES`].
    pub breakdown: [u64; 4],
}

/// The reliability list, most called first.
pub fn render_tools(mut rows: Vec<((String, String), ReliabilityFigures)>, hours: i64) -> Value {
    rows.sort_by(|a, b| b.1.total.cmp(&a.1.total).then_with(|| a.0.cmp(&b.0)));
    Value::Array(
        rows.into_iter()
            .map(|((server, tool), r)| {
                let total = r.total;
                let success_rate = round(r.success as f64 / total.max(1) as f64 * 100.0, 2);
                let p95 = round(r.p95, 2);
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
                    "avg_latency_ms": round(mean(r.latency_sum, total), 2),
                    "max_latency_ms": round(r.max, 2),
                    "p50_latency_ms": round(r.p50, 2),
                    "p95_latency_ms": p95,
                    "p99_latency_ms": round(r.p99, 2),
                    "is_degraded": success_rate < 95.0 || p95 > 2000.0,
                    "error_breakdown": {
                        "timeout": r.breakdown[0], "connection": r.breakdown[1],
                        "params": r.breakdown[2], "server": r.breakdown[3],
                    },
                })
            })
            .collect(),
    )
}

/// Prevented spans whose reason mentions a loop, per agent.
#[derive(Default)]
pub struct LoopCounts(HashMap<String, u64>);

impl LoopCounts {
    pub fn add(&mut self, f: &SpanFact) {
        if langsight_core::rollup::ErrorClass::of(f.status, f.error.as_deref()).stopped_loop {
            *self.0.entry(f.agent_name.clone().unwrap_or_default()).or_default() += 1;
        }
    }

    pub fn finish(self) -> Value {
        render_loop_counts(self.0)
    }
}

/// Stopped loops per agent, most first.
pub fn render_loop_counts(rows: HashMap<String, u64>) -> Value {
    let mut rows: Vec<_> = rows.into_iter().collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Value::Array(rows.into_iter().map(|(a, n)| json!({"agent_name": a, "loop_count": n})).collect())
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
