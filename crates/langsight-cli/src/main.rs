//! `langsight`: the command line. `serve` runs the API server; `init` and `add` write the MCP servers to
//! monitor; `mcp-health`, `monitor`, `security-scan` and `scan` check them; `sessions`, `costs`, `scorecard`,
//! `investigate` and `api-key` read a running server (`LANGSIGHT_URL`) or the local database.

mod commands;
mod discover;
mod output;
mod runtime;
mod setup;
mod source;

use clap::{Parser, Subcommand};
use langsight_server::config::{Config, Flags};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "langsight",
    version,
    about = "Runtime reliability for AI-agent toolchains",
    after_help = "Commands that read data (sessions, costs, scorecard, investigate, api-key) talk to the server at \
LANGSIGHT_URL with LANGSIGHT_API_KEY, or, without LANGSIGHT_URL, to the local database directly.\n\
Data goes to stdout (--json for machines), logs to stderr; colours only on a terminal (NO_COLOR turns them off)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server (embedded SQLite unless configured otherwise).
    Serve {
        /// Address to listen on [env: LANGSIGHT_HOST] [default: 127.0.0.1].
        #[arg(long)]
        host: Option<String>,
        /// Port to listen on; 0 picks a free one [env: LANGSIGHT_PORT] [default: 8000].
        #[arg(long)]
        port: Option<u16>,
        /// Path of a .langsight.yaml [env: LANGSIGHT_CONFIG_PATH].
        #[arg(long)]
        config: Option<PathBuf>,
        /// Worker processes sharing the port (more than 1 needs LANGSIGHT_REDIS_URL) [env: LANGSIGHT_WORKERS].
        #[arg(long)]
        workers: Option<usize>,
        /// trace, debug, info, warn, error or off [env: LANGSIGHT_LOG_LEVEL] [yaml: log_level] [default: info].
        #[arg(long)]
        log_level: Option<String>,
    },
    /// Check the MCP servers of the configuration once and print their health (exit 1 if any is not up).
    McpHealth {
        /// Path of a .langsight.yaml [env: LANGSIGHT_CONFIG_PATH].
        #[arg(long)]
        config: Option<PathBuf>,
        /// Check only this server.
        #[arg(long)]
        server: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Scan the configured MCP servers for security problems: OWASP MCP checks, poisoned tool descriptions and
    /// known vulnerabilities (OSV) of the package each server runs from. The scan runs through the server at
    /// LANGSIGHT_URL (its servers), else the local database, and is stored: the scorecard grades from it.
    ///
    /// Example: `langsight security-scan --ci` in a pipeline fails the job on any critical or high finding.
    SecurityScan {
        /// Path of a .langsight.yaml [env: LANGSIGHT_CONFIG_PATH].
        #[arg(long)]
        config: Option<PathBuf>,
        /// Scan only this server.
        #[arg(long)]
        server: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Exit 1 when any critical or high finding exists.
        #[arg(long)]
        ci: bool,
    },
    /// List agent sessions, or show one session's trace as a tree.
    ///
    /// Examples: langsight sessions --hours 6 --agent researcher
    ///           langsight sessions --id 4f1c…  (the span tree)
    ///           langsight sessions --json | jq '.[].session_id'
    Sessions {
        /// Path of a .langsight.yaml (for the local database).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Sessions active in the last N hours (1–720).
        #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=720))]
        hours: u32,
        /// Only sessions this agent took part in.
        #[arg(long)]
        agent: Option<String>,
        /// Only sessions with this health tag (success, tool_failure, timeout, …).
        #[arg(long)]
        health: Option<String>,
        /// At most this many sessions (1–1000).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Show this session's trace instead of the list.
        #[arg(long)]
        id: Option<String>,
        /// The project to read (a project-bound key reads its own without this).
        #[arg(long)]
        project: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// What the agents cost: token-priced LLM calls and call-priced tool calls, by tool and agent.
    ///
    /// Example: langsight costs --hours 168
    Costs {
        #[arg(long)]
        config: Option<PathBuf>,
        /// The last N hours (1–720).
        #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=720))]
        hours: u32,
        #[arg(long)]
        project: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// MCP server scorecards (availability, security, reliability, schema stability, performance).
    ///
    /// Example: langsight scorecard --fail-below B   (exit 1 when any server grades below B)
    Scorecard {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Only this server.
        #[arg(long)]
        server: Option<String>,
        /// Exit 1 when any grade is worse than this (A, B, C or D).
        #[arg(long)]
        fail_below: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Root-cause report for MCP servers from their recent health checks (an AI provider when configured).
    ///
    /// Example: langsight investigate postgres-mcp jira-mcp --window 6
    Investigate {
        /// The servers to investigate (1–10).
        #[arg(required = true)]
        servers: Vec<String>,
        #[arg(long)]
        config: Option<PathBuf>,
        /// Hours of history to look at (0.5–168).
        #[arg(long, default_value_t = 1.0)]
        window: f64,
        /// anthropic, openai, gemini or ollama (falls back to the rule-based report).
        #[arg(long, default_value = "anthropic")]
        provider: String,
        #[arg(long)]
        json: bool,
    },
    /// API keys.
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
    /// Zero-infra check of the configured MCP servers: health, tools, schema drift since the last scan and
    /// security findings, with no server running. Exit 1 when a server is down or a finding is critical.
    ///
    /// Example: langsight scan --config .langsight.yaml --json
    Scan {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script.
    ///
    /// Example: langsight completions bash > /etc/bash_completion.d/langsight
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Check the configured MCP servers continuously, printing the table after every round.
    Monitor {
        /// Path of a .langsight.yaml [env: LANGSIGHT_CONFIG_PATH].
        #[arg(long)]
        config: Option<PathBuf>,
        /// Seconds between rounds [env: LANGSIGHT_HEALTH_CHECK_INTERVAL_SECONDS] [default: 30].
        #[arg(long)]
        interval: Option<u64>,
        /// One round, then exit (with mcp-health's exit code).
        #[arg(long)]
        once: bool,
        /// Print each round as JSON (one array per round) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Find the MCP servers your clients already use (Claude, Cursor, VS Code, Windsurf, Gemini CLI, Kiro,
    /// Zed, Cline, ./.mcp.json) and write them to .langsight.yaml.
    ///
    /// Entries already in the file are kept as they are. Example: langsight init --yes
    Init {
        /// The file to write (merged into when it exists).
        #[arg(short, long, default_value = ".langsight.yaml")]
        output: PathBuf,
        /// Slack incoming-webhook URL for alerts.
        #[arg(long)]
        slack_webhook: Option<String>,
        /// Do not ask: include everything found.
        #[arg(short, long)]
        yes: bool,
        /// Do not test the connections after writing.
        #[arg(long)]
        skip_check: bool,
    },
    /// Add one MCP server to .langsight.yaml after testing the connection.
    ///
    /// Examples: langsight add files --command "npx -y @modelcontextprotocol/server-filesystem /tmp"
    ///           langsight add search --url https://mcp.example.com/mcp --header "Authorization=Bearer ${TOKEN}"
    Add {
        /// The server's name (its identity in health results and alerts).
        name: String,
        /// HTTP URL (Streamable HTTP; legacy SSE when the path ends in /sse).
        #[arg(long)]
        url: Option<String>,
        /// Command line of a stdio server (split like a shell would).
        #[arg(long)]
        command: Option<String>,
        /// Extra argument (repeatable).
        #[arg(long = "args", allow_hyphen_values = true)]
        args: Vec<String>,
        /// Environment variable KEY=VALUE for a stdio server (repeatable; ${VAR} is expanded at load).
        #[arg(long)]
        env: Vec<String>,
        /// HTTP header KEY=VALUE (repeatable).
        #[arg(long)]
        header: Vec<String>,
        /// The configuration file.
        #[arg(short, long, default_value = ".langsight.yaml")]
        config: PathBuf,
        /// Add without testing the connection.
        #[arg(long)]
        skip_check: bool,
        /// Overwrite an existing entry, and add even when the connection test fails.
        #[arg(short, long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Create an API key (stored hashed; printed once).
    ///
    /// Example: LANGSIGHT_URL=https://langsight.internal LANGSIGHT_API_KEY=… langsight api-key generate --name ci --role viewer
    Generate {
        #[arg(long)]
        config: Option<PathBuf>,
        /// A name to recognise the key by.
        #[arg(long, default_value = "cli")]
        name: String,
        /// admin or viewer.
        #[arg(long, default_value = "admin", value_parser = ["admin", "viewer"])]
        role: String,
        /// Bind the key to this project.
        #[arg(long)]
        project: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// Logs to stderr at `level`. `serve` passes its configuration's level (flag > env > yaml > default, validated
/// there); the other commands take `LANGSIGHT_LOG_LEVEL`, else `warn` (their output is the point) or `info`
/// (`monitor`), and fall back to `info` on a level they cannot read.
fn init_logging(level: &str) {
    let level = level.trim().to_ascii_lowercase();
    let filter = tracing_subscriber::EnvFilter::try_new(format!("{level},hyper=warn"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// mimalloc instead of glibc's allocator: ingest moves span batches between the request tasks and the SQLite
/// writer thread, and glibc spent a quarter of the writer's time in `malloc`/`free` and arena consolidation
/// (perf, BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` sets up logging once its configuration (which holds the level) is read.
    if !matches!(cli.command, Command::Serve { .. }) {
        let default = if matches!(cli.command, Command::Monitor { .. }) { "info" } else { "warn" };
        init_logging(&std::env::var("LANGSIGHT_LOG_LEVEL").unwrap_or_else(|_| default.into()));
    }
    langsight_server::install_tls();
    match cli.command {
        Command::Sessions { config, hours, agent, health, limit, id, project, json } => {
            commands::sessions(commands::SessionsArgs { config, hours, agent, health, limit, id, project, json })
        }
        Command::Costs { config, hours, project, json } => commands::costs(config, hours, project, json),
        Command::Scorecard { config, server, fail_below, json } => {
            commands::scorecard(config, server, fail_below, json)
        }
        Command::Investigate { servers, config, window, provider, json } => {
            commands::investigate(config, servers, window, provider, json)
        }
        Command::ApiKey(ApiKeyCommand::Generate { config, name, role, project, json }) => {
            commands::api_key(config, name, role, project, json)
        }
        Command::Scan { config, json } => commands::scan(config, json),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "langsight", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::McpHealth { config, server, json } => mcp_health(config, server, json),
        Command::SecurityScan { config, server, json, ci } => commands::security_scan(config, server, json, ci),
        Command::Init { output, slack_webhook, yes, skip_check } => {
            setup::init(setup::InitArgs { output, slack_webhook, yes, skip_check })
        }
        Command::Add { name, url, command, args, env, header, config, skip_check, yes } => {
            setup::add(setup::AddArgs { name, url, command, args, env, header, config, skip_check, yes })
        }
        Command::Monitor { config, interval, once, json } => {
            let every = interval
                .or_else(|| {
                    std::env::var("LANGSIGHT_HEALTH_CHECK_INTERVAL_SECONDS").ok().and_then(|v| v.trim().parse().ok())
                })
                .unwrap_or(30)
                .max(1);
            loop {
                let code = mcp_health(config.clone(), None, json);
                if once {
                    return code;
                }
                std::thread::sleep(std::time::Duration::from_secs(every));
            }
        }
        Command::Serve { host, port, config, workers, log_level } => {
            let config = match Config::load(Flags { host, port, config, workers, log_level, skip_config_file: false }) {
                Ok(c) => {
                    init_logging(&c.log_level);
                    c
                }
                Err(e) => {
                    init_logging("info");
                    return refuse(&e.to_string());
                }
            };
            let supervise = config.workers > 1 && config.worker_id.is_none();
            let runtime =
                match runtime::build(supervise.then_some(langsight_server::workers::SUPERVISOR_RUNTIME_THREADS)) {
                    Ok(rt) => rt,
                    Err(e) => return refuse(&e),
                };
            let run = async move {
                if supervise {
                    langsight_server::workers::supervise(config).await
                } else {
                    langsight_server::serve(config).await
                }
            };
            match runtime.block_on(run) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => refuse(&e.to_string()),
            }
        }
    }
}

fn mcp_health(config: Option<PathBuf>, server: Option<String>, json: bool) -> ExitCode {
    let config = match Config::load(Flags { config, ..Flags::default() }) {
        Ok(c) => c,
        Err(e) => return refuse(&e.to_string()),
    };
    let mut servers: Vec<_> = config.servers.iter().map(|s| s.spec.clone()).collect();
    if servers.is_empty() {
        eprintln!("No MCP servers configured.\nRun langsight init to get started.");
        return ExitCode::from(1);
    }
    if let Some(name) = &server {
        if !servers.iter().any(|s| &s.name == name) {
            let names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
            eprintln!("Server '{name}' not found in config.\nAvailable: {}", names.join(", "));
            return ExitCode::from(1);
        }
        servers.retain(|s| &s.name == name);
    }
    let runtime = match runtime::build(None) {
        Ok(rt) => rt,
        Err(e) => return refuse(&e),
    };
    let results = runtime.block_on(async {
        let tasks: Vec<_> =
            servers.into_iter().map(|s| tokio::spawn(async move { langsight_monitor::check(&s).await })).collect();
        let mut out = Vec::new();
        for t in tasks {
            if let Ok(r) = t.await {
                out.push(r);
            }
        }
        out
    });
    let checked_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    if json {
        let items: Vec<serde_json::Value> = results
            .iter()
            .map(|r| {
                serde_json::json!({
                    "server_name": r.server_name,
                    "status": r.status.as_str(),
                    "latency_ms": r.latency_ms,
                    "tools": r.tools.iter().map(|t| serde_json::json!({"name": t.name, "description": t.description, "input_schema": t.input_schema})).collect::<Vec<_>>(),
                    "tools_count": r.tools.len(),
                    "schema_hash": r.schema_hash,
                    "checked_at": checked_at,
                    "error": r.error,
                    "project_id": "",
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&items).unwrap_or_default());
    } else {
        println!("{}", output::paint(&format!("MCP Server Health  ({} servers)", results.len()), "1"));
        let mut t = output::Table::new(vec!["Server", "Status", "Latency", "Tools", "Schema", "Error"], 5);
        t.coloured = vec![1];
        for r in &results {
            let status = match r.status {
                langsight_monitor::Status::Up => "✓ up",
                langsight_monitor::Status::Degraded => "⚠ degraded",
                langsight_monitor::Status::Down => "✗ down",
            };
            let ok = r.status == langsight_monitor::Status::Up;
            t.row(vec![
                r.server_name.clone(),
                status.into(),
                r.latency_ms.map(|l| format!("{l:.0}ms")).unwrap_or_else(|| "—".into()),
                if ok { r.tools.len().to_string() } else { "—".into() },
                r.schema_hash.clone().unwrap_or_else(|| "—".into()),
                r.error.clone().unwrap_or_default(),
            ]);
        }
        print!("{}", t.render());
        let up = results.iter().filter(|r| r.status == langsight_monitor::Status::Up).count();
        println!("\n{up}/{} servers healthy", results.len());
    }
    if results.iter().all(|r| r.status == langsight_monitor::Status::Up) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn refuse(msg: &str) -> ExitCode {
    tracing::error!("startup refused: {msg}");
    eprintln!("langsight: {msg}");
    ExitCode::from(2)
}
