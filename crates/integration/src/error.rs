//! The crate's error types: loading a config, registering handlers, building an auth envelope,
//! and calling an API through [`ExecutionContext::fetch`](crate::ExecutionContext::fetch).

use std::path::PathBuf;
use std::time::Duration;

use http::StatusCode;

use crate::fetch::ResponseData;

/// Why a `config.json` could not be loaded. Every variant names the file and, where the problem
/// is inside the document, the JSON path (`$.actions.create_task.input_schema`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read the config: {source}", file.display())]
    Io {
        /// The config file.
        file: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not JSON.
    #[error("{}:{line}:{column}: not valid JSON: {message}", file.display())]
    Json {
        /// The config file.
        file: PathBuf,
        /// 1-based line of the syntax error.
        line: usize,
        /// 1-based column of the syntax error.
        column: usize,
        /// What the JSON parser expected.
        message: String,
    },
    /// A key the format requires is absent.
    #[error("{}: {path}: missing required key `{key}`", file.display())]
    MissingKey {
        /// The config file.
        file: PathBuf,
        /// The JSON path of the object that lacks the key.
        path: String,
        /// The missing key.
        key: &'static str,
    },
    /// A value has the wrong JSON type.
    #[error("{}: {path}: expected {expected}, found {found}", file.display())]
    WrongType {
        /// The config file.
        file: PathBuf,
        /// The JSON path of the value.
        path: String,
        /// What the format wants there ("a string", "an object", ...).
        expected: &'static str,
        /// The JSON type found instead.
        found: &'static str,
    },
    /// A value of the right type that the format does not allow (an unknown `auth.type`, ...).
    #[error("{}: {path}: {message}", file.display())]
    InvalidValue {
        /// The config file.
        file: PathBuf,
        /// The JSON path of the value.
        path: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A `polling_interval` that is not a positive whole number followed by `s`, `m`, `h` or `d`.
    #[error("{}: {path}: invalid polling interval {value:?}: {reason}", file.display())]
    BadInterval {
        /// The config file.
        file: PathBuf,
        /// The JSON path of the interval.
        path: String,
        /// The interval as written.
        value: String,
        /// Why it was refused.
        reason: IntervalError,
    },
    /// A JSON Schema that is not a valid Draft 7 schema or cannot be compiled (a bad regex
    /// `pattern`, an unresolvable `$ref`, ...).
    #[error("{}: {path}: invalid JSON Schema: {message}", file.display())]
    BadSchema {
        /// The config file.
        file: PathBuf,
        /// The JSON path of the offending keyword, inside the schema.
        path: String,
        /// The schema compiler's message.
        message: String,
    },
}

/// Why a polling interval such as `"5m"` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IntervalError {
    /// The text is empty.
    #[error("it is empty; write a whole number and a unit, such as \"30s\" or \"5m\"")]
    Empty,
    /// The text does not end with a unit.
    #[error("it has no unit; end it with s, m, h or d (\"5m\")")]
    MissingUnit,
    /// The part before the unit is not a whole number (a sign, a decimal point, spaces).
    #[error("the amount must be a whole number of units, such as \"90m\" for an hour and a half")]
    NotAWholeNumber,
    /// The interval is zero.
    #[error("it must be longer than zero")]
    Zero,
    /// The interval does not fit in a `Duration`.
    #[error("it is too long")]
    TooLong,
}

/// A handler registration that the config does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// No action of that name is defined in the config.
    #[error("action `{name}` is not defined in the config{}", hint(suggestion))]
    UnknownAction {
        /// The name given.
        name: String,
        /// The closest defined action name, when one is close.
        suggestion: Option<String>,
    },
    /// No polling trigger of that name is defined in the config.
    #[error(
        "polling trigger `{name}` is not defined in the config{}",
        hint(suggestion)
    )]
    UnknownPollingTrigger {
        /// The name given.
        name: String,
        /// The closest defined trigger name, when one is close.
        suggestion: Option<String>,
    },
}

fn hint(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|name| format!(" (did you mean `{name}`?)"))
        .unwrap_or_default()
}

/// An auth value that is not the platform envelope `{"auth_type": ..., "credentials": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The value is not an object holding a non-empty string `auth_type` and an object
    /// `credentials`.
    #[error(
        "auth must be the platform envelope {{\"auth_type\": ..., \"credentials\": {{...}}}} with a non-empty auth_type; flat auth is not supported"
    )]
    NotAnEnvelope,
    /// `auth_type` names no known auth type.
    #[error(
        "unknown auth_type {0:?}; expected one of: ApiKey, Basic, Custom, PlatformOauth2, PlatformTeams"
    )]
    UnknownAuthType(String),
}

/// Why [`ExecutionContext::fetch`](crate::ExecutionContext::fetch) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The server answered 429 Too Many Requests. Not retried: the caller decides when to come
    /// back.
    #[error("rate limited (HTTP 429); retry after {} s", retry_after.as_secs())]
    RateLimited {
        /// From the `Retry-After` header (seconds or an HTTP date); 60 s when the header is
        /// absent or unreadable, as in the original SDK.
        retry_after: Duration,
        /// The response body, as text.
        body: String,
    },
    /// The server answered with a status outside 2xx (other than 429).
    #[error("HTTP {}: {}", status.as_u16(), body.summary())]
    Http {
        /// The response status.
        status: StatusCode,
        /// The response body, parsed as for a success.
        body: ResponseData,
    },
    /// The URL cannot be requested (not absolute, not http or https, bad characters).
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A header name or value given by the caller is not valid HTTP.
    #[error("invalid header {name:?}: {reason}")]
    InvalidHeader {
        /// The header name as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The request body or query could not be encoded (a form body that is not a flat object,
    /// a value that does not serialise to JSON).
    #[error("cannot encode the request: {0}")]
    Encode(String),
    /// The connection could not be made, or broke, on every attempt.
    #[error("connection failed after {attempts} attempt(s): {message}")]
    Connect {
        /// How many attempts were made.
        attempts: u32,
        /// The last transport error.
        message: String,
    },
    /// The request did not complete within its timeout, on every attempt.
    #[error("timed out after {} s on each of {attempts} attempt(s)", timeout.as_secs_f64())]
    Timeout {
        /// How many attempts were made.
        attempts: u32,
        /// The timeout of each attempt.
        timeout: Duration,
    },
    /// The response body is larger than the context's limit.
    #[error("the response body is larger than the {limit}-byte limit")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A redirect could not be followed (no `Location`, a bad one, or too many hops).
    #[error("redirect not followed: {0}")]
    Redirect(String),
    /// The TLS stack could not be set up.
    #[error("TLS setup failed: {0}")]
    Tls(String),
}

impl FetchError {
    /// The HTTP status for [`FetchError::RateLimited`] and [`FetchError::Http`].
    #[must_use]
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::RateLimited { .. } => Some(StatusCode::TOO_MANY_REQUESTS),
            Self::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}
