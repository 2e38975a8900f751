//! Hostile input on every route: malformed, mistyped, deeply nested, non-UTF-8 and oversized
//! bodies, and paths that name nothing. Every answer is a typed answer below 500, the server
//! stays up, and nothing half-written is left behind.
#![allow(clippy::unwrap_used)] // Test code.

mod common;

use common::Api;
use http::{Method, StatusCode};
use serde_json::json;

/// Every route with a body, with ids that exist.
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/v1/app"),
    ("POST", "/api/v1/event-type"),
    ("PUT", "/api/v1/event-type/origin.visit"),
    ("POST", "/api/v1/app/app/endpoint"),
    ("POST", "/api/v1/app/app/endpoint/ep/secret/rotate"),
    ("PUT", "/api/v1/app/app/endpoint/ep/headers"),
    ("POST", "/api/v1/app/app/msg"),
    ("POST", "/runtime/v1/subscriptions"),
    ("POST", "/runtime/v1/next"),
    ("POST", "/runtime/v1/sources/s/events"),
];

fn bodies() -> Vec<Vec<u8>> {
    let mut bodies: Vec<Vec<u8>> = [
        "",
        "{",
        "}",
        "[]",
        "null",
        "0",
        "\"x\"",
        "{\"a\": 1}",
        "{\"name\": null}",
        "{\"url\": 5}",
        "{\"eventType\": [], \"payload\": {}}",
        "{\"ids\": [1]}",
        "{\"source\": \"s\", \"filter\": \"(((((((\"}",
        "{\"key\": \"whsec_%%%\"}",
        "{\"headers\": {\"bad header\": \"x\"}}",
        "{\"headers\": {\"x\": \"\\n\"}}",
    ]
    .iter()
    .map(|b| b.as_bytes().to_vec())
    .collect();
    bodies.push(vec![0xff, 0xfe, 0x00, 0x80]);
    bodies.push(format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes());
    bodies.push(
        format!(
            "{{\"source\": \"s\", \"filter\": \"{}true{}\"}}",
            "(".repeat(5000),
            ")".repeat(5000)
        )
        .into_bytes(),
    );
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_input_gets_a_server_error_or_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.body_limit = 64 * 1024;
    let server = switchyard_server::Server::start(config).await.unwrap();
    let api = Api::new(server.local_addr());
    api.post(
        "/api/v1/event-type",
        &json!({"name": "origin.visit", "description": "v"}),
    )
    .await;
    api.post("/api/v1/app", &json!({"name": "app", "uid": "app"}))
        .await;
    let endpoint = api
        .post(
            "/api/v1/app/app/endpoint",
            &json!({"url": "http://127.0.0.1:9/", "uid": "ep"}),
        )
        .await;
    assert_eq!(endpoint.status, StatusCode::CREATED);

    for (method, path) in ROUTES {
        let method: Method = method.parse().unwrap();
        for body in bodies() {
            let reply = api.send(method.clone(), path, body.clone()).await;
            let shown = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
            assert!(
                reply.status.as_u16() < 500,
                "{method} {path} with {shown:?}: {} {:?}",
                reply.status,
                reply.body
            );
            if !reply.status.is_success() {
                let error = reply.json();
                assert!(error["code"].is_string(), "{method} {path}: {error}");
            }
        }
        // The server answers 413 as soon as the limit is passed and closes the connection, so
        // the client may still be writing (a broken pipe): try again until it reads the answer.
        let huge = bytes::Bytes::from(vec![b'x'; 70 * 1024]);
        let mut reply = None;
        for _ in 0..10 {
            reply = api.try_send(method.clone(), path, huge.clone()).await;
            if reply.is_some() {
                break;
            }
        }
        let reply = reply.expect("an answer to an oversized body");
        assert_eq!(
            reply.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{method} {path}"
        );
    }
    for path in [
        "/api/v1/app/nobody/msg/msg_x",
        "/api/v1/app/app/endpoint/%00",
        "/api/v1/event-type/..%2F",
    ] {
        let reply = api.get(path).await;
        assert!(reply.status.is_client_error(), "{path}: {}", reply.status);
    }

    // Still serving, and what existed is intact (some bodies above were valid requests: an
    // empty body rotates the secret, for one; none may have broken a record).
    assert_eq!(api.get("/health").await.status, StatusCode::OK);
    let secret = api.get("/api/v1/app/app/endpoint/ep/secret").await.json();
    assert!(
        secret["key"].as_str().unwrap().starts_with("whsec_"),
        "{secret}"
    );
    assert_eq!(
        api.get("/api/v1/app/app/endpoint/ep").await.json()["url"],
        "http://127.0.0.1:9/"
    );
    let types = api.get("/api/v1/event-type").await.json();
    assert_eq!(types["data"].as_array().unwrap().len(), 1, "{types}");
    server.shutdown().await.unwrap();
}

/// Small input rules: a payload with a key twice would be validated on one value and
/// delivered with both, so it is refused and nothing is stored; uids made only of dots would
/// be path segments clients normalise away, so they are refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_keys_and_dot_uids_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());
    api.post(
        "/api/v1/event-type",
        &json!({"name": "order.paid", "description": "", "schemas": {"1": {
            "type": "object", "properties": {"amount": {"type": "integer", "maximum": 100}}}}}),
    )
    .await;
    assert_eq!(
        api.post("/api/v1/app", &json!({"name": "a", "uid": "a"}))
            .await
            .status,
        StatusCode::CREATED
    );
    for payload in [
        r#"{"amount": 5, "amount": 5000000}"#,
        r#"{"order": {"id": 1, "id": 2}}"#,
        r#"{"items": [{"sku": "a"}, {"sku": "b", "sku": "c"}]}"#,
    ] {
        let body = format!(r#"{{"eventType": "order.paid", "payload": {payload}}}"#);
        let reply = api.send(Method::POST, "/api/v1/app/a/msg", body).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{payload}");
        let detail = reply.json()["detail"][0]["msg"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(detail.contains("twice"), "{detail}");
    }
    assert_eq!(
        api.get("/api/v1/app/a/msg").await.json()["data"],
        json!([]),
        "nothing stored"
    );

    for uid in [".", "..", "..."] {
        let app = api
            .post("/api/v1/app", &json!({"name": "dots", "uid": uid}))
            .await;
        assert_eq!(app.status, StatusCode::UNPROCESSABLE_ENTITY, "app {uid}");
        let endpoint = api
            .post(
                "/api/v1/app/a/endpoint",
                &json!({"url": "https://example.com/", "uid": uid}),
            )
            .await;
        assert_eq!(
            endpoint.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "endpoint {uid}"
        );
        let message = api
            .post(
                "/api/v1/app/a/msg",
                &json!({"eventType": "order.paid", "payload": {}, "eventId": uid}),
            )
            .await;
        assert_eq!(
            message.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "event id {uid}"
        );
    }
    // Dots among other characters are still fine.
    assert_eq!(
        api.post("/api/v1/app", &json!({"name": "v", "uid": "v1.2"}))
            .await
            .status,
        StatusCode::CREATED
    );
    server.shutdown().await.unwrap();
}
