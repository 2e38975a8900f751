//! Interop with real Python clients against the server:
//! - `swh-webhooks` 0.3.2 (with its pinned `svix` 1.62 client) drives every method of its
//!   `Webhooks` class, receives the deliveries on a loopback receiver and verifies them with
//!   the `svix` library;
//! - swh-webhooks' own test suite (the modules it ships) passes against the server, with a
//!   conftest of ours standing in for its Docker-started Svix server;
//! - the official `svix` client in three versions (1.62, the latest 1.x, the latest 2.x)
//!   creates applications, endpoints with event-type filters and rate limits, messages with
//!   event ids, rotates secrets and lists attempts, each under the field names it speaks;
//!   and the latest 1.x and 2.x call every method of every resource the open source Svix
//!   server answers;
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
    run_with(python, name, args, Vec::new()).await
}

/// [`run`] with environment variables.
async fn run_with(
    python: String,
    name: &str,
    args: Vec<String>,
    envs: Vec<(&'static str, std::ffi::OsString)>,
) -> serde_json::Value {
    let path = script(name);
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(path)
            .args(args)
            .envs(envs)
            .output()
            .unwrap()
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

/// The `svix` client versions `cargo xtask ci` installs: the venv's own (1.62, what
/// swh-webhooks pins) and each directory under `<venv>/svix-clients/`, which goes first on
/// `PYTHONPATH`. Each is `(version, PYTHONPATH)`.
fn svix_clients(python: &str) -> Vec<(String, Option<std::path::PathBuf>)> {
    let venv = std::path::Path::new(python)
        .parent()
        .and_then(std::path::Path::parent)
        .unwrap();
    let mut clients = vec![("1.62.0".to_owned(), None)];
    let mut extra: Vec<_> = std::fs::read_dir(venv.join("svix-clients"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    extra.sort();
    for dir in extra {
        let version = dir.file_name().unwrap().to_string_lossy().into_owned();
        clients.push((version, Some(dir)));
    }
    clients
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn svix_clients_of_every_version_work_against_the_server() {
    let Some(python) = python() else { return };
    let clients = svix_clients(&python);
    let majors: std::collections::BTreeSet<&str> = clients
        .iter()
        .filter_map(|(version, _)| version.split('.').next())
        .collect();
    assert!(
        clients.len() >= 3 && majors.contains("1") && majors.contains("2"),
        "1.62, the latest 1.x and the latest 2.x are installed: {clients:?}"
    );
    for (version, pythonpath) in clients {
        let dir = tempfile::tempdir().unwrap();
        let server = common::start(dir.path()).await;
        let url = format!("http://{}", server.local_addr());
        let envs: Vec<(&str, std::ffi::OsString)> = pythonpath
            .map(|dir| ("PYTHONPATH", dir.into_os_string()))
            .into_iter()
            .collect();
        let summary = run_with(
            python.clone(),
            "svix_client.py",
            vec![url, common::TOKEN.to_owned()],
            envs,
        )
        .await;
        assert_eq!(summary["svix"], version.as_str(), "{summary}");
        // Three endpoints, two filtered: 5 deliveries, none misrouted (the script checks).
        assert_eq!(summary["deliveries"], 5, "{version}: {summary}");
        assert_eq!(summary["attempts"], 2, "{version}: {summary}");
        let current_names = version.starts_with('2');
        assert_eq!(summary["rotate_returns_secret"], current_names, "{summary}");
        server.shutdown().await.unwrap();
    }
}

/// Every method of the newer clients' resources that Svix's open source server answers
/// (`svix_resources.py`: applications, event types, endpoints, messages, attempts,
/// authentication, health), with the latest 1.x and the latest 2.x: each call works. The
/// methods for the commercial service only are tried and reported, not expected to work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_resource_of_the_newer_svix_clients_works() {
    let Some(python) = python() else { return };
    let newer: Vec<_> = svix_clients(&python)
        .into_iter()
        .filter_map(|(version, path)| Some((version, path?)))
        .collect();
    assert!(newer.len() >= 2, "the latest 1.x and 2.x: {newer:?}");
    for (version, pythonpath) in newer {
        let dir = tempfile::tempdir().unwrap();
        let server = common::start(dir.path()).await;
        let url = format!("http://{}", server.local_addr());
        let summary = run_with(
            python.clone(),
            "svix_resources.py",
            vec![url, common::TOKEN.to_owned()],
            vec![("PYTHONPATH", pythonpath.into_os_string())],
        )
        .await;
        assert_eq!(summary["client"], version.as_str(), "{summary}");
        assert_eq!(
            summary["failed"],
            serde_json::json!({}),
            "{version}: {summary}"
        );
        assert_eq!(summary["worked"], summary["tried"], "{summary}");
        assert!(summary["tried"].as_u64().unwrap() >= 43, "{summary}");
        println!(
            "svix {version}: {} of {} calls work ({} methods of the commercial service tried)",
            summary["worked"], summary["tried"], summary["outside_oss_tried"]
        );
        server.shutdown().await.unwrap();
    }
}

/// swh-webhooks' own tests, unchanged, with `swh_conftest.py` as their conftest: a fresh
/// `switchyard serve` per test where theirs starts Svix in Docker and wipes it after each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swh_webhooks_own_test_suite_passes_against_the_server() {
    let Some(python) = python() else { return };
    let located = Command::new(&python)
        .args([
            "-c",
            "import os, swh.webhooks.tests as t; print(os.path.dirname(t.__file__))",
        ])
        .output()
        .unwrap();
    assert!(located.status.success(), "{located:?}");
    let installed = std::path::PathBuf::from(String::from_utf8(located.stdout).unwrap().trim());
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("swh_webhooks_tests");
    std::fs::create_dir_all(suite.join("data")).unwrap();
    let mut modules = Vec::new();
    for entry in std::fs::read_dir(&installed).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // The journal client's tests need swh.journal and Kafka, which are not installed.
        if name.starts_with("test_") && name.ends_with(".py") && name != "test_journal_client.py" {
            std::fs::copy(&path, suite.join(&name)).unwrap();
            modules.push(name);
        }
    }
    for entry in std::fs::read_dir(installed.join("data")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, suite.join("data").join(path.file_name().unwrap())).unwrap();
    }
    std::fs::copy(script("swh_conftest.py"), suite.join("conftest.py")).unwrap();
    modules.sort();
    assert!(
        modules.contains(&"test_webhooks.py".to_owned())
            && modules.contains(&"test_cli.py".to_owned()),
        "{modules:?}"
    );
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .args(["-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfEs"])
            .arg(&suite)
            .env("SWITCHYARD_BIN", env!("CARGO_BIN_EXE_switchyard"))
            .current_dir(&suite)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = stdout.lines().last().unwrap_or_default().to_owned();
    println!("swh-webhooks' own tests ({modules:?}): {summary}");
    assert!(
        output.status.success(),
        "swh-webhooks' own tests failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !summary.contains("skipped") && !summary.contains("deselected"),
        "{summary}"
    );
    let passed: u32 = summary
        .split(" passed")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // swh-webhooks 0.3.2 ships 82 tests in these modules.
    assert!(passed >= 82, "{summary}");
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
        "greeting: hello\n\
         azure:\n  secret: {$type: Secret, name: az}\n\
         db:\n\
         \x20 password: {$type: Secret, name: db-password}\n\
         \x20 key: {$type: Secret, name: deploy-key}\n\
         \x20 connection: {$type: Connection, type: aws, name: prod}\n\
         environment: {$type: Parameter, name: environment}\n\
         replicas: {$type: Parameter, name: replicas}\n",
    )
    .unwrap();
    // A secret from the environment, a binary one from a file (with the trailing newline an
    // editor adds), a connection from a JSON file, parameters inline.
    std::fs::write(dir.path().join("deploy.key"), b"\x00\xffkey\n").unwrap();
    std::fs::write(
        dir.path().join("aws-prod.json"),
        r#"{"accessKeyID": "AKIAEXAMPLE", "secretAccessKey": "wJalr/EXAMPLEKEY"}"#,
    )
    .unwrap();
    let config = dir.path().join("switchyard.toml");
    std::fs::write(
        &config,
        format!(
            "bind = \"127.0.0.1:0\"\n\
             data_dir = \"data\"\n\
             tokens = [\"{token}\"]\n\
             [metadata]\n\
             spec = \"spec.yaml\"\n\
             step = \"build\"\n\
             [metadata.secrets]\n\
             db-password = {{ env = \"RELAY_TEST_DB_PASSWORD\" }}\n\
             deploy-key = {{ file = \"deploy.key\" }}\n\
             [metadata.connections.aws.prod]\n\
             file = \"aws-prod.json\"\n\
             [metadata.parameters]\n\
             environment = \"staging\"\n\
             replicas = 3\n",
            token = common::TOKEN
        ),
    )
    .unwrap();
    let server = common::Serve::start(
        env!("CARGO_BIN_EXE_switchyard"),
        &config,
        &[("RELAY_TEST_DB_PASSWORD", "hunter2-from-env")],
    );
    let api = common::Api::new(server.addr);
    let events = api
        .post(
            "/runtime/v1/subscriptions",
            &serde_json::json!({"source": "metadata", "filter": "event_type == 'step.event'"}),
        )
        .await
        .json()["id"]
        .clone();
    // No step token configured: the server generated one for the step, which opens the
    // metadata API only.
    let step_token = std::fs::read_to_string(
        dir.path()
            .join("data")
            .join(switchyard_server::STEP_TOKEN_FILE),
    )
    .unwrap()
    .trim()
    .to_owned();
    assert_eq!(
        api.with_token(Some(&step_token))
            .get("/api/v1/app")
            .await
            .status,
        http::StatusCode::UNAUTHORIZED
    );
    let url = format!("http://token:{step_token}@{}", server.addr);
    let summary = run(python, "relay_server.py", vec![url]).await;
    assert_eq!(summary["runs"], serde_json::json!([1, 2]));
    assert_eq!(
        summary["read"],
        serde_json::json!(["secret", "binary secret", "connection", "parameter"])
    );
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
    let output = api
        .with_token(Some(&step_token))
        .get("/outputs/build/image")
        .await;
    assert_eq!(
        output.json()["value"],
        "registry/app:1.2",
        "{:?}",
        output.body
    );
    let log = server.log();
    for secret in [
        "hunter2-from-env",
        "AKIAEXAMPLE",
        "wJalr/EXAMPLEKEY",
        step_token.as_str(),
    ] {
        assert!(!log.contains(secret), "a secret was logged: {log}");
    }
}
