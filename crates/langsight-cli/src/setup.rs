//! `langsight init` (discover the MCP servers the usual clients already use and write `.langsight.yaml`) and
//! `langsight add` (add one server after testing the connection).

use crate::discover::{discover, transport_for, FoundServer};
use langsight_monitor::{check, ServerSpec, Status, Transport};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Asks a yes/no question on the terminal; without a terminal the answer is `default`.
fn confirm(question: &str, default: bool) -> bool {
    if !std::io::stdin().is_terminal() {
        return default;
    }
    print!("{question} [{}] ", if default { "Y/n" } else { "y/N" });
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return default;
    }
    match line.trim().to_ascii_lowercase().as_str() {
        "" => default,
        a => a.starts_with('y'),
    }
}

/// The configuration file as YAML (an empty mapping when it does not exist yet).
fn load_yaml(path: &Path) -> Result<serde_yaml::Value, String> {
    match std::fs::read_to_string(path) {
        Ok(t) if t.trim().is_empty() => Ok(serde_yaml::Value::Mapping(Default::default())),
        Ok(t) => serde_yaml::from_str(&t).map_err(|e| format!("{} is not valid YAML: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_yaml::Value::Mapping(Default::default())),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

fn save_yaml(path: &Path, doc: &serde_yaml::Value) -> Result<(), String> {
    let text = serde_yaml::to_string(doc).map_err(|e| format!("cannot write YAML: {e}"))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    // Write a sibling and rename it, so an interrupted write never leaves half a config behind.
    let tmp = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn servers_of(doc: &mut serde_yaml::Value) -> Result<&mut Vec<serde_yaml::Value>, String> {
    let map = doc.as_mapping_mut().ok_or("the configuration file's top level must be a mapping")?;
    let key = serde_yaml::Value::String("servers".into());
    let entry = map.entry(key).or_insert_with(|| serde_yaml::Value::Sequence(vec![]));
    if entry.is_null() {
        *entry = serde_yaml::Value::Sequence(vec![]);
    }
    entry.as_sequence_mut().ok_or_else(|| "`servers:` in the configuration file must be a list".to_string())
}

fn name_of(v: &serde_yaml::Value) -> Option<&str> {
    v.get("name").and_then(|n| n.as_str())
}

/// How a found server is checked (for the connection test), with the given timeout.
fn spec_of(s: &FoundServer, timeout: Duration) -> ServerSpec {
    let transport = match (s.transport.as_str(), &s.url) {
        ("sse", Some(url)) => Transport::Sse { url: url.clone(), headers: s.headers.clone() },
        ("streamable_http", Some(url)) => Transport::StreamableHttp { url: url.clone(), headers: s.headers.clone() },
        _ => Transport::Stdio {
            command: s.command.clone().unwrap_or_default(),
            args: s.args.clone(),
            env: s.env.clone(),
        },
    };
    ServerSpec { name: s.name.clone(), transport, timeout, health_tool: None, health_tool_args: Default::default() }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    crate::runtime::build(None)
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("langsight: {msg}");
    ExitCode::from(1)
}

pub struct InitArgs {
    pub output: PathBuf,
    pub slack_webhook: Option<String>,
    pub yes: bool,
    pub skip_check: bool,
}

pub fn init(args: InitArgs) -> ExitCode {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let cwd = std::env::current_dir().unwrap_or_default();
    let found = discover(&home, &cwd);
    for (label, path, n) in &found.found_in {
        println!("✓  {label} ({}) — {n} server(s)", path.display());
    }
    for p in &found.problems {
        println!("⚠  {p}");
    }
    if found.servers.is_empty() {
        eprintln!(
            "No MCP servers found in Claude Desktop, Claude Code, Cursor, VS Code, Windsurf, Gemini CLI, Kiro, Zed, Cline \
             or this project's .mcp.json.\nAdd one with: langsight add NAME --command CMD  (or --url URL)"
        );
        return ExitCode::from(1);
    }
    println!("\n {:<3} {:<24} {:<16} {:<48} Source", "#", "Name", "Transport", "Command / URL");
    for (i, s) in found.servers.iter().enumerate() {
        let target = match &s.url {
            Some(u) if s.command.is_none() => u.clone(),
            _ => format!("{} {}", s.command.as_deref().unwrap_or(""), s.args.join(" ")),
        };
        println!(" {:<3} {:<24} {:<16} {:<48} {}", i + 1, s.name, s.transport, truncate(&target, 48), s.source);
    }
    println!();
    if !args.yes && !confirm(&format!("Include all {} server(s)?", found.servers.len()), true) {
        println!("Nothing written.");
        return ExitCode::SUCCESS;
    }
    let mut doc = match load_yaml(&args.output) {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    let (mut added, mut kept) = (0, 0);
    {
        let list = match servers_of(&mut doc) {
            Ok(l) => l,
            Err(e) => return fail(&e),
        };
        for s in &found.servers {
            // Entries already in the file are the operator's: never overwritten by discovery.
            if list.iter().any(|v| name_of(v) == Some(&s.name)) {
                kept += 1;
            } else {
                list.push(s.to_yaml());
                added += 1;
            }
        }
    }
    if let Some(hook) = &args.slack_webhook {
        if let Some(map) = doc.as_mapping_mut() {
            let alerts = map.entry("alerts".into()).or_insert_with(|| serde_yaml::Value::Mapping(Default::default()));
            if let Some(a) = alerts.as_mapping_mut() {
                a.insert("slack_webhook".into(), hook.clone().into());
            }
        }
    }
    if let Err(e) = save_yaml(&args.output, &doc) {
        return fail(&e);
    }
    print!("Wrote {} ({added} server(s) added", args.output.display());
    if kept > 0 {
        print!(", {kept} already there kept as they were");
    }
    println!(")");
    if !args.skip_check {
        let rt = match runtime() {
            Ok(r) => r,
            Err(e) => return fail(&e),
        };
        let specs: Vec<ServerSpec> = found.servers.iter().map(|s| spec_of(s, Duration::from_secs(5))).collect();
        let results = rt.block_on(async {
            let checks = specs.iter().map(check);
            tokio::time::timeout(Duration::from_secs(30), futures_util::future::join_all(checks)).await.ok()
        });
        match results {
            Some(results) => {
                println!();
                for r in &results {
                    let label = match r.status {
                        Status::Up => "UP",
                        Status::Degraded => "DEGRADED",
                        Status::Down => "DOWN",
                    };
                    let latency = r.latency_ms.map(|l| format!("{l:.0}ms")).unwrap_or_else(|| "—".into());
                    println!(
                        "  {label:<9} {:<24} {latency:>7}  {} tools  {}",
                        r.server_name,
                        r.tools.len(),
                        r.error.as_deref().unwrap_or("")
                    );
                }
                let up = results.iter().filter(|r| r.status == Status::Up).count();
                println!("\n{up}/{} servers up", results.len());
            }
            None => println!("\nThe connection check took over 30 s and was stopped; run langsight mcp-health."),
        }
    }
    println!(
        "\nNext steps:\n  langsight mcp-health --config {0}      check them now\n  langsight serve --config {0}           \
         run the server (it monitors them)",
        args.output.display()
    );
    ExitCode::SUCCESS
}

pub struct AddArgs {
    pub name: String,
    pub url: Option<String>,
    pub command: Option<String>,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub header: Vec<String>,
    pub config: PathBuf,
    pub skip_check: bool,
    pub yes: bool,
}

fn key_values(items: &[String], flag: &str) -> Result<Vec<(String, String)>, String> {
    items
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => Err(format!("{flag} expects KEY=VALUE, got '{kv}'")),
        })
        .collect()
}

pub fn add(a: AddArgs) -> ExitCode {
    if a.url.is_none() && a.command.is_none() {
        return fail("give the server's --url (HTTP) or --command (stdio)");
    }
    if a.url.is_some() && a.command.is_some() {
        return fail("give either --url or --command, not both");
    }
    let (env, headers) = match (key_values(&a.env, "--env"), key_values(&a.header, "--header")) {
        (Ok(e), Ok(h)) => (e, h),
        (Err(e), _) | (_, Err(e)) => return fail(&e),
    };
    // `--command "uv run server"` is split like a shell would (the original passed it as one program name).
    let (command, mut args) = match &a.command {
        Some(c) => match split_words(c) {
            Ok(mut words) if !words.is_empty() => {
                let program = words.remove(0);
                (Some(program), words)
            }
            Ok(_) => return fail("--command is empty"),
            Err(e) => return fail(&format!("--command: {e}")),
        },
        None => (None, vec![]),
    };
    args.extend(a.args.iter().cloned());
    let server = FoundServer {
        transport: transport_for(a.url.as_deref(), command.is_some(), None),
        name: a.name.clone(),
        command,
        args,
        env,
        url: a.url.clone(),
        headers,
        source: "langsight add".into(),
    };
    let mut doc = match load_yaml(&a.config) {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    let exists = match servers_of(&mut doc) {
        Ok(list) => list.iter().any(|v| name_of(v) == Some(&a.name)),
        Err(e) => return fail(&e),
    };
    if exists
        && !a.yes
        && !confirm(&format!("Server '{}' already exists in {}. Overwrite?", a.name, a.config.display()), false)
    {
        return fail(&format!("'{}' already exists in {}; pass --yes to overwrite it", a.name, a.config.display()));
    }
    if !a.skip_check {
        let rt = match runtime() {
            Ok(r) => r,
            Err(e) => return fail(&e),
        };
        let r = rt.block_on(check(&spec_of(&server, Duration::from_secs(10))));
        match r.status {
            Status::Up | Status::Degraded => {
                println!("✓ Connected in {:.0}ms", r.latency_ms.unwrap_or(0.0));
                let names: Vec<&str> = r.tools.iter().take(8).map(|t| t.name.as_str()).collect();
                let more = r.tools.len().saturating_sub(8);
                let tail = if more > 0 { format!(" … and {more} more") } else { String::new() };
                println!("✓ {} tool(s): {}{tail}", r.tools.len(), names.join(", "));
            }
            Status::Down => {
                println!("✗ Connection failed: {}", r.error.as_deref().unwrap_or("unknown error"));
                if !a.yes && !confirm("Add anyway?", false) {
                    return fail("not added (the connection test failed; pass --yes or --skip-check to add it anyway)");
                }
            }
        }
    }
    if let Ok(list) = servers_of(&mut doc) {
        list.retain(|v| name_of(v) != Some(&a.name));
        list.push(server.to_yaml());
    }
    if let Err(e) = save_yaml(&a.config, &doc) {
        return fail(&e);
    }
    println!(
        "Added '{}' ({}) to {}.\nNext: langsight mcp-health --config {}",
        a.name,
        server.transport,
        a.config.display(),
        a.config.display()
    );
    ExitCode::SUCCESS
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

/// Splits a command line into words: whitespace separates, single quotes keep everything, double quotes
/// keep everything but `\"` and `\\`, a backslash outside quotes escapes the next character.
fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return Err("unclosed single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(x @ ('"' | '\\')) => cur.push(x),
                            Some(x) => {
                                cur.push('\\');
                                cur.push(x);
                            }
                            None => return Err("unclosed double quote".into()),
                        },
                        Some(x) => cur.push(x),
                        None => return Err("unclosed double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(x) = chars.next() {
                    cur.push(x);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::split_words;

    #[test]
    fn commands_split_like_a_shell() {
        assert_eq!(split_words("uv run server.py").unwrap(), ["uv", "run", "server.py"]);
        assert_eq!(
            split_words(r#"node "my dir/x.js" --name 'a b' c\ d"#).unwrap(),
            ["node", "my dir/x.js", "--name", "a b", "c d"]
        );
        assert_eq!(split_words(r#"echo "" x"#).unwrap(), ["echo", "", "x"]);
        assert!(split_words("echo 'oops").is_err());
    }
}
