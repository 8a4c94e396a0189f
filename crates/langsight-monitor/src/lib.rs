//! MCP health monitoring.
//!
//! [`check`] runs one health check of one MCP server the way the original does (connect, `initialize`,
//! `tools/list`, optional health tool, all under the server's timeout) and never fails: every problem becomes
//! a `down` or `degraded` result with an error string saying what happened. Built on the official Rust MCP
//! SDK (`rmcp`) for stdio and Streamable HTTP. Not built yet: the legacy HTTP+SSE transport (rmcp 3 has no
//! client for it), drift detection, the circuit-breaker wiring and the monitor loop.

mod check;

pub use check::{check, CheckResult, ServerSpec, Status, ToolInfo, Transport};
