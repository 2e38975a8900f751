//! Checks for the CloudEvents type system: names, URIs, media types.
//!
//! Each check returns the [`Rule`] it enforces so callers can name the attribute.

use iri_string::spec::UriSpec;
use iri_string::validate;

use crate::{Error, Rule};

/// Checks a `String` attribute that must not be empty.
pub(crate) fn non_empty(name: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        Err(Error::invalid(name, Rule::NonEmpty))
    } else {
        Ok(())
    }
}

/// Checks a non-empty URI-reference (RFC 3986 §4.1).
pub(crate) fn uri_reference(name: &str, value: &str) -> Result<(), Error> {
    non_empty(name, value)?;
    validate::iri_reference::<UriSpec>(value).map_err(|_| Error::invalid(name, Rule::UriReference))
}

/// Checks an absolute URI (RFC 3986 §4.3; a fragment is tolerated).
pub(crate) fn absolute_uri(name: &str, value: &str) -> Result<(), Error> {
    non_empty(name, value)?;
    validate::iri::<UriSpec>(value).map_err(|_| Error::invalid(name, Rule::AbsoluteUri))
}

/// Checks an RFC 2046 media type such as `application/json; charset=utf-8`.
pub(crate) fn media_type(name: &str, value: &str) -> Result<(), Error> {
    non_empty(name, value)?;
    value
        .parse::<mime::Mime>()
        .map(drop)
        .map_err(|_| Error::invalid(name, Rule::MediaType))
}

/// Whether `name` obeys the attribute naming rule: one or more of `a`–`z`, `0`–`9`.
pub(crate) fn is_attribute_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// The media type without parameters, trimmed: `application/json; charset=x` → `application/json`.
fn essence(content_type: &str) -> &str {
    let end = content_type.find(';').unwrap_or(content_type.len());
    content_type[..end].trim()
}

/// Whether a content type declares JSON: `application/json`, `text/json` or a `+json` suffix.
///
/// ```
/// use switchyard_cloudevents::is_json_content_type;
///
/// assert!(is_json_content_type("application/json; charset=utf-8"));
/// assert!(is_json_content_type("application/vnd.api+JSON"));
/// assert!(!is_json_content_type("text/plain"));
/// ```
pub fn is_json_content_type(content_type: &str) -> bool {
    let essence = essence(content_type);
    let Some((top, sub)) = essence.split_once('/') else {
        return false;
    };
    let top_ok = top.eq_ignore_ascii_case("application") || top.eq_ignore_ascii_case("text");
    let sub_ok = sub.eq_ignore_ascii_case("json")
        || (sub.len() > 5 && sub[sub.len() - 5..].eq_ignore_ascii_case("+json"));
    top_ok && sub_ok
}

/// Whether a content type declares text: `text/*`, or any type with a `charset` parameter.
///
/// In HTTP binary mode such a body is decoded as [`Data::Text`](crate::Data::Text) when it is
/// valid UTF-8; other non-JSON types are decoded as [`Data::Binary`](crate::Data::Binary).
pub fn is_text_content_type(content_type: &str) -> bool {
    let essence = essence(content_type);
    let is_text = essence
        .get(..5)
        .is_some_and(|top| top.eq_ignore_ascii_case("text/"));
    is_text
        || content_type.split(';').skip(1).any(|param| {
            param
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("charset=")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_references_from_the_spec_are_accepted() {
        for source in [
            "https://github.com/cloudevents",
            "mailto:cncf-wg-serverless@lists.cncf.io",
            "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66",
            "/cloudevents/spec/pull/123",
            "/sensors/tn-1234567/alerts",
            "1-555-123-4567",
            "#fragment",
            "//authority/path",
        ] {
            uri_reference("source", source).unwrap();
        }
    }

    #[test]
    fn broken_uri_references_are_rejected() {
        for source in ["", "has space", "%zz", "http://[::1"] {
            assert!(uri_reference("source", source).is_err(), "{source}");
        }
    }

    #[test]
    fn dataschema_must_be_absolute() {
        absolute_uri("dataschema", "https://cloudevents.io/dataschema").unwrap();
        assert!(absolute_uri("dataschema", "/relative").is_err());
        assert!(absolute_uri("dataschema", "").is_err());
    }

    #[test]
    fn media_types() {
        media_type("datacontenttype", "application/json").unwrap();
        media_type("datacontenttype", "text/plain; charset=us-ascii").unwrap();
        assert!(media_type("datacontenttype", "xyz").is_err());
        assert!(media_type("datacontenttype", "").is_err());
    }

    #[test]
    fn attribute_names() {
        assert!(is_attribute_name("comexampleextension1"));
        assert!(is_attribute_name("1st"));
        assert!(!is_attribute_name("MyExtension"));
        assert!(!is_attribute_name("my.extension"));
        assert!(!is_attribute_name("data_base64"));
        assert!(!is_attribute_name(""));
    }

    #[test]
    fn json_and_text_detection() {
        assert!(is_json_content_type("application/json"));
        assert!(is_json_content_type("text/json"));
        assert!(is_json_content_type("application/cloudevents+json"));
        assert!(!is_json_content_type("application/xml"));
        assert!(!is_json_content_type("json"));
        assert!(is_text_content_type("text/plain"));
        assert!(is_text_content_type("application/xml; charset=utf-8"));
        assert!(!is_text_content_type("application/octet-stream"));
    }
}
