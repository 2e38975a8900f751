//! The crate's error types: what can go wrong with keys, signatures, registry calls and storage.

#[cfg(feature = "registry")]
use std::fmt;

/// A key or secret that could not be parsed, or could not be generated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The text does not start with the prefix its kind of key needs.
    #[error("a {kind} must start with `{prefix}`")]
    MissingPrefix {
        /// What kind of key was expected ("webhook secret", "Ed25519 signing key", …).
        kind: &'static str,
        /// The prefix it must start with (`whsec_`, `whsk_`, `whpk_`).
        prefix: &'static str,
    },
    /// The text after the prefix is not standard base64 (`A-Z a-z 0-9 + /`, `=` padding).
    #[error("a {kind} must be base64 after its `{prefix}` prefix")]
    InvalidBase64 {
        /// What kind of key was expected.
        kind: &'static str,
        /// Its prefix.
        prefix: &'static str,
    },
    /// The decoded key has a length this kind of key cannot have.
    #[error("a {kind} must hold {expected} bytes, this one holds {actual}")]
    InvalidLength {
        /// What kind of key was expected.
        kind: &'static str,
        /// The allowed lengths, e.g. "24 to 64" or "32".
        expected: &'static str,
        /// The decoded length.
        actual: usize,
    },
    /// An Ed25519 key whose bytes are not a valid key (a public key that is not a curve point,
    /// or a 64-byte secret key whose public half does not match its seed).
    #[error("the {kind} is not a valid Ed25519 key")]
    InvalidEd25519 {
        /// What kind of key was expected.
        kind: &'static str,
    },
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Rng(getrandom::Error),
}

/// Why a webhook failed verification. The `Display` text is safe to send back to the sender
/// (it never contains a key) and is what the verification layer answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A required header is absent (neither the `webhook-` nor the `svix-` spelling is there).
    #[error("missing header `{name}`")]
    MissingHeader {
        /// The Standard Webhooks name of the header.
        name: &'static str,
    },
    /// A header is present but unusable.
    #[error("invalid header `{name}`: {reason}")]
    InvalidHeader {
        /// The header's name.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The timestamp is further in the past than the tolerance allows (a replay, or a very
    /// slow delivery).
    #[error("message timestamp {timestamp} is too old (now {now}, tolerance {tolerance_secs} s)")]
    TimestampTooOld {
        /// The `webhook-timestamp` value.
        timestamp: i64,
        /// The verifier's current time, in Unix seconds.
        now: i64,
        /// The tolerance, in seconds.
        tolerance_secs: u64,
    },
    /// The timestamp is further in the future than the tolerance allows.
    #[error("message timestamp {timestamp} is too new (now {now}, tolerance {tolerance_secs} s)")]
    TimestampTooNew {
        /// The `webhook-timestamp` value.
        timestamp: i64,
        /// The verifier's current time, in Unix seconds.
        now: i64,
        /// The tolerance, in seconds.
        tolerance_secs: u64,
    },
    /// None of the signatures in the header matches any of the verifier's keys.
    #[error("no matching signature")]
    NoMatchingSignature,
    /// The verifier has no key of the kinds the header's signatures use (for example only
    /// `v1a` signatures and only `whsec_` keys).
    #[error("no signature of a supported version (`v1` with a secret, `v1a` with a public key)")]
    NoSupportedSignature,
    /// The request body was larger than the verifier's limit.
    #[error("body larger than the {limit}-byte limit")]
    BodyTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The request body could not be read.
    #[error("the request body could not be read")]
    BodyUnreadable,
}

#[cfg(feature = "registry")]
/// A JSON-Schema-related failure: a schema that is not a valid Draft 7 schema, or a payload
/// that does not match its event type's schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// The schema itself is not a valid Draft 7 schema.
    #[error("invalid JSON Schema at `{path}`: {message}")]
    InvalidSchema {
        /// JSON Pointer to the offending place inside the schema (`""` for the root).
        path: String,
        /// What is wrong there.
        message: String,
    },
    /// The payload does not match the schema; every violation is listed.
    #[error("payload does not match the event type's schema: {}", Violations(.violations))]
    InvalidPayload {
        /// Each violation, in the order the validator found them.
        violations: Vec<Violation>,
    },
    /// The payload has an object with the same key twice. JSON parsers disagree on which
    /// value counts (most keep the last, some the first), so a receiver could see another
    /// value than the one validated: such payloads are refused.
    #[error("payload has the key `{key}` twice in the object at `{path}`")]
    DuplicateKey {
        /// JSON Pointer to the object (`""` for the root).
        path: String,
        /// The repeated key.
        key: String,
    },
    /// The payload is not JSON at all.
    #[error("payload is not valid JSON: {message}")]
    NotJson {
        /// The parser's message (with line and column).
        message: String,
    },
}

#[cfg(feature = "registry")]
/// One way a payload breaks its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON Pointer to the offending value in the payload (`""` for the root).
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

#[cfg(feature = "registry")]
impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        write!(f, "at `{path}`: {}", self.message)
    }
}

#[cfg(feature = "registry")]
struct Violations<'a>(&'a [Violation]);

#[cfg(feature = "registry")]
impl fmt::Display for Violations<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

#[cfg(feature = "registry")]
/// A failure of the storage backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another record already uses a unique value (an endpoint `uid`).
    #[error("conflict: {what} already exists")]
    Conflict {
        /// What collided, e.g. "an endpoint with uid `x`".
        what: String,
    },
    /// A stored record could not be decoded (the database was edited by hand, or written by
    /// an incompatible version).
    #[error("corrupt stored record {what}: {reason}")]
    Corrupt {
        /// Which record.
        what: String,
        /// Why it could not be read.
        reason: String,
    },
    /// The database reported an error.
    #[cfg(feature = "sqlite")]
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// PostgreSQL reported an error, or the connection to it failed.
    #[cfg(feature = "postgres")]
    #[error("PostgreSQL error: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// No connection to PostgreSQL could be had from the pool (the database is unreachable,
    /// or every connection stayed busy past the pool's wait timeout).
    #[cfg(feature = "postgres")]
    #[error("no PostgreSQL connection available: {0}")]
    Pool(String),
    /// The database file could not be created.
    #[error("cannot create {}: {source}", .path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The store was closed; it takes no more writes.
    #[error("the store is closed")]
    Closed,
    /// The store could not start its writer thread.
    #[error("could not start the store's writer thread: {0}")]
    Thread(String),
    /// A batched write this operation was part of failed (every operation of the batch gets
    /// the same error).
    #[error("batched write failed: {0}")]
    Batch(std::sync::Arc<StoreError>),
    /// The batched write this operation was part of was cancelled before it finished: the
    /// operation may or may not have been stored.
    #[error("the batched write this operation was part of was interrupted; its outcome is unknown")]
    Interrupted,
    /// A sealed secret could not be opened (see [`seal`](crate::seal)): the main key that
    /// sealed it is not configured, or the value was altered or moved.
    #[error(transparent)]
    Sealed(#[from] crate::seal::SealError),
    /// The database file's schema is newer than this version of the crate understands.
    #[error("the database schema version {found} is newer than this build supports ({supported})")]
    UnsupportedSchemaVersion {
        /// The version found in the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
}

#[cfg(feature = "registry")]
/// The error type of [`Registry`](crate::Registry) calls.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An event type name that is empty, longer than 256 bytes, uses other characters than
    /// ASCII letters, digits, `-`, `_` and `.`, or is only dots.
    #[error(
        "invalid event type name `{name}`: must be 1 to 256 ASCII letters, digits, `-`, `_` or `.`, not only dots"
    )]
    InvalidEventTypeName {
        /// The rejected name.
        name: String,
    },
    /// An event type name that is not `<group>.<event>`, where the registry holds names to
    /// swh-webhooks' form ([`RegistryConfig::grouped_event_type_names`](crate::RegistryConfig)).
    #[error(
        "event type name `{name}` is not `<group>.<event>`: two parts of ASCII letters, digits, `-` or `_`, joined by one dot"
    )]
    UngroupedEventTypeName {
        /// The rejected name.
        name: String,
    },
    /// An endpoint `uid` that is empty, longer than 256 bytes, uses other characters than
    /// ASCII letters, digits, `-`, `_` and `.`, or is only dots.
    #[error(
        "invalid endpoint uid `{uid}`: must be 1 to 256 ASCII letters, digits, `-`, `_` or `.`, not only dots"
    )]
    InvalidUid {
        /// The rejected uid.
        uid: String,
    },
    /// An application `uid` that is not a uid (see [`Error::InvalidUid`]) or starts with
    /// `app_`.
    #[error(
        "invalid application uid `{uid}`: must be 1 to 256 ASCII letters, digits, `-`, `_` or `.`, not only dots, and not start with `app_`"
    )]
    InvalidAppUid {
        /// The rejected uid.
        uid: String,
    },
    /// An application name that is blank.
    #[error("an application needs a name")]
    InvalidAppName,
    /// No application has that id or uid.
    #[error("application `{id}` does not exist")]
    ApplicationNotFound {
        /// The id or uid asked for.
        id: String,
    },
    /// Another application already has that uid.
    #[error("an application with uid `{uid}` already exists")]
    ApplicationExists {
        /// The uid.
        uid: String,
    },
    /// A message's `event_id` that is empty, longer than 256 bytes, uses other characters
    /// than ASCII letters, digits, `-`, `_` and `.` (Svix's rule), or is only dots.
    #[error(
        "invalid event id `{event_id}`: must be 1 to 256 ASCII letters, digits, `-`, `_` or `.`, not only dots"
    )]
    InvalidEventId {
        /// The rejected event id.
        event_id: String,
    },
    /// A channel name that is empty, longer than 128 bytes, or uses other characters than
    /// ASCII letters, digits, `-`, `_`, `.` and `:`.
    #[error(
        "invalid channel `{channel}`: must be 1 to 128 ASCII letters, digits, `-`, `_`, `.` or `:`"
    )]
    InvalidChannel {
        /// The rejected channel.
        channel: String,
    },
    /// An endpoint with more than 10 channels.
    #[error("an endpoint may listen to at most {max} channels, got {count}")]
    TooManyChannels {
        /// How many were given.
        count: usize,
        /// The limit (10).
        max: usize,
    },
    /// An endpoint URL that is not an absolute `http` or `https` URL.
    #[error("invalid endpoint url `{url}`: {reason}")]
    InvalidUrl {
        /// The rejected URL, its userinfo (`user:password@`) replaced by `redacted@`.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A custom header that is not a valid HTTP header, or one the signer itself sets.
    #[error("invalid custom header `{name}`: {reason}")]
    InvalidHeader {
        /// The header's name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A stored identifier (`msg_…`, `ep_…`) or pagination iterator that does not parse.
    #[error("invalid {kind} `{value}`")]
    InvalidId {
        /// What was expected ("message id", "endpoint id", "iterator").
        kind: &'static str,
        /// The rejected text.
        value: String,
    },
    /// No active event type has that name (it was never created, or it is archived).
    #[error("event type `{name}` does not exist or is archived")]
    EventTypeNotFound {
        /// The name asked for.
        name: String,
    },
    /// Another endpoint of the application already has that uid.
    #[error("an endpoint with uid `{uid}` already exists")]
    EndpointExists {
        /// The uid.
        uid: String,
    },
    /// No endpoint has that id or uid.
    #[error("endpoint `{id}` does not exist")]
    EndpointNotFound {
        /// The id or uid asked for.
        id: String,
    },
    /// No message has that id.
    #[error("message `{id}` does not exist")]
    MessageNotFound {
        /// The id asked for.
        id: String,
    },
    /// The application already has a message with this event id (Svix's rule: one message
    /// per event id).
    #[error("a message with event id `{event_id}` already exists")]
    MessageExists {
        /// The event id.
        event_id: String,
    },
    /// No attempt of the application (and message, where one is named) has that id.
    #[error("attempt `{id}` does not exist")]
    AttemptNotFound {
        /// The id asked for.
        id: String,
    },
    /// A payload larger than [`RegistryConfig::max_payload_bytes`](crate::RegistryConfig).
    #[error("payload of {size} bytes is larger than the {limit}-byte limit")]
    PayloadTooLarge {
        /// The payload's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A schema or payload problem.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// A key problem (a secret given by the caller that is not valid, or the RNG failing).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The storage backend failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The delivery engine could not set up TLS.
    #[error("cannot set up TLS for deliveries: {0}")]
    Tls(String),
    /// The delivery engine was shut down while work was being handed out.
    #[error("the delivery engine has stopped")]
    Stopped,
}
