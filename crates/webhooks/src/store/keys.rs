//! How the durable stores keep an endpoint's signing keys: one JSON text, the current
//! secret and the previous ones with when each expires (microseconds since the epoch),
//! sealed under the main key when the store has one ([`Sealer`]), as are its custom headers.

use std::str::FromStr as _;
use std::sync::Arc;

use chrono::DateTime;

use crate::error::StoreError;
use crate::model::EndpointKeys;
use crate::seal::{self, KeyRing, SealError};
use crate::secret::Secret;

/// The field names sealed values are bound to (with the endpoint's id as the record).
pub(crate) const KEYS_FIELD: &str = "keys";
/// See [`KEYS_FIELD`].
pub(crate) const HEADERS_FIELD: &str = "headers";

/// Seals and opens an endpoint's secret columns: under the main key ring when the store was
/// given one, else they pass as they are. Clear text is always read (a store being upgraded,
/// or written before it had a key); sealed text needs the key that sealed it.
#[derive(Clone, Default)]
pub(crate) struct Sealer(Option<Arc<KeyRing>>);

impl Sealer {
    /// A sealer with `ring`, or one that keeps values clear.
    pub(crate) fn new(ring: Option<KeyRing>) -> Self {
        Self(ring.map(Arc::new))
    }

    /// The ring, if any.
    pub(crate) fn ring(&self) -> Option<&KeyRing> {
        self.0.as_deref()
    }

    /// What to store for `text`, the `field` of endpoint `record`.
    pub(crate) fn seal(
        &self,
        record: &str,
        field: &str,
        text: String,
    ) -> Result<String, StoreError> {
        match &self.0 {
            Some(ring) => Ok(ring.seal(record, field, text.as_bytes())?),
            None => Ok(text),
        }
    }

    /// The text stored as `stored`: opened when sealed, as it is when clear.
    pub(crate) fn open(
        &self,
        record: &str,
        field: &str,
        stored: String,
    ) -> Result<String, StoreError> {
        if !seal::is_sealed(&stored) {
            return Ok(stored);
        }
        let Some(ring) = &self.0 else {
            return Err(SealError::UnknownKey {
                what: format!("the {field} of {record}"),
                key_id: seal::sealed_key_id(&stored).unwrap_or_default().to_owned(),
            }
            .into());
        };
        let bytes = ring.open(record, field, &stored)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| StoreError::Corrupt {
            what: format!("endpoint {record}"),
            reason: format!("its sealed {field} are not UTF-8"),
        })
    }
}

impl Sealer {
    /// [`Sealer::seal`] for bytes (a remembered response's body): the sealed text's bytes.
    pub(crate) fn seal_bytes(
        &self,
        record: &str,
        field: &str,
        bytes: Vec<u8>,
    ) -> Result<Vec<u8>, StoreError> {
        match &self.0 {
            Some(ring) => Ok(ring.seal(record, field, &bytes)?.into_bytes()),
            None => Ok(bytes),
        }
    }

    /// [`Sealer::open`] for bytes.
    pub(crate) fn open_bytes(
        &self,
        record: &str,
        field: &str,
        stored: Vec<u8>,
    ) -> Result<Vec<u8>, StoreError> {
        let Ok(text) = std::str::from_utf8(&stored) else {
            return Ok(stored);
        };
        if !seal::is_sealed(text) {
            return Ok(stored);
        }
        let Some(ring) = &self.0 else {
            return Err(SealError::UnknownKey {
                what: format!("the {field} of {record}"),
                key_id: seal::sealed_key_id(text).unwrap_or_default().to_owned(),
            }
            .into());
        };
        Ok(ring.open(record, field, text)?.to_vec())
    }
}

/// The field a remembered response's body is sealed as (with the idempotency key, already a
/// hash, as the record).
pub(crate) const RESPONSE_FIELD: &str = "response";

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ring() {
            Some(ring) => write!(f, "Sealer({})", ring.current().id()),
            None => f.write_str("Sealer(clear)"),
        }
    }
}

/// The stored form of an endpoint's keys.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct StoredKeys {
    pub(crate) current: String,
    pub(crate) previous: Vec<(String, i64)>,
}

impl StoredKeys {
    /// The stored form of `keys`.
    pub(crate) fn of(keys: &EndpointKeys) -> Self {
        Self {
            current: keys.current.expose(),
            previous: keys
                .previous
                .iter()
                .map(|(secret, until)| (secret.expose(), until.timestamp_micros()))
                .collect(),
        }
    }

    /// The keys back, or why they cannot be read (`what` names the record).
    pub(crate) fn into_keys(self, what: &str) -> Result<EndpointKeys, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            what: what.to_owned(),
            reason,
        };
        let current = Secret::from_str(&self.current).map_err(|e| corrupt(e.to_string()))?;
        let mut previous = Vec::with_capacity(self.previous.len());
        for (secret, expires) in self.previous {
            let secret = Secret::from_str(&secret).map_err(|e| corrupt(e.to_string()))?;
            let expires = DateTime::from_timestamp_micros(expires)
                .ok_or_else(|| corrupt("key expiry out of range".to_owned()))?;
            previous.push((secret, expires));
        }
        Ok(EndpointKeys { current, previous })
    }
}
