//! Model test of the delivery bookkeeping: random sequences of sends, leases, reports (fresh
//! and stale), resends, endpoint deletions and clock moves run against `MemoryStore` (the model: one row per
//! delivery) and a durable store, `SqliteStore` (fan-out records) or `PostgresStore` (with the
//! `postgres` feature), each opened twice on the same data (two processes' handles, used in
//! turn); after every step both must show the same deliveries, lease the same ones and
//! accept the same reports.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::json;
use switchyard_webhooks::store::{MemoryStore, SqliteStore, Store};
use switchyard_webhooks::{
    Attempt, AttemptHeaders, AttemptId, AttemptStatus, AttemptTrigger, Clock, DeliveryStatus,
    DeliveryUpdate, EndpointId, EndpointSpec, EventTypeName, Lease, MessageId, Registry,
    RegistryConfig,
};

/// Endpoints every message goes to; the last one is ordered (its deliveries stay rows).
const ENDPOINTS: usize = 4;
const LEASE_FOR: Duration = Duration::from_secs(30);

/// What a worker reports for a lease.
#[derive(Debug, Clone, Copy)]
enum Report {
    Success,
    Retry,
    Exhaust,
    Postpone,
}

#[derive(Debug, Clone)]
enum Step {
    Send,
    LeaseAll,
    /// Reports on one of the leases handed out so far (possibly stale: expired and taken
    /// over).
    Finish(prop::sample::Index, Report),
    Resend(prop::sample::Index, usize),
    Delete(usize),
    Advance(u32),
}

fn step() -> impl Strategy<Value = Step> {
    let report = prop_oneof![
        3 => Just(Report::Success),
        2 => Just(Report::Retry),
        1 => Just(Report::Exhaust),
        1 => Just(Report::Postpone),
    ];
    prop_oneof![
        3 => Just(Step::Send),
        3 => Just(Step::LeaseAll),
        6 => (any::<prop::sample::Index>(), report).prop_map(|(i, r)| Step::Finish(i, r)),
        1 => (any::<prop::sample::Index>(), 0..ENDPOINTS).prop_map(|(i, e)| Step::Resend(i, e)),
        2 => (1u32..45).prop_map(Step::Advance),
        1 => (0..ENDPOINTS).prop_map(Step::Delete),
    ]
}

/// One store behind a registry on the shared hand-moved clock, with its ids in creation
/// order (the two stores make different ids for the same things).
struct Side<S> {
    registry: Registry<S>,
    /// Registries over other handles of the same store (the SQLite file opened again, as a
    /// second process would): leases and reports go through them in turn.
    peers: Vec<Registry<S>>,
    endpoints: Vec<EndpointId>,
    messages: Vec<MessageId>,
}

/// A delivery as compared: (endpoint index, status, attempts, trigger, lease end and next
/// attempt while pending).
type Seen = (
    usize,
    DeliveryStatus,
    u32,
    AttemptTrigger,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

/// A registry over `store` on the shared clock.
fn registry_on<S: Store>(store: S, now: &Arc<AtomicI64>) -> Registry<S> {
    let now = Arc::clone(now);
    let clock = Clock::from_fn(move || {
        DateTime::from_timestamp_micros(now.load(Ordering::SeqCst)).unwrap()
    });
    Registry::with_config(
        store,
        RegistryConfig {
            clock,
            ..RegistryConfig::default()
        },
    )
}

impl<S: Store> Side<S> {
    async fn new(store: S, now: &Arc<AtomicI64>) -> Self {
        let registry = registry_on(store, now);
        let visit = EventTypeName::new("origin.visit").unwrap();
        registry
            .create_event_type(visit.clone(), "visits", json!({"type": "object"}))
            .await
            .unwrap();
        let mut endpoints = Vec::new();
        for n in 0..ENDPOINTS {
            let spec = EndpointSpec::new(format!("https://{n}.example/"))
                .event_type(visit.clone())
                .ordered(n == ENDPOINTS - 1);
            endpoints.push(registry.create_endpoint(spec).await.unwrap().id);
        }
        Self {
            registry,
            peers: Vec::new(),
            endpoints,
            messages: Vec::new(),
        }
    }

    /// Sends a message; whether anyone listened (it is stored only then).
    async fn send(&mut self) -> bool {
        let visit = EventTypeName::new("origin.visit").unwrap();
        let sent = self
            .registry
            .send(&visit, r#"{"n": 1}"#, None)
            .await
            .unwrap();
        let listened = sent.is_some();
        if let Some((id, _)) = sent {
            self.messages.push(id);
        }
        listened
    }

    async fn delete(&self, endpoint: usize) {
        self.registry
            .delete_endpoint(self.endpoints[endpoint].as_str())
            .await
            .unwrap();
    }

    fn key(&self, lease: &Lease) -> (usize, usize) {
        let d = &lease.delivery;
        let m = self.messages.iter().position(|m| *m == d.message_id);
        let e = self.endpoints.iter().position(|e| *e == d.endpoint_id);
        (m.unwrap(), e.unwrap())
    }

    /// The registry the `n`th step's lease or report goes through.
    fn through(&self, n: usize) -> &Registry<S> {
        match n % (self.peers.len() + 1) {
            0 => &self.registry,
            peer => &self.peers[peer - 1],
        }
    }

    /// Every lease due now, by (message, endpoint) index.
    async fn lease_all(&self, n: usize, now: DateTime<Utc>) -> BTreeMap<(usize, usize), Lease> {
        let leases = self
            .through(n)
            .store()
            .lease_deliveries(now, LEASE_FOR, 10_000)
            .await
            .unwrap();
        let count = leases.len();
        let keyed: BTreeMap<_, _> = leases.into_iter().map(|l| (self.key(&l), l)).collect();
        assert_eq!(keyed.len(), count, "a delivery leased twice in one batch");
        keyed
    }

    async fn finish(&self, n: usize, lease: &Lease, report: Report, now: DateTime<Utc>) -> bool {
        let d = &lease.delivery;
        let attempt = |status, code| Attempt {
            id: AttemptId::generate(now.timestamp()).unwrap(),
            message_id: d.message_id.clone(),
            endpoint_id: d.endpoint_id.clone(),
            event_type: EventTypeName::new("origin.visit").unwrap(),
            channels: Vec::new(),
            url: "https://x.example/".to_owned(),
            status,
            response_status: code,
            response: String::new(),
            headers: AttemptHeaders::new(),
            duration: Duration::from_millis(3),
            trigger: d.trigger,
            timestamp: now,
        };
        // (status, whether a request was made, its answer, seconds until the next attempt)
        let (status, attempted, code, wait) = match report {
            Report::Success => (DeliveryStatus::Succeeded, true, 200, 0),
            Report::Retry => (DeliveryStatus::Pending, true, 500, 5),
            Report::Exhaust => (DeliveryStatus::Exhausted, true, 500, 0),
            Report::Postpone => (DeliveryStatus::Pending, false, 0, 2),
        };
        let outcome = if code == 200 {
            AttemptStatus::Success
        } else {
            AttemptStatus::Failed
        };
        let update = DeliveryUpdate {
            status,
            attempts: d.attempts + u32::from(attempted),
            next_attempt_at: now + chrono::Duration::seconds(wait),
            attempt: attempted.then(|| attempt(outcome, code)),
        };
        self.through(n)
            .store()
            .finish_delivery(lease, &update)
            .await
            .unwrap()
    }

    async fn resend(&self, message: usize, endpoint: usize) {
        self.registry
            .resend(
                self.messages[message].as_str(),
                self.endpoints[endpoint].as_str(),
            )
            .await
            .unwrap();
    }

    /// Every message's deliveries as compared.
    async fn view(&self) -> Vec<Vec<Seen>> {
        let mut all = Vec::new();
        for message in &self.messages {
            let deliveries = self.registry.deliveries(message).await.unwrap();
            let mut seen: Vec<Seen> = deliveries
                .into_iter()
                .map(|d| {
                    let endpoint = self.endpoints.iter().position(|e| *e == d.endpoint_id);
                    let pending = d.status == DeliveryStatus::Pending;
                    (
                        endpoint.unwrap(),
                        d.status,
                        d.attempts,
                        d.trigger,
                        d.leased_until.filter(|_| pending),
                        pending.then_some(d.next_attempt_at),
                    )
                })
                .collect();
            seen.sort_by_key(|s| s.0);
            all.push(seen);
        }
        all
    }
}

/// Runs `steps` on the SQLite store and the model, comparing after each.
async fn run(steps: Vec<Step>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.db");
    run_on(steps, || SqliteStore::open(&path)).await;
}

/// Runs `steps` on the model and on the store `open` opens (twice: the second handle once
/// the schema and the endpoints exist), comparing after each.
async fn run_on<S, F, Fut>(steps: Vec<Step>, open: F)
where
    S: Store,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<S, switchyard_webhooks::StoreError>>,
{
    let now = Arc::new(AtomicI64::new(1_750_000_000_000_000));
    let mut model = Side::new(MemoryStore::new(), &now).await;
    let mut real = Side::new(open().await.unwrap(), &now).await;
    real.peers.push(registry_on(open().await.unwrap(), &now));
    // Leases handed out so far, both stores' for the same delivery side by side.
    let mut leases: Vec<((usize, usize), Lease, Lease)> = Vec::new();
    let mut deleted = std::collections::BTreeSet::new();
    for (n, step) in steps.into_iter().enumerate() {
        let at = DateTime::from_timestamp_micros(now.load(Ordering::SeqCst)).unwrap();
        match &step {
            Step::Send => {
                assert_eq!(model.send().await, real.send().await, "step {n}: send");
            }
            Step::LeaseAll => {
                let (mut mine, theirs) =
                    (model.lease_all(n, at).await, real.lease_all(n, at).await);
                assert_eq!(
                    mine.keys().collect::<Vec<_>>(),
                    theirs.keys().collect::<Vec<_>>(),
                    "step {n}: leased different deliveries"
                );
                for (key, lease) in theirs {
                    let model_lease = mine.remove(&key).unwrap();
                    assert_eq!(
                        (model_lease.delivery.attempts, model_lease.delivery.trigger),
                        (lease.delivery.attempts, lease.delivery.trigger),
                        "step {n}: lease of {key:?}"
                    );
                    leases.push((key, model_lease, lease));
                }
            }
            Step::Finish(pick, report) => {
                if leases.is_empty() {
                    continue;
                }
                let (key, mine, theirs) = leases.remove(pick.index(leases.len()));
                let held = model.finish(n, &mine, *report, at).await;
                let taken = real.finish(n, &theirs, *report, at).await;
                assert_eq!(held, taken, "step {n}: report {report:?} on {key:?}");
            }
            Step::Resend(pick, endpoint) => {
                if model.messages.is_empty() || deleted.contains(endpoint) {
                    continue;
                }
                let message = pick.index(model.messages.len());
                model.resend(message, *endpoint).await;
                real.resend(message, *endpoint).await;
            }
            Step::Delete(endpoint) => {
                if deleted.insert(*endpoint) {
                    model.delete(*endpoint).await;
                    real.delete(*endpoint).await;
                }
            }
            Step::Advance(seconds) => {
                now.fetch_add(i64::from(*seconds) * 1_000_000, Ordering::SeqCst);
            }
        }
        assert_eq!(
            model.view().await,
            real.view().await,
            "step {n} ({step:?}): deliveries differ"
        );
    }
}

#[cfg(feature = "postgres")]
#[path = "support/postgres.rs"]
mod pg;

/// Runs `steps` on a PostgreSQL database of their own and the model.
#[cfg(feature = "postgres")]
async fn run_postgres(steps: Vec<Step>) {
    let database = pg::TestDatabase::create().await;
    run_on(steps, || {
        switchyard_webhooks::store::PostgresStore::connect(&database.url)
    })
    .await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[cfg(feature = "postgres")]
    #[test]
    fn postgres_keeps_the_bookkeeping_of_one_row_per_delivery(
        steps in prop::collection::vec(step(), 1..60)
    ) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(run_postgres(steps));
    }

    #[test]
    fn fan_outs_keep_the_bookkeeping_of_one_row_per_delivery(
        steps in prop::collection::vec(step(), 1..60)
    ) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(run(steps));
    }
}
