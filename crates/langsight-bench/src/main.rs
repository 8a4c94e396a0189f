//! `ingest-bench`: drives `POST /api/traces/spans` over loopback the way a fleet of agents does — 30-span
//! batches shaped like an agent run, each with a fresh session id — at a fixed concurrency for a fixed time,
//! then reports spans/s, latency percentiles and the server's memory.
//!
//! By default it starts the real `langsight` binary (next to this one) on a free port with a fresh SQLite
//! file, so the figures include durable storage. `--url` and `--pid` point it at a server already running.

use clap::Parser;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Ingest benchmark for the LangSight server")]
struct Args {
    /// Concurrent requests in flight.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Spans per request.
    #[arg(long, default_value_t = 30)]
    batch: usize,
    /// Benchmark a running server instead of starting one.
    #[arg(long)]
    url: Option<String>,
    /// PID of that server, for memory figures.
    #[arg(long)]
    pid: Option<u32>,
    /// API key for `--url` (a started server gets its own).
    #[arg(long, default_value = "bench-key")]
    key: String,
    /// The langsight binary to start (default: next to this one).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Drive `GET PATH` instead of ingest (e.g. /api/status to measure per-request overhead).
    #[arg(long)]
    get: Option<String>,
    /// Worker processes of the started server (more than 1 starts a private Redis too).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Start a private redis-server and point the started server at it.
    #[arg(long)]
    redis: bool,
    /// Write the started server's log lines to this file (else they are discarded).
    #[arg(long)]
    server_log: Option<PathBuf>,
    /// Batches each session receives, one after another from the same client (an SDK flushing a run in parts);
    /// 1 = a fresh session per request.
    #[arg(long, default_value_t = 1)]
    batches_per_session: usize,
    /// With `--url`: send `KEY-0000`, `KEY-0001`, … (one per in-flight request, as a started server is given)
    /// instead of `KEY` alone, so a per-key rate limit is not what is measured.
    #[arg(long)]
    numbered_keys: bool,
    /// Extra environment for the started server, KEY=VALUE (repeatable).
    #[arg(long = "server-env")]
    server_env: Vec<String>,
}

/// Requests at least this slow are listed with the moment they were sent, so a stall shared by every request in
/// flight (one cause on the server) can be told from scattered slow requests (the machine).
const SLOW: Duration = Duration::from_millis(250);

const PLACEHOLDER: &str = "SESSIONIDSESSIONIDSESSIONID00000";
/// Stands for a moment `N` ms into the run in the template (`TIMESTAMP+000360ms`); each request renders it from
/// the clock, as an SDK stamps its spans. A template whose times were fixed once sent every batch the same 30
/// timestamps, so each time index took every session's entries at the same 30 keys — random inserts across the
/// index instead of appends at its end (about 40 % of the WAL written, measured), which real traffic never does.
const TIME_MARK: &str = "TIMESTAMP+";

/// A body with its session id and timestamps left open, cut once so each request only fills them in.
struct Template {
    pieces: Vec<Piece>,
    /// The run's length in ms: a request's first span starts this long before the moment it is sent.
    span_ms: i64,
    len: usize,
}

enum Piece {
    Text(String),
    Session,
    /// The start of a span id: the session id and the batch's number in its session.
    SpanPrefix,
    Time(i64),
}

/// Stands for the start of each span id in the template, so the batches of one session carry distinct span ids.
const SPAN_MARK: &str = "SPANIDPREFIX";

impl Template {
    fn new(text: &str, span_ms: i64) -> Template {
        let mut pieces = Vec::new();
        let mut rest = text;
        loop {
            let next = [PLACEHOLDER, SPAN_MARK, TIME_MARK]
                .into_iter()
                .filter_map(|mark| rest.find(mark).map(|at| (at, mark)))
                .min_by_key(|(at, _)| *at);
            let Some((at, mark)) = next else { break };
            pieces.push(Piece::Text(rest[..at].to_string()));
            rest = &rest[at + mark.len()..];
            if mark == TIME_MARK {
                let end = rest.find("ms").unwrap_or(0);
                pieces.push(Piece::Time(rest[..end].parse().unwrap_or(0)));
                rest = &rest[end + 2..];
            } else if mark == SPAN_MARK {
                pieces.push(Piece::SpanPrefix);
            } else {
                pieces.push(Piece::Session);
            }
        }
        pieces.push(Piece::Text(rest.to_string()));
        Template { pieces, span_ms, len: text.len() }
    }

    /// The body of one request, batch `batch` (from 0) of session `session`: its spans stamped as if the run
    /// just ended.
    fn render(&self, session: &str, batch: usize) -> String {
        let start = chrono::Utc::now() - chrono::Duration::milliseconds(self.span_ms);
        let mut out = String::with_capacity(self.len + 64);
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Session => out.push_str(session),
                Piece::SpanPrefix => {
                    out.push_str(session);
                    out.push_str("-b");
                    out.push_str(&batch.to_string());
                }
                Piece::Time(ms) => out.push_str(&(start + chrono::Duration::milliseconds(*ms)).to_rfc3339()),
            }
        }
        out
    }
}

/// A CrewAI-shaped agent run: a session span, tool calls with arguments and results, LLM calls with tokens.
fn batch_template(n: usize) -> Template {
    let at = |ms: i64| format!("{TIME_MARK}{ms:06}ms");
    let mut spans = vec![json!({
        "span_id": format!("{SPAN_MARK}-0"), "span_type": "agent", "session_id": PLACEHOLDER,
        "trace_id": PLACEHOLDER, "server_name": "crewai", "tool_name": "session", "agent_name": "research-crew",
        "started_at": at(0), "ended_at": at(n as i64 * 120), "status": "success", "latency_ms": null,
        "llm_input": "Research the latest release notes of the project and summarise breaking changes.",
        "schema_version": "1.0", "lineage_provenance": "explicit", "lineage_status": "complete",
    })];
    for i in 1..n {
        let llm = i % 5 == 0;
        let failed = i % 11 == 0;
        spans.push(json!({
            "span_id": format!("{SPAN_MARK}-{i}"), "parent_span_id": format!("{SPAN_MARK}-0"),
            "span_type": if llm { "agent" } else { "tool_call" }, "session_id": PLACEHOLDER, "trace_id": PLACEHOLDER,
            "server_name": if llm { "anthropic" } else if i % 2 == 0 { "github" } else { "filesystem" },
            "tool_name": if llm { "generate/claude-sonnet-4" } else if i % 2 == 0 { "search_issues" } else { "read_file" },
            "agent_name": if i < n / 2 { "researcher" } else { "writer" },
            "started_at": at(i as i64 * 120), "ended_at": at(i as i64 * 120 + 95),
            "latency_ms": null, "status": if failed { "error" } else { "success" },
            "error": if failed { json!("MCP error -32603: upstream rate limit, retry later") } else { Value::Null },
            "input_args": {"query": "release notes breaking changes", "page": i},
            "output_result": "Found 12 matching items: #4411 Deprecate v1 client, #4420 Remove legacy auth, #4432 ...",
            "model_id": if llm { json!("claude-sonnet-4") } else { Value::Null },
            "input_tokens": if llm { json!(1800) } else { Value::Null },
            "output_tokens": if llm { json!(420) } else { Value::Null },
            "finish_reason": if llm { json!("end_turn") } else { Value::Null },
            "replay_of": null, "project_id": null, "target_agent_name": null, "cache_read_tokens": null,
            "cache_creation_tokens": null, "thinking_tokens": null, "llm_input": null, "llm_output": null,
            "schema_version": "1.0", "lineage_provenance": "explicit", "lineage_status": "complete",
        }));
    }
    Template::new(&serde_json::to_string(&spans).unwrap_or_default(), n as i64 * 120)
}

/// CPU ticks per thread name of a process, to show which thread limits throughput.
fn thread_ticks(pid: u32) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    for pid in family(pid) {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { continue };
        for t in tasks.flatten() {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default().trim().to_string();
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            let ticks = stat.rsplit_once(')').map(|(_, rest)| {
                let f: Vec<&str> = rest.split_whitespace().collect();
                f.get(11).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
                    + f.get(12).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
            });
            *out.entry(comm).or_insert(0) += ticks.unwrap_or(0);
        }
    }
    out
}

/// The process and its direct children (the workers of a supervisor).
fn family(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(child) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(pid) {
                out.push(child);
            }
        }
    }
    out
}

fn rss_kib(pid: u32) -> Option<u64> {
    family(pid).into_iter().map(rss_one).sum()
}

fn rss_one(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    family(pid).into_iter().map(cpu_one).sum()
}

fn cpu_one(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

struct Started {
    child: Child,
    url: String,
    redis: Option<Child>,
    _dir: tempfile_dir::Dir,
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
        if let Some(r) = &mut self.redis {
            let _ = r.kill();
            let _ = r.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(16379)
}

/// A temporary directory without pulling a crate in for it.
mod tempfile_dir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> std::io::Result<Dir> {
            let p = std::env::temp_dir().join(format!("langsight-bench-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&p)?;
            Ok(Dir(p))
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn start_server(bin: PathBuf, keys: &str, args: &Args) -> Result<Started, String> {
    use std::io::{BufRead, BufReader};
    let dir = tempfile_dir::Dir::new().map_err(|e| format!("temp dir: {e}"))?;
    let mut redis = None;
    let mut cmd = Command::new(&bin);
    cmd.args(["serve", "--port", "0", "--workers", &args.workers.to_string()])
        .env("LANGSIGHT_SQLITE_PATH", dir.0.join("bench.db"))
        .env("LANGSIGHT_API_KEYS", keys)
        .env("LANGSIGHT_LOG_LEVEL", "info");
    if args.redis || args.workers > 1 {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start redis-server: {e}"))?;
        redis = Some(child);
        std::thread::sleep(Duration::from_millis(300));
        cmd.env("LANGSIGHT_REDIS_URL", format!("redis://127.0.0.1:{port}/0"));
    }
    for kv in &args.server_env {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    let needle = if args.workers > 1 { "workers=" } else { "addr=" };
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().map_err(|e| {
        format!("cannot start {}: {e} (build it: cargo build --release -p langsight-cli)", bin.display())
    })?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().ok_or("server exited before listening")?.map_err(|e| e.to_string())?;
        if line.contains("api.listening") && line.contains(needle) {
            if let Some(a) = line.split("addr=").nth(1) {
                break a.split_whitespace().next().unwrap_or_default().to_string();
            }
        }
    };
    let mut log = args.server_log.as_ref().and_then(|p| std::fs::File::create(p).ok());
    std::thread::spawn(move || {
        for line in lines.by_ref().map_while(Result::ok) {
            if let Some(f) = log.as_mut() {
                use std::io::Write;
                let _ = writeln!(f, "{line}");
            }
        }
    });
    Ok(Started { child, url: format!("http://{addr}"), redis, _dir: dir })
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn main() -> Result<(), String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    // One key per in-flight request, as many agents would have: per-key limits are then not the bottleneck.
    let keys: Vec<String> = (0..args.concurrency).map(|i| format!("{}-{i:04}", args.key)).collect();
    let keys = Arc::new(keys);
    let mut started = None;
    let (url, pid) = match &args.url {
        Some(u) => (u.trim_end_matches('/').to_string(), args.pid),
        None => {
            let bin = args.server_bin.clone().unwrap_or_else(|| {
                std::env::current_exe().ok().and_then(|p| p.parent().map(|d| d.join("langsight"))).unwrap_or_default()
            });
            let s = start_server(bin, &keys.join(","), &args)?;
            let (u, p) = (s.url.clone(), s.child.id());
            started = Some(s);
            (u, Some(p))
        }
    };
    // The client gets one core's worth of threads; the server has the machine otherwise.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(1500));
    let idle_rss = pid.and_then(rss_kib);
    let template = Arc::new(batch_template(args.batch));
    let client =
        reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build().map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let errors = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicU64::new(idle_rss.unwrap_or(0)));
    let cpu_before = pid.and_then(cpu_ticks);
    let threads_before = pid.map(thread_ticks).unwrap_or_default();
    let own_before = cpu_one(std::process::id());
    let began = Instant::now();
    let (latencies, mut slow): (Vec<u32>, Vec<(u64, u64)>) = rt.block_on(async {
        if let Some(pid) = pid {
            let peak = peak.clone();
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    if let Some(r) = rss_kib(pid) {
                        peak.fetch_max(r, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            });
        }
        let mut tasks = Vec::new();
        for i in 0..args.concurrency {
            let key = if args.url.is_some() && !args.numbered_keys { args.key.clone() } else { keys[i].clone() };
            let get = args.get.clone();
            let batches = args.batches_per_session.max(1);
            let (client, url, template, errors) = (client.clone(), url.clone(), template.clone(), errors.clone());
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::with_capacity(4096);
                let mut slow = Vec::new();
                let (mut sid, mut batch) = (String::new(), 0);
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let r = match &get {
                        Some(path) => client.get(format!("{url}{path}")).header("X-API-Key", &key).send().await,
                        None => {
                            if sid.is_empty() || batch == batches {
                                (sid, batch) = (uuid::Uuid::new_v4().simple().to_string(), 0);
                            }
                            let body = template.render(&sid, batch);
                            batch += 1;
                            client
                                .post(format!("{url}/api/traces/spans"))
                                .header("X-API-Key", &key)
                                .header("Content-Type", "application/json")
                                .body(body)
                                .send()
                                .await
                        }
                    };
                    match r {
                        Ok(resp) if resp.status().is_success() => {
                            let _ = resp.bytes().await;
                            let took = t.elapsed();
                            if took >= SLOW {
                                slow.push((t.duration_since(began).as_millis() as u64, took.as_millis() as u64));
                            }
                            lat.push(took.as_micros().min(u32::MAX as u128) as u32);
                        }
                        Ok(resp) => {
                            if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                                eprintln!("unexpected status {}", resp.status());
                            }
                        }
                        Err(e) => {
                            if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                                eprintln!("request failed: {e}");
                            }
                        }
                    }
                }
                (lat, slow)
            }));
        }
        let (mut all, mut slow) = (Vec::new(), Vec::new());
        for t in tasks {
            if let Ok((mut l, mut s)) = t.await {
                all.append(&mut l);
                slow.append(&mut s);
            }
        }
        (all, slow)
    });
    let elapsed = began.elapsed().as_secs_f64();
    let cpu = match (cpu_before, pid.and_then(cpu_ticks)) {
        (Some(a), Some(b)) => Some((b - a) as f64 / 100.0 / elapsed * 100.0),
        _ => None,
    };
    let after_rss = pid.and_then(rss_kib);
    let threads_after = pid.map(thread_ticks).unwrap_or_default();
    let own = match (own_before, cpu_one(std::process::id())) {
        (Some(a), Some(b)) => format!("{:.0}%", (b - a) as f64 / 100.0 / elapsed * 100.0),
        _ => "n/a".into(),
    };
    let per_thread: Vec<String> = threads_after
        .iter()
        .map(|(name, t)| (name, t - threads_before.get(name).copied().unwrap_or(0)))
        .filter(|(_, d)| *d > 0)
        .map(|(name, d)| format!("{name} {:.0}%", d as f64 / 100.0 / elapsed * 100.0))
        .collect();
    let mut sorted = latencies;
    sorted.sort_unstable();
    let requests = sorted.len();
    let spans = if args.get.is_some() { 0 } else { requests * args.batch };
    let mib = |k: Option<u64>| k.map(|k| format!("{:.1}", k as f64 / 1024.0)).unwrap_or_else(|| "n/a".into());
    let redis = args.redis || args.workers > 1;
    match &args.get {
        Some(path) => println!(
            "ingest-bench: GET {path} concurrency={} duration={}s workers={} redis={redis}",
            args.concurrency, args.duration, args.workers
        ),
        None => println!(
            "ingest-bench: POST spans concurrency={} duration={}s batch={} spans ({} bytes/request), {} per session, workers={} redis={redis}",
            args.concurrency,
            args.duration,
            args.batch,
            template.render(&"0".repeat(32), 0).len(),
            args.batches_per_session.max(1),
            args.workers
        ),
    }
    println!(
        "requests accepted: {requests} ({:.0}/s), errors: {}",
        requests as f64 / elapsed,
        errors.load(Ordering::Relaxed)
    );
    println!("spans/s durably stored: {:.0}", spans as f64 / elapsed);
    println!(
        "latency ms: p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}",
        percentile(&sorted, 0.50),
        percentile(&sorted, 0.95),
        percentile(&sorted, 0.99),
        percentile(&sorted, 1.0)
    );
    if !slow.is_empty() {
        // Grouped by the 100 ms in which they were sent: "at 7.3 s: 41 (max 612 ms)".
        slow.sort_unstable();
        let mut groups: Vec<(u64, usize, u64)> = Vec::new();
        for (at, took) in slow {
            match groups.last_mut() {
                Some((start, n, max)) if at / 100 == *start / 100 => {
                    *n += 1;
                    *max = (*max).max(took);
                }
                _ => groups.push((at, 1, took)),
            }
        }
        let shown: Vec<String> =
            groups.iter().map(|(at, n, max)| format!("at {:.1} s: {n} (max {max} ms)", *at as f64 / 1000.0)).collect();
        println!("requests over {} ms, by when they were sent: {}", SLOW.as_millis(), shown.join(", "));
    }
    println!(
        "server RSS MiB: idle {}  peak {}  after {}   server CPU: {}",
        mib(idle_rss),
        mib(Some(peak.load(Ordering::Relaxed)).filter(|p| *p > 0)),
        mib(after_rss),
        cpu.map(|c| format!("{c:.0}% of one core")).unwrap_or_else(|| "n/a".into())
    );
    println!("server CPU by thread: {}   bench client CPU: {own}", per_thread.join(", "));
    drop(started.take());
    if errors.load(Ordering::Relaxed) > 0 {
        return Err("some requests failed; figures above count only accepted ones".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every placeholder is filled: the body is the SDK's JSON, one session id throughout, and the spans carry
    /// the clock's time at render (a template stamped once would send the same times in every request).
    #[test]
    fn each_request_gets_its_own_session_and_the_current_time() {
        let template = batch_template(30);
        let before = chrono::Utc::now();
        let body = template.render("abc123", 0);
        let after = chrono::Utc::now();
        let unfilled = [PLACEHOLDER, SPAN_MARK, TIME_MARK].iter().any(|m| body.contains(m));
        assert!(!unfilled, "unfilled placeholder in {body}");
        let spans: Vec<Value> = serde_json::from_str(&body).expect("the body is JSON");
        assert_eq!(spans.len(), 30);
        let at = |s: &Value, f: &str| {
            chrono::DateTime::parse_from_rfc3339(s[f].as_str().expect("a timestamp")).expect("RFC 3339")
        };
        for s in &spans {
            assert_eq!(s["session_id"], "abc123");
            let (start, end) = (at(s, "started_at"), at(s, "ended_at"));
            assert!(start <= end && end <= after, "{start} .. {end} after {after}");
            assert!(start >= before - chrono::Duration::milliseconds(30 * 120), "{start} is older than the run");
        }
        std::thread::sleep(Duration::from_millis(5));
        let later: Vec<Value> = serde_json::from_str(&template.render("abc123", 1)).expect("JSON");
        assert!(at(&later[0], "started_at") > at(&spans[0], "started_at"), "the second request has the same times");
        assert_eq!(later[0]["session_id"], "abc123");
        assert_ne!(later[0]["span_id"], spans[0]["span_id"], "a session's second batch reuses its span ids");
        assert_eq!(later[1]["parent_span_id"], later[0]["span_id"], "a batch's spans hang under its own root");
    }
}
