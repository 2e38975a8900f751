//! Several servers on one PostgreSQL database (`Config::database`): each serves the whole API
//! over the same applications, and the deliveries are shared, each made once. Every test
//! makes its own database and drops it (see `webhooks/tests/support/postgres.rs`: a server
//! that cannot be reached fails the test, saying how to start it).
#![allow(clippy::unwrap_used)]

mod common;

#[path = "../../webhooks/tests/support/postgres.rs"]
mod pg;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};
use switchyard_server::{DatabaseConfig, RunningServer, Server, ValueSource};

use common::Api;

/// Deliveries seen by a loopback receiver: `webhook-id` (and the path, after a space, for
/// every path but `/hook`) → how many times.
type Seen = Arc<Mutex<HashMap<String, usize>>>;

async fn receiver() -> (String, Seen) {
    let (base, seen) = receiver_base().await;
    (format!("{base}/hook"), seen)
}

/// A receiver's `http://addr` (any path is taken) and what it saw.
async fn receiver_base() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let record = Arc::clone(&seen);
    let url = common::receiver(Duration::ZERO, move |path, headers, _| {
        let mut id = headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if path != "/hook" {
            id = format!("{id} {path}");
        }
        *record.lock().unwrap().entry(id).or_default() += 1;
    })
    .await;
    (url, seen)
}

/// The main key every server of a test cluster is given: servers sharing a database must
/// share it.
const CLUSTER_KEY: &str = "symk_Y2x1c3Rlci10ZXN0LW1haW4ta2V5LTAxMjM0NTY3ODk=";

/// Writes the cluster's main key into `dir`; its path.
fn cluster_key(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("cluster.key");
    std::fs::write(&path, CLUSTER_KEY).unwrap();
    path
}

/// A server on its own data directory and the shared database.
async fn node(dir: &std::path::Path, url: &str) -> RunningServer {
    let mut config = common::config(dir);
    config.database = Some(DatabaseConfig::new(url));
    config.webhooks.main_key = Some(ValueSource::File(cluster_key(dir)));
    Server::start(config).await.unwrap()
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited too long for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two servers, one database: an application, event type and endpoint made through one are
/// read through the other; messages sent through both are each delivered once, and every
/// attempt lists through either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_database_serve_the_same_applications() {
    let database = pg::TestDatabase::create().await;
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = node(a_dir.path(), &database.url).await;
    let b = node(b_dir.path(), &database.url).await;
    let (api_a, api_b) = (Api::new(a.local_addr()), Api::new(b.local_addr()));
    let (url, seen) = receiver().await;

    let created = api_a
        .post("/api/v1/app", &json!({"name": "Visits", "uid": "visits"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let app_id = created.json()["id"].as_str().unwrap().to_owned();
    let read = api_b.get("/api/v1/app/visits").await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.json()["id"], app_id.as_str());
    // The uid is taken for the cluster, not per server.
    let again = api_b
        .post("/api/v1/app", &json!({"name": "Other", "uid": "visits"}))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{:?}", again.body);

    let event_type = api_b
        .post(
            "/api/v1/event-type",
            &json!({"name": "origin.visit", "description": ""}),
        )
        .await;
    assert_eq!(event_type.status, StatusCode::CREATED);
    assert_eq!(
        api_a.get("/api/v1/event-type/origin.visit").await.status,
        StatusCode::OK
    );
    let endpoint = api_a
        .post(
            "/api/v1/app/visits/endpoint",
            &json!({"url": url, "eventTypes": ["origin.visit"]}),
        )
        .await;
    assert_eq!(endpoint.status, StatusCode::CREATED, "{:?}", endpoint.body);
    let endpoint_id = endpoint.json()["id"].as_str().unwrap().to_owned();

    let mut sent = Vec::new();
    for i in 0..40 {
        let api = if i % 2 == 0 { &api_a } else { &api_b };
        let message = api
            .post(
                "/api/v1/app/visits/msg",
                &json!({"eventType": "origin.visit", "payload": {"n": i}}),
            )
            .await;
        assert_eq!(message.status, StatusCode::ACCEPTED, "{:?}", message.body);
        sent.push(message.json()["id"].as_str().unwrap().to_owned());
    }
    wait_for("40 deliveries", || seen.lock().unwrap().len() >= 40).await;
    // A moment for a duplicate to show, if one were coming.
    tokio::time::sleep(Duration::from_millis(300)).await;
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 40);
        for id in &sent {
            assert_eq!(seen.get(id), Some(&1), "message {id} delivered once");
        }
    }
    // Each message's attempt, read through either server.
    for (api, id) in [(&api_a, &sent[1]), (&api_b, &sent[0])] {
        let attempts = api
            .get(&format!("/api/v1/app/visits/attempt/msg/{id}"))
            .await;
        assert_eq!(attempts.status, StatusCode::OK);
        let data = attempts.json()["data"].clone();
        assert_eq!(data.as_array().map(Vec::len), Some(1), "{data}");
        assert_eq!(data[0]["endpointId"], endpoint_id.as_str());
        assert_eq!(data[0]["responseStatusCode"], 200);
    }
    let listed: Value = api_b.get("/api/v1/app/visits/msg?limit=100").await.json();
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(40));
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// `GET /health/ready` answers 200 while the database answers and 503 once it is gone;
/// `GET /health` stays 200 (the process is alive) either way.
#[tokio::test]
async fn readiness_follows_the_database() {
    let database = pg::TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let server = node(dir.path(), &database.url).await;
    let api = Api::new(server.local_addr()).with_token(None);
    let ready = api.get("/health/ready").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.json()["store"], "postgres");

    let (client, connection) = tokio_postgres::connect(&database.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    // Every connection of the server's pool is ended, and new ones are refused.
    client
        .batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid();
             UPDATE pg_database SET datallowconn = false WHERE datname = current_database();",
        )
        .await
        .unwrap();
    let unready = api.get("/health/ready").await;
    assert_eq!(unready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(unready.json()["status"], "unavailable");
    assert_eq!(api.get("/health").await.status, StatusCode::OK);
    client
        .batch_execute(
            "UPDATE pg_database SET datallowconn = true WHERE datname = current_database()",
        )
        .await
        .unwrap();
    let back = api.get("/health/ready").await;
    assert_eq!(back.status, StatusCode::OK);
    server.shutdown().await.unwrap();
}

/// Without a database, the readiness check reads the SQLite store.
#[tokio::test]
async fn readiness_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr()).with_token(None);
    let ready = api.get("/health/ready").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.json()["store"], "sqlite");
    server.shutdown().await.unwrap();
}

/// `switchyard migrate --database` makes the schema and says so; `serve --database` then
/// finds it made. The URL's password is in neither's output.
#[tokio::test]
async fn migrate_and_serve_with_a_database_url() {
    let database = pg::TestDatabase::create().await;
    let url = database
        .url
        .replacen("postgres@", "postgres:pw-hunter2@", 1);
    let dir = tempfile::tempdir().unwrap();
    let migrated = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["migrate", "--database", &url])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&migrated.stdout),
        String::from_utf8_lossy(&migrated.stderr)
    );
    assert!(migrated.status.success(), "{said}");
    assert!(said.contains("schema is up to date"), "{said}");
    assert!(!said.contains("hunter2"), "{said}");

    let (client, connection) = tokio_postgres::connect(&database.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let version: i32 = client
        .query_one("SELECT version FROM switchyard_webhooks_schema", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, 5);
    // Nothing was written to the data directory: the webhooks are in the database.
    assert!(!dir.path().join("webhooks").exists());

    // A wrong URL stops `migrate` with a message that names no password.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args([
            "migrate",
            "--database",
            "postgres://postgres:pw-hunter2@127.0.0.1:1/nothing",
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(said.contains("PostgreSQL"), "{said}");
    assert!(!said.contains("hunter2"), "{said}");
}

/// Two `switchyard serve` processes on one database, three endpoints, 5,000 messages sent
/// through both; one process is SIGKILLed part way and not restarted. Every message a
/// server accepted (202) reaches every endpoint at least once: the survivor takes over the
/// dead one's leases when they run out. Duplicates (deliveries the dead one made but could
/// not record) are counted and printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_run_loses_nothing() {
    const MESSAGES: usize = 5_000;
    const ENDPOINTS: usize = 3;
    let database = pg::TestDatabase::create().await;
    let (base, seen) = receiver_base().await;
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut nodes = Vec::new();
    for dir in &dirs {
        cluster_key(dir.path());
        let config = dir.path().join("switchyard.toml");
        std::fs::write(
            &config,
            format!(
                "bind = \"127.0.0.1:0\"\n\
                 data_dir = \"data\"\n\
                 tokens = [\"{}\"]\n\
                 [webhooks]\n\
                 main_key = {{ file = \"cluster.key\" }}\n\
                 [database]\n\
                 url = \"{}\"\n\
                 [delivery]\n\
                 request_timeout_secs = 2\n\
                 lease_secs = 4\n\
                 retry_schedule_secs = [1, 1, 1, 1, 1]\n\
                 retry_jitter = 0.0\n\
                 allow_subnets = [\"127.0.0.0/8\"]\n",
                common::TOKEN,
                database.url
            ),
        )
        .unwrap();
        nodes.push(common::Serve::start(
            env!("CARGO_BIN_EXE_switchyard"),
            &config,
            &[],
        ));
    }
    let apis = [Api::new(nodes[0].addr), Api::new(nodes[1].addr)];
    assert_eq!(
        apis[0]
            .post("/api/v1/app", &json!({"name": "Kill", "uid": "kill"}))
            .await
            .status,
        StatusCode::CREATED
    );
    for e in 0..ENDPOINTS {
        let created = apis[1]
            .post(
                "/api/v1/app/kill/endpoint",
                &json!({"url": format!("{base}/e{e}")}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    }

    // Eight clients, alternating between the servers; a send the killed server did not
    // answer with 202 goes to the other one, as a client behind a load balancer would retry.
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let accepted: Arc<Mutex<Vec<String>>> = Arc::default();
    let killed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..8 {
        let (apis, next, accepted, killed) = (
            apis.clone(),
            Arc::clone(&next),
            Arc::clone(&accepted),
            Arc::clone(&killed),
        );
        clients.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if n >= MESSAGES {
                    return;
                }
                let body =
                    Bytes::from(json!({"eventType": "kill.test", "payload": {"n": n}}).to_string());
                let mut to = (c + n) % 2;
                loop {
                    if to == 1 && killed.load(std::sync::atomic::Ordering::SeqCst) {
                        to = 0;
                    }
                    let reply = apis[to]
                        .try_send(http::Method::POST, "/api/v1/app/kill/msg", body.clone())
                        .await;
                    match reply {
                        Some(reply) if reply.status == StatusCode::ACCEPTED => {
                            let id = reply.json()["id"].as_str().unwrap().to_owned();
                            accepted.lock().unwrap().push(id);
                            break;
                        }
                        Some(reply) if to == 0 => {
                            panic!("the surviving server answered {}", reply.status)
                        }
                        _ => to = 0,
                    }
                }
            }
        }));
    }
    // Kill the second server once a third of the messages are in and deliveries run.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while accepted.lock().unwrap().len() < MESSAGES / 3 {
        assert!(tokio::time::Instant::now() < deadline, "sends stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let delivered_at_kill: usize = seen.lock().unwrap().values().sum();
    killed.store(true, std::sync::atomic::Ordering::SeqCst);
    let victim = nodes.pop().unwrap();
    drop(victim); // SIGKILL
    for client in clients {
        client.await.unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), MESSAGES);

    let wanted: Vec<String> = accepted
        .iter()
        .flat_map(|id| (0..ENDPOINTS).map(move |e| format!("{id} /e{e}")))
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        let missing = {
            let seen = seen.lock().unwrap();
            wanted.iter().filter(|key| !seen.contains_key(*key)).count()
        };
        if missing == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{missing} of {} deliveries never arrived",
            wanted.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = seen.lock().unwrap();
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    // Messages the killed server stored whose 202 it never sent: the client sent them again
    // (a new message), and they are delivered too, as stored messages must be.
    let wanted_set: std::collections::HashSet<&String> = wanted.iter().collect();
    let unanswered: std::collections::HashSet<&str> = seen
        .keys()
        .filter(|key| !wanted_set.contains(key))
        .map(|key| key.split(' ').next().unwrap())
        .collect();
    for id in &unanswered {
        for e in 0..ENDPOINTS {
            assert!(
                seen.contains_key(&format!("{id} /e{e}")),
                "an unanswered message {id} reached every endpoint"
            );
        }
    }
    eprintln!(
        "cluster kill: {MESSAGES} messages x {ENDPOINTS} endpoints through two servers, one \
         SIGKILLed after {delivered_at_kill} deliveries: {} delivered, 0 lost, {duplicates} \
         duplicates; {} messages stored by the killed server without its 202 (sent again by \
         the client) delivered as well",
        wanted.len(),
        unanswered.len()
    );
    assert_eq!(
        seen.len(),
        wanted.len() + unanswered.len() * ENDPOINTS,
        "nothing but what was sent"
    );
}

/// With a database, metadata outputs live there: an output a step sets through one server
/// is read through another, and neither writes an outputs file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_set_through_one_server_are_read_through_another() {
    const STEP_TOKEN: &str = "step-token-0123456789abcdef";
    let database = pg::TestDatabase::create().await;
    let root = tempfile::tempdir().unwrap();
    let spec = root.path().join("spec.json");
    std::fs::write(&spec, r#"{"image": "registry/app"}"#).unwrap();
    let mut servers = Vec::new();
    for name in ["a", "b"] {
        let mut config = common::config(&root.path().join(name));
        config.database = Some(DatabaseConfig::new(&database.url));
        config.metadata = Some(switchyard_server::MetadataConfig {
            tokens: vec![switchyard_server::Token::new(STEP_TOKEN)],
            ..switchyard_server::MetadataConfig::new(&spec)
        });
        servers.push(Server::start(config).await.unwrap());
    }
    let step = |server: &RunningServer| Api::new(server.local_addr()).with_token(Some(STEP_TOKEN));
    let set = step(&servers[0])
        .send(http::Method::PUT, "/outputs/image", "\"registry/app:1\"")
        .await;
    assert!(set.status.is_success(), "{:?}", set.body);
    let read = step(&servers[1]).get("/outputs/step/image").await;
    assert_eq!(read.status, StatusCode::OK, "{:?}", read.body);
    assert_eq!(read.json()["value"], json!("registry/app:1"));
    // Replaced through the second, read through the first.
    step(&servers[1])
        .send(http::Method::PUT, "/outputs/image", "\"registry/app:2\"")
        .await;
    let read = step(&servers[0]).get("/outputs/step/image").await;
    assert_eq!(read.json()["value"], json!("registry/app:2"));
    for name in ["a", "b"] {
        assert!(!root.path().join(name).join("outputs.json").exists());
    }
    for server in servers {
        server.shutdown().await.unwrap();
    }
}

/// Runtime events with a database: events ingested through both servers at once reach the
/// subscriptions made on each, and both servers see them in the same order (the log's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_events_reach_every_server_in_one_order() {
    let database = pg::TestDatabase::create().await;
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = node(a_dir.path(), &database.url).await;
    let b = node(b_dir.path(), &database.url).await;
    let apis = [Api::new(a.local_addr()), Api::new(b.local_addr())];
    let mut subscriptions = Vec::new();
    for api in &apis {
        let reply = api
            .post(
                "/runtime/v1/subscriptions",
                &json!({"source": "hooks", "filter": "data.body.n >= 0"}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        subscriptions.push(reply.json()["id"].as_str().unwrap().to_owned());
    }
    // 40 events, 20 through each server, from four clients at once.
    let mut senders = Vec::new();
    for client in 0..4 {
        let api = apis[client % 2].clone();
        senders.push(tokio::spawn(async move {
            let mut queued = 0;
            for n in 0..10 {
                let reply = api
                    .post(
                        "/runtime/v1/sources/hooks/events",
                        &json!({"client": client, "n": n}),
                    )
                    .await;
                assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
                queued += reply.json()["queued"].as_u64().unwrap();
            }
            queued
        }));
    }
    for sender in senders {
        // Each event was queued for the one subscription on the server it came through.
        assert_eq!(sender.await.unwrap(), 10);
    }
    let mut seen = Vec::new();
    for (api, id) in apis.iter().zip(&subscriptions) {
        let mut order = Vec::new();
        loop {
            let reply = api
                .post(
                    "/runtime/v1/next",
                    &json!({"ids": [id], "timeout_ms": 2000}),
                )
                .await;
            if reply.status == StatusCode::NO_CONTENT {
                break;
            }
            assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
            let event = reply.json();
            order.push((
                event["data"]["body"]["client"].as_u64().unwrap(),
                event["data"]["body"]["n"].as_u64().unwrap(),
            ));
        }
        assert_eq!(order.len(), 40, "every event, whichever server took it");
        seen.push(order);
    }
    assert_eq!(seen[0], seen[1], "the same order on both servers");
    // Each client's events in the order it sent them.
    for client in 0..4 {
        let mine: Vec<u64> = seen[0]
            .iter()
            .filter(|(c, _)| *c == client)
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(mine, (0..10).collect::<Vec<_>>());
    }
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
