//! Values on the wire: the `/spec` reply envelope, the list of unresolvable references,
//! binary values (`{"$encoding": "base64", "data": …}`) and secrets that never print.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

/// A reference to a secret that is not set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SecretRef {
    /// Secret name.
    pub name: String,
}

/// A reference to a connection that is not configured.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConnectionRef {
    /// Connection type (`aws`, `azure`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// Connection name.
    pub name: String,
}

/// A reference to an output another step has not set (yet).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OutputRef {
    /// The step that sets it (`taskName` in specs; Relay's envelope calls it `from`).
    pub from: String,
    /// Output name.
    pub name: String,
}

/// A reference to a workflow parameter that has no value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ParameterRef {
    /// Parameter name.
    pub name: String,
}

/// The references a `/spec` reply could not resolve, as Relay listed them: every list
/// optional, empty ones left out.
///
/// ```
/// use switchyard_metadata::{SecretRef, Unresolvable};
///
/// let mut missing = Unresolvable::default();
/// missing.secrets.push(SecretRef { name: "password".into() });
/// assert_eq!(serde_json::to_string(&missing)?, r#"{"secrets":[{"name":"password"}]}"#);
/// assert_eq!(missing.to_string(), "secret `password`");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unresolvable {
    /// Secrets not set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretRef>,
    /// Connections not configured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<ConnectionRef>,
    /// Outputs not set yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<OutputRef>,
    /// Parameters without a value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<ParameterRef>,
    /// Lists of other kinds a Relay server may send (`data`, `answers`), kept as they came.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

impl Unresolvable {
    /// Whether nothing is missing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
            && self.connections.is_empty()
            && self.outputs.is_empty()
            && self.parameters.is_empty()
            && self.other.is_empty()
    }

    /// Sorts each list and removes repeats (a spec may mention one secret twice).
    #[cfg(feature = "server")]
    pub(crate) fn normalize(&mut self) {
        fn dedup<T: Ord>(list: &mut Vec<T>) {
            list.sort();
            list.dedup();
        }
        dedup(&mut self.secrets);
        dedup(&mut self.connections);
        dedup(&mut self.outputs);
        dedup(&mut self.parameters);
    }
}

impl fmt::Display for Unresolvable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        parts.extend(self.secrets.iter().map(|s| format!("secret `{}`", s.name)));
        parts.extend(
            self.connections
                .iter()
                .map(|c| format!("connection `{}` of type `{}`", c.name, c.kind)),
        );
        parts.extend(
            self.outputs
                .iter()
                .map(|o| format!("output `{}` of step `{}`", o.name, o.from)),
        );
        parts.extend(
            self.parameters
                .iter()
                .map(|p| format!("parameter `{}`", p.name)),
        );
        parts.extend(self.other.keys().map(|k| format!("{k} references")));
        if parts.is_empty() {
            f.write_str("nothing listed")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// The `/spec` reply: `{"value", "unresolvable", "complete"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpecResponse {
    /// The value at the query (unresolved references left in place as their mappings).
    pub value: Value,
    /// What could not be resolved.
    #[serde(default)]
    pub unresolvable: Unresolvable,
    /// Whether every reference in `value` was resolved. Required: the Python client crashes
    /// on a reply without it, so ours refuses one too.
    pub complete: bool,
}

/// Binary data as the metadata API carries it: plain text when it is UTF-8, otherwise
/// `{"$encoding": "base64", "data": "…"}`. Deserialises from either form (and from
/// `{"$encoding": "", "data": "…"}`), so `get_as::<Binary>` reads any secret.
///
/// ```
/// use switchyard_metadata::Binary;
///
/// let raw: Binary = serde_json::from_str(r#"{"$encoding": "base64", "data": "/wA="}"#)?;
/// assert_eq!(raw.as_bytes(), &[0xff, 0x00]);
/// assert_eq!(serde_json::to_string(&raw)?, r#"{"$encoding":"base64","data":"/wA="}"#);
///
/// let text: Binary = serde_json::from_str(r#""hunter2""#)?;
/// assert_eq!(serde_json::to_string(&text)?, r#""hunter2""#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Binary(pub Vec<u8>);

impl Binary {
    /// The bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes, owned.
    #[must_use]
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl fmt::Debug for Binary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Binary({} bytes)", self.0.len())
    }
}

impl Serialize for Binary {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        encode_bytes(&self.0).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Binary {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BinaryVisitor;

        impl<'de> Visitor<'de> for BinaryVisitor {
            type Value = Binary;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a string or {"$encoding": "base64", "data": "..."}"#)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Binary, E> {
                Ok(Binary(v.as_bytes().to_vec()))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Binary, A::Error> {
                let mut encoding: Option<String> = None;
                let mut data: Option<String> = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "$encoding" => encoding = Some(map.next_value()?),
                        "data" => data = Some(map.next_value()?),
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                let data = data.ok_or_else(|| de::Error::missing_field("data"))?;
                match encoding.as_deref() {
                    Some("base64") => BASE64
                        .decode(data.as_bytes())
                        .map(Binary)
                        .map_err(|e| de::Error::custom(format!("bad base64 in `data`: {e}"))),
                    Some("") => Ok(Binary(data.into_bytes())),
                    Some(other) => Err(de::Error::custom(format!(
                        "unknown $encoding {other:?} (expected \"base64\" or \"\")"
                    ))),
                    None => Err(de::Error::missing_field("$encoding")),
                }
            }
        }

        deserializer.deserialize_any(BinaryVisitor)
    }
}

/// Encodes bytes the way Relay did: a JSON string when they are UTF-8, base64 otherwise.
pub(crate) fn encode_bytes(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => Value::String(text.to_owned()),
        Err(_) => {
            let mut object = Map::new();
            object.insert("$encoding".into(), Value::String("base64".into()));
            object.insert("data".into(), Value::String(BASE64.encode(bytes)));
            Value::Object(object)
        }
    }
}

#[cfg(feature = "client")]
/// Applies the Python client's decoding of `{"$encoding": "", "data": s}` to plain text,
/// everywhere in a value. Base64 objects stay as they are: a JSON value has no bytes type;
/// read them with [`Binary`].
pub(crate) fn decode_text_encodings(value: &mut Value) {
    match value {
        Value::Object(object) => {
            let is_text = object.get("$encoding").and_then(Value::as_str) == Some("")
                && object.get("data").is_some_and(Value::is_string);
            if is_text {
                if let Some(data) = object.remove("data") {
                    *value = data;
                }
            } else {
                object.values_mut().for_each(decode_text_encodings);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(decode_text_encodings),
        _ => {}
    }
}

/// A secret value held by the service: wiped from memory on drop, never shown by `Debug`.
#[derive(Clone)]
pub struct SecretValue(Zeroizing<Vec<u8>>);

impl SecretValue {
    /// Wraps the bytes.
    #[must_use]
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        SecretValue(Zeroizing::new(bytes.into()))
    }

    /// The bytes (handle with care).
    #[must_use]
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl From<&str> for SecretValue {
    fn from(text: &str) -> Self {
        SecretValue::new(text.as_bytes())
    }
}

impl From<String> for SecretValue {
    fn from(text: String) -> Self {
        SecretValue::new(text.into_bytes())
    }
}

impl From<Vec<u8>> for SecretValue {
    fn from(bytes: Vec<u8>) -> Self {
        SecretValue::new(bytes)
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue([redacted])")
    }
}

/// A started workflow run, as the API answers it: exactly these three fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowRun {
    /// The workflow name.
    pub name: String,
    /// The run's number within the workflow, from 1.
    pub run_number: u64,
    /// Where a person can look at the run.
    pub app_url: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_encodings_decode_everywhere() {
        let mut v = json!({"a": {"$encoding": "", "data": "x"}, "b": [{"$encoding": "", "data": "y"}],
                           "c": {"$encoding": "base64", "data": "/w=="}});
        decode_text_encodings(&mut v);
        assert_eq!(
            v,
            json!({"a": "x", "b": ["y"], "c": {"$encoding": "base64", "data": "/w=="}})
        );
    }

    #[test]
    fn binary_rejects_bad_forms() {
        for bad in [
            r#"{"$encoding": "hex", "data": "ff"}"#,
            r#"{"$encoding": "base64"}"#,
            r#"{"$encoding": "base64", "data": "!!"}"#,
            r#"{"data": "x"}"#,
            "12",
        ] {
            assert!(serde_json::from_str::<Binary>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_do_not_print() {
        let s = SecretValue::from("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn unresolvable_keeps_other_kinds() {
        let u: Unresolvable =
            serde_json::from_value(json!({"secrets": [{"name": "a"}], "data": [{"name": "q"}]}))
                .expect("parse");
        assert_eq!(u.secrets.len(), 1);
        assert!(u.other.contains_key("data"));
        assert_eq!(u.to_string(), "secret `a`, data references");
    }
}
