//! The accept loop: HTTP/1 connections served by hyper with the timeouts axum's own `serve` leaves out.
//!
//! `axum::serve` gives hyper no timer, so hyper's header read timeout never fires: a client that sends half a
//! request head and then nothing keeps its connection, task and buffers forever (slowloris). Here every
//! connection gets a timer and [`Timeouts::header`]; the request body's deadline is enforced where the body is
//! read (`http::LimitedBody`), which finds [`BodyDeadline`] in the request's extensions.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

/// How long a client may take to send what it started.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From a connection's first byte of a request to the end of its head (`LANGSIGHT_HEADER_READ_TIMEOUT_SECONDS`).
    pub header: Duration,
    /// From the handler asking for the body to its last byte (`LANGSIGHT_BODY_READ_TIMEOUT_SECONDS`).
    pub body: Duration,
}

/// The body deadline of the connection a request came on (see `http::LimitedBody`).
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadline(pub Duration);

/// Serves `app` on `listener` until `stop` fires, then lets open connections finish their requests
/// (connections drain gracefully: idle keep-alive ones close at once). Resolves when every connection ended.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    timeouts: Timeouts,
    stop: impl std::future::Future<Output = ()>,
) {
    // Closed (dropped) when shutdown starts; connection tasks watch it.
    let (stop_tx, stop_rx) = watch::channel(());
    // Every connection task holds a clone; `closed()` resolves once all are gone.
    let (done_tx, done_rx) = watch::channel(());
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "api.accept_failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let deadline = BodyDeadline(timeouts.body);
        let service = app.map_request(move |req: hyper::Request<Incoming>| {
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(ConnectInfo(peer));
            req.extensions_mut().insert(deadline);
            req
        });
        let mut stop_rx = stop_rx.clone();
        stop_rx.mark_unchanged();
        let done_rx = done_rx.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(timeouts.header);
            let conn =
                builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)).with_upgrades();
            tokio::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                _ = stop_rx.changed() => {
                    // Finish the request in flight (if any), then close.
                    conn.as_mut().graceful_shutdown();
                    conn.as_mut().await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, peer = %peer, "api.connection_ended");
            }
            drop(done_rx);
        });
    }
    drop(stop_tx);
    drop(done_rx);
    done_tx.closed().await;
}
