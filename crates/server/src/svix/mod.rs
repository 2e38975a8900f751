//! The Svix-compatible webhooks API: the subset of Svix's REST API that `swh-webhooks` and
//! the `svix` clients use, answered from the webhooks crate's registry.
//!
//! Field names are camelCase, creations answer 201 (messages 202), deletions and updates
//! without a body 204, errors `{"code", "detail"}`, lists `{data, iterator, prevIterator,
//! done}`. Endpoint paths take the `ep_…` id or the uid; application paths the `app_…` id
//! or the uid.

pub(crate) mod apps;
pub(crate) mod store;
mod wire;

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use http::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use switchyard_webhooks::delivery::AddressPolicy;
use switchyard_webhooks::store::{AttemptFilter, EndpointFilter, MessageFilter};
use switchyard_webhooks::{
    AppId, AppScope, Application, ApplicationSpec, AttemptStatus, EndpointSpec,
    Error as WebhooksError, EventTypeName, ListOptions, NewMessage, Order, Page, Secret,
};

use self::apps::Webhooks;
use self::store::ServerStore;
use self::wire::{
    ApplicationIn, ApplicationOut, EndpointIn, EndpointOut, EventTypeIn, EventTypeOut,
    EventTypeUpdate, HeadersIn, ListResponse, MessageAttemptOut, MessageIn, MessageOut,
    SCHEMA_VERSION, SecretRotateIn,
};
use crate::error::ApiError;

/// What the Svix routes share.
#[derive(Debug)]
pub(crate) struct SvixState {
    pub webhooks: Webhooks,
    pub body_limit: usize,
    /// The SSRF guard's policy: endpoints whose URL names a refused IP address are refused
    /// when created, not retried on every attempt.
    pub addresses: AddressPolicy,
}

type Shared = State<Arc<SvixState>>;
type ApiResult<T> = Result<T, ApiError>;

/// The routes, under `/api/v1`.
pub(crate) fn routes(state: Arc<SvixState>) -> Router {
    Router::new()
        .route("/api/v1/app", post(create_app).get(list_apps))
        .route("/api/v1/app/{app}", get(get_app).delete(delete_app))
        .route(
            "/api/v1/event-type",
            post(create_event_type).get(list_event_types),
        )
        .route(
            "/api/v1/event-type/{name}",
            get(get_event_type)
                .put(update_event_type)
                .delete(delete_event_type),
        )
        .route(
            "/api/v1/app/{app}/endpoint",
            post(create_endpoint).get(list_endpoints),
        )
        .route(
            "/api/v1/app/{app}/endpoint/{endpoint}",
            get(get_endpoint).delete(delete_endpoint),
        )
        .route(
            "/api/v1/app/{app}/endpoint/{endpoint}/secret",
            get(get_secret),
        )
        .route(
            "/api/v1/app/{app}/endpoint/{endpoint}/secret/rotate",
            post(rotate_secret),
        )
        .route(
            "/api/v1/app/{app}/endpoint/{endpoint}/headers",
            get(get_headers).put(put_headers),
        )
        .route(
            "/api/v1/app/{app}/msg",
            post(create_message).get(list_messages),
        )
        .route("/api/v1/app/{app}/msg/{msg}", get(get_message))
        .route(
            "/api/v1/app/{app}/attempt/endpoint/{endpoint}",
            get(attempts_by_endpoint),
        )
        .route(
            "/api/v1/app/{app}/attempt/msg/{msg}",
            get(attempts_by_message),
        )
        .with_state(state)
}

// ----- request plumbing -----

/// Reads the whole body, refusing more than `limit` bytes with a typed 413.
pub(crate) async fn read_body(body: Body, limit: usize) -> ApiResult<bytes::Bytes> {
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        let too_large = std::error::Error::source(&error)
            .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the request body is larger than the {limit}-byte limit"),
            )
        } else {
            ApiError::bad_request(format!("the request body could not be read: {error}"))
        }
    })
}

/// Parses a JSON body: 400 `invalid_json` for text that is not JSON, 422 for JSON of the
/// wrong shape, naming the field when serde does.
pub(crate) fn parse_json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> ApiResult<T> {
    serde_json::from_slice(bytes).map_err(|e| json_error(&e))
}

fn json_error(error: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the request body is not valid JSON: {error}"),
        ),
        Category::Data => {
            let message = error.to_string();
            // serde names the field in its message ("missing field `name`").
            match message.split('`').nth(1) {
                Some(field) if message.starts_with("missing field") => {
                    let mut api = ApiError::invalid_field(field, message.clone());
                    api.fields[0].kind = "missing";
                    api
                }
                _ => {
                    let mut api = ApiError::invalid_field("", message);
                    api.fields[0].loc.truncate(1);
                    api.fields[0].kind = "type_error";
                    api.detail = format!("invalid request body: {}", api.fields[0].msg);
                    api
                }
            }
        }
    }
}

async fn json_body<T: DeserializeOwned>(body: Body, limit: usize) -> ApiResult<T> {
    let bytes = read_body(body, limit).await?;
    if bytes.is_empty() {
        return Err(ApiError::bad_request("a JSON body is required"));
    }
    parse_json(&bytes)
}

/// The query parameters Svix's list routes take (every one optional, unknown ones ignored).
#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    limit: Option<String>,
    iterator: Option<String>,
    order: Option<String>,
    with_content: Option<String>,
    before: Option<String>,
    after: Option<String>,
    channel: Option<String>,
    event_types: Option<String>,
    status: Option<String>,
    endpoint_id: Option<String>,
    get_if_exists: Option<String>,
    include_archived: Option<String>,
}

impl ListQuery {
    fn options(&self, default_order: Order) -> ApiResult<ListOptions> {
        let mut options = ListOptions::new().order(default_order);
        if let Some(limit) = &self.limit {
            let limit: usize = limit
                .parse()
                .ok()
                .filter(|n| (1..=250).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid_query("limit", "must be an integer from 1 to 250")
                })?;
            options = options.limit(limit);
        }
        if let Some(iterator) = self.iterator.as_deref().filter(|i| !i.is_empty()) {
            options = options.iterator(iterator);
        }
        match self.order.as_deref() {
            None => {}
            Some("ascending") => options = options.order(Order::Ascending),
            Some("descending") => options = options.order(Order::Descending),
            Some(_) => {
                return Err(ApiError::invalid_query(
                    "order",
                    "must be `ascending` or `descending`",
                ));
            }
        }
        Ok(options)
    }

    fn flag(value: Option<&str>, name: &str, default: bool) -> ApiResult<bool> {
        match value {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(_) => Err(ApiError::invalid_query(name, "must be `true` or `false`")),
        }
    }

    fn with_content(&self) -> ApiResult<bool> {
        Self::flag(self.with_content.as_deref(), "with_content", true)
    }

    fn time(value: Option<&str>, name: &str) -> ApiResult<Option<DateTime<Utc>>> {
        value
            .map(|text| {
                DateTime::parse_from_rfc3339(text)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| {
                        ApiError::invalid_query(name, format!("not an RFC 3339 date-time: {e}"))
                    })
            })
            .transpose()
    }

    fn before(&self) -> ApiResult<Option<DateTime<Utc>>> {
        Self::time(self.before.as_deref(), "before")
    }

    fn after(&self) -> ApiResult<Option<DateTime<Utc>>> {
        Self::time(self.after.as_deref(), "after")
    }

    /// One event type at most (the registry filters by one).
    fn event_type(&self) -> ApiResult<Option<EventTypeName>> {
        let Some(text) = self.event_types.as_deref().filter(|t| !t.is_empty()) else {
            return Ok(None);
        };
        let names: Vec<&str> = text.split(',').filter(|n| !n.is_empty()).collect();
        match names.as_slice() {
            [] => Ok(None),
            [one] => EventTypeName::new(*one)
                .map(Some)
                .map_err(|e| ApiError::invalid_query("event_types", e.to_string())),
            _ => Err(ApiError::invalid_query(
                "event_types",
                "filtering by more than one event type is not supported; give one",
            )),
        }
    }

    fn channel(&self) -> ApiResult<Option<switchyard_webhooks::Channel>> {
        self.channel
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(|c| {
                switchyard_webhooks::Channel::new(c)
                    .map_err(|e| ApiError::invalid_query("channel", e.to_string()))
            })
            .transpose()
    }

    fn status(&self) -> ApiResult<Option<AttemptStatus>> {
        self.status
            .as_deref()
            .map(|s| {
                s.parse::<i64>()
                    .ok()
                    .and_then(AttemptStatus::from_code)
                    .ok_or_else(|| ApiError::invalid_query("status", "must be 0, 1, 2 or 3"))
            })
            .transpose()
    }
}

/// A list answer from a registry page.
fn list<T, O>(page: Page<T>, map: impl Fn(&T) -> O) -> ListResponse<O> {
    ListResponse {
        data: page.items.iter().map(map).collect(),
        iterator: page.iterator,
        prev_iterator: None,
        done: page.done,
    }
}

/// Registry errors on a list: a foreign iterator is the query's fault.
fn list_error(error: WebhooksError) -> ApiError {
    match error {
        WebhooksError::InvalidId { .. } => {
            ApiError::invalid_query("iterator", "not an iterator this server handed out")
        }
        other => other.into(),
    }
}

fn created<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    (status, axum::Json(value)).into_response()
}

fn string_map(map: Option<BTreeMap<String, String>>) -> Map<String, Value> {
    map.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect()
}

fn check_uid(uid: &str) -> ApiResult<()> {
    if switchyard_webhooks::is_uid(uid) {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            "uid",
            "must be 1 to 256 ASCII letters, digits, `-`, `_` or `.`, not only dots",
        ))
    }
}

// ----- applications -----

async fn create_app(
    State(state): Shared,
    Query(query): Query<ListQuery>,
    body: Body,
) -> ApiResult<Response> {
    let input: ApplicationIn = json_body(body, state.body_limit).await?;
    if input.name.trim().is_empty() {
        return Err(ApiError::invalid_field("name", "must not be empty"));
    }
    let get_if_exists = ListQuery::flag(query.get_if_exists.as_deref(), "get_if_exists", false)?;
    let rate_limit = input.throttle_rate()?;
    let mut spec = ApplicationSpec::new(input.name);
    if let Some(uid) = &input.uid {
        check_uid(uid)?;
        if uid.starts_with("app_") {
            return Err(ApiError::invalid_field(
                "uid",
                "a uid may not start with `app_`",
            ));
        }
        spec = spec.uid(uid)?;
    }
    for (key, value) in string_map(input.metadata) {
        spec = spec.metadata(key, value);
    }
    if let Some(rate) = rate_limit {
        let rate = NonZeroU32::new(rate)
            .ok_or_else(|| ApiError::invalid_field("throttleRate", "must be at least 1"))?;
        spec = spec.rate_limit(rate);
    }
    let registry = &state.webhooks.registry;
    let uid = spec.uid.clone();
    match registry.create_application(spec).await {
        Ok(application) => {
            tracing::info!(app = %application.id, "application created");
            Ok(created(
                StatusCode::CREATED,
                &ApplicationOut::from(&application),
            ))
        }
        Err(WebhooksError::ApplicationExists { .. }) if get_if_exists => {
            let uid = uid.map(|u| u.to_string()).unwrap_or_default();
            let existing = registry.application(&uid).await?;
            Ok(created(StatusCode::OK, &ApplicationOut::from(&existing)))
        }
        Err(error) => Err(error.into()),
    }
}

async fn list_apps(State(state): Shared, Query(query): Query<ListQuery>) -> ApiResult<Response> {
    let options = query.options(Order::Ascending)?;
    let mut page = state
        .webhooks
        .registry
        .list_applications(&options)
        .await
        .map_err(list_error)?;
    // The default application is the webhooks crate's, for single-tenant use: not the API's.
    page.items.retain(|a| a.id != AppId::default_app());
    Ok(created(
        StatusCode::OK,
        &list(page, |a| ApplicationOut::from(a)),
    ))
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

async fn get_app(State(state): Shared, Path(app): Path<String>) -> ApiResult<Response> {
    let application = application(&state, &app).await?;
    Ok(created(StatusCode::OK, &ApplicationOut::from(&application)))
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

// ----- event types -----

fn event_type_name(text: &str) -> ApiResult<EventTypeName> {
    EventTypeName::new(text).map_err(|e| ApiError::invalid_field("name", e.to_string()))
}

/// The registry keeps one schema: version `"1"`, or the only one given.
fn one_schema(schemas: Option<Map<String, Value>>) -> ApiResult<Value> {
    let Some(mut schemas) = schemas else {
        return Ok(Value::Object(Map::new()));
    };
    if let Some(schema) = schemas.remove(SCHEMA_VERSION) {
        if !schemas.is_empty() {
            return Err(ApiError::invalid_field(
                "schemas",
                "only one schema version (\"1\") is supported",
            ));
        }
        return Ok(schema);
    }
    match schemas.len() {
        0 => Ok(Value::Object(Map::new())),
        _ => Err(ApiError::invalid_field(
            "schemas",
            "only one schema version (\"1\") is supported",
        )),
    }
}

async fn create_event_type(State(state): Shared, body: Body) -> ApiResult<Response> {
    let input: EventTypeIn = json_body(body, state.body_limit).await?;
    let name = event_type_name(&input.name)?;
    let schema = one_schema(input.schemas)?;
    let saved = state
        .webhooks
        .put_event_type(
            name,
            input.description,
            schema,
            input.archived.unwrap_or(false),
            true,
        )
        .await?;
    Ok(created(
        StatusCode::CREATED,
        &EventTypeOut::new(&saved, true),
    ))
}

async fn list_event_types(
    State(state): Shared,
    Query(query): Query<ListQuery>,
) -> ApiResult<Response> {
    let options = query.options(Order::Ascending)?;
    let with_content = ListQuery::flag(query.with_content.as_deref(), "with_content", false)?;
    if ListQuery::flag(query.include_archived.as_deref(), "include_archived", false)? {
        return Err(ApiError::invalid_query(
            "include_archived",
            "listing archived event types is not supported",
        ));
    }
    let page = state
        .webhooks
        .registry
        .list_event_types(&options)
        .await
        .map_err(list_error)?;
    Ok(created(
        StatusCode::OK,
        &list(page, |t| EventTypeOut::new(t, with_content)),
    ))
}

async fn get_event_type(State(state): Shared, Path(name): Path<String>) -> ApiResult<Response> {
    let name = EventTypeName::new(name.as_str())
        .map_err(|_| ApiError::not_found(format!("event type `{name}` does not exist")))?;
    match state.webhooks.event_type(&name).await? {
        Some(event_type) => Ok(created(
            StatusCode::OK,
            &EventTypeOut::new(&event_type, true),
        )),
        None => Err(ApiError::not_found(format!(
            "event type `{name}` does not exist"
        ))),
    }
}

async fn update_event_type(
    State(state): Shared,
    Path(name): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    let input: EventTypeUpdate = json_body(body, state.body_limit).await?;
    let name = EventTypeName::new(name.as_str())
        .map_err(|_| ApiError::not_found(format!("event type `{name}` does not exist")))?;
    let schema = one_schema(input.schemas)?;
    let saved = state
        .webhooks
        .put_event_type(
            name,
            input.description,
            schema,
            input.archived.unwrap_or(false),
            false,
        )
        .await?;
    Ok(created(StatusCode::OK, &EventTypeOut::new(&saved, true)))
}

async fn delete_event_type(
    State(state): Shared,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let name = EventTypeName::new(name.as_str())
        .map_err(|_| ApiError::not_found(format!("event type `{name}` does not exist")))?;
    state.webhooks.archive_event_type(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----- endpoints -----

async fn create_endpoint(
    State(state): Shared,
    Path(app): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    let app = scope(&state, &app).await?;
    let mut input: EndpointIn = json_body(body, state.body_limit).await?;
    if let Err(refused) = state.addresses.check_url(&input.url) {
        return Err(ApiError::invalid_field(
            "url",
            format!(
                "deliveries to a {} address are refused (SSRF guard); the server's \
                 `allow_subnets` can permit its subnet",
                refused.range
            ),
        ));
    }
    let event_types = input.event_types()?;
    let rate_limit = input.throttle_rate()?;
    let mut spec = EndpointSpec::new(input.url);
    for name in event_types.unwrap_or_default() {
        spec = spec.event_type(
            EventTypeName::new(name.as_str())
                .map_err(|e| ApiError::invalid_field("eventTypes", e.to_string()))?,
        );
    }
    for channel in input.channels.unwrap_or_default() {
        spec = spec
            .channel(&channel)
            .map_err(|e| ApiError::invalid_field("channels", e.to_string()))?;
    }
    if let Some(uid) = &input.uid {
        check_uid(uid)?;
        spec = spec.uid(uid)?;
    }
    for (key, value) in string_map(input.metadata) {
        spec = spec.metadata(key, value);
    }
    for (name, value) in input.headers.unwrap_or_default() {
        spec = spec.header(name, value);
    }
    if let Some(secret) = input.secret {
        let secret: Secret = secret.parse().map_err(|e: switchyard_webhooks::KeyError| {
            ApiError::invalid_field("secret", e.to_string())
        })?;
        spec = spec.secret(secret);
    }
    if let Some(description) = input.description {
        spec = spec.description(description);
    }
    spec = spec.disabled(input.disabled.unwrap_or(false));
    if let Some(rate) = rate_limit {
        let rate = NonZeroU32::new(rate)
            .ok_or_else(|| ApiError::invalid_field("throttleRate", "must be at least 1"))?;
        spec = spec.rate_limit(rate);
    }
    if input.version.is_some_and(|v| v < 1) {
        return Err(ApiError::invalid_field("version", "must be at least 1"));
    }
    // One writer per application, so two creations with one uid cannot both succeed.
    let _writes = state.webhooks.writes.lock().await;
    if let Some(uid) = &spec.uid
        && app.endpoint(uid.as_str()).await.is_ok()
    {
        return Err(ApiError::conflict(format!(
            "an endpoint with uid `{uid}` already exists"
        )));
    }
    let endpoint = app.create_endpoint(spec).await.map_err(|e| match e {
        WebhooksError::EventTypeNotFound { .. } => {
            ApiError::invalid_field("eventTypes", e.to_string())
        }
        other => other.into(),
    })?;
    Ok(created(StatusCode::CREATED, &EndpointOut::from(&endpoint)))
}

async fn list_endpoints(
    State(state): Shared,
    Path(app): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Response> {
    let app = scope(&state, &app).await?;
    let options = query.options(Order::Descending)?;
    let page = app
        .list_endpoints(&EndpointFilter::default(), &options)
        .await
        .map_err(list_error)?;
    Ok(created(
        StatusCode::OK,
        &list(page, |e| EndpointOut::from(e)),
    ))
}

async fn get_endpoint(
    State(state): Shared,
    Path((app, endpoint)): Path<(String, String)>,
) -> ApiResult<Response> {
    let app = scope(&state, &app).await?;
    let endpoint = app.endpoint(&endpoint).await?;
    Ok(created(StatusCode::OK, &EndpointOut::from(&endpoint)))
}

async fn delete_endpoint(
    State(state): Shared,
    Path((app, endpoint)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let app = scope(&state, &app).await?;
    let _writes = state.webhooks.writes.lock().await;
    app.delete_endpoint(&endpoint).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_secret(
    State(state): Shared,
    Path((app, endpoint)): Path<(String, String)>,
) -> ApiResult<Response> {
    let app = scope(&state, &app).await?;
    let secret = app.endpoint_secret(&endpoint).await?;
    Ok(created(
        StatusCode::OK,
        &serde_json::json!({"key": secret.expose()}),
    ))
}

/// Rotates the signing secret and answers 200 with the new one. Svix's document says 204;
/// `svix` 2.x parses the answer as `EndpointSecretOut`, and 1.x clients take any 2xx.
async fn rotate_secret(
    State(state): Shared,
    Path((app, endpoint)): Path<(String, String)>,
    body: Body,
) -> ApiResult<Response> {
    let app = scope(&state, &app).await?;
    let bytes = read_body(body, state.body_limit).await?;
    let input: SecretRotateIn = if bytes.is_empty() {
        SecretRotateIn::default()
    } else {
        parse_json(&bytes)?
    };
    let key = input
        .key
        .map(|k| {
            k.parse::<Secret>()
                .map_err(|e| ApiError::invalid_field("key", e.to_string()))
        })
        .transpose()?;
    app.rotate_secret(&endpoint, key).await?;
    let secret = app.endpoint_secret(&endpoint).await?;
    Ok(created(
        StatusCode::OK,
        &serde_json::json!({"key": secret.expose()}),
    ))
}

async fn get_headers(
    State(state): Shared,
    Path((app, endpoint)): Path<(String, String)>,
) -> ApiResult<Response> {
    let app = scope(&state, &app).await?;
    let endpoint = app.endpoint(&endpoint).await?;
    Ok(created(
        StatusCode::OK,
        &serde_json::json!({"headers": endpoint.headers, "sensitive": []}),
    ))
}

async fn put_headers(
    State(state): Shared,
    Path((app, endpoint)): Path<(String, String)>,
    body: Body,
) -> ApiResult<StatusCode> {
    let app = scope(&state, &app).await?;
    let input: HeadersIn = json_body(body, state.body_limit).await?;
    let _writes = state.webhooks.writes.lock().await;
    app.update_endpoint_headers(&endpoint, input.headers)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----- messages -----

async fn create_message(
    State(state): Shared,
    Path(app): Path<String>,
    Query(query): Query<ListQuery>,
    body: Body,
) -> ApiResult<Response> {
    let app = scope(&state, &app).await?;
    let bytes = read_body(body, state.body_limit).await?;
    if bytes.is_empty() {
        return Err(ApiError::bad_request("a JSON body is required"));
    }
    let input: MessageIn<'_> = parse_json(&bytes)?;
    let with_content = query.with_content()?;
    let event_type = EventTypeName::new(input.event_type.as_str())
        .map_err(|e| ApiError::invalid_field("eventType", e.to_string()))?;
    if !input.payload.get().trim_start().starts_with('{') {
        return Err(ApiError::invalid_field("payload", "must be a JSON object"));
    }
    let channels = input.channels.unwrap_or_default();
    if channels.len() > 1 {
        return Err(ApiError::invalid_field(
            "channels",
            "at most one channel per message is supported",
        ));
    }
    let mut new = NewMessage::new(&event_type, input.payload.get().as_bytes());
    new.channel = channels.first().map(String::as_str);
    new.event_id = input.event_id.as_deref();
    let message = app.create_message_with(new).await.map_err(|e| match e {
        WebhooksError::EventTypeNotFound { .. } => {
            ApiError::invalid_field("eventType", e.to_string())
        }
        WebhooksError::InvalidEventId { .. } => ApiError::invalid_field("eventId", e.to_string()),
        other => other.into(),
    })?;
    Ok(created(
        StatusCode::ACCEPTED,
        &MessageOut::new(&message, with_content),
    ))
}

async fn list_messages(
    State(state): Shared,
    Path(app): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Response> {
    let app = scope(&state, &app).await?;
    let options = query.options(Order::Descending)?;
    let with_content = query.with_content()?;
    let (before, after) = (query.before()?, query.after()?);
    let filter = MessageFilter {
        event_type: query.event_type()?,
        channel: query.channel()?,
    };
    let mut page = app
        .list_messages(&filter, &options)
        .await
        .map_err(list_error)?;
    // The store filters messages by type and channel; the time window is applied here, so a
    // page can hold fewer than `limit` messages while `done` is still false.
    page.items.retain(|m| {
        before.is_none_or(|b| m.created_at < b) && after.is_none_or(|a| m.created_at > a)
    });
    Ok(created(
        StatusCode::OK,
        &list(page, |m| MessageOut::new(m, with_content)),
    ))
}

async fn get_message(
    State(state): Shared,
    Path((app, msg)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Response> {
    let app = scope(&state, &app).await?;
    let with_content = query.with_content()?;
    let message = app.message(&msg).await?;
    Ok(created(
        StatusCode::OK,
        &MessageOut::new(&message, with_content),
    ))
}

// ----- attempts -----

async fn attempts_by_endpoint(
    State(state): Shared,
    Path((app, endpoint)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Response> {
    let app = scope(&state, &app).await?;
    let endpoint = app.endpoint(&endpoint).await?;
    let filter = AttemptFilter {
        endpoint: Some(endpoint.id),
        event_type: query.event_type()?,
        channel: query.channel()?,
        status: query.status()?,
        before: query.before()?,
        after: query.after()?,
        ..AttemptFilter::default()
    };
    attempts(&app, &filter, &query).await
}

async fn attempts_by_message(
    State(state): Shared,
    Path((app, msg)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Response> {
    let app = scope(&state, &app).await?;
    let message = app.message(&msg).await?;
    let endpoint = match query.endpoint_id.as_deref().filter(|e| !e.is_empty()) {
        Some(endpoint) => Some(app.endpoint(endpoint).await?.id),
        None => None,
    };
    let filter = AttemptFilter {
        message: Some(message.id),
        endpoint,
        channel: query.channel()?,
        status: query.status()?,
        before: query.before()?,
        after: query.after()?,
        ..AttemptFilter::default()
    };
    attempts(&app, &filter, &query).await
}

async fn attempts(
    app: &AppScope<'_, ServerStore>,
    filter: &AttemptFilter,
    query: &ListQuery,
) -> ApiResult<Response> {
    let options = query.options(Order::Descending)?;
    let page = app
        .list_attempts(filter, &options)
        .await
        .map_err(list_error)?;
    Ok(created(
        StatusCode::OK,
        &list(page, |a| MessageAttemptOut::from(a)),
    ))
}
