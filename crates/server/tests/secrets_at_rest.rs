//! Secrets at rest through the whole server: an endpoint's signing secret, its custom
//! `Authorization` header, a rotated secret and a portal token kept for idempotent replay
//! appear nowhere in the data directory's bytes; the main key is generated owner-only on
//! the first start and read on the next; a wrong main key stops the server at start-up
//! with a message naming the key it needs.
#![allow(clippy::unwrap_used)] // Test code.

mod common;

use std::path::Path;

use common::Api;
use http::Method;
use serde_json::json;
use switchyard_server::{KEY_FILE, Server};

const SECRET: &str = "whsec_c2VhbGVkIGF0IHJlc3QsIG5ldmVyIGluIGNsZWFy";
const ROTATED: &str = "whsec_cm90YXRlZCBhbmQgc2VhbGVkIGFsbCB0aGUgc2FtZQ==";
const HEADER: &str = "Bearer receiver-token-5e1d7c2a9b";

/// Every file under `dir`, read whole.
fn all_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        } else {
            found.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    found
}

fn holds(bytes: &[u8], needle: &str) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// POSTs `body` to `path` with an idempotency key (so the answer is kept for replay) and
/// checks it succeeded.
async fn once(api: &Api, path: &str, key: &str, body: serde_json::Value) -> common::Reply {
    let reply = api
        .send_with(
            Method::POST,
            path,
            &[("idempotency-key", key)],
            body.to_string(),
        )
        .await;
    assert!(reply.status.is_success(), "{path}: {:?}", reply.body);
    reply
}

#[tokio::test]
async fn no_secret_in_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(common::config(&data)).await.unwrap();
    let api = Api::new(server.local_addr()).with_token(Some(common::TOKEN));
    assert!(
        api.post("/api/v1/app", &json!({"name": "shop", "uid": "shop"}))
            .await
            .status
            .is_success()
    );
    let created = api
        .post(
            "/api/v1/app/shop/endpoint",
            &json!({
                "url": "https://hooks.example.com/in",
                "uid": "in",
                "secret": SECRET,
                "headers": {"Authorization": HEADER},
            }),
        )
        .await;
    assert!(created.status.is_success(), "{:?}", created.body);
    // Retried with a key, the answers are kept for replay: they must be sealed as well.
    once(
        &api,
        "/api/v1/app/shop/endpoint/in/secret/rotate",
        "rotate-1",
        json!({"key": ROTATED}),
    )
    .await;
    let portal = once(
        &api,
        "/api/v1/auth/app-portal-access/shop",
        "portal-1",
        json!({}),
    )
    .await;
    let token = portal.json()["token"].as_str().unwrap().to_owned();
    server.shutdown().await.unwrap();

    let files = all_bytes(&data);
    assert!(files.iter().any(|(name, _)| name.ends_with(KEY_FILE)));
    for (name, bytes) in &files {
        for needle in [SECRET, ROTATED, HEADER, token.as_str()] {
            assert!(!holds(bytes, needle), "{name} holds {needle}");
        }
    }

    // The next start reads the key file: everything still opens.
    let server = Server::start(common::config(&data)).await.unwrap();
    let api = Api::new(server.local_addr()).with_token(Some(common::TOKEN));
    let secret = api.get("/api/v1/app/shop/endpoint/in/secret").await;
    assert_eq!(secret.json()["key"], ROTATED);
    let headers = api.get("/api/v1/app/shop/endpoint/in/headers").await;
    assert_eq!(headers.json()["headers"]["Authorization"], HEADER);
    let replayed = api
        .send_with(
            Method::POST,
            "/api/v1/auth/app-portal-access/shop",
            &[("idempotency-key", "portal-1")],
            "{}",
        )
        .await;
    assert_eq!(
        replayed.json()["token"],
        token.as_str(),
        "replayed from its sealed copy"
    );
    server.shutdown().await.unwrap();

    // Another key: the server does not start, and says which key it needs.
    let key_file = data.join(KEY_FILE);
    let needed: String = std::fs::read_to_string(&key_file).unwrap();
    let needed: switchyard_webhooks::seal::MainKey = needed.parse().unwrap();
    let other = switchyard_webhooks::seal::MainKey::generate().unwrap();
    std::fs::write(&key_file, other.expose().as_bytes()).unwrap();
    let error = Server::start(common::config(&data)).await.unwrap_err();
    let said = error.to_string();
    assert!(said.contains(needed.id()), "{said}");
    assert!(
        !said.contains(ROTATED) && !said.contains(&*needed.expose()),
        "{said}"
    );
}
