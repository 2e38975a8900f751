//! What the server leaves on disk is the owner's alone: the data directory 0700, every file
//! in it 0600, also when an earlier version left them readable by others.
#![allow(clippy::unwrap_used)] // Test code.
#![cfg(unix)]

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use common::Api;
use http::StatusCode;
use serde_json::json;

/// Every directory and file under `dir` (with `dir` itself), and its mode.
fn modes(dir: &Path) -> Vec<(String, bool, u32)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        found.push((
            path.display().to_string(),
            meta.is_dir(),
            meta.permissions().mode() & 0o777,
        ));
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        }
    }
    found
}

async fn use_everything(dir: &Path) {
    std::fs::write(dir.join("spec.json"), r#"{"a": 1}"#).unwrap();
    let data = dir.join("data");
    let mut config = common::config(&data);
    config.tokens.clear(); // generated into the data directory
    config.metadata = Some(switchyard_server::MetadataConfig::new(
        dir.join("spec.json"),
    ));
    let server = switchyard_server::Server::start(config).await.unwrap();
    let token = server.token().expose().to_owned();
    let api = Api::new(server.local_addr()).with_token(Some(&token));
    let app = api
        .post(
            "/api/v1/app?get_if_exists=true",
            &json!({"name": "a", "uid": "a"}),
        )
        .await;
    assert!(app.status.is_success(), "{:?}", app.body);
    api.post(
        "/api/v1/app/a/endpoint",
        &json!({"url": "https://example.com/", "uid": "e"}),
    )
    .await;
    let sent = api
        .post(
            "/api/v1/app/a/msg",
            &json!({"eventType": "a.b", "payload": {"secret": "s3cret"}}),
        )
        .await;
    assert_eq!(sent.status, StatusCode::ACCEPTED);
    let step_token =
        std::fs::read_to_string(data.join(switchyard_server::STEP_TOKEN_FILE)).unwrap();
    let output = api
        .with_token(Some(step_token.trim()))
        .send(http::Method::PUT, "/outputs/image", "\"registry/app:1\"")
        .await;
    assert!(output.status.is_success(), "{:?}", output.body);
    server.shutdown().await.unwrap();
}

fn assert_private(dir: &Path) {
    let found = modes(dir);
    assert!(found.len() > 5, "{found:?}");
    for (path, is_dir, mode) in found {
        let wanted = if is_dir { 0o700 } else { 0o600 };
        assert_eq!(mode, wanted, "{path} is {mode:o}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_and_its_files_are_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    use_everything(dir.path()).await;
    assert_private(&dir.path().join("data"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_an_earlier_version_left_readable_is_tightened() {
    let dir = tempfile::tempdir().unwrap();
    use_everything(dir.path()).await;
    let data = dir.path().join("data");
    // As versions before this one left them: 0755 directories, 0644 files.
    for (path, is_dir, _) in modes(&data) {
        let mode = if is_dir { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    use_everything(dir.path()).await;
    assert_private(&data);
}
