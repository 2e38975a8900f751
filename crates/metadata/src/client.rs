//! The metadata API, client side: what a step calls to read its spec, set outputs, emit
//! events, start workflows and set decorators. Async, on one pooled hyper connection.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use switchyard_https::HttpsConnector;

use crate::error::{BoxError, ClientError, PathError};
use crate::path::Path;
use crate::value::WorkflowRun;
use crate::value::{SpecResponse, decode_text_encodings};

/// The environment variable holding the metadata API's base URL.
pub const METADATA_API_URL: &str = "METADATA_API_URL";

/// Responses larger than this are refused (a spec value or error body, never a stream).
const RESPONSE_LIMIT: usize = 64 << 20;

/// The longest wait between two attempts, however many retries are configured.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What Python's `urllib.parse.quote` leaves alone (its default keeps `/`).
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~')
    .remove(b'/');

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Anything `get` accepts as a query: a [`Path`] or a string in any form [`Path::parse`]
/// accepts (checked before anything is sent).
pub trait IntoQuery {
    /// The path to ask for.
    ///
    /// # Errors
    /// The string does not parse.
    fn into_query(self) -> Result<Path, PathError>;
}

impl IntoQuery for Path {
    fn into_query(self) -> Result<Path, PathError> {
        Ok(self)
    }
}

impl IntoQuery for &Path {
    fn into_query(self) -> Result<Path, PathError> {
        Ok(self.clone())
    }
}

impl IntoQuery for &str {
    fn into_query(self) -> Result<Path, PathError> {
        Path::parse(self)
    }
}

impl IntoQuery for &String {
    fn into_query(self) -> Result<Path, PathError> {
        Path::parse(self)
    }
}

impl IntoQuery for String {
    fn into_query(self) -> Result<Path, PathError> {
        Path::parse(&self)
    }
}

/// A connection to the metadata API (Python: `relay_sdk.Interface`). Cheap to clone; clones
/// share the connection pool.
///
/// ```no_run
/// use switchyard_metadata::{Binary, Interface, dynamic};
///
/// # async fn step() -> Result<(), switchyard_metadata::ClientError> {
/// let relay = Interface::from_env()?; // METADATA_API_URL
/// let secret: String = relay.get_as(dynamic!(azure.connection.secret)).await?;
/// let client_id = relay.get(r#"azure["connection"]["clientID"]"#).await?;
/// let key: Binary = relay.get_as(dynamic!(signing_key)).await?;
/// relay.outputs().set("outputkey", &"This will be the value of outputkey").await?;
/// relay.events().emit(&serde_json::json!({"tag": "v1"}), None).await?;
/// let run = relay.workflows().run("my_workflow", &serde_json::json!({"param_name": "param_value"})).await?;
/// println!("started run {} at {}", run.run_number, run.app_url);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Interface {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    client: HttpClient,
    scheme: Scheme,
    authority: Authority,
    authorization: Option<HeaderValue>,
    retries: u32,
    backoff: Duration,
    timeout: Duration,
}

impl std::fmt::Debug for Interface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interface")
            .field(
                "base",
                &format_args!("{}://{}", self.inner.scheme, self.inner.authority),
            )
            .field("credentials", &self.inner.authorization.is_some())
            .field("retries", &self.inner.retries)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

/// Configures an [`Interface`].
#[derive(Debug, Clone)]
#[must_use]
pub struct InterfaceBuilder {
    base_url: Option<String>,
    retries: u32,
    backoff: Duration,
    timeout: Duration,
}

impl Default for InterfaceBuilder {
    fn default() -> Self {
        InterfaceBuilder {
            base_url: None,
            retries: 3,
            backoff: Duration::from_millis(100),
            timeout: Duration::from_secs(30),
        }
    }
}

impl InterfaceBuilder {
    /// The service's base URL, such as `http://token:s3cret@metadata:8080`. Only scheme,
    /// credentials, host and port are used: like the Python client, requests go to `/spec`,
    /// `/outputs/…` at the root. Default: `METADATA_API_URL`.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Retries after a failed connection (any request) or a broken one (reads and `PUT`s).
    /// Default 3.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Wait before the first retry, doubled for each further one (at most 10 s). Default
    /// 100 ms.
    pub fn backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// Time allowed for each attempt, from sending to the whole reply read. Default 30 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    /// [`ClientError::MissingBaseUrl`] or [`ClientError::InvalidBaseUrl`].
    pub fn build(self) -> Result<Interface, ClientError> {
        let url = match self.base_url {
            Some(url) => url,
            None => std::env::var(METADATA_API_URL).map_err(|_| ClientError::MissingBaseUrl)?,
        };
        let (scheme, authority, authorization) = parse_base_url(&url)?;
        Ok(Interface {
            inner: Arc::new(ClientInner {
                client: shared_client()?,
                scheme,
                authority,
                authorization,
                retries: self.retries,
                backoff: self.backoff,
                timeout: self.timeout,
            }),
        })
    }
}

fn parse_base_url(url: &str) -> Result<(Scheme, Authority, Option<HeaderValue>), ClientError> {
    let invalid = |reason: &str| ClientError::InvalidBaseUrl {
        url: without_userinfo(url),
        reason: reason.to_owned(),
    };
    let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
    let scheme = uri
        .scheme()
        .cloned()
        .ok_or_else(|| invalid("no scheme (expected http:// or https://)"))?;
    if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
        return Err(invalid("the scheme must be http or https"));
    }
    let full = uri.authority().ok_or_else(|| invalid("no host"))?;
    let host_port = match full.port_u16() {
        Some(port) => format!("{}:{port}", full.host()),
        None => full.host().to_owned(),
    };
    let authority: Authority = host_port.parse().map_err(|_| invalid("bad host"))?;
    let authorization = match full.as_str().rsplit_once('@') {
        None => None,
        Some((userinfo, _)) => {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
            let credentials =
                zeroize::Zeroizing::new(format!("{}:{}", decode(user), decode(password)));
            let mut value =
                HeaderValue::try_from(format!("Basic {}", BASE64.encode(credentials.as_bytes())))
                    .map_err(|_| invalid("credentials cannot be sent"))?;
            value.set_sensitive(true);
            Some(value)
        }
    };
    Ok((scheme, authority, authorization))
}

/// The URL with any `user:password@` removed, for error messages.
fn without_userinfo(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) if scheme.is_empty() => rest[at + 1..].to_owned(),
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

fn shared_client() -> Result<HttpClient, ClientError> {
    static SHARED: OnceLock<Result<HttpClient, String>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            let mut http = HttpConnector::new();
            http.enforce_http(false);
            http.set_nodelay(true);
            let https = switchyard_https::connector(http, "https metadata URLs")
                .map_err(|e| e.to_string())?;
            Ok(Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(1)
                .pool_idle_timeout(Duration::from_secs(60))
                .build(https))
        })
        .clone()
        .map_err(ClientError::Tls)
}

/// A reply: status and body.
struct Reply {
    status: StatusCode,
    body: Bytes,
}

impl Interface {
    /// A client for `METADATA_API_URL` with default settings.
    ///
    /// # Errors
    /// The variable is unset or not a usable URL.
    pub fn from_env() -> Result<Self, ClientError> {
        InterfaceBuilder::default().build()
    }

    /// A client for `base_url` with default settings.
    ///
    /// # Errors
    /// Not a usable URL.
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        InterfaceBuilder::default().base_url(base_url).build()
    }

    /// Configure retries, backoff and timeout.
    pub fn builder() -> InterfaceBuilder {
        InterfaceBuilder::default()
    }

    /// The whole spec, every reference resolved (`GET /spec`).
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub async fn spec(&self) -> Result<Value, ClientError> {
        self.get(Path::whole()).await
    }

    /// The value at `query`, every reference in it resolved (Python: `Interface.get`).
    /// Text sent as `{"$encoding": "", …}` comes back as a string; binary values stay
    /// `{"$encoding": "base64", …}` objects: read them with `get_as::<Binary>`.
    ///
    /// # Errors
    /// [`ClientError::NotFound`], [`ClientError::Unresolvable`] (Python's
    /// `UnresolvableException`), [`ClientError::Query`] for a string that is not a path,
    /// and transport, server and decoding errors.
    pub async fn get(&self, query: impl IntoQuery) -> Result<Value, ClientError> {
        let path = query.into_query()?;
        let reply = self.get_reply(&path).await?;
        if !reply.complete {
            return Err(ClientError::Unresolvable {
                query: path.to_string(),
                unresolvable: Box::new(reply.unresolvable),
            });
        }
        let mut value = reply.value;
        decode_text_encodings(&mut value);
        Ok(value)
    }

    /// The value at `query`, deserialised into `T`.
    ///
    /// # Errors
    /// As [`get`](Self::get), plus [`ClientError::Decode`] when the value does not fit `T`.
    pub async fn get_as<T: DeserializeOwned>(
        &self,
        query: impl IntoQuery,
    ) -> Result<T, ClientError> {
        let value = self.get(query).await?;
        serde_json::from_value(value).map_err(|source| ClientError::Decode {
            what: "the value as the requested type",
            source,
        })
    }

    /// The raw reply to `GET /spec?q=…`, incomplete or not: the value with unresolved
    /// references in place and the list of them.
    ///
    /// # Errors
    /// As [`get`](Self::get), except that an incomplete value is not an error.
    pub async fn get_reply(&self, query: impl IntoQuery) -> Result<SpecResponse, ClientError> {
        let path = query.into_query()?;
        let target = if path.is_empty() {
            "/spec".to_owned()
        } else {
            let q: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("q", &path.to_string())
                .finish();
            format!("/spec?{q}")
        };
        let reply = self.send(Method::GET, &target, None).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Err(ClientError::NotFound {
                query: path.to_string(),
            });
        }
        let reply = check_status(&Method::GET, "/spec", reply)?;
        serde_json::from_slice(&reply.body).map_err(|source| ClientError::Decode {
            what: "the /spec reply ({\"value\", \"complete\"})",
            source,
        })
    }

    /// Setting outputs.
    #[must_use]
    pub fn outputs(&self) -> Outputs<'_> {
        Outputs { interface: self }
    }

    /// Emitting events.
    #[must_use]
    pub fn events(&self) -> Events<'_> {
        Events { interface: self }
    }

    /// Running workflows.
    #[must_use]
    pub fn workflows(&self) -> Workflows<'_> {
        Workflows { interface: self }
    }

    /// Setting UI decorators.
    #[must_use]
    pub fn decorators(&self) -> Decorators<'_> {
        Decorators { interface: self }
    }

    async fn send_json(
        &self,
        method: Method,
        target: &str,
        body: &impl Serialize,
    ) -> Result<Reply, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(ClientError::Encode)?;
        let reply = self
            .send(method.clone(), target, Some(Bytes::from(bytes)))
            .await?;
        check_status(&method, target, reply)
    }

    /// Sends one request, retrying connection failures (and, for idempotent methods, broken
    /// connections and timeouts) with exponential backoff.
    async fn send(
        &self,
        method: Method,
        target: &str,
        body: Option<Bytes>,
    ) -> Result<Reply, ClientError> {
        let inner = &self.inner;
        let uri = Uri::builder()
            .scheme(inner.scheme.clone())
            .authority(inner.authority.clone())
            .path_and_query(target)
            .build()
            .map_err(|e| ClientError::Transport {
                attempts: 0,
                source: Box::new(e),
            })?;
        let idempotent = method == Method::GET || method == Method::PUT;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = Request::new(Full::new(body.clone().unwrap_or_default()));
            *request.method_mut() = method.clone();
            *request.uri_mut() = uri.clone();
            if body.is_some() {
                request
                    .headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            if let Some(authorization) = &inner.authorization {
                request
                    .headers_mut()
                    .insert(AUTHORIZATION, authorization.clone());
            }
            let outcome = tokio::time::timeout(inner.timeout, async {
                let response = inner.client.request(request).await.map_err(|e| {
                    let connect = e.is_connect();
                    (connect, Box::new(e) as BoxError)
                })?;
                let status = response.status();
                let body = Limited::new(response.into_body(), RESPONSE_LIMIT)
                    .collect()
                    .await
                    .map_err(|e| (false, e))?
                    .to_bytes();
                Ok::<_, (bool, BoxError)>(Reply { status, body })
            })
            .await;
            let retry_allowed = attempt <= inner.retries;
            match outcome {
                Ok(Ok(reply)) => return Ok(reply),
                Ok(Err((connect, source))) => {
                    if !(retry_allowed && (connect || idempotent)) {
                        return Err(ClientError::Transport {
                            attempts: attempt,
                            source,
                        });
                    }
                    tracing::debug!(%method, target, attempt, error = %source, "metadata request failed; retrying");
                }
                Err(_elapsed) => {
                    if !(retry_allowed && idempotent) {
                        return Err(ClientError::Timeout {
                            attempts: attempt,
                            after: inner.timeout,
                        });
                    }
                    tracing::debug!(%method, target, attempt, "metadata request timed out; retrying");
                }
            }
            let factor = 1u32.checked_shl(attempt - 1).unwrap_or(u32::MAX);
            tokio::time::sleep(inner.backoff.saturating_mul(factor).min(MAX_BACKOFF)).await;
        }
    }
}

fn check_status(method: &Method, target: &str, reply: Reply) -> Result<Reply, ClientError> {
    if reply.status.is_success() {
        return Ok(reply);
    }
    let message = serde_json::from_slice::<Value>(&reply.body)
        .ok()
        .and_then(|v| {
            let error = v.get("error")?;
            error
                .pointer("/description/friendly")
                .or_else(|| error.get("description"))
                .or_else(|| error.get("title"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(&reply.body);
            text.chars().take(512).collect()
        });
    Err(ClientError::Server {
        method: method.clone(),
        path: target.split('?').next().unwrap_or(target).to_owned(),
        status: reply.status,
        message,
    })
}

/// `interface.outputs()`: values later steps can read.
#[derive(Debug, Clone, Copy)]
pub struct Outputs<'a> {
    interface: &'a Interface,
}

impl Outputs<'_> {
    /// Sets output `name` (`PUT /outputs/{name}`, the name percent-encoded with `/` kept).
    ///
    /// # Errors
    /// Transport, server and encoding errors.
    pub async fn set(&self, name: &str, value: &impl Serialize) -> Result<(), ClientError> {
        let target = format!("/outputs/{}", utf8_percent_encode(name, PATH_SEGMENT));
        self.interface
            .send_json(Method::PUT, &target, value)
            .await
            .map(drop)
    }
}

/// `interface.events()`: events for the service to act on.
#[derive(Debug, Clone, Copy)]
pub struct Events<'a> {
    interface: &'a Interface,
}

impl Events<'_> {
    /// Emits an event (`POST /events`). `data` must serialise to a JSON object; `key`, when
    /// given and not empty, identifies the event.
    ///
    /// # Errors
    /// [`ClientError::NotAnObject`], transport and server errors. Not retried once sent.
    pub async fn emit(&self, data: &impl Serialize, key: Option<&str>) -> Result<(), ClientError> {
        let data = to_object(data, "event data")?;
        let mut body = Map::new();
        body.insert("data".into(), Value::Object(data));
        if let Some(key) = key.filter(|k| !k.is_empty()) {
            body.insert("key".into(), Value::String(key.to_owned()));
        }
        self.interface
            .send_json(Method::POST, "/events", &body)
            .await
            .map(drop)
    }
}

/// `interface.workflows()`: starting other workflows.
#[derive(Debug, Clone, Copy)]
pub struct Workflows<'a> {
    interface: &'a Interface,
}

impl Workflows<'_> {
    /// Starts workflow `name` with `parameters` (anything that serialises to a JSON object:
    /// `json!({…})`, a map, a struct).
    ///
    /// # Errors
    /// [`ClientError::NotAnObject`], transport, server and decoding errors.
    pub async fn run(
        &self,
        name: &str,
        parameters: &impl Serialize,
    ) -> Result<WorkflowRun, ClientError> {
        let parameters = to_object(parameters, "workflow parameters")?;
        let wrapped: Map<String, Value> = parameters
            .into_iter()
            .map(|(k, v)| {
                let mut value = Map::new();
                value.insert("value".into(), v);
                (k, Value::Object(value))
            })
            .collect();
        let mut body = Map::new();
        body.insert("parameters".into(), Value::Object(wrapped));
        let target = format!("/workflows/{}/run", utf8_percent_encode(name, PATH_SEGMENT));
        let reply = self
            .interface
            .send_json(Method::POST, &target, &body)
            .await?;
        #[derive(serde::Deserialize)]
        struct Envelope {
            workflow_run: WorkflowRun,
        }
        serde_json::from_slice::<Envelope>(&reply.body)
            .map(|e| e.workflow_run)
            .map_err(|source| ClientError::Decode {
                what: "the workflow run reply ({\"workflow_run\": {…}})",
                source,
            })
    }

    /// Like [`run`](Self::run) with no parameters.
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub async fn run_without_parameters(&self, name: &str) -> Result<WorkflowRun, ClientError> {
        self.run(name, &Map::new()).await
    }
}

/// `interface.decorators()`: UI decorators for this step.
#[derive(Debug, Clone, Copy)]
pub struct Decorators<'a> {
    interface: &'a Interface,
}

impl Decorators<'_> {
    /// Sets a link decorator: a button labelled `description` pointing at `uri`.
    ///
    /// # Errors
    /// Transport and server errors.
    pub async fn set_link(
        &self,
        name: &str,
        description: &str,
        uri: &str,
    ) -> Result<(), ClientError> {
        let body = serde_json::json!({"description": description, "uri": uri, "type": "link"});
        let target = format!("/decorators/{}", utf8_percent_encode(name, PATH_SEGMENT));
        self.interface
            .send_json(Method::POST, &target, &body)
            .await
            .map(drop)
    }
}

fn to_object(
    value: &impl Serialize,
    what: &'static str,
) -> Result<Map<String, Value>, ClientError> {
    match serde_json::to_value(value).map_err(ClientError::Encode)? {
        Value::Object(object) => Ok(object),
        _ => Err(ClientError::NotAnObject { what }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_credentials_become_basic_auth() {
        let (scheme, authority, auth) =
            parse_base_url("http://token:s%40cret@127.0.0.1:8080/ignored/path").expect("parse");
        assert_eq!(scheme, Scheme::HTTP);
        assert_eq!(authority.as_str(), "127.0.0.1:8080");
        let auth = auth.expect("credentials");
        assert!(auth.is_sensitive());
        assert_eq!(
            auth.to_str().expect("ascii"),
            format!("Basic {}", BASE64.encode("token:s@cret"))
        );
        let (_, authority, auth) = parse_base_url("https://[::1]").expect("parse");
        assert_eq!(authority.as_str(), "[::1]");
        assert!(auth.is_none());
    }

    #[test]
    fn bad_base_urls_do_not_leak_credentials() {
        for url in [
            "ftp://user:hunter2@host",
            "no-scheme",
            "http://user:hunter2@",
        ] {
            let err = parse_base_url(url).expect_err(url);
            assert!(matches!(err, ClientError::InvalidBaseUrl { .. }), "{url}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn names_are_quoted_like_python() {
        // urllib.parse.quote("a b/c?é~") == 'a%20b/c%3F%C3%A9~'
        assert_eq!(
            utf8_percent_encode("a b/c?é~", PATH_SEGMENT).to_string(),
            "a%20b/c%3F%C3%A9~"
        );
    }

    #[test]
    fn debug_hides_credentials() {
        let relay = Interface::new("http://token:hunter2@localhost:1").expect("client");
        let shown = format!("{relay:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("credentials: true"), "{shown}");
    }
}
