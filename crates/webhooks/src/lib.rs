//! Webhooks for Rust: an event-type registry with JSON Schemas, endpoints with channels,
//! Standard Webhooks signatures, and a durable store.
#![deny(missing_docs)]

mod error;
mod secret;
pub mod signature;
pub mod verify;

pub use error::{Error, KeyError, SchemaError, StoreError, VerifyError, Violation};
pub use secret::{Secret, SigningKey, VerifyingKey};
pub use signature::{Signer, SigningSecret, Verified, Verifier};
