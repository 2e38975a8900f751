//! Signing keys: `whsec_` HMAC secrets and `whsk_`/`whpk_` Ed25519 key pairs, generated from the
//! operating system's RNG, checked when parsed, and never shown by `Debug`.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::KeyError;

/// Prefix of an HMAC webhook secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Prefix of an Ed25519 signing (private) key.
pub const SIGNING_KEY_PREFIX: &str = "whsk_";
/// Prefix of an Ed25519 verifying (public) key.
pub const VERIFYING_KEY_PREFIX: &str = "whpk_";

/// The fewest key bytes a [`Secret`] may hold (192 bits).
pub const MIN_SECRET_BYTES: usize = 24;
/// The most key bytes a [`Secret`] may hold.
pub const MAX_SECRET_BYTES: usize = 64;
/// How many bytes [`Secret::generate`] draws.
pub const GENERATED_SECRET_BYTES: usize = 32;

const SECRET_KIND: &str = "webhook secret";

/// An HMAC-SHA256 webhook secret (`v1` signatures): `whsec_` followed by the standard base64
/// of 24 to 64 key bytes.
///
/// `Debug` prints only a redacted marker, and there is no `Display`: the only way to see the
/// secret is [`Secret::expose`], so it cannot reach a log by accident.
///
/// ```
/// use switchyard_webhooks::Secret;
///
/// let secret: Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse()?;
/// assert_eq!(format!("{secret:?}"), "Secret(whsec_<redacted>)");
/// assert_eq!(secret.expose(), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
///
/// // Too short, or not base64: a typed error that says why.
/// assert!("whsec_c2hvcnQ=".parse::<Secret>().is_err());
/// # Ok::<(), switchyard_webhooks::KeyError>(())
/// ```
#[derive(Clone)]
pub struct Secret {
    bytes: Zeroizing<Vec<u8>>,
    /// The HMAC state after absorbing the key, so that signing does not re-key every time.
    keyed: Hmac<Sha256>,
}

impl Secret {
    /// Draws a fresh 32-byte secret from the operating system's RNG.
    ///
    /// # Errors
    /// [`KeyError::Rng`] when the operating system cannot provide randomness.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = Zeroizing::new(vec![0u8; GENERATED_SECRET_BYTES]);
        getrandom::fill(&mut bytes).map_err(KeyError::Rng)?;
        Self::from_bytes(&bytes)
    }

    /// Builds a secret from raw key bytes (24 to 64 of them).
    ///
    /// # Errors
    /// [`KeyError::InvalidLength`] outside that range.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&bytes.len()) {
            return Err(KeyError::InvalidLength {
                kind: SECRET_KIND,
                expected: "24 to 64",
                actual: bytes.len(),
            });
        }
        let keyed = Hmac::<Sha256>::new_from_slice(bytes).map_err(|_| KeyError::InvalidLength {
            kind: SECRET_KIND,
            expected: "24 to 64",
            actual: bytes.len(),
        })?;
        Ok(Self {
            bytes: Zeroizing::new(bytes.to_vec()),
            keyed,
        })
    }

    /// The secret in its `whsec_…` text form, for handing to the receiver.
    pub fn expose(&self) -> String {
        let mut text = String::with_capacity(SECRET_PREFIX.len() + self.bytes.len() * 4 / 3 + 4);
        text.push_str(SECRET_PREFIX);
        STANDARD.encode_string(self.bytes.as_slice(), &mut text);
        text
    }

    /// The raw key bytes.
    pub fn expose_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub(crate) fn keyed_mac(&self) -> Hmac<Sha256> {
        self.keyed.clone()
    }
}

impl FromStr for Secret {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<Self, KeyError> {
        let encoded = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or(KeyError::MissingPrefix {
                kind: SECRET_KIND,
                prefix: SECRET_PREFIX,
            })?;
        let bytes =
            Zeroizing::new(
                STANDARD
                    .decode(encoded)
                    .map_err(|_| KeyError::InvalidBase64 {
                        kind: SECRET_KIND,
                        prefix: SECRET_PREFIX,
                    })?,
            );
        Self::from_bytes(&bytes)
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq as _;
        self.bytes.len() == other.bytes.len() && bool::from(self.bytes.ct_eq(&other.bytes))
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(whsec_<redacted>)")
    }
}

const SIGNING_KIND: &str = "Ed25519 signing key";
const VERIFYING_KIND: &str = "Ed25519 verifying key";

/// An Ed25519 private key for `v1a` signatures: `whsk_` followed by the base64 of the 64-byte
/// key pair (32-byte seed, then the public key), as libsodium stores it. Parsing also accepts
/// the bare 32-byte seed.
///
/// Like [`Secret`], it has no `Display` and a redacted `Debug`.
///
/// ```
/// use switchyard_webhooks::{SigningKey, VerifyingKey};
///
/// let key = SigningKey::generate()?;
/// let public: VerifyingKey = key.verifying_key();
/// let again: SigningKey = key.expose().parse()?;
/// assert_eq!(again.verifying_key(), public);
/// assert!(public.to_string().starts_with("whpk_"));
/// # Ok::<(), switchyard_webhooks::KeyError>(())
/// ```
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// Draws a fresh key pair from the operating system's RNG.
    ///
    /// # Errors
    /// [`KeyError::Rng`] when the operating system cannot provide randomness.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut_slice()).map_err(KeyError::Rng)?;
        Ok(Self(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    /// The matching public key, to hand to receivers.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(self.0.verifying_key())
    }

    /// The key in its `whsk_…` text form (64-byte key pair).
    pub fn expose(&self) -> String {
        let pair = Zeroizing::new(self.0.to_keypair_bytes());
        format!("{SIGNING_KEY_PREFIX}{}", STANDARD.encode(pair.as_slice()))
    }

    pub(crate) fn inner(&self) -> &ed25519_dalek::SigningKey {
        &self.0
    }
}

impl FromStr for SigningKey {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<Self, KeyError> {
        let encoded = text
            .strip_prefix(SIGNING_KEY_PREFIX)
            .ok_or(KeyError::MissingPrefix {
                kind: SIGNING_KIND,
                prefix: SIGNING_KEY_PREFIX,
            })?;
        let bytes =
            Zeroizing::new(
                STANDARD
                    .decode(encoded)
                    .map_err(|_| KeyError::InvalidBase64 {
                        kind: SIGNING_KIND,
                        prefix: SIGNING_KEY_PREFIX,
                    })?,
            );
        match bytes.len() {
            32 => {
                let mut seed = Zeroizing::new([0u8; 32]);
                seed.copy_from_slice(&bytes);
                Ok(Self(ed25519_dalek::SigningKey::from_bytes(&seed)))
            }
            64 => {
                let mut pair = Zeroizing::new([0u8; 64]);
                pair.copy_from_slice(&bytes);
                ed25519_dalek::SigningKey::from_keypair_bytes(&pair)
                    .map(Self)
                    .map_err(|_| KeyError::InvalidEd25519 { kind: SIGNING_KIND })
            }
            actual => Err(KeyError::InvalidLength {
                kind: SIGNING_KIND,
                expected: "32 or 64",
                actual,
            }),
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(whsk_<redacted>)")
    }
}

/// An Ed25519 public key for verifying `v1a` signatures: `whpk_` followed by the base64 of
/// the 32-byte key. Public, so it has a `Display`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VerifyingKey(ed25519_dalek::VerifyingKey);

impl VerifyingKey {
    pub(crate) fn inner(&self) -> &ed25519_dalek::VerifyingKey {
        &self.0
    }
}

impl FromStr for VerifyingKey {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<Self, KeyError> {
        let encoded = text
            .strip_prefix(VERIFYING_KEY_PREFIX)
            .ok_or(KeyError::MissingPrefix {
                kind: VERIFYING_KIND,
                prefix: VERIFYING_KEY_PREFIX,
            })?;
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| KeyError::InvalidBase64 {
                kind: VERIFYING_KIND,
                prefix: VERIFYING_KEY_PREFIX,
            })?;
        let array: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::InvalidLength {
                kind: VERIFYING_KIND,
                expected: "32",
                actual: bytes.len(),
            })?;
        ed25519_dalek::VerifyingKey::from_bytes(&array)
            .map(Self)
            .map_err(|_| KeyError::InvalidEd25519 {
                kind: VERIFYING_KIND,
            })
    }
}

impl fmt::Display for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{VERIFYING_KEY_PREFIX}{}",
            STANDARD.encode(self.0.as_bytes())
        )
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_lengths_are_enforced() {
        for (len, ok) in [(23, false), (24, true), (64, true), (65, false), (0, false)] {
            let text = format!("{SECRET_PREFIX}{}", STANDARD.encode(vec![7u8; len]));
            assert_eq!(text.parse::<Secret>().is_ok(), ok, "length {len}");
        }
    }

    #[test]
    fn secret_errors_say_why() {
        let err = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
            .parse::<Secret>()
            .unwrap_err();
        assert!(
            err.to_string().contains("must start with `whsec_`"),
            "{err}"
        );
        let err = "whsec_not base64!!".parse::<Secret>().unwrap_err();
        assert!(matches!(err, KeyError::InvalidBase64 { .. }), "{err}");
    }

    #[test]
    fn generated_secrets_roundtrip_and_differ() {
        let a = Secret::generate().unwrap();
        let b = Secret::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().parse::<Secret>().unwrap(), a);
        assert_eq!(a.expose_bytes().len(), GENERATED_SECRET_BYTES);
    }

    #[test]
    fn debug_never_shows_key_material() {
        let secret = Secret::generate().unwrap();
        let exposed = secret.expose();
        let body = &exposed[SECRET_PREFIX.len()..];
        assert!(!format!("{secret:?}").contains(body));
        let key = SigningKey::generate().unwrap();
        let exposed = key.expose();
        assert!(!format!("{key:?}").contains(&exposed[SIGNING_KEY_PREFIX.len()..]));
    }

    #[test]
    fn signing_key_accepts_seed_and_pair_and_checks_the_pair() {
        let key = SigningKey::generate().unwrap();
        let pair = key.0.to_keypair_bytes();
        let seed_text = format!("{SIGNING_KEY_PREFIX}{}", STANDARD.encode(&pair[..32]));
        assert_eq!(
            seed_text.parse::<SigningKey>().unwrap().verifying_key(),
            key.verifying_key()
        );
        let mut bad = pair;
        bad[40] ^= 1;
        let bad_text = format!("{SIGNING_KEY_PREFIX}{}", STANDARD.encode(bad));
        assert!(matches!(
            bad_text.parse::<SigningKey>(),
            Err(KeyError::InvalidEd25519 { .. })
        ));
    }

    #[test]
    fn verifying_key_roundtrips_through_display() {
        let public = SigningKey::generate().unwrap().verifying_key();
        assert_eq!(public.to_string().parse::<VerifyingKey>().unwrap(), public);
    }
}
