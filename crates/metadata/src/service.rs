//! The metadata API, server side: a tower [`Service`] that answers every route the Python
//! `relay-sdk` (and this crate's [`Interface`](crate::Interface)) calls.
//!
//! | route | answer |
//! |---|---|
//! | `GET /spec[?q=path]` | 200 `{"value", "unresolvable", "complete"}`; 400 bad query; 404 no value |
//! | `PUT /outputs/{name}` | 201; JSON, text or bytes body |
//! | `GET /outputs/{step}/{name}` | 200 `{"taskName", "key", "value"}`; 404 |
//! | `GET /secrets/{name}` | 200 `{"key", "value"}` for secrets the step's spec references; 404 |
//! | `POST /events` | 202; body `{"data": {…}, "key"?}` |
//! | `POST /workflows/{name}/run` | 201 `{"workflow_run": {"name", "run_number", "app_url"}}` |
//! | `POST /decorators/{name}` | 201; body `{"type": "link", "description", "uri"}` |
//! | `GET /healthz` | 200, no credentials needed |
//!
//! Errors are JSON, `{"error": {"code", "title", "description": {"friendly"}}}`, with 400 (bad
//! query), 401 (no or wrong token), 404, 405, 413 (body over the limit), 422 (malformed body,
//! unsupported media type or query language), 500 (output store failed) and 503 (sink closed).
//!
//! Steps identify themselves with a token, as Basic auth (`http://token:TOKEN@host`, the form
//! the Python client sends for a `METADATA_API_URL` with credentials) or `Bearer TOKEN`. A
//! service with a single step and no tokens answers every request as that step.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::header::{ALLOW, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq as _;
use tower_service::Service;
use zeroize::Zeroizing;

use crate::error::{BoxError, BuildError, SinkError};
use crate::path::Path;
use crate::sink::{Decorator, DecoratorKind, EmittedEvent, RunRequest, Sink};
use crate::spec::{Lookup, Reference, Resolver, SpecSource, lookup, outputs_needed};
use crate::store::{BoxFuture, MemoryOutputs, OutputStore};
use crate::value::{SecretValue, SpecResponse, encode_bytes};

/// Default request body limit: 4 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 4 << 20;
/// Default limit on one output's size (its value's JSON): 1 MiB.
pub const DEFAULT_MAX_OUTPUT_BYTES: u64 = 1 << 20;
/// Default limit on all of one step's outputs together: 16 MiB.
pub const DEFAULT_MAX_STEP_OUTPUT_BYTES: u64 = 16 << 20;

/// The metadata API as a tower [`Service`]; cheap to clone (shared state).
///
/// ```
/// use http_body_util::{BodyExt, Empty};
/// use serde_json::json;
/// use switchyard_metadata::{ChannelSink, MetadataService, SpecSource};
/// use tower_service::Service;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (sink, _events) = ChannelSink::new(64, "https://ci.example.com");
/// let mut service = MetadataService::builder()
///     .step("deploy", SpecSource::from_json(r#"{"password": {"$type": "Secret", "name": "db"}}"#)?)
///     .secret("db", "hunter2")
///     .sink(sink)
///     .build()?;
///
/// let request = http::Request::get("/spec?q=password").body(Empty::<bytes::Bytes>::new())?;
/// let response = service.call(request).await?;
/// assert_eq!(response.status(), 200);
/// let body = response.into_body().collect().await?.to_bytes();
/// let reply: serde_json::Value = serde_json::from_slice(&body)?;
/// assert_eq!(reply, json!({"value": "hunter2", "unresolvable": {}, "complete": true}));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct MetadataService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MetadataService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataService")
            .field("steps", &self.inner.steps.keys().collect::<Vec<_>>())
            .field("tokens", &self.inner.tokens.len())
            .field("secrets", &self.inner.secrets.keys().collect::<Vec<_>>())
            .field("body_limit", &self.inner.body_limit)
            .finish_non_exhaustive()
    }
}

struct Inner {
    steps: HashMap<String, SpecSource>,
    tokens: Vec<(Zeroizing<String>, String)>,
    secrets: HashMap<String, SecretValue>,
    connections: HashMap<(String, String), Value>,
    parameters: Map<String, Value>,
    outputs: Arc<dyn OutputStore>,
    sink: Arc<dyn Sink>,
    body_limit: usize,
    max_output_bytes: u64,
    max_step_output_bytes: u64,
    /// Held while an output is checked against the step's total and set, so two sets cannot
    /// both pass the check.
    output_writes: tokio::sync::Mutex<()>,
}

/// Configures a [`MetadataService`]. Every setting has a default except the steps and the
/// sink.
#[must_use]
pub struct MetadataServiceBuilder {
    steps: Vec<(String, SpecSource)>,
    tokens: Vec<(Zeroizing<String>, String)>,
    secrets: HashMap<String, SecretValue>,
    connections: HashMap<(String, String), Value>,
    parameters: Map<String, Value>,
    outputs: Option<Arc<dyn OutputStore>>,
    sink: Option<Arc<dyn Sink>>,
    body_limit: usize,
    max_output_bytes: u64,
    max_step_output_bytes: u64,
}

impl std::fmt::Debug for MetadataServiceBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataServiceBuilder")
            .field(
                "steps",
                &self.steps.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("tokens", &self.tokens.len())
            .finish_non_exhaustive()
    }
}

impl MetadataService {
    /// Starts configuring a service.
    pub fn builder() -> MetadataServiceBuilder {
        MetadataServiceBuilder {
            steps: Vec::new(),
            tokens: Vec::new(),
            secrets: HashMap::new(),
            connections: HashMap::new(),
            parameters: Map::new(),
            outputs: None,
            sink: None,
            body_limit: DEFAULT_BODY_LIMIT,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            max_step_output_bytes: DEFAULT_MAX_STEP_OUTPUT_BYTES,
        }
    }
}

impl MetadataServiceBuilder {
    /// Adds a step and its spec. A later step with the same name replaces the earlier one.
    pub fn step(mut self, name: impl Into<String>, spec: SpecSource) -> Self {
        let name = name.into();
        self.steps.retain(|(n, _)| *n != name);
        self.steps.push((name, spec));
        self
    }

    /// Lets requests carrying `token` act as `step`. With tokens configured, every request
    /// but `/healthz` needs one. Default: no tokens, allowed only with a single step.
    pub fn token(mut self, token: impl Into<String>, step: impl Into<String>) -> Self {
        self.tokens
            .push((Zeroizing::new(token.into()), step.into()));
        self
    }

    /// Sets a secret (UTF-8 values are served as text, others as base64).
    pub fn secret(mut self, name: impl Into<String>, value: impl Into<SecretValue>) -> Self {
        self.secrets.insert(name.into(), value.into());
        self
    }

    /// Sets a connection of a type (`aws`, `azure`, …) and name.
    pub fn connection(
        mut self,
        kind: impl Into<String>,
        name: impl Into<String>,
        value: Value,
    ) -> Self {
        self.connections.insert((kind.into(), name.into()), value);
        self
    }

    /// Sets a workflow parameter's value.
    pub fn parameter(mut self, name: impl Into<String>, value: Value) -> Self {
        self.parameters.insert(name.into(), value);
        self
    }

    /// Where outputs are kept. Default: [`MemoryOutputs`].
    pub fn outputs(mut self, store: impl OutputStore) -> Self {
        self.outputs = Some(Arc::new(store));
        self
    }

    /// Like [`outputs`](Self::outputs), for a store shared with other code.
    pub fn shared_outputs(mut self, store: Arc<dyn OutputStore>) -> Self {
        self.outputs = Some(store);
        self
    }

    /// Where events, run requests and decorators go. Required.
    pub fn sink(mut self, sink: impl Sink) -> Self {
        self.sink = Some(Arc::new(sink));
        self
    }

    /// Like [`sink`](Self::sink), for a sink shared with other code.
    pub fn shared_sink(mut self, sink: Arc<dyn Sink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Largest request body accepted; larger ones get 413. Default
    /// [`DEFAULT_BODY_LIMIT`] (4 MiB).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// The largest output (its value's JSON) a step may set; larger ones get 413
    /// `output_too_large`. Default [`DEFAULT_MAX_OUTPUT_BYTES`] (1 MiB).
    pub fn max_output_bytes(mut self, bytes: u64) -> Self {
        self.max_output_bytes = bytes;
        self
    }

    /// The most all of one step's outputs may take together; a set past it gets 413
    /// `step_outputs_too_large`. Enforced with stores that count
    /// ([`OutputStore::step_bytes`]: both of this crate's do). Default
    /// [`DEFAULT_MAX_STEP_OUTPUT_BYTES`] (16 MiB).
    pub fn max_step_output_bytes(mut self, bytes: u64) -> Self {
        self.max_step_output_bytes = bytes;
        self
    }

    /// Checks the configuration and builds the service.
    ///
    /// # Errors
    /// [`BuildError`]: no steps, no sink, several steps without tokens, or a token that is
    /// empty, repeated or names an unknown step.
    pub fn build(self) -> Result<MetadataService, BuildError> {
        if self.steps.is_empty() {
            return Err(BuildError::NoSteps);
        }
        let sink = self.sink.ok_or(BuildError::NoSink)?;
        if self.tokens.is_empty() && self.steps.len() > 1 {
            return Err(BuildError::StepsNeedTokens {
                count: self.steps.len(),
            });
        }
        let steps: HashMap<String, SpecSource> = self.steps.into_iter().collect();
        for (i, (token, step)) in self.tokens.iter().enumerate() {
            if token.is_empty() {
                return Err(BuildError::EmptyToken { step: step.clone() });
            }
            if !steps.contains_key(step) {
                return Err(BuildError::UnknownStep { step: step.clone() });
            }
            if let Some((_, first)) = self.tokens[..i].iter().find(|(t, _)| t == token) {
                return Err(BuildError::DuplicateToken {
                    first: first.clone(),
                    second: step.clone(),
                });
            }
        }
        Ok(MetadataService {
            inner: Arc::new(Inner {
                steps,
                tokens: self.tokens,
                secrets: self.secrets,
                connections: self.connections,
                parameters: self.parameters,
                outputs: self
                    .outputs
                    .unwrap_or_else(|| Arc::new(MemoryOutputs::new())),
                sink,
                body_limit: self.body_limit,
                max_output_bytes: self.max_output_bytes,
                max_step_output_bytes: self.max_step_output_bytes,
                output_writes: tokio::sync::Mutex::new(()),
            }),
        })
    }
}

impl<B> Service<Request<B>> for MetadataService
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let method = request.method().clone();
            let path = request.uri().path().to_owned();
            let response = match inner.handle(request).await {
                Ok(response) => response,
                Err(problem) => problem.into_response(),
            };
            tracing::debug!(%method, %path, status = response.status().as_u16(), "metadata request");
            Ok(response)
        })
    }
}

/// An error answer.
#[derive(Debug)]
struct Problem {
    status: StatusCode,
    code: &'static str,
    message: String,
    arguments: Option<Value>,
    allow: Option<&'static str>,
}

impl Problem {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Problem {
            status,
            code,
            message: message.into(),
            arguments: None,
            allow: None,
        }
    }

    fn unprocessable(message: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "malformed_request",
            message,
        )
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut error = json!({
            "code": self.code,
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "description": {"friendly": self.message},
        });
        if let Some(arguments) = self.arguments {
            error["arguments"] = arguments;
        }
        let mut response = json_response(self.status, &json!({ "error": error }));
        if let Some(allow) = self.allow {
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"metadata\""),
            );
        }
        response
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn empty_response(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// The routes, for matching and for `Allow` on a method mismatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Health,
    Spec,
    Outputs,
    Secret,
    Events,
    WorkflowRun,
    Decorator,
}

fn route(segments: &[&str]) -> Option<(Route, &'static str)> {
    Some(match segments {
        ["healthz"] => (Route::Health, "GET"),
        ["spec"] => (Route::Spec, "GET"),
        ["outputs", _] => (Route::Outputs, "PUT"),
        ["outputs", _, _, ..] => (Route::Outputs, "GET, PUT"),
        ["secrets", _] => (Route::Secret, "GET"),
        ["events"] => (Route::Events, "POST"),
        ["workflows", _, "run"] => (Route::WorkflowRun, "POST"),
        ["decorators", _] => (Route::Decorator, "POST"),
        _ => return None,
    })
}

fn decode_segment(raw: &str) -> Result<String, Problem> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "bad_path",
                format!("path segment {raw:?} is not UTF-8 once percent-decoded"),
            )
        })
}

fn decode_segments(raw: &[&str]) -> Result<String, Problem> {
    let decoded = raw
        .iter()
        .map(|s| decode_segment(s))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(decoded.join("/"))
}

impl Inner {
    async fn handle<B>(&self, request: Request<B>) -> Result<Response<Full<Bytes>>, Problem>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = request.into_parts();
        let raw_path = parts.uri.path();
        let segments: Vec<&str> = raw_path.trim_start_matches('/').split('/').collect();
        let (route_kind, allow) = route(&segments).ok_or_else(|| {
            Problem::new(
                StatusCode::NOT_FOUND,
                "route_not_found",
                format!("no route {raw_path}"),
            )
        })?;
        let method_fits = allow.split(", ").any(|m| m == parts.method.as_str());
        if !method_fits {
            let mut problem = Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!(
                    "{} is not allowed on {raw_path} (allowed: {allow})",
                    parts.method
                ),
            );
            problem.allow = Some(allow);
            return Err(problem);
        }
        if route_kind == Route::Health {
            return Ok(json_response(StatusCode::OK, &json!({})));
        }
        let step = self.authenticate(&parts.headers)?;
        let spec = self.steps.get(step).ok_or_else(|| {
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "step_missing",
                "the step for this token is not configured",
            )
        })?;
        match route_kind {
            Route::Spec => self.get_spec(step, spec, parts.uri.query()).await,
            Route::Outputs if parts.method == Method::GET => {
                let from = decode_segment(segments[1])?;
                let name = decode_segments(&segments[2..])?;
                self.get_output(step, spec, &from, &name).await
            }
            Route::Outputs => {
                let name = decode_segments(&segments[1..])?;
                let body = self.read_body(body).await?;
                self.put_output(step, name, &parts.headers, body).await
            }
            Route::Secret => {
                let name = decode_segment(segments[1])?;
                self.get_secret(spec, &name)
            }
            Route::Events => {
                let body = self.read_json(&parts.headers, body).await?;
                self.emit(step, body).await
            }
            Route::WorkflowRun => {
                let workflow = decode_segment(segments[1])?;
                let body = self.read_json(&parts.headers, body).await?;
                self.run_workflow(step, workflow, body).await
            }
            Route::Decorator => {
                let name = decode_segment(segments[1])?;
                let body = self.read_json(&parts.headers, body).await?;
                self.set_decorator(step, name, body).await
            }
            Route::Health => Ok(json_response(StatusCode::OK, &json!({}))),
        }
    }

    /// The step a request acts as.
    fn authenticate(&self, headers: &HeaderMap) -> Result<&str, Problem> {
        if self.tokens.is_empty() {
            // `build` guarantees exactly one step in this case.
            return self
                .steps
                .keys()
                .next()
                .map(String::as_str)
                .ok_or_else(|| Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "no step"));
        }
        let unauthorized = |why: &str| {
            Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                format!("{why}: send the step's token as Basic auth password or Bearer token"),
            )
        };
        let header = headers
            .get(AUTHORIZATION)
            .ok_or_else(|| unauthorized("no credentials"))?
            .to_str()
            .map_err(|_| unauthorized("unreadable Authorization header"))?;
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        let rest = rest.trim();
        let (user, token): (Option<String>, Zeroizing<String>) =
            if scheme.eq_ignore_ascii_case("bearer") {
                (None, Zeroizing::new(rest.to_owned()))
            } else if scheme.eq_ignore_ascii_case("basic") {
                let decoded = Zeroizing::new(
                    BASE64
                        .decode(rest)
                        .map_err(|_| unauthorized("malformed Basic credentials"))?,
                );
                let text = std::str::from_utf8(&decoded)
                    .map_err(|_| unauthorized("malformed Basic credentials"))?;
                let (user, password) = text
                    .split_once(':')
                    .ok_or_else(|| unauthorized("malformed Basic credentials"))?;
                (Some(user.to_owned()), Zeroizing::new(password.to_owned()))
            } else {
                return Err(unauthorized("unsupported authorization scheme"));
            };
        let mut found: Option<&str> = None;
        for (candidate, step) in &self.tokens {
            if bool::from(candidate.as_bytes().ct_eq(token.as_bytes())) {
                found = Some(step);
            }
        }
        let step = found.ok_or_else(|| unauthorized("unknown token"))?;
        match user.as_deref() {
            None | Some("" | "token") => Ok(step),
            Some(user) if user == step => Ok(step),
            Some(_) => Err(unauthorized(
                "Basic user name must be empty, `token` or the step's name",
            )),
        }
    }

    async fn read_body<B>(&self, body: B) -> Result<Bytes, Problem>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        match Limited::new(body, self.body_limit).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("request body is over the {} byte limit", self.body_limit),
            )),
            Err(error) => Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "body_unreadable",
                format!("could not read the request body: {error}"),
            )),
        }
    }

    /// A JSON object body (content type JSON or none).
    async fn read_json<B>(
        &self,
        headers: &HeaderMap,
        body: B,
    ) -> Result<Map<String, Value>, Problem>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        match media_type(headers) {
            None => {}
            Some(m) if is_json(&m) => {}
            Some(m) => {
                return Err(Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unsupported_media_type",
                    format!("expected application/json, got {m}"),
                ));
            }
        }
        let body = self.read_body(body).await?;
        match serde_json::from_slice(&body) {
            Ok(Value::Object(object)) => Ok(object),
            Ok(other) => Err(Problem::unprocessable(format!(
                "the body must be a JSON object, found {}",
                crate::spec::json_type(&other)
            ))),
            Err(e) => Err(Problem::unprocessable(format!(
                "the body is not valid JSON (line {}, column {}): {e}",
                e.line(),
                e.column()
            ))),
        }
    }

    async fn get_spec(
        &self,
        step: &str,
        spec: &SpecSource,
        query: Option<&str>,
    ) -> Result<Response<Full<Bytes>>, Problem> {
        let mut q = String::new();
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                "q" => q = value.into_owned(),
                "lang" if value.is_empty() || value == "path" => {}
                "lang" => {
                    return Err(Problem::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "unsupported_query_language",
                        format!("query language {value:?} is not supported (only \"path\")"),
                    ));
                }
                _ => {}
            }
        }
        let path = Path::parse(&q).map_err(|e| {
            let mut problem = Problem::new(StatusCode::BAD_REQUEST, "bad_query", e.to_string());
            problem.arguments = Some(json!({
                "query": q,
                "offset": e.offset(),
                "expected": e.expected().to_string(),
            }));
            problem
        })?;
        let resolver = Resolver {
            secrets: &self.secrets,
            connections: &self.connections,
            parameters: &self.parameters,
            outputs: self.fetch_outputs(step, spec, &path).await?,
        };
        match lookup(spec.value(), &path, &resolver) {
            Lookup::Found {
                value,
                unresolvable,
            } => {
                let complete = unresolvable.is_empty();
                let reply = SpecResponse {
                    value,
                    unresolvable,
                    complete,
                };
                let reply = serde_json::to_value(&reply).unwrap_or(Value::Null);
                Ok(json_response(StatusCode::OK, &reply))
            }
            Lookup::Missing { reason } => {
                let mut problem = Problem::new(StatusCode::NOT_FOUND, "not_found", reason);
                problem.arguments = Some(json!({ "query": q }));
                Err(problem)
            }
        }
    }

    /// The outputs a lookup of `path` reads, from the store.
    async fn fetch_outputs(
        &self,
        step: &str,
        spec: &SpecSource,
        path: &Path,
    ) -> Result<HashMap<(String, String), Value>, Problem> {
        let mut outputs = HashMap::new();
        for (from, name) in outputs_needed(spec.value(), path) {
            let value = self
                .outputs
                .get(&from, &name)
                .await
                .map_err(|e| store_problem(step, &e))?;
            if let Some(value) = value {
                outputs.insert((from, name), value);
            }
        }
        Ok(outputs)
    }

    async fn put_output(
        &self,
        step: &str,
        name: String,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Response<Full<Bytes>>, Problem> {
        if name.is_empty() {
            return Err(Problem::unprocessable("the output name is empty"));
        }
        let value = match media_type(headers) {
            Some(m) if is_json(&m) => serde_json::from_slice(&body).map_err(|e| {
                Problem::unprocessable(format!(
                    "the output is not valid JSON (line {}, column {}): {e}",
                    e.line(),
                    e.column()
                ))
            })?,
            None => encode_bytes(&body),
            Some(m) if m == "text/plain" || m == "application/octet-stream" => encode_bytes(&body),
            Some(m) => {
                return Err(Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unsupported_media_type",
                    format!(
                        "outputs are application/json, text/plain or application/octet-stream, not {m}"
                    ),
                ));
            }
        };
        let size = crate::store::value_bytes(&value);
        if size > self.max_output_bytes {
            return Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "output_too_large",
                format!(
                    "the output is {size} bytes; one output may be at most {}",
                    self.max_output_bytes
                ),
            ));
        }
        let _writes = self.output_writes.lock().await;
        let total = self
            .outputs
            .step_bytes(step)
            .await
            .map_err(|e| store_problem(step, &e))?;
        if let Some(total) = total {
            let replaced = self
                .outputs
                .get(step, &name)
                .await
                .map_err(|e| store_problem(step, &e))?
                .map_or(0, |old| crate::store::value_bytes(&old));
            let after = total.saturating_sub(replaced) + size;
            if after > self.max_step_output_bytes {
                return Err(Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "step_outputs_too_large",
                    format!(
                        "the step's outputs would take {after} bytes; together they may take at most {}",
                        self.max_step_output_bytes
                    ),
                ));
            }
        }
        self.outputs
            .set(step, &name, value)
            .await
            .map_err(|e| store_problem(step, &e))?;
        tracing::debug!(step, output = %name, "output set");
        Ok(empty_response(StatusCode::CREATED))
    }

    /// An output: the step's own, or one its spec references (as secrets, a token for one
    /// step cannot read what only other steps were meant to see). Others are 404, like
    /// outputs that do not exist.
    async fn get_output(
        &self,
        step: &str,
        spec: &SpecSource,
        from: &str,
        name: &str,
    ) -> Result<Response<Full<Bytes>>, Problem> {
        let readable = from == step
            || spec.references().any(
                |r| matches!(r, Reference::Output { step: s, name: n } if s == from && n == name),
            );
        let value = if readable {
            self.outputs
                .get(from, name)
                .await
                .map_err(|e| store_problem(from, &e))?
        } else {
            None
        };
        match value {
            Some(value) => Ok(json_response(
                StatusCode::OK,
                &json!({"taskName": from, "key": name, "value": value}),
            )),
            None => Err(Problem::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("step {from:?} has no output {name:?}"),
            )),
        }
    }

    fn get_secret(&self, spec: &SpecSource, name: &str) -> Result<Response<Full<Bytes>>, Problem> {
        let referenced = spec
            .references()
            .any(|r| matches!(r, Reference::Secret { name: n } if n == name));
        match self.secrets.get(name).filter(|_| referenced) {
            Some(secret) => Ok(json_response(
                StatusCode::OK,
                &json!({"key": name, "value": encode_bytes(secret.expose())}),
            )),
            None => Err(Problem::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no secret {name:?} for this step"),
            )),
        }
    }

    async fn emit(
        &self,
        step: &str,
        mut body: Map<String, Value>,
    ) -> Result<Response<Full<Bytes>>, Problem> {
        let data = match body.remove("data") {
            Some(Value::Object(data)) => data,
            Some(other) => {
                return Err(Problem::unprocessable(format!(
                    "`data` must be an object, found {}",
                    crate::spec::json_type(&other)
                )));
            }
            None => return Err(Problem::unprocessable("missing `data`")),
        };
        let key = match body.remove("key") {
            None | Some(Value::Null) => None,
            Some(Value::String(key)) => Some(key),
            Some(other) => {
                return Err(Problem::unprocessable(format!(
                    "`key` must be a string, found {}",
                    crate::spec::json_type(&other)
                )));
            }
        };
        let event = EmittedEvent {
            step: step.to_owned(),
            data,
            key,
        };
        self.sink.emit(event).await.map_err(sink_problem)?;
        Ok(empty_response(StatusCode::ACCEPTED))
    }

    async fn run_workflow(
        &self,
        step: &str,
        workflow: String,
        mut body: Map<String, Value>,
    ) -> Result<Response<Full<Bytes>>, Problem> {
        if workflow.is_empty() {
            return Err(Problem::unprocessable("the workflow name is empty"));
        }
        let mut parameters = Map::new();
        match body.remove("parameters") {
            None | Some(Value::Null) => {}
            Some(Value::Object(given)) => {
                for (name, wrapped) in given {
                    match wrapped {
                        Value::Object(mut wrapped) if wrapped.contains_key("value") => {
                            let value = wrapped.remove("value").unwrap_or(Value::Null);
                            parameters.insert(name, value);
                        }
                        _ => {
                            return Err(Problem::unprocessable(format!(
                                "parameter {name:?} must be {{\"value\": …}}"
                            )));
                        }
                    }
                }
            }
            Some(other) => {
                return Err(Problem::unprocessable(format!(
                    "`parameters` must be an object, found {}",
                    crate::spec::json_type(&other)
                )));
            }
        }
        let request = RunRequest {
            step: step.to_owned(),
            workflow,
            parameters,
        };
        let run = self
            .sink
            .run_workflow(request)
            .await
            .map_err(sink_problem)?;
        Ok(json_response(
            StatusCode::CREATED,
            &json!({"workflow_run": {"name": run.name, "run_number": run.run_number, "app_url": run.app_url}}),
        ))
    }

    async fn set_decorator(
        &self,
        step: &str,
        name: String,
        body: Map<String, Value>,
    ) -> Result<Response<Full<Bytes>>, Problem> {
        let text = |field: &str| -> Result<String, Problem> {
            match body.get(field) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(Problem::unprocessable(format!(
                    "`{field}` must be a string, found {}",
                    crate::spec::json_type(other)
                ))),
                None => Err(Problem::unprocessable(format!("missing `{field}`"))),
            }
        };
        let kind = match text("type")?.as_str() {
            "link" => DecoratorKind::Link {
                description: text("description")?,
                uri: text("uri")?,
            },
            other => {
                return Err(Problem::unprocessable(format!(
                    "unsupported decorator type {other:?} (supported: \"link\")"
                )));
            }
        };
        let decorator = Decorator {
            step: step.to_owned(),
            name,
            kind,
        };
        self.sink
            .set_decorator(decorator)
            .await
            .map_err(sink_problem)?;
        Ok(empty_response(StatusCode::CREATED))
    }
}

fn store_problem(step: &str, error: &crate::error::StoreError) -> Problem {
    tracing::error!(step, %error, "output store failed");
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "output_store_failed",
        "the output store failed; see the service log",
    )
}

fn sink_problem(error: SinkError) -> Problem {
    match error {
        SinkError::Closed => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "sink_closed",
            error.to_string(),
        ),
        SinkError::Rejected(message) => {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "rejected", message)
        }
    }
}

/// The media type without parameters, lower-cased.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next().unwrap_or_default().trim();
    (!essence.is_empty()).then(|| essence.to_ascii_lowercase())
}

fn is_json(media_type: &str) -> bool {
    media_type == "application/json" || media_type.ends_with("+json")
}
