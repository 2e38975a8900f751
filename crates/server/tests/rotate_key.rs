//! `switchyard rotate-key`: with a server running, the server takes the new main key on
//! SIGHUP and seals every secret again under it while it keeps accepting and delivering
//! messages (each signed with the endpoint's unchanged secret), then drops the old key from
//! `main.key`; with none running, the command does the same itself. Either way the next
//! start needs only the new key.
#![allow(clippy::unwrap_used)] // Test code.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Api, Serve};
use serde_json::json;
use switchyard_server::KEY_FILE;
use switchyard_webhooks::seal::MainKey;
use switchyard_webhooks::{Secret, Verifier};

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");
const SECRET: &str = "whsec_cm90YXRlIHRoZSBtYWluIGtleSB3aGlsZSBzZXJ2aW5n";

/// The ids of the keys `main.key` lists, the current one first.
fn key_ids(data: &Path) -> Vec<String> {
    std::fs::read_to_string(data.join(KEY_FILE))
        .unwrap()
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.parse::<MainKey>().unwrap().id().to_owned())
        .collect()
}

fn rotate_key(config: &Path) -> (bool, String, String) {
    switchyard(&["rotate-key", "--wait", "60", "--config"], config)
}

/// Runs `switchyard` with `args` and then `path`: whether it succeeded, and its output.
fn switchyard(args: &[&str], path: &Path) -> (bool, String, String) {
    let output = std::process::Command::new(BIN)
        .args(args)
        .arg(path)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn send(api: &Api, n: usize) {
    let reply = api
        .post(
            "/api/v1/app/shop/msg",
            &json!({"eventType": "order.paid", "payload": {"n": n}}),
        )
        .await;
    assert!(
        reply.status.is_success(),
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
}

/// Writes the config of a server on loopback with its data under `dir/data`; returns the
/// config file and the data directory.
fn write_config(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let data = dir.join("data");
    let config = dir.join("switchyard.toml");
    std::fs::write(
        &config,
        format!(
            "bind = \"127.0.0.1:0\"\n\
             data_dir = \"{}\"\n\
             tokens = [\"{}\"]\n\
             [delivery]\n\
             allow_subnets = [\"127.0.0.0/8\"]\n",
            data.display(),
            common::TOKEN
        ),
    )
    .unwrap();
    (config, data)
}

/// A server on loopback with its data under `dir/data`, its application `shop` and event
/// types `order.paid` and `never.sent`: the
/// config file, the data directory, the server and a client with its token.
async fn shop(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, Serve, Api) {
    let (config, data) = write_config(dir);
    let server = Serve::start(BIN, &config, &[]);
    let api = Api::new(server.addr).with_token(Some(common::TOKEN));
    let created = api
        .post("/api/v1/app", &json!({"name": "shop", "uid": "shop"}))
        .await;
    assert!(created.status.is_success());
    // What the tests send, and what the endpoints that should stay quiet filter on.
    for name in ["order.paid", "never.sent"] {
        api.post(
            "/api/v1/event-type",
            &json!({"name": name, "description": name}),
        )
        .await;
    }
    (config, data, server, api)
}

/// Values in the server's store sealed under the key `key_id`, counted through SQLite.
fn sealed_under(data: &Path, key_id: &str) -> i64 {
    let conn = rusqlite::Connection::open_with_flags(
        data.join("webhooks").join("store.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.query_row(
        "SELECT count(*) FROM endpoints WHERE keys LIKE ?1 OR headers LIKE ?1",
        [format!("sealed:v1:{key_id}:%")],
        |row| row.get(0),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_key_while_serving_then_with_no_server() {
    let dir = tempfile::tempdir().unwrap();
    let (config, data, server, api) = shop(dir.path()).await;
    let (url, seen) = common::recording_receiver(Duration::ZERO).await;
    let hook = api
        .post(
            "/api/v1/app/shop/endpoint",
            &json!({"url": format!("{url}/hook"), "uid": "hook", "secret": SECRET,
                    "headers": {"Authorization": "Bearer receiver-7a1c"}}),
        )
        .await;
    assert!(
        hook.status.is_success(),
        "{}",
        String::from_utf8_lossy(&hook.body)
    );
    // Enough endpoints for several batches of sealing again; they take no messages.
    for n in 0..600 {
        let reply = api
            .post(
                "/api/v1/app/shop/endpoint",
                &json!({"url": format!("{url}/quiet/{n}"), "filterTypes": ["never.sent"]}),
            )
            .await;
        assert!(
            reply.status.is_success(),
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
    }
    let first = key_ids(&data);
    assert_eq!(first.len(), 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        for file in [KEY_FILE, "switchyard.pid"] {
            let mode = std::fs::metadata(data.join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    }

    // The rotation runs while messages keep coming.
    let rotating = tokio::task::spawn_blocking({
        let config = config.clone();
        move || rotate_key(&config)
    });
    let mut sent = 0;
    while !rotating.is_finished() {
        send(&api, sent).await;
        sent += 1;
    }
    let (ok, out, err) = rotating.await.unwrap();
    assert!(sent > 0, "messages were sent while the key rotated");
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("is sealing everything under it") && out.contains("done"),
        "{out}"
    );
    for n in sent..sent + 5 {
        send(&api, n).await;
    }
    sent += 5;
    let second = key_ids(&data);
    assert_eq!(second.len(), 1, "the old key left main.key");
    assert_ne!(second, first);
    let log = server.log();
    assert!(
        log.contains("main keys reloaded") && log.contains(&second[0]),
        "{log}"
    );
    assert!(
        !log.contains(SECRET) && !log.contains("symk_"),
        "no secret in the log"
    );

    // Every message reached the endpoint, signed with its unchanged secret.
    let verifier = Verifier::new(SECRET.parse::<Secret>().unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, ..)| p == "/hook")
            .count();
        if got >= sent {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{got} of {sent} delivered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (path, headers, body) in seen.lock().unwrap().iter() {
        assert_eq!(path, "/hook", "a quiet endpoint got a message");
        verifier.verify(headers, body).unwrap();
        assert_eq!(headers["authorization"], "Bearer receiver-7a1c");
    }

    // Killed, the server's pid file stays behind; `rotate-key` sees no live server and
    // rotates the store itself.
    drop(server);
    let (ok, out, err) = rotate_key(&config);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("no server running"), "{out}");
    let third = key_ids(&data);
    assert_eq!(third.len(), 1);
    assert_ne!(third, second);

    // The next start needs only the newest key, and every secret reads back.
    let server = Serve::start(BIN, &config, &[]);
    let api = Api::new(server.addr).with_token(Some(common::TOKEN));
    let secret = api.get("/api/v1/app/shop/endpoint/hook/secret").await;
    assert_eq!(
        secret.json()["key"],
        SECRET,
        "{}",
        String::from_utf8_lossy(&secret.body)
    );
    let headers = api.get("/api/v1/app/shop/endpoint/hook/headers").await;
    assert!(
        String::from_utf8_lossy(&headers.body).contains("Authorization"),
        "{}",
        String::from_utf8_lossy(&headers.body)
    );
}

/// SIGKILL in the middle of a rotation: the key file still lists both keys, and the next
/// start seals the rest under the new one and drops the old.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stdout)] // How far the rotation got, for the log of a run.
async fn a_server_killed_half_way_through_a_rotation_finishes_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let (config, data, server, api) = shop(dir.path()).await;
    let hook = api
        .post(
            "/api/v1/app/shop/endpoint",
            &json!({"url": "https://hooks.example.com/in", "uid": "hook", "secret": SECRET}),
        )
        .await;
    assert!(hook.status.is_success());
    for n in 0..3000 {
        let reply = api
            .post(
                "/api/v1/app/shop/endpoint",
                &json!({"url": format!("https://hooks.example.com/{n}")}),
            )
            .await;
        assert!(reply.status.is_success());
    }
    let old = key_ids(&data)[0].clone();
    // Signal and return at once: this test kills the server itself.
    let (finished, out, err) = switchyard(&["rotate-key", "--wait", "0", "--config"], &config);
    assert!(
        !finished && out.contains("is sealing everything"),
        "{out}\n{err}"
    );
    let new = key_ids(&data)[0].clone();
    assert_ne!(new, old);
    // Killed as soon as the new key has sealed a batch.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while sealed_under(&data, &new) == 0 {
        assert!(std::time::Instant::now() < deadline, "{}", server.log());
        std::thread::sleep(Duration::from_millis(2));
    }
    drop(server);
    let (under_new, under_old) = (sealed_under(&data, &new), sealed_under(&data, &old));
    println!("killed with {under_new} endpoints under the new key, {under_old} under the old");
    // Twelve batches take far longer than the poll; should the machine stall the test
    // instead, the rotation may have finished before the kill, and the start has less to do.
    if under_old > 0 {
        assert_eq!(
            key_ids(&data),
            [new.clone(), old.clone()],
            "both keys still listed"
        );
    }

    let server = Serve::start(BIN, &config, &[]);
    assert_eq!(key_ids(&data), [new], "the start finished the rotation");
    assert_eq!(sealed_under(&data, &old), 0);
    let api = Api::new(server.addr).with_token(Some(common::TOKEN));
    let secret = api.get("/api/v1/app/shop/endpoint/hook/secret").await;
    assert_eq!(secret.json()["key"], SECRET);
}

/// A key named in the config is the operator's to rotate: the command says how, and
/// changes nothing.
#[test]
fn a_configured_key_is_not_rotated_by_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let key = MainKey::generate().unwrap();
    std::fs::write(dir.path().join("ops.key"), key.expose().as_bytes()).unwrap();
    let config = dir.path().join("switchyard.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[webhooks]\nmain_key = {{ file = \"{}\" }}\n",
            dir.path().join("data").display(),
            dir.path().join("ops.key").display()
        ),
    )
    .unwrap();
    let (ok, out, err) = rotate_key(&config);
    assert!(!ok, "{out}");
    assert!(
        err.contains("old_main_keys") && err.contains("SIGHUP"),
        "{err}"
    );
    assert!(!err.contains("symk_"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ops.key")).unwrap(),
        *key.expose()
    );
}

/// A pid file no server holds (a crash, or another program has that id now) is never
/// signalled: the command rotates the store itself.
#[test]
fn a_stale_pid_file_is_not_signalled() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ok, out, err) = switchyard(&["migrate", "--data-dir"], &data);
    assert!(ok, "{out}\n{err}");
    let first = key_ids(&data);
    // Process 1 is alive, and no switchyard.
    std::fs::write(data.join("switchyard.pid"), "1\n").unwrap();
    let (ok, out, err) = switchyard(&["rotate-key", "--data-dir"], &data);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("no server running"), "{out}");
    let second = key_ids(&data);
    assert_eq!(second.len(), 1);
    assert_ne!(second, first);
}

/// What a rotation costs while serving: 10,000 endpoints sealed again under a new key while a
/// client keeps sending; the time the rotation takes, and the latency of the sends before and
/// during it. `cargo test --release -p switchyard-server --test rotate_key -- --ignored
/// --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run on demand in release"]
#[allow(clippy::print_stdout)] // The measurement is the output.
async fn rotation_while_serving_measured() {
    const ENDPOINTS: usize = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let (config, data, server, api) = shop(dir.path()).await;
    let (url, _seen) = common::recording_receiver(Duration::ZERO).await;
    let hook = api
        .post(
            "/api/v1/app/shop/endpoint",
            &json!({"url": format!("{url}/hook"), "secret": SECRET}),
        )
        .await;
    assert!(hook.status.is_success());
    for n in 1..ENDPOINTS {
        let reply = api
            .post(
                "/api/v1/app/shop/endpoint",
                &json!({"url": format!("{url}/quiet/{n}"), "filterTypes": ["never.sent"],
                        "headers": {"Authorization": format!("Bearer {n}")}}),
            )
            .await;
        assert!(reply.status.is_success());
    }
    let percentiles = |mut times: Vec<Duration>| {
        times.sort();
        let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
        (times.len(), at(0.5), at(0.99))
    };
    let mut before = Vec::new();
    for n in 0..500 {
        let started = std::time::Instant::now();
        send(&api, n).await;
        before.push(started.elapsed());
    }
    let started = std::time::Instant::now();
    let rotating = tokio::task::spawn_blocking({
        let config = config.clone();
        move || rotate_key(&config)
    });
    let mut during = Vec::new();
    while !rotating.is_finished() {
        let sent = std::time::Instant::now();
        send(&api, during.len()).await;
        during.push(sent.elapsed());
    }
    let (ok, out, err) = rotating.await.unwrap();
    let took = started.elapsed();
    assert!(ok, "{out}\n{err}");
    assert_eq!(key_ids(&data).len(), 1);
    let (n_before, p50_before, p99_before) = percentiles(before);
    let (n_during, p50_during, p99_during) = percentiles(during);
    println!(
        "\nrotation of {ENDPOINTS} endpoints while serving: {:.2} s (rotate-key's wall time)\n\n\
         | sends | count | p50 ms | p99 ms |\n|---|---:|---:|---:|\n\
         | before | {n_before} | {p50_before:.2} | {p99_before:.2} |\n\
         | during | {n_during} | {p50_during:.2} | {p99_during:.2} |",
        took.as_secs_f64()
    );
    drop(server);
}
