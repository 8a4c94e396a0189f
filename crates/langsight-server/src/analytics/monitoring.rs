//! `/api/monitoring/*`: time series, models, tools, trends and error categories (the original's ClickHouse
//! queries, folded from span facts).

use super::pricing::Prices;
use super::{key, mean, quantile, round};
use langsight_core::span::{SpanStatus, SpanType};
use langsight_storage::SpanFact;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};

const MINUTE: i64 = 60_000_000;

fn is_call(f: &SpanFact) -> bool {
    matches!(f.span_type, SpanType::ToolCall | SpanType::Node)
}

fn failed(f: &SpanFact) -> bool {
    f.status != SpanStatus::Success
}

/// Bucket width for a window: 5 min up to 1 h, 15 min up to 6 h, 1 h up to 24 h, else 6 h.
pub fn bucket_width(hours: i64) -> i64 {
    match hours {
        h if h <= 1 => 5 * MINUTE,
        h if h <= 6 => 15 * MINUTE,
        h if h <= 24 => 60 * MINUTE,
        _ => 360 * MINUTE,
    }
}

#[derive(Default)]
struct Bucket {
    sessions: HashSet<u64>,
    tool_calls: u64,
    errors: u64,
    latencies: Vec<f64>,
    input: i64,
    output: i64,
    agents: HashSet<String>,
    failed_sessions: HashSet<u64>,
    agent_latencies: Vec<f64>,
}

/// `GET /api/monitoring/timeseries`.
pub struct Timeseries {
    width: i64,
    buckets: BTreeMap<i64, Bucket>,
}

impl Timeseries {
    pub fn new(hours: i64) -> Timeseries {
        Timeseries { width: bucket_width(hours), buckets: BTreeMap::new() }
    }

    pub fn add(&mut self, f: &SpanFact) {
        let Some(session) = f.session_id.as_deref().filter(|s| !s.is_empty()) else { return };
        let b = self.buckets.entry(f.started_at.div_euclid(self.width) * self.width).or_default();
        b.sessions.insert(key(session));
        if is_call(f) {
            b.tool_calls += 1;
            if failed(f) {
                b.errors += 1;
                b.failed_sessions.insert(key(session));
            }
        }
        b.latencies.push(f.latency_ms);
        b.input += f.input_tokens.unwrap_or(0);
        b.output += f.output_tokens.unwrap_or(0);
        if let Some(a) = f.agent_name.as_deref().filter(|a| !a.is_empty()) {
            b.agents.insert(a.to_string());
        }
        if f.span_type == SpanType::Agent {
            b.agent_latencies.push(f.latency_ms);
        }
    }

    pub fn finish(self) -> Value {
        let width = self.width;
        render_timeseries(
            width,
            self.buckets.into_iter().map(|(start, mut b)| {
                let latency_sum = b.latencies.iter().sum();
                (
                    start,
                    BucketFigures {
                        sessions: b.sessions.len() as u64,
                        tool_calls: b.tool_calls,
                        errors: b.errors,
                        latency_sum,
                        latencies: b.latencies.len() as u64,
                        p99: quantile(&mut b.latencies, 0.99),
                        input: b.input,
                        output: b.output,
                        agents: b.agents.len() as u64,
                        failed_sessions: b.failed_sessions.len() as u64,
                        session_p99: quantile(&mut b.agent_latencies, 0.99),
                    },
                )
            }),
        )
    }
}

/// One time-series bucket's figures, however they were computed.
pub struct BucketFigures {
    pub sessions: u64,
    pub tool_calls: u64,
    pub errors: u64,
    pub latency_sum: f64,
    pub latencies: u64,
    pub p99: f64,
    pub input: i64,
    pub output: i64,
    pub agents: u64,
    pub failed_sessions: u64,
    pub session_p99: f64,
}

/// The time series, buckets in start order.
pub fn render_timeseries(width: i64, buckets: impl Iterator<Item = (i64, BucketFigures)>) -> Value {
    let sub_hour = width < 60 * MINUTE;
    let rows: Vec<Value> = buckets
        .map(|(start, b)| {
            let label = chrono::DateTime::from_timestamp_micros(start)
                .map(|t| t.format(if sub_hour { "%Y-%m-%dT%H:%M:00Z" } else { "%Y-%m-%dT%H:00:00Z" }).to_string())
                .unwrap_or_default();
            let sessions = b.sessions as f64;
            json!({
                "bucket": label,
                "sessions": b.sessions,
                "tool_calls": b.tool_calls,
                "errors": b.errors,
                "error_rate": if b.tool_calls > 0 { b.errors as f64 / b.tool_calls as f64 } else { 0.0 },
                "avg_latency_ms": mean(b.latency_sum, b.latencies),
                "p99_latency_ms": b.p99,
                "input_tokens": b.input,
                "output_tokens": b.output,
                "agents": b.agents,
                "failed_sessions": b.failed_sessions,
                "session_error_rate": if sessions > 0.0 { b.failed_sessions as f64 / sessions } else { 0.0 },
                "session_p99_ms": b.session_p99,
            })
        })
        .collect();
    Value::Array(rows)
}

/// A model's figures.
#[derive(Default)]
pub struct ModelRow {
    pub calls: u64,
    pub input: i64,
    pub output: i64,
    pub latency: f64,
    pub errors: u64,
}

/// `GET /api/monitoring/models`.
#[derive(Default)]
pub struct Models(HashMap<String, ModelRow>);

impl Models {
    pub fn add(&mut self, f: &SpanFact) {
        let Some(model) = f.model_id.as_deref().filter(|m| !m.is_empty()) else { return };
        let r = self.0.entry(model.to_string()).or_default();
        r.calls += 1;
        r.input += f.input_tokens.unwrap_or(0);
        r.output += f.output_tokens.unwrap_or(0);
        r.latency += f.latency_ms;
        r.errors += failed(f) as u64;
    }

    pub fn finish(self, prices: &Prices) -> Value {
        render_models(self.0, prices)
    }
}

/// The models list, most called first.
pub fn render_models(rows: HashMap<String, ModelRow>, prices: &Prices) -> Value {
    let mut rows: Vec<_> = rows.into_iter().collect();
    rows.sort_by(|a, b| b.1.calls.cmp(&a.1.calls).then_with(|| a.0.cmp(&b.0)));
    Value::Array(
        rows.into_iter()
            .map(|(model, r)| {
                json!({
                    "model_id": model,
                    "calls": r.calls,
                    "input_tokens": r.input,
                    "output_tokens": r.output,
                    "avg_latency_ms": mean(r.latency, r.calls),
                    "error_count": r.errors,
                    "est_cost_usd": prices.cost(&model, r.input, r.output, 0).map(|c| round(c, 6)),
                })
            })
            .collect(),
    )
}

#[derive(Default)]
struct ToolRow {
    latencies: Vec<f64>,
    errors: u64,
    sessions: HashSet<u64>,
    content_errors: u64,
}

/// `GET /api/monitoring/tools` (tool calls only).
#[derive(Default)]
pub struct Tools(HashMap<(String, String), ToolRow>);

impl Tools {
    pub fn add(&mut self, f: &SpanFact) {
        if f.span_type != SpanType::ToolCall {
            return;
        }
        let r = self.0.entry((f.server_name.clone(), f.tool_name.clone())).or_default();
        r.latencies.push(f.latency_ms);
        r.errors += failed(f) as u64;
        r.sessions.insert(key(f.session_id.as_deref().unwrap_or("")));
        r.content_errors += f.error.as_deref().is_some_and(|e| e.starts_with("ContentError:")) as u64;
    }

    pub fn finish(self) -> Value {
        render_tools(
            self.0
                .into_iter()
                .map(|(k, mut r)| {
                    let f = ToolFigures {
                        calls: r.latencies.len() as u64,
                        errors: r.errors,
                        latency_sum: r.latencies.iter().sum(),
                        p99: quantile(&mut r.latencies, 0.99),
                        sessions: r.sessions.len() as u64,
                        content_errors: r.content_errors,
                    };
                    (k, f)
                })
                .collect(),
        )
    }
}

/// A tool's monitoring figures.
pub struct ToolFigures {
    pub calls: u64,
    pub errors: u64,
    pub latency_sum: f64,
    pub p99: f64,
    pub sessions: u64,
    pub content_errors: u64,
}

/// The tools list, most called first.
pub fn render_tools(mut rows: Vec<((String, String), ToolFigures)>) -> Value {
    rows.sort_by(|a, b| b.1.calls.cmp(&a.1.calls).then_with(|| a.0.cmp(&b.0)));
    Value::Array(
        rows.into_iter()
            .map(|((server, tool), r)| {
                let calls = r.calls;
                json!({
                    "server_name": server,
                    "tool_name": tool,
                    "calls": calls,
                    "errors": r.errors,
                    "avg_latency_ms": mean(r.latency_sum, calls),
                    "p99_latency_ms": r.p99,
                    "success_rate": if calls > 0 { (calls - r.errors) as f64 / calls as f64 * 100.0 } else { 100.0 },
                    "calls_per_session": round(calls as f64 / r.sessions.max(1) as f64, 2),
                    "content_errors": r.content_errors,
                })
            })
            .collect(),
    )
}

#[derive(Default)]
struct Period {
    latencies: Vec<f64>,
    calls: u64,
    errors: u64,
    sessions: HashSet<u64>,
}

/// `GET /api/monitoring/trends`: the last 7 days against the 7 before (tool calls for latency and errors).
pub struct Trends {
    split: i64,
    cur: Period,
    prev: Period,
}

impl Trends {
    /// `split`: the start of the current week.
    pub fn new(split: i64) -> Trends {
        Trends { split, cur: Period::default(), prev: Period::default() }
    }

    pub fn add(&mut self, f: &SpanFact) {
        let p = if f.started_at >= self.split { &mut self.cur } else { &mut self.prev };
        if let Some(s) = f.session_id.as_deref().filter(|s| !s.is_empty()) {
            p.sessions.insert(key(s));
        }
        if f.span_type == SpanType::ToolCall {
            p.calls += 1;
            p.errors += failed(f) as u64;
            p.latencies.push(f.latency_ms);
        }
    }

    pub fn finish(mut self) -> Value {
        fn figures(p: &mut Period) -> PeriodFigures {
            PeriodFigures {
                latencies: p.latencies.len() as u64,
                latency_sum: p.latencies.iter().sum(),
                p99: quantile(&mut p.latencies, 0.99),
                calls: p.calls,
                errors: p.errors,
                sessions: p.sessions.len() as u64,
            }
        }
        render_trends(figures(&mut self.cur), figures(&mut self.prev))
    }
}

/// One week's figures for the trends.
pub struct PeriodFigures {
    pub latencies: u64,
    pub latency_sum: f64,
    pub p99: f64,
    pub calls: u64,
    pub errors: u64,
    pub sessions: u64,
}

/// The trends: this week against the one before.
pub fn render_trends(cur: PeriodFigures, prev: PeriodFigures) -> Value {
    fn stats(p: &PeriodFigures) -> (Option<f64>, Option<f64>, Option<f64>, f64) {
        let n = p.latencies;
        let avg = (n > 0).then(|| mean(p.latency_sum, n));
        let p99 = (n > 0).then_some(p.p99);
        let rate = (p.calls > 0).then(|| p.errors as f64 / p.calls as f64);
        (avg, p99, rate, p.sessions as f64)
    }
    let delta = |cur: Option<f64>, prev: Option<f64>| match (cur, prev) {
        (Some(c), Some(p)) if p != 0.0 => Some(round((c - p) / p * 100.0, 1)),
        _ => None,
    };
    let (ca, cp, ce, cs) = stats(&cur);
    let (pa, pp, pe, ps) = stats(&prev);
    json!({
        "cur_avg_latency_ms": ca, "prev_avg_latency_ms": pa, "avg_latency_delta_pct": delta(ca, pa),
        "cur_p99_latency_ms": cp, "prev_p99_latency_ms": pp, "p99_latency_delta_pct": delta(cp, pp),
        "cur_error_rate": ce, "prev_error_rate": pe, "error_rate_delta_pct": delta(ce, pe),
        "cur_sessions": cs, "prev_sessions": ps, "sessions_delta_pct": delta(Some(cs), Some(ps)),
    })
}

/// The original's error category of a failed span (one rule for the span scan and the rollups).
pub fn error_category(f: &SpanFact) -> &'static str {
    langsight_core::rollup::error_category(f.status, f.error.as_deref())
}

/// `GET /api/monitoring/errors`.
#[derive(Default)]
pub struct Errors(HashMap<&'static str, (u64, u64, u64)>);

impl Errors {
    pub fn add(&mut self, f: &SpanFact) {
        if !failed(f) {
            return;
        }
        let e = self.0.entry(error_category(f)).or_default();
        e.0 += 1;
        e.1 += (f.span_type == SpanType::Agent) as u64;
        e.2 += (f.span_type == SpanType::ToolCall) as u64;
    }

    pub fn finish(self) -> Value {
        render_errors(self.0)
    }
}

/// Error categories with (count, on agent spans, on tool calls), most frequent first.
pub fn render_errors(rows: HashMap<&'static str, (u64, u64, u64)>) -> Value {
    let total: u64 = rows.values().map(|e| e.0).sum();
    let mut rows: Vec<_> = rows.into_iter().collect();
    rows.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then_with(|| a.0.cmp(b.0)));
    Value::Array(
        rows.into_iter()
            .map(|(category, (count, llm, tool))| {
                json!({
                    "category": category, "count": count, "llm_errors": llm, "tool_errors": tool,
                    "pct": round(count as f64 / total.max(1) as f64 * 100.0, 1),
                })
            })
            .collect(),
    )
}
