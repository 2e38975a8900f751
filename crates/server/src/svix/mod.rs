//! The Svix-compatible webhooks API, answered from the webhooks crate's registry, laid out
//! as Svix lays out its server: one module per resource ([`apps`], [`event_types`],
//! [`endpoints`], [`messages`], [`attempts`], [`auth`]), each with its router and its typed
//! query and body structs; the request plumbing they share in [`request`].
//!
//! Field names are camelCase, creations answer 201 (messages 202), deletions and updates
//! without a body 204, errors `{"code", "detail"}`, lists `{data, iterator, prevIterator,
//! done}`. Endpoint paths take the `ep_…` id or the uid; application paths the `app_…` id
//! or the uid.

mod apps;
mod attempts;
pub(crate) mod auth;
pub(crate) mod endpoints;
mod event_types;
mod messages;
pub(crate) mod operational;
mod patch;
pub(crate) mod request;
pub(crate) mod store;
pub(crate) mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use switchyard_webhooks::delivery::AddressPolicy;
use switchyard_webhooks::{AppId, AppScope, Application};

pub(crate) use self::request::{parse_json, read_body};
use self::store::ServerStore;
use self::webhooks::Webhooks;
use crate::error::ApiError;

/// What the Svix routes share.
#[derive(Debug)]
pub(crate) struct SvixState {
    pub webhooks: Webhooks,
    pub body_limit: usize,
    /// The SSRF guard's policy: endpoints whose URL names a refused IP address are refused
    /// when created, not retried on every attempt.
    pub addresses: AddressPolicy,
    /// The base of the links handed out (`Config::public_base`), without a trailing `/`.
    pub public_url: String,
}

type Shared = State<Arc<SvixState>>;
type ApiResult<T> = Result<T, ApiError>;

/// The routes, under `/api/v1`.
pub(crate) fn routes(state: Arc<SvixState>) -> Router {
    Router::new()
        .merge(apps::routes())
        .merge(event_types::routes())
        .merge(endpoints::routes())
        .merge(messages::routes())
        .merge(attempts::routes())
        .merge(auth::routes())
        .with_state(state)
}

/// The application `id_or_uid` names, as the API sees applications (the default one is
/// not among them).
async fn application(state: &SvixState, id_or_uid: &str) -> ApiResult<Application> {
    let application = state.webhooks.registry.application(id_or_uid).await?;
    if application.id == AppId::default_app() {
        return Err(ApiError::not_found(format!(
            "application `{id_or_uid}` does not exist"
        )));
    }
    Ok(application)
}

/// The scope of the application `id_or_uid` names.
async fn scope<'s>(state: &'s SvixState, id_or_uid: &str) -> ApiResult<AppScope<'s, ServerStore>> {
    let application = application(state, id_or_uid).await?;
    Ok(state.webhooks.registry.app(application.id.as_str()).await?)
}
