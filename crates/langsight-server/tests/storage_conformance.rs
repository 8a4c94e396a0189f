//! One storage conformance suite, run against every backend that implements the trait: SQLite (a temporary
//! file) and PostgreSQL (a private cluster started by the harness). Each check is written once against the
//! traits; a backend passes when it behaves exactly like the others.
//!
//! Covered so far: API keys, projects and members, users, invitations, login lockout, the audit log, server
//! metadata and tools, the alert inbox, delivery records, alert settings and SLOs, span ingest with session
//! rollups and tags, traces, per-server calls, hourly tool aggregates, health results and drift.

use langsight_core::time::now_micros;
use langsight_storage::postgres::PgStorage;
use langsight_storage::sqlite::SqliteStorage;
use langsight_storage::*;
use std::sync::Arc;
use test_support::postgres::PgCluster;

/// The stores under test, whatever the backend.
struct Backend {
    name: &'static str,
    keys: Arc<dyn KeyStore>,
    projects: Arc<dyn ProjectStore>,
    users: Arc<dyn UserStore>,
    servers: Arc<dyn ServerStore>,
    alerts: Arc<dyn AlertStore>,
    spans: Arc<dyn SpanStore>,
    health: Arc<dyn HealthStore>,
    pricing: Arc<dyn PricingStore>,
    agents: Arc<dyn AgentStore>,
    security: Arc<dyn SecurityStore>,
}

fn user(id: &str, email: &str, role: &str) -> User {
    User {
        id: id.into(),
        email: email.into(),
        password_hash: "$argon2id$stub".into(),
        role: role.into(),
        active: true,
        created_at: now_micros(),
        last_login_at: None,
    }
}

async fn keys_conform(b: &Backend) {
    let n = b.name;
    let now = now_micros();
    let key = |id: &str, hash: &str, role: KeyRole, user: Option<&str>, at: i64| NewApiKey {
        id: id.into(),
        name: format!("key {id}"),
        key_hash: hash.into(),
        key_prefix: "ls_0123456".into(),
        role,
        user_id: user.map(String::from),
        project_id: None,
        created_at: at,
        expires_at: Some(at + 1_000_000),
    };
    b.keys.create_api_key(key("k1", "h1", KeyRole::Admin, Some("u1"), now)).await.unwrap();
    b.keys.create_api_key(key("k2", "h2", KeyRole::Viewer, None, now + 1)).await.unwrap();
    assert!(
        matches!(
            b.keys.create_api_key(key("k3", "h1", KeyRole::Admin, None, now)).await,
            Err(StorageError::Conflict(_))
        ),
        "{n}: hash is unique"
    );
    let listed: Vec<String> = b.keys.list_api_keys().await.unwrap().into_iter().map(|k| k.id).collect();
    assert_eq!(listed, ["k2", "k1"], "{n}: newest first");
    let found = b.keys.api_key_by_hash("h2").await.unwrap().expect("found");
    assert_eq!((found.role, found.expires_at), (KeyRole::Viewer, Some(now + 1 + 1_000_000)), "{n}");
    assert_eq!(b.keys.count_active_api_keys().await.unwrap(), 2, "{n}");
    b.keys.touch_api_key("k1", now + 5).await.unwrap();
    assert_eq!(b.keys.api_key_by_hash("h1").await.unwrap().unwrap().last_used_at, Some(now + 5), "{n}");
    assert!(b.keys.revoke_api_key("k2").await.unwrap(), "{n}");
    assert!(!b.keys.revoke_api_key("k2").await.unwrap(), "{n}: already revoked");
    assert!(b.keys.api_key_by_hash("h2").await.unwrap().is_none(), "{n}: revoked keys do not authenticate");
    assert_eq!(b.keys.count_active_api_keys().await.unwrap(), 1, "{n}");
}

async fn projects_conform(b: &Backend) {
    let n = b.name;
    let now = now_micros();
    let new = |id: &str, slug: &str, owner: Option<&str>| NewProject {
        id: id.into(),
        name: format!("Project {id}"),
        slug: slug.into(),
        created_by: "u1".into(),
        created_at: now,
        owner_member: owner.map(String::from),
    };
    let a = b.projects.create_project(new("pa", "team", Some("u1"))).await.unwrap();
    assert_eq!((a.slug.as_str(), a.member_count), ("team", 1), "{n}");
    let c = b.projects.create_project(new("pb", "team", None)).await.unwrap();
    assert!(c.slug.starts_with("team-") && c.slug.len() == 11, "{n}: a taken slug gets a suffix: {}", c.slug);
    assert_eq!(b.projects.list_projects().await.unwrap().len(), 2, "{n}");
    assert_eq!(b.projects.member_role("pa", "u1").await.unwrap().as_deref(), Some("owner"), "{n}");
    assert_eq!(b.projects.member_role("pb", "u1").await.unwrap(), None, "{n}");
    b.projects
        .upsert_member(
            "pb",
            Member { user_id: "u1".into(), role: "viewer".into(), added_by: Some("u0".into()), added_at: now },
        )
        .await
        .unwrap();
    let mine = b.projects.memberships("u1").await.unwrap();
    let roles: Vec<(&str, &str)> = mine.iter().map(|(p, r)| (p.id.as_str(), r.as_str())).collect();
    assert_eq!(roles, [("pa", "owner"), ("pb", "viewer")], "{n}");
    let changed = b.projects.set_member_role("pb", "u1", "member").await.unwrap().expect("member");
    assert_eq!(changed.role, "member", "{n}");
    assert!(b.projects.set_member_role("pb", "nobody", "member").await.unwrap().is_none(), "{n}");
    let renamed = b.projects.update_project("pb", "Renamed", "team").await.unwrap().expect("exists");
    assert_ne!(renamed.slug, "team", "{n}: cannot take another project's slug");
    assert_eq!(renamed.name, "Renamed", "{n}");
    assert!(b.projects.update_project("nope", "x", "x").await.unwrap().is_none(), "{n}");
    assert_eq!(b.projects.list_members("pb").await.unwrap().len(), 1, "{n}");
    assert!(b.projects.remove_member("pb", "u1").await.unwrap(), "{n}");
    assert!(!b.projects.remove_member("pb", "u1").await.unwrap(), "{n}");
    assert!(b.projects.delete_project("pa").await.unwrap(), "{n}");
    assert!(b.projects.get_project("pa").await.unwrap().is_none(), "{n}");
    assert!(b.projects.memberships("u1").await.unwrap().is_empty(), "{n}: memberships go with the project");
}

async fn users_conform(b: &Backend) {
    let n = b.name;
    assert_eq!(b.users.count_users().await.unwrap(), 0, "{n}");
    b.users.create_user(user("u1", "a@example.com", "admin")).await.unwrap();
    assert!(
        matches!(b.users.create_user(user("u2", "a@example.com", "viewer")).await, Err(StorageError::Conflict(_))),
        "{n}"
    );
    assert_eq!(b.users.user_by_email(" A@Example.com ").await.unwrap().map(|u| u.id).as_deref(), Some("u1"), "{n}");
    assert_eq!(b.users.set_user_role("u1", "viewer").await.unwrap().unwrap().role, "viewer", "{n}");
    assert!(b.users.set_user_role("nope", "viewer").await.unwrap().is_none(), "{n}");
    // A password change revokes the user's keys.
    let now = now_micros();
    b.keys
        .create_api_key(NewApiKey {
            id: "uk".into(),
            name: "mine".into(),
            key_hash: "uh".into(),
            key_prefix: "ls_x".into(),
            role: KeyRole::Admin,
            user_id: Some("u1".into()),
            project_id: None,
            created_at: now,
            expires_at: None,
        })
        .await
        .unwrap();
    // u1 owns k1 (from the key checks) and uk.
    assert_eq!(b.users.set_password("u1", "$argon2id$new", now).await.unwrap(), 2, "{n}");
    assert_eq!(b.users.user_by_id("u1").await.unwrap().unwrap().password_hash, "$argon2id$new", "{n}");
    assert!(b.keys.api_key_by_hash("uh").await.unwrap().is_none(), "{n}");
    assert!(b.users.deactivate_user("u1").await.unwrap(), "{n}");
    assert!(!b.users.user_by_id("u1").await.unwrap().unwrap().active, "{n}");

    // Invitations: once, before they expire, never for a taken email.
    let invite = |hash: &str, email: &str, expires_at: i64| Invite {
        token_hash: hash.into(),
        email: email.into(),
        role: "viewer".into(),
        created_by: Some("u1".into()),
        created_at: now,
        expires_at,
        used_at: None,
    };
    b.users.create_invite(invite("t1", "new@example.com", now + 1_000_000)).await.unwrap();
    b.users.create_invite(invite("t2", "old@example.com", now - 1)).await.unwrap();
    b.users.create_invite(invite("t3", "a@example.com", now + 1_000_000)).await.unwrap();
    match b.users.accept_invite("t1", user("u3", "", ""), now).await.unwrap() {
        AcceptInvite::Created(u) => {
            assert_eq!((u.email.as_str(), u.role.as_str()), ("new@example.com", "viewer"), "{n}")
        }
        other => panic!("{n}: {other:?}"),
    }
    assert_eq!(b.users.accept_invite("t1", user("u4", "", ""), now).await.unwrap(), AcceptInvite::Used, "{n}");
    assert_eq!(b.users.accept_invite("t2", user("u5", "", ""), now).await.unwrap(), AcceptInvite::Expired, "{n}");
    assert_eq!(b.users.accept_invite("t3", user("u6", "", ""), now).await.unwrap(), AcceptInvite::EmailTaken, "{n}");
    assert_eq!(b.users.accept_invite("zz", user("u7", "", ""), now).await.unwrap(), AcceptInvite::Unknown, "{n}");
    assert_eq!(b.users.list_users().await.unwrap().len(), 2, "{n}");

    // Lockout: 3 failures within the window lock for the lock time; after it ends, 3 more lock again.
    let policy = LockoutPolicy { max_failures: 3, window_micros: 10_000_000, lock_micros: 5_000_000 };
    let t = now;
    assert_eq!(b.users.record_login_failure("X@example.com", t, policy).await.unwrap(), None, "{n}");
    assert_eq!(b.users.record_login_failure("x@example.com", t + 1, policy).await.unwrap(), None, "{n}");
    assert_eq!(
        b.users.record_login_failure("x@example.com", t + 2, policy).await.unwrap(),
        Some(t + 2 + 5_000_000),
        "{n}"
    );
    assert_eq!(b.users.locked_until("x@example.com", t + 3).await.unwrap(), Some(t + 2 + 5_000_000), "{n}");
    assert_eq!(b.users.locked_until("x@example.com", t + 6_000_000).await.unwrap(), None, "{n}: the lock ends");
    let later = t + 6_000_000;
    assert_eq!(b.users.record_login_failure("x@example.com", later, policy).await.unwrap(), None, "{n}");
    assert_eq!(b.users.record_login_failure("x@example.com", later + 1, policy).await.unwrap(), None, "{n}");
    assert!(
        b.users.record_login_failure("x@example.com", later + 2, policy).await.unwrap().is_some(),
        "{n}: locks again"
    );
    // Failures spread beyond the window never lock.
    for i in 0..5 {
        assert_eq!(
            b.users.record_login_failure("slow@example.com", t + i * 11_000_000, policy).await.unwrap(),
            None,
            "{n}"
        );
    }
    b.users.clear_login_failures("x@example.com").await.unwrap();
    assert_eq!(b.users.locked_until("x@example.com", later + 3).await.unwrap(), None, "{n}");

    for i in 0..3 {
        let e = AuditEvent {
            id: 0,
            at: now + i,
            event: format!("e{i}"),
            user_id: "u1".into(),
            ip: "127.0.0.1".into(),
            details: "{}".into(),
            project_id: String::new(),
        };
        b.users.audit(e).await.unwrap();
    }
    let (total, page) = b.users.audit_log(2, 0).await.unwrap();
    let names: Vec<&str> = page.iter().map(|e| e.event.as_str()).collect();
    assert_eq!((total, names), (3, vec!["e2", "e1"]), "{n}: newest first");
}

async fn servers_conform(b: &Backend) {
    let n = b.name;
    let meta = |project: &str, url: &str, at: i64| ServerMetadata {
        id: format!("id-{project}-{at}"),
        project_id: project.into(),
        server_name: "pg".into(),
        description: "Postgres MCP".into(),
        owner: "data".into(),
        tags: vec!["prod".into(), "db".into()],
        transport: "streamable_http".into(),
        url: url.into(),
        runbook_url: String::new(),
        created_at: at,
        updated_at: at,
        first_seen_at: None,
        last_seen_at: None,
    };
    let first = b.servers.upsert_server(meta("p1", "http://a/mcp", 1)).await.unwrap();
    let second = b.servers.upsert_server(meta("p1", "http://b/mcp", 2)).await.unwrap();
    assert_eq!(
        (second.id.as_str(), second.created_at, second.updated_at),
        (first.id.as_str(), 1, 2),
        "{n}: id and creation kept"
    );
    assert_eq!(
        (second.url.as_str(), second.tags.clone()),
        ("http://b/mcp", vec!["prod".to_string(), "db".to_string()]),
        "{n}"
    );
    b.servers.upsert_server(meta("p2", "", 3)).await.unwrap();
    assert_eq!(b.servers.list_servers(Some("p1")).await.unwrap().len(), 1, "{n}");
    assert_eq!(b.servers.list_servers(None).await.unwrap().len(), 2, "{n}");
    assert!(b.servers.get_server("p3", "pg").await.unwrap().is_none(), "{n}");
    assert!(b.servers.delete_server("p2", "pg").await.unwrap(), "{n}");
    assert!(!b.servers.delete_server("p2", "pg").await.unwrap(), "{n}");
    let tools = vec![("query".to_string(), "Run SQL".to_string(), r#"{"type":"object"}"#.to_string())];
    assert_eq!(b.servers.upsert_tools("p1", "pg", tools.clone(), 10).await.unwrap(), 1, "{n}");
    assert_eq!(b.servers.upsert_tools("p1", "pg", tools, 20).await.unwrap(), 1, "{n}");
    let listed = b.servers.list_tools("p1", "pg").await.unwrap();
    assert_eq!((listed.len(), listed[0].first_seen_at, listed[0].last_seen_at), (1, 10, 20), "{n}");
}

async fn alerts_conform(b: &Backend) {
    let n = b.name;
    let now = now_micros();
    let alert = |id: &str, project: &str, sev: &str, at: i64| FiredAlert {
        id: id.into(),
        project_id: project.into(),
        alert_type: "agent_failure".into(),
        severity: sev.into(),
        server_name: "agent".into(),
        session_id: Some("s".into()),
        title: "t".into(),
        message: "m".into(),
        fired_at: at,
        status: "active".into(),
        acked_at: None,
        acked_by: None,
        snoozed_until: None,
        resolved_at: None,
    };
    b.alerts.insert_alert(alert("a1", "p1", "critical", now)).await.unwrap();
    b.alerts.insert_alert(alert("a2", "p2", "warning", now + 1)).await.unwrap();
    b.alerts.insert_alert(alert("a3", "", "info", now + 2)).await.unwrap();
    let q = |project: Option<&str>, status: Option<&str>| AlertQuery {
        project_id: project.map(String::from),
        status: status.map(String::from),
        limit: 50,
        offset: 0,
        now: now + 10,
        alert_types: vec![],
    };
    let (total, rows) = b.alerts.list_alerts(q(Some("p1"), None)).await.unwrap();
    let ids: Vec<&str> = rows.iter().map(|a| a.id.as_str()).collect();
    // Global alerts (no project) belong to the instance: a project's view never includes them.
    assert_eq!((total, ids), (1, vec!["a1"]), "{n}: own only");
    assert_eq!(b.alerts.list_alerts(q(None, Some("all"))).await.unwrap().0, 3, "{n}: everything for the global view");
    assert_eq!(b.alerts.alert_counts(Some("p1")).await.unwrap(), (1, 0, 0), "{n}");
    assert!(b.alerts.get_alert(Some("p1"), "a2").await.unwrap().is_none(), "{n}: another project's alert is invisible");
    assert!(!b.alerts.update_alert(Some("p1"), "a2", AlertAction::Resolve, now).await.unwrap(), "{n}");
    assert!(b.alerts.get_alert(Some("p1"), "a3").await.unwrap().is_none(), "{n}: a global alert is not a project's");
    assert!(!b.alerts.update_alert(Some("p1"), "a3", AlertAction::Resolve, now).await.unwrap(), "{n}");
    assert!(b.alerts.update_alert(Some("p1"), "a1", AlertAction::Ack { by: "u1".into() }, now).await.unwrap(), "{n}");
    assert!(
        !b.alerts.update_alert(Some("p1"), "a1", AlertAction::Ack { by: "u1".into() }, now).await.unwrap(),
        "{n}: only from active"
    );
    assert!(
        b.alerts.update_alert(Some("p1"), "a1", AlertAction::Snooze { until: now + 100 }, now).await.unwrap(),
        "{n}"
    );
    assert_eq!(b.alerts.list_alerts(q(Some("p1"), Some("snoozed"))).await.unwrap().0, 1, "{n}");
    let expired = AlertQuery { now: now + 1000, ..q(Some("p1"), Some("snoozed")) };
    assert_eq!(b.alerts.list_alerts(expired).await.unwrap().0, 0, "{n}: a snooze that ended is not listed as snoozed");
    assert!(b.alerts.update_alert(None, "a1", AlertAction::Resolve, now).await.unwrap(), "{n}");
    let got = b.alerts.get_alert(None, "a1").await.unwrap().unwrap();
    assert_eq!((got.status.as_str(), got.acked_by.as_deref()), ("resolved", Some("u1")), "{n}");

    // The type filter (the feed's `alert_type`), counted in the total too.
    b.alerts
        .insert_alert(FiredAlert { alert_type: "loop_detected".into(), ..alert("a4", "p1", "warning", now + 3) })
        .await
        .unwrap();
    b.alerts
        .insert_alert(FiredAlert { alert_type: "server_down".into(), ..alert("a5", "p1", "critical", now + 4) })
        .await
        .unwrap();
    let typed = |types: &[&str]| AlertQuery {
        alert_types: types.iter().map(|t| t.to_string()).collect(),
        ..q(Some("p1"), Some("all"))
    };
    let (total, rows) = b.alerts.list_alerts(typed(&["agent_failure", "loop_detected"])).await.unwrap();
    let ids: Vec<&str> = rows.iter().map(|a| a.id.as_str()).collect();
    assert_eq!((total, ids), (2, vec!["a4", "a1"]), "{n}: only the types asked for");
    assert_eq!(b.alerts.list_alerts(typed(&["server_down"])).await.unwrap().0, 1, "{n}");
    assert_eq!(b.alerts.list_alerts(typed(&["nothing_like_it"])).await.unwrap().0, 0, "{n}");
    assert_eq!(b.alerts.list_alerts(typed(&[])).await.unwrap().0, 3, "{n}: no filter, every type");
    let d = |status: &str, attempts: u32| DeliveryRecord {
        alert_id: "a1".into(),
        channel: "slack".into(),
        status: status.into(),
        attempts,
        last_error: (status == "failed").then(|| "HTTP 500".to_string()),
        at: now,
    };
    b.alerts.record_delivery(d("failed", 4)).await.unwrap();
    b.alerts.record_delivery(d("delivered", 1)).await.unwrap();
    let ds = b.alerts.deliveries("a1").await.unwrap();
    assert_eq!(
        ds.iter().map(|d| (d.status.as_str(), d.attempts)).collect::<Vec<_>>(),
        [("failed", 4), ("delivered", 1)],
        "{n}"
    );

    assert!(b.alerts.alert_config("p1").await.unwrap().is_none(), "{n}");
    let mut types = std::collections::BTreeMap::new();
    types.insert("agent_failure".to_string(), false);
    let config =
        AlertConfig { slack_webhook: Some("https://hooks.example/x".into()), webhook_url: None, alert_types: types };
    b.alerts.save_alert_config("p1", config.clone()).await.unwrap();
    assert_eq!(b.alerts.alert_config("p1").await.unwrap(), Some(config), "{n}");

    let slo = |id: &str, project: &str| Slo {
        id: id.into(),
        project_id: project.into(),
        agent_name: "triager".into(),
        metric: "success_rate".into(),
        target: 99.5,
        window_hours: 24,
        created_at: now,
    };
    b.alerts.create_slo(slo("s1", "p1")).await.unwrap();
    b.alerts.create_slo(slo("s2", "p2")).await.unwrap();
    assert_eq!(b.alerts.list_slos(Some("p1")).await.unwrap(), vec![slo("s1", "p1")], "{n}");
    assert_eq!(b.alerts.list_slos(None).await.unwrap().len(), 2, "{n}");
    assert!(!b.alerts.delete_slo(Some("p1"), "s2").await.unwrap(), "{n}: another project's SLO");
    assert!(b.alerts.delete_slo(Some("p2"), "s2").await.unwrap(), "{n}");
}

fn spans(json: serde_json::Value) -> Vec<langsight_core::span::Span> {
    langsight_core::span::decode_batch(&serde_json::to_vec(&json).unwrap()).unwrap()
}

async fn spans_conform(b: &Backend) {
    let n = b.name;
    let (s1, s2) = (test_support::session_id(), test_support::session_id());
    let first = spans(test_support::agent_run(&s1, 12, Some("p1")));
    let out = b.spans.ingest(first.clone()).await.unwrap();
    assert_eq!(out.accepted, 12, "{n}");
    assert_eq!(out.sessions.len(), 1, "{n}");
    assert_eq!(
        (out.sessions[0].previous, out.sessions[0].current),
        (None, langsight_core::health::HealthTag::SuccessWithFallback),
        "{n}"
    );
    // A second batch of the same session folds into the same rollup; the tag never downgrades.
    let failing = serde_json::json!([{"span_id": "x1", "span_type": "tool_call", "session_id": s1, "server_name": "github",
        "tool_name": "delete_repo", "agent_name": "researcher", "started_at": chrono::Utc::now().to_rfc3339(),
        "ended_at": chrono::Utc::now().to_rfc3339(), "status": "error", "error": "forbidden", "project_id": "p1"}]);
    let out = b.spans.ingest(spans(failing)).await.unwrap();
    assert_eq!(out.sessions[0].current, langsight_core::health::HealthTag::ToolFailure, "{n}");
    b.spans.ingest(spans(test_support::agent_run(&s2, 5, Some("p2")))).await.unwrap();

    let q = |project: Option<&str>, agent: Option<&str>| SessionQuery {
        project_id: project.map(String::from),
        active_since: now_micros() - 3_600_000_000,
        agent_name: agent.map(String::from),
        health_tag: None,
        limit: 50,
        ..Default::default()
    };
    let p1 = b.spans.list_sessions(q(Some("p1"), None)).await.unwrap();
    assert_eq!(p1.len(), 1, "{n}");
    assert_eq!((p1[0].rollup.span_count, p1[0].rollup.failed_calls), (13, 2), "{n}: 12 + 1 spans, two failed calls");
    assert_eq!(b.spans.list_sessions(q(None, None)).await.unwrap().len(), 2, "{n}");
    let one = b.spans.get_session(Some("p1"), &s1).await.unwrap().expect("the session");
    assert_eq!((one.project_id.as_str(), one.rollup.span_count), ("p1", 13), "{n}");
    assert!(b.spans.get_session(Some("p2"), &s1).await.unwrap().is_none(), "{n}: another project's session");
    assert!(b.spans.get_session(None, &s2).await.unwrap().is_some(), "{n}");
    assert_eq!(b.spans.list_sessions(q(None, Some("researcher"))).await.unwrap().len(), 2, "{n}");
    assert_eq!(b.spans.list_sessions(q(None, Some("nobody"))).await.unwrap().len(), 0, "{n}");
    let tagged = SessionQuery { health_tag: Some(langsight_core::health::HealthTag::ToolFailure), ..q(None, None) };
    assert_eq!(b.spans.list_sessions(tagged).await.unwrap()[0].session_id, s1, "{n}");

    let trace = b.spans.session_spans(&s1, Some("p1"), 100).await.unwrap();
    assert_eq!(trace.len(), 13, "{n}");
    assert!(trace.windows(2).all(|w| w[0].started_at <= w[1].started_at), "{n}: in start order");
    assert_eq!(trace[0], first[0], "{n}: stored as sent");
    assert!(b.spans.session_spans(&s1, Some("p2"), 100).await.unwrap().is_empty(), "{n}: another project's trace");

    // Analytics facts: a window, a project (with or without the unscoped spans), errors cut short.
    let facts = |project: Option<&str>, include_global: bool, since: i64| FactQuery {
        project_id: project.map(String::from),
        include_global,
        since,
        until: now_micros() + 60_000_000,
        after: None,
        limit: 10_000,
    };
    // Paging: pages of 5 visit every fact once, in start order.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = b
            .spans
            .span_facts(FactQuery { after: after.take(), limit: 5, ..facts(Some("p1"), false, 0) })
            .await
            .unwrap();
        seen.extend(page.iter().map(|f| (f.started_at, f.span_id.clone())));
        if page.len() < 5 {
            break;
        }
        after = page.last().map(|f| f.cursor.clone());
    }
    assert_eq!(seen.len(), 13, "{n}: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{n}: in start order");
    let unique: std::collections::BTreeSet<_> = seen.iter().map(|s| s.1.clone()).collect();
    assert_eq!(unique.len(), 13, "{n}: no fact twice");
    let p1_facts = b.spans.span_facts(facts(Some("p1"), false, 0)).await.unwrap();
    assert_eq!(p1_facts.len(), 13, "{n}");
    let delete = p1_facts.iter().find(|f| f.span_id == "x1").unwrap();
    assert_eq!((delete.error.as_deref(), delete.tool_name.as_str()), (Some("forbidden"), "delete_repo"), "{n}");
    assert_eq!(delete.status, langsight_core::span::SpanStatus::Error, "{n}");
    let llm = p1_facts.iter().find(|f| f.model_id.is_some()).unwrap();
    assert!(llm.input_tokens.is_some() && llm.session_id.as_deref() == Some(s1.as_str()), "{n}: {llm:?}");
    assert_eq!(b.spans.span_facts(facts(None, false, 0)).await.unwrap().len(), 18, "{n}: every project");
    assert!(b.spans.span_facts(facts(Some("p1"), false, now_micros() + 1)).await.unwrap().is_empty(), "{n}");
    let mut long = spans(test_support::agent_run(&test_support::session_id(), 1, None));
    long[0].span_id = "long-error".into();
    long[0].error = Some("é".repeat(1000));
    b.spans.ingest(long).await.unwrap();
    let with_global = b.spans.span_facts(facts(Some("p1"), true, 0)).await.unwrap();
    assert_eq!(with_global.len(), 14, "{n}: p1 and the unscoped span");
    let cut = with_global.iter().find(|f| f.span_id == "long-error").unwrap().error.clone().unwrap();
    assert_eq!(cut.chars().count(), FACT_ERROR_CHARS, "{n}: errors cut at a character boundary");

    let inv = b.spans.server_invocations(Some("p1"), 0).await.unwrap();
    let servers: Vec<(&str, i64)> = inv.iter().map(|i| (i.server_name.as_str(), i.total_calls)).collect();
    assert!(servers.contains(&("github", 7)) && servers.contains(&("filesystem", 4)), "{n}: {servers:?}");
    let github = inv.iter().find(|i| i.server_name == "github").unwrap();
    // Six calls from the run (one failed) and the later failing delete_repo.
    assert_eq!((github.last_call_status.as_str(), github.success_calls), ("error", 5), "{n}");
    assert_eq!(b.spans.server_calls("github", Some("p1"), 0, 100).await.unwrap().len(), 7, "{n}");
    let hours = b.spans.tool_hours(Some("p1"), 0).await.unwrap();
    let calls: i64 = hours.iter().map(|h| h.calls).sum();
    let errors: i64 = hours.iter().map(|h| h.errors).sum();
    assert_eq!((calls, errors), (11, 2), "{n}: hourly tool aggregates");
    // Later batches add to an hour's row rather than replace it.
    let now = chrono::Utc::now().to_rfc3339();
    for (id, status) in [("h1", "success"), ("h2", "error")] {
        let one = serde_json::json!([{"span_id": id, "span_type": "tool_call", "server_name": "hs", "tool_name": "ht",
            "started_at": now, "ended_at": now, "status": status, "latency_ms": 10.0, "project_id": "ph"}]);
        b.spans.ingest(spans(one)).await.unwrap();
    }
    let hours = b.spans.tool_hours(Some("ph"), 0).await.unwrap();
    let sums: Vec<(i64, i64)> = hours.iter().map(|h| (h.calls, h.errors)).collect();
    assert_eq!(sums, [(2, 1)], "{n}: two batches into one hour's row");

    // Retention: an old session goes, with its spans and aggregates; recent data stays.
    let old = test_support::session_id();
    let long_ago = chrono::Utc::now() - chrono::Duration::days(100);
    let ancient = serde_json::json!([{"span_id": "old-1", "span_type": "tool_call", "session_id": old, "server_name": "github",
        "tool_name": "t", "started_at": long_ago.to_rfc3339(), "ended_at": long_ago.to_rfc3339(), "status": "success", "project_id": "p1"}]);
    b.spans.ingest(spans(ancient)).await.unwrap();
    let cutoff = now_micros() - 90 * 86_400_000_000;
    assert_eq!(b.spans.prune_before(cutoff).await.unwrap(), 1, "{n}");
    assert!(b.spans.session_spans(&old, None, 10).await.unwrap().is_empty(), "{n}");
    let everything = SessionQuery { active_since: 0, ..q(None, None) };
    assert_eq!(
        b.spans.list_sessions(everything).await.unwrap().len(),
        3,
        "{n}: recent sessions stay (two projects' and the unscoped one)"
    );
    let old_hours =
        b.spans.tool_hours(None, 0).await.unwrap().into_iter().filter(|h| h.hour < cutoff / 3_600_000_000).count();
    assert_eq!(old_hours, 0, "{n}");
    concurrent_ingest_conforms(b).await;
}

/// Many requests at once, several into the same session (the group-commit path of every backend): each is
/// accepted with its own count, every span lands in its rollup, and each session's first tag is announced
/// exactly once.
async fn concurrent_ingest_conforms(b: &Backend) {
    let n = b.name;
    let shared = test_support::session_id();
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = b.spans.clone();
            let session = if i % 2 == 0 { shared.clone() } else { test_support::session_id() };
            let mut batch = spans(test_support::agent_run(&session, 6, Some("pc")));
            for (j, s) in batch.iter_mut().enumerate() {
                s.span_id = format!("c{i}-{j}");
            }
            tokio::spawn(async move { (session, store.ingest(batch).await) })
        })
        .collect();
    let mut announced_shared = 0;
    for t in tasks {
        let (session, out) = t.await.unwrap();
        let out = out.unwrap_or_else(|e| panic!("{n}: {e}"));
        assert_eq!(out.accepted, 6, "{n}");
        announced_shared += out.sessions.iter().filter(|u| u.session_id == shared && u.previous.is_none()).count();
        if session != shared {
            assert_eq!(out.sessions.len(), 1, "{n}: a lone session's tag comes back to its own request");
        }
    }
    assert_eq!(announced_shared, 1, "{n}: the shared session's first tag is announced once");
    let all = SessionQuery {
        project_id: Some("pc".into()),
        active_since: 0,
        agent_name: None,
        health_tag: None,
        limit: 100,
        ..Default::default()
    };
    let rows = b.spans.list_sessions(all.clone()).await.unwrap();
    assert_eq!(rows.len(), 21, "{n}: one shared session and twenty others");
    let shared_row = rows.iter().find(|r| r.session_id == shared).unwrap();
    assert_eq!(shared_row.rollup.span_count, 120, "{n}: 20 batches of 6 folded into one rollup");
    assert_eq!(b.spans.session_spans(&shared, Some("pc"), 1000).await.unwrap().len(), 120, "{n}");

    // The stale-run sweep tags a successful session `incomplete`, never a failed one.
    let ok = test_support::session_id();
    let now = chrono::Utc::now().to_rfc3339();
    let run = |id: &str, status: &str| {
        serde_json::json!([{"span_id": id, "span_type": "tool_call", "session_id": ok,
        "server_name": "s", "tool_name": id, "started_at": now, "ended_at": now, "status": status, "project_id": "pm"}])
    };
    b.spans.ingest(spans(run("m1", "success"))).await.unwrap();
    assert!(b.spans.mark_incomplete("pm", &ok).await.unwrap(), "{n}");
    let tagged = SessionQuery { health_tag: Some(langsight_core::health::HealthTag::Incomplete), ..all.clone() };
    let tagged = SessionQuery { project_id: Some("pm".into()), ..tagged };
    let rows = b.spans.list_sessions(tagged).await.unwrap();
    assert_eq!(rows.len(), 1, "{n}");
    assert_eq!(
        rows[0].rollup.health_tag,
        Some(langsight_core::health::HealthTag::Incomplete),
        "{n}: the rollup agrees"
    );
    b.spans.ingest(spans(run("m2", "error"))).await.unwrap();
    let pm = SessionQuery { project_id: Some("pm".into()), ..all.clone() };
    let after = b.spans.list_sessions(pm).await.unwrap();
    assert_eq!(
        after[0].rollup.health_tag,
        Some(langsight_core::health::HealthTag::ToolFailure),
        "{n}: {:?}",
        after[0].rollup
    );
    assert!(!b.spans.mark_incomplete("pm", &ok).await.unwrap(), "{n}: a failure is not hidden");
    assert!(!b.spans.mark_incomplete("pm", "no-such-session").await.unwrap(), "{n}");
}

async fn health_conform(b: &Backend) {
    let n = b.name;
    let rec = |server: &str, status: &str, hash: Option<&str>, at: i64| HealthRecord {
        server_name: server.into(),
        project_id: String::new(),
        status: status.into(),
        latency_ms: Some(12.5),
        tools_count: 1,
        tools_json: r#"[{"name":"t"}]"#.into(),
        schema_hash: hash.map(String::from),
        error: None,
        checked_at: at,
    };
    b.health.save_health(rec("a", "up", Some("h1"), 1)).await.unwrap();
    b.health.save_health(rec("a", "down", None, 2)).await.unwrap();
    b.health.save_health(rec("b", "up", Some("h9"), 3)).await.unwrap();
    let latest = b.health.latest_health("").await.unwrap();
    let got: Vec<(&str, &str)> = latest.iter().map(|r| (r.server_name.as_str(), r.status.as_str())).collect();
    assert_eq!(got, [("a", "down"), ("b", "up")], "{n}");
    assert_eq!(
        b.health.health_history("", "a", 10).await.unwrap().iter().map(|r| r.checked_at).collect::<Vec<_>>(),
        [2, 1],
        "{n}"
    );
    assert_eq!(b.health.latest_snapshot("", "a").await.unwrap().unwrap().schema_hash.as_deref(), Some("h1"), "{n}");
    assert!(b.health.latest_health("p9").await.unwrap().is_empty(), "{n}");
    let drift = |tool: &str, at: i64| DriftRecord {
        server_name: "a".into(),
        project_id: String::new(),
        tool_name: tool.into(),
        drift_type: "breaking".into(),
        change_kind: "tool_removed".into(),
        param_name: None,
        old_value: Some("x".into()),
        new_value: None,
        previous_hash: "h1".into(),
        current_hash: "h2".into(),
        has_breaking: true,
        detected_at: at,
    };
    b.health.save_drift(vec![drift("t1", 5), drift("t2", 6)]).await.unwrap();
    let d = b.health.drift_history("", "a", 10).await.unwrap();
    assert_eq!(d.iter().map(|r| r.tool_name.as_str()).collect::<Vec<_>>(), ["t2", "t1"], "{n}");
    assert!(d[0].has_breaking, "{n}");
    // Retention keeps each server's latest result however old.
    assert_eq!(b.health.prune_health_before(10).await.unwrap(), 1, "{n}: only a's older result goes");
    assert_eq!(b.health.latest_health("").await.unwrap().len(), 2, "{n}");
    assert!(b.health.drift_history("", "a", 10).await.unwrap().is_empty(), "{n}");
}

/// The `dual` layout: metadata, rollups and aggregates in PostgreSQL; raw spans, health and drift in ClickHouse
/// (Debian's 18.16, the oldest release the schema supports).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_conforms() {
    dual_conforms_on(test_support::clickhouse::ClickHouseServer::start).await;
}

/// The same on the current ClickHouse engine (chDB 26.x behind the tests' HTTP shim).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_conforms_on_current_clickhouse() {
    dual_conforms_on(test_support::clickhouse::ClickHouseServer::start_current).await;
}

async fn dual_conforms_on(start: fn() -> test_support::clickhouse::ClickHouseServer) {
    langsight_server::install_tls();
    let cluster = tokio::task::spawn_blocking(PgCluster::start).await.unwrap();
    let ch_server = tokio::task::spawn_blocking(start).await.unwrap();
    let pg = Arc::new(PgStorage::open(&cluster.database("dual"), 8).await.unwrap());
    let ch =
        Arc::new(langsight_storage::clickhouse::ClickHouse::open(&ch_server.url, "dual", "default", "").await.unwrap());
    // The span store as the server uses it (group-committed, through the spool), but with no flusher: every
    // span a read finds was sent by that read's own flush, so each read path is checked to flush first.
    let spool_dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(langsight_storage::clickhouse::spool::Spool::new(spool_dir.path(), 1 << 30).unwrap());
    let spans = Storage::dual(pg.clone(), ch.clone(), Some(spool)).spans;
    let pg_pricing: Arc<dyn PricingStore> = pg.clone();
    let pg_agents: Arc<dyn AgentStore> = pg.clone();
    let pg_security: Arc<dyn SecurityStore> = pg.clone();
    conform(Backend {
        name: "dual",
        keys: pg.clone(),
        projects: pg.clone(),
        users: pg.clone(),
        servers: pg.clone(),
        alerts: pg,
        spans,
        health: ch,
        pricing: pg_pricing,
        agents: pg_agents,
        security: pg_security,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_health_conforms() {
    clickhouse_health_conforms_on(test_support::clickhouse::ClickHouseServer::start).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_health_conforms_on_current_clickhouse() {
    clickhouse_health_conforms_on(test_support::clickhouse::ClickHouseServer::start_current).await;
}

async fn clickhouse_health_conforms_on(start: fn() -> test_support::clickhouse::ClickHouseServer) {
    langsight_server::install_tls();
    let server = tokio::task::spawn_blocking(start).await.unwrap();
    let ch = langsight_storage::clickhouse::ClickHouse::open(&server.url, "conformance", "default", "").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(SqliteStorage::open(&dir.path().join("c.db")).unwrap());
    // The dual layout: health and drift in ClickHouse, everything else beside it.
    health_conform(&Backend {
        name: "clickhouse",
        keys: db.clone(),
        projects: db.clone(),
        users: db.clone(),
        servers: db.clone(),
        alerts: db.clone(),
        spans: db.clone(),
        health: Arc::new(ch),
        pricing: db.clone(),
        security: db.clone(),
        agents: db,
    })
    .await;
}

async fn pricing_conform(b: &Backend) {
    let n = b.name;
    let price = |id: &str, model: &str, input: f64, at: i64| ModelPrice {
        id: id.into(),
        provider: "acme".into(),
        model_id: model.into(),
        display_name: model.into(),
        input_per_1m_usd: input,
        output_per_1m_usd: 2.0,
        cache_read_per_1m_usd: 0.0,
        thinking_per_1m_usd: 0.5,
        effective_from: at,
        effective_to: None,
        notes: Some("n".into()),
        is_custom: true,
    };
    assert_eq!(
        b.pricing.seed_prices(vec![price("s1", "m1", 1.0, 1), price("s2", "m2", 1.0, 1)]).await.unwrap(),
        2,
        "{n}"
    );
    assert_eq!(b.pricing.seed_prices(vec![price("s1b", "m1", 9.0, 1)]).await.unwrap(), 0, "{n}: m1 has a row");
    assert!(b.pricing.add_price(price("c1", "m1", 3.0, 5), Some("s1".into())).await.unwrap(), "{n}");
    assert!(!b.pricing.add_price(price("c2", "m1", 4.0, 6), Some("s1".into())).await.unwrap(), "{n}: retired");
    assert!(b.pricing.retire_price("s2", 7).await.unwrap(), "{n}");
    assert!(!b.pricing.retire_price("s2", 8).await.unwrap(), "{n}: already retired");
    let rows = b.pricing.list_prices().await.unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["c1", "s1", "s2"], "{n}: by model, newest first; c2 was never added");
    assert_eq!(rows[1].effective_to, Some(5), "{n}: retired when the new price took over");
    assert_eq!(rows[0], price("c1", "m1", 3.0, 5), "{n}: stored as given");
}

async fn agents_conform(b: &Backend) {
    let n = b.name;
    let meta = |project: &str, name: &str, status: &str, at: i64| AgentMetadata {
        id: format!("{project}-{name}-{at}"),
        project_id: project.into(),
        agent_name: name.into(),
        description: "d".into(),
        owner: "o".into(),
        tags: vec!["a".into(), "b".into()],
        status: status.into(),
        runbook_url: "https://runbooks.example/r".into(),
        created_at: at,
        updated_at: at,
        first_seen_at: None,
        last_seen_at: None,
    };
    let first = b.agents.upsert_agent(meta("p1", "writer", "active", 1)).await.unwrap();
    assert_eq!(first, meta("p1", "writer", "active", 1), "{n}");
    let second = b.agents.upsert_agent(meta("p1", "writer", "deprecated", 2)).await.unwrap();
    assert_eq!(
        (second.id.as_str(), second.created_at, second.status.as_str()),
        ("p1-writer-1", 1, "deprecated"),
        "{n}"
    );
    b.agents.upsert_agent(meta("", "writer", "active", 3)).await.unwrap();
    assert_eq!(b.agents.list_agents("p1").await.unwrap().len(), 1, "{n}");
    assert!(b.agents.get_agent("p2", "writer").await.unwrap().is_none(), "{n}");
    assert!(b.agents.delete_agent("p1", "writer").await.unwrap(), "{n}");
    assert!(!b.agents.delete_agent("p1", "writer").await.unwrap(), "{n}");
    assert_eq!(b.agents.list_agents("").await.unwrap().len(), 1, "{n}");

    let row = |agent: &str, json: &str, at: i64| PreventionRow {
        project_id: "p1".into(),
        agent_name: agent.into(),
        config_json: json.into(),
        updated_at: at,
    };
    b.agents.put_prevention(row("*", "{\"a\":1}", 1)).await.unwrap();
    b.agents.put_prevention(row("bot", "{\"a\":2}", 2)).await.unwrap();
    b.agents.put_prevention(row("bot", "{\"a\":3}", 3)).await.unwrap();
    assert_eq!(b.agents.get_prevention("p1", "bot").await.unwrap(), Some(row("bot", "{\"a\":3}", 3)), "{n}");
    let names: Vec<String> = b.agents.list_prevention("p1").await.unwrap().into_iter().map(|r| r.agent_name).collect();
    assert_eq!(names, ["*", "bot"], "{n}");
    assert!(
        b.agents.delete_prevention("p1", "bot").await.unwrap()
            && b.agents.list_prevention("p2").await.unwrap().is_empty(),
        "{n}"
    );

    assert_eq!(b.agents.get_settings().await.unwrap(), None, "{n}");
    b.agents.put_settings("{\"x\":1}".into(), 1).await.unwrap();
    b.agents.put_settings("{\"x\":2}".into(), 2).await.unwrap();
    assert_eq!(b.agents.get_settings().await.unwrap().as_deref(), Some("{\"x\":2}"), "{n}");
}

/// Ingest's catalog registration: new names get empty entries, repeats only widen first/last seen, user
/// edits survive, projects stay apart, and a name a PUT created first gets its sightings.
async fn sightings_conform(b: &Backend) {
    let n = b.name;
    let seen = |project: &str, agents: &[&str], servers: &[&str], at: i64| CatalogSighting {
        project_id: project.into(),
        agents: agents.iter().map(|a| a.to_string()).collect(),
        servers: servers.iter().map(|a| a.to_string()).collect(),
        at,
    };
    b.agents
        .record_sightings(vec![seen("sp1", &["scout", "scout"], &["gh"], 100), seen("sp2", &["scout"], &[], 100)])
        .await
        .unwrap();
    let a = b.agents.get_agent("sp1", "scout").await.unwrap().expect("registered");
    assert_eq!(
        (a.description.as_str(), a.status.as_str(), a.tags.len(), a.created_at, a.first_seen_at, a.last_seen_at),
        ("", "active", 0, 100, Some(100), Some(100)),
        "{n}"
    );
    assert_eq!(a.id.len(), 32, "{n}: a 32-hex id like the original's");
    let s = b.servers.get_server("sp1", "gh").await.unwrap().expect("registered");
    assert_eq!((s.url.as_str(), s.first_seen_at, s.last_seen_at), ("", Some(100), Some(100)), "{n}");
    assert!(b.servers.get_server("sp2", "gh").await.unwrap().is_none(), "{n}: per project");
    assert_ne!(b.agents.get_agent("sp2", "scout").await.unwrap().unwrap().id, a.id, "{n}");

    // A user edits; later and earlier sightings (another worker's, out of order) only widen the range.
    let edited = AgentMetadata {
        description: "Scouts".into(),
        owner: "me".into(),
        tags: vec!["t".into()],
        updated_at: 150,
        ..a.clone()
    };
    b.agents.upsert_agent(edited).await.unwrap();
    b.agents.record_sightings(vec![seen("sp1", &["scout"], &["gh"], 300)]).await.unwrap();
    b.agents
        .record_sightings(vec![seen("sp1", &["scout"], &["gh"], 50), seen("sp1", &[], &["gh"], 200)])
        .await
        .unwrap();
    let a2 = b.agents.get_agent("sp1", "scout").await.unwrap().unwrap();
    assert_eq!(
        (a2.id.as_str(), a2.description.as_str(), a2.owner.as_str(), a2.tags.clone(), a2.created_at, a2.updated_at),
        (a.id.as_str(), "Scouts", "me", vec!["t".to_string()], 100, 150),
        "{n}: user edits and times kept"
    );
    assert_eq!((a2.first_seen_at, a2.last_seen_at), (Some(50), Some(300)), "{n}");
    let s2 = b.servers.get_server("sp1", "gh").await.unwrap().unwrap();
    assert_eq!((s2.first_seen_at, s2.last_seen_at), (Some(50), Some(300)), "{n}");
    assert_eq!(b.agents.list_agents("sp1").await.unwrap().len(), 1, "{n}: no duplicates");

    // An entry a user created before any span gets its sightings, and a PUT afterwards keeps them.
    let put = |at: i64| AgentMetadata {
        id: format!("put-{at}"),
        project_id: "sp1".into(),
        agent_name: "planner".into(),
        description: "Plans".into(),
        owner: String::new(),
        tags: vec![],
        status: "active".into(),
        runbook_url: String::new(),
        created_at: at,
        updated_at: at,
        first_seen_at: None,
        last_seen_at: None,
    };
    assert_eq!(b.agents.upsert_agent(put(10)).await.unwrap().first_seen_at, None, "{n}");
    b.agents.record_sightings(vec![seen("sp1", &["planner"], &[], 400)]).await.unwrap();
    let p = b.agents.upsert_agent(put(500)).await.unwrap();
    assert_eq!((p.description.as_str(), p.first_seen_at, p.last_seen_at), ("Plans", Some(400), Some(400)), "{n}");
    b.agents.record_sightings(vec![]).await.unwrap();
    // Leave no servers behind for the server checks, which count every project's.
    assert!(b.servers.delete_server("sp1", "gh").await.unwrap(), "{n}");
}

/// The sessions list's paging, search, sort and counts (ours): the same rows in the same order on every
/// backend, the plain request included.
async fn session_listing_conforms(b: &Backend) {
    let n = b.name;
    let tag = test_support::session_id();
    let now = chrono::Utc::now();
    let at = |ms: i64| (now + chrono::Duration::milliseconds(ms)).to_rfc3339();
    // Session i starts 100 - 10·i s ago (so 4 is the newest), has i + 1 spans and lasts (5 - i) s; session 2
    // fails; session 1's agent is the only one whose name contains "planner".
    let ids: Vec<String> = (0..5).map(|i| format!("{i}{}", &tag[1..])).collect();
    for (i, id) in ids.iter().enumerate() {
        let i = i as i64;
        let start = -100_000 + i * 10_000;
        let agent = if i == 1 { "Alpha-Planner" } else { "worker" };
        let batch: Vec<serde_json::Value> = (0..=i)
            .map(|k| {
                let last = k == i;
                serde_json::json!({
                    "span_id": format!("{id}-{k}"), "span_type": "tool_call", "session_id": id, "server_name": "gh",
                    "tool_name": "read", "agent_name": agent, "project_id": "plist",
                    "started_at": at(start + k), "ended_at": at(if last { start + (5 - i) * 1000 } else { start + k + 1 }),
                    "status": if i == 2 && last { "error" } else { "success" },
                    "error": if i == 2 && last { serde_json::json!("boom") } else { serde_json::Value::Null },
                })
            })
            .collect();
        b.spans.ingest(spans(serde_json::Value::Array(batch))).await.unwrap();
    }
    let base = SessionQuery {
        project_id: Some("plist".into()),
        active_since: now_micros() - 3_600_000_000,
        limit: 2,
        ..Default::default()
    };
    let ids = &ids;
    let list = |q: SessionQuery| async move {
        let rows = b.spans.list_sessions(q).await.unwrap();
        rows.into_iter().map(|r| ids.iter().position(|id| *id == r.session_id).unwrap()).collect::<Vec<_>>()
    };
    // The plain request pages newest first.
    assert_eq!(list(base.clone()).await, [4, 3], "{n}");
    assert_eq!(list(SessionQuery { offset: 2, ..base.clone() }).await, [2, 1], "{n}");
    assert_eq!(list(SessionQuery { offset: 4, ..base.clone() }).await, [0], "{n}");
    let all = SessionQuery { limit: 10, ..base.clone() };
    let sorted = |sort: SessionSort, ascending: bool| SessionQuery { sort, ascending, ..all.clone() };
    assert_eq!(list(sorted(SessionSort::Started, true)).await, [0, 1, 2, 3, 4], "{n}: oldest first");
    assert_eq!(list(sorted(SessionSort::Spans, false)).await, [4, 3, 2, 1, 0], "{n}: most spans first");
    assert_eq!(list(sorted(SessionSort::Duration, false)).await, [0, 1, 2, 3, 4], "{n}: longest first");
    assert_eq!(list(sorted(SessionSort::Duration, true)).await, [4, 3, 2, 1, 0], "{n}: shortest first");
    assert_eq!(list(sorted(SessionSort::Session, true)).await, [0, 1, 2, 3, 4], "{n}: by id");
    assert_eq!(list(sorted(SessionSort::Health, false)).await[0], 2, "{n}: the failure first");
    assert_eq!(list(sorted(SessionSort::Agent, true)).await[0], 1, "{n}: Alpha-Planner before worker");
    // A sorted page: offset and limit apply after the sort.
    assert_eq!(list(SessionQuery { offset: 1, limit: 2, ..sorted(SessionSort::Spans, true) }).await, [1, 2], "{n}");
    // Search: the agent name or the session id, any case; a filter and the search together.
    let search = |s: &str| SessionQuery { search: Some(s.into()), ..all.clone() };
    assert_eq!(list(search("PLANNER")).await, [1], "{n}");
    assert_eq!(list(search(&format!("3{}", &tag[1..12]).to_uppercase())).await, [3], "{n}");
    assert_eq!(list(search("worker")).await, [4, 3, 2, 0], "{n}");
    assert_eq!(list(SessionQuery { failed: Some(true), ..search("worker") }).await, [2], "{n}");
    assert_eq!(list(SessionQuery { failed: Some(false), ..all.clone() }).await, [4, 3, 1, 0], "{n}");
    assert!(list(search("%")).await.is_empty(), "{n}: no wildcard");
    assert_eq!(list(search("  ")).await, [4, 3, 2, 1, 0], "{n}: a blank search is no search");
    // Counts, over the filters and the search.
    assert_eq!(b.spans.count_sessions(all.clone()).await.unwrap(), SessionCounts { total: 5, failed: 1 }, "{n}");
    assert_eq!(b.spans.count_sessions(search("planner")).await.unwrap(), SessionCounts { total: 1, failed: 0 }, "{n}");
    let other = SessionQuery { project_id: Some("nobody".into()), ..all.clone() };
    assert_eq!(b.spans.count_sessions(other).await.unwrap(), SessionCounts::default(), "{n}");
}

/// A server's scan history (ours): newest first, bounded, per project and server.
async fn security_conform(b: &Backend) {
    let n = b.name;
    let scan = |id: &str, project: &str, server: &str, at: i64| SecurityScan {
        id: format!("{id}-{n}"),
        project_id: project.into(),
        server_name: server.into(),
        scanned_at: at,
        scanner_version: "test".into(),
        error: (at == 20).then(|| "unreachable".to_string()),
        critical: at / 10,
        high: 0,
        medium: 0,
        low: 0,
        info: 0,
        findings_json: "[]".into(),
    };
    for s in [
        scan("s1", "psec", "gh", 10),
        scan("s3", "psec", "gh", 30),
        scan("s2", "psec", "gh", 20),
        scan("o1", "psec", "other", 40),
        scan("x1", "pelse", "gh", 50),
    ] {
        b.security.save_scan(s).await.unwrap();
    }
    let times = |v: Vec<SecurityScan>| v.into_iter().map(|s| s.scanned_at).collect::<Vec<_>>();
    assert_eq!(times(b.security.scan_history("psec", "gh", 10).await.unwrap()), [30, 20, 10], "{n}: newest first");
    assert_eq!(times(b.security.scan_history("psec", "gh", 2).await.unwrap()), [30, 20], "{n}: at most the limit");
    let failed = b.security.scan_history("psec", "gh", 10).await.unwrap();
    assert_eq!(failed[1].error.as_deref(), Some("unreachable"), "{n}: scans that could not run are listed too");
    assert_eq!(times(b.security.scan_history("pelse", "gh", 10).await.unwrap()), [50], "{n}: per project");
    assert!(b.security.scan_history("", "gh", 10).await.unwrap().is_empty(), "{n}: operator servers apart");
}

async fn conform(b: Backend) {
    agents_conform(&b).await;
    sightings_conform(&b).await;
    pricing_conform(&b).await;
    spans_conform(&b).await;
    health_conform(&b).await;
    keys_conform(&b).await;
    projects_conform(&b).await;
    users_conform(&b).await;
    servers_conform(&b).await;
    alerts_conform(&b).await;
    session_listing_conforms(&b).await;
    security_conform(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(SqliteStorage::open(&dir.path().join("c.db")).unwrap());
    conform(Backend {
        name: "sqlite",
        keys: db.clone(),
        projects: db.clone(),
        users: db.clone(),
        servers: db.clone(),
        alerts: db.clone(),
        spans: db.clone(),
        health: db.clone(),
        pricing: db.clone(),
        security: db.clone(),
        agents: db,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_conforms() {
    let cluster = tokio::task::spawn_blocking(PgCluster::start).await.unwrap();
    let url = cluster.database("conformance");
    let db = Arc::new(PgStorage::open(&url, 8).await.unwrap());
    conform(Backend {
        name: "postgres",
        keys: db.clone(),
        projects: db.clone(),
        users: db.clone(),
        servers: db.clone(),
        alerts: db.clone(),
        spans: Storage::postgres(db.clone()).spans,
        health: db.clone(),
        pricing: db.clone(),
        security: db.clone(),
        agents: db,
    })
    .await;
}

/// A group that fails as a whole is retried batch by batch, so one bad request (here text PostgreSQL cannot
/// store) fails alone instead of taking the requests grouped with it down too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_group_commit_isolates_a_bad_batch() {
    let cluster = tokio::task::spawn_blocking(PgCluster::start).await.unwrap();
    let db = PgStorage::open(&cluster.database("groups"), 4).await.unwrap();
    let good = || spans(test_support::agent_run(&test_support::session_id(), 3, Some("p1")));
    let mut bad = good();
    bad[0].error = Some("nul \0 byte".into());
    let results = db.ingest_group(vec![good(), bad, good()]).await;
    assert!(results[0].is_ok() && results[2].is_ok(), "the good batches commit: {results:?}");
    assert!(results[1].is_err(), "the bad batch fails on its own");
    let all = SessionQuery {
        project_id: None,
        active_since: 0,
        agent_name: None,
        health_tag: None,
        limit: 10,
        ..Default::default()
    };
    assert_eq!(db.list_sessions(all).await.unwrap().len(), 2);
}

/// Dual mode inserts a group's spans into ClickHouse while PostgreSQL folds them. When ClickHouse refuses, the
/// fold is rolled back (no session is counted without its spans); once it is back, each batch lands once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_group_commit_keeps_no_rollup_without_its_spans() {
    langsight_server::install_tls();
    let cluster = tokio::task::spawn_blocking(PgCluster::start).await.unwrap();
    let mut ch_server = tokio::task::spawn_blocking(test_support::clickhouse::ClickHouseServer::start).await.unwrap();
    let pg = Arc::new(PgStorage::open(&cluster.database("dualgroups"), 4).await.unwrap());
    let ch = langsight_storage::clickhouse::ClickHouse::open(&ch_server.url, "dualgroups", "default", "").await;
    // No spool: an unreachable ClickHouse fails the write instead of parking it.
    let dual = langsight_storage::clickhouse::DualSpans { pg: pg.clone(), ch: Arc::new(ch.unwrap()), spool: None };
    let run = |s: &str| spans(test_support::agent_run(s, 3, Some("p1")));
    let (a, b) = (test_support::session_id(), test_support::session_id());
    let all = SessionQuery { active_since: 0, limit: 10, ..Default::default() };

    tokio::task::block_in_place(|| ch_server.stop());
    let results = dual.ingest_group(vec![run(&a), run(&b)]).await;
    assert!(results.iter().all(|r| r.is_err()), "{results:?}");
    assert!(pg.list_sessions(all.clone()).await.unwrap().is_empty(), "a session was counted without its spans");

    tokio::task::block_in_place(|| ch_server.restart());
    let results = dual.ingest_group(vec![run(&a), run(&b)]).await;
    assert!(results.iter().all(|r| r.as_ref().is_ok_and(|o| o.accepted == 3)), "{results:?}");
    let rows = pg.list_sessions(all).await.unwrap();
    assert_eq!(rows.len(), 2);
    for session in [&a, &b] {
        let row = rows.iter().find(|r| &r.session_id == session).unwrap();
        assert_eq!(row.rollup.span_count, 3, "each span folded once");
        assert_eq!(dual.session_spans(session, Some("p1"), 100).await.unwrap().len(), 3, "each span stored once");
    }
}

/// Dual mode with its spool: accepted spans are fsynced to the spool's open segment and reach ClickHouse in one
/// insert for many groups, not one per group; a read of spans flushes first, so it sees every accepted span.
/// A worker that dies before its flush leaves its segment on disk, and another worker sends it once it counts
/// as left behind (never while it may still be written to).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_spool_sends_many_groups_in_one_insert_and_reads_see_them_first() {
    use langsight_storage::clickhouse::{spool::Spool, ClickHouse, DualSpans};
    langsight_server::install_tls();
    let cluster = tokio::task::spawn_blocking(PgCluster::start).await.unwrap();
    let ch_server = tokio::task::spawn_blocking(test_support::clickhouse::ClickHouseServer::start).await.unwrap();
    let pg = Arc::new(PgStorage::open(&cluster.database("dualspool"), 4).await.unwrap());
    let ch = Arc::new(ClickHouse::open(&ch_server.url, "dualspool", "default", "").await.unwrap());
    let dir = tempfile::tempdir().unwrap();
    // No flusher is running: only reads (and an explicit flush) send the segment.
    let spool = Arc::new(Spool::new(dir.path(), 1 << 30).unwrap());
    let dual = DualSpans { pg: pg.clone(), ch: ch.clone(), spool: Some(spool.clone()) };
    let in_clickhouse = || async {
        let q = "SELECT count() FROM dualspool.spans";
        ch.query(q).await.unwrap().trim().parse::<usize>().unwrap()
    };
    let inserts = || async {
        // Every insert is a new part; nothing merges a handful of tiny parts within the test.
        let q = "SELECT count() FROM system.parts WHERE database = 'dualspool' AND table = 'spans'";
        ch.query(q).await.unwrap().trim().parse::<usize>().unwrap()
    };
    let run = |s: &str| spans(test_support::agent_run(s, 5, Some("p1")));
    let sessions: Vec<String> = (0..12).map(|_| test_support::session_id()).collect();
    for pair in sessions.chunks(2) {
        let results = dual.ingest_group(pair.iter().map(|s| run(s)).collect()).await;
        assert!(results.iter().all(|r| r.as_ref().is_ok_and(|o| o.accepted == 5)), "{results:?}");
    }
    assert_eq!(in_clickhouse().await, 0, "accepted spans wait in the spool until a flush");
    let on_disk: u64 = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    assert!(on_disk > 60 * 200, "60 spans are on disk: {on_disk} bytes");

    // The read flushes first: every span of the six groups, from one insert.
    for sid in &sessions {
        assert_eq!(dual.session_spans(sid, Some("p1"), 100).await.unwrap().len(), 5, "session {sid} whole");
    }
    assert_eq!(in_clickhouse().await, 60);
    assert_eq!(inserts().await, 1, "six groups, one insert");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the sent segment is removed");

    // A worker dies after its 202s, before its flush: the segment stays on disk, and a second worker on the
    // same directory takes it only once it has been left alone long enough to be a dead worker's.
    let lost = test_support::session_id();
    assert!(dual.ingest(run(&lost)).await.is_ok());
    drop(dual);
    drop(spool);
    let survivor = Spool::new(dir.path(), 1 << 30).unwrap();
    assert_eq!(survivor.replay(&ch).await.unwrap(), 0, "a fresh open segment may be a live worker's");
    assert_eq!(in_clickhouse().await, 60);
    let survivor = survivor.with_stale_after(std::time::Duration::ZERO);
    assert_eq!(survivor.replay(&ch).await.unwrap(), 1, "the dead worker's segment is sent");
    assert_eq!(in_clickhouse().await, 65);
    let reader = DualSpans { pg, ch: ch.clone(), spool: Some(Arc::new(survivor)) };
    assert_eq!(reader.session_spans(&lost, Some("p1"), 100).await.unwrap().len(), 5);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    drop(ch_server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migrates_once_when_many_start_together() {
    let cluster = tokio::task::spawn_blocking(PgCluster::start).await.unwrap();
    let url = cluster.database("racing");
    let opens: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PgStorage::open(&url, 2).await.map(|_| ()) })
        })
        .collect();
    for o in opens {
        o.await.unwrap().expect("every starter succeeds");
    }
    let db = PgStorage::open(&url, 2).await.unwrap();
    assert_eq!(db.count_users().await.unwrap(), 0);
    // A wrong URL refuses with the variable named; an unreachable server too.
    let e = PgStorage::open("mysql://nope", 1).await.err().unwrap().to_string();
    assert!(e.contains("LANGSIGHT_POSTGRES_URL"), "{e}");
    let e = PgStorage::open(&format!("postgres://postgres@127.0.0.1:{}/x", test_support::redis::free_port()), 1)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("cannot connect to PostgreSQL at LANGSIGHT_POSTGRES_URL"), "{e}");
}

/// The first-run admin: of many concurrent `create_first_user` calls on an empty table exactly one creates a
/// user; once any user exists it never creates another.
async fn first_user_conforms(users: Arc<dyn UserStore>, n: &str) {
    assert_eq!(users.count_users().await.unwrap(), 0, "{n}");
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let users = users.clone();
            tokio::spawn(async move {
                users.create_first_user(user(&format!("f{i}"), &format!("f{i}@example.com"), "admin")).await
            })
        })
        .collect();
    let mut created = 0;
    for r in racers {
        created += usize::from(r.await.unwrap().unwrap());
    }
    assert_eq!(created, 1, "{n}: exactly one first admin");
    assert_eq!(users.count_users().await.unwrap(), 1, "{n}");
    assert!(!users.create_first_user(user("late", "late@example.com", "admin")).await.unwrap(), "{n}");
    assert_eq!(users.count_users().await.unwrap(), 1, "{n}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_user_is_created_once_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    first_user_conforms(Arc::new(SqliteStorage::open(&dir.path().join("f.db")).unwrap()), "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_user_is_created_once_on_postgres() {
    let cluster = tokio::task::spawn_blocking(PgCluster::start).await.unwrap();
    let db = Arc::new(PgStorage::open(&cluster.database("first_user"), 8).await.unwrap());
    first_user_conforms(db, "postgres").await;
}
