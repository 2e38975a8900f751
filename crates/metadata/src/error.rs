//! Error types: one enum per failure domain (paths, client, spec files, output stores, sinks,
//! service configuration, serving).

use std::fmt;
#[cfg(feature = "server")]
use std::net::SocketAddr;
#[cfg(feature = "server")]
use std::path::PathBuf;
#[cfg(feature = "client")]
use std::time::Duration;

#[cfg(feature = "client")]
use http::StatusCode;

#[cfg(feature = "client")]
use crate::value::Unresolvable;

/// Boxed error from the transport layer.
#[cfg(any(feature = "client", feature = "server"))]
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What the path parser wanted where it stopped (see [`PathError::expected`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Expected {
    /// The path must start with a name or a bracket.
    RootName,
    /// A `.` must be followed by a key name.
    KeyAfterDot,
    /// After a segment comes `.`, `[` or the end.
    DotOrBracket,
    /// Inside `[…]`: a quoted key or a non-negative integer.
    BracketContent,
    /// Indexes count from zero; negative ones are not supported.
    NonNegativeIndex,
    /// The integer does not fit in `usize`.
    IndexInRange,
    /// A bracket was not closed.
    CloseBracket,
    /// A string was not closed (the quote it started with).
    ClosingQuote(char),
    /// A raw control character inside a quoted key.
    EscapedControl,
    /// An unknown backslash escape.
    Escape,
    /// `\u` must be followed by four hex digits.
    HexDigits,
    /// A UTF-16 high surrogate must be followed by a low one (and a low one cannot stand alone).
    LowSurrogate,
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::RootName => f.write_str("a root name or `[`"),
            Expected::KeyAfterDot => f.write_str("a key name"),
            Expected::DotOrBracket => f.write_str("`.` or `[`"),
            Expected::BracketContent => f.write_str("a quoted key or an integer index"),
            Expected::NonNegativeIndex => f.write_str("a non-negative index"),
            Expected::IndexInRange => f.write_str("an index that fits in usize"),
            Expected::CloseBracket => f.write_str("`]`"),
            Expected::ClosingQuote(q) => write!(f, "closing `{q}`"),
            Expected::EscapedControl => f.write_str("control characters escaped"),
            Expected::Escape => f.write_str("an escape"),
            Expected::HexDigits => f.write_str("four hex digits"),
            Expected::LowSurrogate => f.write_str("a low surrogate after a high one"),
        }
    }
}

/// A path that does not parse.
///
/// ```
/// let err = "a.b[".parse::<switchyard_metadata::Path>().unwrap_err();
/// assert_eq!(err.offset(), 4);
/// assert_eq!(err.to_string(), "invalid path: expected a quoted key or an integer index at byte 4, found end of input");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid path: expected {expected} at byte {offset}, found {}", Found(*.found))]
pub struct PathError {
    offset: usize,
    expected: Expected,
    found: Option<char>,
}

struct Found(Option<char>);

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(c) => write!(f, "{c:?}"),
            None => f.write_str("end of input"),
        }
    }
}

impl PathError {
    pub(crate) fn new(offset: usize, expected: Expected, found: Option<char>) -> Self {
        PathError {
            offset,
            expected,
            found,
        }
    }

    /// Byte offset into the input where parsing stopped.
    #[must_use]
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// What would have been accepted there.
    #[must_use]
    pub fn expected(&self) -> Expected {
        self.expected
    }

    /// The character found instead (`None` at the end of the input or inside a number).
    #[must_use]
    pub fn found(&self) -> Option<char> {
        self.found
    }
}

#[cfg(feature = "client")]
/// Errors from the metadata API client ([`Interface`](crate::Interface)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No base URL was given and `METADATA_API_URL` is not set.
    #[error("no metadata API URL: pass one to Interface::new or set METADATA_API_URL")]
    MissingBaseUrl,
    /// The base URL cannot be used (credentials in it are never shown).
    #[error("invalid metadata API URL {url:?}: {reason}")]
    InvalidBaseUrl {
        /// The URL, with any `user:password@` removed.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// A query string given to `get` does not parse.
    #[error(transparent)]
    Query(#[from] PathError),
    /// The service has no value at this path (404).
    #[error("no value at `{query}` in the step spec")]
    NotFound {
        /// The query sent.
        query: String,
    },
    /// The value exists but some reference in it (secret, connection, output, parameter)
    /// could not be resolved yet (`complete: false`; Python raises `UnresolvableException`).
    #[error("`{query}` is not resolvable yet: {unresolvable}")]
    Unresolvable {
        /// The query sent.
        query: String,
        /// What could not be resolved, as the service listed it.
        unresolvable: Box<Unresolvable>,
    },
    /// The service answered with an error status.
    #[error("metadata API answered {status} to {method} {path}: {message}")]
    Server {
        /// HTTP method of the request.
        method: http::Method,
        /// Request path.
        path: String,
        /// The status.
        status: StatusCode,
        /// The error message from the JSON error body, or the body text (truncated).
        message: String,
    },
    /// The request could not be sent or the response not read, after retrying.
    #[error("metadata API unreachable after {attempts} attempt(s): {source}")]
    Transport {
        /// How many attempts were made.
        attempts: u32,
        /// The last failure.
        #[source]
        source: BoxError,
    },
    /// No response within the request timeout.
    #[error("metadata API did not answer within {after:?} ({attempts} attempt(s))")]
    Timeout {
        /// How many attempts were made.
        attempts: u32,
        /// The per-attempt timeout.
        after: Duration,
    },
    /// The response body is not what the protocol says.
    #[error("unexpected response from the metadata API: {what}: {source}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A value that must be a JSON object (event data, workflow parameters) is not one.
    #[error("{what} must serialise to a JSON object")]
    NotAnObject {
        /// Which argument.
        what: &'static str,
    },
    /// TLS could not be set up for the client.
    #[error("could not set up TLS for the metadata client: {0}")]
    Tls(String),
    /// A value to send could not be serialised.
    #[error("could not encode the request body as JSON: {0}")]
    Encode(#[source] serde_json::Error),
    /// A blocking method was called from inside an async runtime, where it would deadlock.
    #[error(
        "blocking metadata client used inside an async runtime: use switchyard_metadata::Interface instead"
    )]
    InsideRuntime,
    /// The blocking client could not start its runtime.
    #[error("could not start the blocking client's runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

#[cfg(feature = "server")]
/// Errors loading or checking a spec ([`SpecSource`](crate::SpecSource)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// The file could not be read.
    #[error("cannot read spec file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The JSON does not parse.
    #[error("{origin}: invalid JSON at line {line}, column {column}: {message}")]
    Json {
        /// The file name, or `<string>`.
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What went wrong.
        message: String,
    },
    /// The YAML does not parse (the message gives the position).
    #[error("{origin}: invalid YAML: {message}")]
    Yaml {
        /// The file name, or `<string>`.
        origin: String,
        /// What went wrong, with line and column.
        message: String,
    },
    /// The top level must be a mapping.
    #[error("{origin}: a spec must be an object at the top level, found {found}")]
    NotAnObject {
        /// The file name, or `<string>`.
        origin: String,
        /// The JSON type found.
        found: &'static str,
    },
    /// An object with a known `$type` lacks a field or has one of the wrong type.
    #[error("{origin}: bad {kind} reference at `{at}`: {reason}")]
    BadReference {
        /// The file name, or `<string>`.
        origin: String,
        /// The `$type`.
        kind: String,
        /// Where in the spec (path form; empty for the top level).
        at: String,
        /// What is wrong.
        reason: String,
    },
}

#[cfg(feature = "server")]
/// Errors from an output store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store file could not be read or written.
    #[error("output store {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The store file exists but is not a valid outputs document; it is left untouched.
    #[error(
        "output store {} is not a valid outputs file (line {line}, column {column}): {message}; it was left untouched",
        path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A stored value could not be read back.
    #[error("stored {what} cannot be read: {message}")]
    Unreadable {
        /// Which value.
        what: String,
        /// Why.
        message: String,
    },
    /// PostgreSQL reported an error, or the connection to it failed.
    #[cfg(feature = "postgres")]
    #[error("PostgreSQL error: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// No PostgreSQL connection could be had from the pool.
    #[cfg(feature = "postgres")]
    #[error("no PostgreSQL connection available: {0}")]
    Pool(String),
    /// The database's outputs table was written by a newer build.
    #[error("the outputs schema version {found} is newer than this build supports ({supported})")]
    UnsupportedSchemaVersion {
        /// The version found.
        found: i32,
        /// The newest version this build knows.
        supported: i32,
    },
}

#[cfg(feature = "server")]
/// Errors a [`Sink`](crate::Sink) reports for an event, run or decorator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// Nobody consumes the sink any more (answered 503).
    #[error("the event sink is closed")]
    Closed,
    /// The application refused the request (answered 422 with this message).
    #[error("refused: {0}")]
    Rejected(String),
}

#[cfg(feature = "server")]
/// Errors building a [`MetadataService`](crate::MetadataService).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No step was configured.
    #[error("no step configured: add one with MetadataServiceBuilder::step")]
    NoSteps,
    /// No sink was configured: events and runs would have nowhere to go.
    #[error(
        "no sink configured: add one with MetadataServiceBuilder::sink (ChannelSink is ready-made)"
    )]
    NoSink,
    /// Several steps but no tokens: a request could not say which step it is.
    #[error(
        "{count} steps configured but no tokens: give each step a token so requests can say which step they are"
    )]
    StepsNeedTokens {
        /// How many steps.
        count: usize,
    },
    /// A token names a step that was not configured.
    #[error("a token names step {step:?}, which is not configured")]
    UnknownStep {
        /// The step name.
        step: String,
    },
    /// The same token was given twice.
    #[error("a token was given twice (for steps {first:?} and {second:?})")]
    DuplicateToken {
        /// The first step.
        first: String,
        /// The second step.
        second: String,
    },
    /// An empty token would let any request in.
    #[error("empty token for step {step:?}")]
    EmptyToken {
        /// The step name.
        step: String,
    },
}

#[cfg(feature = "server")]
/// Errors from [`WebhookServer`](crate::WebhookServer).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// `PORT` is set but is not a port number (Python: `PortParseError`).
    #[error("PORT={value:?} is not a port number")]
    BadPort {
        /// The variable's value.
        value: String,
    },
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Installing the SIGINT/SIGTERM handlers failed.
    #[error("cannot install signal handlers: {0}")]
    Signal(#[source] std::io::Error),
}
