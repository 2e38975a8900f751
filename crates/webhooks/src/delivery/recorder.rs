//! The recorder: one task that writes the outcomes of attempts to the store, as many at a
//! time as have queued up while the previous write was running.
//!
//! A delivery hands its outcome over and is done: it does not wait for the store. While one
//! write runs, the next outcomes queue, so the busier the engine, the larger each write, and
//! a large write costs the store much less per attempt than a small one (an endpoint's
//! attempts index gets a page written once per transaction, whether the transaction holds
//! one of its attempts or fifty). The queue is bounded: when the store falls behind,
//! deliveries wait to hand over their outcomes, and the engine slows down to the store's
//! pace instead of holding ever more in memory.
//!
//! Under a light load a write would hold one outcome; the recorder then waits a moment
//! ([`DeliveryConfig::record_linger`](super::DeliveryConfig::record_linger)) for more,
//! unless an outcome is urgent (something waits for it), a flush was asked for, or the
//! write is full.
//!
//! Nothing is lost on a graceful stop: [`Recorder::flush`] returns once everything handed
//! over before it is written. A crash loses what was queued; those deliveries are still
//! leased in the store, and are made again when their leases run out (at least once).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};

use super::{EndpointCache, EndpointNote, Notification};
use crate::id::{AppId, AttemptId, EndpointId};
use crate::model::{DeliveryUpdate, EndpointUid, Lease};
use crate::registry::Registry;
use crate::store::{HealthChange, Store};

/// Outcomes that may wait in the queue for the store.
const QUEUE: usize = 8192;
/// The most outcomes written in one store call.
const MAX_WRITE: usize = 2048;

#[expect(
    clippy::large_enum_variant,
    reason = "outcomes are nearly every entry; boxing them would cost an allocation each"
)]
enum Entry {
    /// An outcome to record; `urgent` when something waits for it (the next message to an
    /// ordered endpoint).
    Outcome {
        lease: Lease,
        update: DeliveryUpdate,
        urgent: bool,
    },
    /// Answer once everything queued before this is written.
    Flush(oneshot::Sender<()>),
}

impl Entry {
    /// Written without lingering for more.
    fn is_urgent(&self) -> bool {
        match self {
            Self::Outcome { urgent, .. } => *urgent,
            Self::Flush(_) => true,
        }
    }
}

/// An outcome being handed to the recorder: done (queued, or `false`: not running), or
/// waiting for room in the queue.
pub(super) enum Handover {
    Done(bool),
    Waiting(Pin<Box<dyn Future<Output = bool> + Send>>),
}

impl Future for Handover {
    type Output = bool;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        match self.get_mut() {
            Self::Done(queued) => Poll::Ready(*queued),
            Self::Waiting(waiting) => waiting.as_mut().poll(cx),
        }
    }
}

/// The sending side, shared by every delivery of an engine.
#[derive(Debug)]
pub(super) struct Recorder {
    queue: Mutex<Option<mpsc::Sender<Entry>>>,
}

/// What the recorder task needs besides the queue: where to write, and whom to tell about
/// endpoint health.
pub(super) struct Sink<S> {
    pub(super) registry: Arc<Registry<S>>,
    pub(super) disable_after: Duration,
    /// How long to wait for more outcomes before writing a few.
    pub(super) linger: Duration,
    pub(super) notifications: broadcast::Sender<Notification>,
    pub(super) endpoints: Arc<Mutex<EndpointCache>>,
}

impl Recorder {
    /// A recorder that is not running yet; [`Recorder::start`] starts its task.
    pub(super) fn new() -> Self {
        Self {
            queue: Mutex::new(None),
        }
    }

    /// Starts the task (once; later calls do nothing). Must be called inside a tokio
    /// runtime. The task ends when the recorder is dropped, after writing what was queued.
    pub(super) fn start<S: Store>(&self, sink: impl FnOnce() -> Sink<S>) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.as_ref().is_some_and(|q| !q.is_closed()) {
            return;
        }
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(run(sink(), receiver));
        *queue = Some(sender);
    }

    fn sender(&self) -> Option<mpsc::Sender<Entry>> {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Queues an outcome; the returned future waits only while the queue is full, and
    /// answers `false` when the recorder is not running (the outcome is dropped: the lease
    /// runs out and the delivery is made again). The outcome is queued, when there is room,
    /// before this returns; the future holds no copy of it.
    pub(super) fn record(&self, lease: Lease, update: DeliveryUpdate, urgent: bool) -> Handover {
        let entry = Entry::Outcome {
            lease,
            update,
            urgent,
        };
        let queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(queue) = queue.as_ref() else {
            return Handover::Done(false);
        };
        match queue.try_send(entry) {
            Ok(()) => Handover::Done(true),
            Err(mpsc::error::TrySendError::Closed(_)) => Handover::Done(false),
            Err(mpsc::error::TrySendError::Full(entry)) => {
                let queue = queue.clone();
                Handover::Waiting(Box::pin(async move { queue.send(entry).await.is_ok() }))
            }
        }
    }

    /// Waits until everything queued before this call is written (or failed to be).
    pub(super) async fn flush(&self) {
        let Some(queue) = self.sender() else {
            return;
        };
        let (done, written) = oneshot::channel();
        if queue.send(Entry::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}

/// The task: takes whatever has queued (at least one entry), waits up to the linger for
/// more unless something urgent is among them, writes them in one store call, and repeats
/// until every sender is gone.
async fn run<S: Store>(sink: Sink<S>, mut queue: mpsc::Receiver<Entry>) {
    let mut entries = Vec::with_capacity(MAX_WRITE);
    while queue.recv_many(&mut entries, MAX_WRITE).await > 0 {
        if !sink.linger.is_zero() && !entries.iter().any(Entry::is_urgent) {
            let until = tokio::time::Instant::now() + sink.linger;
            while entries.len() < MAX_WRITE {
                let before = entries.len();
                let room = MAX_WRITE - before;
                match tokio::time::timeout_at(until, queue.recv_many(&mut entries, room)).await {
                    Ok(taken) if taken > 0 => {
                        if entries[before..].iter().any(Entry::is_urgent) {
                            break;
                        }
                    }
                    // Closed, or the linger is over.
                    _ => break,
                }
            }
        }
        let mut items = Vec::with_capacity(entries.len());
        let mut flushed = Vec::new();
        for entry in entries.drain(..) {
            match entry {
                Entry::Outcome { lease, update, .. } => items.push((lease, update)),
                Entry::Flush(done) => flushed.push(done),
            }
        }
        if !items.is_empty() {
            // Recorded in id order: deliveries racing to hand over their outcomes may have
            // queued them a little out of it, and attempts list in the order recorded.
            items.sort_by(|(_, a), (_, b)| attempt_id(a).cmp(&attempt_id(b)));
            sink.write(items).await;
        }
        for done in flushed {
            let _ = done.send(());
        }
    }
}

/// The id of an update's attempt, if it has one.
fn attempt_id(update: &DeliveryUpdate) -> Option<&AttemptId> {
    update.attempt.as_ref().map(|attempt| &attempt.id)
}

impl<S: Store> Sink<S> {
    async fn write(&self, items: Vec<(Lease, DeliveryUpdate)>) {
        let count = items.len();
        match self
            .registry
            .store()
            .finish_deliveries(items, self.disable_after)
            .await
        {
            Ok(finished) => {
                let lost = finished.held.iter().filter(|held| !**held).count();
                if lost > 0 {
                    tracing::debug!(
                        lost,
                        "leases lost during their attempts (requeued or expired); attempts recorded"
                    );
                }
                self.announce_health(finished.health).await;
            }
            Err(error) => tracing::error!(%error, count,
                "recording attempts failed; their leases will run out and they will be retried"),
        }
    }

    /// Tells the operator about changes in endpoints' health (rare: the endpoints are read
    /// again for their application and uid).
    async fn announce_health(&self, health: Vec<(EndpointId, HealthChange)>) {
        let changed: Vec<EndpointId> = health
            .iter()
            .filter(|(_, change)| *change != HealthChange::Unchanged)
            .map(|(endpoint, _)| endpoint.clone())
            .collect();
        if changed.is_empty() {
            return;
        }
        {
            // Disabled or enabled in the store: read them again before the next delivery.
            let mut cache = self
                .endpoints
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for endpoint in &changed {
                cache.entries.remove(endpoint);
            }
        }
        let records = match self.registry.store().endpoints(&changed).await {
            Ok(records) => records,
            Err(error) => {
                tracing::error!(%error, "reading endpoints whose health changed failed; \
                    their notifications are not sent");
                Vec::new()
            }
        };
        let found: HashMap<EndpointId, (AppId, Option<EndpointUid>)> = records
            .into_iter()
            .map(|record| {
                let endpoint = record.endpoint;
                (endpoint.id, (endpoint.app, endpoint.uid))
            })
            .collect();
        for (endpoint_id, change) in health {
            let (failing_since, disabled) = match change {
                HealthChange::Unchanged => continue,
                HealthChange::Disabled { failing_since } => {
                    tracing::warn!(endpoint = %endpoint_id, %failing_since,
                        "endpoint disabled after failing continuously");
                    (failing_since, true)
                }
                HealthChange::Recovered { failing_since } => {
                    tracing::info!(endpoint = %endpoint_id, %failing_since, "endpoint recovered");
                    (failing_since, false)
                }
            };
            // Deleted meanwhile: nobody to tell about it.
            let Some((app_id, endpoint_uid)) = found.get(&endpoint_id).cloned() else {
                continue;
            };
            let note = EndpointNote {
                app_id,
                endpoint_id,
                endpoint_uid,
                failing_since,
            };
            // No receiver is fine: the tracing event is emitted either way.
            let _ = self.notifications.send(if disabled {
                Notification::EndpointDisabled(note)
            } else {
                Notification::EndpointRecovered(note)
            });
        }
    }
}
