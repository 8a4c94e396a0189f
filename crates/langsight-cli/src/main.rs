//! `langsight`: the command line. `serve` runs the API server; further commands arrive with the CLI issue.

use clap::{Parser, Subcommand};
use langsight_server::config::{Config, Flags};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "langsight", version, about = "Runtime reliability for AI-agent toolchains")]
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
    },
}

fn init_logging() {
    let level = std::env::var("LANGSIGHT_LOG_LEVEL").unwrap_or_else(|_| "info".into()).to_ascii_lowercase();
    let filter = tracing_subscriber::EnvFilter::try_new(format!("{level},hyper=warn"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Serve { host, port, config, workers } => {
            let config = match Config::load(Flags { host, port, config, workers, skip_config_file: false }) {
                Ok(c) => c,
                Err(e) => return refuse(&e.to_string()),
            };
            let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => return refuse(&format!("cannot start the async runtime: {e}")),
            };
            let supervise = config.workers > 1 && config.worker_id.is_none();
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

fn refuse(msg: &str) -> ExitCode {
    tracing::error!("startup refused: {msg}");
    eprintln!("langsight: {msg}");
    ExitCode::from(2)
}
