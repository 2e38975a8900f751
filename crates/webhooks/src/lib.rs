//! Webhooks for Rust: an event-type registry with JSON Schemas, endpoints with channels,
//! Standard Webhooks signatures, and a durable store.
#![deny(missing_docs)]

mod error;
mod id;
mod model;
mod page;
mod registry;
mod schema;
mod secret;
pub mod signature;
pub mod store;
pub mod verify;

pub use error::{Error, KeyError, SchemaError, StoreError, VerifyError, Violation};
pub use id::{EndpointId, MessageId};
pub use model::{
    Channel, Delivery, DeliveryStatus, DeliveryUpdate, Endpoint, EndpointKeys, EndpointRecord,
    EndpointSpec, EndpointUid, EventType, EventTypeFilter, EventTypeName, Lease, MAX_CHANNELS,
    Message,
};
pub use page::{DEFAULT_LIMIT, ListOptions, MAX_LIMIT, Order, Page, PageRequest};
pub use registry::{Clock, DEFAULT_KEY_GRACE, MAX_PREVIOUS_KEYS, Registry, RegistryConfig};
pub use secret::{Secret, SigningKey, VerifyingKey};
pub use signature::{Signer, SigningSecret, Verified, Verifier};
