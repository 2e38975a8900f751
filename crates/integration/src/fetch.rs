//! `ExecutionContext::fetch`: requests through a shared hyper client (pooled connections,
//! rustls), with query and body encoding as the original, bearer injection, retries with
//! backoff and jitter, redirects, and typed errors for 429 and other non-2xx answers.

use std::fmt;
use std::future::IntoFuture;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use switchyard_https::HttpsConnector;

use crate::auth::AuthType;
use crate::context::ExecutionContext;
use crate::error::FetchError;
use crate::handler::BoxFuture;

type Inner = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A pooled HTTP/1.1 client with rustls (system root certificates). One is shared by every
/// context in the process unless a context is given its own.
#[derive(Clone)]
pub struct HttpClient {
    inner: Result<Inner, Arc<str>>,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("ready", &self.inner.is_ok())
            .finish()
    }
}

impl HttpClient {
    /// A new client with its own connection pool.
    ///
    /// A machine without system CA certificates is not an error: a warning is logged and
    /// https requests fail with a certificate error. If the TLS stack itself cannot be set up,
    /// every request fails with [`FetchError::Tls`].
    #[must_use]
    pub fn new() -> Self {
        Self {
            inner: build().map_err(Arc::from),
        }
    }

    /// The process-wide client, built on first use.
    #[must_use]
    pub fn shared() -> Self {
        static SHARED: OnceLock<HttpClient> = OnceLock::new();
        SHARED.get_or_init(Self::new).clone()
    }
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

fn build() -> Result<Inner, String> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = switchyard_https::connector(http, "https requests").map_err(|e| e.to_string())?;
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(https))
}

/// The parsed body of a response.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ResponseData {
    /// The content type is JSON (`application/json` or `…+json`) and the body parsed.
    Json(Value),
    /// Any other body, as text (invalid UTF-8 replaced), including JSON that did not parse.
    Text(String),
    /// An empty body on a 2xx response.
    Empty,
}

impl ResponseData {
    /// The body as one JSON value: JSON as is, text as a string, empty as `null`.
    #[must_use]
    pub fn into_value(self) -> Value {
        match self {
            Self::Json(value) => value,
            Self::Text(text) => Value::String(text),
            Self::Empty => Value::Null,
        }
    }

    /// The JSON body, if it was JSON.
    #[must_use]
    pub fn as_json(&self) -> Option<&Value> {
        match self {
            Self::Json(value) => Some(value),
            _ => None,
        }
    }

    /// A short rendering for error messages (at most 200 characters).
    #[must_use]
    pub fn summary(&self) -> String {
        let full = match self {
            Self::Json(value) => value.to_string(),
            Self::Text(text) => text.clone(),
            Self::Empty => String::new(),
        };
        match full.char_indices().nth(200) {
            Some((cut, _)) => format!("{}…", &full[..cut]),
            None => full,
        }
    }
}

/// A 2xx response.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FetchResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, parsed by content type.
    pub data: ResponseData,
    /// The body as received.
    pub body: Bytes,
}

impl FetchResponse {
    /// Deserialises the body as JSON, whatever the content type said.
    ///
    /// # Errors
    /// If the body is not JSON of that shape.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        match &self.data {
            ResponseData::Json(value) => T::deserialize(value),
            _ => serde_json::from_slice(&self.body),
        }
    }
}

/// A request being built by [`ExecutionContext::fetch`]. Await it (or call
/// [`FetchRequest::send`]) to send it.
#[must_use = "a request does nothing until it is awaited"]
pub struct FetchRequest<'a> {
    ctx: &'a ExecutionContext,
    url: String,
    method: Method,
    params: Vec<(String, Value)>,
    body: Option<Bytes>,
    body_type: Option<&'static str>,
    content_type: Option<String>,
    headers: Vec<(String, String)>,
    timeout: Option<Duration>,
    retry_non_idempotent: bool,
    error: Option<FetchError>,
}

impl fmt::Debug for FetchRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values may hold credentials; list names only.
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("FetchRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("params", &self.params.len())
            .field("headers", &names)
            .field("body_bytes", &self.body.as_ref().map(Bytes::len))
            .finish_non_exhaustive()
    }
}

impl<'a> FetchRequest<'a> {
    pub(crate) fn new(ctx: &'a ExecutionContext, url: String) -> Self {
        Self {
            ctx,
            url,
            method: Method::GET,
            params: Vec::new(),
            body: None,
            body_type: None,
            content_type: None,
            headers: Vec::new(),
            timeout: None,
            retry_non_idempotent: false,
            error: None,
        }
    }

    /// Sets the method (default GET).
    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    /// Adds a query parameter. Strings are sent as is, numbers and booleans as JSON
    /// (`true`, not Python's `True`), arrays and objects JSON-encoded, and `null` dropped.
    pub fn param(mut self, name: impl Into<String>, value: impl Serialize) -> Self {
        match serde_json::to_value(value) {
            Ok(value) => self.params.push((name.into(), value)),
            Err(error) => self.fail(FetchError::Encode(error.to_string())),
        }
        self
    }

    /// Adds every member of an object as a query parameter (see [`FetchRequest::param`]).
    pub fn params(mut self, params: impl Serialize) -> Self {
        match serde_json::to_value(params) {
            Ok(Value::Object(map)) => self.params.extend(map),
            Ok(Value::Null) => {}
            Ok(other) => self.fail(FetchError::Encode(format!(
                "query parameters must be an object, not {other}"
            ))),
            Err(error) => self.fail(FetchError::Encode(error.to_string())),
        }
        self
    }

    /// Sends `body` as JSON with `Content-Type: application/json`.
    pub fn json(mut self, body: &impl Serialize) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => {
                self.body = Some(Bytes::from(bytes));
                self.body_type = Some("application/json");
            }
            Err(error) => self.fail(FetchError::Encode(error.to_string())),
        }
        self
    }

    /// Sends an object as an `application/x-www-form-urlencoded` body (values encoded as for
    /// [`FetchRequest::param`]).
    pub fn form(mut self, body: &impl Serialize) -> Self {
        match serde_json::to_value(body) {
            Ok(Value::Object(map)) => {
                let encoded = encode_pairs(map.iter().map(|(k, v)| (k.as_str(), v)));
                self.body = Some(Bytes::from(encoded));
                self.body_type = Some("application/x-www-form-urlencoded");
            }
            Ok(other) => self.fail(FetchError::Encode(format!(
                "a form body must be an object, not {other}"
            ))),
            Err(error) => self.fail(FetchError::Encode(error.to_string())),
        }
        self
    }

    /// Sends raw bytes; set their type with [`FetchRequest::content_type`].
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Some(body.into());
        self.body_type = None;
        self
    }

    /// Sets `Content-Type` (a `Content-Type` given to [`FetchRequest::header`] wins).
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    /// Adds a header; it replaces one of the same name set by the context (an explicit
    /// `Authorization`, in any case, turns off bearer injection).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the time allowed for each attempt (overrides the context's `timeout`).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Lets a non-idempotent request (POST, PATCH) be retried after a timeout or a broken
    /// connection, which may repeat its effect. Without it, only failures to connect (nothing
    /// was sent) are retried for such methods.
    pub fn retry_non_idempotent(mut self, yes: bool) -> Self {
        self.retry_non_idempotent = yes;
        self
    }

    fn fail(&mut self, error: FetchError) {
        if self.error.is_none() {
            self.error = Some(error);
        }
    }

    /// Sends the request.
    ///
    /// # Errors
    /// [`FetchError::RateLimited`] on 429, [`FetchError::Http`] on other non-2xx statuses,
    /// [`FetchError::Connect`] / [`FetchError::Timeout`] when every attempt failed, and the
    /// encoding errors recorded while building.
    pub async fn send(self) -> Result<FetchResponse, FetchError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let client = match &self.ctx.client().inner {
            Ok(client) => client.clone(),
            Err(message) => return Err(FetchError::Tls(message.to_string())),
        };
        let config = self.ctx.request_config();
        let mut uri = build_uri(&self.url, &self.params)?;
        let mut headers = self.headers()?;
        let mut method = self.method;
        let mut body = self.body;
        let timeout = self.timeout.unwrap_or_else(|| config.attempt_timeout());
        let limit = config.body_limit();
        let max_retries = config.retries();
        let mut redirects = 0;
        let mut failures = 0;
        loop {
            let mut request = Request::builder()
                .method(method.clone())
                .uri(uri.clone())
                .body(Full::new(body.clone().unwrap_or_default()))
                .map_err(|error| FetchError::InvalidUrl {
                    url: uri.to_string(),
                    reason: error.to_string(),
                })?;
            *request.headers_mut() = headers.clone();
            let exchange = async {
                let response = client.request(request).await.map_err(Failure::Transport)?;
                let (parts, incoming) = response.into_parts();
                let collected = Limited::new(incoming, limit)
                    .collect()
                    .await
                    .map_err(|error| {
                        if error.downcast_ref::<LengthLimitError>().is_some() {
                            Failure::TooLarge
                        } else {
                            Failure::Body(error.to_string())
                        }
                    })?;
                Ok::<_, Failure>((parts, collected.to_bytes()))
            };
            let failure = match tokio::time::timeout(timeout, exchange).await {
                Ok(Ok((parts, bytes))) => {
                    if parts.status.is_redirection()
                        && redirects < config.redirects()
                        && let Some(location) = parts.headers.get(header::LOCATION)
                    {
                        redirects += 1;
                        let next = resolve(&uri, location)?;
                        if parts.status == StatusCode::SEE_OTHER
                            || (matches!(parts.status.as_u16(), 301 | 302)
                                && method == Method::POST)
                        {
                            method = Method::GET;
                            body = None;
                            headers.remove(header::CONTENT_TYPE);
                        }
                        if next.scheme() != uri.scheme() || next.authority() != uri.authority() {
                            // Credentials go only to the origin they were meant for.
                            headers.remove(header::AUTHORIZATION);
                            headers.remove(header::COOKIE);
                        }
                        tracing::debug!(status = parts.status.as_u16(), to = %next, "following redirect");
                        uri = next;
                        continue;
                    }
                    return finish(parts.status, parts.headers, bytes);
                }
                Ok(Err(Failure::TooLarge)) => return Err(FetchError::BodyTooLarge { limit }),
                Ok(Err(failure)) => failure,
                Err(_) => Failure::Timeout,
            };
            let nothing_sent = matches!(&failure, Failure::Transport(error) if error.is_connect());
            let may_repeat = nothing_sent || idempotent(&method) || self.retry_non_idempotent;
            failures += 1;
            if failures > max_retries || !may_repeat {
                return Err(match failure {
                    Failure::Timeout => FetchError::Timeout {
                        attempts: failures,
                        timeout,
                    },
                    other => FetchError::Connect {
                        attempts: failures,
                        message: other.to_string(),
                    },
                });
            }
            let wait = backoff(config.first_backoff(), failures - 1);
            tracing::debug!(%failure, attempt = failures, wait_ms = wait.as_millis() as u64, "request failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    fn headers(&self) -> Result<HeaderMap, FetchError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!(
                "switchyard-integration/",
                env!("CARGO_PKG_VERSION")
            )),
        );
        let caller_sets_authorization = self
            .headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("authorization"));
        if let Some(auth) = self.ctx.auth()
            && auth.auth_type() == AuthType::PlatformOauth2
            && !caller_sets_authorization
            && let Some(token) = auth.access_token()
        {
            let mut value = HeaderValue::try_from(format!("Bearer {token}")).map_err(|_| {
                FetchError::InvalidHeader {
                    name: "Authorization".to_owned(),
                    reason: "the access token holds characters a header cannot carry".to_owned(),
                }
            })?;
            value.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, value);
        }
        let content_type = self
            .body_type
            .map(str::to_owned)
            .or_else(|| self.content_type.clone());
        if let Some(content_type) = content_type {
            let value =
                HeaderValue::try_from(content_type).map_err(|e| FetchError::InvalidHeader {
                    name: "Content-Type".to_owned(),
                    reason: e.to_string(),
                })?;
            headers.insert(header::CONTENT_TYPE, value);
        }
        let mut replaced: Vec<HeaderName> = Vec::new();
        for (name, value) in &self.headers {
            let invalid = |reason: String| FetchError::InvalidHeader {
                name: name.clone(),
                reason,
            };
            let name = HeaderName::try_from(name.as_str()).map_err(|e| invalid(e.to_string()))?;
            let mut value =
                HeaderValue::try_from(value.as_str()).map_err(|e| invalid(e.to_string()))?;
            if name == header::AUTHORIZATION || name == header::COOKIE {
                value.set_sensitive(true);
            }
            // The caller's headers replace the context's; repeated caller headers accumulate.
            if !replaced.contains(&name) {
                headers.remove(&name);
                replaced.push(name.clone());
            }
            headers.append(name, value);
        }
        Ok(headers)
    }
}

impl<'a> IntoFuture for FetchRequest<'a> {
    type Output = Result<FetchResponse, FetchError>;
    type IntoFuture = BoxFuture<'a, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// Why one attempt failed.
enum Failure {
    Transport(hyper_util::client::legacy::Error),
    Body(String),
    TooLarge,
    Timeout,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transport(error) => {
                write!(f, "{error}")?;
                let mut source = std::error::Error::source(error);
                while let Some(cause) = source {
                    write!(f, ": {cause}")?;
                    source = cause.source();
                }
                Ok(())
            }
            Self::Body(message) => write!(f, "reading the response body: {message}"),
            Self::TooLarge => f.write_str("response body too large"),
            Self::Timeout => f.write_str("timed out"),
        }
    }
}

fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// `first × 2^retry`, ±20 %.
fn backoff(first: Duration, retry: u32) -> Duration {
    let base = first.saturating_mul(2u32.saturating_pow(retry.min(16)));
    let unit = f64::from(getrandom::u32().unwrap_or(u32::MAX / 2)) / f64::from(u32::MAX);
    base.mul_f64(0.8 + 0.4 * unit)
}

fn finish(
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
) -> Result<FetchResponse, FetchError> {
    if status == StatusCode::TOO_MANY_REQUESTS {
        let retry_after = headers
            .get(header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| parse_retry_after(text, SystemTime::now()))
            .unwrap_or(Duration::from_secs(60));
        return Err(FetchError::RateLimited {
            retry_after,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
    }
    let data = parse_body(status, &headers, &body);
    if !status.is_success() {
        return Err(FetchError::Http { status, body: data });
    }
    Ok(FetchResponse {
        status,
        headers,
        data,
        body,
    })
}

fn parse_body(status: StatusCode, headers: &HeaderMap, body: &Bytes) -> ResponseData {
    if body.is_empty() && status.is_success() {
        return ResponseData::Empty;
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.split(';').next())
        .map(|essence| {
            let essence = essence.trim().to_ascii_lowercase();
            essence == "application/json" || essence.ends_with("+json")
        })
        .unwrap_or(false);
    if is_json {
        match serde_json::from_slice(body) {
            Ok(value) => return ResponseData::Json(value),
            Err(error) => {
                tracing::warn!(%error, "response says JSON but does not parse; returning it as text");
            }
        }
    }
    ResponseData::Text(String::from_utf8_lossy(body).into_owned())
}

/// `Retry-After`: whole seconds or an HTTP date (a date in the past gives zero).
pub(crate) fn parse_retry_after(text: &str, now: SystemTime) -> Option<Duration> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn query_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        Value::Bool(_) | Value::Number(_) | Value::Array(_) | Value::Object(_) => {
            Some(value.to_string())
        }
    }
}

fn encode_pairs<'v>(pairs: impl Iterator<Item = (&'v str, &'v Value)>) -> String {
    let mut encoded = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        if let Some(text) = query_text(value) {
            encoded.append_pair(name, &text);
        }
    }
    encoded.finish()
}

/// The URL with the query appended once (`&` if it already has one), fragment dropped.
pub(crate) fn build_uri(url: &str, params: &[(String, Value)]) -> Result<Uri, FetchError> {
    let invalid = |reason: &str| FetchError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let base = url.split('#').next().unwrap_or(url);
    let query = encode_pairs(params.iter().map(|(k, v)| (k.as_str(), v)));
    let full = if query.is_empty() {
        base.to_owned()
    } else if base.contains('?') {
        format!("{base}&{query}")
    } else {
        format!("{base}?{query}")
    };
    let uri: Uri = full
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => return Err(invalid(&format!("scheme {other:?} is not http or https"))),
        None => return Err(invalid("not an absolute URL (no http:// or https://)")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    Ok(uri)
}

/// Resolves a `Location` header against the URL that answered.
fn resolve(base: &Uri, location: &HeaderValue) -> Result<Uri, FetchError> {
    let bad = |reason: &str| FetchError::Redirect(reason.to_owned());
    let location = location
        .to_str()
        .map_err(|_| bad("the Location header is not text"))?
        .trim();
    let scheme = base.scheme_str().unwrap_or("https");
    let authority = base.authority().map(|a| a.as_str()).unwrap_or_default();
    let has_scheme = location.split_once(':').is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    let absolute = if has_scheme {
        location.to_owned()
    } else if let Some(rest) = location.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else if location.starts_with('/') {
        format!("{scheme}://{authority}{location}")
    } else {
        let path = base.path();
        let directory = &path[..path.rfind('/').map_or(0, |i| i + 1)];
        format!("{scheme}://{authority}{directory}{location}")
    };
    build_uri(&absolute, &[]).map_err(|error| FetchError::Redirect(error.to_string()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn query_encoding_matches_the_original() {
        let params = vec![
            ("q".to_owned(), json!("a b&c")),
            ("n".to_owned(), json!(3)),
            ("skip".to_owned(), Value::Null),
            ("flag".to_owned(), json!(true)),
            ("filter".to_owned(), json!({"state": ["open"]})),
        ];
        let uri = build_uri("https://api.example.com/x?fixed=1#frag", &params).unwrap();
        assert_eq!(
            uri.to_string(),
            "https://api.example.com/x?fixed=1&q=a+b%26c&n=3&flag=true&filter=%7B%22state%22%3A%5B%22open%22%5D%7D"
        );
        assert!(matches!(
            build_uri("/relative", &[]),
            Err(FetchError::InvalidUrl { .. })
        ));
        assert!(matches!(
            build_uri("ftp://example.com/", &[]),
            Err(FetchError::InvalidUrl { .. })
        ));
        assert!(matches!(
            build_uri("https://exa mple.com/", &[]),
            Err(FetchError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn redirects_resolve_against_the_current_url() {
        let base: Uri = "https://a.example/v1/items/7?x=1".parse().unwrap();
        let at = |l: &'static str| {
            resolve(&base, &HeaderValue::from_static(l))
                .unwrap()
                .to_string()
        };
        assert_eq!(at("https://b.example/z"), "https://b.example/z");
        assert_eq!(at("//c.example/z"), "https://c.example/z");
        assert_eq!(at("/root?q=2"), "https://a.example/root?q=2");
        assert_eq!(at("8"), "https://a.example/v1/items/8");
        assert!(resolve(&base, &HeaderValue::from_static("ftp://x/")).is_err());
    }

    #[test]
    fn backoff_doubles_with_jitter() {
        for retry in 0..4 {
            let wait = backoff(Duration::from_millis(100), retry);
            let base = 100.0 * f64::from(1u32 << retry);
            let ms = wait.as_secs_f64() * 1000.0;
            assert!(
                ms >= base * 0.8 - 1e-6 && ms <= base * 1.2 + 1e-6,
                "{retry}: {ms}"
            );
        }
    }

    #[test]
    fn bodies_parse_by_content_type() {
        let mut headers = HeaderMap::new();
        let ok = StatusCode::OK;
        assert_eq!(parse_body(ok, &headers, &Bytes::new()), ResponseData::Empty);
        assert_eq!(
            parse_body(StatusCode::NOT_FOUND, &headers, &Bytes::new()),
            ResponseData::Text(String::new())
        );
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json; charset=utf-8"),
        );
        assert_eq!(
            parse_body(ok, &headers, &Bytes::from_static(b"{\"a\":1}")),
            ResponseData::Json(json!({"a": 1}))
        );
        assert_eq!(
            parse_body(ok, &headers, &Bytes::from_static(b"{oops")),
            ResponseData::Text("{oops".into())
        );
    }
}
