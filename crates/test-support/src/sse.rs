//! A minimal Server-Sent Events client for tests: connects, then yields frames as they arrive.

use std::time::Duration;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Frame {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: Option<String>,
    /// Comment lines (`: …`).
    pub comments: Vec<String>,
}

impl Frame {
    pub fn json(&self) -> serde_json::Value {
        self.data.as_deref().and_then(|d| serde_json::from_str(d).ok()).unwrap_or(serde_json::Value::Null)
    }
}

pub struct SseStream {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    resp: reqwest::Response,
    buf: String,
    /// Start of the unread part of `buf` (compacted now and then, so parsing stays linear).
    pos: usize,
}

impl SseStream {
    /// `GET url` with optional `X-API-Key` and `Last-Event-ID`.
    pub async fn connect(url: &str, key: Option<&str>, last_event_id: Option<&str>) -> SseStream {
        let mut req = crate::http().get(url);
        if let Some(k) = key {
            req = req.header("X-API-Key", k);
        }
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let resp = req.send().await.expect("stream request reaches the server");
        SseStream { status: resp.status().as_u16(), headers: resp.headers().clone(), resp, buf: String::new(), pos: 0 }
    }

    /// The next frame, or `None` when the stream ended or nothing came within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Frame> {
        loop {
            if let Some(i) = self.buf[self.pos..].find("\n\n") {
                let frame = parse(&self.buf[self.pos..self.pos + i + 2]);
                self.pos += i + 2;
                return Some(frame);
            }
            if self.pos > 0 {
                self.buf.drain(..self.pos);
                self.pos = 0;
            }
            match tokio::time::timeout(wait, self.resp.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }

    /// Reads until the server ends the stream, and returns the frames read on the way; `None` when the stream
    /// is still open after `limit` (an upper bound for a failing server, not a wait: an ended stream returns
    /// at once). Unlike [`SseStream::next`] returning `None`, this tells an ended stream from a silent one.
    pub async fn end_within(&mut self, limit: Duration) -> Option<Vec<Frame>> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut out = Vec::new();
        loop {
            if let Some(i) = self.buf[self.pos..].find("\n\n") {
                out.push(parse(&self.buf[self.pos..self.pos + i + 2]));
                self.pos += i + 2;
                continue;
            }
            match tokio::time::timeout_at(deadline, self.resp.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                // The body ended (or broke off): the server closed the stream.
                Ok(Ok(None)) | Ok(Err(_)) => return Some(out),
                Err(_) => return None,
            }
        }
    }

    /// Reads frames until `wait` passes without one.
    pub async fn drain(&mut self, wait: Duration) -> Vec<Frame> {
        let mut out = Vec::new();
        while let Some(f) = self.next(wait).await {
            out.push(f);
        }
        out
    }

    /// Reads until `pred` holds for the collected frames, or `limit` passes.
    pub async fn read_until(&mut self, limit: Duration, mut pred: impl FnMut(&[Frame]) -> bool) -> Vec<Frame> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut out = Vec::new();
        while !pred(&out) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            match self.next(left).await {
                Some(f) => out.push(f),
                None => break,
            }
        }
        out
    }
}

fn parse(raw: &str) -> Frame {
    let mut f = Frame::default();
    for line in raw.lines() {
        if let Some(c) = line.strip_prefix(':') {
            f.comments.push(c.trim().to_string());
        } else if let Some((field, value)) = line.split_once(':') {
            let value = value.strip_prefix(' ').unwrap_or(value).to_string();
            match field {
                "id" => f.id = Some(value),
                "event" => f.event = Some(value),
                "data" => f.data = Some(f.data.take().map(|d| d + "\n" + &value).unwrap_or(value)),
                _ => {}
            }
        }
    }
    f
}
