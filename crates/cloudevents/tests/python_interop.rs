//! Interop with the Python `cloudevents` SDK (2.x), both directions, binary and structured
//! mode, v0.3 and v1.0: events the Python SDK encodes decode here to the same attributes and
//! data, and events encoded here are read back identically by the Python SDK.
//!
//! Needs `SWITCHYARD_INTEROP_PYTHON`, a Python with the SDK installed; `cargo xtask ci` makes
//! that venv under `target/` and sets the variable. Without it the tests print a notice and
//! check nothing.
#![allow(clippy::unwrap_used, clippy::print_stdout)] // Test code.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::DateTime;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use switchyard_cloudevents::http::{self as ce_http, HttpMessage};
use switchyard_cloudevents::{Data, Event, ExtensionValue, SpecVersion};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/interop/python_cloudevents.py"
);

fn python() -> Option<String> {
    match std::env::var("SWITCHYARD_INTEROP_PYTHON") {
        Ok(python) => Some(python),
        Err(_) => {
            println!(
                "NOTICE: SWITCHYARD_INTEROP_PYTHON is not set; skipping Python interop (cargo xtask ci sets it)"
            );
            None
        }
    }
}

fn run_python(python: &str, mode: &str, input: &str) -> Vec<Value> {
    let mut child = Command::new(python)
        .args([SCRIPT, mode])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "python {mode} failed");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Every attribute of an event as its canonical string. `datacontentencoding` is left out:
/// it is derived from binary data here and not transmitted in binary mode at all.
fn attributes(event: &Event) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for name in event.specversion().context_attributes() {
        if *name == "datacontentencoding" {
            continue;
        }
        if let Some(value) = event.attribute(name) {
            out.insert((*name).to_owned(), value.into_owned());
        }
    }
    for (name, value) in event.extensions() {
        out.insert(name.to_owned(), value.to_canonical_string());
    }
    out
}

/// Compares attribute maps, reading `time` as an instant with its offset.
fn assert_same_attributes(case: &str, ours: &BTreeMap<String, String>, theirs: &Value) {
    let mut theirs: BTreeMap<String, String> = theirs
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    theirs.remove("datacontentencoding");
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "{case}: attribute names"
    );
    for (name, value) in ours {
        let other = &theirs[name];
        if name == "time" {
            let a = DateTime::parse_from_rfc3339(value).unwrap();
            let b = DateTime::parse_from_rfc3339(other).unwrap();
            assert_eq!((a, a.offset()), (b, b.offset()), "{case}: time");
        } else if other == "true" || other == "false" {
            // The Python SDK writes booleans into headers as `True`/`False`; compare as booleans.
            let ours = ExtensionValue::from(value.as_str()).as_bool();
            assert_eq!(ours, Some(other == "true"), "{case}: `{name}` = {value}");
        } else {
            assert_eq!(value, other, "{case}: `{name}`");
        }
    }
}

fn assert_same_data(case: &str, ours: Option<&Data>, theirs: &Value) {
    match (ours, theirs) {
        (None, Value::Null) => {}
        (Some(data @ Data::Json(_)), described) if described["kind"] == "json" => {
            let ours: Value = data.deserialize_json().unwrap();
            assert_eq!(ours, described["value"], "{case}: JSON data");
        }
        (Some(Data::Text(text)), described) if described["kind"] == "text" => {
            assert_eq!(
                text,
                described["value"].as_str().unwrap(),
                "{case}: text data"
            );
        }
        (Some(Data::Binary(bytes)), described) if described["kind"] == "bytes" => {
            let theirs = BASE64.decode(described["value"].as_str().unwrap()).unwrap();
            assert_eq!(bytes, &theirs, "{case}: binary data");
        }
        (ours, theirs) => panic!("{case}: data differs: ours {ours:?}, theirs {theirs}"),
    }
}

#[test]
fn python_encoded_events_decode_here() {
    let Some(python) = python() else { return };
    let cases = run_python(&python, "encode", "");
    assert_eq!(cases.len(), 12, "six events, two modes each");
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let mut headers = HeaderMap::new();
        for (key, value) in case["headers"].as_object().unwrap() {
            headers.insert(
                HeaderName::from_bytes(key.as_bytes()).unwrap(),
                HeaderValue::from_str(value.as_str().unwrap()).unwrap(),
            );
        }
        let body = BASE64.decode(case["body"].as_str().unwrap()).unwrap();
        let event = ce_http::from_http(&headers, &body)
            .and_then(|r| r.into_single())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_same_attributes(name, &attributes(&event), &case["attributes"]);
        assert_same_data(name, event.data(), &case["data"]);
    }
    println!(
        "Python → Rust: {} messages decoded identically",
        cases.len()
    );
}

fn rust_events() -> Vec<Event> {
    let base = |version: SpecVersion, id: &str| {
        Event::builder()
            .specversion(version)
            .id(id)
            .ty("com.example.interop")
            .source("/rust/producer")
            .time("2026-11-24T10:30:15.25+01:00")
    };
    vec![
        base(SpecVersion::V1_0, "rs-1")
            .subject("naïve \"quoted\" 100% ✓")
            .datacontenttype("application/json")
            .dataschema("https://example.com/schema.json")
            .json_data(&json!({"order": 42, "tags": ["a", "b"], "nested": {"ok": true}}))
            .build()
            .unwrap(),
        base(SpecVersion::V1_0, "rs-2")
            .datacontenttype("text/plain; charset=utf-8")
            .data("Grüße, %20 is not an escape here")
            .build()
            .unwrap(),
        base(SpecVersion::V1_0, "rs-3")
            .datacontenttype("application/octet-stream")
            .data(vec![0u8, 0xff, 0xfe, 1, 2, 3])
            .extension("extinteger", 7)
            .extension("extboolean", false)
            .extension("extstring", "spaces and ünïcode")
            .build()
            .unwrap(),
        base(SpecVersion::V0_3, "rs-4")
            .datacontenttype("application/json")
            .dataschema("https://example.com/v03-schema")
            .json_data(&json!([1, 2, 3]))
            .build()
            .unwrap(),
        base(SpecVersion::V0_3, "rs-5")
            .datacontenttype("application/octet-stream")
            .data(vec![0xffu8, 0, 0x80])
            .build()
            .unwrap(),
    ]
}

#[test]
fn events_encoded_here_decode_in_python() {
    let Some(python) = python() else { return };
    let mut input = String::new();
    let mut expected = Vec::new();
    for event in rust_events() {
        for (mode, message) in [
            ("binary", ce_http::to_binary(&event)),
            ("structured", ce_http::to_structured(&event)),
        ] {
            let HttpMessage { headers, body } = message.unwrap();
            let headers: BTreeMap<&str, &str> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
                .collect();
            let name = format!("{}/{mode}", event.id());
            let line = json!({"name": name, "headers": headers, "body": BASE64.encode(&body)});
            input.push_str(&line.to_string());
            input.push('\n');
            expected.push((name, event.clone()));
        }
    }
    let results = run_python(&python, "decode", &input);
    assert_eq!(results.len(), expected.len());
    for (result, (name, event)) in results.iter().zip(&expected) {
        assert_eq!(result["name"].as_str(), Some(name.as_str()));
        assert!(
            result.get("error").is_none(),
            "{name}: Python refused it: {}",
            result["error"]
        );
        assert_same_attributes(name, &attributes(event), &result["attributes"]);
        assert_same_data(name, event.data(), &result["data"]);
    }
    println!(
        "Rust → Python: {} messages read back identically",
        results.len()
    );
}
