//! Secrets at rest: a main key, and the sealed text a store keeps instead of a secret.
//!
//! A [`KeyRing`] holds the main key new values are sealed under and any older ones still
//! accepted for reading (a rotation in progress). Sealing is XChaCha20-Poly1305 (RustCrypto's
//! `chacha20poly1305`) with a fresh random 24-byte nonce per value, and the record and field
//! the value belongs to as associated data: a sealed value copied into another record, or
//! another field, does not open.
//!
//! The sealed text is `sealed:v1:<key id>:<base64url of nonce ‖ ciphertext ‖ tag>`. The key
//! id (8 hex digits of a hash of the key) says which main key sealed it without revealing
//! anything about the key, so a missing key is named in the error, and values sealed under
//! an old key can be found and sealed again under the current one.
//!
//! ```
//! use switchyard_webhooks::seal::{KeyRing, MainKey};
//!
//! let ring = KeyRing::new(MainKey::generate()?);
//! let sealed = ring.seal("ep_2a", "keys", b"whsec_...")?;
//! assert!(sealed.starts_with("sealed:v1:"));
//! assert_eq!(&*ring.open("ep_2a", "keys", &sealed)?, b"whsec_...");
//!
//! // Moved to another record, it does not open.
//! assert!(ring.open("ep_3b", "keys", &sealed).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

/// Prefix of a main key's text form.
pub const MAIN_KEY_PREFIX: &str = "symk_";
/// Bytes of a main key.
pub const MAIN_KEY_BYTES: usize = 32;
/// The most old main keys a [`KeyRing`] accepts besides the current one.
pub const MAX_OLD_KEYS: usize = 8;

/// What every sealed value starts with.
pub(crate) const SEALED_PREFIX: &str = "sealed:v1:";
/// Bytes of a nonce (XChaCha20).
const NONCE_BYTES: usize = 24;
/// Bytes of the Poly1305 tag.
const TAG_BYTES: usize = 16;
/// Hex digits of a key id.
const KEY_ID_LEN: usize = 8;
/// Domain separation of the key id hash and of the associated data.
const KEY_ID_DOMAIN: &[u8] = b"switchyard main key id v1\0";
const AAD_DOMAIN: &[u8] = b"switchyard sealed v1\0";

/// Why a main key could not be read or made, or a sealed value could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The main key's text is not `symk_` and the base64 of 32 bytes.
    #[error("a main key is `symk_` followed by the base64 of 32 bytes ({reason})")]
    InvalidKey {
        /// What is wrong with it (never the key itself).
        reason: &'static str,
    },
    /// More old keys than [`MAX_OLD_KEYS`].
    #[error("at most {MAX_OLD_KEYS} old main keys are accepted, {given} were given")]
    TooManyOldKeys {
        /// How many were given.
        given: usize,
    },
    /// The operating system's random source failed.
    #[error("the operating system's random source failed: {0}")]
    Rng(getrandom::Error),
    /// The value is not sealed text (`sealed:v1:…`) or is cut short.
    #[error("{what} is not a sealed value ({reason})")]
    Malformed {
        /// Which record and field.
        what: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The value was sealed under a main key the ring does not hold.
    #[error(
        "{what} was sealed under main key {key_id}, which is not configured (give it as the \
         main key or as an old one)"
    )]
    UnknownKey {
        /// Which record and field.
        what: String,
        /// The id of the key that sealed it.
        key_id: String,
    },
    /// The key with the value's id did not open it: the value was changed, moved from another
    /// record or field, or the key is a different one with a colliding id.
    #[error("{what} does not open under main key {key_id}: altered, or moved from another record")]
    Forged {
        /// Which record and field.
        what: String,
        /// The id of the key tried.
        key_id: String,
    },
    /// A main key was to be dropped from a store's ring while values are still sealed under
    /// it (written by a server that still seals under it, or sealed again since).
    #[error(
        "main key {key_id} still seals {what}; keep it in the ring until everything is sealed \
         again under the current key"
    )]
    StillInUse {
        /// The id of the key.
        key_id: String,
        /// A record it still seals.
        what: String,
    },
}

/// A 32-byte main key. `Debug` shows only its id; the bytes are zeroed when dropped.
#[derive(Clone)]
pub struct MainKey {
    bytes: Zeroizing<[u8; MAIN_KEY_BYTES]>,
    id: String,
    /// The cipher keyed once.
    cipher: XChaCha20Poly1305,
}

impl MainKey {
    /// Draws a new main key from the operating system's random source.
    ///
    /// # Errors
    /// [`SealError::Rng`] when the operating system cannot provide randomness.
    pub fn generate() -> Result<Self, SealError> {
        let mut bytes = Zeroizing::new([0u8; MAIN_KEY_BYTES]);
        getrandom::fill(bytes.as_mut_slice()).map_err(SealError::Rng)?;
        Ok(Self::from_bytes(bytes))
    }

    fn from_bytes(bytes: Zeroizing<[u8; MAIN_KEY_BYTES]>) -> Self {
        let mut hash = Sha256::new();
        hash.update(KEY_ID_DOMAIN);
        hash.update(bytes.as_slice());
        let digest = hash.finalize();
        let id = digest[..KEY_ID_LEN / 2]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        let cipher = XChaCha20Poly1305::new(&Key::from(*bytes));
        Self { bytes, id, cipher }
    }

    /// The key's id: 8 hex digits naming it in sealed values and errors, revealing nothing
    /// about the key.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key's text form, `symk_` and standard base64: what a key file holds.
    #[must_use]
    pub fn expose(&self) -> Zeroizing<String> {
        let mut text = Zeroizing::new(String::from(MAIN_KEY_PREFIX));
        STANDARD.encode_string(self.bytes.as_slice(), &mut text);
        text
    }

    fn cipher(&self) -> &XChaCha20Poly1305 {
        &self.cipher
    }
}

impl FromStr for MainKey {
    type Err = SealError;

    /// Reads `symk_…`; surrounding whitespace (a key file's final newline) is ignored.
    fn from_str(text: &str) -> Result<Self, SealError> {
        let text = text.trim();
        let encoded = text
            .strip_prefix(MAIN_KEY_PREFIX)
            .ok_or(SealError::InvalidKey {
                reason: "it does not start with `symk_`",
            })?;
        let decoded =
            Zeroizing::new(
                STANDARD
                    .decode(encoded)
                    .map_err(|_| SealError::InvalidKey {
                        reason: "not standard base64 after the prefix",
                    })?,
            );
        let bytes: [u8; MAIN_KEY_BYTES] =
            decoded
                .as_slice()
                .try_into()
                .map_err(|_| SealError::InvalidKey {
                    reason: "not 32 bytes long",
                })?;
        Ok(Self::from_bytes(Zeroizing::new(bytes)))
    }
}

impl fmt::Debug for MainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MainKey({})", self.id)
    }
}

/// The main key values are sealed under, and the old ones still accepted for opening.
#[derive(Clone, Debug)]
pub struct KeyRing {
    current: MainKey,
    old: Vec<MainKey>,
}

impl KeyRing {
    /// A ring of one key.
    #[must_use]
    pub fn new(current: MainKey) -> Self {
        Self {
            current,
            old: Vec::new(),
        }
    }

    /// A ring that seals under `current` and also opens what `old` keys sealed (at most
    /// [`MAX_OLD_KEYS`]; a repeat of the current key is dropped).
    ///
    /// # Errors
    /// [`SealError::TooManyOldKeys`] beyond the limit.
    pub fn with_old(current: MainKey, old: Vec<MainKey>) -> Result<Self, SealError> {
        if old.len() > MAX_OLD_KEYS {
            return Err(SealError::TooManyOldKeys { given: old.len() });
        }
        let old = old.into_iter().filter(|key| key.id != current.id).collect();
        Ok(Self { current, old })
    }

    /// The key new values are sealed under.
    #[must_use]
    pub fn current(&self) -> &MainKey {
        &self.current
    }

    /// The ids of every key of the ring, the current one first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        std::iter::once(&self.current)
            .chain(&self.old)
            .map(MainKey::id)
    }

    /// This ring, also opening what the keys of `earlier` that it lacks sealed: what a store
    /// seals under while it moves from `earlier` to this ring (no limit on old keys: it is
    /// never configured, only passed through).
    #[must_use]
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn keeping(&self, earlier: &KeyRing) -> KeyRing {
        let mut old = self.old.clone();
        for key in std::iter::once(&earlier.current).chain(&earlier.old) {
            if self.key(&key.id).is_none() {
                old.push(key.clone());
            }
        }
        KeyRing {
            current: self.current.clone(),
            old,
        }
    }

    /// What every value sealed under the current key starts with (`sealed:v1:<id>:`): a
    /// store finds what to seal again by it.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn current_prefix(&self) -> String {
        sealed_prefix(&self.current.id)
    }

    /// Seals `plaintext` as the `field` of `record`.
    ///
    /// # Errors
    /// [`SealError::Rng`] when no nonce can be drawn.
    pub fn seal(&self, record: &str, field: &str, plaintext: &[u8]) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(SealError::Rng)?;
        let aad = associated(record, field);
        let sealed = self
            .current
            .cipher()
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            // Encryption fails only for inputs beyond 2^38 bytes, far past any value here.
            .map_err(|_| SealError::Malformed {
                what: describe(record, field),
                reason: "too long to seal",
            })?;
        let mut body = Vec::with_capacity(NONCE_BYTES + sealed.len());
        body.extend_from_slice(&nonce);
        body.extend_from_slice(&sealed);
        let mut text =
            String::with_capacity(SEALED_PREFIX.len() + KEY_ID_LEN + 1 + body.len() * 4 / 3 + 4);
        text.push_str(SEALED_PREFIX);
        text.push_str(&self.current.id);
        text.push(':');
        URL_SAFE_NO_PAD.encode_string(&body, &mut text);
        Ok(text)
    }

    /// Opens what [`seal`](Self::seal) made for the same `record` and `field`.
    ///
    /// # Errors
    /// [`SealError::Malformed`] for text that is not sealed, [`SealError::UnknownKey`] when
    /// the sealing key is not in the ring, [`SealError::Forged`] when it does not open.
    pub fn open(
        &self,
        record: &str,
        field: &str,
        sealed: &str,
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let malformed = |reason| SealError::Malformed {
            what: describe(record, field),
            reason,
        };
        let rest = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or_else(|| malformed("no `sealed:v1:` prefix"))?;
        let (key_id, encoded) = rest.split_once(':').ok_or_else(|| malformed("no key id"))?;
        let body = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| malformed("not base64url"))?;
        if body.len() < NONCE_BYTES + TAG_BYTES {
            return Err(malformed("cut short"));
        }
        let key = self.key(key_id).ok_or_else(|| SealError::UnknownKey {
            what: describe(record, field),
            key_id: key_id.to_owned(),
        })?;
        let (nonce, ciphertext) = body.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| malformed("cut short"))?;
        let nonce = XNonce::from(nonce);
        let aad = associated(record, field);
        key.cipher()
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealError::Forged {
                what: describe(record, field),
                key_id: key_id.to_owned(),
            })
    }

    /// Whether `text` is sealed under a key other than the current one (so it should be
    /// sealed again), or not sealed at all.
    #[must_use]
    pub fn needs_sealing(&self, text: &str) -> bool {
        sealed_key_id(text) != Some(self.current.id.as_str())
    }

    fn key(&self, id: &str) -> Option<&MainKey> {
        std::iter::once(&self.current)
            .chain(&self.old)
            .find(|key| key.id == id)
    }
}

/// What every value sealed under the key `key_id` starts with (`sealed:v1:<id>:`).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn sealed_prefix(key_id: &str) -> String {
    format!("{SEALED_PREFIX}{key_id}:")
}

/// Whether `text` is a sealed value (of any key).
#[must_use]
pub fn is_sealed(text: &str) -> bool {
    text.starts_with(SEALED_PREFIX)
}

/// The id of the key that sealed `text`, if it is sealed.
#[must_use]
pub fn sealed_key_id(text: &str) -> Option<&str> {
    text.strip_prefix(SEALED_PREFIX)?
        .split_once(':')
        .map(|(id, _)| id)
}

/// The associated data binding a value to its record and field; lengths first, so that no
/// two (record, field) pairs give the same bytes.
fn associated(record: &str, field: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_DOMAIN.len() + 16 + record.len() + field.len());
    aad.extend_from_slice(AAD_DOMAIN);
    aad.extend_from_slice(&(record.len() as u64).to_be_bytes());
    aad.extend_from_slice(record.as_bytes());
    aad.extend_from_slice(&(field.len() as u64).to_be_bytes());
    aad.extend_from_slice(field.as_bytes());
    aad
}

fn describe(record: &str, field: &str) -> String {
    format!("the {field} of {record}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        KeyRing::new(MainKey::generate().unwrap())
    }

    #[test]
    fn seals_and_opens() {
        let ring = ring();
        let sealed = ring.seal("ep_1", "keys", b"whsec_abc").unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("whsec"));
        assert_eq!(sealed_key_id(&sealed), Some(ring.current().id()));
        assert_eq!(&*ring.open("ep_1", "keys", &sealed).unwrap(), b"whsec_abc");
        // A fresh nonce each time: the same value seals differently.
        assert_ne!(sealed, ring.seal("ep_1", "keys", b"whsec_abc").unwrap());
        assert!(!ring.needs_sealing(&sealed));
        assert!(ring.needs_sealing("{\"current\":\"whsec_abc\"}"));
    }

    #[test]
    fn bound_to_record_and_field() {
        let ring = ring();
        let sealed = ring.seal("ep_1", "keys", b"x").unwrap();
        for (record, field) in [
            ("ep_2", "keys"),
            ("ep_1", "headers"),
            ("ep_1k", "eys"),
            ("", "ep_1keys"),
        ] {
            assert!(
                matches!(
                    ring.open(record, field, &sealed),
                    Err(SealError::Forged { .. })
                ),
                "{record} {field}"
            );
        }
    }

    #[test]
    fn altered_or_cut_values_are_refused() {
        let ring = ring();
        let sealed = ring.seal("ep_1", "keys", b"secret value").unwrap();
        let mut bytes = sealed.clone().into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(bytes).unwrap();
        assert!(matches!(
            ring.open("ep_1", "keys", &altered),
            Err(SealError::Forged { .. })
        ));
        let cut = &sealed[..SEALED_PREFIX.len() + KEY_ID_LEN + 10];
        assert!(matches!(
            ring.open("ep_1", "keys", cut),
            Err(SealError::Malformed { .. })
        ));
        assert!(matches!(
            ring.open("ep_1", "keys", "{\"current\":\"whsec_x\"}"),
            Err(SealError::Malformed { .. })
        ));
    }

    #[test]
    fn old_keys_open_and_unknown_keys_are_named() {
        let old = MainKey::generate().unwrap();
        let sealed = KeyRing::new(old.clone())
            .seal("ep_1", "keys", b"v")
            .unwrap();
        let new = MainKey::generate().unwrap();
        let error = KeyRing::new(new.clone())
            .open("ep_1", "keys", &sealed)
            .unwrap_err();
        assert!(matches!(error, SealError::UnknownKey { .. }));
        assert!(error.to_string().contains(old.id()), "{error}");
        let rotating = KeyRing::with_old(new, vec![old]).unwrap();
        assert_eq!(&*rotating.open("ep_1", "keys", &sealed).unwrap(), b"v");
        assert!(rotating.needs_sealing(&sealed));
        let many = (0..=MAX_OLD_KEYS)
            .map(|_| MainKey::generate().unwrap())
            .collect();
        assert!(matches!(
            KeyRing::with_old(MainKey::generate().unwrap(), many),
            Err(SealError::TooManyOldKeys { .. })
        ));
    }

    #[test]
    fn main_key_text_round_trips_and_stays_out_of_debug() {
        let key = MainKey::generate().unwrap();
        let text = key.expose();
        assert!(text.starts_with(MAIN_KEY_PREFIX));
        let again: MainKey = format!("{}\n", &*text).parse().unwrap();
        assert_eq!(again.id(), key.id());
        let debug = format!("{key:?} {:?}", KeyRing::new(key.clone()));
        assert!(!debug.contains(&text[MAIN_KEY_PREFIX.len()..]), "{debug}");
        assert!(debug.contains(key.id()));
        for bad in ["", "whsec_abc", "symk_!!!", "symk_c2hvcnQ="] {
            let error = bad.parse::<MainKey>().unwrap_err();
            assert!(matches!(error, SealError::InvalidKey { .. }), "{bad}");
        }
    }
}
