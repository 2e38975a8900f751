//! The event a subscription receives: id, source, type, JSON data and receive time.

use serde::{Deserialize, Serialize};
use std::time::SystemTime;

/// One event published to a source.
///
/// ```
/// use switchyard_runtime_events::Event;
///
/// let event = Event::new("webhook", "post", serde_json::json!({"method": "POST"}));
/// assert_eq!(event.source, "webhook");
/// assert_eq!(event.event_type, "post");
/// assert_eq!(event.data["method"], "POST");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// A unique id (a UUID unless the event came with its own, as a CloudEvent does).
    pub id: String,
    /// The name of the source it was published to (a connection or a trigger).
    pub source: String,
    /// The event type filters see as `event_type`.
    pub event_type: String,
    /// The payload filters see as `data`.
    pub data: serde_json::Value,
    /// When it was received.
    pub received_at: SystemTime,
}

impl Event {
    /// A new event with a fresh UUID, received now.
    pub fn new(
        source: impl Into<String>,
        event_type: impl Into<String>,
        data: serde_json::Value,
    ) -> Self {
        Event {
            id: uuid::Uuid::new_v4().to_string(),
            source: source.into(),
            event_type: event_type.into(),
            data,
            received_at: SystemTime::now(),
        }
    }
}

#[cfg(feature = "cloudevents")]
impl From<switchyard_cloudevents::Event> for Event {
    /// Takes the CloudEvent's `id`, `source`, `type` (as `event_type`) and data.
    ///
    /// JSON data becomes `data` as JSON; text data becomes a JSON string; binary data becomes a
    /// base64 string; no data becomes `null`. Data marked JSON that does not parse is kept as a
    /// string of its text, so nothing is lost.
    ///
    /// ```
    /// use switchyard_cloudevents::Event as CloudEvent;
    /// use switchyard_runtime_events::Event;
    ///
    /// let cloud = CloudEvent::builder()
    ///     .id("e-1")
    ///     .ty("com.example.created")
    ///     .source("/orders")
    ///     .json_data(&serde_json::json!({"order": 42}))
    ///     .build()?;
    /// let event = Event::from(cloud);
    /// assert_eq!(event.event_type, "com.example.created");
    /// assert_eq!(event.data["order"], 42);
    /// # Ok::<(), switchyard_cloudevents::Error>(())
    /// ```
    fn from(event: switchyard_cloudevents::Event) -> Self {
        use base64::Engine as _;
        use switchyard_cloudevents::Data;
        let data = match event.data() {
            None => serde_json::Value::Null,
            Some(Data::Json(text)) => {
                serde_json::from_slice(text.as_bytes()).unwrap_or_else(|_| {
                    serde_json::Value::String(String::from_utf8_lossy(text.as_bytes()).into_owned())
                })
            }
            Some(Data::Text(text)) => serde_json::Value::String(text.clone()),
            Some(Data::Binary(bytes)) => {
                serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            }
        };
        Event {
            id: event.id().to_owned(),
            source: event.source().to_owned(),
            event_type: event.ty().to_owned(),
            data,
            received_at: SystemTime::now(),
        }
    }
}
