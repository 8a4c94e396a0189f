//! OTLP/protobuf walked in place: the fields of `ExportTraceServiceRequest` are read straight from the body's
//! bytes, one span at a time, keeping only what the mapping reads (see [`super::from_protobuf`] for why).
//!
//! The walk follows prost's decoding rules for the messages in [`super::proto`] exactly, so it accepts and
//! refuses the same bodies: keys and varints as `prost::encoding` reads them, a wrong wire type on a known
//! field is an error, unknown fields (groups included) are skipped and checked, strings must be UTF-8,
//! repeated embedded messages merge, the last scalar wins, and nesting stops at prost's recursion limit.

use super::{cut_str, known, Attr, Attrs, OtlpError, OtlpSpan, MAX_ARRAY_DEPTH, MAX_ATTR_TEXT, MAX_NAME};
use langsight_core::span::{MAX_ERROR, MAX_ID};
use prost::encoding::{decode_key, decode_varint, WireType};
use std::sync::Arc;

/// prost's recursion limit: nested messages (and groups) deeper than this are refused.
const RECURSION_LIMIT: u32 = 100;

pub(super) enum Error {
    /// The bytes are not a valid message.
    Wire(String),
    /// The span callback stopped the walk.
    Stop(OtlpError),
}

type R<T> = Result<T, Error>;

fn wire(m: impl Into<String>) -> Error {
    Error::Wire(m.into())
}

/// A field's value, read according to its wire type.
enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32,
    Bytes(&'a [u8]),
    Group,
}

/// Reads the fields of a message at recursion budget `ctx` (prost's `DecodeContext`), calling `f` with each
/// field's tag and value; groups are skipped (and checked) here, since no field we read is one.
fn fields<'a>(mut buf: &'a [u8], ctx: u32, mut f: impl FnMut(u32, Value<'a>, u32) -> R<()>) -> R<()> {
    while !buf.is_empty() {
        let (tag, wire_type) = decode_key(&mut buf).map_err(|e| wire(e.to_string()))?;
        let value = read(&mut buf, tag, wire_type, ctx)?;
        f(tag, value, ctx)?;
    }
    Ok(())
}

fn read<'a>(buf: &mut &'a [u8], tag: u32, wire_type: WireType, ctx: u32) -> R<Value<'a>> {
    Ok(match wire_type {
        WireType::Varint => Value::Varint(decode_varint(buf).map_err(|e| wire(e.to_string()))?),
        WireType::SixtyFourBit => {
            let (v, rest) = buf.split_first_chunk::<8>().ok_or_else(|| wire("buffer underflow"))?;
            *buf = rest;
            Value::Fixed64(u64::from_le_bytes(*v))
        }
        WireType::ThirtyTwoBit => {
            let (_, rest) = buf.split_first_chunk::<4>().ok_or_else(|| wire("buffer underflow"))?;
            *buf = rest;
            Value::Fixed32
        }
        WireType::LengthDelimited => {
            let len = decode_varint(buf).map_err(|e| wire(e.to_string()))?;
            if len > buf.len() as u64 {
                return Err(wire("buffer underflow"));
            }
            let (v, rest) = buf.split_at(len as usize);
            *buf = rest;
            Value::Bytes(v)
        }
        WireType::StartGroup => {
            skip_group(buf, tag, ctx)?;
            Value::Group
        }
        WireType::EndGroup => return Err(wire("unexpected end group tag")),
    })
}

/// prost's `skip_field` for a group: nested fields until the matching end tag, one recursion level deeper.
fn skip_group(buf: &mut &[u8], tag: u32, ctx: u32) -> R<()> {
    if ctx == 0 {
        return Err(wire("recursion limit reached"));
    }
    loop {
        let (inner, wire_type) = decode_key(buf).map_err(|e| wire(e.to_string()))?;
        if wire_type == WireType::EndGroup {
            return if inner == tag { Ok(()) } else { Err(wire("unexpected end group tag")) };
        }
        if ctx - 1 == 0 {
            return Err(wire("recursion limit reached"));
        }
        read(buf, inner, wire_type, ctx - 1)?;
    }
}

/// An unknown field: prost checks the recursion budget before skipping any field.
fn unknown(ctx: u32) -> R<()> {
    if ctx == 0 {
        return Err(wire("recursion limit reached"));
    }
    Ok(())
}

/// An embedded message field: its bytes and the budget its own fields are read with.
fn message<'a>(value: Value<'a>, ctx: u32) -> R<(&'a [u8], u32)> {
    match value {
        Value::Bytes(b) if ctx > 0 => Ok((b, ctx - 1)),
        Value::Bytes(_) => Err(wire("recursion limit reached")),
        _ => Err(wire("invalid wire type (expected length-delimited)")),
    }
}

fn string(value: Value<'_>) -> R<&str> {
    match value {
        Value::Bytes(b) => std::str::from_utf8(b).map_err(|_| wire("invalid string value: data is not UTF-8 encoded")),
        _ => Err(wire("invalid wire type (expected length-delimited)")),
    }
}

fn bytes(value: Value<'_>) -> R<&[u8]> {
    match value {
        Value::Bytes(b) => Ok(b),
        _ => Err(wire("invalid wire type (expected length-delimited)")),
    }
}

fn varint(value: Value) -> R<u64> {
    match value {
        Value::Varint(v) => Ok(v),
        _ => Err(wire("invalid wire type (expected varint)")),
    }
}

fn fixed64(value: Value) -> R<u64> {
    match value {
        Value::Fixed64(v) => Ok(v),
        _ => Err(wire("invalid wire type (expected 64-bit)")),
    }
}

/// Hex of at most the bytes that fit [`MAX_ID`] characters.
fn hex_id(b: &[u8]) -> String {
    hex::encode(&b[..b.len().min(MAX_ID / 2)])
}

/// `ExportTraceServiceRequest`: calls `span` with each span, its resource's attributes shared.
pub(super) fn decode_request(body: &[u8], span: &mut dyn FnMut(OtlpSpan) -> Result<(), OtlpError>) -> R<()> {
    fields(body, RECURSION_LIMIT, |tag, value, ctx| match tag {
        1 => {
            let (b, ctx) = message(value, ctx)?;
            resource_spans(b, ctx, span)
        }
        _ => unknown(ctx),
    })
}

/// `ResourceSpans`: the resource first (wherever it is in the bytes), then its spans.
fn resource_spans(buf: &[u8], ctx: u32, span: &mut dyn FnMut(OtlpSpan) -> Result<(), OtlpError>) -> R<()> {
    let mut base = Attrs::new();
    fields(buf, ctx, |tag, value, ctx| match tag {
        1 => {
            let (b, ctx) = message(value, ctx)?;
            // `Resource`: attributes = 1 (repeated occurrences merge, so attributes accumulate).
            fields(b, ctx, |tag, value, ctx| match tag {
                1 => {
                    let (b, ctx) = message(value, ctx)?;
                    key_value(b, ctx, &mut base)
                }
                _ => unknown(ctx),
            })
        }
        2 => message(value, ctx).map(|_| ()),
        _ => unknown(ctx),
    })?;
    let base = Arc::new(base);
    fields(buf, ctx, |tag, value, ctx| match tag {
        2 => {
            let (b, ctx) = message(value, ctx)?;
            // `ScopeSpans`: spans = 2.
            fields(b, ctx, |tag, value, ctx| match tag {
                2 => {
                    let (b, ctx) = message(value, ctx)?;
                    let s = one_span(b, ctx, &base)?;
                    span(s).map_err(Error::Stop)
                }
                _ => unknown(ctx),
            })
        }
        _ => Ok(()),
    })
}

/// `Span`: ids 1, 2, 4; name 5; times 7, 8; attributes 9; status 15.
fn one_span(buf: &[u8], ctx: u32, base: &Arc<Attrs>) -> R<OtlpSpan> {
    let mut s = OtlpSpan {
        trace_id: String::new(),
        span_id: String::new(),
        parent_span_id: String::new(),
        name: String::new(),
        start_ns: 0,
        end_ns: 0,
        status_code: 0,
        status_message: String::new(),
        attrs: Attrs::new(),
        resource: base.clone(),
    };
    fields(buf, ctx, |tag, value, ctx| {
        match tag {
            1 => s.trace_id = hex_id(bytes(value)?),
            2 => s.span_id = hex_id(bytes(value)?),
            4 => s.parent_span_id = hex_id(bytes(value)?),
            5 => s.name = cut_str(string(value)?, MAX_NAME),
            7 => s.start_ns = fixed64(value)?,
            8 => s.end_ns = fixed64(value)?,
            9 => {
                let (b, ctx) = message(value, ctx)?;
                key_value(b, ctx, &mut s.attrs)?;
            }
            15 => {
                let (b, ctx) = message(value, ctx)?;
                // `Status`: message 2, code 3 (int32); occurrences merge field by field.
                fields(b, ctx, |tag, value, ctx| {
                    match tag {
                        2 => s.status_message = cut_str(string(value)?, MAX_ERROR),
                        3 => s.status_code = varint(value)? as i32,
                        _ => unknown(ctx)?,
                    }
                    Ok(())
                })?;
            }
            _ => unknown(ctx)?,
        }
        Ok(())
    })?;
    Ok(s)
}

/// `KeyValue`: key 1, value 2 (an `AnyValue`; occurrences merge). Kept only for a key the mapping reads.
fn key_value(buf: &[u8], ctx: u32, into: &mut Attrs) -> R<()> {
    let mut key = "";
    let mut value: Option<Acc> = None;
    fields(buf, ctx, |tag, v, ctx| {
        match tag {
            1 => key = string(v)?,
            2 => {
                let (b, ctx) = message(v, ctx)?;
                any_value(b, ctx, 0, &mut value)?;
            }
            _ => unknown(ctx)?,
        }
        Ok(())
    })?;
    // prost keeps a present-but-empty `AnyValue` as `Some` with no value: the mapping ignores it.
    if known(key) {
        if let Some(v) = value.and_then(Acc::finish) {
            into.insert(key.to_string(), v);
        }
    }
    Ok(())
}

/// An `AnyValue` being merged: the oneof's current variant (an array keeps its first valued element).
enum Acc {
    Empty,
    Scalar(Attr),
    Array(Option<Attr>),
}

impl Acc {
    fn finish(self) -> Option<Attr> {
        match self {
            Acc::Empty => None,
            Acc::Scalar(a) => Some(a),
            Acc::Array(first) => Some(Attr::Array(first.into_iter().collect())),
        }
    }
}

/// Merges one encoded `AnyValue` into `acc` (`depth` counts enclosing arrays).
fn any_value(buf: &[u8], ctx: u32, depth: usize, acc: &mut Option<Acc>) -> R<()> {
    let acc = acc.get_or_insert(Acc::Empty);
    fields(buf, ctx, |tag, v, ctx| {
        match tag {
            1 => *acc = Acc::Scalar(Attr::Str(cut_str(string(v)?, MAX_ATTR_TEXT))),
            2 => *acc = Acc::Scalar(Attr::Bool(varint(v)? != 0)),
            3 => *acc = Acc::Scalar(Attr::Int(varint(v)? as i64)),
            4 => *acc = Acc::Scalar(Attr::Double(f64::from_bits(fixed64(v)?))),
            5 => {
                let (b, ctx) = message(v, ctx)?;
                if !matches!(acc, Acc::Array(_)) {
                    *acc = Acc::Array(None);
                }
                // `ArrayValue`: values 1 (each an `AnyValue`, decoded to check it; the first valued one kept).
                fields(b, ctx, |tag, v, ctx| {
                    match tag {
                        1 => {
                            let (b, ctx) = message(v, ctx)?;
                            let mut element = None;
                            any_value(b, ctx, depth + 1, &mut element)?;
                            if let Acc::Array(first @ None) = acc {
                                if depth + 1 < MAX_ARRAY_DEPTH {
                                    *first = element.and_then(Acc::finish);
                                }
                            }
                        }
                        _ => unknown(ctx)?,
                    }
                    Ok(())
                })?;
            }
            _ => unknown(ctx)?,
        }
        Ok(())
    })
}
