//! Load on the `switchyard` server, loopback only: 50 concurrent clients send messages
//! through the Svix-compatible HTTP API for 30 s (`SWITCHYARD_LOAD_SECS` changes it), each
//! message to 100 endpoints on a loopback receiver, while the delivery engine delivers.
//!
//! Asserts that no request failed and nothing was lost: every accepted message is stored
//! with a delivery for each of the 100 endpoints (read from the server's store, in the
//! application's scope),
//! and every delivery the receiver got belongs to an accepted message. Reports messages/s,
//! the API's p50/p99 latency and the delivery rate while sending and in a 30 s drain window
//! after. (Draining everything takes minutes: a 30 s run queues over a million deliveries,
//! and the engine's rate with 100 endpoints per message is issue 4's open target.)
//!
//! It runs twice: on the default SQLite store, and with the webhooks in a PostgreSQL database
//! of its own (`--database`; the local server, or `SWITCHYARD_TEST_POSTGRES`).
//!
//! Numbers only mean something in an optimised build, so the test is `#[ignore]`d in the
//! debug `cargo test` run; `cargo xtask ci` runs it with `--release -- --ignored`.
#![allow(clippy::unwrap_used, clippy::print_stdout)] // Test code that reports its numbers.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use switchyard::server::{Config, DatabaseConfig, KEY_FILE, Server, Token};
use switchyard::webhooks::seal::{KeyRing, MainKey};
use switchyard::webhooks::store::{PostgresOptions, PostgresStore, SqliteStore, Store};
use switchyard::webhooks::{DeliveryStatus, Registry};

#[path = "../../crates/webhooks/tests/support/postgres.rs"]
mod pg;

const CLIENTS: usize = 50;
const ENDPOINTS: usize = 100;
const TOKEN: &str = "load-test-token-0123456789";
/// How long deliveries are counted after the senders stop.
const DRAIN_WINDOW: Duration = Duration::from_secs(30);

type Seen = Arc<Mutex<HashSet<(u16, String)>>>;

/// Records (endpoint number, webhook-id) for every delivery; answers 204 at once.
async fn receiver() -> (String, Seen, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let requests = Arc::new(AtomicU64::new(0));
    let (record, count) = (Arc::clone(&seen), Arc::clone(&requests));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (record, count) = (Arc::clone(&record), Arc::clone(&count));
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let (record, count) = (Arc::clone(&record), Arc::clone(&count));
                    async move {
                        let endpoint: u16 = request
                            .uri()
                            .path()
                            .trim_start_matches('/')
                            .parse()
                            .unwrap();
                        let id = request.headers()["webhook-id"].to_str().unwrap().to_owned();
                        let _ = request.into_body().collect().await;
                        count.fetch_add(1, Ordering::Relaxed);
                        record.lock().unwrap().insert((endpoint, id));
                        let mut response = http::Response::new(Full::new(Bytes::new()));
                        *response.status_mut() = StatusCode::NO_CONTENT;
                        Ok::<_, hyper::Error>(response)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, seen, requests)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a load test: run in release by `cargo xtask ci` (cargo test --release -- --ignored)"]
async fn fifty_clients_to_a_hundred_endpoints_lose_nothing() {
    load(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a load test: run in release by `cargo xtask ci` (cargo test --release -- --ignored)"]
async fn fifty_clients_to_a_hundred_endpoints_lose_nothing_on_postgres() {
    let database = pg::TestDatabase::create().await;
    load(Some(&database.url)).await;
}

/// The load run, on SQLite or (with a URL) on that PostgreSQL database.
async fn load(database: Option<&str>) {
    let seconds: u64 = std::env::var("SWITCHYARD_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_owned(),
        tokens: vec![Token::new(TOKEN)],
        database: database.map(DatabaseConfig::new),
        ..Config::default()
    };
    config.allow_subnet("127.0.0.0/8".parse().unwrap());
    let server = Server::start(config).await.unwrap();
    let base = format!("http://{}", server.local_addr());
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(CLIENTS)
        .build_http();
    let call = {
        let client = client.clone();
        let base = base.clone();
        move |method: Method, path: String, body: Value| {
            let client = client.clone();
            let uri = format!("{base}{path}");
            async move {
                let request = Request::builder()
                    .method(method)
                    .uri(uri)
                    .header("authorization", format!("Bearer {TOKEN}"))
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body.to_string())))
                    .unwrap();
                let response = client.request(request).await.unwrap();
                let status = response.status();
                let body = response.into_body().collect().await.unwrap().to_bytes();
                (status, body)
            }
        }
    };

    let (url, seen, requests) = receiver().await;
    let (status, _) = call(
        Method::POST,
        "/api/v1/event-type".into(),
        json!({"name": "load.test", "description": "load", "schemas": {"1": {"type": "object"}}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = call(
        Method::POST,
        "/api/v1/app".into(),
        json!({"name": "load", "uid": "load"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    for n in 0..ENDPOINTS {
        let (status, body) = call(
            Method::POST,
            "/api/v1/app/load/endpoint".into(),
            json!({"url": format!("{url}/{n}"), "uid": format!("ep-{n}")}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body:?}");
    }

    // Send for the duration.
    let started = Instant::now();
    let stop_at = started + Duration::from_secs(seconds);
    let mut senders = Vec::new();
    for client_no in 0..CLIENTS {
        let call = call.clone();
        senders.push(tokio::spawn(async move {
            let mut accepted = Vec::new();
            let mut latencies = Vec::new();
            let mut failures = Vec::new();
            let mut n = 0u64;
            while Instant::now() < stop_at {
                n += 1;
                let sent = Instant::now();
                let (status, body) = call(
                    Method::POST,
                    "/api/v1/app/load/msg".into(),
                    json!({"eventType": "load.test", "payload": {"client": client_no, "n": n}}),
                )
                .await;
                latencies.push(sent.elapsed());
                if status == StatusCode::ACCEPTED {
                    let reply: Value = serde_json::from_slice(&body).unwrap();
                    accepted.push(reply["id"].as_str().unwrap().to_owned());
                } else {
                    failures.push(format!("{status}: {}", String::from_utf8_lossy(&body)));
                }
            }
            (accepted, latencies, failures)
        }));
    }
    let mut accepted = Vec::new();
    let mut latencies = Vec::new();
    let mut failures = Vec::new();
    for sender in senders {
        let (a, l, f) = sender.await.unwrap();
        accepted.extend(a);
        latencies.extend(l);
        failures.extend(f);
    }
    let sending = started.elapsed();
    latencies.sort();
    assert!(
        failures.is_empty(),
        "{} requests failed, first: {}",
        failures.len(),
        failures[0]
    );
    let delivered_while_sending = requests.load(Ordering::Relaxed);

    // Deliveries go on; count them over the drain window.
    tokio::time::sleep(DRAIN_WINDOW).await;
    let delivered_after_window = requests.load(Ordering::Relaxed);

    let (status, app) = call(Method::GET, "/api/v1/app/load".into(), Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    let app: Value = serde_json::from_slice(&app).unwrap();
    // A graceful shutdown lets the deliveries in flight finish and record their attempts.
    server.shutdown().await.unwrap();
    let received = seen.lock().unwrap().clone();
    let duplicates = requests.load(Ordering::Relaxed) as usize - received.len();

    // Nothing lost: every accepted message is stored, with one delivery per endpoint, and the
    // store records a success exactly for the (message, endpoint) pairs the receiver got.
    let app_id = app["id"].as_str().unwrap();
    // The store's secrets are sealed under the main key the server made in its data directory.
    let key: MainKey = std::fs::read_to_string(dir.path().join(KEY_FILE))
        .unwrap()
        .parse()
        .unwrap();
    let ring = KeyRing::new(key);
    let succeeded = match database {
        Some(url) => {
            let store = PostgresStore::connect_sealed(url, PostgresOptions::default(), ring)
                .await
                .unwrap();
            check_stored(store, app_id, &accepted, &received).await
        }
        None => {
            let file = dir.path().join("webhooks/store.db");
            let store = SqliteStore::open_sealed(&file, ring).await.unwrap();
            check_stored(store, app_id, &accepted, &received).await
        }
    };
    assert_eq!(
        succeeded,
        received.len(),
        "every delivery received belongs to an accepted message"
    );

    let wanted = accepted.len() * ENDPOINTS;
    let rate = accepted.len() as f64 / sending.as_secs_f64();
    let store = if database.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!(
        "server load ({store}): {CLIENTS} clients x {seconds} s, {ENDPOINTS} endpoints per message\n\
         accepted {} messages: {rate:.0} messages/s through the API, none lost (each stored with {ENDPOINTS} deliveries)\n\
         API latency: p50 {:?}, p99 {:?}, max {:?}\n\
         deliveries queued: {wanted}; delivered: {delivered_while_sending} while sending ({:.0}/s), \
         {} in the {DRAIN_WINDOW:?} after ({:.0}/s); {duplicates} duplicates",
        accepted.len(),
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or_default(),
        delivered_while_sending as f64 / sending.as_secs_f64(),
        delivered_after_window - delivered_while_sending,
        (delivered_after_window - delivered_while_sending) as f64 / DRAIN_WINDOW.as_secs_f64(),
    );
}

/// Checks every accepted message is stored with a delivery per endpoint, a success exactly
/// where the receiver got it; returns how many succeeded.
async fn check_stored<S: Store>(
    store: S,
    app_id: &str,
    accepted: &[String],
    received: &HashSet<(u16, String)>,
) -> usize {
    let registry = Registry::new(store);
    let registry = registry.app(app_id).await.unwrap();
    let mut endpoint_numbers = std::collections::HashMap::new();
    for n in 0..ENDPOINTS {
        let endpoint = registry.endpoint(&format!("ep-{n}")).await.unwrap();
        endpoint_numbers.insert(endpoint.id, n as u16);
    }
    let unique: HashSet<&String> = accepted.iter().collect();
    assert_eq!(unique.len(), accepted.len(), "message ids are unique");
    let mut succeeded = 0;
    for id in accepted {
        let message = registry.message(id).await.unwrap();
        let deliveries = registry.deliveries(&message.id).await.unwrap();
        let endpoints: HashSet<_> = deliveries.iter().map(|d| d.endpoint_id.clone()).collect();
        assert_eq!(
            endpoints.len(),
            ENDPOINTS,
            "{id} has {} deliveries",
            endpoints.len()
        );
        for delivery in &deliveries {
            let pair = (endpoint_numbers[&delivery.endpoint_id], id.clone());
            let done = delivery.status == DeliveryStatus::Succeeded;
            assert_eq!(
                done,
                received.contains(&pair),
                "{pair:?}: store says {:?}",
                delivery.status
            );
            succeeded += usize::from(done);
        }
    }
    succeeded
}
