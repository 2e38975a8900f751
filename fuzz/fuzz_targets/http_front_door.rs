//! Fuzzes `switchyard serve`'s front door: bytes on a connection to a real server (the
//! connection limits, hyper's parser, routing, authentication, every handler and the stores
//! behind them). The server must answer or close the connection; a panic anywhere aborts the
//! process (a crash the fuzzer keeps), and so does a `500` answer: hostile input gets a
//! typed 4xx.
//!
//! The first byte chooses how the rest is sent: as raw bytes, or as the body of an
//! authenticated request to one of the API's routes (chosen by the second byte, with ids the
//! next bytes may mangle), so the fuzzer reaches the handlers without guessing the token.
#![no_main]

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;

const TOKEN: &str = "fuzz-token-0123456789abcdef";

/// Routes reached with a valid token: method, path (`{id}` replaced by input bytes).
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/v1/event-type"),
    ("PUT", "/api/v1/event-type/{id}"),
    ("GET", "/api/v1/event-type/{id}"),
    ("GET", "/api/v1/app/{id}"),
    ("POST", "/api/v1/app/app/endpoint"),
    ("GET", "/api/v1/app/app/endpoint?{id}"),
    ("GET", "/api/v1/app/app/endpoint/{id}"),
    ("POST", "/api/v1/app/app/endpoint/ep/secret/rotate"),
    ("PUT", "/api/v1/app/app/endpoint/ep/headers"),
    ("POST", "/api/v1/app/app/msg"),
    ("GET", "/api/v1/app/app/msg?{id}"),
    ("GET", "/api/v1/app/app/msg/{id}"),
    ("GET", "/api/v1/app/app/attempt/endpoint/ep?{id}"),
    ("GET", "/api/v1/app/app/attempt/msg/{id}"),
    ("POST", "/runtime/v1/subscriptions"),
    ("POST", "/runtime/v1/sources/s/events"),
    ("GET", "/runtime/v1/subscriptions/{id}"),
    ("PUT", "/outputs/{id}"),
    ("GET", "/outputs/step/{id}"),
    ("GET", "/spec?q={id}"),
    ("POST", "/events"),
    ("POST", "/workflows/{id}/run"),
];

struct Target {
    addr: SocketAddr,
    _runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

fn target() -> &'static Target {
    static TARGET: OnceLock<Target> = OnceLock::new();
    TARGET.get_or_init(|| {
        // A panic on any server thread is a crash for the fuzzer, not a log line.
        std::panic::set_hook(Box::new(|info| {
            eprintln!("{info}");
            std::process::abort();
        }));
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("spec.json"),
            r#"{"a": {"b": [1, 2]}, "s": {"$type": "Secret", "name": "db"}}"#,
        )
        .expect("spec");
        let mut config = switchyard_server::Config {
            bind: "127.0.0.1:0".parse().expect("addr"),
            data_dir: dir.path().join("data"),
            tokens: vec![switchyard_server::Token::new(TOKEN)],
            body_limit: 64 * 1024,
            ..switchyard_server::Config::default()
        };
        config.metadata = Some(switchyard_server::MetadataConfig {
            step: "step".to_owned(),
            tokens: vec![switchyard_server::Token::new("fuzz-step-token-0123456789")],
            ..switchyard_server::MetadataConfig::new(dir.path().join("spec.json"))
        });
        config.allow_subnet("127.0.0.0/8".parse().expect("subnet"));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let server = runtime
            .block_on(switchyard_server::Server::start(config))
            .expect("server");
        let addr = server.local_addr();
        // The server runs for the life of the process.
        std::mem::forget(server);
        let target = Target {
            addr,
            _runtime: runtime,
            _dir: dir,
        };
        for (path, body) in [
            ("/api/v1/app", r#"{"name": "app", "uid": "app"}"#),
            ("/api/v1/event-type", r#"{"name": "a.b", "description": "d"}"#),
            (
                "/api/v1/app/app/endpoint",
                r#"{"url": "http://127.0.0.1:9/", "uid": "ep"}"#,
            ),
        ] {
            exchange(target.addr, &request("POST", path, TOKEN, body.as_bytes()));
        }
        target
    })
}

fn request(method: &str, path: &str, token: &str, body: &[u8]) -> Vec<u8> {
    let mut bytes = format!(
        "{method} {path} HTTP/1.1\r\nhost: fuzz\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Sends `bytes`, half-closes, reads what comes back (for at most a second).
fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return Vec::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(Shutdown::Write);
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    reply
}

fuzz_target!(|input: &[u8]| {
    let target = target();
    let bytes = match input {
        [mode, route, rest @ ..] if mode % 2 == 1 => {
            let (method, path) = ROUTES[usize::from(*route) % ROUTES.len()];
            let split = rest.iter().position(|&b| b == b'\n').unwrap_or(0);
            let (id, body) = rest.split_at(split);
            let id: String = String::from_utf8_lossy(id)
                .chars()
                .filter(|c| c.is_ascii_graphic())
                .collect();
            let path = path.replace("{id}", &id);
            let token = if path.starts_with("/api") || path.starts_with("/runtime") {
                TOKEN
            } else {
                "fuzz-step-token-0123456789"
            };
            request(method, &path, token, body)
        }
        _ => input.to_vec(),
    };
    let reply = exchange(target.addr, &bytes);
    for line in reply.split(|&b| b == b'\n') {
        if line.starts_with(b"HTTP/1.1 500") {
            panic!(
                "the server answered 500 to {:?}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)]),
                String::from_utf8_lossy(&reply)
            );
        }
    }
});
