//! Live-view streams served beside hyper instead of through it.
//!
//! An idle live-view subscriber served by hyper holds hyper's per-connection state for as long as it listens:
//! above all an 8 KiB read buffer (hyper's adaptive read strategy never shrinks it below that), its write
//! buffers and dispatcher — ~12 of the 13.4 KiB each subscriber cost (BENCHMARKS.md). A connection whose first
//! request is a plain `GET /api/live/events` is therefore read and parsed here, passed through the same router
//! as every other request (authentication, rate limits, metrics: nothing is skipped), and its streamed answer is
//! written with chunked framing straight to the socket; while it listens the connection holds only the socket
//! and the stream's own state. Everything else — another path, a request body, HTTP/1.0, `Upgrade` or `Expect`,
//! pipelined bytes, a head that does not parse or passes [`MAX_HEAD`] — goes to hyper with the bytes read so far
//! replayed first ([`Prefixed`]), so hyper sees the connection exactly as it arrived.
//!
//! A streamed answer ends the connection (`connection: close`): streams end only on shutdown or revocation,
//! where a reconnect is what the client does anyway.

use super::{tag_request, BodyDeadline, ConnState};
use axum::body::{Body, Bytes, HttpBody};
use axum::http::{header, Method, Request, Version};
use axum::Router;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tower::ServiceExt;

/// The request line a direct stream starts with; the path must end after it (`' '`) or go on with a query.
const DIRECT: &[u8] = b"GET /api/live/events";
/// The largest request head parsed here; a larger one (long cookies) is hyper's to judge.
const MAX_HEAD: usize = 16 * 1024;
/// Headers parsed here at most (hyper's own default is 100; a larger head goes to hyper).
const MAX_HEADERS: usize = 64;
/// What the first read of a connection asks for: enough for a live-view head, small for everything else.
const FIRST_READ: usize = 1024;

/// What became of a connection's first request.
pub(super) enum First {
    /// Served here (or the client left before sending anything): the connection is done.
    Done,
    /// For hyper: the socket with the bytes already read from it.
    Hyper(Prefixed),
}

/// Reads the start of a connection; serves it here when it is a live-view stream (see the module docs).
pub(super) async fn first_request(
    mut stream: TcpStream,
    app: Router,
    peer: SocketAddr,
    deadline: BodyDeadline,
    conn: &ConnState,
    stop: &mut tokio::sync::watch::Receiver<()>,
) -> First {
    let mut buf = Vec::with_capacity(FIRST_READ);
    // Where the search for the head's end resumes (a head that trickles in is not scanned again from the start).
    let mut scanned = 0;
    loop {
        // Shutdown closes a connection still owing its first request at once, as hyper closes an idle one.
        let read = tokio::select! {
            read = stream.read_buf(&mut buf) => read,
            _ = stop.changed() => return First::Done,
        };
        match read {
            Ok(0) if buf.is_empty() => return First::Done,
            Ok(0) => return First::Hyper(Prefixed::new(stream, buf)),
            Ok(_) => {}
            Err(_) => return First::Done,
        }
        // Decide as early as the bytes allow: most connections are not live streams and go at once.
        let line = &buf[..buf.len().min(DIRECT.len() + 1)];
        let candidate = match line.len().cmp(&DIRECT.len()) {
            std::cmp::Ordering::Less | std::cmp::Ordering::Equal => DIRECT.starts_with(line),
            std::cmp::Ordering::Greater => line.starts_with(DIRECT) && matches!(line[DIRECT.len()], b' ' | b'?'),
        };
        if !candidate || buf.len() > MAX_HEAD {
            return First::Hyper(Prefixed::new(stream, buf));
        }
        if buf[scanned..].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        scanned = buf.len().saturating_sub(3);
        if buf.capacity() - buf.len() < 256 {
            buf.reserve(FIRST_READ);
        }
    }
    let Some(request) = parse(&buf) else {
        return First::Hyper(Prefixed::new(stream, buf));
    };
    drop(buf);
    // The whole head is here: the header deadline no longer applies (as when hyper calls the service).
    conn.waiting_since.store(0, Ordering::Relaxed);
    let mut request = request;
    tag_request(&mut request, peer, deadline);
    let Ok(response) = app.oneshot(request).await;
    let _ = respond(&mut stream, response).await;
    First::Done
}

/// The request, when the head is one served here: complete, GET, HTTP/1.1, nothing after the head, no body and
/// nothing that asks for more than one plain answer.
fn parse(buf: &[u8]) -> Option<Request<Body>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(len) = req.parse(buf).ok()? else { return None };
    if len != buf.len() || req.method != Some("GET") || req.version != Some(1) {
        return None;
    }
    let mut builder = Request::builder().method(Method::GET).uri(req.path?).version(Version::HTTP_11);
    for h in req.headers.iter() {
        let is = |name: &str| h.name.eq_ignore_ascii_case(name);
        let refused =
            is("transfer-encoding") || is("upgrade") || is("expect") || (is("content-length") && h.value != b"0");
        if refused {
            return None;
        }
        builder = builder.header(h.name, h.value);
    }
    builder.body(Body::empty()).ok()
}

/// Writes the router's answer: an exact-size body with `content-length`, anything else chunked, each frame as it
/// comes. Returns when the body ends, the client goes away (or sends anything more), or a write fails.
async fn respond(stream: &mut TcpStream, response: axum::response::Response) -> io::Result<()> {
    let (parts, body) = response.into_parts();
    let exact = body.size_hint().exact();
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(parts.status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(parts.status.canonical_reason().unwrap_or("").as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING || name == header::CONNECTION {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if !parts.headers.contains_key(header::DATE) {
        head.extend_from_slice(b"date: ");
        head.extend_from_slice(httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"connection: close\r\n");
    match exact {
        Some(len) => head.extend_from_slice(format!("content-length: {len}\r\n\r\n").as_bytes()),
        None => head.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n"),
    }
    stream.write_all(&head).await?;
    drop(head);

    let mut body = std::pin::pin!(body);
    // A live-view client sends nothing after its request: a read that returns is the client leaving.
    let mut probe = [0u8; 16];
    loop {
        let frame = tokio::select! {
            frame = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)) => frame,
            _ = stream.read(&mut probe) => return Ok(()),
        };
        let data: Bytes = match frame {
            None => break,
            // The body failed: close without the final chunk, so the client sees the answer was cut.
            Some(Err(_)) => return Ok(()),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if !data.is_empty() => data,
                _ => continue,
            },
        };
        if exact.is_some() {
            stream.write_all(&data).await?;
        } else {
            write_chunk(stream, &data).await?;
        }
    }
    if exact.is_none() {
        stream.write_all(b"0\r\n\r\n").await?;
    }
    stream.shutdown().await
}

/// One chunk of a chunked body, in one vectored write when the socket takes it all (the usual case: one
/// syscall per event and subscriber, and no copy of the event).
async fn write_chunk(stream: &mut TcpStream, data: &[u8]) -> io::Result<()> {
    let mut size = [0u8; 18];
    let head = {
        let mut w = &mut size[..];
        std::io::Write::write_fmt(&mut w, format_args!("{:x}\r\n", data.len()))?;
        18 - w.len()
    };
    let parts: [&[u8]; 3] = [&size[..head], data, b"\r\n"];
    let total = head + data.len() + 2;
    let mut written = 0;
    while written < total {
        // The parts not yet written, the first one cut where the last write stopped.
        let mut skip = written;
        let mut slices = [io::IoSlice::new(&[]); 3];
        let mut count = 0;
        for part in parts {
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            slices[count] = io::IoSlice::new(&part[skip..]);
            count += 1;
            skip = 0;
        }
        let n = stream.write_vectored(&slices[..count]).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        written += n;
    }
    Ok(())
}

/// A socket whose first bytes were already read: they are read again first, then the socket itself.
pub(super) struct Prefixed {
    prefix: Vec<u8>,
    at: usize,
    stream: TcpStream,
}

impl Prefixed {
    fn new(stream: TcpStream, prefix: Vec<u8>) -> Prefixed {
        Prefixed { prefix, at: 0, stream }
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.at < this.prefix.len() {
            let n = (this.prefix.len() - this.at).min(out.remaining());
            out.put_slice(&this.prefix[this.at..this.at + n]);
            this.at += n;
            if this.at == this.prefix.len() {
                // Replayed in full: give the memory back for the connection's remaining life.
                this.prefix = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, out)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
