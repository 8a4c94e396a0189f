//! `live-bench`: the live view's cost and speed.
//!
//! 1. Latency: one SSE subscriber; 1-span batches are posted one at a time and each `span:new` frame is timed
//!    from sending the POST to the frame's arrival on the stream: ingest + durable commit + publish + fan-out
//!    + write (the event is published right after the commit, before the 202 goes out).
//! 2. Capacity: N idle subscribers held open against one worker; the server's RSS before and after gives
//!    the memory per subscriber.
//!
//! Starts the real `langsight` binary (next to this one) with a fresh database; `--redis` adds a private
//! redis-server so events go through the Redis stream.

use clap::Parser;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Parser)]
struct Args {
    /// Events to time.
    #[arg(long, default_value_t = 2000)]
    events: usize,
    /// Idle subscribers to hold open for the memory figure.
    #[arg(long, default_value_t = 10_000)]
    subscribers: usize,
    /// Put the event log in a private Redis.
    #[arg(long)]
    redis: bool,
    /// The langsight binary to start (default: next to this one).
    #[arg(long)]
    server_bin: Option<std::path::PathBuf>,
}

const KEY: &str = "live-bench-key";

struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let _ = c.wait();
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit on our own process with a valid struct.
    unsafe {
        let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted.get(((sorted.len().max(1) - 1) as f64 * p).round() as usize).copied().unwrap_or(0.0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    raise_fd_limit();
    let dir = std::env::temp_dir().join(format!("langsight-live-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut procs = Procs(Vec::new());
    let bin = match &args.server_bin {
        Some(bin) => bin.clone(),
        None => std::env::current_exe().map_err(|e| e.to_string())?.with_file_name("langsight"),
    };
    let mut cmd = Command::new(bin);
    cmd.args(["serve", "--port", "0"])
        .env("LANGSIGHT_SQLITE_PATH", dir.join("bench.db"))
        .env("LANGSIGHT_API_KEYS", KEY)
        .env("LANGSIGHT_RATE_LIMIT_ENABLED", "false")
        .env("LANGSIGHT_SSE_MAX_CLIENTS", (args.subscribers + 10).to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if args.redis {
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
        procs.0.push(
            Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .spawn()
                .map_err(|e| format!("redis-server: {e}"))?,
        );
        std::thread::sleep(Duration::from_millis(300));
        cmd.env("LANGSIGHT_REDIS_URL", format!("redis://127.0.0.1:{port}/0"));
    }
    let mut server = cmd.spawn().map_err(|e| format!("langsight: {e} (cargo build --release -p langsight-cli)"))?;
    let mut lines = BufReader::new(server.stderr.take().ok_or("stderr")?).lines();
    let addr = loop {
        let line = lines.next().ok_or("server exited")?.map_err(|e| e.to_string())?;
        if line.contains("api.listening") {
            break line.split("addr=").nth(1).and_then(|a| a.split_whitespace().next()).unwrap_or_default().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines.by_ref() {});
    let pid = server.id();
    procs.0.insert(0, server);
    let url = format!("http://{addr}");
    let http = reqwest::Client::new();

    // 1. Latency.
    let mut sub =
        http.get(format!("{url}/api/live/events")).header("X-API-Key", KEY).send().await.map_err(|e| e.to_string())?;
    let mut buf = String::new();
    let mut latencies = Vec::with_capacity(args.events);
    for i in 0..args.events {
        let now = chrono::Utc::now().to_rfc3339();
        let marker = format!("bench-{i}");
        let body = format!(
            r#"[{{"span_id":"{marker}","server_name":"s","tool_name":"t","status":"success","started_at":"{now}","ended_at":"{now}"}}]"#
        );
        let sent = Instant::now();
        let r = http
            .post(format!("{url}/api/traces/spans"))
            .header("X-API-Key", KEY)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status().as_u16() != 202 {
            return Err(format!("ingest answered {}", r.status()));
        }
        let needle = format!("\"span_id\":\"{marker}\"");
        while !buf.contains(&needle) {
            match tokio::time::timeout(Duration::from_secs(5), sub.chunk()).await {
                Ok(Ok(Some(c))) => buf.push_str(&String::from_utf8_lossy(&c)),
                _ => return Err(format!("event {i} never arrived")),
            }
        }
        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
        buf.clear();
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    println!(
        "live-bench: backend={} POST sent → event delivered over {} events: p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
        if args.redis { "redis" } else { "memory" },
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0)
    );
    drop(sub);

    // 2. Capacity: raw sockets, each sends the request and then just holds the stream open.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid);
    let started = Instant::now();
    let mut conns = Vec::with_capacity(args.subscribers);
    let request = format!("GET /api/live/events HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {KEY}\r\n\r\n");
    for i in 0..args.subscribers {
        let mut s = tokio::net::TcpStream::connect(&addr).await.map_err(|e| format!("subscriber {i}: {e}"))?;
        s.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut hello = [0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut hello))
            .await
            .map_err(|_| "no answer")?
            .map_err(|e| e.to_string())?;
        if !String::from_utf8_lossy(&hello[..n]).contains("200 OK") {
            return Err(format!("subscriber {i}: {}", String::from_utf8_lossy(&hello[..n])));
        }
        conns.push(s);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(pid);
    let per = (after.saturating_sub(before)) as f64 * 1024.0 / args.subscribers as f64;
    println!(
        "live-bench: {} subscribers open in {:.1} s; server RSS {:.1} MiB → {:.1} MiB: {:.1} KiB per subscriber",
        conns.len(),
        started.elapsed().as_secs_f64(),
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        per / 1024.0
    );
    // One event reaches all of them. Each socket gets a reader before the event is posted, which notes when the
    // event arrived on it: sockets are read as they become readable, not one after another after the fact.
    let readers: Vec<_> = conns
        .drain(..)
        .map(|mut s| {
            tokio::spawn(async move {
                let mut b = vec![0u8; 2048];
                let mut got = Vec::new();
                loop {
                    match tokio::time::timeout(Duration::from_secs(10), s.read(&mut b)).await {
                        Ok(Ok(n)) if n > 0 => got.extend_from_slice(&b[..n]),
                        _ => return (None, s),
                    }
                    if got.windows(6).any(|w| w == b"fanout") {
                        return (Some(Instant::now()), s);
                    }
                }
            })
        })
        .collect();
    let now = chrono::Utc::now().to_rfc3339();
    let t = Instant::now();
    http.post(format!("{url}/api/traces/spans"))
        .header("X-API-Key", KEY)
        .header("Content-Type", "application/json")
        .body(format!(r#"[{{"span_id":"fanout","server_name":"s","tool_name":"t","status":"success","started_at":"{now}","ended_at":"{now}"}}]"#))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let acknowledged = t.elapsed();
    let mut arrivals = Vec::with_capacity(readers.len());
    for r in readers {
        let (arrived, s) = r.await.map_err(|e| e.to_string())?;
        if let Some(at) = arrived {
            arrivals.push(at.duration_since(t).as_secs_f64() * 1000.0);
        }
        conns.push(s);
    }
    arrivals.sort_by(|a, b| a.total_cmp(b));
    println!(
        "live-bench: one event reached {}/{} subscribers: POST answered after {:.0} ms, first arrival {:.0} ms, \
         half {:.0} ms, last {:.0} ms",
        arrivals.len(),
        conns.len(),
        acknowledged.as_secs_f64() * 1000.0,
        arrivals.first().copied().unwrap_or(f64::NAN),
        arrivals.get(arrivals.len() / 2).copied().unwrap_or(f64::NAN),
        arrivals.last().copied().unwrap_or(f64::NAN),
    );
    drop(conns);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
