//! The CloudEvents conformance project's data, read at test time from
//! `../shared/conformance/cloudevents` (or `$SWITCHYARD_CONFORMANCE_DIR/cloudevents`):
//! the 43 JSON-format cases and the HTTP-binding Gherkin scenarios.
//! When the folder is absent the tests print a notice and pass without checking anything.
#![allow(clippy::unwrap_used, clippy::print_stdout)] // Test code: panics fail the test, notices go to stdout.

use std::path::{Path, PathBuf};

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use switchyard_cloudevents::{Error, Event, Rule, http as ce_http, json};

fn conformance_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("SWITCHYARD_CONFORMANCE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance"),
    }
    .join("cloudevents");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!(
            "NOTICE: {} is absent; skipping the CloudEvents conformance cases",
            dir.display()
        );
        None
    }
}

fn load(dir: &Path, file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("json").join(file)).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["tests"].as_array().unwrap().clone()
}

/// The error each invalid case must produce: the suite says "invalid", we say exactly why.
fn expected_error(id: &str) -> fn(&Error) -> bool {
    fn attr(error: &Error, want: &str, want_rule: Rule) -> bool {
        matches!(error, Error::InvalidAttribute { name, rule } if name == want && *rule == want_rule)
    }
    match id {
        "invalidNoSpecVersion" => |e| {
            matches!(
                e,
                Error::MissingAttribute {
                    name: "specversion"
                }
            )
        },
        "invalidNoId" => |e| matches!(e, Error::MissingAttribute { name: "id" }),
        "invalidNoType" => |e| matches!(e, Error::MissingAttribute { name: "type" }),
        "invalidNoSource" => |e| matches!(e, Error::MissingAttribute { name: "source" }),
        "invalidTimeGarbage"
        | "invalidTimeToMinute"
        | "invalidTimeOffsetX"
        | "invalidTimeOffsetOutOfRange"
        | "invalidTimeOffsetNonInteger"
        | "invalidTimeOffsetHourOnly" => |e| attr(e, "time", Rule::Rfc3339),
        "invalidEmptyId" => |e| attr(e, "id", Rule::NonEmpty),
        "invalidEmptyType" => |e| attr(e, "type", Rule::NonEmpty),
        "invalidEmptySource" => |e| attr(e, "source", Rule::NonEmpty),
        "invalidEmptySpecVersion" => |e| attr(e, "specversion", Rule::NonEmpty),
        "invalidUnknownSpecVersion" => {
            |e| matches!(e, Error::UnsupportedSpecVersion { found } if found == "0.9")
        }
        "invalidNonRfc2046DataContentType" | "invalidEmptyDataContentType" => |e| {
            attr(e, "datacontenttype", Rule::MediaType)
                || attr(e, "datacontenttype", Rule::NonEmpty)
        },
        "invalidEmptyDataSchema" => |e| attr(e, "dataschema", Rule::NonEmpty),
        "invalidEmptySubject" => |e| attr(e, "subject", Rule::NonEmpty),
        "invalidNumericId" | "invalidObjectId" => |e| attr(e, "id", Rule::MustBeString),
        "invalidCapitalizedExtension"
        | "invalidPunctuatedExtension"
        | "invalidNonIntegerExtensionValue" => |e| {
            matches!(
                e,
                Error::InvalidAttributeName { .. }
                    | Error::InvalidAttribute {
                        rule: Rule::Integer32,
                        ..
                    }
            )
        },
        "invalidBothDataAndDataBase64" => |e| matches!(e, Error::ConflictingData),
        "invalidBatchMixedSpecVersions" => {
            |e| matches!(e, Error::InBatch { index: 1, source } if matches!(**source, Error::UnsupportedSpecVersion { .. }))
        }
        "invalidBatchContainingInvalidCloudEvent" => {
            |e| matches!(e, Error::InBatch { index: 0, source } if matches!(**source, Error::MissingAttribute { name: "id" }))
        }
        "invalidBatchContainingNonObject" => {
            |e| matches!(e, Error::InBatch { index: 0, source } if matches!(**source, Error::NotAnObject { found: "a string" }))
        }
        _ => |_| false,
    }
}

/// Checks that a decoded event carries exactly the attributes of its JSON form.
fn assert_matches_json(event: &Event, json: &Value, id: &str) {
    for (name, value) in json.as_object().unwrap() {
        match name.as_str() {
            "data" | "data_base64" => continue,
            _ if value.is_null() => {
                assert_eq!(
                    event.attribute(name),
                    None,
                    "{id}: null `{name}` must be absent"
                );
            }
            _ => {
                let expected = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                assert_eq!(
                    event.attribute(name).as_deref(),
                    Some(expected.as_str()),
                    "{id}: `{name}`"
                );
            }
        }
    }
}

#[test]
fn json_format_cases() {
    let Some(dir) = conformance_dir() else { return };
    let mut passed = 0;
    let mut failures = Vec::new();

    for case in load(&dir, "valid-events.json") {
        let id = case["id"].as_str().unwrap();
        let bytes = serde_json::to_vec(&case["event"]).unwrap();
        match json::decode(&bytes) {
            Ok(event) => {
                assert_matches_json(&event, &case["event"], id);
                let again = json::decode(&json::encode(&event).unwrap()).unwrap();
                assert_eq!(again, event, "{id}: encode→decode");
                passed += 1;
            }
            Err(error) => failures.push(format!("{id}: rejected a valid event: {error}")),
        }
    }
    for case in load(&dir, "valid-batches.json") {
        let id = case["id"].as_str().unwrap();
        let bytes = serde_json::to_vec(&case["batch"]).unwrap();
        match json::decode_batch(&bytes) {
            Ok(events) => {
                let expected = case["batch"].as_array().unwrap();
                assert_eq!(events.len(), expected.len(), "{id}");
                for (event, json) in events.iter().zip(expected) {
                    assert_matches_json(event, json, id);
                }
                assert_eq!(
                    json::decode_batch(&json::encode_batch(&events).unwrap()).unwrap(),
                    events
                );
                passed += 1;
            }
            Err(error) => failures.push(format!("{id}: rejected a valid batch: {error}")),
        }
    }
    for (file, key) in [
        ("invalid-events.json", "event"),
        ("invalid-batches.json", "batch"),
    ] {
        for case in load(&dir, file) {
            let id = case["id"].as_str().unwrap();
            let bytes = serde_json::to_vec(&case[key]).unwrap();
            let result = if key == "event" {
                json::decode(&bytes).map(|_| ())
            } else {
                json::decode_batch(&bytes).map(|_| ())
            };
            match result {
                Ok(()) => failures.push(format!("{id}: accepted an invalid {key}")),
                Err(error) if expected_error(id)(&error) => passed += 1,
                Err(error) => failures.push(format!(
                    "{id}: rejected, but with the wrong error: {error:?}"
                )),
            }
        }
    }

    println!(
        "CloudEvents JSON conformance: {passed} of {} cases pass",
        passed + failures.len()
    );
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
    assert_eq!(passed, 43, "the suite has 43 cases");
}

#[test]
fn extension_types_read_back_typed() {
    let Some(dir) = conformance_dir() else { return };
    let case = load(&dir, "valid-events.json")
        .into_iter()
        .find(|case| case["id"] == "validAllExtensionTypes")
        .unwrap();
    let event = json::decode(&serde_json::to_vec(&case["event"]).unwrap()).unwrap();
    let ext = |name| event.extension(name).unwrap();
    assert_eq!(ext("extinteger").as_integer(), Some(10));
    assert_eq!(ext("extboolean").as_bool(), Some(true));
    assert_eq!(ext("extstring").as_str(), Some("text"));
    assert_eq!(ext("exturi").as_str(), Some("https://cloudevents.io"));
    assert_eq!(ext("exturiref").as_str(), Some("//authority/path"));
    assert_eq!(
        ext("exttimestamp").as_timestamp().unwrap().to_string(),
        "2023-03-31T15:12:00Z"
    );
    assert_eq!(ext("extbinary").as_binary(), Some(b"Ma".to_vec()));
}

/// One scenario of a `.feature` file, after Examples substitution.
struct Scenario {
    name: String,
    request: String,
    attributes: Vec<(String, String)>,
    data: Option<String>,
}

/// Reads the Gherkin subset the conformance features use: Scenario Outline, doc strings,
/// tables and Examples.
fn parse_feature(text: &str) -> Vec<Scenario> {
    let lines: Vec<&str> = text.lines().collect();
    let mut outlines: Vec<(String, Vec<String>)> = Vec::new();
    for line in &lines {
        let trimmed = line.trim_start();
        if let Some(name) = trimmed
            .strip_prefix("Scenario Outline:")
            .or_else(|| trimmed.strip_prefix("Scenario:"))
        {
            outlines.push((name.trim().to_owned(), Vec::new()));
        } else if let Some((_, body)) = outlines.last_mut() {
            body.push((*line).to_owned());
        }
    }
    let mut scenarios = Vec::new();
    for (name, body) in outlines {
        let examples_at = body
            .iter()
            .position(|l| l.trim_start().starts_with("Examples:"));
        let rows: Vec<Vec<String>> = match examples_at {
            Some(at) => body[at + 1..].iter().filter_map(|l| table_row(l)).collect(),
            None => vec![vec![]],
        };
        let (header, values) = match rows.split_first() {
            Some((header, values)) if examples_at.is_some() => (header.clone(), values.to_vec()),
            _ => (Vec::new(), vec![Vec::new()]),
        };
        let steps = &body[..examples_at.unwrap_or(body.len())];
        for row in values {
            let substitute = |s: &str| {
                header.iter().zip(&row).fold(s.to_owned(), |acc, (k, v)| {
                    acc.replace(&format!("<{k}>"), v)
                })
            };
            let mut scenario = Scenario {
                name: substitute(&name),
                request: String::new(),
                attributes: Vec::new(),
                data: None,
            };
            let mut i = 0;
            while i < steps.len() {
                let step = steps[i].trim();
                if step.starts_with("Given an HTTP request")
                    || step.starts_with("And the data is equal")
                {
                    let (doc, next) = doc_string(steps, i + 1);
                    if step.starts_with("Given") {
                        scenario.request = substitute(&doc);
                    } else {
                        scenario.data = Some(substitute(&doc));
                    }
                    i = next;
                    continue;
                }
                if step.starts_with("Then the attributes are") {
                    i += 1;
                    let mut first = true;
                    while let Some(cells) = steps.get(i).and_then(|l| table_row(l)) {
                        if !first {
                            scenario
                                .attributes
                                .push((cells[0].clone(), substitute(&cells[1])));
                        }
                        first = false;
                        i += 1;
                    }
                    continue;
                }
                i += 1;
            }
            scenarios.push(scenario);
        }
    }
    scenarios
}

fn table_row(line: &str) -> Option<Vec<String>> {
    let trimmed = line.trim();
    let inner = trimmed.strip_prefix('|')?.strip_suffix('|')?;
    Some(inner.split('|').map(|c| c.trim().to_owned()).collect())
}

/// A `"""` doc string starting at `start`; its indentation is that of the opening quotes.
fn doc_string(lines: &[String], start: usize) -> (String, usize) {
    let open = &lines[start];
    let indent = open.len() - open.trim_start().len();
    let mut out = Vec::new();
    let mut i = start + 1;
    while i < lines.len() && lines[i].trim() != "\"\"\"" {
        let line = &lines[i];
        out.push(line.get(indent..).unwrap_or(line.trim_start()).to_owned());
        i += 1;
    }
    (out.join("\n"), i + 1)
}

/// Splits a raw HTTP/1.1 request into headers and body (Content-Length is recomputed).
fn parse_request(raw: &str) -> (HeaderMap, Vec<u8>) {
    let (head, body) = raw.split_once("\n\n").unwrap_or((raw, ""));
    let mut headers = HeaderMap::new();
    for line in head.lines().skip(1) {
        let (name, value) = line.split_once(':').unwrap();
        if name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        headers.append(
            HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
            HeaderValue::from_str(value.trim()).unwrap(),
        );
    }
    (headers, body.as_bytes().to_vec())
}

#[test]
fn http_binding_scenarios() {
    let Some(dir) = conformance_dir() else { return };
    let text =
        std::fs::read_to_string(dir.join("http").join("http-protocol-binding.feature")).unwrap();
    let scenarios = parse_feature(&text);
    assert_eq!(scenarios.len(), 4, "two outlines with two examples each");
    for scenario in scenarios {
        let (headers, body) = parse_request(&scenario.request);
        let event = ce_http::from_http(&headers, &body)
            .and_then(|r| r.into_single())
            .unwrap_or_else(|e| panic!("{}: {e}", scenario.name));
        for (key, value) in &scenario.attributes {
            assert_eq!(
                event.attribute(key).as_deref(),
                Some(value.as_str()),
                "{}: {key}",
                scenario.name
            );
        }
        let expected: Value = serde_json::from_str(scenario.data.as_deref().unwrap()).unwrap();
        let actual: Value = event.data().unwrap().deserialize_json().unwrap();
        assert_eq!(actual, expected, "{}: data", scenario.name);
        println!("HTTP binding scenario passed: {}", scenario.name);
    }
}
