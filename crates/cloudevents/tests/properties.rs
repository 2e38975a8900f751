//! Property tests: encode→decode is the identity for arbitrary valid events in every mode and
//! version, and decoding arbitrary headers and bytes never panics.
#![allow(clippy::unwrap_used)] // Test code: a panic is a failed case.

use std::collections::BTreeMap;

use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use serde_json::Value;
use switchyard_cloudevents::http::{self as ce_http, Mode};
use switchyard_cloudevents::{Data, Event, ExtensionValue, SpecVersion, json};

fn version() -> impl Strategy<Value = SpecVersion> {
    prop_oneof![Just(SpecVersion::V0_3), Just(SpecVersion::V1_0)]
}

/// Printable text, including characters the HTTP binding must percent-encode.
fn text() -> impl Strategy<Value = String> {
    prop_oneof!["[ -~]{1,24}", "\\PC{1,12}", "[a-z %\"é€😀]{1,12}"]
}

fn source() -> impl Strategy<Value = String> {
    prop_oneof![
        "/[a-z0-9]{1,10}(/[a-z0-9._~-]{1,8}){0,2}",
        "https://[a-z]{1,10}\\.example/[a-z0-9]{0,10}",
        "urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "#[a-z]{1,8}",
    ]
}

/// RFC 3339 timestamps with assorted offsets and fraction lengths, written as producers do.
fn timestamp() -> impl Strategy<Value = String> {
    (
        1970..2100i32,
        1..=12u32,
        1..=28u32,
        0..24u32,
        0..60u32,
        0..60u32,
        prop::option::of("[0-9]{1,9}"),
        prop_oneof![
            Just("Z".to_owned()),
            (-1439..=1439i32).prop_map(|m| {
                let sign = if m < 0 { '-' } else { '+' };
                format!("{sign}{:02}:{:02}", m.abs() / 60, m.abs() % 60)
            })
        ],
    )
        .prop_map(|(y, mo, d, h, mi, s, frac, offset)| {
            let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{offset}")
        })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e9..1e9f64).prop_map(Value::from),
        "\\PC{0,10}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A content type and data that agree (see the table on `Data`).
fn content_and_data() -> impl Strategy<Value = (Option<String>, Option<Data>)> {
    let json_ct = prop_oneof![
        Just(None),
        Just(Some("application/json".to_owned())),
        Just(Some(
            "application/vnd.example+json; charset=utf-8".to_owned()
        )),
    ];
    let text_ct = prop_oneof![Just("text/plain"), Just("text/xml; charset=utf-8")];
    let binary_ct = prop_oneof![Just("application/octet-stream"), Just("image/png")];
    prop_oneof![
        prop::option::of(prop_oneof![
            Just("application/json".to_owned()),
            Just("text/plain".to_owned())
        ])
        .prop_map(|ct| (ct, None)),
        (json_ct, json_value(), any::<bool>()).prop_map(|(ct, value, pretty)| {
            let text = if pretty {
                serde_json::to_string_pretty(&value).unwrap()
            } else {
                serde_json::to_string(&value).unwrap()
            };
            (ct, Some(Data::json_text(text).unwrap()))
        }),
        (text_ct, "\\PC{1,40}")
            .prop_map(|(ct, text)| (Some(ct.to_owned()), Some(Data::Text(text)))),
        (binary_ct, prop::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(ct, bytes)| (Some(ct.to_owned()), Some(Data::Binary(bytes)))),
    ]
}

fn extension() -> impl Strategy<Value = ExtensionValue> {
    prop_oneof![
        text().prop_map(ExtensionValue::String),
        any::<i32>().prop_map(ExtensionValue::Integer),
        any::<bool>().prop_map(ExtensionValue::Boolean),
    ]
}

fn map_extension() -> impl Strategy<Value = ExtensionValue> {
    prop::collection::btree_map("[a-z0-9]{1,6}", text(), 1..4).prop_map(ExtensionValue::Map)
}

prop_compose! {
    fn event()(
        version in version(),
        id in text(),
        source in source(),
        ty in text(),
        subject in prop::option::of(text()),
        time in prop::option::of(timestamp()),
        schema in prop::option::of("[a-z]{1,8}"),
        (content_type, data) in content_and_data(),
        extensions in prop::collection::btree_map("[a-z][a-z0-9]{0,8}", extension(), 0..4),
        maps in prop::collection::btree_map("[a-z][a-z0-9]{0,8}", map_extension(), 0..2),
    ) -> Event {
        let mut builder = Event::builder().specversion(version).id(id).source(source).ty(ty);
        if let Some(subject) = subject { builder = builder.subject(subject); }
        if let Some(time) = time { builder = builder.time(time.as_str()); }
        if let Some(schema) = schema {
            builder = builder.dataschema(match version {
                SpecVersion::V1_0 => format!("https://example.com/schemas/{schema}"),
                SpecVersion::V0_3 => format!("/schemas/{schema}"),
            });
        }
        if let Some(ct) = content_type { builder = builder.datacontenttype(ct); }
        if let Some(data) = data { builder = builder.data(data); }
        let reserved = |name: &str| name == "data" || version.is_context_attribute(name);
        for (name, value) in extensions.into_iter().filter(|(n, _)| !reserved(n)) {
            builder = builder.extension(name, value);
        }
        if version == SpecVersion::V0_3 {
            for (name, value) in maps.into_iter().filter(|(n, _)| !reserved(n)) {
                builder = builder.extension(name, value);
            }
        }
        builder.build().unwrap()
    }
}

/// Headers carry no types: after binary mode every scalar extension reads back as a string.
fn as_header_strings(mut event: Event) -> Event {
    let names: Vec<String> = event.extensions().map(|(n, _)| n.to_owned()).collect();
    for name in names {
        let value = event.remove_extension(&name).unwrap();
        let value = match value {
            ExtensionValue::Map(map) => ExtensionValue::Map(map),
            other => ExtensionValue::String(other.to_canonical_string()),
        };
        event.set_extension(name, value).unwrap();
    }
    event
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn json_format_round_trips(event in event()) {
        let bytes = json::encode(&event).unwrap();
        prop_assert_eq!(json::decode(&bytes).unwrap(), event);
    }

    #[test]
    fn structured_mode_round_trips(event in event()) {
        let message = ce_http::to_structured(&event).unwrap();
        let received = ce_http::from_http(&message.headers, &message.body).unwrap();
        prop_assert_eq!(received.mode(), Mode::Structured);
        prop_assert_eq!(received.into_single().unwrap(), event);
    }

    #[test]
    fn binary_mode_round_trips(event in event()) {
        let message = ce_http::to_binary(&event).unwrap();
        let received = ce_http::from_http(&message.headers, &message.body).unwrap();
        prop_assert_eq!(received.mode(), Mode::Binary);
        prop_assert_eq!(received.into_single().unwrap(), as_header_strings(event));
    }

    #[test]
    fn batch_mode_round_trips(events in prop::collection::vec(event(), 0..5)) {
        let message = ce_http::to_batch(&events).unwrap();
        let received = ce_http::from_http(&message.headers, &message.body).unwrap();
        prop_assert_eq!(received.into_events(), events);
    }

    #[test]
    fn version_conversion_round_trips(event in event()) {
        let other = match event.specversion() {
            SpecVersion::V1_0 => SpecVersion::V0_3,
            SpecVersion::V0_3 => SpecVersion::V1_0,
        };
        // Conversion may refuse (relative schemaurl, Map extensions); when it succeeds it is lossless.
        if let Ok(converted) = event.clone().into_version(other) {
            let back = converted.clone().into_version(event.specversion()).unwrap();
            prop_assert_eq!(back, event);
            let bytes = json::encode(&converted).unwrap();
            prop_assert_eq!(json::decode(&bytes).unwrap(), converted);
        }
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = json::decode(&body);
        let _ = json::decode_batch(&body);
    }

    #[test]
    fn decoding_arbitrary_json_never_panics(value in json_value()) {
        let bytes = serde_json::to_vec(&value).unwrap();
        let _ = json::decode(&bytes);
        let _ = json::decode_batch(&bytes);
    }

    #[test]
    fn decoding_arbitrary_headers_never_panics(
        headers in prop::collection::vec((
            prop_oneof![
                Just("ce-specversion".to_owned()), Just("ce-id".to_owned()), Just("ce-source".to_owned()),
                Just("ce-type".to_owned()), Just("ce-time".to_owned()), Just("content-type".to_owned()),
                Just("ce-datacontentencoding".to_owned()), "ce-[a-z0-9-]{1,10}",
            ],
            prop_oneof![
                Just(b"1.0".to_vec()), Just(b"0.3".to_vec()), Just(b"application/cloudevents+json".to_vec()),
                Just(b"application/cloudevents-batch+json".to_vec()), Just(b"base64".to_vec()),
                prop::collection::vec(any::<u8>(), 0..24),
            ],
        ), 0..10),
        body in prop::collection::vec(any::<u8>(), 0..128),
    ) {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(&value)) {
                map.append(name, value);
            }
        }
        let _ = ce_http::from_http(&map, &body);
    }

    #[test]
    fn mutated_valid_messages_never_panic(event in event(), cut in any::<prop::sample::Index>(), byte in any::<u8>()) {
        for message in [ce_http::to_binary(&event).unwrap(), ce_http::to_structured(&event).unwrap()] {
            let mut body = message.body.clone();
            if !body.is_empty() {
                let at = cut.index(body.len());
                body[at] = byte;
                let _ = ce_http::from_http(&message.headers, &body);
                body.truncate(at);
                let _ = ce_http::from_http(&message.headers, &body);
            }
        }
    }
}

#[test]
fn map_strategy_keys_are_header_safe() {
    // Guards the binary-mode property: Map keys must be lower-case to survive header names.
    let map = BTreeMap::from([("k1".to_owned(), "v".to_owned())]);
    let event = Event::builder()
        .specversion(SpecVersion::V0_3)
        .id("1")
        .ty("t")
        .source("/s")
        .extension("m", ExtensionValue::Map(map))
        .build()
        .unwrap();
    let message = ce_http::to_binary(&event).unwrap();
    assert!(message.headers.contains_key("ce-m-k1"));
}
