//! The CloudEvents HTTP protocol binding: binary, structured and batched content modes.
//!
//! Works on the [`http`] crate's types, so it plugs into hyper, axum, reqwest or anything
//! else built on them. [`from_http`] detects the mode and the spec version by itself.
//!
//! ```
//! use switchyard_cloudevents::{Event, http::{self, Mode}};
//!
//! let event = Event::builder()
//!     .id("1234-1234-1234")
//!     .ty("com.example.someevent")
//!     .source("/mycontext/subcontext")
//!     .subject("née à Zürich")
//!     .datacontenttype("application/json")
//!     .json_data(&serde_json::json!({"message": "Hello World!"}))
//!     .build()?;
//!
//! let message = http::to_binary(&event)?;
//! assert_eq!(message.headers["ce-subject"], "n%C3%A9e%20%C3%A0%20Z%C3%BCrich");
//! assert_eq!(message.headers["content-type"], "application/json");
//!
//! let received = http::from_http(&message.headers, &message.body)?;
//! assert_eq!(received.mode(), Mode::Binary);
//! assert_eq!(received.into_single()?, event);
//! # Ok::<(), switchyard_cloudevents::Error>(())
//! ```
//!
//! Header values follow the binding's rules: on the way out, space, `"`, `%` and everything
//! outside U+0021–U+007E are percent-encoded as UTF-8; on the way in, an RFC 7230 quoted
//! string is unquoted first, then one round of percent-decoding runs (lower-case hex and
//! needless escapes are fine; a broken escape or invalid UTF-8 is an
//! [`Error::InvalidHeader`]). Version 0.3 Map extensions travel as `ce-<name>-<key>` headers.

use std::borrow::Cow;
use std::collections::BTreeMap;

use ::http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use percent_encoding::{AsciiSet, CONTROLS, percent_decode, utf8_percent_encode};
use serde_json::value::RawValue;

use crate::event::{UncheckedContext, check_extension_name};
use crate::{
    Data, Error, Event, ExtensionValue, JsonText, Rule, SpecVersion, is_json_content_type,
    is_text_content_type, json,
};

/// Prefix of every binary-mode attribute header.
pub const HEADER_PREFIX: &str = "ce-";
/// `Content-Type` of structured-mode messages written by [`to_structured`].
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json; charset=UTF-8";
/// `Content-Type` of batched-mode messages written by [`to_batch`].
pub const BATCH_CONTENT_TYPE: &str = "application/cloudevents-batch+json; charset=UTF-8";

/// Characters percent-encoded in header values: controls, space, `"`, `%` (non-ASCII always is).
const HEADER_ESCAPES: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'%');

/// An HTTP message's headers and body, as produced by the `to_*` functions.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpMessage {
    /// The headers to send.
    pub headers: HeaderMap,
    /// The body to send.
    pub body: Vec<u8>,
}

impl HttpMessage {
    /// Turns the message into a `POST` request to `uri`.
    pub fn into_request(self, uri: ::http::Uri) -> ::http::Request<Vec<u8>> {
        let mut request = ::http::Request::new(self.body);
        *request.method_mut() = ::http::Method::POST;
        *request.uri_mut() = uri;
        *request.headers_mut() = self.headers;
        request
    }

    /// Turns the message into a response with the given status.
    pub fn into_response(self, status: ::http::StatusCode) -> ::http::Response<Vec<u8>> {
        let mut response = ::http::Response::new(self.body);
        *response.status_mut() = status;
        *response.headers_mut() = self.headers;
        response
    }
}

/// The content mode of a CloudEvents HTTP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Attributes in `ce-` headers, data in the body.
    Binary,
    /// One event in the body in the JSON format.
    Structured,
    /// A JSON array of events in the body.
    Batch,
}

/// What [`from_http`] found in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A binary-mode event.
    Binary(Event),
    /// A structured-mode event.
    Structured(Event),
    /// A batch (possibly empty).
    Batch(Vec<Event>),
}

impl Received {
    /// The content mode the message used.
    pub fn mode(&self) -> Mode {
        match self {
            Received::Binary(_) => Mode::Binary,
            Received::Structured(_) => Mode::Structured,
            Received::Batch(_) => Mode::Batch,
        }
    }

    /// All events in the message, in order.
    pub fn into_events(self) -> Vec<Event> {
        match self {
            Received::Binary(event) | Received::Structured(event) => vec![event],
            Received::Batch(events) => events,
        }
    }

    /// The single event of a binary or structured message; a batch is
    /// [`Error::UnexpectedBatch`].
    pub fn into_single(self) -> Result<Event, Error> {
        match self {
            Received::Binary(event) | Received::Structured(event) => Ok(event),
            Received::Batch(events) => Err(Error::UnexpectedBatch { len: events.len() }),
        }
    }
}

/// Encodes an event in binary content mode: attributes as `ce-` headers, data as the body.
pub fn to_binary(event: &Event) -> Result<HttpMessage, Error> {
    let mut headers = HeaderMap::with_capacity(8 + event.extensions.len());
    headers.insert(
        HeaderName::from_static("ce-specversion"),
        HeaderValue::from_static(event.specversion.as_str()),
    );
    put(
        &mut headers,
        HeaderName::from_static("ce-id"),
        "id",
        &event.id,
    )?;
    put(
        &mut headers,
        HeaderName::from_static("ce-source"),
        "source",
        &event.source,
    )?;
    put(
        &mut headers,
        HeaderName::from_static("ce-type"),
        "type",
        &event.ty,
    )?;
    if let Some(value) = &event.datacontenttype {
        let value = HeaderValue::from_str(value).map_err(|_| Error::Encode {
            name: "datacontenttype".to_owned(),
            reason: "not a valid Content-Type header value",
        })?;
        headers.insert(CONTENT_TYPE, value);
    }
    if let Some(value) = &event.dataschema {
        let (name, header) = match event.specversion {
            SpecVersion::V1_0 => ("dataschema", HeaderName::from_static("ce-dataschema")),
            SpecVersion::V0_3 => ("schemaurl", HeaderName::from_static("ce-schemaurl")),
        };
        put(&mut headers, header, name, value)?;
    }
    if let Some(value) = &event.subject {
        put(
            &mut headers,
            HeaderName::from_static("ce-subject"),
            "subject",
            value,
        )?;
    }
    if let Some(value) = &event.time {
        put(
            &mut headers,
            HeaderName::from_static("ce-time"),
            "time",
            value.as_str(),
        )?;
    }
    for (name, value) in &event.extensions {
        match value {
            ExtensionValue::Map(map) => {
                for (key, entry) in map {
                    let header = format!("{HEADER_PREFIX}{name}-{key}");
                    if key.is_empty() || key.bytes().any(|b| b.is_ascii_uppercase()) {
                        return Err(Error::Encode {
                            name: header,
                            reason: "a Map key must be non-empty and lower-case to survive as a header name",
                        });
                    }
                    put(&mut headers, header_name(&header)?, &header, entry)?;
                }
            }
            ExtensionValue::String(s) | ExtensionValue::Uri(s) | ExtensionValue::UriRef(s) => {
                put(
                    &mut headers,
                    header_name(&format!("{HEADER_PREFIX}{name}"))?,
                    name,
                    s,
                )?;
            }
            other => {
                let text = other.to_canonical_string();
                put(
                    &mut headers,
                    header_name(&format!("{HEADER_PREFIX}{name}"))?,
                    name,
                    &text,
                )?;
            }
        }
    }
    let body = event
        .data
        .as_ref()
        .map_or_else(Vec::new, |data| data.as_bytes().to_vec());
    Ok(HttpMessage { headers, body })
}

/// Encodes an event in structured content mode (the JSON format).
pub fn to_structured(event: &Event) -> Result<HttpMessage, Error> {
    let body = json::encode(event)?;
    let mut headers = HeaderMap::with_capacity(1);
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(STRUCTURED_CONTENT_TYPE),
    );
    Ok(HttpMessage { headers, body })
}

/// Encodes events in batched content mode (a JSON array).
pub fn to_batch(events: &[Event]) -> Result<HttpMessage, Error> {
    let body = json::encode_batch(events)?;
    let mut headers = HeaderMap::with_capacity(1);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(BATCH_CONTENT_TYPE));
    Ok(HttpMessage { headers, body })
}

/// Decodes a CloudEvents HTTP message, detecting the content mode and the spec version.
///
/// The mode comes from `Content-Type` (case-insensitive): the batch media type is checked
/// before the structured one; otherwise a `ce-specversion` header means binary mode.
/// In binary mode a body declared as JSON is kept unchecked until first use (see
/// [`Data`]). [`from_http_owned`] does the same without copying an owned body.
pub fn from_http(headers: &HeaderMap, body: &[u8]) -> Result<Received, Error> {
    match detect_mode(headers)? {
        Mode::Batch => json::decode_batch(body).map(Received::Batch),
        Mode::Structured => json::decode(body).map(Received::Structured),
        Mode::Binary => binary_event(headers, Body::Borrowed(body)).map(Received::Binary),
    }
}

/// [`from_http`] for a body you own: in binary mode the body becomes the event's data
/// without being copied.
pub fn from_http_owned(headers: &HeaderMap, body: Vec<u8>) -> Result<Received, Error> {
    match detect_mode(headers)? {
        Mode::Batch => json::decode_batch(&body).map(Received::Batch),
        Mode::Structured => json::decode(&body).map(Received::Structured),
        Mode::Binary => binary_event(headers, Body::Owned(body)).map(Received::Binary),
    }
}

/// A binary-mode body, copied into the event's data only when it is borrowed.
enum Body<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
}

impl Body<'_> {
    fn as_slice(&self) -> &[u8] {
        match self {
            Body::Borrowed(bytes) => bytes,
            Body::Owned(bytes) => bytes,
        }
    }

    fn into_vec(self) -> Vec<u8> {
        match self {
            Body::Borrowed(bytes) => bytes.to_vec(),
            Body::Owned(bytes) => bytes,
        }
    }
}

/// Decodes a request's headers and body with [`from_http`].
pub fn from_request<B: AsRef<[u8]>>(request: &::http::Request<B>) -> Result<Received, Error> {
    from_http(request.headers(), request.body().as_ref())
}

/// Tells which content mode a message uses, from its headers alone.
///
/// ```
/// use http::HeaderMap;
/// use switchyard_cloudevents::http::{detect_mode, Mode};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("content-type", "Application/CloudEvents-Batch+JSON".parse().unwrap());
/// assert_eq!(detect_mode(&headers).unwrap(), Mode::Batch);
/// ```
pub fn detect_mode(headers: &HeaderMap) -> Result<Mode, Error> {
    if let Some(content_type) = headers.get(CONTENT_TYPE) {
        let bytes = content_type.as_bytes();
        let end = bytes.iter().position(|&b| b == b';').unwrap_or(bytes.len());
        let essence = bytes[..end].trim_ascii();
        let starts_with = |prefix: &[u8]| {
            essence.len() >= prefix.len() && essence[..prefix.len()].eq_ignore_ascii_case(prefix)
        };
        let unsupported = || Error::UnsupportedFormat {
            content_type: String::from_utf8_lossy(bytes).into_owned(),
        };
        if starts_with(b"application/cloudevents-batch") {
            return if essence.eq_ignore_ascii_case(b"application/cloudevents-batch+json") {
                Ok(Mode::Batch)
            } else {
                Err(unsupported())
            };
        }
        if starts_with(b"application/cloudevents") {
            return if essence.eq_ignore_ascii_case(b"application/cloudevents+json") {
                Ok(Mode::Structured)
            } else {
                Err(unsupported())
            };
        }
    }
    if headers.contains_key("ce-specversion") {
        Ok(Mode::Binary)
    } else {
        Err(Error::NotACloudEvent)
    }
}

fn header_name(name: &str) -> Result<HeaderName, Error> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| Error::Encode {
        name: name.to_owned(),
        reason: "not a valid header name",
    })
}

fn put(
    headers: &mut HeaderMap,
    header: HeaderName,
    attribute: &str,
    value: &str,
) -> Result<(), Error> {
    let encoded: Cow<'_, str> = utf8_percent_encode(value, HEADER_ESCAPES).into();
    let value = HeaderValue::from_str(&encoded).map_err(|_| Error::Encode {
        name: attribute.to_owned(),
        reason: "not representable as a header value",
    })?;
    headers.insert(header, value);
    Ok(())
}

/// Percent-encodes an attribute value for a binary-mode header, as the binding specifies.
///
/// ```
/// use switchyard_cloudevents::http::encode_header_value;
/// assert_eq!(encode_header_value("Euro € 100%"), "Euro%20%E2%82%AC%20100%25");
/// ```
pub fn encode_header_value(value: &str) -> Cow<'_, str> {
    utf8_percent_encode(value, HEADER_ESCAPES).into()
}

/// Decodes a binary-mode header value: unquote an RFC 7230 quoted string, then percent-decode
/// once and check the result is UTF-8. `name` is used in the error.
///
/// ```
/// use switchyard_cloudevents::http::decode_header_value;
/// assert_eq!(decode_header_value("ce-x", br#""a \"b\" %c3%a9""#).unwrap(), "a \"b\" é");
/// assert!(decode_header_value("ce-x", b"%zz").is_err());
/// assert!(decode_header_value("ce-x", b"%C3").is_err());
/// ```
pub fn decode_header_value(name: &str, raw: &[u8]) -> Result<String, Error> {
    let invalid = |reason| Error::InvalidHeader {
        name: name.to_owned(),
        reason,
    };
    let unquoted: Cow<'_, [u8]> = match raw {
        [b'"', inner @ .., b'"'] => {
            let mut out = Vec::with_capacity(inner.len());
            let mut bytes = inner.iter();
            while let Some(&b) = bytes.next() {
                match b {
                    b'\\' => match bytes.next() {
                        Some(&escaped) => out.push(escaped),
                        None => return Err(invalid("quoted string ends in a lone backslash")),
                    },
                    b'"' => return Err(invalid("unescaped double quote inside a quoted string")),
                    _ => out.push(b),
                }
            }
            Cow::Owned(out)
        }
        [b'"', ..] => return Err(invalid("quoted string is not closed")),
        _ => Cow::Borrowed(raw),
    };
    let mut rest = &unquoted[..];
    while let Some(at) = rest.iter().position(|&b| b == b'%') {
        match rest.get(at + 1..at + 3) {
            Some([hi, lo]) if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() => {
                rest = &rest[at + 3..];
            }
            _ => return Err(invalid("`%` must be followed by two hex digits")),
        }
    }
    let decoded: Cow<'_, [u8]> = percent_decode(&unquoted).into();
    match decoded {
        Cow::Borrowed(bytes) => std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| ()),
        Cow::Owned(bytes) => String::from_utf8(bytes).map_err(|_| ()),
    }
    .map_err(|()| invalid("value is not UTF-8 after percent-decoding"))
}

/// The context attribute headers binary mode knows, by slot.
const KNOWN_HEADERS: [&str; 9] = [
    "ce-specversion",
    "ce-id",
    "ce-source",
    "ce-type",
    "ce-subject",
    "ce-time",
    "ce-dataschema",
    "ce-schemaurl",
    "ce-datacontentencoding",
];

fn binary_event(headers: &HeaderMap, body: Body<'_>) -> Result<Event, Error> {
    // One pass over the headers: context attributes into their slots, the rest aside.
    let mut known: [Option<&HeaderValue>; KNOWN_HEADERS.len()] = [None; KNOWN_HEADERS.len()];
    let mut others: Vec<(&str, &HeaderValue)> = Vec::new();
    for (name, value) in headers {
        let name = name.as_str();
        if !name.starts_with(HEADER_PREFIX) {
            continue;
        }
        match KNOWN_HEADERS.iter().position(|known| *known == name) {
            Some(slot) if known[slot].replace(value).is_some() => {
                return Err(Error::InvalidHeader {
                    name: name.to_owned(),
                    reason: "appears more than once",
                });
            }
            Some(_) => {}
            None => others.push((name, value)),
        }
    }
    let [
        specversion,
        id,
        source,
        ty,
        subject,
        time,
        dataschema,
        schemaurl,
        encoding,
    ] = known;
    let decode =
        |slot: usize, value: Option<&HeaderValue>| -> Result<Option<Cow<'static, str>>, Error> {
            value
                .map(|v| decode_header_value(KNOWN_HEADERS[slot], v.as_bytes()).map(Cow::Owned))
                .transpose()
        };

    let version: SpecVersion = decode(0, specversion)?
        .ok_or(Error::MissingAttribute {
            name: "specversion",
        })?
        .parse()?;
    // Names that are context attributes only in the other version are extensions here.
    let (dataschema, datacontentencoding) = match version {
        SpecVersion::V1_0 => {
            others.extend(schemaurl.map(|v| (KNOWN_HEADERS[7], v)));
            others.extend(encoding.map(|v| (KNOWN_HEADERS[8], v)));
            (decode(6, dataschema)?, None)
        }
        SpecVersion::V0_3 => {
            others.extend(dataschema.map(|v| (KNOWN_HEADERS[6], v)));
            (decode(7, schemaurl)?, decode(8, encoding)?)
        }
    };
    let datacontenttype = match headers.get(CONTENT_TYPE) {
        Some(value) => Some(value.to_str().map_err(|_| Error::InvalidHeader {
            name: "content-type".to_owned(),
            reason: "not visible ASCII",
        })?),
        None => None,
    };
    let context = UncheckedContext {
        id: decode(1, id)?,
        source: decode(2, source)?,
        ty: decode(3, ty)?,
        datacontenttype: datacontenttype.map(Cow::Borrowed),
        dataschema,
        subject: decode(4, subject)?,
        time: decode(5, time)?,
        datacontentencoding,
    };
    let (mut event, base64_body) = context.check(version)?;

    for (name, raw) in others {
        let attribute = &name[HEADER_PREFIX.len()..];
        let value = decode_header_value(name, raw.as_bytes())?;
        let repeated = || Error::InvalidHeader {
            name: name.to_owned(),
            reason: "appears more than once",
        };
        let clash = || Error::InvalidHeader {
            name: name.to_owned(),
            reason: "a Map entry header and a plain attribute header share a name",
        };
        match (version, attribute.split_once('-')) {
            (SpecVersion::V0_3, Some((map_name, key))) => {
                check_extension_name(version, map_name)?;
                let entry = event
                    .extensions
                    .entry(map_name.to_owned())
                    .or_insert_with(|| ExtensionValue::Map(BTreeMap::new()));
                let ExtensionValue::Map(map) = entry else {
                    return Err(clash());
                };
                if map.insert(key.to_owned(), value).is_some() {
                    return Err(repeated());
                }
            }
            _ => {
                check_extension_name(version, attribute)?;
                match event
                    .extensions
                    .insert(attribute.to_owned(), ExtensionValue::String(value))
                {
                    None => {}
                    Some(ExtensionValue::Map(_)) => return Err(clash()),
                    Some(_) => return Err(repeated()),
                }
            }
        }
    }

    event.data = if base64_body {
        if body.as_slice().is_empty() {
            None
        } else {
            let bytes = BASE64
                .decode(body.as_slice())
                .map_err(|_| Error::invalid("data", Rule::Base64))?;
            Some(Data::Binary(bytes))
        }
    } else {
        body_data(event.datacontenttype.as_deref(), body)?
    };
    Ok(event)
}

/// Reads a binary-mode body as data, by its content type (see [`Data`]).
fn body_data(content_type: Option<&str>, body: Body<'_>) -> Result<Option<Data>, Error> {
    if body.as_slice().is_empty() {
        return Ok(None);
    }
    Ok(Some(match content_type {
        // Declared JSON: kept unchecked, so a pass-through does no JSON work.
        Some(ct) if is_json_content_type(ct) => Data::Json(JsonText::unchecked(body.into_vec())),
        // Undeclared: JSON if it parses as JSON, bytes otherwise.
        // Parsed once here to decide, so it is kept as checked JSON.
        None => match serde_json::from_slice::<&RawValue>(body.as_slice()) {
            Ok(raw) => Data::Json(JsonText::from(raw.to_owned())),
            Err(_) => Data::Binary(body.into_vec()),
        },
        Some(ct) if is_text_content_type(ct) => match String::from_utf8(body.into_vec()) {
            Ok(text) => Data::Text(text),
            Err(not_utf8) => Data::Binary(not_utf8.into_bytes()),
        },
        Some(_) => Data::Binary(body.into_vec()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value.as_bytes()).unwrap(),
            );
        }
        map
    }

    const MINIMAL: &[(&str, &str)] = &[
        ("ce-specversion", "1.0"),
        ("ce-id", "1"),
        ("ce-source", "/s"),
        ("ce-type", "t"),
    ];

    #[test]
    fn header_names_are_case_insensitive() {
        let map = headers(&[
            ("CE-SpecVersion", "1.0"),
            ("Ce-Id", "1"),
            ("ce-SOURCE", "/s"),
            ("cE-type", "t"),
            ("CE-MyExt", "v"),
        ]);
        let event = from_http(&map, b"").unwrap().into_single().unwrap();
        assert_eq!(event.extension("myext"), Some(&ExtensionValue::from("v")));
    }

    #[test]
    fn percent_encoding_rules() {
        assert_eq!(encode_header_value("a b\"c%d"), "a%20b%22c%25d");
        assert_eq!(
            encode_header_value("!#$&'()*+,/:;<=>?@[\\]^_`{|}~"),
            "!#$&'()*+,/:;<=>?@[\\]^_`{|}~"
        );
        assert_eq!(encode_header_value("\u{7f}\t"), "%7F%09");
        assert_eq!(decode_header_value("x", b"%41%6a").unwrap(), "Aj");
        assert_eq!(
            decode_header_value("x", b"\"quoted value\"").unwrap(),
            "quoted value"
        );
        assert_eq!(decode_header_value("x", b"\"%25\"").unwrap(), "%");
        assert!(decode_header_value("x", b"%").is_err());
        assert!(decode_header_value("x", b"%4").is_err());
        assert!(decode_header_value("x", b"\"open").is_err());
        assert!(decode_header_value("x", b"%FF").is_err());
    }

    #[test]
    fn mode_detection() {
        let structured = headers(&[(
            "content-type",
            "application/cloudevents+json; charset=utf-8",
        )]);
        assert_eq!(detect_mode(&structured).unwrap(), Mode::Structured);
        let batch = headers(&[("content-type", "application/cloudevents-batch+json")]);
        assert_eq!(detect_mode(&batch).unwrap(), Mode::Batch);
        let avro = headers(&[("content-type", "application/cloudevents+avro")]);
        assert!(matches!(
            detect_mode(&avro),
            Err(Error::UnsupportedFormat { .. })
        ));
        let plain = headers(&[("content-type", "application/json")]);
        assert!(matches!(detect_mode(&plain), Err(Error::NotACloudEvent)));
        // A structured Content-Type wins over stray ce- headers.
        let mut both = headers(MINIMAL);
        both.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/cloudevents+json"),
        );
        assert_eq!(detect_mode(&both).unwrap(), Mode::Structured);
    }

    #[test]
    fn unsupported_version_in_binary_mode() {
        let map = headers(&[
            ("ce-specversion", "0.9"),
            ("ce-id", "1"),
            ("ce-source", "/s"),
            ("ce-type", "t"),
        ]);
        assert!(matches!(
            from_http(&map, b""),
            Err(Error::UnsupportedSpecVersion { .. })
        ));
    }

    #[test]
    fn repeated_headers_are_rejected() {
        let mut map = headers(MINIMAL);
        map.append("ce-id", HeaderValue::from_static("2"));
        assert!(matches!(
            from_http(&map, b""),
            Err(Error::InvalidHeader { .. })
        ));
    }

    #[test]
    fn body_by_content_type() {
        let mut map = headers(MINIMAL);
        map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        // A body declared as JSON is checked on first use, not on arrival.
        let event = from_http(&map, b"{oops").unwrap().into_single().unwrap();
        assert!(matches!(
            event
                .data()
                .unwrap()
                .deserialize_json::<serde_json::Value>(),
            Err(Error::InvalidJsonData { .. })
        ));
        assert!(matches!(
            to_structured(&event),
            Err(Error::InvalidJsonData { .. })
        ));
        assert_eq!(to_binary(&event).unwrap().body, b"{oops");
        let owned = from_http_owned(&map, b"[1, 2]".to_vec()).unwrap();
        assert_eq!(
            owned.into_single().unwrap().data(),
            Some(&Data::json_text("[1, 2]").unwrap())
        );
        map.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let event = from_http(&map, b"hello").unwrap().into_single().unwrap();
        assert_eq!(event.data(), Some(&Data::Text("hello".into())));
        map.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        let event = from_http(&map, &[0, 159]).unwrap().into_single().unwrap();
        assert_eq!(event.data(), Some(&Data::Binary(vec![0, 159])));
        map.remove(CONTENT_TYPE);
        let event = from_http(&map, b"[1]").unwrap().into_single().unwrap();
        assert_eq!(event.data(), Some(&Data::json_text("[1]").unwrap()));
    }

    #[test]
    fn v03_maps_flatten_to_headers() {
        let map = ExtensionValue::Map(BTreeMap::from([
            ("one".to_owned(), "1".to_owned()),
            ("two".to_owned(), "zwei drei".to_owned()),
        ]));
        let event = Event::builder()
            .specversion(SpecVersion::V0_3)
            .id("1")
            .ty("t")
            .source("/s")
            .extension("m", map)
            .build()
            .unwrap();
        let message = to_binary(&event).unwrap();
        assert_eq!(message.headers["ce-m-one"], "1");
        assert_eq!(message.headers["ce-m-two"], "zwei%20drei");
        assert_eq!(
            from_http(&message.headers, &message.body)
                .unwrap()
                .into_single()
                .unwrap(),
            event
        );
        // In 1.0 a dash cannot appear in an attribute name.
        let mut v1 = headers(MINIMAL);
        v1.insert("ce-m-one", HeaderValue::from_static("1"));
        assert!(matches!(
            from_http(&v1, b""),
            Err(Error::InvalidAttributeName { .. })
        ));
    }

    #[test]
    fn v03_base64_body() {
        let map = headers(&[
            ("ce-specversion", "0.3"),
            ("ce-id", "1"),
            ("ce-source", "/s"),
            ("ce-type", "t"),
            ("ce-datacontentencoding", "base64"),
        ]);
        let event = from_http(&map, b"AAEC").unwrap().into_single().unwrap();
        assert_eq!(event.data(), Some(&Data::Binary(vec![0, 1, 2])));
    }

    #[test]
    fn into_single_refuses_batches() {
        let message = to_batch(&[]).unwrap();
        let received = from_http(&message.headers, &message.body).unwrap();
        assert_eq!(received.mode(), Mode::Batch);
        assert!(matches!(
            received.into_single(),
            Err(Error::UnexpectedBatch { len: 0 })
        ));
    }
}
