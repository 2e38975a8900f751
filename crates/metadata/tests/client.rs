//! The client against misbehaving servers (refusing, late, silent, hanging up), the blocking
//! wrapper, and `WebhookServer`'s shutdown: drain, drain timeout, and real SIGTERM/SIGINT.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use serde_json::json;
use switchyard_metadata::{
    ChannelSink, ClientError, Drained, Interface, MetadataService, SpecSource, WebhookServer,
    blocking,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

fn service() -> MetadataService {
    let (sink, receiver) = ChannelSink::new(64, "https://ci.example.com");
    // Keep the receiver alive for the process: events are accepted, never read.
    std::mem::forget(receiver);
    MetadataService::builder()
        .step(
            "step",
            SpecSource::from_json(r#"{"greeting": "hello"}"#).expect("spec"),
        )
        .sink(sink)
        .build()
        .expect("build")
}

fn client(addr: SocketAddr, retries: u32, timeout: Duration) -> Interface {
    Interface::builder()
        .base_url(format!("http://{addr}"))
        .retries(retries)
        .backoff(Duration::from_millis(40))
        .timeout(timeout)
        .build()
        .expect("client")
}

async fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr")
}

#[tokio::test]
async fn refused_connections_are_retried_then_reported() {
    let addr = free_addr().await;
    let relay = client(addr, 2, Duration::from_secs(5));
    match relay.events().emit(&json!({"a": 1}), None).await {
        Err(ClientError::Transport { attempts, .. }) => assert_eq!(attempts, 3),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_server_that_starts_late_is_reached() {
    let addr = free_addr().await;
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let server = WebhookServer::bind_to(service(), addr)
            .bind()
            .await
            .expect("bind");
        server.serve_until(std::future::pending()).await;
    });
    // Backoff 40, 80, 160, 320 ms: the server is up before the retries run out.
    let relay = client(addr, 5, Duration::from_secs(5));
    // POST is safe to retry here: a refused connection sent nothing.
    relay
        .events()
        .emit(&json!({"a": 1}), None)
        .await
        .expect("emit after retries");
    assert_eq!(relay.get("greeting").await.expect("get"), json!("hello"));
}

/// A server that accepts connections and reads requests, then either never answers or
/// hangs up; counts the requests it saw.
async fn bad_server(hang_up: bool) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                if stream.read(&mut buffer).await.unwrap_or(0) > 0 {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                if hang_up {
                    let _ = stream.shutdown().await;
                } else {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn silent_servers_time_out_and_only_reads_are_retried() {
    let (addr, seen) = bad_server(false).await;
    let relay = client(addr, 1, Duration::from_millis(200));
    match relay.get("greeting").await {
        Err(ClientError::Timeout { attempts, after }) => {
            assert_eq!((attempts, after), (2, Duration::from_millis(200)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(seen.load(Ordering::SeqCst), 2);

    let (addr, seen) = bad_server(false).await;
    let relay = client(addr, 3, Duration::from_millis(200));
    match relay.events().emit(&json!({"a": 1}), None).await {
        Err(ClientError::Timeout { attempts, .. }) => assert_eq!(attempts, 1),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        seen.load(Ordering::SeqCst),
        1,
        "an event may have been taken: never resent"
    );
}

#[tokio::test]
async fn hang_ups_retry_puts_but_not_posts() {
    let (addr, seen) = bad_server(true).await;
    let relay = client(addr, 2, Duration::from_secs(5));
    match relay.outputs().set("x", &1).await {
        Err(ClientError::Transport { attempts, .. }) => assert_eq!(attempts, 3),
        other => panic!("{other:?}"),
    }
    assert_eq!(seen.load(Ordering::SeqCst), 3);

    let (addr, seen) = bad_server(true).await;
    let relay = client(addr, 2, Duration::from_secs(5));
    match relay.workflows().run("w", &json!({})).await {
        Err(ClientError::Transport { attempts, .. }) => assert_eq!(attempts, 1),
        other => panic!("{other:?}"),
    }
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

#[test]
fn blocking_client_outside_a_runtime() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(async {
        WebhookServer::bind_to(service(), "127.0.0.1:0".parse().expect("addr"))
            .bind()
            .await
            .expect("bind")
    });
    let addr = server.local_addr().expect("addr");
    runtime.spawn(server.serve_until(std::future::pending()));

    let relay = blocking::Interface::new(&format!("http://{addr}")).expect("client");
    assert_eq!(relay.get("greeting").expect("get"), json!("hello"));
    relay.outputs().set("o", &json!([1, 2])).expect("set");
    relay
        .events()
        .emit(&json!({"k": "v"}), Some("id"))
        .expect("emit");
    let run = relay.workflows().run("w", &json!({"p": 1})).expect("run");
    assert_eq!(run.run_number, 1);
    relay
        .decorators()
        .set_link("d", "label", "https://example.com")
        .expect("decorator");
    assert!(matches!(
        relay.get("nope"),
        Err(ClientError::NotFound { .. })
    ));
}

#[tokio::test]
async fn blocking_client_refuses_inside_a_runtime() {
    let relay = blocking::Interface::new("http://127.0.0.1:9").expect("client");
    assert!(matches!(relay.get("x"), Err(ClientError::InsideRuntime)));
    // Dropping it here must not panic either.
    drop(relay);
}

/// Answers every request after `delay`.
#[derive(Clone)]
struct Slow {
    delay: Duration,
}

impl<B> tower_service::Service<Request<B>> for Slow {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<B>) -> Self::Future {
        let delay = self.delay;
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            Ok(Response::new(Full::new(Bytes::from_static(b"done"))))
        })
    }
}

async fn slow_request(addr: SocketAddr) -> Result<String, String> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    let mut buffer = [0u8; 1024];
    loop {
        let n = stream.read(&mut buffer).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buffer[..n]);
        if reply.ends_with(b"done") {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// A [`Slow`] server with one request in flight (sent 100 ms before this returns): its
/// address, the stop trigger, and the serving task.
async fn slow_server_with_request(
    delay: Duration,
    drain: Duration,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Drained>,
    tokio::task::JoinHandle<Result<String, String>>,
) {
    let server = WebhookServer::bind_to(Slow { delay }, "127.0.0.1:0".parse().expect("addr"))
        .drain_timeout(drain)
        .bind()
        .await
        .expect("bind");
    let addr = server.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve_until(async {
        let _ = stopped.await;
    }));
    let request = tokio::spawn(slow_request(addr));
    tokio::time::sleep(Duration::from_millis(100)).await;
    (addr, stop, serving, request)
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests() {
    let (addr, stop, serving, request) =
        slow_server_with_request(Duration::from_millis(300), Duration::from_secs(5)).await;
    let _ = stop.send(());
    let reply = request.await.expect("join").expect("request");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert_eq!(serving.await.expect("join"), Drained::Cleanly);
    // No longer listening.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn drain_is_bounded() {
    let (_, stop, serving, _request) =
        slow_server_with_request(Duration::from_secs(30), Duration::from_millis(200)).await;
    let started = Instant::now();
    let _ = stop.send(());
    assert_eq!(serving.await.expect("join"), Drained::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn bad_port_is_a_typed_error() {
    // PORT is read from the environment: a child process gets its own.
    let output = std::process::Command::new(std::env::current_exe().expect("exe"))
        .args(["--exact", "signal_child", "--nocapture"])
        .env("SWITCHYARD_SIGNAL_CHILD", "1")
        .env("PORT", "eighty")
        .output()
        .expect("child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("CHILD ERROR PORT=\"eighty\" is not a port number"),
        "{stdout}"
    );
}

/// Run by `signals_shut_the_server_down` in a child process of this test binary: serves on
/// `PORT` until a signal, printing the port and how the serve ended.
#[test]
#[allow(clippy::print_stdout)] // the parent test reads this child's stdout
fn signal_child() {
    if std::env::var_os("SWITCHYARD_SIGNAL_CHILD").is_none() {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let server = match WebhookServer::from_env(service()) {
            Ok(server) => server,
            Err(e) => {
                println!("CHILD ERROR {e}");
                return;
            }
        };
        let server = server
            .drain_timeout(Duration::from_secs(2))
            .bind()
            .await
            .expect("bind");
        println!("CHILD PORT {}", server.local_addr().expect("addr").port());
        match server.serve_forever().await {
            Ok(()) => println!("CHILD STOPPED"),
            Err(e) => println!("CHILD ERROR {e}"),
        }
    });
}

#[cfg(unix)]
#[test]
fn signals_shut_the_server_down() {
    use std::io::{BufRead as _, BufReader};
    use std::process::{Command, Stdio};

    for signal in ["TERM", "INT"] {
        let mut child = Command::new(std::env::current_exe().expect("exe"))
            .args(["--exact", "signal_child", "--nocapture", "--test-threads=1"])
            .env("SWITCHYARD_SIGNAL_CHILD", "1")
            .env("PORT", "0")
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn");
        // A watchdog, so a child that never starts or never stops cannot hang the suite.
        let pid = child.id().to_string();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(60));
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        });
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let port: u16 = lines
            .by_ref()
            .map_while(Result::ok)
            // libtest prints `test signal_child ... ` on the same line, before ours.
            .find_map(|line| {
                line.split_once("CHILD PORT ")
                    .map(|(_, port)| port.trim().to_owned())
            })
            .expect("child printed its port")
            .parse()
            .expect("port");
        let relay = blocking::Interface::new(&format!("http://127.0.0.1:{port}")).expect("client");
        assert_eq!(relay.get("greeting").expect("served"), json!("hello"));

        let status = Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        let exit = child.wait().expect("wait");
        assert!(exit.success(), "SIG{signal}: child exited with {exit}");
        assert!(
            rest.iter().any(|l| l.contains("CHILD STOPPED")),
            "SIG{signal}: {rest:?}"
        );
    }
}
