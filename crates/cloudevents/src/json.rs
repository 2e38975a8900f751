//! The CloudEvents JSON event format (v0.3 and v1.0), single events and batches.
//!
//! Decoding reads the document once: attribute strings are borrowed where the JSON has no
//! escapes, and `data` is captured as raw JSON text without building a value tree. Every
//! attribute is then checked and a typed [`Error`] names what is wrong.
//!
//! ```
//! use switchyard_cloudevents::json;
//!
//! let event = json::decode(br#"{"specversion":"1.0","id":"1","source":"/s",
//!     "type":"t","data":{"b":1, "a":2}}"#)?;
//! assert_eq!(event.data().unwrap().as_bytes(), br#"{"b":1, "a":2}"#);
//!
//! let bytes = json::encode(&event)?;
//! assert_eq!(json::decode(&bytes)?, event);
//! # Ok::<(), switchyard_cloudevents::Error>(())
//! ```
//!
//! The [`Serialize`] and [`Deserialize`] impls of [`Event`] implement the same format, for
//! embedding events in larger serde_json documents.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::event::{UncheckedContext, check_extension_name};
use crate::{
    Data, Error, Event, ExtensionValue, JsonText, Rule, SpecVersion, is_json_content_type, validate,
};

/// The media type of a structured-mode JSON event.
pub const CONTENT_TYPE: &str = "application/cloudevents+json";
/// The media type of a JSON batch.
pub const BATCH_CONTENT_TYPE: &str = "application/cloudevents-batch+json";

/// Decodes one event from the JSON format.
pub fn decode(bytes: &[u8]) -> Result<Event, Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let item = BatchItem::<&RawValue>::deserialize(&mut deserializer)
        .and_then(|item| deserializer.end().map(|()| item))
        .map_err(|e| Error::from_json(&e))?;
    item.into_event()
}

/// Decodes a batch (`application/cloudevents-batch+json`): a JSON array of events.
///
/// An invalid element fails the whole batch with [`Error::InBatch`] giving its index.
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<Event>, Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let batch = RawBatch::deserialize(&mut deserializer)
        .and_then(|batch| deserializer.end().map(|()| batch))
        .map_err(|e| Error::from_json(&e))?;
    let items = match batch {
        RawBatch::Items(items) => items,
        RawBatch::NotArray(found) => return Err(Error::NotABatch { found }),
    };
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| item.into_event().map_err(|e| e.in_batch(index)))
        .collect()
}

/// Encodes one event in the JSON format.
///
/// Fails with [`Error::InvalidJsonData`] when the event carries JSON data that was received
/// unchecked (a binary-mode body) and turns out not to be JSON.
pub fn encode(event: &Event) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(estimate_size(event));
    serde_json::to_writer(&mut out, event)
        .map_err(|e| encode_error(&e, std::slice::from_ref(event)))?;
    Ok(out)
}

/// Encodes events as a JSON batch.
pub fn encode_batch(events: &[Event]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(events.iter().map(estimate_size).sum::<usize>() + 2);
    serde_json::to_writer(&mut out, &BatchRef(events)).map_err(|e| encode_error(&e, events))?;
    Ok(out)
}

/// Serialising our own types only fails on unchecked JSON data that is not JSON: say which.
fn encode_error(error: &serde_json::Error, events: &[Event]) -> Error {
    for event in events {
        if let Some(Data::Json(json)) = &event.data
            && let Err(invalid) = json.check()
        {
            return invalid;
        }
    }
    Error::from_json(error)
}

/// A capacity guess that avoids regrowing the output buffer for typical events.
fn estimate_size(event: &Event) -> usize {
    let data = event.data.as_ref().map_or(0, |d| match d {
        Data::Binary(bytes) => bytes.len() * 4 / 3 + 4,
        other => other.as_bytes().len() + 2,
    });
    160 + event.id.len() + event.source.len() + event.ty.len() + data
}

struct BatchRef<'a>(&'a [Event]);

impl Serialize for BatchRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for event in self.0 {
            seq.serialize_element(event)?;
        }
        seq.end()
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("specversion", self.specversion.as_str())?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("source", &self.source)?;
        map.serialize_entry("type", &self.ty)?;
        if let Some(value) = &self.datacontenttype {
            map.serialize_entry("datacontenttype", value)?;
        }
        if let Some(value) = &self.dataschema {
            let key = match self.specversion {
                SpecVersion::V1_0 => "dataschema",
                SpecVersion::V0_3 => "schemaurl",
            };
            map.serialize_entry(key, value)?;
        }
        if let Some(encoding) = self.datacontentencoding() {
            map.serialize_entry("datacontentencoding", encoding)?;
        }
        if let Some(value) = &self.subject {
            map.serialize_entry("subject", value)?;
        }
        if let Some(value) = &self.time {
            map.serialize_entry("time", value.as_str())?;
        }
        for (name, value) in &self.extensions {
            map.serialize_entry(name, &ExtensionJson(value))?;
        }
        match (&self.data, self.specversion) {
            (None, _) => {}
            (Some(Data::Json(json)), _) => {
                let raw = json.to_raw().map_err(serde::ser::Error::custom)?;
                map.serialize_entry("data", &*raw)?;
            }
            (Some(Data::Text(text)), _) => map.serialize_entry("data", text)?,
            (Some(Data::Binary(bytes)), SpecVersion::V1_0) => {
                map.serialize_entry("data_base64", &BASE64.encode(bytes))?;
            }
            (Some(Data::Binary(bytes)), SpecVersion::V0_3) => {
                map.serialize_entry("data", &BASE64.encode(bytes))?;
            }
        }
        map.end()
    }
}

/// An extension value in its JSON form.
struct ExtensionJson<'a>(&'a ExtensionValue);

impl Serialize for ExtensionJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            ExtensionValue::Boolean(b) => serializer.serialize_bool(*b),
            ExtensionValue::Integer(i) => serializer.serialize_i32(*i),
            ExtensionValue::String(s) | ExtensionValue::Uri(s) | ExtensionValue::UriRef(s) => {
                serializer.serialize_str(s)
            }
            ExtensionValue::Binary(bytes) => serializer.serialize_str(&BASE64.encode(bytes)),
            ExtensionValue::Timestamp(t) => serializer.serialize_str(t.as_str()),
            ExtensionValue::Map(map) => map.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BatchItem::<Box<RawValue>>::deserialize(deserializer)?
            .into_event()
            .map_err(de::Error::custom)
    }
}

/// Where `data` is kept while decoding: borrowed from the input, or owned.
trait RawData<'de>: Deserialize<'de> {
    fn raw(&self) -> &RawValue;
    fn into_boxed(self) -> Box<RawValue>;
}

impl<'de> RawData<'de> for &'de RawValue {
    fn raw(&self) -> &RawValue {
        self
    }
    fn into_boxed(self) -> Box<RawValue> {
        self.to_owned()
    }
}

impl<'de> RawData<'de> for Box<RawValue> {
    fn raw(&self) -> &RawValue {
        self
    }
    fn into_boxed(self) -> Box<RawValue> {
        self
    }
}

/// A JSON member value as found, before any CloudEvents rule is applied.
enum JsonValue<'a> {
    Null,
    Str(Cow<'a, str>),
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float,
    Object(serde_json::Map<String, serde_json::Value>),
    Array,
}

impl<'de> Deserialize<'de> for JsonValue<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl<'de> Visitor<'de> for ValueVisitor {
            type Value = JsonValue<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(JsonValue::Null)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(JsonValue::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(JsonValue::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(JsonValue::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(JsonValue::UInt(v))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(JsonValue::Float)
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(JsonValue::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(JsonValue::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(JsonValue::Str(Cow::Owned(v)))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let object =
                    serde_json::Map::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(JsonValue::Object(object))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(JsonValue::Array)
            }
        }
        deserializer.deserialize_any(ValueVisitor)
    }
}

/// The members of a JSON event, captured but not yet checked.
struct RawEvent<'a, D> {
    specversion: Option<JsonValue<'a>>,
    id: Option<JsonValue<'a>>,
    source: Option<JsonValue<'a>>,
    ty: Option<JsonValue<'a>>,
    datacontenttype: Option<JsonValue<'a>>,
    dataschema: Option<JsonValue<'a>>,
    schemaurl: Option<JsonValue<'a>>,
    datacontentencoding: Option<JsonValue<'a>>,
    subject: Option<JsonValue<'a>>,
    time: Option<JsonValue<'a>>,
    data: Option<D>,
    data_base64: Option<JsonValue<'a>>,
    others: Vec<(Cow<'a, str>, JsonValue<'a>)>,
}

impl<D> Default for RawEvent<'_, D> {
    fn default() -> Self {
        RawEvent {
            specversion: None,
            id: None,
            source: None,
            ty: None,
            datacontenttype: None,
            dataschema: None,
            schemaurl: None,
            datacontentencoding: None,
            subject: None,
            time: None,
            data: None,
            data_base64: None,
            others: Vec::new(),
        }
    }
}

/// A member name: one of the names the formats define, or anything else.
enum Key<'a> {
    Specversion,
    Id,
    Source,
    Type,
    Datacontenttype,
    Dataschema,
    Schemaurl,
    Datacontentencoding,
    Subject,
    Time,
    Data,
    DataBase64,
    Other(Cow<'a, str>),
}

impl<'a> Key<'a> {
    fn known(name: &str) -> Option<Key<'a>> {
        Some(match name {
            "specversion" => Key::Specversion,
            "id" => Key::Id,
            "source" => Key::Source,
            "type" => Key::Type,
            "datacontenttype" => Key::Datacontenttype,
            "dataschema" => Key::Dataschema,
            "schemaurl" => Key::Schemaurl,
            "datacontentencoding" => Key::Datacontentencoding,
            "subject" => Key::Subject,
            "time" => Key::Time,
            "data" => Key::Data,
            "data_base64" => Key::DataBase64,
            _ => return None,
        })
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an attribute name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key::known(v).unwrap_or(Key::Other(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key::known(v).unwrap_or_else(|| Key::Other(Cow::Owned(v.to_owned()))))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// A batch element: an event object, or something else (which is an error).
enum BatchItem<'a, D> {
    Event(Box<RawEvent<'a, D>>),
    NotObject(&'static str),
}

fn store<E: de::Error, T>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(name));
    }
    *slot = Some(value);
    Ok(())
}

impl<'de, D: RawData<'de>> Deserialize<'de> for BatchItem<'de, D> {
    fn deserialize<De: Deserializer<'de>>(deserializer: De) -> Result<Self, De::Error> {
        struct ItemVisitor<D>(PhantomData<D>);
        impl<'de, D: RawData<'de>> Visitor<'de> for ItemVisitor<D> {
            type Value = BatchItem<'de, D>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a CloudEvent as a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut raw = RawEvent::<D>::default();
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    match key {
                        Key::Specversion => {
                            store(&mut raw.specversion, map.next_value()?, "specversion")?
                        }
                        Key::Id => store(&mut raw.id, map.next_value()?, "id")?,
                        Key::Source => store(&mut raw.source, map.next_value()?, "source")?,
                        Key::Type => store(&mut raw.ty, map.next_value()?, "type")?,
                        Key::Datacontenttype => store(
                            &mut raw.datacontenttype,
                            map.next_value()?,
                            "datacontenttype",
                        )?,
                        Key::Dataschema => {
                            store(&mut raw.dataschema, map.next_value()?, "dataschema")?
                        }
                        Key::Schemaurl => {
                            store(&mut raw.schemaurl, map.next_value()?, "schemaurl")?
                        }
                        Key::Datacontentencoding => store(
                            &mut raw.datacontentencoding,
                            map.next_value()?,
                            "datacontentencoding",
                        )?,
                        Key::Subject => store(&mut raw.subject, map.next_value()?, "subject")?,
                        Key::Time => store(&mut raw.time, map.next_value()?, "time")?,
                        Key::Data => store(&mut raw.data, map.next_value()?, "data")?,
                        Key::DataBase64 => {
                            store(&mut raw.data_base64, map.next_value()?, "data_base64")?
                        }
                        Key::Other(name) => {
                            if raw.others.iter().any(|(seen, _)| *seen == name) {
                                return Err(de::Error::custom(format_args!(
                                    "duplicate field `{name}`"
                                )));
                            }
                            let value = map.next_value()?;
                            raw.others.push((name, value));
                        }
                    }
                }
                Ok(BatchItem::Event(Box::new(raw)))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(BatchItem::NotObject("null"))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(BatchItem::NotObject("a boolean"))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(BatchItem::NotObject("a number"))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(BatchItem::NotObject("a number"))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(BatchItem::NotObject("a number"))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(BatchItem::NotObject("a string"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(BatchItem::NotObject("an array"))
            }
        }
        deserializer.deserialize_any(ItemVisitor(PhantomData))
    }
}

/// A batch as found: an array of items, or some other JSON value.
enum RawBatch<'a> {
    Items(Vec<BatchItem<'a, &'a RawValue>>),
    NotArray(&'static str),
}

impl<'de> Deserialize<'de> for RawBatch<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BatchVisitor;
        impl<'de> Visitor<'de> for BatchVisitor {
            type Value = RawBatch<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON array of CloudEvents")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(RawBatch::Items(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(RawBatch::NotArray("an object"))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(RawBatch::NotArray("null"))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(RawBatch::NotArray("a boolean"))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(RawBatch::NotArray("a number"))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(RawBatch::NotArray("a number"))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(RawBatch::NotArray("a number"))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(RawBatch::NotArray("a string"))
            }
        }
        deserializer.deserialize_any(BatchVisitor)
    }
}

/// A present, non-null attribute value as a string, or the rule it breaks.
fn string_attr<'a>(
    name: &'static str,
    value: Option<JsonValue<'a>>,
) -> Result<Option<Cow<'a, str>>, Error> {
    match value {
        None | Some(JsonValue::Null) => Ok(None),
        Some(JsonValue::Str(s)) => Ok(Some(s)),
        Some(_) => Err(Error::invalid(name, Rule::MustBeString)),
    }
}

impl<'de, D: RawData<'de>> BatchItem<'de, D> {
    fn into_event(self) -> Result<Event, Error> {
        match self {
            BatchItem::Event(raw) => raw.into_event(),
            BatchItem::NotObject(found) => Err(Error::NotAnObject { found }),
        }
    }
}

impl<'de, D: RawData<'de>> RawEvent<'de, D> {
    fn into_event(self) -> Result<Event, Error> {
        let specversion =
            string_attr("specversion", self.specversion)?.ok_or(Error::MissingAttribute {
                name: "specversion",
            })?;
        validate::non_empty("specversion", &specversion)?;
        let version: SpecVersion = specversion.parse()?;

        // Members that are context attributes in one version are extensions in the other.
        let mut others = self.others;
        let (schema_name, schema, foreign_schema) = match version {
            SpecVersion::V1_0 => ("dataschema", self.dataschema, ("schemaurl", self.schemaurl)),
            SpecVersion::V0_3 => ("schemaurl", self.schemaurl, ("dataschema", self.dataschema)),
        };
        if let Some(value) = foreign_schema.1 {
            others.push((Cow::Borrowed(foreign_schema.0), value));
        }
        let datacontentencoding = match version {
            SpecVersion::V0_3 => string_attr("datacontentencoding", self.datacontentencoding)?,
            SpecVersion::V1_0 => {
                if let Some(value) = self.datacontentencoding {
                    others.push((Cow::Borrowed("datacontentencoding"), value));
                }
                None
            }
        };
        let context = UncheckedContext {
            id: string_attr("id", self.id)?,
            source: string_attr("source", self.source)?,
            ty: string_attr("type", self.ty)?,
            datacontenttype: string_attr("datacontenttype", self.datacontenttype)?,
            dataschema: string_attr(schema_name, schema)?,
            subject: string_attr("subject", self.subject)?,
            time: string_attr("time", self.time)?,
            datacontentencoding,
        };
        let (mut event, base64_data) = context.check(version)?;

        for (name, value) in others {
            check_extension_name(version, &name)?;
            if let Some(value) = extension_value(version, &name, value)? {
                event.extensions.insert(name.into_owned(), value);
            }
        }
        event.data = decode_data(
            version,
            event.datacontenttype.as_deref(),
            self.data,
            self.data_base64,
            base64_data,
        )?;
        Ok(event)
    }
}

/// Types an extension member by its JSON type; `None` for a null (absent) member.
fn extension_value(
    version: SpecVersion,
    name: &str,
    value: JsonValue<'_>,
) -> Result<Option<ExtensionValue>, Error> {
    Ok(Some(match value {
        JsonValue::Null => return Ok(None),
        JsonValue::Str(s) => ExtensionValue::String(s.into_owned()),
        JsonValue::Bool(b) => ExtensionValue::Boolean(b),
        JsonValue::Int(i) => ExtensionValue::Integer(
            i32::try_from(i).map_err(|_| Error::invalid(name, Rule::Integer32))?,
        ),
        JsonValue::UInt(u) => ExtensionValue::Integer(
            i32::try_from(u).map_err(|_| Error::invalid(name, Rule::Integer32))?,
        ),
        JsonValue::Float => return Err(Error::invalid(name, Rule::Integer32)),
        JsonValue::Object(object) if version == SpecVersion::V0_3 => {
            let mut map = BTreeMap::new();
            for (key, value) in object {
                let value = match value {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Bool(b) => b.to_string(),
                    serde_json::Value::Number(n) => n.to_string(),
                    _ => return Err(Error::invalid(name, Rule::ExtensionType)),
                };
                map.insert(key, value);
            }
            ExtensionValue::Map(map)
        }
        JsonValue::Object(_) | JsonValue::Array => {
            return Err(Error::invalid(name, Rule::ExtensionType));
        }
    }))
}

fn decode_data<'de, D: RawData<'de>>(
    version: SpecVersion,
    content_type: Option<&str>,
    data: Option<D>,
    data_base64: Option<JsonValue<'_>>,
    v03_base64: bool,
) -> Result<Option<Data>, Error> {
    let data_base64 = match (version, data_base64) {
        (_, None | Some(JsonValue::Null)) => None,
        (SpecVersion::V1_0, Some(JsonValue::Str(s))) => Some(s),
        (SpecVersion::V1_0, Some(_)) => return Err(Error::invalid("data_base64", Rule::Base64)),
        // 0.3 has no `data_base64`; its name is not a valid extension name either.
        (SpecVersion::V0_3, Some(_)) => {
            return Err(Error::InvalidAttributeName {
                name: "data_base64".to_owned(),
            });
        }
    };
    match (data, data_base64) {
        (Some(_), Some(_)) => Err(Error::ConflictingData),
        (None, Some(encoded)) => decode_base64("data_base64", &encoded).map(Some),
        (None, None) => Ok(None),
        (Some(raw), None) => {
            if v03_base64 {
                let encoded: Cow<'_, str> = serde_json::from_str(raw.raw().get())
                    .map_err(|_| Error::invalid("data", Rule::MustBeString))?;
                return decode_base64("data", &encoded).map(Some);
            }
            let is_json = content_type.is_none_or(is_json_content_type);
            if !is_json && raw.raw().get().starts_with('"') {
                let text: String =
                    serde_json::from_str(raw.raw().get()).map_err(|e| Error::from_json(&e))?;
                return Ok(Some(Data::Text(text)));
            }
            Ok(Some(Data::Json(JsonText::from(raw.into_boxed()))))
        }
    }
}

fn decode_base64(name: &'static str, encoded: &str) -> Result<Data, Error> {
    BASE64
        .decode(encoded)
        .map(Data::Binary)
        .map_err(|_| Error::invalid(name, Rule::Base64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_str(text: &str) -> Result<Event, Error> {
        decode(text.as_bytes())
    }

    #[test]
    fn spec_example_v1() {
        let event = decode_str(
            r#"{
                "specversion" : "1.0",
                "type" : "com.github.pull_request.opened",
                "source" : "https://github.com/cloudevents/spec/pull",
                "subject" : "123",
                "id" : "A234-1234-1234",
                "time" : "2018-04-05T17:31:00Z",
                "comexampleextension1" : "value",
                "comexampleothervalue" : 5,
                "datacontenttype" : "text/xml",
                "data" : "<much wow=\"xml\"/>"
            }"#,
        )
        .unwrap();
        assert_eq!(event.ty(), "com.github.pull_request.opened");
        assert_eq!(event.subject(), Some("123"));
        assert_eq!(
            event.extension("comexampleothervalue"),
            Some(&ExtensionValue::Integer(5))
        );
        assert_eq!(
            event.data(),
            Some(&Data::Text("<much wow=\"xml\"/>".into()))
        );
    }

    #[test]
    fn spec_example_binary_data_v1() {
        let event = decode_str(
            r#"{"specversion":"1.0","type":"com.example.someevent","source":"/mycontext",
                "id":"A234-1234-1234","datacontenttype":"application/vnd.apache.thrift.binary",
                "data_base64":"... base64 encoded string ..."}"#,
        );
        assert!(matches!(
            event,
            Err(Error::InvalidAttribute { ref name, rule: Rule::Base64 }) if name == "data_base64"
        ));
        let event = decode_str(
            r#"{"specversion":"1.0","type":"t","source":"/s","id":"1",
                "datacontenttype":"application/octet-stream","data_base64":"AAEC"}"#,
        )
        .unwrap();
        assert_eq!(event.data(), Some(&Data::Binary(vec![0, 1, 2])));
    }

    #[test]
    fn v03_base64_data_and_map_extensions() {
        let event = decode_str(
            r#"{"specversion":"0.3","type":"t","source":"/s","id":"1",
                "datacontentencoding":"base64","data":"AAEC",
                "schemaurl":"/relative/schema",
                "comexampleextension2":{"othervalue":5}}"#,
        )
        .unwrap();
        assert_eq!(event.data(), Some(&Data::Binary(vec![0, 1, 2])));
        assert_eq!(event.dataschema(), Some("/relative/schema"));
        let map = BTreeMap::from([("othervalue".to_owned(), "5".to_owned())]);
        assert_eq!(
            event.extension("comexampleextension2"),
            Some(&ExtensionValue::Map(map))
        );
        let text = String::from_utf8(encode(&event).unwrap()).unwrap();
        assert!(text.contains(r#""datacontentencoding":"base64""#), "{text}");
        assert!(text.contains(r#""data":"AAEC""#), "{text}");
        assert_eq!(decode_str(&text).unwrap(), event);
    }

    #[test]
    fn v03_other_encodings_are_refused() {
        let error = decode_str(
            r#"{"specversion":"0.3","type":"t","source":"/s","id":"1",
                "datacontentencoding":"quoted-printable","data":"x"}"#,
        )
        .unwrap_err();
        assert!(matches!(
            error,
            Error::InvalidAttribute {
                rule: Rule::Base64EncodingOnly,
                ..
            }
        ));
    }

    #[test]
    fn json_data_is_kept_verbatim_through_a_round_trip() {
        let input = r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{ "z" : [1.50, 2e3], "a" : null }}"#;
        let event = decode_str(input).unwrap();
        let output = encode(&event).unwrap();
        assert_eq!(String::from_utf8(output).unwrap(), input);
    }

    #[test]
    fn null_data_is_json_null_not_absent() {
        // A pass-through must not drop `"data": null`; null *attributes* are absent.
        let event = decode_str(
            r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","subject":null,"data":null}"#,
        )
        .unwrap();
        assert_eq!(event.subject(), None);
        assert_eq!(event.data(), Some(&Data::json_text("null").unwrap()));
    }

    #[test]
    fn typed_errors_for_malformed_documents() {
        assert!(matches!(
            decode_str("{"),
            Err(Error::MalformedJson { line: 1, .. })
        ));
        assert!(matches!(
            decode_str("[]"),
            Err(Error::NotAnObject { found: "an array" })
        ));
        assert!(matches!(
            decode_str("{} x"),
            Err(Error::MalformedJson { .. })
        ));
        let duplicate = r#"{"specversion":"1.0","id":"1","id":"2","source":"/s","type":"t"}"#;
        assert!(matches!(
            decode_str(duplicate),
            Err(Error::MalformedJson { .. })
        ));
        let big = r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","n":2147483648}"#;
        assert!(matches!(
            decode_str(big),
            Err(Error::InvalidAttribute {
                rule: Rule::Integer32,
                ..
            })
        ));
        let nested = r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","n":{"a":1}}"#;
        assert!(matches!(
            decode_str(nested),
            Err(Error::InvalidAttribute {
                rule: Rule::ExtensionType,
                ..
            })
        ));
    }

    #[test]
    fn batches() {
        assert_eq!(decode_batch(b"[]").unwrap(), vec![]);
        assert!(matches!(
            decode_batch(b"{}"),
            Err(Error::NotABatch { found: "an object" })
        ));
        let events = vec![
            Event::builder()
                .id("1")
                .ty("t")
                .source("/s")
                .build()
                .unwrap(),
            Event::builder()
                .id("2")
                .ty("t")
                .source("/s")
                .data("x")
                .datacontenttype("text/plain")
                .build()
                .unwrap(),
        ];
        let bytes = encode_batch(&events).unwrap();
        assert_eq!(decode_batch(&bytes).unwrap(), events);
        let bad = br#"[{"specversion":"1.0","id":"1","source":"/s","type":"t"}, 5]"#;
        assert!(matches!(
            decode_batch(bad),
            Err(Error::InBatch { index: 1, ref source }) if matches!(**source, Error::NotAnObject { .. })
        ));
    }

    #[test]
    fn serde_impls_work_inside_other_documents() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Envelope {
            event: Event,
        }
        let event = Event::builder()
            .id("1")
            .ty("t")
            .source("/s")
            .json_data(&[1, 2])
            .build()
            .unwrap();
        let text = serde_json::to_string(&Envelope {
            event: event.clone(),
        })
        .unwrap();
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert_eq!(back.event, event);
        let reader_back: Envelope = serde_json::from_reader(text.as_bytes()).unwrap();
        assert_eq!(reader_back.event, event);
    }
}
