//! Analytics rollups kept at ingest: every figure of the analytics endpoints (costs, monitoring, reliability)
//! is a merge of these rows, so a request reads hours × groups rows instead of every span of its window.
//!
//! Two kinds of row, both keyed by project and time bucket:
//! - [`RollupKind::Hourly`]: per hour × [`Dims`] (span type, status, agent, server, tool, model, whether the
//!   span carries both token counts, and its error classes) — counts, sums, the latency maximum, a latency
//!   sketch and a distinct-session sketch.
//! - [`RollupKind::Slot`]: per five minutes × [`SlotDims`], only spans with a session — for the time series,
//!   whose buckets go down to five minutes and count distinct sessions and agents per bucket.
//!
//! Every value is additive or a mergeable sketch ([`Stats::merge`]), so a batch folds into a delta
//! ([`RollupBatch::from_spans`]), deltas of one commit merge in memory, and the store merges the result into
//! the stored row. Re-sent spans are stored again and counted again, exactly as the span-scan reads them.
//! Costs are not stored: token sums are priced at read time, so a price change reprices history.

use crate::sketch::{hash_str, DistinctSketch, LatencySketch, SketchError};
use crate::span::{Span, SpanStatus, SpanType};
use std::collections::{BTreeMap, HashMap};

/// One hour in microseconds: the bucket of [`RollupKind::Hourly`] rows.
pub const HOUR: i64 = 3_600_000_000;
/// Five minutes in microseconds: the bucket of [`RollupKind::Slot`] rows (the time series' finest bucket).
pub const SLOT: i64 = 300_000_000;
/// Characters of an error looked at when classifying it (what the span scan keeps of an error, too).
pub const ERROR_CHARS: usize = 300;

/// Which rollup a row belongs to (stored as its number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RollupKind {
    Hourly = 1,
    Slot = 2,
    /// Per hour × (parent agent, child agent): spans of one agent under a span of another, found by the link
    /// pass after both are stored ([`delegation_dims`]); the lineage graph's delegation edges.
    Delegation = 3,
}

impl RollupKind {
    /// The bucket width in microseconds.
    pub fn width(self) -> i64 {
        match self {
            RollupKind::Hourly | RollupKind::Delegation => HOUR,
            RollupKind::Slot => SLOT,
        }
    }

    /// The bucket number of a time (buckets count from the epoch).
    pub fn bucket(self, at: i64) -> i64 {
        at.div_euclid(self.width())
    }
}

/// The original's error category of a failed span (first match wins; case-sensitive, as its SQL).
pub fn error_category(status: SpanStatus, error: Option<&str>) -> &'static str {
    let e = error.unwrap_or("");
    let has = |needles: &[&str]| needles.iter().any(|n| e.contains(n));
    if e.starts_with("FinishReason:SAFETY") || e.starts_with("FinishReason:PROHIBITED") {
        "safety_filter"
    } else if e.starts_with("FinishReason:MAX_TOKENS") || e.starts_with("FinishReason:length") {
        "max_tokens"
    } else if e.starts_with("FinishReason:RECITATION") {
        "recitation"
    } else if has(&["503", "UNAVAILABLE"]) {
        "api_unavailable"
    } else if status == SpanStatus::Timeout || has(&["timeout", "timed out"]) {
        "timeout"
    } else if has(&["rate limit", "429", "too many"]) {
        "rate_limit"
    } else if has(&["auth", "401", "403", "forbidden"]) {
        "auth_error"
    } else if has(&["AgentCrash", "TaskGroup"]) {
        "agent_crash"
    } else {
        "other_error"
    }
}

/// Every category [`error_category`] gives, in a fixed order (their number in [`ErrorClass`]).
pub const ERROR_CATEGORIES: [&str; 9] = [
    "safety_filter",
    "max_tokens",
    "recitation",
    "api_unavailable",
    "timeout",
    "rate_limit",
    "auth_error",
    "agent_crash",
    "other_error",
];

/// The reliability page's class of a failed tool call (lower-cased, first match wins): `timeout`,
/// `connection`, `params`, `server` (plain errors only), or none.
pub fn reliability_class(status: SpanStatus, error: Option<&str>) -> Option<&'static str> {
    if status == SpanStatus::Success {
        return None;
    }
    let e = error.unwrap_or("").to_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| e.contains(n));
    if has(&["timeout", "timed out"]) {
        Some("timeout")
    } else if has(&["connection", "unreachable", "refused"]) {
        Some("connection")
    } else if has(&["validation", "required", "invalid", "parameter"]) {
        Some("params")
    } else if status == SpanStatus::Error {
        Some("server")
    } else {
        None
    }
}

/// The reliability classes in [`ErrorClass`] order.
pub const RELIABILITY_CLASSES: [&str; 4] = ["timeout", "connection", "params", "server"];

/// The first [`ERROR_CHARS`] characters of an error: classification looks at no more, on every path.
pub fn error_head(error: Option<&str>) -> Option<&str> {
    error.map(|e| match e.char_indices().nth(ERROR_CHARS) {
        Some((i, _)) => &e[..i],
        None => e,
    })
}

/// What the analytics need to know of a span's error, decided once at ingest: its monitoring category, its
/// reliability class, whether it is a content error and whether it records a stopped loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ErrorClass {
    /// 1 + index in [`ERROR_CATEGORIES`] for failed spans, 0 for successful ones.
    pub category: u8,
    /// 1 + index in [`RELIABILITY_CLASSES`], 0 for none.
    pub reliability: u8,
    pub content_error: bool,
    pub stopped_loop: bool,
}

impl ErrorClass {
    pub fn of(status: SpanStatus, error: Option<&str>) -> ErrorClass {
        let error = error_head(error);
        let index = |list: &[&str], v: &str| list.iter().position(|c| *c == v).map_or(0, |i| i as u8 + 1);
        ErrorClass {
            category: if status == SpanStatus::Success {
                0
            } else {
                index(&ERROR_CATEGORIES, error_category(status, error))
            },
            reliability: reliability_class(status, error).map_or(0, |c| index(&RELIABILITY_CLASSES, c)),
            content_error: error.is_some_and(|e| e.starts_with("ContentError:")),
            stopped_loop: status == SpanStatus::Prevented && error.is_some_and(|e| e.contains("loop")),
        }
    }

    /// The monitoring category, for failed spans.
    pub fn category(&self) -> Option<&'static str> {
        (self.category > 0).then(|| ERROR_CATEGORIES.get(self.category as usize - 1).copied()).flatten()
    }

    /// The reliability class, if any.
    pub fn reliability(&self) -> Option<&'static str> {
        (self.reliability > 0).then(|| RELIABILITY_CLASSES.get(self.reliability as usize - 1).copied()).flatten()
    }

    fn code(&self) -> u32 {
        u32::from(self.category)
            | u32::from(self.reliability) << 8
            | u32::from(self.content_error) << 16
            | u32::from(self.stopped_loop) << 17
    }

    fn from_code(code: u32) -> Option<ErrorClass> {
        let c = ErrorClass {
            category: (code & 0xff) as u8,
            reliability: (code >> 8 & 0xff) as u8,
            content_error: code >> 16 & 1 == 1,
            stopped_loop: code >> 17 & 1 == 1,
        };
        let valid = (c.category as usize) <= ERROR_CATEGORIES.len()
            && (c.reliability as usize) <= RELIABILITY_CLASSES.len()
            && code >> 18 == 0;
        valid.then_some(c)
    }
}

/// What a rollup reads of a span: built from a stored [`Span`] at ingest, or from a storage row when rollups
/// are built for spans stored before they existed.
#[derive(Debug, Clone, Copy)]
pub struct SpanView<'a> {
    /// `""` for spans sent without a project.
    pub project: &'a str,
    pub started_at: i64,
    pub span_type: SpanType,
    pub status: SpanStatus,
    pub agent: Option<&'a str>,
    pub server: &'a str,
    pub tool: &'a str,
    pub model: Option<&'a str>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub thinking_tokens: Option<i64>,
    pub latency_ms: f64,
    pub error: Option<&'a str>,
    pub session: Option<&'a str>,
    /// The agent a hand-off names (`target_agent_name`).
    pub target: Option<&'a str>,
}

impl<'a> From<&'a Span> for SpanView<'a> {
    fn from(s: &'a Span) -> SpanView<'a> {
        SpanView {
            project: s.project().unwrap_or(""),
            started_at: s.started_at,
            span_type: s.span_type,
            status: s.status,
            agent: s.agent_name.as_deref(),
            server: &s.server_name,
            tool: &s.tool_name,
            model: s.model_id.as_deref(),
            input_tokens: s.input_tokens,
            output_tokens: s.output_tokens,
            thinking_tokens: s.thinking_tokens,
            latency_ms: s.latency_ms,
            error: s.error.as_deref(),
            session: s.session_id.as_deref(),
            target: s.target_agent_name.as_deref(),
        }
    }
}

/// The agent a hand-off hands to: its `target_agent_name`, else its tool name without the SDK's `→ ` prefix
/// (what the original's lineage reads); `""` for other spans.
pub fn handoff_target<'a>(span_type: SpanType, target: Option<&'a str>, tool: &'a str) -> std::borrow::Cow<'a, str> {
    if span_type != SpanType::Handoff {
        return "".into();
    }
    match target.filter(|t| !t.is_empty()) {
        Some(t) => t.into(),
        None => match tool.strip_prefix("→ ") {
            Some(rest) => rest.into(),
            None => tool.replacen("→ ", "", 1).into(),
        },
    }
}

/// The stored dims of a [`RollupKind::Delegation`] row.
pub fn delegation_dims(parent_agent: &str, child_agent: &str) -> String {
    serde_json::json!([parent_agent, child_agent]).to_string()
}

/// (parent agent, child agent) of a [`RollupKind::Delegation`] row.
pub fn decode_delegation(key: &str) -> Result<(String, String), RollupError> {
    let bad = || RollupError::BadKey(key.chars().take(80).collect());
    let v: serde_json::Value = serde_json::from_str(key).map_err(|_| bad())?;
    match v.as_array().map(Vec::as_slice) {
        Some([serde_json::Value::String(a), serde_json::Value::String(b)]) => Ok((a.clone(), b.clone())),
        _ => Err(bad()),
    }
}

/// The group of an hourly row: everything the analytics group or filter by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dims {
    pub span_type: SpanType,
    pub status: SpanStatus,
    /// `""` when the span names no agent.
    pub agent: String,
    pub server: String,
    pub tool: String,
    /// `""` when the span names no model.
    pub model: String,
    /// The span carries both input and output token counts: with a priced model it is priced by tokens.
    pub tokens: bool,
    pub error: ErrorClass,
    /// The agent a hand-off hands to ([`handoff_target`]); `""` for other spans.
    pub target: String,
}

impl Dims {
    pub fn of(s: &SpanView) -> Dims {
        Dims {
            span_type: s.span_type,
            status: s.status,
            agent: s.agent.unwrap_or_default().to_string(),
            server: s.server.to_string(),
            tool: s.tool.to_string(),
            model: s.model.unwrap_or_default().to_string(),
            tokens: s.input_tokens.is_some() && s.output_tokens.is_some(),
            error: ErrorClass::of(s.status, s.error),
            target: handoff_target(s.span_type, s.target, s.tool).into_owned(),
        }
    }

    /// The stored key: a JSON array (names may hold any character, JSON escapes them). The hand-off target is
    /// a ninth element, present only on hand-off rows (keys written before it existed have eight).
    pub fn encode(&self) -> String {
        let mut key = serde_json::json!([
            self.span_type.as_str(),
            self.status.as_str(),
            self.agent,
            self.server,
            self.tool,
            self.model,
            self.tokens,
            self.error.code()
        ]);
        if self.span_type == SpanType::Handoff {
            if let Some(a) = key.as_array_mut() {
                a.push(self.target.clone().into());
            }
        }
        key.to_string()
    }

    pub fn decode(key: &str) -> Result<Dims, RollupError> {
        let bad = || RollupError::BadKey(key.chars().take(80).collect());
        let v: serde_json::Value = serde_json::from_str(key).map_err(|_| bad())?;
        let a = v.as_array().filter(|a| a.len() == 8 || a.len() == 9).ok_or_else(bad)?;
        let text = |i: usize| a[i].as_str().map(str::to_string).ok_or_else(bad);
        let span_type = a[0].as_str().and_then(SpanType::parse).ok_or_else(bad)?;
        let tool = text(4)?;
        let target = match a.get(8) {
            Some(t) if span_type == SpanType::Handoff => t.as_str().map(str::to_string).ok_or_else(bad)?,
            Some(_) => return Err(bad()),
            // Written before targets were kept: the target then was at best the tool name.
            None => handoff_target(span_type, None, &tool).into_owned(),
        };
        Ok(Dims {
            span_type,
            status: a[1].as_str().and_then(SpanStatus::parse).ok_or_else(bad)?,
            agent: text(2)?,
            server: text(3)?,
            tool,
            model: text(5)?,
            tokens: a[6].as_bool().ok_or_else(bad)?,
            error: a[7].as_u64().and_then(|c| u32::try_from(c).ok()).and_then(ErrorClass::from_code).ok_or_else(bad)?,
            target,
        })
    }
}

/// The group of a five-minute slot row (spans with a session only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotDims {
    /// A `tool_call` or `node` span (what the time series counts as calls).
    pub call: bool,
    pub failed: bool,
    /// An `agent` span (the time series' session latency).
    pub agent_span: bool,
}

impl SlotDims {
    pub fn of(s: &SpanView) -> SlotDims {
        SlotDims {
            call: s.span_type.is_call(),
            failed: s.status != SpanStatus::Success,
            agent_span: s.span_type == SpanType::Agent,
        }
    }

    pub fn encode(&self) -> String {
        format!("{}{}{}", u8::from(self.call), u8::from(self.failed), u8::from(self.agent_span))
    }

    pub fn decode(key: &str) -> Result<SlotDims, RollupError> {
        let b = key.as_bytes();
        let bit = |i: usize| match b.get(i) {
            Some(b'0') => Ok(false),
            Some(b'1') => Ok(true),
            _ => Err(RollupError::BadKey(key.chars().take(80).collect())),
        };
        if b.len() != 3 {
            return Err(RollupError::BadKey(key.chars().take(80).collect()));
        }
        Ok(SlotDims { call: bit(0)?, failed: bit(1)?, agent_span: bit(2)? })
    }
}

/// The figures of one row: counts and sums are exact, quantiles and distinct counts come from sketches.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stats {
    pub spans: u64,
    pub latency_sum: f64,
    pub latency_max: f64,
    /// Token sums (absent counts add nothing).
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub thinking_tokens: i64,
    /// The latest `started_at` of the row's spans (0 in rows written before format 2: unknown, and the reader
    /// then takes the bucket's start).
    pub last_at: i64,
    pub latency: LatencySketch,
    /// Distinct sessions (a span without one counts as the session `""`, as the span-scan folds did): kept by
    /// slot rows and by hourly rows of tool calls and hand-offs (see [`keeps_sessions`]); empty elsewhere.
    pub sessions: DistinctSketch,
    /// Distinct agent names (slot rows only; spans without an agent add none).
    pub agents: DistinctSketch,
}

/// Format 2 added `last_at`; format 1 rows are still read.
const STATS_VERSION: u8 = 2;

impl Stats {
    /// Adds one span; `sessions` and `agents` say whether this row keeps those distinct counts (each costs up to
    /// 4 KB per row, rewritten on every commit that touches it, so only rows that are read for them keep them).
    fn add(&mut self, s: &SpanView, sessions: bool, with_agents: bool) {
        self.spans += 1;
        self.latency_sum += s.latency_ms;
        self.latency_max = self.latency_max.max(s.latency_ms);
        self.input_tokens = self.input_tokens.saturating_add(s.input_tokens.unwrap_or(0));
        self.output_tokens = self.output_tokens.saturating_add(s.output_tokens.unwrap_or(0));
        self.thinking_tokens = self.thinking_tokens.saturating_add(s.thinking_tokens.unwrap_or(0));
        self.last_at = self.last_at.max(s.started_at);
        self.latency.add(s.latency_ms);
        if sessions {
            self.sessions.add_hash(hash_str(s.session.unwrap_or("")));
        }
        if with_agents {
            if let Some(a) = s.agent.filter(|a| !a.is_empty()) {
                self.agents.add_str(a);
            }
        }
    }

    pub fn merge(&mut self, o: &Stats) {
        self.spans += o.spans;
        self.latency_sum += o.latency_sum;
        self.latency_max = self.latency_max.max(o.latency_max);
        self.input_tokens = self.input_tokens.saturating_add(o.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(o.output_tokens);
        self.thinking_tokens = self.thinking_tokens.saturating_add(o.thinking_tokens);
        self.last_at = self.last_at.max(o.last_at);
        self.latency.merge(&o.latency);
        self.sessions.merge(&o.sessions);
        self.agents.merge(&o.agents);
    }

    /// Version, seven fixed-width numbers (six in format 1), then three length-prefixed sketches.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.push(STATS_VERSION);
        out.extend_from_slice(&self.spans.to_le_bytes());
        out.extend_from_slice(&self.latency_sum.to_le_bytes());
        out.extend_from_slice(&self.latency_max.to_le_bytes());
        out.extend_from_slice(&self.input_tokens.to_le_bytes());
        out.extend_from_slice(&self.output_tokens.to_le_bytes());
        out.extend_from_slice(&self.thinking_tokens.to_le_bytes());
        out.extend_from_slice(&self.last_at.to_le_bytes());
        for sketch in [self.latency.to_bytes(), self.sessions.to_bytes(), self.agents.to_bytes()] {
            out.extend_from_slice(&(sketch.len() as u32).to_le_bytes());
            out.extend_from_slice(&sketch);
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Stats, RollupError> {
        let mut r = Reader(bytes);
        let version = r.take(1)?[0];
        if version != 1 && version != STATS_VERSION {
            return Err(RollupError::BadValue(format!("unknown rollup version {version}")));
        }
        let spans = u64::from_le_bytes(r.array()?);
        let latency_sum = f64::from_le_bytes(r.array()?);
        let latency_max = f64::from_le_bytes(r.array()?);
        let input_tokens = i64::from_le_bytes(r.array()?);
        let output_tokens = i64::from_le_bytes(r.array()?);
        let thinking_tokens = i64::from_le_bytes(r.array()?);
        let last_at = if version >= 2 { i64::from_le_bytes(r.array()?) } else { 0 };
        let latency = LatencySketch::from_bytes(r.sized()?)?;
        let sessions = DistinctSketch::from_bytes(r.sized()?)?;
        let agents = DistinctSketch::from_bytes(r.sized()?)?;
        if !r.0.is_empty() {
            return Err(RollupError::BadValue("trailing bytes".into()));
        }
        Ok(Stats {
            spans,
            latency_sum,
            latency_max,
            input_tokens,
            output_tokens,
            thinking_tokens,
            last_at,
            latency,
            sessions,
            agents,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RollupError> {
        if self.0.len() < n {
            return Err(RollupError::BadValue("truncated".into()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array(&mut self) -> Result<[u8; 8], RollupError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(a)
    }

    fn sized(&mut self) -> Result<&'a [u8], RollupError> {
        let mut n = [0u8; 4];
        n.copy_from_slice(self.take(4)?);
        self.take(u32::from_le_bytes(n) as usize)
    }
}

/// A stored rollup row that cannot be read: the database was changed by hand or by a newer version.
#[derive(Debug, Clone, PartialEq)]
pub enum RollupError {
    BadKey(String),
    BadValue(String),
}

impl std::fmt::Display for RollupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RollupError::BadKey(k) => write!(f, "unreadable rollup key {k:?}"),
            RollupError::BadValue(why) => write!(f, "unreadable rollup value: {why}"),
        }
    }
}

impl std::error::Error for RollupError {}

impl From<SketchError> for RollupError {
    fn from(e: SketchError) -> Self {
        RollupError::BadValue(e.to_string())
    }
}

/// Whether hourly rows of this span type keep distinct sessions: the tools list reads them for tool calls
/// (calls per session), and lineage will for tool calls and hand-offs; no figure reads them for other types.
pub fn keeps_sessions(span_type: SpanType) -> bool {
    matches!(span_type, SpanType::ToolCall | SpanType::Handoff)
}

/// Where a delta goes: kind, project (`""` for spans sent without one), bucket and encoded dims.
pub type RollupKey = (RollupKind, String, i64, String);

/// The rollup deltas of some spans, merged per row.
#[derive(Debug, Default, Clone)]
pub struct RollupBatch(pub BTreeMap<RollupKey, Stats>);

impl RollupBatch {
    /// The deltas of one batch of spans.
    pub fn from_spans(spans: &[Span]) -> RollupBatch {
        RollupBatch::from_views(spans.iter().map(SpanView::from))
    }

    /// The deltas of some spans, however they were read.
    pub fn from_views<'a>(spans: impl IntoIterator<Item = SpanView<'a>>) -> RollupBatch {
        // Group by borrowed dims first: no allocation per span, one owned key and encoding per group. A hash map
        // (std's keyed hasher: a batch's names come from the client): a B-tree compared the key's strings several
        // times per span, a third of the fold's time.
        type Borrowed<'b> =
            (&'b str, i64, SpanType, SpanStatus, &'b str, &'b str, &'b str, &'b str, bool, ErrorClass, &'b str);
        let mut hourly: HashMap<Borrowed<'a>, (SpanView<'a>, Stats)> = HashMap::new();
        let mut slots: HashMap<(&str, i64, SlotDims), Stats> = HashMap::new();
        for s in spans {
            let key = (
                s.project,
                RollupKind::Hourly.bucket(s.started_at),
                s.span_type,
                s.status,
                s.agent.unwrap_or_default(),
                s.server,
                s.tool,
                s.model.unwrap_or_default(),
                s.input_tokens.is_some() && s.output_tokens.is_some(),
                ErrorClass::of(s.status, s.error),
                if s.span_type == SpanType::Handoff { s.target.unwrap_or_default() } else { "" },
            );
            hourly.entry(key).or_insert_with(|| (s, Stats::default())).1.add(&s, keeps_sessions(s.span_type), false);
            if s.session.is_some_and(|id| !id.is_empty()) {
                let slot = RollupKind::Slot.bucket(s.started_at);
                slots.entry((s.project, slot, SlotDims::of(&s))).or_default().add(&s, true, true);
            }
        }
        let mut out = BTreeMap::new();
        for ((p, b, ..), (first, st)) in hourly {
            out.insert((RollupKind::Hourly, p.to_string(), b, Dims::of(&first).encode()), st);
        }
        for ((p, b, d), st) in slots {
            out.insert((RollupKind::Slot, p.to_string(), b, d.encode()), st);
        }
        RollupBatch(out)
    }

    /// Adds another batch's deltas (several requests committed together write each row once).
    pub fn absorb(&mut self, other: RollupBatch) {
        for (k, v) in other.0 {
            match self.0.get_mut(&k) {
                Some(mine) => mine.merge(&v),
                None => {
                    self.0.insert(k, v);
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(i: i64) -> Span {
        Span {
            span_id: format!("s{i}"),
            session_id: Some(format!("sess{}", i % 3)),
            project_id: Some("p".into()),
            server_name: "github".into(),
            tool_name: "search".into(),
            agent_name: Some(format!("agent{}", i % 2)),
            started_at: i * 60_000_000,
            ended_at: i * 60_000_000 + 1,
            latency_ms: i as f64,
            status: if i % 4 == 0 { SpanStatus::Error } else { SpanStatus::Success },
            error: (i % 4 == 0).then(|| "connection refused".to_string()),
            parent_span_id: None,
            span_type: SpanType::ToolCall,
            trace_id: None,
            input_json: None,
            output_json: None,
            llm_input: None,
            llm_output: None,
            replay_of: None,
            input_tokens: Some(i),
            output_tokens: (i % 2 == 0).then_some(3),
            model_id: Some("gpt-4o".into()),
            finish_reason: None,
            cache_read_tokens: None,
            cache_creation_tokens: None,
            thinking_tokens: None,
            target_agent_name: None,
            lineage_provenance: Default::default(),
            lineage_status: Default::default(),
            schema_version: "1.0".into(),
        }
    }

    #[test]
    fn keys_and_values_round_trip() {
        let spans: Vec<Span> = (0..200).map(span).collect();
        let batch = RollupBatch::from_spans(&spans);
        assert!(batch.0.keys().any(|k| k.0 == RollupKind::Slot));
        let total: u64 = batch.0.iter().filter(|(k, _)| k.0 == RollupKind::Hourly).map(|(_, v)| v.spans).sum();
        assert_eq!(total, 200);
        for ((kind, _, _, dims), stats) in &batch.0 {
            match kind {
                RollupKind::Hourly => assert_eq!(Dims::decode(dims).unwrap().encode(), *dims),
                RollupKind::Slot => assert_eq!(SlotDims::decode(dims).unwrap().encode(), *dims),
                RollupKind::Delegation => {
                    let (a, b) = decode_delegation(dims).unwrap();
                    assert_eq!(delegation_dims(&a, &b), *dims);
                }
            }
            assert_eq!(&Stats::from_bytes(&stats.to_bytes()).unwrap(), stats);
        }
        let d = Dims::decode(&Dims::of(&SpanView::from(&spans[0])).encode()).unwrap();
        assert_eq!(d.error.reliability(), Some("connection"));
        assert_eq!(d.error.category(), Some("other_error"));
    }

    #[test]
    fn split_batches_merge_to_the_whole() {
        let spans: Vec<Span> = (0..500).map(span).collect();
        let whole = RollupBatch::from_spans(&spans);
        let mut parts = RollupBatch::from_spans(&spans[..123]);
        parts.absorb(RollupBatch::from_spans(&spans[123..]));
        assert_eq!(whole.0.len(), parts.0.len());
        for (k, v) in &whole.0 {
            let p = &parts.0[k];
            assert_eq!(
                (v.spans, v.latency_max, v.sessions.estimate()),
                (p.spans, p.latency_max, p.sessions.estimate())
            );
            assert!((v.latency_sum - p.latency_sum).abs() < 1e-6);
            assert_eq!(v.latency.to_bytes(), p.latency.to_bytes());
        }
    }

    #[test]
    fn garbage_rows_are_errors_not_panics() {
        for key in [
            "",
            "[]",
            "[1,2,3,4,5,6,7,8]",
            "not json",
            "[\"tool_call\",\"success\",\"\",\"\",\"\",\"\",true,999999999]",
        ] {
            assert!(Dims::decode(key).is_err(), "{key}");
        }
        for key in ["", "01", "0121", "abc"] {
            assert!(SlotDims::decode(key).is_err(), "{key}");
        }
        let good = RollupBatch::from_spans(&[span(1)]).0.into_values().next().unwrap().to_bytes();
        for n in 0..good.len() {
            assert!(Stats::from_bytes(&good[..n]).is_err());
        }
        let mut extra = good.clone();
        extra.push(0);
        assert!(Stats::from_bytes(&extra).is_err());
    }

    #[test]
    fn hand_off_targets_and_format_1_rows() {
        let mut h = span(1);
        h.span_type = SpanType::Handoff;
        h.tool_name = "→ writer".into();
        let d = Dims::of(&SpanView::from(&h));
        assert_eq!(d.target, "writer", "the SDK's tool name names the target");
        h.target_agent_name = Some("critic".into());
        let d = Dims::of(&SpanView::from(&h));
        assert_eq!((d.target.as_str(), Dims::decode(&d.encode()).unwrap()), ("critic", d.clone()));
        // A key written before targets were kept (eight elements) derives it from the tool name.
        let old = "[\"handoff\",\"success\",\"a\",\"s\",\"→ writer\",\"\",false,0]";
        assert_eq!(Dims::decode(old).unwrap().target, "writer");
        // A ninth element on a row that is not a hand-off is not ours.
        assert!(Dims::decode("[\"tool_call\",\"success\",\"a\",\"s\",\"t\",\"\",false,0,\"x\"]").is_err());
        // Format 1 values (no latest start) still read, as "unknown".
        let stats = RollupBatch::from_spans(&[span(7)]).0.into_values().next().unwrap();
        assert_eq!(stats.last_at, 7 * 60_000_000);
        let mut v1 = stats.to_bytes();
        v1[0] = 1;
        v1.drain(49..57);
        assert_eq!(Stats::from_bytes(&v1).unwrap(), Stats { last_at: 0, ..stats });
        assert!(decode_delegation("[\"a\"]").is_err() && decode_delegation("[1,2]").is_err());
    }

    #[test]
    fn errors_are_classified_on_their_first_characters_only() {
        let late = format!("{}timeout", "x".repeat(ERROR_CHARS));
        assert_eq!(ErrorClass::of(SpanStatus::Error, Some(&late)).reliability(), Some("server"));
        assert_eq!(ErrorClass::of(SpanStatus::Error, Some("Timed Out")).reliability(), Some("timeout"));
        assert_eq!(ErrorClass::of(SpanStatus::Error, Some("Timed Out")).category(), Some("other_error"));
        assert_eq!(ErrorClass::of(SpanStatus::Timeout, None).category(), Some("timeout"));
        assert!(ErrorClass::of(SpanStatus::Prevented, Some("loop detected")).stopped_loop);
        assert_eq!(ErrorClass::of(SpanStatus::Success, Some("ContentError: x")).category(), None);
    }
}
