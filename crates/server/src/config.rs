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

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use switchyard_webhooks::delivery::{AddressPolicy, DeliveryConfig};
use switchyard_webhooks::retry::RetryPolicy;

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
    /// Outbound webhook delivery.
    pub delivery: DeliveryConfig,
    /// The Relay-compatible metadata API; absent when no spec file is configured.
    pub metadata: Option<MetadataConfig>,
}

/// The metadata API's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
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
            delivery: DeliveryConfig::default(),
            metadata: None,
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
    delivery: Option<DeliveryFile>,
    metadata: Option<MetadataFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveryFile {
    request_timeout_secs: Option<u64>,
    max_in_flight: Option<usize>,
    max_in_flight_per_endpoint: Option<usize>,
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
            message: e.to_string().trim_end().to_owned(),
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
        if let Some(format) = file.log_format {
            config.log_format = format;
        }
        if let Some(filter) = file.log_filter {
            config.log_filter = filter;
        }
        if let Some(secs) = file.shutdown_grace_secs {
            config.shutdown_grace = Duration::from_secs(secs);
        }
        if let Some(delivery) = file.delivery {
            apply_delivery(&mut config.delivery, delivery).map_err(invalid)?;
        }
        if let Some(metadata) = file.metadata {
            let tokens = metadata.tokens.unwrap_or_default();
            check_tokens(&tokens).map_err(invalid)?;
            config.metadata = Some(MetadataConfig {
                spec: metadata.spec,
                step: metadata.step.unwrap_or_else(|| "step".to_owned()),
                tokens,
                outputs: metadata.outputs,
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
        if let Some(metadata) = &mut self.metadata {
            join(&mut metadata.spec);
            if let Some(outputs) = &mut metadata.outputs {
                join(outputs);
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
    fn empty_file_is_all_defaults() {
        let config = parse("").unwrap();
        assert_eq!(config.bind.to_string(), DEFAULT_BIND);
        assert_eq!(config.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert!(config.tokens.is_empty());
        assert_eq!(config.body_limit, DEFAULT_BODY_LIMIT);
        assert_eq!(config.delivery.request_timeout, Duration::from_secs(30));
        assert!(config.metadata.is_none());
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
            [delivery]
            request_timeout_secs = 60
            max_in_flight = 10
            max_in_flight_per_endpoint = 2
            retry_schedule_secs = [1, 2]
            retry_jitter = 0.0
            disable_after_secs = 3600
            retention_days = 7
            allow_subnets = ["10.0.0.0/8", "::1/128"]
            [metadata]
            spec = "spec.yaml"
            step = "deploy"
            tokens = ["fedcba9876543210"]
            outputs = "out.json"
            "#,
        )
        .unwrap();
        assert_eq!(config.bind.port(), 9999);
        assert_eq!(config.tokens[0].expose(), "0123456789abcdef");
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.shutdown_grace, Duration::from_secs(5));
        assert_eq!(config.delivery.request_timeout, Duration::from_secs(60));
        assert_eq!(config.delivery.lease_for, Duration::from_secs(120));
        assert_eq!(config.delivery.retry.schedule.len(), 2);
        assert_eq!(config.delivery.retention, Duration::from_secs(7 * 86_400));
        assert_eq!(config.delivery.addresses.allowed().len(), 2);
        let metadata = config.metadata.unwrap();
        assert_eq!(metadata.step, "deploy");
        assert_eq!(metadata.tokens.len(), 1);
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
        let zero = parse("body_limit = 0").unwrap_err().to_string();
        assert!(zero.contains("body_limit"), "{zero}");
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
            "data_dir = \"data\"\n[metadata]\nspec = \"spec.json\"\n",
        )
        .unwrap();
        let config = Config::from_file(&path).unwrap();
        assert_eq!(config.data_dir, dir.path().join("data"));
        assert_eq!(config.metadata.unwrap().spec, dir.path().join("spec.json"));
    }
}
