//! `mcp-fixture`: an MCP server for tests that can be told, at any moment, which tools to expose and
//! whether to work, fail or hang — through a JSON state file read on every request:
//!
//! `{"tools": [{"name": "echo", "description": "…", "inputSchema": {"type": "object"}}], "mode": "ok"}`
//!
//! `mode`: `ok`, `fail` (tools/list answers a JSON-RPC error), `hang` (tools/list never answers),
//! `tool_error` (tools/list works, every tool call reports an error). `delay_ms` (optional, `--stdio` only): the
//! server answers `initialize` that much later (a slow server, for latency rules; read once at start).
//! Run with `--stdio` (the protocol on stdin/stdout) or `--http` (prints `LISTENING <url>` and serves
//! Streamable HTTP at `/mcp`). The state file is `$MCP_FIXTURE_STATE`; without it: one `echo` tool, `ok`.

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Clone)]
struct Fixture {
    state_file: Option<Arc<str>>,
}

impl Fixture {
    fn state(&self) -> Value {
        self.state_file
            .as_deref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_else(|| json!({"tools": [{"name": "echo", "description": "Echo the arguments", "inputSchema": {"type": "object"}}], "mode": "ok"}))
    }
}

impl ServerHandler for Fixture {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("langsight-fixture", "1.0.0"))
    }

    async fn list_tools(
        &self,
        _req: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let state = self.state();
        // Each tools/list is one health check: tests count them in $MCP_FIXTURE_LOG.
        if let Ok(log) = std::env::var("MCP_FIXTURE_LOG") {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
                let _ = writeln!(f, "list_tools");
            }
        }
        match state["mode"].as_str().unwrap_or("ok") {
            "fail" => return Err(ErrorData::internal_error("fixture told to fail", None)),
            "hang" => std::future::pending::<()>().await,
            _ => {}
        }
        let mut tools = Vec::new();
        for t in state["tools"].as_array().cloned().unwrap_or_default() {
            let name = t["name"].as_str().unwrap_or("unnamed").to_string();
            let description = t["description"].as_str().unwrap_or("").to_string();
            let schema = t["inputSchema"].as_object().cloned().unwrap_or_default();
            tools.push(Tool::new(name, description, schema));
        }
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        req: CallToolRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if matches!(self.state()["mode"].as_str(), Some("fail") | Some("tool_error")) {
            return Ok(CallToolResult::error(vec![ContentBlock::text("fixture told to fail")]).into());
        }
        let args = Value::from(req.arguments.unwrap_or_default()).to_string();
        Ok(CallToolResult::success(vec![ContentBlock::text(args)]).into())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fixture = Fixture { state_file: std::env::var("MCP_FIXTURE_STATE").ok().map(Arc::from) };
    match std::env::args().nth(1).as_deref() {
        Some("--http") => {
            use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
            use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
            let cfg = StreamableHttpServerConfig::default().with_sse_keep_alive(None);
            let svc: StreamableHttpService<Fixture, LocalSessionManager> =
                StreamableHttpService::new(move || Ok(fixture.clone()), Default::default(), cfg);
            let app = axum::Router::new().nest_service("/mcp", svc);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            println!("LISTENING http://{}/mcp", listener.local_addr()?);
            axum::serve(listener, app).await?;
        }
        _ => {
            if let Some(ms) = fixture.state()["delay_ms"].as_u64() {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            }
            let running = fixture.serve(rmcp::transport::stdio()).await?;
            running.waiting().await?;
        }
    }
    Ok(())
}
