//! Interop with the real `swh-webhooks` 0.3.2 (and its pinned `svix` 1.62 client): a Python
//! script drives every method of its `Webhooks` class against this server, receives the
//! deliveries on a loopback receiver and verifies them with the `svix` library.
//!
//! Needs `SWITCHYARD_INTEROP_PYTHON` (the venv `cargo xtask ci` builds under `target/`);
//! without it the test prints a notice and checks nothing.
#![allow(clippy::unwrap_used, clippy::print_stdout)] // Test code.

use std::process::Command;

mod common;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/swh_webhooks.py");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swh_webhooks_works_unchanged_against_the_server() {
    let Ok(python) = std::env::var("SWITCHYARD_INTEROP_PYTHON") else {
        println!(
            "NOTICE: SWITCHYARD_INTEROP_PYTHON is not set; skipping the swh-webhooks interop test (cargo xtask ci sets it)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let url = format!("http://{}", server.local_addr());

    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(SCRIPT)
            .arg(url)
            .arg(common::TOKEN)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the swh-webhooks driver failed:\n{stderr}\n{stdout}"
    );
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    println!("swh-webhooks against switchyard: {summary}");
    assert_eq!(summary["deliveries"], 5);
    assert_eq!(summary["sent_events_for_type"], 5);
    server.shutdown().await.unwrap();
}
