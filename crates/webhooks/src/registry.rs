//! The registry: event types, endpoints, secrets and messages, with every rule checked here
//! and the records kept by a [`Store`].

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, SubsecRound as _, Utc};
use http::{HeaderName, HeaderValue};
use serde_json::Value;
use tokio::sync::Notify;

use crate::error::{Error, SchemaError, StoreError};
use crate::id::{AppId, AttemptId, EndpointId, MessageId};
use crate::model::{
    AppUid, Application, ApplicationSpec, Attempt, Channel, Delivery, Endpoint, EndpointKeys,
    EndpointRecord, EndpointSpec, EndpointUid, EventType, EventTypeFilter, EventTypeName,
    MAX_CHANNELS, MAX_MESSAGE_CHANNELS, Message, SentEvent, after,
};
use crate::page::{ListOptions, MAX_LIMIT, Order, Page, finish_page};
use crate::schema::CompiledSchema;
use crate::secret::Secret;
use crate::signature::Verifier;
use crate::store::{
    AccessToken, AttemptCounts, AttemptFilter, EndpointFilter, MemoryStore, MessageFilter, Store,
};
use crate::token::AppToken;

/// How long a rotated-out secret keeps signing by default: 24 hours.
pub const DEFAULT_KEY_GRACE: Duration = Duration::from_secs(24 * 60 * 60);
/// The most previous secrets kept during grace periods.
pub const MAX_PREVIOUS_KEYS: usize = 10;
/// The largest payload accepted by default: 1 MiB.
pub const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;

/// Headers the signer sets itself, which an endpoint's custom headers may not override.
const RESERVED_HEADERS: &[&str] = &[
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "svix-id",
    "svix-timestamp",
    "svix-signature",
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
    "user-agent",
];

/// The registry's source of the current time (a function, so tests can move time).
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(Arc::new(Utc::now))
    }

    /// A clock that asks `now` for the time.
    pub fn from_fn(now: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    /// The current time, truncated to microseconds (what every store keeps).
    pub fn now(&self) -> DateTime<Utc> {
        (self.0)().trunc_subsecs(6)
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

/// Registry settings. Every field has a documented default.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// How long a rotated-out secret stays valid (default [`DEFAULT_KEY_GRACE`], 24 h).
    pub key_grace: Duration,
    /// The largest payload `send` accepts, in bytes (default [`DEFAULT_MAX_PAYLOAD`], 1 MiB).
    pub max_payload_bytes: usize,
    /// Whether [`Registry::create_message`] refuses event types that were never registered
    /// (default `false`: accepted, as Svix accepts them; event types are optional there).
    /// [`Registry::send`], swh-webhooks' `event_send`, always refuses them, as swh-webhooks
    /// does.
    pub require_event_types: bool,
    /// Whether payloads are validated against their event type's schema (default `true`).
    /// Svix does not validate payloads at all; swh-webhooks validates them before sending.
    /// Turn it off to take any JSON object, as Svix does.
    pub validate_payloads: bool,
    /// Whether JSON Schema `format` is asserted (default `false`: an annotation, as Draft 7
    /// allows and as swh-webhooks validates). With `true`, a `date-time` without a time zone
    /// (Python's `datetime.now().isoformat()`) is refused.
    pub assert_formats: bool,
    /// Whether event type names must have swh-webhooks' form, `<group>.<event>`
    /// ([`EventTypeName::is_grouped`]), to be created or sent (default `true`, as
    /// swh-webhooks' `event_type_create` refuses others). Svix takes any name of
    /// [`EventTypeName`]'s alphabet (`message.attempt.failing`, `signup`); the server turns
    /// this off.
    pub grouped_event_type_names: bool,
    /// The time source (default: the system clock).
    pub clock: Clock,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            key_grace: DEFAULT_KEY_GRACE,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD,
            require_event_types: false,
            validate_payloads: true,
            assert_formats: false,
            grouped_event_type_names: true,
            clock: Clock::system(),
        }
    }
}

/// The most spans [`AppScope::attempt_histogram`] cuts a window into.
pub const MAX_HISTOGRAM_BUCKETS: u32 = 200;

/// A message for [`Registry::create_message_with`]: the event type and payload, and
/// optionally channels (at most [`MAX_MESSAGE_CHANNELS`]) and the sender's event id.
///
/// ```
/// use switchyard_webhooks::{EventTypeName, NewMessage};
///
/// let ty = EventTypeName::new("invoice.paid")?;
/// let message = NewMessage::new(&ty, br#"{"amount": 3}"#)
///     .channel("acme")
///     .channel("acme-billing")
///     .event_id("evt-2026-0001");
/// assert_eq!(message.channels, ["acme", "acme-billing"]);
/// assert_eq!(message.event_id, Some("evt-2026-0001"));
/// # Ok::<(), switchyard_webhooks::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NewMessage<'a> {
    /// Its event type.
    pub event_type: &'a EventTypeName,
    /// The payload: a JSON object, stored and delivered byte for byte.
    pub payload: &'a [u8],
    /// The channels it goes to; none: no channel (only endpoints without channels get it).
    pub channels: Vec<&'a str>,
    /// The sender's identifier for it (Svix's `eventId`): 1 to 256 ASCII letters, digits,
    /// `-`, `_` or `.`.
    pub event_id: Option<&'a str>,
}

impl<'a> NewMessage<'a> {
    /// A message of `event_type` carrying `payload`.
    pub fn new(event_type: &'a EventTypeName, payload: &'a [u8]) -> Self {
        Self {
            event_type,
            payload,
            channels: Vec::new(),
            event_id: None,
        }
    }

    /// Sends it to a channel too.
    #[must_use]
    pub fn channel(mut self, channel: &'a str) -> Self {
        self.channels.push(channel);
        self
    }

    /// Gives it the sender's event id.
    #[must_use]
    pub fn event_id(mut self, event_id: &'a str) -> Self {
        self.event_id = Some(event_id);
        self
    }
}

/// The webhook registry: the Rust counterpart of `swh.webhooks.interface.Webhooks`, with no
/// outside service.
///
/// ```
/// use serde_json::json;
/// use switchyard_webhooks::{EndpointSpec, EventTypeName, Registry};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), switchyard_webhooks::Error> {
/// let registry = Registry::in_memory();
/// let visit = EventTypeName::new("origin.visit")?;
/// registry
///     .create_event_type(visit.clone(), "An origin was visited", json!({
///         "type": "object",
///         "required": ["origin"],
///         "properties": {"origin": {"type": "string"}}
///     }))
///     .await?;
///
/// // Nobody listens yet: nothing is stored, `None` comes back.
/// assert!(registry.send(&visit, br#"{"origin": "https://example.org"}"#, None).await?.is_none());
///
/// let endpoint = registry
///     .create_endpoint(EndpointSpec::new("https://hooks.example.com/").event_type(visit.clone()))
///     .await?;
/// let (id, _at) = registry
///     .send(&visit, br#"{"origin": "https://example.org"}"#, None)
///     .await?
///     .expect("one endpoint listens");
/// assert_eq!(registry.deliveries(&id).await?[0].endpoint_id, endpoint.id);
///
/// // Payloads are validated against the schema, every violation listed.
/// let err = registry.send(&visit, br#"{"origin": 42}"#, None).await.unwrap_err();
/// assert!(err.to_string().contains("/origin"));
/// # Ok(())
/// # }
/// ```
pub struct Registry<S = MemoryStore> {
    store: S,
    config: RegistryConfig,
    /// Compiled schemas by event type, with the `updated_at` they were compiled for.
    schemas: Mutex<HashMap<EventTypeName, (DateTime<Utc>, CompiledSchema)>>,
    /// Woken when deliveries become due (a send, a resend), so a delivery engine in this
    /// process starts at once instead of at its next poll.
    work: Notify,
    /// Counts the endpoint writes made through this registry: a delivery engine in this
    /// process drops the endpoints it cached when it changes.
    endpoint_writes: AtomicU64,
}

impl<S> fmt::Debug for Registry<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Registry<MemoryStore> {
    /// A registry over a fresh [`MemoryStore`].
    pub fn in_memory() -> Self {
        Self::new(MemoryStore::new())
    }
}

impl<S: Store> Registry<S> {
    /// A registry over `store` with the default settings.
    pub fn new(store: S) -> Self {
        Self::with_config(store, RegistryConfig::default())
    }

    /// A registry over `store` with these settings.
    pub fn with_config(store: S, config: RegistryConfig) -> Self {
        Self {
            store,
            config,
            schemas: Mutex::new(HashMap::new()),
            work: Notify::new(),
            endpoint_writes: AtomicU64::new(0),
        }
    }

    /// The store, for the delivery engine (leasing) and for inspection.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The settings.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    fn now(&self) -> DateTime<Utc> {
        self.config.clock.now()
    }

    /// How many endpoint writes this registry has made (any change means cached endpoints
    /// may be stale).
    #[cfg(feature = "delivery")]
    pub(crate) fn endpoint_writes(&self) -> u64 {
        self.endpoint_writes.load(Ordering::Acquire)
    }

    /// Stores an endpoint and counts the write (whether or not it succeeded). An application
    /// deleted since the endpoint was read (by another request, or another process) is
    /// [`Error::ApplicationNotFound`], not a store error: its endpoints went with it.
    async fn save_endpoint(&self, record: &EndpointRecord) -> Result<(), Error> {
        let result = self.store.put_endpoint(record).await;
        self.endpoint_writes.fetch_add(1, Ordering::AcqRel);
        match result {
            Ok(()) => Ok(()),
            Err(error) => match self.store.application(&record.endpoint.app).await {
                Ok(None) => Err(Error::ApplicationNotFound {
                    id: record.endpoint.app.to_string(),
                }),
                _ => Err(error.into()),
            },
        }
    }

    /// Says deliveries may have become due (another process sent or resent something).
    #[cfg(feature = "delivery")]
    pub(crate) fn wake(&self) {
        self.work.notify_one();
    }

    /// Says endpoints changed elsewhere (another process wrote them): a delivery engine in
    /// this process drops the endpoints it cached.
    #[cfg(feature = "delivery")]
    pub(crate) fn endpoints_changed(&self) {
        self.endpoint_writes.fetch_add(1, Ordering::AcqRel);
    }

    /// Resolves when deliveries may have become due since the last call (a send or a resend
    /// in this process, or one another process told of). The delivery engine waits on this
    /// between polls.
    #[cfg(feature = "delivery")]
    pub(crate) async fn work_queued(&self) {
        self.work.notified().await;
    }

    // ----- event types -----

    /// Creates an event type, or updates the description and schema of an existing one
    /// (unarchiving it if it was archived). The schema is checked against the Draft 7
    /// meta-schema and compiled now, once.
    ///
    /// # Errors
    /// [`SchemaError::InvalidSchema`] (inside [`Error::Schema`]) naming the path of the bad
    /// part of the schema; [`Error::UngroupedEventTypeName`] for a name not
    /// `<group>.<event>` while [`RegistryConfig::grouped_event_type_names`] holds;
    /// [`Error::Store`].
    pub async fn create_event_type(
        &self,
        name: EventTypeName,
        description: impl Into<String>,
        schema: Value,
    ) -> Result<EventType, Error> {
        self.check_grouped(&name)?;
        let compiled = CompiledSchema::compile(&schema, self.config.assert_formats)?;
        let now = self.now();
        let created_at = match self.store.event_type(&name).await? {
            Some(existing) => existing.created_at,
            None => now,
        };
        let event_type = EventType {
            name,
            description: description.into(),
            schema,
            archived: false,
            created_at,
            updated_at: now,
        };
        self.store.put_event_type(&event_type).await?;
        self.schemas
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(event_type.name.clone(), (now, compiled));
        tracing::debug!(event_type = %event_type.name, "event type saved");
        Ok(event_type)
    }

    /// [`Error::UngroupedEventTypeName`] for a name not `<group>.<event>` when the registry
    /// holds names to that form.
    fn check_grouped(&self, name: &EventTypeName) -> Result<(), Error> {
        if self.config.grouped_event_type_names && !name.is_grouped() {
            return Err(Error::UngroupedEventTypeName {
                name: name.to_string(),
            });
        }
        Ok(())
    }

    /// The active event type with this name.
    ///
    /// # Errors
    /// [`Error::EventTypeNotFound`] when it does not exist or is archived.
    pub async fn event_type(&self, name: &EventTypeName) -> Result<EventType, Error> {
        match self.store.event_type(name).await? {
            Some(event_type) if !event_type.archived => Ok(event_type),
            _ => Err(Error::EventTypeNotFound {
                name: name.to_string(),
            }),
        }
    }

    /// Active event types, in name order.
    ///
    /// # Errors
    /// [`Error::InvalidId`] for an iterator this registry did not hand out; [`Error::Store`].
    pub async fn list_event_types(&self, options: &ListOptions) -> Result<Page<EventType>, Error> {
        self.list_event_types_with(options, false).await
    }

    /// Event types in name order, the archived ones too with `include_archived`.
    ///
    /// # Errors
    /// As [`Registry::list_event_types`].
    pub async fn list_event_types_with(
        &self,
        options: &ListOptions,
        include_archived: bool,
    ) -> Result<Page<EventType>, Error> {
        let request = options.to_request()?;
        let items = self
            .store
            .list_event_types(&request, include_archived)
            .await?;
        Ok(finish_page(items, &request, options.is_backward(), |t| {
            t.name.as_str()
        }))
    }

    /// Archives an event type: it is kept, but no longer listed, and nothing can be sent with
    /// it. Creating it again unarchives it.
    ///
    /// # Errors
    /// [`Error::EventTypeNotFound`] when it does not exist or is already archived.
    pub async fn archive_event_type(&self, name: &EventTypeName) -> Result<(), Error> {
        let mut event_type = self.event_type(name).await?;
        event_type.archived = true;
        event_type.updated_at = self.now();
        self.store.put_event_type(&event_type).await?;
        Ok(())
    }

    /// The compiled schema for an event type, compiled at most once per version.
    fn compiled(&self, event_type: &EventType) -> Result<CompiledSchema, Error> {
        let cached = self
            .schemas
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&event_type.name)
            .filter(|(version, _)| *version == event_type.updated_at)
            .map(|(_, compiled)| compiled.clone());
        if let Some(compiled) = cached {
            return Ok(compiled);
        }
        // Written by another process, or before a restart: compile and keep it.
        let compiled = CompiledSchema::compile(&event_type.schema, self.config.assert_formats)?;
        self.schemas
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                event_type.name.clone(),
                (event_type.updated_at, compiled.clone()),
            );
        Ok(compiled)
    }

    // ----- applications -----

    /// Creates an application. Its uid, if any, must not be taken.
    ///
    /// # Errors
    /// [`Error::InvalidAppName`] for a blank name; [`Error::ApplicationExists`] for a uid
    /// another application has; [`Error::Store`].
    pub async fn create_application(&self, spec: ApplicationSpec) -> Result<Application, Error> {
        if spec.name.trim().is_empty() {
            return Err(Error::InvalidAppName);
        }
        let now = self.now();
        let application = Application {
            id: AppId::generate(now.timestamp())?,
            uid: spec.uid,
            name: spec.name,
            metadata: spec.metadata,
            rate_limit: spec.rate_limit,
            created_at: now,
            updated_at: now,
        };
        self.put_application(&application).await?;
        tracing::debug!(application = %application.id, "application created");
        Ok(application)
    }

    /// Stores an application, turning a uid conflict into [`Error::ApplicationExists`].
    async fn put_application(&self, application: &Application) -> Result<(), Error> {
        match self.store.put_application(application).await {
            Err(StoreError::Conflict { .. }) => Err(Error::ApplicationExists {
                uid: application
                    .uid
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            }),
            other => Ok(other?),
        }
    }

    /// The application with this id (`app_…`) or uid.
    ///
    /// # Errors
    /// [`Error::ApplicationNotFound`].
    pub async fn application(&self, id_or_uid: &str) -> Result<Application, Error> {
        if let Ok(id) = id_or_uid.parse::<AppId>()
            && let Some(application) = self.store.application(&id).await?
        {
            return Ok(application);
        }
        if let Ok(uid) = AppUid::new(id_or_uid)
            && let Some(application) = self.store.application_by_uid(&uid).await?
        {
            return Ok(application);
        }
        Err(Error::ApplicationNotFound {
            id: id_or_uid.to_owned(),
        })
    }

    /// Applications in creation order (or its reverse), the default one first.
    ///
    /// # Errors
    /// [`Error::InvalidId`] for a foreign iterator; [`Error::Store`].
    pub async fn list_applications(
        &self,
        options: &ListOptions,
    ) -> Result<Page<Application>, Error> {
        let request = options.to_request()?;
        let items = self.store.list_applications(&request).await?;
        Ok(finish_page(items, &request, options.is_backward(), |a| {
            a.id.as_str()
        }))
    }

    /// Replaces an application's name, uid, metadata and rate limit.
    ///
    /// # Errors
    /// [`Error::ApplicationNotFound`]; [`Error::InvalidAppName`]; [`Error::ApplicationExists`].
    pub async fn update_application(
        &self,
        id_or_uid: &str,
        spec: ApplicationSpec,
    ) -> Result<Application, Error> {
        if spec.name.trim().is_empty() {
            return Err(Error::InvalidAppName);
        }
        let mut application = self.application(id_or_uid).await?;
        application.uid = spec.uid;
        application.name = spec.name;
        application.metadata = spec.metadata;
        application.rate_limit = spec.rate_limit;
        application.updated_at = self.now();
        self.put_application(&application).await?;
        Ok(application)
    }

    /// Deletes an application with its endpoints (their pending deliveries are never
    /// attempted), messages and attempts. The default application cannot be deleted.
    ///
    /// # Errors
    /// [`Error::ApplicationNotFound`] (the default application included).
    pub async fn delete_application(&self, id_or_uid: &str) -> Result<(), Error> {
        let application = self.application(id_or_uid).await?;
        let deleted = self.store.delete_application(&application.id).await;
        // Its endpoints are gone: a delivery engine here drops what it cached.
        self.endpoint_writes.fetch_add(1, Ordering::AcqRel);
        if deleted? {
            tracing::info!(application = %application.id, "application deleted");
            Ok(())
        } else {
            Err(Error::ApplicationNotFound {
                id: id_or_uid.to_owned(),
            })
        }
    }

    // ----- application tokens -----

    /// Issues a token that reaches the application with this id or uid only, for
    /// `lifetime` (what an API layer lets it do, `read_only` among it, is that layer's). The
    /// store keeps the token's hash.
    ///
    /// # Errors
    /// [`Error::ApplicationNotFound`] (the default application included); [`Error::Key`]
    /// when the OS's random source fails; [`Error::Store`].
    pub async fn issue_access_token(
        &self,
        id_or_uid: &str,
        lifetime: Duration,
        read_only: bool,
    ) -> Result<(AppToken, AccessToken), Error> {
        let application = self.application(id_or_uid).await?;
        if application.id == AppId::default_app() {
            return Err(Error::ApplicationNotFound {
                id: id_or_uid.to_owned(),
            });
        }
        let token = AppToken::generate()?;
        let lifetime = chrono::Duration::from_std(lifetime).unwrap_or(chrono::Duration::MAX);
        let record = AccessToken {
            hash: token.hash(),
            app: application.id,
            expires_at: self
                .now()
                .checked_add_signed(lifetime)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
            read_only,
        };
        if !self.store.put_access_token(&record).await? {
            // Deleted between the lookup and the insert.
            return Err(Error::ApplicationNotFound {
                id: id_or_uid.to_owned(),
            });
        }
        tracing::info!(application = %record.app, "application token issued");
        Ok((token, record))
    }

    /// What a presented token may reach: `None` for one that is unknown, revoked or expired.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn access_token(&self, token: &str) -> Result<Option<AccessToken>, Error> {
        if !AppToken::looks_like(token) {
            return Ok(None);
        }
        let now = self.now();
        Ok(self
            .store
            .access_token(&AppToken::hash_of(token))
            .await?
            .filter(|record| record.expires_at > now))
    }

    /// Revokes a token; whether it was known.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn revoke_access_token(&self, token: &str) -> Result<bool, Error> {
        Ok(self
            .store
            .delete_access_token(&AppToken::hash_of(token))
            .await?)
    }

    /// The part of the registry that belongs to one application (by id or uid): its
    /// endpoints, messages and attempts.
    ///
    /// # Errors
    /// [`Error::ApplicationNotFound`].
    pub async fn app(&self, id_or_uid: &str) -> Result<AppScope<'_, S>, Error> {
        let application = self.application(id_or_uid).await?;
        Ok(AppScope {
            registry: self,
            app: application.id,
        })
    }

    /// The default application's part ([`AppId::default_app`]), which exists in every
    /// store: what the single-tenant methods below (`create_endpoint`, `send`, …) use.
    pub fn default_app(&self) -> AppScope<'_, S> {
        AppScope {
            registry: self,
            app: AppId::default_app(),
        }
    }

    // ----- the default application (single-tenant use) -----

    /// [`AppScope::create_endpoint`] in the default application.
    ///
    /// # Errors
    /// As [`AppScope::create_endpoint`].
    pub async fn create_endpoint(&self, spec: EndpointSpec) -> Result<Endpoint, Error> {
        self.default_app().create_endpoint(spec).await
    }

    /// [`AppScope::endpoint`] in the default application.
    ///
    /// # Errors
    /// As [`AppScope::endpoint`].
    pub async fn endpoint(&self, id_or_uid: &str) -> Result<Endpoint, Error> {
        self.default_app().endpoint(id_or_uid).await
    }

    /// [`AppScope::list_endpoints`] in the default application.
    ///
    /// # Errors
    /// As [`AppScope::list_endpoints`].
    pub async fn list_endpoints(
        &self,
        filter: &EndpointFilter,
        options: &ListOptions,
    ) -> Result<Page<Endpoint>, Error> {
        self.default_app().list_endpoints(filter, options).await
    }

    /// [`AppScope::delete_endpoint`] in the default application.
    ///
    /// # Errors
    /// As [`AppScope::delete_endpoint`].
    pub async fn delete_endpoint(&self, id_or_uid: &str) -> Result<(), Error> {
        self.default_app().delete_endpoint(id_or_uid).await
    }

    /// [`AppScope::update_endpoint`] in the default application.
    ///
    /// # Errors
    /// As [`AppScope::update_endpoint`].
    pub async fn update_endpoint(
        &self,
        id_or_uid: &str,
        spec: EndpointSpec,
    ) -> Result<Endpoint, Error> {
        self.default_app().update_endpoint(id_or_uid, spec).await
    }

    /// [`AppScope::update_endpoint_headers`] in the default application.
    ///
    /// # Errors
    /// As [`AppScope::update_endpoint_headers`].
    pub async fn update_endpoint_headers(
        &self,
        id_or_uid: &str,
        headers: std::collections::BTreeMap<String, String>,
    ) -> Result<Endpoint, Error> {
        self.default_app()
            .update_endpoint_headers(id_or_uid, headers)
            .await
    }

    /// [`AppScope::endpoint_secret`] in the default application.
    ///
    /// # Errors
    /// As [`AppScope::endpoint_secret`].
    pub async fn endpoint_secret(&self, id_or_uid: &str) -> Result<Secret, Error> {
        self.default_app().endpoint_secret(id_or_uid).await
    }

    /// [`AppScope::live_keys`] in the default application.
    ///
    /// # Errors
    /// As [`AppScope::live_keys`].
    pub async fn live_keys(&self, id_or_uid: &str) -> Result<Vec<Secret>, Error> {
        self.default_app().live_keys(id_or_uid).await
    }

    /// [`AppScope::verifier`] in the default application.
    ///
    /// # Errors
    /// As [`AppScope::verifier`].
    pub async fn verifier(&self, id_or_uid: &str) -> Result<Verifier, Error> {
        self.default_app().verifier(id_or_uid).await
    }

    /// [`AppScope::rotate_secret`] in the default application.
    ///
    /// # Errors
    /// As [`AppScope::rotate_secret`].
    pub async fn rotate_secret(&self, id_or_uid: &str, new: Option<Secret>) -> Result<(), Error> {
        self.default_app().rotate_secret(id_or_uid, new).await
    }

    /// [`AppScope::send`] in the default application.
    ///
    /// # Errors
    /// As [`AppScope::send`].
    pub async fn send(
        &self,
        event_type: &EventTypeName,
        payload: impl AsRef<[u8]>,
        channel: Option<&str>,
    ) -> Result<Option<(MessageId, DateTime<Utc>)>, Error> {
        self.default_app().send(event_type, payload, channel).await
    }

    /// [`AppScope::create_message`] in the default application.
    ///
    /// # Errors
    /// As [`AppScope::create_message`].
    pub async fn create_message(
        &self,
        event_type: &EventTypeName,
        payload: impl AsRef<[u8]>,
        channel: Option<&str>,
    ) -> Result<Message, Error> {
        self.default_app()
            .create_message(event_type, payload, channel)
            .await
    }

    /// [`AppScope::create_message_with`] in the default application.
    ///
    /// # Errors
    /// As [`AppScope::create_message_with`].
    pub async fn create_message_with(&self, message: NewMessage<'_>) -> Result<Message, Error> {
        self.default_app().create_message_with(message).await
    }

    /// [`AppScope::message`] in the default application.
    ///
    /// # Errors
    /// As [`AppScope::message`].
    pub async fn message(&self, id: &str) -> Result<Message, Error> {
        self.default_app().message(id).await
    }

    /// [`AppScope::list_messages`] in the default application.
    ///
    /// # Errors
    /// As [`AppScope::list_messages`].
    pub async fn list_messages(
        &self,
        filter: &MessageFilter,
        options: &ListOptions,
    ) -> Result<Page<Message>, Error> {
        self.default_app().list_messages(filter, options).await
    }

    /// [`AppScope::deliveries`] in the default application.
    ///
    /// # Errors
    /// As [`AppScope::deliveries`].
    pub async fn deliveries(&self, message: &MessageId) -> Result<Vec<Delivery>, Error> {
        self.default_app().deliveries(message).await
    }

    /// [`AppScope::list_attempts`] in the default application.
    ///
    /// # Errors
    /// As [`AppScope::list_attempts`].
    pub async fn list_attempts(
        &self,
        filter: &AttemptFilter,
        options: &ListOptions,
    ) -> Result<Page<Attempt>, Error> {
        self.default_app().list_attempts(filter, options).await
    }

    /// [`AppScope::sent_events_for_endpoint`] in the default application.
    ///
    /// # Errors
    /// As [`AppScope::sent_events_for_endpoint`].
    pub async fn sent_events_for_endpoint(
        &self,
        id_or_uid: &str,
        query: &SentEventQuery,
    ) -> Result<Vec<SentEvent>, Error> {
        self.default_app()
            .sent_events_for_endpoint(id_or_uid, query)
            .await
    }

    /// [`AppScope::sent_events_for_event_type`] in the default application.
    ///
    /// # Errors
    /// As [`AppScope::sent_events_for_event_type`].
    pub async fn sent_events_for_event_type(
        &self,
        event_type: &EventTypeName,
        channel: Option<&str>,
        query: &SentEventQuery,
    ) -> Result<Vec<SentEvent>, Error> {
        self.default_app()
            .sent_events_for_event_type(event_type, channel, query)
            .await
    }

    /// [`AppScope::resend`] in the default application.
    ///
    /// # Errors
    /// As [`AppScope::resend`].
    pub async fn resend(&self, message: &str, endpoint: &str) -> Result<(), Error> {
        self.default_app().resend(message, endpoint).await
    }

    /// [`AppScope::recover`] in the default application.
    ///
    /// # Errors
    /// As [`AppScope::recover`].
    pub async fn recover(&self, endpoint: &str, since: DateTime<Utc>) -> Result<u64, Error> {
        self.default_app().recover(endpoint, since).await
    }
}

/// One application's part of a [`Registry`]: its endpoints, messages, deliveries and
/// attempts. Made by [`Registry::app`] (or [`Registry::default_app`]); every call reaches that
/// application's records only: the id of another application's endpoint or message is
/// "not found" here, and a message sent here goes to this application's endpoints only.
///
/// ```
/// use serde_json::json;
/// use switchyard_webhooks::{ApplicationSpec, EndpointSpec, EventTypeName, Registry};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), switchyard_webhooks::Error> {
/// let registry = Registry::in_memory();
/// let paid = EventTypeName::new("invoice.paid")?;
/// registry.create_event_type(paid.clone(), "An invoice was paid", json!({})).await?;
/// registry.create_application(ApplicationSpec::new("Acme").uid("acme")?).await?;
/// registry.create_application(ApplicationSpec::new("Globex").uid("globex")?).await?;
///
/// let acme = registry.app("acme").await?;
/// let hook = acme.create_endpoint(EndpointSpec::new("https://acme.example/hooks")).await?;
/// let message = acme.create_message(&paid, r#"{"amount": 3}"#, None).await?;
/// assert_eq!(acme.deliveries(&message.id).await?[0].endpoint_id, hook.id);
///
/// // Globex sees none of it.
/// let globex = registry.app("globex").await?;
/// assert!(globex.endpoint(hook.id.as_str()).await.is_err());
/// assert!(globex.message(message.id.as_str()).await.is_err());
/// # Ok(())
/// # }
/// ```
pub struct AppScope<'r, S> {
    registry: &'r Registry<S>,
    app: AppId,
}

impl<S> fmt::Debug for AppScope<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppScope").field("app", &self.app).finish()
    }
}

impl<S: Store> AppScope<'_, S> {
    /// The application's id.
    pub fn id(&self) -> &AppId {
        &self.app
    }

    // ----- endpoints -----

    /// Creates an endpoint, or updates the one with the same `uid`.
    ///
    /// On creation a secret is generated from the OS RNG unless the spec carries one. On
    /// update, as in `swh-webhooks`, the secret is rotated: to the given one, or to a fresh one
    /// when none is given; the previous secret keeps signing for the grace period.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`], [`Error::InvalidHeader`], [`Error::TooManyChannels`], and
    /// [`Error::EventTypeNotFound`] when one of its event types does not exist.
    pub async fn create_endpoint(&self, mut spec: EndpointSpec) -> Result<Endpoint, Error> {
        let (event_types, channels) = self.checked(&spec).await?;
        let now = self.registry.now();
        let existing = match &spec.uid {
            Some(uid) => self.registry.store.endpoint_by_uid(&self.app, uid).await?,
            None => None,
        };
        let (id, created_at, keys) = match existing {
            Some(record) => {
                let next = match spec.secret.take() {
                    Some(secret) => secret,
                    None => Secret::generate()?,
                };
                let keys = self.rotated(record.keys, next, now);
                (record.endpoint.id, record.endpoint.created_at, keys)
            }
            None => {
                let current = match spec.secret.take() {
                    Some(secret) => secret,
                    None => Secret::generate()?,
                };
                let keys = EndpointKeys {
                    current,
                    previous: Vec::new(),
                };
                (EndpointId::generate(now.timestamp())?, now, keys)
            }
        };
        let endpoint = endpoint_of(
            spec,
            id,
            self.app.clone(),
            event_types,
            channels,
            created_at,
            now,
        );
        self.registry
            .save_endpoint(&EndpointRecord {
                endpoint: endpoint.clone(),
                keys,
            })
            .await?;
        tracing::debug!(endpoint = %endpoint.id, "endpoint saved");
        Ok(endpoint)
    }

    /// Replaces the settings of the endpoint with this id or uid by `spec`'s (URL, event
    /// types, channels, uid, metadata, headers, disabled, description, rate limit, ordered).
    /// Its id and creation time stay; its secret too, unless `spec` carries one, which is
    /// rotated in with the old secret in its grace period (as [`AppScope::rotate_secret`]).
    ///
    /// # Errors
    /// [`Error::EndpointNotFound`]; [`Error::EndpointExists`] when `spec`'s uid is another
    /// endpoint's; the errors of [`AppScope::create_endpoint`].
    pub async fn update_endpoint(
        &self,
        id_or_uid: &str,
        mut spec: EndpointSpec,
    ) -> Result<Endpoint, Error> {
        let record = self.record(id_or_uid).await?;
        let (event_types, channels) = self.checked(&spec).await?;
        if let Some(uid) = &spec.uid
            && let Some(other) = self.registry.store.endpoint_by_uid(&self.app, uid).await?
            && other.endpoint.id != record.endpoint.id
        {
            return Err(Error::EndpointExists {
                uid: uid.to_string(),
            });
        }
        let now = self.registry.now();
        let keys = match spec.secret.take() {
            Some(next) => self.rotated(record.keys, next, now),
            None => record.keys,
        };
        let endpoint = endpoint_of(
            spec,
            record.endpoint.id,
            self.app.clone(),
            event_types,
            channels,
            record.endpoint.created_at,
            now,
        );
        self.registry
            .save_endpoint(&EndpointRecord {
                endpoint: endpoint.clone(),
                keys,
            })
            .await?;
        tracing::debug!(endpoint = %endpoint.id, "endpoint updated");
        Ok(endpoint)
    }

    /// A spec's URL, headers and channel count checked, its event types existing; the
    /// event types and channels sorted and without repeats.
    async fn checked(
        &self,
        spec: &EndpointSpec,
    ) -> Result<(Vec<EventTypeName>, Vec<Channel>), Error> {
        check_url(&spec.url)?;
        check_headers(&spec.headers)?;
        if spec.channels.len() > MAX_CHANNELS {
            return Err(Error::TooManyChannels {
                count: spec.channels.len(),
                max: MAX_CHANNELS,
            });
        }
        let mut event_types = spec.event_types.clone();
        event_types.sort();
        event_types.dedup();
        for name in &event_types {
            self.registry.event_type(name).await?;
        }
        let mut channels = spec.channels.clone();
        channels.sort();
        channels.dedup();
        Ok((event_types, channels))
    }

    async fn record(&self, id_or_uid: &str) -> Result<EndpointRecord, Error> {
        if let Ok(id) = id_or_uid.parse::<EndpointId>()
            && let Some(record) = self.registry.store.endpoint(&self.app, &id).await?
        {
            return Ok(record);
        }
        if let Ok(uid) = EndpointUid::new(id_or_uid)
            && let Some(record) = self.registry.store.endpoint_by_uid(&self.app, &uid).await?
        {
            return Ok(record);
        }
        Err(Error::EndpointNotFound {
            id: id_or_uid.to_owned(),
        })
    }

    /// The endpoint with this id (`ep_…`) or uid.
    ///
    /// # Errors
    /// [`Error::EndpointNotFound`].
    pub async fn endpoint(&self, id_or_uid: &str) -> Result<Endpoint, Error> {
        Ok(self.record(id_or_uid).await?.endpoint)
    }

    /// Endpoints receiving an event type (and listening to a channel, if given; endpoints with
    /// no channels always qualify), in creation order or its reverse.
    ///
    /// # Errors
    /// [`Error::EventTypeNotFound`] when the filter names an event type that does not exist.
    pub async fn list_endpoints(
        &self,
        filter: &EndpointFilter,
        options: &ListOptions,
    ) -> Result<Page<Endpoint>, Error> {
        if let Some(name) = &filter.event_type {
            self.registry.event_type(name).await?;
        }
        let request = options.to_request()?;
        let items = self
            .registry
            .store
            .list_endpoints(&self.app, filter, &request)
            .await?;
        Ok(finish_page(items, &request, options.is_backward(), |e| {
            e.id.as_str()
        }))
    }

    /// Deletes an endpoint; its pending deliveries go with it.
    ///
    /// # Errors
    /// [`Error::EndpointNotFound`].
    pub async fn delete_endpoint(&self, id_or_uid: &str) -> Result<(), Error> {
        let record = self.record(id_or_uid).await?;
        let deleted = self
            .registry
            .store
            .delete_endpoint(&self.app, &record.endpoint.id)
            .await;
        self.registry.endpoint_writes.fetch_add(1, Ordering::AcqRel);
        if deleted? {
            Ok(())
        } else {
            Err(Error::EndpointNotFound {
                id: id_or_uid.to_owned(),
            })
        }
    }

    /// Replaces an endpoint's custom headers (the Svix API's `PUT …/headers`). Unlike
    /// [`Registry::create_endpoint`] on an existing uid, this leaves the secret alone.
    ///
    /// # Errors
    /// [`Error::EndpointNotFound`]; [`Error::InvalidHeader`] for a name or value HTTP does
    /// not allow, or a header the signer sets.
    pub async fn update_endpoint_headers(
        &self,
        id_or_uid: &str,
        headers: std::collections::BTreeMap<String, String>,
    ) -> Result<Endpoint, Error> {
        check_headers(&headers)?;
        let mut record = self.record(id_or_uid).await?;
        record.endpoint.headers = headers;
        record.endpoint.updated_at = self.registry.now();
        self.registry.save_endpoint(&record).await?;
        Ok(record.endpoint)
    }

    /// The endpoint's current secret, for its owner to verify signatures with.
    ///
    /// # Errors
    /// [`Error::EndpointNotFound`].
    pub async fn endpoint_secret(&self, id_or_uid: &str) -> Result<Secret, Error> {
        Ok(self.record(id_or_uid).await?.keys.current)
    }

    /// Every key that signs now: the current secret first, then the previous ones still in
    /// their grace period.
    ///
    /// # Errors
    /// [`Error::EndpointNotFound`].
    pub async fn live_keys(&self, id_or_uid: &str) -> Result<Vec<Secret>, Error> {
        Ok(self.record(id_or_uid).await?.keys.live(self.registry.now()))
    }

    /// A [`Verifier`] holding every live key of the endpoint, for a receiver that shares this
    /// registry (it accepts messages signed before and after a rotation).
    ///
    /// # Errors
    /// [`Error::EndpointNotFound`].
    pub async fn verifier(&self, id_or_uid: &str) -> Result<Verifier, Error> {
        let keys = self.live_keys(id_or_uid).await?;
        Ok(keys
            .into_iter()
            .fold(Verifier::empty(), |verifier, key| verifier.with_secret(key)))
    }

    /// Replaces the endpoint's secret with `new` (or a fresh one); the old secret keeps
    /// signing for [`RegistryConfig::key_grace`]. At most [`MAX_PREVIOUS_KEYS`] previous
    /// secrets are kept, newest first.
    ///
    /// # Errors
    /// [`Error::EndpointNotFound`]; [`Error::Key`] if the RNG fails.
    pub async fn rotate_secret(&self, id_or_uid: &str, new: Option<Secret>) -> Result<(), Error> {
        let mut record = self.record(id_or_uid).await?;
        let next = match new {
            Some(secret) => secret,
            None => Secret::generate()?,
        };
        let now = self.registry.now();
        record.keys = self.rotated(record.keys, next, now);
        record.endpoint.updated_at = now;
        self.registry.save_endpoint(&record).await?;
        tracing::info!(endpoint = %record.endpoint.id, "endpoint secret rotated");
        Ok(())
    }

    fn rotated(&self, keys: EndpointKeys, next: Secret, now: DateTime<Utc>) -> EndpointKeys {
        let expires = after(now, self.registry.config.key_grace);
        let mut previous: Vec<(Secret, DateTime<Utc>)> = std::iter::once((keys.current, expires))
            .chain(keys.previous)
            .filter(|(_, until)| *until > now)
            .collect();
        previous.truncate(MAX_PREVIOUS_KEYS);
        EndpointKeys {
            current: next,
            previous,
        }
    }

    // ----- messages -----

    /// Sends an event: validates the payload against the event type's schema, stores the
    /// message with the payload bytes exactly as given, and creates one pending delivery per
    /// enabled endpoint that receives it. Returns `None`, storing nothing, when no endpoint
    /// listens.
    ///
    /// # Errors
    /// [`Error::EventTypeNotFound`] (missing or archived), [`Error::InvalidChannel`],
    /// [`Error::PayloadTooLarge`], [`SchemaError::NotJson`] or [`SchemaError::InvalidPayload`] listing every violation.
    pub async fn send(
        &self,
        event_type: &EventTypeName,
        payload: impl AsRef<[u8]>,
        channel: Option<&str>,
    ) -> Result<Option<(MessageId, DateTime<Utc>)>, Error> {
        let mut new = NewMessage::new(event_type, payload.as_ref());
        new.channels.extend(channel);
        let (message, stored) = self.store_message(new, false, true).await?;
        Ok(stored.then_some((message.id, message.created_at)))
    }

    /// Like [`Registry::send`], but stores the message even when no endpoint listens (the
    /// Svix API's behaviour), and returns it. An event type that was never registered (or is
    /// archived) is accepted, as Svix accepts it, unless
    /// [`RegistryConfig::require_event_types`] is set.
    ///
    /// # Errors
    /// As [`Registry::send`].
    pub async fn create_message(
        &self,
        event_type: &EventTypeName,
        payload: impl AsRef<[u8]>,
        channel: Option<&str>,
    ) -> Result<Message, Error> {
        let mut new = NewMessage::new(event_type, payload.as_ref());
        new.channels.extend(channel);
        self.create_message_with(new).await
    }

    /// [`Registry::create_message`] with every field of the message, its event id among them.
    ///
    /// # Errors
    /// As [`Registry::send`], and [`Error::InvalidEventId`].
    pub async fn create_message_with(&self, message: NewMessage<'_>) -> Result<Message, Error> {
        let strict = self.registry.config.require_event_types;
        let (message, _) = self.store_message(message, true, strict).await?;
        Ok(message)
    }

    /// Checks a message and stores it with one delivery, to the endpoint with this id or uid
    /// only, whatever its event types and channels (Svix's "send example"). The event type
    /// need not be registered; a registered one's schema checks the payload.
    ///
    /// # Errors
    /// [`Error::EndpointNotFound`]; the errors of [`AppScope::create_message_with`].
    pub async fn create_message_to(
        &self,
        new: NewMessage<'_>,
        endpoint: &str,
    ) -> Result<Message, Error> {
        let endpoint = self.endpoint(endpoint).await?;
        let message = self.prepare(new, false).await?;
        self.insert(&message, std::slice::from_ref(&endpoint.id))
            .await?;
        tracing::debug!(message = %message.id, endpoint = %endpoint.id, "message stored for one endpoint");
        self.registry.work.notify_one();
        Ok(message)
    }

    /// Checks a message and stores it with one pending delivery per recipient; without
    /// recipients it is stored only when `keep_unheard` is set. Returns the message and
    /// whether it was stored.
    async fn store_message(
        &self,
        new: NewMessage<'_>,
        keep_unheard: bool,
        require_event_type: bool,
    ) -> Result<(Message, bool), Error> {
        let message = self.prepare(new, require_event_type).await?;
        let recipients = self
            .registry
            .store
            .recipients(&self.app, &message.event_type, &message.channels)
            .await?;
        if recipients.is_empty() && !keep_unheard {
            return Ok((message, false));
        }
        self.insert(&message, &recipients).await?;
        tracing::debug!(message = %message.id, deliveries = recipients.len(), "message stored");
        if !recipients.is_empty() {
            self.registry.work.notify_one();
        }
        Ok((message, true))
    }

    /// Stores a checked message with a delivery to each of `endpoints`; a conflict on its
    /// event id is [`Error::MessageExists`].
    async fn insert(&self, message: &Message, endpoints: &[EndpointId]) -> Result<(), Error> {
        match self.registry.store.insert_message(message, endpoints).await {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict { .. }) if message.event_id.is_some() => {
                Err(Error::MessageExists {
                    event_id: message.event_id.clone().unwrap_or_default(),
                })
            }
            // The application was deleted meanwhile (another request or process).
            Err(error) => match self.registry.store.application(&self.app).await {
                Ok(None) => Err(Error::ApplicationNotFound {
                    id: self.app.to_string(),
                }),
                _ => Err(error.into()),
            },
        }
    }

    async fn prepare(
        &self,
        new: NewMessage<'_>,
        require_event_type: bool,
    ) -> Result<Message, Error> {
        self.registry.check_grouped(new.event_type)?;
        let payload = new.payload;
        if payload.len() > self.registry.config.max_payload_bytes {
            return Err(Error::PayloadTooLarge {
                size: payload.len(),
                limit: self.registry.config.max_payload_bytes,
            });
        }
        if new.channels.len() > MAX_MESSAGE_CHANNELS {
            return Err(Error::TooManyChannels {
                count: new.channels.len(),
                max: MAX_MESSAGE_CHANNELS,
            });
        }
        let mut channels = Vec::with_capacity(new.channels.len());
        for name in &new.channels {
            let channel = Channel::new(*name)?;
            if !channels.contains(&channel) {
                channels.push(channel);
            }
        }
        let event_id = new.event_id.map(check_event_id).transpose()?;
        let schema = if require_event_type {
            Some(self.registry.event_type(new.event_type).await?)
        } else {
            // Svix takes any event type; one that is registered (archived or not) still has
            // its payloads checked against its schema.
            self.registry.store.event_type(new.event_type).await?
        };
        let schema = match schema {
            Some(event_type) if self.registry.config.validate_payloads => {
                Some(self.registry.compiled(&event_type)?)
            }
            _ => None,
        };
        let text = std::str::from_utf8(payload).map_err(|e| SchemaError::NotJson {
            message: format!("not UTF-8: {e}"),
        })?;
        let value = crate::schema::parse_payload(text)?;
        if let Some(schema) = schema {
            schema.validate(&value)?;
        }
        let now = self.registry.now();
        Ok(Message {
            id: MessageId::generate(now.timestamp())?,
            app: self.app.clone(),
            event_type: new.event_type.clone(),
            channels,
            event_id,
            payload: text.to_owned(),
            created_at: now,
            expired: false,
        })
    }

    /// The message with this id.
    ///
    /// # Errors
    /// [`Error::MessageNotFound`]; [`Error::InvalidId`] for text that is not a message id.
    pub async fn message(&self, id: &str) -> Result<Message, Error> {
        let parsed: MessageId = id.parse()?;
        self.registry
            .store
            .message(&self.app, &parsed)
            .await?
            .ok_or_else(|| Error::MessageNotFound { id: id.to_owned() })
    }

    /// Deletes the payload of the message with this id (Svix's "expunge content"): it still
    /// lists, marked expired, with an empty payload; deliveries still due are not made.
    ///
    /// # Errors
    /// [`Error::MessageNotFound`]; [`Error::InvalidId`] for text that is not a message id.
    pub async fn expunge_payload(&self, id: &str) -> Result<(), Error> {
        let parsed: MessageId = id.parse()?;
        if self
            .registry
            .store
            .expunge_payload(&self.app, &parsed)
            .await?
        {
            tracing::info!(message = %parsed, "message payload expunged");
            Ok(())
        } else {
            Err(Error::MessageNotFound { id: id.to_owned() })
        }
    }

    /// The attempt with this id, made to send the message with id `message`.
    ///
    /// # Errors
    /// [`Error::AttemptNotFound`] (also for an attempt of another message);
    /// [`Error::MessageNotFound`]; [`Error::InvalidId`] for text that is not an id.
    pub async fn attempt(&self, message: &str, id: &str) -> Result<Attempt, Error> {
        let message = self.message(message).await?;
        let parsed: AttemptId = id.parse()?;
        self.registry
            .store
            .attempt(&self.app, &parsed)
            .await?
            .filter(|a| a.message_id == message.id)
            .ok_or_else(|| Error::AttemptNotFound { id: id.to_owned() })
    }

    /// Empties the response body recorded with an attempt of the message `message`.
    ///
    /// # Errors
    /// As [`AppScope::attempt`].
    pub async fn expunge_response(&self, message: &str, id: &str) -> Result<(), Error> {
        let attempt = self.attempt(message, id).await?;
        if self
            .registry
            .store
            .expunge_response(&self.app, &attempt.id)
            .await?
        {
            Ok(())
        } else {
            Err(Error::AttemptNotFound { id: id.to_owned() })
        }
    }

    /// How the attempts to the endpoint with this id or uid made at or after `since` and
    /// before `until` ended.
    ///
    /// # Errors
    /// [`Error::EndpointNotFound`]; [`Error::Store`].
    pub async fn attempt_counts(
        &self,
        endpoint: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<AttemptCounts, Error> {
        let endpoint = self.endpoint(endpoint).await?;
        Ok(self
            .registry
            .store
            .attempt_counts(&self.app, &endpoint.id, since, until)
            .await?)
    }

    /// [`AppScope::attempt_counts`] in `buckets` equal spans of the window, oldest first
    /// (at most [`MAX_HISTOGRAM_BUCKETS`]; more are that many): an endpoint's health over
    /// time, in one read of the window.
    ///
    /// # Errors
    /// [`Error::EndpointNotFound`]; [`Error::Store`].
    pub async fn attempt_histogram(
        &self,
        endpoint: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        buckets: u32,
    ) -> Result<Vec<AttemptCounts>, Error> {
        let endpoint = self.endpoint(endpoint).await?;
        let buckets = buckets.clamp(1, MAX_HISTOGRAM_BUCKETS);
        Ok(self
            .registry
            .store
            .attempt_histogram(&self.app, &endpoint.id, since, until, buckets)
            .await?)
    }

    /// When the current run of failed attempts to the endpoint with this id or uid began:
    /// `None` while it is healthy (its last attempt succeeded, or it has none). The delivery
    /// engine disables an endpoint failing for longer than its `disable_after`.
    ///
    /// # Errors
    /// [`Error::EndpointNotFound`]; [`Error::Store`].
    pub async fn failing_since(&self, endpoint: &str) -> Result<Option<DateTime<Utc>>, Error> {
        let endpoint = self.endpoint(endpoint).await?;
        Ok(self
            .registry
            .store
            .failing_since(&self.app, &endpoint.id)
            .await?)
    }

    /// Messages, optionally of one event type and channel, by id (creation order).
    ///
    /// # Errors
    /// [`Error::InvalidId`] for a foreign iterator; [`Error::Store`].
    pub async fn list_messages(
        &self,
        filter: &MessageFilter,
        options: &ListOptions,
    ) -> Result<Page<Message>, Error> {
        let request = options.to_request()?;
        let items = self
            .registry
            .store
            .list_messages(&self.app, filter, &request)
            .await?;
        Ok(finish_page(items, &request, options.is_backward(), |m| {
            m.id.as_str()
        }))
    }

    /// Every delivery of a message.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub async fn deliveries(&self, message: &MessageId) -> Result<Vec<Delivery>, Error> {
        Ok(self.registry.store.deliveries(&self.app, message).await?)
    }

    // ----- attempts, sent events, resending -----

    /// Delivery attempts matching the filter, in the order they were recorded (which is id
    /// order, that is time order, for the attempts one engine records), ascending or
    /// descending as the options ask.
    ///
    /// # Errors
    /// [`Error::InvalidId`] for a foreign iterator; [`Error::Store`].
    pub async fn list_attempts(
        &self,
        filter: &AttemptFilter,
        options: &ListOptions,
    ) -> Result<Page<Attempt>, Error> {
        let request = options.to_request()?;
        let items = self
            .registry
            .store
            .list_attempts(&self.app, filter, &request)
            .await?;
        Ok(finish_page(items, &request, options.is_backward(), |a| {
            a.id.as_str()
        }))
    }

    /// The events sent to an endpoint (every attempt, with its message), newest first: the
    /// seed's `sent_events_list_for_endpoint`.
    ///
    /// # Errors
    /// [`Error::EndpointNotFound`]; [`Error::Store`].
    pub async fn sent_events_for_endpoint(
        &self,
        id_or_uid: &str,
        query: &SentEventQuery,
    ) -> Result<Vec<SentEvent>, Error> {
        let endpoint = self.record(id_or_uid).await?.endpoint;
        let filter = AttemptFilter {
            endpoint: Some(endpoint.id),
            before: query.before,
            after: query.after,
            ..AttemptFilter::default()
        };
        self.sent_events(filter, query.limit).await
    }

    /// The events of one type (optionally on one channel) sent to any endpoint, newest first:
    /// the seed's `sent_events_list_for_event_type`.
    ///
    /// # Errors
    /// [`Error::EventTypeNotFound`]; [`Error::InvalidChannel`]; [`Error::Store`].
    pub async fn sent_events_for_event_type(
        &self,
        event_type: &EventTypeName,
        channel: Option<&str>,
        query: &SentEventQuery,
    ) -> Result<Vec<SentEvent>, Error> {
        self.registry.event_type(event_type).await?;
        let filter = AttemptFilter {
            event_types: vec![event_type.clone()],
            channel: channel.map(Channel::new).transpose()?,
            before: query.before,
            after: query.after,
            ..AttemptFilter::default()
        };
        self.sent_events(filter, query.limit).await
    }

    async fn sent_events(
        &self,
        filter: AttemptFilter,
        limit: Option<usize>,
    ) -> Result<Vec<SentEvent>, Error> {
        let mut events = Vec::new();
        let mut messages: HashMap<MessageId, Option<Message>> = HashMap::new();
        let mut options = ListOptions {
            order: Order::Descending,
            ..ListOptions::default()
        };
        loop {
            let wanted = limit.map_or(MAX_LIMIT, |l| l.saturating_sub(events.len()));
            if wanted == 0 {
                break;
            }
            options.limit = Some(wanted.min(MAX_LIMIT));
            let page = self.list_attempts(&filter, &options).await?;
            for attempt in page.items {
                if !messages.contains_key(&attempt.message_id) {
                    let message = self
                        .registry
                        .store
                        .message(&self.app, &attempt.message_id)
                        .await?;
                    messages.insert(attempt.message_id.clone(), message);
                }
                let message = messages.get(&attempt.message_id).cloned().flatten();
                events.push(SentEvent::new(attempt, message));
            }
            if page.done {
                break;
            }
            options.iterator = page.iterator;
        }
        Ok(events)
    }

    /// Sends a message to an endpoint again, now (a manual attempt, then the retry schedule
    /// afresh if it fails). The endpoint need not have been a recipient originally.
    ///
    /// # Errors
    /// [`Error::MessageNotFound`]; [`Error::EndpointNotFound`]; [`Error::Store`].
    pub async fn resend(&self, message: &str, endpoint: &str) -> Result<(), Error> {
        let message = self.message(message).await?;
        let endpoint = self.record(endpoint).await?.endpoint;
        self.registry
            .store
            .requeue_delivery(&self.app, &message.id, &endpoint.id, self.registry.now())
            .await?;
        tracing::info!(message = %message.id, endpoint = %endpoint.id, "manual resend queued");
        self.registry.work.notify_one();
        Ok(())
    }

    /// Resends every message to the endpoint whose delivery was exhausted, among those sent
    /// at or after `since` (Svix's "recover"). Returns how many were queued.
    ///
    /// # Errors
    /// [`Error::EndpointNotFound`]; [`Error::Store`].
    pub async fn recover(&self, endpoint: &str, since: DateTime<Utc>) -> Result<u64, Error> {
        self.recover_between(endpoint, since, None).await
    }

    /// [`AppScope::recover`] of the messages sent at or after `since` and, when `until` is
    /// given, before it (Svix's `RecoverIn`).
    ///
    /// # Errors
    /// [`Error::EndpointNotFound`]; [`Error::Store`].
    pub async fn recover_between(
        &self,
        endpoint: &str,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
    ) -> Result<u64, Error> {
        let endpoint = self.record(endpoint).await?.endpoint;
        let count = self
            .registry
            .store
            .recover_deliveries(&self.app, &endpoint.id, since, until, self.registry.now())
            .await?;
        tracing::info!(endpoint = %endpoint.id, count, "failed messages queued again");
        if count > 0 {
            self.registry.work.notify_one();
        }
        Ok(count)
    }
}

/// Which sent events to list: the seed's `before`, `after` and `limit` arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SentEventQuery {
    /// Only events sent strictly before this time.
    pub before: Option<DateTime<Utc>>,
    /// Only events sent strictly after this time.
    pub after: Option<DateTime<Utc>>,
    /// At most this many (newest first); `None`: all of them.
    pub limit: Option<usize>,
}

/// Svix's rule for a message's `eventId`: that of a uid.
fn check_event_id(event_id: &str) -> Result<String, Error> {
    if crate::model::is_uid(event_id) {
        Ok(event_id.to_owned())
    } else {
        Err(Error::InvalidEventId {
            event_id: event_id.to_owned(),
        })
    }
}

fn check_url(url: &str) -> Result<(), Error> {
    let invalid = |reason| Error::InvalidUrl {
        url: crate::model::redact_userinfo(url).into_owned(),
        reason,
    };
    let uri: http::Uri = url.parse().map_err(|_| invalid("not a valid URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(_) => return Err(invalid("the scheme must be http or https")),
        None => return Err(invalid("it must be absolute (https://host/path)")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("it has no host"));
    }
    Ok(())
}

fn check_headers(headers: &std::collections::BTreeMap<String, String>) -> Result<(), Error> {
    for (name, value) in headers {
        let invalid = |reason| Error::InvalidHeader {
            name: name.clone(),
            reason,
        };
        let parsed =
            HeaderName::try_from(name.as_str()).map_err(|_| invalid("not a valid header name"))?;
        if RESERVED_HEADERS.contains(&parsed.as_str()) {
            return Err(invalid("set by the signer and cannot be overridden"));
        }
        HeaderValue::from_str(value)
            .map_err(|_| invalid("the value is not a valid header value"))?;
    }
    Ok(())
}

/// The endpoint a checked spec describes.
fn endpoint_of(
    spec: EndpointSpec,
    id: EndpointId,
    app: AppId,
    event_types: Vec<EventTypeName>,
    channels: Vec<Channel>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
) -> Endpoint {
    Endpoint {
        id,
        app,
        uid: spec.uid,
        url: spec.url,
        event_types: if event_types.is_empty() {
            EventTypeFilter::All
        } else {
            EventTypeFilter::Only(event_types)
        },
        channels,
        metadata: spec.metadata,
        headers: spec.headers,
        disabled: spec.disabled,
        description: spec.description,
        rate_limit: spec.rate_limit,
        ordered: spec.ordered,
        created_at,
        updated_at,
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    /// An endpoint saved, or a message stored, after its application was deleted (a race
    /// between two requests): the application is not found, not a store error.
    #[tokio::test]
    async fn saving_an_endpoint_of_a_deleted_application_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new(SqliteStore::open(dir.path().join("w.db")).await.unwrap());
        registry
            .create_application(ApplicationSpec::new("Gone").uid("gone").unwrap())
            .await
            .unwrap();
        let app = registry.app("gone").await.unwrap();
        let endpoint = app
            .create_endpoint(EndpointSpec::new("https://a.example/"))
            .await
            .unwrap();
        let record = registry
            .store
            .endpoint(&endpoint.app, &endpoint.id)
            .await
            .unwrap()
            .unwrap();
        let message = app
            .prepare(
                NewMessage::new(&EventTypeName::new("a.b").unwrap(), b"{}"),
                false,
            )
            .await
            .unwrap();
        registry.delete_application("gone").await.unwrap();
        assert!(matches!(
            registry.save_endpoint(&record).await,
            Err(Error::ApplicationNotFound { .. })
        ));
        // A message made for it, stored after: the same.
        assert!(matches!(
            app.insert(&message, std::slice::from_ref(&endpoint.id))
                .await,
            Err(Error::ApplicationNotFound { .. })
        ));
    }
}
