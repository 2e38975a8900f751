//! The main key the webhooks store seals endpoint secrets, custom headers and remembered
//! responses under: from `[webhooks] main_key` (an environment variable or a file), else the
//! data directory's `main.key`, generated (0600) on the first start and announced.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use switchyard_webhooks::seal::{KeyRing, MainKey};

use crate::config::{ValueSource, WebhooksConfig};
use crate::error::ServerError;

/// The key file's name in the data directory.
pub const KEY_FILE: &str = "main.key";

/// The key ring `webhooks` configures: its `main_key` (or the data directory's key file,
/// made when missing) and its `old_main_keys`.
///
/// # Errors
/// [`ServerError::MainKey`] naming the source that cannot be read or does not hold a main
/// key (never the key); [`ServerError::DataDir`] when the key file cannot be written.
pub(crate) fn key_ring(webhooks: &WebhooksConfig, data_dir: &Path) -> Result<KeyRing, ServerError> {
    let current = match &webhooks.main_key {
        Some(source) => read(source, "webhooks.main_key")?,
        None => from_data_dir(data_dir)?,
    };
    let old = webhooks
        .old_main_keys
        .iter()
        .enumerate()
        .map(|(n, source)| read(source, &format!("webhooks.old_main_keys[{n}]")))
        .collect::<Result<Vec<_>, _>>()?;
    KeyRing::with_old(current, old).map_err(|e| ServerError::MainKey {
        what: "webhooks.old_main_keys".to_owned(),
        reason: e.to_string(),
    })
}

fn read(source: &ValueSource, what: &str) -> Result<MainKey, ServerError> {
    let invalid = |reason: String| ServerError::MainKey {
        what: what.to_owned(),
        reason,
    };
    let bytes = zeroize::Zeroizing::new(source.read().map_err(invalid)?);
    let text = std::str::from_utf8(&bytes).map_err(|_| invalid("not UTF-8 text".to_owned()))?;
    text.parse()
        .map_err(|e: switchyard_webhooks::seal::SealError| invalid(e.to_string()))
}

/// The data directory's key file, read, or made when there is none.
fn from_data_dir(data_dir: &Path) -> Result<MainKey, ServerError> {
    let path = data_dir.join(KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            // A key file someone made readable to others is made owner-only again.
            crate::private::tighten(&path)?;
            let bytes = zeroize::Zeroizing::new(bytes);
            let what = path.display().to_string();
            let text = std::str::from_utf8(&bytes).map_err(|_| ServerError::MainKey {
                what: what.clone(),
                reason: "not UTF-8 text".to_owned(),
            })?;
            text.parse().map_err(
                |e: switchyard_webhooks::seal::SealError| ServerError::MainKey {
                    what,
                    reason: e.to_string(),
                },
            )
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => generate(&path),
        Err(source) => Err(ServerError::DataDir { path, source }),
    }
}

/// Makes a new key file, owner-only, written in full before it is renamed into place (a
/// crash leaves either no key file or a whole one).
fn generate(path: &Path) -> Result<MainKey, ServerError> {
    let failed = |path: PathBuf| move |source| ServerError::DataDir { path, source };
    let key = MainKey::generate().map_err(|e| ServerError::MainKey {
        what: "a new main key".to_owned(),
        reason: e.to_string(),
    })?;
    let partial = path.with_extension("key.partial");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&partial).map_err(failed(partial.clone()))?;
    file.write_all(key.expose().as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(failed(partial.clone()))?;
    std::fs::rename(&partial, path).map_err(failed(path.to_owned()))?;
    tracing::warn!(
        path = %path.display(),
        key_id = key.id(),
        "generated the main key endpoint secrets are sealed under; back it up: without it \
         the stored secrets cannot be read"
    );
    Ok(key)
}
