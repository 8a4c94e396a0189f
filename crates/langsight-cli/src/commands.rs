//! The data commands: `sessions`, `costs`, `scorecard`, `investigate`, `api-key generate` (read through
//! [`Source`]) and `scan` (no server at all).

use crate::output::{duration, paint, Progress, Table};
use crate::source::{Api, Source, SourceError};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    crate::runtime::build(None).map_err(|e| {
        eprintln!("langsight: {e}");
        ExitCode::from(2)
    })
}

/// Runs `f` against the data source, closing it afterwards.
fn with_source<F, Fut>(config: Option<PathBuf>, f: F) -> ExitCode
where
    F: FnOnce(Api) -> Fut,
    Fut: std::future::Future<Output = Result<ExitCode, SourceError>>,
{
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let source = match Source::open(config).await {
            Ok(s) => s,
            Err(e) => return e.exit(),
        };
        let code = f(source.api.clone()).await;
        source.close().await;
        code.unwrap_or_else(|e| e.exit())
    })
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn text(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "—".into(),
        Some(x) => x.to_string(),
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub struct SessionsArgs {
    pub config: Option<PathBuf>,
    pub hours: u32,
    pub agent: Option<String>,
    pub health: Option<String>,
    pub limit: u32,
    pub id: Option<String>,
    pub project: Option<String>,
    pub json: bool,
}

pub fn sessions(a: SessionsArgs) -> ExitCode {
    with_source(a.config.clone(), |src| async move {
        let project = a.project.as_deref().map(|p| format!("&project_id={}", encode(p))).unwrap_or_default();
        if let Some(id) = &a.id {
            // Kept as text: the trace's `root_spans` nests as deep as the session's parent chain.
            let trace = src.get_text(&format!("/api/agents/sessions/{}?x=1{project}", encode(id))).await?;
            if a.json {
                // Pretty-printing indents each level: a chain thousands deep would print gigabytes, so a
                // deeply nested trace is printed compact, as the server sent it.
                if langsight_core::span::too_deep(&trace, MAX_PRETTY_DEPTH).is_some() {
                    println!("{trace}");
                } else {
                    println!("{}", pretty_json(&trace));
                }
            } else {
                let tree = trace_tree(&trace).map_err(|e| {
                    SourceError::Unavailable(format!("the server's session trace could not be read ({e}); try --json"))
                })?;
                print!("{tree}");
            }
            return Ok(ExitCode::SUCCESS);
        }
        let mut path = format!("/api/agents/sessions?hours={}&limit={}{project}", a.hours, a.limit);
        if let Some(agent) = &a.agent {
            path.push_str(&format!("&agent_name={}", encode(agent)));
        }
        if let Some(tag) = &a.health {
            path.push_str(&format!("&health_tag={}", encode(tag)));
        }
        let rows = src.get(&path).await?;
        if a.json {
            print_json(&rows);
            return Ok(ExitCode::SUCCESS);
        }
        let rows = rows.as_array().cloned().unwrap_or_default();
        println!("{}", paint(&format!("Agent Sessions  (last {}h — {} sessions)", a.hours, rows.len()), "1"));
        let mut t = Table::new(vec!["Session", "Agent", "Calls", "Failed", "Duration", "Health", "Cost", "Servers"], 7);
        t.coloured = vec![5];
        for r in &rows {
            let servers: Vec<String> = r["servers_used"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(String::from))
                .collect();
            let shown = if servers.len() > 3 {
                format!("{} +{}", servers[..3].join(", "), servers.len() - 3)
            } else {
                servers.join(", ")
            };
            t.row(vec![
                text(r, "session_id"),
                text(r, "agent_name"),
                text(r, "tool_calls"),
                text(r, "failed_calls"),
                r["duration_ms"].as_f64().map(duration).unwrap_or_else(|| "—".into()),
                text(r, "health_tag"),
                r["est_cost_usd"].as_f64().map(|c| format!("${c:.4}")).unwrap_or_else(|| "—".into()),
                shown,
            ]);
        }
        print!("{}", t.render());
        Ok(ExitCode::SUCCESS)
    })
}

/// The fields of a session trace the tree view reads; `root_spans` is left unparsed (serde_json skips unknown
/// fields without recursion) and the tree is rebuilt from the flat spans with the server's own tree code.
#[derive(serde::Deserialize)]
struct TraceView {
    #[serde(default)]
    session_id: Value,
    #[serde(default)]
    tool_calls: Value,
    #[serde(default)]
    failed_calls: Value,
    #[serde(default)]
    duration_ms: Value,
    #[serde(default)]
    total_spans: Value,
    #[serde(default)]
    spans_flat: Vec<Value>,
}

/// Deepest JSON printed indented by `sessions --id --json`.
const MAX_PRETTY_DEPTH: usize = 64;

/// Levels of indentation drawn in the tree view; deeper spans show their depth instead, so a chain thousands
/// deep prints in linear, not quadratic, space.
const MAX_DRAWN_DEPTH: usize = 32;

/// A session's spans as an indented tree, children in start order, from the trace answer's text. Walked with
/// an explicit stack: a session can nest as deep as anyone sent it.
pub fn trace_tree(trace_text: &str) -> Result<String, serde_json::Error> {
    let trace: TraceView = serde_json::from_str(trace_text)?;
    let field = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        x => x.to_string(),
    };
    let mut out = format!(
        "{}\n{} tool calls · {} failed · {} total · {} spans\n",
        paint(&format!("Trace: {}", field(&trace.session_id)), "1"),
        field(&trace.tool_calls),
        field(&trace.failed_calls),
        trace.duration_ms.as_f64().map(duration).unwrap_or_else(|| "—".into()),
        field(&trace.total_spans),
    );
    let spans = &trace.spans_flat;
    let links: Vec<(&str, Option<&str>)> = spans
        .iter()
        .map(|s| {
            let parent = s["parent_span_id"].as_str().filter(|p| !p.is_empty());
            (s["span_id"].as_str().unwrap_or(""), parent)
        })
        .collect();
    let tree = langsight_core::tree::build(&links);
    // Per open level, whether it was the last of its siblings (decides `│` or blank below it).
    let mut open_last: Vec<bool> = Vec::new();
    tree.walk::<std::convert::Infallible>(|step| {
        match step {
            langsight_core::tree::Step::Enter { node, depth, last } => {
                open_last.truncate(depth);
                let mut prefix: String =
                    open_last.iter().take(MAX_DRAWN_DEPTH).map(|l| if *l { "   " } else { "│  " }).collect();
                if depth > MAX_DRAWN_DEPTH {
                    prefix.push_str(&format!("… [depth {depth}] "));
                }
                out.push_str(&trace_line(&spans[node], &prefix, last));
                open_last.push(last);
            }
            langsight_core::tree::Step::Leave { .. } => {}
        }
        Ok(())
    })
    .unwrap_or(());
    Ok(out)
}

fn trace_line(s: &Value, prefix: &str, last: bool) -> String {
    let branch = if last { "└─ " } else { "├─ " };
    let status = s["status"].as_str().unwrap_or("");
    let mark = match status {
        "success" => paint("✓", "32"),
        "timeout" => paint("⏱", "33"),
        "prevented" => paint("⊘", "33"),
        _ => paint("✗", "31"),
    };
    let what = match s["span_type"].as_str().unwrap_or("") {
        "agent" => format!("agent {} {}", text(s, "agent_name"), text(s, "tool_name")),
        "handoff" => format!("handoff {}", text(s, "tool_name")),
        kind => format!("{kind} {}/{}", text(s, "server_name"), text(s, "tool_name")),
    };
    let err = s["error"].as_str().map(|e| format!("  {}", e.chars().take(60).collect::<String>())).unwrap_or_default();
    let latency = s["latency_ms"].as_f64().map(duration).unwrap_or_default();
    format!("{prefix}{branch}{what}  {mark} {latency}{err}\n")
}

/// Re-indents compact JSON text the way `serde_json::to_string_pretty` does, without parsing it into a
/// [`Value`] (which recurses, and stops at 128 levels): one pass over the bytes with a depth counter.
pub fn pretty_json(text: &str) -> String {
    let bytes = text.trim().as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 2);
    let (mut depth, mut i) = (0usize, 0usize);
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        out.extend(std::iter::repeat_n(b' ', depth * 2));
    };
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'"' => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                out.extend_from_slice(&bytes[start..(i + 1).min(bytes.len())]);
            }
            b'{' | b'[' => {
                let close = if b == b'{' { b'}' } else { b']' };
                let next = bytes[i + 1..].iter().position(|c| !c.is_ascii_whitespace()).map(|p| bytes[i + 1 + p]);
                if next == Some(close) {
                    out.extend_from_slice(&[b, close]);
                    i += 1 + bytes[i + 1..].iter().position(|c| *c == close).unwrap_or(0) + 1;
                    continue;
                }
                out.push(b);
                depth += 1;
                newline(&mut out, depth);
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(b);
            }
            b',' => {
                out.push(b',');
                newline(&mut out, depth);
            }
            b':' => out.extend_from_slice(b": "),
            c if c.is_ascii_whitespace() => {}
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_string())
}

pub fn costs(config: Option<PathBuf>, hours: u32, project: Option<String>, json_out: bool) -> ExitCode {
    with_source(config, |src| async move {
        let project = project.as_deref().map(|p| format!("&project_id={}", encode(p))).unwrap_or_default();
        let b = src.get(&format!("/api/costs/breakdown?hours={hours}{project}")).await?;
        if json_out {
            print_json(&b);
            return Ok(ExitCode::SUCCESS);
        }
        let tools = b["by_tool"].as_array().cloned().unwrap_or_default();
        if tools.is_empty() {
            println!("No priced calls in the last {hours}h.");
            return Ok(ExitCode::SUCCESS);
        }
        println!("{}", paint(&format!("Costs  (last {hours}h — {} calls)", text(&b, "total_calls")), "1"));
        let mut t = Table::new(vec!["Server", "Tool", "Calls", "$/call", "Total", "Type", "Model"], 1);
        for r in &tools {
            t.row(vec![
                text(r, "server_name"),
                text(r, "tool_name"),
                text(r, "total_calls"),
                format!("${:.4}", r["cost_per_call_usd"].as_f64().unwrap_or(0.0)),
                format!("${:.4}", r["total_cost_usd"].as_f64().unwrap_or(0.0)),
                text(r, "cost_type"),
                text(r, "model_id"),
            ]);
        }
        print!("{}", t.render());
        let mut agents = Table::new(vec!["Agent", "Calls", "Total"], 0);
        for r in b["by_agent"].as_array().into_iter().flatten() {
            agents.row(vec![
                text(r, "agent_name"),
                text(r, "total_calls"),
                format!("${:.4}", r["total_cost_usd"].as_f64().unwrap_or(0.0)),
            ]);
        }
        println!();
        print!("{}", agents.render());
        println!(
            "\nTotal: ${:.4} (LLM ${:.4}, tools ${:.4}) over {hours}h",
            b["total_cost_usd"].as_f64().unwrap_or(0.0),
            b["llm_cost_usd"].as_f64().unwrap_or(0.0),
            b["tool_cost_usd"].as_f64().unwrap_or(0.0)
        );
        Ok(ExitCode::SUCCESS)
    })
}

const GRADES: [&str; 5] = ["A", "B", "C", "D", "F"];

fn grade_rank(g: &str) -> usize {
    GRADES.iter().position(|x| g.starts_with(x)).unwrap_or(GRADES.len())
}

pub fn scorecard(
    config: Option<PathBuf>,
    server: Option<String>,
    fail_below: Option<String>,
    json_out: bool,
) -> ExitCode {
    if let Some(f) = &fail_below {
        if !GRADES[..4].contains(&f.as_str()) {
            eprintln!("langsight: --fail-below takes A, B, C or D (got '{f}')");
            return ExitCode::from(2);
        }
    }
    with_source(config, |src| async move {
        let servers = src.get("/api/health/servers").await?;
        let mut names: Vec<String> = servers
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["server_name"].as_str().map(String::from))
            .collect();
        if let Some(only) = &server {
            if !names.contains(only) {
                eprintln!("Server '{only}' not found.\nAvailable: {}", names.join(", "));
                return Ok(ExitCode::from(1));
            }
            names.retain(|n| n == only);
        }
        let progress = Progress::new("Scoring", names.len());
        let mut cards = Vec::new();
        for (i, n) in names.iter().enumerate() {
            progress.step(i + 1);
            cards.push(src.get(&format!("/api/health/servers/{}/scorecard", encode(n))).await?);
        }
        progress.done();
        let worst = cards.iter().map(|c| grade_rank(c["grade"].as_str().unwrap_or("F"))).max().unwrap_or(0);
        let failing = fail_below.as_deref().is_some_and(|f| worst > grade_rank(f));
        if json_out {
            print_json(&Value::Array(cards));
        } else {
            println!("{}", paint(&format!("MCP Server Scorecards  ({} servers)", cards.len()), "1"));
            let mut t = Table::new(vec!["Server", "Grade", "Score", "Dimensions", "Cap"], 3);
            t.coloured = vec![1];
            for c in &cards {
                let dims: Vec<String> = c["dimensions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| format!("{} {:.0}", text(d, "name"), d["score"].as_f64().unwrap_or(0.0)))
                    .collect();
                t.row(vec![
                    text(c, "server_name"),
                    text(c, "grade"),
                    format!("{:.1}", c["score"].as_f64().unwrap_or(0.0)),
                    dims.join(", "),
                    text(c, "cap_applied"),
                ]);
            }
            print!("{}", t.render());
        }
        Ok(if failing { ExitCode::from(1) } else { ExitCode::SUCCESS })
    })
}

pub fn investigate(
    config: Option<PathBuf>,
    servers: Vec<String>,
    window: f64,
    provider: String,
    json_out: bool,
) -> ExitCode {
    with_source(config, |src| async move {
        let body = json!({"server_names": servers, "window_hours": window, "provider": provider});
        let r = src.call(Method::POST, "/api/investigate", Some(body)).await?;
        if json_out {
            print_json(&r);
        } else {
            println!("{}", r["report"].as_str().unwrap_or(""));
            eprintln!("(report by {})", text(&r, "provider_used"));
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn api_key(
    config: Option<PathBuf>,
    name: String,
    role: String,
    project: Option<String>,
    json_out: bool,
) -> ExitCode {
    with_source(config, |src| async move {
        let body = json!({"name": name, "role": role, "project_id": project});
        let r = src.call(Method::POST, "/api/auth/api-keys", Some(body)).await?;
        if json_out {
            print_json(&r);
        } else {
            println!("{}", text(&r, "key"));
            eprintln!("Stored as '{}' ({}); this is the only time the key is shown.", text(&r, "name"), role);
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `langsight scan`: checks every configured server and scans it, with no server and no database needed;
/// schema drift is reported against the previous scan when a local database exists, and the check and the
/// security scan are recorded there (the scorecard grades them). Exit 1 when a server is down or a critical
/// finding exists.
pub fn scan(config: Option<PathBuf>, json_out: bool) -> ExitCode {
    use langsight_monitor::security::{scan as scan_one, Severity};
    let cfg = match langsight_server::config::Config::load(langsight_server::config::Flags {
        config,
        ..Default::default()
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("langsight: {e}");
            return ExitCode::from(2);
        }
    };
    let servers: Vec<_> = cfg.servers.iter().map(|s| s.spec.clone()).collect();
    if servers.is_empty() {
        eprintln!("No MCP servers configured.\nRun langsight init (or langsight add) to get started.");
        return ExitCode::from(1);
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let osv = cfg.osv_url.clone();
    let reports = rt.block_on(async {
        let progress = Progress::new("Scanning", servers.len());
        let mut tasks = tokio::task::JoinSet::new();
        for s in servers {
            let osv = osv.clone();
            tasks.spawn(async move { scan_one(&s, &osv).await });
        }
        let mut out = Vec::new();
        while let Some(r) = tasks.join_next().await {
            if let Ok(r) = r {
                out.push(r);
                progress.step(out.len());
            }
        }
        progress.done();
        out.sort_by(|a, b| a.server_name.cmp(&b.server_name));
        out
    });
    let drift = previous_tools(&cfg, &reports);
    let down = reports.iter().filter(|r| r.check.status == langsight_monitor::Status::Down).count();
    let critical: usize = reports.iter().map(|r| r.count(Severity::Critical)).sum();
    if json_out {
        let scanned_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let items: Vec<Value> = reports
            .iter()
            .zip(&drift)
            .map(|(r, d)| {
                json!({
                    "server": r.server_name,
                    "health": {"status": r.check.status.as_str(), "latency_ms": r.check.latency_ms,
                        "tools_count": r.check.tools.len(), "schema_hash": r.check.schema_hash, "error": r.check.error,
                        "tools": r.check.tools.iter().map(|t| json!({"name": t.name, "description": t.description})).collect::<Vec<_>>()},
                    "drift": d,
                    "security": r.to_json(&scanned_at),
                })
            })
            .collect();
        print_json(&Value::Array(items));
    } else {
        println!("{}", paint(&format!("LangSight Scan  ({} servers)", reports.len()), "1"));
        let mut t = Table::new(vec!["Server", "Status", "Latency", "Tools", "Drift", "Security", "Error"], 6);
        t.coloured = vec![1, 5];
        for (r, d) in reports.iter().zip(&drift) {
            let security = [Severity::Critical, Severity::High, Severity::Medium, Severity::Low]
                .into_iter()
                .find(|s| r.count(*s) > 0)
                .map(|s| format!("{} {}", r.count(s), s.as_str()))
                .unwrap_or_else(|| "clean".into());
            t.row(vec![
                r.server_name.clone(),
                r.check.status.as_str().into(),
                r.check.latency_ms.map(|l| format!("{l:.0} ms")).unwrap_or_else(|| "—".into()),
                if r.check.tools.is_empty() { "—".into() } else { r.check.tools.len().to_string() },
                d.as_str().unwrap_or("—").to_string(),
                security,
                r.check.error.clone().unwrap_or_default(),
            ]);
        }
        print!("{}", t.render());
        for r in &reports {
            if !r.check.tools.is_empty() {
                let names: Vec<&str> = r.check.tools.iter().map(|t| t.name.as_str()).collect();
                println!("\n{} tools: {}", r.server_name, names.join(", "));
            }
        }
        let mut f = Table::new(vec!["Severity", "Server", "Category", "Finding", "Tool"], 3);
        f.coloured = vec![0];
        for r in &reports {
            for x in &r.findings {
                f.row(vec![
                    x.severity.as_str().to_uppercase(),
                    r.server_name.clone(),
                    x.category.clone(),
                    x.title.clone(),
                    x.tool_name.clone().unwrap_or_default(),
                ]);
            }
        }
        if f.rows.is_empty() {
            println!("\n✓ No security findings");
        } else {
            println!();
            print!("{}", f.render());
        }
        println!(
            "\n{}/{} servers up · {critical} critical · {} high",
            reports.len() - down,
            reports.len(),
            reports.iter().map(|r| r.count(Severity::High)).sum::<usize>()
        );
    }
    if down > 0 || critical > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Per report: `"unchanged"`, `"first scan"`, or what changed since the last scan recorded in the local SQLite
/// database (which this scan then records, with its security scan). `null` when there is no local database to
/// compare with.
fn previous_tools(
    cfg: &langsight_server::config::Config,
    reports: &[langsight_monitor::security::ScanReport],
) -> Vec<Value> {
    use langsight_storage::{HealthStore, SecurityStore};
    let Ok(db) = langsight_storage::sqlite::SqliteStorage::open(&cfg.sqlite_path) else {
        return vec![Value::Null; reports.len()];
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(_) => return vec![Value::Null; reports.len()],
    };
    rt.block_on(async {
        let mut out = Vec::new();
        for r in reports {
            // The security scan is stored as `security-scan` stores it, so the scorecard's security dimension
            // (and `serve` on this database) grades what this scan found. A scan of a down server is stored
            // with its error; the scorecard reads only completed scans.
            let scan = langsight_server::scans::record("", r, langsight_core::time::now_micros());
            if let Err(e) = db.save_scan(scan).await {
                eprintln!("langsight: the security scan of {} was not stored: {e}", r.server_name);
            }
            if r.check.status == langsight_monitor::Status::Down {
                out.push(Value::Null);
                continue;
            }
            let before = db.latest_snapshot("", &r.server_name).await.ok().flatten();
            let tools: Vec<Value> = r
                .check
                .tools
                .iter()
                .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.input_schema}))
                .collect();
            let state = match &before {
                None => json!("first scan"),
                Some(b) if b.schema_hash == r.check.schema_hash => json!("unchanged"),
                Some(b) => {
                    let old: Vec<Value> = serde_json::from_str(&b.tools_json).unwrap_or_default();
                    let names = |v: &[Value]| -> std::collections::BTreeSet<String> {
                        v.iter().filter_map(|t| t["name"].as_str().map(String::from)).collect()
                    };
                    let (was, now) = (names(&old), names(&tools));
                    let added: Vec<&String> = now.difference(&was).collect();
                    let removed: Vec<&String> = was.difference(&now).collect();
                    json!(format!(
                        "changed: +{} −{} tools{}",
                        added.len(),
                        removed.len(),
                        if added.is_empty() && removed.is_empty() { " (schemas)" } else { "" }
                    ))
                }
            };
            let _ = db
                .save_health(langsight_storage::HealthRecord {
                    server_name: r.server_name.clone(),
                    project_id: String::new(),
                    status: r.check.status.as_str().into(),
                    latency_ms: r.check.latency_ms,
                    tools_count: r.check.tools.len() as i64,
                    tools_json: Value::Array(tools).to_string(),
                    schema_hash: r.check.schema_hash.clone(),
                    error: r.check.error.clone(),
                    checked_at: langsight_core::time::now_micros(),
                })
                .await;
            out.push(state);
        }
        out
    })
}

/// `langsight security-scan`: the scan runs through the API — the server at `LANGSIGHT_URL`, or the local
/// database's in-process API — so every scan is stored where the scorecard and the dashboard read it, exactly
/// as `POST /api/security/scan` stores it. Exit 1 with `--ci` on critical or high findings, and when no server
/// is configured (local mode).
pub fn security_scan(config: Option<PathBuf>, server: Option<String>, json_out: bool, ci: bool) -> ExitCode {
    let remote = std::env::var("LANGSIGHT_URL").is_ok_and(|u| !u.trim().is_empty());
    if !remote {
        match langsight_server::config::Config::load(langsight_server::config::Flags {
            config: config.clone(),
            ..Default::default()
        }) {
            Ok(c) if c.servers.is_empty() => {
                eprintln!("No MCP servers configured.\nRun langsight init to get started.");
                return ExitCode::from(1);
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("langsight: {e}");
                return ExitCode::from(2);
            }
        }
    }
    with_source(config, |src| async move {
        let path = match &server {
            Some(s) => format!("/api/security/scan?server_name={}", encode(s)),
            None => "/api/security/scan".to_string(),
        };
        let reports = src.call(Method::POST, &path, Some(json!({}))).await?;
        let reports: Vec<Value> = reports.as_array().cloned().unwrap_or_default();
        if let Some(only) = &server {
            if reports.is_empty() {
                eprintln!("Server '{only}' not found.");
                return Ok(ExitCode::from(1));
            }
        }
        let count = |r: &Value, k: &str| r[k].as_u64().unwrap_or(0);
        let critical: u64 = reports.iter().map(|r| count(r, "critical_count")).sum();
        let high: u64 = reports.iter().map(|r| count(r, "high_count")).sum();
        if json_out {
            print_json(&Value::Array(reports.clone()));
        } else {
            let total: u64 = reports.iter().map(|r| count(r, "findings_count")).sum();
            println!(
                "{}",
                paint(&format!("Security Scan Results  ({} servers, {total} findings)", reports.len()), "1")
            );
            let mut t = Table::new(vec!["Severity", "Server", "Category", "Finding", "Tool"], 3);
            t.coloured = vec![0];
            let text = |v: &Value| v.as_str().unwrap_or("").to_string();
            for r in &reports {
                let name = text(&r["server_name"]);
                if let Some(e) = r["error"].as_str() {
                    t.row(vec!["ERROR".into(), name.clone(), String::new(), e.to_string(), String::new()]);
                }
                let findings = r["findings"].as_array().cloned().unwrap_or_default();
                if findings.is_empty() {
                    t.row(vec!["CLEAN".into(), name.clone(), String::new(), "No findings".into(), String::new()]);
                }
                for f in &findings {
                    t.row(vec![
                        text(&f["severity"]).to_uppercase(),
                        name.clone(),
                        text(&f["category"]),
                        text(&f["title"]),
                        text(&f["tool_name"]),
                    ]);
                }
            }
            print!("{}", t.render());
            let clean = reports.iter().filter(|r| count(r, "critical_count") + count(r, "high_count") == 0).count();
            if critical + high == 0 {
                println!("✓ No critical or high findings on {} servers", reports.len());
            } else {
                println!(
                    "{clean}/{} servers without critical or high findings — {critical} critical, {high} high",
                    reports.len()
                );
            }
        }
        Ok(if ci && critical + high > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
    })
}

#[cfg(test)]
mod deep_trace_tests {
    use super::*;

    #[test]
    fn pretty_json_matches_serde_json() {
        let v = json!({"a": [1, 2.5, {"b": "x\"y,{}:[]", "c": []}], "d": {}, "e": null, "f": [[]], "g": "é\\"});
        let compact = serde_json::to_string(&v).unwrap();
        assert_eq!(pretty_json(&compact), serde_json::to_string_pretty(&v).unwrap());
    }

    #[test]
    fn tree_view_of_a_deep_chain_is_linear_and_complete() {
        let spans: Vec<Value> = (0..20_000)
            .map(|i| {
                json!({"span_id": format!("s{i}"), "parent_span_id": if i > 0 { format!("s{}", i - 1) } else { String::new() },
                       "span_type": "tool_call", "server_name": "gh", "tool_name": "t", "status": "success",
                       "latency_ms": 1.0})
            })
            .collect();
        // root_spans nests deeper than serde_json parses; the view must not need it.
        let deep = format!("{}[]{}", "[{\"children\":".repeat(5_000), "}]".repeat(5_000));
        let text = format!(
            r#"{{"session_id":"s","spans_flat":{},"root_spans":{deep},"total_spans":20000,"tool_calls":20000,"failed_calls":0,"duration_ms":1.0}}"#,
            serde_json::to_string(&spans).unwrap()
        );
        let out = trace_tree(&text).unwrap();
        assert_eq!(out.lines().count(), 2 + 20_000);
        assert!(out.lines().last().unwrap().contains("[depth 19999]"));
        assert!(out.len() < 20_000 * 200, "indentation is capped: {} bytes", out.len());
        let pretty = pretty_json(&text);
        assert_eq!(pretty.lines().filter(|l| l.contains("\"children\"")).count(), 5_000);
    }
}
