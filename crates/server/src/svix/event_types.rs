//! Event types: `/api/v1/event-type` and `/api/v1/event-type/{event_type_name}` (create,
//! list, get, update or create, patch, archive). The registry keeps one schema per event
//! type; Svix keys schemas by version, so it is published as version `"1"` (what
//! `swh-webhooks` writes and reads).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use switchyard_webhooks::{EventType, EventTypeName, Order};

use super::request::{Pagination, SvixQuery, flag, json_body, list, list_error, reply, time};
use super::webhooks::PutMode;
use super::{ApiResult, Shared, SvixState, patch};
use crate::error::ApiError;

/// The schema version the registry's one schema is published as.
pub(crate) const SCHEMA_VERSION: &str = "1";

/// The event type routes.
pub(super) fn routes() -> Router<Arc<SvixState>> {
    Router::new()
        .route(
            "/api/v1/event-type",
            post(create_event_type).get(list_event_types),
        )
        .route(
            "/api/v1/event-type/{name}",
            get(get_event_type)
                .put(update_event_type)
                .patch(patch_event_type)
                .delete(delete_event_type),
        )
}

/// `POST /api/v1/event-type`. `deprecated`, `featureFlag` and `groupName` are accepted and
/// ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventTypeIn {
    name: String,
    description: String,
    #[serde(default)]
    schemas: Option<Map<String, Value>>,
    #[serde(default)]
    archived: Option<bool>,
}

/// `PUT /api/v1/event-type/{name}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventTypeUpdate {
    description: String,
    #[serde(default)]
    schemas: Option<Map<String, Value>>,
    #[serde(default)]
    archived: Option<bool>,
}

/// `PATCH /api/v1/event-type/{name}`: what is given changes; `"schemas": null` removes the
/// schema (any payload is accepted then).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventTypePatch {
    #[serde(default)]
    description: Option<String>,
    #[serde(default, deserialize_with = "patch::field")]
    schemas: patch::Field<Map<String, Value>>,
    #[serde(default)]
    archived: Option<bool>,
}

/// An event type, as Svix answers it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EventTypeOut {
    pub name: String,
    pub description: String,
    pub archived: bool,
    pub deprecated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schemas: Option<Value>,
    pub feature_flag: Option<String>,
    pub group_name: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl EventTypeOut {
    pub(crate) fn new(event_type: &EventType, with_content: bool) -> Self {
        let schemas =
            with_content.then(|| serde_json::json!({ SCHEMA_VERSION: event_type.schema }));
        Self {
            name: event_type.name.to_string(),
            description: event_type.description.clone(),
            archived: event_type.archived,
            deprecated: false,
            schemas,
            feature_flag: None,
            group_name: None,
            created_at: time(&event_type.created_at),
            updated_at: time(&event_type.updated_at),
        }
    }
}

/// `GET /api/v1/event-type`'s query.
#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    #[serde(flatten)]
    page: Pagination,
    with_content: Option<String>,
    include_archived: Option<String>,
}

fn event_type_name(text: &str) -> ApiResult<EventTypeName> {
    EventTypeName::new(text).map_err(|e| ApiError::invalid_field("name", e.to_string()))
}

/// The name in a path: one that cannot be an event type's is not found.
fn path_name(name: &str) -> ApiResult<EventTypeName> {
    EventTypeName::new(name)
        .map_err(|_| ApiError::not_found(format!("event type `{name}` does not exist")))
}

/// The registry keeps one schema: version `"1"`, or the only one given.
fn one_schema(schemas: Option<Map<String, Value>>) -> ApiResult<Value> {
    let Some(mut schemas) = schemas else {
        return Ok(Value::Object(Map::new()));
    };
    let only_one =
        || ApiError::invalid_field("schemas", "only one schema version (\"1\") is supported");
    if let Some(schema) = schemas.remove(SCHEMA_VERSION) {
        return if schemas.is_empty() {
            Ok(schema)
        } else {
            Err(only_one())
        };
    }
    match schemas.len() {
        0 => Ok(Value::Object(Map::new())),
        _ => Err(only_one()),
    }
}

async fn create_event_type(State(state): Shared, body: Body) -> ApiResult<Response> {
    let input: EventTypeIn = json_body(body, state.body_limit).await?;
    let name = event_type_name(&input.name)?;
    let schema = one_schema(input.schemas)?;
    let (saved, _) = state
        .webhooks
        .put_event_type(
            name,
            input.description,
            schema,
            input.archived.unwrap_or(false),
            PutMode::Create,
        )
        .await?;
    Ok(reply(StatusCode::CREATED, &EventTypeOut::new(&saved, true)))
}

async fn list_event_types(
    State(state): Shared,
    SvixQuery(query): SvixQuery<ListQuery>,
) -> ApiResult<Response> {
    let options = query.page.options(Order::Ascending)?;
    let with_content = flag(query.with_content.as_deref(), "with_content", false)?;
    let include_archived = flag(query.include_archived.as_deref(), "include_archived", false)?;
    let page = state
        .webhooks
        .registry
        .list_event_types_with(&options, include_archived)
        .await
        .map_err(list_error)?;
    Ok(reply(
        StatusCode::OK,
        &list(page, |t| EventTypeOut::new(t, with_content)),
    ))
}

async fn get_event_type(State(state): Shared, Path(name): Path<String>) -> ApiResult<Response> {
    let name = path_name(&name)?;
    match state.webhooks.event_type(&name).await? {
        Some(event_type) => Ok(reply(StatusCode::OK, &EventTypeOut::new(&event_type, true))),
        None => Err(ApiError::not_found(format!(
            "event type `{name}` does not exist"
        ))),
    }
}

/// Replaces the event type, or creates it (201) when there is none, as Svix does.
async fn update_event_type(
    State(state): Shared,
    Path(name): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    let input: EventTypeUpdate = json_body(body, state.body_limit).await?;
    let name = event_type_name(&name)?;
    let schema = one_schema(input.schemas)?;
    let (saved, created) = state
        .webhooks
        .put_event_type(
            name,
            input.description,
            schema,
            input.archived.unwrap_or(false),
            PutMode::Upsert,
        )
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(reply(status, &EventTypeOut::new(&saved, true)))
}

async fn patch_event_type(
    State(state): Shared,
    Path(name): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    let input: EventTypePatch = json_body(body, state.body_limit).await?;
    let name = path_name(&name)?;
    let Some(existing) = state.webhooks.event_type(&name).await? else {
        return Err(ApiError::not_found(format!(
            "event type `{name}` does not exist"
        )));
    };
    let schema = match input.schemas {
        patch::Field::Absent => existing.schema,
        patch::Field::Null => Value::Object(Map::new()),
        patch::Field::Value(schemas) => one_schema(Some(schemas))?,
    };
    let (saved, _) = state
        .webhooks
        .put_event_type(
            name,
            input.description.unwrap_or(existing.description),
            schema,
            input.archived.unwrap_or(existing.archived),
            PutMode::Update,
        )
        .await?;
    Ok(reply(StatusCode::OK, &EventTypeOut::new(&saved, true)))
}

/// `DELETE`'s query: `expunge=true` asks for the event type to be deleted, not archived.
#[derive(Debug, Default, Deserialize)]
struct DeleteQuery {
    expunge: Option<String>,
}

async fn delete_event_type(
    State(state): Shared,
    Path(name): Path<String>,
    SvixQuery(query): SvixQuery<DeleteQuery>,
) -> ApiResult<StatusCode> {
    let name = path_name(&name)?;
    if flag(query.expunge.as_deref(), "expunge", false)? {
        return Err(ApiError::invalid_query(
            "expunge",
            "event types are archived, never deleted: messages and endpoints keep naming them",
        ));
    }
    state.webhooks.archive_event_type(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
