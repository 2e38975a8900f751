//! What the server's integration tests share: a server on a temporary directory and a small
//! HTTP client.
#![allow(dead_code, clippy::unwrap_used)] // Test code; not every test uses every helper.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use switchyard_server::{Config, RunningServer, Server, Token};

/// The token every test server accepts.
pub const TOKEN: &str = "test-token-0123456789abcdef";

/// A config for a loopback server on `dir`, delivering to loopback addresses.
pub fn config(dir: &std::path::Path) -> Config {
    let mut config = Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_owned(),
        tokens: vec![Token::new(TOKEN)],
        shutdown_grace: Duration::from_secs(5),
        ..Config::default()
    };
    config.allow_subnet("127.0.0.0/8".parse().unwrap());
    config.delivery.retry.schedule = vec![Duration::from_millis(200); 3];
    config.delivery.retry.jitter = 0.0;
    config
}

/// Starts a server on `dir`.
pub async fn start(dir: &std::path::Path) -> RunningServer {
    Server::start(config(dir)).await.unwrap()
}

/// A reply: status, headers and body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

/// A client for one server.
#[derive(Clone)]
pub struct Api {
    addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    token: Option<String>,
}

impl Api {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            client: Client::builder(TokioExecutor::new()).build_http(),
            token: Some(TOKEN.to_owned()),
        }
    }

    /// The same client with another token (or none).
    pub fn with_token(&self, token: Option<&str>) -> Self {
        Self {
            token: token.map(str::to_owned),
            ..self.clone()
        }
    }

    pub async fn send(&self, method: Method, path: &str, body: impl Into<Bytes>) -> Reply {
        self.send_with(method, path, &[], body).await
    }

    /// [`Api::send`] that gives up with `None` when the request could not be sent whole:
    /// a server that answers 413 before reading an oversized body may close the connection
    /// while the client still writes it (a broken pipe).
    pub async fn try_send(&self, method: Method, path: &str, body: Bytes) -> Option<Reply> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header("content-type", "application/json");
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = self
            .client
            .request(request.body(Full::new(body)).unwrap())
            .await
            .ok()?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.ok()?.to_bytes();
        Some(Reply {
            status,
            headers,
            body,
        })
    }

    /// [`Api::send`] with extra request headers.
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = self
            .client
            .request(request.body(Full::new(body.into())).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, Bytes::new()).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(Method::POST, path, body.to_string()).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send(Method::PUT, path, body.to_string()).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, Bytes::new()).await
    }
}

/// A `switchyard serve` child process, killed when dropped.
pub struct Serve {
    child: std::process::Child,
    pub addr: SocketAddr,
    log: std::path::PathBuf,
}

impl Serve {
    /// Starts the `switchyard` binary with `--config config` and these environment
    /// variables, and waits until it says where it listens (its JSON log goes to a file).
    pub fn start(bin: &str, config: &std::path::Path, envs: &[(&str, &str)]) -> Self {
        let log = config.with_extension("log");
        let file = std::fs::File::create(&log).unwrap();
        let child = std::process::Command::new(bin)
            .args(["serve", "--log-format", "json", "--config"])
            .arg(config)
            .env_remove("RUST_LOG")
            .envs(envs.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        let mut serve = Self {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            log,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not start: {}",
                serve.log()
            );
            assert!(
                serve.child.try_wait().unwrap().is_none(),
                "the server exited: {}",
                serve.log()
            );
            let found = serve.log().lines().find_map(|line| {
                let entry: Value = serde_json::from_str(line).ok()?;
                (entry["message"] == "switchyard serving")
                    .then(|| entry["addr"].as_str().map(str::to_owned))
                    .flatten()
            });
            if let Some(addr) = found {
                serve.addr = addr.parse().unwrap();
                return serve;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a [`recording_receiver`] saw: each request's path, headers and body, in arrival order.
pub type Requests = std::sync::Arc<std::sync::Mutex<Vec<(String, http::HeaderMap, Bytes)>>>;

/// A loopback webhook receiver at `http://addr` (every path is taken): each request's path,
/// headers and body go to `record`, then, after `delay`, it answers 200 `ok`.
pub async fn receiver<F>(delay: Duration, record: F) -> String
where
    F: Fn(String, http::HeaderMap, Bytes) + Send + Sync + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let record = std::sync::Arc::new(record);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let record = std::sync::Arc::clone(&record);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        let record = std::sync::Arc::clone(&record);
                        async move {
                            let path = request.uri().path().to_owned();
                            let headers = request.headers().clone();
                            let body = request.into_body().collect().await?.to_bytes();
                            tokio::time::sleep(delay).await;
                            record(path, headers, body);
                            Ok::<_, hyper::Error>(http::Response::new(Full::new(Bytes::from("ok"))))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    url
}

/// A [`receiver`] that keeps every request in a list.
pub async fn recording_receiver(delay: Duration) -> (String, Requests) {
    let seen = Requests::default();
    let record = std::sync::Arc::clone(&seen);
    let url = receiver(delay, move |path, headers, body| {
        record.lock().unwrap().push((path, headers, body));
    })
    .await;
    (url, seen)
}

/// Svix's OpenAPI document, read at test time from `../shared/conformance/svix/` (or
/// `$SWITCHYARD_CONFORMANCE_DIR/svix/`); `None`, with a notice, where it is absent.
#[allow(clippy::print_stdout)]
pub fn svix_document() -> Option<Value> {
    let dir = match std::env::var_os("SWITCHYARD_CONFORMANCE_DIR") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
        }
    };
    let file = dir.join("svix/openapi.json");
    match std::fs::read(&file) {
        Ok(bytes) => Some(serde_json::from_slice(&bytes).unwrap()),
        Err(error) => {
            println!(
                "NOTICE: {} cannot be read ({error}); skipping the Svix document's operations",
                file.display()
            );
            None
        }
    }
}

/// Every operation of the document: (method, path template).
pub fn svix_operations(document: &Value) -> Vec<(Method, String)> {
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            if matches!(
                method,
                Method::GET
                    | Method::HEAD
                    | Method::POST
                    | Method::PUT
                    | Method::PATCH
                    | Method::DELETE
            ) {
                operations.push((method, path.clone()));
            }
        }
    }
    operations
}

/// A path template with each `{parameter}` replaced by `value`, and `{app_id}` by `app`.
pub fn concrete_for(template: &str, app: &str, value: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').unwrap() + open;
        out.push_str(if &rest[open..=close] == "{app_id}" {
            app
        } else {
            value
        });
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// A path template with every `{parameter}` replaced by `value`.
pub fn concrete(template: &str, value: &str) -> String {
    concrete_for(template, value, value)
}
