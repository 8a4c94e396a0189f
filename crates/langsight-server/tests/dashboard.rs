//! The dashboard in a real browser: Debian's Chromium driven by playwright-core (tests/browser/dashboard.cjs)
//! against a real server with real data and a real MCP server. Screenshots of each page (1280x800) are kept in
//! `$LANGSIGHT_SCREENSHOTS` (default: target/dashboard-screenshots) as CI output.

use langsight_monitor::{ServerSpec, Transport};
use langsight_server::config::{MonitoredServer, Secret};
use langsight_shared::breaker::BreakerConfig;
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;
use test_support::{agent_run, session_id, TestServer, ADMIN_KEY};

fn npm_dir() -> PathBuf {
    std::env::var("LANGSIGHT_TEST_NPM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/langsight-test-npm"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_in_a_real_browser() {
    let modules = npm_dir().join("node_modules");
    assert!(modules.join("playwright-core").exists(), "run ./scripts/test (it installs playwright-core and chromium)");
    let chromium =
        ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().find(|p| std::path::Path::new(p).exists());
    let chromium = chromium.expect("Debian's chromium is installed (./scripts/test installs it)");

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("fixture.json");
    std::fs::write(
        &state,
        json!({"mode": "ok", "tools": [{"name": "search", "description": "Search the <b>docs</b>",
        "inputSchema": {"type": "object", "properties": {"q": {"type": "string"}}}}]})
        .to_string(),
    )
    .unwrap();
    let exe = std::env::current_exe().unwrap();
    let fixture = exe.parent().and_then(|d| d.parent()).unwrap().join("mcp-fixture");
    let server = TestServer::start_with(|c| {
        c.api_keys = vec![Secret(ADMIN_KEY.into())];
        c.monitor_enabled = false;
        // Security scans look CVEs up here: a closed port, so the scan never leaves the machine.
        c.osv_url = format!("http://127.0.0.1:{}", test_support::redis::free_port());
        c.users.admin_email = Some("admin@example.com".into());
        c.users.admin_password = Some(Secret("correct horse battery staple".into()));
        c.servers = vec![MonitoredServer {
            spec: ServerSpec {
                name: "docs".into(),
                transport: Transport::Stdio {
                    command: fixture.display().to_string(),
                    args: vec!["--stdio".into()],
                    env: vec![("MCP_FIXTURE_STATE".into(), state.display().to_string())],
                },
                timeout: Duration::from_secs(5),
                health_tool: None,
                health_tool_args: Default::default(),
            },
            breaker: BreakerConfig { failure_threshold: 2, cooldown_ms: 600_000, half_open_max_calls: 1 },
        }];
    })
    .await;
    let admin = server.admin();

    // A viewer account, a session whose payload is hostile HTML, and a failing session (an alert).
    let invite = admin.post("/api/users/invite", &json!({"email": "viewer@example.com", "role": "viewer"})).await;
    let accepted = admin
        .post("/api/users/accept-invite", &json!({"token": invite.body["token"], "password": "viewer passphrase 42"}))
        .await;
    assert_eq!(accepted.status, 201, "{}", accepted.text);
    let project = admin.post("/api/projects", &json!({"name": "Team"})).await.body["id"].as_str().unwrap().to_string();
    let member = json!({"user_id": accepted.body["id"], "role": "viewer"});
    assert_eq!(admin.post(&format!("/api/projects/{project}/members"), &member).await.status, 201);
    let sid = session_id();
    let mut run = agent_run(&sid, 8, None);
    run[2]["output_result"] = json!("<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned=2\">");
    assert_eq!(admin.ingest(&run).await.status, 202);
    let now = chrono::Utc::now().to_rfc3339();
    let failing_session = session_id();
    let failing = json!([{"span_id": "f1", "span_type": "tool_call", "session_id": failing_session, "server_name": "docs",
        "tool_name": "search", "agent_name": "writer", "started_at": now, "ended_at": now, "status": "error", "error": "boom"}]);
    assert_eq!(admin.ingest(&failing).await.status, 202);
    // A failing session whose agent name is HTML: its alert message (markdown) must show it as text.
    let hostile = json!([{"span_id": "f3", "span_type": "tool_call", "session_id": session_id(), "server_name": "docs",
        "tool_name": "search", "agent_name": "<script>window.__pwned = 3</script>", "started_at": now, "ended_at": now,
        "status": "error", "error": "boom"}]);
    assert_eq!(admin.ingest(&hostile).await.status, 202);
    // The same failure inside the viewer's project: global alerts are for instance admins only.
    let in_team = json!([{"span_id": "f2", "span_type": "tool_call", "session_id": session_id(), "server_name": "docs",
        "tool_name": "search", "agent_name": "writer", "started_at": now, "ended_at": now, "status": "error",
        "error": "boom", "project_id": project}]);
    assert_eq!(admin.ingest(&in_team).await.status, 202);

    // The project's own run (for the viewer and the project-bound admin), with a hand-off for the lineage graph.
    let team_session = session_id();
    assert_eq!(admin.ingest(&agent_run(&team_session, 8, Some(&project))).await.status, 202);
    let handoff = json!([{"span_id": "h1", "span_type": "handoff", "session_id": sid, "server_name": "crewai",
        "tool_name": "writer", "agent_name": "researcher", "target_agent_name": "writer", "started_at": now, "ended_at": now,
        "status": "success"}]);
    assert_eq!(admin.ingest(&handoff).await.status, 202);
    // An admin key bound to the project: the browser sends it as X-API-Key (a CI dashboard, a team admin).
    let bound =
        admin.post("/api/auth/api-keys", &json!({"name": "team-admin", "role": "admin", "project_id": project})).await;
    assert_eq!(bound.status, 201, "{}", bound.text);

    let shots = std::env::var("LANGSIGHT_SCREENSHOTS").map(PathBuf::from).unwrap_or_else(|_| {
        exe.parent().and_then(|d| d.parent()).and_then(|d| d.parent()).unwrap().join("dashboard-screenshots")
    });
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/dashboard.cjs");
    let out = tokio::process::Command::new("node")
        .arg(&script)
        .env("NODE_PATH", &modules)
        .env("URL", &server.url)
        .env("CHROMIUM", chromium)
        .env("ADMIN_KEY", ADMIN_KEY)
        .env("ADMIN_EMAIL", "admin@example.com")
        .env("ADMIN_PASSWORD", "correct horse battery staple")
        .env("VIEWER_EMAIL", "viewer@example.com")
        .env("VIEWER_PASSWORD", "viewer passphrase 42")
        .env("SESSION", &sid)
        .env("FAILING_SESSION", &failing_session)
        .env("PROJECT", &project)
        .env("TEAM_SESSION", &team_session)
        .env("BOUND_KEY", bound.body["key"].as_str().unwrap())
        .env("FIXTURE_STATE", &state)
        .env("SHOTS", &shots)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(360), out)
        .await
        .expect("the browser test finishes")
        .expect("node runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{stdout}");
    assert!(out.status.success(), "browser test failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("dashboard: all steps passed"), "{stdout}");
    // Every page, in both themes, for each role that walks it.
    let pages = [
        "overview",
        "sessions",
        "session",
        "live",
        "agents",
        "agent",
        "lineage",
        "servers",
        "server",
        "security",
        "alerts",
        "costs",
        "slos",
        "projects",
        "keys",
        "settings-users",
        "settings-audit",
        "settings-pricing",
        "settings-providers",
        "settings-channels",
        "settings-instance",
    ];
    for page in pages {
        for theme in ["", "-light"] {
            assert!(shots.join(format!("{page}{theme}.png")).exists(), "screenshot of {page}{theme}");
        }
    }
    for role in ["viewer", "bound"] {
        for page in
            ["overview", "sessions", "session", "live", "agents", "agent", "lineage", "servers", "costs", "security"]
        {
            assert!(shots.join(format!("{role}-{page}.png")).exists(), "screenshot of {role}-{page}");
        }
    }
    server.stop().await;
}

/// The pages are served with a strict Content-Security-Policy, and the session cookie is HttpOnly and
/// SameSite=Strict; writes with it need the CSRF header.
#[tokio::test]
async fn pages_are_locked_down_and_the_session_cookie_is_safe() {
    let server = TestServer::start_with(|c| {
        c.api_keys = vec![Secret(ADMIN_KEY.into())];
        c.users.admin_email = Some("admin@example.com".into());
        c.users.admin_password = Some(Secret("correct horse battery staple".into()));
    })
    .await;
    let http = test_support::http();
    let page = http.get(format!("{}/", server.url)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(page.text().await.unwrap().contains("/app.js"));
    let login = http
        .post(format!("{}/api/auth/login", server.url))
        .json(&json!({"email": "admin@example.com", "password": "correct horse battery staple"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let value = cookie.split(';').next().unwrap().to_string();
    let me = http.get(format!("{}/api/auth/me", server.url)).header("Cookie", &value).send().await.unwrap();
    assert_eq!(me.json::<serde_json::Value>().await.unwrap()["role"], json!("admin"));
    let body = json!({"name": "x"});
    let no_csrf = http
        .post(format!("{}/api/auth/api-keys", server.url))
        .header("Cookie", &value)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(no_csrf.status(), 403, "a cookie write without the CSRF header");
    let with_csrf = http
        .post(format!("{}/api/auth/api-keys", server.url))
        .header("Cookie", &value)
        .header("X-LangSight-CSRF", "1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(with_csrf.status(), 201);
    let forged =
        http.get(format!("{}/api/auth/me", server.url)).header("Cookie", format!("{value}0")).send().await.unwrap();
    assert_eq!(forged.status(), 401, "a tampered cookie is no session");
    let wrong = http
        .post(format!("{}/api/auth/login", server.url))
        .json(&json!({"email": "admin@example.com", "password": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    server.stop().await;
}

/// Everyone who should get in does (tests/browser/access.cjs): a project viewer lands in their project with
/// its data and sees no raw API error; an invitation link sets a password and lands logged in; a server with
/// no user offers a local browser "create the first admin", then an SDK key and a first span that arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_gets_in() {
    let modules = npm_dir().join("node_modules");
    assert!(modules.join("playwright-core").exists(), "run ./scripts/test (it installs playwright-core and chromium)");
    let chromium =
        ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().find(|p| std::path::Path::new(p).exists());
    let chromium = chromium.expect("Debian's chromium is installed (./scripts/test installs it)");
    let server = TestServer::start_with(|c| {
        c.api_keys = vec![Secret(ADMIN_KEY.into())];
        c.monitor_enabled = false;
        c.users.admin_email = Some("admin@example.com".into());
        c.users.admin_password = Some(Secret("correct horse battery staple".into()));
    })
    .await;
    let admin = server.admin();
    let invite = admin.post("/api/users/invite", &json!({"email": "viewer@example.com", "role": "viewer"})).await;
    let accepted = admin
        .post("/api/users/accept-invite", &json!({"token": invite.body["token"], "password": "viewer passphrase 42"}))
        .await;
    assert_eq!(accepted.status, 201, "{}", accepted.text);
    let project = admin.post("/api/projects", &json!({"name": "Team"})).await.body["id"].as_str().unwrap().to_string();
    let member = json!({"user_id": accepted.body["id"], "role": "viewer"});
    assert_eq!(admin.post(&format!("/api/projects/{project}/members"), &member).await.status, 201);
    let in_project = session_id();
    assert_eq!(admin.ingest(&agent_run(&in_project, 4, Some(&project))).await.status, 202);
    assert_eq!(admin.ingest(&agent_run(&session_id(), 4, None)).await.status, 202);
    // The invitation the browser accepts: its link is served by the binary.
    let invite = admin.post("/api/users/invite", &json!({"email": "invitee@example.com", "role": "viewer"})).await;
    assert_eq!(invite.status, 201, "{}", invite.text);
    let link = invite.body["invite_url"].as_str().unwrap();
    let token = invite.body["token"].as_str().unwrap();
    assert!(link.ends_with(&format!("/accept-invite?token={token}")), "{link}");
    let page = test_support::http_get(format!("{}/accept-invite?token={token}", server.url)).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("script-src 'self'"));

    // Nothing configured: no key, no admin.
    let fresh = TestServer::start_with(|c| c.monitor_enabled = false).await;

    let shots = std::env::var("LANGSIGHT_SCREENSHOTS").map(PathBuf::from).unwrap_or_else(|_| {
        let exe = std::env::current_exe().unwrap();
        exe.parent().and_then(|d| d.parent()).and_then(|d| d.parent()).unwrap().join("dashboard-screenshots")
    });
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/access.cjs");
    let out = tokio::process::Command::new("node")
        .arg(&script)
        .env("NODE_PATH", &modules)
        .env("URL", &server.url)
        .env("FRESH_URL", &fresh.url)
        .env("CHROMIUM", chromium)
        .env("VIEWER_EMAIL", "viewer@example.com")
        .env("VIEWER_PASSWORD", "viewer passphrase 42")
        .env("PROJECT", &project)
        .env("PROJECT_SESSION", &in_project)
        .env("INVITE_URL", format!("{}/accept-invite?token={token}", server.url))
        .env("INVITEE_EMAIL", "invitee@example.com")
        .env("INVITEE_PASSWORD", "invitee passphrase 7")
        .env("SHOTS", &shots)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .expect("the browser test finishes")
        .expect("node runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{stdout}");
    assert!(out.status.success(), "browser test failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("access: all steps passed"), "{stdout}");
    for page in ["viewer-overview", "accept-invite", "invite-landed", "setup", "welcome"] {
        for theme in ["", "-light"] {
            assert!(shots.join(format!("{page}{theme}.png")).exists(), "screenshot of {page}{theme}");
        }
    }
    fresh.stop().await;
    server.stop().await;
}
