//! The live view: `GET /api/live/events`, a Server-Sent Events stream of what happens now.
//!
//! Wire format as the original: a `: connected at …` comment, `event: NAME` + `data: JSON` frames,
//! `: keepalive` after 15 s idle, and the `event: error` "Too many connections" frame past
//! `LANGSIGHT_SSE_MAX_CLIENTS`. Added: every event carries an `id:` (`<log id>:<index>`), so a client that
//! reconnects with `Last-Event-ID` gets exactly what it missed from the replay window, and an explicit
//! `event: missed` frame whenever something could not be delivered (the client fell behind, the replay window
//! no longer reaches back, or the event log was interrupted) — silence never hides a loss.
//!
//! Scoping: a project subscriber sees its project's events only; unscoped events go to admin subscribers.
//! Browsers, whose `EventSource` cannot send headers, authenticate with a short-lived signed token from
//! `POST /api/live/token` passed as `?token=`.

use super::query::Params;
use crate::auth::{resolve_from, Credential, Principal};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use hmac::{Hmac, Mac};
use langsight_core::time::{iso_offset, now_micros};
use langsight_shared::bus::{BusMessage, Delivery, MsgId};
use langsight_shared::fanout::{RecvError, Subscriber, TryRecvError};
use serde_json::{json, Value};
use sha2::Sha256;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Stream tokens are valid this long (an `EventSource` reconnects with the same URL meanwhile).
const TOKEN_TTL_SECS: i64 = 3600;
/// How often an open stream re-checks the credential it rests on when nothing changed in this process (a
/// revocation through another worker reaches it within this time; one here, at once).
const RECHECK: Duration = Duration::from_secs(30);

/// Where a client stands: the last event written (log id and index within that message).
#[derive(Clone, Copy)]
struct Position {
    id: MsgId,
    index: i64,
}

fn parse_event_id(s: &str) -> Option<Position> {
    let (id, index) = s.trim().split_once(':')?;
    Some(Position { id: id.parse().ok()?, index: index.parse().ok()? })
}

fn sign(secret: &str, payload: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(payload.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// `POST /api/live/token[?project_id=]`: a token bound to the caller's resolved scope and to the credential
/// that asked for it (revoking that key, logging out or deactivating the user ends streams opened with it).
pub async fn token(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let p = Params::parse(raw.as_deref());
    let scope = principal.scope(&state, p.text("project_id")).await?;
    let exp = now_micros() / 1_000_000 + TOKEN_TTL_SECS;
    let credential = Credential::of(&state, &principal, &headers).encode();
    let payload = format!("{}.{exp}.{credential}", hex::encode(scope.as_deref().unwrap_or("*")));
    let token = format!("{payload}.{}", sign(&state.config.stream_secret.0, &payload));
    Ok(Json(json!({
        "token": token,
        "expires_at": iso_offset(exp * 1_000_000),
        "stream_url": format!("/api/live/events?token={token}"),
    })))
}

/// The scope a valid token grants (`None` = all projects, `Some(p)` = project p) and the credential it
/// rests on.
fn verify_token(state: &AppState, token: &str) -> Option<(Option<String>, Credential)> {
    let (payload, sig) = token.rsplit_once('.')?;
    let expected = sign(&state.config.stream_secret.0, payload);
    if !bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), sig.as_bytes())) {
        return None;
    }
    let mut parts = payload.splitn(3, '.');
    let (scope_hex, exp, credential) = (parts.next()?, parts.next()?, parts.next()?);
    if exp.parse::<i64>().ok()? < now_micros() / 1_000_000 {
        return None;
    }
    let scope = String::from_utf8(hex::decode(scope_hex).ok()?).ok()?;
    Some((if scope == "*" { None } else { Some(scope) }, Credential::decode(credential)?))
}

/// Decrements the active-stream gauge however the stream ends.
struct ActiveGuard(AppState);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.metrics.sse_active.fetch_sub(1, Ordering::Relaxed);
    }
}

fn sse_response(body: Body) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

pub async fn events(State(state): State<AppState>, req: axum::extract::Request) -> Response {
    let peer = req.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
    let raw = req.uri().query().map(String::from);
    let headers = req.headers().clone();
    match open_stream(state, peer, headers, raw).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn open_stream(
    state: AppState,
    peer: Option<std::net::IpAddr>,
    headers: HeaderMap,
    raw: Option<String>,
) -> ApiResult<Response> {
    let p = Params::parse(raw.as_deref());
    let invalid = || {
        ApiError::Unauthenticated(
            "Invalid or expired stream token: get a new one from POST /api/live/token with your API key.".into(),
        )
    };
    let (scope, credential) = match p.text("token") {
        Some(t) => {
            let (scope, credential) = verify_token(&state, t).ok_or_else(invalid)?;
            // A token outlives nothing it was made from: a revoked key's token opens no stream.
            if !credential.still_valid(&state).await {
                return Err(invalid());
            }
            (scope, credential)
        }
        None => {
            let principal = resolve_from(&state, peer, &headers).await?;
            let scope = principal.scope(&state, p.text("project_id")).await?;
            (scope, Credential::of(&state, &principal, &headers))
        }
    };
    let active = state.metrics.sse_active.fetch_add(1, Ordering::Relaxed) + 1;
    let guard = ActiveGuard(state.clone());
    let max = state.config.sse.max_clients;
    if active as usize > max {
        let frame = format!("event: error\ndata: {}\n\n", json!({"message": "Too many connections", "max": max}));
        drop(guard);
        return Ok(sse_response(Body::from(frame)));
    }
    // Subscribe before replaying, so nothing published in between is missed; duplicates are skipped by id.
    let rx = state.shared.bus.subscribe().await;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or_else(|| p.text("last_event_id"))
        .and_then(parse_event_id);
    let mut first = format!(": connected at {}\n\n", iso_offset(now_micros()));
    let mut position = None;
    if let Some(from) = resume {
        position = Some(from);
        let replay = state.shared.bus.replay(from.id).await;
        if !replay.complete {
            missed_frame(&mut first, None, "replay_window_exceeded");
        }
        for msg in &replay.messages {
            render(&state, &scope, msg, &mut position, &mut first);
        }
    }
    let changes = state.keys.changes();
    let shutdown = state.shutting_down.subscribe();
    let recheck_at = tokio::time::Instant::now() + RECHECK;
    let stream = Stream {
        state,
        scope,
        rx,
        position,
        pending: Some(first),
        credential,
        changes,
        shutdown,
        recheck_at,
        ended: false,
        _guard: guard,
    };
    let body = futures_util::stream::unfold(stream, |mut s| async move {
        let chunk = s.next_chunk().await?;
        Some((Ok::<Bytes, std::convert::Infallible>(chunk), s))
    });
    Ok(sse_response(Body::from_stream(body)))
}

struct Stream {
    state: AppState,
    scope: Option<String>,
    rx: Subscriber,
    position: Option<Position>,
    pending: Option<String>,
    /// What the stream's access rests on; re-checked every [`RECHECK`] and whenever a key, user or session
    /// changes in this process.
    credential: Credential,
    changes: tokio::sync::watch::Receiver<u64>,
    /// Turns true when the server starts shutting down: the stream ends so the drain does not wait for it.
    shutdown: tokio::sync::watch::Receiver<bool>,
    recheck_at: tokio::time::Instant,
    /// Set after the closing frame of a revoked stream: the next poll ends it.
    ended: bool,
    _guard: ActiveGuard,
}

fn missed_frame(out: &mut String, missed: Option<u64>, reason: &str) {
    let _ = write!(out, "event: missed\ndata: {}\n\n", json!({"missed_messages": missed, "reason": reason}));
}

/// Appends the frames of `msg` the client is entitled to and has not had yet.
fn render(
    state: &AppState,
    scope: &Option<String>,
    msg: &BusMessage,
    position: &mut Option<Position>,
    out: &mut String,
) {
    match msg.kind {
        Delivery::Gap => return missed_frame(out, None, "event_log_interrupted"),
        Delivery::LocalOnly | Delivery::Message => {}
    }
    let visible = match (scope, &msg.project) {
        (None, _) => true,
        (Some(s), Some(p)) => s.as_str() == &**p,
        (Some(_), None) => false,
    };
    let skip_through = match (msg.kind == Delivery::Message, *position) {
        (true, Some(pos)) if msg.id < pos.id => return,
        (true, Some(pos)) if msg.id == pos.id => pos.index,
        _ => -1,
    };
    if msg.kind == Delivery::Message {
        *position = Some(Position { id: msg.id, index: msg.events.len() as i64 - 1 });
    }
    if !visible {
        return;
    }
    let latency = (langsight_core::time::now_micros() / 1000 - msg.published_ms as i64).max(0) as f64 / 1000.0;
    let mut delivered = 0;
    for (i, e) in msg.events.iter().enumerate() {
        if (i as i64) <= skip_through {
            continue;
        }
        if msg.kind == Delivery::Message {
            let _ = writeln!(out, "id: {}:{i}", msg.id);
        }
        let _ = write!(out, "event: {}\ndata: {}\n\n", e.name, e.data);
        delivered += 1;
    }
    if delivered > 0 {
        state.metrics.sse_events_delivered.fetch_add(delivered, Ordering::Relaxed);
        state.metrics.sse_delivery_seconds.observe(latency);
    }
}

impl Stream {
    /// The next bytes to write: everything available now (coalesced into one chunk), or a keepalive after
    /// the idle time. `None` ends the stream.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.ended || *self.shutdown.borrow() {
            return None;
        }
        if let Some(first) = self.pending.take() {
            return Some(Bytes::from(first));
        }
        // One deadline for the whole call: messages this client may not see must not postpone the keepalive.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(self.state.config.sse.keepalive_seconds);
        loop {
            let mut out = String::new();
            let woke = tokio::select! {
                r = self.rx.recv() => Some(r),
                changed = self.changes.changed() => {
                    if changed.is_err() {
                        // The state is going away: nothing will change any more; check on the timer only.
                        self.changes = tokio::sync::watch::channel(0).1;
                    }
                    self.recheck_at = tokio::time::Instant::now();
                    None
                }
                _ = tokio::time::sleep_until(deadline.min(self.recheck_at)) => None,
                _ = self.shutdown.wait_for(|stopping| *stopping) => {
                    // The client reconnects (EventSource does by itself) to another worker or the restarted one,
                    // resuming from its last id.
                    self.ended = true;
                    return Some(Bytes::from_static(b"event: shutdown\ndata: {\"reconnect\": true}\n\n"));
                }
            };
            if tokio::time::Instant::now() >= self.recheck_at {
                self.recheck_at = tokio::time::Instant::now() + RECHECK;
                if !self.credential.still_valid(&self.state).await {
                    self.ended = true;
                    let frame = json!({"message": "The credential of this stream was revoked or has ended; authenticate again."});
                    return Some(Bytes::from(format!("event: error\ndata: {frame}\n\n")));
                }
            }
            let first = match woke {
                Some(r) => r,
                None if tokio::time::Instant::now() >= deadline => {
                    return Some(Bytes::from_static(b": keepalive\n\n"));
                }
                None => continue,
            };
            self.absorb(first, &mut out).ok()?;
            // Drain whatever else is already queued into the same chunk.
            for _ in 0..256 {
                match self.rx.try_recv() {
                    Ok(m) => self.absorb(Ok(m), &mut out).ok()?,
                    Err(TryRecvError::Lagged(n)) => self.absorb(Err(RecvError::Lagged(n)), &mut out).ok()?,
                    Err(_) => break,
                }
            }
            if !out.is_empty() {
                return Some(Bytes::from(out));
            }
        }
    }

    fn absorb(&mut self, r: Result<Arc<BusMessage>, RecvError>, out: &mut String) -> Result<(), ()> {
        match r {
            Ok(msg) => render(&self.state, &self.scope, &msg, &mut self.position, out),
            Err(RecvError::Lagged(n)) => {
                self.state.metrics.sse_events_dropped.fetch_add(n, Ordering::Relaxed);
                missed_frame(out, Some(n), "slow_client");
            }
            Err(RecvError::Closed) => return Err(()),
        }
        Ok(())
    }
}
