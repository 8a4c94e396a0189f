//! The byte format between a worker and the span writer process (see forward.rs): spans one way, each batch's
//! outcome the other.
//!
//! Both ends are the same binary, so the format needs no versioning, only to be cheap and to refuse what it cannot
//! read instead of panicking: strings are length-prefixed UTF-8, enums travel as their index in `ALL`, and every
//! read checks the bytes left. A span is written by destructuring it whole, so a new field fails to compile here
//! until it travels too.

use crate::model::{IngestOutcome, SessionTagUpdate};
use crate::StorageError;
use langsight_core::health::HealthTag;
use langsight_core::span::{LineageProvenance, LineageStatus, Span, SpanStatus, SpanType};

/// What could not be read: the frame is dropped with this message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct WireError(pub &'static str);

const NONE: u32 = u32::MAX;

#[derive(Default)]
pub(crate) struct Out(pub Vec<u8>);

impl Out {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        // Span fields are bounded far below 4 GiB at decode (span.rs limits); a longer one cannot reach here.
        self.u32(s.len() as u32);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn opt_str(&mut self, s: &Option<String>) {
        match s {
            None => self.u32(NONE),
            Some(s) => self.str(s),
        }
    }
    fn opt_i64(&mut self, v: Option<i64>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.i64(v);
            }
        }
    }
}

pub(crate) struct In<'a> {
    buf: &'a [u8],
}

impl<'a> In<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        In { buf }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.buf.len() < n {
            return Err(WireError("truncated"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, WireError> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    fn f64(&mut self) -> Result<f64, WireError> {
        Ok(f64::from_le_bytes(self.array()?))
    }
    fn text(&mut self, len: u32) -> Result<String, WireError> {
        let bytes = self.take(len as usize)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| WireError("a string is not UTF-8"))
    }
    fn str(&mut self) -> Result<String, WireError> {
        match self.u32()? {
            NONE => Err(WireError("a required string is missing")),
            len => self.text(len),
        }
    }
    fn opt_str(&mut self) -> Result<Option<String>, WireError> {
        match self.u32()? {
            NONE => Ok(None),
            len => self.text(len).map(Some),
        }
    }
    fn opt_i64(&mut self) -> Result<Option<i64>, WireError> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.i64().map(Some),
            _ => Err(WireError("bad option flag")),
        }
    }
    fn index<T: Copy>(&mut self, all: &[T]) -> Result<T, WireError> {
        all.get(self.u8()? as usize).copied().ok_or(WireError("unknown enum value"))
    }
    fn end(&self) -> Result<(), WireError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(WireError("trailing bytes"))
        }
    }
}

fn position<T: PartialEq>(all: &[T], v: &T) -> u8 {
    all.iter().position(|x| x == v).unwrap_or(0) as u8
}

fn put_span(out: &mut Out, span: &Span) {
    let Span {
        span_id,
        parent_span_id,
        span_type,
        trace_id,
        session_id,
        server_name,
        tool_name,
        started_at,
        ended_at,
        latency_ms,
        status,
        error,
        agent_name,
        input_json,
        output_json,
        llm_input,
        llm_output,
        replay_of,
        project_id,
        input_tokens,
        output_tokens,
        model_id,
        finish_reason,
        cache_read_tokens,
        cache_creation_tokens,
        thinking_tokens,
        target_agent_name,
        lineage_provenance,
        lineage_status,
        schema_version,
    } = span;
    out.str(span_id);
    out.opt_str(parent_span_id);
    out.u8(position(SpanType::ALL, span_type));
    out.opt_str(trace_id);
    out.opt_str(session_id);
    out.str(server_name);
    out.str(tool_name);
    out.i64(*started_at);
    out.i64(*ended_at);
    out.f64(*latency_ms);
    out.u8(position(SpanStatus::ALL, status));
    out.opt_str(error);
    out.opt_str(agent_name);
    out.opt_str(input_json);
    out.opt_str(output_json);
    out.opt_str(llm_input);
    out.opt_str(llm_output);
    out.opt_str(replay_of);
    out.opt_str(project_id);
    out.opt_i64(*input_tokens);
    out.opt_i64(*output_tokens);
    out.opt_str(model_id);
    out.opt_str(finish_reason);
    out.opt_i64(*cache_read_tokens);
    out.opt_i64(*cache_creation_tokens);
    out.opt_i64(*thinking_tokens);
    out.opt_str(target_agent_name);
    out.u8(position(LineageProvenance::ALL, lineage_provenance));
    out.u8(position(LineageStatus::ALL, lineage_status));
    out.str(schema_version);
}

fn get_span(r: &mut In<'_>) -> Result<Span, WireError> {
    Ok(Span {
        span_id: r.str()?,
        parent_span_id: r.opt_str()?,
        span_type: r.index(SpanType::ALL)?,
        trace_id: r.opt_str()?,
        session_id: r.opt_str()?,
        server_name: r.str()?,
        tool_name: r.str()?,
        started_at: r.i64()?,
        ended_at: r.i64()?,
        latency_ms: r.f64()?,
        status: r.index(SpanStatus::ALL)?,
        error: r.opt_str()?,
        agent_name: r.opt_str()?,
        input_json: r.opt_str()?,
        output_json: r.opt_str()?,
        llm_input: r.opt_str()?,
        llm_output: r.opt_str()?,
        replay_of: r.opt_str()?,
        project_id: r.opt_str()?,
        input_tokens: r.opt_i64()?,
        output_tokens: r.opt_i64()?,
        model_id: r.opt_str()?,
        finish_reason: r.opt_str()?,
        cache_read_tokens: r.opt_i64()?,
        cache_creation_tokens: r.opt_i64()?,
        thinking_tokens: r.opt_i64()?,
        target_agent_name: r.opt_str()?,
        lineage_provenance: r.index(LineageProvenance::ALL)?,
        lineage_status: r.index(LineageStatus::ALL)?,
        schema_version: r.str()?,
    })
}

/// A batch of spans, appended to `out` (which may already hold a frame header).
pub(crate) fn put_spans(out: &mut Out, spans: &[Span]) {
    out.u32(spans.len() as u32);
    for s in spans {
        put_span(out, s);
    }
}

/// At most this many spans are allocated for up front, whatever the count says (a lying count costs nothing).
const PREALLOCATE: usize = 4_096;

pub(crate) fn get_spans(bytes: &[u8]) -> Result<Vec<Span>, WireError> {
    let mut r = In::new(bytes);
    let n = r.u32()? as usize;
    let mut spans = Vec::with_capacity(n.min(PREALLOCATE));
    for _ in 0..n {
        spans.push(get_span(&mut r)?);
    }
    r.end()?;
    Ok(spans)
}

/// An error travels as its kind and message, so the worker answers the client as the writer would have.
fn put_error(out: &mut Out, e: &StorageError) {
    let (kind, text) = match e {
        StorageError::Backend(m) => (0, m),
        StorageError::Unavailable(m) => (1, m),
        StorageError::Conflict(m) => (2, m),
        StorageError::Open(m) => (3, m),
    };
    out.u8(kind);
    out.str(text);
}

fn get_error(r: &mut In<'_>) -> Result<StorageError, WireError> {
    let kind = r.u8()?;
    let text = r.str()?;
    Ok(match kind {
        0 => StorageError::Backend(text),
        1 => StorageError::Unavailable(text),
        2 => StorageError::Conflict(text),
        3 => StorageError::Open(text),
        _ => return Err(WireError("unknown error kind")),
    })
}

pub(crate) fn put_outcome(out: &mut Out, result: &Result<IngestOutcome, StorageError>) {
    match result {
        Err(e) => {
            out.u8(1);
            put_error(out, e);
        }
        Ok(o) => {
            out.u8(0);
            out.u64(o.accepted as u64);
            out.u32(o.sessions.len() as u32);
            for s in &o.sessions {
                out.str(&s.project_id);
                out.str(&s.session_id);
                out.u8(s.previous.map_or(u8::MAX, |t| position(&HealthTag::ALL, &t)));
                out.u8(position(&HealthTag::ALL, &s.current));
            }
        }
    }
}

pub(crate) fn get_outcome(bytes: &[u8]) -> Result<Result<IngestOutcome, StorageError>, WireError> {
    let mut r = In::new(bytes);
    let result = match r.u8()? {
        1 => Err(get_error(&mut r)?),
        0 => {
            let accepted = r.u64()? as usize;
            let n = r.u32()? as usize;
            let mut sessions = Vec::with_capacity(n.min(PREALLOCATE));
            for _ in 0..n {
                let project_id = r.str()?;
                let session_id = r.str()?;
                let previous = match r.u8()? {
                    u8::MAX => None,
                    i => Some(*HealthTag::ALL.get(i as usize).ok_or(WireError("unknown tag"))?),
                };
                let current = r.index(&HealthTag::ALL)?;
                sessions.push(SessionTagUpdate { project_id, session_id, previous, current });
            }
            Ok(IngestOutcome { accepted, sessions })
        }
        _ => return Err(WireError("bad result flag")),
    };
    r.end()?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use langsight_core::span::decode_batch;

    /// Every field, set and unset, survives the trip; spans come from the real decoder so they hold what ingest
    /// holds.
    #[test]
    fn spans_and_outcomes_survive_the_trip() {
        let body = serde_json::json!([
            {"span_id": "a", "parent_span_id": "p", "span_type": "agent", "trace_id": "t", "session_id": "0123456789abcdef0123456789abcdef",
             "server_name": "srv", "tool_name": "tool", "started_at": 1_700_000_000.5, "ended_at": 1_700_000_001.25,
             "latency_ms": 12.5, "status": "timeout", "error": "boom", "agent_name": "ag",
             "input_args": {"q": "ünïcode"}, "output_result": "out", "llm_input": "li", "llm_output": "lo",
             "replay_of": "r", "project_id": "proj", "input_tokens": 1, "output_tokens": 2, "model_id": "m",
             "finish_reason": "stop", "cache_read_tokens": 3, "cache_creation_tokens": 4, "thinking_tokens": 5,
             "target_agent_name": "tg", "lineage_provenance": "inferred_otel", "lineage_status": "trace_mismatch",
             "schema_version": "1.1"},
            {"server_name": "s", "tool_name": "t", "status": "success", "started_at": 1, "ended_at": 1}
        ]);
        let spans = decode_batch(&serde_json::to_vec(&body).unwrap()).unwrap();
        let mut out = Out::default();
        put_spans(&mut out, &spans);
        assert_eq!(get_spans(&out.0).unwrap(), spans);

        let outcome = IngestOutcome {
            accepted: 7,
            sessions: vec![
                SessionTagUpdate {
                    project_id: "p".into(),
                    session_id: "s".into(),
                    previous: None,
                    current: HealthTag::Incomplete,
                },
                SessionTagUpdate {
                    project_id: String::new(),
                    session_id: "x".into(),
                    previous: Some(HealthTag::LoopDetected),
                    current: HealthTag::Success,
                },
            ],
        };
        let mut out = Out::default();
        put_outcome(&mut out, &Ok(outcome.clone()));
        let back = get_outcome(&out.0).unwrap().unwrap();
        assert_eq!((back.accepted, back.sessions), (outcome.accepted, outcome.sessions));

        let mut out = Out::default();
        put_outcome(&mut out, &Err(StorageError::Unavailable("busy".into())));
        assert!(matches!(get_outcome(&out.0).unwrap(), Err(StorageError::Unavailable(m)) if m == "busy"));
    }

    /// Every prefix of a valid frame, and every single-byte corruption of it, is refused or read, never a panic.
    #[test]
    fn damaged_frames_are_refused_not_panicked_on() {
        let body = serde_json::json!([{"span_id": "a", "server_name": "s", "tool_name": "t", "status": "error",
            "error": "e", "started_at": 1, "ended_at": 2, "session_id": "5e55000000000000000000000000abcd", "input_tokens": 9}]);
        let spans = decode_batch(&serde_json::to_vec(&body).unwrap()).unwrap();
        let mut out = Out::default();
        put_spans(&mut out, &spans);
        for cut in 0..out.0.len() {
            assert!(get_spans(&out.0[..cut]).is_err(), "a frame cut at {cut} bytes was read");
        }
        for at in 0..out.0.len() {
            for v in [0u8, 1, 2, 0x7f, 0xff] {
                let mut bad = out.0.clone();
                bad[at] = v;
                let _ = get_spans(&bad);
                let _ = get_outcome(&bad);
            }
        }
        let mut long = out.0.clone();
        long.push(0);
        assert_eq!(get_spans(&long).unwrap_err(), WireError("trailing bytes"));
    }
}
