//! docs/redis.md's troubleshooting commands, run against a live deployment: two workers of the real binary on
//! a Sentinel-managed Redis, after spans were ingested. The commands are read from the doc's table, so the doc
//! cannot list a command that shows nothing on our deployments (the seed's `PUBSUB` checks did), and every
//! command needs an expectation here, so one cannot be added to the doc unchecked.

use std::path::Path;
use std::time::{Duration, Instant};
use test_support::process::ServerProcess;
use test_support::redis::RedisTopology;
use test_support::sse::SseStream;
use test_support::{agent_run, session_id};

const KEY: &str = "redis-doc-admin-key";
const WORKERS: usize = 2;

/// The `redis-cli …` code spans of the troubleshooting table's `check with` column, in table order.
fn documented_commands(doc: &str) -> Vec<String> {
    let section = doc
        .split("\n## Troubleshooting")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("docs/redis.md has a Troubleshooting section");
    let rows: Vec<Vec<&str>> = section
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| l.trim().trim_matches('|').split('|').map(str::trim).collect())
        .collect();
    let header = rows.first().expect("the troubleshooting table");
    let column = header.iter().position(|c| *c == "check with").expect("a 'check with' column");
    let mut out = Vec::new();
    for row in rows.iter().skip(2) {
        let cell = row.get(column).copied().unwrap_or_default();
        for (i, span) in cell.split('`').enumerate() {
            if i % 2 == 1 && span.starts_with("redis-cli ") && !out.contains(&span.to_string()) {
                out.push(span.to_string());
            }
        }
    }
    out
}

/// The arguments after `redis-cli`, single quotes removed as a shell would.
fn args_of(command: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut word, mut quoted, mut any) = (String::new(), false, false);
    for c in command.trim_start_matches("redis-cli").trim().chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any {
                    out.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(word);
    }
    out
}

/// What the command must answer on a deployment with `WORKERS` workers that ingested spans of `session`.
type Check = Box<dyn Fn(&str) -> Result<(), String>>;

fn expectations(primary_port: u16, session: String) -> Vec<(&'static str, Check)> {
    let int = |out: &str| out.trim().parse::<i64>().map_err(|_| format!("not an integer: {out:?}"));
    let yes = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_string()) };
    vec![
        ("redis-cli ping", Box::new(move |o: &str| yes(o.trim() == "PONG", "PONG"))),
        ("redis-cli acl whoami", Box::new(move |o: &str| yes(o.trim() == "default", "the user 'default'"))),
        (
            "redis-cli sentinel masters",
            Box::new(move |o: &str| {
                yes(o.contains("mymaster") && o.contains(&primary_port.to_string()), "mymaster at the primary's port")
            }),
        ),
        (
            "redis-cli sentinel get-master-addr-by-name mymaster",
            Box::new(move |o: &str| yes(o.lines().nth(1) == Some(&primary_port.to_string()), "the primary's port")),
        ),
        (
            "redis-cli info commandstats",
            Box::new(move |o: &str| {
                yes(
                    o.contains("cmdstat_xread:") && o.contains("cmdstat_evalsha:") && o.contains("usec_per_call="),
                    "timings of xread and evalsha",
                )
            }),
        ),
        (
            "redis-cli client list",
            Box::new(move |o: &str| {
                // One live-view client is open (on one worker): that worker reads the log, the others rest.
                let readers = o.lines().filter(|l| l.contains(" cmd=xread ")).count();
                let resting = o.lines().filter(|l| l.contains(" cmd=xrevrange ")).count();
                yes(
                    readers == 1 && resting == WORKERS - 1,
                    &format!("one cmd=xread client (the worker with the live-view client) and {} resting, found {readers} and {resting}", WORKERS - 1),
                )
            }),
        ),
        (
            "redis-cli xinfo stream langsight:events:admin",
            Box::new(move |o: &str| {
                let lines: Vec<&str> = o.lines().collect();
                let length = lines.iter().position(|l| *l == "length").and_then(|i| lines.get(i + 1));
                yes(
                    length.and_then(|n| n.parse::<u64>().ok()).is_some_and(|n| n > 0) && o.contains("last-entry"),
                    "a stream with entries and a last entry",
                )
            }),
        ),
        ("redis-cli xlen langsight:events:admin", Box::new(move |o: &str| yes(int(o)? > 0, "entries"))),
        (
            "redis-cli xrevrange langsight:events:admin + - count 1",
            Box::new(move |o: &str| {
                yes(o.contains(&session) && o.contains("span:new"), "the newest entry holds the last ingested spans")
            }),
        ),
        (
            "redis-cli --scan --pattern 'langsight:rl:*'",
            Box::new(move |o: &str| {
                yes(
                    o.lines().all(|l| l.starts_with("langsight:rl:")) && o.contains("/api/traces/spans"),
                    "the ingest route's bucket",
                )
            }),
        ),
        ("redis-cli get langsight:leader:monitor", Box::new(move |o: &str| yes(!o.trim().is_empty(), "a holder"))),
        ("redis-cli pttl langsight:leader:monitor", Box::new(move |o: &str| yes(int(o)? > 0, "a running lease"))),
        (
            "redis-cli info clients",
            Box::new(move |o: &str| {
                let n = o.lines().find_map(|l| l.strip_prefix("connected_clients:")).map(str::trim).map(int);
                yes(matches!(n, Some(Ok(n)) if n > 2 * WORKERS as i64), "connected_clients beyond 2 per worker")
            }),
        ),
        ("redis-cli info memory", Box::new(move |o: &str| yes(o.contains("used_memory_human:"), "used_memory_human"))),
        (
            "redis-cli --scan --pattern 'langsight:*'",
            Box::new(move |o: &str| {
                yes(
                    o.lines().any(|l| l == "langsight:events:admin")
                        && o.lines().any(|l| l == "langsight:leader:monitor"),
                    "the stream and the lease",
                )
            }),
        ),
    ]
}

async fn ingest(url: &str, session: &str) {
    let r = test_support::http()
        .post(format!("{url}/api/traces/spans"))
        .header("X-API-Key", KEY)
        .json(&agent_run(session, 5, None))
        .send()
        .await
        .expect("ingest answers");
    assert_eq!(r.status(), 202, "{:?}", r.text().await);
}

/// Runs a documented command (sentinel commands against a sentinel) until its expectation holds, for at most
/// 15 s: the workers' reader and the leader's lease appear shortly after start-up.
fn check(redis: &RedisTopology, command: &str, expect: &Check) -> Result<String, String> {
    let args = args_of(command);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = if refs.first() == Some(&"sentinel") { redis.sentinel_cli(&refs) } else { redis.cli(&refs) };
        let verdict = match &out {
            Some(o) => expect(o),
            None => Err("redis-cli failed".into()),
        };
        match verdict {
            Ok(()) => return Ok(out.unwrap_or_default()),
            Err(e) if Instant::now() > deadline => return Err(format!("`{command}`: expected {e}; got {out:?}")),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_doc_commands_answer_on_a_live_deployment() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/redis.md"))
        .expect("docs/redis.md");
    let commands = documented_commands(&doc);
    assert!(commands.len() >= 10, "the troubleshooting table lists its checks: {commands:?}");

    let redis = tokio::task::spawn_blocking(RedisTopology::sentinel).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (d, url) = (dir.path().to_path_buf(), redis.url.clone());
    let server = tokio::task::spawn_blocking(move || {
        ServerProcess::start(
            Path::new(env!("CARGO_BIN_EXE_langsight")),
            &d,
            WORKERS,
            &[("LANGSIGHT_API_KEYS", KEY), ("LANGSIGHT_REDIS_URL", &url)],
            &[],
        )
    })
    .await
    .unwrap();
    // A live-view client on one worker: that worker follows the event log.
    let mut live = SseStream::connect(&format!("{}/api/live/events", server.url), Some(KEY), None).await;
    let first = session_id();
    ingest(&server.url, &first).await;
    let session = session_id();
    ingest(&server.url, &session).await;

    let expected = expectations(redis.ports[0], session.clone());
    let mut failures = Vec::new();
    for command in &commands {
        match expected.iter().find(|(c, _)| c == command) {
            None => failures.push(format!("`{command}` is documented but has no expectation in this test")),
            Some((_, expect)) => {
                if let Err(e) = check(&redis, command, expect) {
                    failures.push(e);
                }
            }
        }
    }
    for (c, _) in &expected {
        if !commands.iter().any(|d| d == c) {
            failures.push(format!("`{c}` is expected here but no longer documented"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}\n--- server log ---\n{}", server.log_text());

    // "grows with every ingest request", as the table says.
    let len = |r: &RedisTopology| r.cli(&["xlen", "langsight:events:admin"]).and_then(|o| o.trim().parse::<u64>().ok());
    let before = len(&redis).expect("xlen");
    ingest(&server.url, &session_id()).await;
    assert_eq!(len(&redis), Some(before + 1), "one stream entry per ingest request");
    // The live-view client, on whichever worker it reached, got the events of what was ingested after it connected.
    assert_eq!(live.status, 200);
    let frames = live
        .read_until(Duration::from_secs(10), |f| {
            f.iter().any(|x| x.data.as_deref().is_some_and(|d| d.contains(&first)))
        })
        .await;
    assert!(frames.iter().any(|x| x.event.as_deref() == Some("span:new")), "{frames:?}");

    // And the seed's checks do show nothing, as the doc says.
    assert_eq!(redis.cli(&["pubsub", "channels", "langsight:*"]).map(|o| o.trim().to_string()), Some(String::new()));
    let numsub = redis.cli(&["pubsub", "numsub", "langsight:events:admin"]).unwrap_or_default();
    assert_eq!(numsub.lines().nth(1), Some("0"), "{numsub}");
}
