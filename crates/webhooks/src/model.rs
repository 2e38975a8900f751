//! The registry's records: event types, endpoints, messages and deliveries, and the checked
//! names they are keyed by.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::error::Error;
use crate::id::{AppId, AttemptId, EndpointId, MessageId};
use crate::secret::Secret;

/// The most channels one endpoint may listen to.
pub const MAX_CHANNELS: usize = 10;
/// The most channels one message may be sent to (Svix's limit).
pub const MAX_MESSAGE_CHANNELS: usize = 5;
/// The longest endpoint uid, in bytes.
pub const MAX_UID_LEN: usize = 256;
/// The longest channel name, in bytes.
pub const MAX_CHANNEL_LEN: usize = 128;
/// The longest event type name, in bytes.
pub const MAX_EVENT_TYPE_LEN: usize = 256;

/// `at + by`, saturating at the latest representable time.
pub(crate) fn after(at: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(by)
        .ok()
        .and_then(|by| at.checked_add_signed(by))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

macro_rules! checked_name {
    ($(#[$doc:meta])* $name:ident, $check:expr, $error:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Arc<str>);

        impl $name {
            /// Checks and wraps a name.
            ///
            /// # Errors
            /// A typed [`Error`] naming the rule when the text breaks it.
            pub fn new(text: impl Into<String>) -> Result<Self, Error> {
                let text = text.into();
                let check: fn(&str) -> bool = $check;
                if check(&text) {
                    Ok(Self(Arc::from(text)))
                } else {
                    let error: fn(String) -> Error = $error;
                    Err(error(text))
                }
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(text: &str) -> Result<Self, Error> {
                Self::new(text)
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;

            fn try_from(text: String) -> Result<Self, Error> {
                Self::new(text)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = Error;

            fn try_from(text: &str) -> Result<Self, Error> {
                Self::new(text)
            }
        }

        impl From<$name> for String {
            fn from(name: $name) -> String {
                String::from(&*name.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }
    };
}

checked_name!(
    /// An event type name, as Svix takes them: 1 to 256 ASCII letters, digits, `-`, `_` or
    /// `.` (`^[a-zA-Z0-9\-_.]+$`), not only dots. swh-webhooks' stricter form,
    /// `<group>.<event>` (two non-empty parts joined by one dot), is
    /// [`EventTypeName::is_grouped`], which the registry enforces unless
    /// [`RegistryConfig::grouped_event_type_names`](crate::RegistryConfig) is off.
    ///
    /// ```
    /// use switchyard_webhooks::EventTypeName;
    /// let visit = EventTypeName::new("origin.visit").unwrap();
    /// assert!(visit.is_grouped());
    /// let failing = EventTypeName::new("message.attempt.failing").unwrap();
    /// assert!(!failing.is_grouped());
    /// assert!(EventTypeName::new("origin").is_ok());
    /// assert!(EventTypeName::new("has space").is_err());
    /// assert!(EventTypeName::new("..").is_err());
    /// ```
    EventTypeName,
    |text| text.len() <= MAX_EVENT_TYPE_LEN && is_uid(text),
    |name| Error::InvalidEventTypeName { name }
);

impl EventTypeName {
    /// Whether the name has swh-webhooks' form, `<group>.<event>`: two non-empty parts of
    /// ASCII letters, digits, `-` and `_`, joined by one dot.
    pub fn is_grouped(&self) -> bool {
        self.0.split_once('.').is_some_and(|(group, event)| {
            !group.is_empty()
                && !event.is_empty()
                && group.bytes().all(is_name_byte)
                && event.bytes().all(is_name_byte)
        })
    }
}

checked_name!(
    /// A caller-chosen endpoint identifier: 1 to 256 ASCII letters, digits, `-`, `_` or `.`
    /// (`^[a-zA-Z0-9\-_.]+$`), not only dots: `.` and `..` would be path segments that clients
    /// normalise away, so the endpoint could not be reached by its uid.
    EndpointUid,
    |text| is_uid(text),
    |uid| Error::InvalidUid { uid }
);

/// Whether a header or parameter name (lower case) names a credential: `authorization`,
/// `proxy-authorization`, `cookie`, or a name containing `token`, `secret`, `key`,
/// `password`, `auth` or `session` (`x-api-key`, `x-auth-token`, `access_token`, …). Attempts
/// record such headers' values as `<redacted>`; the server redacts them in runtime events.
///
/// ```
/// use switchyard_webhooks::is_credential_name;
/// assert!(is_credential_name("x-api-key") && is_credential_name("access_token"));
/// assert!(!is_credential_name("x-request-id"));
/// ```
pub fn is_credential_name(lower_name: &str) -> bool {
    const NAMES: &[&str] = &["authorization", "proxy-authorization", "cookie"];
    const PARTS: &[&str] = &["token", "secret", "key", "password", "auth", "session"];
    NAMES.contains(&lower_name) || PARTS.iter().any(|part| lower_name.contains(part))
}

/// Svix's rule for uids (and event ids), less names made only of dots: 1 to 256 ASCII
/// letters, digits, `-`, `_` or `.`, at least one of them not a dot.
pub fn is_uid(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_UID_LEN
        && text.bytes().all(|b| is_name_byte(b) || b == b'.')
        && !text.bytes().all(|b| b == b'.')
}

checked_name!(
    /// A caller-chosen application identifier: a uid (see [`EndpointUid`]) that does not
    /// start with `app_`, so it is never mistaken for an application id.
    AppUid,
    |text| is_uid(text) && !text.starts_with("app_"),
    |uid| Error::InvalidAppUid { uid }
);

checked_name!(
    /// A channel: 1 to 128 ASCII letters, digits, `-`, `_`, `.` or `:`. Channels are
    /// case-sensitive.
    Channel,
    |text| {
        !text.is_empty()
            && text.len() <= MAX_CHANNEL_LEN
            && text.bytes().all(|b| is_name_byte(b) || b == b'.' || b == b':')
    },
    |channel| Error::InvalidChannel { channel }
);

/// An application: one customer of the sender, Svix's namespace for endpoints and messages.
/// Every endpoint and message belongs to one; event types are shared by all.
#[derive(Debug, Clone, PartialEq)]
pub struct Application {
    /// `app_…`, time-sortable ([`AppId::default_app`] for the default application).
    pub id: AppId,
    /// The caller's uid, if it gave one (unique among applications).
    pub uid: Option<AppUid>,
    /// A human-readable name.
    pub name: String,
    /// Free-form metadata, returned as given.
    pub metadata: Map<String, Value>,
    /// The most messages per second its endpoints are sent, if limited (kept and returned;
    /// each endpoint's own limit is what the delivery engine applies).
    pub rate_limit: Option<NonZeroU32>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

impl Application {
    /// The default application ([`AppId::default_app`]): it exists in every store from the
    /// start, and holds every endpoint and message of single-tenant use.
    pub fn default_app() -> Self {
        Self {
            id: AppId::default_app(),
            uid: None,
            name: "default".to_owned(),
            metadata: Map::new(),
            rate_limit: None,
            created_at: DateTime::UNIX_EPOCH,
            updated_at: DateTime::UNIX_EPOCH,
        }
    }
}

/// What an application is created or updated with.
///
/// ```
/// use switchyard_webhooks::ApplicationSpec;
///
/// let spec = ApplicationSpec::new("Acme Corp").uid("acme")?;
/// assert_eq!(spec.uid.as_ref().map(|u| u.as_str()), Some("acme"));
/// assert!(ApplicationSpec::new("x").uid("app_mimic").is_err());
/// # Ok::<(), switchyard_webhooks::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ApplicationSpec {
    /// A human-readable name (required, not blank).
    pub name: String,
    /// A caller-chosen unique id.
    pub uid: Option<AppUid>,
    /// Free-form metadata.
    pub metadata: Map<String, Value>,
    /// A rate limit to keep with it.
    pub rate_limit: Option<NonZeroU32>,
}

impl ApplicationSpec {
    /// An application called `name`, with no uid, metadata or rate limit.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// Gives it a uid.
    ///
    /// # Errors
    /// [`Error::InvalidAppUid`] for text that is not a uid or starts with `app_`.
    pub fn uid(mut self, uid: impl Into<String>) -> Result<Self, Error> {
        self.uid = Some(AppUid::new(uid)?);
        Ok(self)
    }

    /// Adds a metadata entry.
    #[must_use]
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Sets the rate limit.
    #[must_use]
    pub fn rate_limit(mut self, rate: NonZeroU32) -> Self {
        self.rate_limit = Some(rate);
        self
    }
}

/// A registered event type.
#[derive(Debug, Clone, PartialEq)]
pub struct EventType {
    /// `<group>.<event>`.
    pub name: EventTypeName,
    /// What the event means, for the people who subscribe to it.
    pub description: String,
    /// The Draft 7 JSON Schema every payload of this type must match.
    pub schema: Value,
    /// Archived types are kept but not listed, and nothing can be sent with them.
    pub archived: bool,
    /// When it was first created.
    pub created_at: DateTime<Utc>,
    /// When it was last created-or-updated (or archived).
    pub updated_at: DateTime<Utc>,
}

/// Which event types an endpoint receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventTypeFilter {
    /// Every event type (Svix's `filterTypes: null`).
    All,
    /// Only these (at least one).
    Only(Vec<EventTypeName>),
}

impl EventTypeFilter {
    /// Whether a message of type `name` passes the filter.
    pub fn accepts(&self, name: &EventTypeName) -> bool {
        match self {
            Self::All => true,
            Self::Only(names) => names.contains(name),
        }
    }
}

/// What a caller gives to create or update an endpoint.
///
/// ```
/// use switchyard_webhooks::{EndpointSpec, EventTypeName};
///
/// let spec = EndpointSpec::new("https://hooks.example.com/swh")
///     .event_type(EventTypeName::new("origin.visit")?)
///     .channel("swh:1:ori")?
///     .uid("user-42-visits")?
///     .header("x-tenant", "42");
/// # Ok::<(), switchyard_webhooks::Error>(())
/// ```
#[derive(Clone)]
pub struct EndpointSpec {
    /// Where messages are POSTed: an absolute `http` or `https` URL.
    pub url: String,
    /// The event types it receives; empty means all of them.
    pub event_types: Vec<EventTypeName>,
    /// Channels it listens to (at most 10). Empty: every message of its types. Otherwise only
    /// messages sent to one of these channels.
    pub channels: Vec<Channel>,
    /// A caller-chosen unique id; creating with a uid that exists updates that endpoint.
    pub uid: Option<EndpointUid>,
    /// Free-form metadata, returned as given.
    pub metadata: Map<String, Value>,
    /// Extra headers sent with every delivery.
    pub headers: BTreeMap<String, String>,
    /// A disabled endpoint is kept but receives nothing.
    pub disabled: bool,
    /// The signing secret; generated when absent on creation, kept when absent on update.
    pub secret: Option<Secret>,
    /// A human-readable description.
    pub description: String,
    /// The most messages per second the delivery engine sends it; `None`: no limit.
    pub rate_limit: Option<NonZeroU32>,
    /// Ordered delivery: the next message waits until the previous one succeeded or was
    /// exhausted (default `false`: messages go out concurrently).
    pub ordered: bool,
}

impl fmt::Debug for EndpointSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointSpec")
            .field("url", &redact_userinfo(&self.url))
            .field("event_types", &self.event_types)
            .field("channels", &self.channels)
            .field("uid", &self.uid)
            .field("metadata", &self.metadata)
            .field("headers", &RedactedHeaders(&self.headers))
            .field("disabled", &self.disabled)
            .field("secret", &self.secret)
            .field("description", &self.description)
            .field("rate_limit", &self.rate_limit)
            .field("ordered", &self.ordered)
            .finish()
    }
}

impl From<&Endpoint> for EndpointSpec {
    /// The spec that makes `endpoint` again as it is (no secret: an update keeps its keys),
    /// for changing one setting with [`AppScope::update_endpoint`](crate::AppScope::update_endpoint).
    fn from(endpoint: &Endpoint) -> Self {
        Self {
            url: endpoint.url.clone(),
            event_types: match &endpoint.event_types {
                EventTypeFilter::All => Vec::new(),
                EventTypeFilter::Only(names) => names.clone(),
            },
            channels: endpoint.channels.clone(),
            uid: endpoint.uid.clone(),
            metadata: endpoint.metadata.clone(),
            headers: endpoint.headers.clone(),
            disabled: endpoint.disabled,
            secret: None,
            description: endpoint.description.clone(),
            rate_limit: endpoint.rate_limit,
            ordered: endpoint.ordered,
        }
    }
}

impl EndpointSpec {
    /// An endpoint for `url` receiving every event type, on no channel, enabled.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            event_types: Vec::new(),
            channels: Vec::new(),
            uid: None,
            metadata: Map::new(),
            headers: BTreeMap::new(),
            disabled: false,
            secret: None,
            description: String::new(),
            rate_limit: None,
            ordered: false,
        }
    }

    /// Adds an event type it receives.
    #[must_use]
    pub fn event_type(mut self, name: EventTypeName) -> Self {
        self.event_types.push(name);
        self
    }

    /// Adds a channel it listens to.
    ///
    /// # Errors
    /// [`Error::InvalidChannel`] for a name that is not a valid channel.
    pub fn channel(mut self, channel: &str) -> Result<Self, Error> {
        self.channels.push(Channel::new(channel)?);
        Ok(self)
    }

    /// Sets its uid.
    ///
    /// # Errors
    /// [`Error::InvalidUid`] for a uid that breaks the rule.
    pub fn uid(mut self, uid: &str) -> Result<Self, Error> {
        self.uid = Some(EndpointUid::new(uid)?);
        Ok(self)
    }

    /// Adds a custom header (checked when the endpoint is saved).
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Sets one metadata entry.
    #[must_use]
    pub fn metadata(mut self, key: impl Into<String>, value: Value) -> Self {
        self.metadata.insert(key.into(), value);
        self
    }

    /// Uses this secret instead of a generated one.
    #[must_use]
    pub fn secret(mut self, secret: Secret) -> Self {
        self.secret = Some(secret);
        self
    }

    /// Sets its description.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Creates it disabled (or not).
    #[must_use]
    pub fn disabled(mut self, disabled: bool) -> Self {
        self.disabled = disabled;
        self
    }

    /// Limits deliveries to this endpoint to `per_second` messages per second.
    #[must_use]
    pub fn rate_limit(mut self, per_second: NonZeroU32) -> Self {
        self.rate_limit = Some(per_second);
        self
    }

    /// Turns ordered delivery on or off.
    #[must_use]
    pub fn ordered(mut self, ordered: bool) -> Self {
        self.ordered = ordered;
        self
    }
}

/// A stored endpoint, without its keys (see [`EndpointKeys`]). Its `Debug` leaves out the
/// URL's userinfo and the values of credential headers.
#[derive(Clone, PartialEq)]
pub struct Endpoint {
    /// Generated id, `ep_…`.
    pub id: EndpointId,
    /// The application it belongs to.
    pub app: AppId,
    /// The caller's uid, if it gave one.
    pub uid: Option<EndpointUid>,
    /// Where messages are POSTed.
    pub url: String,
    /// The event types it receives.
    pub event_types: EventTypeFilter,
    /// The channels it listens to; empty means every message of its types.
    pub channels: Vec<Channel>,
    /// Free-form metadata.
    pub metadata: Map<String, Value>,
    /// Extra headers sent with every delivery.
    pub headers: BTreeMap<String, String>,
    /// Disabled endpoints receive nothing.
    pub disabled: bool,
    /// A human-readable description.
    pub description: String,
    /// The most messages per second the delivery engine sends it, if limited.
    pub rate_limit: Option<NonZeroU32>,
    /// Whether messages are delivered one at a time, in order.
    pub ordered: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("id", &self.id)
            .field("app", &self.app)
            .field("uid", &self.uid)
            .field("url", &redact_userinfo(&self.url))
            .field("event_types", &self.event_types)
            .field("channels", &self.channels)
            .field("metadata", &self.metadata)
            .field("headers", &RedactedHeaders(&self.headers))
            .field("disabled", &self.disabled)
            .field("description", &self.description)
            .field("rate_limit", &self.rate_limit)
            .field("ordered", &self.ordered)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// Headers as `Debug` shows them: credential values replaced.
struct RedactedHeaders<'a>(&'a BTreeMap<String, String>);

impl fmt::Debug for RedactedHeaders<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(name, value)| {
                let shown = if is_credential_name(&name.to_ascii_lowercase()) {
                    "<redacted>"
                } else {
                    value.as_str()
                };
                (name, shown)
            }))
            .finish()
    }
}

/// `url` with its userinfo (`user:password@`), if any, replaced by `redacted@`: how a URL
/// is shown to anyone but the delivery engine (API answers, errors, `Debug`, logs).
///
/// ```
/// use switchyard_webhooks::redact_userinfo;
///
/// assert_eq!(redact_userinfo("https://bob:s3cret@hooks.example.com/in?a=b"),
///            "https://redacted@hooks.example.com/in?a=b");
/// assert_eq!(redact_userinfo("https://hooks.example.com/a@b"), "https://hooks.example.com/a@b");
/// ```
pub fn redact_userinfo(url: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    let Some(scheme_end) = url.find("://") else {
        return Cow::Borrowed(url);
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => Cow::Owned(format!(
            "{}://redacted@{}",
            &url[..scheme_end],
            &rest[at + 1..]
        )),
        None => Cow::Borrowed(url),
    }
}

impl Endpoint {
    /// Whether a message of `event_type` sent to `channels` is for this endpoint (ignoring
    /// `disabled`): its type passes the filter, and either the endpoint has no channels or the
    /// message was sent to one of them.
    pub fn receives(&self, event_type: &EventTypeName, channels: &[Channel]) -> bool {
        self.event_types.accepts(event_type)
            && (self.channels.is_empty() || channels.iter().any(|c| self.channels.contains(c)))
    }
}

/// An endpoint's signing keys: the current secret and the previous ones still inside their
/// grace period, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointKeys {
    /// The secret new messages are signed with first.
    pub current: Secret,
    /// Earlier secrets and when each stops being used (at most 10).
    pub previous: Vec<(Secret, DateTime<Utc>)>,
}

impl EndpointKeys {
    /// The keys to sign with at `now`: the current one, then every previous one that has not
    /// expired.
    pub fn live(&self, now: DateTime<Utc>) -> Vec<Secret> {
        std::iter::once(self.current.clone())
            .chain(
                self.previous
                    .iter()
                    .filter(|(_, expires)| *expires > now)
                    .map(|(secret, _)| secret.clone()),
            )
            .collect()
    }
}

/// An endpoint as the store keeps it: the endpoint and its keys.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointRecord {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// Its keys.
    pub keys: EndpointKeys,
}

/// A message: one `send`, stored with its payload exactly as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `msg_…`, time-sortable.
    pub id: MessageId,
    /// The application it was sent in.
    pub app: AppId,
    /// Its event type.
    pub event_type: EventTypeName,
    /// The channels it was sent to (at most [`MAX_MESSAGE_CHANNELS`]); none: no channel.
    pub channels: Vec<Channel>,
    /// The sender's own identifier for it (Svix's `eventId`), if it gave one.
    pub event_id: Option<String>,
    /// The payload bytes exactly as the caller gave them (valid UTF-8 JSON); empty once the
    /// message has expired.
    pub payload: String,
    /// When it was sent.
    pub created_at: DateTime<Utc>,
    /// Its payload was purged after the retention period; the message still lists.
    pub expired: bool,
}

impl Message {
    /// The payload parsed as JSON.
    ///
    /// # Errors
    /// Only if the stored payload was corrupted: it was valid JSON when it was sent.
    pub fn payload_json(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(&self.payload)
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (possibly leased by a worker right now).
    Pending,
    /// An attempt got a 2xx.
    Succeeded,
    /// Every attempt failed; no more will be made unless someone resends.
    Exhausted,
}

#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
impl DeliveryStatus {
    pub(crate) fn code(self) -> i64 {
        match self {
            Self::Pending => 0,
            Self::Succeeded => 1,
            Self::Exhausted => 2,
        }
    }

    pub(crate) fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(Self::Pending),
            1 => Some(Self::Succeeded),
            2 => Some(Self::Exhausted),
            _ => None,
        }
    }
}

/// One message on its way to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The message.
    pub message_id: MessageId,
    /// The endpoint.
    pub endpoint_id: EndpointId,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// How many attempts have been made.
    pub attempts: u32,
    /// When the next attempt is due (meaningful while pending).
    pub next_attempt_at: DateTime<Utc>,
    /// Until when a worker holds it, if leased.
    pub leased_until: Option<DateTime<Utc>>,
    /// What its next attempt is recorded as: [`AttemptTrigger::Manual`] after a resend.
    pub trigger: AttemptTrigger,
}

/// A delivery a worker has leased: nobody else gets it until the lease runs out or the worker
/// reports back with [`Store::finish_delivery`](crate::store::Store::finish_delivery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The delivery as it was when leased.
    pub delivery: Delivery,
    /// Proof of the lease: a report with another token (an expired, re-leased delivery) is
    /// refused.
    pub token: String,
}

/// What a worker reports after an attempt (or after postponing one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryUpdate {
    /// The new status.
    pub status: DeliveryStatus,
    /// The attempt count after this attempt.
    pub attempts: u32,
    /// When to try again (for `Pending`).
    pub next_attempt_at: DateTime<Utc>,
    /// The attempt made, recorded in the same transaction; `None` when the worker made no
    /// request (it postponed the delivery for a rate limit, or the endpoint was disabled).
    pub attempt: Option<Attempt>,
}

/// What an attempt came to. The codes are Svix's `MessageStatus` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptStatus {
    /// The endpoint answered 2xx (code 0).
    Success,
    /// Waiting to be sent (code 1). Recorded attempts are finished, so this only describes a
    /// delivery that has not been attempted yet.
    Pending,
    /// A network error, a timeout or a non-2xx answer (code 2).
    Failed,
    /// On the wire right now (code 3): a delivery a worker holds.
    Sending,
}

impl AttemptStatus {
    /// Svix's numeric code.
    pub fn code(self) -> i64 {
        match self {
            Self::Success => 0,
            Self::Pending => 1,
            Self::Failed => 2,
            Self::Sending => 3,
        }
    }

    /// The status with this Svix code.
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(Self::Success),
            1 => Some(Self::Pending),
            2 => Some(Self::Failed),
            3 => Some(Self::Sending),
            _ => None,
        }
    }
}

/// Why an attempt was made. The codes are Svix's `MessageAttemptTriggerType` values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum AttemptTrigger {
    /// The first attempt or a retry on the schedule (code 0).
    #[default]
    Scheduled,
    /// A resend someone asked for (code 1).
    Manual,
}

impl AttemptTrigger {
    /// Svix's numeric code.
    pub fn code(self) -> i64 {
        match self {
            Self::Scheduled => 0,
            Self::Manual => 1,
        }
    }

    /// The trigger with this Svix code.
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(Self::Scheduled),
            1 => Some(Self::Manual),
            _ => None,
        }
    }
}

/// The request headers an attempt sent, as recorded: lower-case names, credential-bearing
/// values redacted. Reads like a map sorted by name; cheap to make and to clone, since the
/// headers every request to an endpoint shares are one shared map, and only the three
/// Standard Webhooks headers are the attempt's own.
///
/// ```
/// use switchyard_webhooks::AttemptHeaders;
///
/// let mut headers: AttemptHeaders = [("x-tenant", "42"), ("webhook-id", "msg_1")]
///     .into_iter()
///     .map(|(n, v)| (n.to_owned(), v.to_owned()))
///     .collect();
/// headers.insert("content-type", "application/json");
/// assert_eq!(headers.get("x-tenant"), Some("42"));
/// assert_eq!(headers.len(), 3);
/// let names: Vec<&str> = headers.iter().map(|(name, _)| name).collect();
/// assert_eq!(names, ["content-type", "webhook-id", "x-tenant"]);
/// ```
#[derive(Clone, Default)]
pub struct AttemptHeaders {
    /// Every header but the three below.
    common: Arc<BTreeMap<String, String>>,
    /// The values of [`SIGNED_HEADERS`], in that order.
    signed: [Option<String>; 3],
}

/// The headers an attempt keeps apart from the shared ones, in name order.
const SIGNED_HEADERS: [&str; 3] = ["webhook-id", "webhook-signature", "webhook-timestamp"];

impl AttemptHeaders {
    /// No headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// `common` (shared, not copied) with the three Standard Webhooks headers added.
    #[cfg(feature = "delivery")]
    pub(crate) fn signed(
        common: Arc<BTreeMap<String, String>>,
        id: String,
        signature: String,
        timestamp: String,
    ) -> Self {
        Self {
            common,
            signed: [Some(id), Some(signature), Some(timestamp)],
        }
    }

    /// The value of the header `name` (lower-case), if it was sent.
    pub fn get(&self, name: &str) -> Option<&str> {
        match SIGNED_HEADERS.iter().position(|n| *n == name) {
            Some(i) => self.signed[i].as_deref(),
            None => self.common.get(name).map(String::as_str),
        }
    }

    /// Whether the header `name` (lower-case) was sent.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets a header (the name as given; attempts record lower-case names).
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        match SIGNED_HEADERS.iter().position(|n| *n == name) {
            Some(i) => self.signed[i] = Some(value.into()),
            None => {
                Arc::make_mut(&mut self.common).insert(name, value.into());
            }
        }
    }

    /// How many headers.
    pub fn len(&self) -> usize {
        self.common.len() + self.signed.iter().flatten().count()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The headers, by name (the shared ones and the attempt's own merged, no copy).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut common = self
            .common
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .peekable();
        let mut signed = SIGNED_HEADERS
            .iter()
            .zip(&self.signed)
            .filter_map(|(name, value)| Some((*name, value.as_deref()?)))
            .peekable();
        std::iter::from_fn(move || match (common.peek(), signed.peek()) {
            (Some(c), Some(s)) if s.0 < c.0 => signed.next(),
            (Some(_), _) => common.next(),
            (None, _) => signed.next(),
        })
    }

    /// The headers as a map.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.iter()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect()
    }
}

impl FromIterator<(String, String)> for AttemptHeaders {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(headers: I) -> Self {
        let mut collected = Self::new();
        for (name, value) in headers {
            collected.insert(name, value);
        }
        collected
    }
}

impl From<BTreeMap<String, String>> for AttemptHeaders {
    fn from(headers: BTreeMap<String, String>) -> Self {
        headers.into_iter().collect()
    }
}

impl PartialEq for AttemptHeaders {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for AttemptHeaders {}

impl fmt::Debug for AttemptHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// The longest response body an attempt keeps, in bytes (longer ones are cut at a character
/// boundary).
pub const MAX_RESPONSE_BODY: usize = 20 * 1024;

/// One HTTP request to an endpoint and what came back: the seed's `SentEvent`, and Svix's
/// message attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// `atmpt_…`, time-sortable.
    pub id: AttemptId,
    /// The message sent.
    pub message_id: MessageId,
    /// The endpoint it went to.
    pub endpoint_id: EndpointId,
    /// The message's event type.
    pub event_type: EventTypeName,
    /// The channels the message was sent to.
    pub channels: Vec<Channel>,
    /// The URL POSTed to.
    pub url: String,
    /// [`AttemptStatus::Success`] or [`AttemptStatus::Failed`].
    pub status: AttemptStatus,
    /// The response's status code; 0 when no response came (network error, timeout, refused
    /// address).
    pub response_status: u16,
    /// The response body, at most [`MAX_RESPONSE_BODY`] bytes; for a network error, what went
    /// wrong.
    pub response: String,
    /// The request headers sent (names lower-case). Values of credential-bearing custom
    /// headers (`authorization`, `cookie`, `proxy-authorization`, and names containing
    /// `token`, `secret`, `key` or `password`) are replaced by `<redacted>`.
    pub headers: AttemptHeaders,
    /// From the start of the request to the end of the response body.
    pub duration: Duration,
    /// Scheduled or manual.
    pub trigger: AttemptTrigger,
    /// When it was sent: the second of its `webhook-timestamp`.
    pub timestamp: DateTime<Utc>,
}

/// The `user-agent` of every delivery: `Switchyard-Webhooks/<version>`.
#[cfg(any(feature = "delivery", feature = "sqlite"))]
pub(crate) const USER_AGENT: &str = concat!("Switchyard-Webhooks/", env!("CARGO_PKG_VERSION"));

/// One event sent to one endpoint, as `swh-webhooks` lists them (`SentEvent`): an attempt
/// together with its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentEvent {
    /// The event type (`event_type_name`).
    pub event_type: EventTypeName,
    /// The URL it was POSTed to (`endpoint_url`).
    pub endpoint_url: String,
    /// The message's (first) channel, if any.
    pub channel: Option<Channel>,
    /// The request headers sent (credential-bearing custom headers redacted).
    pub headers: AttemptHeaders,
    /// The message id (`msg_id`).
    pub message_id: MessageId,
    /// The payload bytes as sent; empty when the message has expired (see `expired`).
    pub payload: String,
    /// The payload was purged after the retention period.
    pub expired: bool,
    /// When it was sent.
    pub timestamp: DateTime<Utc>,
    /// The response body (at most [`MAX_RESPONSE_BODY`] bytes).
    pub response: String,
    /// The response status code; 0 when no response came.
    pub response_status_code: u16,
    /// The attempt this event is.
    pub attempt_id: AttemptId,
}

impl SentEvent {
    /// The event of `attempt`, whose message is `message` (`None` if it is gone).
    pub fn new(attempt: Attempt, message: Option<Message>) -> Self {
        let (payload, expired) = match message {
            Some(message) => (message.payload, message.expired),
            None => (String::new(), true),
        };
        Self {
            event_type: attempt.event_type,
            endpoint_url: attempt.url,
            channel: attempt.channels.into_iter().next(),
            headers: attempt.headers,
            message_id: attempt.message_id,
            payload,
            expired,
            timestamp: attempt.timestamp,
            response: attempt.response,
            response_status_code: attempt.response_status,
            attempt_id: attempt.id,
        }
    }

    /// The payload parsed as JSON (`None` once expired).
    pub fn payload_json(&self) -> Option<Value> {
        if self.expired {
            return None;
        }
        serde_json::from_str(&self.payload).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_headers_read_as_one_map_sorted_by_name() {
        let mut headers: AttemptHeaders = ["z-last", "a-first", "webhook-sig", "webhook-tz"]
            .into_iter()
            .map(|n| (n.to_owned(), n.to_uppercase()))
            .collect();
        for name in ["webhook-timestamp", "webhook-id", "webhook-signature"] {
            headers.insert(name, name.len().to_string());
        }
        let names: Vec<&str> = headers.iter().map(|(name, _)| name).collect();
        assert_eq!(
            names,
            [
                "a-first",
                "webhook-id",
                "webhook-sig",
                "webhook-signature",
                "webhook-timestamp",
                "webhook-tz",
                "z-last"
            ]
        );
        assert_eq!(headers.len(), 7);
        assert_eq!(headers.get("webhook-id"), Some("10"));
        assert_eq!(headers, AttemptHeaders::from(headers.to_map()));
    }

    #[test]
    fn event_type_names() {
        // Svix's alphabet, at most 256 bytes, not only dots.
        for ok in [
            "a.b",
            "origin.visit",
            "A-1_x.y-2_Z",
            "a.b.c",
            "ab",
            "a.",
            ".b",
        ] {
            assert!(EventTypeName::new(ok).is_ok(), "{ok}");
        }
        assert!(EventTypeName::new("x".repeat(256)).is_ok());
        for bad in [
            "",
            ".",
            "..",
            "a b.c",
            "a.b!",
            "é.b",
            "a/b",
            &"x".repeat(257),
        ] {
            assert!(EventTypeName::new(bad).is_err(), "{bad}");
        }
        // swh-webhooks' `<group>.<event>`.
        for grouped in ["a.b", "origin.visit", "A-1_x.y-2_Z"] {
            assert!(
                EventTypeName::new(grouped).unwrap().is_grouped(),
                "{grouped}"
            );
        }
        for ungrouped in ["a.b.c", "ab", "a.", ".b"] {
            assert!(
                !EventTypeName::new(ungrouped).unwrap().is_grouped(),
                "{ungrouped}"
            );
        }
    }

    #[test]
    fn uids_and_channels() {
        assert!(EndpointUid::new("a.b-c_D9").is_ok());
        assert!(EndpointUid::new("x".repeat(256)).is_ok());
        assert!(EndpointUid::new("x".repeat(257)).is_err());
        assert!(EndpointUid::new("a:b").is_err());
        assert!(EndpointUid::new("").is_err());
        for dots in [".", "..", "..."] {
            assert!(EndpointUid::new(dots).is_err(), "{dots}");
        }
        assert!(EndpointUid::new(".a.").is_ok());
        assert!(Channel::new("swh:1:ori.x-y_z").is_ok());
        assert!(Channel::new("a/b").is_err());
        assert!(Channel::new("x".repeat(129)).is_err());
    }

    #[test]
    fn channel_matching_is_case_sensitive_and_unchanneled_endpoints_get_everything() {
        let ty = EventTypeName::new("a.b").unwrap();
        let mut endpoint = Endpoint {
            id: EndpointId::generate(0).unwrap(),
            app: AppId::default_app(),
            uid: None,
            url: "https://x.example".into(),
            event_types: EventTypeFilter::Only(vec![ty.clone()]),
            channels: vec![],
            metadata: Map::new(),
            headers: BTreeMap::new(),
            disabled: false,
            description: String::new(),
            rate_limit: None,
            ordered: false,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        let upper = Channel::new("Project").unwrap();
        let lower = Channel::new("project").unwrap();
        let other = Channel::new("other").unwrap();
        assert!(endpoint.receives(&ty, &[]));
        assert!(endpoint.receives(&ty, std::slice::from_ref(&upper)));
        endpoint.channels = vec![lower.clone()];
        assert!(!endpoint.receives(&ty, &[]));
        assert!(!endpoint.receives(&ty, std::slice::from_ref(&upper)));
        assert!(endpoint.receives(&ty, std::slice::from_ref(&lower)));
        // Any one of a message's channels will do.
        assert!(endpoint.receives(&ty, &[other.clone(), lower.clone()]));
        assert!(!endpoint.receives(&ty, &[other, upper]));
        assert!(!endpoint.receives(&EventTypeName::new("a.c").unwrap(), &[lower]));
    }
}
