//! CloudEvents v0.3 and v1.0 for Rust: the event model, the JSON event format and the HTTP
//! protocol binding (binary, structured and batched content modes).
//!
//! - **Conformant.** Every attribute is checked against the specification when an event is
//!   built or decoded; errors name the attribute and the rule ([`Error`], [`Rule`]).
//!   All 43 cases of the CloudEvents conformance suite's JSON format tests pass.
//! - **Pass-through safe.** JSON data is kept as the text it arrived in ([`Data::Json`]) and
//!   timestamps keep their original spelling and offset, so forwarding an event does not
//!   change its bytes.
//! - **Fast.** Decoding borrows from the input and never builds a JSON tree for `data`
//!   (see the crate README for the benchmark against `cloudevents-sdk`).
//! - **Safe on hostile input.** Decoders never panic; property tests and a fuzz target hold
//!   them to it.
//!
//! ```
//! use switchyard_cloudevents::{Event, http, json};
//!
//! // Build an event: `id` defaults to a UUID and `specversion` to 1.0.
//! let event = Event::builder()
//!     .ty("com.example.sampletype1")
//!     .source("https://example.com/event-producer")
//!     .json_data(&serde_json::json!({"message": "Hello World!"}))
//!     .build()?;
//!
//! // Send it in binary or structured mode; `from_http` reads either (and batches).
//! let message = http::to_structured(&event)?;
//! let received = http::from_http(&message.headers, &message.body)?.into_single()?;
//! assert_eq!(received, event);
//!
//! // Or use the JSON format directly.
//! assert_eq!(json::decode(&json::encode(&event)?)?, event);
//! # Ok::<(), switchyard_cloudevents::Error>(())
//! ```
//!
//! | module | what it holds |
//! |---|---|
//! | [`json`] | the JSON event format and batch format |
//! | [`http`] | the HTTP binding: `to_binary`, `to_structured`, `to_batch`, `from_http` |
//!
//! This crate has no cargo features; the `switchyard` facade re-exports it behind its
//! default-on `cloudevents` feature.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod data;
mod error;
mod event;
mod extension;
pub mod http;
pub mod json;
mod spec_version;
mod timestamp;
mod validate;

pub use data::{Data, JsonText};
pub use error::{Error, Rule};
pub use event::{Event, EventBuilder};
pub use extension::ExtensionValue;
pub use spec_version::SpecVersion;
pub use timestamp::Timestamp;
pub use validate::{is_json_content_type, is_text_content_type};

/// Compiles the README's example as a doctest so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
