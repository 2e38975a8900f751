//! Webhooks for Rust: an event-type registry with JSON Schemas, endpoints with channels,
//! Standard Webhooks signatures, and a durable store. It does what `swh-webhooks` does on top
//! of a Svix server, with no outside service.
//!
//! - **Registry** ([`Registry`]): event types (`<group>.<event>` by default, as swh-webhooks;
//!   Svix's wider names as a setting) with a Draft 7 JSON Schema
//!   checked and compiled once; endpoints with event-type filters, up to 10 case-sensitive
//!   channels, a uid, metadata, custom headers and a secret; `send` validates the payload,
//!   stores its bytes exactly as given and queues one delivery per listening endpoint.
//! - **Signatures** ([`signature`]): Standard Webhooks `v1` (HMAC-SHA256) and `v1a`
//!   (Ed25519), verified by the Python `svix` and `standardwebhooks` libraries, with secret
//!   rotation and a grace period; [`verify`] is a tower middleware for receivers.
//! - **Storage** ([`store`]): [`store::MemoryStore`] and the durable
//!   [`store::SqliteStore`] behind one [`store::Store`] trait; deliveries are leased
//!   atomically for the delivery engine.
//!
//! ```
//! use serde_json::json;
//! use switchyard_webhooks::{EndpointSpec, EventTypeName, Registry, Signer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = Registry::in_memory();
//! let visit = EventTypeName::new("origin.visit")?;
//! registry
//!     .create_event_type(visit.clone(), "An origin was visited", json!({"type": "object"}))
//!     .await?;
//! let endpoint = registry
//!     .create_endpoint(EndpointSpec::new("https://hooks.example.com/").event_type(visit.clone()))
//!     .await?;
//!
//! let (message_id, sent_at) = registry
//!     .send(&visit, r#"{"origin": "https://example.org"}"#, None)
//!     .await?
//!     .expect("one endpoint listens");
//!
//! // What a delivery carries: the stored bytes, signed with every live key of the endpoint.
//! let message = registry.message(message_id.as_str()).await?;
//! let keys = registry.live_keys(endpoint.id.as_str()).await?;
//! let signer = Signer::with_keys(keys.into_iter().map(Into::into));
//! let headers = signer.headers(message.id.as_str(), sent_at.timestamp(), message.payload.as_bytes());
//! assert!(headers["webhook-signature"].to_str()?.starts_with("v1,"));
//! # Ok(())
//! # }
//! ```
//!
//! A receiver that only verifies (or a sender that only signs) needs no feature:
//! `default-features = false` builds [`signature`], the keys and the [`verify`] tower layer,
//! without tokio, JSON Schema or a store.
//!
//! | cargo feature | default | what it adds |
//! |---|---|---|
//! | `registry` | yes (through `sqlite` and `delivery`) | [`Registry`], the model, [`store::MemoryStore`], JSON Schema checks (jsonschema, tokio's sync) |
//! | `sqlite` | yes | [`store::SqliteStore`], the embedded durable store (rusqlite, bundled SQLite, its own writer thread); implies `registry` |
//! | `delivery` | yes | [`delivery::DeliveryEngine`]: signed POSTs with retries, limits and an SSRF guard (hyper, rustls); implies `registry` |
//! | `postgres` | no | `store::PostgresStore`: several servers on one PostgreSQL database (tokio-postgres); implies `registry` |
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "delivery")]
pub mod delivery;
mod error;
#[cfg(feature = "registry")]
mod id;
#[cfg(feature = "registry")]
mod model;
#[cfg(feature = "registry")]
mod page;
#[cfg(feature = "registry")]
mod registry;
#[cfg(feature = "registry")]
pub mod retry;
#[cfg(feature = "registry")]
mod schema;
#[cfg(feature = "registry")]
pub mod seal;
mod secret;
pub mod signature;
#[cfg(feature = "registry")]
pub mod store;
#[cfg(feature = "registry")]
mod token;
pub mod verify;

#[cfg(feature = "registry")]
pub use error::{Error, SchemaError, StoreError, Violation};
pub use error::{KeyError, VerifyError};
#[cfg(feature = "registry")]
pub use id::{AppId, AttemptId, EndpointId, MessageId};
#[cfg(feature = "registry")]
pub use model::{
    AppUid, Application, ApplicationSpec, Attempt, AttemptHeaders, AttemptStatus, AttemptTrigger,
    Channel, Delivery, DeliveryStatus, DeliveryUpdate, Endpoint, EndpointKeys, EndpointRecord,
    EndpointSpec, EndpointUid, EventType, EventTypeFilter, EventTypeName, Lease, MAX_CHANNELS,
    MAX_MESSAGE_CHANNELS, MAX_RESPONSE_BODY, Message, SentEvent, is_credential_name, is_uid,
    redact_userinfo,
};
#[cfg(feature = "registry")]
pub use page::{DEFAULT_LIMIT, ListOptions, MAX_LIMIT, Order, Page, PageRequest};
#[cfg(feature = "registry")]
pub use registry::{
    AppScope, Clock, DEFAULT_KEY_GRACE, DEFAULT_MAX_PAYLOAD, MAX_HISTOGRAM_BUCKETS,
    MAX_PREVIOUS_KEYS, NewMessage, Registry, RegistryConfig, SentEventQuery,
};
pub use secret::{Secret, SigningKey, VerifyingKey};
pub use signature::{Signer, SigningSecret, Verified, Verifier};
#[cfg(feature = "registry")]
pub use token::{APP_TOKEN_PREFIX, AppToken};
