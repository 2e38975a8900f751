//! `PostgresOutputs` (feature `postgres`): values round-trip, a set replaces, two handles
//! (two servers) see each other's sets, a step's total is the sum of its values' JSON, and a
//! table a newer build wrote is refused. Each test makes its own database and drops it.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used)]

#[path = "../../webhooks/tests/support/postgres.rs"]
mod pg;

use serde_json::json;
use switchyard_metadata::{OutputStore, PostgresOutputs, StoreError};

#[tokio::test]
async fn outputs_round_trip_between_handles_and_count_their_bytes() {
    let database = pg::TestDatabase::create().await;
    let one = PostgresOutputs::connect(&database.url, 2).await.unwrap();
    let other = PostgresOutputs::connect(&database.url, 2).await.unwrap();
    assert_eq!(one.get("build", "image").await.unwrap(), None);
    let value = json!({"tags": ["a", "b"], "n": 1.5, "unicode": "é"});
    one.set("build", "image", value.clone()).await.unwrap();
    assert_eq!(other.get("build", "image").await.unwrap(), Some(value));
    other.set("build", "image", json!("v2")).await.unwrap();
    assert_eq!(one.get("build", "image").await.unwrap(), Some(json!("v2")));
    one.set("build", "digest", json!("sha256:0")).await.unwrap();
    one.set("deploy", "url", json!("https://x")).await.unwrap();
    // "v2" is 4 bytes of JSON, "sha256:0" 10.
    assert_eq!(one.step_bytes("build").await.unwrap(), Some(14));
    assert_eq!(one.step_bytes("nobody").await.unwrap(), Some(0));
    assert!(!format!("{one:?}").contains("postgres@"));
}

#[tokio::test]
async fn a_newer_table_is_refused() {
    let database = pg::TestDatabase::create().await;
    drop(PostgresOutputs::connect(&database.url, 1).await.unwrap());
    let (client, connection) = tokio_postgres::connect(&database.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute("UPDATE switchyard_metadata_schema SET version = 7")
        .await
        .unwrap();
    let refused = PostgresOutputs::connect(&database.url, 1)
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            StoreError::UnsupportedSchemaVersion {
                found: 7,
                supported: 1
            }
        ),
        "{refused:?}"
    );
}
