//! Operational webhooks: the events Svix sends about the service itself
//! (`endpoint.created`, `endpoint.updated`, `endpoint.deleted`, `endpoint.disabled`,
//! `message.attempt.failing`, `message.attempt.exhausted`, `message.attempt.recovered`), as
//! messages of a reserved management application, so they are signed, retried, listed and
//! resent like any other message.
//!
//! Svix's server, when `operational_webhook_address` is set, creates them through the API of
//! a Svix server, in the application of its management organisation named after the
//! organisation they are about. One server here is one organisation: `[webhooks]
//! operational_app` names the application, created at start when missing, and the operator
//! adds endpoints to it through the API, as to any application (with `filterTypes` to pick
//! events). The seven event types are added to the catalogue at start when missing, with
//! the payload schemas of Svix's document, so endpoints can filter on them; an event type of
//! one of these names that already exists is left as it is.
//!
//! - A message is stored only when an endpoint of the management application listens for
//!   its type ([`AppScope::send`](switchyard_webhooks::AppScope::send)): with no listener,
//!   an event costs one read.
//! - Events about the management application itself are not sent: a failing operational
//!   endpoint would otherwise announce its own failures to itself.
//! - Endpoint changes made through the API are stored before the API answers. Delivery
//!   events come from the delivery engine's [`Notification`]s: a server killed between an
//!   attempt and its event loses the event (the attempt is recorded), and a burst of more
//!   than the engine's channel holds (1,024) while the store is slow drops the excess with
//!   a warning. Svix sends all of them in the background, with the same exposure.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};
use switchyard_webhooks::delivery::{AttemptNote, EndpointNote, Notification};
use switchyard_webhooks::store::Store as _;
use switchyard_webhooks::{
    AppId, AppUid, ApplicationSpec, Endpoint, EndpointId, EndpointUid, Error as WebhooksError,
    EventTypeName,
};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use super::request::time;
use super::webhooks::AppRegistry;
use crate::error::ServerError;

/// The name the management application is created with.
const APP_NAME: &str = "Operational webhooks";

/// The events and what each announces (the catalogue's descriptions, Svix's words).
const EVENT_TYPES: [(&str, &str); 7] = [
    ("endpoint.created", "Sent when an endpoint is created."),
    ("endpoint.updated", "Sent when an endpoint is updated."),
    ("endpoint.deleted", "Sent when an endpoint is deleted."),
    (
        "endpoint.disabled",
        "Sent when an endpoint has been automatically disabled after continuous failures.",
    ),
    (
        "message.attempt.failing",
        "Sent after a message has been failing for a few times (on the fourth failure).",
    ),
    (
        "message.attempt.exhausted",
        "Sent when a message delivery has failed (all of the retry attempts have been exhausted).",
    ),
    (
        "message.attempt.recovered",
        "Sent on a successful dispatch after an earlier failure op webhook has already been sent.",
    ),
];

/// A change made to an endpoint through the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndpointChange {
    /// `endpoint.created`.
    Created,
    /// `endpoint.updated` (its settings or its secret).
    Updated,
    /// `endpoint.deleted`.
    Deleted,
}

impl EndpointChange {
    fn event_type(self) -> &'static str {
        match self {
            Self::Created => "endpoint.created",
            Self::Updated => "endpoint.updated",
            Self::Deleted => "endpoint.deleted",
        }
    }
}

/// `EndpointCreatedEventData` and its siblings; `failSince` for `endpoint.disabled`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EndpointData {
    app_id: String,
    app_uid: Option<String>,
    endpoint_id: String,
    endpoint_uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fail_since: Option<String>,
}

/// `MessageAttemptFailingEventData` and its siblings.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AttemptData {
    app_id: String,
    app_uid: Option<String>,
    msg_id: String,
    msg_event_id: Option<String>,
    endpoint_id: String,
    last_attempt: LastAttemptData,
}

/// `MessageAttempetLast` (sic, the document's name).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LastAttemptData {
    id: String,
    response_status_code: u16,
    timestamp: String,
}

/// The sender of operational webhooks into the management application.
#[derive(Debug)]
pub(crate) struct Operational {
    registry: Arc<AppRegistry>,
    app: AppId,
}

impl Operational {
    /// Makes sure the management application `uid` and the seven event types exist, and
    /// starts the task turning the engine's notifications into messages.
    ///
    /// # Errors
    /// [`ServerError::Webhooks`] when the store cannot be read or written.
    pub(crate) async fn start(
        registry: Arc<AppRegistry>,
        uid: &AppUid,
        notifications: broadcast::Receiver<Notification>,
    ) -> Result<Arc<Self>, ServerError> {
        let app = management_app(&registry, uid).await?;
        for (name, description) in EVENT_TYPES {
            let name: EventTypeName = name.parse()?;
            if registry
                .store()
                .event_type(&name)
                .await
                .map_err(WebhooksError::from)?
                .is_none()
            {
                let schema = schema(&name);
                registry
                    .create_event_type(name, description.to_owned(), schema)
                    .await?;
            }
        }
        tracing::info!(application = %app, uid = %uid, "operational webhooks on");
        let operational = Arc::new(Self { registry, app });
        tokio::spawn(Arc::clone(&operational).relay(notifications));
        Ok(operational)
    }

    /// Announces a change made to `endpoint` through the API. Failures are logged, not
    /// returned: the change itself is made.
    pub(crate) async fn endpoint_changed(&self, change: EndpointChange, endpoint: &Endpoint) {
        let data = self
            .endpoint_data(&endpoint.app, &endpoint.id, endpoint.uid.as_ref(), None)
            .await;
        if let Some(data) = data {
            self.send(change.event_type(), &data).await;
        }
    }

    /// Turns the engine's notifications into messages until the engine is gone.
    async fn relay(self: Arc<Self>, mut notifications: broadcast::Receiver<Notification>) {
        loop {
            match notifications.recv().await {
                Ok(note) => self.notified(note).await,
                Err(RecvError::Lagged(missed)) => tracing::warn!(
                    missed,
                    "operational webhooks fell behind the delivery engine; events were dropped"
                ),
                Err(RecvError::Closed) => return,
            }
        }
    }

    async fn notified(&self, note: Notification) {
        match note {
            Notification::Failing(note) => self.attempt("message.attempt.failing", note).await,
            Notification::Exhausted(note) => {
                self.attempt("message.attempt.exhausted", note).await;
            }
            Notification::Recovered(note) => {
                self.attempt("message.attempt.recovered", note).await;
            }
            Notification::EndpointDisabled(note) => self.disabled(note).await,
            // Svix has no event for an endpoint's recovery; other notifications may come.
            _ => {}
        }
    }

    async fn attempt(&self, event_type: &str, note: AttemptNote) {
        if note.app_id == self.app {
            return;
        }
        let data = AttemptData {
            app_id: note.app_id.to_string(),
            app_uid: self.app_uid(&note.app_id).await,
            msg_id: note.message_id.to_string(),
            msg_event_id: note.event_id,
            endpoint_id: note.endpoint_id.to_string(),
            last_attempt: LastAttemptData {
                id: note.last_attempt.id.to_string(),
                response_status_code: note.last_attempt.response_status,
                timestamp: time(&note.last_attempt.timestamp),
            },
        };
        self.send(event_type, &data).await;
    }

    async fn disabled(&self, note: EndpointNote) {
        let fail_since = Some(time(&note.failing_since));
        let data = self
            .endpoint_data(
                &note.app_id,
                &note.endpoint_id,
                note.endpoint_uid.as_ref(),
                fail_since,
            )
            .await;
        if let Some(data) = data {
            self.send("endpoint.disabled", &data).await;
        }
    }

    /// The data of an endpoint event; `None` for an endpoint of the management application.
    async fn endpoint_data(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
        uid: Option<&EndpointUid>,
        fail_since: Option<String>,
    ) -> Option<EndpointData> {
        if *app == self.app {
            return None;
        }
        Some(EndpointData {
            app_id: app.to_string(),
            app_uid: self.app_uid(app).await,
            endpoint_id: endpoint.to_string(),
            endpoint_uid: uid.map(ToString::to_string),
            fail_since,
        })
    }

    /// The uid of application `app`, if it has one (and still exists).
    async fn app_uid(&self, app: &AppId) -> Option<String> {
        match self.registry.store().application(app).await {
            Ok(found) => found.and_then(|a| a.uid).map(|uid| uid.to_string()),
            Err(error) => {
                tracing::warn!(%error, application = %app, "reading an application for an operational webhook failed");
                None
            }
        }
    }

    /// Sends `{"type": event_type, "data": data}` in the management application, stored
    /// when an endpoint listens.
    async fn send(&self, event_type: &str, data: &impl Serialize) {
        let result = async {
            let name: EventTypeName = event_type.parse()?;
            let payload = json!({"type": event_type, "data": data});
            let app = self.registry.app(self.app.as_str()).await?;
            app.send(&name, payload.to_string(), None).await
        }
        .await;
        match result {
            Ok(Some((message, _))) => {
                tracing::debug!(%message, event_type, "operational webhook sent");
            }
            Ok(None) => tracing::trace!(event_type, "no operational endpoint listens"),
            Err(error) => {
                tracing::error!(%error, event_type, "sending an operational webhook failed");
            }
        }
    }
}

/// The management application `uid`, created when missing (by this server, or by another
/// sharing the store at the same moment).
async fn management_app(registry: &AppRegistry, uid: &AppUid) -> Result<AppId, ServerError> {
    match registry.application(uid.as_str()).await {
        Ok(found) => return Ok(found.id),
        Err(WebhooksError::ApplicationNotFound { .. }) => {}
        Err(error) => return Err(error.into()),
    }
    let spec = ApplicationSpec::new(APP_NAME).uid(uid.as_str())?;
    match registry.create_application(spec).await {
        Ok(created) => Ok(created.id),
        Err(WebhooksError::ApplicationExists { .. }) => {
            Ok(registry.application(uid.as_str()).await?.id)
        }
        Err(error) => Err(error.into()),
    }
}

/// The payload schema of an operational event type: `{"type", "data"}` with the data of
/// Svix's document.
fn schema(name: &EventTypeName) -> Value {
    let nullable_uid = json!({"type": ["string", "null"]});
    let string = json!({"type": "string"});
    let time = json!({"type": "string", "format": "date-time"});
    let data = if name.as_str().starts_with("message.attempt.") {
        json!({
            "type": "object",
            "required": ["appId", "endpointId", "lastAttempt", "msgId"],
            "properties": {
                "appId": string, "appUid": nullable_uid, "msgId": string,
                "msgEventId": nullable_uid, "endpointId": string,
                "lastAttempt": {
                    "type": "object",
                    "required": ["id", "responseStatusCode", "timestamp"],
                    "properties": {
                        "id": string,
                        "responseStatusCode": {"type": "integer"},
                        "timestamp": time,
                    },
                },
            },
        })
    } else {
        let mut required = vec!["appId", "endpointId"];
        let mut properties = json!({
            "appId": string, "appUid": nullable_uid, "endpointId": string,
            "endpointUid": nullable_uid,
        });
        if name.as_str() == "endpoint.disabled" {
            required.push("failSince");
            properties["failSince"] = time;
        }
        json!({"type": "object", "required": required, "properties": properties})
    };
    json!({
        "type": "object",
        "required": ["data", "type"],
        "properties": {"type": {"const": name.as_str()}, "data": data},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_name_is_valid_and_has_a_schema_naming_it() {
        for (name, description) in EVENT_TYPES {
            let name: EventTypeName = name.parse().unwrap();
            assert!(!description.is_empty());
            assert_eq!(schema(&name)["properties"]["type"]["const"], name.as_str());
        }
    }
}
