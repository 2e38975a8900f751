//! Every filter in the AutoKitteh runtime-events document, with events it must match and
//! events it must not.

use serde_json::{Value, json};
use switchyard_runtime_events::{Event, Filter, FilterError};

fn check(filter: &str, matching: &[(&str, Value)], not_matching: &[(&str, Value)]) {
    let compiled = Filter::compile(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
    for (event_type, data) in matching {
        let event = Event::new("seed", *event_type, data.clone());
        assert_eq!(
            compiled.matches(&event),
            Ok(true),
            "{filter} should match {event:?}"
        );
    }
    for (event_type, data) in not_matching {
        let event = Event::new("seed", *event_type, data.clone());
        assert_ne!(
            compiled.matches(&event),
            Ok(true),
            "{filter} should not match {event:?}"
        );
    }
}

#[test]
fn either_issue_created_or_updated() {
    check(
        "event_type == 'issue_created' || event_type == 'issue_updated'",
        &[("issue_created", json!({})), ("issue_updated", json!(null))],
        &[
            ("issue_deleted", json!({})),
            ("page_created", json!({})),
            ("", json!({})),
        ],
    );
}

#[test]
fn any_issue_event() {
    check(
        "event_type.startsWith('issue_')",
        &[("issue_created", json!({})), ("issue_", json!({}))],
        &[
            ("page_created", json!({})),
            ("issue", json!({})),
            ("my_issue_x", json!({})),
        ],
    );
}

#[test]
fn any_created_event() {
    check(
        "event_type.endsWith('_created')",
        &[("issue_created", json!({})), ("page_created", json!({}))],
        &[("issue_updated", json!({})), ("created", json!({}))],
    );
}

#[test]
fn contains_a_substring() {
    check(
        "event_type.contains('substring')",
        &[("a_substring_b", json!({})), ("substring", json!({}))],
        &[("subString", json!({})), ("sub_string", json!({}))],
    );
}

#[test]
fn matches_a_regular_expression() {
    check(
        "event_type.matches('regular expression')",
        &[("a regular expression here", json!({}))],
        &[("regular_expression", json!({}))],
    );
    check(
        "event_type.matches('^(issue|page)_(created|deleted)$')",
        &[("issue_created", json!({})), ("page_deleted", json!({}))],
        &[("issue_updated", json!({})), ("xissue_created", json!({}))],
    );
}

#[test]
fn http_method_and_path() {
    let request = |method: &str, path: &str| json!({"method": method, "url": {"path": path}});
    check(
        "data.method in ['GET', 'HEAD'] && data.url.path.endsWith('/meow')",
        &[
            ("get", request("GET", "/cats/meow")),
            ("head", request("HEAD", "/meow")),
        ],
        &[
            ("post", request("POST", "/meow")),
            ("get", request("GET", "/meow/")),
            ("get", json!({"method": "GET"})),
            ("none", json!(null)),
        ],
    );
}

#[test]
fn sizes_of_collections_and_strings() {
    check(
        "size(data.collection_value) < 5 || size(data.string_value) > 10",
        &[
            ("t", json!({"collection_value": [1, 2], "string_value": ""})),
            (
                "t",
                json!({"collection_value": {"a": 1}, "string_value": ""}),
            ),
            (
                "t",
                json!({"collection_value": [1, 2, 3, 4, 5], "string_value": "longer than ten"}),
            ),
            // `||` is commutative in CEL: an error on one side loses to `true` on the other.
            ("t", json!({"string_value": "longer than ten"})),
        ],
        &[
            (
                "t",
                json!({"collection_value": [1, 2, 3, 4, 5], "string_value": "short"}),
            ),
            ("t", json!({"string_value": "short"})),
        ],
    );
}

#[test]
fn first_element_of_a_list() {
    check(
        "data.list_value[0].bar == 'bar value of first element in foo list'",
        &[(
            "t",
            json!({"list_value": [{"bar": "bar value of first element in foo list"}, {"bar": "x"}]}),
        )],
        &[
            (
                "t",
                json!({"list_value": [{"bar": "x"}, {"bar": "bar value of first element in foo list"}]}),
            ),
            ("t", json!({"list_value": []})),
        ],
    );
}

#[test]
fn dictionary_lookup() {
    check(
        "data.dictionary_value['key'] != 'value'",
        &[("t", json!({"dictionary_value": {"key": "other"}}))],
        &[
            ("t", json!({"dictionary_value": {"key": "value"}})),
            // A missing key is an evaluation error, which is no match.
            ("t", json!({"dictionary_value": {}})),
        ],
    );
}

#[test]
fn the_example_project_filters_in_cel_spelling() {
    let request = |method: &str, path: &str| json!({"method": method, "url": {"path": path}});
    check(
        "data.method == 'GET' && data.url.path.endsWith('/meow')",
        &[("r", request("GET", "/meow"))],
        &[
            ("r", request("POST", "/meow")),
            ("r", request("GET", "/woof")),
        ],
    );
    check(
        "data.method == 'POST' && data.url.path.endsWith('/meow')",
        &[("r", request("POST", "/x/meow"))],
        &[("r", request("GET", "/meow"))],
    );
}

#[test]
fn the_example_project_spelling_is_rejected_with_a_hint() {
    // The document's sample writes Python's `endswith`; CEL has no such function. The original
    // accepts the filter and silently never matches; we refuse it at subscribe.
    let error = Filter::compile("data.method == 'GET' && data.url.path.endswith('/meow')")
        .expect_err("endswith is not CEL");
    match error {
        FilterError::UnknownFunction { name, column, hint } => {
            assert_eq!(name, "endswith");
            assert_eq!(column, 39);
            assert!(hint.contains("endsWith"), "{hint}");
        }
        other => panic!("unexpected error {other:?}"),
    }
}
