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
        let huge = vec![b'x'; 70 * 1024];
        let reply = api.send(method.clone(), path, huge).await;
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
