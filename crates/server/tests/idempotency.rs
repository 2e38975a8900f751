//! Idempotent `POST`s (`idempotency-key`) and Svix's one message per `eventId`: a retry
//! with the same key does nothing again and gets the first answer, also while the first
//! request runs, after a restart, and through another server on the same database.
#![allow(clippy::unwrap_used)] // Test code.

mod common;

#[path = "../../webhooks/tests/support/postgres.rs"]
mod pg;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use switchyard_server::{DatabaseConfig, Server};

use common::{Api, Reply};

async fn setup(api: &Api) {
    let app = api
        .post("/api/v1/app", &json!({"name": "tenant", "uid": "tenant"}))
        .await;
    assert_eq!(app.status, StatusCode::CREATED, "{:?}", app.body);
}

async fn send(api: &Api, key: Option<&str>, body: &Value) -> Reply {
    let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
    api.send_with(
        Method::POST,
        "/api/v1/app/tenant/msg",
        &headers,
        body.to_string(),
    )
    .await
}

async fn message_count(api: &Api) -> usize {
    api.get("/api/v1/app/tenant/msg?limit=250").await.json()["data"]
        .as_array()
        .unwrap()
        .len()
}

fn visit(n: u32) -> Value {
    json!({"eventType": "origin.visit", "payload": {"n": n}})
}

#[tokio::test]
async fn a_retry_with_the_same_key_gets_the_first_answer_and_does_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());
    setup(&api).await;

    let first = send(&api, Some("key-1"), &visit(1)).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{:?}", first.body);
    assert!(!first.headers.contains_key("idempotent-replayed"));
    let retry = send(&api, Some("key-1"), &visit(1)).await;
    assert_eq!(retry.status, StatusCode::ACCEPTED);
    assert_eq!(retry.body, first.body, "the first answer, byte for byte");
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    assert_eq!(retry.headers["content-type"], "application/json");
    assert_eq!(message_count(&api).await, 1);

    // Another key, no key, or another route: independent.
    let other = send(&api, Some("key-2"), &visit(2)).await;
    assert_ne!(other.json()["id"], first.json()["id"]);
    send(&api, None, &visit(3)).await;
    send(&api, None, &visit(3)).await;
    assert_eq!(message_count(&api).await, 4);
    let app = api
        .send_with(
            Method::POST,
            "/api/v1/app",
            &[("idempotency-key", "key-1")],
            json!({"name": "second"}).to_string(),
        )
        .await;
    assert_eq!(app.status, StatusCode::CREATED, "same key, other route");

    // An answer that is not a 2xx is not remembered: the retry runs.
    let bad = send(&api, Some("key-3"), &json!({"eventType": "origin.visit"})).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fixed = send(&api, Some("key-3"), &visit(5)).await;
    assert_eq!(fixed.status, StatusCode::ACCEPTED);
    assert!(!fixed.headers.contains_key("idempotent-replayed"));
    assert_eq!(message_count(&api).await, 5);

    // Any text is a key, however long (it is hashed), the empty one too.
    let long = "k".repeat(4096);
    assert_eq!(
        send(&api, Some(&long), &visit(6)).await.status,
        StatusCode::ACCEPTED
    );
    let again = send(&api, Some(&long), &visit(6)).await;
    assert_eq!(again.headers["idempotent-replayed"], "true");

    // Svix's rule: one message per `eventId` in an application (409, nothing stored).
    let with_id = json!({"eventType": "origin.visit", "payload": {}, "eventId": "evt-1"});
    assert_eq!(
        send(&api, None, &with_id).await.status,
        StatusCode::ACCEPTED
    );
    let twice = send(&api, None, &with_id).await;
    assert_eq!(twice.status, StatusCode::CONFLICT);
    assert_eq!(twice.json()["code"], "conflict");
    assert_eq!(message_count(&api).await, 7);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_make_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());
    setup(&api).await;
    let mut sends = Vec::new();
    for _ in 0..16 {
        let api = api.clone();
        sends.push(tokio::spawn(async move {
            send(&api, Some("together"), &visit(1)).await
        }));
    }
    let mut ids = std::collections::HashSet::new();
    let mut replayed = 0;
    for sent in sends {
        let reply = sent.await.unwrap();
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
        replayed += usize::from(reply.headers.contains_key("idempotent-replayed"));
        ids.insert(reply.json()["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "one message id for all: {ids:?}");
    assert_eq!(replayed, 15);
    assert_eq!(message_count(&api).await, 1);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_answer_outlives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());
    setup(&api).await;
    let first = send(&api, Some("across"), &visit(1)).await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    server.shutdown().await.unwrap();

    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());
    let retry = send(&api, Some("across"), &visit(1)).await;
    assert_eq!(retry.status, StatusCode::ACCEPTED);
    assert_eq!(retry.body, first.body);
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    assert_eq!(message_count(&api).await, 1);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_database_share_keys_and_event_ids() {
    let database = pg::TestDatabase::create().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Servers sharing a database share the main key the endpoints' secrets are sealed under.
    let key = dir_a.path().join("shared.key");
    let generated = switchyard_webhooks::seal::MainKey::generate().unwrap();
    std::fs::write(&key, generated.expose().as_bytes()).unwrap();
    let mut servers = Vec::new();
    for dir in [&dir_a, &dir_b] {
        let mut config = common::config(dir.path());
        config.database = Some(DatabaseConfig::new(&database.url));
        config.webhooks.main_key = Some(switchyard_server::ValueSource::File(key.clone()));
        servers.push(Server::start(config).await.unwrap());
    }
    let a = Api::new(servers[0].local_addr());
    let b = Api::new(servers[1].local_addr());
    setup(&a).await;

    // The same key through both servers at once, many times: one message per key.
    for round in 0..8 {
        let (key, body) = (format!("round-{round}"), visit(round));
        let (x, y) = tokio::join!(send(&a, Some(&key), &body), send(&b, Some(&key), &body));
        assert_eq!(x.status, StatusCode::ACCEPTED, "{:?}", x.body);
        assert_eq!(y.status, StatusCode::ACCEPTED, "{:?}", y.body);
        assert_eq!(x.json()["id"], y.json()["id"], "round {round}");
    }
    assert_eq!(message_count(&a).await, 8);
    // And an event id through both at once: one is created, the other is a 409.
    for round in 0..8 {
        let body =
            json!({"eventType": "origin.visit", "payload": {}, "eventId": format!("e-{round}")});
        let (x, y) = tokio::join!(send(&a, None, &body), send(&b, None, &body));
        let mut statuses = [x.status, y.status];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::ACCEPTED, StatusCode::CONFLICT],
            "round {round}"
        );
    }
    assert_eq!(message_count(&b).await, 16);
    for server in servers {
        server.shutdown().await.unwrap();
    }
}
