//! The delivery engine: workers that lease due deliveries from the store, POST each message
//! signed to its endpoint, record every attempt, and retry on the schedule.
//!
//! - **At least once.** A delivery is leased, not taken: if the process dies mid-request the
//!   lease runs out and another worker (or the restarted process) sends it again. The attempt
//!   and the delivery's new state are written in one transaction.
//! - **Exactly what was sent.** The stored payload bytes go out unchanged with
//!   `content-type: application/json`, `webhook-id`, `webhook-timestamp` (the second the
//!   attempt is recorded at), `webhook-signature` (one signature per live key, current
//!   first), the endpoint's custom headers and a `user-agent` naming Switchyard.
//! - **Success is any 2xx**; redirects are not followed; requests time out after 30 s.
//!   Failures retry on [`RetryPolicy`] (`Retry-After` on 429/503
//!   honoured within bounds) until the delivery is exhausted.
//! - **Fair across applications**: leases share each batch among the applications with
//!   something due ([`Store::lease_deliveries`] says how), and the engine holds at most
//!   [`DeliveryConfig::max_leased_per_app`] leased deliveries of one application, so one
//!   application's backlog to a slow endpoint does not hold up another's deliveries.
//! - **Nothing hammered**: a global and a per-endpoint limit on requests in flight, a
//!   per-endpoint rate limit, optional ordered delivery, and endpoints failing for longer
//!   than [`DeliveryConfig::disable_after`] are disabled.
//! - **Nothing smuggled**: the [`AddressPolicy`] refuses private, loopback, link-local,
//!   CGNAT, multicast and reserved addresses after DNS resolution.
//! - **Everything visible**: every attempt is listed by the registry
//!   ([`Registry::list_attempts`], [`Registry::sent_events_for_endpoint`]); failing,
//!   exhausted and recovered deliveries and disabled or recovered endpoints are announced
//!   as [`Notification`]s (Svix's operational events) and as `tracing` events.
//!
//! ```no_run
//! use std::sync::Arc;
//! use switchyard_webhooks::delivery::{DeliveryConfig, DeliveryEngine};
//! use switchyard_webhooks::{Registry, store::SqliteStore};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = Arc::new(Registry::new(SqliteStore::open("webhooks.db").await?));
//! let engine = DeliveryEngine::new(Arc::clone(&registry), DeliveryConfig::default())?;
//! let mut notifications = engine.notifications();
//! tokio::spawn(async move {
//!     while let Ok(note) = notifications.recv().await {
//!         eprintln!("webhooks: {note:?}");
//!     }
//! });
//! // Deliver until told to stop (a signal handler would send this), then finish what is
//! // in flight.
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! engine.run(async { stopped.await.ok(); }).await?;
//! # drop(stop);
//! # Ok(())
//! # }
//! ```

mod guard;
mod limit;
mod pool;
mod recorder;
mod target;

use std::collections::HashMap;
use std::error::Error as StdError;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, SubsecRound as _, Utc};
use http::header::RETRY_AFTER;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use switchyard_https::HttpsConnector;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};

pub use guard::{AddressPolicy, RefusedAddress, special_purpose};
use guard::{GuardedResolver, ResolveError};
use limit::RateGate;
use pool::Pool;
use recorder::{Recorder, Sink};
use target::Target;

use crate::error::Error;
use crate::id::{AppId, AttemptId, EndpointId, MessageId};
use crate::model::{
    Attempt, AttemptStatus, DeliveryStatus, DeliveryUpdate, EndpointUid, Lease, MAX_RESPONSE_BODY,
    Message,
};
use crate::registry::Registry;
use crate::retry::{RetryPolicy, parse_retry_after, unit_draw};
use crate::store::{AppLimits, Change, Store};

/// The `user-agent` of every delivery: `Switchyard-Webhooks/<version>`.
pub const USER_AGENT_VALUE: &str = crate::model::USER_AGENT;

/// Delivery settings. Every field has a documented default.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// When failed attempts are retried (default: Svix's schedule, eight attempts, ±20 %).
    pub retry: RetryPolicy,
    /// The limit on one request, from connecting to the end of the response (default 30 s).
    pub request_timeout: Duration,
    /// The most requests in flight in this engine (default 64).
    pub max_in_flight: usize,
    /// The most requests in flight to one endpoint (default 8).
    pub max_in_flight_per_endpoint: usize,
    /// The most deliveries leased at once (default 256; a message's first attempts to its
    /// endpoints are leased together, so a batch may hold one message's more).
    pub batch_size: usize,
    /// The most leased deliveries waiting for a request slot (default 2,048); the engine
    /// leases more when fewer wait. Enough must wait to keep requests flowing while the store
    /// is busy with a large write (with 100 endpoints per message, 512 waiting left the
    /// requests idle about a tenth of the time); a delivery that waits longer than
    /// [`DeliveryConfig::busy_retry`] for its endpoint goes back to the store.
    pub max_queued: usize,
    /// How often the store is polled for due retries when nothing wakes the engine
    /// (default 1 s). Sends through the same [`Registry`] wake it at once.
    pub poll_interval: Duration,
    /// How long a lease holds (default 2 min; at least the request timeout plus 5 s). A
    /// worker that dies loses its deliveries to another after this.
    pub lease_for: Duration,
    /// An endpoint failing continuously for longer than this is disabled (default 5 days).
    pub disable_after: Duration,
    /// A delivery whose attempt number this is fails announces [`Notification::Failing`],
    /// and then [`Notification::Recovered`] if a later attempt succeeds (default 4, Svix's
    /// `message.attempt.failing`; 0 announces neither).
    pub failing_after: u32,
    /// Payloads older than this are purged (default 90 days); the messages still list,
    /// marked expired.
    pub retention: Duration,
    /// How often [`DeliveryEngine::run`] purges expired payloads (default 1 h).
    pub purge_interval: Duration,
    /// Which addresses may be connected to (default: public unicast only).
    pub addresses: AddressPolicy,
    /// How long a delivery held back by its endpoint's limits waits before it is offered
    /// again (default 250 ms).
    pub busy_retry: Duration,
    /// The most deliveries of one application this engine holds leased at once, waiting
    /// for their endpoint or in flight (default 1,024). An application at its limit is
    /// left out of leases until some of its deliveries finish, so one application's
    /// backlog to a slow or unanswering endpoint cannot fill the engine, and is not leased
    /// and handed back over and over while it waits.
    pub max_leased_per_app: usize,
    /// How long the outcomes of attempts may wait to be written together (default 10 ms).
    /// One write of many outcomes costs the store much less per attempt than many writes of
    /// a few, so the recorder waits this long for more before writing a small batch. An
    /// outcome something waits for (the next message to an `ordered` endpoint) is written
    /// at once; zero never waits.
    pub record_linger: Duration,
    /// How long an endpoint read from the store is used before it is read again (default
    /// 1 s). Changes made through this engine's [`Registry`] are seen at once; changes made
    /// by another process sharing the store, within this time.
    pub endpoint_refresh: Duration,
    /// How often [`DeliveryEngine::run`] tells the store it is alive and learns how many
    /// engines share the store (default 5 s; one not heard from for three times this is
    /// forgotten). Each endpoint's concurrency and rate limits are divided among the live
    /// engines, so they hold for all of them together: each gets
    /// `max(1, max_in_flight_per_endpoint / engines)` requests in flight to an endpoint and
    /// `rate_limit / engines` a second. (Only stores that can tell, such as PostgreSQL,
    /// count engines; on others each engine has the whole limit.)
    pub node_heartbeat: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(30),
            max_in_flight: 64,
            max_in_flight_per_endpoint: 8,
            batch_size: 256,
            max_queued: 2048,
            poll_interval: Duration::from_secs(1),
            lease_for: Duration::from_secs(120),
            disable_after: Duration::from_secs(5 * 24 * 60 * 60),
            failing_after: 4,
            retention: Duration::from_secs(90 * 24 * 60 * 60),
            purge_interval: Duration::from_secs(60 * 60),
            addresses: AddressPolicy::default(),
            busy_retry: Duration::from_millis(250),
            max_leased_per_app: 1024,
            record_linger: Duration::from_millis(10),
            endpoint_refresh: Duration::from_secs(1),
            node_heartbeat: Duration::from_secs(5),
        }
    }
}

/// Something the operator of a webhook service should hear about: Svix's operational
/// events (`message.attempt.failing`, `message.attempt.exhausted`,
/// `message.attempt.recovered`, `endpoint.disabled`) and an endpoint's recovery.
///
/// Each is announced once, by the engine that made the attempt, after its outcome is handed
/// to the recorder; a process that dies in between announces nothing for it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notification {
    /// A delivery failed its [`DeliveryConfig::failing_after`]th attempt (Svix's fourth) and
    /// will be retried.
    Failing(AttemptNote),
    /// A delivery failed its last attempt; no more are made unless someone resends.
    Exhausted(AttemptNote),
    /// A delivery announced as [`Notification::Failing`] succeeded on a later attempt.
    Recovered(AttemptNote),
    /// An endpoint failed continuously for longer than the threshold and was disabled.
    EndpointDisabled(EndpointNote),
    /// An endpoint succeeded after a run of failures.
    EndpointRecovered(EndpointNote),
}

/// A delivery's state, as a [`Notification`] tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttemptNote {
    /// The application.
    pub app_id: AppId,
    /// The message.
    pub message_id: MessageId,
    /// The message's `eventId`, if it has one.
    pub event_id: Option<String>,
    /// The endpoint.
    pub endpoint_id: EndpointId,
    /// The endpoint's uid, if it has one.
    pub endpoint_uid: Option<EndpointUid>,
    /// How many attempts were made, this one included.
    pub attempts: u32,
    /// The attempt that caused the notification.
    pub last_attempt: LastAttempt,
}

/// The attempt an [`AttemptNote`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LastAttempt {
    /// Its id.
    pub id: AttemptId,
    /// The receiver's HTTP status; 0 when there was no response.
    pub response_status: u16,
    /// When it was made.
    pub timestamp: DateTime<Utc>,
}

/// An endpoint's health, as a [`Notification`] tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointNote {
    /// The application.
    pub app_id: AppId,
    /// The endpoint.
    pub endpoint_id: EndpointId,
    /// The endpoint's uid, if it has one.
    pub endpoint_uid: Option<EndpointUid>,
    /// When its run of failures began.
    pub failing_since: DateTime<Utc>,
}

/// What happened to the deliveries one [`DeliveryEngine::run_due`] handled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Attempts answered with a 2xx.
    pub succeeded: usize,
    /// Attempts that failed and will be retried.
    pub failed: usize,
    /// Attempts that failed for the last time.
    pub exhausted: usize,
    /// Deliveries held back by their endpoint's limits, offered again shortly.
    pub postponed: usize,
    /// Deliveries dropped without a request: endpoint disabled or gone, payload expired.
    pub skipped: usize,
}

impl RunReport {
    /// Every delivery handled.
    pub fn total(&self) -> usize {
        self.succeeded + self.failed + self.exhausted + self.postponed + self.skipped
    }

    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Succeeded => self.succeeded += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::Exhausted => self.exhausted += 1,
            Outcome::Postponed => self.postponed += 1,
            Outcome::Skipped => self.skipped += 1,
        }
    }

    fn add_all(&mut self, other: RunReport) {
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        self.exhausted += other.exhausted;
        self.postponed += other.postponed;
        self.skipped += other.skipped;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Succeeded,
    Failed,
    Exhausted,
    Postponed,
    Skipped,
}

type HttpClient = Client<HttpsConnector<HttpConnector<GuardedResolver>>, Full<Bytes>>;

/// Per-endpoint limits, shared by every worker of the engine.
#[derive(Debug)]
struct Gate {
    in_flight: Arc<Semaphore>,
    rate: RateGate,
    /// The engines the endpoint's limits are shared among (this one's share was sized for).
    engines: u32,
}

/// How many leased deliveries of each application the engine holds (see
/// [`DeliveryConfig::max_leased_per_app`]).
struct Leased {
    counts: Mutex<HashMap<AppId, usize>>,
    limit: usize,
    /// An application that reached its limit is leased again once it holds this many or
    /// fewer (the limit less a batch): leases stay whole batches, not a delivery at a time.
    resume: usize,
    /// Woken when an application drops to `resume`: the engine leases again.
    freed: tokio::sync::Notify,
}

impl Leased {
    fn take(self: &Arc<Self>, app: &AppId) -> Ticket {
        *self
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(app.clone())
            .or_default() += 1;
        Ticket {
            app: Some(app.clone()),
            leased: Arc::clone(self),
        }
    }

    /// How many more each application may be leased.
    fn limits(&self) -> AppLimits {
        let room = self
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(app, held)| {
                let room = if *held > self.resume {
                    0
                } else {
                    self.limit - held
                };
                (app.clone(), room)
            })
            .collect();
        AppLimits {
            each: Some(self.limit),
            room,
        }
    }
}

/// One leased delivery counted against its application's limit until it is dropped (when
/// the delivery's outcome has been handed over).
struct Ticket {
    app: Option<AppId>,
    leased: Arc<Leased>,
}

impl Ticket {
    /// A ticket that counts nothing (a delivery dropped without a request).
    fn none(leased: &Arc<Leased>) -> Self {
        Self {
            app: None,
            leased: Arc::clone(leased),
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let Some(app) = self.app.take() else {
            return;
        };
        let mut counts = self
            .leased
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let resumes = match counts.get_mut(&app) {
            Some(count) => {
                *count = count.saturating_sub(1);
                let resumes = *count == self.leased.resume;
                if *count == 0 {
                    counts.remove(&app);
                }
                resumes
            }
            None => false,
        };
        drop(counts);
        if resumes {
            self.leased.freed.notify_one();
        }
    }
}

/// A leased delivery with its endpoint and message as read for its batch (`None`: gone).
struct Job {
    lease: Lease,
    /// Counts it against its application's limit while it is held.
    ticket: Ticket,
    endpoint: Option<Arc<Target>>,
    /// The message, and its payload as the request body (one buffer shared by all the
    /// message's deliveries in the batch).
    message: Option<(Arc<Message>, Bytes)>,
}

/// A job whose endpoint and message are there: ready for its attempt.
struct Ready {
    lease: Lease,
    ticket: Ticket,
    target: Arc<Target>,
    message: Arc<Message>,
    body: Bytes,
    /// When it was taken up (postponements count from here).
    now: DateTime<Utc>,
}

struct Shared<S> {
    registry: Arc<Registry<S>>,
    recorder: Recorder,
    config: DeliveryConfig,
    addresses: Arc<AddressPolicy>,
    client: HttpClient,
    global: Arc<Semaphore>,
    gates: Mutex<HashMap<EndpointId, Arc<Gate>>>,
    endpoints: Arc<Mutex<EndpointCache>>,
    notifications: broadcast::Sender<Notification>,
    leased: Arc<Leased>,
    /// This engine's id among those sharing the store (see [`Store::heartbeat`]).
    node: String,
    /// How many engines share the store, as last heard.
    engines: std::sync::atomic::AtomicUsize,
}

/// Endpoints as last read from the store, each with when it was read.
#[derive(Default)]
struct EndpointCache {
    /// The registry's endpoint write count the entries were read after.
    writes: u64,
    entries: HashMap<EndpointId, (Arc<Target>, Instant)>,
}

/// Cached endpoints kept before stale ones are swept out.
const ENDPOINT_CACHE_SWEEP: usize = 10_000;

/// The delivery engine. Cheap to clone (all clones share one set of limits and one
/// connection pool); several engines, in several processes, may work on one store.
pub struct DeliveryEngine<S> {
    shared: Arc<Shared<S>>,
}

impl<S> Clone for DeliveryEngine<S> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S> std::fmt::Debug for DeliveryEngine<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryEngine")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

fn build_client(
    config: &DeliveryConfig,
    addresses: &Arc<AddressPolicy>,
) -> Result<HttpClient, Error> {
    let mut http = HttpConnector::new_with_resolver(GuardedResolver::new(Arc::clone(addresses)));
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(config.request_timeout));
    // Still useful without system CA certificates (http endpoints, tests): https ones then
    // fail with a clear certificate error in their attempts.
    let https = switchyard_https::connector(http, "https deliveries")
        .map_err(|e| Error::Tls(e.to_string()))?;
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        // Many endpoints often share a host: keep as many idle connections as may be busy.
        .pool_max_idle_per_host(config.max_in_flight.max(1))
        .build(https))
}

impl<S: Store> DeliveryEngine<S> {
    /// An engine delivering the messages of `registry` (it uses the registry's store and
    /// clock, and wakes when the registry queues work).
    ///
    /// # Errors
    /// [`Error::Tls`] if the TLS stack cannot be set up. A machine without system CA
    /// certificates is not an error: a warning is logged and https deliveries fail.
    pub fn new(registry: Arc<Registry<S>>, config: DeliveryConfig) -> Result<Self, Error> {
        let mut config = config;
        config.max_in_flight = config.max_in_flight.max(1);
        config.max_in_flight_per_endpoint = config.max_in_flight_per_endpoint.max(1);
        config.batch_size = config.batch_size.max(1);
        config.max_queued = config.max_queued.max(config.batch_size);
        config.max_leased_per_app = config.max_leased_per_app.max(1);
        config.lease_for = config
            .lease_for
            .max(config.request_timeout + Duration::from_secs(5));
        let addresses = Arc::new(config.addresses.clone());
        let client = build_client(&config, &addresses)?;
        let (config_limit, config_batch) = (config.max_leased_per_app, config.batch_size);
        let (notifications, _) = broadcast::channel(1024);
        Ok(Self {
            shared: Arc::new(Shared {
                registry,
                recorder: Recorder::new(),
                global: Arc::new(Semaphore::new(config.max_in_flight)),
                config,
                addresses,
                client,
                gates: Mutex::new(HashMap::new()),
                endpoints: Arc::default(),
                node: uuid::Uuid::new_v4().simple().to_string(),
                engines: std::sync::atomic::AtomicUsize::new(1),
                notifications,
                leased: Arc::new(Leased {
                    counts: Mutex::new(HashMap::new()),
                    limit: config_limit,
                    resume: config_limit.saturating_sub(config_batch),
                    freed: tokio::sync::Notify::new(),
                }),
            }),
        })
    }

    /// The settings in force (limits raised to their minimums).
    pub fn config(&self) -> &DeliveryConfig {
        &self.shared.config
    }

    /// A receiver of operational [`Notification`]s from now on. Slow receivers miss the
    /// oldest ones (each is also a `tracing` event).
    pub fn notifications(&self) -> broadcast::Receiver<Notification> {
        self.shared.notifications.subscribe()
    }

    /// Delivers everything due now and waits until it is done; returns what happened. For
    /// tests and batch jobs; a service calls [`DeliveryEngine::run`].
    ///
    /// # Errors
    /// [`Error::Store`] when the store fails to lease (deliveries already leased are
    /// finished first).
    pub async fn run_due(&self) -> Result<RunReport, Error> {
        self.shared.start_recorder();
        let mut report = RunReport::default();
        let mut seen = std::collections::HashSet::new();
        loop {
            let now = self.shared.registry.config().clock.now();
            let leases = self
                .shared
                .registry
                .store()
                .lease_deliveries(
                    now,
                    self.shared.config.lease_for,
                    self.shared.config.batch_size,
                )
                .await?;
            // A postponed delivery can be due again at once when the clock stands still;
            // one pass over each delivery is what "due now" means.
            let fresh: Vec<Lease> = leases
                .into_iter()
                .filter(|l| {
                    seen.insert((
                        l.delivery.message_id.clone(),
                        l.delivery.endpoint_id.clone(),
                        l.delivery.attempts,
                    ))
                })
                .collect();
            if fresh.is_empty() {
                return Ok(report);
            }
            let jobs = self.shared.prepare(fresh).await?;
            let config = &self.shared.config;
            let pool = Pool::start(&self.shared, config.max_in_flight, jobs.len());
            for job in jobs {
                pool.push(job).await;
            }
            report.add_all(pool.finish().await);
            // What this pass did is in the store before the next pass leases.
            self.shared.recorder.flush().await;
        }
    }

    /// Delivers until `shutdown` resolves, then stops leasing, hands back the leased
    /// deliveries it has not started (pending, due as they were, so another process takes
    /// them at once rather than when their leases run out) and waits for the requests in
    /// flight to finish (so a graceful shutdown loses no attempt record). Purges expired
    /// payloads every [`DeliveryConfig::purge_interval`].
    ///
    /// Store errors are logged and retried after the poll interval: a database hiccup
    /// delays deliveries but does not stop the engine.
    ///
    /// # Errors
    /// Only [`Error::Stopped`], if the engine's semaphore was closed.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let shared = &self.shared;
        shared.start_recorder();
        // What other processes sharing the store do, heard as they do it (when the store
        // can tell): their sends wake this engine, their endpoint changes empty its cache.
        let following = shared
            .registry
            .store()
            .changes()
            .map(|changes| tokio::spawn(follow(Arc::clone(&shared.registry), changes)));
        let config = &shared.config;
        let pool = Pool::start(shared, config.max_in_flight, config.max_queued);
        let mut next_purge = Instant::now();
        let mut next_heartbeat = Instant::now();
        let mut unstarted = Vec::new();
        tokio::pin!(shutdown);
        'running: loop {
            // Seen here too, not only while waiting: with a backlog the loop may never wait
            // (every lease fills its batch, and the queue has room when the store is the
            // slower side), and a stop must not wait for the backlog to run out.
            tokio::select! {
                biased;
                () = &mut shutdown => break 'running,
                () = std::future::ready(()) => {}
            }
            if Instant::now() >= next_heartbeat {
                next_heartbeat = Instant::now() + config.node_heartbeat;
                shared.heartbeat().await;
            }
            if Instant::now() >= next_purge {
                next_purge = Instant::now() + config.purge_interval;
                if let Err(error) = self.purge_expired().await {
                    tracing::error!(%error, "purging expired payloads failed");
                }
            }
            let now = shared.registry.config().clock.now();
            // No application gets more than its room: what it may hold less what it holds.
            let limits = shared.leased.limits();
            let leased = shared
                .registry
                .store()
                .lease_deliveries_within(now, config.lease_for, config.batch_size, &limits)
                .await;
            let count = match leased {
                Ok(leases) => {
                    let count = leases.len();
                    match shared.prepare(leases).await {
                        // Up to `max_queued` leased deliveries wait behind the requests in
                        // flight: leasing a whole batch at a time (one store write) rather
                        // than one delivery per freed slot, with enough queued that requests
                        // keep flowing while the store is busy with a large write. The queue
                        // is bounded, so this waits while it is full.
                        Ok(jobs) => {
                            let mut jobs = jobs.into_iter();
                            while let Some(job) = jobs.next() {
                                tokio::select! {
                                    biased;
                                    () = pool.push(job) => {}
                                    () = &mut shutdown => {
                                        // Not started: handed back at once, below.
                                        unstarted.extend(jobs);
                                        break 'running;
                                    }
                                }
                            }
                        }
                        // The leases run out and the deliveries are offered again.
                        Err(error) => tracing::error!(%error, count,
                            "reading leased deliveries failed; they will be retried"),
                    }
                    count
                }
                Err(error) => {
                    tracing::error!(%error, "leasing deliveries failed; retrying");
                    0
                }
            };
            if count < config.batch_size {
                // Nothing more is due: wait for new work, the next poll, or shutdown.
                tokio::select! {
                    () = &mut shutdown => break,
                    () = shared.registry.work_queued() => {}
                    () = shared.leased.freed.notified() => {}
                    () = tokio::time::sleep(config.poll_interval) => {}
                }
            }
        }
        // Leased deliveries no request was started for go back to the store, due as they
        // were, so another process (or the next run) takes them at once instead of after
        // their lease runs out; the requests in flight finish and are recorded.
        unstarted.extend(pool.take_queued());
        tracing::info!(
            released = unstarted.len(),
            "delivery engine stopping: releasing the deliveries not started"
        );
        for job in unstarted {
            let next = job.lease.delivery.next_attempt_at;
            if let Err(error) = shared
                .release(job.lease, DeliveryStatus::Pending, next)
                .await
            {
                tracing::warn!(%error, "releasing a lease failed; it will run out instead");
            }
        }
        pool.finish().await;
        shared.recorder.flush().await;
        if let Some(following) = following {
            following.abort();
        }
        if let Err(error) = shared.registry.store().leave(&shared.node).await {
            tracing::warn!(%error, "could not say the engine left; it is forgotten later");
        }
        Ok(())
    }

    /// Purges the payloads of messages older than [`DeliveryConfig::retention`], and the
    /// idempotency entries and access tokens whose time is up; returns how many payloads.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn purge_expired(&self) -> Result<u64, Error> {
        let now = self.shared.registry.config().clock.now();
        let cutoff = chrono::Duration::from_std(self.shared.config.retention)
            .ok()
            .and_then(|r| now.checked_sub_signed(r))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let store = self.shared.registry.store();
        let purged = store.purge_payloads(cutoff).await?;
        if purged > 0 {
            tracing::info!(purged, %cutoff, "expired payloads purged");
        }
        let forgotten = store.purge_idempotency(now).await?;
        if forgotten > 0 {
            tracing::info!(forgotten, "expired idempotency keys forgotten");
        }
        let tokens = store.purge_access_tokens(now).await?;
        if tokens > 0 {
            tracing::info!(tokens, "expired access tokens forgotten");
        }
        Ok(purged)
    }
}

/// Passes on what other processes change (see [`Store::changes`]) to this process's
/// registry, until the store stops telling.
async fn follow<S: Store>(registry: Arc<Registry<S>>, mut changes: broadcast::Receiver<Change>) {
    loop {
        match changes.recv().await {
            Ok(Change::Work) => registry.wake(),
            Ok(Change::Endpoints) => registry.endpoints_changed(),
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                registry.wake();
                registry.endpoints_changed();
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// What came back from one request.
struct Response {
    status: u16,
    body: String,
    retry_after: Option<Duration>,
}

impl<S: Store> Shared<S> {
    fn gate(&self, endpoint: &EndpointId) -> Arc<Gate> {
        let engines = self
            .engines
            .load(std::sync::atomic::Ordering::Acquire)
            .max(1);
        let mut gates = self.gates.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(gates.entry(endpoint.clone()).or_insert_with(|| {
            // This engine's share of the endpoint's concurrency (at least one request).
            let share = (self.config.max_in_flight_per_endpoint / engines).max(1);
            Arc::new(Gate {
                in_flight: Arc::new(Semaphore::new(share)),
                rate: RateGate::default(),
                engines: u32::try_from(engines).unwrap_or(u32::MAX),
            })
        }))
    }

    /// Tells the store this engine is alive and learns how many share it; when that
    /// changed, the endpoints' gates are sized again (requests already in flight keep the
    /// slots they hold).
    async fn heartbeat(&self) {
        let expire = self.config.node_heartbeat.saturating_mul(3);
        match self.registry.store().heartbeat(&self.node, expire).await {
            Ok(engines) => {
                let before = self
                    .engines
                    .swap(engines.max(1), std::sync::atomic::Ordering::AcqRel);
                if before != engines.max(1) {
                    tracing::info!(engines, "engines sharing the store changed");
                    self.gates
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clear();
                    // Cached endpoints hold their gates: read them again.
                    self.registry.endpoints_changed();
                }
            }
            Err(error) => tracing::warn!(%error, "the engine's heartbeat failed"),
        }
    }

    fn notify(&self, note: Notification) {
        // No receiver is fine: the tracing event has been emitted.
        let _ = self.notifications.send(note);
    }

    /// Starts the recorder task if it is not running.
    fn start_recorder(&self) {
        self.recorder.start(|| Sink {
            registry: Arc::clone(&self.registry),
            disable_after: self.config.disable_after,
            linger: self.config.record_linger,
            notifications: self.notifications.clone(),
            endpoints: Arc::clone(&self.endpoints),
        });
    }

    /// Hands an outcome to the recorder (which writes it shortly, with others; at once when
    /// `urgent`). Not an `async fn`: the outcome is handed over before the returned future
    /// is first polled, so the future (part of every worker's) stays small.
    fn record(
        &self,
        lease: Lease,
        update: DeliveryUpdate,
        urgent: bool,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'static {
        let handed = self.recorder.record(lease, update, urgent);
        async move {
            if handed.await {
                Ok(())
            } else {
                Err(Error::Stopped)
            }
        }
    }

    /// Finishes a lease without a request.
    fn release(
        &self,
        lease: Lease,
        status: DeliveryStatus,
        next_attempt_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'static {
        let update = DeliveryUpdate {
            status,
            attempts: lease.delivery.attempts,
            next_attempt_at,
            attempt: None,
        };
        self.record(lease, update, false)
    }

    /// Reads the endpoints and messages of a batch of leases, each once.
    async fn prepare(&self, leases: Vec<Lease>) -> Result<Vec<Job>, Error> {
        let store = self.registry.store();
        let mut endpoint_ids: Vec<EndpointId> = leases
            .iter()
            .map(|l| l.delivery.endpoint_id.clone())
            .collect();
        endpoint_ids.sort_unstable();
        endpoint_ids.dedup();
        let mut message_ids: Vec<MessageId> = leases
            .iter()
            .map(|l| l.delivery.message_id.clone())
            .collect();
        message_ids.sort_unstable();
        message_ids.dedup();
        let endpoints = self.endpoints(endpoint_ids).await?;
        let messages: HashMap<MessageId, (Arc<Message>, Bytes)> = store
            .messages(&message_ids)
            .await?
            .into_iter()
            .map(|mut m| {
                let body = Bytes::from(std::mem::take(&mut m.payload));
                (m.id.clone(), (Arc::new(m), body))
            })
            .collect();
        Ok(leases
            .into_iter()
            .map(|lease| {
                let endpoint = endpoints.get(&lease.delivery.endpoint_id).cloned();
                let ticket = match &endpoint {
                    Some(target) => self.leased.take(&target.record.endpoint.app),
                    None => Ticket::none(&self.leased),
                };
                Job {
                    endpoint,
                    message: messages.get(&lease.delivery.message_id).cloned(),
                    lease,
                    ticket,
                }
            })
            .collect())
    }

    /// The endpoints with these ids, from the cache where fresh, else from the store.
    async fn endpoints(
        &self,
        ids: Vec<EndpointId>,
    ) -> Result<HashMap<EndpointId, Arc<Target>>, Error> {
        let writes = self.registry.endpoint_writes();
        let now = Instant::now();
        let fresh = |read: &Instant| now.duration_since(*read) < self.config.endpoint_refresh;
        let mut found = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        {
            let mut cache = self
                .endpoints
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if cache.writes != writes {
                cache.entries.clear();
                cache.writes = writes;
            }
            for id in ids {
                match cache.entries.get(&id) {
                    Some((record, read)) if fresh(read) => {
                        found.insert(id, Arc::clone(record));
                    }
                    _ => missing.push(id),
                }
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let read = self.registry.store().endpoints(&missing).await?;
        let mut cache = self
            .endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if cache.entries.len() > ENDPOINT_CACHE_SWEEP {
            cache.entries.retain(|_, (_, read)| fresh(read));
        }
        let at = self.registry.config().clock.now();
        for record in read {
            let gate = self.gate(&record.endpoint.id);
            let target = Arc::new(Target::new(record, gate, at));
            let id = target.record.endpoint.id.clone();
            // Written meanwhile: use what was read for this batch, but do not keep it.
            if cache.writes == writes {
                cache.entries.insert(id.clone(), (Arc::clone(&target), now));
            }
            found.insert(id, target);
        }
        Ok(found)
    }

    /// Takes a job apart for its attempt: `Err` with the release of a delivery that cannot
    /// be made (endpoint gone or disabled, payload expired), which is then dropped.
    fn ready(
        &self,
        job: Job,
    ) -> Result<Ready, impl Future<Output = Result<(), Error>> + Send + 'static> {
        let now = self.registry.config().clock.now();
        let Job {
            lease,
            ticket,
            endpoint: target,
            message,
        } = job;
        match (target, message) {
            (Some(target), Some((message, body)))
                if !target.record.endpoint.disabled && !message.expired =>
            {
                Ok(Ready {
                    lease,
                    ticket,
                    target,
                    message,
                    body,
                    now,
                })
            }
            (target, message) => {
                let delivery = &lease.delivery;
                tracing::warn!(
                    message = %delivery.message_id,
                    endpoint = %delivery.endpoint_id,
                    endpoint_found = target.is_some(),
                    endpoint_disabled = target.as_ref().is_some_and(|t| t.record.endpoint.disabled),
                    payload_expired = message.as_ref().is_none_or(|(m, _)| m.expired),
                    "delivery dropped without a request"
                );
                Err(self.release(lease, DeliveryStatus::Exhausted, now))
            }
        }
    }

    /// Waits up to [`DeliveryConfig::busy_retry`] for a slot of the delivery's endpoint, then
    /// attempts it; a delivery that gets none goes back to the store for a moment instead of
    /// holding a worker. (A fast endpoint frees a slot well within the wait, so its
    /// deliveries queue here rather than in the store.)
    async fn wait_and_attempt(self: Arc<Self>, ready: Ready) -> Result<Outcome, Error> {
        let slot = tokio::time::timeout(
            self.config.busy_retry,
            Arc::clone(&ready.target.gate.in_flight).acquire_owned(),
        )
        .await;
        match slot {
            Ok(Ok(permit)) => self.attempt(ready, permit).await,
            _ => {
                let until = later(ready.now, self.config.busy_retry);
                self.release(ready.lease, DeliveryStatus::Pending, until)
                    .await?;
                Ok(Outcome::Postponed)
            }
        }
    }

    /// Attempts a delivery holding a slot of its endpoint: takes a global slot (second, so
    /// that a delivery waiting for its endpoint holds back no other endpoint), then its
    /// rate-limit turn, makes the request and hands the outcome to the recorder.
    async fn attempt(
        &self,
        ready: Ready,
        endpoint_permit: OwnedSemaphorePermit,
    ) -> Result<Outcome, Error> {
        let clock = &self.registry.config().clock;
        let Ready {
            lease,
            // Held until the outcome is handed over, at the end of the attempt.
            ticket: _ticket,
            target,
            message,
            body,
            now,
        } = ready;
        let endpoint = &target.record.endpoint;
        let gate = &target.gate;
        let permit = match Arc::clone(&self.global).try_acquire_owned() {
            Ok(permit) => permit,
            // Boxed, as the wait below: rare, and their state would otherwise make every
            // worker's future larger.
            Err(_) => Box::pin(Arc::clone(&self.global).acquire_owned())
                .await
                .map_err(|_| Error::Stopped)?,
        };
        if let Some(rate) = endpoint.rate_limit {
            match gate.rate.reserve(rate, gate.engines, Instant::now()) {
                Ok(wait) => Box::pin(tokio::time::sleep(wait)).await,
                Err(wait) => {
                    let wait = wait + self.config.busy_retry.mul_f64(unit_draw());
                    self.release(lease, DeliveryStatus::Pending, later(now, wait))
                        .await?;
                    return Ok(Outcome::Postponed);
                }
            }
        }

        let at = clock.now();
        let (request, headers) = target.request(&message, body, at)?;
        let started = Instant::now();
        let result = match self.check_literal(request.uri()) {
            Err(refused) => Err(refused.to_string()),
            // Boxed: the exchange's state would otherwise make every delivery's task larger.
            Ok(()) => Box::pin(self.send(request)).await,
        };
        let duration = started.elapsed();
        // The request is over: its slots go to the next deliveries while this one's outcome
        // waits for the store.
        drop(permit);
        drop(endpoint_permit);
        let (response, success) = match result {
            Ok(response) => {
                let success = (200..300).contains(&response.status);
                (response, success)
            }
            Err(reason) => (
                Response {
                    status: 0,
                    body: reason,
                    retry_after: None,
                },
                false,
            ),
        };
        let attempts = lease.delivery.attempts.saturating_add(1);
        let (status, next_attempt_at) = if success {
            (DeliveryStatus::Succeeded, at)
        } else {
            match self.config.retry.next_delay(attempts, response.retry_after) {
                Some(delay) => (DeliveryStatus::Pending, later(at, delay)),
                None => (DeliveryStatus::Exhausted, at),
            }
        };
        let attempt = Attempt {
            id: AttemptId::generate(at.timestamp())?,
            message_id: message.id.clone(),
            endpoint_id: endpoint.id.clone(),
            event_type: message.event_type.clone(),
            channels: message.channels.clone(),
            url: endpoint.url.clone(),
            status: if success {
                AttemptStatus::Success
            } else {
                AttemptStatus::Failed
            },
            response_status: response.status,
            response: response.body,
            headers,
            duration,
            trigger: lease.delivery.trigger,
            timestamp: at,
        };
        tracing::debug!(
            message = %message.id,
            endpoint = %endpoint.id,
            attempt = %attempt.id,
            status = attempt.response_status,
            attempts,
            ?duration,
            "delivery attempted"
        );
        let update = DeliveryUpdate {
            status,
            attempts,
            next_attempt_at,
            attempt: Some(attempt),
        };
        let failing_after = self.config.failing_after;
        let announce: Option<fn(AttemptNote) -> Notification> = match status {
            DeliveryStatus::Exhausted => Some(Notification::Exhausted),
            DeliveryStatus::Succeeded if failing_after > 0 && attempts > failing_after => {
                Some(Notification::Recovered)
            }
            DeliveryStatus::Pending if attempts == failing_after => Some(Notification::Failing),
            _ => None,
        };
        let note = announce
            .zip(update.attempt.as_ref())
            .map(|(kind, attempt)| {
                kind(AttemptNote {
                    app_id: endpoint.app.clone(),
                    message_id: message.id.clone(),
                    event_id: message.event_id.clone(),
                    endpoint_id: endpoint.id.clone(),
                    endpoint_uid: endpoint.uid.clone(),
                    attempts,
                    last_attempt: LastAttempt {
                        id: attempt.id.clone(),
                        response_status: attempt.response_status,
                        timestamp: attempt.timestamp,
                    },
                })
            });
        // The next message to an ordered endpoint waits for this outcome.
        self.record(lease, update, endpoint.ordered).await?;
        if let Some(note) = note {
            match &note {
                Notification::Exhausted(_) => tracing::warn!(message = %message.id,
                    endpoint = %endpoint.id, attempts, "delivery exhausted"),
                Notification::Failing(_) => tracing::info!(message = %message.id,
                    endpoint = %endpoint.id, attempts, "delivery failing"),
                _ => tracing::info!(message = %message.id, endpoint = %endpoint.id, attempts,
                    "delivery recovered after failing"),
            }
            self.notify(note);
        }
        Ok(match status {
            DeliveryStatus::Succeeded => Outcome::Succeeded,
            DeliveryStatus::Exhausted => Outcome::Exhausted,
            _ => Outcome::Failed,
        })
    }

    /// URLs naming an IP address directly never reach the resolver: check them here.
    fn check_literal(&self, uri: &http::Uri) -> Result<(), RefusedAddress> {
        self.addresses.check_uri(uri)
    }

    /// One request, bounded by the timeout; `Err` carries a readable reason.
    async fn send(&self, request: Request<Full<Bytes>>) -> Result<Response, String> {
        let timeout = self.config.request_timeout;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| describe(&e))?;
            let status = response.status();
            let retry_after = if status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::SERVICE_UNAVAILABLE
            {
                response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, Utc::now()))
            } else {
                None
            };
            let mut body = response.into_body();
            let mut bytes = Vec::new();
            let mut cut_short = None;
            while bytes.len() < MAX_RESPONSE_BODY {
                match body.frame().await {
                    None => break,
                    Some(Err(error)) => {
                        cut_short = Some(describe(&error));
                        break;
                    }
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            let room = MAX_RESPONSE_BODY - bytes.len();
                            bytes.extend_from_slice(&data[..data.len().min(room)]);
                        }
                    }
                }
            }
            let mut text = truncate(String::from_utf8_lossy(&bytes).into_owned());
            if let Some(reason) = cut_short
                && text.len() + reason.len() + 20 <= MAX_RESPONSE_BODY
            {
                text.push_str(&format!(" [body cut short: {reason}]"));
            }
            Ok(Response {
                status: status.as_u16(),
                body: text,
                retry_after,
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(format!("timed out after {timeout:?}")),
        }
    }
}

/// `at + delay`, saturating, in whole microseconds (what every store keeps).
fn later(at: DateTime<Utc>, delay: Duration) -> DateTime<Utc> {
    crate::model::after(at, delay).trunc_subsecs(6)
}

/// At most [`MAX_RESPONSE_BODY`] bytes, cut at a character boundary.
fn truncate(mut text: String) -> String {
    if text.len() > MAX_RESPONSE_BODY {
        let mut end = MAX_RESPONSE_BODY;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// An error and its causes, outermost first, with the SSRF refusal named plainly.
fn describe(error: &(dyn StdError + 'static)) -> String {
    let mut parts = Vec::new();
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(resolve) = e.downcast_ref::<ResolveError>() {
            return resolve.to_string();
        }
        let text = e.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_characters_whole() {
        let text = "é".repeat(MAX_RESPONSE_BODY);
        let cut = truncate(text);
        assert!(cut.len() <= MAX_RESPONSE_BODY);
        assert!(cut.len() >= MAX_RESPONSE_BODY - 1);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(truncate("short".into()), "short");
    }
}
