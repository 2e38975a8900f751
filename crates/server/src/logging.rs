//! Logs: `tracing` events written as readable lines or JSON, filtered by `RUST_LOG` or the
//! configured filter.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::error::ServerError;

/// Installs the global logger: `RUST_LOG` when set, else `filter`.
///
/// # Errors
/// [`ServerError::Logging`] when the filter is invalid or a logger is already installed.
pub fn init(format: LogFormat, filter: &str) -> Result<(), ServerError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(from_env) if !from_env.is_empty() => EnvFilter::try_new(from_env),
        _ => EnvFilter::try_new(filter),
    }
    .map_err(|e| ServerError::Logging(format!("invalid log filter: {e}")))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    installed.map_err(|e| ServerError::Logging(e.to_string()))
}
