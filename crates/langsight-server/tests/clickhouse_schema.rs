//! The ClickHouse schema against the server this machine can run (Debian's 18.16, the oldest we support):
//! it creates, takes rows in JSONEachRow, answers the queries the analytics will need, and drops a month's
//! partition (how retention will work there).

use langsight_storage::clickhouse::{quote, ClickHouse};
use serde_json::json;
use test_support::clickhouse::ClickHouseServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_works_on_the_oldest_supported_clickhouse() {
    langsight_server::install_tls();
    let server = tokio::task::spawn_blocking(ClickHouseServer::start).await.unwrap();
    let ch = ClickHouse::open(&server.url, "langsight_test", "default", "").await.expect("schema created");
    // Opening again is a no-op (several workers start together).
    ClickHouse::open(&server.url, "langsight_test", "default", "").await.expect("idempotent");
    let version = ch.query("SELECT version()").await.unwrap();
    assert!(!version.trim().is_empty());

    let span = |id: &str, started_at: i64, status: &str| {
        json!({"span_id": id, "parent_span_id": null, "span_type": "tool_call", "trace_id": null, "session_id": "s1",
            "server_name": "pg", "tool_name": "query", "started_at": started_at, "ended_at": started_at + 5,
            "latency_ms": 5.0, "status": status, "error": null, "agent_name": "it's quoted", "input_json": "{\"q\":1}",
            "output_json": null, "llm_input": null, "llm_output": null, "replay_of": null, "project_id": "p1",
            "input_tokens": 12, "output_tokens": null, "model_id": null, "finish_reason": null, "cache_read_tokens": null,
            "cache_creation_tokens": null, "thinking_tokens": null, "target_agent_name": null,
            "lineage_provenance": "explicit", "lineage_status": "complete", "schema_version": "1.0"})
    };
    let now = langsight_core::time::now_micros();
    let old = now - 200 * 86_400_000_000;
    ch.insert("spans", &[span("a", now, "success"), span("b", now + 1, "error"), span("c", old, "success")])
        .await
        .unwrap();
    let rows = ch
        .query(&format!(
            "SELECT span_id, agent_name, input_tokens FROM langsight_test.spans WHERE session_id = {} AND project_id = {} \
             ORDER BY started_at FORMAT JSONEachRow",
            quote("s1"),
            quote("p1")
        ))
        .await
        .unwrap();
    let parsed: Vec<serde_json::Value> = rows.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(parsed.len(), 3, "{rows}");
    assert_eq!(parsed[1]["agent_name"], json!("it's quoted"));
    let agg = ch
        .query(
            "SELECT server_name, count() AS calls, countIf(status != 'success') AS errors, max(started_at) AS last \
                FROM langsight_test.spans GROUP BY server_name FORMAT JSONEachRow",
        )
        .await
        .unwrap();
    let agg: serde_json::Value = serde_json::from_str(agg.lines().next().unwrap()).unwrap();
    assert_eq!(
        (
            agg["calls"].to_string().trim_matches('"').to_string(),
            agg["errors"].to_string().trim_matches('"').to_string()
        ),
        ("3".to_string(), "1".to_string()),
        "{agg}"
    );

    // Retention: drop the partitions older than the cutoff month.
    let parts = ch
        .query("SELECT DISTINCT partition FROM system.parts WHERE database = 'langsight_test' AND table = 'spans' AND active FORMAT JSONEachRow")
        .await
        .unwrap();
    assert_eq!(parts.lines().count(), 2, "two months: {parts}");
    let oldest: serde_json::Value = serde_json::from_str(parts.lines().min().unwrap()).unwrap();
    let partition = oldest["partition"].as_str().unwrap().to_string();
    ch.query(&format!("ALTER TABLE langsight_test.spans DROP PARTITION {partition}")).await.unwrap();
    let left = ch.query("SELECT count() FROM langsight_test.spans").await.unwrap();
    assert_eq!(left.trim(), "2");

    // Health history: the newest result per server with argMax.
    let health = |server: &str, status: &str, at: i64| {
        json!({"server_name": server, "project_id": "", "status": status,
        "latency_ms": null, "tools_count": 0, "tools": "[]", "schema_hash": null, "error": null, "checked_at": at})
    };
    ch.insert("health_results", &[health("a", "up", now), health("a", "down", now + 1), health("b", "up", now)])
        .await
        .unwrap();
    let latest = ch
        .query(
            "SELECT server_name, argMax(status, checked_at) AS status FROM langsight_test.health_results \
                WHERE project_id = '' GROUP BY server_name ORDER BY server_name FORMAT JSONEachRow",
        )
        .await
        .unwrap();
    assert_eq!(
        latest.lines().collect::<Vec<_>>(),
        [r#"{"server_name":"a","status":"down"}"#, r#"{"server_name":"b","status":"up"}"#]
    );

    // An unreachable server refuses with the variable named.
    let e = ClickHouse::open("http://127.0.0.1:1", "x", "default", "").await.err().unwrap().to_string();
    assert!(e.contains("LANGSIGHT_CLICKHOUSE_URL"), "{e}");
}

/// A spans table created before `ingested_at` existed (an upgrade) gets the column on open, with 0 for the rows
/// it held (the rollup backfill's backlog).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_spans_table_gains_ingested_at_with_zero_for_its_rows() {
    langsight_server::install_tls();
    let server = tokio::task::spawn_blocking(ClickHouseServer::start).await.unwrap();
    let http = reqwest::Client::new();
    let sql = |q: &'static str| {
        let (http, url) = (http.clone(), server.url.clone());
        async move {
            let r = http.post(&url).body(q).send().await.unwrap();
            let (ok, body) = (r.status().is_success(), r.text().await.unwrap());
            assert!(ok, "{q}: {body}");
            body
        }
    };
    sql("CREATE DATABASE langsight_old").await;
    // The spans table as the releases before rollups created it.
    sql("CREATE TABLE langsight_old.spans (span_id String, parent_span_id Nullable(String), span_type String, \
         trace_id Nullable(String), session_id Nullable(String), server_name String, tool_name String, \
         started_at Int64, ended_at Int64, latency_ms Float64, status String, error Nullable(String), \
         agent_name Nullable(String), input_json Nullable(String), output_json Nullable(String), \
         llm_input Nullable(String), llm_output Nullable(String), replay_of Nullable(String), project_id String, \
         input_tokens Nullable(Int64), output_tokens Nullable(Int64), model_id Nullable(String), \
         finish_reason Nullable(String), cache_read_tokens Nullable(Int64), cache_creation_tokens Nullable(Int64), \
         thinking_tokens Nullable(Int64), target_agent_name Nullable(String), lineage_provenance String, \
         lineage_status String, schema_version String) ENGINE = MergeTree() \
         PARTITION BY toYYYYMM(toDateTime(intDiv(started_at, 1000000))) ORDER BY (project_id, started_at, span_id)")
    .await;
    sql("INSERT INTO langsight_old.spans (span_id, span_type, server_name, tool_name, started_at, ended_at, \
         latency_ms, status, project_id, lineage_provenance, lineage_status, schema_version) \
         VALUES ('old', 'tool_call', 'pg', 'query', 1, 2, 1.0, 'success', 'p1', 'explicit', 'complete', '1.0')")
    .await;
    let ch = ClickHouse::open(&server.url, "langsight_old", "default", "").await.expect("opened and upgraded");
    ClickHouse::open(&server.url, "langsight_old", "default", "").await.expect("a second open finds the column");
    let old = ch.query("SELECT ingested_at FROM langsight_old.spans WHERE span_id = 'old'").await.unwrap();
    assert_eq!(old.trim(), "0", "rows from before the column are the backlog");
    let columns = ch
        .query("SELECT count() FROM system.columns WHERE database = 'langsight_old' AND name = 'ingested_at'")
        .await
        .unwrap();
    assert_eq!(columns.trim(), "1");
}
