//! At-least-once delivery across a crash: the engine runs in a child process on a SQLite
//! file, is killed with SIGKILL in the middle of 2,000 messages to 3 endpoints each, and is
//! restarted on the same file. Every (message, endpoint) pair must reach the receiver and
//! have a recorded success.
//!
//! The child is this same test binary, re-run with `--ignored crash_child` and
//! `SWITCHYARD_CRASH_CHILD` set to the database path; `crash_child` is not a test of its own,
//! hence ignored in normal runs.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use switchyard_webhooks::delivery::{AddressPolicy, DeliveryConfig, DeliveryEngine};
use switchyard_webhooks::store::{AttemptFilter, SqliteStore};
use switchyard_webhooks::{AttemptStatus, EndpointSpec, EventTypeName, ListOptions, Registry};

const CHILD_ENV: &str = "SWITCHYARD_CRASH_CHILD";
const MESSAGES: usize = 2_000;
/// Endpoints every message goes to (paths of the one receiver).
const ENDPOINTS: usize = 3;
/// Requests the receiver saw, per (path, `webhook-id`).
type Counts = Arc<Mutex<HashMap<(String, String), usize>>>;

/// In the child: deliver from the given file until killed.
#[test]
#[ignore = "the child process of every_message_is_delivered_across_a_sigkill, not a test"]
fn crash_child() {
    let path = std::env::var(CHILD_ENV)
        .expect("started by every_message_is_delivered_across_a_sigkill with the database path");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let registry = Arc::new(Registry::new(SqliteStore::open(&path).await.unwrap()));
        let config = DeliveryConfig {
            addresses: AddressPolicy::default().allow("127.0.0.0/8".parse().unwrap()),
            request_timeout: Duration::from_secs(1),
            lease_for: Duration::from_secs(6),
            poll_interval: Duration::from_millis(50),
            ..DeliveryConfig::default()
        };
        let engine = DeliveryEngine::new(registry, config).unwrap();
        engine.run(std::future::pending()).await.unwrap();
    });
}

/// The engine's child process, killed when dropped so that a failing test leaves none
/// behind.
struct ChildEngine(Child);

impl ChildEngine {
    fn spawn(path: &std::path::Path) -> Self {
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["crash_child", "--exact", "--ignored", "--test-threads=1"])
            .env(CHILD_ENV, path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Self(child)
    }

    /// SIGKILL on Unix: no cleanup, no flush.
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ChildEngine {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A receiver counting deliveries per path and `webhook-id`, answering after 10 ms so that
/// the 6,000 deliveries take seconds and the child is killed with requests in flight.
async fn counting_receiver() -> (String, Counts) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let counts: Counts = Arc::default();
    let shared = counts.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counts = shared.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let counts = counts.clone();
                    async move {
                        let id = request.headers()["webhook-id"].to_str().unwrap().to_owned();
                        let path = request.uri().path().to_owned();
                        let _ = request.into_body().collect().await;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        *counts.lock().unwrap().entry((path, id)).or_default() += 1;
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, counts)
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_is_delivered_across_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhooks.db");
    let (url, counts) = counting_receiver().await;
    let registry = Registry::new(SqliteStore::open(&path).await.unwrap());
    let visit = EventTypeName::new("origin.visit").unwrap();
    registry
        .create_event_type(visit.clone(), "visits", json!({"type": "object"}))
        .await
        .unwrap();
    let mut endpoints = Vec::with_capacity(ENDPOINTS);
    for n in 0..ENDPOINTS {
        let spec = EndpointSpec::new(format!("{url}/hook/{n}")).event_type(visit.clone());
        endpoints.push(registry.create_endpoint(spec).await.unwrap());
    }
    let pairs = MESSAGES * ENDPOINTS;

    // Everything is stored before the engine starts, so the kill lands mid-delivery however
    // fast or slow the machine is at storing.
    let mut sent = Vec::with_capacity(MESSAGES);
    for i in 0..MESSAGES {
        let body = format!(r#"{{"n": {i}}}"#);
        sent.push(registry.send(&visit, body, None).await.unwrap().unwrap().0);
    }
    let mut child = ChildEngine::spawn(&path);
    let received = |counts: &Counts| counts.lock().unwrap().len();
    wait_for("the first deliveries", Duration::from_secs(60), || {
        received(&counts) >= pairs / 4
    })
    .await;
    child.kill();
    let at_kill = received(&counts);
    assert!(
        at_kill < pairs,
        "killed too late to prove anything ({at_kill} delivered)"
    );

    let mut restarted = ChildEngine::spawn(&path);
    let finished = {
        let counts = counts.clone();
        wait_for(
            "every message after the restart",
            Duration::from_secs(120),
            move || received(&counts) == pairs,
        )
    };
    finished.await;
    // Let the last attempts be recorded, then stop the child.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut succeeded = std::collections::HashSet::new();
    while succeeded.len() < pairs {
        assert!(
            Instant::now() < deadline,
            "only {} successes recorded",
            succeeded.len()
        );
        succeeded.clear();
        for endpoint in &endpoints {
            let mut options = ListOptions {
                limit: Some(250),
                ..ListOptions::default()
            };
            let filter = AttemptFilter {
                endpoint: Some(endpoint.id.clone()),
                status: Some(AttemptStatus::Success),
                ..AttemptFilter::default()
            };
            loop {
                let page = registry.list_attempts(&filter, &options).await.unwrap();
                succeeded.extend(
                    page.items
                        .into_iter()
                        .map(|a| (a.message_id, a.endpoint_id)),
                );
                if page.done {
                    break;
                }
                options.iterator = page.iterator;
            }
        }
        if succeeded.len() < pairs {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    restarted.kill();

    let counts = counts.lock().unwrap().clone();
    for id in &sent {
        let deliveries = registry.deliveries(id).await.unwrap();
        assert_eq!(deliveries.len(), ENDPOINTS, "{id}");
        for delivery in &deliveries {
            assert_eq!(
                delivery.status,
                switchyard_webhooks::DeliveryStatus::Succeeded,
                "{id} to {}",
                delivery.endpoint_id
            );
            assert!(
                succeeded.contains(&(id.clone(), delivery.endpoint_id.clone())),
                "{id} to {} has no recorded success",
                delivery.endpoint_id
            );
        }
        for n in 0..ENDPOINTS {
            let key = (format!("/hook/{n}"), id.to_string());
            assert!(counts.contains_key(&key), "{key:?} never arrived");
        }
    }
    let total: usize = counts.values().sum();
    eprintln!(
        "crash test: {MESSAGES} messages to {ENDPOINTS} endpoints, killed after {at_kill} of \
         {pairs} deliveries had arrived; the receiver saw {total} requests, {} duplicates",
        total - pairs
    );
}
