//! Messages of an application: `/api/v1/app/{app_id}/msg…` (create, list, get, expunge the
//! payload), where each went (`msg/{msg_id}/endpoint`) and sending one again to an endpoint
//! (`resend`).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{delete, get, post};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use switchyard_webhooks::store::MessageFilter;
use switchyard_webhooks::{
    AttemptStatus, DeliveryStatus, Error as WebhooksError, EventTypeName, Message, NewMessage,
    Order, redact_userinfo,
};

use super::endpoints::{channel_names, event_type_names};
use super::request::{
    ListResponse, Pagination, SvixQuery, channel_param, event_type_param, flag, list, list_error,
    parse_body, read_body, reply, time, time_param,
};
use super::{ApiResult, Shared, SvixState, scope};
use crate::error::ApiError;

/// The message routes.
pub(super) fn routes() -> Router<Arc<SvixState>> {
    Router::new()
        .route(
            "/api/v1/app/{app}/msg",
            post(create_message).get(list_messages),
        )
        .route("/api/v1/app/{app}/msg/{msg}", get(get_message))
        .route(
            "/api/v1/app/{app}/msg/{msg}/content",
            delete(expunge_content),
        )
        .route("/api/v1/app/{app}/msg/{msg}/endpoint", get(destinations))
        .route(
            "/api/v1/app/{app}/msg/{msg}/endpoint/{endpoint}/resend",
            post(resend),
        )
}

/// `POST /api/v1/app/{app}/msg`. The payload stays raw so its bytes are stored and
/// delivered exactly as the client wrote them. Svix's other fields (`tags`,
/// `payloadRetentionPeriod`, `application`, …) are accepted and ignored: retention is the
/// server's setting.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageIn<'a> {
    event_type: String,
    #[serde(borrow)]
    payload: &'a RawValue,
    #[serde(default)]
    channels: Option<Vec<String>>,
    #[serde(default)]
    event_id: Option<String>,
}

/// A message, as Svix answers it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MessageOut {
    pub id: String,
    pub event_type: String,
    pub event_id: Option<String>,
    pub channels: Option<Vec<String>>,
    pub payload: Box<RawValue>,
    pub timestamp: String,
}

impl MessageOut {
    pub(crate) fn new(message: &Message, with_content: bool) -> Self {
        // An expired payload (past retention) lists as `{}`, as Svix does.
        let payload = if with_content && !message.expired {
            RawValue::from_string(message.payload.clone()).ok()
        } else {
            None
        };
        let payload =
            payload.unwrap_or_else(|| RawValue::from_string("{}".to_owned()).unwrap_or_default());
        Self {
            id: message.id.to_string(),
            event_type: message.event_type.to_string(),
            event_id: message.event_id.clone(),
            channels: (!message.channels.is_empty())
                .then(|| message.channels.iter().map(ToString::to_string).collect()),
            payload,
            timestamp: time(&message.created_at),
        }
    }
}

/// `?with_content=`, on creating and getting a message.
#[derive(Debug, Default, Deserialize)]
struct ContentQuery {
    with_content: Option<String>,
}

impl ContentQuery {
    fn with_content(&self) -> ApiResult<bool> {
        flag(self.with_content.as_deref(), "with_content", true)
    }
}

/// `GET /api/v1/app/{app}/msg`'s query.
#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    #[serde(flatten)]
    page: Pagination,
    #[serde(flatten)]
    content: ContentQuery,
    before: Option<String>,
    after: Option<String>,
    channel: Option<String>,
    event_types: Option<String>,
}

async fn create_message(
    State(state): Shared,
    Path(app): Path<String>,
    SvixQuery(query): SvixQuery<ContentQuery>,
    body: Body,
) -> ApiResult<Response> {
    let app = scope(&state, &app).await?;
    let bytes = read_body(body, state.body_limit).await?;
    let input: MessageIn<'_> = parse_body(&bytes)?;
    let with_content = query.with_content()?;
    let event_type = EventTypeName::new(input.event_type.as_str())
        .map_err(|e| ApiError::invalid_field("eventType", e.to_string()))?;
    if !input.payload.get().trim_start().starts_with('{') {
        return Err(ApiError::invalid_field("payload", "must be a JSON object"));
    }
    let channels = input.channels.unwrap_or_default();
    let mut new = NewMessage::new(&event_type, input.payload.get().as_bytes());
    new.channels = channels.iter().map(String::as_str).collect();
    new.event_id = input.event_id.as_deref();
    let message = app.create_message_with(new).await.map_err(|e| match e {
        WebhooksError::EventTypeNotFound { .. } => {
            ApiError::invalid_field("eventType", e.to_string())
        }
        WebhooksError::InvalidEventId { .. } => ApiError::invalid_field("eventId", e.to_string()),
        WebhooksError::TooManyChannels { .. } | WebhooksError::InvalidChannel { .. } => {
            ApiError::invalid_field("channels", e.to_string())
        }
        other => other.into(),
    })?;
    Ok(reply(
        StatusCode::ACCEPTED,
        &MessageOut::new(&message, with_content),
    ))
}

async fn list_messages(
    State(state): Shared,
    Path(app): Path<String>,
    SvixQuery(query): SvixQuery<ListQuery>,
) -> ApiResult<Response> {
    let app = scope(&state, &app).await?;
    let options = query.page.options(Order::Descending)?;
    let with_content = query.content.with_content()?;
    let before = time_param(query.before.as_deref(), "before")?;
    let after = time_param(query.after.as_deref(), "after")?;
    let filter = MessageFilter {
        event_types: event_type_param(query.event_types.as_deref())?,
        channel: channel_param(query.channel.as_deref())?,
        before,
        after,
    };
    let page = app
        .list_messages(&filter, &options)
        .await
        .map_err(list_error)?;
    Ok(reply(
        StatusCode::OK,
        &list(page, |m| MessageOut::new(m, with_content)),
    ))
}

async fn get_message(
    State(state): Shared,
    Path((app, msg)): Path<(String, String)>,
    SvixQuery(query): SvixQuery<ContentQuery>,
) -> ApiResult<Response> {
    let app = scope(&state, &app).await?;
    let with_content = query.with_content()?;
    let message = app.message(&msg).await?;
    Ok(reply(
        StatusCode::OK,
        &MessageOut::new(&message, with_content),
    ))
}

/// One destination of a message, as Svix answers it (`MessageEndpointOut`): the endpoint
/// and where the message stands with it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageEndpointOut {
    id: String,
    uid: Option<String>,
    url: String,
    /// Required by the 1.x clients, as on endpoints.
    version: i64,
    description: String,
    event_types: Option<Vec<String>>,
    /// `eventTypes` under its 1.x name.
    filter_types: Option<Vec<String>>,
    channels: Option<Vec<String>>,
    disabled: bool,
    throttle_rate: Option<u32>,
    /// `throttleRate` under its 1.x name.
    rate_limit: Option<u32>,
    status: i64,
    status_text: &'static str,
    next_attempt: Option<String>,
    created_at: String,
    updated_at: String,
}

/// The endpoints a message was sent to (its deliveries), in endpoint-id order; `limit` and
/// `iterator` page through them (the iterator is the last endpoint id of the page, the
/// `prevIterator` the first one's after a `-`).
async fn destinations(
    State(state): Shared,
    Path((app, msg)): Path<(String, String)>,
    SvixQuery(page): SvixQuery<Pagination>,
) -> ApiResult<Response> {
    let app = scope(&state, &app).await?;
    let options = page.options(Order::Ascending)?;
    let message = app.message(&msg).await?;
    let mut deliveries = app.deliveries(&message.id).await?;
    deliveries.sort_by(|a, b| a.endpoint_id.as_str().cmp(b.endpoint_id.as_str()));
    let limit = options.limit.unwrap_or(switchyard_webhooks::DEFAULT_LIMIT);
    // `iterator`: after that endpoint id; a `prevIterator` (`-` and an id): before it.
    let (page, done) = match options.iterator.as_deref() {
        Some(before) if before.starts_with('-') => {
            let before = &before[1..];
            let end = deliveries.partition_point(|d| d.endpoint_id.as_str() < before);
            let start = end.saturating_sub(limit);
            (&deliveries[start..end], start == 0)
        }
        after => {
            let start = after.map_or(0, |after| {
                deliveries.partition_point(|d| d.endpoint_id.as_str() <= after)
            });
            let page = &deliveries[start..deliveries.len().min(start + limit)];
            (page, start + page.len() >= deliveries.len())
        }
    };
    let last = page.last().map(|d| d.endpoint_id.to_string());
    let first = page.first().map(|d| format!("-{}", d.endpoint_id));
    let now = chrono::Utc::now();
    let mut data = Vec::with_capacity(page.len());
    for delivery in page {
        // An endpoint deleted since has no settings to show.
        let Ok(endpoint) = app.endpoint(delivery.endpoint_id.as_str()).await else {
            continue;
        };
        let status = match delivery.status {
            DeliveryStatus::Succeeded => AttemptStatus::Success,
            DeliveryStatus::Exhausted => AttemptStatus::Failed,
            DeliveryStatus::Pending if delivery.leased_until.is_some_and(|until| until > now) => {
                AttemptStatus::Sending
            }
            _ => AttemptStatus::Pending,
        };
        data.push(MessageEndpointOut {
            id: endpoint.id.to_string(),
            uid: endpoint.uid.as_ref().map(ToString::to_string),
            url: redact_userinfo(&endpoint.url).into_owned(),
            version: 1,
            description: endpoint.description.clone(),
            event_types: event_type_names(&endpoint),
            filter_types: event_type_names(&endpoint),
            channels: channel_names(&endpoint),
            disabled: endpoint.disabled,
            throttle_rate: endpoint.rate_limit.map(std::num::NonZeroU32::get),
            rate_limit: endpoint.rate_limit.map(std::num::NonZeroU32::get),
            status: status.code(),
            status_text: super::attempts::status_text(status),
            next_attempt: (delivery.status == DeliveryStatus::Pending)
                .then(|| time(&delivery.next_attempt_at)),
            created_at: time(&endpoint.created_at),
            updated_at: time(&endpoint.updated_at),
        });
    }
    Ok(reply(
        StatusCode::OK,
        &ListResponse {
            data,
            iterator: last,
            prev_iterator: first,
            done,
        },
    ))
}

/// Sends the message to the endpoint again now: 202 with an empty object, as Svix.
async fn resend(
    State(state): Shared,
    Path((app, msg, endpoint)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let app = scope(&state, &app).await?;
    app.resend(&msg, &endpoint).await?;
    Ok(reply(StatusCode::ACCEPTED, &serde_json::json!({})))
}

/// Deletes the message's payload: 204. It still lists, with `{}` as its payload; deliveries
/// not yet made are dropped.
async fn expunge_content(
    State(state): Shared,
    Path((app, msg)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let app = scope(&state, &app).await?;
    app.expunge_payload(&msg).await?;
    Ok(StatusCode::NO_CONTENT)
}
