//! Fuzzes `http::from_http` with arbitrary headers and body: it must return, never panic.
//!
//! The input is read as `name: value` header lines, an empty line, then the body, so the
//! fuzzer can reach every content mode; bytes that make no valid header are skipped.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use switchyard_cloudevents::Error;
use switchyard_cloudevents::http::from_http;

fuzz_target!(|input: &[u8]| {
    let (head, body) = match input.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&input[..at], &input[at + 2..]),
        None => (input, &[][..]),
    };
    let mut headers = HeaderMap::new();
    for line in head.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            headers.append(name, value);
        }
    }
    if let Ok(received) = from_http(&headers, body) {
        // Whatever decodes must encode in structured mode and read back identically, unless it
        // carries a binary-mode JSON body that is not JSON (checked lazily, a typed error).
        // Binary mode may refuse with a typed error too: some valid values are not header-safe.
        for event in received.into_events() {
            match switchyard_cloudevents::http::to_structured(&event) {
                Ok(message) => {
                    let again = from_http(&message.headers, &message.body).expect("re-decode");
                    assert_eq!(again.into_single().expect("single"), event);
                }
                Err(Error::InvalidJsonData { .. }) => {}
                Err(other) => panic!("re-encode failed: {other}"),
            }
            let _ = switchyard_cloudevents::http::to_binary(&event);
        }
    }
});
