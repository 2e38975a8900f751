//! Event data: raw JSON text, bytes, or text.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::Error;

/// The payload of an event.
///
/// JSON is kept as the exact text it arrived in (a [`RawValue`]), so an event that passes
/// through is never re-serialised: key order, spacing and number spelling survive. Parse it
/// when you need it with [`Data::deserialize_json`].
///
/// How each kind is written:
///
/// | kind | JSON format (1.0) | JSON format (0.3) | HTTP binary mode body |
/// |---|---|---|---|
/// | `Json` | `"data": <the JSON>` | `"data": <the JSON>` | the JSON text |
/// | `Text` | `"data": "<the text>"` | `"data": "<the text>"` | the UTF-8 text |
/// | `Binary` | `"data_base64": "<base64>"` | `"data": "<base64>"` + `datacontentencoding` | the bytes |
///
/// And how each is read back: `data_base64` (or 0.3 `datacontentencoding: base64`) gives
/// `Binary`; `data` gives `Json` when `datacontenttype` is JSON or absent, `Text` when it is
/// another type and the value is a JSON string. A binary-mode body gives `Json` for a JSON
/// content type (or none, when the body parses as JSON), `Text` for `text/*` or a `charset`
/// parameter when it is UTF-8, and `Binary` otherwise.
///
/// A binary-mode body declared as JSON is not parsed on arrival: a binary-to-binary
/// pass-through never does JSON work. It is checked when first needed, by
/// [`Data::deserialize_json`], [`JsonText::check`] or a structured-mode encode, each of
/// which returns [`Error::InvalidJsonData`] for a body that is not JSON.
///
/// `"data": null` is JSON `null`, kept as such; only a missing `data` member (or an empty
/// binary-mode body) means no data.
///
/// Equality compares the payload bytes, so two JSON values spelled differently differ.
///
/// ```
/// use switchyard_cloudevents::Data;
///
/// let data = Data::json_text(r#"{"b": 1, "a": 2}"#).unwrap();
/// assert_eq!(data.as_bytes(), br#"{"b": 1, "a": 2}"#);
/// let value: serde_json::Value = data.deserialize_json().unwrap();
/// assert_eq!(value["a"], 2);
/// assert!(Data::json_text("{not json").is_err());
/// ```
#[derive(Clone)]
pub enum Data {
    /// JSON, as its original text.
    Json(JsonText),
    /// Text that is not JSON (for example `text/plain` or XML).
    Text(String),
    /// Opaque bytes.
    Binary(Vec<u8>),
}

impl Data {
    /// JSON data from any serialisable value.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, Error> {
        serde_json::value::to_raw_value(value)
            .map(|raw| Data::Json(JsonText::from(raw)))
            .map_err(|e| Error::InvalidJsonData {
                content_type: "application/json".to_owned(),
                message: e.to_string(),
            })
    }

    /// JSON data from JSON text, which is checked and then kept exactly as given.
    pub fn json_text(text: impl Into<String>) -> Result<Self, Error> {
        RawValue::from_string(text.into())
            .map(|raw| Data::Json(JsonText::from(raw)))
            .map_err(|e| Error::InvalidJsonData {
                content_type: "application/json".to_owned(),
                message: e.to_string(),
            })
    }

    /// The payload's bytes: the JSON text, the text's UTF-8, or the raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Data::Json(json) => json.as_bytes(),
            Data::Text(text) => text.as_bytes(),
            Data::Binary(bytes) => bytes,
        }
    }

    /// Parses JSON data into `T`; text data is parsed as JSON too, binary data is an error.
    pub fn deserialize_json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let bytes = match self {
            Data::Json(json) => json.as_bytes(),
            Data::Text(text) => text.as_bytes(),
            Data::Binary(_) => {
                return Err(Error::InvalidJsonData {
                    content_type: "binary data".to_owned(),
                    message: "binary data is not JSON".to_owned(),
                });
            }
        };
        serde_json::from_slice(bytes).map_err(|e| Error::InvalidJsonData {
            content_type: "application/json".to_owned(),
            message: e.to_string(),
        })
    }

    /// Whether this is [`Data::Binary`].
    pub fn is_binary(&self) -> bool {
        matches!(self, Data::Binary(_))
    }
}

impl PartialEq for Data {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Data::Json(a), Data::Json(b)) => a.as_bytes() == b.as_bytes(),
            (Data::Text(a), Data::Text(b)) => a == b,
            (Data::Binary(a), Data::Binary(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Data {}

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Data::Json(json) => f
                .debug_tuple("Json")
                .field(&String::from_utf8_lossy(json.as_bytes()))
                .finish(),
            Data::Text(text) => f.debug_tuple("Text").field(text).finish(),
            Data::Binary(bytes) => write!(f, "Binary({} bytes)", bytes.len()),
        }
    }
}

impl From<String> for Data {
    fn from(text: String) -> Self {
        Data::Text(text)
    }
}

impl From<&str> for Data {
    fn from(text: &str) -> Self {
        Data::Text(text.to_owned())
    }
}

impl From<Vec<u8>> for Data {
    fn from(bytes: Vec<u8>) -> Self {
        Data::Binary(bytes)
    }
}

impl From<Box<RawValue>> for Data {
    fn from(raw: Box<RawValue>) -> Self {
        Data::Json(JsonText::from(raw))
    }
}

/// JSON text kept exactly as it arrived: checked already, or (a binary-mode HTTP body
/// declared as JSON) still to be checked on first use.
///
/// ```
/// use switchyard_cloudevents::JsonText;
///
/// let unchecked = JsonText::unchecked(b"{\"a\": 1}".to_vec());
/// assert!(!unchecked.is_checked());
/// assert_eq!(unchecked.to_raw().unwrap().get(), "{\"a\": 1}");
/// assert!(JsonText::unchecked(b"{oops".to_vec()).check().is_err());
/// ```
#[derive(Clone)]
pub struct JsonText(Repr);

#[derive(Clone)]
enum Repr {
    Checked(Box<RawValue>),
    Unchecked(Vec<u8>),
}

impl JsonText {
    /// Wraps bytes that claim to be JSON without parsing them yet.
    pub fn unchecked(bytes: Vec<u8>) -> Self {
        JsonText(Repr::Unchecked(bytes))
    }

    /// The JSON text's bytes, exactly as received or given.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Checked(raw) => raw.get().as_bytes(),
            Repr::Unchecked(bytes) => bytes,
        }
    }

    /// Whether the text is known to be valid JSON.
    pub fn is_checked(&self) -> bool {
        matches!(self.0, Repr::Checked(_))
    }

    /// Checks that the text is one valid JSON value.
    pub fn check(&self) -> Result<(), Error> {
        self.to_raw().map(drop)
    }

    /// The text as a [`RawValue`], parsing it first when it has not been checked.
    pub fn to_raw(&self) -> Result<Cow<'_, RawValue>, Error> {
        match &self.0 {
            Repr::Checked(raw) => Ok(Cow::Borrowed(raw)),
            Repr::Unchecked(bytes) => serde_json::from_slice::<&RawValue>(bytes)
                .map(Cow::Borrowed)
                .map_err(|e| Error::InvalidJsonData {
                    content_type: "application/json".to_owned(),
                    message: e.to_string(),
                }),
        }
    }
}

impl From<Box<RawValue>> for JsonText {
    fn from(raw: Box<RawValue>) -> Self {
        JsonText(Repr::Checked(raw))
    }
}

impl fmt::Debug for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("JsonText")
            .field(&String::from_utf8_lossy(self.as_bytes()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keeps_its_spelling() {
        let data = Data::json_text("{ \"x\" : 1.0e0 }").unwrap();
        assert_eq!(data.as_bytes(), b"{ \"x\" : 1.0e0 }");
    }

    #[test]
    fn json_from_value() {
        let data = Data::json(&serde_json::json!({"a": [1, 2]})).unwrap();
        assert_eq!(data.as_bytes(), br#"{"a":[1,2]}"#);
    }

    #[test]
    fn unchecked_json_is_checked_on_use() {
        let bad = Data::Json(JsonText::unchecked(b"{oops".to_vec()));
        assert!(bad.deserialize_json::<serde_json::Value>().is_err());
        let good = Data::Json(JsonText::unchecked(b"[1]".to_vec()));
        assert_eq!(good, Data::json_text("[1]").unwrap());
        assert_eq!(good.deserialize_json::<Vec<u8>>().unwrap(), vec![1]);
    }

    #[test]
    fn binary_is_not_json() {
        let data = Data::Binary(vec![1, 2, 3]);
        assert!(data.deserialize_json::<serde_json::Value>().is_err());
        assert_eq!(format!("{data:?}"), "Binary(3 bytes)");
    }
}
