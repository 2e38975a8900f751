//! Delivery attempts: `/api/v1/app/{app_id}/attempt/endpoint/{endpoint_id}` and
//! `/api/v1/app/{app_id}/attempt/msg/{msg_id}`, newest first, with Svix's filters; one
//! attempt (`msg/{msg_id}/attempt/{attempt_id}`) and its response body's expunging; and
//! the messages attempted to an endpoint (`endpoint/{endpoint_id}/msg`), each once.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{delete, get};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use switchyard_webhooks::store::AttemptFilter;
use switchyard_webhooks::{
    AppScope, Attempt, AttemptStatus, DeliveryStatus, Error as WebhooksError, Order,
    redact_userinfo,
};

use super::messages::MessageOut;
use super::request::{
    ListResponse, Pagination, SvixQuery, channel_param, event_type_param, flag, list, list_error,
    reply, status_code_class_param, status_param, time, time_param,
};
use super::store::ServerStore;
use super::{ApiResult, Shared, SvixState, scope};

/// The attempt routes.
pub(super) fn routes() -> Router<Arc<SvixState>> {
    Router::new()
        .route(
            "/api/v1/app/{app}/attempt/endpoint/{endpoint}",
            get(attempts_by_endpoint),
        )
        .route(
            "/api/v1/app/{app}/attempt/msg/{msg}",
            get(attempts_by_message),
        )
        .route(
            "/api/v1/app/{app}/msg/{msg}/attempt/{attempt}",
            get(get_attempt),
        )
        .route(
            "/api/v1/app/{app}/endpoint/{endpoint}/msg",
            get(attempted_messages),
        )
        .route(
            "/api/v1/app/{app}/msg/{msg}/attempt/{attempt}/content",
            delete(expunge_response),
        )
}

/// A delivery attempt, as Svix answers it (`status` and `triggerType` are numbers).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MessageAttemptOut {
    pub id: String,
    pub msg_id: String,
    pub endpoint_id: String,
    pub url: String,
    pub response: String,
    pub response_status_code: u16,
    pub response_duration_ms: u64,
    pub status: i64,
    /// Required since the API's 1.76 clients: `success`, `pending`, `fail` or `sending`.
    pub status_text: &'static str,
    pub trigger_type: i64,
    pub timestamp: String,
}

impl From<&Attempt> for MessageAttemptOut {
    fn from(attempt: &Attempt) -> Self {
        Self {
            id: attempt.id.to_string(),
            msg_id: attempt.message_id.to_string(),
            endpoint_id: attempt.endpoint_id.to_string(),
            url: redact_userinfo(&attempt.url).into_owned(),
            response: attempt.response.clone(),
            response_status_code: attempt.response_status,
            response_duration_ms: u64::try_from(attempt.duration.as_millis()).unwrap_or(u64::MAX),
            status: attempt.status.code(),
            status_text: status_text(attempt.status),
            trigger_type: attempt.trigger.code(),
            timestamp: time(&attempt.timestamp),
        }
    }
}

/// Svix's `MessageStatusText` for a status (the names of its `MessageStatus` codes).
pub(crate) fn status_text(status: AttemptStatus) -> &'static str {
    match status {
        AttemptStatus::Success => "success",
        AttemptStatus::Pending => "pending",
        AttemptStatus::Failed => "fail",
        AttemptStatus::Sending => "sending",
    }
}

/// The attempt lists' query.
#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    #[serde(flatten)]
    page: Pagination,
    status: Option<String>,
    status_code_class: Option<String>,
    channel: Option<String>,
    event_types: Option<String>,
    before: Option<String>,
    after: Option<String>,
    /// Only on the by-message list: one endpoint's attempts.
    endpoint_id: Option<String>,
}

impl ListQuery {
    /// The filters every attempt list shares.
    fn filter(&self) -> ApiResult<AttemptFilter> {
        Ok(AttemptFilter {
            event_types: event_type_param(self.event_types.as_deref())?,
            channel: channel_param(self.channel.as_deref())?,
            status: status_param(self.status.as_deref())?,
            response_status: status_code_class_param(self.status_code_class.as_deref())?,
            before: time_param(self.before.as_deref(), "before")?,
            after: time_param(self.after.as_deref(), "after")?,
            ..AttemptFilter::default()
        })
    }
}

async fn attempts_by_endpoint(
    State(state): Shared,
    Path((app, endpoint)): Path<(String, String)>,
    SvixQuery(query): SvixQuery<ListQuery>,
) -> ApiResult<Response> {
    let app = scope(&state, &app).await?;
    let endpoint = app.endpoint(&endpoint).await?;
    let filter = AttemptFilter {
        endpoint: Some(endpoint.id),
        ..query.filter()?
    };
    attempts(&app, &filter, &query.page).await
}

async fn attempts_by_message(
    State(state): Shared,
    Path((app, msg)): Path<(String, String)>,
    SvixQuery(query): SvixQuery<ListQuery>,
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
        ..query.filter()?
    };
    attempts(&app, &filter, &query.page).await
}

async fn attempts(
    app: &AppScope<'_, ServerStore>,
    filter: &AttemptFilter,
    page: &Pagination,
) -> ApiResult<Response> {
    let options = page.options(Order::Descending)?;
    let page = app
        .list_attempts(filter, &options)
        .await
        .map_err(list_error)?;
    Ok(reply(
        StatusCode::OK,
        &list(page, |a| MessageAttemptOut::from(a)),
    ))
}

async fn get_attempt(
    State(state): Shared,
    Path((app, msg, attempt)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let app = scope(&state, &app).await?;
    let attempt = app.attempt(&msg, &attempt).await.map_err(not_found)?;
    Ok(reply(StatusCode::OK, &MessageAttemptOut::from(&attempt)))
}

/// Empties the response body the attempt recorded: 204.
async fn expunge_response(
    State(state): Shared,
    Path((app, msg, attempt)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let app = scope(&state, &app).await?;
    app.expunge_response(&msg, &attempt)
        .await
        .map_err(not_found)?;
    Ok(StatusCode::NO_CONTENT)
}

/// An id that does not parse names nothing: 404, as for an id of nothing.
fn not_found(error: WebhooksError) -> crate::error::ApiError {
    match error {
        WebhooksError::InvalidId { kind, value } => {
            crate::error::ApiError::not_found(format!("{kind} `{value}` does not exist"))
        }
        other => other.into(),
    }
}

/// Svix's `EndpointMessageOut`: a message, with the status of its last attempt to the
/// endpoint and, while its delivery is pending, when the next one is due.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct EndpointMessageOut {
    #[serde(flatten)]
    message: MessageOut,
    status: i64,
    status_text: &'static str,
    next_attempt: Option<String>,
}

/// `GET …/endpoint/{id}/msg`'s query: the attempt filters, and `with_content`.
#[derive(Debug, Default, Deserialize)]
struct AttemptedQuery {
    #[serde(flatten)]
    list: ListQuery,
    with_content: Option<String>,
}

/// At most this many attempts are read for one page, however few distinct messages they
/// hold (a page may then be short, with `done: false` and an iterator to go on from).
const SCAN_PER_PAGE: usize = 2_500;

/// The messages attempted to the endpoint, most recently attempted first, each once (at
/// its last attempt). The iterator continues after the last attempt read.
async fn attempted_messages(
    State(state): Shared,
    Path((app, endpoint)): Path<(String, String)>,
    SvixQuery(query): SvixQuery<AttemptedQuery>,
) -> ApiResult<Response> {
    let app = scope(&state, &app).await?;
    let endpoint = app.endpoint(&endpoint).await?;
    let with_content = flag(query.with_content.as_deref(), "with_content", true)?;
    let wanted = query.list.page.options(Order::Descending)?;
    let limit = wanted.limit.unwrap_or(switchyard_webhooks::DEFAULT_LIMIT);
    let filter = AttemptFilter {
        endpoint: Some(endpoint.id.clone()),
        ..query.list.filter()?
    };
    let mut seen = std::collections::HashSet::new();
    let mut data = Vec::new();
    let mut cursor = wanted.iterator.clone();
    let mut read = 0;
    let mut done = false;
    while data.len() < limit && read < SCAN_PER_PAGE {
        let mut options = switchyard_webhooks::ListOptions::new()
            .order(Order::Descending)
            .limit(switchyard_webhooks::MAX_LIMIT);
        if let Some(cursor) = &cursor {
            options = options.iterator(cursor.clone());
        }
        let page = app
            .list_attempts(&filter, &options)
            .await
            .map_err(list_error)?;
        let mut whole_page = true;
        for (i, attempt) in page.items.iter().enumerate() {
            read += 1;
            cursor = Some(switchyard_webhooks::ListOptions::iterator_after(
                attempt.id.as_str(),
            ));
            if let Some(out) = listed(&app, &endpoint.id, attempt, &mut seen, with_content).await? {
                data.push(out);
            }
            if data.len() == limit || read >= SCAN_PER_PAGE {
                whole_page = i + 1 == page.items.len();
                break;
            }
        }
        if page.done && whole_page {
            done = true;
            break;
        }
    }
    Ok(reply(
        StatusCode::OK,
        &ListResponse {
            data,
            iterator: if done { None } else { cursor },
            prev_iterator: None,
            done,
        },
    ))
}

/// The entry of `attempt`'s message, when this attempt is its last to the endpoint and it is
/// not listed yet (`seen`); `None` otherwise (or when the message is gone).
async fn listed(
    app: &AppScope<'_, ServerStore>,
    endpoint: &switchyard_webhooks::EndpointId,
    attempt: &Attempt,
    seen: &mut std::collections::HashSet<switchyard_webhooks::MessageId>,
    with_content: bool,
) -> ApiResult<Option<EndpointMessageOut>> {
    if !seen.insert(attempt.message_id.clone()) {
        return Ok(None);
    }
    // Listed once, at its last attempt: an attempt of a later page is skipped if the message
    // has a later one (it was listed with that).
    let last = app
        .list_attempts(
            &AttemptFilter {
                message: Some(attempt.message_id.clone()),
                endpoint: Some(endpoint.clone()),
                ..AttemptFilter::default()
            },
            &switchyard_webhooks::ListOptions::new()
                .order(Order::Descending)
                .limit(1),
        )
        .await?;
    if last.items.first().map(|a| &a.id) != Some(&attempt.id) {
        return Ok(None);
    }
    let Ok(message) = app.message(attempt.message_id.as_str()).await else {
        return Ok(None);
    };
    let next_attempt = app
        .deliveries(&message.id)
        .await?
        .into_iter()
        .find(|d| d.endpoint_id == *endpoint)
        .filter(|d| d.status == DeliveryStatus::Pending)
        .map(|d| time(&d.next_attempt_at));
    Ok(Some(EndpointMessageOut {
        message: MessageOut::new(&message, with_content),
        status: attempt.status.code(),
        status_text: status_text(attempt.status),
        next_attempt,
    }))
}
