//! Storage behind the [`Registry`](crate::Registry): the [`Store`] trait and its two
//! implementations, [`MemoryStore`] (tests, ephemeral use) and [`SqliteStore`] (the embedded,
//! durable default, behind the `sqlite` feature).
//!
//! A store only keeps and finds records; every rule (names, schemas, channels, key rotation)
//! lives in the registry, so a new backend (PostgreSQL, say) implements storage and nothing
//! else. Two operations must be atomic in every backend: [`Store::insert_message`] (a message
//! and all its deliveries, or nothing) and [`Store::lease_deliveries`] (several workers,
//! possibly in several processes, never lease the same delivery at once).

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::StoreError;
use crate::id::{EndpointId, MessageId};
use crate::model::{
    Channel, Delivery, DeliveryUpdate, Endpoint, EndpointRecord, EndpointUid, EventType,
    EventTypeName, Lease, Message,
};
use crate::page::PageRequest;

mod memory;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use memory::MemoryStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

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
    /// Only messages of this event type.
    pub event_type: Option<EventTypeName>,
    /// Only messages sent to this channel.
    pub channel: Option<Channel>,
}

/// Durable storage for event types, endpoints, messages and deliveries.
///
/// Lists return records in key order (event types by name, endpoints and messages by id, which
/// is creation order) after [`PageRequest::after`], at most `limit + 1` of them.
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

    /// Active (not archived) event types, by name.
    fn list_event_types(
        &self,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Vec<EventType>, StoreError>> + Send;

    /// Inserts or replaces an endpoint, keyed by id.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when another endpoint already has the same uid.
    fn put_endpoint(
        &self,
        record: &EndpointRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The endpoint with this id.
    fn endpoint(
        &self,
        id: &EndpointId,
    ) -> impl Future<Output = Result<Option<EndpointRecord>, StoreError>> + Send;

    /// The endpoint with this uid.
    fn endpoint_by_uid(
        &self,
        uid: &EndpointUid,
    ) -> impl Future<Output = Result<Option<EndpointRecord>, StoreError>> + Send;

    /// Deletes an endpoint and its pending deliveries; `false` when there was none.
    fn delete_endpoint(
        &self,
        id: &EndpointId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Endpoints matching the filter, by id.
    fn list_endpoints(
        &self,
        filter: &EndpointFilter,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Vec<Endpoint>, StoreError>> + Send;

    /// The ids of the enabled endpoints a message of this type on this channel goes to
    /// (exactly those for which [`Endpoint::receives`] holds).
    fn recipients(
        &self,
        event_type: &EventTypeName,
        channel: Option<&Channel>,
    ) -> impl Future<Output = Result<Vec<EndpointId>, StoreError>> + Send;

    /// Stores a message and one pending delivery per endpoint, due at the message's creation
    /// time, atomically.
    fn insert_message(
        &self,
        message: &Message,
        endpoints: &[EndpointId],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The message with this id.
    fn message(
        &self,
        id: &MessageId,
    ) -> impl Future<Output = Result<Option<Message>, StoreError>> + Send;

    /// Messages matching the filter, by id.
    fn list_messages(
        &self,
        filter: &MessageFilter,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Vec<Message>, StoreError>> + Send;

    /// Every delivery of a message, by endpoint id.
    fn deliveries(
        &self,
        message: &MessageId,
    ) -> impl Future<Output = Result<Vec<Delivery>, StoreError>> + Send;

    /// Atomically leases up to `limit` pending deliveries due at `now` and not held by a live
    /// lease, earliest due first, for `lease_for`. A delivery whose lease ran out (its worker
    /// died) can be leased again.
    fn lease_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_for: Duration,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Lease>, StoreError>> + Send;

    /// Records the outcome of an attempt and releases the lease. Returns `false` (and changes
    /// nothing) when the lease is no longer held: it expired and another worker took it.
    fn finish_delivery(
        &self,
        lease: &Lease,
        update: &DeliveryUpdate,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

pub(crate) fn lease_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

pub(crate) fn lease_until(now: DateTime<Utc>, lease_for: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(lease_for)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}
