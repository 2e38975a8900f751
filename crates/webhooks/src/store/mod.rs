//! Storage behind the [`Registry`](crate::Registry): the [`Store`] trait and its
//! implementations, [`MemoryStore`] (tests, ephemeral use), `SqliteStore` (the embedded,
//! durable default, behind the `sqlite` feature) and `PostgresStore` (several processes on
//! one database, behind the `postgres` feature).
//!
//! A store only keeps and finds records; every rule (names, schemas, channels, key rotation)
//! lives in the registry, so a backend implements storage and nothing else. Two operations
//! must be atomic in every backend: [`Store::insert_message`] (a message and all its
//! deliveries, or nothing) and [`Store::lease_deliveries`] (several workers, possibly in
//! several processes, never lease the same delivery at once).
//!
//! **Applications.** Every endpoint and message belongs to an application; every method that
//! finds or lists them takes the application and finds nothing of another's (the id of
//! another application's endpoint is "no such endpoint"). Only the delivery engine's methods
//! (leasing, finishing, the batch lookups by id, health, retention) work across
//! applications. Event types are shared by all.

use std::collections::HashMap;
use std::future::Future;
use std::ops::RangeInclusive;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::StoreError;
use crate::id::{AppId, AttemptId, EndpointId, MessageId};
use crate::model::{
    AppUid, Application, Attempt, AttemptStatus, Channel, Delivery, DeliveryUpdate, Endpoint,
    EndpointRecord, EndpointUid, EventType, EventTypeName, Lease, Message,
};
use crate::page::PageRequest;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod keys;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresOptions, PostgresStore};
#[cfg(feature = "sqlite")]
pub use sqlite::{Imported, SqliteStore};

/// How many deliveries each application may be leased in one
/// [`Store::lease_deliveries_within`]: `each` for any application (none: no limit but the
/// batch), less for those listed in `room` (zero: left out).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppLimits {
    /// The most for any one application.
    pub each: Option<usize>,
    /// Applications with less room than `each`.
    pub room: HashMap<AppId, usize>,
}

impl AppLimits {
    /// The room of `app`.
    pub fn room(&self, app: &AppId) -> usize {
        let each = self.each.unwrap_or(usize::MAX);
        self.room.get(app).map_or(each, |room| (*room).min(each))
    }
}

/// Which endpoints to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointFilter {
    /// Only endpoints receiving this event type (endpoints receiving every type included).
    pub event_type: Option<EventTypeName>,
    /// Only endpoints listening to this channel, plus those with no channels (they receive
    /// every message of their types).
    pub channel: Option<Channel>,
}

/// Which messages to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageFilter {
    /// Only messages of one of these event types (none: every type).
    pub event_types: Vec<EventTypeName>,
    /// Only messages made strictly before this time.
    pub before: Option<DateTime<Utc>>,
    /// Only messages made strictly after this time (the application's id index is read
    /// from that second on, so a list from a time does not read what came before it).
    pub after: Option<DateTime<Utc>>,
    /// Only messages sent to this channel.
    pub channel: Option<Channel>,
}

/// Which attempts to list. Every field narrows the list; the default lists them all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptFilter {
    /// Only attempts to send this message.
    pub message: Option<MessageId>,
    /// Only attempts made to this endpoint.
    pub endpoint: Option<EndpointId>,
    /// Only attempts of messages of one of these event types (none: every type).
    pub event_types: Vec<EventTypeName>,
    /// Only attempts of messages sent to this channel.
    pub channel: Option<Channel>,
    /// Only attempts that came to this.
    pub status: Option<AttemptStatus>,
    /// Only attempts answered with a status in this range (0 for no answer), as Svix's
    /// `status_code_class`.
    pub response_status: Option<RangeInclusive<u16>>,
    /// Only attempts made strictly before this time.
    pub before: Option<DateTime<Utc>>,
    /// Only attempts made strictly after this time.
    pub after: Option<DateTime<Utc>>,
}

/// An API token scoped to one application, as the store keeps it: the hash of the token,
/// never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// The SHA-256 of the token, in hex.
    pub hash: String,
    /// The one application it reaches.
    pub app: AppId,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// Whether it may only read.
    pub read_only: bool,
}

/// A response kept under an idempotency key (see [`Store::idempotency_begin`]): what a
/// retry of the request is answered.
#[derive(Clone, PartialEq, Eq)]
pub struct RememberedResponse {
    /// The HTTP status.
    pub status: u16,
    /// The headers worth repeating (the content type), in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for RememberedResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The body may carry secrets (a rotated key): its length only.
        f.debug_struct("RememberedResponse")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .finish()
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl RememberedResponse {
    /// A remembered response from the columns the SQL stores keep it in: the status, the
    /// headers as a JSON list of pairs, the body.
    pub(crate) fn from_columns(
        status: i64,
        headers: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<Self, StoreError> {
        let corrupt = |what: &str, reason: String| StoreError::Corrupt {
            what: what.to_owned(),
            reason,
        };
        let headers = match headers {
            Some(text) => serde_json::from_str(text)
                .map_err(|e| corrupt("remembered response headers", e.to_string()))?,
            None => Vec::new(),
        };
        Ok(Self {
            status: u16::try_from(status)
                .map_err(|e| corrupt("remembered response status", e.to_string()))?,
            headers,
            body: body.unwrap_or_default(),
        })
    }
}

/// How the SQL stores keep a message's channels in one column: joined with `,` (which no
/// channel name holds), `NULL` for none, so one channel is kept as itself.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn join_channels(channels: &[Channel]) -> Option<String> {
    (!channels.is_empty()).then(|| {
        channels
            .iter()
            .map(Channel::as_str)
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// The channels of a column written by [`join_channels`].
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn split_channels(column: Option<&str>) -> Result<Vec<Channel>, StoreError> {
    column
        .into_iter()
        .flat_map(|text| text.split(','))
        .map(|name| {
            Channel::new(name).map_err(|e| StoreError::Corrupt {
                what: "message channels".to_owned(),
                reason: e.to_string(),
            })
        })
        .collect()
}

/// The span of a histogram an attempt at `at` (microseconds) falls in, for a window of
/// `since..until` (microseconds) cut in `buckets`; `None` outside the window.
pub(crate) fn bucket_of(at: i64, since: i64, until: i64, buckets: u32) -> Option<usize> {
    if at < since || at >= until || until <= since {
        return None;
    }
    let index = i128::from(at - since) * i128::from(buckets) / i128::from(until - since);
    usize::try_from(index).ok()
}

impl MessageFilter {
    /// Whether a message made at `at` is inside the time window.
    pub(crate) fn admits_time(&self, at: DateTime<Utc>) -> bool {
        self.before.is_none_or(|b| at < b) && self.after.is_none_or(|a| at > a)
    }

    /// The lowest id a message inside the window can have (see [`MessageId::start_at`]).
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn lowest_id(&self) -> Option<MessageId> {
        self.after.map(|t| MessageId::start_at(t.timestamp()))
    }
}

/// What [`Store::idempotency_begin`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// The key is this request's now: run it, then finish or release the key.
    Claimed,
    /// Another request holds the key: wait, and ask again.
    Running,
    /// A request with this key finished: answer what it answered.
    Done(RememberedResponse),
}

/// Attempts counted by how they ended (see [`Store::attempt_counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttemptCounts {
    /// Attempts that got a 2xx.
    pub success: u64,
    /// Attempts recorded as pending.
    pub pending: u64,
    /// Attempts that failed.
    pub failed: u64,
    /// Attempts recorded as sending.
    pub sending: u64,
}

impl AttemptCounts {
    /// Adds `count` attempts of `status`.
    pub fn add(&mut self, status: AttemptStatus, count: u64) {
        let slot = match status {
            AttemptStatus::Success => &mut self.success,
            AttemptStatus::Pending => &mut self.pending,
            AttemptStatus::Failed => &mut self.failed,
            AttemptStatus::Sending => &mut self.sending,
        };
        *slot += count;
    }
}

/// A change another process sharing the store made, that this process's delivery engine
/// should react to at once (see [`Store::changes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// Deliveries may have become due (a message was sent, a delivery resent).
    Work,
    /// Endpoints were changed, disabled or removed: cached copies may be stale.
    Endpoints,
    /// Changes may have been missed (the store lost its way of hearing about them for a
    /// while): assume both of the above.
    Missed,
}

/// What [`Store::record_health`] changed about an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthChange {
    /// Nothing worth telling: still healthy, or failing for less than the threshold.
    Unchanged,
    /// It had been failing since the given time, longer than the threshold, and is now
    /// disabled.
    Disabled {
        /// When its current run of failures began.
        failing_since: DateTime<Utc>,
    },
    /// A success after failures that began at the given time.
    Recovered {
        /// When the run of failures began.
        failing_since: DateTime<Utc>,
    },
}

/// What [`Store::finish_deliveries`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Finished {
    /// For each item, whether its lease was still held.
    pub held: Vec<bool>,
    /// The endpoints whose health the batch's attempts changed, with the change, in order.
    pub health: Vec<(EndpointId, HealthChange)>,
}

/// Durable storage for event types, endpoints, messages and deliveries.
///
/// Lists return records in key order (event types by name, endpoints and messages by id, which
/// is creation order; attempts in the order recorded) after [`PageRequest::after`], at most
/// `limit + 1` of them.
pub trait Store: Send + Sync + 'static {
    /// Inserts or replaces an event type (archived ones included), keyed by name.
    fn put_event_type(
        &self,
        event_type: &EventType,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The event type with this name, archived or not.
    fn event_type(
        &self,
        name: &EventTypeName,
    ) -> impl Future<Output = Result<Option<EventType>, StoreError>> + Send;

    /// Event types by name: the active ones, and the archived ones too with
    /// `include_archived`.
    fn list_event_types(
        &self,
        page: &PageRequest,
        include_archived: bool,
    ) -> impl Future<Output = Result<Vec<EventType>, StoreError>> + Send;

    /// Inserts or replaces an application, keyed by id. The default application
    /// ([`AppId::default_app`]) exists in every store without being put.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when another application already has the same uid.
    fn put_application(
        &self,
        application: &Application,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The application with this id.
    fn application(
        &self,
        id: &AppId,
    ) -> impl Future<Output = Result<Option<Application>, StoreError>> + Send;

    /// The application with this uid.
    fn application_by_uid(
        &self,
        uid: &AppUid,
    ) -> impl Future<Output = Result<Option<Application>, StoreError>> + Send;

    /// Applications, by id.
    fn list_applications(
        &self,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Vec<Application>, StoreError>> + Send;

    /// Deletes an application with everything of it: its endpoints (and their pending
    /// deliveries, which are never attempted), messages and attempts. `false` when there was
    /// none. The default application cannot be deleted (`false`).
    fn delete_application(
        &self,
        id: &AppId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Inserts or replaces an endpoint, keyed by id, in its application (`endpoint.app`,
    /// which must exist and must be the application of an endpoint it replaces).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when another endpoint of the application already has the
    /// same uid.
    fn put_endpoint(
        &self,
        record: &EndpointRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The endpoint of `app` with this id.
    fn endpoint(
        &self,
        app: &AppId,
        id: &EndpointId,
    ) -> impl Future<Output = Result<Option<EndpointRecord>, StoreError>> + Send;

    /// The endpoint of `app` with this uid.
    fn endpoint_by_uid(
        &self,
        app: &AppId,
        uid: &EndpointUid,
    ) -> impl Future<Output = Result<Option<EndpointRecord>, StoreError>> + Send;

    /// Deletes an endpoint of `app` and its pending deliveries; `false` when there was none.
    fn delete_endpoint(
        &self,
        app: &AppId,
        id: &EndpointId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Endpoints of `app` matching the filter, by id.
    fn list_endpoints(
        &self,
        app: &AppId,
        filter: &EndpointFilter,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Vec<Endpoint>, StoreError>> + Send;

    /// The ids of the enabled endpoints of `app` a message of this type sent to these
    /// channels goes to (exactly those for which [`Endpoint::receives`] holds).
    fn recipients(
        &self,
        app: &AppId,
        event_type: &EventTypeName,
        channels: &[Channel],
    ) -> impl Future<Output = Result<Vec<EndpointId>, StoreError>> + Send;

    /// Stores a message (in `message.app`) and one pending delivery per endpoint (of that
    /// application), due at the message's creation time, atomically. A message whose event
    /// id the application's messages already have is [`StoreError::Conflict`] and stores
    /// nothing (checked atomically with the insert, also across processes).
    fn insert_message(
        &self,
        message: &Message,
        endpoints: &[EndpointId],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The message of `app` with this id.
    fn message(
        &self,
        app: &AppId,
        id: &MessageId,
    ) -> impl Future<Output = Result<Option<Message>, StoreError>> + Send;

    /// Messages of `app` matching the filter, by id.
    fn list_messages(
        &self,
        app: &AppId,
        filter: &MessageFilter,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Vec<Message>, StoreError>> + Send;

    /// Every delivery of a message of `app`, by endpoint id.
    fn deliveries(
        &self,
        app: &AppId,
        message: &MessageId,
    ) -> impl Future<Output = Result<Vec<Delivery>, StoreError>> + Send;

    /// Atomically leases `limit` pending deliveries due at `now` and not held by a live
    /// lease, for `lease_for`. A delivery whose lease ran out (its worker died) can be leased
    /// again.
    ///
    /// **Fair across applications**: the batch is shared among the applications with
    /// something due, in turns. Each turn gives every such application an equal share of
    /// what is left of the batch (at least one delivery), the applications in the order their
    /// turn came due (the longest waiting first); an application with less than its share
    /// leaves the rest to the others. Within an application, earliest due first. So one
    /// application's backlog, however long, delays another's deliveries by at most its share
    /// of a batch, and the cost of a lease depends on the applications with something due,
    /// not on how much each has queued.
    ///
    /// Fewer than `limit` means nothing more is due now (the delivery engine then waits for
    /// new work or its next poll). A store that leases a message's deliveries together may
    /// return more: the SQLite store takes a message's first
    /// attempts to all its unordered endpoints at once.
    fn lease_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_for: Duration,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Lease>, StoreError>> + Send {
        async move {
            let limits = AppLimits::default();
            self.lease_deliveries_within(now, lease_for, limit, &limits)
                .await
        }
    }

    /// [`Store::lease_deliveries`], giving no application more than its room in `limits`
    /// (the delivery engine's way of holding at most so many leased deliveries of one
    /// application). "Fewer than `limit`" then means nothing more is due for the
    /// applications with room. A fan-out is claimed whole, so an application may get a few
    /// more than its room when one message has many endpoints.
    fn lease_deliveries_within(
        &self,
        now: DateTime<Utc>,
        lease_for: Duration,
        limit: usize,
        limits: &AppLimits,
    ) -> impl Future<Output = Result<Vec<Lease>, StoreError>> + Send;

    /// Records the outcome of an attempt and releases the lease, atomically. The attempt in
    /// the update (if any) is recorded whatever happens, since the request was made; the
    /// delivery is updated only while the lease is held. Returns `false` when it is not: the
    /// lease expired and another worker took it, or the delivery was requeued meanwhile.
    fn finish_delivery(
        &self,
        lease: &Lease,
        update: &DeliveryUpdate,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// [`Store::finish_delivery`] for several leases at once, plus the
    /// [`Store::record_health`] of every attempt among them (its endpoint, its success, its
    /// timestamp), in item order. A durable store writes it all in one transaction (group
    /// commit: one disk sync for many attempts). Takes the items: a store may keep them.
    fn finish_deliveries(
        &self,
        items: Vec<(Lease, DeliveryUpdate)>,
        disable_after: Duration,
    ) -> impl Future<Output = Result<Finished, StoreError>> + Send {
        async move {
            let mut finished = Finished {
                held: Vec::with_capacity(items.len()),
                health: Vec::new(),
            };
            for (lease, update) in &items {
                finished
                    .held
                    .push(self.finish_delivery(lease, update).await?);
                if let Some(attempt) = &update.attempt {
                    let change = self
                        .record_health(
                            &attempt.endpoint_id,
                            attempt.status == AttemptStatus::Success,
                            attempt.timestamp,
                            disable_after,
                        )
                        .await?;
                    if change != HealthChange::Unchanged {
                        finished.health.push((attempt.endpoint_id.clone(), change));
                    }
                }
            }
            Ok(finished)
        }
    }

    /// The endpoints with these ids that exist, of any application, in no particular order
    /// (the delivery engine's lookup for what it leased).
    fn endpoints(
        &self,
        ids: &[EndpointId],
    ) -> impl Future<Output = Result<Vec<EndpointRecord>, StoreError>> + Send;

    /// The messages with these ids that exist, of any application, in no particular order
    /// (the delivery engine's lookup for what it leased).
    fn messages(
        &self,
        ids: &[MessageId],
    ) -> impl Future<Output = Result<Vec<Message>, StoreError>> + Send;

    /// Attempts of `app` matching the filter, in the order they were recorded (which is id
    /// order, that is time order, for the attempts one engine records).
    /// [`PageRequest::after`] is the id of the last attempt of the page before; an id of no
    /// attempt lists nothing.
    fn list_attempts(
        &self,
        app: &AppId,
        filter: &AttemptFilter,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Vec<Attempt>, StoreError>> + Send;

    /// The attempt of `app` with this id.
    fn attempt(
        &self,
        app: &AppId,
        id: &AttemptId,
    ) -> impl Future<Output = Result<Option<Attempt>, StoreError>> + Send;

    /// How many attempts to an endpoint of `app` made at or after `since` and before `until`
    /// ended in each status.
    fn attempt_counts(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<AttemptCounts, StoreError>> + Send;

    /// [`Store::attempt_counts`] in `buckets` equal spans of the window, oldest first (an
    /// attempt at `t` is in span `(t - since) * buckets / (until - since)`); one read of the
    /// window, whatever the number of spans. An empty window (`until <= since`) has no spans.
    fn attempt_histogram(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        buckets: u32,
    ) -> impl Future<Output = Result<Vec<AttemptCounts>, StoreError>> + Send;

    /// When the current run of failures of an endpoint of `app` began: `None` while its last
    /// attempt succeeded (or it has none), or when `app` has no such endpoint.
    fn failing_since(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
    ) -> impl Future<Output = Result<Option<DateTime<Utc>>, StoreError>> + Send;

    /// Purges the payload of one message of `app` (it still lists, marked expired, as after
    /// [`Store::purge_payloads`]); whether `app` has that message.
    fn expunge_payload(
        &self,
        app: &AppId,
        message: &MessageId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Empties the response body recorded with an attempt of `app`; whether `app` has that
    /// attempt.
    fn expunge_response(
        &self,
        app: &AppId,
        attempt: &AttemptId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Makes the delivery of a message of `app` to an endpoint of `app` pending again, due at
    /// `now`, with a fresh retry schedule and its next attempt marked manual; creates the
    /// delivery if there was none. A lease held on it is revoked (that worker's report will
    /// not overwrite this). Does nothing when either is not `app`'s.
    fn requeue_delivery(
        &self,
        app: &AppId,
        message: &MessageId,
        endpoint: &EndpointId,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Requeues (as [`Store::requeue_delivery`]) every exhausted delivery to `endpoint` (of
    /// `app`) of a message created at or after `since` (and before `until`, when given);
    /// returns how many.
    fn recover_deliveries(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Notes a success or a failure of an attempt to an endpoint at `now`. A failure starts
    /// (or continues) a run of failures; when the run has lasted longer than `disable_after`,
    /// the endpoint is disabled. A success ends the run.
    fn record_health(
        &self,
        endpoint: &EndpointId,
        success: bool,
        now: DateTime<Utc>,
        disable_after: Duration,
    ) -> impl Future<Output = Result<HealthChange, StoreError>> + Send;

    /// Purges the payloads of messages created before `before` (they still list, marked
    /// expired); returns how many were purged.
    fn purge_payloads(
        &self,
        before: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Claims an idempotency key (an API layer's hash of who asked, what and the client's
    /// key) for a request starting at `now`: [`IdempotencyClaim::Claimed`] when no live
    /// entry has it (none, a claim that ran out, or a response that expired), the claim then
    /// held until `hold_until`; [`IdempotencyClaim::Running`] while another request's claim
    /// holds it; [`IdempotencyClaim::Done`] with the response finished under it. Atomic
    /// across the processes sharing the store: of two requests with one key, one claims it.
    fn idempotency_begin(
        &self,
        key: &str,
        now: DateTime<Utc>,
        hold_until: DateTime<Utc>,
    ) -> impl Future<Output = Result<IdempotencyClaim, StoreError>> + Send;

    /// Keeps `response` for `key` until `expires_at`, ending its claim.
    fn idempotency_finish(
        &self,
        key: &str,
        response: &RememberedResponse,
        expires_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Ends the claim on `key` without a response (the request failed): a retry runs anew.
    fn idempotency_release(&self, key: &str)
    -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Forgets the idempotency entries whose time is up at `now` (claims that ran out,
    /// responses that expired); returns how many.
    fn purge_idempotency(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Keeps an application-scoped API token (its hash); whether the application exists (a
    /// token of an application that does not is not kept).
    fn put_access_token(
        &self,
        token: &AccessToken,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The token with this hash, expired or not.
    fn access_token(
        &self,
        hash: &str,
    ) -> impl Future<Output = Result<Option<AccessToken>, StoreError>> + Send;

    /// Forgets the token with this hash (it is revoked); whether there was one.
    fn delete_access_token(
        &self,
        hash: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Forgets the tokens expired at `now`; returns how many. Deleting an application
    /// forgets its tokens too.
    fn purge_access_tokens(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Registers this process (`node`, any id unique to it) as live on the store, or
    /// refreshes it, forgets the nodes not heard from for `expire`, and answers how many are
    /// live, itself included. The delivery engine calls it every few seconds and divides
    /// each endpoint's limits by the answer, so they hold for all the processes together.
    /// The default answers 1: a store one process uses, or one that cannot tell.
    fn heartbeat(
        &self,
        node: &str,
        expire: Duration,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send {
        let _ = (node, expire);
        async { Ok(1) }
    }

    /// Removes `node` from the live ones (a graceful stop), so the others' shares grow at
    /// their next heartbeat. The default does nothing.
    fn leave(&self, node: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = node;
        async { Ok(()) }
    }

    /// The changes other processes sharing this store make, as they make them, when the
    /// store can tell (the PostgreSQL store hears them through `LISTEN`/`NOTIFY`). `None`,
    /// the default: it cannot, and a delivery engine relies on its polls and its endpoint
    /// refresh for what other processes do. Call it from within a Tokio runtime.
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        None
    }
}

/// Whether `filter` keeps `attempt` (the one definition every store agrees with).
pub(crate) fn attempt_matches(filter: &AttemptFilter, attempt: &Attempt) -> bool {
    filter
        .message
        .as_ref()
        .is_none_or(|m| attempt.message_id == *m)
        && filter
            .endpoint
            .as_ref()
            .is_none_or(|e| attempt.endpoint_id == *e)
        && (filter.event_types.is_empty() || filter.event_types.contains(&attempt.event_type))
        && filter
            .channel
            .as_ref()
            .is_none_or(|c| attempt.channels.contains(c))
        && filter.status.is_none_or(|s| attempt.status == s)
        && filter
            .response_status
            .as_ref()
            .is_none_or(|range| range.contains(&attempt.response_status))
        && filter.before.is_none_or(|t| attempt.timestamp < t)
        && filter.after.is_none_or(|t| attempt.timestamp > t)
}

/// An endpoint's health as a store keeps it, and the one rule that changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Health {
    /// When its current run of failures began; `None` while healthy.
    pub(crate) failing_since: Option<DateTime<Utc>>,
    /// Whether it is disabled.
    pub(crate) disabled: bool,
}

impl Health {
    /// Applies the outcome of an attempt made at `now` (see [`Store::record_health`]).
    pub(crate) fn apply(
        &mut self,
        success: bool,
        now: DateTime<Utc>,
        disable_after: Duration,
    ) -> HealthChange {
        if success {
            return match self.failing_since.take() {
                Some(failing_since) => HealthChange::Recovered { failing_since },
                None => HealthChange::Unchanged,
            };
        }
        let failing_since = *self.failing_since.get_or_insert(now);
        if !self.disabled && failing_too_long(failing_since, now, disable_after) {
            self.disabled = true;
            return HealthChange::Disabled { failing_since };
        }
        HealthChange::Unchanged
    }
}

/// When a run of failures that began at `since` has lasted longer than `limit` at `now`.
fn failing_too_long(since: DateTime<Utc>, now: DateTime<Utc>, limit: Duration) -> bool {
    now > crate::model::after(since, limit)
}

pub(crate) fn lease_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
