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
use std::collections::{BTreeMap, BTreeSet};

/// Outcome bits per tool, for the fallback rule (a tool that failed and later succeeded).
const TOOL_FAILED: u8 = 1;
const TOOL_SUCCEEDED: u8 = 2;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionRollup {
    pub agent_name: Option<String>,
    pub first_call_at: Micros,
    pub last_call_at: Micros,
    pub span_count: u64,
    pub tool_calls: u64,
    pub failed_calls: u64,
    pub total_latency_ms: f64,
    pub servers_used: BTreeSet<String>,
    pub agents_used: BTreeSet<String>,
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
    /// tool_name → TOOL_FAILED | TOOL_SUCCEEDED, over `tool_call` spans.
    pub tool_outcomes: BTreeMap<String, u8>,
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
            if !self.agents_used.contains(a) {
                self.agents_used.insert(a.to_string());
            }
        }
        if s.span_type.is_call() {
            self.tool_calls += 1;
            if s.status != SpanStatus::Success {
                self.failed_calls += 1;
            }
        }
        self.total_latency_ms += s.latency_ms;
        if s.span_type == SpanType::ToolCall && !self.servers_used.contains(&s.server_name) {
            self.servers_used.insert(s.server_name.clone());
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
                match self.tool_outcomes.get_mut(&s.tool_name) {
                    Some(b) => *b |= bit,
                    None => {
                        self.tool_outcomes.insert(s.tool_name.clone(), bit);
                    }
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
        let any_fallback = self.tool_outcomes.values().any(|b| *b == TOOL_FAILED | TOOL_SUCCEEDED);
        let any_unresolved = self.tool_outcomes.values().any(|b| *b == TOOL_FAILED);
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
        assert_eq!(r.servers_used.iter().collect::<Vec<_>>(), vec!["gh"]);
        assert_eq!(r.agents_used.len(), 2);
        assert_eq!(r.total_input_tokens, Some(12));
        assert_eq!(r.total_output_tokens, None);
        assert!(r.has_prompt);
        assert_eq!(r.duration_ms(), 3000.0);
        assert_eq!(r.agent_name.as_deref(), Some("a1"));
    }
}
