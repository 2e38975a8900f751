//! Extension attribute values and their CloudEvents types.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::{Error, Rule, Timestamp, validate};

/// The value of an extension attribute, typed by the CloudEvents type system.
///
/// Every type has a canonical string form ([`ExtensionValue::to_canonical_string`]) used in
/// HTTP headers. The JSON format keeps booleans and integers as JSON booleans and numbers and
/// everything else as strings, so a value decoded from JSON or from a header without a schema
/// comes back as [`Boolean`](Self::Boolean), [`Integer`](Self::Integer) or
/// [`String`](Self::String); the `as_*` accessors read the other types out of a string.
///
/// ```
/// use switchyard_cloudevents::ExtensionValue;
///
/// let v = ExtensionValue::from("2023-03-31T15:12:00Z");
/// assert!(v.as_timestamp().is_some());
/// assert_eq!(ExtensionValue::from(10).to_canonical_string(), "10");
/// assert_eq!(ExtensionValue::Binary(b"Ma".to_vec()).to_canonical_string(), "TWE=");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExtensionValue {
    /// `Boolean`: `true` or `false`.
    Boolean(bool),
    /// `Integer`: a signed 32-bit whole number.
    Integer(i32),
    /// `String`: a sequence of Unicode characters.
    String(String),
    /// `Binary`: bytes, base64 in string form.
    Binary(Vec<u8>),
    /// `URI`: an absolute URI.
    Uri(String),
    /// `URI-reference`: a URI or relative reference.
    UriRef(String),
    /// `Timestamp`: an RFC 3339 date and time.
    Timestamp(Timestamp),
    /// `Map` (CloudEvents 0.3 only): a string-indexed dictionary, flattened to
    /// `ce-<name>-<key>` headers in HTTP binary mode.
    Map(BTreeMap<String, String>),
}

impl ExtensionValue {
    /// The CloudEvents type's name, as the specification spells it.
    pub fn type_name(&self) -> &'static str {
        match self {
            ExtensionValue::Boolean(_) => "Boolean",
            ExtensionValue::Integer(_) => "Integer",
            ExtensionValue::String(_) => "String",
            ExtensionValue::Binary(_) => "Binary",
            ExtensionValue::Uri(_) => "URI",
            ExtensionValue::UriRef(_) => "URI-reference",
            ExtensionValue::Timestamp(_) => "Timestamp",
            ExtensionValue::Map(_) => "Map",
        }
    }

    /// The canonical string encoding of the value (a `Map` renders as a JSON object).
    pub fn to_canonical_string(&self) -> String {
        match self {
            ExtensionValue::Boolean(b) => b.to_string(),
            ExtensionValue::Integer(i) => i.to_string(),
            ExtensionValue::String(s) | ExtensionValue::Uri(s) | ExtensionValue::UriRef(s) => {
                s.clone()
            }
            ExtensionValue::Binary(bytes) => BASE64.encode(bytes),
            ExtensionValue::Timestamp(t) => t.to_string(),
            ExtensionValue::Map(map) => serde_json::to_string(map).unwrap_or_default(),
        }
    }

    /// The value as a string when it is string-typed (String, URI, URI-reference).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            ExtensionValue::String(s) | ExtensionValue::Uri(s) | ExtensionValue::UriRef(s) => {
                Some(s)
            }
            _ => None,
        }
    }

    /// The value as a boolean, reading the canonical string form when needed.
    ///
    /// Besides the canonical `true`/`false` this accepts `True`/`False`, which the Python
    /// `cloudevents` SDK (2.x) writes into binary-mode headers.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            ExtensionValue::Boolean(b) => Some(*b),
            ExtensionValue::String(s) => match s.as_str() {
                "true" | "True" => Some(true),
                "false" | "False" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    /// The value as an integer, reading the canonical string form when needed.
    pub fn as_integer(&self) -> Option<i32> {
        match self {
            ExtensionValue::Integer(i) => Some(*i),
            ExtensionValue::String(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// The value as a timestamp, reading the canonical string form when needed.
    pub fn as_timestamp(&self) -> Option<Timestamp> {
        match self {
            ExtensionValue::Timestamp(t) => Some(t.clone()),
            ExtensionValue::String(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// The value as bytes, decoding the base64 string form when needed.
    pub fn as_binary(&self) -> Option<Vec<u8>> {
        match self {
            ExtensionValue::Binary(bytes) => Some(bytes.clone()),
            ExtensionValue::String(s) => BASE64.decode(s).ok(),
            _ => None,
        }
    }

    /// Checks the value against its type's rules; `name` is used in the error.
    pub(crate) fn validate(&self, name: &str) -> Result<(), Error> {
        match self {
            ExtensionValue::Uri(s) => validate::absolute_uri(name, s),
            ExtensionValue::UriRef(s) => validate::uri_reference(name, s),
            _ => Ok(()),
        }
    }

    /// Builds a `Binary` value from its base64 string form.
    pub fn binary_from_base64(name: &str, encoded: &str) -> Result<Self, Error> {
        BASE64
            .decode(encoded)
            .map(ExtensionValue::Binary)
            .map_err(|_| Error::invalid(name, Rule::Base64))
    }
}

impl fmt::Display for ExtensionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_canonical_string())
    }
}

impl From<bool> for ExtensionValue {
    fn from(value: bool) -> Self {
        ExtensionValue::Boolean(value)
    }
}

impl From<i32> for ExtensionValue {
    fn from(value: i32) -> Self {
        ExtensionValue::Integer(value)
    }
}

impl From<&str> for ExtensionValue {
    fn from(value: &str) -> Self {
        ExtensionValue::String(value.to_owned())
    }
}

impl From<String> for ExtensionValue {
    fn from(value: String) -> Self {
        ExtensionValue::String(value)
    }
}

impl From<Timestamp> for ExtensionValue {
    fn from(value: Timestamp) -> Self {
        ExtensionValue::Timestamp(value)
    }
}

impl From<Vec<u8>> for ExtensionValue {
    fn from(value: Vec<u8>) -> Self {
        ExtensionValue::Binary(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_strings() {
        assert_eq!(ExtensionValue::Boolean(true).to_canonical_string(), "true");
        assert_eq!(
            ExtensionValue::Integer(-2_147_483_648).to_canonical_string(),
            "-2147483648"
        );
        let map = BTreeMap::from([("a".to_owned(), "1".to_owned())]);
        assert_eq!(
            ExtensionValue::Map(map).to_canonical_string(),
            r#"{"a":"1"}"#
        );
    }

    #[test]
    fn typed_reads_from_strings() {
        assert_eq!(ExtensionValue::from("true").as_bool(), Some(true));
        assert_eq!(ExtensionValue::from("False").as_bool(), Some(false));
        assert_eq!(ExtensionValue::from("yes").as_bool(), None);
        assert_eq!(ExtensionValue::from("42").as_integer(), Some(42));
        assert_eq!(
            ExtensionValue::from("TWE=").as_binary(),
            Some(b"Ma".to_vec())
        );
        assert_eq!(ExtensionValue::from("nope").as_integer(), None);
    }

    #[test]
    fn uri_values_are_checked() {
        assert!(
            ExtensionValue::Uri("/relative".into())
                .validate("x")
                .is_err()
        );
        assert!(
            ExtensionValue::UriRef("//authority/path".into())
                .validate("x")
                .is_ok()
        );
    }
}
