//! The server's errors: [`ServerError`] for starting and running it, and [`ApiError`], the
//! typed HTTP error every route answers with (Svix's `{"code", "detail"}` shape).

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{CONNECTION, HeaderValue, WWW_AUTHENTICATE};
use serde_json::{Value, json};
use switchyard_webhooks::{Error as WebhooksError, KeyError, SchemaError};

/// Why the server could not start, or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The configuration file could not be read.
    #[error("cannot read the config file {path}: {source}")]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML for this server, or a value in it is wrong.
    #[error("invalid config {path}: {message}")]
    Config {
        /// The file (or `<flags>` for a command-line value).
        path: PathBuf,
        /// What is wrong, with the line and column for TOML errors.
        message: String,
    },
    /// The data directory or a file in it could not be created or read.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory or file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Serving failed after the socket was bound.
    #[error("serving HTTP failed: {0}")]
    Serve(std::io::Error),
    /// The webhooks store could not be opened or written.
    #[error("webhooks: {0}")]
    Webhooks(#[from] WebhooksError),
    /// A data directory of the first versions could not be upgraded (nothing was lost: the
    /// old files stay until every application is imported).
    #[error("cannot upgrade {}: {reason}", path.display())]
    Upgrade {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The metadata spec file could not be loaded.
    #[error("metadata spec: {0}")]
    MetadataSpec(#[from] switchyard_metadata::SpecError),
    /// A metadata secret or connection could not be read from its source.
    #[error("metadata {what}: {reason}")]
    MetadataValue {
        /// Which value (`secret `db``).
        what: String,
        /// Why, naming the variable or file, never the value.
        reason: String,
    },
    /// The main key (or an old one) cannot be read, or is not a main key.
    #[error("main key {what}: {reason}")]
    MainKey {
        /// Where it was to come from (`webhooks.main_key`, the key file's path).
        what: String,
        /// Why, naming the variable or file, never the key.
        reason: String,
    },
    /// The runtime events log in the database could not be opened.
    #[error("runtime events log: {0}")]
    Events(String),
    /// The metadata outputs' database could not be opened.
    #[error("metadata outputs: {0}")]
    Outputs(#[from] switchyard_metadata::StoreError),
    /// The metadata service could not be put together.
    #[error("metadata service: {0}")]
    Metadata(#[from] switchyard_metadata::BuildError),
    /// The logger could not be installed (another one already is).
    #[error("cannot install the logger: {0}")]
    Logging(String),
    /// Waiting for SIGINT or SIGTERM failed.
    #[error("cannot listen for signals: {0}")]
    Signal(std::io::Error),
}

/// One problem with a request body, in the shape of Svix's validation errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Where: `["body", "eventType"]`.
    pub loc: Vec<String>,
    /// What is wrong.
    pub msg: String,
    /// A machine-readable kind (`value_error`, `type_error`, `missing`).
    pub kind: &'static str,
}

/// A typed error answer: its status, a stable `code` and a readable `detail`.
///
/// Rendered as `{"code": "...", "detail": "..."}` (what the Svix clients parse), or for
/// validation errors (422) as `{"detail": [{"loc", "msg", "type"}]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable code, e.g. `not_found`, `conflict`, `event_type_exists`.
    pub code: &'static str,
    /// A message for people.
    pub detail: String,
    /// Per-field problems of a 422.
    pub fields: Vec<FieldError>,
}

impl ApiError {
    /// An error with a status, a code and a detail.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            fields: Vec::new(),
        }
    }

    /// 404 `not_found`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    /// 409 `conflict`.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }

    /// 400 `bad_request`.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", detail)
    }

    /// 401 `authentication_failed`.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication_failed", detail)
    }

    /// 422 `validation` for one field of the body.
    pub fn invalid_field(field: &str, msg: impl Into<String>) -> Self {
        let msg = msg.into();
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "validation",
            detail: format!("{field}: {msg}"),
            fields: vec![FieldError {
                loc: vec!["body".to_owned(), field.to_owned()],
                msg,
                kind: "value_error",
            }],
        }
    }

    /// 422 `validation` for a query parameter.
    pub fn invalid_query(param: &str, msg: impl Into<String>) -> Self {
        let msg = msg.into();
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "validation",
            detail: format!("{param}: {msg}"),
            fields: vec![FieldError {
                loc: vec!["query".to_owned(), param.to_owned()],
                msg,
                kind: "value_error",
            }],
        }
    }

    /// 500 `internal`: the cause is logged, never sent.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        if self.fields.is_empty() {
            json!({"code": self.code, "detail": self.detail})
        } else {
            let detail: Vec<Value> = self
                .fields
                .iter()
                .map(|f| json!({"loc": f.loc, "msg": f.msg, "type": f.kind}))
                .collect();
            json!({"code": self.code, "detail": detail})
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"switchyard\""),
            );
        }
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body is not read, so the connection cannot carry another
            // request: say so, or a client's pool would reuse it and fail.
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl From<WebhooksError> for ApiError {
    fn from(error: WebhooksError) -> Self {
        match &error {
            WebhooksError::EventTypeNotFound { .. }
            | WebhooksError::EndpointNotFound { .. }
            | WebhooksError::MessageNotFound { .. }
            | WebhooksError::AttemptNotFound { .. } => Self::not_found(error.to_string()),
            WebhooksError::InvalidId { .. } => Self::not_found(error.to_string()),
            WebhooksError::ApplicationNotFound { .. } => Self::not_found(error.to_string()),
            WebhooksError::ApplicationExists { .. }
            | WebhooksError::EndpointExists { .. }
            | WebhooksError::MessageExists { .. } => Self::conflict(error.to_string()),
            WebhooksError::InvalidAppUid { .. } => Self::invalid_field("uid", error.to_string()),
            WebhooksError::InvalidAppName => Self::invalid_field("name", error.to_string()),
            WebhooksError::InvalidEventId { .. } => {
                Self::invalid_field("eventId", error.to_string())
            }
            WebhooksError::InvalidEventTypeName { .. }
            | WebhooksError::UngroupedEventTypeName { .. } => {
                Self::invalid_field("name", error.to_string())
            }
            WebhooksError::InvalidUid { .. } => Self::invalid_field("uid", error.to_string()),
            WebhooksError::InvalidChannel { .. } | WebhooksError::TooManyChannels { .. } => {
                Self::invalid_field("channels", error.to_string())
            }
            WebhooksError::InvalidUrl { .. } => Self::invalid_field("url", error.to_string()),
            WebhooksError::InvalidHeader { .. } => {
                Self::invalid_field("headers", error.to_string())
            }
            WebhooksError::PayloadTooLarge { .. } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                error.to_string(),
            ),
            WebhooksError::Schema(SchemaError::InvalidSchema { .. }) => {
                Self::invalid_field("schemas", error.to_string())
            }
            WebhooksError::Schema(_) => Self::invalid_field("payload", error.to_string()),
            WebhooksError::Key(KeyError::Rng(_)) => Self::internal(&error),
            WebhooksError::Key(_) => Self::invalid_field("key", error.to_string()),
            _ => Self::internal(&error),
        }
    }
}
