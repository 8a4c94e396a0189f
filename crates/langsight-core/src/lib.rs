//! Domain types and pure logic of LangSight, free of I/O.
//!
//! - [`span`]: the span as agents send it (`ToolCallSpan` on the wire), its decoder and the validation
//!   rules of `POST /api/traces/spans`, and the lineage fix-ups applied at ingest.
//! - [`session`]: the per-session rollup maintained at ingest, so listing sessions never re-aggregates spans.
//! - [`rollup`]: the analytics rollups kept at ingest (hourly and five-minute rows) that every figure merges.
//! - [`sketch`]: mergeable latency-quantile and distinct-count sketches for the hourly analytics rollups.
//! - [`health`]: session health tags and their priority order.
//! - [`time`]: the timestamp type and the wire formats the original emits.
//! - [`keys`]: API key generation and hashing.
//! - [`tree`]: a session's parent/child tree, built and walked without recursion.

pub mod health;
pub mod keys;
pub mod links;
pub mod rollup;
pub mod session;
pub mod sketch;
pub mod span;
pub mod time;
pub mod tree;

/// The version reported by `/api/status` and `/api/readiness`. We report the original's version so its SDK
/// and dashboard, which may compare versions, treat us as the server they know.
pub const COMPATIBLE_VERSION: &str = "0.15.0";
