//! `POST /api/traces/spans`: `decode_batch` over arbitrary bytes. Beyond "never panics": an accepted batch is
//! a JSON array of as many spans, every span holds the field limits, and sending the decoded batch again
//! (in the SDK's wire form) decodes to the same spans. A refusal always says what to fix.
#![no_main]

use langsight_core::span::{decode_batch, SpanRejection};
use langsight_fuzz::{assert_same_span, assert_span_limits, batch_to_wire};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match decode_batch(data) {
        Ok(spans) => {
            // (Read as `IgnoredAny`: serde_json skips the strings of unknown fields without checking their UTF-8.)
            let elements: Vec<serde::de::IgnoredAny> = serde_json::from_slice(data).expect("an accepted batch is JSON");
            assert_eq!(elements.len(), spans.len(), "one span per array element");
            for s in &spans {
                assert_span_limits(s);
                if let Some(session) = &s.session_id {
                    assert!(langsight_core::span::is_valid_session_id(session));
                }
            }
            let again = decode_batch(&batch_to_wire(&spans))
                .unwrap_or_else(|e| panic!("a decoded batch, sent again, is refused: {}", e.detail()));
            assert_eq!(again.len(), spans.len());
            for (a, b) in spans.iter().zip(&again) {
                assert_same_span(a, b);
            }
        }
        Err(rejection) => {
            if let SpanRejection::Invalid(errors) = &rejection {
                assert!(!errors.is_empty(), "a refusal with no reason");
            }
            serde_json::to_vec(&rejection.detail()).expect("the 422 detail serialises");
        }
    }
});
