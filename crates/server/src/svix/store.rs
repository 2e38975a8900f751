//! The webhooks store the server runs on: SQLite in the data directory (the default, one
//! process) or PostgreSQL (`--database`, any number of processes on one database), as one
//! type the registry and the engine are built over.

use std::time::Duration;

use chrono::{DateTime, Utc};
use switchyard_webhooks::store::{
    AccessToken, AppLimits, AttemptCounts, AttemptFilter, Change, EndpointFilter, Finished,
    HealthChange, IdempotencyClaim, MessageFilter, PostgresStore, RememberedResponse, SqliteStore,
    Store,
};
use switchyard_webhooks::{
    AppId, AppUid, Application, Attempt, AttemptId, Channel, Delivery, DeliveryUpdate, Endpoint,
    EndpointId, EndpointRecord, EndpointUid, EventType, EventTypeName, Lease, Message, MessageId,
    PageRequest, StoreError,
};

/// One of the stores the server can run on; every call goes to the one it holds.
#[derive(Debug, Clone)]
pub(crate) enum ServerStore {
    /// `<data_dir>/webhooks/store.db`.
    Sqlite(SqliteStore),
    /// The database `--database` names.
    Postgres(PostgresStore),
}

impl ServerStore {
    /// Lets go of the store: SQLite's writer finishes what is queued; PostgreSQL's pool
    /// closes as the last handle goes.
    pub(crate) async fn close(&self) {
        if let Self::Sqlite(store) = self {
            store.close().await;
        }
    }

    /// Whether the store answers (the readiness check): a query on PostgreSQL, a read of the
    /// default application on SQLite.
    pub(crate) async fn ready(&self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(store) => store.application(&AppId::default_app()).await.map(|_| ()),
            Self::Postgres(store) => store.ping().await,
        }
    }

    /// Moves the store to `ring` while it serves (see `SqliteStore::rotate_keys`): returns
    /// the values sealed again.
    pub(crate) async fn rotate_keys(
        &self,
        ring: switchyard_webhooks::seal::KeyRing,
    ) -> Result<usize, StoreError> {
        match self {
            Self::Sqlite(store) => store.rotate_keys(ring).await,
            Self::Postgres(store) => store.rotate_keys(ring).await,
        }
    }

    /// The kind, for logs.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

/// Calls the same method on whichever store this is.
macro_rules! each {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            ServerStore::Sqlite($store) => $call.await,
            ServerStore::Postgres($store) => $call.await,
        }
    };
}

impl Store for ServerStore {
    async fn put_event_type(&self, event_type: &EventType) -> Result<(), StoreError> {
        each!(self, s => s.put_event_type(event_type))
    }

    async fn event_type(&self, name: &EventTypeName) -> Result<Option<EventType>, StoreError> {
        each!(self, s => s.event_type(name))
    }

    async fn list_event_types(
        &self,
        page: &PageRequest,
        include_archived: bool,
    ) -> Result<Vec<EventType>, StoreError> {
        each!(self, s => s.list_event_types(page, include_archived))
    }

    async fn put_application(&self, application: &Application) -> Result<(), StoreError> {
        each!(self, s => s.put_application(application))
    }

    async fn application(&self, id: &AppId) -> Result<Option<Application>, StoreError> {
        each!(self, s => s.application(id))
    }

    async fn application_by_uid(&self, uid: &AppUid) -> Result<Option<Application>, StoreError> {
        each!(self, s => s.application_by_uid(uid))
    }

    async fn list_applications(&self, page: &PageRequest) -> Result<Vec<Application>, StoreError> {
        each!(self, s => s.list_applications(page))
    }

    async fn delete_application(&self, id: &AppId) -> Result<bool, StoreError> {
        each!(self, s => s.delete_application(id))
    }

    async fn put_endpoint(&self, record: &EndpointRecord) -> Result<(), StoreError> {
        each!(self, s => s.put_endpoint(record))
    }

    async fn endpoint(
        &self,
        app: &AppId,
        id: &EndpointId,
    ) -> Result<Option<EndpointRecord>, StoreError> {
        each!(self, s => s.endpoint(app, id))
    }

    async fn endpoint_by_uid(
        &self,
        app: &AppId,
        uid: &EndpointUid,
    ) -> Result<Option<EndpointRecord>, StoreError> {
        each!(self, s => s.endpoint_by_uid(app, uid))
    }

    async fn delete_endpoint(&self, app: &AppId, id: &EndpointId) -> Result<bool, StoreError> {
        each!(self, s => s.delete_endpoint(app, id))
    }

    async fn list_endpoints(
        &self,
        app: &AppId,
        filter: &EndpointFilter,
        page: &PageRequest,
    ) -> Result<Vec<Endpoint>, StoreError> {
        each!(self, s => s.list_endpoints(app, filter, page))
    }

    async fn recipients(
        &self,
        app: &AppId,
        event_type: &EventTypeName,
        channels: &[Channel],
    ) -> Result<Vec<EndpointId>, StoreError> {
        each!(self, s => s.recipients(app, event_type, channels))
    }

    async fn insert_message(
        &self,
        message: &Message,
        endpoints: &[EndpointId],
    ) -> Result<(), StoreError> {
        each!(self, s => s.insert_message(message, endpoints))
    }

    async fn message(&self, app: &AppId, id: &MessageId) -> Result<Option<Message>, StoreError> {
        each!(self, s => s.message(app, id))
    }

    async fn list_messages(
        &self,
        app: &AppId,
        filter: &MessageFilter,
        page: &PageRequest,
    ) -> Result<Vec<Message>, StoreError> {
        each!(self, s => s.list_messages(app, filter, page))
    }

    async fn deliveries(
        &self,
        app: &AppId,
        message: &MessageId,
    ) -> Result<Vec<Delivery>, StoreError> {
        each!(self, s => s.deliveries(app, message))
    }

    async fn lease_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_for: Duration,
        limit: usize,
    ) -> Result<Vec<Lease>, StoreError> {
        each!(self, s => s.lease_deliveries(now, lease_for, limit))
    }

    async fn lease_deliveries_within(
        &self,
        now: DateTime<Utc>,
        lease_for: Duration,
        limit: usize,
        limits: &AppLimits,
    ) -> Result<Vec<Lease>, StoreError> {
        each!(self, s => s.lease_deliveries_within(now, lease_for, limit, limits))
    }

    async fn finish_delivery(
        &self,
        lease: &Lease,
        update: &DeliveryUpdate,
    ) -> Result<bool, StoreError> {
        each!(self, s => s.finish_delivery(lease, update))
    }

    async fn finish_deliveries(
        &self,
        items: Vec<(Lease, DeliveryUpdate)>,
        disable_after: Duration,
    ) -> Result<Finished, StoreError> {
        each!(self, s => s.finish_deliveries(items, disable_after))
    }

    async fn endpoints(&self, ids: &[EndpointId]) -> Result<Vec<EndpointRecord>, StoreError> {
        each!(self, s => s.endpoints(ids))
    }

    async fn messages(&self, ids: &[MessageId]) -> Result<Vec<Message>, StoreError> {
        each!(self, s => s.messages(ids))
    }

    async fn list_attempts(
        &self,
        app: &AppId,
        filter: &AttemptFilter,
        page: &PageRequest,
    ) -> Result<Vec<Attempt>, StoreError> {
        each!(self, s => s.list_attempts(app, filter, page))
    }

    async fn attempt(&self, app: &AppId, id: &AttemptId) -> Result<Option<Attempt>, StoreError> {
        each!(self, s => s.attempt(app, id))
    }

    async fn attempt_counts(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<AttemptCounts, StoreError> {
        each!(self, s => s.attempt_counts(app, endpoint, since, until))
    }

    async fn attempt_histogram(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        buckets: u32,
    ) -> Result<Vec<AttemptCounts>, StoreError> {
        each!(self, s => s.attempt_histogram(app, endpoint, since, until, buckets))
    }

    async fn failing_since(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        each!(self, s => s.failing_since(app, endpoint))
    }

    async fn expunge_payload(&self, app: &AppId, message: &MessageId) -> Result<bool, StoreError> {
        each!(self, s => s.expunge_payload(app, message))
    }

    async fn expunge_response(&self, app: &AppId, attempt: &AttemptId) -> Result<bool, StoreError> {
        each!(self, s => s.expunge_response(app, attempt))
    }

    async fn idempotency_begin(
        &self,
        key: &str,
        now: DateTime<Utc>,
        hold_until: DateTime<Utc>,
    ) -> Result<IdempotencyClaim, StoreError> {
        each!(self, s => s.idempotency_begin(key, now, hold_until))
    }

    async fn idempotency_finish(
        &self,
        key: &str,
        response: &RememberedResponse,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        each!(self, s => s.idempotency_finish(key, response, expires_at))
    }

    async fn idempotency_release(&self, key: &str) -> Result<(), StoreError> {
        each!(self, s => s.idempotency_release(key))
    }

    async fn purge_idempotency(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        each!(self, s => s.purge_idempotency(now))
    }

    async fn put_access_token(&self, token: &AccessToken) -> Result<bool, StoreError> {
        each!(self, s => s.put_access_token(token))
    }

    async fn access_token(&self, hash: &str) -> Result<Option<AccessToken>, StoreError> {
        each!(self, s => s.access_token(hash))
    }

    async fn delete_access_token(&self, hash: &str) -> Result<bool, StoreError> {
        each!(self, s => s.delete_access_token(hash))
    }

    async fn purge_access_tokens(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        each!(self, s => s.purge_access_tokens(now))
    }

    async fn requeue_delivery(
        &self,
        app: &AppId,
        message: &MessageId,
        endpoint: &EndpointId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        each!(self, s => s.requeue_delivery(app, message, endpoint, now))
    }

    async fn recover_deliveries(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        each!(self, s => s.recover_deliveries(app, endpoint, since, until, now))
    }

    async fn record_health(
        &self,
        endpoint: &EndpointId,
        success: bool,
        now: DateTime<Utc>,
        disable_after: Duration,
    ) -> Result<HealthChange, StoreError> {
        each!(self, s => s.record_health(endpoint, success, now, disable_after))
    }

    async fn purge_payloads(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        each!(self, s => s.purge_payloads(before))
    }

    async fn heartbeat(&self, node: &str, expire: Duration) -> Result<usize, StoreError> {
        each!(self, s => s.heartbeat(node, expire))
    }

    async fn leave(&self, node: &str) -> Result<(), StoreError> {
        each!(self, s => s.leave(node))
    }

    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        match self {
            Self::Sqlite(store) => store.changes(),
            Self::Postgres(store) => store.changes(),
        }
    }
}
