//! The Svix REST API's JSON bodies (camelCase), in and out, and the conversions from the
//! webhooks crate's records.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use switchyard_webhooks::{Attempt, Endpoint, EventType, EventTypeFilter, Message};

use super::apps::Application;

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
    #[serde(default)]
    pub rate_limit: Option<u32>,
}

/// An application, as Svix answers it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApplicationOut {
    pub id: String,
    pub uid: Option<String>,
    pub name: String,
    pub metadata: Map<String, Value>,
    pub rate_limit: Option<u32>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Application> for ApplicationOut {
    fn from(app: &Application) -> Self {
        Self {
            id: app.id.clone(),
            uid: app.uid.clone(),
            name: app.name.clone(),
            metadata: app.metadata.clone(),
            rate_limit: app.rate_limit,
            created_at: time(&app.created_at),
            updated_at: time(&app.updated_at),
        }
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
    #[serde(default)]
    pub rate_limit: Option<u32>,
}

/// An endpoint, as Svix answers it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EndpointOut {
    pub id: String,
    pub uid: Option<String>,
    pub url: String,
    pub version: i64,
    pub description: String,
    pub filter_types: Option<Vec<String>>,
    pub channels: Option<Vec<String>>,
    pub metadata: Map<String, Value>,
    pub disabled: bool,
    pub rate_limit: Option<u32>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Endpoint> for EndpointOut {
    fn from(endpoint: &Endpoint) -> Self {
        Self {
            id: endpoint.id.to_string(),
            uid: endpoint.uid.as_ref().map(ToString::to_string),
            url: endpoint.url.clone(),
            version: 1,
            description: endpoint.description.clone(),
            filter_types: match &endpoint.event_types {
                EventTypeFilter::All => None,
                EventTypeFilter::Only(names) => {
                    Some(names.iter().map(ToString::to_string).collect())
                }
            },
            channels: (!endpoint.channels.is_empty())
                .then(|| endpoint.channels.iter().map(ToString::to_string).collect()),
            metadata: endpoint.metadata.clone(),
            disabled: endpoint.disabled,
            rate_limit: endpoint.rate_limit.map(std::num::NonZeroU32::get),
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
            event_id: None,
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
    pub trigger_type: i64,
    pub timestamp: String,
}

impl From<&Attempt> for MessageAttemptOut {
    fn from(attempt: &Attempt) -> Self {
        Self {
            id: attempt.id.to_string(),
            msg_id: attempt.message_id.to_string(),
            endpoint_id: attempt.endpoint_id.to_string(),
            url: attempt.url.clone(),
            response: attempt.response.clone(),
            response_status_code: attempt.response_status,
            response_duration_ms: u64::try_from(attempt.duration.as_millis()).unwrap_or(u64::MAX),
            status: attempt.status.code(),
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
