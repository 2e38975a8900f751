//! Runtime events over HTTP: subscriptions with CEL filters, long-polling for the next event,
//! and ingestion of events per source, as CloudEvents (binary, structured or batch; v0.3 and
//! v1.0) or as plain webhook requests.
//!
//! | route | answers |
//! |---|---|
//! | `POST /runtime/v1/subscriptions` `{"source", "filter"}` | 201 `{"id", "source", "filter"}`; 422 for a bad filter, with its column |
//! | `GET /runtime/v1/subscriptions/{id}` | 200 `{"id", "source", "filter"}` |
//! | `DELETE /runtime/v1/subscriptions/{id}` | 204; a waiting long-poll on it ends with 410 |
//! | `POST /runtime/v1/next` `{"ids": […], "timeout_ms"}` | 200 the oldest matching event; 204 when none came in time |
//!
//! An event ingested as a CloudEvent keeps its context attributes (its own `source`,
//! `subject`, `time`, extensions, …) in `cloudevent`, beside `data`, and filters see them
//! there; its `source` field is the path's source it was published to.
//! | any method on `/runtime/v1/sources/{source}/events[/…]` | 202 `{"events", "queued"}` |

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use switchyard_cloudevents::Error as CloudEventsError;
use switchyard_runtime_events::{Error as HubError, Event, Hub, SubscriptionId};
use switchyard_webhooks::is_credential_name;

use crate::error::ApiError;
use crate::events_log::EventLog;
use crate::svix::{parse_json, read_body};

/// The longest a `next` request may wait.
pub const MAX_WAIT: Duration = Duration::from_secs(120);
/// How long a `next` request waits when it does not say.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// The source the metadata API's step events, workflow runs and decorators are published to.
pub const METADATA_SOURCE: &str = "metadata";

/// What a credential's value is replaced by in an event (as in delivery attempts).
const REDACTED: &str = "<redacted>";

/// What the runtime routes share.
#[derive(Debug)]
pub(crate) struct RuntimeState {
    pub hub: Arc<Hub>,
    pub body_limit: usize,
    /// With a database: the log every server publishes from, in one order.
    pub log: Option<Arc<EventLog>>,
}

type Shared = State<Arc<RuntimeState>>;

/// The routes, under `/runtime/v1`.
pub(crate) fn routes(state: Arc<RuntimeState>) -> Router {
    Router::new()
        .route("/runtime/v1/subscriptions", post(subscribe))
        .route(
            "/runtime/v1/subscriptions/{id}",
            get(subscription).delete(unsubscribe),
        )
        .route("/runtime/v1/next", post(next))
        .route("/runtime/v1/sources/{source}/events", any(ingest))
        .route("/runtime/v1/sources/{source}/events/{*rest}", any(ingest))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscribeIn {
    source: String,
    filter: String,
}

#[derive(Debug, Serialize)]
struct SubscriptionOut {
    id: String,
    source: String,
    filter: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NextIn {
    ids: Vec<String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

/// An event as the API sends it.
#[derive(Debug, Serialize)]
struct EventOut<'a> {
    id: &'a str,
    source: &'a str,
    event_type: &'a str,
    data: &'a Value,
    received_at: String,
    /// A CloudEvent's context attributes (absent for other events).
    #[serde(skip_serializing_if = "Option::is_none")]
    cloudevent: Option<&'a Map<String, Value>>,
}

fn hub_error(error: HubError) -> ApiError {
    match &error {
        HubError::Filter(_) => ApiError::invalid_field("filter", error.to_string()),
        HubError::UnknownSubscription(_) => ApiError::not_found(error.to_string()),
        HubError::Unsubscribed(_) => {
            ApiError::new(StatusCode::GONE, "unsubscribed", error.to_string())
        }
        HubError::NoSubscriptions => ApiError::invalid_field("ids", error.to_string()),
        HubError::QueueFull { .. } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "queue_full",
            error.to_string(),
        ),
        HubError::TooManySubscriptions { .. } => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_subscriptions",
            error.to_string(),
        ),
        HubError::Expired(_) => ApiError::new(StatusCode::GONE, "expired", error.to_string()),
        _ => ApiError::internal(&error),
    }
}

fn subscription_id(text: &str) -> Result<SubscriptionId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::not_found(format!("unknown subscription {text}")))
}

async fn subscribe(State(state): Shared, body: Body) -> Result<Response, ApiError> {
    let bytes = read_body(body, state.body_limit).await?;
    let input: SubscribeIn = parse_json(&bytes)?;
    if input.source.is_empty() {
        return Err(ApiError::invalid_field("source", "must not be empty"));
    }
    // Compiling a filter runs on its own thread (the CEL parser recurses): off the runtime.
    let hub = Arc::clone(&state.hub);
    let (source, filter) = (input.source.clone(), input.filter.clone());
    let id = tokio::task::spawn_blocking(move || hub.subscribe(&source, &filter))
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(hub_error)?;
    tracing::debug!(subscription = %id, source = %input.source, "subscribed");
    let out = SubscriptionOut {
        id: id.to_string(),
        source: input.source,
        filter: input.filter,
    };
    Ok((StatusCode::CREATED, axum::Json(out)).into_response())
}

async fn subscription(State(state): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    let parsed = subscription_id(&id)?;
    let (source, filter) = state
        .hub
        .subscription(parsed)
        .ok_or_else(|| ApiError::not_found(format!("unknown subscription {id}")))?;
    let out = SubscriptionOut {
        id: parsed.to_string(),
        source,
        filter,
    };
    Ok(axum::Json(out).into_response())
}

async fn unsubscribe(State(state): Shared, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    state
        .hub
        .unsubscribe(subscription_id(&id)?)
        .map_err(hub_error)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn next(State(state): Shared, body: Body) -> Result<Response, ApiError> {
    let bytes = read_body(body, state.body_limit).await?;
    let input: NextIn = parse_json(&bytes)?;
    let wait = match input.timeout_ms {
        None => DEFAULT_WAIT,
        Some(ms) if Duration::from_millis(ms) <= MAX_WAIT => Duration::from_millis(ms),
        Some(_) => {
            return Err(ApiError::invalid_field(
                "timeout_ms",
                format!("must be at most {}", MAX_WAIT.as_millis()),
            ));
        }
    };
    let ids = input
        .ids
        .iter()
        .map(|id| subscription_id(id))
        .collect::<Result<Vec<_>, _>>()?;
    match state
        .hub
        .next_event(&ids, Some(wait))
        .await
        .map_err(hub_error)?
    {
        Some(event) => Ok(axum::Json(event_out(&event)).into_response()),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

fn event_out(event: &Event) -> EventOut<'_> {
    EventOut {
        id: &event.id,
        source: &event.source,
        event_type: &event.event_type,
        data: &event.data,
        received_at: DateTime::<Utc>::from(event.received_at)
            .to_rfc3339_opts(SecondsFormat::Micros, true),
        cloudevent: event.cloudevent.as_ref(),
    }
}

#[derive(Debug, Serialize)]
struct IngestOut {
    events: usize,
    queued: usize,
}

async fn ingest(
    State(state): Shared,
    Path(params): Path<Vec<(String, String)>>,
    request: Request,
) -> Result<Response, ApiError> {
    let source = params
        .iter()
        .find(|(name, _)| name == "source")
        .map(|(_, value)| value.clone())
        .unwrap_or_default();
    let rest = params
        .iter()
        .find(|(name, _)| name == "rest")
        .map(|(_, value)| value.as_str())
        .unwrap_or("");
    let (parts, body) = request.into_parts();
    let bytes = read_body(body, state.body_limit).await?;
    let events = match switchyard_cloudevents::http::from_http(&parts.headers, &bytes) {
        Ok(received) => received
            .into_events()
            .into_iter()
            .map(|event| {
                let mut event = Event::from(event);
                event.source.clone_from(&source);
                event
            })
            .collect(),
        Err(CloudEventsError::NotACloudEvent) => {
            vec![plain_webhook(&source, &parts, rest, &bytes)]
        }
        Err(error) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_cloudevent",
                error.to_string(),
            ));
        }
    };
    let count = events.len();
    let queued = match &state.log {
        // Through the database's log, so every server publishes it, in one order.
        Some(log) => log.append(events).await?,
        None => {
            // Filters are evaluated off the async workers: a costly one (up to its
            // iteration budget) delays this request, never the others being answered.
            let hub = Arc::clone(&state.hub);
            tokio::task::spawn_blocking(move || {
                let mut queued = 0;
                for event in events {
                    queued += hub.publish(event)?.queued;
                }
                Ok::<_, HubError>(queued)
            })
            .await
            .map_err(|e| ApiError::internal(&e))?
            .map_err(hub_error)?
        }
    };
    tracing::debug!(%source, events = count, queued, "events ingested");
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(IngestOut {
            events: count,
            queued,
        }),
    )
        .into_response())
}

/// A plain HTTP request as an event: type = the method in lower case, data = method, url
/// (path after `/events`, query and its parameters), headers (lower-case names) and body
/// (JSON when it is JSON, else text, else `body_base64`). Credentials — headers and query
/// parameters whose names say so (`Authorization`, `Cookie`, `X-Api-Key`, `?token=`, …, the
/// rule of `switchyard_webhooks::is_credential_name`) — are kept by name with the value
/// `<redacted>`, so a filter can test for them without anyone reading them.
fn plain_webhook(source: &str, parts: &http::request::Parts, rest: &str, body: &[u8]) -> Event {
    let mut headers = Map::new();
    for (name, value) in &parts.headers {
        let value = if is_credential_name(name.as_str()) {
            REDACTED.to_owned()
        } else {
            String::from_utf8_lossy(value.as_bytes()).into_owned()
        };
        match headers.get_mut(name.as_str()) {
            // Repeated headers are joined as HTTP allows.
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    let raw_query = parts.uri.query().unwrap_or("");
    let mut params = Map::new();
    let mut redacted = false;
    for (key, value) in form_urlencoded::parse(raw_query.as_bytes()) {
        let value = if is_credential_name(&key.to_ascii_lowercase()) {
            redacted = true;
            REDACTED.into()
        } else {
            value
        };
        params
            .entry(key.into_owned())
            .or_insert_with(|| Value::String(value.into_owned()));
    }
    // The query as sent, unless it carried a credential: then re-encoded with it redacted.
    let query = if redacted {
        let mut serializer = form_urlencoded::Serializer::new(String::new());
        for (key, value) in form_urlencoded::parse(raw_query.as_bytes()) {
            if is_credential_name(&key.to_ascii_lowercase()) {
                serializer.append_pair(&key, REDACTED);
            } else {
                serializer.append_pair(&key, &value);
            }
        }
        serializer.finish()
    } else {
        raw_query.to_owned()
    };
    let is_json = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(switchyard_cloudevents::is_json_content_type);
    let mut data = Map::new();
    data.insert(
        "method".into(),
        Value::String(parts.method.as_str().to_owned()),
    );
    data.insert(
        "url".into(),
        serde_json::json!({"path": format!("/{rest}"), "query": query, "params": params}),
    );
    data.insert("headers".into(), Value::Object(headers));
    let parsed_json = is_json
        .then(|| serde_json::from_slice::<Value>(body).ok())
        .flatten();
    match (parsed_json, std::str::from_utf8(body)) {
        (Some(json), _) => {
            data.insert("body".into(), json);
        }
        (None, Ok(text)) => {
            data.insert("body".into(), Value::String(text.to_owned()));
        }
        (None, Err(_)) => {
            data.insert("body".into(), Value::Null);
            data.insert(
                "body_base64".into(),
                Value::String(base64::engine::general_purpose::STANDARD.encode(body)),
            );
        }
    }
    Event::new(
        source,
        parts.method.as_str().to_ascii_lowercase(),
        Value::Object(data),
    )
}
