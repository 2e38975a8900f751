//! Standard Webhooks signatures: `v1` (HMAC-SHA256) and `v1a` (Ed25519) over
//! `{webhook-id}.{webhook-timestamp}.{body}`, signing and verification.
//!
//! A sender signs with every live key of an endpoint (current key first) and sends the three
//! headers; a receiver verifies with any of its keys. Verification accepts the `webhook-` and
//! the older `svix-` header names, several space-separated signatures, and a timestamp within
//! a tolerance (±5 minutes by default). Signatures are compared in constant time.
//!
//! ```
//! use switchyard_webhooks::{Secret, Signer, Verifier};
//!
//! let secret: Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse()?;
//! let body = br#"{"test": 2432232314}"#;
//!
//! // The Standard Webhooks reference vector.
//! let signer = Signer::new(secret.clone());
//! let signature = signer.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
//! assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
//!
//! // Headers for a request, then verification on the receiving side.
//! let headers = signer.headers("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
//! let verified = Verifier::new(secret).verify_at(&headers, body, 1614265330 + 60)?;
//! assert_eq!(verified.id, "msg_p5jXN8AQM9LWM0D4loKWxJek");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::Signer as _;
use hmac::Mac as _;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::error::VerifyError;
use crate::secret::{Secret, SigningKey, VerifyingKey};

/// `webhook-id`: the message id, the same on every attempt (receivers use it to de-duplicate).
pub const HEADER_ID: &str = "webhook-id";
/// `webhook-timestamp`: Unix seconds when the attempt was signed.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// `webhook-signature`: space-separated `version,base64` signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";

const SVIX_ID: &str = "svix-id";
const SVIX_TIMESTAMP: &str = "svix-timestamp";
const SVIX_SIGNATURE: &str = "svix-signature";

// Pre-built names: looking a header up by `&str` would parse the name on every call.
static NAME_ID: HeaderName = HeaderName::from_static(HEADER_ID);
static NAME_TIMESTAMP: HeaderName = HeaderName::from_static(HEADER_TIMESTAMP);
static NAME_SIGNATURE: HeaderName = HeaderName::from_static(HEADER_SIGNATURE);
static NAME_SVIX_ID: HeaderName = HeaderName::from_static(SVIX_ID);
static NAME_SVIX_TIMESTAMP: HeaderName = HeaderName::from_static(SVIX_TIMESTAMP);
static NAME_SVIX_SIGNATURE: HeaderName = HeaderName::from_static(SVIX_SIGNATURE);

/// How far a timestamp may be from the verifier's clock, either way, by default (5 minutes).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// A key a [`Signer`] signs with.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SigningSecret {
    /// `whsec_`: `v1` HMAC-SHA256 signatures.
    Hmac(Secret),
    /// `whsk_`: `v1a` Ed25519 signatures.
    Ed25519(SigningKey),
}

impl From<Secret> for SigningSecret {
    fn from(secret: Secret) -> Self {
        Self::Hmac(secret)
    }
}

impl From<SigningKey> for SigningSecret {
    fn from(key: SigningKey) -> Self {
        Self::Ed25519(key)
    }
}

/// Signs webhook messages with one or more keys.
///
/// With several keys (during a rotation) the signature header carries one signature per key,
/// in the order the keys were given, separated by spaces.
#[derive(Debug, Clone)]
pub struct Signer {
    keys: Vec<SigningSecret>,
}

impl Signer {
    /// A signer with one key.
    pub fn new(key: impl Into<SigningSecret>) -> Self {
        Self {
            keys: vec![key.into()],
        }
    }

    /// A signer with several keys; the first is the current one. An empty list signs nothing
    /// (the header would be empty), so callers should always pass at least one key.
    pub fn with_keys(keys: impl IntoIterator<Item = SigningSecret>) -> Self {
        Self {
            keys: keys.into_iter().collect(),
        }
    }

    /// The `webhook-signature` value for a message: one `v1,…` or `v1a,…` entry per key.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut out = String::with_capacity(self.keys.len() * 92);
        let mut ts_buf = [0u8; 20];
        let ts = format_i64(timestamp, &mut ts_buf);
        for key in &self.keys {
            if !out.is_empty() {
                out.push(' ');
            }
            match key {
                SigningSecret::Hmac(secret) => {
                    out.push_str("v1,");
                    let mac = hmac_v1(secret, msg_id, ts, body);
                    STANDARD.encode_string(mac, &mut out);
                }
                SigningSecret::Ed25519(key) => {
                    out.push_str("v1a,");
                    let signature = key.inner().sign(&signed_content(msg_id, ts, body));
                    STANDARD.encode_string(signature.to_bytes(), &mut out);
                }
            }
        }
        out
    }

    /// The three Standard Webhooks headers for a message.
    pub fn headers(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(3);
        self.apply_headers(&mut headers, msg_id, timestamp, body);
        headers
    }

    /// Sets the three Standard Webhooks headers on an existing header map (replacing any
    /// previous values). A message id that is not a valid header value is sent
    /// percent-free as-is only if it is; ids this crate generates always are.
    pub fn apply_headers(
        &self,
        headers: &mut HeaderMap,
        msg_id: &str,
        timestamp: i64,
        body: &[u8],
    ) {
        let signature = self.sign(msg_id, timestamp, body);
        if let Ok(id) = HeaderValue::from_str(msg_id) {
            headers.insert(NAME_ID.clone(), id);
        }
        headers.insert(NAME_TIMESTAMP.clone(), HeaderValue::from(timestamp));
        if let Ok(value) = HeaderValue::from_str(&signature) {
            headers.insert(NAME_SIGNATURE.clone(), value);
        }
    }
}

/// What a successful verification learned about the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The `webhook-id` (use it to de-duplicate redeliveries).
    pub id: String,
    /// The `webhook-timestamp`, in Unix seconds.
    pub timestamp: i64,
}

/// Verifies webhook signatures against a set of keys.
///
/// Build it with the endpoint's secret (and, during a rotation, the previous ones); it
/// accepts a message when any signature in the header matches any key.
#[derive(Debug, Clone)]
pub struct Verifier {
    secrets: Vec<Secret>,
    public_keys: Vec<VerifyingKey>,
    tolerance: Duration,
}

impl Verifier {
    /// A verifier for one HMAC secret, with the default ±5 minute tolerance.
    pub fn new(secret: Secret) -> Self {
        Self {
            secrets: vec![secret],
            public_keys: Vec::new(),
            tolerance: DEFAULT_TOLERANCE,
        }
    }

    /// A verifier with no keys yet; add them with [`Verifier::with_secret`] and
    /// [`Verifier::with_public_key`].
    pub fn empty() -> Self {
        Self {
            secrets: Vec::new(),
            public_keys: Vec::new(),
            tolerance: DEFAULT_TOLERANCE,
        }
    }

    /// Also accept `v1` signatures made with this secret.
    #[must_use]
    pub fn with_secret(mut self, secret: Secret) -> Self {
        self.secrets.push(secret);
        self
    }

    /// Also accept `v1a` signatures made by this key's private half.
    #[must_use]
    pub fn with_public_key(mut self, key: VerifyingKey) -> Self {
        self.public_keys.push(key);
        self
    }

    /// How far the timestamp may be from now, either way (default 5 minutes).
    #[must_use]
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Verifies a request's headers and body against the system clock.
    ///
    /// # Errors
    /// A [`VerifyError`] saying which header is missing or bad, that the timestamp is out of
    /// tolerance, or that no signature matched.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, VerifyError> {
        self.verify_at(headers, body, unix_now())
    }

    /// Like [`Verifier::verify`], with the current time given (Unix seconds).
    ///
    /// # Errors
    /// As [`Verifier::verify`].
    pub fn verify_at(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: i64,
    ) -> Result<Verified, VerifyError> {
        let id = header(headers, &NAME_ID, &NAME_SVIX_ID, HEADER_ID)?;
        let timestamp = header(
            headers,
            &NAME_TIMESTAMP,
            &NAME_SVIX_TIMESTAMP,
            HEADER_TIMESTAMP,
        )?;
        let signature = header(
            headers,
            &NAME_SIGNATURE,
            &NAME_SVIX_SIGNATURE,
            HEADER_SIGNATURE,
        )?;
        self.verify_parts(id, timestamp, signature, body, now)
    }

    /// Verifies the three header values and the body directly (for callers that do not hold
    /// an `http::HeaderMap`).
    ///
    /// # Errors
    /// As [`Verifier::verify`].
    pub fn verify_parts(
        &self,
        id: &str,
        timestamp: &str,
        signature: &str,
        body: &[u8],
        now: i64,
    ) -> Result<Verified, VerifyError> {
        let ts = parse_timestamp(timestamp)?;
        let tolerance_secs = self.tolerance.as_secs();
        let tolerance = i64::try_from(tolerance_secs).unwrap_or(i64::MAX);
        if now.saturating_sub(ts) > tolerance {
            return Err(VerifyError::TimestampTooOld {
                timestamp: ts,
                now,
                tolerance_secs,
            });
        }
        if ts.saturating_sub(now) > tolerance {
            return Err(VerifyError::TimestampTooNew {
                timestamp: ts,
                now,
                tolerance_secs,
            });
        }

        let mut supported = false;
        // HMACs are computed once per key, lazily, and compared against every v1 entry. The
        // first key's MAC lives on the stack: one key is the common case.
        let mut first_mac: Option<[u8; 32]> = None;
        let mut other_macs: Vec<[u8; 32]> = Vec::new();
        // The Ed25519 message (`id.timestamp.body`), built once if any `v1a` entry needs it.
        let mut content: Option<Vec<u8>> = None;
        for entry in signature.split(' ').filter(|e| !e.is_empty()) {
            let Some((version, encoded)) = entry.split_once(',') else {
                continue;
            };
            match version {
                "v1" if !self.secrets.is_empty() => {
                    supported = true;
                    if first_mac.is_none() {
                        first_mac = Some(hmac_v1(&self.secrets[0], id, timestamp, body));
                        other_macs = self.secrets[1..]
                            .iter()
                            .map(|s| hmac_v1(s, id, timestamp, body))
                            .collect();
                    }
                    let mut decoded = [0u8; 33];
                    let Ok(32) = STANDARD.decode_slice(encoded, &mut decoded) else {
                        continue;
                    };
                    let candidate = &decoded[..32];
                    // Check every key so the time taken does not depend on which one matched.
                    let matched = first_mac
                        .iter()
                        .chain(&other_macs)
                        .fold(false, |acc, mac| acc | constant_time_eq_32(mac, candidate));
                    if matched {
                        return Ok(Verified {
                            id: id.to_owned(),
                            timestamp: ts,
                        });
                    }
                }
                "v1a" if !self.public_keys.is_empty() => {
                    supported = true;
                    let mut decoded = [0u8; 65];
                    let Ok(64) = STANDARD.decode_slice(encoded, &mut decoded) else {
                        continue;
                    };
                    let mut bytes = [0u8; 64];
                    bytes.copy_from_slice(&decoded[..64]);
                    let sig = ed25519_dalek::Signature::from_bytes(&bytes);
                    let content =
                        content.get_or_insert_with(|| signed_content(id, timestamp, body));
                    if self
                        .public_keys
                        .iter()
                        .any(|k| k.inner().verify_strict(content, &sig).is_ok())
                    {
                        return Ok(Verified {
                            id: id.to_owned(),
                            timestamp: ts,
                        });
                    }
                }
                _ => {}
            }
        }
        if supported {
            Err(VerifyError::NoMatchingSignature)
        } else {
            Err(VerifyError::NoSupportedSignature)
        }
    }
}

fn header<'a>(
    headers: &'a HeaderMap,
    key: &HeaderName,
    legacy: &HeaderName,
    name: &'static str,
) -> Result<&'a str, VerifyError> {
    let value = headers
        .get(key)
        .or_else(|| headers.get(legacy))
        .ok_or(VerifyError::MissingHeader { name })?;
    value.to_str().map_err(|_| VerifyError::InvalidHeader {
        name,
        reason: "not visible ASCII",
    })
}

/// Compares two 32-byte MACs without an early exit: the time does not depend on where they
/// differ. The accumulated difference passes through `black_box` so the optimiser cannot turn
/// the fold back into a short-circuiting comparison.
fn constant_time_eq_32(a: &[u8; 32], b: &[u8]) -> bool {
    if b.len() != 32 {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

fn parse_timestamp(text: &str) -> Result<i64, VerifyError> {
    let invalid = VerifyError::InvalidHeader {
        name: HEADER_TIMESTAMP,
        reason: "not an integer number of seconds",
    };
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid);
    }
    text.parse().map_err(|_| invalid)
}

fn hmac_v1(secret: &Secret, id: &str, timestamp: &str, body: &[u8]) -> [u8; 32] {
    let mut mac = secret.keyed_mac();
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

fn signed_content(id: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(id.len() + timestamp.len() + body.len() + 2);
    content.extend_from_slice(id.as_bytes());
    content.push(b'.');
    content.extend_from_slice(timestamp.as_bytes());
    content.push(b'.');
    content.extend_from_slice(body);
    content
}

/// Formats an integer without allocating.
fn format_i64(value: i64, buf: &mut [u8; 20]) -> &str {
    let negative = value < 0;
    let mut n = value.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if negative && i > 0 {
        i -= 1;
        buf[i] = b'-';
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn secret() -> Secret {
        SECRET.parse().unwrap()
    }

    #[test]
    fn reference_vector() {
        assert_eq!(Signer::new(secret()).sign(ID, TS, BODY), EXPECTED);
    }

    #[test]
    fn format_i64_matches_to_string() {
        for v in [0, 1, -1, 9, 10, 1614265330, i64::MAX, i64::MIN] {
            let mut buf = [0u8; 20];
            assert_eq!(format_i64(v, &mut buf), v.to_string());
        }
    }

    #[test]
    fn tolerance_is_enforced_both_ways() {
        let verifier = Verifier::new(secret());
        let headers = Signer::new(secret()).headers(ID, TS, BODY);
        assert!(verifier.verify_at(&headers, BODY, TS + 300).is_ok());
        assert!(verifier.verify_at(&headers, BODY, TS - 300).is_ok());
        assert!(matches!(
            verifier.verify_at(&headers, BODY, TS + 301),
            Err(VerifyError::TimestampTooOld { .. })
        ));
        assert!(matches!(
            verifier.verify_at(&headers, BODY, TS - 301),
            Err(VerifyError::TimestampTooNew { .. })
        ));
    }

    #[test]
    fn svix_header_names_and_several_signatures() {
        let other = Secret::generate().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(SVIX_ID, HeaderValue::from_static(ID));
        headers.insert(SVIX_TIMESTAMP, HeaderValue::from(TS));
        let both = Signer::with_keys([other.into(), secret().into()]).sign(ID, TS, BODY);
        assert!(both.ends_with(EXPECTED));
        headers.insert(
            SVIX_SIGNATURE,
            HeaderValue::from_str(&format!("v2,xyz {both}")).unwrap(),
        );
        assert_eq!(
            Verifier::new(secret())
                .verify_at(&headers, BODY, TS)
                .unwrap(),
            Verified {
                id: ID.into(),
                timestamp: TS
            }
        );
    }

    #[test]
    fn tampering_is_detected() {
        let verifier = Verifier::new(secret());
        let headers = Signer::new(secret()).headers(ID, TS, BODY);
        assert_eq!(
            verifier.verify_at(&headers, br#"{"test": 2432232315}"#, TS),
            Err(VerifyError::NoMatchingSignature)
        );
        let mut moved = headers.clone();
        moved.insert(HEADER_TIMESTAMP, HeaderValue::from(TS + 1));
        assert_eq!(
            verifier.verify_at(&moved, BODY, TS),
            Err(VerifyError::NoMatchingSignature)
        );
        let mut renamed = headers;
        renamed.insert(HEADER_ID, HeaderValue::from_static("msg_other"));
        assert_eq!(
            verifier.verify_at(&renamed, BODY, TS),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn bad_headers_are_typed() {
        let verifier = Verifier::new(secret());
        let mut headers = Signer::new(secret()).headers(ID, TS, BODY);
        headers.remove(HEADER_SIGNATURE);
        assert_eq!(
            verifier.verify_at(&headers, BODY, TS),
            Err(VerifyError::MissingHeader {
                name: HEADER_SIGNATURE
            })
        );
        for bad in ["", "12a", "-5", "+5", "1.5", "99999999999999999999"] {
            let mut headers = Signer::new(secret()).headers(ID, TS, BODY);
            headers.insert(HEADER_TIMESTAMP, HeaderValue::from_str(bad).unwrap());
            assert!(
                matches!(
                    verifier.verify_at(&headers, BODY, TS),
                    Err(VerifyError::InvalidHeader { .. })
                ),
                "{bad:?}"
            );
        }
        let mut headers = Signer::new(secret()).headers(ID, TS, BODY);
        headers.insert(
            HEADER_SIGNATURE,
            HeaderValue::from_static("v1,@@@ v1, v1 ,"),
        );
        assert_eq!(
            verifier.verify_at(&headers, BODY, TS),
            Err(VerifyError::NoMatchingSignature)
        );
        headers.insert(HEADER_SIGNATURE, HeaderValue::from_static("v2,abc"));
        assert_eq!(
            verifier.verify_at(&headers, BODY, TS),
            Err(VerifyError::NoSupportedSignature)
        );
    }

    #[test]
    fn v1a_signs_and_verifies() {
        let key = SigningKey::generate().unwrap();
        let headers = Signer::new(key.clone()).headers(ID, TS, BODY);
        let value = headers[HEADER_SIGNATURE].to_str().unwrap();
        assert!(value.starts_with("v1a,"));
        let verifier = Verifier::empty().with_public_key(key.verifying_key());
        assert!(verifier.verify_at(&headers, BODY, TS).is_ok());
        assert_eq!(
            verifier.verify_at(&headers, b"{}", TS),
            Err(VerifyError::NoMatchingSignature)
        );
        let stranger =
            Verifier::empty().with_public_key(SigningKey::generate().unwrap().verifying_key());
        assert_eq!(
            stranger.verify_at(&headers, BODY, TS),
            Err(VerifyError::NoMatchingSignature)
        );
        // A v1a signature means nothing to an HMAC-only verifier.
        assert_eq!(
            Verifier::new(secret()).verify_at(&headers, BODY, TS),
            Err(VerifyError::NoSupportedSignature)
        );
    }
}
