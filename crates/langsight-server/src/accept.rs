//! The accept loop: HTTP/1 connections served by hyper with the timeouts axum's own `serve` leaves out.
//!
//! `axum::serve` has no header read timeout: a client that sends half a request head and then nothing keeps its
//! connection, task and buffers forever (slowloris). hyper's own `header_read_timeout` arms a timer for every
//! request head and costs ~5 % of ingest throughput (BENCHMARKS.md), so it is off here and the deadline is kept
//! by [`Sweeper`] instead: each connection carries one timestamp, "waiting for a request head since", set when
//! the connection is accepted and when a response has been handed to hyper in full, cleared when hyper calls the
//! service with a parsed head; one task per listener closes the connections whose timestamp is older than
//! [`Timeouts::header`]. Per request that is two relaxed atomic stores and no timer. The request body's deadline
//! is enforced where the body is read (`http::LimitedBody`), which finds [`BodyDeadline`] in the request's
//! extensions.
//!
//! A connection that opens with a live-view stream is served by [`direct`] instead of hyper, so an idle
//! subscriber holds no hyper buffers.

use axum::body::{Body, HttpBody};
use axum::extract::ConnectInfo;
use axum::response::Response;
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tower::ServiceExt;

mod direct;

/// How long a client may take to send what it started.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From the moment a connection is ready for a request (accepted, or its previous response handed over) to
    /// the end of the next request head (`LANGSIGHT_HEADER_READ_TIMEOUT_SECONDS`): a half-sent head and an idle
    /// keep-alive connection are both closed after it, as hyper's own header read timeout would.
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
    let sweeper = Sweeper::start(timeouts.header);
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
        let conn_state = Arc::new(ConnState { clock: sweeper.clock, waiting_since: AtomicU64::new(0) });
        conn_state.waiting();
        let app = app.clone();
        let deadline = BodyDeadline(timeouts.body);
        let on_request = conn_state.clone();
        let on_response = conn_state.clone();
        let on_first = conn_state.clone();
        let service = app
            .clone()
            .map_request(move |req: hyper::Request<Incoming>| {
                // hyper has the whole head: the header deadline no longer applies.
                on_request.waiting_since.store(0, Ordering::Relaxed);
                let mut req = req.map(Body::new);
                tag_request(&mut req, peer, deadline);
                req
            })
            .map_response(move |res: Response| res.map(|inner| ResponseBody { inner, conn: on_response.clone() }));
        let mut stop_rx = stop_rx.clone();
        stop_rx.mark_unchanged();
        let done_rx = done_rx.clone();
        let task = tokio::spawn(async move {
            let stream = match direct::first_request(stream, app, peer, deadline, &on_first, &mut stop_rx).await {
                direct::First::Done => {
                    drop(done_rx);
                    return;
                }
                direct::First::Hyper(stream) => stream,
            };
            drop(on_first);
            let mut builder = hyper::server::conn::http1::Builder::new();
            // The sweeper keeps the header deadline (see the module docs); hyper's per-head timer stays off.
            builder.header_read_timeout(None);
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
        sweeper.watch(conn_state, task.abort_handle(), peer);
    }
    drop(stop_tx);
    drop(done_rx);
    done_tx.closed().await;
}

/// What every request learns of its connection, however it was read.
fn tag_request(req: &mut hyper::Request<Body>, peer: std::net::SocketAddr, deadline: BodyDeadline) {
    req.extensions_mut().insert(ConnectInfo(peer));
    req.extensions_mut().insert(deadline);
}

/// What the sweeper knows of one connection.
struct ConnState {
    /// The listener's clock origin: timestamps are milliseconds since it, plus one (0 = not waiting).
    clock: Instant,
    /// Since when the connection waits for (the rest of) a request head; 0 while a request is being served.
    waiting_since: AtomicU64,
}

impl ConnState {
    /// From now on the connection owes a request head.
    fn waiting(&self) {
        let now = u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1;
        self.waiting_since.store(now, Ordering::Relaxed);
    }
}

/// A response body that, once hyper has taken it in full (or given up on it) and dropped it, starts the
/// connection's wait for the next request head — where hyper itself would start its header read timer.
struct ResponseBody {
    inner: Body,
    conn: Arc<ConnState>,
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        self.conn.waiting();
    }
}

impl HttpBody for ResponseBody {
    type Data = <Body as HttpBody>::Data;
    type Error = <Body as HttpBody>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The connections of one listener, and the task that closes those that have owed a request head for longer
/// than the header timeout. It looks every quarter of the timeout (at least every second), so a connection is
/// closed between `header` and `header` + one look after its wait began.
struct Sweeper {
    clock: Instant,
    conns: Arc<Mutex<Vec<Watched>>>,
}

struct Watched {
    conn: Arc<ConnState>,
    task: AbortHandle,
    peer: std::net::SocketAddr,
}

impl Sweeper {
    /// A sweeper and its task, which ends once the sweeper (held by `serve`) is gone.
    fn start(limit: Duration) -> Sweeper {
        let sweeper = Sweeper { clock: Instant::now(), conns: Default::default() };
        let every = (limit / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let weak = Arc::downgrade(&sweeper.conns);
        let clock = sweeper.clock;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if !Self::sweep(&weak, clock, limit) {
                    return;
                }
            }
        });
        sweeper
    }

    /// One look: forgets ended connections and closes overdue ones. False once the listener is gone.
    fn sweep(conns: &Weak<Mutex<Vec<Watched>>>, clock: Instant, limit: Duration) -> bool {
        let Some(conns) = conns.upgrade() else { return false };
        let now = u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1;
        let limit = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        let Ok(mut conns) = conns.lock() else { return false };
        conns.retain(|w| {
            if w.task.is_finished() {
                return false;
            }
            let since = w.conn.waiting_since.load(Ordering::Relaxed);
            if since != 0 && now.saturating_sub(since) >= limit {
                // Dropping hyper's connection future closes the socket (no 408: the head never came).
                tracing::debug!(peer = %w.peer, "api.header_read_timeout: closing the connection");
                w.task.abort();
                return false;
            }
            true
        });
        true
    }

    fn watch(&self, conn: Arc<ConnState>, task: AbortHandle, peer: std::net::SocketAddr) {
        if let Ok(mut conns) = self.conns.lock() {
            conns.push(Watched { conn, task, peer });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, post};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    const HEADER: Duration = Duration::from_millis(400);

    /// A server with the header timeout [`HEADER`]: `/slow` streams for 3× that, `/echo` reads its body.
    async fn server() -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let slow = || async {
            let chunks = futures_util::stream::unfold(0u32, |i| async move {
                if i == 6 {
                    return None;
                }
                tokio::time::sleep(HEADER / 2).await;
                Some((Ok::<_, std::convert::Infallible>(axum::body::Bytes::from("x")), i + 1))
            });
            Body::from_stream(chunks)
        };
        let app = Router::new()
            .route("/api/live/events", get(live))
            .route("/ok", get(|| async { "ok" }))
            .route("/slow", get(slow))
            .route("/echo", post(|body: axum::body::Bytes| async move { body }));
        let timeouts = Timeouts { header: HEADER, body: Duration::from_secs(10) };
        tokio::spawn(serve(listener, app, timeouts, std::future::pending()));
        addr
    }

    /// A stand-in for the live view: `?deny` answers 401 with a fixed body; `?hold` streams "a", "b" and then
    /// holds the stream open, reporting on [`HELD`] when the server drops it; otherwise "a", "b" and the end.
    async fn live(axum::extract::RawQuery(q): axum::extract::RawQuery) -> Response {
        use axum::response::IntoResponse;
        let q = q.unwrap_or_default();
        if q == "deny" {
            return (axum::http::StatusCode::UNAUTHORIZED, "nope").into_response();
        }
        let hold = q.strip_prefix("hold=").map(|name| Dropped(name.to_string()));
        let chunks = futures_util::stream::unfold((0u32, hold), |(i, hold)| async move {
            match i {
                0 => Some((Ok::<_, std::convert::Infallible>(axum::body::Bytes::from("a")), (1, hold))),
                1 => Some((Ok(axum::body::Bytes::from("b")), (2, hold))),
                _ if hold.is_some() => std::future::pending().await,
                _ => None,
            }
        });
        let mut r = Body::from_stream(chunks).into_response();
        r.headers_mut().insert("content-type", "text/event-stream".parse().unwrap());
        r
    }

    /// Names of the held streams the server has dropped.
    static HELD: Mutex<Vec<String>> = Mutex::new(Vec::new());
    static HELD_CHANGED: tokio::sync::Notify = tokio::sync::Notify::const_new();

    struct Dropped(String);

    impl Drop for Dropped {
        fn drop(&mut self) {
            HELD.lock().unwrap().push(std::mem::take(&mut self.0));
            HELD_CHANGED.notify_waiters();
        }
    }

    /// Waits until the server dropped the held stream `name`.
    async fn dropped(name: &str) -> bool {
        let wait = async {
            loop {
                let changed = HELD_CHANGED.notified();
                if HELD.lock().unwrap().iter().any(|n| n == name) {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait).await.is_ok()
    }

    /// Sends `parts` with a pause between them, then reads until the server closes.
    async fn exchange(addr: std::net::SocketAddr, parts: &[&[u8]]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            s.write_all(part).await.unwrap();
        }
        until_closed(&mut s).await.0
    }

    /// Reads until the server closes; returns what came and how long it took.
    async fn until_closed(s: &mut TcpStream) -> (String, Duration) {
        let started = Instant::now();
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got)).await;
        assert!(read.is_ok(), "the server closed the connection");
        (String::from_utf8_lossy(&got).into_owned(), started.elapsed())
    }

    #[tokio::test]
    async fn a_half_sent_head_and_an_idle_keep_alive_connection_are_closed() {
        let addr = server().await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let (_, took) = until_closed(&mut s).await;
        assert!(took >= HEADER - Duration::from_millis(50) && took < 3 * HEADER, "{took:?}");

        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let (got, took) = until_closed(&mut s).await;
        assert!(got.starts_with("HTTP/1.1 200") && got.ends_with("ok"), "{got}");
        assert!(took >= HEADER - Duration::from_millis(50) && took < 3 * HEADER, "{took:?}");
    }

    #[tokio::test]
    async fn a_response_or_a_body_longer_than_the_header_timeout_is_not_cut() {
        let addr = server().await;
        // Two slow responses on one keep-alive connection, then it idles out.
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /slow HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let (got, _) = until_closed(&mut s).await;
        assert_eq!(got.matches("HTTP/1.1 200").count(), 2, "{got}");

        // A request body that takes longer than the header timeout (the body deadline governs it).
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nConnection: close\r\n\r\nab")
            .await
            .unwrap();
        tokio::time::sleep(2 * HEADER).await;
        s.write_all(b"cd").await.unwrap();
        let (got, _) = until_closed(&mut s).await;
        assert!(got.starts_with("HTTP/1.1 200") && got.ends_with("abcd"), "{got}");
    }

    #[tokio::test]
    async fn a_live_stream_is_written_beside_hyper_and_dropped_when_the_client_leaves() {
        let addr = server().await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        // The request line arrives in two pieces: still recognised.
        s.write_all(b"GET /api/li").await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        s.write_all(b"ve/events?hold=left HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut got = Vec::new();
        let mut b = [0u8; 512];
        while !String::from_utf8_lossy(&got).ends_with("1\r\nb\r\n") {
            let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut b)).await.unwrap().unwrap();
            assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&b[..n]);
        }
        let got = String::from_utf8_lossy(&got).into_owned();
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        // Served here (hyper would keep the connection): the stream ends the connection, chunked as it comes.
        assert!(got.contains("\r\nconnection: close\r\n"), "{got}");
        assert!(got.contains("\r\ntransfer-encoding: chunked\r\n"), "{got}");
        assert!(got.contains("\r\ncontent-type: text/event-stream\r\n"), "{got}");
        assert!(got.contains("\r\ndate: "), "{got}");
        assert!(got.ends_with("\r\n\r\n1\r\na\r\n1\r\nb\r\n"), "{got}");
        // The client leaves: the server notices and drops the stream (nothing would ever be written to it).
        drop(s);
        assert!(dropped("left").await, "the stream outlived its client");

        // A stream that ends is finished with the last chunk; an exact-size answer is sent with its length.
        let got = exchange(addr, &[b"GET /api/live/events HTTP/1.1\r\nHost: x\r\n\r\n"]).await;
        assert!(got.contains("connection: close") && got.ends_with("1\r\na\r\n1\r\nb\r\n0\r\n\r\n"), "{got}");
        let got = exchange(addr, &[b"GET /api/live/events?deny HTTP/1.1\r\nHost: x\r\n\r\n"]).await;
        assert!(got.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{got}");
        assert!(got.contains("\r\ncontent-length: 4\r\n") && got.ends_with("\r\n\r\nnope"), "{got}");
    }

    #[tokio::test]
    async fn every_other_first_request_reaches_hyper_as_it_was_sent() {
        let addr = server().await;
        let hyper_served = |got: &str| !got.contains("connection: close") && got.starts_with("HTTP/1.1 ");
        // Pipelined after a live-view request: hyper answers both, in order.
        let got =
            exchange(addr, &[b"GET /api/live/events HTTP/1.1\r\nHost: x\r\n\r\nGET /ok HTTP/1.1\r\nHost: x\r\n\r\n"])
                .await;
        assert!(hyper_served(&got) && got.matches("HTTP/1.1 200").count() == 2 && got.ends_with("ok"), "{got}");
        // A body, HTTP/1.0, an Upgrade, a longer path: hyper's.
        for head in [
            &b"GET /api/live/events HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab"[..],
            b"GET /api/live/events HTTP/1.0\r\nHost: x\r\n\r\n",
            b"GET /api/live/events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
        ] {
            let got = exchange(addr, &[head]).await;
            assert!(got.starts_with("HTTP/1.") && got.contains(" 200 OK"), "{got}");
        }
        let got = exchange(addr, &[b"GET /api/live/eventsX HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"]).await;
        assert!(got.starts_with("HTTP/1.1 404"), "{got}");
        // A request whose first bytes were read here before it turned out not to be a live stream.
        let got = exchange(
            addr,
            &[b"PO", b"ST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n", b"Connection: close\r\n\r\nabcd"],
        )
        .await;
        assert!(got.starts_with("HTTP/1.1 200") && got.ends_with("abcd"), "{got}");
        // A half-sent live-view head is closed by the header deadline, like any other.
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /api/live/events HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let (got, took) = until_closed(&mut s).await;
        assert!(got.is_empty() && took >= HEADER - Duration::from_millis(50) && took < 3 * HEADER, "{got} {took:?}");
    }

    #[tokio::test]
    async fn shutdown_does_not_wait_for_a_connection_that_never_sent_a_request() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/ok", get(|| async { "ok" }));
        // A header deadline far longer than the test: only shutdown can end the silent connection in time.
        let timeouts = Timeouts { header: Duration::from_secs(30), body: Duration::from_secs(30) };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(serve(listener, app, timeouts, async move {
            let _ = stop_rx.await;
        }));
        let _silent = TcpStream::connect(addr).await.unwrap();
        // Connections are accepted in order: once this one is answered, the silent one has its task.
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut b = [0u8; 256];
        let n = s.read(&mut b).await.unwrap();
        assert!(String::from_utf8_lossy(&b[..n]).starts_with("HTTP/1.1 200"));
        let started = Instant::now();
        stop_tx.send(()).unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(10), served).await;
        assert!(ended.is_ok(), "serve still waits for the silent connection");
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    }
}
