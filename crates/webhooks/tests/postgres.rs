//! What only the PostgreSQL store has to show: several processes' handles on one database
//! (concurrent start-up migrating once, leases exclusive under real concurrency, a dead
//! holder's leases taken over), a schema from a newer build refused, and the connection's
//! password kept out of `Debug` and errors. The behaviour every store shares is in
//! `registry.rs` and `store_model.rs`, which run over this store too.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use http_body_util::{BodyExt as _, Full};
use serde_json::json;
use switchyard_webhooks::delivery::{AddressPolicy, DeliveryConfig, DeliveryEngine};
use switchyard_webhooks::store::{PostgresStore, Store};
use switchyard_webhooks::{EndpointSpec, EventTypeName, Registry, StoreError, Verifier};

#[path = "support/postgres.rs"]
mod pg;

/// Eight processes starting at once on an empty database: the schema is made once and
/// every one of them opens it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_start_ups_migrate_once() {
    let database = pg::TestDatabase::create().await;
    let opens: Vec<_> = (0..8)
        .map(|_| {
            let url = database.url.clone();
            tokio::spawn(async move { PostgresStore::connect(&url).await })
        })
        .collect();
    let mut stores = Vec::new();
    for open in opens {
        stores.push(open.await.unwrap().unwrap());
    }
    let registry = Registry::new(stores.pop().unwrap());
    let apps = registry
        .list_applications(&Default::default())
        .await
        .unwrap();
    assert_eq!(apps.items.len(), 1, "one default application, made once");
}

/// A database whose schema a newer build wrote is refused, and left as it was.
#[tokio::test]
async fn a_newer_schema_is_refused() {
    let database = pg::TestDatabase::create().await;
    drop(PostgresStore::connect(&database.url).await.unwrap());
    let (client, connection) = tokio_postgres::connect(&database.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute("UPDATE switchyard_webhooks_schema SET version = 99")
        .await
        .unwrap();
    let refused = PostgresStore::connect(&database.url).await.unwrap_err();
    assert!(
        matches!(
            refused,
            StoreError::UnsupportedSchemaVersion {
                found: 99,
                supported: 5
            }
        ),
        "{refused:?}"
    );
    let row = client
        .query_one("SELECT version FROM switchyard_webhooks_schema", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 99);
}

/// Four handles (four processes' pools) leasing at once on a multi-threaded runtime: each of
/// 1,200 deliveries is leased exactly once. Then one holder dies with leases out: once they
/// run out, another handle takes them over.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leases_are_exclusive_across_handles_and_expire() {
    let database = pg::TestDatabase::create().await;
    let registry = Registry::new(PostgresStore::connect(&database.url).await.unwrap());
    let visit = EventTypeName::new("origin.visit").unwrap();
    registry
        .create_event_type(visit.clone(), "", json!({}))
        .await
        .unwrap();
    for i in 0..4 {
        registry
            .create_endpoint(
                EndpointSpec::new(format!("https://{i}.example/")).event_type(visit.clone()),
            )
            .await
            .unwrap();
    }
    for _ in 0..300 {
        registry.send(&visit, "{}", None).await.unwrap().unwrap();
    }
    let now = Utc::now() + chrono::Duration::seconds(1);
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let url = database.url.clone();
            tokio::spawn(async move {
                let store = PostgresStore::connect(&url).await.unwrap();
                let mut mine = Vec::new();
                loop {
                    let batch = store
                        .lease_deliveries(now, Duration::from_secs(60), 9)
                        .await
                        .unwrap();
                    if batch.is_empty() {
                        break mine;
                    }
                    mine.extend(
                        batch
                            .into_iter()
                            .map(|l| (l.delivery.message_id, l.delivery.endpoint_id)),
                    );
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    assert_eq!(all.len(), 1_200);
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 1_200, "no delivery leased twice");

    // Every lease is out until `now + 60 s`; the holders are gone. Before then nothing can be
    // leased; after, all of it, by a handle that never held any.
    let heir = PostgresStore::connect(&database.url).await.unwrap();
    let early = now + chrono::Duration::seconds(59);
    assert!(
        heir.lease_deliveries(early, Duration::from_secs(60), 100)
            .await
            .unwrap()
            .is_empty()
    );
    let late = now + chrono::Duration::seconds(61);
    let mut taken = 0;
    loop {
        let batch = heir
            .lease_deliveries(late, Duration::from_secs(60), 500)
            .await
            .unwrap();
        if batch.is_empty() {
            break;
        }
        taken += batch.len();
    }
    assert_eq!(taken, 1_200);
}

/// The password of the connection string shows neither in `Debug` nor in a connection
/// error.
#[tokio::test]
async fn the_password_stays_out_of_debug_and_errors() {
    let database = pg::TestDatabase::create().await;
    // The local server trusts loopback connections, so any password is accepted.
    let url = database
        .url
        .replacen("postgres@", "postgres:hunter2-secret@", 1);
    assert_ne!(url, database.url, "the test URL names the user postgres");
    let store = PostgresStore::connect(&url).await.unwrap();
    assert!(!format!("{store:?}").contains("hunter2"));
    let unreachable = "postgres://postgres:hunter2-secret@127.0.0.1:1/nothing";
    let error = PostgresStore::connect(unreachable).await.unwrap_err();
    assert!(
        !format!("{error} {error:?}").contains("hunter2"),
        "{error:?}"
    );
}

/// What a loopback receiver got: headers and body of each request.
type Got = Arc<Mutex<Vec<(http::HeaderMap, Bytes)>>>;

async fn receiver() -> (String, Got) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let got: Got = Arc::default();
    let record = Arc::clone(&got);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let record = Arc::clone(&record);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        let record = Arc::clone(&record);
                        async move {
                            let headers = request.headers().clone();
                            let body = request.into_body().collect().await?.to_bytes();
                            record.lock().unwrap().push((headers, body));
                            Ok::<_, hyper::Error>(http::Response::new(Full::new(Bytes::new())))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, got)
}

/// Runs `engine` in a task: the sender that stops it, and the task.
fn start<S: Store>(
    engine: DeliveryEngine<S>,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), switchyard_webhooks::Error>>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        engine
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    (stop, running)
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited too long for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An engine in one process hears what another process does on the same database through
/// `LISTEN`/`NOTIFY`: a message sent there is delivered here at once although this engine
/// polls once a minute, and a secret rotated there signs the next delivery made here
/// although this engine refreshes its endpoints once a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_hears_sends_and_endpoint_changes() {
    let database = pg::TestDatabase::create().await;
    let here = Arc::new(Registry::new(
        PostgresStore::connect(&database.url).await.unwrap(),
    ));
    let there = Registry::new(PostgresStore::connect(&database.url).await.unwrap());
    let visit = EventTypeName::new("origin.visit").unwrap();
    there
        .create_event_type(visit.clone(), "", json!({}))
        .await
        .unwrap();
    let (url, got) = receiver().await;
    let endpoint = there
        .create_endpoint(EndpointSpec::new(url).event_type(visit.clone()))
        .await
        .unwrap();

    let config = DeliveryConfig {
        poll_interval: Duration::from_secs(60),
        endpoint_refresh: Duration::from_secs(60),
        addresses: AddressPolicy::default().allow("127.0.0.0/8".parse().unwrap()),
        ..DeliveryConfig::default()
    };
    let (stop, running) = start(DeliveryEngine::new(Arc::clone(&here), config).unwrap());
    // The engine's first lease (nothing due) and its LISTEN.
    tokio::time::sleep(Duration::from_millis(500)).await;

    there
        .send(&visit, r#"{"n": 1}"#, None)
        .await
        .unwrap()
        .unwrap();
    wait_for("the first delivery", || got.lock().unwrap().len() == 1).await;
    let old = there.endpoint_secret(endpoint.id.as_str()).await.unwrap();
    let (headers, body) = got.lock().unwrap()[0].clone();
    Verifier::new(old.clone()).verify(&headers, &body).unwrap();

    there
        .rotate_secret(endpoint.id.as_str(), None)
        .await
        .unwrap();
    let new = there.endpoint_secret(endpoint.id.as_str()).await.unwrap();
    assert_ne!(new.expose(), old.expose());
    // The notification reaches this process's engine before the next send's does.
    tokio::time::sleep(Duration::from_millis(200)).await;
    there
        .send(&visit, r#"{"n": 2}"#, None)
        .await
        .unwrap()
        .unwrap();
    wait_for("the second delivery", || got.lock().unwrap().len() == 2).await;
    let (headers, body) = got.lock().unwrap()[1].clone();
    Verifier::new(new)
        .verify(&headers, &body)
        .expect("signed with the secret rotated in the other process");
    let _ = stop.send(());
    running.await.unwrap().unwrap();
}

/// Live nodes: each heartbeat counts the nodes heard from within `expire`, itself included;
/// a node that leaves, or goes silent, stops counting.
#[tokio::test]
async fn heartbeats_count_the_live_nodes() {
    let database = pg::TestDatabase::create().await;
    let a = PostgresStore::connect(&database.url).await.unwrap();
    let b = PostgresStore::connect(&database.url).await.unwrap();
    let long = Duration::from_secs(60);
    assert_eq!(a.heartbeat("a", long).await.unwrap(), 1);
    assert_eq!(b.heartbeat("b", long).await.unwrap(), 2);
    assert_eq!(a.heartbeat("a", long).await.unwrap(), 2);
    b.leave("b").await.unwrap();
    assert_eq!(a.heartbeat("a", long).await.unwrap(), 1);
    assert_eq!(b.heartbeat("quiet", long).await.unwrap(), 2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Not heard from for longer than 200 ms: forgotten.
    assert_eq!(
        a.heartbeat("a", Duration::from_millis(200)).await.unwrap(),
        1
    );
}

/// An endpoint's concurrency limit holds for the engines sharing the database together:
/// with another node alive, an engine sends at most half the limit to the endpoint at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_concurrency_is_shared_among_live_engines() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let database = pg::TestDatabase::create().await;
    let other = PostgresStore::connect(&database.url).await.unwrap();
    // Another node is alive (its engine would heartbeat like this).
    assert_eq!(
        other
            .heartbeat("other-node", Duration::from_secs(60))
            .await
            .unwrap(),
        1
    );
    let registry = Arc::new(Registry::new(
        PostgresStore::connect(&database.url).await.unwrap(),
    ));
    let visit = EventTypeName::new("origin.visit").unwrap();
    registry
        .create_event_type(visit.clone(), "", json!({}))
        .await
        .unwrap();

    // A receiver that holds each request 300 ms and notes the most at once.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let (now, most, done) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    {
        let (now, most, done) = (Arc::clone(&now), Arc::clone(&most), Arc::clone(&done));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (now, most, done) = (Arc::clone(&now), Arc::clone(&most), Arc::clone(&done));
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: http::Request<hyper::body::Incoming>| {
                            let (now, most, done) =
                                (Arc::clone(&now), Arc::clone(&most), Arc::clone(&done));
                            async move {
                                let at_once = now.fetch_add(1, Ordering::SeqCst) + 1;
                                most.fetch_max(at_once, Ordering::SeqCst);
                                let _ = request.into_body().collect().await;
                                tokio::time::sleep(Duration::from_millis(300)).await;
                                now.fetch_sub(1, Ordering::SeqCst);
                                done.fetch_add(1, Ordering::SeqCst);
                                Ok::<_, hyper::Error>(http::Response::new(Full::new(Bytes::new())))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    }
    registry
        .create_endpoint(EndpointSpec::new(url).event_type(visit.clone()))
        .await
        .unwrap();
    let config = DeliveryConfig {
        max_in_flight_per_endpoint: 4,
        addresses: AddressPolicy::default().allow("127.0.0.0/8".parse().unwrap()),
        ..DeliveryConfig::default()
    };
    let (stop, running) = start(DeliveryEngine::new(Arc::clone(&registry), config).unwrap());
    // Its first heartbeat has counted two nodes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..12 {
        registry
            .send(&visit, &format!(r#"{{"n": {i}}}"#), None)
            .await
            .unwrap()
            .unwrap();
    }
    wait_for("12 deliveries", || done.load(Ordering::SeqCst) == 12).await;
    assert_eq!(
        most.load(Ordering::SeqCst),
        2,
        "half of the endpoint's limit of 4 while another node is alive"
    );
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    // The engine left: only the other node is counted now.
    assert_eq!(
        other
            .heartbeat("other-node", Duration::from_secs(60))
            .await
            .unwrap(),
        1
    );
}

/// An ordered endpoint receives its messages one at a time in message order, through a
/// failed first attempt, while two engines on two handles (two processes) share the work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordered_endpoint_gets_message_order_from_two_engines() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let database = pg::TestDatabase::create().await;
    let mut registries = Vec::new();
    for _ in 0..2 {
        registries.push(Arc::new(Registry::new(
            PostgresStore::connect(&database.url).await.unwrap(),
        )));
    }
    let visit = EventTypeName::new("origin.visit").unwrap();
    registries[0]
        .create_event_type(visit.clone(), "", json!({}))
        .await
        .unwrap();
    // A receiver that refuses the very first request (so message 0 is retried while the
    // rest wait) and records the order of the rest.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let calls = Arc::new(AtomicUsize::new(0));
    {
        let (got, calls) = (Arc::clone(&got), Arc::clone(&calls));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (got, calls) = (Arc::clone(&got), Arc::clone(&calls));
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: http::Request<hyper::body::Incoming>| {
                            let (got, calls) = (Arc::clone(&got), Arc::clone(&calls));
                            async move {
                                let id =
                                    request.headers()["webhook-id"].to_str().unwrap().to_owned();
                                let _ = request.into_body().collect().await;
                                let mut response = http::Response::new(Full::new(Bytes::new()));
                                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                                    *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                                } else {
                                    got.lock().unwrap().push(id);
                                }
                                Ok::<_, hyper::Error>(response)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    }
    registries[0]
        .create_endpoint(
            EndpointSpec::new(url)
                .event_type(visit.clone())
                .ordered(true),
        )
        .await
        .unwrap();
    let mut sent = Vec::new();
    for i in 0..20 {
        let (id, _) = registries[i % 2]
            .send(&visit, &format!(r#"{{"n": {i}}}"#), None)
            .await
            .unwrap()
            .unwrap();
        sent.push(id.to_string());
    }
    let mut stops = Vec::new();
    for registry in &registries {
        let config = DeliveryConfig {
            poll_interval: Duration::from_millis(50),
            retry: switchyard_webhooks::retry::RetryPolicy {
                schedule: vec![Duration::from_millis(100); 3],
                jitter: 0.0,
                ..Default::default()
            },
            addresses: AddressPolicy::default().allow("127.0.0.0/8".parse().unwrap()),
            ..DeliveryConfig::default()
        };
        stops.push(start(
            DeliveryEngine::new(Arc::clone(registry), config).unwrap(),
        ));
    }
    wait_for("20 deliveries", || got.lock().unwrap().len() >= 20).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The order is message order: the ids' (creation order, across processes the order of
    // their ids).
    sent.sort();
    assert_eq!(*got.lock().unwrap(), sent);
    for (stop, running) in stops {
        let _ = stop.send(());
        running.await.unwrap().unwrap();
    }
}
