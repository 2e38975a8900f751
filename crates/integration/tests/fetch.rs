//! `ExecutionContext::fetch` against a loopback hyper server that misbehaves on demand: query
//! and body encoding, bearer injection, 429 and other statuses, retries (and what is never
//! retried), timeouts, slow bodies, resets, redirects and body limits.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use switchyard_integration::{Auth, ExecutionContext, FetchError, RequestConfig, ResponseData};
use tokio::net::TcpListener;

/// A body that sends its first half, waits, then sends the rest.
struct SlowBody {
    parts: Vec<Bytes>,
    delay: Pin<Box<tokio::time::Sleep>>,
    waited: bool,
}

impl Body for SlowBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.parts.len() == 1 && !self.waited {
            if self.delay.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.waited = true;
        }
        if self.parts.is_empty() {
            return Poll::Ready(None);
        }
        let part = self.parts.remove(0);
        Poll::Ready(Some(Ok(Frame::data(part))))
    }
}

type Reply = Response<http_body_util::combinators::BoxBody<Bytes, Infallible>>;

fn reply(status: u16, content_type: &str, body: impl Into<Bytes>) -> Reply {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(http_body_util::Full::new(body.into()).boxed())
        .expect("response")
}

/// Counts hits per path (query excluded).
#[derive(Default)]
struct Hits(std::sync::Mutex<BTreeMap<String, usize>>);

impl Hits {
    fn bump(&self, path: &str) -> usize {
        let mut map = self.0.lock().expect("lock");
        let n = map.entry(path.to_owned()).or_default();
        *n += 1;
        *n
    }
    fn get(&self, path: &str) -> usize {
        self.0.lock().expect("lock").get(path).copied().unwrap_or(0)
    }
}

async fn handle(
    request: Request<Incoming>,
    hits: Arc<Hits>,
    addr: SocketAddr,
) -> Result<Reply, Infallible> {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let n = hits.bump(&path);
    let method = request.method().to_string();
    let headers: BTreeMap<String, String> = request
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_owned()))
        .collect();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let echo = || {
        reply(
            200,
            "application/json",
            json!({"method": method, "path": path, "query": query, "headers": headers,
                   "body": String::from_utf8_lossy(&body)})
            .to_string(),
        )
    };
    Ok(match path.as_str() {
        "/echo" => echo(),
        "/text" => reply(200, "text/plain; charset=utf-8", "hello"),
        "/empty" => reply(204, "text/plain", ""),
        "/bad-json" => reply(200, "application/json", "{not json"),
        "/missing" => reply(404, "application/json", r#"{"error":"no such thing"}"#),
        "/error" => reply(500, "text/plain", "internal error"),
        "/limited" => {
            let mut response = reply(429, "text/plain", "slow down");
            if !query.is_empty() {
                let after = query
                    .trim_start_matches("after=")
                    .replace("%20", " ")
                    .replace("%2C", ",");
                response
                    .headers_mut()
                    .insert("retry-after", after.parse().expect("header"));
            }
            response
        }
        // Fails with 500 once, to show that statuses are not retried.
        "/flaky-status" => reply(if n == 1 { 500 } else { 200 }, "text/plain", "x"),
        // Too slow on the first attempt, fine on the next.
        "/slow-then-fast" => {
            if n == 1 {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            echo()
        }
        "/hang" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            echo()
        }
        "/slow-body" => Response::builder()
            .header("content-type", "application/json")
            .body(
                SlowBody {
                    parts: vec![Bytes::from_static(b"{\"a\":"), Bytes::from_static(b"1}")],
                    delay: Box::pin(tokio::time::sleep(Duration::from_secs(5))),
                    waited: false,
                }
                .boxed(),
            )
            .expect("response"),
        "/big" => reply(200, "text/plain", vec![b'x'; 64 * 1024]),
        "/redirect-local" => {
            let mut response = reply(302, "text/plain", "");
            response
                .headers_mut()
                .insert("location", "/echo?from=redirect".parse().expect("h"));
            response
        }
        "/redirect-post" => {
            let mut response = reply(303, "text/plain", "");
            response
                .headers_mut()
                .insert("location", "/echo".parse().expect("h"));
            response
        }
        "/redirect-foreign" => {
            // Same server, different origin (localhost instead of 127.0.0.1).
            let mut response = reply(307, "text/plain", "");
            let to = format!("http://localhost:{}/echo", addr.port());
            response
                .headers_mut()
                .insert("location", to.parse().expect("h"));
            response
        }
        "/redirect-loop" => {
            let mut response = reply(302, "text/plain", "");
            response
                .headers_mut()
                .insert("location", "/redirect-loop".parse().expect("h"));
            response
        }
        _ => reply(404, "text/plain", "unknown test route"),
    })
}

struct Server {
    addr: SocketAddr,
    hits: Arc<Hits>,
}

impl Server {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(Hits::default());
        let served = Arc::clone(&hits);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let hits = Arc::clone(&served);
                tokio::spawn(async move {
                    let service =
                        service_fn(move |request| handle(request, Arc::clone(&hits), addr));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// A listener that reads each request and then resets the connection (RST), counting them.
async fn resetting_listener() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            seen.fetch_add(1, Ordering::SeqCst);
            let mut buffer = [0u8; 4096];
            let _ = stream.readable().await;
            let _ = stream.try_read(&mut buffer);
            let _ = stream.set_zero_linger();
            drop(stream);
        }
    });
    (addr, count)
}

fn quick() -> RequestConfig {
    RequestConfig::new()
        .backoff(Duration::from_millis(10))
        .timeout(Duration::from_secs(5))
}

fn plain() -> ExecutionContext {
    ExecutionContext::builder().request_config(quick()).build()
}

fn echoed(data: &ResponseData) -> &Value {
    data.as_json().expect("echo answers JSON")
}

#[tokio::test]
async fn query_parameters_are_encoded_like_the_original_and_sent_once() {
    let server = Server::start().await;
    let ctx = plain();
    let response = ctx
        .fetch(server.url("/echo?fixed=1"))
        .param("q", "a b")
        .param("n", 3)
        .param("skip", Value::Null)
        .param("tags", json!(["x", "y"]))
        .await
        .expect("ok");
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        echoed(&response.data)["query"],
        "fixed=1&q=a+b&n=3&tags=%5B%22x%22%2C%22y%22%5D"
    );
    assert_eq!(echoed(&response.data)["method"], "GET");
    let agent = echoed(&response.data)["headers"]["user-agent"]
        .as_str()
        .expect("ua");
    assert!(agent.starts_with("switchyard-integration/"), "{agent}");
}

#[tokio::test]
async fn json_and_form_bodies() {
    let server = Server::start().await;
    let ctx = plain();
    let response = ctx
        .fetch(server.url("/echo"))
        .method(Method::POST)
        .json(&json!({"title": "hello", "n": 1}))
        .await
        .expect("ok");
    let echo = echoed(&response.data);
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["headers"]["content-type"], "application/json");
    assert_eq!(
        serde_json::from_str::<Value>(echo["body"].as_str().expect("body")).expect("json"),
        json!({"title": "hello", "n": 1})
    );

    let response = ctx
        .fetch(server.url("/echo"))
        .method(Method::POST)
        .form(&json!({"grant_type": "refresh_token", "scope": "a b", "skip": null}))
        .await
        .expect("ok");
    let echo = echoed(&response.data);
    assert_eq!(
        echo["headers"]["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(echo["body"], "grant_type=refresh_token&scope=a+b");

    // An explicit Content-Type header wins over the body's.
    let response = ctx
        .fetch(server.url("/echo"))
        .method(Method::PUT)
        .body("<x/>")
        .content_type("text/plain")
        .header("Content-Type", "application/xml")
        .await
        .expect("ok");
    let echo = echoed(&response.data);
    assert_eq!(echo["headers"]["content-type"], "application/xml");
    assert_eq!(echo["body"], "<x/>");

    let error = ctx
        .fetch(server.url("/echo"))
        .form(&json!([1, 2]))
        .await
        .expect_err("not an object");
    assert!(matches!(error, FetchError::Encode(_)), "{error:?}");
}

#[tokio::test]
async fn bearer_tokens_are_injected_only_for_platform_oauth() {
    let server = Server::start().await;
    let oauth = ExecutionContext::builder()
        .auth(Auth::bearer("tok-1"))
        .request_config(quick())
        .build();
    let response = oauth.fetch(server.url("/echo")).await.expect("ok");
    assert_eq!(
        echoed(&response.data)["headers"]["authorization"],
        "Bearer tok-1"
    );

    // The caller's header wins, whatever its case.
    let response = oauth
        .fetch(server.url("/echo"))
        .header("authorization", "Basic abc")
        .await
        .expect("ok");
    assert_eq!(
        echoed(&response.data)["headers"]["authorization"],
        "Basic abc"
    );

    for envelope in [
        json!({"auth_type": "Custom", "credentials": {"access_token": "tok-2"}}),
        json!({"auth_type": "ApiKey", "credentials": {"access_token": "tok-3"}}),
    ] {
        let ctx = ExecutionContext::builder()
            .auth_envelope(&envelope)
            .expect("envelope")
            .request_config(quick())
            .build();
        let response = ctx.fetch(server.url("/echo")).await.expect("ok");
        assert!(
            echoed(&response.data)["headers"]
                .get("authorization")
                .is_none()
        );
    }
    // No auth at all: nothing injected.
    let response = plain().fetch(server.url("/echo")).await.expect("ok");
    assert!(
        echoed(&response.data)["headers"]
            .get("authorization")
            .is_none()
    );
    // The token never shows in Debug output.
    assert!(!format!("{oauth:?}").contains("tok-1"));
}

#[tokio::test]
async fn bodies_are_parsed_by_content_type() {
    let server = Server::start().await;
    let ctx = plain();
    let text = ctx.fetch(server.url("/text")).await.expect("ok");
    assert_eq!(text.data, ResponseData::Text("hello".into()));
    let empty = ctx.fetch(server.url("/empty")).await.expect("ok");
    assert_eq!(empty.status, StatusCode::NO_CONTENT);
    assert_eq!(empty.data, ResponseData::Empty);
    let bad = ctx.fetch(server.url("/bad-json")).await.expect("ok");
    assert_eq!(bad.data, ResponseData::Text("{not json".into()));
    let echo = ctx.fetch(server.url("/echo")).await.expect("ok");
    #[derive(serde::Deserialize)]
    struct Echo {
        method: String,
    }
    assert_eq!(echo.json::<Echo>().expect("typed").method, "GET");
}

#[tokio::test]
async fn rate_limits_carry_retry_after_and_are_not_retried() {
    let server = Server::start().await;
    let ctx = plain();
    for (query, want) in [
        ("?after=7", Duration::from_secs(7)),
        ("", Duration::from_secs(60)),
        (
            "?after=Thu,%2001%20Jan%201970%2000:00:00%20GMT",
            Duration::ZERO,
        ),
    ] {
        let error = ctx
            .fetch(server.url(&format!("/limited{query}")))
            .await
            .expect_err("429");
        let FetchError::RateLimited { retry_after, body } = &error else {
            panic!("{error:?}")
        };
        assert_eq!(*retry_after, want, "{query}");
        assert_eq!(body, "slow down");
        assert_eq!(error.status(), Some(StatusCode::TOO_MANY_REQUESTS));
    }
    assert_eq!(server.hits.get("/limited"), 3);
}

#[tokio::test]
async fn other_statuses_are_http_errors_with_the_parsed_body() {
    let server = Server::start().await;
    let ctx = plain();
    let error = ctx.fetch(server.url("/missing")).await.expect_err("404");
    let FetchError::Http { status, body } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(*status, StatusCode::NOT_FOUND);
    assert_eq!(body, &ResponseData::Json(json!({"error": "no such thing"})));
    assert!(error.to_string().starts_with("HTTP 404: "), "{error}");

    let error = ctx
        .fetch(server.url("/flaky-status"))
        .await
        .expect_err("500");
    assert_eq!(error.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
    assert_eq!(
        server.hits.get("/flaky-status"),
        1,
        "a status is an answer, not retried"
    );
}

#[tokio::test]
async fn timeouts_are_retried_for_idempotent_methods_without_duplicating_the_query() {
    let server = Server::start().await;
    let ctx = ExecutionContext::builder()
        .request_config(quick().timeout(Duration::from_millis(300)))
        .build();
    let response = ctx
        .fetch(server.url("/slow-then-fast"))
        .param("page", 2)
        .await
        .expect("second attempt succeeds");
    assert_eq!(echoed(&response.data)["query"], "page=2");
    assert_eq!(server.hits.get("/slow-then-fast"), 2);
}

#[tokio::test]
async fn a_post_that_timed_out_is_not_repeated_unless_asked() {
    let server = Server::start().await;
    let ctx = ExecutionContext::builder()
        .request_config(quick().timeout(Duration::from_millis(200)).max_retries(2))
        .build();
    let error = ctx
        .fetch(server.url("/hang"))
        .method(Method::POST)
        .json(&json!({"charge": 100}))
        .await
        .expect_err("times out");
    assert!(
        matches!(error, FetchError::Timeout { attempts: 1, .. }),
        "{error:?}"
    );
    assert_eq!(server.hits.get("/hang"), 1);

    let error = ctx
        .fetch(server.url("/hang"))
        .method(Method::POST)
        .retry_non_idempotent(true)
        .await
        .expect_err("times out");
    assert!(
        matches!(error, FetchError::Timeout { attempts: 3, .. }),
        "{error:?}"
    );
    assert_eq!(server.hits.get("/hang"), 4);
}

#[tokio::test]
async fn a_slow_body_counts_against_the_timeout() {
    let server = Server::start().await;
    let ctx = ExecutionContext::builder()
        .request_config(quick().timeout(Duration::from_millis(300)).max_retries(1))
        .build();
    let started = Instant::now();
    let error = ctx.fetch(server.url("/slow-body")).await.expect_err("slow");
    assert!(
        matches!(error, FetchError::Timeout { attempts: 2, .. }),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(server.hits.get("/slow-body"), 2);
}

#[tokio::test]
async fn resets_are_retried_for_get_but_not_for_post() {
    let (addr, count) = resetting_listener().await;
    let ctx = ExecutionContext::builder()
        .request_config(quick().max_retries(3))
        .build();
    let url = format!("http://{addr}/reset");
    let error = ctx.fetch(&url).await.expect_err("reset");
    assert!(
        matches!(error, FetchError::Connect { attempts: 4, .. }),
        "{error:?}"
    );
    assert_eq!(count.load(Ordering::SeqCst), 4);

    let error = ctx
        .fetch(&url)
        .method(Method::POST)
        .json(&json!({}))
        .await
        .expect_err("reset");
    assert!(
        matches!(error, FetchError::Connect { attempts: 1, .. }),
        "{error:?}"
    );
    assert_eq!(count.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn refused_connections_are_retried_even_for_post() {
    // Bind then drop: nothing listens on the port any more.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let ctx = ExecutionContext::builder()
        .request_config(quick().max_retries(2))
        .build();
    let error = ctx
        .fetch(format!("http://127.0.0.1:{port}/"))
        .method(Method::POST)
        .await
        .expect_err("refused");
    assert!(
        matches!(error, FetchError::Connect { attempts: 3, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn redirects_are_followed_without_leaking_credentials() {
    let server = Server::start().await;
    let ctx = ExecutionContext::builder()
        .auth(Auth::bearer("tok-r"))
        .request_config(quick())
        .build();
    let response = ctx
        .fetch(server.url("/redirect-local"))
        .await
        .expect("followed");
    let echo = echoed(&response.data);
    assert_eq!(echo["query"], "from=redirect");
    assert_eq!(echo["headers"]["authorization"], "Bearer tok-r");

    let response = ctx
        .fetch(server.url("/redirect-post"))
        .method(Method::POST)
        .json(&json!({"a": 1}))
        .await
        .expect("followed");
    let echo = echoed(&response.data);
    assert_eq!(echo["method"], "GET", "303 turns POST into GET");
    assert_eq!(echo["body"], "");

    let response = ctx
        .fetch(server.url("/redirect-foreign"))
        .await
        .expect("followed");
    let echo = echoed(&response.data);
    assert!(echo["headers"].get("authorization").is_none(), "{echo}");

    let error = ctx
        .fetch(server.url("/redirect-loop"))
        .await
        .expect_err("loop");
    assert_eq!(error.status(), Some(StatusCode::FOUND));
    assert_eq!(server.hits.get("/redirect-loop"), 11);

    let no_redirects = ExecutionContext::builder()
        .request_config(quick().max_redirects(0))
        .build();
    let error = no_redirects
        .fetch(server.url("/redirect-local"))
        .await
        .expect_err("3xx");
    assert_eq!(error.status(), Some(StatusCode::FOUND));
}

#[tokio::test]
async fn oversized_bodies_and_bad_input_are_typed_errors() {
    let server = Server::start().await;
    let ctx = ExecutionContext::builder()
        .request_config(quick().max_response_bytes(1024))
        .build();
    let error = ctx.fetch(server.url("/big")).await.expect_err("too big");
    assert!(
        matches!(error, FetchError::BodyTooLarge { limit: 1024 }),
        "{error:?}"
    );

    let error = ctx.fetch("not a url").await.expect_err("bad url");
    assert!(matches!(error, FetchError::InvalidUrl { .. }), "{error:?}");
    let error = ctx
        .fetch(server.url("/echo"))
        .header("bad header", "x")
        .await
        .expect_err("bad header");
    assert!(
        matches!(error, FetchError::InvalidHeader { .. }),
        "{error:?}"
    );
    let error = ctx
        .fetch(server.url("/echo"))
        .header("x-ok", "line\nbreak")
        .await
        .expect_err("bad value");
    assert!(
        matches!(error, FetchError::InvalidHeader { .. }),
        "{error:?}"
    );
}

#[test]
fn request_config_reads_the_original_shape_with_any_key_missing() {
    let config: RequestConfig = serde_json::from_value(json!({"timeout": 10})).expect("config");
    assert_eq!(config.timeout, Some(Duration::from_secs(10)));
    assert_eq!(config.max_retries, None);
    let config: RequestConfig = serde_json::from_value(json!({"max_retries": 0})).expect("config");
    assert_eq!(config.max_retries, Some(0));
    assert_eq!(config.timeout, None);
    let config: RequestConfig = serde_json::from_value(json!({})).expect("config");
    assert_eq!(config, RequestConfig::default());
    assert!(serde_json::from_value::<RequestConfig>(json!({"timeout": -1})).is_err());
}
