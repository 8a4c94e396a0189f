//! The legacy HTTP+SSE transport (MCP 2024-11-05), which rmcp 3 no longer ships a client for but many
//! deployed servers still speak: `GET url` opens an event stream whose first `endpoint` event names where to
//! POST our JSON-RPC messages; the server's messages arrive as `message` events on the stream.
//!
//! We build it as a sink (POSTs) and a stream (parsed events) and hand the pair to rmcp, so the handshake,
//! request ids and pagination are rmcp's, exactly as for the other transports.

use futures_util::{Sink, Stream, StreamExt};
use rmcp::service::{RoleClient, RxJsonRpcMessage, TxJsonRpcMessage};
use std::pin::Pin;

/// What the health check hands to rmcp.
pub type SsePair = (
    Pin<Box<dyn Sink<TxJsonRpcMessage<RoleClient>, Error = SseError> + Send>>,
    Pin<Box<dyn Stream<Item = RxJsonRpcMessage<RoleClient>> + Send>>,
);

#[derive(Debug, thiserror::Error)]
pub enum SseError {
    #[error("POST to the message endpoint failed: {0}")]
    Post(String),
}

/// Opens the event stream, waits for the `endpoint` event and returns the transport pair. Errors are the
/// health check's own error strings. With `pinned`, the stream and every POST go to the vetted addresses
/// only (the endpoint must stay on the same origin, so the same host name).
pub async fn connect(
    url: &str,
    headers: &[(String, String)],
    pinned: Option<&crate::check::Pinned>,
) -> Result<SsePair, String> {
    let mut map = reqwest::header::HeaderMap::new();
    for (k, v) in headers {
        let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
            .map_err(|e| format!("invalid header name '{k}': {e}"))?;
        let value =
            reqwest::header::HeaderValue::from_str(v).map_err(|e| format!("invalid value of header '{k}': {e}"))?;
        map.insert(name, value);
    }
    let base = reqwest::Url::parse(url).map_err(|e| format!("invalid url '{url}': {e}"))?;
    let mut builder = reqwest::Client::builder()
        .default_headers(map)
        // A server-chosen redirect must not send our headers (tokens) elsewhere.
        .redirect(reqwest::redirect::Policy::none());
    if let Some(pin) = pinned {
        builder = pin.apply(url, builder)?;
    }
    let client = builder.build().map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let response = client
        .get(base.clone())
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .send()
        .await
        .map_err(|e| format!("cannot open the SSE stream at {url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("SSE stream at {url} answered HTTP {}", response.status()));
    }
    let mut events = sse_stream::SseStream::from_bytes_stream(response.bytes_stream());
    let endpoint = loop {
        match events.next().await {
            Some(Ok(e)) if e.event.as_deref() == Some("endpoint") => {
                let data = e.data.unwrap_or_default();
                break base
                    .join(data.trim())
                    .map_err(|e| format!("the server announced a bad endpoint '{data}': {e}"))?;
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("SSE stream broke before the endpoint event: {e}")),
            None => return Err("SSE stream closed before announcing its message endpoint".into()),
        }
    };
    // The endpoint must stay on the server we were told to check.
    if endpoint.origin() != base.origin() {
        return Err(format!("the server announced an endpoint on another origin ({endpoint}); refused"));
    }
    let stream = events.filter_map(|item| async move {
        let e = item.ok()?;
        if !matches!(e.event.as_deref(), None | Some("message")) {
            return None;
        }
        match serde_json::from_str::<RxJsonRpcMessage<RoleClient>>(e.data.as_deref()?) {
            Ok(m) => Some(m),
            Err(err) => {
                tracing::debug!(error = %err, "mcp.sse.unparsed_message");
                None
            }
        }
    });
    let sink = futures_util::sink::unfold(
        (client, endpoint),
        |(client, endpoint), msg: TxJsonRpcMessage<RoleClient>| async move {
            let response =
                client.post(endpoint.clone()).json(&msg).send().await.map_err(|e| SseError::Post(e.to_string()))?;
            if !response.status().is_success() {
                return Err(SseError::Post(format!("HTTP {}", response.status())));
            }
            Ok((client, endpoint))
        },
    );
    Ok((Box::pin(sink), Box::pin(stream)))
}
