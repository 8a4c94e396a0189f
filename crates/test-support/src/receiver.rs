//! A local webhook receiver (Slack-compatible: any JSON POST answered 200 `ok`) that records every request
//! and can be told to fail or redirect, for alert delivery tests.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Default)]
struct Shared {
    got: Mutex<Vec<Received>>,
    /// 0 = answer 200; otherwise this status (302 redirects to `/trap`).
    status: AtomicU16,
}

pub struct Receiver {
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

async fn handle(State(s): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    if let Ok(mut g) = s.got.lock() {
        g.push(Received { path: uri.path().to_string(), headers, body: body.to_vec() });
    }
    match s.status.load(Ordering::SeqCst) {
        0 => (StatusCode::OK, "ok").into_response(),
        302 => (StatusCode::FOUND, [("Location", "/trap")], "").into_response(),
        n => (StatusCode::from_u16(n).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), "down").into_response(),
    }
}

impl Receiver {
    pub async fn start() -> Receiver {
        let shared = Arc::new(Shared::default());
        let app = axum::Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the receiver");
        let url = format!("http://{}", listener.local_addr().expect("receiver address"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, shared, task }
    }

    /// Every request so far to `path`.
    pub fn requests(&self, path: &str) -> Vec<Received> {
        self.shared.got.lock().map(|g| g.iter().filter(|r| r.path == path).cloned().collect()).unwrap_or_default()
    }

    /// Answer every request with this status from now on (0 = 200).
    pub fn answer(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
