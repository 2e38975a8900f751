//! An in-memory [`Store`]: everything in maps behind one mutex, gone when dropped.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{
    AccessToken, AppLimits, AttemptCounts, AttemptFilter, EndpointFilter, Health, HealthChange,
    IdempotencyClaim, MessageFilter, RememberedResponse, Store, attempt_matches, bucket_of,
    lease_token,
};
use crate::error::StoreError;
use crate::id::{AppId, AttemptId, EndpointId, MessageId};
use crate::model::{
    AppUid, Application, Attempt, AttemptTrigger, Channel, Delivery, DeliveryStatus,
    DeliveryUpdate, Endpoint, EndpointRecord, EndpointUid, EventType, EventTypeName, Lease,
    Message, after,
};
use crate::page::{Order, PageRequest};

/// A [`Store`] in memory, for tests and for embedding where durability does not matter.
/// Cheap to create; lists are keyset-paginated over ordered maps.
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        let mut inner = Inner::default();
        let default = Application::default_app();
        inner.applications.insert(default.id.to_string(), default);
        Self {
            inner: Mutex::new(inner),
        }
    }
}

/// A delivery's key: (message id, endpoint id).
type DeliveryKey = (String, String);

#[derive(Debug, Default)]
struct Inner {
    event_types: BTreeMap<String, EventType>,
    applications: BTreeMap<String, Application>,
    /// Application ids by uid.
    app_uids: HashMap<String, String>,
    endpoints: BTreeMap<String, EndpointRecord>,
    /// Endpoint ids by (application id, uid).
    uids: HashMap<(String, String), String>,
    messages: BTreeMap<String, Message>,
    deliveries: BTreeMap<(String, String), (Delivery, Option<String>)>,
    /// Attempts in the order they were recorded, by position.
    attempts: BTreeMap<u64, Attempt>,
    /// The position of each attempt id.
    attempt_positions: HashMap<String, u64>,
    recorded: u64,
    failing_since: HashMap<String, DateTime<Utc>>,
    /// When each application was last served by a lease (a count of leases): applications
    /// never served, then those served longest ago, take their turns first.
    served: HashMap<String, u64>,
    leases: u64,
    /// The (application id, event id) of every message sent with an event id.
    event_ids: std::collections::HashSet<(String, String)>,
    /// Access tokens by hash.
    access_tokens: HashMap<String, AccessToken>,
    /// Idempotency entries: until when each holds, and its response once finished.
    idempotency: HashMap<String, (DateTime<Utc>, Option<RememberedResponse>)>,
}

impl Inner {
    /// The endpoint with this id, if it is `app`'s.
    fn endpoint_of(&self, app: &AppId, id: &str) -> Option<&EndpointRecord> {
        self.endpoints.get(id).filter(|r| r.endpoint.app == *app)
    }

    /// The message with this id, if it is `app`'s.
    fn message_of(&self, app: &AppId, id: &str) -> Option<&Message> {
        self.messages.get(id).filter(|m| m.app == *app)
    }

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

    async fn list_event_types(
        &self,
        page: &PageRequest,
        include_archived: bool,
    ) -> Result<Vec<EventType>, StoreError> {
        Ok(page_of(&self.lock().event_types, page, |t| {
            include_archived || !t.archived
        }))
    }

    async fn put_application(&self, application: &Application) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let id = application.id.to_string();
        if let Some(uid) = &application.uid
            && inner
                .app_uids
                .get(uid.as_str())
                .is_some_and(|owner| *owner != id)
        {
            return Err(StoreError::Conflict {
                what: format!("an application with uid `{uid}`"),
            });
        }
        if let Some(old_uid) = inner.applications.get(&id).and_then(|old| old.uid.clone()) {
            inner.app_uids.remove(old_uid.as_str());
        }
        if let Some(uid) = &application.uid {
            inner.app_uids.insert(uid.to_string(), id.clone());
        }
        inner.applications.insert(id, application.clone());
        Ok(())
    }

    async fn application(&self, id: &AppId) -> Result<Option<Application>, StoreError> {
        Ok(self.lock().applications.get(id.as_str()).cloned())
    }

    async fn application_by_uid(&self, uid: &AppUid) -> Result<Option<Application>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .app_uids
            .get(uid.as_str())
            .and_then(|id| inner.applications.get(id))
            .cloned())
    }

    async fn list_applications(&self, page: &PageRequest) -> Result<Vec<Application>, StoreError> {
        Ok(page_of(&self.lock().applications, page, |_| true))
    }

    async fn delete_application(&self, id: &AppId) -> Result<bool, StoreError> {
        if *id == AppId::default_app() {
            return Ok(false);
        }
        let mut inner = self.lock();
        let Some(application) = inner.applications.remove(id.as_str()) else {
            return Ok(false);
        };
        if let Some(uid) = application.uid {
            inner.app_uids.remove(uid.as_str());
        }
        let endpoints: Vec<String> = inner
            .endpoints
            .values()
            .filter(|r| r.endpoint.app == *id)
            .map(|r| r.endpoint.id.to_string())
            .collect();
        for endpoint in &endpoints {
            inner.endpoints.remove(endpoint);
            inner.failing_since.remove(endpoint);
        }
        inner.uids.retain(|(app, _), _| app != id.as_str());
        let messages: std::collections::HashSet<String> = inner
            .messages
            .values()
            .filter(|m| m.app == *id)
            .map(|m| m.id.to_string())
            .collect();
        inner.messages.retain(|key, _| !messages.contains(key));
        inner.event_ids.retain(|(of, _)| of != id.as_str());
        inner.access_tokens.retain(|_, token| token.app != *id);
        inner
            .deliveries
            .retain(|(message, _), _| !messages.contains(message));
        let gone: Vec<u64> = inner
            .attempts
            .iter()
            .filter(|(_, a)| messages.contains(a.message_id.as_str()))
            .map(|(at, _)| *at)
            .collect();
        for at in gone {
            if let Some(attempt) = inner.attempts.remove(&at) {
                inner.attempt_positions.remove(attempt.id.as_str());
            }
        }
        Ok(true)
    }

    async fn put_endpoint(&self, record: &EndpointRecord) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let id = record.endpoint.id.to_string();
        let app = record.endpoint.app.to_string();
        if !inner.applications.contains_key(&app) {
            return Err(StoreError::Corrupt {
                what: format!("endpoint {id}"),
                reason: format!("its application {app} does not exist"),
            });
        }
        if let Some(uid) = &record.endpoint.uid
            && inner
                .uids
                .get(&(app.clone(), uid.to_string()))
                .is_some_and(|owner| *owner != id)
        {
            return Err(StoreError::Conflict {
                what: format!("an endpoint with uid `{uid}`"),
            });
        }
        if let Some((old_app, Some(old_uid))) = inner
            .endpoints
            .get(&id)
            .map(|old| (old.endpoint.app.to_string(), old.endpoint.uid.clone()))
        {
            inner.uids.remove(&(old_app, old_uid.to_string()));
        }
        if let Some(uid) = &record.endpoint.uid {
            inner.uids.insert((app, uid.to_string()), id.clone());
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

    async fn endpoint(
        &self,
        app: &AppId,
        id: &EndpointId,
    ) -> Result<Option<EndpointRecord>, StoreError> {
        Ok(self.lock().endpoint_of(app, id.as_str()).cloned())
    }

    async fn endpoint_by_uid(
        &self,
        app: &AppId,
        uid: &EndpointUid,
    ) -> Result<Option<EndpointRecord>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .uids
            .get(&(app.to_string(), uid.to_string()))
            .and_then(|id| inner.endpoint_of(app, id))
            .cloned())
    }

    async fn delete_endpoint(&self, app: &AppId, id: &EndpointId) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        if inner.endpoint_of(app, id.as_str()).is_none() {
            return Ok(false);
        }
        let Some(record) = inner.endpoints.remove(id.as_str()) else {
            return Ok(false);
        };
        if let Some(uid) = record.endpoint.uid {
            inner.uids.remove(&(app.to_string(), uid.to_string()));
        }
        inner.failing_since.remove(id.as_str());
        inner.deliveries.retain(|(_, endpoint), (delivery, _)| {
            endpoint != id.as_str() || delivery.status != DeliveryStatus::Pending
        });
        Ok(true)
    }

    async fn list_endpoints(
        &self,
        app: &AppId,
        filter: &EndpointFilter,
        page: &PageRequest,
    ) -> Result<Vec<Endpoint>, StoreError> {
        let inner = self.lock();
        let records = page_of(&inner.endpoints, page, |record| {
            let endpoint = &record.endpoint;
            endpoint.app == *app
                && filter
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
        app: &AppId,
        event_type: &EventTypeName,
        channels: &[Channel],
    ) -> Result<Vec<EndpointId>, StoreError> {
        Ok(self
            .lock()
            .endpoints
            .values()
            .filter(|r| {
                r.endpoint.app == *app
                    && !r.endpoint.disabled
                    && r.endpoint.receives(event_type, channels)
            })
            .map(|r| r.endpoint.id.clone())
            .collect())
    }

    async fn insert_message(
        &self,
        message: &Message,
        endpoints: &[EndpointId],
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if !inner.applications.contains_key(message.app.as_str()) {
            return Err(StoreError::Corrupt {
                what: format!("message {}", message.id),
                reason: format!("its application {} does not exist", message.app),
            });
        }
        if let Some(event_id) = &message.event_id
            && !inner
                .event_ids
                .insert((message.app.to_string(), event_id.clone()))
        {
            return Err(StoreError::Conflict {
                what: format!("a message with event id `{event_id}`"),
            });
        }
        let mine: Vec<&EndpointId> = endpoints
            .iter()
            .filter(|e| inner.endpoint_of(&message.app, e.as_str()).is_some())
            .collect();
        let mut deliveries = Vec::with_capacity(mine.len());
        for endpoint in mine {
            let delivery = Delivery {
                message_id: message.id.clone(),
                endpoint_id: endpoint.clone(),
                status: DeliveryStatus::Pending,
                attempts: 0,
                next_attempt_at: message.created_at,
                leased_until: None,
                trigger: AttemptTrigger::Scheduled,
            };
            deliveries.push(((message.id.to_string(), endpoint.to_string()), delivery));
        }
        inner
            .messages
            .insert(message.id.to_string(), message.clone());
        for (key, delivery) in deliveries {
            inner.deliveries.insert(key, (delivery, None));
        }
        Ok(())
    }

    async fn message(&self, app: &AppId, id: &MessageId) -> Result<Option<Message>, StoreError> {
        Ok(self.lock().message_of(app, id.as_str()).cloned())
    }

    async fn list_messages(
        &self,
        app: &AppId,
        filter: &MessageFilter,
        page: &PageRequest,
    ) -> Result<Vec<Message>, StoreError> {
        Ok(page_of(&self.lock().messages, page, |m| {
            m.app == *app
                && (filter.event_types.is_empty() || filter.event_types.contains(&m.event_type))
                && filter.admits_time(m.created_at)
                && filter
                    .channel
                    .as_ref()
                    .is_none_or(|c| m.channels.contains(c))
        }))
    }

    async fn deliveries(
        &self,
        app: &AppId,
        message: &MessageId,
    ) -> Result<Vec<Delivery>, StoreError> {
        let inner = self.lock();
        if inner.message_of(app, message.as_str()).is_none() {
            return Ok(Vec::new());
        }
        let start = (message.to_string(), String::new());
        Ok(inner
            .deliveries
            .range(start..)
            .take_while(|((m, _), _)| m == message.as_str())
            .map(|(_, (delivery, _))| delivery.clone())
            .collect())
    }

    async fn endpoints(&self, ids: &[EndpointId]) -> Result<Vec<EndpointRecord>, StoreError> {
        let inner = self.lock();
        Ok(ids
            .iter()
            .filter_map(|id| inner.endpoints.get(id.as_str()).cloned())
            .collect())
    }

    async fn messages(&self, ids: &[MessageId]) -> Result<Vec<Message>, StoreError> {
        let inner = self.lock();
        Ok(ids
            .iter()
            .filter_map(|id| inner.messages.get(id.as_str()).cloned())
            .collect())
    }

    async fn lease_deliveries_within(
        &self,
        now: DateTime<Utc>,
        lease_for: Duration,
        limit: usize,
        limits: &AppLimits,
    ) -> Result<Vec<Lease>, StoreError> {
        let mut inner = self.lock();
        // What each application has available, earliest due first.
        let mut by_app: BTreeMap<String, Vec<(DateTime<Utc>, DeliveryKey)>> = BTreeMap::new();
        let mut rooms: HashMap<String, usize> = HashMap::new();
        for (key, (d, _)) in &inner.deliveries {
            let available = d.status == DeliveryStatus::Pending
                && d.next_attempt_at <= now
                && d.leased_until.is_none_or(|until| until <= now)
                && !inner.waits_for_earlier(d);
            let Some(app) = inner.messages.get(d.message_id.as_str()).map(|m| &m.app) else {
                continue;
            };
            let room = limits.room(app);
            if available && room > 0 {
                rooms.entry(app.to_string()).or_insert(room);
                by_app
                    .entry(app.to_string())
                    .or_default()
                    .push((d.next_attempt_at, key.clone()));
            }
        }
        for due in by_app.values_mut() {
            due.sort();
            due.reverse(); // taken from the end
        }
        // Turns: longest waiting application first; each an equal share of what is left.
        let mut active: Vec<String> = by_app.keys().cloned().collect();
        active.sort_by_key(|app| {
            (
                inner.served.get(app).copied().unwrap_or(0),
                by_app[app].last().map(|(due, _)| *due),
            )
        });
        let wanted = limit.max(1);
        let mut chosen = Vec::with_capacity(wanted);
        inner.leases += 1;
        let turn = inner.leases;
        while !active.is_empty() && chosen.len() < wanted {
            let share = (wanted - chosen.len()).div_ceil(active.len()).max(1);
            let mut more = Vec::with_capacity(active.len());
            for app in active {
                let room = wanted.saturating_sub(chosen.len());
                if room == 0 {
                    continue;
                }
                let mut due = by_app.get_mut(&app).map(std::mem::take).unwrap_or_default();
                let app_room = rooms.entry(app.clone()).or_default();
                let take = share.min(room).min(*app_room);
                for _ in 0..take {
                    match due.pop() {
                        Some((_, key)) => {
                            chosen.push(key);
                            *app_room -= 1;
                        }
                        None => break,
                    }
                }
                inner.served.insert(app.clone(), turn);
                if !due.is_empty() && *app_room > 0 {
                    by_app.insert(app.clone(), due);
                    more.push(app);
                }
            }
            active = more;
        }
        let until = after(now, lease_for);
        let mut leases = Vec::with_capacity(chosen.len());
        for key in chosen {
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
        leases.sort_by(|a, b| {
            (a.delivery.next_attempt_at, &a.delivery.message_id)
                .cmp(&(b.delivery.next_attempt_at, &b.delivery.message_id))
        });
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
        app: &AppId,
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
            .filter(|attempt| {
                inner.message_of(app, attempt.message_id.as_str()).is_some()
                    && attempt_matches(filter, attempt)
            });
        let take = page.limit.saturating_add(1);
        Ok(match page.order {
            Order::Ascending => matching.take(take).cloned().collect(),
            Order::Descending => matching.rev().take(take).cloned().collect(),
        })
    }

    async fn attempt(&self, app: &AppId, id: &AttemptId) -> Result<Option<Attempt>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .attempt_positions
            .get(id.as_str())
            .and_then(|at| inner.attempts.get(at))
            .filter(|a| inner.message_of(app, a.message_id.as_str()).is_some())
            .cloned())
    }

    async fn attempt_counts(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<AttemptCounts, StoreError> {
        let inner = self.lock();
        let mut counts = AttemptCounts::default();
        if inner.endpoint_of(app, endpoint.as_str()).is_none() {
            return Ok(counts);
        }
        for attempt in inner
            .attempts
            .values()
            .filter(|a| a.endpoint_id == *endpoint && a.timestamp >= since && a.timestamp < until)
        {
            counts.add(attempt.status, 1);
        }
        Ok(counts)
    }

    async fn attempt_histogram(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        buckets: u32,
    ) -> Result<Vec<AttemptCounts>, StoreError> {
        let inner = self.lock();
        let spans = if until > since { buckets as usize } else { 0 };
        let mut counts = vec![AttemptCounts::default(); spans];
        if inner.endpoint_of(app, endpoint.as_str()).is_none() {
            return Ok(counts);
        }
        let (from, to) = (since.timestamp_micros(), until.timestamp_micros());
        for attempt in inner
            .attempts
            .values()
            .filter(|a| a.endpoint_id == *endpoint)
        {
            let at = attempt.timestamp.timestamp_micros();
            if let Some(slot) = bucket_of(at, from, to, buckets).and_then(|i| counts.get_mut(i)) {
                slot.add(attempt.status, 1);
            }
        }
        Ok(counts)
    }

    async fn failing_since(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let inner = self.lock();
        if inner.endpoint_of(app, endpoint.as_str()).is_none() {
            return Ok(None);
        }
        Ok(inner.failing_since.get(endpoint.as_str()).copied())
    }

    async fn expunge_payload(&self, app: &AppId, message: &MessageId) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        match inner.messages.get_mut(message.as_str()) {
            Some(message) if message.app == *app => {
                message.payload = String::new();
                message.expired = true;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn expunge_response(&self, app: &AppId, attempt: &AttemptId) -> Result<bool, StoreError> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(at) = inner.attempt_positions.get(attempt.as_str()).copied() else {
            return Ok(false);
        };
        let Some(found) = inner.attempts.get_mut(&at) else {
            return Ok(false);
        };
        let owned = inner
            .messages
            .get(found.message_id.as_str())
            .is_some_and(|m| m.app == *app);
        if owned {
            found.response = String::new();
        }
        Ok(owned)
    }

    async fn requeue_delivery(
        &self,
        app: &AppId,
        message: &MessageId,
        endpoint: &EndpointId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if inner.message_of(app, message.as_str()).is_some()
            && inner.endpoint_of(app, endpoint.as_str()).is_some()
        {
            inner.requeue(message, endpoint, now);
        }
        Ok(())
    }

    async fn recover_deliveries(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        if inner.endpoint_of(app, endpoint.as_str()).is_none() {
            return Ok(0);
        }
        let exhausted: Vec<MessageId> = inner
            .deliveries
            .values()
            .filter(|(d, _)| d.endpoint_id == *endpoint && d.status == DeliveryStatus::Exhausted)
            .filter(|(d, _)| {
                inner.messages.get(d.message_id.as_str()).is_some_and(|m| {
                    m.created_at >= since && until.is_none_or(|until| m.created_at < until)
                })
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

    async fn idempotency_begin(
        &self,
        key: &str,
        now: DateTime<Utc>,
        hold_until: DateTime<Utc>,
    ) -> Result<IdempotencyClaim, StoreError> {
        let mut inner = self.lock();
        match inner.idempotency.get(key) {
            Some((until, response)) if *until > now => Ok(match response {
                Some(response) => IdempotencyClaim::Done(response.clone()),
                None => IdempotencyClaim::Running,
            }),
            _ => {
                inner.idempotency.insert(key.to_owned(), (hold_until, None));
                Ok(IdempotencyClaim::Claimed)
            }
        }
    }

    async fn idempotency_finish(
        &self,
        key: &str,
        response: &RememberedResponse,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.lock()
            .idempotency
            .insert(key.to_owned(), (expires_at, Some(response.clone())));
        Ok(())
    }

    async fn idempotency_release(&self, key: &str) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if inner
            .idempotency
            .get(key)
            .is_some_and(|(_, response)| response.is_none())
        {
            inner.idempotency.remove(key);
        }
        Ok(())
    }

    async fn purge_idempotency(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let before = inner.idempotency.len();
        inner.idempotency.retain(|_, (until, _)| *until > now);
        Ok((before - inner.idempotency.len()) as u64)
    }

    async fn put_access_token(&self, token: &AccessToken) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        if !inner.applications.contains_key(token.app.as_str()) {
            return Ok(false);
        }
        inner
            .access_tokens
            .insert(token.hash.clone(), token.clone());
        Ok(true)
    }

    async fn access_token(&self, hash: &str) -> Result<Option<AccessToken>, StoreError> {
        Ok(self.lock().access_tokens.get(hash).cloned())
    }

    async fn delete_access_token(&self, hash: &str) -> Result<bool, StoreError> {
        Ok(self.lock().access_tokens.remove(hash).is_some())
    }

    async fn purge_access_tokens(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let before = inner.access_tokens.len();
        inner
            .access_tokens
            .retain(|_, token| token.expires_at > now);
        Ok((before - inner.access_tokens.len()) as u64)
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
