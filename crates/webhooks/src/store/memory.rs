//! An in-memory [`Store`]: everything in maps behind one mutex, gone when dropped.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{
    AttemptFilter, EndpointFilter, Health, HealthChange, MessageFilter, Store, attempt_matches,
    lease_token,
};
use crate::error::StoreError;
use crate::id::{EndpointId, MessageId};
use crate::model::{
    Attempt, AttemptTrigger, Channel, Delivery, DeliveryStatus, DeliveryUpdate, Endpoint,
    EndpointRecord, EndpointUid, EventType, EventTypeName, Lease, Message, after,
};
use crate::page::{Order, PageRequest};

/// A [`Store`] in memory, for tests and for embedding where durability does not matter.
/// Cheap to create; lists are keyset-paginated over ordered maps.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    event_types: BTreeMap<String, EventType>,
    endpoints: BTreeMap<String, EndpointRecord>,
    uids: HashMap<String, String>,
    messages: BTreeMap<String, Message>,
    deliveries: BTreeMap<(String, String), (Delivery, Option<String>)>,
    /// Attempts in the order they were recorded, by position.
    attempts: BTreeMap<u64, Attempt>,
    /// The position of each attempt id.
    attempt_positions: HashMap<String, u64>,
    recorded: u64,
    failing_since: HashMap<String, DateTime<Utc>>,
}

impl Inner {
    /// Records an attempt after every one before (one with the same id is replaced).
    fn record(&mut self, attempt: &Attempt) {
        self.recorded += 1;
        if let Some(old) = self
            .attempt_positions
            .insert(attempt.id.to_string(), self.recorded)
        {
            self.attempts.remove(&old);
        }
        self.attempts.insert(self.recorded, attempt.clone());
    }

    /// Whether an ordered endpoint has an earlier pending message than `message`.
    fn waits_for_earlier(&self, delivery: &Delivery) -> bool {
        let ordered = self
            .endpoints
            .get(delivery.endpoint_id.as_str())
            .is_some_and(|r| r.endpoint.ordered);
        ordered
            && self.deliveries.values().any(|(other, _)| {
                other.endpoint_id == delivery.endpoint_id
                    && other.status == DeliveryStatus::Pending
                    && other.message_id < delivery.message_id
            })
    }

    fn requeue(&mut self, message: &MessageId, endpoint: &EndpointId, now: DateTime<Utc>) {
        let key = (message.to_string(), endpoint.to_string());
        let delivery = Delivery {
            message_id: message.clone(),
            endpoint_id: endpoint.clone(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: now,
            leased_until: None,
            trigger: AttemptTrigger::Manual,
        };
        self.deliveries.insert(key, (delivery, None));
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied change: every mutation
        // below is computed first and applied with infallible map operations.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Up to `limit + 1` values after the cursor, in order, that pass `keep`.
fn page_of<V: Clone>(
    map: &BTreeMap<String, V>,
    page: &PageRequest,
    mut keep: impl FnMut(&V) -> bool,
) -> Vec<V> {
    let range = match (&page.after, page.order) {
        (None, _) => (Bound::Unbounded, Bound::Unbounded),
        (Some(after), Order::Ascending) => (Bound::Excluded(after.clone()), Bound::Unbounded),
        (Some(after), Order::Descending) => (Bound::Unbounded, Bound::Excluded(after.clone())),
    };
    let iter = map.range::<String, _>(range).map(|(_, v)| v);
    let take = page.limit.saturating_add(1);
    match page.order {
        Order::Ascending => iter.filter(|v| keep(v)).take(take).cloned().collect(),
        Order::Descending => iter.rev().filter(|v| keep(v)).take(take).cloned().collect(),
    }
}

impl Store for MemoryStore {
    async fn put_event_type(&self, event_type: &EventType) -> Result<(), StoreError> {
        self.lock()
            .event_types
            .insert(event_type.name.to_string(), event_type.clone());
        Ok(())
    }

    async fn event_type(&self, name: &EventTypeName) -> Result<Option<EventType>, StoreError> {
        Ok(self.lock().event_types.get(name.as_str()).cloned())
    }

    async fn list_event_types(&self, page: &PageRequest) -> Result<Vec<EventType>, StoreError> {
        Ok(page_of(&self.lock().event_types, page, |t| !t.archived))
    }

    async fn put_endpoint(&self, record: &EndpointRecord) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let id = record.endpoint.id.to_string();
        if let Some(uid) = &record.endpoint.uid
            && inner
                .uids
                .get(uid.as_str())
                .is_some_and(|owner| *owner != id)
        {
            return Err(StoreError::Conflict {
                what: format!("an endpoint with uid `{uid}`"),
            });
        }
        if let Some(old_uid) = inner
            .endpoints
            .get(&id)
            .and_then(|old| old.endpoint.uid.clone())
        {
            inner.uids.remove(old_uid.as_str());
        }
        if let Some(uid) = &record.endpoint.uid {
            inner.uids.insert(uid.to_string(), id.clone());
        }
        let reenabled = !record.endpoint.disabled
            && inner
                .endpoints
                .get(&id)
                .is_some_and(|old| old.endpoint.disabled);
        if reenabled {
            // Turning an endpoint back on starts its health clock afresh.
            inner.failing_since.remove(&id);
        }
        inner.endpoints.insert(id, record.clone());
        Ok(())
    }

    async fn endpoint(&self, id: &EndpointId) -> Result<Option<EndpointRecord>, StoreError> {
        Ok(self.lock().endpoints.get(id.as_str()).cloned())
    }

    async fn endpoint_by_uid(
        &self,
        uid: &EndpointUid,
    ) -> Result<Option<EndpointRecord>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .uids
            .get(uid.as_str())
            .and_then(|id| inner.endpoints.get(id))
            .cloned())
    }

    async fn delete_endpoint(&self, id: &EndpointId) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let Some(record) = inner.endpoints.remove(id.as_str()) else {
            return Ok(false);
        };
        if let Some(uid) = record.endpoint.uid {
            inner.uids.remove(uid.as_str());
        }
        inner.failing_since.remove(id.as_str());
        inner.deliveries.retain(|(_, endpoint), (delivery, _)| {
            endpoint != id.as_str() || delivery.status != DeliveryStatus::Pending
        });
        Ok(true)
    }

    async fn list_endpoints(
        &self,
        filter: &EndpointFilter,
        page: &PageRequest,
    ) -> Result<Vec<Endpoint>, StoreError> {
        let inner = self.lock();
        let records = page_of(&inner.endpoints, page, |record| {
            let endpoint = &record.endpoint;
            filter
                .event_type
                .as_ref()
                .is_none_or(|t| endpoint.event_types.accepts(t))
                && filter
                    .channel
                    .as_ref()
                    .is_none_or(|c| endpoint.channels.is_empty() || endpoint.channels.contains(c))
        });
        Ok(records.into_iter().map(|r| r.endpoint).collect())
    }

    async fn recipients(
        &self,
        event_type: &EventTypeName,
        channel: Option<&Channel>,
    ) -> Result<Vec<EndpointId>, StoreError> {
        Ok(self
            .lock()
            .endpoints
            .values()
            .filter(|r| !r.endpoint.disabled && r.endpoint.receives(event_type, channel))
            .map(|r| r.endpoint.id.clone())
            .collect())
    }

    async fn insert_message(
        &self,
        message: &Message,
        endpoints: &[EndpointId],
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner
            .messages
            .insert(message.id.to_string(), message.clone());
        for endpoint in endpoints {
            let delivery = Delivery {
                message_id: message.id.clone(),
                endpoint_id: endpoint.clone(),
                status: DeliveryStatus::Pending,
                attempts: 0,
                next_attempt_at: message.created_at,
                leased_until: None,
                trigger: AttemptTrigger::Scheduled,
            };
            inner.deliveries.insert(
                (message.id.to_string(), endpoint.to_string()),
                (delivery, None),
            );
        }
        Ok(())
    }

    async fn message(&self, id: &MessageId) -> Result<Option<Message>, StoreError> {
        Ok(self.lock().messages.get(id.as_str()).cloned())
    }

    async fn list_messages(
        &self,
        filter: &MessageFilter,
        page: &PageRequest,
    ) -> Result<Vec<Message>, StoreError> {
        Ok(page_of(&self.lock().messages, page, |m| {
            filter
                .event_type
                .as_ref()
                .is_none_or(|t| m.event_type == *t)
                && filter
                    .channel
                    .as_ref()
                    .is_none_or(|c| m.channel.as_ref() == Some(c))
        }))
    }

    async fn deliveries(&self, message: &MessageId) -> Result<Vec<Delivery>, StoreError> {
        let inner = self.lock();
        let start = (message.to_string(), String::new());
        Ok(inner
            .deliveries
            .range(start..)
            .take_while(|((m, _), _)| m == message.as_str())
            .map(|(_, (delivery, _))| delivery.clone())
            .collect())
    }

    async fn lease_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_for: Duration,
        limit: usize,
    ) -> Result<Vec<Lease>, StoreError> {
        let mut inner = self.lock();
        let mut due: Vec<(DateTime<Utc>, (String, String))> = inner
            .deliveries
            .iter()
            .filter(|(_, (d, _))| {
                d.status == DeliveryStatus::Pending
                    && d.next_attempt_at <= now
                    && d.leased_until.is_none_or(|until| until <= now)
                    && !inner.waits_for_earlier(d)
            })
            .map(|(key, (d, _))| (d.next_attempt_at, key.clone()))
            .collect();
        due.sort();
        due.truncate(limit);
        let until = after(now, lease_for);
        let mut leases = Vec::with_capacity(due.len());
        for (_, key) in due {
            if let Some((delivery, token)) = inner.deliveries.get_mut(&key) {
                let new_token = lease_token();
                delivery.leased_until = Some(until);
                *token = Some(new_token.clone());
                leases.push(Lease {
                    delivery: delivery.clone(),
                    token: new_token,
                });
            }
        }
        Ok(leases)
    }

    async fn finish_delivery(
        &self,
        lease: &Lease,
        update: &DeliveryUpdate,
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        if let Some(attempt) = &update.attempt {
            inner.record(attempt);
        }
        let key = (
            lease.delivery.message_id.to_string(),
            lease.delivery.endpoint_id.to_string(),
        );
        match inner.deliveries.get_mut(&key) {
            Some((delivery, token)) if token.as_deref() == Some(lease.token.as_str()) => {
                delivery.status = update.status;
                delivery.attempts = update.attempts;
                delivery.next_attempt_at = update.next_attempt_at;
                delivery.leased_until = None;
                if update.attempt.is_some() {
                    delivery.trigger = AttemptTrigger::Scheduled;
                }
                *token = None;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn list_attempts(
        &self,
        filter: &AttemptFilter,
        page: &PageRequest,
    ) -> Result<Vec<Attempt>, StoreError> {
        let inner = self.lock();
        // The cursor is an attempt id; the order is the order recorded.
        let range = match (&page.after, page.order) {
            (None, _) => (Bound::Unbounded, Bound::Unbounded),
            (Some(after), order) => match inner.attempt_positions.get(after) {
                None => return Ok(Vec::new()),
                Some(&at) if order == Order::Ascending => (Bound::Excluded(at), Bound::Unbounded),
                Some(&at) => (Bound::Unbounded, Bound::Excluded(at)),
            },
        };
        let matching = inner
            .attempts
            .range(range)
            .map(|(_, attempt)| attempt)
            .filter(|attempt| attempt_matches(filter, attempt));
        let take = page.limit.saturating_add(1);
        Ok(match page.order {
            Order::Ascending => matching.take(take).cloned().collect(),
            Order::Descending => matching.rev().take(take).cloned().collect(),
        })
    }

    async fn requeue_delivery(
        &self,
        message: &MessageId,
        endpoint: &EndpointId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.lock().requeue(message, endpoint, now);
        Ok(())
    }

    async fn recover_deliveries(
        &self,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let exhausted: Vec<MessageId> = inner
            .deliveries
            .values()
            .filter(|(d, _)| d.endpoint_id == *endpoint && d.status == DeliveryStatus::Exhausted)
            .filter(|(d, _)| {
                inner
                    .messages
                    .get(d.message_id.as_str())
                    .is_some_and(|m| m.created_at >= since)
            })
            .map(|(d, _)| d.message_id.clone())
            .collect();
        for message in &exhausted {
            inner.requeue(message, endpoint, now);
        }
        Ok(exhausted.len() as u64)
    }

    async fn record_health(
        &self,
        endpoint: &EndpointId,
        success: bool,
        now: DateTime<Utc>,
        disable_after: Duration,
    ) -> Result<HealthChange, StoreError> {
        let mut inner = self.lock();
        let key = endpoint.to_string();
        let Some(disabled) = inner.endpoints.get(&key).map(|r| r.endpoint.disabled) else {
            return Ok(HealthChange::Unchanged);
        };
        let mut health = Health {
            failing_since: inner.failing_since.get(&key).copied(),
            disabled,
        };
        let change = health.apply(success, now, disable_after);
        match health.failing_since {
            Some(since) => inner.failing_since.insert(key.clone(), since),
            None => inner.failing_since.remove(&key),
        };
        if let Some(record) = inner.endpoints.get_mut(&key)
            && health.disabled
            && !record.endpoint.disabled
        {
            record.endpoint.disabled = true;
            record.endpoint.updated_at = now;
        }
        Ok(change)
    }

    async fn purge_payloads(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let mut purged = 0;
        for message in inner.messages.values_mut() {
            if message.created_at < before && !message.expired {
                message.payload = String::new();
                message.expired = true;
                purged += 1;
            }
        }
        Ok(purged)
    }
}
