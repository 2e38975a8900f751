//! Config-driven integrations: load an integration's `config.json` (the Autohive format),
//! register handlers for its actions, polling triggers and connected account, and dispatch
//! with every input, credential and output checked against the config's JSON Schemas.
//!
//! This is the Rust counterpart of the Autohive Integrations SDK (2.0.1), with its gaps closed:
//!
//! * [`Integration::load`] checks the whole config up front: a missing key, a bad
//!   `polling_interval` or a schema that cannot compile is a [`ConfigError`] naming the file
//!   and the JSON path. Every schema is compiled once, at load (Draft 7), instead of per call.
//!   Legacy quirks found in real configs load with a [`LoadWarning`].
//! * Registering a handler for a name the config does not define is a [`RegisterError`];
//!   [`Integration::check`] lists what has no handler yet.
//! * Dispatch follows the original's order and returns an [`IntegrationResult`] that serialises
//!   to the same JSON; validation failures also carry the failing property and value, and a
//!   handler that panics yields an `error` result instead of taking the process down.
//! * [`ExecutionContext::fetch`] retries only what is safe to retry, never duplicates query
//!   parameters on a retry, parses `Retry-After` dates, and follows redirects without carrying
//!   credentials to another origin.
//!
//! ```
//! use serde_json::json;
//! use switchyard_integration::{ActionHandler, ActionResult, ActionError, ExecutionContext,
//!     HandlerError, Integration, ResultType};
//!
//! struct GetUser;
//!
//! impl ActionHandler for GetUser {
//!     async fn execute(&self, inputs: serde_json::Value, _ctx: &ExecutionContext)
//!         -> Result<ActionResult, HandlerError>
//!     {
//!         match inputs["id"].as_i64() {
//!             Some(7) => Ok(ActionResult::new(json!({"name": "Ada"}))),
//!             _ => Err(ActionError::new("User not found").into()),
//!         }
//!     }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let mut integration = Integration::from_json(r#"{
//!     "name": "users", "version": "1.0.0", "description": "User lookups",
//!     "actions": {"get_user": {
//!         "description": "Gets a user",
//!         "input_schema": {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]},
//!         "output_schema": {"type": "object", "required": ["name"]}
//!     }}
//! }"#)?;
//! integration.register_action("get_user", GetUser)?;
//! assert!(integration.check().is_complete());
//!
//! let ctx = ExecutionContext::new();
//! let found = integration.execute_action("get_user", json!({"id": 7}), &ctx).await;
//! assert_eq!(
//!     serde_json::to_value(&found)?,
//!     json!({"version": "2.0.1", "type": "action", "result": {"data": {"name": "Ada"}, "cost_usd": null}})
//! );
//! let missing = integration.execute_action("get_user", json!({"id": 8}), &ctx).await;
//! assert_eq!(missing.result_type(), ResultType::ActionError);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! The crate has no cargo features.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod auth;
mod config;
mod context;
mod error;
mod fetch;
mod handler;
mod integration;
mod result;
mod schema;

pub use auth::{Auth, AuthType};
pub use config::{
    Action, AuthConfig, AuthKind, IntegrationConfig, LoadOptions, LoadWarning, PollingTrigger,
    parse_interval,
};
pub use context::{ContextBuilder, ExecutionContext, RequestConfig};
pub use error::{AuthError, ConfigError, FetchError, IntervalError, RegisterError};
pub use fetch::{FetchRequest, FetchResponse, HttpClient, ResponseData};
pub use handler::{
    ActionFn, ActionHandler, ConnectedAccountFn, ConnectedAccountHandler, HandlerError, PollingFn,
    PollingTriggerHandler, action_fn, connected_account_fn, polling_fn,
};
pub use integration::{CheckReport, Integration, PollOutcome};
pub use result::{
    AUTOHIVE_SDK_VERSION, ActionError, ActionResult, ConnectedAccountInfo, ErrorResult,
    IntegrationResult, ResultPayload, ResultType, ValidationFailure, ValidationSource,
};
pub use schema::{Schema, Violation};
