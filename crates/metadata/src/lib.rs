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
//! The crate has no cargo features.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod blocking;
mod client;
mod error;
mod path;
#[cfg(feature = "postgres")]
mod postgres;
mod serve;
mod service;
mod sink;
mod spec;
mod store;
mod value;

pub use client::{
    Decorators, Events, Interface, InterfaceBuilder, IntoQuery, METADATA_API_URL, Outputs,
    Workflows,
};
pub use error::{
    BoxError, BuildError, ClientError, Expected, PathError, ServeError, SinkError, SpecError,
    StoreError,
};
pub use path::{Path, Segment};
#[cfg(feature = "postgres")]
pub use postgres::PostgresOutputs;
pub use serve::{BoundServer, DEFAULT_DRAIN_TIMEOUT, DEFAULT_PORT, Drained, WebhookServer};
pub use service::{
    DEFAULT_BODY_LIMIT, DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_MAX_STEP_OUTPUT_BYTES, MetadataService,
    MetadataServiceBuilder,
};
pub use sink::{
    ChannelSink, Decorator, DecoratorKind, Emitted, EmittedEvent, RunRequest, Sink, WorkflowRun,
};
pub use spec::{Reference, SpecSource};
pub use store::{BoxFuture, FileOutputs, MemoryOutputs, OutputStore};
pub use value::{
    Binary, ConnectionRef, OutputRef, ParameterRef, SecretRef, SecretValue, SpecResponse,
    Unresolvable,
};
