//! The small command-line tools: Standard Webhooks signing and verification
//! (`switchyard sign`, `switchyard verify`).
//!
//! ```
//! use switchyard_server::tools;
//!
//! let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
//! let body = br#"{"test": 2432232314}"#;
//! let signature = tools::sign(&[secret.to_owned()], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)?;
//! assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
//! let verified = tools::verify(
//!     &[secret.to_owned()], "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", &signature, body,
//!     Some(1614265330),
//! )?;
//! assert_eq!(verified.timestamp, 1614265330);
//! # Ok::<(), tools::ToolError>(())
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use switchyard_webhooks::signature::SigningSecret;
use switchyard_webhooks::{
    KeyError, Secret, Signer, SigningKey, Verified, Verifier, VerifyError, VerifyingKey,
};

/// Why a tool failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// No key was given.
    #[error("give at least one key (--secret)")]
    NoKey,
    /// A key could not be read.
    #[error("key {index}: {source}")]
    Key {
        /// Which `--secret` (from 1).
        index: usize,
        /// Why.
        source: KeyError,
    },
    /// A key of a kind this operation cannot use (a public key to sign with).
    #[error("key {index}: a `{prefix}` key cannot {operation}")]
    WrongKind {
        /// Which `--secret` (from 1).
        index: usize,
        /// The key's prefix.
        prefix: &'static str,
        /// What was attempted.
        operation: &'static str,
    },
    /// The signature did not verify.
    #[error("not verified: {0}")]
    Verify(#[from] VerifyError),
    /// The body could not be read.
    #[error("cannot read the body: {0}")]
    Body(std::io::Error),
}

fn key_error(index: usize) -> impl Fn(KeyError) -> ToolError {
    move |source| ToolError::Key { index, source }
}

/// The `webhook-signature` value for a message: one signature per key, in order. Keys are
/// `whsec_…` (HMAC, `v1`) or `whsk_…` (Ed25519, `v1a`).
///
/// # Errors
/// [`ToolError::NoKey`], [`ToolError::Key`], [`ToolError::WrongKind`] for a `whpk_` key.
pub fn sign(
    keys: &[String],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, ToolError> {
    if keys.is_empty() {
        return Err(ToolError::NoKey);
    }
    let mut signing = Vec::with_capacity(keys.len());
    for (i, key) in keys.iter().enumerate() {
        let index = i + 1;
        let key = key.trim();
        if key.starts_with("whpk_") {
            return Err(ToolError::WrongKind {
                index,
                prefix: "whpk_",
                operation: "sign (it is a public key)",
            });
        }
        if key.starts_with("whsk_") {
            signing.push(SigningSecret::from(
                key.parse::<SigningKey>().map_err(key_error(index))?,
            ));
        } else {
            signing.push(SigningSecret::from(
                key.parse::<Secret>().map_err(key_error(index))?,
            ));
        }
    }
    Ok(Signer::with_keys(signing).sign(msg_id, timestamp, body))
}

/// Verifies a message's three `webhook-*` header values and body against any of `keys`
/// (`whsec_…` or `whpk_…`). The timestamp must be within five minutes of `now` (the
/// current time when `None`).
///
/// # Errors
/// [`ToolError::Verify`] saying why (no matching signature, timestamp too old or new,
/// malformed header); [`ToolError::Key`] or [`ToolError::WrongKind`] for a bad key.
pub fn verify(
    keys: &[String],
    msg_id: &str,
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now: Option<i64>,
) -> Result<Verified, ToolError> {
    if keys.is_empty() {
        return Err(ToolError::NoKey);
    }
    let mut verifier = Verifier::empty();
    for (i, key) in keys.iter().enumerate() {
        let index = i + 1;
        let key = key.trim();
        if key.starts_with("whsk_") {
            return Err(ToolError::WrongKind {
                index,
                prefix: "whsk_",
                operation: "verify (give its `whpk_` public key)",
            });
        }
        verifier = if key.starts_with("whpk_") {
            verifier.with_public_key(key.parse::<VerifyingKey>().map_err(key_error(index))?)
        } else {
            verifier.with_secret(key.parse::<Secret>().map_err(key_error(index))?)
        };
    }
    let now = now.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    });
    Ok(verifier.verify_parts(msg_id, timestamp, signature, body, now)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";

    #[test]
    fn sign_and_verify_round_trip_with_both_kinds() {
        let signing = SigningKey::generate().unwrap();
        let public = signing.verifying_key().to_string();
        let keys = [SECRET.to_owned(), signing.expose()];
        let signature = sign(&keys, ID, 1_614_265_330, b"{}").unwrap();
        assert!(signature.starts_with("v1,"), "{signature}");
        assert!(signature.contains(" v1a,"), "{signature}");
        verify(
            &[public],
            ID,
            "1614265330",
            &signature,
            b"{}",
            Some(1_614_265_330),
        )
        .unwrap();
        verify(
            &[SECRET.to_owned()],
            ID,
            "1614265330",
            &signature,
            b"{}",
            Some(1_614_265_330),
        )
        .unwrap();
    }

    #[test]
    fn failures_are_typed() {
        assert!(matches!(sign(&[], ID, 0, b""), Err(ToolError::NoKey)));
        assert!(matches!(
            sign(&["nope".to_owned()], ID, 0, b""),
            Err(ToolError::Key { index: 1, .. })
        ));
        let signature = sign(&[SECRET.to_owned()], ID, 1_614_265_330, b"{}").unwrap();
        let tampered = verify(
            &[SECRET.to_owned()],
            ID,
            "1614265330",
            &signature,
            b"{ }",
            Some(1_614_265_330),
        );
        assert!(
            matches!(
                tampered,
                Err(ToolError::Verify(VerifyError::NoMatchingSignature))
            ),
            "{tampered:?}"
        );
        let late = verify(
            &[SECRET.to_owned()],
            ID,
            "1614265330",
            &signature,
            b"{}",
            Some(1_614_265_330 + 3600),
        );
        assert!(
            matches!(
                late,
                Err(ToolError::Verify(VerifyError::TimestampTooOld { .. }))
            ),
            "{late:?}"
        );
    }
}
