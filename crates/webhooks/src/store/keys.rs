//! How the durable stores keep an endpoint's signing keys: one JSON text, the current
//! secret and the previous ones with when each expires (microseconds since the epoch),
//! sealed under the main key when the store has one ([`Sealer`]), as are its custom headers.

use std::str::FromStr as _;
use std::sync::{Arc, PoisonError, RwLock};

use chrono::DateTime;

use crate::error::StoreError;
use crate::model::EndpointKeys;
use crate::seal::{self, KeyRing, SealError};
use crate::secret::Secret;
use zeroize::Zeroizing;

/// The field names sealed values are bound to (with the endpoint's id as the record).
pub(crate) const KEYS_FIELD: &str = "keys";
/// See [`KEYS_FIELD`].
pub(crate) const HEADERS_FIELD: &str = "headers";

/// Seals and opens an endpoint's secret columns: under the main key ring when the store was
/// given one, else they pass as they are. Clear text is always read (a store being upgraded,
/// or written before it had a key); sealed text needs the key that sealed it. Clones share
/// one ring, which [`Sealer::rotate`] replaces while the store serves.
#[derive(Clone, Default)]
pub(crate) struct Sealer(Arc<Shared>);

#[derive(Default)]
struct Shared {
    /// Read for every value sealed or opened (a cache fill, a write), replaced by a rotation.
    ring: RwLock<Option<Arc<KeyRing>>>,
    /// One rotation at a time.
    rotating: tokio::sync::Mutex<()>,
}

impl Sealer {
    /// A sealer with `ring`, or one that keeps values clear.
    pub(crate) fn new(ring: Option<KeyRing>) -> Self {
        Self(Arc::new(Shared {
            ring: RwLock::new(ring.map(Arc::new)),
            rotating: tokio::sync::Mutex::new(()),
        }))
    }

    /// The ring values are sealed under now, if any.
    pub(crate) fn ring(&self) -> Option<Arc<KeyRing>> {
        self.0
            .ring
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, ring: KeyRing) {
        *self.0.ring.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(ring));
    }

    /// Starts moving to `ring` while the store serves: holds the rotation lock (one at a
    /// time), and from now on values are sealed under `ring`'s current key while the earlier
    /// ring's keys still open. The store then seals again what it holds under other keys and
    /// asks [`Rotation::dropped`] whether anything is still sealed under a key `ring` lacks
    /// before [`Rotation::finish`].
    pub(crate) async fn rotate(&self, ring: KeyRing) -> Rotation<'_> {
        let lock = self.0.rotating.lock().await;
        let earlier = self.ring();
        let dropped = match &earlier {
            Some(earlier) => earlier
                .ids()
                .filter(|id| !ring.ids().any(|kept| kept == *id))
                .map(str::to_owned)
                .collect(),
            None => Vec::new(),
        };
        self.set(match &earlier {
            Some(earlier) => ring.keeping(earlier),
            None => ring.clone(),
        });
        Rotation {
            sealer: self,
            ring,
            dropped,
            _lock: lock,
        }
    }

    /// What to store for `text`, the `field` of endpoint `record`.
    pub(crate) fn seal(
        &self,
        record: &str,
        field: &str,
        text: String,
    ) -> Result<String, StoreError> {
        match self.ring() {
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
        let mut bytes = self.opened(record, field, &stored)?;
        String::from_utf8(std::mem::take(&mut *bytes)).map_err(|_| StoreError::Corrupt {
            what: format!("endpoint {record}"),
            reason: format!("its sealed {field} are not UTF-8"),
        })
    }

    /// `stored`, sealed text, opened under the ring.
    fn opened(
        &self,
        record: &str,
        field: &str,
        stored: &str,
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let Some(ring) = self.ring() else {
            return Err(SealError::UnknownKey {
                what: format!("the {field} of {record}"),
                key_id: seal::sealed_key_id(stored).unwrap_or_default().to_owned(),
            }
            .into());
        };
        Ok(ring.open(record, field, stored)?)
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
        match self.ring() {
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
        let mut bytes = self.opened(record, field, text)?;
        Ok(std::mem::take(&mut *bytes))
    }
}

/// A rotation under way (see [`Sealer::rotate`]). Dropped before [`Rotation::finish`], the
/// store keeps sealing under the new key and opening under both rings' keys.
pub(crate) struct Rotation<'a> {
    sealer: &'a Sealer,
    ring: KeyRing,
    dropped: Vec<String>,
    _lock: tokio::sync::MutexGuard<'a, ()>,
}

impl Rotation<'_> {
    /// The keys to drop, each with what its sealed values start with.
    pub(crate) fn dropped(&self) -> impl Iterator<Item = (&str, String)> {
        self.dropped
            .iter()
            .map(|id| (id.as_str(), seal::sealed_prefix(id)))
    }

    /// Drops the keys the new ring lacks: `still_sealed` names a record one of them still
    /// seals (found by the store after sealing everything again), if any.
    pub(crate) fn finish(self, still_sealed: Option<(String, String)>) -> Result<(), StoreError> {
        if let Some((key_id, what)) = still_sealed {
            return Err(SealError::StillInUse { key_id, what }.into());
        }
        self.sealer.set(self.ring);
        Ok(())
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::seal::MainKey;

    #[tokio::test]
    async fn a_key_still_in_use_is_kept_and_named() {
        let (old, new) = (MainKey::generate().unwrap(), MainKey::generate().unwrap());
        let sealer = Sealer::new(Some(KeyRing::new(old.clone())));
        let by_old = sealer.seal("ep_1", KEYS_FIELD, "a".to_owned()).unwrap();
        // Another server sealed under the old key after this one sealed everything again.
        let rotation = sealer.rotate(KeyRing::new(new.clone())).await;
        let still = rotation
            .dropped()
            .find(|(_, prefix)| by_old.starts_with(prefix.as_str()))
            .map(|(id, _)| id.to_owned())
            .unwrap();
        let error = rotation
            .finish(Some((still, "endpoint ep_1".to_owned())))
            .unwrap_err();
        assert!(
            matches!(&error, StoreError::Sealed(SealError::StillInUse { key_id, .. }) if key_id == old.id()),
            "{error}"
        );
        // Both keys still open; new values are sealed under the new one.
        assert_eq!(sealer.open("ep_1", KEYS_FIELD, by_old).unwrap(), "a");
        let ring = sealer.ring().unwrap();
        assert_eq!(ring.current().id(), new.id());
        assert_eq!(ring.ids().collect::<Vec<_>>(), [new.id(), old.id()]);

        // Once nothing is, the old key goes.
        sealer
            .rotate(KeyRing::new(new.clone()))
            .await
            .finish(None)
            .unwrap();
        assert_eq!(sealer.ring().unwrap().ids().collect::<Vec<_>>(), [new.id()]);
    }
}
