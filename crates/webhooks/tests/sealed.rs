//! Secrets at rest: with a main key, no endpoint secret or custom header value appears in the
//! store's bytes; a store of clear values is sealed in place when opened with a key; a
//! rotation re-seals under the new key, also when interrupted; a missing or wrong key is an
//! error at open that names the key, never a silent failure to sign.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used)]

use std::path::Path;

use switchyard_webhooks::seal::{KeyRing, MainKey, SealError};
use switchyard_webhooks::store::SqliteStore;
use switchyard_webhooks::{EndpointSpec, Registry, Secret, StoreError};

#[cfg(feature = "postgres")]
#[path = "support/postgres.rs"]
mod pg;

const SECRET: &str = "whsec_c2VhbGVkIGF0IHJlc3QsIG5ldmVyIGluIGNsZWFy";
const TOKEN: &str = "Bearer tok-7f3a9c1e5b2d4680aa";

/// Every byte of the store's files (the database and, if any, its log).
fn file_bytes(db: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(db).unwrap();
    for suffix in ["-wal", "-journal"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        if let Ok(more) = std::fs::read(&name) {
            bytes.extend(more);
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// Creates the endpoint every test looks for, with a known secret and header.
async fn add_endpoint(registry: &Registry<SqliteStore>) -> String {
    let spec = EndpointSpec::new("https://hooks.example.com/in")
        .secret(SECRET.parse::<Secret>().unwrap())
        .header("Authorization", TOKEN);
    registry.create_endpoint(spec).await.unwrap().id.to_string()
}

async fn check_endpoint(registry: &Registry<SqliteStore>, id: &str) {
    assert_eq!(registry.endpoint_secret(id).await.unwrap().expose(), SECRET);
    let endpoint = registry.endpoint(id).await.unwrap();
    assert_eq!(
        endpoint.headers.get("Authorization").map(String::as_str),
        Some(TOKEN)
    );
}

#[tokio::test]
async fn a_sealed_store_holds_no_secret_in_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhooks.db");
    let ring = KeyRing::new(MainKey::generate().unwrap());
    let store = SqliteStore::open_sealed(&path, ring.clone()).await.unwrap();
    let registry = Registry::new(store.clone());
    let id = add_endpoint(&registry).await;
    check_endpoint(&registry, &id).await;
    // The log holds the newest pages: look at it before and after it is folded in.
    let bytes = file_bytes(&path);
    assert!(!contains(&bytes, SECRET) && !contains(&bytes, "tok-7f3a9c1e5b2d4680aa"));
    store.close().await;
    let bytes = file_bytes(&path);
    assert!(!contains(&bytes, SECRET) && !contains(&bytes, "tok-7f3a9c1e5b2d4680aa"));
    assert!(contains(&bytes, "sealed:v1:"));

    // Reopened with the same key, everything reads back.
    let store = SqliteStore::open_sealed(&path, ring).await.unwrap();
    check_endpoint(&Registry::new(store.clone()), &id).await;
    store.close().await;
}

#[tokio::test]
async fn a_clear_store_is_sealed_in_place_when_opened_with_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhooks.db");
    // The store as an earlier build (or a server without a key) wrote it.
    let store = SqliteStore::open(&path).await.unwrap();
    let registry = Registry::new(store.clone());
    let id = add_endpoint(&registry).await;
    // A few more, so that the upgrade spans several batches' worth of rows.
    for n in 0..300 {
        let spec = EndpointSpec::new(format!("https://hooks.example.com/{n}"))
            .header("x-api-key", format!("key-{n}"));
        registry.create_endpoint(spec).await.unwrap();
    }
    store.close().await;
    assert!(
        contains(&file_bytes(&path), SECRET),
        "the old store is clear"
    );

    let ring = KeyRing::new(MainKey::generate().unwrap());
    let store = SqliteStore::open_sealed(&path, ring.clone()).await.unwrap();
    check_endpoint(&Registry::new(store.clone()), &id).await;
    store.close().await;
    let bytes = file_bytes(&path);
    assert!(
        !contains(&bytes, SECRET),
        "the secret is gone from the file's bytes"
    );
    assert!(!contains(&bytes, "tok-7f3a9c1e5b2d4680aa"));
    assert!(!contains(&bytes, "key-299"));

    // Opened again, there is nothing left to seal.
    let store = SqliteStore::open_sealed(&path, ring).await.unwrap();
    assert_eq!(store.reseal().await.unwrap(), 0);
    store.close().await;
}

#[tokio::test]
async fn a_missing_or_wrong_key_is_an_error_at_open_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhooks.db");
    let key = MainKey::generate().unwrap();
    let store = SqliteStore::open_sealed(&path, KeyRing::new(key.clone()))
        .await
        .unwrap();
    add_endpoint(&Registry::new(store.clone())).await;
    store.close().await;

    let missing = SqliteStore::open(&path).await.unwrap_err();
    assert!(
        matches!(missing, StoreError::Sealed(SealError::UnknownKey { ref key_id, .. }) if key_id == key.id()),
        "{missing}"
    );
    assert!(missing.to_string().contains(key.id()), "{missing}");

    let wrong = KeyRing::new(MainKey::generate().unwrap());
    let error = SqliteStore::open_sealed(&path, wrong).await.unwrap_err();
    assert!(error.to_string().contains(key.id()), "{error}");
    assert!(!error.to_string().contains(SECRET));

    // Nothing was lost: the right key still opens it.
    let store = SqliteStore::open_sealed(&path, KeyRing::new(key))
        .await
        .unwrap();
    let registry = Registry::new(store.clone());
    let endpoints = registry
        .list_endpoints(&Default::default(), &Default::default())
        .await
        .unwrap();
    assert_eq!(endpoints.items.len(), 1);
    store.close().await;
}

#[tokio::test]
async fn a_rotation_reseals_under_the_new_key_and_the_old_one_can_go() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhooks.db");
    let old = MainKey::generate().unwrap();
    let new = MainKey::generate().unwrap();
    let store = SqliteStore::open_sealed(&path, KeyRing::new(old.clone()))
        .await
        .unwrap();
    let registry = Registry::new(store.clone());
    let id = add_endpoint(&registry).await;
    for n in 0..300 {
        registry
            .create_endpoint(EndpointSpec::new(format!("https://hooks.example.com/{n}")))
            .await
            .unwrap();
    }
    store.close().await;

    // Interrupted half way: a rotation that re-sealed one batch and stopped (as a crash after
    // a committed batch leaves it).
    let rotating = KeyRing::with_old(new.clone(), vec![old.clone()]).unwrap();
    interrupt_after_one_batch(&path, &rotating);
    let text = std::fs::read(&path).unwrap();
    assert!(contains(&text, &format!("sealed:v1:{}:", new.id())));
    assert!(contains(&text, &format!("sealed:v1:{}:", old.id())));
    // Without the old key the half-rotated store does not open, and says which key it needs.
    let error = SqliteStore::open_sealed(&path, KeyRing::new(new.clone()))
        .await
        .unwrap_err();
    assert!(error.to_string().contains(old.id()), "{error}");

    // Opened with both, the rotation finishes.
    let store = SqliteStore::open_sealed(&path, rotating).await.unwrap();
    assert_eq!(
        store.reseal().await.unwrap(),
        0,
        "open finished the rotation"
    );
    store.close().await;
    let text = file_bytes(&path);
    assert!(!contains(&text, &format!("sealed:v1:{}:", old.id())));

    // The old key is no longer needed.
    let store = SqliteStore::open_sealed(&path, KeyRing::new(new))
        .await
        .unwrap();
    let registry = Registry::new(store.clone());
    check_endpoint(&registry, &id).await;
    assert_eq!(
        registry
            .list_endpoints(&Default::default(), &Default::default())
            .await
            .unwrap()
            .items
            .len(),
        50,
        "a first page of the 301"
    );
    store.close().await;
}

/// Re-seals the first 256 endpoints of the file under `ring`'s current key, as the first
/// committed batch of an interrupted rotation would, through SQLite directly.
fn interrupt_after_one_batch(path: &Path, ring: &KeyRing) {
    let conn = rusqlite::Connection::open(path).unwrap();
    // As the store's own batches do: what the rows held is overwritten, not left free.
    conn.pragma_update(None, "secure_delete", true).unwrap();
    let rows: Vec<(String, String, String)> = conn
        .prepare("SELECT id, keys, headers FROM endpoints ORDER BY seq LIMIT 256")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (id, keys, headers) in rows {
        let keys = ring.open(&id, "keys", &keys).unwrap();
        let headers = ring.open(&id, "headers", &headers).unwrap();
        let keys = ring.seal(&id, "keys", &keys).unwrap();
        let headers = ring.seal(&id, "headers", &headers).unwrap();
        conn.execute(
            "UPDATE endpoints SET keys = ?, headers = ? WHERE id = ?",
            rusqlite::params![keys, headers, id],
        )
        .unwrap();
    }
}

/// The same on PostgreSQL: the columns hold sealed text only, clear rows are sealed when a
/// server with a key connects, and a server without the key is refused at start-up.
#[cfg(feature = "postgres")]
mod postgres {
    use switchyard_webhooks::store::{PostgresOptions, PostgresStore};

    use super::*;
    use crate::pg;

    /// Every endpoint's keys and headers columns, as stored.
    async fn columns(url: &str) -> Vec<String> {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let mut found = Vec::new();
        for row in client
            .query("SELECT keys, headers FROM endpoints", &[])
            .await
            .unwrap()
        {
            found.push(row.get(0));
            found.push(row.get(1));
        }
        found
    }

    #[tokio::test]
    async fn clear_rows_are_sealed_and_a_missing_key_refused() {
        let database = pg::TestDatabase::create().await;
        let clear = Registry::new(PostgresStore::connect(&database.url).await.unwrap());
        let spec = EndpointSpec::new("https://hooks.example.com/in")
            .secret(SECRET.parse::<Secret>().unwrap())
            .header("Authorization", TOKEN);
        let id = clear.create_endpoint(spec).await.unwrap().id.to_string();
        assert!(
            columns(&database.url)
                .await
                .iter()
                .any(|c| c.contains(SECRET))
        );

        let key = MainKey::generate().unwrap();
        let ring = KeyRing::new(key.clone());
        let sealed = Registry::new(
            PostgresStore::connect_sealed(&database.url, PostgresOptions::default(), ring)
                .await
                .unwrap(),
        );
        let stored = columns(&database.url).await;
        assert!(
            stored.iter().all(|c| c.starts_with("sealed:v1:")),
            "{stored:?}"
        );
        assert!(
            !stored
                .iter()
                .any(|c| c.contains(SECRET) || c.contains(TOKEN))
        );
        assert_eq!(sealed.endpoint_secret(&id).await.unwrap().expose(), SECRET);
        let endpoint = sealed.endpoint(&id).await.unwrap();
        assert_eq!(
            endpoint.headers.get("Authorization").map(String::as_str),
            Some(TOKEN)
        );

        let refused = PostgresStore::connect(&database.url).await.unwrap_err();
        assert!(refused.to_string().contains(key.id()), "{refused}");
    }
}
