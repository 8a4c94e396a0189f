//! OTLP/JSON (`POST /v1/traces` with `Content-Type: application/json`): `otlp::from_json`, then the mapping to
//! spans. The mapped spans must hold every limit of the SDK route and survive its decoder unchanged.
#![no_main]

use langsight_fuzz::check_otlp_spans;
use langsight_server::otlp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match otlp::from_json(data) {
        Ok(spans) => check_otlp_spans(&spans),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
