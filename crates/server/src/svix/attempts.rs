//! Delivery attempts: `/api/v1/app/{app_id}/attempt/endpoint/{endpoint_id}` and
//! `/api/v1/app/{app_id}/attempt/msg/{msg_id}`, newest first, with Svix's filters.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{delete, get};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use switchyard_webhooks::store::AttemptFilter;
use switchyard_webhooks::{
    AppScope, Attempt, AttemptStatus, Error as WebhooksError, Order, redact_userinfo,
};

use super::request::{
    Pagination, channel_param, event_type_param, list, list_error, reply, status_param, time,
    time_param,
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
            event_type: event_type_param(self.event_types.as_deref())?,
            channel: channel_param(self.channel.as_deref())?,
            status: status_param(self.status.as_deref())?,
            before: time_param(self.before.as_deref(), "before")?,
            after: time_param(self.after.as_deref(), "after")?,
            ..AttemptFilter::default()
        })
    }
}

async fn attempts_by_endpoint(
    State(state): Shared,
    Path((app, endpoint)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
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
        // Svix's by-message list has no event type filter: the message has one type.
        event_type: None,
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
