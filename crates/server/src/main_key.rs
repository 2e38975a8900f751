//! The main key the webhooks store seals endpoint secrets, custom headers and remembered
//! responses under: from `[webhooks] main_key` (an environment variable or a file), else the
//! data directory's `main.key`, generated (0600) on the first start and announced.
//!
//! A key file holds one key a line: the first seals, the others are old keys still opened
//! (a rotation in progress). `switchyard rotate-key` puts a new key first in the data
//! directory's file; once the store has sealed everything again under it, the server drops
//! the old lines ([`drop_old_keys`]).

use std::path::{Path, PathBuf};

use switchyard_webhooks::Error as WebhooksError;
use switchyard_webhooks::seal::{KeyRing, MAX_OLD_KEYS, MainKey, SealError};

use crate::config::{ValueSource, WebhooksConfig};
use crate::error::ServerError;
use crate::svix::store::ServerStore;

/// The key file's name in the data directory.
pub const KEY_FILE: &str = "main.key";

/// The key ring `webhooks` configures: its `main_key` (or the data directory's key file,
/// made when missing) and its `old_main_keys`.
///
/// # Errors
/// [`ServerError::MainKey`] naming the source that cannot be read or does not hold a main
/// key (never the key); [`ServerError::DataDir`] when the key file cannot be written.
pub(crate) fn key_ring(webhooks: &WebhooksConfig, data_dir: &Path) -> Result<KeyRing, ServerError> {
    ring(webhooks, data_dir, true)
}

/// [`key_ring`] read again for a running server (on `SIGHUP`): a missing key file is an
/// error, never a new key.
///
/// # Errors
/// As [`key_ring`].
pub(crate) fn reload(webhooks: &WebhooksConfig, data_dir: &Path) -> Result<KeyRing, ServerError> {
    ring(webhooks, data_dir, false)
}

fn ring(
    webhooks: &WebhooksConfig,
    data_dir: &Path,
    generate: bool,
) -> Result<KeyRing, ServerError> {
    let mut keys = match &webhooks.main_key {
        Some(source) => read(source, "webhooks.main_key")?,
        None => from_data_dir(data_dir, generate)?,
    };
    let current = keys.remove(0);
    with_configured_old(current, keys, webhooks)
}

/// A ring of `current`, then `old`, then the config's `old_main_keys`.
fn with_configured_old(
    current: MainKey,
    mut old: Vec<MainKey>,
    webhooks: &WebhooksConfig,
) -> Result<KeyRing, ServerError> {
    for (n, source) in webhooks.old_main_keys.iter().enumerate() {
        old.extend(read(source, &format!("webhooks.old_main_keys[{n}]"))?);
    }
    KeyRing::with_old(current, old).map_err(|e| ServerError::MainKey {
        what: "webhooks.old_main_keys".to_owned(),
        reason: e.to_string(),
    })
}

/// The ids of the keys the data directory's key file lists, the sealing one first.
///
/// # Errors
/// [`ServerError::DataDir`] when there is no key file; [`ServerError::MainKey`] when it does
/// not parse.
pub(crate) fn listed_ids(data_dir: &Path) -> Result<Vec<String>, ServerError> {
    Ok(from_data_dir(data_dir, false)?
        .iter()
        .map(|key| key.id().to_owned())
        .collect())
}

/// Once `store` has sealed everything under `current`: when the data directory's key file
/// lists old keys after it, drops them from the store's ring (checking nothing is still
/// sealed under them) and then from the file. What a start, a reload and `rotate-key` with
/// no server running end with; returns the values sealed again meanwhile (written between
/// the caller's pass and this one).
///
/// # Errors
/// [`ServerError::Webhooks`] when a value does not open or an old key still seals one (the
/// file then keeps it); [`ServerError::DataDir`] when the key file cannot be written.
pub(crate) async fn drop_old_keys(
    store: &ServerStore,
    webhooks: &WebhooksConfig,
    data_dir: &Path,
    current: &MainKey,
) -> Result<usize, ServerError> {
    if webhooks.main_key.is_some() {
        // Configured sources are the operator's to edit.
        return Ok(0);
    }
    let listed = from_data_dir(data_dir, false)?;
    if listed.len() < 2 || listed[0].id() != current.id() {
        return Ok(0);
    }
    let kept = with_configured_old(current.clone(), Vec::new(), webhooks)?;
    let rewritten = store.rotate_keys(kept).await.map_err(WebhooksError::from)?;
    let path = data_dir.join(KEY_FILE);
    crate::private::write(&path, &current.expose()).map_err(|source| ServerError::DataDir {
        path: path.clone(),
        source,
    })?;
    tracing::info!(
        path = %path.display(),
        key_id = current.id(),
        dropped = ?listed[1..].iter().map(MainKey::id).collect::<Vec<_>>(),
        "everything is sealed under the main key; the old keys left the key file"
    );
    Ok(rewritten)
}

/// Puts a new main key first in the data directory's key file, the earlier keys after it
/// (still opened until [`drop_old_keys`] drops them); returns the new key's id.
///
/// # Errors
/// [`ServerError::MainKey`] when `[webhooks] main_key` names the key (rotate it there, with
/// the old one in `old_main_keys`), when there is no key file yet or it lists too many keys;
/// [`ServerError::DataDir`] when the file cannot be written.
pub(crate) fn add_new(webhooks: &WebhooksConfig, data_dir: &Path) -> Result<String, ServerError> {
    if webhooks.main_key.is_some() {
        return Err(ServerError::MainKey {
            what: "webhooks.main_key".to_owned(),
            reason: "the config names the main key: set the new key there and the old one in \
                     `old_main_keys`, then send the servers SIGHUP"
                .to_owned(),
        });
    }
    let path = data_dir.join(KEY_FILE);
    if !path.exists() {
        return Err(ServerError::MainKey {
            what: path.display().to_string(),
            reason: "there is no main key to rotate yet (`switchyard serve` or `switchyard \
                     migrate` makes one)"
                .to_owned(),
        });
    }
    let keys = from_data_dir(data_dir, false)?;
    if keys.len() > MAX_OLD_KEYS {
        return Err(ServerError::MainKey {
            what: path.display().to_string(),
            reason: SealError::TooManyOldKeys { given: keys.len() }.to_string(),
        });
    }
    let key = new_key()?;
    let mut text = zeroize::Zeroizing::new(String::new());
    for key in std::iter::once(&key).chain(&keys) {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&key.expose());
    }
    crate::private::write(&path, &text).map_err(|source| ServerError::DataDir {
        path: path.clone(),
        source,
    })?;
    tracing::info!(path = %path.display(), key_id = key.id(), "added a new main key");
    Ok(key.id().to_owned())
}

/// The keys of `source`, one a line.
fn read(source: &ValueSource, what: &str) -> Result<Vec<MainKey>, ServerError> {
    let invalid = |reason: String| ServerError::MainKey {
        what: what.to_owned(),
        reason,
    };
    let bytes = zeroize::Zeroizing::new(source.read().map_err(invalid)?);
    parse(&bytes, what)
}

/// One key a non-empty line, at least one.
fn parse(bytes: &[u8], what: &str) -> Result<Vec<MainKey>, ServerError> {
    let invalid = |reason: String| ServerError::MainKey {
        what: what.to_owned(),
        reason,
    };
    let text = std::str::from_utf8(bytes).map_err(|_| invalid("not UTF-8 text".to_owned()))?;
    let keys = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(n, line)| {
            line.parse::<MainKey>()
                .map_err(|e| invalid(format!("line {}: {e}", n + 1)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(invalid("it holds no key".to_owned()));
    }
    Ok(keys)
}

/// The data directory's key file, read, or made when there is none and `generate` allows.
fn from_data_dir(data_dir: &Path, generate: bool) -> Result<Vec<MainKey>, ServerError> {
    let path = data_dir.join(KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            // A key file someone made readable to others is made owner-only again.
            crate::private::tighten(&path)?;
            parse(&zeroize::Zeroizing::new(bytes), &path.display().to_string())
        }
        Err(error) if generate && error.kind() == std::io::ErrorKind::NotFound => {
            Ok(vec![create(&path)?])
        }
        Err(source) => Err(ServerError::DataDir { path, source }),
    }
}

/// Makes a new key file, owner-only, written in full before it is renamed into place (a
/// crash leaves either no key file or a whole one).
fn create(path: &Path) -> Result<MainKey, ServerError> {
    let key = new_key()?;
    crate::private::write(path, &key.expose()).map_err(|source| ServerError::DataDir {
        path: PathBuf::from(path),
        source,
    })?;
    tracing::warn!(
        path = %path.display(),
        key_id = key.id(),
        "generated the main key endpoint secrets are sealed under; back it up: without it \
         the stored secrets cannot be read"
    );
    Ok(key)
}

fn new_key() -> Result<MainKey, ServerError> {
    MainKey::generate().map_err(|e| ServerError::MainKey {
        what: "a new main key".to_owned(),
        reason: e.to_string(),
    })
}
