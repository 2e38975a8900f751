//! Endpoints of an application: `/api/v1/app/{app_id}/endpoint…` (create, list, get,
//! update or create, patch, delete; the signing secret and its rotation; custom headers;
//! recovering failed messages; stats; sending an example). An endpoint path takes the `ep_…`
//! id or the uid.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use switchyard_webhooks::store::EndpointFilter;
use switchyard_webhooks::{
    AppScope, Endpoint, EndpointSpec, Error as WebhooksError, EventTypeFilter, EventTypeName,
    Order, Secret, redact_userinfo,
};

use super::operational::EndpointChange;
use super::request::{
    Pagination, SvixQuery, check_uid, json_body, list, list_error, one_of, optional_json_body,
    reply, string_map, time, time_param,
};
use super::store::ServerStore;
use super::{ApiResult, Shared, SvixState, patch, scope};
use crate::error::ApiError;

/// The endpoint routes.
pub(super) fn routes() -> Router<Arc<SvixState>> {
    Router::new()
        .route(
            "/api/v1/app/{app}/endpoint",
            post(create_endpoint).get(list_endpoints),
        )
        .route(
            "/api/v1/app/{app}/endpoint/{endpoint}",
            get(get_endpoint)
                .put(update_endpoint)
                .patch(patch_endpoint)
                .delete(delete_endpoint),
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
            get(get_headers).put(put_headers).patch(patch_headers),
        )
        .route(
            "/api/v1/app/{app}/endpoint/{endpoint}/recover",
            post(recover),
        )
        .route(
            "/api/v1/app/{app}/endpoint/{endpoint}/send-example",
            post(send_example),
        )
        .route("/api/v1/app/{app}/endpoint/{endpoint}/stats", get(stats))
}

/// `POST /api/v1/app/{app}/endpoint` and (without `headers` and `secret`, which it leaves
/// alone) `PUT …/endpoint/{endpoint}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EndpointIn {
    url: String,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    version: Option<i64>,
    #[serde(default)]
    description: Option<String>,
    /// The current name (`svix` 2.x); `filterTypes` is what older clients send.
    #[serde(default)]
    event_types: Option<Vec<String>>,
    #[serde(default)]
    filter_types: Option<Vec<String>>,
    #[serde(default)]
    channels: Option<Vec<String>>,
    #[serde(default)]
    metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    disabled: Option<bool>,
    /// The current name (`svix` 2.x); `rateLimit` is what older clients send.
    #[serde(default)]
    throttle_rate: Option<u32>,
    #[serde(default)]
    rate_limit: Option<u32>,
}

/// `PATCH …/endpoint/{endpoint}`: what is given changes; `null` clears a nullable field.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EndpointPatch {
    #[serde(default)]
    url: Option<String>,
    #[serde(default, deserialize_with = "patch::field")]
    uid: patch::Field<String>,
    #[serde(default)]
    version: Option<i64>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default, deserialize_with = "patch::field")]
    event_types: patch::Field<Vec<String>>,
    #[serde(default, deserialize_with = "patch::field")]
    filter_types: patch::Field<Vec<String>>,
    #[serde(default, deserialize_with = "patch::field")]
    channels: patch::Field<Vec<String>>,
    #[serde(default)]
    metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    disabled: Option<bool>,
    #[serde(default, deserialize_with = "patch::field")]
    throttle_rate: patch::Field<u32>,
    #[serde(default, deserialize_with = "patch::field")]
    rate_limit: patch::Field<u32>,
    #[serde(default, deserialize_with = "patch::field")]
    secret: patch::Field<String>,
}

/// An endpoint, as Svix answers it: the renamed fields under both names (`eventTypes` and
/// `throttleRate` for `svix` 2.x, `filterTypes` and `rateLimit` for 1.x), and `version`,
/// which 1.x requires.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EndpointOut {
    pub id: String,
    pub uid: Option<String>,
    pub url: String,
    pub version: i64,
    pub description: String,
    pub event_types: Option<Vec<String>>,
    pub filter_types: Option<Vec<String>>,
    pub channels: Option<Vec<String>>,
    pub metadata: Map<String, Value>,
    pub disabled: bool,
    pub throttle_rate: Option<u32>,
    pub rate_limit: Option<u32>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Endpoint> for EndpointOut {
    fn from(endpoint: &Endpoint) -> Self {
        let event_types = event_type_names(endpoint);
        let rate = endpoint.rate_limit.map(NonZeroU32::get);
        Self {
            id: endpoint.id.to_string(),
            uid: endpoint.uid.as_ref().map(ToString::to_string),
            url: redact_userinfo(&endpoint.url).into_owned(),
            version: 1,
            description: endpoint.description.clone(),
            filter_types: event_types.clone(),
            event_types,
            channels: channel_names(endpoint),
            metadata: endpoint.metadata.clone(),
            disabled: endpoint.disabled,
            throttle_rate: rate,
            rate_limit: rate,
            created_at: time(&endpoint.created_at),
            updated_at: time(&endpoint.updated_at),
        }
    }
}

/// The endpoint's event types; `None` when it receives all of them.
pub(crate) fn event_type_names(endpoint: &Endpoint) -> Option<Vec<String>> {
    match &endpoint.event_types {
        EventTypeFilter::All => None,
        EventTypeFilter::Only(names) => Some(names.iter().map(ToString::to_string).collect()),
    }
}

/// The endpoint's channels; `None` when it listens to none in particular.
pub(crate) fn channel_names(endpoint: &Endpoint) -> Option<Vec<String>> {
    (!endpoint.channels.is_empty())
        .then(|| endpoint.channels.iter().map(ToString::to_string).collect())
}

/// `POST …/secret/rotate`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecretRotateIn {
    #[serde(default)]
    key: Option<String>,
}

/// `PUT …/headers`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HeadersIn {
    headers: BTreeMap<String, String>,
}

/// `PATCH …/headers`: each header given is set, each given as `null` removed.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HeadersPatchIn {
    headers: BTreeMap<String, Option<String>>,
}

/// `POST …/recover`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RecoverIn {
    since: DateTime<Utc>,
    #[serde(default)]
    until: Option<DateTime<Utc>>,
}

/// The settings every endpoint body may carry, checked: what [`EndpointSpec`] is built from.
#[derive(Debug, Default)]
struct Settings {
    url: String,
    uid: Option<String>,
    version: Option<i64>,
    description: Option<String>,
    event_types: Option<Vec<String>>,
    channels: Option<Vec<String>>,
    metadata: Map<String, Value>,
    headers: BTreeMap<String, String>,
    secret: Option<String>,
    disabled: bool,
    rate: Option<u32>,
}

impl EndpointIn {
    fn settings(mut self) -> ApiResult<Settings> {
        let event_types = merged_event_types(self.event_types.take(), self.filter_types.take())?;
        let rate = one_of(
            self.throttle_rate,
            "throttleRate",
            self.rate_limit,
            "rateLimit",
        )?;
        Ok(Settings {
            url: self.url,
            uid: self.uid,
            version: self.version,
            description: self.description,
            event_types,
            channels: self.channels,
            metadata: string_map(self.metadata),
            headers: self.headers.unwrap_or_default(),
            secret: self.secret,
            disabled: self.disabled.unwrap_or(false),
            rate,
        })
    }
}

/// The event types under either name (compared as sets); 422 when both are given and
/// differ, or when the list is empty (Svix: omit it to receive every type).
fn merged_event_types(
    current: Option<Vec<String>>,
    old: Option<Vec<String>>,
) -> ApiResult<Option<Vec<String>>> {
    let as_set = |list: Option<Vec<String>>| {
        list.map(|names| names.into_iter().collect::<std::collections::BTreeSet<_>>())
    };
    let merged = one_of(as_set(current), "eventTypes", as_set(old), "filterTypes")?;
    match merged {
        Some(names) if names.is_empty() => Err(ApiError::invalid_field(
            "eventTypes",
            "must not be empty; leave it out to receive every event type",
        )),
        other => Ok(other.map(|names| names.into_iter().collect())),
    }
}

impl Settings {
    /// The spec of these settings, the URL checked against the SSRF guard.
    fn spec(self, state: &SvixState) -> ApiResult<EndpointSpec> {
        if let Err(refused) = state.addresses.check_url(&self.url) {
            return Err(ApiError::invalid_field(
                "url",
                format!(
                    "deliveries to a {} address are refused (SSRF guard); the server's \
                     `allow_subnets` can permit its subnet",
                    refused.range
                ),
            ));
        }
        if self.version.is_some_and(|v| v < 1) {
            return Err(ApiError::invalid_field("version", "must be at least 1"));
        }
        let mut spec = EndpointSpec::new(self.url);
        for name in self.event_types.unwrap_or_default() {
            spec = spec.event_type(
                EventTypeName::new(name.as_str())
                    .map_err(|e| ApiError::invalid_field("eventTypes", e.to_string()))?,
            );
        }
        for channel in self.channels.unwrap_or_default() {
            spec = spec
                .channel(&channel)
                .map_err(|e| ApiError::invalid_field("channels", e.to_string()))?;
        }
        if let Some(uid) = &self.uid {
            check_uid(uid)?;
            spec = spec.uid(uid)?;
        }
        spec.metadata = self.metadata;
        for (name, value) in self.headers {
            spec = spec.header(name, value);
        }
        if let Some(secret) = self.secret {
            let secret: Secret = secret.parse().map_err(|e: switchyard_webhooks::KeyError| {
                ApiError::invalid_field("secret", e.to_string())
            })?;
            spec = spec.secret(secret);
        }
        if let Some(description) = self.description {
            spec = spec.description(description);
        }
        spec = spec.disabled(self.disabled);
        if let Some(rate) = self.rate {
            let rate = NonZeroU32::new(rate)
                .ok_or_else(|| ApiError::invalid_field("throttleRate", "must be at least 1"))?;
            spec = spec.rate_limit(rate);
        }
        Ok(spec)
    }
}

/// An unknown event type in an endpoint body is the body's fault (422), not a missing route.
fn event_types_error(error: WebhooksError) -> ApiError {
    match error {
        WebhooksError::EventTypeNotFound { .. } => {
            ApiError::invalid_field("eventTypes", error.to_string())
        }
        other => other.into(),
    }
}

async fn create_endpoint(
    State(state): Shared,
    Path(app): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    let app = scope(&state, &app).await?;
    let input: EndpointIn = json_body(body, state.body_limit).await?;
    let spec = input.settings()?.spec(&state)?;
    // One writer per application, so two creations with one uid cannot both succeed.
    let _writes = state.webhooks.writes.lock().await;
    if let Some(uid) = &spec.uid
        && app.endpoint(uid.as_str()).await.is_ok()
    {
        return Err(ApiError::conflict(format!(
            "an endpoint with uid `{uid}` already exists"
        )));
    }
    let endpoint = app.create_endpoint(spec).await.map_err(event_types_error)?;
    announce(&state, EndpointChange::Created, &endpoint).await;
    Ok(reply(StatusCode::CREATED, &EndpointOut::from(&endpoint)))
}

async fn list_endpoints(
    State(state): Shared,
    Path(app): Path<String>,
    SvixQuery(page): SvixQuery<Pagination>,
) -> ApiResult<Response> {
    let app = scope(&state, &app).await?;
    let options = page.options(Order::Descending)?;
    let page = app
        .list_endpoints(&EndpointFilter::default(), &options)
        .await
        .map_err(list_error)?;
    Ok(reply(StatusCode::OK, &list(page, |e| EndpointOut::from(e))))
}

async fn get_endpoint(
    State(state): Shared,
    Path((app, endpoint)): Path<(String, String)>,
) -> ApiResult<Response> {
    let app = scope(&state, &app).await?;
    let endpoint = app.endpoint(&endpoint).await?;
    Ok(reply(StatusCode::OK, &EndpointOut::from(&endpoint)))
}

/// Replaces the endpoint's settings (its custom headers and secret stay), or creates it
/// (201) when the path names none, as Svix does.
async fn update_endpoint(
    State(state): Shared,
    Path((app, endpoint)): Path<(String, String)>,
    body: Body,
) -> ApiResult<Response> {
    let app = scope(&state, &app).await?;
    let mut input: EndpointIn = json_body(body, state.body_limit).await?;
    let _writes = state.webhooks.writes.lock().await;
    match app.endpoint(&endpoint).await {
        Ok(existing) => {
            // Svix's `EndpointUpdate` has neither: they keep their own routes.
            input.headers = Some(existing.headers.clone());
            input.secret = None;
            let mut spec = input.settings()?.spec(&state)?;
            // Not a Svix setting: an endpoint made ordered through the library stays so.
            spec.ordered = existing.ordered;
            let updated = app
                .update_endpoint(existing.id.as_str(), spec)
                .await
                .map_err(event_types_error)?;
            announce(&state, EndpointChange::Updated, &updated).await;
            Ok(reply(StatusCode::OK, &EndpointOut::from(&updated)))
        }
        Err(WebhooksError::EndpointNotFound { .. }) => {
            let spec = input.settings()?.spec(&state)?;
            if let Some(uid) = &spec.uid
                && app.endpoint(uid.as_str()).await.is_ok()
            {
                return Err(ApiError::conflict(format!(
                    "an endpoint with uid `{uid}` already exists"
                )));
            }
            let created = app.create_endpoint(spec).await.map_err(event_types_error)?;
            announce(&state, EndpointChange::Created, &created).await;
            Ok(reply(StatusCode::CREATED, &EndpointOut::from(&created)))
        }
        Err(error) => Err(error.into()),
    }
}

async fn patch_endpoint(
    State(state): Shared,
    Path((app, endpoint)): Path<(String, String)>,
    body: Body,
) -> ApiResult<Response> {
    let app = scope(&state, &app).await?;
    let input: EndpointPatch = json_body(body, state.body_limit).await?;
    let _writes = state.webhooks.writes.lock().await;
    let existing = app.endpoint(&endpoint).await?;
    let current_types = event_type_names(&existing);
    let event_types = match (input.event_types, input.filter_types) {
        (patch::Field::Absent, patch::Field::Absent) => current_types,
        (new, patch::Field::Absent) | (patch::Field::Absent, new) => {
            merged_event_types(new.apply(None), None)?
        }
        (new, old) => merged_event_types(new.apply(None), old.apply(None))?,
    };
    let current_rate = existing.rate_limit.map(NonZeroU32::get);
    let (new_rate, old_rate) = (&input.throttle_rate, &input.rate_limit);
    let rate = if new_rate.is_given() && old_rate.is_given() && new_rate != old_rate {
        return Err(ApiError::invalid_field(
            "throttleRate",
            "`throttleRate` and its old name `rateLimit` are both given and differ; give one",
        ));
    } else if new_rate.is_given() {
        new_rate.applied(current_rate)
    } else {
        old_rate.applied(current_rate)
    };
    let metadata = match input.metadata {
        Some(given) => string_map(Some(given)),
        None => existing.metadata.clone(),
    };
    let settings = Settings {
        url: input.url.unwrap_or_else(|| existing.url.clone()),
        uid: input
            .uid
            .apply(existing.uid.as_ref().map(ToString::to_string)),
        version: input.version,
        description: Some(
            input
                .description
                .unwrap_or_else(|| existing.description.clone()),
        ),
        event_types,
        channels: input.channels.apply(channel_names(&existing)),
        metadata,
        headers: existing.headers.clone(),
        // `null` or absent: the secret stays (a secret is never cleared).
        secret: match input.secret {
            patch::Field::Value(secret) => Some(secret),
            patch::Field::Absent | patch::Field::Null => None,
        },
        disabled: input.disabled.unwrap_or(existing.disabled),
        rate,
    };
    let mut spec = settings.spec(&state)?;
    spec.ordered = existing.ordered;
    let updated = app
        .update_endpoint(existing.id.as_str(), spec)
        .await
        .map_err(event_types_error)?;
    announce(&state, EndpointChange::Updated, &updated).await;
    Ok(reply(StatusCode::OK, &EndpointOut::from(&updated)))
}

async fn delete_endpoint(
    State(state): Shared,
    Path((app, endpoint)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let app = scope(&state, &app).await?;
    let _writes = state.webhooks.writes.lock().await;
    let existing = app.endpoint(&endpoint).await?;
    app.delete_endpoint(existing.id.as_str()).await?;
    announce(&state, EndpointChange::Deleted, &existing).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_secret(
    State(state): Shared,
    Path((app, endpoint)): Path<(String, String)>,
) -> ApiResult<Response> {
    let app = scope(&state, &app).await?;
    secret_out(&app, &endpoint).await
}

/// Rotates the signing secret and answers 200 with the new one. Svix's document says 204;
/// `svix` 2.x parses the answer as `EndpointSecretOut`, and 1.x clients take any 2xx.
async fn rotate_secret(
    State(state): Shared,
    Path((app, endpoint)): Path<(String, String)>,
    body: Body,
) -> ApiResult<Response> {
    let app = scope(&state, &app).await?;
    let input: SecretRotateIn = optional_json_body(body, state.body_limit).await?;
    let key = input
        .key
        .map(|k| {
            k.parse::<Secret>()
                .map_err(|e| ApiError::invalid_field("key", e.to_string()))
        })
        .transpose()?;
    app.rotate_secret(&endpoint, key).await?;
    if state.webhooks.operational.is_some() {
        let rotated = app.endpoint(&endpoint).await?;
        announce(&state, EndpointChange::Updated, &rotated).await;
    }
    secret_out(&app, &endpoint).await
}

/// Tells operational webhooks (when they are on) about a change made to `endpoint`.
async fn announce(state: &SvixState, change: EndpointChange, endpoint: &Endpoint) {
    if let Some(operational) = &state.webhooks.operational {
        operational.endpoint_changed(change, endpoint).await;
    }
}

/// `EndpointSecretOut`: the endpoint's current signing secret.
async fn secret_out(app: &AppScope<'_, ServerStore>, endpoint: &str) -> ApiResult<Response> {
    let secret = app.endpoint_secret(endpoint).await?;
    Ok(reply(
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
    Ok(reply(
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

async fn patch_headers(
    State(state): Shared,
    Path((app, endpoint)): Path<(String, String)>,
    body: Body,
) -> ApiResult<StatusCode> {
    let app = scope(&state, &app).await?;
    let input: HeadersPatchIn = json_body(body, state.body_limit).await?;
    let _writes = state.webhooks.writes.lock().await;
    let mut headers = app.endpoint(&endpoint).await?.headers;
    for (name, value) in input.headers {
        // Header names are case-insensitive: a patch replaces whatever case is stored.
        headers.retain(|stored, _| !stored.eq_ignore_ascii_case(&name));
        if let Some(value) = value {
            headers.insert(name, value);
        }
    }
    app.update_endpoint_headers(&endpoint, headers).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Svix's `RecoverOut`. The recovery's deliveries are queued before the answer; Svix's
/// document knows one task status, `running`, meaning they are on their way.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RecoverOut {
    id: String,
    status: &'static str,
    task: &'static str,
    updated_at: String,
}

/// The most days one recovery reaches back from its `until` (Svix's limit; five minutes
/// more are allowed, so `now - 14 days` computed on a client with a skewed clock passes).
const RECOVER_WINDOW_DAYS: i64 = 14;

fn recover_window() -> chrono::TimeDelta {
    chrono::TimeDelta::days(RECOVER_WINDOW_DAYS) + chrono::TimeDelta::minutes(5)
}

async fn recover(
    State(state): Shared,
    Path((app, endpoint)): Path<(String, String)>,
    body: Body,
) -> ApiResult<Response> {
    let app = scope(&state, &app).await?;
    let input: RecoverIn = json_body(body, state.body_limit).await?;
    let until = input.until.unwrap_or_else(Utc::now);
    if input.since < until - recover_window() {
        return Err(ApiError::invalid_field(
            "since",
            format!(
                "cannot recover more than {} days of messages",
                RECOVER_WINDOW_DAYS
            ),
        ));
    }
    let queued = app
        .recover_between(&endpoint, input.since, input.until)
        .await?;
    tracing::info!(endpoint = %endpoint, queued, "endpoint recovered");
    let mut id = [0u8; 12];
    getrandom::fill(&mut id).map_err(|e| ApiError::internal(&e))?;
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    Ok(reply(
        StatusCode::ACCEPTED,
        &RecoverOut {
            id: format!("qtask_{id}"),
            status: "running",
            task: "endpoint.recover",
            updated_at: time(&Utc::now()),
        },
    ))
}

/// `POST …/send-example`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventExampleIn {
    event_type: String,
}

/// The event type Svix answers with `{"success": true}` without looking for a schema.
pub(crate) const PING_EVENT_TYPE: &str = "svix.ping";

/// The payload "send example" sends for `event_type`: `{"success": true}` for Svix's
/// `svix.ping`, else the first of the registered schema's `examples` (an object); `Err` says
/// why there is none.
pub(crate) fn example_payload(
    event_type: &EventTypeName,
    registered: Option<&switchyard_webhooks::EventType>,
) -> Result<String, String> {
    if event_type.as_str() == PING_EVENT_TYPE {
        return Ok(r#"{"success": true}"#.to_owned());
    }
    match registered
        .and_then(|r| r.schema.get("examples"))
        .and_then(|e| e.get(0))
    {
        Some(example) if example.is_object() => Ok(example.to_string()),
        _ => Err(format!(
            "the schema of `{event_type}` has no example object (`examples`) to send"
        )),
    }
}

/// Sends the endpoint, and only it, a message of the event type whose payload is the first
/// of its schema's `examples` (`svix.ping`: `{"success": true}`); 200 `MessageOut`.
async fn send_example(
    State(state): Shared,
    Path((app, endpoint)): Path<(String, String)>,
    body: Body,
) -> ApiResult<Response> {
    let app = scope(&state, &app).await?;
    let input: EventExampleIn = json_body(body, state.body_limit).await?;
    let event_type = EventTypeName::new(input.event_type.as_str())
        .map_err(|e| ApiError::invalid_field("eventType", e.to_string()))?;
    app.endpoint(&endpoint).await?;
    let registered = match event_type.as_str() {
        PING_EVENT_TYPE => None,
        _ => match state.webhooks.event_type(&event_type).await? {
            Some(registered) => Some(registered),
            None => {
                return Err(ApiError::not_found(format!(
                    "event type `{event_type}` does not exist"
                )));
            }
        },
    };
    let payload = example_payload(&event_type, registered.as_ref())
        .map_err(|problem| ApiError::invalid_field("eventType", problem))?;
    let message = app
        .create_message_to(
            switchyard_webhooks::NewMessage::new(&event_type, payload.as_bytes()),
            &endpoint,
        )
        .await?;
    Ok(reply(
        StatusCode::OK,
        &super::messages::MessageOut::new(&message, true),
    ))
}

/// `GET …/stats`'s query: the window, by default the 28 days before now.
#[derive(Debug, Default, Deserialize)]
struct StatsQuery {
    since: Option<String>,
    until: Option<String>,
}

/// The widest window `stats` counts over (Svix's: 28 days, and five minutes of slack so
/// that "now minus 28 days" computed a little earlier passes).
const STATS_WINDOW: chrono::TimeDelta = chrono::TimeDelta::days(28);
const STATS_SLACK: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// Svix's `EndpointStats`: the endpoint's attempts in the window, by how they ended.
#[derive(Debug, Serialize)]
struct EndpointStats {
    success: u64,
    pending: u64,
    sending: u64,
    fail: u64,
    canceled: u64,
}

async fn stats(
    State(state): Shared,
    Path((app, endpoint)): Path<(String, String)>,
    SvixQuery(query): SvixQuery<StatsQuery>,
) -> ApiResult<Response> {
    let app = scope(&state, &app).await?;
    let now = Utc::now();
    let until = time_param(query.until.as_deref(), "until")?.unwrap_or(now);
    if until > now {
        return Err(ApiError::invalid_query(
            "until",
            "must not be in the future",
        ));
    }
    let since = time_param(query.since.as_deref(), "since")?.unwrap_or(until - STATS_WINDOW);
    if until - since > STATS_WINDOW + STATS_SLACK {
        return Err(ApiError::invalid_query(
            "since",
            "must be at most 28 days before `until`",
        ));
    }
    let counts = app.attempt_counts(&endpoint, since, until).await?;
    Ok(reply(
        StatusCode::OK,
        &EndpointStats {
            success: counts.success,
            pending: counts.pending,
            sending: counts.sending,
            fail: counts.failed,
            canceled: 0,
        },
    ))
}
