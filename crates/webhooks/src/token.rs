//! Application-scoped API tokens (Svix's app portal tokens): `appsk_` and 43 characters
//! of base64url, 32 bytes from the OS's random source. The store keeps only their SHA-256;
//! `Debug` shows only the prefix.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::KeyError;

/// What every application token starts with.
pub const APP_TOKEN_PREFIX: &str = "appsk_";

/// Random bytes in a token.
const TOKEN_BYTES: usize = 32;

/// An application-scoped API token.
///
/// ```
/// use switchyard_webhooks::AppToken;
///
/// let token = AppToken::generate().unwrap();
/// assert!(token.expose().starts_with("appsk_"));
/// assert_eq!(token.hash(), AppToken::hash_of(token.expose()));
/// assert!(!format!("{token:?}").contains(&token.expose()[6..]));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct AppToken(Zeroizing<String>);

impl AppToken {
    /// A fresh token.
    ///
    /// # Errors
    /// [`KeyError::Rng`] when the OS's random source fails.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = Zeroizing::new([0u8; TOKEN_BYTES]);
        getrandom::fill(bytes.as_mut_slice()).map_err(KeyError::Rng)?;
        Ok(Self(Zeroizing::new(format!(
            "{APP_TOKEN_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(bytes.as_slice())
        ))))
    }

    /// The token, to hand to its holder.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the store keeps of it: its SHA-256, in hex.
    pub fn hash(&self) -> String {
        Self::hash_of(&self.0)
    }

    /// The SHA-256, in hex, of a token as presented.
    pub fn hash_of(token: &str) -> String {
        Sha256::digest(token.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether `text` has the shape of an application token (it may still be unknown).
    pub fn looks_like(text: &str) -> bool {
        text.strip_prefix(APP_TOKEN_PREFIX).is_some_and(|rest| {
            rest.len() == 43
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
    }
}

impl fmt::Debug for AppToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AppToken({APP_TOKEN_PREFIX}…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_distinct_well_formed_and_hashed() {
        let a = AppToken::generate().unwrap();
        let b = AppToken::generate().unwrap();
        assert_ne!(a, b);
        assert!(AppToken::looks_like(a.expose()));
        assert!(!AppToken::looks_like("appsk_short"));
        assert!(!AppToken::looks_like(
            &a.expose().replace("appsk_", "whsec_")
        ));
        assert_eq!(a.hash().len(), 64);
        assert_ne!(a.hash(), b.hash());
        assert_eq!(format!("{a:?}"), "AppToken(appsk_…)");
    }
}
