//! Runtime events over HTTP: subscriptions with CEL filters, long-polling, ingestion of
//! CloudEvents and plain webhooks, and the metadata API's step events reaching subscribers.
#![allow(clippy::unwrap_used)] // Test code.

mod common;

use std::time::{Duration, Instant};

use common::Api;
use http::{Method, StatusCode};
use serde_json::{Value, json};

async fn subscribe(api: &Api, source: &str, filter: &str) -> String {
    let reply = api
        .post(
            "/runtime/v1/subscriptions",
            &json!({"source": source, "filter": filter}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    reply.json()["id"].as_str().unwrap().to_owned()
}

async fn next(api: &Api, ids: &[&str], timeout_ms: u64) -> Option<Value> {
    let reply = api
        .post(
            "/runtime/v1/next",
            &json!({"ids": ids, "timeout_ms": timeout_ms}),
        )
        .await;
    match reply.status {
        StatusCode::OK => Some(reply.json()),
        StatusCode::NO_CONTENT => None,
        other => panic!("next answered {other}: {:?}", reply.body),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_filter_wait_and_end() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());

    let bad = api
        .post(
            "/runtime/v1/subscriptions",
            &json!({"source": "jira", "filter": "event_type =="}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.json()["detail"][0]["msg"]
            .as_str()
            .unwrap()
            .contains("filter"),
        "{:?}",
        bad.body
    );
    let unknown_var = api
        .post(
            "/runtime/v1/subscriptions",
            &json!({"source": "jira", "filter": "nosuch > 1"}),
        )
        .await;
    assert_eq!(unknown_var.status, StatusCode::UNPROCESSABLE_ENTITY);
    let no_auth = api
        .with_token(None)
        .post("/runtime/v1/next", &json!({"ids": []}))
        .await;
    assert_eq!(no_auth.status, StatusCode::UNAUTHORIZED);

    let issues = subscribe(
        &api,
        "jira",
        "event_type == 'post' && data.body.kind == 'issue'",
    )
    .await;
    let shown = api
        .get(&format!("/runtime/v1/subscriptions/{issues}"))
        .await
        .json();
    assert_eq!(shown["source"], "jira");
    assert_eq!(next(&api, &[&issues], 50).await, None);

    // A long-poll waits for the event that arrives while it waits.
    let waiting = {
        let api = api.clone();
        let issues = issues.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let event = next(&api, &[&issues], 10_000).await;
            (event, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ignored = api
        .send(
            Method::POST,
            "/runtime/v1/sources/jira/events",
            r#"{"kind": "page"}"#,
        )
        .await;
    assert_eq!(ignored.status, StatusCode::ACCEPTED);
    assert_eq!(ignored.json(), json!({"events": 1, "queued": 0}));
    let kept = api
        .send(
            Method::POST,
            "/runtime/v1/sources/jira/events/hooks/issue?project=SY&project=X&n=1",
            r#"{"kind": "issue", "id": 7}"#,
        )
        .await;
    assert_eq!(kept.json(), json!({"events": 1, "queued": 1}));
    let (event, waited) = waiting.await.unwrap();
    let event = event.expect("the long-poll got the event");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    assert_eq!(event["source"], "jira");
    assert_eq!(event["event_type"], "post");
    let data = &event["data"];
    assert_eq!(data["method"], "POST");
    assert_eq!(data["body"], json!({"kind": "issue", "id": 7}));
    assert_eq!(data["url"]["path"], "/hooks/issue");
    assert_eq!(data["url"]["query"], "project=SY&project=X&n=1");
    assert_eq!(data["url"]["params"], json!({"project": "SY", "n": "1"}));
    assert_eq!(data["headers"]["content-type"], "application/json");
    assert_eq!(
        data["headers"]["authorization"], "<redacted>",
        "credentials are never copied"
    );
    assert!(event["received_at"].as_str().unwrap().ends_with('Z'));

    // Text and binary bodies.
    let all = subscribe(&api, "raw", "true").await;
    let text = api
        .send(Method::PUT, "/runtime/v1/sources/raw/events", "plain text")
        .await;
    assert_eq!(text.status, StatusCode::ACCEPTED);
    let binary = api
        .send(
            Method::POST,
            "/runtime/v1/sources/raw/events",
            vec![0xffu8, 0x00, 0x01],
        )
        .await;
    assert_eq!(binary.status, StatusCode::ACCEPTED);
    let first = next(&api, &[&all], 1000).await.unwrap();
    assert_eq!(first["event_type"], "put");
    // The client sends `content-type: application/json`, but the body is not JSON: text.
    assert_eq!(first["data"]["body"], "plain text");
    let second = next(&api, &[&all], 1000).await.unwrap();
    assert_eq!(second["data"]["body"], Value::Null);
    assert_eq!(second["data"]["body_base64"], "/wAB");

    // Several ids: the oldest event across them.
    api.send(Method::POST, "/runtime/v1/sources/raw/events", "1")
        .await;
    api.send(
        Method::POST,
        "/runtime/v1/sources/jira/events",
        r#"{"kind": "issue"}"#,
    )
    .await;
    let across = next(&api, &[&issues, &all], 1000).await.unwrap();
    assert_eq!(across["source"], "raw");

    // The issue event sent just above is still queued for `issues`: take it first, so the
    // next long-poll really waits.
    let waiting = {
        let api = api.clone();
        let issues = issues.clone();
        tokio::spawn(async move {
            api.post(
                "/runtime/v1/next",
                &json!({"ids": [issues], "timeout_ms": 100_000}),
            )
            .await
        })
    };
    let drained = waiting.await.unwrap();
    assert_eq!(drained.status, StatusCode::OK);
    assert_eq!(drained.json()["source"], "jira");
    // Unsubscribing ends a waiting long-poll with 410 and the id is gone.
    let waiting = {
        let api = api.clone();
        let issues = issues.clone();
        tokio::spawn(async move {
            api.post(
                "/runtime/v1/next",
                &json!({"ids": [issues], "timeout_ms": 100_000}),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let deleted = api
        .delete(&format!("/runtime/v1/subscriptions/{issues}"))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let ended = waiting.await.unwrap();
    assert_eq!(ended.status, StatusCode::GONE, "{:?}", ended.body);
    assert_eq!(ended.json()["code"], "unsubscribed");
    assert_eq!(
        api.delete(&format!("/runtime/v1/subscriptions/{issues}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let gone = api
        .post("/runtime/v1/next", &json!({"ids": [issues]}))
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let garbage = api
        .post("/runtime/v1/next", &json!({"ids": ["not-a-uuid"]}))
        .await;
    assert_eq!(garbage.status, StatusCode::NOT_FOUND);
    let too_long = api
        .post(
            "/runtime/v1/next",
            &json!({"ids": [all], "timeout_ms": 999_999}),
        )
        .await;
    assert_eq!(too_long.status, StatusCode::UNPROCESSABLE_ENTITY);
    let none = api.post("/runtime/v1/next", &json!({"ids": []})).await;
    assert_eq!(none.status, StatusCode::UNPROCESSABLE_ENTITY);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn cloudevents_in_every_mode_reach_subscribers() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());
    let sub = subscribe(&api, "orders", "event_type == 'com.example.order'").await;

    let event = switchyard_cloudevents::Event::builder()
        .id("o-1")
        .ty("com.example.order")
        .source("/shop")
        .json_data(&json!({"order": 1}))
        .build()
        .unwrap();
    let binary = switchyard_cloudevents::http::to_binary(&event).unwrap();
    let structured = switchyard_cloudevents::http::to_structured(&event).unwrap();
    let batch = switchyard_cloudevents::http::to_batch(&[event.clone(), event.clone()]).unwrap();
    for message in [binary, structured, batch] {
        let mut request = http::Request::builder()
            .method(Method::POST)
            .uri(format!(
                "http://{}/runtime/v1/sources/orders/events",
                server.local_addr()
            ))
            .header("authorization", format!("Bearer {}", common::TOKEN));
        for (name, value) in &message.headers {
            request = request.header(name, value);
        }
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Full<bytes::Bytes>>();
        let reply = client
            .request(
                request
                    .body(http_body_util::Full::new(bytes::Bytes::from(message.body)))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::ACCEPTED);
    }
    for _ in 0..4 {
        let got = next(&api, &[&sub], 1000).await.unwrap();
        assert_eq!(got["id"], "o-1");
        assert_eq!(got["source"], "orders");
        assert_eq!(got["data"], json!({"order": 1}));
    }
    assert_eq!(next(&api, &[&sub], 50).await, None);

    let bad = api
        .send(Method::POST, "/runtime/v1/sources/orders/events", "[")
        .await;
    // `content-type: application/json` without ce- headers is a plain webhook, not an error.
    assert_eq!(bad.status, StatusCode::ACCEPTED);
    let mut broken = http::Request::builder()
        .method(Method::POST)
        .uri(format!(
            "http://{}/runtime/v1/sources/orders/events",
            server.local_addr()
        ))
        .header("authorization", format!("Bearer {}", common::TOKEN))
        .header("content-type", "application/cloudevents+json");
    broken = broken.header("x-test", "1");
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let reply = client
        .request(
            broken
                .body(http_body_util::Full::new(bytes::Bytes::from("{\"id\": 1}")))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::BAD_REQUEST);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_step_events_reach_runtime_subscribers() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.json");
    std::fs::write(&spec, r#"{"greeting": "hello", "items": [1, 2]}"#).unwrap();
    let mut config = common::config(dir.path());
    config.metadata = Some(switchyard_server::MetadataConfig {
        step: "build".to_owned(),
        ..switchyard_server::MetadataConfig::new(spec)
    });
    let server = switchyard_server::Server::start(config).await.unwrap();
    let api = Api::new(server.local_addr());

    // With no step tokens configured, the step gets one of its own, in a file of its own
    // (owner-only): it opens the metadata API and nothing else, and the server's token does
    // not open the metadata API.
    let file = dir.path().join(switchyard_server::STEP_TOKEN_FILE);
    let step_token = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert!(step_token.starts_with("sy_step_"), "{step_token}");
    assert_ne!(step_token, common::TOKEN);
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let step = api.with_token(Some(&step_token));
    let spec = step.get("/spec?q=items[1]").await;
    assert_eq!(spec.status, StatusCode::OK, "{:?}", spec.body);
    assert_eq!(spec.json()["value"], 2);
    for refused in [
        api.with_token(None).get("/spec").await,
        api.get("/spec").await,
        step.get("/api/v1/app").await,
        step.get("/api/v1/event-type").await,
        step.post(
            "/runtime/v1/subscriptions",
            &json!({"source": "x", "filter": ""}),
        )
        .await,
    ] {
        assert_eq!(
            refused.status,
            StatusCode::UNAUTHORIZED,
            "{:?}",
            refused.body
        );
    }

    let sub = subscribe(&api, "metadata", "event_type == 'step.event'").await;
    let emitted = step
        .post("/events", &json!({"data": {"ok": true}, "key": "k1"}))
        .await;
    assert!(emitted.status.is_success(), "{:?}", emitted);
    let event = next(&api, &[&sub], 5000).await.unwrap();
    assert_eq!(
        event["data"],
        json!({"step": "build", "data": {"ok": true}, "key": "k1"})
    );

    let runs = subscribe(&api, "metadata", "event_type == 'workflow.run'").await;
    let run = step
        .post(
            "/workflows/deploy/run",
            &json!({"parameters": {"env": {"value": "prod"}}}),
        )
        .await;
    assert!(run.status.is_success(), "{:?}", run);
    assert_eq!(run.json()["workflow_run"]["run_number"], 1);
    let event = next(&api, &[&runs], 5000).await.unwrap();
    assert_eq!(event["data"]["workflow"], "deploy");
    assert_eq!(event["data"]["parameters"], json!({"env": "prod"}));
    server.shutdown().await.unwrap();
}

/// Credentials in an ingested request (headers and query parameters that name one) are kept
/// by name with the value `<redacted>`: a subscriber sees that a key came, never the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_reach_events() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());
    let all = subscribe(&api, "hooks", "true").await;
    let secrets = [
        "k-123-api",
        "t-456-auth",
        "c-789-cookie",
        "s-000-session",
        "q-111-query",
        "q-222-access",
        "q-333-apikey",
    ];
    let reply = api
        .send_with(
            Method::POST,
            "/runtime/v1/sources/hooks/events/in?page=2&token=q-111-query&access_token=q-222-access&apiKey=q-333-apikey",
            &[
                ("x-api-key", secrets[0]),
                ("x-auth-token", secrets[1]),
                ("cookie", secrets[2]),
                ("x-session-id", secrets[3]),
                ("x-request-id", "req-42"),
            ],
            r#"{"n": 1}"#,
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let event = next(&api, &[&all], 5_000).await.expect("the event");
    let text = event.to_string();
    for secret in secrets {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    let data = &event["data"];
    for header in [
        "x-api-key",
        "x-auth-token",
        "cookie",
        "x-session-id",
        "authorization",
    ] {
        assert_eq!(data["headers"][header], "<redacted>", "{header}");
    }
    assert_eq!(data["headers"]["x-request-id"], "req-42");
    assert_eq!(
        data["url"]["params"],
        json!({"page": "2", "token": "<redacted>", "access_token": "<redacted>",
               "apiKey": "<redacted>"})
    );
    assert_eq!(
        data["url"]["query"],
        "page=2&token=%3Credacted%3E&access_token=%3Credacted%3E&apiKey=%3Credacted%3E"
    );
    server.shutdown().await.unwrap();
}

/// A step token that is also a server token would open every route: refused at start.
#[tokio::test]
async fn a_step_token_that_opens_everything_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.json");
    std::fs::write(&spec, "{}").unwrap();
    let mut config = common::config(dir.path());
    config.metadata = Some(switchyard_server::MetadataConfig {
        tokens: vec![switchyard_server::Token::new(common::TOKEN)],
        ..switchyard_server::MetadataConfig::new(spec)
    });
    let error = switchyard_server::Server::start(config)
        .await
        .expect_err("refused")
        .to_string();
    assert!(error.contains("must differ"), "{error}");
}
