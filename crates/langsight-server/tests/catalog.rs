//! The catalog filled at ingest, as the original does: the SDK's spans register their agents and the servers
//! of their tool calls in the span's project, with first/last seen; re-ingesting duplicates nothing and keeps
//! first seen; what a user edited survives; projects do not see each other's names.

use serde_json::{json, Value};
use test_support::{agent_run, session_id, Client, TestServer};

async fn project(server: &TestServer, name: &str) -> String {
    let r = server.admin().post("/api/projects", &json!({"name": name})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["id"].as_str().unwrap().to_string()
}

async fn ok(admin: &Client, path: &str) -> Value {
    let r = admin.get(path).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text);
    r.body
}

fn names(list: &Value, field: &str) -> Vec<String> {
    list.as_array().unwrap().iter().map(|e| e[field].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_spans_register_agents_and_servers_per_project_idempotently() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let (p1, p2) = (project(&server, "catalog-one").await, project(&server, "catalog-two").await);
    let agent = |p: &str| format!("/api/agents/metadata/researcher?project_id={p}");
    assert_eq!(admin.get(&agent(&p1)).await.status, 404, "nothing before any span");

    // An SDK run: agent `researcher`; tool calls on `github` and `filesystem`; agent spans name `crewai` and
    // `anthropic` in server_name, which are not MCP servers.
    assert_eq!(admin.ingest(&agent_run(&session_id(), 20, Some(&p1))).await.status, 202);
    let a = ok(&admin, &agent(&p1)).await;
    assert_eq!((a["agent_name"].clone(), a["project_id"].clone()), (json!("researcher"), json!(p1)));
    assert_eq!((a["description"].clone(), a["status"].clone()), (json!(""), json!("active")));
    let first_seen = a["first_seen_at"].as_str().expect("first_seen_at set").to_string();
    assert_eq!(a["last_seen_at"].as_str(), Some(first_seen.as_str()), "one sighting so far");
    let servers = ok(&admin, &format!("/api/servers/metadata?project_id={p1}")).await;
    assert_eq!(names(&servers, "server_name"), ["filesystem", "github"]);
    assert!(
        servers.as_array().unwrap().iter().all(|s| s["first_seen_at"].is_string() && s["last_seen_at"].is_string()),
        "{servers}"
    );
    let gh = ok(&admin, &format!("/api/servers/metadata/github?project_id={p1}")).await;
    assert_eq!(gh["first_seen_at"].as_str().map(|s| s.len()), Some(first_seen.len()));
    // Per project: the other project's catalog is untouched.
    assert_eq!(ok(&admin, &format!("/api/agents/metadata?project_id={p2}")).await, json!([]));
    assert_eq!(ok(&admin, &format!("/api/servers/metadata?project_id={p2}")).await, json!([]));
    assert_eq!(ok(&admin, "/api/agents/metadata").await, json!([]), "nor the project-less one");

    // A user describes the agent and a server.
    let put = admin
        .put(&agent(&p1), &json!({"description": "Finds release notes", "owner": "docs-team", "tags": ["prod"]}))
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.body["first_seen_at"], json!(first_seen), "an edit keeps the sightings");
    let put = admin
        .put(
            &format!("/api/servers/metadata/github?project_id={p1}"),
            &json!({"description": "GitHub MCP", "owner": "infra"}),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);

    // More runs, in this process and after a restart (a cold cache): no duplicates, first seen kept, last
    // seen moves, the user's words stay.
    assert_eq!(admin.ingest(&agent_run(&session_id(), 20, Some(&p1))).await.status, 202);
    let server = server
        .stop()
        .await
        .restart(|c| c.api_keys = vec![langsight_server::config::Secret(test_support::ADMIN_KEY.into())])
        .await;
    let admin = server.admin();
    assert_eq!(admin.ingest(&agent_run(&session_id(), 20, Some(&p1))).await.status, 202);
    let agents = ok(&admin, &format!("/api/agents/metadata?project_id={p1}")).await;
    assert_eq!(names(&agents, "agent_name"), ["researcher"]);
    let a = &agents[0];
    assert_eq!(a["first_seen_at"], json!(first_seen));
    assert!(a["last_seen_at"].as_str().unwrap() > first_seen.as_str(), "last seen moved: {a}");
    assert_eq!(
        (a["description"].clone(), a["owner"].clone(), a["tags"].clone()),
        (json!("Finds release notes"), json!("docs-team"), json!(["prod"]))
    );
    let servers = ok(&admin, &format!("/api/servers/metadata?project_id={p1}")).await;
    assert_eq!(names(&servers, "server_name"), ["filesystem", "github"]);
    let gh = servers.as_array().unwrap().iter().find(|s| s["server_name"] == "github").unwrap();
    assert_eq!((gh["description"].clone(), gh["owner"].clone()), (json!("GitHub MCP"), json!("infra")));
    assert!(gh["last_seen_at"].as_str().unwrap() > gh["first_seen_at"].as_str().unwrap(), "{gh}");

    // The same run in the second project registers there, and only there.
    assert_eq!(admin.ingest(&agent_run(&session_id(), 20, Some(&p2))).await.status, 202);
    let other = ok(&admin, &agent(&p2)).await;
    assert_ne!(other["id"], a["id"]);
    assert_eq!(other["description"], json!(""));
    assert_eq!(
        names(&ok(&admin, &format!("/api/servers/metadata?project_id={p2}")).await, "server_name"),
        ["filesystem", "github"]
    );
    assert_eq!(ok(&admin, &format!("/api/agents/metadata?project_id={p1}")).await.as_array().unwrap().len(), 1);

    // A deleted entry of an agent still running comes back with its next span (this process forgets it).
    assert_eq!(admin.delete(&agent(&p1)).await.status, 204);
    assert_eq!(admin.get(&agent(&p1)).await.status, 404);
    assert_eq!(admin.ingest(&agent_run(&session_id(), 2, Some(&p1))).await.status, 202);
    let back = ok(&admin, &agent(&p1)).await;
    assert_eq!(back["description"], json!(""));
    assert!(back["first_seen_at"].as_str().unwrap() > first_seen.as_str());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_batch_registers_at_most_a_hundred_new_names() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let now = chrono::Utc::now().to_rfc3339();
    let sid = session_id();
    let spans: Vec<Value> = (0..150)
        .map(|i| {
            json!({"span_id": format!("s{i}"), "span_type": "agent", "session_id": sid, "server_name": "crew",
                   "tool_name": "step", "agent_name": format!("agent-{i:03}"), "started_at": now, "ended_at": now,
                   "status": "success"})
        })
        .collect();
    assert_eq!(admin.ingest(&Value::Array(spans.clone())).await.status, 202);
    let listed = ok(&admin, "/api/agents/metadata").await;
    assert_eq!(listed.as_array().unwrap().len(), 100, "the cap");
    // The rest are registered by the next batches that name them.
    assert_eq!(admin.ingest(&Value::Array(spans[100..].to_vec())).await.status, 202);
    assert_eq!(ok(&admin, "/api/agents/metadata").await.as_array().unwrap().len(), 150);
    server.stop().await;
}
