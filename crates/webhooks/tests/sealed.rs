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

/// A store sealed under `old`, with the known endpoint and `more` others (each with the known
/// secret), in a new directory: (the directory, the file, `old`, a `new` key, the store, its
/// registry, the known endpoint's id, the last endpoint's id).
type Fixture = (
    tempfile::TempDir,
    std::path::PathBuf,
    MainKey,
    MainKey,
    SqliteStore,
    std::sync::Arc<Registry<SqliteStore>>,
    String,
    String,
);

async fn fixture(more: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhooks.db");
    let (old, new) = (MainKey::generate().unwrap(), MainKey::generate().unwrap());
    let store = SqliteStore::open_sealed(&path, KeyRing::new(old.clone()))
        .await
        .unwrap();
    let registry = std::sync::Arc::new(Registry::new(store.clone()));
    let id = add_endpoint(&registry).await;
    let mut last = id.clone();
    for n in 0..more {
        let spec = EndpointSpec::new(format!("https://hooks.example.com/{n}"))
            .secret(SECRET.parse::<Secret>().unwrap());
        last = registry.create_endpoint(spec).await.unwrap().id.to_string();
    }
    (dir, path, old, new, store, registry, id, last)
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
    let (_dir, path, old, new, store, _, id, _) = fixture(300).await;
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

/// Values in the file sealed under `key`, counted through SQLite directly.
fn sealed_under(path: &Path, key: &MainKey) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    let prefix = format!("sealed:v1:{}:%", key.id());
    conn.query_row(
        "SELECT (SELECT count(*) FROM endpoints WHERE keys LIKE ?1 OR headers LIKE ?1)
              + (SELECT count(*) FROM idempotency WHERE CAST(body AS TEXT) LIKE ?1)",
        [prefix],
        |row| row.get(0),
    )
    .unwrap()
}

#[tokio::test]
async fn a_rotation_while_serving_loses_no_write_and_drops_the_old_key() {
    let (_dir, path, old, new, store, registry, id, _) = fixture(600).await;

    // The store keeps serving while it moves to the new key alone: endpoints are created,
    // their secrets rotated and read, between the rotation's batches.
    let serving = {
        let registry = std::sync::Arc::clone(&registry);
        let id = id.clone();
        tokio::spawn(async move {
            let mut created = Vec::new();
            for n in 0..200 {
                let spec = EndpointSpec::new(format!("https://hooks.example.com/during/{n}"))
                    .secret(SECRET.parse::<Secret>().unwrap());
                created.push(registry.create_endpoint(spec).await.unwrap().id.to_string());
                check_endpoint(&registry, &id).await;
                tokio::task::yield_now().await;
            }
            created
        })
    };
    let rewritten = store.rotate_keys(KeyRing::new(new.clone())).await.unwrap();
    let created = serving.await.unwrap();
    assert!(rewritten >= 601, "{rewritten} rewritten");
    for during in &created {
        assert_eq!(
            registry.endpoint_secret(during).await.unwrap().expose(),
            SECRET
        );
    }
    check_endpoint(&registry, &id).await;
    store.close().await;
    assert_eq!(
        sealed_under(&path, &old),
        0,
        "nothing left under the old key"
    );

    // Reopened with the new key alone: nothing needs the old one.
    let store = SqliteStore::open_sealed(&path, KeyRing::new(new))
        .await
        .unwrap();
    let registry = Registry::new(store.clone());
    check_endpoint(&registry, &id).await;
    for during in &created {
        assert_eq!(
            registry.endpoint_secret(during).await.unwrap().expose(),
            SECRET
        );
    }
    store.close().await;
}

#[tokio::test]
async fn a_rotation_stopped_half_way_while_serving_keeps_everything_readable() {
    let (_dir, path, old, new, store, registry, id, last) = fixture(400).await;
    let stray = MainKey::generate().unwrap();
    // The last endpoint was sealed under a key this store is not given (another server's):
    // the rotation seals its first batches, then stops there with an error naming the key.
    reseal_one(
        &path,
        &last,
        &KeyRing::new(stray.clone()),
        &KeyRing::new(old.clone()),
    );
    let error = store
        .rotate_keys(KeyRing::new(new.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::Sealed(SealError::UnknownKey { key_id, .. }) if key_id == stray.id()),
        "{error}"
    );
    assert!(
        sealed_under(&path, &new) >= 256,
        "the first batch was sealed again"
    );
    assert!(sealed_under(&path, &old) > 0, "and the rest was not");
    // Half way, the store still reads both halves and writes under the new key.
    check_endpoint(&registry, &id).await;
    let fresh = registry
        .create_endpoint(EndpointSpec::new("https://hooks.example.com/after"))
        .await
        .unwrap();
    registry.endpoint_secret(fresh.id.as_str()).await.unwrap();

    // Given the stray key too, the rotation finishes and the old key goes.
    store
        .rotate_keys(KeyRing::with_old(new.clone(), vec![stray.clone()]).unwrap())
        .await
        .unwrap();
    assert_eq!(
        registry.endpoint_secret(&last).await.unwrap().expose(),
        SECRET
    );
    store.rotate_keys(KeyRing::new(new.clone())).await.unwrap();
    store.close().await;
    assert_eq!(sealed_under(&path, &old), 0);
    assert_eq!(sealed_under(&path, &stray), 0);
    let store = SqliteStore::open_sealed(&path, KeyRing::new(new))
        .await
        .unwrap();
    check_endpoint(&Registry::new(store.clone()), &id).await;
    store.close().await;
}

/// Seals endpoint `id`'s keys and headers again under `to`'s key, through SQLite directly.
fn reseal_one(path: &Path, id: &str, to: &KeyRing, from: &KeyRing) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let (keys, headers): (String, String) = conn
        .query_row(
            "SELECT keys, headers FROM endpoints WHERE id = ?",
            [id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    let keys = to
        .seal(id, "keys", &from.open(id, "keys", &keys).unwrap())
        .unwrap();
    let headers = to
        .seal(id, "headers", &from.open(id, "headers", &headers).unwrap())
        .unwrap();
    conn.execute(
        "UPDATE endpoints SET keys = ?, headers = ? WHERE id = ?",
        rusqlite::params![keys, headers, id],
    )
    .unwrap();
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

    /// The procedure for servers sharing a database (`crates/server/README.md`): the new key
    /// is given to every server as an old key, then made current on each, then the old one
    /// is dropped; the servers write all along and each reads what the other wrote.
    #[tokio::test]
    async fn servers_on_one_database_rotate_without_stopping() {
        let database = pg::TestDatabase::create().await;
        let (old, new) = (MainKey::generate().unwrap(), MainKey::generate().unwrap());
        let connect = async |ring: KeyRing| {
            PostgresStore::connect_sealed(&database.url, PostgresOptions::default(), ring)
                .await
                .unwrap()
        };
        let (a, b) = (
            connect(KeyRing::new(old.clone())).await,
            connect(KeyRing::new(old.clone())).await,
        );
        let (ra, rb) = (Registry::new(a.clone()), Registry::new(b.clone()));
        let create = async |registry: &Registry<PostgresStore>, n: usize| {
            let spec = EndpointSpec::new(format!("https://hooks.example.com/{n}"))
                .secret(SECRET.parse::<Secret>().unwrap())
                .header("Authorization", TOKEN);
            registry.create_endpoint(spec).await.unwrap().id.to_string()
        };
        let mut ids = Vec::new();
        for n in 0..300 {
            ids.push(create(&ra, n).await);
        }
        // 1. Every server opens what the new key will seal.
        let learning = KeyRing::with_old(old.clone(), vec![new.clone()]).unwrap();
        a.rotate_keys(learning.clone()).await.unwrap();
        ids.push(create(&rb, 300).await);
        b.rotate_keys(learning).await.unwrap();
        // 2. The new key becomes current, one server after the other, both writing.
        let rotating = KeyRing::with_old(new.clone(), vec![old.clone()]).unwrap();
        assert!(a.rotate_keys(rotating.clone()).await.unwrap() >= 600);
        ids.push(create(&ra, 301).await);
        ids.push(create(&rb, 302).await);
        b.rotate_keys(rotating).await.unwrap();
        ids.push(create(&rb, 303).await);
        // 3. The old key goes.
        a.rotate_keys(KeyRing::new(new.clone())).await.unwrap();
        b.rotate_keys(KeyRing::new(new.clone())).await.unwrap();
        let prefix = format!("sealed:v1:{}:", new.id());
        let stored = columns(&database.url).await;
        assert_eq!(stored.len(), 2 * ids.len());
        assert!(stored.iter().all(|c| c.starts_with(&prefix)), "{stored:?}");
        for id in &ids {
            for registry in [&ra, &rb] {
                assert_eq!(registry.endpoint_secret(id).await.unwrap().expose(), SECRET);
            }
        }
        // A server given only the old key is refused, naming the key it lacks.
        let refused = PostgresStore::connect_sealed(
            &database.url,
            PostgresOptions::default(),
            KeyRing::new(old),
        )
        .await
        .unwrap_err();
        assert!(refused.to_string().contains(new.id()), "{refused}");
    }
}
