//! OTLP/protobuf (what the Collector's `otlphttp` exporter sends): `otlp::from_protobuf`, then the mapping to
//! spans, with the limits of the SDK route. Two differential checks: `from_protobuf` (a hand-written walk of
//! the wire format) accepts exactly what prost's generated decoder accepts, and the same request written as
//! OTLP/JSON decodes, through `otlp::from_json`, to the same spans — the two decoders agree on every input.
#![no_main]

use langsight_fuzz::check_otlp_spans;
use langsight_server::otlp::proto::{any_value, AnyValue, ExportTraceServiceRequest, KeyValue};
use langsight_server::otlp::{self, Attr, Attrs, OtlpSpan};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use serde_json::{json, Value};

/// OTLP/JSON of an attribute value, as the specification writes it (64-bit integers as strings, doubles
/// as strings so NaN and infinities survive).
fn value_json(v: &AnyValue) -> Value {
    match &v.value {
        None => json!({}),
        Some(any_value::Value::StringValue(s)) => json!({ "stringValue": s }),
        Some(any_value::Value::BoolValue(b)) => json!({ "boolValue": b }),
        Some(any_value::Value::IntValue(i)) => json!({ "intValue": i.to_string() }),
        Some(any_value::Value::DoubleValue(d)) => json!({ "doubleValue": d.to_string() }),
        Some(any_value::Value::ArrayValue(a)) => {
            json!({ "arrayValue": { "values": a.values.iter().map(value_json).collect::<Vec<_>>() } })
        }
    }
}

fn attrs_json(kvs: &[KeyValue]) -> Value {
    kvs.iter()
        .map(|kv| match &kv.value {
            Some(v) => json!({ "key": kv.key, "value": value_json(v) }),
            None => json!({ "key": kv.key }),
        })
        .collect()
}

fn to_json(req: &ExportTraceServiceRequest) -> Value {
    let resource_spans: Vec<Value> = req
        .resource_spans
        .iter()
        .map(|rs| {
            let mut o = json!({
                "scopeSpans": rs.scope_spans.iter().map(|ss| json!({
                    "spans": ss.spans.iter().map(|s| {
                        let mut span = json!({
                            "traceId": hex(&s.trace_id),
                            "spanId": hex(&s.span_id),
                            "parentSpanId": hex(&s.parent_span_id),
                            "name": s.name,
                            "startTimeUnixNano": s.start_time_unix_nano.to_string(),
                            "endTimeUnixNano": s.end_time_unix_nano.to_string(),
                            "attributes": attrs_json(&s.attributes),
                        });
                        if let Some(st) = &s.status {
                            span["status"] = json!({ "code": st.code, "message": st.message });
                        }
                        span
                    }).collect::<Vec<_>>()
                })).collect::<Vec<_>>(),
            });
            if let Some(r) = &rs.resource {
                o["resource"] = json!({ "attributes": attrs_json(&r.attributes) });
            }
            o
        })
        .collect();
    json!({ "resourceSpans": resource_spans })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn same_attr(a: &Attr, b: &Attr) -> bool {
    match (a, b) {
        (Attr::Double(x), Attr::Double(y)) => x == y || (x.is_nan() && y.is_nan()),
        (Attr::Array(x), Attr::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_attr(p, q)),
        _ => a == b,
    }
}

/// The attributes the mapping sees: the resource's, overridden by the span's own.
fn effective(s: &OtlpSpan) -> Attrs {
    let mut all = (*s.resource).clone();
    all.extend(s.attrs.iter().map(|(k, v)| (k.clone(), v.clone())));
    all
}

fn assert_same(p: &OtlpSpan, j: &OtlpSpan) {
    let strip = |s: &OtlpSpan| OtlpSpan { attrs: Default::default(), resource: Default::default(), ..s.clone() };
    assert_eq!(strip(p), strip(j), "protobuf and JSON decoders disagree on a span");
    let (pa, ja) = (effective(p), effective(j));
    assert_eq!(pa.len(), ja.len(), "protobuf and JSON decoders disagree on the attributes: {pa:?} / {ja:?}");
    for (k, v) in &pa {
        let w = ja.get(k).unwrap_or_else(|| panic!("attribute {k:?} lost by the JSON decoder"));
        assert!(same_attr(v, w), "attribute {k:?}: protobuf {v:?}, JSON {w:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    // from_protobuf walks the message in place; it must accept and refuse exactly what prost's decoder does.
    let decoded = otlp::from_protobuf(data);
    let Ok(req) = ExportTraceServiceRequest::decode(data) else {
        assert!(decoded.is_err(), "from_protobuf accepted what prost refuses");
        return;
    };
    let spans = decoded.unwrap_or_else(|e| panic!("from_protobuf refused what prost accepts: {e}"));
    check_otlp_spans(&spans);
    let body = serde_json::to_vec(&to_json(&req)).unwrap();
    let via_json = otlp::from_json(&body).expect("the same request as OTLP/JSON is refused");
    assert_eq!(spans.len(), via_json.len(), "protobuf and JSON decoders disagree on the span count");
    for (p, j) in spans.iter().zip(&via_json) {
        assert_same(p, j);
    }
});
