//! The Switchyard server: every Switchyard API in one process with an embedded store, so the
//! Python clients of Svix (`swh-webhooks`, `svix`) and Relay (`relay-sdk`) work against it
//! unchanged.
//!
//! - **Webhooks, Svix-compatible** (`/api/v1/…`): applications, event types with JSON
//!   Schemas, endpoints with channels, secrets and headers, messages and delivery attempts,
//!   answered by `switchyard-webhooks` on SQLite; every message is delivered, signed with
//!   Standard Webhooks signatures, with retries.
//! - **Metadata, Relay-compatible** (`/spec`, `/outputs`, `/secrets`, …): the
//!   `switchyard-metadata` service for one step's spec file.
//! - **Runtime events** (`/runtime/v1/…`): CEL-filtered subscriptions, long-polling for the
//!   next event, and ingestion per source of CloudEvents (every mode and version) and plain
//!   webhook requests; what steps send through the metadata API is published there too.
//! - **Health**: `GET /health` and Svix's `GET /api/v1/health/` (cheap: the process
//!   answers) and `GET /health/ready` (the webhooks store answers a query within 2 s, else
//!   503), the only routes without a bearer token.
//!
//! The `switchyard` binary wraps this library: `switchyard serve` starts [`Server`] with a
//! [`Config`] from flags and an optional TOML file.
//!
//! ```no_run
//! use switchyard_server::{Config, Server};
//!
//! # #[tokio::main] async fn main() -> Result<(), switchyard_server::ServerError> {
//! let mut config = Config::default();
//! config.bind = "127.0.0.1:0".parse().expect("an address");
//! let server = Server::start(config).await?;
//! println!("listening on {} with token file .switchyard/token", server.local_addr());
//! server.run_until(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod config;
mod conn;
mod error;
mod events_log;
mod idempotency;
pub mod logging;
mod main_key;
mod portal;
mod private;
pub mod runtime;
mod server;
mod svix;
pub mod tools;

pub use config::{
    Config, ConnectionLimits, DEFAULT_DATABASE_CONNECTIONS, DatabaseConfig, LogFormat,
    MetadataConfig, Token, ValueSource, WebhooksConfig,
};
pub use error::{ApiError, FieldError, ServerError};
pub use main_key::KEY_FILE;
pub use server::{KeyReloader, Reloaded, RunningServer, STEP_TOKEN_FILE, Server, TOKEN_FILE};
pub use svix::webhooks::Upgraded;

/// Brings the webhooks data under `data_dir` to this version's layout and closes it: what
/// [`Server::start`] does first, for running it on its own (`switchyard migrate`).
///
/// Data directories of the first versions (a SQLite file per application) are imported into
/// the one store `webhooks/store.db`, and their old files renamed with a `.imported` suffix;
/// an upgrade interrupted at any point finishes when run again.
///
/// The store is opened with `webhooks`' main key (or the data directory's `main.key`, made
/// when missing), so what is clear in it is sealed too.
///
/// # Errors
/// [`ServerError::DataDir`], [`ServerError::Webhooks`] or [`ServerError::Upgrade`] naming
/// what could not be read or written, [`ServerError::MainKey`] for a main key that cannot be
/// read; nothing imported is lost.
pub async fn migrate(
    data_dir: &std::path::Path,
    webhooks: &WebhooksConfig,
) -> Result<Upgraded, ServerError> {
    private::dir(data_dir)?;
    private::tighten(&data_dir.join("webhooks"))?;
    let ring = main_key::key_ring(webhooks, data_dir)?;
    let current = ring.current().clone();
    let (store, upgraded) = svix::webhooks::open_store(data_dir, None, ring).await?;
    let settled = main_key::drop_old_keys(&store, webhooks, data_dir, &current).await;
    store.close().await;
    settled?;
    Ok(upgraded)
}

/// Puts a new main key first in the data directory's key file, keeping the earlier keys
/// after it until everything is sealed under the new one (what `switchyard rotate-key` does
/// first); returns the new key's id. A running server takes it on `SIGHUP`
/// ([`KeyReloader`]); with none running, [`seal_under_main_key`] finishes.
///
/// # Errors
/// [`ServerError::MainKey`] when `[webhooks] main_key` names the key (rotate it there, with
/// the old one in `old_main_keys`), when there is no key file yet or it lists more than
/// nine keys; [`ServerError::DataDir`] when it cannot be written.
pub fn add_main_key(
    data_dir: &std::path::Path,
    webhooks: &WebhooksConfig,
) -> Result<String, ServerError> {
    main_key::add_new(webhooks, data_dir)
}

/// With no server running: opens the webhooks store (the database when one is given, else
/// the data directory's file) with the configured main keys, seals everything under the
/// first (as every open does), drops the old keys from the data directory's key file, and
/// closes the store.
///
/// # Errors
/// [`ServerError::MainKey`], [`ServerError::DataDir`] or [`ServerError::Webhooks`], naming
/// the key, file or value at fault (never a key).
pub async fn seal_under_main_key(
    data_dir: &std::path::Path,
    database: Option<&DatabaseConfig>,
    webhooks: &WebhooksConfig,
) -> Result<(), ServerError> {
    private::dir(data_dir)?;
    let ring = main_key::reload(webhooks, data_dir)?;
    let current = ring.current().clone();
    let (store, _) = svix::webhooks::open_store(data_dir, database, ring).await?;
    let settled = main_key::drop_old_keys(&store, webhooks, data_dir, &current).await;
    store.close().await;
    settled.map(|_| ())
}

/// The ids of the main keys the data directory's `main.key` lists, the sealing one first:
/// one once a rotation is done.
///
/// # Errors
/// [`ServerError::DataDir`] when there is no key file; [`ServerError::MainKey`] when it does
/// not parse (the message never holds a key).
pub fn main_key_ids(data_dir: &std::path::Path) -> Result<Vec<String>, ServerError> {
    main_key::listed_ids(data_dir)
}

/// Brings the PostgreSQL database's webhooks schema to this version (what [`Server::start`]
/// does first when it has a database), for running it on its own before starting the
/// servers of a new version.
///
/// # Errors
/// [`ServerError::Webhooks`] when the database cannot be reached, a statement fails or a
/// newer build wrote the schema.
pub async fn migrate_database(database: &DatabaseConfig) -> Result<(), ServerError> {
    svix::webhooks::migrate_schema(database).await?;
    Ok(())
}
