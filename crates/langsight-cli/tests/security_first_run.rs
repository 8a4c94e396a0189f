//! Attacks on first-run setup (`POST /api/setup/admin`) against the real binary, over raw HTTP/1.1 so the
//! `Host`, `Origin` and forwarding headers are exactly what an attacker sends:
//!
//! - a request addressed to a non-local name (DNS rebinding), forwarded by a proxy on this host, sent from a
//!   foreign `Origin`, or arriving from a non-loopback peer cannot create the first admin without the token;
//! - a wrong or truncated token does not work; the real one works once, and a weak password does not spend it;
//! - once any admin exists the route answers 409 to everyone, token or not;
//! - concurrent calls create exactly one admin;
//! - the route is rate limited like login.

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;
use test_support::process::ServerProcess;

const PASSWORD: &str = "first admin passphrase";
const REBIND: &str = "rebind.attacker.example";

fn start(dir: &Path, envs: &[(&str, &str)]) -> ServerProcess {
    ServerProcess::start(Path::new(env!("CARGO_BIN_EXE_langsight")), dir, 1, envs, &[])
}

/// Attack tests make more calls than the login budget allows; the budget has its own test.
const GENEROUS: [(&str, &str); 1] = [("LANGSIGHT_RATE_LIMIT_LOGIN", "1000/minute")];

struct Answer {
    status: u16,
    head: String,
    body: Value,
}

/// One request on its own connection to `addr`, with `Host: {host}` and `headers` sent verbatim.
fn raw_to(addr: &str, method: &str, path: &str, host: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut sock = TcpStream::connect(addr).expect("the server accepts connections");
    sock.set_read_timeout(Some(Duration::from_secs(30))).expect("a read timeout can be set");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    sock.write_all(req.as_bytes()).expect("the request is sent");
    let mut out = Vec::new();
    sock.read_to_end(&mut out).expect("the answer is read");
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Answer { status, head: head.to_ascii_lowercase(), body: serde_json::from_str(rest).unwrap_or(Value::Null) }
}

fn addr(server: &ServerProcess) -> String {
    server.url.trim_start_matches("http://").to_string()
}

fn port(server: &ServerProcess) -> String {
    server.url.rsplit(':').next().unwrap_or_default().to_string()
}

/// `POST /api/setup/admin` as JSON from this machine's loopback, addressed to `host`.
fn create(server: &ServerProcess, host: &str, extra: &[(&str, &str)], body: &Value) -> Answer {
    let mut headers = vec![("Content-Type", "application/json")];
    headers.extend_from_slice(extra);
    raw_to(&addr(server), "POST", "/api/setup/admin", host, &headers, &body.to_string())
}

/// The one-time token from the start-up log (the line also names the dashboard URL).
fn logged_token(server: &ServerProcess) -> String {
    let log = server.log_text();
    let line = log.lines().find(|l| l.contains("setup.first_run")).expect("the start-up log announces first run");
    assert!(line.contains(&format!("{}/", server.url)), "the line names the dashboard URL: {line}");
    let token = line.split("setup token: ").nth(1).expect("the token is in the line");
    token.chars().take_while(|c| c.is_ascii_hexdigit()).collect()
}

fn login(server: &ServerProcess, host: &str, email: &str, password: &str) -> Answer {
    let body = json!({"email": email, "password": password}).to_string();
    raw_to(&addr(server), "POST", "/api/auth/login", host, &[("Content-Type", "application/json")], &body)
}

#[test]
fn the_first_admin_needs_a_local_browser_or_the_token_and_then_never_again() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = start(dir.path(), &GENEROUS);
    let port = port(&server);
    let local = format!("localhost:{port}");
    let rebind = format!("{REBIND}:{port}");
    let token = logged_token(&server);
    assert_eq!(token.len(), 64, "{token}");

    let status = raw_to(&addr(&server), "GET", "/api/setup/status", &local, &[], "");
    assert_eq!((status.status, &status.body), (200, &json!({"needs_setup": true, "local": true})));
    let status = raw_to(&addr(&server), "GET", "/api/setup/status", &rebind, &[], "");
    assert_eq!(status.body["local"], json!(false), "a rebinding name is not local");

    let admin = |email: &str, token: Option<&str>| json!({"email": email, "password": PASSWORD, "token": token});
    // Without the token: a rebinding name, a name that only looks local, a request forwarded by a proxy on
    // this host (its peer is loopback and a trusted proxy), a foreign page's Origin.
    for (host, extra) in [
        (rebind.as_str(), vec![]),
        ("localhost.attacker.example", vec![]),
        (local.as_str(), vec![("X-Forwarded-For", "203.0.113.9")]),
        (local.as_str(), vec![("X-Real-IP", "203.0.113.9")]),
        (local.as_str(), vec![("Forwarded", "for=203.0.113.9")]),
        (local.as_str(), vec![("Origin", "http://attacker.example")]),
    ] {
        let a = create(&server, host, &extra, &admin("evil@example.com", None));
        assert_eq!(a.status, 403, "{host} {extra:?}: {}", a.body);
    }
    // Wrong tokens, from a non-local name: refused the same way.
    let mut flipped = token.clone().into_bytes();
    flipped[63] = if flipped[63] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).expect("hex stays ASCII");
    for wrong in ["", &token[..63], &format!("{token}0"), &flipped, &"0".repeat(64)] {
        let a = create(&server, &rebind, &[], &admin("evil@example.com", Some(wrong)));
        assert_eq!(a.status, 403, "token {wrong:?}: {}", a.body);
    }
    // Cross-site forms cannot post here.
    let form = raw_to(
        &addr(&server),
        "POST",
        "/api/setup/admin",
        &local,
        &[("Content-Type", "text/plain")],
        &admin("evil@example.com", None).to_string(),
    );
    assert_eq!(form.status, 415);
    // A weak password is refused and does not spend the token.
    for weak in ["short".to_string(), "Password".into(), "x".repeat(129)] {
        let body = json!({"email": "ops@example.com", "password": weak, "token": token});
        assert_eq!(create(&server, &rebind, &[], &body).status, 422, "{weak}");
    }
    // Nothing of the above created a user.
    assert_eq!(login(&server, &local, "evil@example.com", PASSWORD).status, 401);

    // The real token works from anywhere, once.
    let made = create(&server, &rebind, &[], &admin("ops@example.com", Some(&token)));
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(made.body["role"], json!("admin"));
    server.wait_for_log("setup.first_admin_created", Duration::from_secs(10));
    let session = login(&server, &local, "ops@example.com", PASSWORD);
    assert_eq!(session.status, 200);
    assert!(session.head.contains("set-cookie"));

    // From now on: 409 for the token, for a local browser, for anyone.
    for (host, token) in
        [(rebind.as_str(), Some(token.as_str())), (local.as_str(), None), (local.as_str(), Some(&token))]
    {
        let a = create(&server, host, &[], &admin("second@example.com", token));
        assert_eq!(a.status, 409, "{host}: {}", a.body);
    }
    let status = raw_to(&addr(&server), "GET", "/api/setup/status", &local, &[], "");
    assert_eq!(status.body, json!({"needs_setup": false, "local": false}));
    assert_eq!(login(&server, &local, "second@example.com", PASSWORD).status, 401);
}

#[test]
fn a_local_browser_creates_the_first_admin_without_the_token() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = start(dir.path(), &GENEROUS);
    let host = format!("127.0.0.1:{}", port(&server));
    let body = json!({"email": "ops@example.com", "password": PASSWORD});
    let made = create(&server, &host, &[("Origin", &format!("http://{host}"))], &body);
    assert_eq!(made.status, 201, "{}", made.body);
    // The token printed at start-up died with it.
    let token = logged_token(&server);
    let again = json!({"email": "x@example.com", "password": PASSWORD, "token": token});
    assert_eq!(create(&server, &format!("{REBIND}:1"), &[], &again).status, 409);
}

#[test]
fn concurrent_calls_create_exactly_one_admin() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = start(dir.path(), &GENEROUS);
    let host = format!("localhost:{}", port(&server));
    let target = addr(&server);
    let calls: Vec<_> = (0..12)
        .map(|i| {
            let (target, host) = (target.clone(), host.clone());
            std::thread::spawn(move || {
                let body = json!({"email": format!("racer{i}@example.com"), "password": PASSWORD}).to_string();
                raw_to(&target, "POST", "/api/setup/admin", &host, &[("Content-Type", "application/json")], &body)
            })
        })
        .collect();
    let answers: Vec<Answer> = calls.into_iter().map(|c| c.join().expect("the call finishes")).collect();
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 201 || *s == 409), "{statuses:?}");
    // Exactly one account can log in.
    let logged_in =
        (0..12).filter(|i| login(&server, &host, &format!("racer{i}@example.com"), PASSWORD).status == 200).count();
    assert_eq!(logged_in, 1);
}

#[test]
fn a_peer_on_another_address_is_not_local() {
    // The machine's address on its default route (no packet is sent by connecting a UDP socket).
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").expect("a UDP socket");
    let ip = probe.connect("192.0.2.1:9").ok().and_then(|_| probe.local_addr().ok()).map(|a| a.ip());
    let Some(ip) = ip.filter(|ip| !ip.is_loopback() && !ip.is_unspecified()) else {
        eprintln!("no non-loopback address on this machine: the non-loopback peer cannot be tested here");
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut envs = GENEROUS.to_vec();
    envs.push(("LANGSIGHT_HOST", "0.0.0.0"));
    let server = start(dir.path(), &envs);
    let port = port(&server);
    let remote = format!("{ip}:{port}");
    let local_host = format!("localhost:{port}");
    let body = json!({"email": "evil@example.com", "password": PASSWORD}).to_string();
    // The peer is this machine's LAN address: even with Host and Origin saying localhost, it is refused.
    let a = raw_to(
        &remote,
        "POST",
        "/api/setup/admin",
        &local_host,
        &[("Content-Type", "application/json"), ("Origin", &format!("http://{local_host}"))],
        &body,
    );
    assert_eq!(a.status, 403, "{}", a.body);
    let status = raw_to(&remote, "GET", "/api/setup/status", &local_host, &[], "");
    assert_eq!(status.body["local"], json!(false));
    // The same request over loopback works (so the 403 above was about the peer).
    let a = raw_to(
        &format!("127.0.0.1:{port}"),
        "POST",
        "/api/setup/admin",
        &local_host,
        &[("Content-Type", "application/json")],
        &body,
    );
    assert_eq!(a.status, 201, "{}", a.body);
}

#[test]
fn setup_is_rate_limited_like_login() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = start(dir.path(), &[]);
    let rebind = format!("{REBIND}:{}", port(&server));
    let body = json!({"email": "evil@example.com", "password": PASSWORD, "token": "0".repeat(64)});
    let statuses: Vec<u16> = (0..12).map(|_| create(&server, &rebind, &[], &body).status).collect();
    assert!(statuses[..10].iter().all(|s| *s == 403), "{statuses:?}");
    assert_eq!(statuses[10..], [429, 429], "token guessing is limited to 10 a minute per address: {statuses:?}");
}
