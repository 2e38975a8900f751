//! Runtime events can't be turned against the server: a costly filter runs within its
//! iteration budget and off the async workers (health answers while two run), and
//! subscriptions are capped in number and expire when nobody polls them.
#![allow(clippy::unwrap_used, clippy::print_stdout)] // Test code.

mod common;

use std::time::{Duration, Instant};

use common::Api;
use http::StatusCode;
use serde_json::json;

const COSTLY: &str = "data.body.exists(x, data.body.exists(y, y < 0))";

async fn subscribe(api: &Api, filter: &str) -> String {
    let reply = api
        .post(
            "/runtime/v1/subscriptions",
            &json!({"source": "s", "filter": filter}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    reply.json()["id"].as_str().unwrap().to_owned()
}

/// Two publishes whose filter runs a million iterations each (seconds in a debug build) do
/// not hold up `/api/v1/health/`: filters run off the async workers. (Before, they ran on
/// them, and two of them stalled a two-worker server for their whole length.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn costly_filters_do_not_stall_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.runtime.filter_limits.max_iterations = 1_000_000;
    let server = switchyard_server::Server::start(config).await.unwrap();
    let api = Api::new(server.local_addr());
    let sub = subscribe(&api, COSTLY).await;
    // A plain webhook: the JSON body is `data.body`.
    let body = json!((0..1200).collect::<Vec<i64>>());
    let started = Instant::now();
    let publishes: Vec<_> = (0..2)
        .map(|_| {
            let api = api.clone();
            let body = body.clone();
            tokio::spawn(async move { api.post("/runtime/v1/sources/s/events", &body).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let asked = Instant::now();
        let health = api.get("/api/v1/health/").await;
        assert_eq!(health.status, StatusCode::NO_CONTENT);
        slowest = slowest.max(asked.elapsed());
    }
    let publishing_while_asked = publishes.iter().any(|p| !p.is_finished());
    for publish in publishes {
        let reply = publish.await.unwrap();
        // Over budget: counted as no match, nothing queued.
        assert_eq!(reply.json(), json!({"events": 1, "queued": 0}));
    }
    println!(
        "health answered within {slowest:?} while two publishes ran {:?}",
        started.elapsed()
    );
    assert!(publishing_while_asked, "the publishes were still running");
    assert!(slowest < Duration::from_millis(500), "{slowest:?}");
    let next = api
        .post("/runtime/v1/next", &json!({"ids": [sub], "timeout_ms": 0}))
        .await;
    assert_eq!(next.status, StatusCode::NO_CONTENT);
    server.shutdown().await.unwrap();
}

/// With the default budget, the static filter of the report is refused at subscribe and the
/// payload-driven one stops at the budget (a 3,000-item body would need 9 million steps).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_budget_bounds_every_evaluation() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());
    let refused = api
        .post(
            "/runtime/v1/subscriptions",
            &json!({"source": "s",
                    "filter": "lists.range(2500).exists(x, lists.range(2500).exists(y, y < 0))"}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.windows(6).any(|w| w == b"budget"),
        "{:?}",
        refused.body
    );
    subscribe(&api, COSTLY).await;
    let started = Instant::now();
    let reply = api
        .post(
            "/runtime/v1/sources/s/events",
            &json!((0..3000).collect::<Vec<i64>>()),
        )
        .await;
    assert_eq!(reply.json(), json!({"events": 1, "queued": 0}));
    println!("a publish over budget took {:?}", started.elapsed());
    // A small body is well within the budget, and matches as it should.
    let small = subscribe(&api, "data.body.exists(x, data.body.exists(y, y == x + 1))").await;
    let reply = api
        .post("/runtime/v1/sources/s/events", &json!([1, 2, 3]))
        .await;
    assert_eq!(reply.json()["queued"], 1);
    let next = api
        .post(
            "/runtime/v1/next",
            &json!({"ids": [small], "timeout_ms": 0}),
        )
        .await;
    assert_eq!(next.status, StatusCode::OK);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_capped_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.runtime.max_subscriptions = 2;
    config.runtime.idle_expiry = Duration::from_secs(1);
    let server = switchyard_server::Server::start(config).await.unwrap();
    let api = Api::new(server.local_addr());
    let forgotten = subscribe(&api, "").await;
    let kept = subscribe(&api, "").await;
    let third = api
        .post(
            "/runtime/v1/subscriptions",
            &json!({"source": "s", "filter": ""}),
        )
        .await;
    assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(third.json()["code"], "too_many_subscriptions");
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let polled = api
            .post("/runtime/v1/next", &json!({"ids": [kept], "timeout_ms": 0}))
            .await;
        assert_eq!(polled.status, StatusCode::NO_CONTENT);
    }
    let gone = api
        .post(
            "/runtime/v1/next",
            &json!({"ids": [forgotten], "timeout_ms": 0}),
        )
        .await;
    assert_eq!(gone.status, StatusCode::GONE);
    assert_eq!(gone.json()["code"], "expired");
    // Its place is free again.
    subscribe(&api, "").await;
    server.shutdown().await.unwrap();
}

/// Two idle subscriptions fed a thousand 100 KiB events keep at most their byte limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_subscriptions_hold_at_most_their_byte_limits() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.runtime.queue_bytes = 2 << 20;
    config.runtime.total_bytes = 3 << 20;
    let server = switchyard_server::Server::start(config).await.unwrap();
    let api = Api::new(server.local_addr());
    let ids = [subscribe(&api, "").await, subscribe(&api, "").await];
    let blob = "x".repeat(100 * 1024);
    for n in 0..1000 {
        let reply = api
            .post(
                "/runtime/v1/sources/s/events",
                &json!({"n": n, "blob": blob}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED);
    }
    let mut taken = 0;
    loop {
        let next = api
            .post("/runtime/v1/next", &json!({"ids": ids, "timeout_ms": 0}))
            .await;
        if next.status == StatusCode::NO_CONTENT {
            break;
        }
        assert!(next.json()["data"]["body"]["n"].as_i64().unwrap() >= 960);
        taken += 1;
    }
    // 3 MiB between the two, of about 100 KiB events: about 30 events, the newest.
    assert!((20..=31).contains(&taken), "{taken}");
    server.shutdown().await.unwrap();
}
