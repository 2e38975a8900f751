//! The server's settings: a TOML file (every key optional, every default documented here and
//! in `docs/server.md`), overridden by command-line flags.
//!
//! ```
//! use switchyard_server::Config;
//!
//! let config = Config::from_toml_str(r#"
//!     bind = "127.0.0.1:9000"
//!     tokens = ["a-long-random-s3cret-token"]
//!
//!     [delivery]
//!     allow_subnets = ["127.0.0.0/8"]
//! "#, "example.toml".as_ref())?;
//! assert_eq!(config.bind.port(), 9000);
//! assert_eq!(config.body_limit, 1024 * 1024);
//! # Ok::<(), switchyard_server::ServerError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use switchyard_runtime_events::HubConfig;
use switchyard_webhooks::delivery::{AddressPolicy, DeliveryConfig};
use switchyard_webhooks::retry::RetryPolicy;
use switchyard_webhooks::{AppUid, RegistryConfig};

use crate::error::ServerError;

/// The default listening address.
pub const DEFAULT_BIND: &str = "127.0.0.1:8071";
/// The default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = ".switchyard";
/// The default limit on request bodies: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
/// The default time in-flight requests and deliveries get to finish at shutdown.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event (the default).
    #[default]
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// A bearer token. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Token(String);

impl Token {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token's text, for comparing and for clients.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token([redacted])")
    }
}

/// Everything the server can be told. Every field has a default (see each).
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen (default `127.0.0.1:8071`).
    pub bind: SocketAddr,
    /// Where the embedded store lives (default `./.switchyard`).
    pub data_dir: PathBuf,
    /// Bearer tokens accepted on every route but the health checks. When empty (the
    /// default), one is generated on first start and kept in `<data_dir>/token`.
    pub tokens: Vec<Token>,
    /// The largest request body accepted, in bytes (default 1 MiB).
    pub body_limit: usize,
    /// The log format (default human).
    pub log_format: LogFormat,
    /// The log filter, in `tracing-subscriber`'s `EnvFilter` syntax (default `info`;
    /// `RUST_LOG` wins when set).
    pub log_filter: String,
    /// How long in-flight requests and deliveries get at shutdown (default 30 s).
    pub shutdown_grace: Duration,
    /// Timeouts and the cap on open connections.
    pub connections: ConnectionLimits,
    /// The rules messages are checked by.
    pub webhooks: WebhooksConfig,
    /// Runtime-event subscriptions: queues, caps, expiry and the filters' budget.
    pub runtime: HubConfig,
    /// Outbound webhook delivery.
    pub delivery: DeliveryConfig,
    /// The Relay-compatible metadata API; absent when no spec file is configured.
    pub metadata: Option<MetadataConfig>,
    /// A PostgreSQL database for the webhooks instead of the data directory's SQLite file
    /// (`[database]`, `--database`); absent by default.
    pub database: Option<DatabaseConfig>,
    /// The server's address as its users reach it (`public_url`, e.g.
    /// `https://hooks.example.com`), for the links it hands out (the app portal's). Default:
    /// `http://` and [`Config::bind`].
    pub public_url: Option<String>,
}

/// The PostgreSQL database the webhooks live in (`[database]`, `--database`): any number of
/// servers on one database serve the same applications and share the deliveries.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DatabaseConfig {
    /// `postgres://user:password@host:port/database`, or a `key=value` connection string.
    /// It may hold a password: it is never logged, and `Debug` leaves it out.
    pub url: String,
    /// The most connections this server opens (default 16). Keep the sum over every server
    /// under the database's `max_connections`.
    pub max_connections: usize,
}

impl DatabaseConfig {
    /// The database at `url`, with the default pool size.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: DEFAULT_DATABASE_CONNECTIONS,
        }
    }
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &"<redacted>")
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// The default PostgreSQL pool size of one server.
pub const DEFAULT_DATABASE_CONNECTIONS: usize = 16;

/// Connection limits. Every field has a documented default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From a request's first byte to the end of its head (default 10 s).
    pub header_read_timeout: Duration,
    /// How long a connection may wait for its first request, or for the next one after a
    /// response (default 60 s).
    pub idle_timeout: Duration,
    /// Connections open at once (default 1,024); set it below the process's file-descriptor
    /// limit so the stores and deliveries keep some.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// How the webhooks API checks messages, and where it sends operational webhooks. The
/// defaults are Svix's behaviour but for payload validation, which Svix does not do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhooksConfig {
    /// Refuse messages of event types that were never registered (default `false`: Svix
    /// accepts them).
    pub require_event_types: bool,
    /// Validate payloads against their event type's schema (default `true`; a deviation from
    /// Svix, which validates nothing: set `false` to match it).
    pub validate_payloads: bool,
    /// Treat JSON Schema `format` as an assertion (default `false`: an annotation, as Draft 7
    /// allows and as swh-webhooks validates).
    pub assert_formats: bool,
    /// Hold event type names to swh-webhooks' `<group>.<event>` (default `false`: any name
    /// Svix takes, such as `message.attempt.failing` or `signup`).
    pub grouped_event_type_names: bool,
    /// The uid of the management application operational webhooks are sent in
    /// (`endpoint.created`, `message.attempt.exhausted`, …; created at start when missing).
    /// Default: none, and none are sent, as Svix without `operational_webhook_address`.
    pub operational_app: Option<AppUid>,
    /// Where the main key endpoint secrets are sealed under is read from (`{ env = … }` or
    /// `{ file = … }`). Default: `main.key` in the data directory, generated (0600) on the
    /// first start. Servers sharing a database must share the key.
    pub main_key: Option<ValueSource>,
    /// Earlier main keys, still accepted for opening: a rotation makes the new key
    /// `main_key`, keeps the old one here for one start (which seals everything again under
    /// the new one), then drops it. At most 8.
    pub old_main_keys: Vec<ValueSource>,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            require_event_types: false,
            validate_payloads: true,
            assert_formats: false,
            grouped_event_type_names: false,
            operational_app: None,
            main_key: None,
            old_main_keys: Vec::new(),
        }
    }
}

impl WebhooksConfig {
    /// The registry settings these rules make.
    pub fn registry_config(&self) -> RegistryConfig {
        RegistryConfig {
            require_event_types: self.require_event_types,
            validate_payloads: self.validate_payloads,
            assert_formats: self.assert_formats,
            grouped_event_type_names: self.grouped_event_type_names,
            ..RegistryConfig::default()
        }
    }
}

/// The metadata API's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataConfig {
    /// The step's spec, JSON or YAML.
    pub spec: PathBuf,
    /// The step's name (default `step`).
    pub step: String,
    /// Tokens a step authenticates with (Basic password or Bearer). Default: the server's
    /// tokens.
    pub tokens: Vec<Token>,
    /// Where step outputs are kept (default `<data_dir>/outputs.json`).
    pub outputs: Option<PathBuf>,
    /// Secrets a spec's `{"$type": "Secret", "name": …}` resolves to, by name: where each
    /// value is read from when the server starts (never the value itself).
    pub secrets: BTreeMap<String, ValueSource>,
    /// Connections a spec's `{"$type": "Connection", "type": …, "name": …}` resolves to, by
    /// type and name: where each JSON object is read from when the server starts.
    pub connections: BTreeMap<String, BTreeMap<String, ValueSource>>,
    /// Workflow parameters a spec's `{"$type": "Parameter", "name": …}` resolves to.
    pub parameters: serde_json::Map<String, serde_json::Value>,
    /// The largest output a step may set, in bytes of JSON (default 1 MiB).
    pub max_output_bytes: u64,
    /// The most a step's outputs may take together (default 16 MiB).
    pub max_step_output_bytes: u64,
}

impl MetadataConfig {
    /// The metadata API serving `spec` as step `step`, with the server's tokens, outputs under
    /// the data directory, and no secrets, connections or parameters.
    pub fn new(spec: impl Into<PathBuf>) -> Self {
        Self {
            spec: spec.into(),
            step: "step".to_owned(),
            tokens: Vec::new(),
            outputs: None,
            secrets: BTreeMap::new(),
            connections: BTreeMap::new(),
            parameters: serde_json::Map::new(),
            max_output_bytes: switchyard_metadata::DEFAULT_MAX_OUTPUT_BYTES,
            max_step_output_bytes: switchyard_metadata::DEFAULT_MAX_STEP_OUTPUT_BYTES,
        }
    }
}

/// A TOML error as `line L, column C: message`, without the source line the parser quotes
/// and with quoted strings left out of the message: the line could hold a token or a secret
/// written where it does not belong, and errors are logged.
fn toml_error(text: &str, error: &toml::de::Error) -> String {
    let mut message = String::new();
    let mut quoted = false;
    for c in error.message().trim_end().chars() {
        if c == '"' {
            if quoted {
                message.push('…');
            }
            quoted = !quoted;
            message.push(c);
        } else if !quoted {
            message.push(c);
        }
    }
    let Some(span) = error.span() else {
        return message;
    };
    let start = span.start.min(text.len());
    let before = text.get(..start).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    // The key the error is about: the text before `=` on its line, under the last table
    // header above it. Keys are names, never values.
    let key = text
        .lines()
        .nth(line - 1)
        .and_then(|l| l.split_once('='))
        .map(|(key, _)| key.trim())
        .filter(|key| !key.is_empty() && !key.contains(['"', '\'', ' ']));
    let table = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(['[', ']']).trim());
    match (table, key) {
        (Some(table), Some(key)) => {
            format!("line {line}, column {column}: `{table}.{key}`: {message}")
        }
        (None, Some(key)) => format!("line {line}, column {column}: `{key}`: {message}"),
        _ => format!("line {line}, column {column}: {message}"),
    }
}

/// Where a secret or a connection is read from. The config names the source, never the
/// value, so a config file can be shared and logged; the value is read once, at start.
///
/// In TOML: `{ env = "VARIABLE" }` or `{ file = "path" }`. Anything else is refused with a
/// message that does not repeat it (it may be the secret itself, written inline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueSource {
    /// An environment variable of the server's process.
    Env(String),
    /// A file (relative paths are taken from the config file's directory). One trailing
    /// newline is dropped, so `echo s3cret > file` stores `s3cret`.
    File(PathBuf),
}

impl<'de> Deserialize<'de> for ValueSource {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            env: Option<String>,
            file: Option<PathBuf>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Table(Table),
            Other(serde::de::IgnoredAny),
        }
        match Form::deserialize(deserializer)? {
            Form::Table(Table {
                env: Some(name),
                file: None,
            }) => Ok(ValueSource::Env(name)),
            Form::Table(Table {
                env: None,
                file: Some(path),
            }) => Ok(ValueSource::File(path)),
            _ => Err(serde::de::Error::custom(
                "secrets and connections are read from `{ env = 'VARIABLE' }` or \
                 `{ file = 'path' }` (one of the two), never written inline",
            )),
        }
    }
}

impl ValueSource {
    /// Reads the value.
    ///
    /// # Errors
    /// A message naming the variable or file (never the value).
    pub fn read(&self) -> Result<Vec<u8>, String> {
        match self {
            ValueSource::Env(name) => std::env::var_os(name)
                .map(|value| value.into_encoded_bytes())
                .ok_or_else(|| format!("the environment variable {name} is not set")),
            ValueSource::File(path) => {
                let mut bytes = std::fs::read(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                if bytes.ends_with(b"\n") {
                    bytes.pop();
                    if bytes.ends_with(b"\r") {
                        bytes.pop();
                    }
                }
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt as _;
                    if let Ok(meta) = std::fs::metadata(path)
                        && meta.permissions().mode() & 0o077 != 0
                    {
                        tracing::warn!(
                            path = %path.display(),
                            "a metadata secret file is readable by other users; chmod 600 it"
                        );
                    }
                }
                Ok(bytes)
            }
        }
    }
}

/// A `public_url`: an absolute `http` or `https` URL without query or fragment.
fn check_public_url(url: &str) -> Result<(), String> {
    let parsed: http::Uri = url
        .parse()
        .map_err(|e| format!("public_url `{url}` is not a URL: {e}"))?;
    let scheme_ok = matches!(parsed.scheme_str(), Some("http" | "https"));
    if !scheme_ok || parsed.host().is_none() {
        return Err(format!(
            "public_url `{url}` must be an absolute http or https URL"
        ));
    }
    if parsed.query().is_some() || url.contains('#') {
        return Err(format!(
            "public_url `{url}` must not have a query or a fragment"
        ));
    }
    Ok(())
}

impl Config {
    /// The base of the links the server hands out: [`Config::public_url`], or `http://`
    /// and the bound address.
    pub fn public_base(&self, bound: SocketAddr) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{bound}"))
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8071)),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            tokens: Vec::new(),
            body_limit: DEFAULT_BODY_LIMIT,
            log_format: LogFormat::Human,
            log_filter: "info".to_owned(),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            connections: ConnectionLimits::default(),
            webhooks: WebhooksConfig::default(),
            runtime: HubConfig::default(),
            delivery: DeliveryConfig::default(),
            metadata: None,
            database: None,
            public_url: None,
        }
    }
}

/// The file's shape: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    bind: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    tokens: Option<Vec<Token>>,
    body_limit: Option<usize>,
    log_format: Option<LogFormat>,
    log_filter: Option<String>,
    shutdown_grace_secs: Option<u64>,
    header_read_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
    webhooks: Option<WebhooksFile>,
    runtime: Option<RuntimeFile>,
    delivery: Option<DeliveryFile>,
    metadata: Option<MetadataFile>,
    database: Option<DatabaseFile>,
    public_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DatabaseFile {
    url: String,
    max_connections: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhooksFile {
    require_event_types: Option<bool>,
    validate_payloads: Option<bool>,
    assert_formats: Option<bool>,
    grouped_event_type_names: Option<bool>,
    operational_app: Option<String>,
    main_key: Option<ValueSource>,
    old_main_keys: Option<Vec<ValueSource>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuntimeFile {
    queue_limit: Option<usize>,
    queue_bytes: Option<usize>,
    total_bytes: Option<usize>,
    max_subscriptions: Option<usize>,
    idle_expiry_secs: Option<u64>,
    max_filter_iterations: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveryFile {
    request_timeout_secs: Option<u64>,
    max_in_flight: Option<usize>,
    max_in_flight_per_endpoint: Option<usize>,
    max_leased_per_app: Option<usize>,
    lease_secs: Option<u64>,
    node_heartbeat_secs: Option<u64>,
    retry_schedule_secs: Option<Vec<u64>>,
    retry_jitter: Option<f64>,
    disable_after_secs: Option<u64>,
    retention_days: Option<u64>,
    allow_subnets: Option<Vec<IpNet>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetadataFile {
    spec: PathBuf,
    step: Option<String>,
    tokens: Option<Vec<Token>>,
    outputs: Option<PathBuf>,
    #[serde(default)]
    secrets: BTreeMap<String, ValueSource>,
    #[serde(default)]
    connections: BTreeMap<String, BTreeMap<String, ValueSource>>,
    #[serde(default)]
    parameters: serde_json::Map<String, serde_json::Value>,
    max_output_bytes: Option<u64>,
    max_step_output_bytes: Option<u64>,
}

impl Config {
    /// Reads a TOML config file; relative paths in it are taken from the file's directory.
    ///
    /// # Errors
    /// [`ServerError::ConfigRead`], or [`ServerError::Config`] with the line and column.
    pub fn from_file(path: &Path) -> Result<Self, ServerError> {
        let text = std::fs::read_to_string(path).map_err(|source| ServerError::ConfigRead {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Self::from_toml_str(&text, path)?;
        if let Some(base) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            config.rebase(base);
        }
        Ok(config)
    }

    /// Parses TOML text; `origin` names it in errors.
    ///
    /// # Errors
    /// [`ServerError::Config`] naming the key, line and column.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Self, ServerError> {
        let file: File = toml::from_str(text).map_err(|e| ServerError::Config {
            path: origin.to_owned(),
            message: toml_error(text, &e),
        })?;
        let invalid = |message: String| ServerError::Config {
            path: origin.to_owned(),
            message,
        };
        let mut config = Self::default();
        if let Some(bind) = file.bind {
            config.bind = bind;
        }
        if let Some(dir) = file.data_dir {
            config.data_dir = dir;
        }
        if let Some(tokens) = file.tokens {
            check_tokens(&tokens).map_err(invalid)?;
            config.tokens = tokens;
        }
        if let Some(limit) = file.body_limit {
            if limit == 0 {
                return Err(invalid("body_limit must be at least 1 byte".to_owned()));
            }
            config.body_limit = limit;
        }
        if let Some(url) = file.public_url {
            check_public_url(&url).map_err(invalid)?;
            config.public_url = Some(url.trim_end_matches('/').to_owned());
        }
        if let Some(format) = file.log_format {
            config.log_format = format;
        }
        if let Some(filter) = file.log_filter {
            config.log_filter = filter;
        }
        if let Some(secs) = file.shutdown_grace_secs {
            config.shutdown_grace = Duration::from_secs(secs);
        }
        let positive = |value: u64, key: &str| {
            if value == 0 {
                Err(invalid(format!("{key} must be at least 1")))
            } else {
                Ok(value)
            }
        };
        if let Some(secs) = file.header_read_timeout_secs {
            config.connections.header_read_timeout =
                Duration::from_secs(positive(secs, "header_read_timeout_secs")?);
        }
        if let Some(secs) = file.idle_timeout_secs {
            config.connections.idle_timeout =
                Duration::from_secs(positive(secs, "idle_timeout_secs")?);
        }
        if let Some(n) = file.max_connections {
            let n = positive(n as u64, "max_connections")?;
            config.connections.max_connections = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(webhooks) = file.webhooks {
            let rules = &mut config.webhooks;
            rules.require_event_types = webhooks
                .require_event_types
                .unwrap_or(rules.require_event_types);
            rules.validate_payloads = webhooks
                .validate_payloads
                .unwrap_or(rules.validate_payloads);
            rules.assert_formats = webhooks.assert_formats.unwrap_or(rules.assert_formats);
            rules.grouped_event_type_names = webhooks
                .grouped_event_type_names
                .unwrap_or(rules.grouped_event_type_names);
            if let Some(uid) = webhooks.operational_app {
                rules.operational_app = Some(
                    AppUid::new(uid)
                        .map_err(|e| invalid(format!("webhooks.operational_app: {e}")))?,
                );
            }
            if let Some(source) = webhooks.main_key {
                rules.main_key = Some(source);
            }
            if let Some(sources) = webhooks.old_main_keys {
                if sources.len() > switchyard_webhooks::seal::MAX_OLD_KEYS {
                    return Err(invalid(format!(
                        "webhooks.old_main_keys: at most {} keys",
                        switchyard_webhooks::seal::MAX_OLD_KEYS
                    )));
                }
                rules.old_main_keys = sources;
            }
            if rules.operational_app.is_some() && rules.grouped_event_type_names {
                return Err(invalid(
                    "webhooks.operational_app sends Svix's event types (message.attempt.failing), \
                     which webhooks.grouped_event_type_names = true refuses; turn one off"
                        .to_owned(),
                ));
            }
        }
        if let Some(runtime) = file.runtime {
            apply_runtime(&mut config.runtime, &runtime).map_err(invalid)?;
        }
        if let Some(delivery) = file.delivery {
            apply_delivery(&mut config.delivery, delivery).map_err(invalid)?;
        }
        if let Some(database) = file.database {
            let max_connections = database
                .max_connections
                .unwrap_or(DEFAULT_DATABASE_CONNECTIONS);
            if max_connections == 0 {
                return Err(invalid(
                    "database.max_connections must be at least 1".to_owned(),
                ));
            }
            config.database = Some(DatabaseConfig {
                url: database.url,
                max_connections,
            });
        }
        if let Some(metadata) = file.metadata {
            let tokens = metadata.tokens.unwrap_or_default();
            check_tokens(&tokens).map_err(invalid)?;
            let defaults = MetadataConfig::new(&metadata.spec);
            for (key, value) in [
                ("max_output_bytes", metadata.max_output_bytes),
                ("max_step_output_bytes", metadata.max_step_output_bytes),
            ] {
                if value == Some(0) {
                    return Err(invalid(format!("metadata.{key} must be at least 1")));
                }
            }
            config.metadata = Some(MetadataConfig {
                spec: metadata.spec,
                step: metadata.step.unwrap_or_else(|| "step".to_owned()),
                tokens,
                outputs: metadata.outputs,
                secrets: metadata.secrets,
                connections: metadata.connections,
                parameters: metadata.parameters,
                max_output_bytes: metadata
                    .max_output_bytes
                    .unwrap_or(defaults.max_output_bytes),
                max_step_output_bytes: metadata
                    .max_step_output_bytes
                    .unwrap_or(defaults.max_step_output_bytes),
            });
        }
        Ok(config)
    }

    /// Resolves relative paths against `base` (the config file's directory).
    fn rebase(&mut self, base: &Path) {
        let join = |path: &mut PathBuf| {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        };
        join(&mut self.data_dir);
        let keys = self.webhooks.main_key.iter_mut();
        for source in keys.chain(self.webhooks.old_main_keys.iter_mut()) {
            if let ValueSource::File(path) = source {
                join(path);
            }
        }
        if let Some(metadata) = &mut self.metadata {
            join(&mut metadata.spec);
            if let Some(outputs) = &mut metadata.outputs {
                join(outputs);
            }
            let sources = metadata.secrets.values_mut().chain(
                metadata
                    .connections
                    .values_mut()
                    .flat_map(|m| m.values_mut()),
            );
            for source in sources {
                if let ValueSource::File(path) = source {
                    join(path);
                }
            }
        }
    }

    /// Checks values set in code or by flags, with the rules the file parser applies.
    ///
    /// # Errors
    /// [`ServerError::Config`] naming the setting.
    pub fn check(&self) -> Result<(), ServerError> {
        let invalid = |message: String| ServerError::Config {
            path: PathBuf::from("<flags>"),
            message,
        };
        check_tokens(&self.tokens).map_err(invalid)?;
        if self.body_limit == 0 {
            return Err(invalid("body_limit must be at least 1 byte".to_owned()));
        }
        if let Some(url) = &self.public_url {
            check_public_url(url).map_err(invalid)?;
        }
        Ok(())
    }

    /// Adds a subnet deliveries may reach despite the SSRF guard.
    pub fn allow_subnet(&mut self, subnet: IpNet) {
        let policy = std::mem::take(&mut self.delivery.addresses);
        self.delivery.addresses = policy.allow(subnet);
    }
}

fn check_tokens(tokens: &[Token]) -> Result<(), String> {
    for token in tokens {
        let text = token.expose();
        if text.len() < 16 {
            return Err("every token must be at least 16 characters long".to_owned());
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("tokens must be printable ASCII without spaces".to_owned());
        }
        if text.starts_with(switchyard_webhooks::APP_TOKEN_PREFIX) {
            return Err(format!(
                "a server token may not start with `{}`: that marks application tokens",
                switchyard_webhooks::APP_TOKEN_PREFIX
            ));
        }
    }
    Ok(())
}

fn apply_runtime(config: &mut HubConfig, file: &RuntimeFile) -> Result<(), String> {
    let at_least_one = |value: Option<usize>, key: &str| match value {
        Some(0) => Err(format!("runtime.{key} must be at least 1")),
        other => Ok(other),
    };
    if let Some(n) = at_least_one(file.queue_limit, "queue_limit")? {
        config.queue_limit = n;
    }
    if let Some(n) = at_least_one(file.queue_bytes, "queue_bytes")? {
        config.queue_bytes = n;
    }
    if let Some(n) = at_least_one(file.total_bytes, "total_bytes")? {
        config.total_bytes = n;
    }
    if let Some(n) = at_least_one(file.max_subscriptions, "max_subscriptions")? {
        config.max_subscriptions = n;
    }
    match file.idle_expiry_secs {
        Some(0) => return Err("runtime.idle_expiry_secs must be at least 1".to_owned()),
        Some(secs) => config.idle_expiry = Duration::from_secs(secs),
        None => {}
    }
    match file.max_filter_iterations {
        Some(0) => return Err("runtime.max_filter_iterations must be at least 1".to_owned()),
        Some(n) => config.filter_limits.max_iterations = n,
        None => {}
    }
    Ok(())
}

fn apply_delivery(config: &mut DeliveryConfig, file: DeliveryFile) -> Result<(), String> {
    if let Some(secs) = file.request_timeout_secs {
        if secs == 0 {
            return Err("delivery.request_timeout_secs must be at least 1".to_owned());
        }
        config.request_timeout = Duration::from_secs(secs);
        config.lease_for = config
            .lease_for
            .max(config.request_timeout + Duration::from_secs(5));
    }
    if let Some(n) = file.max_in_flight {
        if n == 0 {
            return Err("delivery.max_in_flight must be at least 1".to_owned());
        }
        config.max_in_flight = n;
    }
    if let Some(n) = file.max_in_flight_per_endpoint {
        if n == 0 {
            return Err("delivery.max_in_flight_per_endpoint must be at least 1".to_owned());
        }
        config.max_in_flight_per_endpoint = n;
    }
    if let Some(n) = file.max_leased_per_app {
        if n == 0 {
            return Err("delivery.max_leased_per_app must be at least 1".to_owned());
        }
        config.max_leased_per_app = n;
    }
    if let Some(secs) = file.lease_secs {
        let lease = Duration::from_secs(secs);
        if lease <= config.request_timeout {
            return Err(format!(
                "delivery.lease_secs must be longer than the request timeout ({} s): a lease \
                 that runs out while its request is still waiting lets another worker send \
                 the same delivery",
                config.request_timeout.as_secs()
            ));
        }
        config.lease_for = lease;
    }
    if let Some(secs) = file.node_heartbeat_secs {
        if secs == 0 {
            return Err("delivery.node_heartbeat_secs must be at least 1".to_owned());
        }
        config.node_heartbeat = Duration::from_secs(secs);
    }
    let mut retry: RetryPolicy = config.retry.clone();
    if let Some(schedule) = file.retry_schedule_secs {
        retry.schedule = schedule.into_iter().map(Duration::from_secs).collect();
    }
    if let Some(jitter) = file.retry_jitter {
        if !(0.0..=1.0).contains(&jitter) {
            return Err("delivery.retry_jitter must be between 0.0 and 1.0".to_owned());
        }
        retry.jitter = jitter;
    }
    config.retry = retry;
    if let Some(secs) = file.disable_after_secs {
        config.disable_after = Duration::from_secs(secs);
    }
    if let Some(days) = file.retention_days {
        if days == 0 {
            return Err("delivery.retention_days must be at least 1".to_owned());
        }
        config.retention = Duration::from_secs(days.saturating_mul(24 * 60 * 60));
    }
    if let Some(subnets) = file.allow_subnets {
        let mut policy = AddressPolicy::default();
        for subnet in subnets {
            policy = policy.allow(subnet);
        }
        config.addresses = policy;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ServerError> {
        Config::from_toml_str(text, Path::new("test.toml"))
    }

    #[test]
    fn main_keys_name_their_sources_and_files_follow_the_config() {
        let mut config = parse(
            "[webhooks]\nmain_key = { file = \"keys/main.key\" }\n\
             old_main_keys = [{ env = \"OLD_KEY\" }]",
        )
        .unwrap();
        config.rebase(Path::new("/etc/switchyard"));
        assert_eq!(
            config.webhooks.main_key,
            Some(ValueSource::File("/etc/switchyard/keys/main.key".into()))
        );
        assert_eq!(
            config.webhooks.old_main_keys,
            vec![ValueSource::Env("OLD_KEY".into())]
        );
        // Inline, the key would be in the file: refused, without repeating it.
        let error = parse("[webhooks]\nmain_key = \"symk_c2VjcmV0\"").unwrap_err();
        assert!(!error.to_string().contains("symk_c2VjcmV0"), "{error}");
        let many = (0..9)
            .map(|n| format!("{{ env = \"K{n}\" }}"))
            .collect::<Vec<_>>();
        let error = parse(&format!(
            "[webhooks]\nold_main_keys = [{}]",
            many.join(", ")
        ))
        .unwrap_err();
        assert!(error.to_string().contains("at most 8"), "{error}");
    }

    #[test]
    fn empty_file_is_all_defaults() {
        let config = parse("").unwrap();
        assert_eq!(config.bind.to_string(), DEFAULT_BIND);
        assert_eq!(config.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert!(config.tokens.is_empty());
        assert_eq!(config.body_limit, DEFAULT_BODY_LIMIT);
        assert_eq!(config.delivery.request_timeout, Duration::from_secs(30));
        assert_eq!(config.webhooks, WebhooksConfig::default());
        assert_eq!(
            config.connections.header_read_timeout,
            Duration::from_secs(10)
        );
        assert_eq!(config.connections.idle_timeout, Duration::from_secs(60));
        assert_eq!(config.connections.max_connections, 1024);
        assert!(config.webhooks.validate_payloads && !config.webhooks.assert_formats);
        assert!(config.metadata.is_none());
    }

    #[test]
    fn operational_webhooks_name_an_application_and_need_svix_names() {
        let config = parse("[webhooks]\noperational_app = \"ops\"").unwrap();
        assert_eq!(
            config.webhooks.operational_app,
            Some(AppUid::new("ops").unwrap())
        );
        let bad_uid = parse("[webhooks]\noperational_app = \"a b\"")
            .unwrap_err()
            .to_string();
        assert!(bad_uid.contains("webhooks.operational_app"), "{bad_uid}");
        let both = parse("[webhooks]\noperational_app = \"ops\"\ngrouped_event_type_names = true")
            .unwrap_err()
            .to_string();
        assert!(both.contains("turn one off"), "{both}");
    }

    #[test]
    fn every_key() {
        let config = parse(
            r#"
            bind = "0.0.0.0:9999"
            data_dir = "/var/lib/switchyard"
            tokens = ["0123456789abcdef"]
            body_limit = 2048
            log_format = "json"
            log_filter = "debug"
            shutdown_grace_secs = 5
            header_read_timeout_secs = 3
            idle_timeout_secs = 20
            max_connections = 100
            [webhooks]
            require_event_types = true
            validate_payloads = false
            assert_formats = true
            grouped_event_type_names = true
            [runtime]
            queue_limit = 10
            queue_bytes = 1000
            total_bytes = 5000
            max_subscriptions = 7
            idle_expiry_secs = 30
            max_filter_iterations = 500
            [delivery]
            request_timeout_secs = 60
            max_in_flight = 10
            max_in_flight_per_endpoint = 2
            max_leased_per_app = 100
            lease_secs = 90
            node_heartbeat_secs = 7
            retry_schedule_secs = [1, 2]
            retry_jitter = 0.0
            disable_after_secs = 3600
            retention_days = 7
            allow_subnets = ["10.0.0.0/8", "::1/128"]
            [database]
            url = "postgres://switchyard:pw-s3cret@db.internal:5432/switchyard"
            max_connections = 32
            [metadata]
            spec = "spec.yaml"
            step = "deploy"
            tokens = ["fedcba9876543210"]
            outputs = "out.json"
            max_output_bytes = 1000
            max_step_output_bytes = 5000
            [metadata.secrets]
            db = { env = "DB_PASSWORD" }
            key = { file = "secrets/key" }
            [metadata.connections.aws.prod]
            file = "aws-prod.json"
            [metadata.parameters]
            environment = "staging"
            replicas = 3
            "#,
        )
        .unwrap();
        assert_eq!(config.bind.port(), 9999);
        assert_eq!(config.tokens[0].expose(), "0123456789abcdef");
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.shutdown_grace, Duration::from_secs(5));
        assert_eq!(
            config.connections,
            ConnectionLimits {
                header_read_timeout: Duration::from_secs(3),
                idle_timeout: Duration::from_secs(20),
                max_connections: 100
            }
        );
        assert_eq!(
            config.webhooks,
            WebhooksConfig {
                require_event_types: true,
                validate_payloads: false,
                assert_formats: true,
                grouped_event_type_names: true,
                operational_app: None,
                main_key: None,
                old_main_keys: Vec::new(),
            }
        );
        assert_eq!(config.delivery.request_timeout, Duration::from_secs(60));
        assert_eq!(config.runtime.queue_limit, 10);
        assert_eq!(config.runtime.queue_bytes, 1000);
        assert_eq!(config.runtime.total_bytes, 5000);
        assert_eq!(config.runtime.max_subscriptions, 7);
        assert_eq!(config.runtime.idle_expiry, Duration::from_secs(30));
        assert_eq!(config.runtime.filter_limits.max_iterations, 500);
        assert_eq!(config.delivery.lease_for, Duration::from_secs(90));
        assert_eq!(config.delivery.node_heartbeat, Duration::from_secs(7));
        assert_eq!(config.delivery.max_leased_per_app, 100);
        let database = config.database.as_ref().unwrap();
        assert_eq!(database.max_connections, 32);
        assert!(database.url.ends_with("@db.internal:5432/switchyard"));
        assert!(!format!("{config:?}").contains("pw-s3cret"), "{config:?}");
        assert_eq!(config.delivery.retry.schedule.len(), 2);
        assert_eq!(config.delivery.retention, Duration::from_secs(7 * 86_400));
        assert_eq!(config.delivery.addresses.allowed().len(), 2);
        let metadata = config.metadata.unwrap();
        assert_eq!(metadata.step, "deploy");
        assert_eq!(metadata.tokens.len(), 1);
        assert_eq!(
            metadata.secrets["db"],
            ValueSource::Env("DB_PASSWORD".to_owned())
        );
        assert_eq!(
            metadata.secrets["key"],
            ValueSource::File("secrets/key".into())
        );
        assert_eq!(
            metadata.connections["aws"]["prod"],
            ValueSource::File("aws-prod.json".into())
        );
        assert_eq!(metadata.parameters["replicas"], 3);
        assert_eq!(metadata.parameters["environment"], "staging");
        assert_eq!(metadata.max_output_bytes, 1000);
        assert_eq!(metadata.max_step_output_bytes, 5000);
    }

    #[test]
    fn errors_name_the_problem() {
        let unknown = parse("bnid = \"x\"").unwrap_err().to_string();
        assert!(unknown.contains("bnid"), "{unknown}");
        assert!(unknown.contains("line 1"), "{unknown}");
        let bad_addr = parse("bind = \"nowhere\"").unwrap_err().to_string();
        assert!(bad_addr.contains("bind"), "{bad_addr}");
        let short = parse("tokens = [\"short\"]").unwrap_err().to_string();
        assert!(short.contains("16 characters"), "{short}");
        let jitter = parse("[delivery]\nretry_jitter = 2.0")
            .unwrap_err()
            .to_string();
        assert!(jitter.contains("retry_jitter"), "{jitter}");
        let subnet = parse("[delivery]\nallow_subnets = [\"10.0.0.0/99\"]")
            .unwrap_err()
            .to_string();
        assert!(subnet.contains("allow_subnets"), "{subnet}");
        // A lease must outlast the request it covers.
        let lease = parse("[delivery]\nrequest_timeout_secs = 30\nlease_secs = 30")
            .unwrap_err()
            .to_string();
        assert!(lease.contains("lease_secs"), "{lease}");
        let pool = parse("[database]\nurl = \"postgres://h/d\"\nmax_connections = 0")
            .unwrap_err()
            .to_string();
        assert!(pool.contains("database.max_connections"), "{pool}");
        let zero = parse("body_limit = 0").unwrap_err().to_string();
        assert!(zero.contains("body_limit"), "{zero}");
        for key in [
            "header_read_timeout_secs",
            "idle_timeout_secs",
            "max_connections",
        ] {
            let zero = parse(&format!("{key} = 0")).unwrap_err().to_string();
            assert!(zero.contains(key), "{zero}");
        }
        // Secrets come from the environment or a file, never inline.
        for (source, secret) in [
            ("\"hunter2\"", "hunter2"),
            ("{ value = \"hunter2\" }", "hunter2"),
            ("{ env = \"A\", file = \"b\" }", "nothing"),
        ] {
            let text = format!("[metadata]\nspec = \"s\"\n[metadata.secrets]\ndb = {source}");
            let error = parse(&text).unwrap_err().to_string();
            assert!(error.contains("never written inline"), "{error}");
            assert!(error.contains("line 4"), "{error}");
            assert!(!error.contains(secret), "{error}");
        }
        // Values never come back in messages, whatever the key: this one is a token.
        let token = parse("tokens = \"0123456789abcdef-s3cret\"")
            .unwrap_err()
            .to_string();
        assert!(
            token.contains("tokens") || token.contains("sequence"),
            "{token}"
        );
        assert!(!token.contains("s3cret"), "{token}");
    }

    #[test]
    fn tokens_never_show_in_debug() {
        let config = parse("tokens = [\"0123456789abcdef-secret\"]").unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("secret"), "{debug}");
    }

    #[test]
    fn relative_paths_follow_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchyard.toml");
        std::fs::write(
            &path,
            "data_dir = \"data\"\n[metadata]\nspec = \"spec.json\"\n\
             [metadata.secrets]\ndb = { file = \"db.txt\" }\n\
             [metadata.connections.aws.prod]\nfile = \"/etc/aws.json\"\n",
        )
        .unwrap();
        let config = Config::from_file(&path).unwrap();
        assert_eq!(config.data_dir, dir.path().join("data"));
        let metadata = config.metadata.unwrap();
        assert_eq!(metadata.spec, dir.path().join("spec.json"));
        assert_eq!(
            metadata.secrets["db"],
            ValueSource::File(dir.path().join("db.txt"))
        );
        assert_eq!(
            metadata.connections["aws"]["prod"],
            ValueSource::File("/etc/aws.json".into())
        );
    }
}
