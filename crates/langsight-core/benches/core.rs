//! Micro-benchmarks of the per-span work on the ingest path, so a regression shows as a number:
//! the span decoder, the rollup fold (on the request's task), the rollup row merge (on the writer thread, per
//! row per group commit) and the session-tag rules.
//!
//! `cargo bench -p langsight-core --bench core` (figures in BENCHMARKS.md).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use langsight_core::rollup::{RollupBatch, RollupKind};
use langsight_core::session::SessionRollup;
use langsight_core::span::{decode_batch, Span};
use serde_json::{json, Value};
use std::hint::black_box;

/// A 30-span SDK batch shaped like an agent run: a root span, tool calls with arguments and results, LLM
/// calls with tokens, some failures (the same shape as `ingest-bench` sends).
fn sdk_batch(session: &str, n: usize) -> Vec<u8> {
    let at = |ms: i64| format!("2026-12-01T10:{:02}:{:02}.{:03}Z", ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let mut spans = vec![json!({
        "span_id": format!("{session}-0"), "span_type": "agent", "session_id": session, "trace_id": session,
        "server_name": "crewai", "tool_name": "session", "agent_name": "research-crew",
        "started_at": at(0), "ended_at": at(n as i64 * 120), "status": "success",
        "llm_input": "Research the latest release notes of the project and summarise breaking changes.",
    })];
    for i in 1..n {
        let (llm, failed) = (i % 5 == 0, i % 11 == 0);
        spans.push(json!({
            "span_id": format!("{session}-{i}"), "parent_span_id": format!("{session}-0"),
            "span_type": if llm { "agent" } else { "tool_call" }, "session_id": session, "trace_id": session,
            "server_name": if llm { "anthropic" } else if i % 2 == 0 { "github" } else { "filesystem" },
            "tool_name": if llm { "generate/claude-sonnet-4" } else if i % 2 == 0 { "search_issues" } else { "read_file" },
            "agent_name": if i < n / 2 { "researcher" } else { "writer" },
            "started_at": at(i as i64 * 120), "ended_at": at(i as i64 * 120 + 95 + (i as i64 * 37) % 400),
            "status": if failed { "error" } else { "success" },
            "error": if failed { json!("MCP error -32603: upstream rate limit, retry later") } else { Value::Null },
            "input_args": {"query": "release notes breaking changes", "page": i},
            "output_result": "Found 12 matching items: #4411 Deprecate v1 client, #4420 Remove legacy auth, #4432 ...",
            "model_id": if llm { json!("claude-sonnet-4") } else { Value::Null },
            "input_tokens": if llm { json!(1800) } else { Value::Null },
            "output_tokens": if llm { json!(420) } else { Value::Null },
        }));
    }
    serde_json::to_vec(&spans).unwrap_or_default()
}

/// A session id of the accepted form (32 hex digits).
fn session_id(n: u64) -> String {
    format!("{n:032x}")
}

fn spans(session: &str) -> Vec<Span> {
    decode_batch(&sdk_batch(session, 30)).unwrap_or_else(|e| panic!("the bench batch is valid: {e:?}"))
}

fn decoder(c: &mut Criterion) {
    let body = sdk_batch(&session_id(1), 30);
    assert!(decode_batch(&body).is_ok(), "the bench batch is valid");
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(30));
    g.bench_function("sdk_batch_30_spans", |b| b.iter(|| decode_batch(black_box(&body))));
    g.finish();
}

fn rollups(c: &mut Criterion) {
    let batch = spans(&session_id(2));
    let mut g = c.benchmark_group("rollup");
    g.throughput(Throughput::Elements(30));
    g.bench_function("fold_30_spans", |b| b.iter(|| RollupBatch::from_spans(black_box(&batch))));
    g.finish();

    // A stored row after an hour of traffic (many sessions, varied latencies), and one batch's delta to it:
    // what the writer does per row per group commit.
    let mut hour = RollupBatch::default();
    for n in 0..2_000 {
        hour.absorb(RollupBatch::from_spans(&spans(&session_id(1000 + n))));
    }
    let delta = RollupBatch::from_spans(&batch);
    let mut g = c.benchmark_group("rollup_row_merge");
    for kind in [RollupKind::Hourly, RollupKind::Slot] {
        let Some((key, stored)) = hour.0.iter().filter(|(k, _)| k.0 == kind).max_by_key(|(_, v)| v.to_bytes().len())
        else {
            continue;
        };
        let Some(add) = delta.0.iter().find(|(k, _)| k.0 == kind && k.3 == key.3).map(|(_, v)| v.clone()) else {
            continue;
        };
        let bytes = stored.to_bytes();
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(format!("{kind:?}_{}_bytes", bytes.len()), |b| {
            b.iter(|| {
                let mut row = langsight_core::rollup::Stats::from_bytes(black_box(&bytes)).unwrap_or_default();
                row.merge(&add);
                row.to_bytes()
            })
        });
    }
    g.finish();
}

fn session_tags(c: &mut Criterion) {
    let batch = spans(&session_id(3));
    let mut g = c.benchmark_group("session");
    g.throughput(Throughput::Elements(30));
    g.bench_function("absorb_and_retag_30_spans", |b| {
        b.iter_batched(
            SessionRollup::default,
            |mut r| {
                for s in &batch {
                    r.absorb(s);
                }
                r.retag()
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, decoder, rollups, session_tags);
criterion_main!(benches);
