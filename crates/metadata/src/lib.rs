//! Step metadata, both sides of the wire: what a workflow step reads (its spec, with
//! secrets, connections, parameters and other steps' outputs resolved) and writes (outputs,
//! events, workflow runs, UI decorators), speaking the metadata API of Relay's Python
//! `relay-sdk` 0.3.1, so existing steps keep working against a Switchyard service.
//!
//! * [`Path`] and [`dynamic!`]: spec paths, parsed from every form the Python `Dynamic` and
//!   hand-written queries use, rendered exactly as `Dynamic` renders them.
//! * [`Interface`] (async) and [`blocking::Interface`]: the client.
//! * [`MetadataService`]: the service, a tower `Service` over [`SpecSource`]s, an
//!   [`OutputStore`] and a [`Sink`] you provide.
//! * [`WebhookServer`]: serve any tower service on `PORT` with graceful shutdown.
//!
//! ```
//! use serde_json::json;
//! use switchyard_metadata::{ChannelSink, Emitted, Interface, MetadataService, SpecSource, WebhookServer, dynamic};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! // The service side: one step whose spec refers to a connection configured elsewhere.
//! let (sink, mut emitted) = ChannelSink::new(64, "https://ci.example.com");
//! let service = MetadataService::builder()
//!     .step("deploy", SpecSource::from_yaml("azure:\n  connection: {$type: Connection, type: azure, name: prod}")?)
//!     .connection("azure", "prod", json!({"clientID": "app-7", "secret": "s3cr3t"}))
//!     .sink(sink)
//!     .build()?;
//! let server = WebhookServer::bind_to(service, "127.0.0.1:0".parse()?).bind().await?;
//! let base = format!("http://{}", server.local_addr()?);
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let serving = tokio::spawn(server.serve_until(async { let _ = stopped.await; }));
//!
//! // The step side.
//! let relay = Interface::new(&base)?;
//! let secret: String = relay.get_as(dynamic!(azure.connection.secret)).await?;
//! assert_eq!(secret, "s3cr3t");
//! relay.events().emit(&json!({"tag": "v1"}), None).await?;
//! assert!(matches!(emitted.recv().await, Some(Emitted::Event(e)) if e.data["tag"] == "v1"));
//!
//! let _ = stop.send(());
//! serving.await?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! [`Path`] and [`dynamic!`] need no feature: with `default-features = false` the crate is the
//! path parser and the spec value types (serde), nothing else.
//!
//! | cargo feature | default | what it adds |
//! |---|---|---|
//! | `client` | yes | [`Interface`]: the async client (hyper, rustls through `switchyard-https`, tokio) |
//! | `blocking` | yes | [`blocking::Interface`]: the same client for synchronous code (implies `client`) |
//! | `server` | yes | [`MetadataService`], [`WebhookServer`], [`SpecSource`], [`FileOutputs`], [`ChannelSink`]: the service side (hyper server, YAML specs) |
//! | `postgres` | no | `PostgresOutputs`: step outputs in PostgreSQL, shared by several servers (implies `server`) |
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "blocking")]
pub mod blocking;
#[cfg(feature = "client")]
mod client;
mod error;
mod path;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "server")]
mod serve;
#[cfg(feature = "server")]
mod service;
#[cfg(feature = "server")]
mod sink;
#[cfg(feature = "server")]
mod spec;
#[cfg(feature = "server")]
mod store;
mod value;

#[cfg(feature = "client")]
pub use client::{
    Decorators, Events, Interface, InterfaceBuilder, IntoQuery, METADATA_API_URL, Outputs,
    Workflows,
};
#[cfg(any(feature = "client", feature = "server"))]
pub use error::BoxError;
#[cfg(feature = "client")]
pub use error::ClientError;
#[cfg(feature = "server")]
pub use error::{BuildError, ServeError, SinkError, SpecError, StoreError};
pub use error::{Expected, PathError};
pub use path::{Path, Segment};
#[cfg(feature = "postgres")]
pub use postgres::PostgresOutputs;
#[cfg(feature = "server")]
pub use serve::{BoundServer, DEFAULT_DRAIN_TIMEOUT, DEFAULT_PORT, Drained, WebhookServer};
#[cfg(feature = "server")]
pub use service::{
    DEFAULT_BODY_LIMIT, DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_MAX_STEP_OUTPUT_BYTES, MetadataService,
    MetadataServiceBuilder,
};
#[cfg(feature = "server")]
pub use sink::{ChannelSink, Decorator, DecoratorKind, Emitted, EmittedEvent, RunRequest, Sink};
#[cfg(feature = "server")]
pub use spec::{Reference, SpecSource};
#[cfg(feature = "server")]
pub use store::{BoxFuture, FileOutputs, MemoryOutputs, OutputStore};
pub use value::{
    Binary, ConnectionRef, OutputRef, ParameterRef, SecretRef, SecretValue, SpecResponse,
    Unresolvable, WorkflowRun,
};
