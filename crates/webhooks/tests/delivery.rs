//! The delivery engine against real loopback receivers: what goes on the wire, what is
//! recorded, how failures are retried (on a clock the tests move by hand), and the limits.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use switchyard_webhooks::delivery::{AddressPolicy, DeliveryConfig, DeliveryEngine, Notification};
use switchyard_webhooks::store::{AttemptFilter, MemoryStore, SqliteStore, Store};
use switchyard_webhooks::{
    ApplicationSpec, AttemptStatus, AttemptTrigger, Clock, DeliveryStatus, EndpointSpec,
    EventTypeName, ListOptions, Registry, RegistryConfig, Secret, Verifier,
};

// ----- receivers -----

/// What a receiver saw.
#[derive(Debug, Clone)]
struct Seen {
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
}

/// How a receiver answers the n-th request (0-based).
type Behaviour = Arc<dyn Fn(usize) -> Answer + Send + Sync>;

#[derive(Clone)]
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

impl Answer {
    fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: format!("status {status}"),
            delay: Duration::ZERO,
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

struct Receiver {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
}

impl Receiver {
    async fn start(behaviour: impl Fn(usize) -> Answer + Send + Sync + 'static) -> Self {
        let behaviour: Behaviour = Arc::new(behaviour);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let (seen2, in2, max2) = (seen.clone(), in_flight.clone(), max_in_flight.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (seen, behaviour, in_flight, max_in_flight) =
                    (seen2.clone(), behaviour.clone(), in2.clone(), max2.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let (seen, behaviour, in_flight, max_in_flight) = (
                            seen.clone(),
                            behaviour.clone(),
                            in_flight.clone(),
                            max_in_flight.clone(),
                        );
                        async move {
                            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                            max_in_flight.fetch_max(now, Ordering::SeqCst);
                            let (parts, body) = request.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            let n = {
                                let mut seen = seen.lock().unwrap();
                                seen.push(Seen {
                                    headers: parts.headers,
                                    body,
                                    at: Instant::now(),
                                });
                                seen.len() - 1
                            };
                            let answer = behaviour(n);
                            tokio::time::sleep(answer.delay).await;
                            in_flight.fetch_sub(1, Ordering::SeqCst);
                            let mut response = Response::builder().status(answer.status);
                            for (name, value) in answer.headers {
                                response = response.header(name, value);
                            }
                            Ok::<_, Infallible>(
                                response.body(Full::new(Bytes::from(answer.body))).unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            seen,
            in_flight,
            max_in_flight,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// A listener that takes requests and never answers them; how many connections it took.
async fn black_hole() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                while stream.readable().await.is_ok() {
                    match stream.try_read(&mut buf) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => break,
                    }
                }
            });
        }
    });
    (addr, accepted)
}

/// A listener that accepts connections and drops them at once (connection reset).
async fn resetting_listener() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            // Read nothing, answer nothing: the client sees its connection closed.
            drop(stream);
        }
    });
    addr
}

// ----- harness -----

struct Harness<S> {
    registry: Arc<Registry<S>>,
    engine: DeliveryEngine<S>,
    now_micros: Arc<AtomicI64>,
    visit: EventTypeName,
}

fn loopback() -> AddressPolicy {
    AddressPolicy::default().allow("127.0.0.0/8".parse().unwrap())
}

fn test_config() -> DeliveryConfig {
    DeliveryConfig {
        addresses: loopback(),
        ..DeliveryConfig::default()
    }
}

async fn harness_with<S: Store>(store: S, config: DeliveryConfig, manual: bool) -> Harness<S> {
    let now_micros = Arc::new(AtomicI64::new(Utc::now().timestamp_micros()));
    let source = now_micros.clone();
    let clock = if manual {
        Clock::from_fn(move || {
            DateTime::from_timestamp_micros(source.load(Ordering::SeqCst)).unwrap()
        })
    } else {
        Clock::system()
    };
    let registry = Arc::new(Registry::with_config(
        store,
        RegistryConfig {
            clock,
            ..RegistryConfig::default()
        },
    ));
    let visit = EventTypeName::new("origin.visit").unwrap();
    registry
        .create_event_type(visit.clone(), "visits", json!({"type": "object"}))
        .await
        .unwrap();
    let engine = DeliveryEngine::new(registry.clone(), config).unwrap();
    Harness {
        registry,
        engine,
        now_micros,
        visit,
    }
}

async fn harness(config: DeliveryConfig) -> Harness<MemoryStore> {
    harness_with(MemoryStore::new(), config, true).await
}

impl<S: Store> Harness<S> {
    fn advance(&self, by: Duration) {
        self.now_micros
            .fetch_add(by.as_micros() as i64, Ordering::SeqCst);
    }

    fn now(&self) -> DateTime<Utc> {
        self.registry.config().clock.now()
    }

    async fn endpoint(&self, spec: EndpointSpec) -> switchyard_webhooks::Endpoint {
        self.registry
            .create_endpoint(spec.event_type(self.visit.clone()))
            .await
            .unwrap()
    }

    async fn send(&self, body: &str) -> switchyard_webhooks::MessageId {
        self.registry
            .send(&self.visit, body, None)
            .await
            .unwrap()
            .unwrap()
            .0
    }

    async fn attempts(&self) -> Vec<switchyard_webhooks::Attempt> {
        self.registry
            .list_attempts(&AttemptFilter::default(), &ListOptions::default())
            .await
            .unwrap()
            .items
    }
}

// ----- what goes on the wire -----

#[tokio::test]
async fn delivers_the_stored_bytes_signed_with_every_live_key() {
    let h = harness(test_config()).await;
    let receiver = Receiver::start(|_| Answer::status(200)).await;
    let old: Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse().unwrap();
    let endpoint = h
        .endpoint(
            EndpointSpec::new(receiver.url())
                .secret(old.clone())
                .header("x-tenant", "42")
                .header("authorization", "Bearer do-not-log-me"),
        )
        .await;
    h.registry
        .rotate_secret(endpoint.id.as_str(), None)
        .await
        .unwrap();
    let new = h
        .registry
        .endpoint_secret(endpoint.id.as_str())
        .await
        .unwrap();
    let body = "{\"origin\":  \"https://example.org\",\n \"z\": 1, \"a\": 2}";
    let message = h.send(body).await;

    let report = h.engine.run_due().await.unwrap();
    assert_eq!(report.succeeded, 1);

    let seen = receiver.seen();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.body, body.as_bytes(), "payload bytes unchanged");
    let header = |name: &str| request.headers[name].to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "application/json");
    assert!(header("user-agent").starts_with("Switchyard-Webhooks/"));
    assert_eq!(header("x-tenant"), "42");
    assert_eq!(header("authorization"), "Bearer do-not-log-me");
    assert_eq!(header("webhook-id"), message.as_str());
    let signatures: Vec<String> = header("webhook-signature")
        .split(' ')
        .map(str::to_owned)
        .collect();
    assert_eq!(signatures.len(), 2, "one signature per live key");
    // Current key first: the first signature verifies with the new key alone.
    let mut only_first = request.headers.clone();
    only_first.insert("webhook-signature", signatures[0].parse().unwrap());
    let now = h.now().timestamp();
    Verifier::new(new.clone())
        .verify_at(&only_first, &request.body, now)
        .unwrap();
    Verifier::new(old)
        .verify_at(&request.headers, &request.body, now)
        .unwrap();

    let attempts = h.attempts().await;
    assert_eq!(attempts.len(), 1);
    let attempt = &attempts[0];
    assert_eq!(attempt.status, AttemptStatus::Success);
    assert_eq!(attempt.response_status, 200);
    assert_eq!(attempt.response, "status 200");
    assert_eq!(attempt.trigger, AttemptTrigger::Scheduled);
    assert_eq!(attempt.url, receiver.url());
    assert!(attempt.id.as_str().starts_with("atmpt_"));
    assert_eq!(
        header("webhook-timestamp"),
        attempt.timestamp.timestamp().to_string(),
        "the timestamp sent is the second the attempt is recorded at"
    );
    assert_eq!(attempt.headers.get("authorization"), Some("<redacted>"));
    assert_eq!(attempt.headers.get("x-tenant"), Some("42"));
    assert_eq!(
        attempt.headers.get("webhook-signature"),
        Some(header("webhook-signature").as_str())
    );
    let delivery = &h.registry.deliveries(&message).await.unwrap()[0];
    assert_eq!(delivery.status, DeliveryStatus::Succeeded);
    assert_eq!(delivery.attempts, 1);
}

#[tokio::test]
async fn response_bodies_are_kept_up_to_20_kb() {
    let h = harness(test_config()).await;
    let receiver = Receiver::start(|_| {
        let mut answer = Answer::status(500);
        answer.body = "x".repeat(100_000);
        answer
    })
    .await;
    h.endpoint(EndpointSpec::new(receiver.url())).await;
    h.send("{}").await;
    h.engine.run_due().await.unwrap();
    let attempt = &h.attempts().await[0];
    assert_eq!(attempt.response_status, 500);
    assert_eq!(attempt.response.len(), 20 * 1024);
}

// ----- failures and retries -----

/// Runs a delivery to `receiver` through `tries` attempts (or until it ends) and answers
/// the notifications about the delivery announced meanwhile.
async fn notes_over(
    tries: usize,
    answer: impl Fn(usize) -> Answer + Send + Sync + 'static,
) -> Vec<Notification> {
    let h = harness(test_config()).await;
    let mut notes = h.engine.notifications();
    let receiver = Receiver::start(answer).await;
    let endpoint = h.endpoint(EndpointSpec::new(receiver.url())).await;
    let message = h.send("{}").await;
    for _ in 0..tries {
        h.engine.run_due().await.unwrap();
        let delivery = &h.registry.deliveries(&message).await.unwrap()[0];
        if delivery.status != DeliveryStatus::Pending {
            break;
        }
        h.advance((delivery.next_attempt_at - h.now()).to_std().unwrap());
    }
    let mut seen = Vec::new();
    while let Ok(note) = notes.try_recv() {
        match &note {
            Notification::Failing(n) | Notification::Recovered(n) => {
                assert_eq!(n.endpoint_id, endpoint.id);
                assert_eq!(n.message_id, message);
                seen.push(note);
            }
            // The endpoint's own recovery is not what these tests look at.
            Notification::EndpointRecovered(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    seen
}

#[tokio::test]
async fn a_delivery_that_fails_four_times_and_then_succeeds_is_announced_recovered() {
    let notes = notes_over(8, |n| Answer::status(if n < 4 { 503 } else { 204 })).await;
    let kinds: Vec<_> = notes
        .iter()
        .map(|note| match note {
            Notification::Failing(n) => ("failing", n.attempts, n.last_attempt.response_status),
            Notification::Recovered(n) => ("recovered", n.attempts, n.last_attempt.response_status),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(kinds, [("failing", 4, 503), ("recovered", 5, 204)]);
}

#[tokio::test]
async fn fewer_failures_than_the_threshold_announce_nothing() {
    let notes = notes_over(8, |n| Answer::status(if n < 3 { 500 } else { 200 })).await;
    assert!(notes.is_empty(), "{notes:?}");
}

#[tokio::test]
async fn server_errors_retry_on_the_schedule_until_exhausted() {
    let h = harness(test_config()).await;
    let mut notes = h.engine.notifications();
    let receiver = Receiver::start(|_| Answer::status(500)).await;
    let endpoint = h.endpoint(EndpointSpec::new(receiver.url())).await;
    let message = h.send("{}").await;
    let schedule = h.engine.config().retry.schedule.clone();
    for attempt in 1..=8u32 {
        let report = h.engine.run_due().await.unwrap();
        assert_eq!(report.total(), 1, "attempt {attempt}");
        let delivery = &h.registry.deliveries(&message).await.unwrap()[0];
        assert_eq!(delivery.attempts, attempt);
        if attempt < 8 {
            assert_eq!(delivery.status, DeliveryStatus::Pending);
            let delay = (delivery.next_attempt_at - h.now()).to_std().unwrap();
            let base = schedule[attempt as usize - 1];
            assert!(
                delay >= base.mul_f64(0.8) && delay <= base.mul_f64(1.2),
                "attempt {attempt}: {delay:?} not within 20% of {base:?}"
            );
            // Not due a moment before; due once the delay has passed.
            h.advance(delay - Duration::from_millis(1));
            assert_eq!(h.engine.run_due().await.unwrap().total(), 0);
            h.advance(Duration::from_millis(1));
        } else {
            assert_eq!(delivery.status, DeliveryStatus::Exhausted);
        }
    }
    assert_eq!(receiver.count(), 8);
    let attempts = h.attempts().await;
    assert_eq!(attempts.len(), 8);
    assert!(
        attempts
            .iter()
            .all(|a| a.status == AttemptStatus::Failed && a.response_status == 500)
    );
    let mut attempts = attempts;
    attempts.sort_by(|a, b| a.id.cmp(&b.id));
    // The fourth failure is announced, then the last.
    let Notification::Failing(failing) = notes.try_recv().unwrap() else {
        panic!("the fourth failure is announced first");
    };
    assert_eq!(failing.attempts, 4);
    assert_eq!(failing.last_attempt.id, attempts[3].id);
    let Notification::Exhausted(exhausted) = notes.try_recv().unwrap() else {
        panic!("then the exhaustion");
    };
    assert_eq!(exhausted.message_id, message);
    assert_eq!(exhausted.endpoint_id, endpoint.id);
    assert_eq!(exhausted.app_id, endpoint.app);
    assert_eq!(exhausted.attempts, 8);
    assert_eq!(exhausted.last_attempt.id, attempts[7].id);
    assert_eq!(exhausted.last_attempt.response_status, 500);
    assert_eq!(exhausted.last_attempt.timestamp, attempts[7].timestamp);
    assert!(notes.try_recv().is_err(), "nothing else is announced");
    // Nothing more happens.
    h.advance(Duration::from_secs(100 * 3600));
    assert_eq!(h.engine.run_due().await.unwrap().total(), 0);
}

#[tokio::test]
async fn retry_after_on_429_and_503_is_honoured() {
    let h = harness(test_config()).await;
    let receiver = Receiver::start(|n| match n {
        0 => Answer::status(429).header("retry-after", "120"),
        1 => Answer::status(503).header("retry-after", "999999999"),
        _ => Answer::status(204),
    })
    .await;
    h.endpoint(EndpointSpec::new(receiver.url())).await;
    let message = h.send("{}").await;
    h.engine.run_due().await.unwrap();
    let delivery = &h.registry.deliveries(&message).await.unwrap()[0];
    assert_eq!(
        (delivery.next_attempt_at - h.now()).to_std().unwrap(),
        Duration::from_secs(120),
        "Retry-After is longer than the 5 s ±20 % step, so it wins"
    );
    h.advance(Duration::from_secs(119));
    assert_eq!(h.engine.run_due().await.unwrap().total(), 0);
    h.advance(Duration::from_secs(1));
    h.engine.run_due().await.unwrap();
    let delivery = &h.registry.deliveries(&message).await.unwrap()[0];
    assert_eq!(
        (delivery.next_attempt_at - h.now()).to_std().unwrap(),
        h.engine.config().retry.max_retry_after,
        "an absurd Retry-After is cut to the bound"
    );
    h.advance(h.engine.config().retry.max_retry_after);
    assert_eq!(h.engine.run_due().await.unwrap().succeeded, 1);
    let codes: Vec<u16> = h
        .attempts()
        .await
        .iter()
        .map(|a| a.response_status)
        .collect();
    assert_eq!(codes, [429, 503, 204]);
}

#[tokio::test]
async fn redirects_are_recorded_not_followed() {
    let h = harness(test_config()).await;
    let target = Receiver::start(|_| Answer::status(200)).await;
    let target_url = target.url();
    let redirecting =
        Receiver::start(move |_| Answer::status(302).header("location", target_url.clone())).await;
    h.endpoint(EndpointSpec::new(redirecting.url())).await;
    let message = h.send("{}").await;
    let report = h.engine.run_due().await.unwrap();
    assert_eq!(report.failed, 1);
    assert_eq!(target.count(), 0, "the redirect was not followed");
    let attempt = &h.attempts().await[0];
    assert_eq!(attempt.response_status, 302);
    assert_eq!(attempt.status, AttemptStatus::Failed);
    assert_eq!(
        h.registry.deliveries(&message).await.unwrap()[0].status,
        DeliveryStatus::Pending
    );
}

#[tokio::test]
async fn timeouts_and_resets_are_failures_with_status_zero() {
    let config = DeliveryConfig {
        request_timeout: Duration::from_millis(300),
        ..test_config()
    };
    let h = harness(config).await;
    let slow = Receiver::start(|_| Answer::status(200).delay(Duration::from_secs(3))).await;
    let reset = resetting_listener().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    }; // dropped: nothing listens there now
    h.endpoint(EndpointSpec::new(slow.url()).uid("slow").unwrap())
        .await;
    h.endpoint(
        EndpointSpec::new(format!("http://{reset}/"))
            .uid("reset")
            .unwrap(),
    )
    .await;
    h.endpoint(
        EndpointSpec::new(format!("http://{closed}/"))
            .uid("closed")
            .unwrap(),
    )
    .await;
    h.send("{}").await;
    let started = Instant::now();
    let report = h.engine.run_due().await.unwrap();
    assert_eq!(report.failed, 3);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the timeout cut the slow one short"
    );
    let attempts = h.attempts().await;
    let by_url: HashMap<String, _> = attempts.iter().map(|a| (a.url.clone(), a)).collect();
    for attempt in &attempts {
        assert_eq!(attempt.response_status, 0, "{attempt:?}");
        assert_eq!(attempt.status, AttemptStatus::Failed);
        assert!(!attempt.response.is_empty(), "a reason is recorded");
    }
    let timed_out = by_url[&slow.url()];
    assert!(
        timed_out.response.contains("timed out"),
        "{}",
        timed_out.response
    );
    assert!(timed_out.duration >= Duration::from_millis(300));
}

// ----- the SSRF guard -----

#[tokio::test]
async fn private_addresses_are_refused_by_default_even_behind_a_name() {
    let h = harness(DeliveryConfig::default()).await;
    let receiver = Receiver::start(|_| Answer::status(200)).await;
    let port = receiver.addr.port();
    h.endpoint(
        EndpointSpec::new(format!("http://127.0.0.1:{port}/"))
            .uid("ip")
            .unwrap(),
    )
    .await;
    h.endpoint(
        EndpointSpec::new(format!("http://localhost:{port}/"))
            .uid("name")
            .unwrap(),
    )
    .await;
    h.endpoint(
        EndpointSpec::new(format!("http://[::ffff:127.0.0.1]:{port}/"))
            .uid("mapped")
            .unwrap(),
    )
    .await;
    h.endpoint(
        EndpointSpec::new("http://169.254.169.254/latest/meta-data/")
            .uid("metadata")
            .unwrap(),
    )
    .await;
    h.send("{}").await;
    let report = h.engine.run_due().await.unwrap();
    assert_eq!(report.failed, 4);
    assert_eq!(receiver.count(), 0, "nothing reached the loopback receiver");
    for attempt in h.attempts().await {
        assert_eq!(attempt.response_status, 0);
        assert!(attempt.response.contains("SSRF"), "{}", attempt.response);
        if attempt.url.contains("localhost") {
            // Behind a name, the attempt (which the endpoint's owner reads) does not say what
            // the name resolved to.
            for internal in ["127.0.0.1", "::1", "loopback"] {
                assert!(!attempt.response.contains(internal), "{}", attempt.response);
            }
        } else {
            assert!(
                attempt.response.contains("loopback") || attempt.response.contains("link-local"),
                "{}: {}",
                attempt.url,
                attempt.response
            );
        }
    }
}

// ----- resending, health, retention -----

#[tokio::test]
async fn manual_resends_are_recorded_as_manual() {
    let h = harness(test_config()).await;
    let receiver = Receiver::start(|_| Answer::status(200)).await;
    let endpoint = h.endpoint(EndpointSpec::new(receiver.url())).await;
    let message = h.send("{}").await;
    h.engine.run_due().await.unwrap();
    h.registry
        .resend(message.as_str(), endpoint.id.as_str())
        .await
        .unwrap();
    h.engine.run_due().await.unwrap();
    let triggers: Vec<_> = h.attempts().await.iter().map(|a| a.trigger).collect();
    assert_eq!(
        triggers,
        [AttemptTrigger::Scheduled, AttemptTrigger::Manual]
    );
    assert_eq!(receiver.count(), 2);
}

#[tokio::test]
async fn endpoints_failing_too_long_are_disabled_and_successes_are_recoveries() {
    health_is_tracked(MemoryStore::new()).await;
}

#[tokio::test]
async fn endpoint_health_is_tracked_in_the_sqlite_group_commit() {
    let dir = tempfile::tempdir().unwrap();
    health_is_tracked(
        SqliteStore::open(dir.path().join("health.db"))
            .await
            .unwrap(),
    )
    .await;
}

async fn health_is_tracked<S: Store>(store: S) {
    let config = DeliveryConfig {
        disable_after: Duration::from_secs(3600),
        ..test_config()
    };
    let h = harness_with(store, config, true).await;
    let mut notes = h.engine.notifications();
    let failing = Receiver::start(|_| Answer::status(500)).await;
    let flaky = Receiver::start(|n| Answer::status(if n == 0 { 500 } else { 200 })).await;
    let bad = h.endpoint(EndpointSpec::new(failing.url())).await;
    let shaky = h.endpoint(EndpointSpec::new(flaky.url())).await;
    h.send("{}").await;
    h.engine.run_due().await.unwrap();
    // Retry after 5 s: the flaky one recovers; the failing one keeps failing.
    h.advance(Duration::from_secs(10));
    h.engine.run_due().await.unwrap();
    assert!(matches!(
        notes.try_recv().unwrap(),
        Notification::EndpointRecovered(note) if note.endpoint_id == shaky.id
            && note.app_id == shaky.app
    ));
    // Keep failing past the hour: disabled, announced once.
    for _ in 0..3 {
        h.advance(Duration::from_secs(40 * 60));
        h.send("{}").await;
        h.engine.run_due().await.unwrap();
    }
    let mut disabled = Vec::new();
    while let Ok(note) = notes.try_recv() {
        if let Notification::EndpointDisabled(note) = note {
            disabled.push(note.endpoint_id);
        }
    }
    assert_eq!(disabled, vec![bad.id.clone()]);
    assert!(h.registry.endpoint(bad.id.as_str()).await.unwrap().disabled);
    assert!(
        !h.registry
            .endpoint(shaky.id.as_str())
            .await
            .unwrap()
            .disabled
    );
    // A disabled endpoint gets no new deliveries.
    let before = failing.count();
    h.send("{}").await;
    h.engine.run_due().await.unwrap();
    assert_eq!(failing.count(), before);
}

#[tokio::test]
async fn expired_payloads_are_purged_and_not_delivered() {
    let config = DeliveryConfig {
        retention: Duration::from_secs(24 * 3600),
        ..test_config()
    };
    let h = harness(config).await;
    let receiver = Receiver::start(|_| Answer::status(500)).await;
    h.endpoint(EndpointSpec::new(receiver.url())).await;
    let message = h.send(r#"{"secret": "data"}"#).await;
    h.engine.run_due().await.unwrap();
    h.advance(Duration::from_secs(2 * 24 * 3600));
    assert_eq!(h.engine.purge_expired().await.unwrap(), 1);
    let stored = h.registry.message(message.as_str()).await.unwrap();
    assert!(stored.expired);
    assert!(stored.payload.is_empty());
    let report = h.engine.run_due().await.unwrap();
    assert_eq!(report.skipped, 1, "an expired payload cannot be sent");
    assert_eq!(receiver.count(), 1);
    assert_eq!(
        h.registry.deliveries(&message).await.unwrap()[0].status,
        DeliveryStatus::Exhausted
    );
    let events = h
        .registry
        .sent_events_for_endpoint(
            h.registry
                .list_endpoints(&Default::default(), &ListOptions::default())
                .await
                .unwrap()
                .items[0]
                .id
                .as_str(),
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert!(events[0].expired);
}

// ----- ordering and limits -----

#[tokio::test]
async fn ordered_endpoints_receive_messages_in_order_through_retries() {
    let h = harness(test_config()).await;
    let receiver = Receiver::start(|n| Answer::status(if n == 0 { 500 } else { 200 })).await;
    h.endpoint(EndpointSpec::new(receiver.url()).ordered(true))
        .await;
    for i in 0..5 {
        h.send(&format!(r#"{{"n": {i}}}"#)).await;
    }
    let first = h.engine.run_due().await.unwrap();
    assert_eq!(first.failed, 1, "only the first message goes, and fails");
    h.advance(Duration::from_secs(10));
    let rest = h.engine.run_due().await.unwrap();
    assert_eq!(rest.succeeded, 5);
    let order: Vec<u64> = receiver
        .seen()
        .iter()
        .map(|s| {
            serde_json::from_slice::<serde_json::Value>(&s.body).unwrap()["n"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(order, [0, 0, 1, 2, 3, 4]);
    assert_eq!(receiver.max_in_flight.load(Ordering::SeqCst), 1);
}

async fn run_until_delivered<S: Store>(h: &Harness<S>, expected: usize, receivers: &[&Receiver]) {
    let engine = h.engine.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        engine
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while receivers.iter().map(|r| r.count()).sum::<usize>() < expected {
        assert!(Instant::now() < deadline, "deliveries did not arrive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limits_hold_per_endpoint_and_globally() {
    let config = DeliveryConfig {
        max_in_flight: 3,
        max_in_flight_per_endpoint: 2,
        busy_retry: Duration::from_millis(20),
        poll_interval: Duration::from_millis(20),
        ..test_config()
    };
    let h = harness_with(MemoryStore::new(), config, false).await;
    let slow = || Receiver::start(|_| Answer::status(200).delay(Duration::from_millis(100)));
    let (a, b) = (slow().await, slow().await);
    h.endpoint(EndpointSpec::new(a.url())).await;
    h.endpoint(EndpointSpec::new(b.url())).await;
    for _ in 0..10 {
        h.send("{}").await;
    }
    run_until_delivered(&h, 20, &[&a, &b]).await;
    assert_eq!(
        a.max_in_flight.load(Ordering::SeqCst),
        2,
        "per-endpoint limit reached, not passed"
    );
    assert!(b.max_in_flight.load(Ordering::SeqCst) <= 2);
    assert!(a.in_flight.load(Ordering::SeqCst) == 0);
    // Globally at most 3: the two receivers together never held more than 3 at once.
    let mut events: Vec<(Instant, i32)> = Vec::new();
    for r in [&a, &b] {
        for s in r.seen() {
            events.push((s.at, 1));
            events.push((s.at + Duration::from_millis(95), -1));
        }
    }
    events.sort();
    let mut current = 0;
    let mut peak = 0;
    for (_, delta) in events {
        current += delta;
        peak = peak.max(current);
    }
    assert!(peak <= 3, "{peak} requests in flight at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_is_enforced() {
    let config = DeliveryConfig {
        busy_retry: Duration::from_millis(20),
        poll_interval: Duration::from_millis(20),
        ..test_config()
    };
    let h = harness_with(MemoryStore::new(), config, false).await;
    let receiver = Receiver::start(|_| Answer::status(200)).await;
    h.endpoint(EndpointSpec::new(receiver.url()).rate_limit(NonZeroU32::new(5).unwrap()))
        .await;
    for _ in 0..12 {
        h.send("{}").await;
    }
    let started = Instant::now();
    run_until_delivered(&h, 12, &[&receiver]).await;
    let mut times: Vec<Instant> = receiver.seen().iter().map(|s| s.at).collect();
    times.sort();
    // 5 per second means one every 200 ms: 12 messages take at least 11 intervals.
    assert!(
        started.elapsed() >= Duration::from_millis(2000),
        "{:?}",
        started.elapsed()
    );
    for window in times.windows(6) {
        assert!(
            window[5] - window[0] >= Duration::from_millis(900),
            "six messages within {:?}",
            window[5] - window[0]
        );
    }
}

// ----- durability -----

#[tokio::test]
async fn sqlite_store_delivers_and_keeps_the_history_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhooks.db");
    let receiver = Receiver::start(|n| Answer::status(if n == 0 { 503 } else { 200 })).await;
    let (message, endpoint) = {
        let h = harness_with(SqliteStore::open(&path).await.unwrap(), test_config(), true).await;
        let endpoint = h.endpoint(EndpointSpec::new(receiver.url())).await;
        let message = h.send(r#"{"k": "v"}"#).await;
        h.engine.run_due().await.unwrap();
        h.advance(Duration::from_secs(10));
        h.engine.run_due().await.unwrap();
        h.registry.store().close().await;
        (message, endpoint)
    };
    let registry = Registry::new(SqliteStore::open(&path).await.unwrap());
    let events = registry
        .sent_events_for_endpoint(endpoint.id.as_str(), &Default::default())
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].response_status_code, 200, "newest first");
    assert_eq!(events[1].response_status_code, 503);
    assert!(
        events
            .iter()
            .all(|e| e.message_id == message && e.payload == r#"{"k": "v"}"#)
    );
    assert_eq!(
        registry.deliveries(&message).await.unwrap()[0].status,
        DeliveryStatus::Succeeded
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_requests_in_flight() {
    let config = DeliveryConfig {
        poll_interval: Duration::from_millis(20),
        ..test_config()
    };
    let h = harness_with(MemoryStore::new(), config, false).await;
    let receiver = Receiver::start(|_| Answer::status(200).delay(Duration::from_millis(500))).await;
    h.endpoint(EndpointSpec::new(receiver.url())).await;
    let message = h.send("{}").await;
    let engine = h.engine.clone();
    let seen = receiver.seen.clone();
    let result = engine
        .run(async move {
            // Stop as soon as the request is on the wire.
            while seen.lock().unwrap().is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
    result.unwrap();
    assert_eq!(
        h.registry.deliveries(&message).await.unwrap()[0].status,
        DeliveryStatus::Succeeded,
        "the in-flight request finished and was recorded before run returned"
    );
    assert_eq!(h.attempts().await.len(), 1);
}

/// A graceful stop hands back the leased deliveries no request was started for: pending,
/// unleased, due as they were, with no attempt recorded, so another process takes them at
/// once; the request in flight finishes and is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_hands_back_the_deliveries_not_started() {
    let config = DeliveryConfig {
        poll_interval: Duration::from_millis(20),
        max_in_flight: 1,
        max_in_flight_per_endpoint: 1,
        ..test_config()
    };
    let h = harness_with(MemoryStore::new(), config, false).await;
    let receiver = Receiver::start(|_| Answer::status(200).delay(Duration::from_millis(300))).await;
    h.endpoint(EndpointSpec::new(receiver.url())).await;
    let mut messages = Vec::new();
    for i in 0..10 {
        messages.push(h.send(&format!(r#"{{"n": {i}}}"#)).await);
    }
    let engine = h.engine.clone();
    let seen = receiver.seen.clone();
    engine
        .run(async move {
            while seen.lock().unwrap().is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
    let mut statuses = HashMap::new();
    let mut due_now = 0;
    let now = Utc::now();
    for message in &messages {
        for delivery in h.registry.deliveries(message).await.unwrap() {
            if delivery.status == DeliveryStatus::Pending {
                assert_eq!(delivery.leased_until, None, "handed back, not left leased");
                assert_eq!(delivery.attempts, 0);
                if delivery.next_attempt_at <= now {
                    due_now += 1;
                }
            }
            *statuses.entry(delivery.status).or_insert(0) += 1;
        }
    }
    let delivered = receiver.count();
    assert!(delivered >= 1);
    assert_eq!(statuses.get(&DeliveryStatus::Succeeded), Some(&delivered));
    assert_eq!(
        statuses.get(&DeliveryStatus::Pending),
        Some(&(10 - delivered))
    );
    assert_eq!(h.attempts().await.len(), delivered);
    // Handed back due as they were, but for at most the one a worker held waiting for the
    // endpoint's slot, which goes back postponed (as a held-back delivery always does).
    assert!(
        due_now + 1 >= 10 - delivered,
        "{due_now} due of {}",
        10 - delivered
    );
    // Another engine takes them at once: nothing waits for a lease to run out.
    let other = DeliveryEngine::new(h.registry.clone(), test_config()).unwrap();
    let rest = other.run_due().await.unwrap();
    // All of them leased at once (past its endpoint's concurrency, one is held back again).
    assert_eq!(rest.succeeded + rest.postponed, due_now, "{rest:?}");
    assert!(rest.succeeded >= due_now - 1, "{rest:?}");
}

/// An application with a backlog to an endpoint that never answers holds at most
/// `max_leased_per_app` of the engine's leases (not its whole backlog, leased and handed
/// back over and over), while another application's messages are delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_holds_at_most_its_limit_of_leases() {
    let config = DeliveryConfig {
        max_leased_per_app: 5,
        busy_retry: Duration::from_millis(20),
        poll_interval: Duration::from_millis(20),
        ..test_config()
    };
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("w.db")).await.unwrap();
    let h = harness_with(store, config, false).await;
    let r = &h.registry;
    let (hole, connections) = black_hole().await;
    let quiet_receiver = Receiver::start(|_| Answer::status(200)).await;
    for (name, url) in [
        ("noisy", format!("http://{hole}/")),
        ("quiet", quiet_receiver.url()),
    ] {
        r.create_application(ApplicationSpec::new(name).uid(name).unwrap())
            .await
            .unwrap();
        r.app(name)
            .await
            .unwrap()
            .create_endpoint(EndpointSpec::new(url).event_type(h.visit.clone()))
            .await
            .unwrap();
    }
    let noisy = r.app("noisy").await.unwrap();
    let mut backlog = Vec::new();
    for _ in 0..200 {
        backlog.push(noisy.send(&h.visit, "{}", None).await.unwrap().unwrap().0);
    }
    let test = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let quiet = r.app("quiet").await.unwrap();
        for _ in 0..5 {
            quiet.send(&h.visit, "{}", None).await.unwrap().unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while quiet_receiver.count() < 5 {
            assert!(Instant::now() < deadline, "the quiet application waited");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = Utc::now();
        let mut leased = 0;
        for id in &backlog {
            for delivery in noisy.deliveries(id).await.unwrap() {
                leased += usize::from(delivery.leased_until.is_some_and(|until| until > now));
            }
        }
        // The five in flight to the black hole, nothing else.
        assert_eq!(leased, 5, "noisy deliveries leased");
        assert_eq!(connections.load(Ordering::SeqCst), 5);
    };
    tokio::select! {
        result = h.engine.run(std::future::pending()) => panic!("the engine stopped: {result:?}"),
        () = test => {}
    }
}

#[cfg(feature = "postgres")]
#[path = "support/postgres.rs"]
mod pg;

#[cfg(feature = "postgres")]
#[tokio::test]
async fn endpoint_health_is_tracked_on_postgres() {
    let database = pg::TestDatabase::create().await;
    let store = switchyard_webhooks::store::PostgresStore::connect(&database.url)
        .await
        .unwrap();
    health_is_tracked(store).await;
}

/// The engine on PostgreSQL: an ordered endpoint gets its messages in order through a
/// retry, and the history reads the same through another handle on the database.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_store_delivers_in_order_and_keeps_the_history() {
    use switchyard_webhooks::store::PostgresStore;
    let database = pg::TestDatabase::create().await;
    let store = PostgresStore::connect(&database.url).await.unwrap();
    let h = harness_with(store, test_config(), true).await;
    let receiver = Receiver::start(|n| Answer::status(if n == 0 { 500 } else { 200 })).await;
    let endpoint = h
        .endpoint(EndpointSpec::new(receiver.url()).ordered(true))
        .await;
    for i in 0..5 {
        h.send(&format!(r#"{{"n": {i}}}"#)).await;
    }
    let first = h.engine.run_due().await.unwrap();
    assert_eq!(first.failed, 1, "only the first message goes, and fails");
    h.advance(Duration::from_secs(10));
    let rest = h.engine.run_due().await.unwrap();
    assert_eq!(rest.succeeded, 5);
    let order: Vec<u64> = receiver
        .seen()
        .iter()
        .map(|s| {
            serde_json::from_slice::<serde_json::Value>(&s.body).unwrap()["n"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(order, [0, 0, 1, 2, 3, 4]);

    let other = Registry::new(PostgresStore::connect(&database.url).await.unwrap());
    let events = other
        .sent_events_for_endpoint(endpoint.id.as_str(), &Default::default())
        .await
        .unwrap();
    assert_eq!(events.len(), 6);
    assert_eq!(events[0].response_status_code, 200, "newest first");
    assert_eq!(events[5].response_status_code, 500);
}
