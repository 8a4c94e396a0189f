//! Tenant isolation and privilege, attacked over HTTP against the real binary: every protected route walked
//! with every kind of caller; project-bound keys kept out of instance-wide state; keys that die with their
//! owner; server-side logout and password changes; live streams that stop when their key is revoked; global
//! alerts hidden from projects; viewer keys that ingest only where their owner may read.

use langsight_server::auth::Capability;
use langsight_server::routes::route_table;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use test_support::process::ServerProcess;
use test_support::{http, Client, Reply};

const BOOTSTRAP: &str = "security-access-bootstrap-key";
const ADMIN_EMAIL: &str = "root@example.com";
const PASSWORD: &str = "correct horse battery staple";

fn start(dir: &Path) -> ServerProcess {
    ServerProcess::start(
        Path::new(env!("CARGO_BIN_EXE_langsight")),
        dir,
        1,
        &[
            ("LANGSIGHT_API_KEYS", BOOTSTRAP),
            ("LANGSIGHT_ADMIN_EMAIL", ADMIN_EMAIL),
            ("LANGSIGHT_ADMIN_PASSWORD", PASSWORD),
            // The walk sends hundreds of requests from one address; rate limits are tested elsewhere.
            ("LANGSIGHT_RATE_LIMIT_ENABLED", "false"),
            ("LANGSIGHT_MONITOR_ENABLED", "false"),
        ],
        &[],
    )
}

fn key_client(url: &str, key: &str) -> Client {
    Client { base: url.to_string(), key: Some(key.to_string()), http: http(), headers: vec![] }
}

/// A dashboard session: the cookie from `POST /api/auth/login`, and the CSRF header the dashboard sends.
async fn login(url: &str, email: &str, password: &str) -> Client {
    let r =
        http().post(format!("{url}/api/auth/login")).json(&json!({"email": email, "password": password})).send().await;
    let r = r.expect("login reaches the server");
    assert_eq!(r.status().as_u16(), 200, "{email} logs in");
    let cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string();
    Client {
        base: url.to_string(),
        key: None,
        http: http(),
        headers: vec![("Cookie".into(), cookie), ("X-LangSight-CSRF".into(), "1".into())],
    }
}

async fn create_key(c: &Client, body: Value) -> (String, String) {
    let r = c.post("/api/auth/api-keys", &body).await;
    assert_eq!(r.status, 201, "key created: {}", r.text);
    (r.body["key"].as_str().unwrap_or_default().to_string(), r.body["id"].as_str().unwrap_or_default().to_string())
}

async fn create_project(c: &Client, name: &str) -> String {
    let r = c.post("/api/projects", &json!({"name": name})).await;
    assert_eq!(r.status, 201, "project created: {}", r.text);
    r.body["id"].as_str().unwrap_or_default().to_string()
}

/// Invites `email` with `role`, accepts the invitation, and returns the new user's id.
async fn new_user(admin: &Client, email: &str, role: &str) -> String {
    let r = admin.post("/api/users/invite", &json!({"email": email, "role": role})).await;
    assert_eq!(r.status, 201, "invite: {}", r.text);
    let token = r.body["token"].as_str().unwrap_or_default().to_string();
    let r = Client { base: admin.base.clone(), key: None, http: http(), headers: vec![] }
        .post("/api/users/accept-invite", &json!({"token": token, "password": PASSWORD}))
        .await;
    assert_eq!(r.status, 201, "accept: {}", r.text);
    r.body["id"].as_str().unwrap_or_default().to_string()
}

async fn call(c: &Client, method: &str, path: &str) -> Reply {
    let m = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
    let body = (m != Method::GET && m != Method::DELETE).then(|| b"{}".to_vec());
    c.send(m, path, body).await
}

/// The route's path with every `{param}` replaced by an id that exists nowhere, so an allowed write changes
/// nothing real.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map(|c| open + c).unwrap_or(rest.len() - 1);
        out.push_str("no-such-");
        out.push_str(&rest[open + 1..close]);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Bootstrap,
    UnboundAdminKey,
    UnboundViewerKey,
    BoundAdminKey,
    BoundViewerKey,
    AdminSession,
    ViewerSession,
}

/// What each kind of caller may do, by capability: the rule the server must enforce.
fn allowed(kind: Kind, need: Capability) -> bool {
    use Capability::*;
    use Kind::*;
    match need {
        InstanceAdmin => matches!(kind, Bootstrap | UnboundAdminKey | AdminSession),
        InstanceRead => !matches!(kind, BoundAdminKey | BoundViewerKey),
        ProjectAdmin => matches!(kind, Bootstrap | UnboundAdminKey | BoundAdminKey | AdminSession),
        ProjectRead | Ingest | Authenticated => true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_with_every_kind_of_caller() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let server = tokio::task::spawn_blocking(move || start(&d)).await.unwrap();
    let url = server.url.clone();
    let root = key_client(&url, BOOTSTRAP);
    let project = create_project(&root, "tenant-a").await;
    let (bound_admin, _) = create_key(&root, json!({"name": "a-admin", "project_id": project})).await;
    let (bound_viewer, _) =
        create_key(&root, json!({"name": "a-viewer", "role": "viewer", "project_id": project})).await;
    let (unbound_admin, _) = create_key(&root, json!({"name": "ci"})).await;
    let (unbound_viewer, _) = create_key(&root, json!({"name": "reader", "role": "viewer"})).await;
    new_user(&root, "viewer@example.com", "viewer").await;
    let callers = [
        (Kind::Bootstrap, root.clone_for_test()),
        (Kind::UnboundAdminKey, key_client(&url, &unbound_admin)),
        (Kind::UnboundViewerKey, key_client(&url, &unbound_viewer)),
        (Kind::BoundAdminKey, key_client(&url, &bound_admin)),
        (Kind::BoundViewerKey, key_client(&url, &bound_viewer)),
        (Kind::AdminSession, login(&url, ADMIN_EMAIL, PASSWORD).await),
        (Kind::ViewerSession, login(&url, "viewer@example.com", PASSWORD).await),
    ];
    let table = route_table();
    assert!(table.len() > 80, "the walk covers the whole API ({} routes)", table.len());
    // The walk checks that the server enforces what each route declares; these check the declarations
    // themselves. Instance-wide state needs an instance capability:
    let instance_wide = [
        ("GET", "/api/users"),
        ("POST", "/api/users/invite"),
        ("PATCH", "/api/users/{user_id}/role"),
        ("DELETE", "/api/users/{user_id}"),
        ("GET", "/api/settings"),
        ("PUT", "/api/settings"),
        ("POST", "/api/costs/models"),
        ("PATCH", "/api/costs/models/{entry_id}"),
        ("DELETE", "/api/costs/models/{entry_id}"),
        ("GET", "/api/audit/logs"),
        ("GET", "/api/projects"),
        ("POST", "/api/projects"),
    ];
    for (method, path) in instance_wide {
        let rule = table.iter().find(|r| r.method == method && r.path == path);
        assert!(
            rule.is_some_and(|r| matches!(r.needs, Capability::InstanceAdmin | Capability::InstanceRead)),
            "{method} {path} acts on instance-wide state: {rule:?}"
        );
    }
    // Routes added for the dashboard are in the walk with the capability they were declared with: a
    // server's scan history is project data; the instance facts (no credentials) are for any caller.
    for (method, path, read) in [("GET", "/api/security/scans", true), ("GET", "/api/instance", false)] {
        let rule = table.iter().find(|r| r.method == method && r.path == path);
        let expected = |c: &Capability| {
            if read {
                matches!(c, Capability::ProjectRead)
            } else {
                matches!(c, Capability::Authenticated)
            }
        };
        assert!(rule.is_some_and(|r| expected(&r.needs)), "{method} {path}: {rule:?}");
    }
    // And every write needs an admin, but for sending spans, changing one's own password and asking for a
    // stream token (a read).
    let self_service = ["/api/users/me/change-password", "/api/live/token"];
    for r in table.iter().filter(|r| r.method != "GET" && !self_service.contains(&r.path)) {
        assert!(
            matches!(r.needs, Capability::InstanceAdmin | Capability::ProjectAdmin | Capability::Ingest),
            "{} {} is a write: {:?}",
            r.method,
            r.path,
            r.needs
        );
    }
    let mut failures = Vec::new();
    for rule in &table {
        let path = concrete(rule.path);
        for (kind, client) in &callers {
            let r = call(client, rule.method, &path).await;
            let ok = allowed(*kind, rule.needs);
            let refused = r.status == 403;
            if ok && (refused || (r.status == 401 && !rule.path.ends_with("change-password"))) {
                failures.push(format!(
                    "{kind:?} {} {} ({:?}) refused: {} {}",
                    rule.method, path, rule.needs, r.status, r.text
                ));
            }
            if !ok && !refused {
                failures.push(format!(
                    "{kind:?} {} {} ({:?}) NOT refused: {} {}",
                    rule.method, path, rule.needs, r.status, r.text
                ));
            }
            if !ok && matches!(kind, Kind::BoundAdminKey) && !r.detail().contains("bound to project") {
                failures.push(format!("{kind:?} {} {}: the 403 must name the binding: {}", rule.method, path, r.text));
            }
        }
    }
    assert!(failures.is_empty(), "{} violations:\n{}", failures.len(), failures.join("\n"));
}

trait CloneForTest {
    fn clone_for_test(&self) -> Client;
}

impl CloneForTest for Client {
    fn clone_for_test(&self) -> Client {
        Client { base: self.base.clone(), key: self.key.clone(), http: http(), headers: self.headers.clone() }
    }
}

/// The attack from the review, step by step: a key bound to one project tries to take over the instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_admin_key_cannot_become_instance_admin() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let server = tokio::task::spawn_blocking(move || start(&d)).await.unwrap();
    let root = key_client(&server.url, BOOTSTRAP);
    let project = create_project(&root, "tenant-a").await;
    let (bound, _) = create_key(&root, json!({"name": "a-admin", "project_id": project})).await;
    let attacker = key_client(&server.url, &bound);
    let admin_id = root.get("/api/users").await.body[0]["id"].as_str().unwrap_or_default().to_string();

    let attempts = [
        attacker.get("/api/users").await,
        attacker.post("/api/users/invite", &json!({"email": "evil@example.com", "role": "admin"})).await,
        attacker
            .send(Method::PATCH, &format!("/api/users/{admin_id}/role"), Some(br#"{"role":"viewer"}"#.to_vec()))
            .await,
        attacker.delete(&format!("/api/users/{admin_id}")).await,
        attacker.put("/api/settings", &json!({"redact_payloads": true})).await,
        attacker.get("/api/settings").await,
        attacker
            .post(
                "/api/costs/models",
                &json!({"provider": "x", "model_id": "gpt-4o", "input_per_1m": 0, "output_per_1m": 0}),
            )
            .await,
        attacker.get("/api/audit/logs").await,
        attacker.get("/api/projects").await,
        attacker.post("/api/projects", &json!({"name": "mine"})).await,
        attacker.post("/api/auth/api-keys", &json!({"name": "escape"})).await,
    ];
    for (i, r) in attempts.iter().enumerate() {
        assert_eq!(r.status, 403, "attempt {i} refused: {}", r.text);
    }
    // Nothing changed: no invitation was made, the admin is still an active admin, redaction is still off.
    let users = root.get("/api/users").await.body;
    assert_eq!(users.as_array().map(Vec::len), Some(1), "no user was added: {users}");
    assert_eq!((users[0]["role"].as_str(), users[0]["active"].as_bool()), (Some("admin"), Some(true)));
    assert_eq!(root.get("/api/settings").await.body["redact_payloads"], json!(false));
    // Inside its project it is still an admin.
    let r = attacker.post("/api/slos", &json!({"agent_name": "a", "metric": "success_rate", "target": 99.0})).await;
    assert_eq!(r.status, 201, "project work still allowed: {}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_revokes_keys_sessions_and_streams() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let server = tokio::task::spawn_blocking(move || start(&d)).await.unwrap();
    let url = server.url.clone();
    let root = key_client(&url, BOOTSTRAP);

    // A key made while logged in to the dashboard belongs to that user and dies with the account.
    new_user(&root, "dev@example.com", "admin").await;
    let dev = login(&url, "dev@example.com", PASSWORD).await;
    let (dev_key, _) = create_key(&dev, json!({"name": "laptop"})).await;
    let dev_id = dev.get("/api/auth/me").await;
    assert_eq!(dev_id.status, 200);
    assert_eq!(key_client(&url, &dev_key).get("/api/auth/me").await.status, 200, "the key works");
    let users = root.get("/api/users").await.body;
    let dev_id = users
        .as_array()
        .and_then(|u| u.iter().find(|u| u["email"] == "dev@example.com"))
        .and_then(|u| u["id"].as_str())
        .unwrap_or_default()
        .to_string();
    assert_eq!(root.delete(&format!("/api/users/{dev_id}")).await.status, 204);
    let r = key_client(&url, &dev_key).get("/api/auth/me").await;
    assert_eq!(r.status, 403, "a deactivated user's key stops at once: {}", r.text);
    assert!(r.detail().contains("deactivated"), "{}", r.text);
    assert_eq!(dev.get("/api/auth/me").await.status, 401, "and their dashboard session ends");

    // A password change revokes the user's keys and ends their other sessions; the one that made it stays.
    new_user(&root, "ops@example.com", "admin").await;
    let here = login(&url, "ops@example.com", PASSWORD).await;
    let elsewhere = login(&url, "ops@example.com", PASSWORD).await;
    let (ops_key, _) = create_key(&here, json!({"name": "cli"})).await;
    let r = here
        .post(
            "/api/users/me/change-password",
            &json!({"current_password": PASSWORD, "new_password": "a much longer new passphrase"}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(here.get("/api/auth/me").await.status, 200, "the session that changed it stays");
    assert_eq!(elsewhere.get("/api/auth/me").await.status, 401, "the other session ended");
    assert_eq!(key_client(&url, &ops_key).get("/api/auth/me").await.status, 403, "the user's key was revoked");

    // Logout ends the session server-side: a copy of the cookie stops working.
    let copy = Client { base: url.clone(), key: None, http: http(), headers: here.headers.clone() };
    assert_eq!(here.post("/api/auth/logout", &json!({})).await.status, 204);
    assert_eq!(copy.get("/api/auth/me").await.status, 401, "the logged-out cookie is dead");

    // A revoked key's live-stream token stops its stream, and opens no new one.
    let wall = create_project(&root, "wall").await;
    let (stream_key, stream_key_id) = create_key(&root, json!({"name": "wall-screen", "project_id": wall})).await;
    let token = key_client(&url, &stream_key).post("/api/live/token", &json!({})).await;
    assert_eq!(token.status, 200, "{}", token.text);
    let stream_url = format!("{url}{}", token.body["stream_url"].as_str().unwrap_or_default());
    let mut stream = test_support::sse::SseStream::connect(&stream_url, None, None).await;
    assert_eq!(stream.status, 200);
    let connected = stream.next(Duration::from_secs(10)).await;
    assert!(connected.is_some_and(|f| f.comments.iter().any(|c| c.contains("connected"))));
    assert_eq!(root.delete(&format!("/api/auth/api-keys/{stream_key_id}")).await.status, 204);
    // The stream must end with an error frame; the wait is only an upper bound for a failing server.
    let frames =
        stream.read_until(Duration::from_secs(20), |f| f.iter().any(|f| f.event.as_deref() == Some("error"))).await;
    let last = frames.iter().find(|f| f.event.as_deref() == Some("error"));
    assert!(last.is_some(), "the stream told the client its credential was revoked: {frames:?}");
    assert_eq!(stream.end_within(Duration::from_secs(10)).await, Some(vec![]), "and ended");
    let again = test_support::sse::SseStream::connect(&stream_url, None, None).await;
    assert_eq!(again.status, 401, "the token opens no new stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_alerts_stay_with_instance_admins_and_viewer_keys_write_only_where_their_owner_reads() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let db = dir.path().join("langsight.db");
    let server = tokio::task::spawn_blocking(move || start(&d)).await.unwrap();
    let url = server.url.clone();
    let root = key_client(&url, BOOTSTRAP);
    let a = create_project(&root, "tenant-a").await;
    let b = create_project(&root, "tenant-b").await;

    // A global alert (an operator server went down) as the monitor would store it.
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        conn.execute(
            "INSERT INTO fired_alerts (id, project_id, alert_type, severity, server_name, session_id, title, message, \
             fired_at, status) VALUES ('global-1', '', 'mcp_down', 'critical', 'payments', NULL, 'payments is down', \
             'operator server down', 1, 'active')",
            [],
        )
        .unwrap();
    }
    let (bound, _) = create_key(&root, json!({"name": "a-admin", "project_id": a})).await;
    let tenant = key_client(&url, &bound);
    let feed = tenant.get("/api/alerts/feed").await;
    assert_eq!(feed.status, 200, "{}", feed.text);
    assert!(!feed.text.contains("global-1"), "a project's feed does not show global alerts: {}", feed.text);
    assert_eq!(tenant.post("/api/alerts/global-1/ack", &json!({})).await.status, 404, "nor can it ack them");
    assert_eq!(tenant.post("/api/alerts/global-1/resolve", &json!({})).await.status, 404);
    assert!(root.get("/api/alerts/feed").await.text.contains("global-1"), "instance admins still see it");
    let counts = tenant.get("/api/alerts/counts").await.body;
    assert_eq!(counts["critical"], json!(0), "nor count it: {counts}");

    // A key whose owner was demoted to viewer: it reads as a viewer and writes only where the owner reads.
    let dev_id = new_user(&root, "dev@example.com", "admin").await;
    let dev = login(&url, "dev@example.com", PASSWORD).await;
    let (dev_key, _) = create_key(&dev, json!({"name": "sdk"})).await;
    let r = root.post(&format!("/api/projects/{a}/members"), &json!({"user_id": dev_id, "role": "member"})).await;
    assert!(r.status == 201 || r.status == 200, "{}", r.text);
    let r =
        root.send(Method::PATCH, &format!("/api/users/{dev_id}/role"), Some(br#"{"role":"viewer"}"#.to_vec())).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let sdk = key_client(&url, &dev_key);
    assert_eq!(sdk.get("/api/users").await.status, 403, "the key never outranks its owner");
    let span = |project: Option<&str>| {
        let mut s = test_support::agent_run(&test_support::session_id(), 1, project);
        if project.is_none() {
            if let Some(o) = s[0].as_object_mut() {
                o.remove("project_id");
            }
        }
        s
    };
    let r = sdk.ingest(&span(Some(&a))).await;
    assert_eq!(r.status, 202, "into a project the owner reads: {}", r.text);
    let r = sdk.ingest(&span(Some(&b))).await;
    assert_eq!(r.status, 403, "not into another tenant's project: {}", r.text);
    assert!(r.detail().contains(&b), "{}", r.text);
    let r = sdk.ingest(&span(None)).await;
    assert_eq!(r.status, 403, "nor unscoped: {}", r.text);
    let stored = root.get(&format!("/api/agents/sessions?project_id={b}")).await.body;
    assert_eq!(stored.as_array().map(Vec::len), Some(0), "nothing reached tenant b: {stored}");
}
