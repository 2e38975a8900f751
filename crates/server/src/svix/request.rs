//! Request plumbing the Svix resources share: bodies read under the size limit and parsed
//! into typed 400/422 errors, the pagination and filter query parameters, the list
//! envelope, and the wire formats of times and renamed fields.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use http::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use switchyard_webhooks::{
    AttemptStatus, Channel, Error as WebhooksError, EventTypeName, ListOptions, Order, Page,
};

use super::ApiResult;
use crate::error::ApiError;

/// Reads the whole body, refusing more than `limit` bytes with a typed 413.
pub(crate) async fn read_body(body: Body, limit: usize) -> ApiResult<bytes::Bytes> {
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        let too_large = std::error::Error::source(&error)
            .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the request body is larger than the {limit}-byte limit"),
            )
        } else {
            ApiError::bad_request(format!("the request body could not be read: {error}"))
        }
    })
}

/// Parses a JSON body: 400 `invalid_json` for text that is not JSON, 422 for JSON of the
/// wrong shape, naming the field when serde does. (The runtime-events API's rule; the Svix
/// API's is [`parse_body`].)
pub(crate) fn parse_json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> ApiResult<T> {
    serde_json::from_slice(bytes).map_err(|e| json_error(&e))
}

fn json_error(error: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the request body is not valid JSON: {error}"),
        ),
        Category::Data => {
            let message = error.to_string();
            // serde names the field in its message ("missing field `name`").
            match message.split('`').nth(1) {
                Some(field) if message.starts_with("missing field") => {
                    let mut api = ApiError::invalid_field(field, message.clone());
                    api.fields[0].kind = "missing";
                    api
                }
                _ => {
                    let mut api = ApiError::invalid_field("", message);
                    api.fields[0].loc.truncate(1);
                    api.fields[0].kind = "type_error";
                    api.detail = format!("invalid request body: {}", api.fields[0].msg);
                    api
                }
            }
        }
    }
}

/// Parses a Svix API body as Svix does: whatever is wrong, a missing body and text that is
/// not JSON among it, is a 422 `validation` naming the place (`["body", …]`, type
/// `value_error.jsondecode` when it does not parse), the status Svix's document gives.
pub(crate) fn parse_body<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> ApiResult<T> {
    use serde_json::error::Category;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(body_error("a JSON body is required", "value_error.missing"));
    }
    serde_json::from_slice(bytes).map_err(|error| match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => body_error(
            &format!("the request body is not valid JSON: {error}"),
            "value_error.jsondecode",
        ),
        Category::Data => json_error(&error),
    })
}

/// A 422 about the body as a whole.
fn body_error(msg: &str, kind: &'static str) -> ApiError {
    let mut error = ApiError::invalid_field("", msg);
    error.fields[0].loc.truncate(1);
    error.fields[0].kind = kind;
    error.detail = format!("invalid request body: {msg}");
    error
}

/// A required JSON body of type `T`, at most `limit` bytes (see [`parse_body`]).
pub(crate) async fn json_body<T: DeserializeOwned>(body: Body, limit: usize) -> ApiResult<T> {
    let bytes = read_body(body, limit).await?;
    parse_body(&bytes)
}

/// An optional JSON body: empty is `T::default()`.
pub(crate) async fn optional_json_body<T: DeserializeOwned + Default>(
    body: Body,
    limit: usize,
) -> ApiResult<T> {
    let bytes = read_body(body, limit).await?;
    if bytes.is_empty() {
        Ok(T::default())
    } else {
        parse_body(&bytes)
    }
}

/// A route's query parameters as `T` (a struct of optional strings, checked by the
/// handler). Unlike axum's `Query`, a malformed query is a typed 422 naming the parameter,
/// never a plain-text 400: a parameter given twice is refused, except the arrays of Svix's
/// document (`event_types`), whose repeats are joined with commas, the form the clients that
/// send a list as one parameter use.
#[derive(Debug)]
pub(crate) struct SvixQuery<T>(pub T);

/// The query parameters Svix's document declares as arrays.
const ARRAY_PARAMETERS: &[&str] = &["event_types"];

impl<T, S> axum::extract::FromRequestParts<S> for SvixQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let mut values: Map<String, Value> = Map::new();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            match values.get_mut(name.as_ref()) {
                None => {
                    values.insert(name.into_owned(), Value::String(value.into_owned()));
                }
                Some(Value::String(joined)) if ARRAY_PARAMETERS.contains(&name.as_ref()) => {
                    joined.push(',');
                    joined.push_str(&value);
                }
                Some(_) => {
                    return Err(ApiError::invalid_query(
                        &name,
                        "given more than once; give it once",
                    ));
                }
            }
        }
        serde_json::from_value(Value::Object(values))
            .map(SvixQuery)
            .map_err(|e| ApiError::invalid_query("", format!("invalid query: {e}")))
    }
}

/// The pagination parameters of every list route. Values stay text until checked, so a bad
/// one is a 422 naming the parameter rather than the extractor's generic 400.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Pagination {
    limit: Option<String>,
    iterator: Option<String>,
    order: Option<String>,
}

impl Pagination {
    /// The registry's list options, `default_order` unless `order` says otherwise.
    pub(crate) fn options(&self, default_order: Order) -> ApiResult<ListOptions> {
        let mut options = ListOptions::new().order(default_order);
        if let Some(limit) = &self.limit {
            let limit: usize = limit
                .parse()
                .ok()
                .filter(|n| (1..=250).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid_query("limit", "must be an integer from 1 to 250")
                })?;
            options = options.limit(limit);
        }
        if let Some(iterator) = self.iterator.as_deref().filter(|i| !i.is_empty()) {
            options = options.iterator(iterator);
        }
        match self.order.as_deref() {
            None => {}
            Some("ascending") => options = options.order(Order::Ascending),
            Some("descending") => options = options.order(Order::Descending),
            Some(_) => {
                return Err(ApiError::invalid_query(
                    "order",
                    "must be `ascending` or `descending`",
                ));
            }
        }
        Ok(options)
    }
}

/// A boolean query parameter: `true`, `false`, or absent (`default`).
pub(crate) fn flag(value: Option<&str>, name: &str, default: bool) -> ApiResult<bool> {
    match value {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(_) => Err(ApiError::invalid_query(name, "must be `true` or `false`")),
    }
}

/// An RFC 3339 time query parameter.
pub(crate) fn time_param(value: Option<&str>, name: &str) -> ApiResult<Option<DateTime<Utc>>> {
    value
        .map(|text| {
            DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| {
                    ApiError::invalid_query(name, format!("not an RFC 3339 date-time: {e}"))
                })
        })
        .transpose()
}

/// The most event types one list filter may name.
pub(crate) const MAX_FILTER_EVENT_TYPES: usize = 100;

/// The `event_types` filter: names separated by commas (repeats of the parameter are joined
/// so), at most [`MAX_FILTER_EVENT_TYPES`]; none: every type.
pub(crate) fn event_type_param(value: Option<&str>) -> ApiResult<Vec<EventTypeName>> {
    let Some(text) = value else {
        return Ok(Vec::new());
    };
    let mut names = Vec::new();
    for name in text.split(',').filter(|n| !n.is_empty()) {
        let name = EventTypeName::new(name)
            .map_err(|e| ApiError::invalid_query("event_types", e.to_string()))?;
        if !names.contains(&name) {
            names.push(name);
        }
        if names.len() > MAX_FILTER_EVENT_TYPES {
            return Err(ApiError::invalid_query(
                "event_types",
                format!("at most {MAX_FILTER_EVENT_TYPES} event types may be given"),
            ));
        }
    }
    Ok(names)
}

/// Svix's `status_code_class` filter (`0`: no answer, `100` … `500`: that class) as the range
/// of response statuses it names.
pub(crate) fn status_code_class_param(
    value: Option<&str>,
) -> ApiResult<Option<std::ops::RangeInclusive<u16>>> {
    let Some(text) = value.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    match text.parse::<u16>() {
        Ok(class @ (0 | 100 | 200 | 300 | 400 | 500)) => Ok(Some(class..=class + 99)),
        _ => Err(ApiError::invalid_query(
            "status_code_class",
            "one of 0 (no response), 100, 200, 300, 400 or 500",
        )),
    }
}

/// The `channel` filter.
pub(crate) fn channel_param(value: Option<&str>) -> ApiResult<Option<Channel>> {
    value
        .filter(|c| !c.is_empty())
        .map(|c| Channel::new(c).map_err(|e| ApiError::invalid_query("channel", e.to_string())))
        .transpose()
}

/// The `status` filter: Svix's `MessageStatus` code.
pub(crate) fn status_param(value: Option<&str>) -> ApiResult<Option<AttemptStatus>> {
    value
        .map(|s| {
            s.parse::<i64>()
                .ok()
                .and_then(AttemptStatus::from_code)
                .ok_or_else(|| ApiError::invalid_query("status", "must be 0, 1, 2 or 3"))
        })
        .transpose()
}

/// Svix's list envelope.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListResponse<T> {
    pub data: Vec<T>,
    pub iterator: Option<String>,
    pub prev_iterator: Option<String>,
    pub done: bool,
}

/// A list answer from a registry page.
pub(crate) fn list<T, O>(page: Page<T>, map: impl Fn(&T) -> O) -> ListResponse<O> {
    ListResponse {
        data: page.items.iter().map(map).collect(),
        iterator: page.iterator,
        prev_iterator: page.prev_iterator,
        done: page.done,
    }
}

/// Registry errors on a list: a foreign iterator is the query's fault.
pub(crate) fn list_error(error: WebhooksError) -> ApiError {
    match error {
        WebhooksError::InvalidId { .. } => {
            ApiError::invalid_query("iterator", "not an iterator this server handed out")
        }
        other => other.into(),
    }
}

/// A JSON answer with `status`.
pub(crate) fn reply<T: Serialize>(status: StatusCode, value: &T) -> Response {
    (status, axum::Json(value)).into_response()
}

/// Svix's string-to-string maps (metadata) as the registry's JSON object.
pub(crate) fn string_map(map: Option<BTreeMap<String, String>>) -> Map<String, Value> {
    map.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect()
}

/// A uid as Svix allows it, else 422 on `uid`.
pub(crate) fn check_uid(uid: &str) -> ApiResult<()> {
    if switchyard_webhooks::is_uid(uid) {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            "uid",
            "must be 1 to 256 ASCII letters, digits, `-`, `_` or `.`, not only dots",
        ))
    }
}

/// Svix's timestamps: RFC 3339, UTC, with microseconds.
pub(crate) fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A field Svix renamed: the value under the current name or the old one. Both given and
/// different is a 422 naming both, since one of them would be silently dropped.
pub(crate) fn one_of<T: PartialEq>(
    current: Option<T>,
    current_name: &str,
    old: Option<T>,
    old_name: &str,
) -> ApiResult<Option<T>> {
    match (current, old) {
        (Some(current), Some(old)) if current != old => Err(ApiError::invalid_field(
            current_name,
            format!(
                "`{current_name}` and its old name `{old_name}` are both given and differ; give one"
            ),
        )),
        (Some(value), _) | (None, Some(value)) => Ok(Some(value)),
        (None, None) => Ok(None),
    }
}
