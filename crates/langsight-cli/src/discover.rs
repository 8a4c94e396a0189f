//! Finds the MCP servers already configured in the usual clients (Claude Desktop and Code, Cursor, VS Code,
//! Windsurf, Gemini CLI, Kiro, Zed, Cline) and in project-local files, for `langsight init`.

use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// A server entry as it will be written to `.langsight.yaml`.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundServer {
    pub name: String,
    pub transport: String,
    pub command: Option<String>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub url: Option<String>,
    pub headers: Vec<(String, String)>,
    /// Which client it came from (printed, not written).
    pub source: String,
}

impl FoundServer {
    /// Two entries starting the same command or pointing at the same URL are one server.
    fn fingerprint(&self) -> String {
        match &self.url {
            Some(u) if self.command.is_none() => format!("http:{u}"),
            _ => format!("stdio:{}:{}", self.command.as_deref().unwrap_or(""), self.args.join("|")),
        }
    }

    /// The YAML mapping of this entry.
    pub fn to_yaml(&self) -> serde_yaml::Value {
        let mut m = serde_yaml::Mapping::new();
        let s = |v: &str| serde_yaml::Value::String(v.to_string());
        m.insert(s("name"), s(&self.name));
        m.insert(s("transport"), s(&self.transport));
        if let Some(c) = &self.command {
            m.insert(s("command"), s(c));
        }
        if !self.args.is_empty() {
            m.insert(s("args"), serde_yaml::Value::Sequence(self.args.iter().map(|a| s(a)).collect()));
        }
        let pairs = |kv: &[(String, String)]| {
            serde_yaml::Value::Mapping(kv.iter().map(|(k, v)| (s(k), s(v))).collect::<serde_yaml::Mapping>())
        };
        if !self.env.is_empty() {
            m.insert(s("env"), pairs(&self.env));
        }
        if let Some(u) = &self.url {
            m.insert(s("url"), s(u));
        }
        if !self.headers.is_empty() {
            m.insert(s("headers"), pairs(&self.headers));
        }
        serde_yaml::Value::Mapping(m)
    }
}

/// `stdio` with a command or without a URL; `sse` when the URL's last path segment is `sse` (or the entry
/// says so); Streamable HTTP otherwise.
pub fn transport_for(url: Option<&str>, has_command: bool, declared: Option<&str>) -> String {
    if has_command {
        return "stdio".into();
    }
    let Some(url) = url else { return "stdio".into() };
    match declared.map(|d| d.to_ascii_lowercase()) {
        Some(d) if d == "sse" => return "sse".into(),
        Some(d) if d == "http" || d == "streamable_http" || d == "streamable-http" || d == "streamablehttp" => {
            return "streamable_http".into()
        }
        _ => {}
    }
    let path = url.split(['?', '#']).next().unwrap_or(url).trim_end_matches('/');
    if path.rsplit('/').next() == Some("sse") {
        "sse".into()
    } else {
        "streamable_http".into()
    }
}

/// A client config file: where it lives and which key holds its servers.
struct Source {
    label: &'static str,
    path: PathBuf,
    key: &'static str,
}

fn sources(home: &Path, cwd: &Path) -> Vec<Source> {
    let h = |p: &str| home.join(p);
    let mut v = vec![
        Source { label: "Claude Desktop", path: h(".config/Claude/claude_desktop_config.json"), key: "mcpServers" },
        Source {
            label: "Claude Desktop",
            path: h("Library/Application Support/Claude/claude_desktop_config.json"),
            key: "mcpServers",
        },
        Source { label: "Cursor", path: h(".cursor/mcp.json"), key: "mcpServers" },
        Source { label: "VS Code", path: h(".config/Code/User/mcp.json"), key: "servers" },
        Source { label: "VS Code", path: h("Library/Application Support/Code/User/mcp.json"), key: "servers" },
        Source { label: "Windsurf", path: h(".codeium/windsurf/mcp_config.json"), key: "mcpServers" },
        Source { label: "Claude Code", path: h(".claude.json"), key: "mcpServers" },
        Source { label: "Gemini CLI", path: h(".gemini/settings.json"), key: "mcpServers" },
        Source { label: "Kiro", path: h(".kiro/settings/mcp.json"), key: "mcpServers" },
        Source { label: "Zed", path: h(".config/zed/settings.json"), key: "context_servers" },
        Source {
            label: "Cline",
            path: h(".config/Code/User/globalStorage/saoudrizwan.claude-dev/settings/cline_mcp_settings.json"),
            key: "mcpServers",
        },
    ];
    v.push(Source { label: "Cursor (project)", path: cwd.join(".cursor/mcp.json"), key: "mcpServers" });
    v.push(Source { label: "Project .mcp.json", path: cwd.join(".mcp.json"), key: "mcpServers" });
    v.push(Source { label: "VS Code (project)", path: cwd.join(".vscode/mcp.json"), key: "servers" });
    v
}

/// What discovery found, and what it could not read (printed as warnings).
pub struct Discovery {
    pub servers: Vec<FoundServer>,
    /// `(label, path, count)` per source with servers.
    pub found_in: Vec<(String, PathBuf, usize)>,
    pub problems: Vec<String>,
}

pub fn discover(home: &Path, cwd: &Path) -> Discovery {
    let mut out = Discovery { servers: vec![], found_in: vec![], problems: vec![] };
    let mut seen = std::collections::HashSet::new();
    for src in sources(home, cwd) {
        let Ok(text) = std::fs::read_to_string(&src.path) else { continue };
        let doc: Value = match serde_json::from_str(&strip_comments(&text)) {
            Ok(v) => v,
            Err(e) => {
                out.problems.push(format!("{} — parse error: {e}", src.label));
                continue;
            }
        };
        let entries = parse_section(doc.get(src.key), src.label);
        let mut count = 0;
        for e in entries {
            if seen.insert(e.fingerprint()) {
                out.servers.push(e);
                count += 1;
            }
        }
        if count > 0 {
            out.found_in.push((src.label.to_string(), src.path.clone(), count));
        }
    }
    out
}

/// The servers of one section: a map by name, or a list of entries with `name`.
fn parse_section(section: Option<&Value>, label: &str) -> Vec<FoundServer> {
    let pairs: Vec<(String, &Map<String, Value>)> = match section {
        Some(Value::Object(m)) => m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_object()?))).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| {
                let o = v.as_object()?;
                Some((o.get("name")?.as_str()?.to_string(), o))
            })
            .collect(),
        _ => vec![],
    };
    pairs.into_iter().filter_map(|(name, o)| entry(name, o, label)).collect()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

fn pairs(v: Option<&Value>) -> Vec<(String, String)> {
    v.and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default()
}

fn entry(name: String, o: &Map<String, Value>, label: &str) -> Option<FoundServer> {
    // Zed nests the command: {"command": {"path": ..., "args": [...], "env": {...}}}.
    let (command, args, env) = match o.get("command") {
        Some(Value::Object(c)) => {
            (c.get("path").and_then(Value::as_str).map(String::from), strings(c.get("args")), pairs(c.get("env")))
        }
        Some(Value::String(c)) => (Some(c.clone()), strings(o.get("args")), pairs(o.get("env"))),
        _ => (None, strings(o.get("args")), pairs(o.get("env"))),
    };
    let url = o.get("url").or_else(|| o.get("serverUrl")).and_then(Value::as_str).map(String::from);
    if command.is_none() && url.is_none() {
        return None;
    }
    let declared = o.get("type").or_else(|| o.get("transport")).and_then(Value::as_str);
    Some(FoundServer {
        transport: transport_for(url.as_deref(), command.is_some(), declared),
        name,
        command,
        args,
        env,
        url,
        headers: pairs(o.get("headers")),
        source: label.to_string(),
    })
}

/// Removes `//` and `/* */` comments outside strings (Zed and VS Code settings are JSON with comments).
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_string = true;
                out.push(c);
            }
            ('/', Some('/')) => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                chars.next();
                let mut prev = ' ';
                for n in chars.by_ref() {
                    if prev == '*' && n == '/' {
                        break;
                    }
                    prev = n;
                }
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports_follow_the_entry() {
        assert_eq!(transport_for(None, true, None), "stdio");
        assert_eq!(transport_for(Some("https://x.dev/sse"), false, None), "sse");
        assert_eq!(transport_for(Some("https://x.dev/sse/?k=1"), false, None), "sse");
        assert_eq!(transport_for(Some("https://x.dev/mcp"), false, None), "streamable_http");
        assert_eq!(transport_for(Some("https://x.dev/mcp"), false, Some("sse")), "sse");
    }

    #[test]
    fn comments_are_stripped_outside_strings() {
        let t = "{\n // c\n \"a\": \"http://x//y\", /* b */ \"c\": 1 }";
        let v: Value = serde_json::from_str(&strip_comments(t)).unwrap();
        assert_eq!(v["a"], "http://x//y");
        assert_eq!(v["c"], 1);
    }
}
