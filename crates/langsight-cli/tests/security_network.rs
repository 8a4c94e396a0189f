//! Network-facing attacks against the real binary, over raw HTTP/1.1 (so the `Host` header is exactly what
//! an attacker's browser would send):
//!
//! - DNS rebinding against open mode (`LANGSIGHT_AUTH_DISABLED=true`, no key): a page on a name that
//!   resolves to this server must not read the API, mint the first key or load the dashboard; local names,
//!   loopback addresses, the dashboard's host and `LANGSIGHT_TRUSTED_HOSTS` still work, probes always do.
//! - Cross-site form posts to the login routes: only `Content-Type: application/json` is read.
//! - Forged `X-Forwarded-For` from a peer that is not a configured proxy: ignored by the rate limiter.

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;
use test_support::process::ServerProcess;

const EMAIL: &str = "ops@example.com";
const PASSWORD: &str = "correct horse battery staple";
const REBIND_HOST: &str = "rebind.attacker.example";

fn start(dir: &Path, envs: &[(&str, &str)]) -> ServerProcess {
    ServerProcess::start(Path::new(env!("CARGO_BIN_EXE_langsight")), dir, 1, envs, &[])
}

struct Answer {
    status: u16,
    head: String,
    body: Value,
}

impl Answer {
    fn detail(&self) -> &str {
        self.body["detail"].as_str().unwrap_or_default()
    }
}

/// One request on its own connection: `host` is sent verbatim (`None` sends no `Host` at all, HTTP/1.0).
fn raw(
    server: &ServerProcess,
    method: &str,
    path: &str,
    host: Option<&str>,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let addr = server.url.trim_start_matches("http://");
    let mut sock = TcpStream::connect(addr).expect("the server accepts connections");
    sock.set_read_timeout(Some(Duration::from_secs(30))).expect("a read timeout can be set");
    let mut req = match host {
        Some(h) => format!("{method} {path} HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n"),
        None => format!("{method} {path} HTTP/1.0\r\n"),
    };
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

fn port(server: &ServerProcess) -> String {
    server.url.rsplit(':').next().unwrap_or_default().to_string()
}

#[test]
fn open_mode_answers_only_local_and_trusted_host_names() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = start(dir.path(), &[("LANGSIGHT_AUTH_DISABLED", "true")]);
    let port = port(&server);
    let rebind = format!("{REBIND_HOST}:{port}");

    // The attacks: read data, mint the first key, load the dashboard, under a rebinding name (and names that
    // merely look local).
    let key_body = json!({"name": "attacker"}).to_string();
    let json_type = [("Content-Type", "application/json")];
    for host in [
        rebind.as_str(),
        REBIND_HOST,
        "localhost.attacker.example",
        "127.0.0.1.nip.io:80",
        "0x7f000001",
        "localhost:80@rebind.attacker.example",
        "[::1]x",
    ] {
        let a = raw(&server, "GET", "/api/agents/sessions", Some(host), &[], "");
        assert_eq!(a.status, 403, "{host}: {:?}", a.body);
        assert!(
            a.detail().contains("LANGSIGHT_TRUSTED_HOSTS") && a.detail().contains("LANGSIGHT_API_KEYS"),
            "{}",
            a.detail()
        );
        let a = raw(&server, "POST", "/api/auth/api-keys", Some(host), &json_type, &key_body);
        assert_eq!(a.status, 403, "{host}: minting the first key: {:?}", a.body);
        assert_eq!(raw(&server, "GET", "/", Some(host), &[], "").status, 403, "{host}: the dashboard");
    }
    assert_eq!(raw(&server, "GET", "/api/agents/sessions", None, &[], "").status, 403, "no Host at all");
    let a = raw(&server, "GET", "/api/status", Some(&rebind), &[], "");
    assert!(a.detail().contains(&format!("add '{REBIND_HOST}' to LANGSIGHT_TRUSTED_HOSTS")), "{}", a.detail());

    // Probes answer whatever the Host.
    assert_eq!(raw(&server, "GET", "/api/liveness", Some(&rebind), &[], "").status, 200);
    assert_eq!(raw(&server, "GET", "/api/readiness", Some(&rebind), &[], "").status, 200);

    // Local names and loopback addresses, any port, still work.
    for host in [
        format!("localhost:{port}"),
        "LOCALHOST".into(),
        format!("127.0.0.1:{port}"),
        "127.8.9.10".into(),
        format!("[::1]:{port}"),
    ] {
        let a = raw(&server, "GET", "/api/agents/sessions", Some(&host), &[], "");
        assert_eq!(a.status, 200, "{host}: {:?}", a.body);
    }
    // Nothing was minted by the refused attempts: the server is still open.
    let a = raw(&server, "GET", "/api/auth/api-keys", Some("localhost"), &[], "");
    assert_eq!((a.status, a.body.as_array().map(Vec::len)), (200, Some(0)), "{:?}", a.body);

    // Once a key exists the server is no longer open: other names get the ordinary authentication answer.
    let a = raw(
        &server,
        "POST",
        "/api/auth/api-keys",
        Some("localhost"),
        &json_type,
        &json!({"name": "first"}).to_string(),
    );
    assert!(a.status == 200 || a.status == 201, "{:?}", a.body);
    let a = raw(&server, "GET", "/api/agents/sessions", Some(&rebind), &[], "");
    assert_eq!(a.status, 401, "{:?}", a.body);
}

#[test]
fn open_mode_trusts_the_dashboard_host_and_the_configured_names() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = start(
        dir.path(),
        &[
            ("LANGSIGHT_AUTH_DISABLED", "true"),
            ("LANGSIGHT_DASHBOARD_URL", "http://dash.example.test:3003"),
            ("LANGSIGHT_TRUSTED_HOSTS", "langsight.internal,api"),
        ],
    );
    for host in [
        "dash.example.test",
        "dash.example.test:8000",
        "langsight.internal:8000",
        "Langsight.Internal",
        "api",
        "localhost",
    ] {
        let a = raw(&server, "GET", "/api/agents/sessions", Some(host), &[], "");
        assert_eq!(a.status, 200, "{host}: {:?}", a.body);
    }
    // With a dashboard URL the original's rule answers other names first (400).
    let a = raw(&server, "GET", "/api/agents/sessions", Some(REBIND_HOST), &[], "");
    assert_eq!(a.status, 400);
}

#[test]
fn login_routes_read_only_json_declared_as_json() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = start(
        dir.path(),
        &[
            ("LANGSIGHT_API_KEYS", "network-test-key"),
            ("LANGSIGHT_ADMIN_EMAIL", EMAIL),
            ("LANGSIGHT_ADMIN_PASSWORD", PASSWORD),
            ("LANGSIGHT_RATE_LIMIT_LOGIN", "1000/minute"),
        ],
    );
    let creds = json!({"email": EMAIL, "password": PASSWORD}).to_string();
    let form = format!("email={EMAIL}&password={}", PASSWORD.replace(' ', "+"));
    let multipart = format!(
        "--b\r\nContent-Disposition: form-data; name=\"{creds}\"\r\n\r\nx\r\n--b--\r\n" // a form trying to smuggle JSON
    );
    for path in ["/api/auth/login", "/api/users/verify"] {
        // What a cross-site form (or a no-cors fetch) can send without a preflight, each with valid credentials.
        let attempts: [(Option<&str>, &str); 5] = [
            (Some("text/plain"), &creds),
            (Some("text/plain; charset=utf-8"), &creds),
            (Some("application/x-www-form-urlencoded"), &form),
            (Some("multipart/form-data; boundary=b"), &multipart),
            (None, &creds),
        ];
        for (ctype, body) in attempts {
            let headers: Vec<(&str, &str)> = ctype.map(|c| ("Content-Type", c)).into_iter().collect();
            let a = raw(&server, "POST", path, Some("localhost"), &headers, body);
            assert_eq!(a.status, 415, "{path} with {ctype:?}: {:?}", a.body);
            assert!(a.detail().contains("Content-Type must be application/json"), "{}", a.detail());
            assert!(!a.head.contains("set-cookie"), "{path} with {ctype:?} must not start a session");
        }
        for ctype in ["application/json", "Application/JSON; charset=utf-8"] {
            let a = raw(&server, "POST", path, Some("localhost"), &[("Content-Type", ctype)], &creds);
            assert_eq!(a.status, 200, "{path} with {ctype}: {:?}", a.body);
        }
    }
}

#[test]
fn forwarded_for_is_believed_only_from_configured_proxies() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // The test connects from 127.0.0.1, which is not among the configured proxies here.
    let server = start(
        dir.path(),
        &[
            ("LANGSIGHT_API_KEYS", "network-test-key"),
            ("LANGSIGHT_TRUSTED_PROXY_CIDRS", "10.0.0.0/8"),
            ("LANGSIGHT_RATE_LIMIT_DEFAULT", "3/minute"),
        ],
    );
    // A client that makes up a new address per request still shares one bucket: 3 accepted, then 429.
    let statuses: Vec<u16> = (0..5)
        .map(|i| {
            let forged = format!("203.0.113.{i}");
            raw(&server, "GET", "/api/status", Some("localhost"), &[("X-Forwarded-For", &forged)], "").status
        })
        .collect();
    assert_eq!(statuses, vec![200, 200, 200, 429, 429]);
}
