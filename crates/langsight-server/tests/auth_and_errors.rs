//! Authentication, authorisation and every kind of bad input: each gets the documented status and a
//! message saying what to fix; none produces a 500.

use langsight_server::config::Secret;
use serde_json::{json, Value};
use test_support::{agent_run, session_id, TestServer, ADMIN_KEY};

fn span(extra: Value) -> Value {
    let mut s = json!({"server_name": "s", "tool_name": "t", "status": "success",
        "started_at": "2026-03-17T12:00:00Z", "ended_at": "2026-03-17T12:00:01Z"});
    for (k, v) in extra.as_object().unwrap() {
        s[k] = v.clone();
    }
    s
}

#[tokio::test]
async fn bad_span_batches_get_422_saying_what_to_fix() {
    let server = TestServer::start().await;
    let c = server.admin();

    let r = c.ingest(&json!([span(json!({"session_id": "not-a-uuid"}))])).await;
    assert_eq!(r.status, 422);
    assert!(
        r.detail().starts_with("session_id must be a UUID4 (hex or standard form), got 'not-a-uuid'."),
        "{}",
        r.text
    );

    let mut missing = span(json!({}));
    missing.as_object_mut().unwrap().remove("server_name");
    let r = c.ingest(&json!([missing])).await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["detail"][0]["type"], json!("missing"));
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", 0, "server_name"]));

    let r = c.ingest(&json!([span(json!({"tool_name": "x".repeat(513)}))])).await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", 0, "tool_name"]));
    assert!(r.body["detail"][0]["msg"].as_str().unwrap().contains("at most 512"));

    let r = c.post_raw("/api/traces/spans", b"[{\"server_name\": ".to_vec()).await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["detail"][0]["type"], json!("json_invalid"));

    let r = c.ingest(&json!({"spans": []})).await;
    assert_eq!(r.status, 422);
    assert!(r.text.contains("valid list"), "{}", r.text);

    // Nothing of a rejected batch is stored.
    assert_eq!(c.get("/api/agents/sessions").await.body, json!([]));
}

#[tokio::test]
async fn bodies_over_10_mib_get_413() {
    let server = TestServer::start().await;
    let c = server.admin();
    let big = vec![b' '; 10 * 1024 * 1024 + 1];
    let r = c.post_raw("/api/traces/spans", big).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.detail(), "Payload too large (max 10 MB)");

    // Without Content-Length (chunked), the body is counted as it streams.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = server.url.trim_start_matches("http://").to_string();
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/traces/spans HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {ADMIN_KEY}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 1024 * 1024];
    for _ in 0..11 {
        // The server may answer and stop reading before we finish: a failed write is expected then.
        if sock.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await.is_err()
            || sock.write_all(&chunk).await.is_err()
            || sock.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = sock.write_all(b"0\r\n\r\n").await;
    let mut resp = Vec::new();
    let _ = sock.read_to_end(&mut resp).await;
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 413"), "{}", &text[..text.len().min(200)]);
    assert!(text.contains("Payload too large (max 10 MB)"));
}

#[tokio::test]
async fn missing_wrong_expired_and_revoked_keys() {
    let server = TestServer::start().await;
    let batch = agent_run(&session_id(), 3, None);

    let r = server.client(None).ingest(&batch).await;
    assert_eq!((r.status, r.detail()), (401, "Missing X-API-Key header"));
    assert_eq!(r.headers.get("www-authenticate").unwrap(), "ApiKey");

    let r = server.client(Some("nope")).ingest(&batch).await;
    assert_eq!((r.status, r.detail()), (403, "Invalid API key"));

    // A stored key: works, then expires (set in the database before its first use), then revoked.
    let created = server.admin().post("/api/auth/api-keys", &json!({"name": "ci"})).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let key = created.body["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("ls_") && key.len() == 67);
    assert_eq!(created.body["key_prefix"], json!(&key[..11]));

    let expiring = server.admin().post("/api/auth/api-keys", &json!({"name": "old"})).await;
    let old_key = expiring.body["key"].as_str().unwrap().to_string();
    let conn = rusqlite::Connection::open(&server.db_path).unwrap();
    conn.execute("UPDATE api_keys SET expires_at = 1 WHERE name = 'old'", []).unwrap();
    let r = server.client(Some(&old_key)).ingest(&batch).await;
    assert_eq!((r.status, r.detail()), (403, "API key has expired"));

    let stored = server.client(Some(&key));
    assert_eq!(stored.ingest(&batch).await.status, 202);
    // Bearer works as well as X-API-Key.
    let bearer = stored
        .http
        .get(format!("{}/api/agents/sessions?project_id=x", server.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status().as_u16(), 200);

    let id = created.body["id"].as_str().unwrap();
    assert_eq!(server.admin().delete(&format!("/api/auth/api-keys/{id}")).await.status, 204);
    let r = stored.ingest(&batch).await;
    assert_eq!((r.status, r.detail()), (403, "Invalid API key"));
    let again = server.admin().delete(&format!("/api/auth/api-keys/{id}")).await;
    assert_eq!((again.status, again.detail()), (404, "API key not found or already revoked"));

    let listed = server.admin().get("/api/auth/api-keys").await;
    let keys = listed.body.as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().any(|k| k["id"] == json!(id) && !k["revoked_at"].is_null()));
    assert!(!listed.text.contains(&key), "raw keys are never listed");
    assert!(!keys.iter().any(|k| k.get("key").is_some()));
}

#[tokio::test]
async fn key_creation_validates_its_input() {
    let server = TestServer::start().await;
    let c = server.admin();
    let r = c.post("/api/auth/api-keys", &json!({"name": "  "})).await;
    assert_eq!((r.status, r.detail()), (422, "Key name cannot be empty"));
    let r = c.post("/api/auth/api-keys", &json!({"name": "k", "expires_in_days": 0})).await;
    assert_eq!((r.status, r.detail()), (422, "expires_in_days must be > 0 or null"));
    let r = c.post("/api/auth/api-keys", &json!({"name": "k", "role": "root"})).await;
    assert_eq!(r.status, 422);
    let r = c.post("/api/auth/api-keys", &json!({"role": "viewer"})).await;
    assert_eq!(r.status, 422);
    assert_eq!(r.body["detail"][0]["loc"], json!(["body", "name"]));
    let r = c.post("/api/auth/api-keys", &json!({"name": "k", "project_id": "nope"})).await;
    assert_eq!(r.status, 404);
    let r = c.post("/api/auth/api-keys", &json!({"name": "forever", "expires_in_days": null})).await;
    assert_eq!((r.status, &r.body["expires_at"]), (201, &Value::Null));
}

#[tokio::test]
async fn viewer_keys_read_but_cannot_write_admin_routes() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let p = admin.post("/api/projects", &json!({"name": "Team A"})).await;
    assert_eq!(p.status, 201, "{}", p.text);
    let pid = p.body["id"].as_str().unwrap();
    let v = admin.post("/api/auth/api-keys", &json!({"name": "v", "role": "viewer", "project_id": pid})).await;
    let viewer = server.client(v.body["key"].as_str());
    for r in [viewer.post("/api/auth/api-keys", &json!({"name": "x"})).await, viewer.get("/api/auth/api-keys").await] {
        assert_eq!((r.status, r.detail()), (403, "Write operations require an admin API key"));
    }
    let r = viewer.post("/api/projects", &json!({"name": "x"})).await;
    assert_eq!(r.status, 403, "creating projects is instance-wide: {}", r.text);
    assert!(r.detail().contains("bound to project"), "{}", r.text);
    // Viewers may ingest (the SDK uses whatever key it has) and read.
    assert_eq!(viewer.ingest(&agent_run(&session_id(), 2, None)).await.status, 202);
    assert_eq!(viewer.get("/api/agents/sessions").await.body.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn project_bound_keys_are_confined_to_their_project() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let a = admin.post("/api/projects", &json!({"name": "A"})).await.body["id"].as_str().unwrap().to_string();
    let b = admin.post("/api/projects", &json!({"name": "B"})).await.body["id"].as_str().unwrap().to_string();
    let ka = admin.post("/api/auth/api-keys", &json!({"name": "a", "project_id": a})).await;
    let key_a = server.client(ka.body["key"].as_str());

    // Writing into B with A's key is refused, whole batch.
    let sid_b = session_id();
    let r = key_a.ingest(&agent_run(&sid_b, 3, Some(&b))).await;
    assert_eq!(r.status, 403);
    assert!(r.detail().contains(&format!("bound to project '{a}'")), "{}", r.detail());
    // Spans without a project are filed under A; spans of A are accepted.
    let sid_a = session_id();
    assert_eq!(key_a.ingest(&agent_run(&sid_a, 3, None)).await.status, 202);
    assert_eq!(admin.ingest(&agent_run(&sid_b, 3, Some(&b))).await.status, 202);

    // Reads: A's key sees A only, even when asking for B.
    let mine = key_a.get(&format!("/api/agents/sessions?project_id={b}")).await;
    let ids: Vec<&Value> = mine.body.as_array().unwrap().iter().map(|s| &s["session_id"]).collect();
    assert_eq!(ids, vec![&json!(sid_a)]);
    let r = key_a.get(&format!("/api/agents/sessions/{sid_b}")).await;
    assert_eq!(r.status, 404, "B's session is invisible, not forbidden");
    let r = key_a.get(&format!("/api/projects/{b}")).await;
    assert_eq!((r.status, r.detail()), (404, "Project not found."));
    assert_eq!(key_a.get(&format!("/api/projects/{a}")).await.status, 200);
    // The project list is instance-wide: a bound key is refused, naming its binding.
    let listed = key_a.get("/api/projects").await;
    assert_eq!(listed.status, 403, "{}", listed.text);
    assert!(listed.detail().contains(&format!("bound to project '{a}'")), "{}", listed.text);
    // The admin sees both sessions without naming a project.
    assert_eq!(admin.get("/api/agents/sessions").await.body.as_array().unwrap().len(), 2);
    let scoped = admin.get(&format!("/api/agents/sessions?project_id={b}")).await;
    assert_eq!(scoped.body[0]["session_id"], json!(sid_b));
}

#[tokio::test]
async fn unbound_stored_keys_must_name_a_project_and_viewers_must_be_members() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let k = admin.post("/api/auth/api-keys", &json!({"name": "ops"})).await;
    let ops = server.client(k.body["key"].as_str());
    let r = ops.get("/api/agents/sessions").await;
    assert_eq!(r.status, 400);
    assert!(r.detail().starts_with("project_id query parameter is required."));
    assert_eq!(ops.get("/api/agents/sessions?project_id=any").await.status, 200);

    let v = admin.post("/api/auth/api-keys", &json!({"name": "v", "role": "viewer"})).await;
    let viewer = server.client(v.body["key"].as_str());
    let r = viewer.get("/api/agents/sessions?project_id=someone-elses").await;
    assert_eq!((r.status, r.detail()), (404, "Project not found."));
}

#[tokio::test]
async fn without_keys_auth_is_required_unless_disabled() {
    let server = TestServer::start_with(|_| {}).await;
    let r = server.client(None).get("/api/agents/sessions").await;
    assert_eq!(r.status, 401);
    assert!(r.detail().contains("LANGSIGHT_AUTH_DISABLED=true"));

    let open = TestServer::start_with(|c| c.auth_disabled = true).await;
    let anon = open.client(None);
    assert_eq!(anon.ingest(&agent_run(&session_id(), 2, None)).await.status, 202);
    assert_eq!(anon.get("/api/agents/sessions").await.body.as_array().unwrap().len(), 1);
    // Writes work too in open mode (the original only opened reads with the env flag).
    let created = anon.post("/api/auth/api-keys", &json!({"name": "first"})).await;
    assert_eq!(created.status, 201);
    // Once a key exists, open mode ends.
    assert_eq!(anon.get("/api/agents/sessions").await.status, 401);
    let key = open.client(created.body["key"].as_str());
    assert_eq!(key.get("/api/agents/sessions?project_id=p").await.status, 200);
}

#[tokio::test]
async fn probes_metrics_and_headers() {
    let server = TestServer::start_with(|c| {
        c.api_keys = vec![Secret(ADMIN_KEY.into())];
        c.metrics_token = Some(Secret("scrape-me".into()));
    })
    .await;
    let anon = server.client(None);
    assert_eq!(anon.get("/api/status").await.body, json!({"status": "ok", "version": "0.15.0"}));
    assert_eq!(anon.get("/api/liveness").await.body, json!({"status": "alive"}));
    let ready = anon.get("/api/readiness").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.body["storage"], json!({"storage": "ok"}));
    assert_eq!(ready.headers.get("x-frame-options").unwrap(), "DENY");
    assert_eq!(ready.headers.get("x-content-type-options").unwrap(), "nosniff");

    server.admin().ingest(&agent_run(&session_id(), 30, None)).await;
    let r = anon.get("/metrics").await;
    assert_eq!((r.status, r.text.as_str()), (401, "Unauthorized"));
    let m = anon.http.get(format!("{}/metrics", server.url)).bearer_auth("scrape-me").send().await.unwrap();
    assert_eq!(m.status().as_u16(), 200);
    let text = m.text().await.unwrap();
    assert!(text.contains("langsight_spans_ingested_total 30"), "{text}");
    assert!(text.contains("langsight_ingest_commit_seconds_count 1"));
    assert!(text.contains("langsight_ingest_batch_spans_bucket{le=\"50\"} 1"));
    assert!(text.contains(r#"langsight_http_requests_total{method="POST",path="/api/traces/spans",status="202"} 1"#));
    assert!(
        !text.contains(r#"langsight_http_requests_total{method="GET",path="/api/readiness""#),
        "probes are not counted"
    );
    assert!(
        text.contains(r#"langsight_rate_limit_decisions_total{route="/api/traces/spans",outcome="allowed"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"langsight_shared_state_backend{backend="memory"} 1"#));

    let r = anon.get("/api/nothing-here").await;
    assert_eq!((r.status, r.detail()), (404, "Not Found"));
    let r = anon.send(reqwest::Method::GET, "/api/traces/spans", None).await;
    assert_eq!(r.status, 405);
}

#[tokio::test]
async fn cors_and_trusted_hosts() {
    let server = TestServer::start_with(|c| {
        c.api_keys = vec![Secret(ADMIN_KEY.into())];
        c.dashboard_url = Some("http://dash.example:3003".into());
        c.cors_origins = vec!["http://dash.example:3003".into()];
    })
    .await;
    let http = test_support::http();
    let pre = http
        .request(reqwest::Method::OPTIONS, format!("{}/api/agents/sessions", server.url))
        .header("Origin", "http://dash.example:3003")
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status().as_u16(), 200);
    assert_eq!(pre.headers()["access-control-allow-origin"], "http://dash.example:3003");
    assert_eq!(pre.headers()["access-control-allow-credentials"], "true");
    let bad = http
        .request(reqwest::Method::OPTIONS, format!("{}/api/agents/sessions", server.url))
        .header("Origin", "http://evil.example")
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);

    // Host checks: our loopback address passes, a foreign Host header does not.
    assert_eq!(server.client(None).get("/api/status").await.status, 200);
    let foreign =
        http.get(format!("{}/api/status", server.url)).header("Host", "attacker.example").send().await.unwrap();
    assert_eq!(foreign.status().as_u16(), 400);
    assert_eq!(foreign.text().await.unwrap(), "Invalid host header");
    let dash = http.get(format!("{}/api/status", server.url)).header("Host", "dash.example:3003").send().await.unwrap();
    assert_eq!(dash.status().as_u16(), 200);
}
