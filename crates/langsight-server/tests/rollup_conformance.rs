//! The analytics endpoints read ingest-time rollups; the span scan of the same window is the exact answer.
//! This suite ingests a varied, seeded dataset (every span type and status, every error category and
//! reliability class, tokens present, absent and partial, latencies from 0 to 30 s, late and re-sent spans,
//! one deliberately big group) into each storage mode — SQLite, PostgreSQL and dual (PostgreSQL +
//! ClickHouse) — through the group-committed span store, then compares every endpoint of
//! `analytics::rolled` from [`Source::Rollups`] against [`Source::Spans`] over many windows, before and after
//! retention, and after a rollup rebuild (backfill) on SQLite.
//!
//! What must agree: counts, sums, strings, booleans and costs exactly; quantiles within the sketch's 1 %;
//! distinct counts exactly while the true count is at most 128 (the distinct sketch's exact range), within
//! 5 % above it.

use langsight_server::analytics::rolled::{self, Source};
use langsight_server::analytics::Window;
use langsight_server::config::{Config, Secret, StorageMode};
use langsight_server::state::AppState;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use test_support::postgres::PgCluster;

const SEC: i64 = 1_000_000;
const MIN: i64 = 60 * SEC;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

const PROJECTS: [&str; 3] = ["proj-alpha", "proj-beta", "proj-gamma"];
/// The project of the big group.
const BIG_PROJECT: &str = "proj-alpha";
/// Distinct sessions of the big group, all in one hour.
const BIG_SESSIONS: usize = 5_200;

const AGENTS: [&str; 12] = [
    "planner",
    "researcher",
    "writer",
    "critic",
    "coder",
    "reviewer",
    "router",
    "summarizer",
    "retriever",
    "translator",
    "agent \"quoted\" ü",
    "scheduler",
];

/// Eight servers, 25 tools (`search` on two servers).
const TOOLS: [(&str, &[&str]); 8] = [
    ("github", &["search", "get_issue", "create_pr", "list_commits"]),
    ("postgres-mcp", &["query", "describe_table", "list_tables"]),
    ("slack", &["post_message", "read_channel", "react"]),
    ("filesystem", &["read_file", "write_file", "list_dir", "stat"]),
    ("web", &["search", "fetch"]),
    ("jira", &["create_ticket", "update_ticket", "comment"]),
    ("vector-db", &["upsert", "similarity"]),
    ("calendar", &["list_events", "create_event", "delete_event", "free_busy"]),
];

/// Priced (as sent, and behind a provider prefix) and unpriced models.
const MODELS: [&str; 5] = ["claude-sonnet-4-6", "gpt-4o", "openai/gpt-4o", "gpt-4o-mini", "acme-local-llm"];

/// Failure texts covering every error category and reliability class (and their case rules).
const ERRORS: [&str; 27] = [
    "FinishReason:SAFETY blocked the answer",
    "FinishReason:PROHIBITED_CONTENT",
    "FinishReason:MAX_TOKENS reached",
    "FinishReason:length",
    "FinishReason:RECITATION",
    "HTTP 503 Service Unavailable",
    "UNAVAILABLE: backend overloaded",
    "request timeout after 30s",
    "upstream timed out",
    "Timeout while waiting for the tool",
    "rate limit exceeded",
    "HTTP 429",
    "too many requests",
    "auth token expired",
    "HTTP 401 Unauthorized",
    "403 forbidden",
    "AgentCrash: worker died",
    "TaskGroup raised 2 exceptions",
    "connection refused",
    "host unreachable",
    "Connection reset by peer",
    "validation failed: field x",
    "missing required argument",
    "invalid cursor",
    "bad parameter 'limit'",
    "ContentError: the tool returned invalid JSON",
    "something else went wrong",
];

/// A small xorshift64* generator: the dataset is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo).max(1) as u64) as i64
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// A session id in the SDK's 32-hex form.
    fn hex32(&mut self) -> String {
        format!("{:016x}{:016x}", self.next(), self.next())
    }
}

fn iso(t: i64) -> String {
    chrono::DateTime::from_timestamp_micros(t).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A latency in quarter milliseconds (sums of them are exact in f64, so no float noise hides or fakes a
/// difference), log-spread over 0.25 ms … 30 s, with some exact zeros.
fn latency(r: &mut Rng) -> f64 {
    if r.chance(0.05) {
        return 0.0;
    }
    let v = (0.25f64.ln() + r.unit() * (30_000f64.ln() - 0.25f64.ln())).exp();
    ((v * 4.0).round() / 4.0).clamp(0.0, 30_000.0)
}

struct Gen {
    r: Rng,
    now: i64,
    n: u64,
    /// Errors with 4-byte characters (emoji), with a keyword after byte 300 but before character 300.
    /// ClickHouse 18.16's `substringUTF8` counts each as 4 characters, so the dual span reader cuts errors in
    /// Rust; these spans check that it does.
    four_byte_errors: bool,
}

impl Gen {
    /// One span as the SDK sends it.
    fn span(&mut self, project: Option<&str>, session: Option<&str>, agent: Option<&str>, at: i64) -> Value {
        let r = &mut self.r;
        self.n += 1;
        let kind = match r.below(100) {
            0..=44 => "tool_call",
            45..=54 => "node",
            55..=66 => "agent",
            67..=71 => "handoff",
            72..=81 => "llm_intent",
            82..=89 => "user_message",
            _ => "topology",
        };
        let status = match r.below(100) {
            0..=74 => "success",
            75..=89 => "error",
            90..=94 => "timeout",
            _ => "prevented",
        };
        let error: Option<String> = match status {
            "success" => r.chance(0.05).then(|| "ContentError: empty answer".to_string()),
            "error" => Some(match r.below(40) {
                // Longer than 300 characters, keywords only after character 300: classified as plain errors.
                0 => format!("{} timeout 503 rate limit auth connection refused loop", "x".repeat(305)),
                // Multi-byte: the keyword is after byte 300 but before character 300.
                1 => format!("{} connection refused", "é".repeat(250)),
                // The keyword straddles character 300: cut, so not a timeout.
                2 => format!("{}timeout", "ü".repeat(296)),
                3 if self.four_byte_errors => format!("{} 429", "🦀".repeat(120)),
                3 => format!("{} 429", "中".repeat(120)),
                _ => r.pick(&ERRORS).to_string(),
            }),
            "timeout" => match r.below(3) {
                0 => None,
                1 => Some("tool timed out after 30000 ms".into()),
                _ => Some("Deadline".into()),
            },
            _ => match r.below(10) {
                0..=5 => Some(format!("loop detected: {} called 5 times", r.pick(&["search", "query"]))),
                6 => Some("Loop detected".into()),
                7 => Some("budget exceeded".into()),
                8 => Some("circuit breaker open (connection refused earlier)".into()),
                _ => None,
            },
        };
        let (server, tools) = *r.pick(&TOOLS);
        let mut tool = r.pick(tools).to_string();
        // Hand-offs name their target explicitly, by the SDK's `→ agent` tool name, or not at all.
        let mut target = None;
        if kind == "handoff" {
            match r.below(4) {
                0 | 1 => target = Some(*r.pick(&AGENTS)),
                2 => tool = format!("→ {}", r.pick(&AGENTS)),
                _ => {}
            }
        }
        let model_likely = matches!(kind, "agent" | "llm_intent");
        let model = if r.chance(if model_likely { 0.85 } else { 0.15 }) { Some(*r.pick(&MODELS)) } else { None };
        let (input, output) = match r.below(20) {
            0..=7 => (Some(r.range(1, 20_000)), Some(r.range(0, 4_000))),
            8..=11 => (None, None),
            12..=15 => (Some(r.range(1, 20_000)), None),
            16 => (None, Some(r.range(1, 4_000))),
            _ => (Some(0), Some(0)),
        };
        let thinking = (input.is_some() && r.chance(0.1)).then(|| r.range(1, 3_000));
        let ms = latency(r);
        let mut s = json!({
            "span_id": format!("span-{:08}-{:x}", self.n, r.next() & 0xffff),
            "span_type": kind,
            "server_name": server,
            "tool_name": tool,
            "started_at": iso(at),
            "status": status,
        });
        // Mostly an explicit latency; sometimes left to the end time (a multiple of 250 µs, so exact too).
        if r.chance(0.1) {
            s["ended_at"] = json!(iso(at + (ms * 1000.0) as i64));
        } else {
            s["ended_at"] = json!(iso(at + (ms * 1000.0) as i64 + r.range(0, 5_000)));
            s["latency_ms"] = json!(ms);
        }
        let m = s.as_object_mut().unwrap();
        let mut set = |k: &str, v: Value| {
            m.insert(k.into(), v);
        };
        if let Some(p) = project {
            set("project_id", json!(p));
        }
        if let Some(id) = session {
            set("session_id", json!(id));
        }
        if let Some(a) = agent {
            set("agent_name", json!(a));
        }
        if let Some(e) = error {
            set("error", json!(e));
        }
        if let Some(t) = target {
            set("target_agent_name", json!(t));
        }
        if let Some(model) = model {
            set("model_id", json!(model));
        }
        if let Some(n) = input {
            set("input_tokens", json!(n));
        }
        if let Some(n) = output {
            set("output_tokens", json!(n));
        }
        if let Some(n) = thinking {
            set("thinking_tokens", json!(n));
        }
        s
    }
}

/// The dataset, as batches in ingest order, and how many spans it holds.
struct Dataset {
    /// Sent one by one, in order.
    sequential: Vec<Vec<Value>>,
    /// Sent in waves of concurrent requests (the group commit merges them).
    concurrent: Vec<Vec<Value>>,
    /// Spans sent again (after their first copy was committed).
    resent: Vec<Vec<Value>>,
    /// Spans that started days ago, sent last.
    late: Vec<Value>,
}

impl Dataset {
    fn total(&self) -> usize {
        let n = |b: &[Vec<Value>]| b.iter().map(Vec::len).sum::<usize>();
        n(&self.sequential) + n(&self.concurrent) + n(&self.resent) + self.late.len()
    }
}

fn project_of(r: &mut Rng) -> Option<&'static str> {
    match r.below(10) {
        0..=3 => Some(PROJECTS[0]),
        4..=5 => Some(PROJECTS[1]),
        6..=8 => Some(PROJECTS[2]),
        _ => None,
    }
}

fn dataset(seed: u64, four_byte_errors: bool) -> Dataset {
    let now = langsight_core::time::now_micros();
    let this_hour = now.div_euclid(HOUR) * HOUR;
    let mut g = Gen { r: Rng(seed), now, n: 0, four_byte_errors };
    let mut spans: Vec<(i64, Value)> = Vec::new();
    // ~440 sessions of 5–75 spans over up to 45 minutes; 60 % in the last day.
    let mut old_sessions: Vec<(Option<&'static str>, String)> = Vec::new();
    for _ in 0..440 {
        let project = project_of(&mut g.r);
        let session = g.r.hex32();
        let agent = if g.r.chance(0.05) { None } else { Some(*g.r.pick(&AGENTS)) };
        let recent = g.r.chance(0.6);
        let start =
            if recent { g.r.range(now - DAY, now - 10 * MIN) } else { g.r.range(now - 14 * DAY + 2 * HOUR, now - DAY) };
        if !recent {
            old_sessions.push((project, session.clone()));
        }
        let length = g.r.range(1, 45 * MIN);
        let mut ids: Vec<String> = Vec::new();
        for _ in 0..g.r.range(5, 76) {
            let mut at = start + g.r.range(0, length);
            if at >= g.now - SEC {
                at = g.now - g.r.range(SEC, 5 * MIN);
            }
            // Some spans name another agent than the session's (agents per bucket are counted).
            let a = if g.r.chance(0.1) { Some(*g.r.pick(&AGENTS)) } else { agent };
            let mut span = g.span(project, Some(&session), a, at);
            // Parents: an earlier span of the session (of another agent: a delegation), or one never sent.
            if !ids.is_empty() && g.r.chance(0.5) {
                span["parent_span_id"] = json!(g.r.pick(&ids).clone());
            } else if recent && g.r.chance(0.03) {
                span["parent_span_id"] = json!(format!("never-sent-{}", g.r.hex32()));
            }
            ids.push(span["span_id"].as_str().unwrap_or_default().to_string());
            spans.push((at, span));
        }
    }
    // Spans without a session, 55 % in the last day.
    for _ in 0..1_500 {
        let project = project_of(&mut g.r);
        let at = if g.r.chance(0.55) { g.r.range(now - DAY, now - SEC) } else { g.r.range(now - 14 * DAY, now - DAY) };
        let agent = g.r.chance(0.7).then(|| *g.r.pick(&AGENTS));
        spans.push((at, g.span(project, None, agent, at)));
    }
    // Clock skew: a few spans stamped up to a minute ahead of the server's clock.
    for _ in 0..20 {
        let project = project_of(&mut g.r);
        let session = g.r.hex32();
        let at = now + g.r.range(5 * SEC, 60 * SEC);
        spans.push((at, g.span(project, Some(&session), Some(AGENTS[0]), at)));
    }
    // The big group: one tool, 5,200 distinct sessions in one hour, three hours back; 2 % fail.
    let big_hour = this_hour - 3 * HOUR;
    let mut big: Vec<(i64, Value)> = Vec::new();
    for i in 0..BIG_SESSIONS {
        let at = big_hour + g.r.range(0, HOUR);
        let session = g.r.hex32();
        let failed = g.r.chance(0.02);
        g.n += 1;
        let mut s = json!({
            "span_id": format!("bulk-{i:06}"), "span_type": "tool_call", "server_name": "bulk-etl", "tool_name": "fanout",
            "project_id": BIG_PROJECT, "session_id": session, "agent_name": AGENTS[i % 3],
            "started_at": iso(at), "ended_at": iso(at + 1_000), "latency_ms": latency(&mut g.r),
            "status": if failed { "error" } else { "success" },
        });
        if failed {
            s["error"] = json!("connection refused");
        }
        big.push((at, s));
    }
    // Late spans: started 3–12 days ago in old sessions, sent after everything else.
    let mut late = Vec::new();
    for _ in 0..300 {
        let (project, session) = g.r.pick(&old_sessions).clone();
        let at = g.r.range(now - 12 * DAY, now - 3 * DAY);
        let agent = Some(*g.r.pick(&AGENTS));
        late.push(g.span(project, Some(&session), agent, at));
    }
    // Re-sent spans: some older than a day, some of the last 30 minutes. Not in between: the dual span scan
    // pages by (started_at, span_id), so a page boundary between the two copies of a span would skip the second
    // (a known limit of that cursor); the scan's only boundary here (the 20,000th span of the longest windows)
    // falls in the last day but well before its last 30 minutes.
    let mut resent: Vec<Value> = spans
        .iter()
        .filter(|(at, _)| *at < now - DAY || (*at > now - 30 * MIN && *at < now))
        .filter(|_| g.r.chance(0.04))
        .map(|(_, s)| s.clone())
        .collect();
    // Shuffle, then cut into batches of 20–800 spans.
    let mut all: Vec<Value> = spans.into_iter().chain(big).map(|(_, s)| s).collect();
    for i in (1..all.len()).rev() {
        let j = g.r.below(i as u64 + 1) as usize;
        all.swap(i, j);
    }
    for i in (1..resent.len()).rev() {
        let j = g.r.below(i as u64 + 1) as usize;
        resent.swap(i, j);
    }
    let mut batches = Vec::new();
    let mut rest = all.as_slice();
    while !rest.is_empty() {
        let n = (g.r.range(20, 801) as usize).min(rest.len());
        batches.push(rest[..n].to_vec());
        rest = &rest[n..];
    }
    let concurrent = batches.split_off(batches.len() / 5);
    // Whole sessions, each in one batch (an SDK flushing a finished run): linked at ingest, not by the pass.
    for _ in 0..40 {
        let project = project_of(&mut g.r);
        let session = g.r.hex32();
        let start = g.r.range(now - DAY, now - HOUR);
        let mut whole: Vec<Value> = Vec::new();
        for _ in 0..g.r.range(5, 30) {
            let at = start + g.r.range(0, 30 * MIN);
            let agent = Some(*g.r.pick(&AGENTS[..3]));
            let mut span = g.span(project, Some(&session), agent, at);
            if !whole.is_empty() && g.r.chance(0.7) {
                let parent = g.r.pick(&whole)["span_id"].clone();
                span["parent_span_id"] = parent;
            }
            whole.push(span);
        }
        batches.push(whole);
    }
    Dataset { sequential: batches, concurrent, resent: resent.chunks(150).map(<[Value]>::to_vec).collect(), late }
}

async fn ingest(state: &AppState, batch: &[Value]) {
    let bytes = serde_json::to_vec(batch).unwrap();
    let spans = langsight_core::span::decode_batch(&bytes).unwrap_or_else(|e| panic!("the batch decodes: {e:?}"));
    let n = spans.len();
    let outcome = state.storage.spans.ingest(spans).await.expect("ingest");
    assert_eq!(outcome.accepted, n);
}

/// Sends the dataset: some batches one by one, most in concurrent waves of sixteen, the re-sent ones next
/// (two concurrently, through `tokio::join!`), the late ones last.
async fn ingest_all(state: &AppState, data: &Dataset) {
    for b in &data.sequential {
        ingest(state, b).await;
    }
    for wave in data.concurrent.chunks(16) {
        let tasks: Vec<_> = wave
            .iter()
            .map(|b| {
                let (state, b) = (state.clone(), b.clone());
                tokio::spawn(async move { ingest(&state, &b).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    }
    for pair in data.resent.chunks(2) {
        match pair {
            [a, b] => {
                tokio::join!(ingest(state, a), ingest(state, b));
            }
            [a] => ingest(state, a).await,
            _ => {}
        }
    }
    ingest(state, &data.late).await;
}

// ---------------------------------------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------------------------------------

/// The sketch's exact range for distinct counts.
const EXACT_DISTINCT: f64 = 128.0;

/// What names a row of a list: its bucket, tool, model, error category, session or agent.
fn row_key(row: &Value) -> Option<String> {
    let text = |k: &str| row.get(k).and_then(Value::as_str);
    if let Some(b) = text("bucket") {
        return Some(b.to_string());
    }
    if let (Some(server), Some(tool)) = (text("server_name"), text("tool_name")) {
        return Some(format!("{server}/{tool}"));
    }
    if let (Some(source), Some(target)) = (text("source"), text("target")) {
        return Some(format!("{source} → {target}"));
    }
    if let Some(id) = text("id").or(text("server_name")) {
        return Some(id.to_string());
    }
    ["model_id", "category", "session_id", "agent_name"].iter().find_map(|k| text(k)).map(str::to_string)
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn close(a: f64, b: f64, rel: f64, abs: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(a.abs()) + abs
}

struct Diff<'a> {
    /// Where: the endpoint and window.
    context: &'a str,
    out: &'a mut Vec<String>,
    /// The reliability list rounds quantiles to 2 dp: up to 0.005 on top of the sketch's 1 %.
    rounded_quantiles: bool,
}

impl Diff<'_> {
    fn bad(&mut self, path: &str, rollups: &Value, spans: &Value, why: &str) {
        let short = |v: &Value| {
            let s = v.to_string();
            if s.len() > 200 {
                format!("{}…", &s[..s.char_indices().nth(200).map_or(s.len(), |(i, _)| i)])
            } else {
                s
            }
        };
        self.out.push(format!("{} {path}: rollups {} vs spans {} ({why})", self.context, short(rollups), short(spans)));
    }

    /// `a` from the rollups, `b` from the span scan (the exact answer).
    fn value(&mut self, path: &str, key: &str, a: &Value, b: &Value, parent: Option<(&Value, &Value)>) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                    let p = format!("{path}.{k}");
                    match (x.get(k), y.get(k)) {
                        (Some(va), Some(vb)) => self.value(&p, k, va, vb, Some((a, b))),
                        (va, vb) => self.bad(
                            &p,
                            va.unwrap_or(&Value::Null),
                            vb.unwrap_or(&Value::Null),
                            "field missing on one side",
                        ),
                    }
                }
            }
            (Value::Array(x), Value::Array(y)) => {
                let (kx, ky): (Vec<_>, Vec<_>) = (x.iter().map(row_key).collect(), y.iter().map(row_key).collect());
                if kx.iter().chain(&ky).all(Option::is_some) {
                    // Rows with a name (bucket, tool, model, category, agent, session): matched by it, so one
                    // differing count names that row instead of shifting every row after it.
                    let before = self.out.len();
                    for (i, k) in kx.iter().enumerate() {
                        match ky.iter().position(|o| o == k) {
                            Some(j) => self.value(
                                &format!("{path}[{}]", k.as_deref().unwrap_or("")),
                                key,
                                &x[i],
                                &y[j],
                                parent,
                            ),
                            None => self.bad(
                                &format!("{path}[{}]", k.as_deref().unwrap_or("")),
                                &x[i],
                                &Value::Null,
                                "row only in the rollups",
                            ),
                        }
                    }
                    for (j, k) in ky.iter().enumerate() {
                        if !kx.contains(k) {
                            self.bad(
                                &format!("{path}[{}]", k.as_deref().unwrap_or("")),
                                &Value::Null,
                                &y[j],
                                "row only in the span scan",
                            );
                        }
                    }
                    if self.out.len() == before && kx != ky {
                        self.bad(path, &json!(kx), &json!(ky), "same rows in a different order");
                    }
                } else {
                    if x.len() != y.len() {
                        self.bad(path, &json!(x.len()), &json!(y.len()), "different number of rows");
                    }
                    for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                        self.value(&format!("{path}[{i}]"), key, va, vb, parent);
                    }
                }
            }
            (Value::Number(_), Value::Number(_)) => self.number(path, key, a, b, parent),
            (Value::Bool(x), Value::Bool(y)) if x != y => {
                // `is_degraded` is `p95 > 2000` (or a low success rate): a p95 within the sketch's 1 % of the
                // threshold may land on either side.
                let near = |o: &Value| num(&o["p95_latency_ms"]).is_some_and(|p| close(p, 2000.0, 0.01, 0.005));
                let excused = key == "is_degraded" && parent.is_some_and(|(pa, pb)| near(pa) || near(pb));
                if !excused {
                    self.bad(path, a, b, "booleans differ");
                }
            }
            _ if a == b => {}
            _ => self.bad(path, a, b, "values differ"),
        }
    }

    fn number(&mut self, path: &str, key: &str, a: &Value, b: &Value, parent: Option<(&Value, &Value)>) {
        let (x, y) = (num(a).unwrap_or(f64::NAN), num(b).unwrap_or(f64::NAN));
        let sibling = |name: &str| parent.and_then(|(_, pb)| num(&pb[name]));
        // Relative tolerance of a distinct count whose true value is `t`.
        let distinct_tol = |t: f64| if t <= EXACT_DISTINCT { 0.0 } else { 0.05 };
        let (ok, why) = if key.ends_with("_delta_pct") {
            if key.starts_with("p99") {
                // Both p99s within 1 %: their relative change within about 2 points.
                (close(x, y, 0.0, 2.0 + 1e-9), "p99 delta beyond 2 points".to_string())
            } else if key == "sessions_delta_pct" {
                let (c, p) = (sibling("cur_sessions").unwrap_or(0.0), sibling("prev_sessions").unwrap_or(0.0));
                let (tc, tp) = (distinct_tol(c), distinct_tol(p));
                if tc == 0.0 && tp == 0.0 {
                    (close(x, y, 0.0, 1e-9), "exact distinct counts give an exact delta".into())
                } else {
                    // The range the delta can take with each count within its tolerance (rounded to 0.1).
                    let lo = (c * (1.0 - tc) / (p * (1.0 + tp)) - 1.0) * 100.0 - 0.05;
                    let hi = (c * (1.0 + tc) / (p * (1.0 - tp)) - 1.0) * 100.0 + 0.05;
                    (x >= lo - 1e-9 && x <= hi + 1e-9, format!("outside [{lo:.2}, {hi:.2}]"))
                }
            } else {
                (close(x, y, 1e-9, 1e-9), "exact sums give an exact delta".into())
            }
        } else if ["p50", "p95", "p99"].iter().any(|q| key.contains(q)) {
            let abs = if self.rounded_quantiles { 0.005 + 1e-9 } else { 1e-9 };
            (close(x, y, 0.01, abs), "quantile beyond the sketch's 1 %".into())
        } else if ["sessions", "agents", "failed_sessions", "cur_sessions", "prev_sessions", "session_count"]
            .contains(&key)
        {
            let tol = distinct_tol(y);
            (close(x, y, tol, 1e-9), format!("distinct count (true {y}) beyond {}%", tol * 100.0))
        } else if key == "session_error_rate" {
            let (s, f) = (sibling("sessions").unwrap_or(0.0), sibling("failed_sessions").unwrap_or(0.0));
            let (ts, tf) = (distinct_tol(s), distinct_tol(f));
            let tol = (1.0 + tf) / (1.0 - ts) - 1.0;
            (close(x, y, tol, 1e-9), format!("rate of distinct counts beyond {:.1}%", tol * 100.0))
        } else if key == "calls_per_session" {
            // calls / sessions rounded to 2 dp: the true session count is about calls / this.
            let calls = sibling("calls").unwrap_or(0.0);
            let sessions = if y > 0.0 { calls / y } else { 0.0 };
            if sessions <= EXACT_DISTINCT * 0.99 {
                (close(x, y, 0.0, 1e-9), format!("exact for about {sessions:.0} sessions"))
            } else {
                (close(x, y, 0.05 / 0.95, 0.01), format!("about {sessions:.0} sessions: beyond 5%"))
            }
        } else if key.contains("cost") {
            (close(x, y, 0.0, 2e-6), "cost differs".into())
        } else if a.is_f64() || b.is_f64() {
            (close(x, y, 1e-9, 1e-9), "float differs".into())
        } else {
            (a == b, "integer differs".into())
        };
        if !ok {
            self.bad(path, a, b, &why);
        }
    }
}

/// Every endpoint of `analytics::rolled` over one window, from both sources.
async fn compare_window(state: &AppState, w: &Window, hours: i64, out: &mut Vec<String>) -> usize {
    let label = format!("[{:?}{} {hours}h]", w.project_id, if w.include_global { "+global" } else { "" });
    let mut compared = 0;
    let mut check = |name: &str, a: Value, b: Value, rounded: bool, out: &mut Vec<String>| {
        let context = format!("{label} {name}");
        Diff { context: &context, out, rounded_quantiles: rounded }.value("$", "", &a, &b, None);
        compared += 1;
    };
    macro_rules! both {
        ($f:expr) => {{
            let t0 = Instant::now();
            let a = $f(Source::Rollups).await.expect("rollups");
            let t1 = Instant::now();
            let b = $f(Source::Spans).await.expect("spans");
            if std::env::var("RC_PROFILE").is_ok() {
                eprintln!("{label} {} rollups {:.0?} spans {:.0?}", line!(), t1 - t0, t1.elapsed());
            }
            (a, b)
        }};
    }
    let (a, b) = both!(|s| rolled::timeseries(state, w, hours, s));
    assert!(b.as_array().is_some_and(|r| !r.is_empty()) || w.project_id.is_some(), "{label}: data in the window");
    check("timeseries", a, b, false, out);
    let (a, b) = both!(|s| rolled::models(state, w, s));
    check("models", a, b, false, out);
    let (a, b) = both!(|s| rolled::tools(state, w, s));
    check("tools", a, b, false, out);
    let (a, b) = both!(|s| rolled::errors(state, w, s));
    check("errors", a, b, false, out);
    for server in [None, Some("github")] {
        let (a, b) = both!(|s| rolled::reliability_tools(state, w, server.map(String::from), hours, s));
        check(&format!("reliability_tools({server:?})"), a, b, true, out);
    }
    let (a, b) = both!(|s| rolled::loop_counts(state, w, s));
    check("loop_counts", a, b, false, out);
    let (a, b) = both!(|s| rolled::costs(state, w, hours, s));
    check("costs", a, b, false, out);
    if !w.include_global {
        let (a, b) = both!(|s| async move {
            rolled::invocations(state, w.project_id.clone(), w.since, s).await.map(|rows| invocations_json(&rows))
        });
        check("invocations", a, b, false, out);
    }
    for server in ["github", "bulk-etl", "no-such-server"] {
        let (a, b) = both!(|s| async move {
            rolled::server_use(state, w.project_id.clone(), server, w.since, s).await.map(|u| server_use_json(&u))
        });
        check(&format!("server_use({server})"), a, b, false, out);
    }
    compared
}

fn invocations_json(rows: &[langsight_storage::ServerInvocations]) -> Value {
    rows.iter()
        .map(|r| {
            json!({"server_name": r.server_name, "last_at": r.last_called_at, "last_status": r.last_call_status,
                "total": r.total_calls, "success": r.success_calls})
        })
        .collect()
}

fn server_use_json(u: &rolled::ServerUse) -> Value {
    json!({
        "calls": u.calls,
        "sessions": u.sessions,
        "agents": u.agents.iter().map(|(name, a)| json!({
            "agent_name": name, "calls": a.calls, "errors": a.errors, "latency_sum": a.latency_sum,
            "sessions": a.sessions, "last_at": a.last_at,
        })).collect::<Vec<_>>(),
    })
}

/// Lineage over windows holding every span (a delegation is counted in its child's hour, the span scan needs
/// the parent in the window too: they agree when no window cuts a session), before retention.
async fn compare_lineage(state: &AppState, phase: &str) -> usize {
    let mut out = Vec::new();
    let scopes = [(None, false), (Some(BIG_PROJECT), false), (Some(PROJECTS[1]), true), (Some(PROJECTS[2]), false)];
    let mut delegations = 0;
    // Link every session first: a read links at most a bounded backlog itself (the background pass does the
    // rest), and the big group's 5,200 sessions exceed it.
    langsight_server::analytics::links::run(state, usize::MAX).await.expect("link pass");
    for (project, include_global) in scopes {
        let mut w = Window::last_hours(project.map(String::from), 720);
        w.include_global = include_global;
        let a = rolled::lineage(state, &w, 720, Source::Rollups).await.expect("rollups");
        let b = rolled::lineage(state, &w, 720, Source::Spans).await.expect("spans");
        let context = format!("[{project:?}{} lineage]", if include_global { "+global" } else { "" });
        Diff { context: &context, out: &mut out, rounded_quantiles: false }.value("$", "", &a, &b, None);
        delegations += b["edges"].as_array().map_or(0, |e| e.iter().filter(|e| e["type"] == "handoff").count());
    }
    assert!(delegations > 20, "{phase}: hand-off and delegation edges were generated ({delegations})");
    // Unfinished sessions over all the data (the rows describe whole sessions, a scan only its window).
    let now = langsight_core::time::now_micros();
    let mut unfinished = 0;
    for project in [None, Some(BIG_PROJECT)] {
        let json = |rows: Vec<langsight_server::analytics::reliability::Unfinished>| -> Value {
            rows.iter()
                .map(|u| {
                    json!({"session_id": u.session_id, "project": u.project_id, "last": u.last_activity,
                        "spans": u.span_count, "llm": u.llm_calls, "tool_calls": u.tool_calls})
                })
                .collect()
        };
        let (since, idle) = (now - 30 * DAY, now - 5 * MIN);
        let project = project.map(String::from);
        let a = json(rolled::incomplete(state, project.clone(), since, idle, Source::Rollups).await.expect("rollups"));
        let b = json(rolled::incomplete(state, project.clone(), since, idle, Source::Spans).await.expect("spans"));
        unfinished += b.as_array().map_or(0, Vec::len);
        let context = format!("[{project:?} incomplete]");
        Diff { context: &context, out: &mut out, rounded_quantiles: false }.value("$", "", &a, &b, None);
    }
    assert!(unfinished > 5, "{phase}: sessions with a missing parent were generated ({unfinished})");
    assert!(out.is_empty(), "{phase}: lineage differs ({}):\n{}", out.len(), out.join("\n"));
    4
}

/// Which windows to compare.
#[derive(Clone, Copy, PartialEq)]
enum Windows {
    /// One project and all projects × 1, 6, 24 and 168 hours (5-, 15-, 60- and 360-minute buckets), another
    /// project, a project with the spans sent without one, and the trends of three scopes.
    All,
    /// All projects and one project over 24 and 168 hours, and the trends (after retention).
    Long,
}

async fn compare_all(state: &AppState, phase: &str, which: Windows) -> usize {
    let mut out = Vec::new();
    let mut compared = 0;
    let windows: Vec<(Option<&str>, bool, i64)> = match which {
        Windows::All => [1, 6, 24, 168]
            .into_iter()
            .flat_map(|h| [(Some(BIG_PROJECT), false, h), (None, false, h)])
            .chain([(Some(PROJECTS[2]), false, 24), (Some(PROJECTS[1]), true, 6), (Some(PROJECTS[1]), true, 168)])
            .collect(),
        Windows::Long => vec![(Some(BIG_PROJECT), false, 168), (None, false, 24), (None, false, 168)],
    };
    for (project, include_global, hours) in windows {
        let mut w = Window::last_hours(project.map(String::from), hours);
        w.include_global = include_global;
        compared += compare_window(state, &w, hours, &mut out).await;
    }
    let trends = if which == Windows::All { vec![Some(BIG_PROJECT), Some(PROJECTS[1]), None] } else { vec![None] };
    for project in trends {
        let project = project.map(String::from);
        let a = rolled::trends(state, project.clone(), Source::Rollups).await.expect("rollups");
        let b = rolled::trends(state, project.clone(), Source::Spans).await.expect("spans");
        let context = format!("[{project:?} trends]");
        Diff { context: &context, out: &mut out, rounded_quantiles: false }.value("$", "", &a, &b, None);
        compared += 1;
    }
    let shown: Vec<&String> = out.iter().take(60).collect();
    assert!(
        out.is_empty(),
        "{phase}: {} mismatches between rollups and the span scan (first {}):\n{}",
        out.len(),
        shown.len(),
        shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
    );
    compared
}

/// The figures the big group must show, so the approximate path is really exercised.
async fn check_big_group(state: &AppState) {
    let w = Window::last_hours(Some(BIG_PROJECT.into()), 6);
    let tools = rolled::tools(state, &w, Source::Spans).await.unwrap();
    let row = tools
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["tool_name"] == "fanout")
        .unwrap_or_else(|| panic!("the big group is in the window: {tools}"));
    assert_eq!(row["calls"], json!(BIG_SESSIONS), "{row}");
    let hourly = rolled::timeseries(state, &Window::last_hours(None, 24), 24, Source::Spans).await.unwrap();
    let biggest = hourly.as_array().unwrap().iter().filter_map(|b| b["sessions"].as_u64()).max().unwrap_or(0);
    assert!(biggest >= BIG_SESSIONS as u64, "an hour with ≥ {BIG_SESSIONS} distinct sessions: {biggest}");
}

struct Timings {
    ingest: Duration,
    compare: Duration,
    prune: Duration,
    compared: usize,
    spans: usize,
}

/// The whole check on one storage configuration.
async fn conforms(config: Config, mode: &str) -> Timings {
    let four_byte_errors = true;
    let storage = langsight_server::open_storage(&config).await.unwrap();
    let shared = langsight_server::open_shared(&config).await.unwrap();
    let state = AppState::new(config, storage, shared);
    let data = dataset(0x5eed_1234_abcd_0001, four_byte_errors);
    let started = Instant::now();
    ingest_all(&state, &data).await;
    let ingest = started.elapsed();
    eprintln!("{mode}: ingested {} spans in {ingest:.2?}", data.total());
    check_big_group(&state).await;

    let started = Instant::now();
    let mut compared = compare_all(&state, &format!("{mode}, after ingest"), Windows::All).await;
    compared += compare_lineage(&state, &format!("{mode}, after ingest")).await;
    let compare = started.elapsed();

    // Retention on an hour boundary five days back, then everything again.
    let started = Instant::now();
    let cut = (langsight_core::time::now_micros() - 5 * DAY).div_euclid(HOUR) * HOUR;
    let pruned = state.storage.spans.prune_before(cut).await.unwrap();
    assert!(pruned > 0, "{mode}: retention removed old spans");
    compared += compare_all(&state, &format!("{mode}, after retention"), Windows::Long).await;
    let prune = started.elapsed();
    Timings { ingest, compare, prune, compared, spans: data.total() }
}

fn report(mode: &str, t: &Timings, total: Duration) {
    eprintln!(
        "rollup conformance {mode}: {} spans; ingest {:.2?}, compare {:.2?}, retention + compare {:.2?}, \
         total {:.2?}; {} endpoint comparisons",
        t.spans, t.ingest, t.compare, t.prune, total, t.compared
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_rollups_match_the_span_scan() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let config = Config::for_database(&dir.path().join("rollups.db"));
    let t = conforms(config, "sqlite").await;
    report("sqlite", &t, started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_rollups_match_the_span_scan() {
    let started = Instant::now();
    let cluster = tokio::task::spawn_blocking(PgCluster::start).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_database(&dir.path().join("unused.db"));
    config.storage_mode = StorageMode::Postgres;
    config.postgres_url = Some(Secret(cluster.database("rollups")));
    config.pg_pool_max = 8;
    let t = conforms(config, "postgres").await;
    report("postgres", &t, started.elapsed());
}

/// A `dual` configuration: PostgreSQL at `pg_url`, ClickHouse at `ch_url` in database `ch_database`.
fn dual_config(dir: &std::path::Path, pg_url: String, ch_url: &str, ch_database: &str) -> Config {
    let mut config = Config::for_database(&dir.join("unused.db"));
    config.storage_mode = StorageMode::Dual;
    config.postgres_url = Some(Secret(pg_url));
    config.pg_pool_max = 8;
    config.clickhouse.url = ch_url.to_string();
    config.clickhouse.database = ch_database.into();
    config.clickhouse.spool_dir = dir.join("spool");
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dual_rollups_match_the_span_scan() {
    langsight_server::install_tls();
    let started = Instant::now();
    let cluster = tokio::task::spawn_blocking(PgCluster::start).await.unwrap();
    let ch = tokio::task::spawn_blocking(test_support::clickhouse::ClickHouseServer::start).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dual_config(dir.path(), cluster.database("rollups_dual"), &ch.url, "langsight_rollups");
    let t = conforms(config, "dual").await;
    report("dual", &t, started.elapsed());
    drop(ch);
}

/// Rollups rebuilt from stored spans (the upgrade backfill) equal the span scan like the ingest-time ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_backfilled_rollups_match_the_span_scan() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("backfill.db");
    let config = Config::for_database(&path);
    let storage = langsight_server::open_storage(&config).await.unwrap();
    let shared = langsight_server::open_shared(&config).await.unwrap();
    let state = AppState::new(config, storage, shared);
    let data = dataset(0x5eed_1234_abcd_0002, true);
    ingest_all(&state, &data).await;

    let reset = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.busy_timeout(Duration::from_secs(10)).unwrap();
            conn.execute_batch(
                "BEGIN IMMEDIATE; DELETE FROM rollups; \
                 UPDATE rollup_backfill SET after = 0, done = 0, upto = (SELECT max(seq) FROM spans), \
                 total = (SELECT count(*) FROM spans); \
                 UPDATE sessions SET linked_count = 0, links = NULL, missing_parents = 0, llm_calls = 0; COMMIT;",
            )
            .unwrap();
            let rows: i64 = conn.query_row("SELECT count(*) FROM rollups", [], |r| r.get(0)).unwrap();
            let spans: i64 = conn.query_row("SELECT count(*) FROM spans", [], |r| r.get(0)).unwrap();
            (rows, spans)
        })
        .await
        .unwrap()
    };
    assert_eq!(reset, (0, data.total() as i64), "rollups gone, every span (re-sent ones too) stored");
    let empty = rolled::tools(&state, &Window::last_hours(None, 24), Source::Rollups).await.unwrap();
    assert_eq!(empty, json!([]), "the rollups really are gone");

    let mut pages = 0;
    let mut last = None;
    while let Some(p) = state.storage.spans.backfill_rollups(1000).await.unwrap() {
        pages += 1;
        assert!(pages < 1000, "the backfill ends");
        last = Some(p);
    }
    let last = last.expect("the backfill had work");
    assert_eq!((last.done, last.total), (data.total() as u64, data.total() as u64), "every span folded once");
    assert_eq!(pages, data.total().div_ceil(1000), "pages of 1000");
    check_big_group(&state).await;
    let compared = compare_all(&state, "sqlite, after backfill", Windows::All).await
        + compare_lineage(&state, "sqlite, after backfill (sessions linked as after an upgrade)").await;
    eprintln!(
        "rollup conformance sqlite backfill: {} spans in {pages} pages; {compared} endpoint comparisons; total {:.2?}",
        data.total(),
        started.elapsed()
    );
}

/// dual: spans written to ClickHouse before rollups were kept (`ingested_at = 0`) are folded by the backfill into
/// the PostgreSQL rollups, once each — re-sent spans (the same sort key) included — and the figures equal the
/// span scan.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dual_backfilled_rollups_match_the_span_scan() {
    langsight_server::install_tls();
    let started = Instant::now();
    let cluster = tokio::task::spawn_blocking(PgCluster::start).await.unwrap();
    let ch = tokio::task::spawn_blocking(test_support::clickhouse::ClickHouseServer::start).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pg_url = cluster.database("rollups_dual_backfill");
    let config = dual_config(dir.path(), pg_url.clone(), &ch.url, "langsight_backfill");
    let storage = langsight_server::open_storage(&config).await.unwrap();
    let shared = langsight_server::open_shared(&config).await.unwrap();
    let state = AppState::new(config, storage, shared);
    let data = dataset(0x5eed_1234_abcd_0003, true);
    ingest_all(&state, &data).await;
    // Nothing to backfill yet: every row was written with its ingest time and folded at ingest.
    assert!(state.storage.spans.backfill_rollups(1000).await.unwrap().is_none(), "no backlog after ingest");
    // Accepted spans may still wait in the spool's segment; a read of spans sends them to ClickHouse first, and
    // the statements below go to ClickHouse directly.
    state.storage.spans.server_invocations(None, 0).await.unwrap();

    // Make the stored spans look like a pre-rollup deployment's: ingested_at 0, no rollups, cursor reset.
    let http = reqwest::Client::new();
    let ch_sql = |sql: String| {
        let (http, url) = (http.clone(), ch.url.clone());
        async move {
            let r = http.post(&url).body(sql.clone()).send().await.unwrap();
            let status = r.status();
            let body = r.text().await.unwrap();
            assert!(status.is_success(), "{sql}: {body}");
            body
        }
    };
    ch_sql("ALTER TABLE langsight_backfill.spans UPDATE ingested_at = 0 WHERE 1".into()).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pending = ch_sql(
            "SELECT count() FROM system.mutations WHERE database = 'langsight_backfill' AND table = 'spans' \
             AND is_done = 0"
                .into(),
        )
        .await;
        if pending.trim() == "0" {
            break;
        }
        assert!(Instant::now() < deadline, "the ClickHouse mutation finishes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stored = ch_sql("SELECT count() FROM langsight_backfill.spans WHERE ingested_at = 0".into()).await;
    assert_eq!(stored.trim(), data.total().to_string(), "every span (re-sent ones too) is in the backlog");
    let psql = std::process::Command::new("psql")
        .arg(&pg_url)
        .args(["-v", "ON_ERROR_STOP=1", "-qc"])
        .arg(
            "DELETE FROM rollups; UPDATE rollup_backfill_clickhouse SET cutoff = 9223372036854775807, \
             after_project = NULL, after_started = NULL, after_span = NULL, done = 0, total = NULL, \
             finished = false",
        )
        .output()
        .unwrap();
    assert!(psql.status.success(), "{}", String::from_utf8_lossy(&psql.stderr));
    let empty = rolled::tools(&state, &Window::last_hours(None, 24), Source::Rollups).await.unwrap();
    assert_eq!(empty, json!([]), "the rollups really are gone");

    // Small pages, so that page ends fall inside runs of one re-sent span.
    let (mut pages, mut last) = (0, None);
    while let Some(p) = state.storage.spans.backfill_rollups(97).await.unwrap() {
        pages += 1;
        assert!(pages < 5_000, "the backfill ends");
        last = Some(p);
    }
    let last = last.expect("the backfill had work");
    assert_eq!((last.done, last.total), (data.total() as u64, data.total() as u64), "every span folded once");
    assert!(state.storage.spans.backfill_rollups(97).await.unwrap().is_none(), "finished stays finished");
    check_big_group(&state).await;
    let compared = compare_all(&state, "dual, after backfill", Windows::All).await;
    eprintln!(
        "rollup conformance dual backfill: {} spans in {pages} pages; {compared} endpoint comparisons; total {:.2?}",
        data.total(),
        started.elapsed()
    );
    drop(ch);
}
