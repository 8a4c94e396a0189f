//! `GET /api/costs/breakdown`: token-priced LLM calls and call-priced tool calls, by tool, agent and session.
//!
//! Deliberate differences from the original (docs/compatibility.md): token totals are plain sums (the original
//! multiplied already-summed tokens by the call count), and only tool calls are charged per call — agent,
//! handoff and other spans without token pricing cost nothing instead of $0.001 each.

use super::pricing::Prices;
use super::round;
use crate::config::CostRule;
use langsight_core::span::SpanType;
use langsight_storage::SpanFact;
use serde_json::{json, Value};
use std::collections::HashMap;

/// `fnmatch`-style glob: `*` any run, `?` one character; everything else literal.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The price of one call of `server`/`tool`: the first matching rule, else $0.001.
pub fn cost_per_call(rules: &[CostRule], server: &str, tool: &str) -> f64 {
    rules.iter().find(|r| glob(&r.server, server) && glob(&r.tool, tool)).map(|r| r.cost_per_call).unwrap_or(0.001)
}

/// Calls and token sums of one cost group.
#[derive(Default)]
pub struct CostGroup {
    pub calls: u64,
    pub input: i64,
    pub output: i64,
    pub thinking: i64,
}

/// (server, tool, agent, model, is a tool call, carries both token counts): spans priced the same way.
pub type CostKey = (String, String, String, String, bool, bool);

/// Folds span facts into the breakdown's groups. A span is priced by its tokens when it names a priced model
/// and carries both input and output counts; otherwise a tool call is priced per call and anything else is
/// free (a per-span rule, so the groups can be summed over hours and sessions).
#[derive(Default)]
pub struct Breakdown {
    groups: HashMap<CostKey, CostGroup>,
}

#[derive(Default)]
struct ToolRow {
    calls: u64,
    cost: f64,
    cost_type: &'static str,
    model: Option<String>,
    input: i64,
    output: i64,
}

impl Breakdown {
    pub fn add(&mut self, f: &SpanFact) {
        let key = (
            f.server_name.clone(),
            f.tool_name.clone(),
            f.agent_name.clone().unwrap_or_default(),
            f.model_id.clone().unwrap_or_default(),
            matches!(f.span_type, SpanType::ToolCall),
            f.input_tokens.is_some() && f.output_tokens.is_some(),
        );
        let g = self.groups.entry(key).or_default();
        g.calls += 1;
        g.input += f.input_tokens.unwrap_or(0);
        g.output += f.output_tokens.unwrap_or(0);
        g.thinking += f.thinking_tokens.unwrap_or(0);
    }

    pub fn into_groups(self) -> HashMap<CostKey, CostGroup> {
        self.groups
    }
}

/// The breakdown of priced groups; `by_session` is the ranked session list (from the session rollups).
pub fn render(
    groups: HashMap<CostKey, CostGroup>,
    prices: &Prices,
    rules: &[CostRule],
    hours: i64,
    storage_mode: &str,
    by_session: Vec<Value>,
) -> Value {
    let mut by_tool: HashMap<(String, String), ToolRow> = HashMap::new();
    let mut by_agent: HashMap<String, (u64, f64)> = HashMap::new();
    let (mut llm, mut tool, mut calls, mut tokens_in, mut tokens_out) = (0.0, 0.0, 0u64, 0i64, 0i64);
    let mut groups: Vec<_> = groups.into_iter().collect();
    // A fixed order, so "first row of a tool" is the same on every backend: most calls first.
    groups.sort_by(|a, b| b.1.calls.cmp(&a.1.calls).then_with(|| a.0.cmp(&b.0)));
    for ((server, tool_name, agent, model, is_tool, tokens), g) in groups {
        let token_cost =
            if !model.is_empty() && tokens { prices.cost(&model, g.input, g.output, g.thinking) } else { None };
        let (cost, kind) = match token_cost {
            Some(c) => (c, "token_based"),
            None if is_tool => (g.calls as f64 * cost_per_call(rules, &server, &tool_name), "call_based"),
            None => continue, // not priced: neither tokens with a known model nor a tool call
        };
        calls += g.calls;
        let row = by_tool.entry((server, tool_name)).or_insert_with(|| ToolRow {
            cost_type: kind,
            model: (kind == "token_based").then(|| model.clone()),
            ..Default::default()
        });
        row.calls += g.calls;
        row.cost += cost;
        if kind == "token_based" {
            llm += cost;
            row.input += g.input;
            row.output += g.output;
            tokens_in += g.input;
            tokens_out += g.output;
        } else {
            tool += cost;
        }
        let a = by_agent.entry(if agent.is_empty() { "unknown".into() } else { agent }).or_default();
        a.0 += g.calls;
        a.1 += cost;
    }
    let by_cost = |a: f64, b: f64| b.total_cmp(&a);
    let mut tools: Vec<_> = by_tool.into_iter().collect();
    tools.sort_by(|a, b| by_cost(a.1.cost, b.1.cost).then_with(|| a.0.cmp(&b.0)));
    let mut agents: Vec<_> = by_agent.into_iter().collect();
    agents.sort_by(|a, b| by_cost(a.1 .1, b.1 .1).then_with(|| a.0.cmp(&b.0)));
    json!({
        "storage_mode": storage_mode,
        "supports_costs": true,
        "hours": hours,
        "total_calls": calls,
        "total_cost_usd": round(llm + tool, 6),
        "llm_cost_usd": round(llm, 6),
        "tool_cost_usd": round(tool, 6),
        "total_input_tokens": tokens_in,
        "total_output_tokens": tokens_out,
        "by_tool": tools.iter().map(|((server, tool), r)| json!({
            "server_name": server,
            "tool_name": tool,
            "total_calls": r.calls,
            "cost_per_call_usd": round(r.cost / r.calls.max(1) as f64, 6),
            "total_cost_usd": round(r.cost, 6),
            "cost_type": r.cost_type,
            "model_id": r.model,
            "total_input_tokens": r.input,
            "total_output_tokens": r.output,
        })).collect::<Vec<_>>(),
        "by_agent": agents.iter().map(|(agent, (n, c))| json!({
            "agent_name": agent, "total_calls": n, "total_cost_usd": round(*c, 6),
        })).collect::<Vec<_>>(),
        "by_session": by_session,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_fnmatch() {
        assert!(glob("*", "anything"));
        assert!(glob("git*", "github"));
        assert!(glob("*_issues", "search_issues"));
        assert!(glob("re?d_file", "read_file"));
        assert!(!glob("github", "gitlab"));
        let rules = vec![
            CostRule { server: "github".into(), tool: "search_*".into(), cost_per_call: 0.01 },
            CostRule { server: "*".into(), tool: "*".into(), cost_per_call: 0.002 },
        ];
        assert_eq!(cost_per_call(&rules, "github", "search_issues"), 0.01);
        assert_eq!(cost_per_call(&rules, "github", "read"), 0.002);
        assert_eq!(cost_per_call(&[], "x", "y"), 0.001);
    }
}
