//! The whole OTLP/HTTP decode path of `POST /v1/traces` and `/api/traces/otlp`: `Content-Encoding` (gzip,
//! identity, others refused), `Content-Type` (protobuf or JSON), the project header, then the decoders and the
//! mapping (`routes::decode_otlp`). Input: one flag byte (bits 0-1 the encoding: none, gzip, identity, br; bit 2
//! protobuf; bit 3 the body is gzip-compressed here first, so valid gzip reaches the decoders; bit 4 a project
//! header: the bytes up to the first newline), then the body.
//!
//! Invariants: every span holds the SDK route's limits (the project id included, whatever the header held); a
//! body compressed here decodes as the same body sent plain; an unsupported encoding is always refused.
#![no_main]

use langsight_fuzz::assert_span_limits;
use langsight_server::routes::decode_otlp;
use libfuzzer_sys::fuzz_target;
use std::io::Write;

const PROJECT: &str = "x-langsight-project-id";

fn headers(encoding: &'static str, protobuf: bool, project: Option<&[u8]>) -> Option<axum::http::HeaderMap> {
    use axum::http::{header, HeaderValue};
    let mut h = axum::http::HeaderMap::new();
    if !encoding.is_empty() {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    let ct = if protobuf { "application/x-protobuf" } else { "application/json" };
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    if let Some(p) = project {
        h.insert(PROJECT, HeaderValue::from_bytes(p).ok()?);
    }
    Some(h)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let (project, body) = if flags & 16 != 0 {
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => return,
        }
    } else {
        (None, rest)
    };
    let protobuf = flags & 4 != 0;
    let encoding = ["", "gzip", "identity", "br"][usize::from(flags & 3)];

    if flags & 8 != 0 {
        // Compressed here: must decode exactly as the plain body does.
        let Some(plain_h) = headers("", protobuf, project) else { return };
        let Some(gzip_h) = headers("gzip", protobuf, project) else { return };
        let plain = decode_otlp(&plain_h, body);
        let zipped = decode_otlp(&gzip_h, &gzip(body));
        match (&plain, &zipped) {
            (Ok((a, pa)), Ok((b, pb))) => {
                assert_eq!((a.len(), pa), (b.len(), pb), "gzip changed what was decoded");
                a.iter().for_each(assert_span_limits);
            }
            (Err(a), Err(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "gzip changed the refusal"),
            _ => panic!("gzip changed the verdict: plain {:?}, gzip {:?}", plain.is_ok(), zipped.is_ok()),
        }
        return;
    }

    let Some(h) = headers(encoding, protobuf, project) else { return };
    match decode_otlp(&h, body) {
        Ok((spans, is_protobuf)) => {
            assert!(encoding != "br", "an unsupported Content-Encoding was accepted");
            assert_eq!(is_protobuf, protobuf);
            for s in &spans {
                assert_span_limits(s);
            }
        }
        Err(e) => assert!(!format!("{e:?}").is_empty()),
    }
});
