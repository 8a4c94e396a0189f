//! Every analytics figure from the rollups kept at ingest ([`langsight_core::rollup`]), and the same figures
//! from a scan of the window's spans ([`Source::Spans`]) — the exact answer, kept as the test oracle and for
//! checking a deployment (`docs/decisions.md`, "Analytics from rollups").
//!
//! A rollup answer reads hours × groups rows, whatever the number of spans: counts, sums and costs are
//! exact; quantiles come from the latency sketch (within 1 % of the exact value at their rank) and distinct
//! session and agent counts from the distinct sketch (exact up to 128, then within a few percent).

use super::costs::{self, Breakdown, CostGroup, CostKey};
use super::monitoring::{self, BucketFigures, ModelRow, PeriodFigures, ToolFigures};
use super::reliability::{self, ReliabilityFigures};
use super::{scan, Window};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use langsight_core::rollup::{Dims, RollupKind, SlotDims, Stats, HOUR, SLOT};
use langsight_core::span::{SpanStatus, SpanType};
use langsight_storage::{CostRankQuery, RollupQuery};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Where the figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The rollups: what the endpoints serve.
    Rollups,
    /// A scan of every span in the window: exact, linear in spans.
    Spans,
}

const DAY: i64 = 86_400_000_000;

#[track_caller]
fn unreadable(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "analytics.rollup_unreadable");
    ApiError::Internal
}

/// The window both sources read: its end moved to the end of the hour holding it. Rollup rows are whole
/// buckets, so the rows of the current hour (and five-minute slot) also hold spans stamped later than now —
/// a client clock a little ahead of the server's. The span scan must then count them too: reading hourly
/// rows up to the current hour and slot rows up to the current slot while scanning spans up to now gave three
/// different answers for the same window (and trends mixed two of them). Spans stamped beyond the current
/// hour count on neither path.
fn whole_hours(w: &Window) -> Window {
    Window { until: (w.until - 1).div_euclid(HOUR) * HOUR + HOUR, ..w.clone() }
}

/// The span scan of [`whole_hours`] of the window: exactly the spans its rollup rows hold.
async fn scan_whole(state: &AppState, w: &Window, visit: impl FnMut(&langsight_storage::SpanFact)) -> ApiResult<()> {
    scan(state, &whole_hours(w), visit).await
}

async fn rows(state: &AppState, w: &Window, kind: RollupKind) -> ApiResult<Vec<(i64, String, Stats)>> {
    let width = kind.width();
    let w = whole_hours(w);
    let rows = state
        .storage
        .spans
        .rollups(RollupQuery {
            kind,
            project_id: w.project_id.clone(),
            include_global: w.include_global,
            since: w.since.div_euclid(width),
            until: w.until.div_euclid(width),
        })
        .await?;
    rows.into_iter().map(|r| Ok((r.bucket, r.dims, Stats::from_bytes(&r.value).map_err(unreadable)?))).collect()
}

/// The hourly rows of the window, decoded.
pub async fn hourly(state: &AppState, w: &Window) -> ApiResult<Vec<(i64, Dims, Stats)>> {
    rows(state, w, RollupKind::Hourly)
        .await?
        .into_iter()
        .map(|(b, d, s)| Ok((b, Dims::decode(&d).map_err(unreadable)?, s)))
        .collect()
}

/// The five-minute slot rows of the window, decoded.
pub async fn slots(state: &AppState, w: &Window) -> ApiResult<Vec<(i64, SlotDims, Stats)>> {
    rows(state, w, RollupKind::Slot)
        .await?
        .into_iter()
        .map(|(b, d, s)| Ok((b, SlotDims::decode(&d).map_err(unreadable)?, s)))
        .collect()
}

/// The `q` quantile of a merged sketch the way [`super::quantile`] takes it of exact values: linear
/// interpolation between the values at the two ranks around `q·(n−1)`. Each of those is within the sketch's
/// relative error, so their convex combination is too. 0 when empty.
fn q(s: &Stats, q: f64) -> f64 {
    let n = s.latency.count();
    if n <= 1 {
        return s.latency.quantile(0.0).unwrap_or(0.0);
    }
    let last = (n - 1) as f64;
    let pos = q.clamp(0.0, 1.0) * last;
    let (lo, hi) = (pos.floor(), pos.ceil());
    // The sketch answers "the value at rank floor(q'·(n−1))": ask half a rank above to land on `lo` exactly.
    let at = |rank: f64| s.latency.quantile(((rank + 0.5) / last).min(1.0)).unwrap_or(0.0);
    let (vlo, vhi) = (at(lo), at(hi));
    vlo + (vhi - vlo) * (pos - lo)
}

fn failed(d: &Dims) -> bool {
    d.status != SpanStatus::Success
}

pub async fn timeseries(state: &AppState, w: &Window, hours: i64, source: Source) -> ApiResult<Value> {
    if source == Source::Spans {
        let mut t = monitoring::Timeseries::new(hours);
        scan_whole(state, w, |f| t.add(f)).await?;
        return Ok(t.finish());
    }
    let width = monitoring::bucket_width(hours);
    // Per bucket: all spans, calls, failed calls, agent spans.
    let mut buckets: BTreeMap<i64, [Stats; 4]> = BTreeMap::new();
    for (slot, d, s) in slots(state, w).await? {
        let b = buckets.entry((slot * SLOT).div_euclid(width) * width).or_default();
        b[0].merge(&s);
        if d.call {
            b[1].merge(&s);
            if d.failed {
                b[2].merge(&s);
            }
        }
        if d.agent_span {
            b[3].merge(&s);
        }
    }
    Ok(monitoring::render_timeseries(
        width,
        buckets.into_iter().map(|(start, [all, calls, failed, agent])| {
            let figures = BucketFigures {
                sessions: all.sessions.estimate(),
                tool_calls: calls.spans,
                errors: failed.spans,
                latency_sum: all.latency_sum,
                latencies: all.spans,
                p99: q(&all, 0.99),
                input: all.input_tokens,
                output: all.output_tokens,
                agents: all.agents.estimate(),
                failed_sessions: failed.sessions.estimate(),
                session_p99: q(&agent, 0.99),
            };
            (start, figures)
        }),
    ))
}

pub async fn models(state: &AppState, w: &Window, source: Source) -> ApiResult<Value> {
    let prices = state.prices.get(state).await?;
    if source == Source::Spans {
        let mut m = monitoring::Models::default();
        scan_whole(state, w, |f| m.add(f)).await?;
        return Ok(m.finish(&prices));
    }
    let mut rows: HashMap<String, ModelRow> = HashMap::new();
    for (_, d, s) in hourly(state, w).await? {
        if d.model.is_empty() {
            continue;
        }
        let r = rows.entry(d.model.clone()).or_default();
        r.calls += s.spans;
        r.input += s.input_tokens;
        r.output += s.output_tokens;
        r.latency += s.latency_sum;
        r.errors += if failed(&d) { s.spans } else { 0 };
    }
    Ok(monitoring::render_models(rows, &prices))
}

pub async fn tools(state: &AppState, w: &Window, source: Source) -> ApiResult<Value> {
    if source == Source::Spans {
        let mut t = monitoring::Tools::default();
        scan_whole(state, w, |f| t.add(f)).await?;
        return Ok(t.finish());
    }
    let mut merged: BTreeMap<(String, String), (Stats, u64, u64)> = BTreeMap::new();
    for (_, d, s) in hourly(state, w).await? {
        if d.span_type != SpanType::ToolCall {
            continue;
        }
        let e = merged.entry((d.server.clone(), d.tool.clone())).or_default();
        e.0.merge(&s);
        e.1 += if failed(&d) { s.spans } else { 0 };
        e.2 += if d.error.content_error { s.spans } else { 0 };
    }
    Ok(monitoring::render_tools(
        merged
            .into_iter()
            .map(|(k, (s, errors, content_errors))| {
                let f = ToolFigures {
                    calls: s.spans,
                    errors,
                    latency_sum: s.latency_sum,
                    p99: q(&s, 0.99),
                    sessions: s.sessions.estimate(),
                    content_errors,
                };
                (k, f)
            })
            .collect(),
    ))
}

/// The trends' window (14 days) and the start of the current week, both on hour boundaries.
pub fn trends_window(project_id: Option<String>) -> (Window, i64) {
    let now = langsight_core::time::now_micros();
    (Window::since(project_id, now - 14 * DAY), (now - 7 * DAY).div_euclid(HOUR) * HOUR)
}

pub async fn trends(state: &AppState, project_id: Option<String>, source: Source) -> ApiResult<Value> {
    let (w, split) = trends_window(project_id);
    if source == Source::Spans {
        let mut t = monitoring::Trends::new(split);
        scan_whole(state, &w, |f| t.add(f)).await?;
        return Ok(t.finish());
    }
    // [current, previous]: tool calls from the hourly rows, sessions from the slots.
    let mut calls: [Stats; 2] = Default::default();
    let mut errors = [0u64; 2];
    for (hour, d, s) in hourly(state, &w).await? {
        if d.span_type != SpanType::ToolCall {
            continue;
        }
        let i = usize::from(hour * HOUR < split);
        calls[i].merge(&s);
        errors[i] += if failed(&d) { s.spans } else { 0 };
    }
    let mut sessions: [Stats; 2] = Default::default();
    for (slot, _, s) in slots(state, &w).await? {
        sessions[usize::from(slot * SLOT < split)].merge(&s);
    }
    let figures = |i: usize| PeriodFigures {
        latencies: calls[i].spans,
        latency_sum: calls[i].latency_sum,
        p99: q(&calls[i], 0.99),
        calls: calls[i].spans,
        errors: errors[i],
        sessions: sessions[i].sessions.estimate(),
    };
    Ok(monitoring::render_trends(figures(0), figures(1)))
}

pub async fn errors(state: &AppState, w: &Window, source: Source) -> ApiResult<Value> {
    if source == Source::Spans {
        let mut e = monitoring::Errors::default();
        scan_whole(state, w, |f| e.add(f)).await?;
        return Ok(e.finish());
    }
    let mut rows: HashMap<&'static str, (u64, u64, u64)> = HashMap::new();
    for (_, d, s) in hourly(state, w).await? {
        let Some(category) = d.error.category() else { continue };
        let e = rows.entry(category).or_default();
        e.0 += s.spans;
        e.1 += if d.span_type == SpanType::Agent { s.spans } else { 0 };
        e.2 += if d.span_type == SpanType::ToolCall { s.spans } else { 0 };
    }
    Ok(monitoring::render_errors(rows))
}

/// A tool's merged figures, calls by status (success, error, timeout) and failures by reliability class.
type ToolOutcomes = (Stats, [u64; 3], [u64; 4]);

pub async fn reliability_tools(
    state: &AppState,
    w: &Window,
    server: Option<String>,
    hours: i64,
    source: Source,
) -> ApiResult<Value> {
    if source == Source::Spans {
        let mut t = reliability::Tools::new(server);
        scan_whole(state, w, |f| t.add(f)).await?;
        return Ok(t.finish(hours));
    }
    let mut merged: BTreeMap<(String, String), ToolOutcomes> = BTreeMap::new();
    for (_, d, s) in hourly(state, w).await? {
        if d.span_type != SpanType::ToolCall || server.as_ref().is_some_and(|name| *name != d.server) {
            continue;
        }
        let e = merged.entry((d.server.clone(), d.tool.clone())).or_default();
        e.0.merge(&s);
        match d.status {
            SpanStatus::Success => e.1[0] += s.spans,
            SpanStatus::Error => e.1[1] += s.spans,
            SpanStatus::Timeout => e.1[2] += s.spans,
            SpanStatus::Prevented => {}
        }
        if d.error.reliability > 0 {
            e.2[usize::from(d.error.reliability - 1).min(3)] += s.spans;
        }
    }
    let rows = merged
        .into_iter()
        .map(|(k, (s, [success, errors, timeouts], breakdown))| {
            let f = ReliabilityFigures {
                total: s.spans,
                success,
                errors,
                timeouts,
                latency_sum: s.latency_sum,
                max: s.latency_max,
                p50: q(&s, 0.50),
                p95: q(&s, 0.95),
                p99: q(&s, 0.99),
                breakdown,
            };
            (k, f)
        })
        .collect();
    Ok(reliability::render_tools(rows, hours))
}

pub async fn loop_counts(state: &AppState, w: &Window, source: Source) -> ApiResult<Value> {
    if source == Source::Spans {
        let mut l = reliability::LoopCounts::default();
        scan_whole(state, w, |f| l.add(f)).await?;
        return Ok(l.finish());
    }
    let mut rows: HashMap<String, u64> = HashMap::new();
    for (_, d, s) in hourly(state, w).await? {
        if d.error.stopped_loop {
            *rows.entry(d.agent).or_default() += s.spans;
        }
    }
    Ok(reliability::render_loop_counts(rows))
}

/// `GET /api/agents/summary`: per agent, the window's sessions, failed sessions, tokens, estimated cost and last
/// activity from the session rows (every session, grouped in the store by the session's agent and model; priced
/// here as the sessions list prices each session, which sums exactly since cost is linear in tokens), and its
/// tool calls and failed calls from the hourly rollups (by the calling span's agent). `agent` keeps one agent.
pub async fn agent_summary(state: &AppState, w: &Window, agent: Option<&str>) -> ApiResult<Value> {
    #[derive(Default)]
    struct Agent {
        sessions: i64,
        failed: i64,
        input: i64,
        output: i64,
        cost: f64,
        last: i64,
        calls: u64,
        failed_calls: u64,
    }
    let prices = state.prices.get(state).await?;
    let mut agents: BTreeMap<Option<String>, Agent> = BTreeMap::new();
    for row in state.storage.spans.agent_sessions(w.project_id.as_deref(), w.since).await? {
        let a = agents.entry(row.agent_name.clone()).or_default();
        a.sessions += row.sessions;
        a.failed += row.failed;
        a.input += row.input_tokens;
        a.output += row.output_tokens;
        a.last = a.last.max(row.last_call_at);
        if let Some(model) = &row.model_id {
            a.cost += prices.cost(model, row.input_tokens, row.output_tokens, row.thinking_tokens).unwrap_or(0.0);
        }
    }
    for (_, d, s) in hourly(state, w).await? {
        if d.span_type != SpanType::ToolCall || d.agent.is_empty() {
            continue;
        }
        let a = agents.entry(Some(d.agent.clone())).or_default();
        a.calls += s.spans;
        a.failed_calls += if failed(&d) { s.spans } else { 0 };
    }
    let mut rows: Vec<(Option<String>, Agent)> =
        agents.into_iter().filter(|(name, _)| agent.is_none_or(|want| name.as_deref() == Some(want))).collect();
    rows.sort_by(|a, b| b.1.sessions.cmp(&a.1.sessions).then_with(|| a.0.cmp(&b.0)));
    Ok(Value::Array(
        rows.into_iter()
            .map(|(name, a)| {
                serde_json::json!({
                    "agent_name": name,
                    "sessions": a.sessions,
                    "failed_sessions": a.failed,
                    "tool_calls": a.calls,
                    "failed_calls": a.failed_calls,
                    "input_tokens": a.input,
                    "output_tokens": a.output,
                    "est_cost_usd": super::round(a.cost, 6),
                    "last_call_at": if a.sessions > 0 { Value::String(langsight_core::time::str_datetime(a.last)) } else { Value::Null },
                })
            })
            .collect(),
    ))
}

/// Sessions ranked in the cost breakdown: the most expensive of those active in the window, by the same
/// estimate the sessions list shows (read from the session rollups, never from spans).
pub const COST_SESSIONS: usize = 10;
/// Sessions read for that ranking at most (the most recently started in the window).
pub const COST_SESSIONS_READ: usize = 5_000;
/// Ranked rows the store returns: the store orders by the unrounded cost, the breakdown by the cost rounded to
/// six decimals and then the session id, so a margin past [`COST_SESSIONS`] keeps ties at the boundary exact.
const COST_SESSIONS_RANKED: usize = 100;

pub async fn costs(state: &AppState, w: &Window, hours: i64, source: Source) -> ApiResult<Value> {
    let prices = state.prices.get(state).await?;
    let groups: HashMap<CostKey, CostGroup> = match source {
        Source::Spans => {
            let mut b = Breakdown::default();
            scan_whole(state, w, |f| b.add(f)).await?;
            b.into_groups()
        }
        Source::Rollups => {
            let mut groups: HashMap<CostKey, CostGroup> = HashMap::new();
            for (_, d, s) in hourly(state, w).await? {
                let key = (d.server, d.tool, d.agent, d.model, d.span_type == SpanType::ToolCall, d.tokens);
                let g = groups.entry(key).or_default();
                g.calls += s.spans;
                g.input += s.input_tokens;
                g.output += s.output_tokens;
                g.thinking += s.thinking_tokens;
            }
            groups
        }
    };
    // The span-scan oracle has every candidate returned and ranks them all here.
    let top = if source == Source::Spans { COST_SESSIONS_READ } else { COST_SESSIONS_RANKED };
    let query = CostRankQuery {
        project_id: w.project_id.clone(),
        active_since: w.since,
        read: COST_SESSIONS_READ,
        top,
        prices: prices.token_prices(),
    };
    let sessions = if source == Source::Spans {
        Arc::new(state.storage.spans.session_costs(query).await?)
    } else {
        let key = (w.project_id.clone(), hours);
        let read = || async { state.storage.spans.session_costs(query).await.map(Arc::new) };
        state.cost_rankings.run(key, read).await?
    };
    // Ranked by index and cost; JSON is built for the few shown, not for every session read.
    let mut ranked: Vec<(f64, usize)> = sessions
        .iter()
        .enumerate()
        .filter_map(|(n, row)| {
            if row.input_tokens.is_none() && row.output_tokens.is_none() {
                return None;
            }
            let (i, o, t) =
                (row.input_tokens.unwrap_or(0), row.output_tokens.unwrap_or(0), row.thinking_tokens.unwrap_or(0));
            Some((super::round(prices.cost(&row.model_id, i, o, t)?, 6), n))
        })
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| sessions[a.1].session_id.cmp(&sessions[b.1].session_id)));
    ranked.truncate(COST_SESSIONS);
    let ranked: Vec<Value> = ranked
        .into_iter()
        .map(|(cost, n)| {
            let row = &sessions[n];
            serde_json::json!({
                "session_id": row.session_id,
                "agent_name": row.agent_name,
                "total_calls": row.span_count,
                "total_cost_usd": cost,
            })
        })
        .collect();
    let mode = crate::routes::costs::storage_mode(state);
    Ok(costs::render(groups, &prices, &state.config.cost_rules, hours, mode, ranked))
}

/// `GET /api/agents/lineage`: call edges and hand-offs from the hourly rows, delegations from the link pass's
/// rows (run first, so spans committed before the request are linked). Session counts come from the distinct
/// sketches (merging an edge's hours merges its sessions exactly, up to the sketch's error).
pub async fn lineage(state: &AppState, w: &Window, hours: i64, source: Source) -> ApiResult<Value> {
    if source == Source::Spans {
        let mut l = super::lineage::Lineage::default();
        scan_whole(state, w, |f| l.add(f)).await?;
        return Ok(l.finish(hours));
    }
    super::links::catch_up(state).await?;
    let mut calls: BTreeMap<(String, String), (Stats, u64)> = BTreeMap::new();
    let mut handoffs: BTreeMap<(String, String), Stats> = BTreeMap::new();
    for (_, d, s) in hourly(state, w).await? {
        if d.agent.is_empty() {
            continue;
        }
        match d.span_type {
            SpanType::ToolCall => {
                let e = calls.entry((d.agent.clone(), d.server.clone())).or_default();
                e.0.merge(&s);
                e.1 += if failed(&d) { s.spans } else { 0 };
            }
            SpanType::Handoff => handoffs.entry((d.agent.clone(), d.target.clone())).or_default().merge(&s),
            _ => {}
        }
    }
    let mut delegations: BTreeMap<(String, String), Stats> = BTreeMap::new();
    for (_, dims, s) in rows(state, w, RollupKind::Delegation).await? {
        let key = langsight_core::rollup::decode_delegation(&dims).map_err(unreadable)?;
        delegations.entry(key).or_default().merge(&s);
    }
    let mut graph = super::lineage::Graph::default();
    for (k, (s, errors)) in calls {
        let call =
            super::lineage::Call { calls: s.spans, errors, latency: s.latency_sum, sessions: s.sessions.estimate() };
        graph.calls.insert(k, call);
    }
    for (k, s) in handoffs {
        graph.handoffs.insert(k, (s.spans, s.sessions.estimate()));
    }
    for (k, s) in delegations {
        graph.handoffs.entry(k).or_insert((s.spans, s.sessions.estimate()));
    }
    Ok(graph.render(hours))
}

/// The server views count every call since their start, spans stamped ahead of the server's clock included (as
/// their span reads, which have no end): the rows of later hours are read too.
fn unbounded(w: Window) -> Window {
    Window { until: i64::MAX / 4, ..w }
}

/// A row's latest span start: rows written before format 2 do not know it, and give their bucket's start.
fn last_at(bucket: i64, s: &Stats) -> i64 {
    if s.last_at != 0 {
        s.last_at
    } else {
        bucket * HOUR
    }
}

/// `GET /api/health/servers/invocations`: tool calls per server — counts from the hourly rows, the last call's
/// time and status from the row holding the latest span (status is one of the row's dims). Latest first.
pub async fn invocations(
    state: &AppState,
    project: Option<String>,
    since: i64,
    source: Source,
) -> ApiResult<Vec<langsight_storage::ServerInvocations>> {
    let w = unbounded(Window::since(project, since));
    if source == Source::Spans {
        return Ok(state.storage.spans.server_invocations(w.project_id.as_deref(), w.since).await?);
    }
    let mut by_server: BTreeMap<String, langsight_storage::ServerInvocations> = BTreeMap::new();
    for (bucket, d, s) in hourly(state, &w).await? {
        if d.span_type != SpanType::ToolCall || d.server.is_empty() {
            continue;
        }
        let at = last_at(bucket, &s);
        let e = by_server.entry(d.server.clone()).or_insert_with(|| langsight_storage::ServerInvocations {
            server_name: d.server.clone(),
            last_called_at: i64::MIN,
            last_call_status: String::new(),
            total_calls: 0,
            success_calls: 0,
        });
        e.total_calls += s.spans as i64;
        e.success_calls += if d.status == SpanStatus::Success { s.spans as i64 } else { 0 };
        if at > e.last_called_at {
            e.last_called_at = at;
            e.last_call_status = d.status.as_str().to_string();
        }
    }
    let mut out: Vec<_> = by_server.into_values().collect();
    out.sort_by(|a, b| b.last_called_at.cmp(&a.last_called_at).then_with(|| a.server_name.cmp(&b.server_name)));
    Ok(out)
}

/// One agent's use of a server.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct AgentUse {
    pub calls: u64,
    pub errors: u64,
    pub latency_sum: f64,
    pub sessions: u64,
    pub last_at: i64,
}

/// Who depends on a server: per agent (`""` for calls naming none), and distinct sessions over all of them.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ServerUse {
    pub agents: BTreeMap<String, AgentUse>,
    pub sessions: u64,
    pub calls: u64,
}

/// The tool calls of one server since `since` (with the spans sent without a project, as the original's
/// server views): from the hourly rows, or from the spans themselves.
pub async fn server_use(
    state: &AppState,
    project: Option<String>,
    server: &str,
    since: i64,
    source: Source,
) -> ApiResult<ServerUse> {
    let w = unbounded(Window { include_global: true, ..Window::since(project, since) });
    let mut out = ServerUse::default();
    if source == Source::Spans {
        let spans = state.storage.spans.server_calls(server, w.project_id.as_deref(), w.since, usize::MAX >> 1).await?;
        let mut sessions: BTreeMap<String, std::collections::BTreeSet<&str>> = BTreeMap::new();
        let mut all = std::collections::BTreeSet::new();
        for s in &spans {
            let agent = s.agent_name.clone().unwrap_or_default();
            let session = s.session_id.as_deref().unwrap_or_default();
            all.insert(session);
            sessions.entry(agent.clone()).or_default().insert(session);
            let a = out.agents.entry(agent).or_default();
            a.calls += 1;
            a.errors += u64::from(s.status != SpanStatus::Success);
            a.latency_sum += s.latency_ms;
            a.last_at = a.last_at.max(s.started_at);
        }
        for (agent, set) in sessions {
            if let Some(a) = out.agents.get_mut(&agent) {
                a.sessions = set.len() as u64;
            }
        }
        out.sessions = all.len() as u64;
        out.calls = spans.len() as u64;
        return Ok(out);
    }
    let mut merged: BTreeMap<String, (Stats, u64, i64)> = BTreeMap::new();
    let mut all = Stats::default();
    for (bucket, d, s) in hourly(state, &w).await? {
        if d.span_type != SpanType::ToolCall || d.server != server {
            continue;
        }
        let e = merged.entry(d.agent.clone()).or_insert_with(|| (Stats::default(), 0, i64::MIN));
        e.0.merge(&s);
        e.1 += if failed(&d) { s.spans } else { 0 };
        e.2 = e.2.max(last_at(bucket, &s));
        all.sessions.merge(&s.sessions);
        out.calls += s.spans;
    }
    out.sessions = all.sessions.estimate();
    for (agent, (s, errors, last)) in merged {
        let a = AgentUse {
            calls: s.spans,
            errors,
            latency_sum: s.latency_sum,
            sessions: s.sessions.estimate(),
            last_at: last,
        };
        out.agents.insert(agent, a);
    }
    Ok(out)
}

/// Sessions left unfinished — a span names a parent the session does not hold — last active in
/// `[active_since, idle_before)`, latest first. From the session rows the link pass marks (run first), or from a
/// scan of the spans started since `active_since`. The rows describe whole sessions; the scan sees only the
/// window's spans, so they agree for sessions inside the window (the agent is the session list's agent: the first
/// one stored, where the scan takes the earliest span's).
pub async fn incomplete(
    state: &AppState,
    project_id: Option<String>,
    active_since: i64,
    idle_before: i64,
    source: Source,
) -> ApiResult<Vec<reliability::Unfinished>> {
    if source == Source::Spans {
        let now = langsight_core::time::now_micros();
        let w = Window { project_id, include_global: false, since: active_since, until: now + 1 };
        let mut i = reliability::Incomplete::default();
        scan(state, &w, |f| i.add(f)).await?;
        return Ok(i.finish(idle_before));
    }
    super::links::catch_up(state).await?;
    let rows = state
        .storage
        .spans
        .incomplete_sessions(langsight_storage::IncompleteQuery {
            project_id,
            active_since,
            idle_before,
            limit: INCOMPLETE_LIMIT,
        })
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| reliability::Unfinished {
            project_id: r.project_id,
            session_id: r.session_id,
            agent_name: r.agent_name,
            last_activity: r.last_call_at,
            span_count: r.span_count as u64,
            llm_calls: r.llm_calls as u64,
            tool_calls: r.tool_calls as u64,
        })
        .collect())
}

/// Unfinished sessions listed at most (latest first).
const INCOMPLETE_LIMIT: usize = 10_000;

/// Spans folded per backfill transaction: short enough not to hold the writer for long.
const BACKFILL_PAGE: usize = 5_000;

/// Builds the rollups of spans stored before rollups existed (after an upgrade), a page per transaction,
/// logging progress every tenth; resumes where it stopped after a restart. Several workers may run it: each
/// page is claimed under the store's write lock.
pub fn spawn_backfill(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last_tenth = None;
        loop {
            match state.storage.spans.backfill_rollups(BACKFILL_PAGE).await {
                Ok(None) => {
                    if last_tenth.is_some() {
                        tracing::info!("analytics.rollups_backfill_done");
                    }
                    return;
                }
                Ok(Some(p)) => {
                    let tenth = (p.done * 10).checked_div(p.total).unwrap_or(10);
                    if last_tenth != Some(tenth) {
                        tracing::info!(
                            done = p.done,
                            total = p.total,
                            "analytics.rollups_backfill: building rollups for spans stored before the upgrade"
                        );
                        last_tenth = Some(tenth);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "analytics.rollups_backfill_failed: retrying in 10 s");
                    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
                }
            }
        }
    })
}
