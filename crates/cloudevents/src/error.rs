//! The crate's error type: every way an event, a JSON document or an HTTP message can be wrong.

use std::fmt;

/// A rule of the CloudEvents specification that an attribute value broke.
///
/// Carried by [`Error::InvalidAttribute`] so callers can react to the rule, not just the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rule {
    /// The value must be a non-empty string.
    NonEmpty,
    /// The value must be a JSON string (the event had a number, object, …).
    MustBeString,
    /// The value must be a URI-reference (RFC 3986 §4.1).
    UriReference,
    /// The value must be an absolute URI (RFC 3986 §4.3).
    AbsoluteUri,
    /// The value must be an RFC 3339 timestamp with seconds and an offset.
    Rfc3339,
    /// The value must be a media type as RFC 2046 defines it (`type/subtype; param=value`).
    MediaType,
    /// An integer attribute must lie in the signed 32-bit range and have no fraction.
    Integer32,
    /// The value must be a boolean (`true` or `false`).
    Boolean,
    /// The value must be valid base64 (RFC 4648).
    Base64,
    /// The value must be a string, integer or boolean (an extension had an object, array or
    /// fraction where the version does not allow one).
    ExtensionType,
    /// `datacontentencoding` (v0.3) supports only `base64`.
    Base64EncodingOnly,
}

impl Rule {
    /// A short sentence stating the rule, as used in error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Rule::NonEmpty => "must be a non-empty string",
            Rule::MustBeString => "must be a JSON string",
            Rule::UriReference => "must be a URI-reference (RFC 3986, section 4.1)",
            Rule::AbsoluteUri => "must be an absolute URI (RFC 3986, section 4.3)",
            Rule::Rfc3339 => {
                "must be an RFC 3339 timestamp such as 2018-04-05T17:31:00Z (seconds and offset required)"
            }
            Rule::MediaType => "must be an RFC 2046 media type such as application/json",
            Rule::Integer32 => "must be a whole number between -2147483648 and 2147483647",
            Rule::Boolean => "must be `true` or `false`",
            Rule::Base64 => "must be base64 (RFC 4648)",
            Rule::ExtensionType => {
                "must be a string, a boolean or an integer (objects, arrays and fractions are not CloudEvents types)"
            }
            Rule::Base64EncodingOnly => "only `base64` is supported",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// Everything that can go wrong building, decoding, encoding or converting a CloudEvent.
///
/// Every variant says what was wrong and where: the attribute, header, batch index or
/// JSON position. Decoding untrusted input never panics; it returns one of these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A REQUIRED attribute (`id`, `source`, `specversion`, `type`) is absent.
    #[error("missing required attribute `{name}`")]
    MissingAttribute {
        /// The attribute's name.
        name: &'static str,
    },

    /// An attribute is present but breaks a rule of the specification.
    #[error("attribute `{name}` {rule}")]
    InvalidAttribute {
        /// The attribute's name.
        name: String,
        /// The rule it broke.
        rule: Rule,
    },

    /// An extension attribute name breaks the naming rule (lower-case `a`–`z`, `0`–`9`).
    #[error(
        "`{name}` is not a valid attribute name: names use only lower-case letters a-z and digits 0-9"
    )]
    InvalidAttributeName {
        /// The offending name.
        name: String,
    },

    /// An extension would shadow a context attribute of the event's version, or `data`.
    #[error("`{name}` is reserved by the CloudEvents specification and cannot be an extension")]
    ReservedAttributeName {
        /// The reserved name.
        name: String,
    },

    /// `specversion` names a version this crate does not implement.
    #[error("unsupported specversion `{found}` (supported: 0.3, 1.0)")]
    UnsupportedSpecVersion {
        /// The value found.
        found: String,
    },

    /// The bytes are not JSON, or not a JSON object where an event was expected.
    #[error("malformed JSON at line {line}, column {column}: {message}")]
    MalformedJson {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the parser expected.
        message: String,
    },

    /// A JSON event is not an object (for example a string inside a batch).
    #[error("expected a JSON object for the event, found {found}")]
    NotAnObject {
        /// The JSON kind found instead (`string`, `array`, …).
        found: &'static str,
    },

    /// A batch is not a JSON array.
    #[error("a CloudEvents batch must be a JSON array, found {found}")]
    NotABatch {
        /// The JSON kind found instead.
        found: &'static str,
    },

    /// A JSON event carries both `data` and `data_base64`.
    #[error("an event cannot carry both `data` and `data_base64`")]
    ConflictingData,

    /// Event data that must be JSON (by its content type) is not.
    #[error("data declared as `{content_type}` is not valid JSON: {message}")]
    InvalidJsonData {
        /// The declared content type.
        content_type: String,
        /// What the JSON parser reported.
        message: String,
    },

    /// An element of a batch is invalid.
    #[error("batch element {index}: {source}")]
    InBatch {
        /// 0-based index of the element in the batch.
        index: usize,
        /// What is wrong with it.
        #[source]
        source: Box<Error>,
    },

    /// An HTTP header cannot be decoded (bad quoting, bad percent-escape, not UTF-8).
    #[error("header `{name}`: {reason}")]
    InvalidHeader {
        /// The header's name, lower-cased.
        name: String,
        /// What is wrong with its value.
        reason: &'static str,
    },

    /// An HTTP message carries neither a CloudEvents content type nor a `ce-specversion` header.
    #[error(
        "not a CloudEvents HTTP message: no `ce-specversion` header and the Content-Type is not application/cloudevents+json or application/cloudevents-batch+json"
    )]
    NotACloudEvent,

    /// A structured or batched message uses an event format other than JSON.
    #[error("unsupported CloudEvents event format `{content_type}` (only JSON is supported)")]
    UnsupportedFormat {
        /// The Content-Type found.
        content_type: String,
    },

    /// A single event was asked for but the message holds a batch.
    #[error("expected a single event but the message is a batch of {len}")]
    UnexpectedBatch {
        /// Number of events in the batch.
        len: usize,
    },

    /// An event cannot be represented in the requested spec version.
    #[error("cannot convert attribute `{name}` to specversion {target}: {reason}")]
    Conversion {
        /// The attribute that does not carry over.
        name: String,
        /// The target version.
        target: &'static str,
        /// Why not.
        reason: &'static str,
    },

    /// A message could not be encoded (an attribute value cannot be put in a header).
    #[error("cannot encode `{name}` into an HTTP header: {reason}")]
    Encode {
        /// The attribute or header involved.
        name: String,
        /// Why not.
        reason: &'static str,
    },
}

impl Error {
    pub(crate) fn invalid(name: impl Into<String>, rule: Rule) -> Self {
        Error::InvalidAttribute {
            name: name.into(),
            rule,
        }
    }

    pub(crate) fn from_json(error: &serde_json::Error) -> Self {
        // serde_json appends " at line L column C"; the position has its own fields.
        let text = error.to_string();
        let message = match text.rsplit_once(" at line ") {
            Some((message, _)) => message.to_owned(),
            None => text,
        };
        Error::MalformedJson {
            line: error.line(),
            column: error.column(),
            message,
        }
    }

    pub(crate) fn in_batch(self, index: usize) -> Self {
        Error::InBatch {
            index,
            source: Box::new(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_attribute_names_the_attribute_and_the_rule() {
        let error = Error::invalid("source", Rule::UriReference);
        assert_eq!(
            error.to_string(),
            "attribute `source` must be a URI-reference (RFC 3986, section 4.1)"
        );
    }

    #[test]
    fn batch_errors_give_the_index() {
        let error = Error::MissingAttribute { name: "id" }.in_batch(3);
        assert_eq!(
            error.to_string(),
            "batch element 3: missing required attribute `id`"
        );
    }
}
