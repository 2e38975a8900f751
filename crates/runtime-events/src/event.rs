//! The event a subscription receives: id, source, type, JSON data, receive time and, for an
//! event that arrived as a CloudEvent, its context attributes.

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
    /// The context attributes of an event that arrived as a CloudEvent (`specversion`, `id`,
    /// `source`, `type`, the optional ones it has, and its extensions), which filters see as
    /// `cloudevent`; `None` for any other event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloudevent: Option<serde_json::Map<String, serde_json::Value>>,
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
            cloudevent: None,
        }
    }
}

#[cfg(feature = "cloudevents")]
impl From<switchyard_cloudevents::Event> for Event {
    /// Takes the CloudEvent's `id`, `source`, `type` (as `event_type`) and data, and keeps
    /// every context attribute in [`Event::cloudevent`]: the spec's as strings, extensions
    /// as their type says (`Boolean` a bool, `Integer` a number, a 0.3 `Map` an object, the
    /// others strings in their canonical form).
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
    /// let attributes = event.cloudevent.as_ref().expect("a CloudEvent");
    /// assert_eq!(attributes["source"], "/orders");
    /// assert_eq!(attributes["specversion"], "1.0");
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
            cloudevent: Some(attributes(&event)),
        }
    }
}

/// A CloudEvent's context attributes as a JSON object.
#[cfg(feature = "cloudevents")]
fn attributes(event: &switchyard_cloudevents::Event) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::Value;
    use switchyard_cloudevents::{ExtensionValue, SpecVersion};
    let schema = match event.specversion() {
        SpecVersion::V0_3 => "schemaurl",
        _ => "dataschema",
    };
    let mut map = serde_json::Map::new();
    for name in [
        "specversion",
        "id",
        "source",
        "type",
        "subject",
        "time",
        "datacontenttype",
        schema,
        "datacontentencoding",
    ] {
        if let Some(value) = event.attribute(name) {
            map.insert(name.to_owned(), Value::String(value.into_owned()));
        }
    }
    for (name, value) in event.extensions() {
        let value = match value {
            ExtensionValue::Boolean(b) => Value::Bool(*b),
            ExtensionValue::Integer(i) => Value::from(*i),
            ExtensionValue::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            ),
            other => Value::String(
                other
                    .as_str()
                    .map_or_else(|| other.to_canonical_string(), str::to_owned),
            ),
        };
        map.insert(name.to_owned(), value);
    }
    map
}
