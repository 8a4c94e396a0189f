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
use hyper_util::rt::TokioIo;
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
    let timer = CoarseTimer::start();
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
        let timer = timer.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(timer.clone()).header_read_timeout(timeouts.header);
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

/// How often [`CoarseTimer`] looks for sleeps that are due: the resolution of the header read timeout.
const TICK: Duration = Duration::from_millis(250);

/// hyper's timer, at [`TICK`] resolution. hyper arms a sleep for every request head it reads (keep-alive
/// requests included). A timeout of seconds needs no millisecond precision: sleeps register in one list, and a
/// single task per listener wakes the due ones four times a second, forgetting those hyper dropped. (Switching
/// the header timeout off entirely measured ~4–5 % more ingest throughput; this timer has not yet been shown to
/// recover it — see BENCHMARKS.md.)
#[derive(Clone)]
struct CoarseTimer(std::sync::Arc<std::sync::Mutex<Vec<std::sync::Arc<Entry>>>>);

struct Entry {
    deadline: std::time::Instant,
    fired: std::sync::atomic::AtomicBool,
    waker: std::sync::Mutex<Option<std::task::Waker>>,
}

impl CoarseTimer {
    /// A timer and its ticker task, which ends once every clone of the timer is gone.
    fn start() -> CoarseTimer {
        let timer = CoarseTimer(Default::default());
        let weak = std::sync::Arc::downgrade(&timer.0);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(list) = weak.upgrade() else { return };
                let now = std::time::Instant::now();
                let mut due = Vec::new();
                if let Ok(mut list) = list.lock() {
                    // A sleep hyper dropped holds no other reference: forget it.
                    list.retain(|e| {
                        if std::sync::Arc::strong_count(e) == 1 {
                            return false;
                        }
                        if e.deadline <= now {
                            due.push(e.clone());
                            return false;
                        }
                        true
                    });
                }
                for e in due {
                    e.fired.store(true, std::sync::atomic::Ordering::Release);
                    if let Some(w) = e.waker.lock().ok().and_then(|mut w| w.take()) {
                        w.wake();
                    }
                }
            }
        });
        timer
    }
}

impl hyper::rt::Timer for CoarseTimer {
    fn sleep(&self, duration: Duration) -> std::pin::Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(std::time::Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> std::pin::Pin<Box<dyn hyper::rt::Sleep>> {
        let entry = std::sync::Arc::new(Entry {
            deadline,
            fired: std::sync::atomic::AtomicBool::new(false),
            waker: std::sync::Mutex::new(None),
        });
        if let Ok(mut list) = self.0.lock() {
            list.push(entry.clone());
        }
        Box::pin(CoarseSleep(entry))
    }
}

struct CoarseSleep(std::sync::Arc<Entry>);

impl std::future::Future for CoarseSleep {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        let e = &self.0;
        if e.fired.load(std::sync::atomic::Ordering::Acquire) || std::time::Instant::now() >= e.deadline {
            return std::task::Poll::Ready(());
        }
        if let Ok(mut w) = e.waker.lock() {
            *w = Some(cx.waker().clone());
        }
        // Fired between the check and storing the waker: the ticker found no waker, so answer now.
        if e.fired.load(std::sync::atomic::Ordering::Acquire) {
            return std::task::Poll::Ready(());
        }
        std::task::Poll::Pending
    }
}

impl hyper::rt::Sleep for CoarseSleep {}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Timer;

    #[tokio::test]
    async fn sleeps_fire_within_a_tick_and_dropped_ones_are_forgotten() {
        let timer = CoarseTimer::start();
        let started = std::time::Instant::now();
        timer.sleep(Duration::from_millis(300)).await;
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(300) && took < Duration::from_millis(300) + 3 * TICK, "{took:?}");
        drop(timer.sleep(Duration::from_secs(3600)));
        tokio::time::sleep(2 * TICK).await;
        assert_eq!(timer.0.lock().map(|l| l.len()).unwrap_or(usize::MAX), 0, "a dropped sleep is forgotten");
    }
}
