//! Rate limiting through the real HTTP stack, one worker, memory backend.

use langsight_server::config::{Limit, Secret};
use serde_json::json;
use test_support::{TestServer, ADMIN_KEY};

async fn burst(server: &TestServer, path: &str, n: usize, headers: &[(&str, &str)]) -> (usize, usize) {
    let http = test_support::http();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let mut req = http.get(format!("{}{path}", server.url));
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            tokio::spawn(async move { req.send().await.unwrap().status().as_u16() })
        })
        .collect();
    let (mut ok, mut limited) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            429 => limited += 1,
            _ => ok += 1,
        }
    }
    (ok, limited)
}

#[tokio::test]
async fn exactly_the_limit_is_accepted_per_client_and_route() {
    let server = TestServer::start().await;
    let (ok, limited) = burst(&server, "/api/status", 300, &[("X-API-Key", ADMIN_KEY)]).await;
    assert_eq!((ok, limited), (200, 100));
    // Another client has its own budget; so does another route for the same client.
    assert_eq!(burst(&server, "/api/status", 10, &[("X-Forwarded-For", "198.51.100.2")]).await, (10, 0));
    assert_eq!(burst(&server, "/api/liveness", 10, &[("X-API-Key", ADMIN_KEY)]).await, (10, 0));

    let r = server.client(Some(ADMIN_KEY)).get("/api/status").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.body, json!({"error": "Rate limit exceeded: 200 per 1 minute"}));
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(r.headers["ratelimit-limit"], "200");
    assert_eq!(r.headers["ratelimit-remaining"], "0");
}

#[tokio::test]
async fn unknown_keys_do_not_buy_fresh_budgets() {
    let server = TestServer::start_with(|c| {
        c.api_keys = vec![Secret(ADMIN_KEY.into())];
        c.rate_limits.default = Limit { count: 5, window_ms: 60_000 };
    })
    .await;
    // Limiting runs before authentication: made-up keys share their address's bucket…
    let mut ok = 0;
    for i in 0..10 {
        if server.client(Some(&format!("made-up-key-{i:04}-xxxxxxxxxx"))).get("/api/status").await.status == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 5);
    // …while a valid key has its own.
    assert_eq!(burst(&server, "/api/status", 5, &[("X-API-Key", ADMIN_KEY)]).await, (5, 0));
}

#[tokio::test]
async fn buckets_follow_the_route_template_and_per_route_limits() {
    let server = TestServer::start_with(|c| {
        c.api_keys = vec![Secret(ADMIN_KEY.into())];
        c.rate_limits.default = Limit { count: 5, window_ms: 60_000 };
        c.rate_limits.spans = Limit { count: 8, window_ms: 60_000 };
    })
    .await;
    let admin = server.admin();
    // Different session ids share one bucket: the template, not the raw path.
    let mut statuses = Vec::new();
    for i in 0..7 {
        statuses.push(admin.get(&format!("/api/agents/sessions/{:032x}", i)).await.status);
    }
    assert_eq!(statuses, vec![404, 404, 404, 404, 404, 429, 429]);
    // Ingest keeps its own, larger limit.
    let mut accepted = 0;
    for _ in 0..10 {
        if admin.ingest(&json!([])).await.status == 202 {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 8);
    // Unmatched paths are not limited.
    for _ in 0..10 {
        assert_eq!(admin.get("/api/no-such-route").await.status, 404);
    }
}

#[tokio::test]
async fn forwarded_clients_of_a_trusted_proxy_have_their_own_buckets() {
    let server = TestServer::start_with(|c| c.rate_limits.default = Limit { count: 3, window_ms: 60_000 }).await;
    // The test client connects from 127.0.0.1, a trusted proxy by default: X-Forwarded-For names the client —
    // the right-most address that is not a trusted proxy, since the left-most is whatever the client wrote.
    assert_eq!(burst(&server, "/api/status", 5, &[("X-Forwarded-For", "203.0.113.7, 127.0.0.1")]).await, (3, 2));
    assert_eq!(burst(&server, "/api/status", 3, &[("X-Forwarded-For", "203.0.113.8")]).await, (3, 0));
    assert_eq!(
        burst(&server, "/api/status", 2, &[("X-Forwarded-For", "1.2.3.4, 203.0.113.7")]).await,
        (0, 2),
        "a spoofed left-most entry does not change the client"
    );
    // An untrusted peer's X-Forwarded-For is ignored.
    let untrusted = TestServer::start_with(|c| {
        c.rate_limits.default = Limit { count: 3, window_ms: 60_000 };
        c.trusted_proxy_cidrs = langsight_server::config::parse_cidrs("10.0.0.0/8").unwrap();
    })
    .await;
    assert_eq!(burst(&untrusted, "/api/status", 2, &[("X-Forwarded-For", "203.0.113.1")]).await, (2, 0));
    assert_eq!(burst(&untrusted, "/api/status", 2, &[("X-Forwarded-For", "203.0.113.2")]).await, (1, 1));
}

#[tokio::test]
async fn probes_and_scrapes_are_never_limited() {
    let server = TestServer::start_with(|c| {
        c.api_keys = vec![Secret(ADMIN_KEY.into())];
        c.metrics_token = Some(Secret("scrape-me".into()));
        c.rate_limits.default = Limit { count: 5, window_ms: 60_000 };
    })
    .await;
    // The limiter is on for this address: a plain route gets 429 past its 5.
    assert_eq!(burst(&server, "/api/status", 8, &[]).await, (5, 3));
    // An orchestrator probing, and a scraper scraping, from that same address: every answer a 200.
    let http = test_support::http();
    for path in ["/api/liveness", "/api/readiness", "/metrics"] {
        let tasks: Vec<_> = (0..30)
            .map(|_| {
                let req = http.get(format!("{}{path}", server.url)).bearer_auth("scrape-me");
                tokio::spawn(async move { req.send().await.unwrap() })
            })
            .collect();
        for t in tasks {
            let r = t.await.unwrap();
            assert_eq!(r.status(), 200, "{path}");
            assert!(r.headers().get("ratelimit-limit").is_none(), "{path} is outside the limiter");
        }
    }
    assert_eq!(burst(&server, "/api/status", 1, &[]).await, (0, 1), "while the plain route stays limited");
}
