//! Switchyard: build event-driven integrations in Rust, client and server side.
//!
//! This crate is the front door: it re-exports each Switchyard component under its own
//! module, each behind a cargo feature. The default features are the five libraries;
//! `default-features = false` plus the features you name gives you only what you use, and
//! the server (axum, the SQLite and PostgreSQL drivers, clap) comes only with `server`.
//!
//! | feature (default) | module | what it is |
//! |---|---|---|
//! | `cloudevents` (on) | [`cloudevents`] | CloudEvents v0.3 and v1.0: event model, JSON format, HTTP binding |
//! | `webhooks` (on) | [`webhooks`] | webhook registry, endpoints, Standard Webhooks signatures, durable store |
//! | `runtime-events` (on) | [`runtime_events`] | CEL-filtered subscriptions: `subscribe`, `next_event`, `unsubscribe` |
//! | `integration` (on) | [`integration`] | config-driven integrations: `config.json`, schema-checked dispatch, `ExecutionContext::fetch` |
//! | `metadata` (on) | [`metadata`] | step metadata: Relay-compatible client and service, `Dynamic` paths, `WebhookServer` |
//! | `server` (off) | [`server`] | the `switchyard` server as a library: the Svix- and Relay-compatible APIs in one process |
//! | `postgres` (off) | — | adds `webhooks::store::PostgresStore` and `metadata::PostgresOutputs`: several processes on one PostgreSQL database |
//!
//! Each feature brings its crate with that crate's default features. For less, depend on the
//! crate itself: `switchyard-webhooks` with `default-features = false` is Standard Webhooks
//! signing and verification alone (no tokio, JSON Schema or store), `switchyard-metadata`
//! without defaults is `Path` and `dynamic!` alone, and `switchyard-runtime-events` without
//! defaults is the CEL filter without the hub. Each crate's own documentation has its table.
//!
//! ```
//! # #[cfg(feature = "cloudevents")] {
//! use switchyard::cloudevents::{Event, http};
//!
//! let event = Event::builder()
//!     .ty("com.example.order.created")
//!     .source("/orders")
//!     .json_data(&serde_json::json!({"order": 42}))
//!     .build()?;
//! let message = http::to_binary(&event)?;
//! assert_eq!(message.headers["ce-type"], "com.example.order.created");
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "cloudevents")]
pub use switchyard_cloudevents as cloudevents;

#[cfg(feature = "webhooks")]
pub use switchyard_webhooks as webhooks;

#[cfg(feature = "runtime-events")]
pub use switchyard_runtime_events as runtime_events;

#[cfg(feature = "integration")]
pub use switchyard_integration as integration;

#[cfg(feature = "metadata")]
pub use switchyard_metadata as metadata;

#[cfg(feature = "server")]
pub use switchyard_server as server;
