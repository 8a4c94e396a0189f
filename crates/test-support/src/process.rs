//! The compiled `langsight` binary as a child process: started with a clean environment in a private
//! directory, on a free port, and stopped gracefully (SIGTERM, then SIGKILL after 45 s) when dropped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct ServerProcess {
    child: Child,
    pub url: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    /// `bin serve --port 0 [--workers N] extra_args…` in `dir` (HOME and the SQLite file live there), with only
    /// PATH and `envs` in the environment. Returns once it listens (for N > 1: once the supervisor reports all
    /// workers ready).
    pub fn start(bin: &Path, dir: &Path, workers: usize, envs: &[(&str, &str)], extra_args: &[&str]) -> ServerProcess {
        let mut cmd = Command::new(bin);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", dir)
            .env("LANGSIGHT_SQLITE_PATH", dir.join("langsight.db"))
            .current_dir(dir)
            .args(["serve", "--port", "0", "--workers", &workers.to_string()])
            .args(extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the langsight binary starts");
        let mut lines = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
        let needle = if workers > 1 { "workers=" } else { "addr=" };
        let mut early = Vec::new();
        let addr = loop {
            let line = lines.next().expect("the server logs until it listens").expect("readable log");
            early.push(line.clone());
            if line.contains("api.listening") && line.contains(needle) {
                break line
                    .split("addr=")
                    .nth(1)
                    .and_then(|a| a.split_whitespace().next())
                    .unwrap_or_default()
                    .to_string();
            }
        };
        let log = Arc::new(Mutex::new(early));
        let sink = log.clone();
        // Keep the log (tests assert on it) and keep the pipe drained so the server never blocks on it.
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(mut l) = sink.lock() {
                    l.push(line);
                }
            }
        });
        ServerProcess { child, url: format!("http://{addr}"), log }
    }

    /// The process id (for reading its memory in /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server (and its workers) logged so far.
    pub fn log_text(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// Waits until a logged line contains `needle` (the log reaches us through a pipe and a reader thread, so
    /// a line written before a response can arrive after it). Panics after `within`, showing the log.
    pub fn wait_for_log(&self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.log.lock().map(|l| l.iter().any(|line| line.contains(needle))).unwrap_or(false) {
            assert!(Instant::now() < deadline, "the server never logged {needle:?}:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops it gracefully and waits; the log stays readable.
    pub fn stop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(45);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                // Let the log reader catch the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}
