//! `/api/servers`: metadata per project, the SSRF rules on submitted URLs (and the switch that lifts the
//! private-range rule), registered servers health-checked by the monitor and visible only to their project,
//! discovery from spans, and the SDK's tool capture.

use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use test_support::{agent_run, session_id, TestServer, ADMIN_KEY};

/// The MCP fixture over Streamable HTTP on a free port; killed when dropped.
struct HttpFixture {
    child: Child,
    url: String,
}

impl HttpFixture {
    fn start() -> HttpFixture {
        let exe = std::env::current_exe().unwrap();
        let bin = exe.parent().and_then(|d| d.parent()).unwrap().join("mcp-fixture");
        assert!(bin.exists(), "build the fixture first: cargo build -p mcp-fixture");
        let mut child = Command::new(bin).arg("--http").stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("LISTENING ").expect("the fixture prints its url").to_string();
        HttpFixture { child, url }
    }
}

impl Drop for HttpFixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn project(server: &TestServer, name: &str) -> String {
    let r = server.admin().post("/api/projects", &json!({"name": name})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["id"].as_str().unwrap().to_string()
}

fn url_error(r: &test_support::Reply) -> String {
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "url"]), "{}", r.text);
    r.body["detail"][0]["msg"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitted_urls_pass_the_ssrf_rules() {
    let server =
        TestServer::start_with(|c| c.api_keys = vec![langsight_server::config::Secret(ADMIN_KEY.into())]).await;
    let p = project(&server, "ssrf").await;
    let put = |name: &str, url: &str| {
        let (admin, path, body) =
            (server.admin(), format!("/api/servers/metadata/{name}?project_id={p}"), json!({"url": url}));
        async move { admin.put(&path, &body).await }
    };
    assert!(url_error(&put("a", "http://169.254.169.254/latest").await).contains("cloud-metadata"));
    assert!(url_error(&put("a", "ftp://example.com/mcp").await).contains("scheme must be http or https"));
    assert!(url_error(&put("a", "http://metadata.google.internal/").await).contains("blocked hostname"));
    for private in ["http://localhost:3000/mcp", "http://10.0.0.8/mcp", "http://127.0.0.1:9/mcp", "http://[::1]/mcp"] {
        let msg = url_error(&put("a", private).await);
        assert!(msg.contains("LANGSIGHT_ALLOW_PRIVATE_MCP_URLS=true"), "{private}: {msg}");
    }
    // A name resolving to a private address is judged by the address.
    assert!(url_error(&put("a", "http://app.localhost/mcp").await).contains("private"));
    let bad = server
        .admin()
        .put(&format!("/api/servers/metadata/a?project_id={p}"), &json!({"transport": "carrier-pigeon"}))
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.text.contains("Supported: stdio, sse, streamable_http"), "{}", bad.text);
    // Nothing was saved by the refusals; an empty URL is fine.
    assert_eq!(server.admin().get(&format!("/api/servers/metadata?project_id={p}")).await.body, json!([]));
    let ok = put("a", "").await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.body["url"], json!(""));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_servers_are_checked_for_their_project_only() {
    let fixture = HttpFixture::start();
    let server = TestServer::start_with(|c| {
        c.api_keys = vec![langsight_server::config::Secret(ADMIN_KEY.into())];
        c.allow_private_mcp_urls = true;
    })
    .await;
    let (a, b) = (project(&server, "alpha").await, project(&server, "beta").await);
    let admin = server.admin();
    let body = json!({"description": "Search", "owner": "data-team", "tags": ["prod"], "transport": "http", "url": fixture.url, "runbook_url": "https://wiki.example/runbook"});
    let saved = admin.put(&format!("/api/servers/metadata/search?project_id={a}"), &body).await;
    assert_eq!(saved.status, 200, "{}", saved.text);
    assert_eq!(saved.body["transport"], json!("streamable_http"));
    assert_eq!(saved.body["project_id"], json!(a));
    assert_eq!(saved.body["tags"], json!(["prod"]));
    // Updating keeps the id and creation time.
    let again = admin
        .put(&format!("/api/servers/metadata/search?project_id={a}"), &json!({"url": fixture.url, "owner": "sre"}))
        .await;
    assert_eq!(
        (again.body["id"].clone(), again.body["created_at"].clone()),
        (saved.body["id"].clone(), saved.body["created_at"].clone())
    );
    assert_eq!(again.body["owner"], json!("sre"));
    assert_eq!(admin.get(&format!("/api/servers/metadata/search?project_id={b}")).await.status, 404);

    // An on-demand check covers the project's registered server.
    let checked = admin.post(&format!("/api/health/check?project_id={a}"), &json!({})).await;
    assert_eq!(checked.status, 200, "{}", checked.text);
    let row =
        checked.body.as_array().unwrap().iter().find(|r| r["server_name"] == json!("search")).expect("checked").clone();
    assert_eq!(row["status"], json!("up"), "{row}");
    assert_eq!(row["project_id"], json!(a));
    let listed = admin.get(&format!("/api/health/servers?project_id={a}")).await;
    assert!(
        listed
            .body
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["server_name"] == json!("search") && r["status"] == json!("up")),
        "{}",
        listed.text
    );
    let other = admin.get(&format!("/api/health/servers?project_id={b}")).await;
    assert!(!other.text.contains("\"search\""), "project B must not see A's server: {}", other.text);
    assert_eq!(admin.get(&format!("/api/health/servers/search?project_id={b}")).await.status, 404);
    let detail = admin.get(&format!("/api/health/servers/search?project_id={a}")).await;
    assert_eq!(detail.body["circuit_state"], json!("closed"));

    // Deleting the metadata stops the checks of that server.
    assert_eq!(admin.delete(&format!("/api/servers/metadata/search?project_id={a}")).await.status, 204);
    assert_eq!(
        admin.delete(&format!("/api/servers/metadata/search?project_id={a}")).await.detail(),
        "No metadata for server 'search'"
    );
    let after = admin.post(&format!("/api/health/check?project_id={a}"), &json!({})).await;
    assert!(!after.text.contains("\"search\""), "{}", after.text);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_url_that_becomes_private_is_blocked_at_check_time() {
    // Saved while private URLs were allowed, checked after the switch was turned off: refused, never contacted.
    let fixture = HttpFixture::start();
    let server = TestServer::start_with(|c| {
        c.api_keys = vec![langsight_server::config::Secret(ADMIN_KEY.into())];
        c.allow_private_mcp_urls = true;
    })
    .await;
    let p = project(&server, "gamma").await;
    let r =
        server.admin().put(&format!("/api/servers/metadata/inner?project_id={p}"), &json!({"url": fixture.url})).await;
    assert_eq!(r.status, 200);
    let server =
        server.stop().await.restart(|c| c.api_keys = vec![langsight_server::config::Secret(ADMIN_KEY.into())]).await;
    let checked = server.admin().post(&format!("/api/health/check?project_id={p}"), &json!({})).await;
    let row =
        checked.body.as_array().unwrap().iter().find(|r| r["server_name"] == json!("inner")).expect("checked").clone();
    assert_eq!(row["status"], json!("down"));
    assert!(row["error"].as_str().unwrap().starts_with("blocked URL — "), "{row}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_tool_capture() {
    let server =
        TestServer::start_with(|c| c.api_keys = vec![langsight_server::config::Secret(ADMIN_KEY.into())]).await;
    let p = project(&server, "delta").await;
    let admin = server.admin();
    assert_eq!(admin.ingest(&agent_run(&session_id(), 12, Some(&p))).await.status, 202);
    // Ingest registered the tool calls' servers already; discovery finds them again once they are deleted.
    let listed = admin.get(&format!("/api/servers/metadata?project_id={p}")).await.body;
    let mut names: Vec<&str> = listed.as_array().unwrap().iter().filter_map(|s| s["server_name"].as_str()).collect();
    names.sort();
    assert_eq!(names, ["filesystem", "github"], "registered at ingest: {listed}");
    for name in ["filesystem", "github"] {
        assert_eq!(admin.delete(&format!("/api/servers/metadata/{name}?project_id={p}")).await.status, 204);
    }
    let found = admin.post(&format!("/api/servers/discover?project_id={p}"), &json!({})).await;
    assert_eq!(found.status, 200, "{}", found.text);
    assert_eq!(found.body["servers"], json!(["filesystem", "github"]));
    assert_eq!(found.body["discovered"], json!(2));
    let again = admin.post(&format!("/api/servers/discover?project_id={p}"), &json!({})).await;
    assert_eq!(again.body["discovered"], json!(0), "already known");

    let tools = json!({"tools": [
        {"name": "read_file", "description": "Read a file", "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}},
        {"name": "stringly", "description": "Schema sent as a string", "input_schema": "{\"type\":\"object\"}"}
    ], "project_id": "ignored"});
    let up = admin.post(&format!("/api/servers/filesystem/tools?project_id={p}"), &tools).await;
    assert_eq!(up.body, json!({"upserted": 2}), "{}", up.text);
    assert_eq!(
        admin.post(&format!("/api/servers/filesystem/tools?project_id={p}"), &json!({"tools": []})).await.body,
        json!({"upserted": 0})
    );
    let listed = admin.get(&format!("/api/servers/filesystem/tools?project_id={p}")).await;
    let rows = listed.body.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["tool_name"], json!("read_file"));
    assert_eq!(rows[0]["input_schema"]["properties"]["path"]["type"], json!("string"));
    assert_eq!(rows[1]["input_schema"], json!({"type": "object"}));
    let missing = admin.post(&format!("/api/servers/filesystem/tools?project_id={p}"), &json!({"nope": 1})).await;
    assert_eq!(missing.status, 422);
    assert_eq!(missing.body["detail"][0]["loc"], json!(["body", "tools"]));

    // Viewer keys may read but not write.
    let key = admin.post("/api/auth/api-keys", &json!({"name": "v", "role": "viewer", "project_id": p})).await;
    let viewer = server.client(key.body["key"].as_str());
    assert_eq!(viewer.get("/api/servers/metadata").await.status, 200);
    let denied = viewer.put("/api/servers/metadata/x", &json!({})).await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.detail(), "Write operations require an admin API key");
    assert_eq!(viewer.post("/api/servers/filesystem/tools", &tools).await.status, 403);
    server.stop().await;
}
