//! The Svix REST API's JSON bodies (camelCase), in and out, and the conversions from the
//! webhooks crate's records.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use switchyard_webhooks::{
    Attempt, AttemptStatus, Endpoint, EventType, EventTypeFilter, Message, redact_userinfo,
};

use super::ApiResult;
use crate::error::ApiError;
use switchyard_webhooks::Application;

/// Svix's timestamps: RFC 3339, UTC, with microseconds.
pub(crate) fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// `POST /api/v1/app`.
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
    /// The rate limit under either name; 422 when both are given and differ.
    pub(crate) fn throttle_rate(&self) -> ApiResult<Option<u32>> {
        one_of(
            self.throttle_rate,
            "throttleRate",
            self.rate_limit,
            "rateLimit",
        )
    }
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
            throttle_rate: app.rate_limit.map(std::num::NonZeroU32::get),
            rate_limit: app.rate_limit.map(std::num::NonZeroU32::get),
            created_at: time(&app.created_at),
            updated_at: time(&app.updated_at),
        }
    }
}

/// A field Svix renamed: the value under the current name or the old one. Both given and
/// different is a 422 naming both, since one of them would be silently dropped.
pub(crate) fn one_of<T: PartialEq>(
    current: Option<T>,
    current_name: &str,
    old: Option<T>,
    old_name: &str,
) -> ApiResult<Option<T>> {
    match (current, old) {
        (Some(current), Some(old)) if current != old => Err(ApiError::invalid_field(
            current_name,
            format!(
                "`{current_name}` and its old name `{old_name}` are both given and differ; give one"
            ),
        )),
        (Some(value), _) | (None, Some(value)) => Ok(Some(value)),
        (None, None) => Ok(None),
    }
}

/// `POST /api/v1/event-type`. `deprecated`, `featureFlag` and `groupName` are accepted and
/// ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EventTypeIn {
    pub name: String,
    pub description: String,
    #[serde(default)]
    pub schemas: Option<Map<String, Value>>,
    #[serde(default)]
    pub archived: Option<bool>,
}

/// `PUT /api/v1/event-type/{name}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EventTypeUpdate {
    pub description: String,
    #[serde(default)]
    pub schemas: Option<Map<String, Value>>,
    #[serde(default)]
    pub archived: Option<bool>,
}

/// An event type, as Svix answers it. The registry keeps one schema per event type; Svix
/// keys schemas by version, so it is version `"1"` (what `swh-webhooks` writes and reads).
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

/// The schema version the registry's one schema is published as.
pub(crate) const SCHEMA_VERSION: &str = "1";

/// `POST /api/v1/app/{app}/endpoint`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EndpointIn {
    pub url: String,
    #[serde(default)]
    pub uid: Option<String>,
    #[serde(default)]
    pub version: Option<i64>,
    #[serde(default)]
    pub description: Option<String>,
    /// The current name (`svix` 2.x); `filterTypes` is what older clients send.
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    #[serde(default)]
    pub filter_types: Option<Vec<String>>,
    #[serde(default)]
    pub channels: Option<Vec<String>>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub disabled: Option<bool>,
    /// The current name (`svix` 2.x); `rateLimit` is what older clients send.
    #[serde(default)]
    pub throttle_rate: Option<u32>,
    #[serde(default)]
    pub rate_limit: Option<u32>,
}

impl EndpointIn {
    /// The event types under either name (compared as sets); 422 when both are given and
    /// differ, or when the list is empty (Svix: omit it to receive every type).
    pub(crate) fn event_types(&mut self) -> ApiResult<Option<Vec<String>>> {
        let as_set = |list: Option<Vec<String>>| {
            list.map(|names| names.into_iter().collect::<std::collections::BTreeSet<_>>())
        };
        let merged = one_of(
            as_set(self.event_types.take()),
            "eventTypes",
            as_set(self.filter_types.take()),
            "filterTypes",
        )?;
        match merged {
            Some(names) if names.is_empty() => Err(ApiError::invalid_field(
                "eventTypes",
                "must not be empty; leave it out to receive every event type",
            )),
            other => Ok(other.map(|names| names.into_iter().collect())),
        }
    }

    /// The rate limit under either name; 422 when both are given and differ.
    pub(crate) fn throttle_rate(&self) -> ApiResult<Option<u32>> {
        one_of(
            self.throttle_rate,
            "throttleRate",
            self.rate_limit,
            "rateLimit",
        )
    }
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
        let event_types: Option<Vec<String>> = match &endpoint.event_types {
            EventTypeFilter::All => None,
            EventTypeFilter::Only(names) => Some(names.iter().map(ToString::to_string).collect()),
        };
        let rate = endpoint.rate_limit.map(std::num::NonZeroU32::get);
        Self {
            id: endpoint.id.to_string(),
            uid: endpoint.uid.as_ref().map(ToString::to_string),
            url: redact_userinfo(&endpoint.url).into_owned(),
            version: 1,
            description: endpoint.description.clone(),
            filter_types: event_types.clone(),
            event_types,
            channels: (!endpoint.channels.is_empty())
                .then(|| endpoint.channels.iter().map(ToString::to_string).collect()),
            metadata: endpoint.metadata.clone(),
            disabled: endpoint.disabled,
            throttle_rate: rate,
            rate_limit: rate,
            created_at: time(&endpoint.created_at),
            updated_at: time(&endpoint.updated_at),
        }
    }
}

/// `POST .../secret/rotate`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SecretRotateIn {
    #[serde(default)]
    pub key: Option<String>,
}

/// `PUT .../headers`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HeadersIn {
    pub headers: BTreeMap<String, String>,
}

/// `POST /api/v1/app/{app}/msg`. The payload stays raw so its bytes are stored and
/// delivered exactly as the client wrote them. Svix's other fields (`tags`,
/// `payloadRetentionPeriod`, `application`, …) are accepted and ignored: retention is the
/// server's setting.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MessageIn<'a> {
    pub event_type: String,
    #[serde(borrow)]
    pub payload: &'a RawValue,
    #[serde(default)]
    pub channels: Option<Vec<String>>,
    #[serde(default)]
    pub event_id: Option<String>,
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
            channels: message.channel.as_ref().map(|c| vec![c.to_string()]),
            payload,
            timestamp: time(&message.created_at),
        }
    }
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

/// Svix's list envelope.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListResponse<T> {
    pub data: Vec<T>,
    pub iterator: Option<String>,
    pub prev_iterator: Option<String>,
    pub done: bool,
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
