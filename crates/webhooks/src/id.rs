//! Time-sortable identifiers: `app_…` for applications, `msg_…` for messages, `ep_…` for
//! endpoints and `atmpt_…` for delivery attempts, each a prefix and
//! a 27-character KSUID (4 bytes of seconds since 2014-05-13, 16 random bytes, base62).
//!
//! Ids made by one process are strictly increasing, even within a second (the random part is
//! incremented instead of redrawn), so sorting by id is sorting by creation.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use crate::error::{Error, KeyError};

/// KSUID epoch: 2014-05-13T16:53:20Z.
const KSUID_EPOCH: i64 = 1_400_000_000;
const ENCODED_LEN: usize = 27;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static LAST: Mutex<(u32, u128)> = Mutex::new((0, 0));

/// The longest id prefix (`atmpt_`).
const MAX_PREFIX: usize = 6;

/// A fresh KSUID for `now` (Unix seconds), greater than every one made before it in this
/// process. The random part is drawn from the OS when the second moves on; within a second
/// the previous one is counted up (no system call per id).
fn next_ksuid(now: i64) -> Result<[u8; ENCODED_LEN], KeyError> {
    let seconds = u32::try_from(now.saturating_sub(KSUID_EPOCH).max(0)).unwrap_or(u32::MAX);
    let mut last = LAST
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (ts, payload) = if seconds <= last.0
        && let Some(next) = last.1.checked_add(1)
    {
        // Same second (or a clock that stepped back): keep the order by counting up.
        (last.0, next)
    } else {
        let mut random = [0u8; 16];
        getrandom::fill(&mut random).map_err(KeyError::Rng)?;
        // A new second, or (the count ran out) the next one.
        let ts = if seconds > last.0 {
            seconds
        } else {
            last.0.saturating_add(1)
        };
        (ts, u128::from_be_bytes(random))
    };
    *last = (ts, payload);
    drop(last);
    let mut bytes = [0u8; 20];
    bytes[..4].copy_from_slice(&ts.to_be_bytes());
    bytes[4..].copy_from_slice(&payload.to_be_bytes());
    Ok(encode_base62(&bytes))
}

/// The 27 base62 digits of a 160-bit big-endian number.
fn encode_base62(bytes: &[u8; 20]) -> [u8; ENCODED_LEN] {
    // Repeated division of the 160-bit big-endian number by 62.
    let mut digits = [0u32; 5];
    for (i, chunk) in bytes.chunks_exact(4).enumerate() {
        digits[i] = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    let mut out = [b'0'; ENCODED_LEN];
    let mut pos = ENCODED_LEN;
    while digits.iter().any(|&d| d != 0) && pos > 0 {
        let mut remainder: u64 = 0;
        for d in &mut digits {
            let value = (remainder << 32) | u64::from(*d);
            *d = (value / 62) as u32;
            remainder = value % 62;
        }
        pos -= 1;
        out[pos] = ALPHABET[remainder as usize];
    }
    out
}

fn is_ksuid(text: &str) -> bool {
    text.len() == ENCODED_LEN && text.bytes().all(|b| b.is_ascii_alphanumeric())
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Arc<str>);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A new id for an object created at `now` (Unix seconds).
            ///
            /// # Errors
            /// [`KeyError::Rng`] when the operating system cannot provide randomness.
            pub fn generate(now: i64) -> Result<Self, KeyError> {
                let mut id = [0u8; MAX_PREFIX + ENCODED_LEN];
                id[..$prefix.len()].copy_from_slice($prefix.as_bytes());
                id[$prefix.len()..$prefix.len() + ENCODED_LEN].copy_from_slice(&next_ksuid(now)?);
                // ASCII throughout, so this borrows (one allocation per id, the `Arc`).
                let text = String::from_utf8_lossy(&id[..$prefix.len() + ENCODED_LEN]);
                Ok(Self(Arc::from(&*text)))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The smallest id of this kind for an object made in the second `at` (Unix
            /// seconds). An id carries its object's second or, when made just after a clock
            /// stepped back, a later one, never an earlier one: every object made at `at` or
            /// later has an id at or above this (a bound for listing from a time).
            pub fn start_at(at: i64) -> Self {
                let seconds =
                    u32::try_from(at.saturating_sub(KSUID_EPOCH).max(0)).unwrap_or(u32::MAX);
                let mut bytes = [0u8; 20];
                bytes[..4].copy_from_slice(&seconds.to_be_bytes());
                let encoded = encode_base62(&bytes);
                let mut id = String::with_capacity($prefix.len() + ENCODED_LEN);
                id.push_str($prefix);
                id.extend(encoded.iter().map(|&b| char::from(b)));
                Self(Arc::from(id))
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(text: &str) -> Result<Self, Error> {
                match text.strip_prefix($prefix) {
                    Some(rest) if is_ksuid(rest) => Ok(Self(Arc::from(text))),
                    _ => Err(Error::InvalidId { kind: $kind, value: text.to_owned() }),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;

            fn try_from(text: String) -> Result<Self, Error> {
                text.parse()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                String::from(&*id.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }
    };
}

prefixed_id!(
    /// An application id: `app_` and a KSUID. Sorting ids sorts applications by creation
    /// time. [`AppId::default_app`] is the application of single-tenant use.
    AppId,
    "app_",
    "application id"
);

impl AppId {
    /// The default application's id, `app_` and 27 zeros: the application every endpoint and
    /// message belongs to when the caller never names one (the seed's swh-webhooks interface
    /// has no applications). It sorts before every generated id.
    pub fn default_app() -> Self {
        Self(Arc::from("app_000000000000000000000000000"))
    }
}

prefixed_id!(
    /// A message id: `msg_` and a KSUID. Sorting ids sorts messages by creation time.
    MessageId,
    "msg_",
    "message id"
);

prefixed_id!(
    /// An endpoint id: `ep_` and a KSUID, generated when the endpoint is created.
    EndpointId,
    "ep_",
    "endpoint id"
);

prefixed_id!(
    /// A delivery attempt id: `atmpt_` and a KSUID. Sorting ids sorts attempts by time.
    AttemptId,
    "atmpt_",
    "attempt id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base62_of_zero_and_max() {
        assert_eq!(encode_base62(&[0; 20]), [b'0'; 27]);
        // The KSUID spec's maximum value.
        assert_eq!(&encode_base62(&[0xFF; 20]), b"aWgEPTl1tmebfsQzFP4bxwgy80V");
    }

    #[test]
    fn ids_are_strictly_increasing_within_a_second_and_across_seconds() {
        let mut previous = MessageId::generate(1_700_000_000).unwrap();
        for i in 0..2000 {
            let next = MessageId::generate(1_700_000_000 + i / 500).unwrap();
            assert!(next > previous, "{next} <= {previous}");
            previous = next;
        }
    }

    #[test]
    fn parse_checks_prefix_and_shape() {
        let id = EndpointId::generate(1_700_000_000).unwrap();
        assert_eq!(id.as_str().parse::<EndpointId>().unwrap(), id);
        assert!(id.as_str().parse::<MessageId>().is_err());
        assert!("ep_short".parse::<EndpointId>().is_err());
        assert!(
            "ep_!!!!!!!!!!!!!!!!!!!!!!!!!!"
                .parse::<EndpointId>()
                .is_err()
        );
    }
}
