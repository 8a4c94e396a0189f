//! MCP health monitoring.
//!
//! [`check`] runs one health check of one MCP server the way the original does (connect, `initialize`,
//! `tools/list`, optional health tool, all under the server's timeout) and never fails: every problem becomes
//! a `down` or `degraded` result with an error string saying what happened. Built on the official Rust MCP
//! SDK (`rmcp`) for stdio and Streamable HTTP, and for the legacy HTTP+SSE transport through our own client of
//! it (`sse`: rmcp 3 ships none) handed to rmcp, so all three share one handshake. [`drift::classify`] says
//! what changed between two tool lists.

mod check;
pub mod drift;
pub mod scorecard;
pub mod security;
mod sse;

pub use check::{check, check_pinned, schema_hash, CheckResult, Pinned, ServerSpec, Status, ToolInfo, Transport};
