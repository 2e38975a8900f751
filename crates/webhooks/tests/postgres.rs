//! What only the PostgreSQL store has to show: several processes' handles on one database
//! (concurrent start-up migrating once, leases exclusive under real concurrency, a dead
//! holder's leases taken over), a schema from a newer build refused, and the connection's
//! password kept out of `Debug` and errors. The behaviour every store shares is in
//! `registry.rs` and `store_model.rs`, which run over this store too.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use switchyard_webhooks::store::{PostgresStore, Store};
use switchyard_webhooks::{EndpointSpec, EventTypeName, Registry, StoreError};

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
                supported: 1
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
