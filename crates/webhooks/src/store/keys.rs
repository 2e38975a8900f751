//! How the durable stores keep an endpoint's signing keys: one JSON text, the current
//! secret and the previous ones with when each expires (microseconds since the epoch).

use std::str::FromStr as _;

use chrono::DateTime;

use crate::error::StoreError;
use crate::model::EndpointKeys;
use crate::secret::Secret;

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
