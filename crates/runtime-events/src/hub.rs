//! The hub: subscriptions indexed by source, bounded queues, and waiters woken on publish.
//!
//! Publishing evaluates only the filters that can match: subscriptions are indexed by source,
//! and within a source by the `event_type` conditions extracted from their filters (exact
//! values in a hash map, prefixes looked up by each prefix of the event's type), so a source
//! with 10,000 `event_type == '…'` subscriptions evaluates one filter per event. The event's
//! variables are bound once per publish and shared by every filter evaluated.
//!
//! Every publish takes a number from one counter under its source's ordering lock before it
//! is queued, so each queue is in publish order and [`Hub::next_event`] over several
//! subscriptions returns the event published first, whichever subscription holds it.

use crate::error::Error;
use crate::event::Event;
use crate::filter::{self, Filter, FilterLimits, TypeKey, Uses};
use cel::Context;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// A subscription's id: a UUID, as AutoKitteh's `subscribe` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SubscriptionId(uuid::Uuid);

impl SubscriptionId {
    /// The UUID.
    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }
}

impl fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for SubscriptionId {
    type Err = uuid::Error;

    /// Parses the UUID text `Display` writes.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(SubscriptionId)
    }
}

/// What a full subscription queue does with one more matching event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Drop the oldest queued event to make room, counting it in
    /// [`SubscriptionStats::dropped`]. The publisher never waits and never fails.
    #[default]
    DropOldest,
    /// Refuse the whole publish with [`Error::QueueFull`]: no subscription receives the event,
    /// so the publisher can retry later without duplicating it anywhere.
    Refuse,
}

/// How many expiry periods an expired subscription's id is remembered for.
const TOMBSTONE_PERIODS: u64 = 6;

/// Settings of a [`Hub`]. Every limit has a default; all of them together bound the hub's
/// memory: at most `max_subscriptions` subscriptions, holding at most `total_bytes` of
/// queued events between them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubConfig {
    /// How many events a subscription queues at most, unless its [`SubscribeOptions`] say
    /// otherwise (default 1,024).
    pub queue_limit: usize,
    /// How many bytes of events a subscription queues at most, unless its
    /// [`SubscribeOptions`] say otherwise (default 16 MiB). An event's size is the length of
    /// its JSON (data, attributes, id, source and type).
    pub queue_bytes: usize,
    /// How many bytes of events all subscriptions queue together at most (default 256 MiB).
    /// An event queued for several subscriptions counts for each.
    pub total_bytes: usize,
    /// The most subscriptions the hub holds (default 10,000); more are
    /// [`Error::TooManySubscriptions`].
    pub max_subscriptions: usize,
    /// A subscription nobody asked for events (no `next_event` on it, none waiting) for this
    /// long is removed with what it queued (default 10 minutes); asking for it during the
    /// next six such periods is [`Error::Expired`], after that
    /// [`Error::UnknownSubscription`]. Checked as the hub is used, at most once a second: no
    /// timer per subscription.
    pub idle_expiry: Duration,
    /// The default policy when a queue is full (default [`WhenFull::DropOldest`]).
    pub when_full: WhenFull,
    /// Bounds on filters.
    pub filter_limits: FilterLimits,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            queue_limit: 1024,
            queue_bytes: 16 << 20,
            total_bytes: 256 << 20,
            max_subscriptions: 10_000,
            idle_expiry: Duration::from_secs(600),
            when_full: WhenFull::DropOldest,
            filter_limits: FilterLimits::default(),
        }
    }
}

/// Per-subscription settings overriding the [`HubConfig`] defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscribeOptions {
    /// The queue limit (at least 1).
    pub queue_limit: Option<usize>,
    /// The queue's byte limit.
    pub queue_bytes: Option<usize>,
    /// The policy when the queue is full.
    pub when_full: Option<WhenFull>,
}

/// Counters of one subscription, read with [`Hub::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SubscriptionStats {
    /// Events queued now.
    pub queued: usize,
    /// Bytes of events queued now.
    pub queued_bytes: usize,
    /// Events the filter matched and the queue accepted.
    pub matched: u64,
    /// Events handed out by `next_event`.
    pub delivered: u64,
    /// Events dropped from a full queue ([`WhenFull::DropOldest`]).
    pub dropped: u64,
    /// Publishes refused because this queue was full ([`WhenFull::Refuse`]).
    pub refused: u64,
    /// Events on which the filter failed to evaluate (counted as no match).
    pub eval_errors: u64,
}

/// What a successful [`Hub::publish`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Published {
    /// Subscriptions whose filter was evaluated (the others were ruled out by the index).
    pub evaluated: usize,
    /// Subscriptions the event was queued for.
    pub queued: usize,
}

#[derive(Default)]
struct Counters {
    matched: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
    refused: AtomicU64,
    eval_errors: AtomicU64,
}

struct Sub {
    id: SubscriptionId,
    source: String,
    filter: Filter,
    limit: usize,
    byte_limit: usize,
    when_full: WhenFull,
    /// When events were last asked for (or the subscription made), in milliseconds since the
    /// hub's start.
    polled: AtomicU64,
    state: Mutex<SubState>,
    counters: Counters,
}

#[derive(Default)]
struct SubState {
    /// Publish number, event, its size in bytes.
    queue: VecDeque<(u64, Arc<Event>, usize)>,
    bytes: usize,
    closed: bool,
    /// Set with `closed` when the subscription expired rather than was unsubscribed.
    expired: bool,
    waiters: Vec<Arc<Notify>>,
}

impl Sub {
    fn state(&self) -> MutexGuard<'_, SubState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The subscriptions of one source, indexed by what their filters require of `event_type`.
#[derive(Default)]
struct Index {
    exact: HashMap<String, Vec<Arc<Sub>>>,
    prefix: HashMap<String, Vec<Arc<Sub>>>,
    other: Vec<Arc<Sub>>,
    multi_key: usize,
    len: usize,
}

impl Index {
    fn insert(&mut self, sub: &Arc<Sub>) {
        match sub.filter.keys() {
            None => self.other.push(Arc::clone(sub)),
            Some(keys) => {
                if keys.len() > 1 {
                    self.multi_key += 1;
                }
                for key in keys {
                    let bucket = match key {
                        TypeKey::Exact(s) => self.exact.entry(s.clone()).or_default(),
                        TypeKey::Prefix(s) => self.prefix.entry(s.clone()).or_default(),
                    };
                    if !bucket.iter().any(|other| Arc::ptr_eq(other, sub)) {
                        bucket.push(Arc::clone(sub));
                    }
                }
            }
        }
        self.len += 1;
    }

    fn remove(&mut self, sub: &Arc<Sub>) {
        let keep = |other: &Arc<Sub>| !Arc::ptr_eq(other, sub);
        match sub.filter.keys() {
            None => self.other.retain(keep),
            Some(keys) => {
                if keys.len() > 1 {
                    self.multi_key -= 1;
                }
                for key in keys {
                    let (map, s) = match key {
                        TypeKey::Exact(s) => (&mut self.exact, s),
                        TypeKey::Prefix(s) => (&mut self.prefix, s),
                    };
                    if let Some(bucket) = map.get_mut(s) {
                        bucket.retain(keep);
                        if bucket.is_empty() {
                            map.remove(s);
                        }
                    }
                }
            }
        }
        self.len -= 1;
    }

    /// The subscriptions whose filter may match an event of `event_type`, each once.
    fn candidates<'a>(&'a self, event_type: &str, out: &mut Vec<&'a Arc<Sub>>) {
        if let Some(bucket) = self.exact.get(event_type) {
            out.extend(bucket);
        }
        if !self.prefix.is_empty() {
            let ends = event_type
                .char_indices()
                .map(|(i, _)| i)
                .chain(std::iter::once(event_type.len()));
            for end in ends {
                if let Some(bucket) = self.prefix.get(&event_type[..end]) {
                    out.extend(bucket);
                }
            }
        }
        if self.multi_key > 0 {
            out.sort_unstable_by_key(|sub| Arc::as_ptr(sub));
            out.dedup_by_key(|sub| Arc::as_ptr(sub));
        }
        out.extend(&self.other);
    }
}

struct Source {
    index: RwLock<Index>,
    /// Held while a publish numbers its event and queues it, so queues stay in publish order.
    order: Mutex<()>,
}

struct Inner {
    config: HubConfig,
    seq: AtomicU64,
    evaluations: AtomicU64,
    sources: RwLock<HashMap<String, Arc<Source>>>,
    subs: RwLock<HashMap<SubscriptionId, Arc<Sub>>>,
    /// Bytes queued across every subscription.
    queued_bytes: AtomicUsize,
    /// The hub's clock origin (see [`Sub::polled`]).
    started: Instant,
    /// When the last expiry sweep ran (milliseconds since `started`).
    swept: AtomicU64,
    /// Subscriptions that expired, and when (milliseconds since `started`): asked for within
    /// an expiry period, they answer [`Error::Expired`].
    expired: Mutex<HashMap<SubscriptionId, u64>>,
}

/// Subscriptions, publishing and waiting: the runtime-events API.
///
/// Cloning a hub is cheap and shares it.
///
/// ```
/// use std::time::Duration;
/// use switchyard_runtime_events::{Event, Hub};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let hub = Hub::new();
/// let gets = hub.subscribe("webhook", "data.method == 'GET' && data.url.path.endsWith('/meow')")?;
///
/// hub.publish(Event::new("webhook", "request", serde_json::json!({"method": "POST", "url": {"path": "/meow"}})))?;
/// hub.publish(Event::new("webhook", "request", serde_json::json!({"method": "GET", "url": {"path": "/meow"}})))?;
///
/// let event = hub.next_event(&[gets], Some(Duration::from_secs(1))).await?.expect("an event");
/// assert_eq!(event.data["method"], "GET");
/// // Nothing else matched: polling with a zero timeout returns at once.
/// assert!(hub.next_event(&[gets], Some(Duration::ZERO)).await?.is_none());
/// hub.unsubscribe(gets)?;
/// # Ok::<(), switchyard_runtime_events::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("config", &self.inner.config)
            .field("subscriptions", &self.read_subs().len())
            .finish_non_exhaustive()
    }
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

impl Hub {
    /// A hub with the default [`HubConfig`].
    pub fn new() -> Hub {
        Hub::with_config(HubConfig::default())
    }

    /// A hub with `config`.
    pub fn with_config(config: HubConfig) -> Hub {
        Hub {
            inner: Arc::new(Inner {
                config,
                seq: AtomicU64::new(0),
                evaluations: AtomicU64::new(0),
                sources: RwLock::default(),
                subs: RwLock::default(),
                queued_bytes: AtomicUsize::new(0),
                started: Instant::now(),
                swept: AtomicU64::new(0),
                expired: Mutex::default(),
            }),
        }
    }

    fn read_subs(&self) -> std::sync::RwLockReadGuard<'_, HashMap<SubscriptionId, Arc<Sub>>> {
        self.inner
            .subs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Subscribes to `source` with a CEL `filter` (empty matches everything), using the hub's
    /// default queue settings. Events published to `source` from now on are queued for the
    /// subscription when the filter matches; earlier ones are not.
    ///
    /// # Errors
    ///
    /// [`Error::Filter`] when the filter is rejected (see [`Filter`]).
    pub fn subscribe(&self, source: &str, filter: &str) -> Result<SubscriptionId, Error> {
        self.subscribe_with(source, filter, SubscribeOptions::default())
    }

    /// Subscribes with per-subscription queue settings.
    ///
    /// # Errors
    ///
    /// As [`Hub::subscribe`].
    pub fn subscribe_with(
        &self,
        source: &str,
        filter: &str,
        options: SubscribeOptions,
    ) -> Result<SubscriptionId, Error> {
        self.sweep();
        let filter = Filter::compile_with(filter, &self.inner.config.filter_limits)?;
        let id = SubscriptionId(uuid::Uuid::new_v4());
        let sub = Arc::new(Sub {
            id,
            source: source.to_owned(),
            filter,
            limit: options
                .queue_limit
                .unwrap_or(self.inner.config.queue_limit)
                .max(1),
            byte_limit: options.queue_bytes.unwrap_or(self.inner.config.queue_bytes),
            when_full: options.when_full.unwrap_or(self.inner.config.when_full),
            polled: AtomicU64::new(self.now_ms()),
            state: Mutex::default(),
            counters: Counters::default(),
        });
        let mut sources = self
            .inner
            .sources
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // Counted under the sources lock, which every subscribe and unsubscribe takes.
        let limit = self.inner.config.max_subscriptions;
        if self.read_subs().len() >= limit {
            return Err(Error::TooManySubscriptions { limit });
        }
        let entry = sources.entry(source.to_owned()).or_insert_with(|| {
            Arc::new(Source {
                index: RwLock::default(),
                order: Mutex::new(()),
            })
        });
        entry
            .index
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(&sub);
        self.inner
            .subs
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, sub);
        drop(sources);
        tracing::debug!(%id, source, "subscribed");
        Ok(id)
    }

    /// Ends a subscription: nothing more is queued for it, what was queued is discarded, and
    /// every `next_event` waiting on it returns [`Error::Unsubscribed`].
    ///
    /// # Errors
    ///
    /// [`Error::UnknownSubscription`] when there is no such subscription (any more).
    pub fn unsubscribe(&self, id: SubscriptionId) -> Result<(), Error> {
        if !self.remove(id, false) {
            return Err(self.missing(id));
        }
        tracing::debug!(%id, "unsubscribed");
        Ok(())
    }

    /// Removes subscription `id` (unsubscribed, or `expired`): its queue is discarded and
    /// its waiters woken. Whether it existed.
    fn remove(&self, id: SubscriptionId, expired: bool) -> bool {
        let mut sources = self
            .inner
            .sources
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(sub) = self
            .inner
            .subs
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id)
        else {
            return false;
        };
        if let Some(source) = sources.get(&sub.source) {
            let mut index = source.index.write().unwrap_or_else(PoisonError::into_inner);
            index.remove(&sub);
            if index.len == 0 {
                drop(index);
                sources.remove(&sub.source);
            }
        }
        drop(sources);
        let mut state = sub.state();
        state.closed = true;
        state.expired = expired;
        state.queue.clear();
        self.release(std::mem::take(&mut state.bytes));
        for waiter in state.waiters.drain(..) {
            waiter.notify_one();
        }
        true
    }

    /// The error for an id that is not a subscription: expired recently, or unknown.
    fn missing(&self, id: SubscriptionId) -> Error {
        let expired = self
            .inner
            .expired
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&id);
        if expired {
            Error::Expired(id)
        } else {
            Error::UnknownSubscription(id)
        }
    }

    fn release(&self, bytes: usize) {
        self.inner.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.inner.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Removes the subscriptions nobody has asked for events for an expiry period, and
    /// forgets the ids of those that expired more than a period ago. Runs at most once a
    /// second, from the hub's own calls: cost grows with use, not with the number of
    /// subscriptions left alone.
    fn sweep(&self) {
        let now = self.now_ms();
        let last = self.inner.swept.load(Ordering::Relaxed);
        if now < last.saturating_add(1000)
            || self
                .inner
                .swept
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let period = u64::try_from(self.inner.config.idle_expiry.as_millis()).unwrap_or(u64::MAX);
        let stale: Vec<SubscriptionId> = self
            .read_subs()
            .values()
            .filter(|sub| {
                now.saturating_sub(sub.polled.load(Ordering::Relaxed)) >= period
                    && sub.state().waiters.is_empty()
            })
            .map(|sub| sub.id)
            .collect();
        let mut expired = self
            .inner
            .expired
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        expired.retain(|_, at| now.saturating_sub(*at) < period.saturating_mul(TOMBSTONE_PERIODS));
        drop(expired);
        for id in stale {
            if self.remove(id, true) {
                tracing::info!(%id, "subscription expired: nobody polled it");
                self.inner
                    .expired
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(id, now);
            }
        }
    }

    /// Publishes `event` to its source: every subscription whose filter matches queues it.
    /// Never waits for a consumer.
    ///
    /// # Errors
    ///
    /// [`Error::QueueFull`] when a matching subscription with [`WhenFull::Refuse`] is full;
    /// then no subscription received the event.
    pub fn publish(&self, event: Event) -> Result<Published, Error> {
        self.sweep();
        let source = {
            let sources = self
                .inner
                .sources
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            match sources.get(&event.source) {
                Some(source) => Arc::clone(source),
                None => return Ok(Published::default()),
            }
        };
        let event = Arc::new(event);
        let index = source.index.read().unwrap_or_else(PoisonError::into_inner);
        let mut candidates = Vec::new();
        index.candidates(&event.event_type, &mut candidates);
        if candidates.is_empty() {
            return Ok(Published::default());
        }
        let evaluated = candidates.len();
        self.inner
            .evaluations
            .fetch_add(evaluated as u64, Ordering::Relaxed);
        // The direct evaluator answers most filters from the JSON in place; the CEL context
        // is built (once, shared) only for the filters it leaves to the interpreter.
        let mut context: Option<Context<'_, '_>> = None;
        let uses = candidates
            .iter()
            .fold(Uses::default(), |uses, sub| uses | sub.filter.uses());
        candidates.retain(|sub| {
            if let Some(answer) = sub.filter.evaluate_fast(&event) {
                return answer;
            }
            let context = context.get_or_insert_with(|| {
                let mut context = Context::with_env(Arc::clone(filter::env()));
                filter::bind_event(&mut context, &event, uses);
                context
            });
            match sub.filter.evaluate_in(context) {
                Ok(matched) => matched,
                Err(error) => {
                    sub.counters.eval_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        subscription = %sub.id,
                        event = %event.id,
                        event_type = %event.event_type,
                        %error,
                        "filter failed on an event; counted as no match"
                    );
                    false
                }
            }
        });
        drop(context);

        if candidates.is_empty() {
            return Ok(Published {
                evaluated,
                queued: 0,
            });
        }
        let size = event_size(&event);
        let total_limit = self.inner.config.total_bytes;
        let too_many = |state: &SubState, sub: &Sub| {
            state.queue.len() >= sub.limit
                || state.bytes + size > sub.byte_limit
                || self.inner.queued_bytes.load(Ordering::Acquire) + size > total_limit
        };
        let _order = source.order.lock().unwrap_or_else(PoisonError::into_inner);
        for sub in candidates
            .iter()
            .filter(|sub| sub.when_full == WhenFull::Refuse)
        {
            let state = sub.state();
            if !state.closed && too_many(&state, sub) {
                sub.counters.refused.fetch_add(1, Ordering::Relaxed);
                return Err(Error::QueueFull {
                    subscription: sub.id,
                    limit: sub.limit,
                });
            }
        }
        let seq = self.inner.seq.fetch_add(1, Ordering::Relaxed);
        let mut queued = 0;
        for sub in &candidates {
            let mut state = sub.state();
            if state.closed {
                continue;
            }
            // Room is made from the subscription's own oldest events; an event that does not
            // fit even then (larger than the byte limit, or the hub is full of others'
            // events) is dropped for this subscription.
            while too_many(&state, sub) {
                let Some((_, _, dropped)) = state.queue.pop_front() else {
                    break;
                };
                state.bytes -= dropped;
                self.release(dropped);
                sub.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
            if too_many(&state, sub) {
                sub.counters.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            state.queue.push_back((seq, Arc::clone(&event), size));
            state.bytes += size;
            self.inner.queued_bytes.fetch_add(size, Ordering::AcqRel);
            sub.counters.matched.fetch_add(1, Ordering::Relaxed);
            queued += 1;
            for waiter in &state.waiters {
                waiter.notify_one();
            }
        }
        Ok(Published { evaluated, queued })
    }

    /// The oldest queued event (by publish order) of any of `ids`, waiting for one when none
    /// is queued.
    ///
    /// `timeout`: `None` waits until an event arrives or a subscription is unsubscribed;
    /// `Some(Duration::ZERO)` polls without waiting; otherwise `Ok(None)` after that long.
    ///
    /// Cancel-safe: an event is taken from its queue only in the same step that returns it,
    /// so dropping the future loses nothing.
    ///
    /// # Errors
    ///
    /// [`Error::NoSubscriptions`] for an empty `ids`; [`Error::UnknownSubscription`] for an id
    /// that does not exist; [`Error::Unsubscribed`] when one of them is unsubscribed while
    /// waiting.
    pub async fn next_event(
        &self,
        ids: &[SubscriptionId],
        timeout: Option<Duration>,
    ) -> Result<Option<Event>, Error> {
        let deadline = timeout.map(|t| Instant::now() + t);
        self.sweep();
        let subs = self.lookup(ids)?;
        let now = self.now_ms();
        for sub in &subs {
            sub.polled.store(now, Ordering::Relaxed);
        }
        let waiter = Registration::new(&subs);
        loop {
            if let Some((event, size)) = take_oldest(&subs)? {
                self.release(size);
                return Ok(Some(event));
            }
            match deadline {
                None => waiter.notify.notified().await,
                Some(deadline) => {
                    if Instant::now() >= deadline {
                        return Ok(None);
                    }
                    // On timeout, loop once more: an event may have arrived just then.
                    let _ = tokio::time::timeout_at(deadline, waiter.notify.notified()).await;
                }
            }
        }
    }

    /// [`Hub::next_event`] for synchronous callers: blocks the calling thread.
    ///
    /// # Errors
    ///
    /// As [`Hub::next_event`], and [`Error::BlockingInAsync`] when called on a thread that is
    /// running an async runtime (use `next_event(..).await` there).
    pub fn next_event_blocking(
        &self,
        ids: &[SubscriptionId],
        timeout: Option<Duration>,
    ) -> Result<Option<Event>, Error> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::BlockingInAsync);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| Error::Runtime(e.to_string()))?;
        runtime.block_on(self.next_event(ids, timeout))
    }

    /// The counters of subscription `id`.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownSubscription`] when there is no such subscription.
    pub fn stats(&self, id: SubscriptionId) -> Result<SubscriptionStats, Error> {
        let sub = self
            .read_subs()
            .get(&id)
            .cloned()
            .ok_or_else(|| self.missing(id))?;
        let (queued, queued_bytes) = {
            let state = sub.state();
            (state.queue.len(), state.bytes)
        };
        let c = &sub.counters;
        Ok(SubscriptionStats {
            queued,
            queued_bytes,
            matched: c.matched.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            eval_errors: c.eval_errors.load(Ordering::Relaxed),
        })
    }

    /// The source and filter of subscription `id`, if it exists.
    pub fn subscription(&self, id: SubscriptionId) -> Option<(String, String)> {
        self.read_subs()
            .get(&id)
            .map(|sub| (sub.source.clone(), sub.filter.source().to_owned()))
    }

    /// How many bytes of events all subscriptions hold queued now (see
    /// [`HubConfig::total_bytes`]).
    pub fn queued_bytes(&self) -> usize {
        self.inner.queued_bytes.load(Ordering::Acquire)
    }

    /// How many subscriptions exist.
    pub fn len(&self) -> usize {
        self.read_subs().len()
    }

    /// Whether there are no subscriptions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many filter evaluations all publishes have run so far (the index's effect is
    /// visible here: events ruled out by it cost none).
    pub fn evaluations(&self) -> u64 {
        self.inner.evaluations.load(Ordering::Relaxed)
    }

    /// The subscriptions for `ids`, sorted by id without duplicates (the order queues are
    /// locked in, so concurrent waiters never deadlock).
    fn lookup(&self, ids: &[SubscriptionId]) -> Result<Vec<Arc<Sub>>, Error> {
        if ids.is_empty() {
            return Err(Error::NoSubscriptions);
        }
        let subs = self.read_subs();
        let mut found = ids
            .iter()
            .map(|id| subs.get(id).cloned().ok_or_else(|| self.missing(*id)))
            .collect::<Result<Vec<_>, _>>()?;
        found.sort_unstable_by_key(|sub| sub.id);
        found.dedup_by_key(|sub| sub.id);
        Ok(found)
    }
}

/// Takes the event published first among the subscriptions' queues, with its size.
fn take_oldest(subs: &[Arc<Sub>]) -> Result<Option<(Event, usize)>, Error> {
    let mut states: Vec<MutexGuard<'_, SubState>> = Vec::with_capacity(subs.len());
    for sub in subs {
        let state = sub.state();
        if state.closed {
            return Err(if state.expired {
                Error::Expired(sub.id)
            } else {
                Error::Unsubscribed(sub.id)
            });
        }
        states.push(state);
    }
    let oldest = states
        .iter()
        .enumerate()
        .filter_map(|(i, state)| state.queue.front().map(|(seq, _, _)| (*seq, i)))
        .min();
    let Some((_, i)) = oldest else {
        return Ok(None);
    };
    let Some((_, event, size)) = states[i].queue.pop_front() else {
        return Ok(None);
    };
    states[i].bytes -= size;
    subs[i].counters.delivered.fetch_add(1, Ordering::Relaxed);
    drop(states);
    Ok(Some((Arc::unwrap_or_clone(event), size)))
}

/// An event's size for the byte limits: the length of its JSON, closely enough (strings
/// counted without escapes, numbers as 8 bytes), plus a fixed overhead for the record.
fn event_size(event: &Event) -> usize {
    fn json(value: &serde_json::Value) -> usize {
        use serde_json::Value;
        match value {
            Value::Null | Value::Bool(_) => 5,
            Value::Number(_) => 8,
            Value::String(s) => s.len() + 2,
            Value::Array(items) => 2 + items.iter().map(|v| json(v) + 1).sum::<usize>(),
            Value::Object(map) => {
                2 + map
                    .iter()
                    .map(|(k, v)| k.len() + 4 + json(v))
                    .sum::<usize>()
            }
        }
    }
    let attributes = event.cloudevent.as_ref().map_or(0, |map| {
        map.iter()
            .map(|(k, v)| k.len() + 4 + json(v))
            .sum::<usize>()
    });
    128 + event.id.len()
        + event.source.len()
        + event.event_type.len()
        + json(&event.data)
        + attributes
}

/// A waiter registered with each subscription it waits on; deregistered on drop, so a
/// cancelled `next_event` leaves nothing behind.
struct Registration<'a> {
    subs: &'a [Arc<Sub>],
    notify: Arc<Notify>,
}

impl<'a> Registration<'a> {
    fn new(subs: &'a [Arc<Sub>]) -> Self {
        let notify = Arc::new(Notify::new());
        for sub in subs {
            sub.state().waiters.push(Arc::clone(&notify));
        }
        Registration { subs, notify }
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        for sub in self.subs {
            sub.state()
                .waiters
                .retain(|waiter| !Arc::ptr_eq(waiter, &self.notify));
        }
    }
}
