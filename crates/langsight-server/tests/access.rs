//! Users and access control: login with lockout, invitations, password changes, the dashboard proxy's
//! signed identity (forged or stale headers ignored), viewer principals refused on every write route, and a
//! tenant-isolation suite over every read endpoint.

use hmac::{Hmac, Mac};
use langsight_server::config::Secret;
use serde_json::{json, Value};
use sha2::Sha256;
use std::time::Duration;
use test_support::{agent_run, session_id, Client, TestServer, ADMIN_KEY};

const ADMIN_EMAIL: &str = "root@example.com";
const ADMIN_PASSWORD: &str = "a long admin passphrase";
const PROXY_SECRET: &str = "proxy-secret-for-tests";

async fn server(lock_secs: u64) -> TestServer {
    TestServer::start_with(|c| {
        c.api_keys = vec![Secret(ADMIN_KEY.into())];
        c.users.admin_email = Some(ADMIN_EMAIL.into());
        c.users.admin_password = Some(Secret(ADMIN_PASSWORD.into()));
        c.users.proxy_secret = Some(Secret(PROXY_SECRET.into()));
        c.users.lockout.lock_micros = lock_secs as i64 * 1_000_000;
        // The per-address login rate limit (10/minute) would answer before the lockout does.
        c.rate_limits.enabled = false;
    })
    .await
}

async fn login(s: &TestServer, email: &str, password: &str) -> test_support::Reply {
    s.client(None).post("/api/users/verify", &json!({"email": email, "password": password})).await
}

/// A client that speaks as our dashboard proxy does for `user_id`/`role`, signed at `ts`.
fn session_at(s: &TestServer, user_id: &str, role: &str, secret: &str, ts: i64) -> Client {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{user_id}:{role}:{ts}").as_bytes());
    let mut c = s.client(None);
    c.headers = vec![
        ("X-User-Id".into(), user_id.into()),
        ("X-User-Role".into(), role.into()),
        ("X-Proxy-Timestamp".into(), ts.to_string()),
        ("X-Proxy-Signature".into(), hex::encode(mac.finalize().into_bytes())),
    ];
    c
}

fn session(s: &TestServer, user_id: &str, role: &str) -> Client {
    session_at(s, user_id, role, PROXY_SECRET, chrono::Utc::now().timestamp())
}

/// Invites and registers a user; returns its id.
async fn user(s: &TestServer, email: &str, role: &str) -> String {
    let inv = s.admin().post("/api/users/invite", &json!({"email": email, "role": role})).await;
    assert_eq!(inv.status, 201, "{}", inv.text);
    let token = inv.body["token"].as_str().unwrap();
    let acc = s
        .client(None)
        .post("/api/users/accept-invite", &json!({"token": token, "password": "another long passphrase"}))
        .await;
    assert_eq!(acc.status, 201, "{}", acc.text);
    acc.body["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_lockout_invites_and_password_changes() {
    let s = server(2).await;
    let ok = login(&s, "Root@Example.com", ADMIN_PASSWORD).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(
        (ok.body["email"].clone(), ok.body["role"].clone(), ok.body["name"].clone()),
        (json!(ADMIN_EMAIL), json!("admin"), json!("root"))
    );
    let admin_id = ok.body["id"].as_str().unwrap().to_string();

    // 10 failures within the window lock the account: the 11th attempt is refused even with the right password.
    for i in 0..10 {
        let r = login(&s, ADMIN_EMAIL, "wrong password!!").await;
        assert_eq!((r.status, r.detail()), (401, "Invalid email or password."), "attempt {i}");
    }
    let locked = login(&s, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(locked.status, 429);
    assert_eq!(locked.detail(), "Account temporarily locked after too many failed attempts. Try again later.");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(login(&s, ADMIN_EMAIL, ADMIN_PASSWORD).await.status, 200, "the lock ends");
    // Unknown users get the same answer as wrong passwords.
    assert_eq!(login(&s, "nobody@example.com", "whatever it is").await.detail(), "Invalid email or password.");

    // Invitations.
    let viewer = user(&s, "viewer@example.com", "viewer").await;
    let dup = s.admin().post("/api/users/invite", &json!({"email": "VIEWER@example.com"})).await;
    assert_eq!((dup.status, dup.detail()), (409, "A user with email 'viewer@example.com' already exists."));
    assert_eq!(s.admin().post("/api/users/invite", &json!({"email": "not-an-email"})).await.status, 422);
    let inv = s.admin().post("/api/users/invite", &json!({"email": "late@example.com"})).await;
    let token = inv.body["token"].as_str().unwrap().to_string();
    assert!(inv.body["invite_url"].as_str().unwrap().ends_with(&format!("/accept-invite?token={token}")));
    let weak = s.client(None).post("/api/users/accept-invite", &json!({"token": token, "password": "password"})).await;
    assert_eq!(weak.status, 422);
    assert_eq!(
        s.client(None)
            .post("/api/users/accept-invite", &json!({"token": token, "password": "a fine passphrase"}))
            .await
            .status,
        201
    );
    let again = s
        .client(None)
        .post("/api/users/accept-invite", &json!({"token": token, "password": "a fine passphrase"}))
        .await;
    assert_eq!((again.status, again.detail()), (410, "This invite has already been used."));
    let unknown = s
        .client(None)
        .post("/api/users/accept-invite", &json!({"token": "f".repeat(64), "password": "a fine passphrase"}))
        .await;
    assert_eq!((unknown.status, unknown.detail()), (404, "Invalid or expired invite token."));
    assert_eq!(login(&s, "viewer@example.com", "another long passphrase").await.body["role"], json!("viewer"));

    // Password change through a session works and revokes the user's keys.
    let me = session(&s, &viewer, "viewer");
    let bad = me
        .post(
            "/api/users/me/change-password",
            &json!({"current_password": "nope", "new_password": "brand new passphrase"}),
        )
        .await;
    assert_eq!((bad.status, bad.detail()), (401, "Current password is incorrect."));
    let changed = me
        .post(
            "/api/users/me/change-password",
            &json!({"current_password": "another long passphrase", "new_password": "brand new passphrase"}),
        )
        .await;
    assert_eq!(changed.status, 204, "{}", changed.text);
    assert_eq!(login(&s, "viewer@example.com", "another long passphrase").await.status, 401);
    assert_eq!(login(&s, "viewer@example.com", "brand new passphrase").await.status, 200);

    // Roles and deactivation, seen by the next request of a session.
    let promoted = s
        .admin()
        .send(reqwest::Method::PATCH, &format!("/api/users/{viewer}/role"), Some(br#"{"role":"admin"}"#.to_vec()))
        .await;
    assert_eq!(promoted.body["role"], json!("admin"));
    assert_eq!(me.get("/api/projects").await.detail(), "Your role has been changed. Please log in again.");
    assert_eq!(s.admin().delete(&format!("/api/users/{viewer}")).await.status, 204);
    assert_eq!(session(&s, &viewer, "admin").get("/api/projects").await.detail(), "Account has been deactivated");
    assert_eq!(login(&s, "viewer@example.com", "brand new passphrase").await.status, 401);
    let users = s.admin().get("/api/users").await.body;
    assert_eq!(users.as_array().unwrap().len(), 3);

    // The audit log saw all of it (its rows are written off the request path: wait for them, not for time).
    let expected = [
        "login.success",
        "login.failed",
        "login.lockout",
        "login.locked",
        "user.invite_created",
        "user.account_created",
        "user.password_changed",
        "user.role_changed",
        "user.deactivated",
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = s.admin().get("/api/audit/logs?limit=500").await.body;
        let events: Vec<&str> =
            log["events"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
        let missing: Vec<&&str> = expected.iter().filter(|e| !events.contains(e)).collect();
        if missing.is_empty() {
            break log;
        }
        assert!(std::time::Instant::now() < deadline, "{missing:?} in {events:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let first_login =
        log["events"].as_array().unwrap().iter().rev().find(|e| e["event"] == json!("login.success")).unwrap();
    assert_eq!(first_login["user_id"], json!(admin_id));
    assert_eq!(first_login["ip"], json!("127.0.0.1"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_identity_needs_a_fresh_valid_signature() {
    let s = server(300).await;
    let admin_id = login(&s, ADMIN_EMAIL, ADMIN_PASSWORD).await.body["id"].as_str().unwrap().to_string();
    assert_eq!(session(&s, &admin_id, "admin").get("/api/projects").await.status, 200);
    let created = session(&s, &admin_id, "admin").post("/api/projects", &json!({"name": "From the dashboard"})).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["created_by"], json!(admin_id));
    // Forged (wrong secret), stale (2 minutes old) and unsigned headers are ignored: no identity, no key → 401.
    let now = chrono::Utc::now().timestamp();
    for c in [
        session_at(&s, &admin_id, "admin", "not-the-secret", now),
        session_at(&s, &admin_id, "admin", PROXY_SECRET, now - 120),
    ] {
        let r = c.get("/api/projects").await;
        assert_eq!((r.status, r.detail()), (401, "Missing X-API-Key header"), "{}", r.text);
    }
    let mut unsigned = s.client(None);
    unsigned.headers = vec![("X-User-Id".into(), admin_id.clone()), ("X-User-Role".into(), "admin".into())];
    assert_eq!(unsigned.get("/api/projects").await.status, 401);
    s.stop().await;

    // Without LANGSIGHT_PROXY_SECRET, or from a peer that is not a trusted proxy, even valid-looking headers are ignored.
    let s = TestServer::start_with(|c| {
        c.api_keys = vec![Secret(ADMIN_KEY.into())];
        c.users.admin_email = Some(ADMIN_EMAIL.into());
        c.users.admin_password = Some(Secret(ADMIN_PASSWORD.into()));
        c.users.proxy_secret = Some(Secret(PROXY_SECRET.into()));
        c.trusted_proxy_cidrs = langsight_server::config::parse_cidrs("10.0.0.0/8").unwrap();
    })
    .await;
    let admin_id = login(&s, ADMIN_EMAIL, ADMIN_PASSWORD).await.body["id"].as_str().unwrap().to_string();
    assert_eq!(session(&s, &admin_id, "admin").get("/api/projects").await.status, 401);
    s.stop().await;
}

/// Every write route, with a body that would be valid for an admin.
fn write_routes(project: &str) -> Vec<(reqwest::Method, String, Value)> {
    use reqwest::Method as M;
    vec![
        (M::POST, "/api/auth/api-keys".into(), json!({"name": "k"})),
        (M::DELETE, "/api/auth/api-keys/some-key".into(), json!(null)),
        (M::POST, "/api/projects".into(), json!({"name": "p"})),
        (M::PATCH, format!("/api/projects/{project}"), json!({"name": "renamed"})),
        (M::DELETE, format!("/api/projects/{project}"), json!(null)),
        (M::POST, format!("/api/projects/{project}/members"), json!({"user_id": "u"})),
        (M::PATCH, format!("/api/projects/{project}/members/u"), json!({"role": "viewer"})),
        (M::DELETE, format!("/api/projects/{project}/members/u"), json!(null)),
        (M::POST, "/api/users/invite".into(), json!({"email": "x@example.com"})),
        (M::PATCH, "/api/users/u/role".into(), json!({"role": "admin"})),
        (M::DELETE, "/api/users/u".into(), json!(null)),
        (M::POST, format!("/api/health/check?project_id={project}"), json!({})),
        (M::PUT, format!("/api/servers/metadata/s?project_id={project}"), json!({})),
        (M::DELETE, format!("/api/servers/metadata/s?project_id={project}"), json!(null)),
        (M::POST, format!("/api/servers/discover?project_id={project}"), json!({})),
        (M::POST, format!("/api/servers/s/tools?project_id={project}"), json!({"tools": []})),
        (M::POST, format!("/api/alerts/config?project_id={project}"), json!({})),
        (M::POST, format!("/api/alerts/test?project_id={project}"), json!({})),
        (M::POST, format!("/api/alerts/a/ack?project_id={project}"), json!({})),
        (M::POST, format!("/api/alerts/a/resolve?project_id={project}"), json!({})),
        (M::POST, format!("/api/alerts/a/snooze?project_id={project}"), json!({"minutes": 15})),
        (
            M::POST,
            format!("/api/slos?project_id={project}"),
            json!({"agent_name": "a", "metric": "success_rate", "target": 90}),
        ),
        (M::DELETE, format!("/api/slos/x?project_id={project}"), json!(null)),
        (M::GET, "/api/audit/logs".into(), json!(null)),
        (M::GET, "/api/users".into(), json!(null)),
    ]
}

struct Tenants {
    a: String,
    b: String,
    b_session: String,
    key_a: Client,
    viewer_a: Client,
}

async fn tenants(s: &TestServer) -> Tenants {
    let admin = s.admin();
    let a = admin.post("/api/projects", &json!({"name": "Alpha"})).await.body["id"].as_str().unwrap().to_string();
    let b = admin.post("/api/projects", &json!({"name": "Beta"})).await.body["id"].as_str().unwrap().to_string();
    let viewer = user(s, "member-a@example.com", "viewer").await;
    let added = admin.post(&format!("/api/projects/{a}/members"), &json!({"user_id": viewer, "role": "viewer"})).await;
    assert_eq!(added.status, 201, "{}", added.text);
    let key = admin.post("/api/auth/api-keys", &json!({"name": "a-viewer", "role": "viewer", "project_id": a})).await;
    let (a_session, b_session) = (session_id(), session_id());
    assert_eq!(admin.ingest(&agent_run(&a_session, 10, Some(&a))).await.status, 202);
    assert_eq!(admin.ingest(&agent_run(&b_session, 10, Some(&b))).await.status, 202);
    // B-only data in every domain: a failing session (alert), server metadata, an SLO.
    let failing = json!([{"span_id": "bf-1", "span_type": "tool_call", "session_id": session_id(), "server_name": "beta-secret-server",
        "tool_name": "t", "started_at": chrono::Utc::now().to_rfc3339(), "ended_at": chrono::Utc::now().to_rfc3339(),
        "status": "error", "error": "boom", "project_id": b, "agent_name": "beta-secret-agent"}]);
    assert_eq!(admin.ingest(&failing).await.status, 202);
    assert_eq!(
        admin
            .put(
                &format!("/api/servers/metadata/beta-secret-server?project_id={b}"),
                &json!({"description": "beta only"})
            )
            .await
            .status,
        200
    );
    assert_eq!(
        admin
            .post(
                &format!("/api/slos?project_id={b}"),
                &json!({"agent_name": "beta-secret-agent", "metric": "success_rate", "target": 90})
            )
            .await
            .status,
        201
    );
    Tenants { key_a: s.client(key.body["key"].as_str()), viewer_a: session(s, &viewer, "viewer"), a, b, b_session }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_never_write() {
    let s = server(300).await;
    let t = tenants(&s).await;
    for (who, c) in [("viewer key", &t.key_a), ("viewer session", &t.viewer_a)] {
        for (method, path, body) in write_routes(&t.a) {
            let body = (!body.is_null()).then(|| serde_json::to_vec(&body).unwrap());
            let r = c.send(method.clone(), &path, body).await;
            assert_eq!(r.status, 403, "{who} {method} {path}: {}", r.text);
        }
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_never_see_each_other() {
    let s = server(300).await;
    let t = tenants(&s).await;
    let (a, b) = (&t.a, &t.b);
    let reads = [
        format!("/api/agents/sessions?project_id={b}"),
        format!("/api/agents/sessions/{}?project_id={b}", t.b_session),
        format!("/api/alerts/feed?status=all&project_id={b}"),
        format!("/api/alerts/counts?project_id={b}"),
        format!("/api/alerts/config?project_id={b}"),
        format!("/api/health/servers?project_id={b}"),
        format!("/api/health/servers/invocations?project_id={b}"),
        format!("/api/health/servers/beta-secret-server/logs?project_id={b}"),
        format!("/api/servers/metadata?project_id={b}"),
        format!("/api/servers/metadata/beta-secret-server?project_id={b}"),
        format!("/api/slos?project_id={b}"),
        format!("/api/slos/status?project_id={b}"),
        format!("/api/projects/{b}"),
        format!("/api/projects/{b}/members"),
    ];
    let secrets = [t.b_session.as_str(), "beta-secret-server", "beta-secret-agent", "Beta"];
    for path in &reads {
        // The viewer session asking for B: 404, as if B did not exist.
        let r = t.viewer_a.get(path).await;
        assert_eq!(r.status, 404, "session {path}: {}", r.text);
        // The key bound to A is confined to A whatever it asks for: never B's data, B's own resources 404.
        let r = t.key_a.get(path).await;
        assert!(r.status == 200 || r.status == 404, "key {path}: {}", r.text);
        // (An id the caller sent may be echoed back in a 404; anything else of B's is a leak.)
        for secret in secrets.iter().filter(|x| !path.contains(*x)) {
            assert!(!r.text.contains(secret), "key {path} leaked {secret}: {}", r.text);
        }
    }
    // Their own project works for both.
    for c in [&t.key_a, &t.viewer_a] {
        let r = c.get(&format!("/api/agents/sessions?project_id={a}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body.as_array().unwrap().len(), 1);
    }
    // The project list: a viewer user sees their memberships; a bound key is refused (instance-wide).
    let projects = t.viewer_a.get("/api/projects").await.body;
    let names: Vec<&str> = projects.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Alpha"]);
    assert_eq!(t.key_a.get("/api/projects").await.status, 403);
    // The live stream: B's events never reach A's viewers.
    let url = format!("{}/api/live/events?project_id={b}", s.url);
    let r = test_support::http().get(&url).headers(header_map(&t.viewer_a)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let mut stream =
        test_support::sse::SseStream::connect(&format!("{}/api/live/events", s.url), t.key_a.key.as_deref(), None)
            .await;
    assert_eq!(s.admin().ingest(&agent_run(&session_id(), 3, Some(b))).await.status, 202);
    let marker = session_id();
    assert_eq!(s.admin().ingest(&agent_run(&marker, 3, Some(a))).await.status, 202);
    let has = |f: &test_support::sse::Frame, what: &str| f.data.as_deref().is_some_and(|d| d.contains(what));
    let frames = stream.read_until(Duration::from_secs(5), |f| f.iter().any(|f| has(f, &marker))).await;
    assert!(frames.iter().any(|f| has(f, &marker)), "A's own event arrives");
    assert!(frames.iter().all(|f| !has(f, b.as_str())), "B's events reached A's key");
    drop(stream);
    s.stop().await;
}

fn header_map(c: &Client) -> reqwest::header::HeaderMap {
    let mut h = reqwest::header::HeaderMap::new();
    for (k, v) in &c.headers {
        h.insert(reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    h
}
