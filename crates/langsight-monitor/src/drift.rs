//! Schema drift: what changed between two tool lists, and whether it breaks callers.
//!
//! The original's rules (`classify_drift`), in its order: removed tools (breaking), added tools (compatible),
//! then per tool kept: required parameters removed or added (breaking), a parameter's type changed
//! (breaking), optional parameters added (compatible), description changed (warning). Parameters are
//! visited in sorted order so results are deterministic.

use crate::ToolInfo;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriftType {
    Breaking,
    Compatible,
    Warning,
}

impl DriftType {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftType::Breaking => "breaking",
            DriftType::Compatible => "compatible",
            DriftType::Warning => "warning",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaChange {
    pub drift_type: DriftType,
    pub kind: &'static str,
    pub tool_name: String,
    pub param_name: Option<String>,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
}

fn change(drift_type: DriftType, kind: &'static str, tool: &str) -> SchemaChange {
    SchemaChange { drift_type, kind, tool_name: tool.into(), param_name: None, old_value: None, new_value: None }
}

fn required(schema: &Value) -> BTreeSet<String> {
    schema["required"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

fn props(schema: &Value) -> BTreeMap<String, Value> {
    schema["properties"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn truncate(s: &str) -> String {
    if s.chars().count() > 120 {
        s.chars().take(120).chain("…".chars()).collect()
    } else {
        s.to_string()
    }
}

pub fn classify(old: &[ToolInfo], new: &[ToolInfo]) -> Vec<SchemaChange> {
    let mut out = Vec::new();
    let new_by_name: BTreeMap<&str, &ToolInfo> = new.iter().map(|t| (t.name.as_str(), t)).collect();
    let old_names: BTreeSet<&str> = old.iter().map(|t| t.name.as_str()).collect();
    for t in old.iter().filter(|t| !new_by_name.contains_key(t.name.as_str())) {
        out.push(change(DriftType::Breaking, "tool_removed", &t.name));
    }
    for t in new.iter().filter(|t| !old_names.contains(t.name.as_str())) {
        out.push(change(DriftType::Compatible, "tool_added", &t.name));
    }
    for o in old {
        let Some(n) = new_by_name.get(o.name.as_str()) else { continue };
        let (old_req, new_req) = (required(&o.input_schema), required(&n.input_schema));
        let param = |drift_type, kind, p: &str| SchemaChange {
            param_name: Some(p.into()),
            ..change(drift_type, kind, &o.name)
        };
        for p in old_req.difference(&new_req) {
            out.push(param(DriftType::Breaking, "required_param_removed", p));
        }
        for p in new_req.difference(&old_req) {
            out.push(param(DriftType::Breaking, "required_param_added", p));
        }
        let (old_props, new_props) = (props(&o.input_schema), props(&n.input_schema));
        for (p, ov) in &old_props {
            let Some(nv) = new_props.get(p) else { continue };
            let (ot, nt) = (&ov["type"], &nv["type"]);
            let truthy = |v: &Value| !v.is_null() && v != &Value::String(String::new());
            if truthy(ot) && truthy(nt) && ot != nt {
                let mut c = param(DriftType::Breaking, "param_type_changed", p);
                c.old_value = Some(ot.as_str().map(String::from).unwrap_or_else(|| ot.to_string()));
                c.new_value = Some(nt.as_str().map(String::from).unwrap_or_else(|| nt.to_string()));
                out.push(c);
            }
        }
        for p in new_props.keys().filter(|p| !old_props.contains_key(*p) && !new_req.contains(*p)) {
            out.push(param(DriftType::Compatible, "optional_param_added", p));
        }
        let (od, nd) = (o.description.as_deref().unwrap_or(""), n.description.as_deref().unwrap_or(""));
        if od != nd {
            let mut c = change(DriftType::Warning, "description_changed", &o.name);
            c.old_value = Some(truncate(od));
            c.new_value = Some(truncate(nd));
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(name: &str, schema: Value, description: &str) -> ToolInfo {
        ToolInfo { name: name.into(), description: Some(description.into()), input_schema: schema }
    }

    #[test]
    fn classifies_like_the_original() {
        let old = vec![
            tool(
                "search",
                json!({"properties": {"q": {"type": "string"}, "n": {"type": "integer"}}, "required": ["q"]}),
                "Search",
            ),
            tool("gone", json!({}), ""),
        ];
        let new = vec![
            tool(
                "search",
                json!({"properties": {"q": {"type": "string"}, "n": {"type": "string"}, "lang": {"type": "string"}, "page": {"type": "integer"}}, "required": ["q", "page"]}),
                "Search things",
            ),
            tool("fresh", json!({}), ""),
        ];
        let changes = classify(&old, &new);
        let kinds: Vec<(&str, &str, Option<&str>)> =
            changes.iter().map(|c| (c.drift_type.as_str(), c.kind, c.param_name.as_deref())).collect();
        assert_eq!(
            kinds,
            vec![
                ("breaking", "tool_removed", None),
                ("compatible", "tool_added", None),
                ("breaking", "required_param_added", Some("page")),
                ("breaking", "param_type_changed", Some("n")),
                ("compatible", "optional_param_added", Some("lang")),
                ("warning", "description_changed", None),
            ]
        );
        assert!(classify(&old, &old).is_empty());
    }
}
