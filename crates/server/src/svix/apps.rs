//! Applications: `/api/v1/app` and `/api/v1/app/{app_id}` (create, list, get, update,
//! patch, delete). An application path takes the `app_…` id or the uid.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use switchyard_webhooks::{AppId, Application, ApplicationSpec, Error as WebhooksError, Order};

use super::request::{
    Pagination, SvixQuery, check_uid, flag, json_body, list, list_error, one_of, reply, string_map,
    time,
};
use super::webhooks::AppRegistry;
use super::{ApiResult, Shared, SvixState, application, patch};
use crate::error::ApiError;

/// The application routes.
pub(super) fn routes() -> Router<Arc<SvixState>> {
    Router::new()
        .route("/api/v1/app", post(create_app).get(list_apps))
        .route(
            "/api/v1/app/{app}",
            get(get_app)
                .put(update_app)
                .patch(patch_app)
                .delete(delete_app),
        )
}

/// `POST /api/v1/app` and `PUT /api/v1/app/{app_id}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApplicationIn {
    pub name: String,
    #[serde(default)]
    pub uid: Option<String>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// The current name; `rateLimit` is what clients before 1.7x send.
    #[serde(default)]
    pub throttle_rate: Option<u32>,
    #[serde(default)]
    pub rate_limit: Option<u32>,
}

impl ApplicationIn {
    /// The registry's spec of this body: name not blank, a uid Svix allows, a rate of at
    /// least 1.
    fn spec(self) -> ApiResult<ApplicationSpec> {
        if self.name.trim().is_empty() {
            return Err(ApiError::invalid_field("name", "must not be empty"));
        }
        let rate_limit = one_of(
            self.throttle_rate,
            "throttleRate",
            self.rate_limit,
            "rateLimit",
        )?;
        let mut spec = ApplicationSpec::new(self.name);
        if let Some(uid) = &self.uid {
            spec = spec.uid(app_uid(uid)?)?;
        }
        for (key, value) in string_map(self.metadata) {
            spec = spec.metadata(key, value);
        }
        spec.rate_limit = rate(rate_limit)?;
        Ok(spec)
    }
}

/// `PATCH /api/v1/app/{app_id}`: only what is given changes; `null` clears a nullable field.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApplicationPatch {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "patch::field")]
    uid: patch::Field<String>,
    #[serde(default)]
    metadata: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "patch::field")]
    throttle_rate: patch::Field<u32>,
    #[serde(default, deserialize_with = "patch::field")]
    rate_limit: patch::Field<u32>,
}

/// An application, as Svix answers it. The rate limit goes out under both names: `svix` 2.x
/// reads `throttleRate`, 1.62 `rateLimit`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApplicationOut {
    pub id: String,
    pub uid: Option<String>,
    pub name: String,
    pub metadata: Map<String, Value>,
    pub throttle_rate: Option<u32>,
    pub rate_limit: Option<u32>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Application> for ApplicationOut {
    fn from(app: &Application) -> Self {
        Self {
            id: app.id.to_string(),
            uid: app.uid.as_ref().map(ToString::to_string),
            name: app.name.clone(),
            metadata: app.metadata.clone(),
            throttle_rate: app.rate_limit.map(NonZeroU32::get),
            rate_limit: app.rate_limit.map(NonZeroU32::get),
            created_at: time(&app.created_at),
            updated_at: time(&app.updated_at),
        }
    }
}

/// `POST /api/v1/app`'s query.
#[derive(Debug, Default, Deserialize)]
struct CreateQuery {
    get_if_exists: Option<String>,
}

/// A uid for an application: as Svix allows, and not `app_…` (that is an id).
fn app_uid(uid: &str) -> ApiResult<&str> {
    check_uid(uid)?;
    if uid.starts_with("app_") {
        return Err(ApiError::invalid_field(
            "uid",
            "a uid may not start with `app_`",
        ));
    }
    Ok(uid)
}

fn rate(rate: Option<u32>) -> ApiResult<Option<NonZeroU32>> {
    rate.map(|r| {
        NonZeroU32::new(r)
            .ok_or_else(|| ApiError::invalid_field("throttleRate", "must be at least 1"))
    })
    .transpose()
}

/// Creates the application `input` describes.
pub(super) async fn create(registry: &AppRegistry, input: ApplicationIn) -> ApiResult<Application> {
    let application = registry.create_application(input.spec()?).await?;
    tracing::info!(app = %application.id, "application created");
    Ok(application)
}

async fn create_app(
    State(state): Shared,
    SvixQuery(query): SvixQuery<CreateQuery>,
    body: Body,
) -> ApiResult<Response> {
    let input: ApplicationIn = json_body(body, state.body_limit).await?;
    let get_if_exists = flag(query.get_if_exists.as_deref(), "get_if_exists", false)?;
    let spec = input.spec()?;
    let registry = &state.webhooks.registry;
    let uid = spec.uid.clone();
    match registry.create_application(spec).await {
        Ok(application) => {
            tracing::info!(app = %application.id, "application created");
            Ok(reply(
                StatusCode::CREATED,
                &ApplicationOut::from(&application),
            ))
        }
        Err(WebhooksError::ApplicationExists { .. }) if get_if_exists => {
            let uid = uid.map(|u| u.to_string()).unwrap_or_default();
            let existing = registry.application(&uid).await?;
            Ok(reply(StatusCode::OK, &ApplicationOut::from(&existing)))
        }
        Err(error) => Err(error.into()),
    }
}

async fn list_apps(
    State(state): Shared,
    SvixQuery(page): SvixQuery<Pagination>,
) -> ApiResult<Response> {
    let options = page.options(Order::Ascending)?;
    let mut page = state
        .webhooks
        .registry
        .list_applications(&options)
        .await
        .map_err(list_error)?;
    // The default application is the webhooks crate's, for single-tenant use: not the API's.
    page.items.retain(|a| a.id != AppId::default_app());
    Ok(reply(
        StatusCode::OK,
        &list(page, |a| ApplicationOut::from(a)),
    ))
}

async fn get_app(State(state): Shared, Path(app): Path<String>) -> ApiResult<Response> {
    let application = application(&state, &app).await?;
    Ok(reply(StatusCode::OK, &ApplicationOut::from(&application)))
}

/// Replaces the application, or creates it (201, with a new id) when the path names none,
/// as Svix does.
async fn update_app(
    State(state): Shared,
    Path(app): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    let input: ApplicationIn = json_body(body, state.body_limit).await?;
    let spec = input.spec()?;
    let registry = &state.webhooks.registry;
    let _writes = state.webhooks.writes.lock().await;
    match application(&state, &app).await {
        Ok(existing) => {
            let updated = registry
                .update_application(existing.id.as_str(), spec)
                .await?;
            Ok(reply(StatusCode::OK, &ApplicationOut::from(&updated)))
        }
        Err(error) if error.status == StatusCode::NOT_FOUND => {
            let created = registry.create_application(spec).await?;
            tracing::info!(app = %created.id, "application created by PUT");
            Ok(reply(StatusCode::CREATED, &ApplicationOut::from(&created)))
        }
        Err(error) => Err(error),
    }
}

async fn patch_app(
    State(state): Shared,
    Path(app): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    let input: ApplicationPatch = json_body(body, state.body_limit).await?;
    let _writes = state.webhooks.writes.lock().await;
    let existing = application(&state, &app).await?;
    let mut spec = ApplicationSpec::new(input.name.unwrap_or(existing.name));
    if spec.name.trim().is_empty() {
        return Err(ApiError::invalid_field("name", "must not be empty"));
    }
    spec.uid = existing.uid;
    if let Some(uid) = input.uid.apply(spec.uid.as_ref().map(ToString::to_string)) {
        spec = spec.uid(app_uid(&uid)?)?;
    } else {
        spec.uid = None;
    }
    spec.metadata = match input.metadata {
        Some(metadata) => string_map(Some(metadata)),
        None => existing.metadata,
    };
    // Either name may carry the change; both given must agree.
    let current = existing.rate_limit.map(NonZeroU32::get);
    let (new, old) = (&input.throttle_rate, &input.rate_limit);
    let chosen = if new.is_given() && old.is_given() && new != old {
        return Err(ApiError::invalid_field(
            "throttleRate",
            "`throttleRate` and its old name `rateLimit` are both given and differ; give one",
        ));
    } else if new.is_given() {
        new.applied(current)
    } else {
        old.applied(current)
    };
    spec.rate_limit = rate(chosen)?;
    let updated = state
        .webhooks
        .registry
        .update_application(existing.id.as_str(), spec)
        .await?;
    Ok(reply(StatusCode::OK, &ApplicationOut::from(&updated)))
}

async fn delete_app(State(state): Shared, Path(app): Path<String>) -> ApiResult<StatusCode> {
    let application = application(&state, &app).await?;
    state
        .webhooks
        .registry
        .delete_application(application.id.as_str())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
