//! Interop with real Python clients against the server:
//! - `swh-webhooks` 0.3.2 (with its pinned `svix` 1.62 client) drives every method of its
//!   `Webhooks` class, receives the deliveries on a loopback receiver and verifies them with
//!   the `svix` library;
//! - the `cloudevents` SDK posts events in every mode and version to the runtime-events
//!   ingestion route, and a CEL-filtered subscription receives them;
//! - `relay-sdk` reads the spec, sets outputs, emits events and starts workflow runs through
//!   the metadata API, and the events reach a runtime-events subscriber.
//!
//! Needs `SWITCHYARD_INTEROP_PYTHON` (the venv `cargo xtask ci` builds under `target/`);
//! without it the test prints a notice and checks nothing.
#![allow(clippy::unwrap_used, clippy::print_stdout)] // Test code.

use std::process::Command;

mod common;

fn script(name: &str) -> String {
    format!("{}/tests/interop/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn python() -> Option<String> {
    let found = std::env::var("SWITCHYARD_INTEROP_PYTHON").ok();
    if found.is_none() {
        println!(
            "NOTICE: SWITCHYARD_INTEROP_PYTHON is not set; skipping the server's Python interop tests (cargo xtask ci sets it)"
        );
    }
    found
}

/// Runs a driver script with `args`; returns its JSON summary line.
async fn run(python: String, name: &str, args: Vec<String>) -> serde_json::Value {
    let path = script(name);
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python).arg(path).args(args).output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{name} failed:\n{stderr}\n{stdout}"
    );
    let summary = serde_json::from_str(stdout.trim()).unwrap();
    println!("{name}: {summary}");
    summary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swh_webhooks_works_unchanged_against_the_server() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let url = format!("http://{}", server.local_addr());

    let summary = run(
        python,
        "swh_webhooks.py",
        vec![url, common::TOKEN.to_owned()],
    )
    .await;
    assert_eq!(summary["deliveries"], 5);
    assert_eq!(summary["sent_events_for_type"], 5);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_cloudevents_in_every_mode_reach_a_subscription() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let url = format!("http://{}", server.local_addr());
    let summary = run(
        python,
        "cloudevents_ingest.py",
        vec![url, common::TOKEN.to_owned()],
    )
    .await;
    assert_eq!(summary["sent"], 6);
    assert_eq!(summary["received"], 6);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_sdk_works_against_the_server_metadata_api() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.yaml");
    std::fs::write(
        &spec,
        "greeting: hello\nazure:\n  secret:\n    $type: Secret\n    name: az\n",
    )
    .unwrap();
    let mut config = common::config(dir.path());
    config.metadata = Some(switchyard_server::MetadataConfig {
        spec,
        step: "build".to_owned(),
        tokens: Vec::new(),
        outputs: None,
    });
    let server = switchyard_server::Server::start(config).await.unwrap();
    let api = common::Api::new(server.local_addr());
    let events = api
        .post(
            "/runtime/v1/subscriptions",
            &serde_json::json!({"source": "metadata", "filter": "event_type == 'step.event'"}),
        )
        .await
        .json()["id"]
        .clone();
    let url = format!("http://token:{}@{}", common::TOKEN, server.local_addr());
    let summary = run(python, "relay_server.py", vec![url]).await;
    assert_eq!(summary["runs"], serde_json::json!([1, 2]));
    let event = api
        .post(
            "/runtime/v1/next",
            &serde_json::json!({"ids": [events], "timeout_ms": 5000}),
        )
        .await
        .json();
    assert_eq!(
        event["data"],
        serde_json::json!({"step": "build", "data": {"tag": "v1"}, "key": "push-1"})
    );
    let output = api.get("/outputs/build/image").await;
    assert_eq!(
        output.json()["value"],
        "registry/app:1.2",
        "{:?}",
        output.body
    );
    server.shutdown().await.unwrap();
}
