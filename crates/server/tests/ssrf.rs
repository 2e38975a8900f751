//! The SSRF guard at the API: an endpoint whose URL names a refused IP address is refused
//! when created; one whose host name resolves to a refused address is attempted, and the
//! attempt says the guard refused it without saying what the name resolved to; credentials
//! in a URL's userinfo never come back in an answer.
#![allow(clippy::unwrap_used)] // Test code.

mod common;

use std::time::Duration;

use common::Api;
use http::StatusCode;
use serde_json::json;

/// A server with the default SSRF policy: no subnet allowed.
async fn guarded(dir: &std::path::Path) -> switchyard_server::RunningServer {
    let mut config = common::config(dir);
    config.delivery.addresses = Default::default();
    switchyard_server::Server::start(config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_literal_endpoints_are_refused_at_creation() {
    let dir = tempfile::tempdir().unwrap();
    let server = guarded(dir.path()).await;
    let api = Api::new(server.local_addr());
    api.post("/api/v1/app", &json!({"name": "a", "uid": "a"}))
        .await;
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://10.0.0.5/",
        "https://192.168.1.1/",
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
    ] {
        let reply = api
            .post("/api/v1/app/a/endpoint", &json!({"url": url}))
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        let error = reply.json();
        assert_eq!(error["detail"][0]["loc"], json!(["body", "url"]), "{url}");
        let msg = error["detail"][0]["msg"].as_str().unwrap();
        assert!(msg.contains("SSRF"), "{url}: {msg}");
    }
    // A public literal, and a name (checked when a delivery resolves it), are taken.
    for url in ["http://203.0.114.7/hook", "http://localhost:9/hook"] {
        let reply = api
            .post("/api/v1/app/a/endpoint", &json!({"url": url}))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{url}");
    }
    assert_eq!(
        api.get("/api/v1/app/a/endpoint").await.json()["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_name_is_recorded_without_what_it_resolves_to() {
    let dir = tempfile::tempdir().unwrap();
    let server = guarded(dir.path()).await;
    let api = Api::new(server.local_addr());
    api.post("/api/v1/app", &json!({"name": "a", "uid": "a"}))
        .await;
    let endpoint = api
        .post(
            "/api/v1/app/a/endpoint",
            &json!({"url": "http://localhost:9/hook", "uid": "local"}),
        )
        .await;
    assert_eq!(endpoint.status, StatusCode::CREATED);
    api.post(
        "/api/v1/app/a/msg",
        &json!({"eventType": "a.b", "payload": {}}),
    )
    .await;
    let mut attempts = json!([]);
    for _ in 0..100 {
        attempts = api.get("/api/v1/app/a/attempt/endpoint/local").await.json()["data"].clone();
        if !attempts.as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let response = attempts[0]["response"]
        .as_str()
        .expect("an attempt")
        .to_owned();
    assert!(response.contains("SSRF"), "{response}");
    for internal in ["127.0.0.1", "::1", "loopback"] {
        assert!(!response.contains(internal), "{response}");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_never_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());
    api.post("/api/v1/app", &json!({"name": "a", "uid": "a"}))
        .await;
    let created = api
        .post(
            "/api/v1/app/a/endpoint",
            &json!({"url": "http://bob:s3cret-pw@127.0.0.1:9/in?x=1", "uid": "creds"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.json()["url"], "http://redacted@127.0.0.1:9/in?x=1");
    api.post(
        "/api/v1/app/a/msg",
        &json!({"eventType": "a.b", "payload": {}}),
    )
    .await;
    let mut answers = Vec::new();
    for _ in 0..100 {
        let attempts = api.get("/api/v1/app/a/attempt/endpoint/creds").await;
        let done = !attempts.json()["data"].as_array().unwrap().is_empty();
        answers.push(attempts);
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    answers.push(api.get("/api/v1/app/a/endpoint/creds").await);
    answers.push(api.get("/api/v1/app/a/endpoint").await);
    answers.push(
        api.post(
            "/api/v1/app/a/endpoint",
            &json!({"url": "ftp://bob:s3cret-pw@example.com/"}),
        )
        .await,
    );
    let attempt_url = answers[answers.len() - 4].json()["data"][0]["url"].clone();
    assert_eq!(attempt_url, "http://redacted@127.0.0.1:9/in?x=1");
    for answer in &answers {
        let text = String::from_utf8_lossy(&answer.body);
        assert!(!text.contains("s3cret"), "{text}");
    }
    server.shutdown().await.unwrap();
}
