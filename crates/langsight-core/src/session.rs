//! The per-session rollup, maintained at ingest.
//!
//! The original re-aggregates every session from all its spans on each list request (`GROUP BY session_id`
//! over the span table), which grows with the data. We instead fold each span into a small rollup when it
//! is stored, so listing sessions reads one row per session whatever their size. The same rollup carries
//! what health tagging needs across batches (per-tool outcomes, flags), so tagging is exact for sessions of
//! any length, across restarts and workers, without holding spans in memory.

use crate::health::HealthTag;
use crate::span::{Span, SpanStatus, SpanType};
use crate::time::Micros;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Outcome bits per tool, for the fallback rule (a tool that failed and later succeeded).
const TOOL_FAILED: u8 = 1;
const TOOL_SUCCEEDED: u8 = 2;

/// Most distinct servers, agents and tools kept per session. Every ingest into a session reads and rewrites
/// its rollup, and every list answer carries its names, so one session with tens of thousands of names would
/// slow every later write to it and bloat every list. Beyond the cap the names that sort first are kept (so
/// the rollup does not depend on arrival order) and the spans of the others are counted as dropped.
pub const MAX_ROLLUP_NAMES: usize = 256;

/// Reads the stored name sets: a map of name → spans, or the list of names rollups held before the cap
/// (each counted once).
fn names_or_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Counts(BTreeMap<String, u64>),
        List(Vec<String>),
    }
    Ok(match Stored::deserialize(d)? {
        Stored::Counts(m) => m,
        Stored::List(v) => v.into_iter().map(|n| (n, 1)).collect(),
    })
}

/// Reads the stored tool outcomes: `[bits, spans]`, or the bare bits rollups held before the cap.
fn outcomes_or_bits<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, (u8, u64)>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Pair(u8, u64),
        Bits(u8),
    }
    let m = BTreeMap::<String, Stored>::deserialize(d)?;
    Ok(m.into_iter()
        .map(|(k, v)| match v {
            Stored::Pair(b, n) => (k, (b, n)),
            Stored::Bits(b) => (k, (b, 1)),
        })
        .collect())
}

/// Adds one span of `name` to a capped map: counted when kept; when the map is full, a name that sorts before
/// the last kept one takes its place (whose spans become dropped) and any other is dropped. The kept names
/// are therefore the first [`MAX_ROLLUP_NAMES`] of all names seen, with exact counts, whatever the order.
/// Returns what was dropped, if anything: the value of an evicted name, or `new` when this span's is.
fn add_capped<V>(map: &mut BTreeMap<String, V>, name: &str, new: V, merge: impl FnOnce(&mut V, V)) -> Option<V> {
    if let Some(v) = map.get_mut(name) {
        merge(v, new);
        return None;
    }
    if map.len() < MAX_ROLLUP_NAMES {
        map.insert(name.to_string(), new);
        return None;
    }
    if map.last_key_value().is_some_and(|(last, _)| name < last.as_str()) {
        let evicted = map.pop_last().map(|(_, v)| v);
        map.insert(name.to_string(), new);
        return evicted;
    }
    Some(new)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionRollup {
    pub agent_name: Option<String>,
    pub first_call_at: Micros,
    pub last_call_at: Micros,
    pub span_count: u64,
    pub tool_calls: u64,
    pub failed_calls: u64,
    pub total_latency_ms: f64,
    /// Server of each `tool_call` span → its spans, capped at [`MAX_ROLLUP_NAMES`].
    #[serde(default, deserialize_with = "names_or_list")]
    pub servers_used: BTreeMap<String, u64>,
    /// Spans whose server is not in `servers_used` (over the cap).
    #[serde(default)]
    pub servers_dropped: u64,
    /// Agent name → its spans, capped at [`MAX_ROLLUP_NAMES`].
    #[serde(default, deserialize_with = "names_or_list")]
    pub agents_used: BTreeMap<String, u64>,
    /// Spans whose agent is not in `agents_used` (over the cap).
    #[serde(default)]
    pub agents_dropped: u64,
    pub total_input_tokens: Option<i64>,
    pub total_output_tokens: Option<i64>,
    pub total_thinking_tokens: Option<i64>,
    pub model_id: Option<String>,
    pub has_prompt: bool,
    /// Worst tag forced by a prevented span (loop, budget, circuit breaker).
    pub prevented_tag: Option<HealthTag>,
    pub has_schema_drift: bool,
    pub has_timeout: bool,
    pub has_error: bool,
    /// tool_name → (TOOL_FAILED | TOOL_SUCCEEDED, spans), over finished `tool_call` spans, capped at
    /// [`MAX_ROLLUP_NAMES`].
    #[serde(default, deserialize_with = "outcomes_or_bits")]
    pub tool_outcomes: BTreeMap<String, (u8, u64)>,
    /// Spans whose tool is not in `tool_outcomes` (over the cap).
    #[serde(default)]
    pub tools_dropped: u64,
    /// The outcome bits of those spans: a failure among them counts as unresolved.
    #[serde(default)]
    pub dropped_tool_bits: u8,
    /// The stored tag: what [`SessionRollup::computed_tag`] gave, never downgraded.
    pub health_tag: Option<HealthTag>,
}

fn add(total: &mut Option<i64>, v: Option<i64>) {
    if let Some(v) = v {
        *total = Some(total.unwrap_or(0).saturating_add(v));
    }
}

fn contains_ci(haystack: &str, needle: &str) -> bool {
    haystack.to_ascii_lowercase().contains(needle)
}

impl SessionRollup {
    /// Folds one span into the rollup. Order-independent: the same spans in any order and any batching give
    /// the same rollup, which is what makes concurrent ingest through several workers safe.
    pub fn absorb(&mut self, s: &Span) {
        if self.span_count == 0 {
            self.first_call_at = s.started_at;
            self.last_call_at = s.ended_at;
        } else {
            self.first_call_at = self.first_call_at.min(s.started_at);
            self.last_call_at = self.last_call_at.max(s.ended_at);
        }
        self.span_count += 1;
        if let Some(a) = s.agent_name.as_deref().filter(|a| !a.is_empty()) {
            if self.agent_name.is_none() {
                self.agent_name = Some(a.to_string());
            }
            if let Some(spans) = add_capped(&mut self.agents_used, a, 1, |n, one| *n += one) {
                self.agents_dropped += spans;
            }
        }
        if s.span_type.is_call() {
            self.tool_calls += 1;
            if s.status != SpanStatus::Success {
                self.failed_calls += 1;
            }
        }
        self.total_latency_ms += s.latency_ms;
        if s.span_type == SpanType::ToolCall {
            if let Some(spans) = add_capped(&mut self.servers_used, &s.server_name, 1, |n, one| *n += one) {
                self.servers_dropped += spans;
            }
        }
        add(&mut self.total_input_tokens, s.input_tokens);
        add(&mut self.total_output_tokens, s.output_tokens);
        add(&mut self.total_thinking_tokens, s.thinking_tokens);
        if self.model_id.is_none() {
            self.model_id = s.model_id.clone().filter(|m| !m.is_empty());
        }
        if s.span_type == SpanType::Agent
            && s.tool_name == "session"
            && s.llm_input.as_deref().is_some_and(|p| !p.is_empty())
        {
            self.has_prompt = true;
        }
        self.absorb_for_tagging(s);
    }

    fn absorb_for_tagging(&mut self, s: &Span) {
        let error = s.error.as_deref().unwrap_or("");
        if s.status == SpanStatus::Prevented {
            let forced = if contains_ci(error, "loop_detected") {
                Some(HealthTag::LoopDetected)
            } else if contains_ci(error, "budget_exceeded") {
                Some(HealthTag::BudgetExceeded)
            } else if contains_ci(error, "circuit_breaker") {
                Some(HealthTag::CircuitBreakerOpen)
            } else {
                None
            };
            if let Some(t) = forced {
                self.prevented_tag = Some(self.prevented_tag.map_or(t, |old| old.never_downgraded(t)));
            }
        }
        if !error.is_empty() && contains_ci(error, "schema drift") {
            self.has_schema_drift = true;
        }
        match s.status {
            SpanStatus::Timeout => self.has_timeout = true,
            SpanStatus::Error => self.has_error = true,
            _ => {}
        }
        if s.span_type == SpanType::ToolCall && !s.tool_name.is_empty() {
            let bit = match s.status {
                SpanStatus::Error | SpanStatus::Timeout => TOOL_FAILED,
                SpanStatus::Success => TOOL_SUCCEEDED,
                SpanStatus::Prevented => 0,
            };
            if bit != 0 {
                let dropped = add_capped(&mut self.tool_outcomes, &s.tool_name, (bit, 1), |v, new| {
                    v.0 |= new.0;
                    v.1 += new.1;
                });
                if let Some((bits, spans)) = dropped {
                    self.tools_dropped += spans;
                    self.dropped_tool_bits |= bits;
                }
            }
        }
    }

    /// The tag the original's rules give for all spans absorbed so far (priority: prevented guards, schema
    /// drift, fallback-only failures, timeout, error, success).
    pub fn computed_tag(&self) -> HealthTag {
        if let Some(t) = self.prevented_tag {
            return t;
        }
        if self.has_schema_drift {
            return HealthTag::SchemaDrift;
        }
        let any_fallback = self.tool_outcomes.values().any(|(b, _)| *b == TOOL_FAILED | TOOL_SUCCEEDED);
        // A failure of a tool over the cap cannot be matched with its later success: it counts as unresolved.
        let any_unresolved =
            self.tool_outcomes.values().any(|(b, _)| *b == TOOL_FAILED) || self.dropped_tool_bits & TOOL_FAILED != 0;
        if any_fallback && !any_unresolved {
            return HealthTag::SuccessWithFallback;
        }
        if self.has_timeout {
            return HealthTag::Timeout;
        }
        if self.has_error {
            return HealthTag::ToolFailure;
        }
        HealthTag::Success
    }

    /// Re-computes the tag after absorbing spans, keeping the stored one when it is worse.
    /// Returns the new stored tag.
    pub fn retag(&mut self) -> HealthTag {
        let computed = self.computed_tag();
        let tag = self.health_tag.map_or(computed, |old| old.never_downgraded(computed));
        self.health_tag = Some(tag);
        tag
    }

    pub fn duration_ms(&self) -> f64 {
        (self.last_call_at - self.first_call_at) as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::decode_batch;
    use serde_json::json;

    fn spans(v: serde_json::Value) -> Vec<Span> {
        decode_batch(&serde_json::to_vec(&v).unwrap()).unwrap()
    }

    fn span(tool: &str, status: &str, error: Option<&str>) -> serde_json::Value {
        json!({"server_name": "srv", "tool_name": tool, "status": status, "error": error,
               "started_at": "2026-03-17T12:00:00Z", "ended_at": "2026-03-17T12:00:01Z"})
    }

    fn tag_of(v: serde_json::Value) -> HealthTag {
        let mut r = SessionRollup::default();
        for s in spans(v) {
            r.absorb(&s);
        }
        r.retag()
    }

    #[test]
    fn tags_follow_the_original_priority() {
        assert_eq!(tag_of(json!([span("a", "success", None)])), HealthTag::Success);
        assert_eq!(tag_of(json!([span("a", "error", None)])), HealthTag::ToolFailure);
        assert_eq!(tag_of(json!([span("a", "timeout", None), span("b", "error", None)])), HealthTag::Timeout);
        assert_eq!(
            tag_of(json!([span("a", "error", None), span("a", "success", None)])),
            HealthTag::SuccessWithFallback
        );
        // Fallback only counts when no tool stays unresolved.
        assert_eq!(
            tag_of(json!([span("a", "error", None), span("a", "success", None), span("b", "error", None)])),
            HealthTag::ToolFailure
        );
        assert_eq!(
            tag_of(json!([span("a", "error", Some("Schema Drift detected")), span("a", "success", None)])),
            HealthTag::SchemaDrift
        );
        assert_eq!(
            tag_of(json!([
                span("a", "prevented", Some("circuit_breaker_open: x")),
                span("b", "prevented", Some("LOOP_DETECTED: y"))
            ])),
            HealthTag::LoopDetected
        );
        assert_eq!(tag_of(json!([span("a", "prevented", Some("other"))])), HealthTag::Success);
    }

    #[test]
    fn tags_are_never_downgraded_across_batches() {
        let mut r = SessionRollup::default();
        for s in spans(json!([span("a", "error", None)])) {
            r.absorb(&s);
        }
        assert_eq!(r.retag(), HealthTag::ToolFailure);
        for s in spans(json!([span("a", "success", None)])) {
            r.absorb(&s);
        }
        assert_eq!(r.computed_tag(), HealthTag::SuccessWithFallback);
        assert_eq!(r.retag(), HealthTag::ToolFailure, "a stored worse tag stays");
    }

    #[test]
    fn counts_and_sets() {
        let mut r = SessionRollup::default();
        let batch = spans(json!([
            {"server_name": "gh", "tool_name": "t", "status": "error", "agent_name": "a1", "input_tokens": 5,
             "model_id": "m", "started_at": "2026-03-17T12:00:00Z", "ended_at": "2026-03-17T12:00:02Z"},
            {"server_name": "llm", "tool_name": "session", "span_type": "agent", "status": "success", "agent_name": "a2",
             "llm_input": "hi", "input_tokens": 7, "started_at": "2026-03-17T11:59:59Z", "ended_at": "2026-03-17T12:00:01Z"}
        ]));
        for s in &batch {
            r.absorb(s);
        }
        assert_eq!((r.tool_calls, r.failed_calls, r.span_count), (1, 1, 2));
        assert_eq!(r.servers_used.keys().collect::<Vec<_>>(), vec!["gh"]);
        assert_eq!(r.agents_used.len(), 2);
        assert_eq!(r.total_input_tokens, Some(12));
        assert_eq!(r.total_output_tokens, None);
        assert!(r.has_prompt);
        assert_eq!(r.duration_ms(), 3000.0);
        assert_eq!(r.agent_name.as_deref(), Some("a1"));
    }

    fn call(server: &str, tool: &str, agent: &str, status: &str) -> serde_json::Value {
        json!({"server_name": server, "tool_name": tool, "agent_name": agent, "status": status,
               "started_at": "2026-03-17T12:00:00Z", "ended_at": "2026-03-17T12:00:01Z"})
    }

    #[test]
    fn name_sets_are_capped_with_dropped_counts_whatever_the_order() {
        let names: Vec<String> = (0..1_000).map(|i| format!("n{:04}", (i * 7919) % 1_000)).collect();
        let batch: Vec<serde_json::Value> = names.iter().map(|n| call(n, n, n, "success")).collect();
        let mut forward = SessionRollup::default();
        for s in spans(json!(batch)) {
            forward.absorb(&s);
        }
        let mut backward = SessionRollup::default();
        let mut again = spans(json!(batch));
        again.reverse();
        // Backwards, and some names twice (counted twice wherever they land).
        again.extend(spans(json!([
            call("n0000", "n0000", "n0000", "success"),
            call("n0999", "n0999", "n0999", "error")
        ])));
        for s in &again {
            backward.absorb(s);
        }
        assert_eq!(forward.servers_used.len(), MAX_ROLLUP_NAMES);
        assert_eq!(forward.servers_used.keys().next().map(String::as_str), Some("n0000"));
        assert_eq!(forward.servers_used.keys().last().map(String::as_str), Some("n0255"));
        assert_eq!((forward.servers_dropped, forward.agents_dropped, forward.tools_dropped), (744, 744, 744));
        assert_eq!(backward.servers_used.keys().collect::<Vec<_>>(), forward.servers_used.keys().collect::<Vec<_>>());
        assert_eq!((backward.servers_dropped, backward.servers_used["n0000"]), (745, 2));
        // The failed call of a tool over the cap keeps the session from looking like a clean fallback.
        assert_eq!(backward.dropped_tool_bits, TOOL_FAILED | TOOL_SUCCEEDED);
        assert_eq!(backward.computed_tag(), HealthTag::ToolFailure);
        // The same spans in any order give the same rollup.
        let mut shuffled = SessionRollup::default();
        let (even, odd): (Vec<_>, Vec<_>) = again.iter().enumerate().partition(|(i, _)| i % 2 == 0);
        for (_, s) in odd.into_iter().chain(even) {
            shuffled.absorb(s);
        }
        shuffled.first_call_at = backward.first_call_at;
        assert_eq!(shuffled.servers_used, backward.servers_used);
        assert_eq!(
            (shuffled.servers_dropped, shuffled.tools_dropped, shuffled.dropped_tool_bits),
            (backward.servers_dropped, backward.tools_dropped, backward.dropped_tool_bits)
        );
    }

    #[test]
    fn rollups_stored_before_the_cap_still_read() {
        let old = r#"{"agent_name":"a","first_call_at":1,"last_call_at":2,"span_count":2,"tool_calls":2,
            "failed_calls":1,"total_latency_ms":1.0,"servers_used":["gh","fs"],"agents_used":["a"],
            "total_input_tokens":null,"total_output_tokens":null,"total_thinking_tokens":null,"model_id":null,
            "has_prompt":false,"prevented_tag":null,"has_schema_drift":false,"has_timeout":false,"has_error":true,
            "tool_outcomes":{"search":3},"health_tag":"tool_failure"}"#;
        let r: SessionRollup = serde_json::from_str(old).unwrap();
        assert_eq!(r.servers_used.keys().collect::<Vec<_>>(), vec!["fs", "gh"]);
        assert_eq!(r.tool_outcomes["search"], (3, 1));
        let again: SessionRollup = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(again, r);
    }
}
