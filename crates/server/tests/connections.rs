//! Connections are bounded: one that sends its request head too slowly is closed after the
//! header-read timeout, one that sends nothing after the idle timeout (also between requests
//! on a kept-alive connection), a request being answered is never cut by either (a long-poll
//! outlives both), and past the cap a new connection gets a 503 and is closed.
#![allow(clippy::unwrap_used)] // Test code.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::Api;
use http::StatusCode;
use serde_json::json;
use switchyard_server::{ConnectionLimits, RunningServer};

async fn server(dir: &std::path::Path, limits: ConnectionLimits) -> RunningServer {
    let mut config = common::config(dir);
    config.connections = limits;
    switchyard_server::Server::start(config).await.unwrap()
}

/// Blocks until the server closes `stream` (a read of 0 bytes or an error); how long that
/// took. Gives up after `limit`.
fn time_to_close(mut stream: TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return started.elapsed(),
            Ok(_) => {}
        }
        assert!(started.elapsed() < limit, "still open after {limit:?}");
    }
}

fn get_health(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let mut reply = vec![0u8; 4096];
    let n = stream.read(&mut reply).unwrap();
    String::from_utf8_lossy(&reply[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_head_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let limits = ConnectionLimits {
        header_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(30),
        ..ConnectionLimits::default()
    };
    let server = server(dir.path(), limits).await;
    let addr = server.local_addr();
    let closed = tokio::task::spawn_blocking(move || {
        let stream = TcpStream::connect(addr).unwrap();
        let mut writer = stream.try_clone().unwrap();
        // A header byte every 200 ms, forever (slowloris).
        std::thread::spawn(move || {
            for byte in b"GET /health HTTP/1.1\r\nx-slow: ".iter().cycle() {
                if writer.write_all(&[*byte]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        time_to_close(stream, Duration::from_secs(20))
    })
    .await
    .unwrap();
    // The idle timeout (30 s) never came into it: the head timer did.
    assert!(closed < Duration::from_secs(10), "{closed:?}");
    assert_eq!(
        Api::new(addr).get("/health").await.status,
        StatusCode::OK,
        "others are served"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_requests_are_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    let limits = ConnectionLimits {
        header_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(1),
        ..ConnectionLimits::default()
    };
    let server = server(dir.path(), limits).await;
    let addr = server.local_addr();
    let (silent, after_request) = tokio::task::spawn_blocking(move || {
        // A connection that never sends anything.
        let silent = time_to_close(TcpStream::connect(addr).unwrap(), Duration::from_secs(20));
        // One that sends a request, gets its answer, then stays quiet.
        let mut stream = TcpStream::connect(addr).unwrap();
        let reply = get_health(&mut stream);
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        (silent, time_to_close(stream, Duration::from_secs(20)))
    })
    .await
    .unwrap();
    assert!(silent < Duration::from_secs(10), "{silent:?}");
    assert!(after_request < Duration::from_secs(10), "{after_request:?}");

    // A long-poll of 3 s outlives the 1 s idle timeout: a request being answered is busy.
    let api = Api::new(addr);
    let sub = api
        .post(
            "/runtime/v1/subscriptions",
            &json!({"source": "s", "filter": ""}),
        )
        .await
        .json()["id"]
        .clone();
    let started = Instant::now();
    let waited = api
        .post(
            "/runtime/v1/next",
            &json!({"ids": [sub], "timeout_ms": 3000}),
        )
        .await;
    assert_eq!(waited.status, StatusCode::NO_CONTENT);
    assert!(started.elapsed() >= Duration::from_millis(2900));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_cap_a_connection_gets_503() {
    let dir = tempfile::tempdir().unwrap();
    let limits = ConnectionLimits {
        max_connections: 4,
        ..ConnectionLimits::default()
    };
    let server = server(dir.path(), limits).await;
    let addr: SocketAddr = server.local_addr();
    let reply = tokio::task::spawn_blocking(move || {
        let mut held: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
        // The four are accepted (one answers, so all are past the accept loop).
        let ok = get_health(&mut held[3]);
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        let mut fifth = TcpStream::connect(addr).unwrap();
        fifth
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut refused = String::new();
        let _ = fifth.read_to_string(&mut refused);
        // One held connection closes: there is room again.
        drop(held.pop());
        std::thread::sleep(Duration::from_millis(300));
        let mut sixth = TcpStream::connect(addr).unwrap();
        let after = get_health(&mut sixth);
        (refused, after)
    })
    .await
    .unwrap();
    let (refused, after) = reply;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("too_many_connections"), "{refused}");
    assert!(after.starts_with("HTTP/1.1 200"), "{after}");
    server.shutdown().await.unwrap();
}

/// A kept-alive connection idle for longer than hyper's own header-read default (30 s) but
/// less than the idle timeout is still served: the idle timeout is the configured one. On a
/// paused clock, so the wait costs nothing.
#[tokio::test(start_paused = true)]
async fn a_kept_alive_connection_lasts_the_whole_idle_timeout() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let dir = tempfile::tempdir().unwrap();
    let limits = ConnectionLimits {
        idle_timeout: Duration::from_secs(60),
        ..ConnectionLimits::default()
    };
    let server = server(dir.path(), limits).await;
    let mut stream = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    for wait in [Duration::ZERO, Duration::from_secs(45)] {
        tokio::time::sleep(wait).await;
        stream
            .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut reply = vec![0u8; 4096];
        let n = stream.read(&mut reply).await.unwrap();
        let reply = String::from_utf8_lossy(&reply[..n]);
        assert!(
            reply.starts_with("HTTP/1.1 200"),
            "after {wait:?} idle: {reply:?}"
        );
    }
}
