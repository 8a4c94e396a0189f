//! Session health tags.
//!
//! A session's tag summarises how it went, worst outcome first. Tags are cumulative: spans of a session
//! arrive over many batches (and, with several workers, through several processes), and a tag never
//! improves once a worse one was recorded — a loop that happened stays a loop.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthTag {
    LoopDetected,
    BudgetExceeded,
    CircuitBreakerOpen,
    SchemaDrift,
    Timeout,
    ToolFailure,
    SuccessWithFallback,
    Success,
    /// Written by the incomplete-session sweep; any tag computed from later spans replaces it.
    Incomplete,
}

impl HealthTag {
    pub const ALL: [HealthTag; 9] = [
        HealthTag::LoopDetected,
        HealthTag::BudgetExceeded,
        HealthTag::CircuitBreakerOpen,
        HealthTag::SchemaDrift,
        HealthTag::Timeout,
        HealthTag::ToolFailure,
        HealthTag::SuccessWithFallback,
        HealthTag::Success,
        HealthTag::Incomplete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HealthTag::LoopDetected => "loop_detected",
            HealthTag::BudgetExceeded => "budget_exceeded",
            HealthTag::CircuitBreakerOpen => "circuit_breaker_open",
            HealthTag::SchemaDrift => "schema_drift",
            HealthTag::Timeout => "timeout",
            HealthTag::ToolFailure => "tool_failure",
            HealthTag::SuccessWithFallback => "success_with_fallback",
            HealthTag::Success => "success",
            HealthTag::Incomplete => "incomplete",
        }
    }

    /// Lower is worse (the original's `_TAG_PRIORITY`). `incomplete` ranks last: it only says spans stopped
    /// arriving, so any tag computed from real spans is more informative.
    pub fn rank(self) -> u8 {
        match self {
            HealthTag::LoopDetected => 0,
            HealthTag::BudgetExceeded => 1,
            HealthTag::CircuitBreakerOpen => 2,
            HealthTag::SchemaDrift => 3,
            HealthTag::Timeout => 4,
            HealthTag::ToolFailure => 5,
            HealthTag::SuccessWithFallback => 6,
            HealthTag::Success => 7,
            HealthTag::Incomplete => 8,
        }
    }

    /// The tag to keep when `self` is stored and `new` was just computed: the worse of the two.
    pub fn never_downgraded(self, new: HealthTag) -> HealthTag {
        if new.rank() < self.rank() {
            new
        } else {
            self
        }
    }

    /// Whether this tag reports a failed session (the original fires `agent_failure` for these).
    pub fn is_failure(self) -> bool {
        !matches!(self, HealthTag::Success | HealthTag::SuccessWithFallback | HealthTag::Incomplete)
    }
}

impl fmt::Display for HealthTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HealthTag {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HealthTag::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| {
            let names: Vec<_> = HealthTag::ALL.iter().map(|t| t.as_str()).collect();
            format!("unknown health tag '{s}'; expected one of: {}", names.join(", "))
        })
    }
}
