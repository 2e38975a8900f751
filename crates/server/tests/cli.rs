//! The `switchyard` binary itself: `serve` with JSON logs stopped by SIGTERM, config errors,
//! `sign` / `verify`, and `events encode` / `decode`.
#![allow(clippy::unwrap_used)] // Test code.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

fn run(args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn sign_and_verify_from_the_command_line() {
    // The reference vector of the Standard Webhooks specification.
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    let body = br#"{"test": 2432232314}"#;
    let (code, signature, _) = run(
        &[
            "sign",
            "--secret",
            secret,
            "--id",
            id,
            "--timestamp",
            "1614265330",
        ],
        body,
    );
    assert_eq!(code, 0);
    assert_eq!(
        signature.trim(),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
    let verify = |body: &[u8]| {
        run(
            &[
                "verify",
                "--secret",
                secret,
                "--id",
                id,
                "--timestamp",
                "1614265330",
                "--signature",
                signature.trim(),
                "--now",
                "1614265331",
            ],
            body,
        )
    };
    let (code, out, _) = verify(body);
    assert_eq!(code, 0);
    assert!(out.contains("verified"), "{out}");
    let (code, _, err) = verify(br#"{"test": 2432232315}"#);
    assert_eq!(code, 1);
    assert!(err.contains("not verified"), "{err}");
    let (code, _, err) = run(&["sign", "--secret", "plain", "--id", id], body);
    assert_eq!(code, 1);
    assert!(err.contains("key 1"), "{err}");
}

#[test]
fn events_move_between_modes_and_versions() {
    let event =
        br#"{"specversion": "1.0", "id": "e-1", "type": "t", "source": "/s", "data": {"n": 1}}"#;
    let (code, binary, err) = run(
        &["events", "encode", "--mode", "binary", "--to", "0.3"],
        event,
    );
    assert_eq!(code, 0, "{err}");
    assert!(binary.contains("ce-specversion: 0.3\n"), "{binary}");
    let (code, decoded, err) = run(&["events", "decode", "--to", "1.0"], binary.as_bytes());
    assert_eq!(code, 0, "{err}");
    let decoded: serde_json::Value = serde_json::from_str(&decoded).unwrap();
    assert_eq!(decoded["specversion"], "1.0");
    assert_eq!(decoded["id"], "e-1");
    assert_eq!(decoded["data"], serde_json::json!({"n": 1}));
    let (code, _, err) = run(&["events", "decode"], b"content-type: text/plain\n\nhi");
    assert_eq!(code, 1);
    assert!(err.contains("cloudevents"), "{err}");
}

#[test]
fn a_bad_config_file_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "bind = \"127.0.0.1:0\"\nbodylimit = 5\n").unwrap();
    let (code, _, err) = run(&["serve", "--config", path.to_str().unwrap()], b"");
    assert_eq!(code, 1);
    assert!(err.contains("bodylimit") && err.contains("line 2"), "{err}");
    let (code, _, err) = run(&["serve", "--token", "short"], b"");
    assert_eq!(code, 1);
    assert!(err.contains("16 characters"), "{err}");
}

#[cfg(unix)]
#[test]
fn serve_logs_json_answers_health_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
        ])
        .arg(dir.path())
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        assert!(Instant::now() < deadline, "the server did not start");
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the server exited early"
        );
        let log: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            !line.contains("sy_"),
            "the token never appears in logs: {line}"
        );
        if log["message"] == "switchyard serving" {
            break log["addr"].as_str().unwrap().to_owned();
        }
    };
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(dir.path().join("token").exists());

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}\n{rest}");
    assert!(
        rest.contains("SIGTERM received") && rest.contains("\"stopped\""),
        "{rest}"
    );
}

/// A secret whose source is missing stops the server at start, naming the source and not
/// leaking anything.
#[test]
fn a_missing_metadata_secret_source_is_a_start_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spec.json"), "{}").unwrap();
    for (source, expected) in [
        (
            "{ env = \"SWITCHYARD_TEST_UNSET_VARIABLE\" }",
            "metadata secret `db`: the environment variable SWITCHYARD_TEST_UNSET_VARIABLE is not set",
        ),
        ("{ file = \"absent.txt\" }", "absent.txt"),
    ] {
        let config = dir.path().join("switchyard.toml");
        std::fs::write(
            &config,
            format!(
                "bind = \"127.0.0.1:0\"\ndata_dir = \"data\"\ntokens = [\"{}\"]\n\
                 [metadata]\nspec = \"spec.json\"\n[metadata.secrets]\ndb = {source}\n",
                "cli-test-token-0123456789"
            ),
        )
        .unwrap();
        let output = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&config)
            .env_remove("SWITCHYARD_TEST_UNSET_VARIABLE")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
}

/// The port is bound only once the stores are open: while they open (here, waiting for a
/// lock another process holds on the webhooks store), a connection is refused
/// instead of accepted and never answered.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_refused_until_the_stores_are_open() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("webhooks")).unwrap();
    let store = data.join("webhooks").join("store.db");
    let lock = rusqlite::Connection::open(&store).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("switchyard.toml");
    std::fs::write(
        &config,
        format!(
            "bind = \"127.0.0.1:{port}\"\ndata_dir = \"data\"\ntokens = [\"cli-test-token-0123456789\"]\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--log-format", "json", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(child.try_wait().unwrap().is_none(), "still starting");
    let refused = TcpStream::connect(("127.0.0.1", port));
    assert!(
        refused.is_err(),
        "the port took a connection before the stores were open"
    );

    lock.execute_batch("COMMIT").unwrap();
    drop(lock);
    let deadline = Instant::now() + Duration::from_secs(30);
    let reply = loop {
        assert!(Instant::now() < deadline, "the server did not start");
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            stream
                .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                .unwrap();
            let mut reply = String::new();
            stream.read_to_string(&mut reply).unwrap();
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    child.kill().unwrap();
    child.wait().unwrap();
}
