//! The [`ExecutionContext`] handed to every handler: credentials, request settings, metadata
//! and a shared, pooled HTTP client.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::auth::Auth;
use crate::error::AuthError;
use crate::fetch::{FetchRequest, HttpClient};

/// Settings for [`ExecutionContext::fetch`]. Every field is optional; an absent one takes its
/// default. Deserialises from the original's `request_config` (`{"max_retries": 3,
/// "timeout": 30}`, timeout in seconds), where either key may be missing.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct RequestConfig {
    /// Retries after a connection error or a timeout (default 3).
    pub max_retries: Option<u32>,
    /// Time allowed for each attempt, body included (default 30 s).
    #[serde(deserialize_with = "seconds")]
    pub timeout: Option<Duration>,
    /// Wait before the first retry; doubled for each further one, with ±20 % jitter
    /// (default 1 s, as the original: 1 s, 2 s, 4 s).
    #[serde(skip)]
    pub backoff: Option<Duration>,
    /// Largest response body read, in bytes (default 16 MiB).
    pub max_response_bytes: Option<usize>,
    /// Redirects followed per request (default 10; 0 returns 3xx responses as
    /// [`FetchError::Http`](crate::FetchError::Http)).
    pub max_redirects: Option<u32>,
}

impl RequestConfig {
    /// Default retries after a connection error or timeout.
    pub const DEFAULT_MAX_RETRIES: u32 = 3;
    /// Default time per attempt.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
    /// Default first backoff.
    pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);
    /// Default response body limit.
    pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
    /// Default redirect limit.
    pub const DEFAULT_MAX_REDIRECTS: u32 = 10;

    /// All defaults.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`RequestConfig::max_retries`].
    #[must_use]
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = Some(retries);
        self
    }

    /// Sets [`RequestConfig::timeout`].
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets [`RequestConfig::backoff`].
    #[must_use]
    pub fn backoff(mut self, first: Duration) -> Self {
        self.backoff = Some(first);
        self
    }

    /// Sets [`RequestConfig::max_response_bytes`].
    #[must_use]
    pub fn max_response_bytes(mut self, limit: usize) -> Self {
        self.max_response_bytes = Some(limit);
        self
    }

    /// Sets [`RequestConfig::max_redirects`].
    #[must_use]
    pub fn max_redirects(mut self, limit: u32) -> Self {
        self.max_redirects = Some(limit);
        self
    }

    pub(crate) fn retries(&self) -> u32 {
        self.max_retries.unwrap_or(Self::DEFAULT_MAX_RETRIES)
    }

    pub(crate) fn attempt_timeout(&self) -> Duration {
        self.timeout.unwrap_or(Self::DEFAULT_TIMEOUT)
    }

    pub(crate) fn first_backoff(&self) -> Duration {
        self.backoff.unwrap_or(Self::DEFAULT_BACKOFF)
    }

    pub(crate) fn body_limit(&self) -> usize {
        self.max_response_bytes
            .unwrap_or(Self::DEFAULT_MAX_RESPONSE_BYTES)
    }

    pub(crate) fn redirects(&self) -> u32 {
        self.max_redirects.unwrap_or(Self::DEFAULT_MAX_REDIRECTS)
    }
}

fn seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    let seconds = Option::<f64>::deserialize(deserializer)?;
    seconds
        .map(|s| {
            Duration::try_from_secs_f64(s).map_err(|_| {
                serde::de::Error::custom(format!(
                    "timeout must be a non-negative number of seconds, got {s}"
                ))
            })
        })
        .transpose()
}

/// What every handler gets: the dispatch's credentials, request settings, free-form metadata,
/// and [`ExecutionContext::fetch`]. Cloning is cheap and clones share everything.
///
/// ```
/// use switchyard_integration::{Auth, ExecutionContext, RequestConfig};
/// use std::time::Duration;
///
/// let ctx = ExecutionContext::builder()
///     .auth(Auth::bearer("token"))
///     .request_config(RequestConfig::new().timeout(Duration::from_secs(10)))
///     .build();
/// assert!(ctx.auth().is_some());
/// ```
#[derive(Clone)]
pub struct ExecutionContext {
    inner: Arc<Inner>,
}

struct Inner {
    auth: Option<Auth>,
    config: RequestConfig,
    metadata: Map<String, Value>,
    client: HttpClient,
}

impl fmt::Debug for ExecutionContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutionContext")
            .field("auth", &self.inner.auth)
            .field("request_config", &self.inner.config)
            .field("metadata", &self.inner.metadata)
            .finish_non_exhaustive()
    }
}

impl Default for ExecutionContext {
    fn default() -> Self {
        Self::builder().build()
    }
}

impl ExecutionContext {
    /// A context with no credentials, default settings and the shared client.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts building a context.
    #[must_use]
    pub fn builder() -> ContextBuilder {
        ContextBuilder::default()
    }

    /// The credentials, if the dispatch has any.
    #[must_use]
    pub fn auth(&self) -> Option<&Auth> {
        self.inner.auth.as_ref()
    }

    /// The request settings.
    #[must_use]
    pub fn request_config(&self) -> &RequestConfig {
        &self.inner.config
    }

    /// The metadata the platform passed along.
    #[must_use]
    pub fn metadata(&self) -> &Map<String, Value> {
        &self.inner.metadata
    }

    /// Starts a request to `url` (GET unless [`FetchRequest::method`] says otherwise). Await
    /// it directly or call [`FetchRequest::send`].
    ///
    /// ```no_run
    /// # async fn run(ctx: switchyard_integration::ExecutionContext) -> Result<(), switchyard_integration::FetchError> {
    /// use http::Method;
    /// use serde_json::json;
    ///
    /// let issues = ctx
    ///     .fetch("https://api.example.com/issues")
    ///     .param("state", "open")
    ///     .param("labels", json!(["bug", "p1"]))
    ///     .await?;
    /// let created = ctx
    ///     .fetch("https://api.example.com/issues")
    ///     .method(Method::POST)
    ///     .json(&json!({"title": "hello"}))
    ///     .await?;
    /// # let _ = (issues, created);
    /// # Ok(()) }
    /// ```
    pub fn fetch(&self, url: impl Into<String>) -> FetchRequest<'_> {
        FetchRequest::new(self, url.into())
    }

    pub(crate) fn client(&self) -> &HttpClient {
        &self.inner.client
    }
}

/// Builds an [`ExecutionContext`].
#[derive(Debug, Default)]
pub struct ContextBuilder {
    auth: Option<Auth>,
    config: RequestConfig,
    metadata: Map<String, Value>,
    client: Option<HttpClient>,
}

impl ContextBuilder {
    /// Sets the credentials.
    #[must_use]
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Sets the credentials from the platform's envelope `{"auth_type", "credentials"}`.
    ///
    /// # Errors
    /// As [`Auth::from_envelope`].
    pub fn auth_envelope(mut self, envelope: &Value) -> Result<Self, AuthError> {
        self.auth = Some(Auth::from_envelope(envelope)?);
        Ok(self)
    }

    /// Sets the request settings.
    #[must_use]
    pub fn request_config(mut self, config: RequestConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the metadata.
    #[must_use]
    pub fn metadata(mut self, metadata: Map<String, Value>) -> Self {
        self.metadata = metadata;
        self
    }

    /// Uses `client` instead of the process-wide shared one.
    #[must_use]
    pub fn client(mut self, client: HttpClient) -> Self {
        self.client = Some(client);
        self
    }

    /// The context.
    #[must_use]
    pub fn build(self) -> ExecutionContext {
        ExecutionContext {
            inner: Arc::new(Inner {
                auth: self.auth,
                config: self.config,
                metadata: self.metadata,
                client: self.client.unwrap_or_else(HttpClient::shared),
            }),
        }
    }
}
