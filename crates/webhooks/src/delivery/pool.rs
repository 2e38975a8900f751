//! The workers: a fixed set of tasks, one per request the engine may have in flight, taking
//! leased deliveries from one queue (as a bare client's workers take requests), instead of
//! a task spawned per delivery.
//!
//! A worker takes a job, and when the job's endpoint has a free slot, makes the attempt
//! itself. When it has none, the job goes to a task of its own to wait for one (up to
//! [`DeliveryConfig::busy_retry`](super::DeliveryConfig::busy_retry)), so that a busy
//! endpoint holds back no worker and no other endpoint. The queue is bounded: whoever fills
//! it waits for room, and never holds more leased deliveries than that in memory.
//!
//! A panic while delivering is caught around the delivery and logged; the worker goes on.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::{Job, Outcome, RunReport, Shared};
use crate::error::Error;
use crate::store::Store;

/// What the deliveries of a pool came to, and how many wait for an endpoint slot.
#[derive(Default)]
struct Tally {
    report: Mutex<RunReport>,
    waiting: AtomicUsize,
    waited: Notify,
}

impl Tally {
    /// Notes what a delivery came to (`None`: it panicked, which was logged).
    fn note(&self, result: Option<Result<Outcome, Error>>) {
        match result {
            None => {}
            Some(Ok(outcome)) => self
                .report
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .add(outcome),
            Some(Err(error)) => tracing::error!(%error,
                "delivery failed to record; its lease will expire and it will be retried"),
        }
    }

    fn report(&self) -> RunReport {
        *self.report.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The workers of one [`DeliveryEngine::run`](super::DeliveryEngine::run) (or one pass of
/// `run_due`) and their queue.
pub(super) struct Pool {
    jobs: flume::Sender<Job>,
    /// The queue's receiving side, to take back what no worker has started.
    queue: flume::Receiver<Job>,
    workers: JoinSet<()>,
    tally: Arc<Tally>,
}

impl Pool {
    /// Starts `workers` workers behind a queue of `capacity` jobs.
    pub(super) fn start<S: Store>(
        shared: &Arc<Shared<S>>,
        workers: usize,
        capacity: usize,
    ) -> Self {
        let (jobs, queue) = flume::bounded(capacity.max(1));
        let tally = Arc::new(Tally::default());
        let mut set = JoinSet::new();
        for _ in 0..workers.max(1) {
            set.spawn(work(Arc::clone(shared), queue.clone(), Arc::clone(&tally)));
        }
        Self {
            jobs,
            queue,
            workers: set,
            tally,
        }
    }

    /// Takes back the queued jobs no worker has started (a worker takes each job once, so
    /// none is both delivered and taken back).
    pub(super) fn take_queued(&self) -> Vec<Job> {
        self.queue.try_iter().collect()
    }

    /// Queues a job, waiting while the queue is full.
    pub(super) async fn push(&self, job: Job) {
        // The workers hold the receiving side until the pool is finished: this never fails.
        let _ = self.jobs.send_async(job).await;
    }

    /// Lets the workers finish every queued job and the deliveries waiting for a slot, then
    /// says what they came to.
    pub(super) async fn finish(self) -> RunReport {
        let Self {
            jobs,
            queue,
            mut workers,
            tally,
        } = self;
        drop(jobs);
        drop(queue);
        while let Some(done) = workers.join_next().await {
            if let Err(error) = done {
                tracing::error!(%error, "delivery worker failed");
            }
        }
        loop {
            let waited = tally.waited.notified();
            if tally.waiting.load(Ordering::Acquire) == 0 {
                break;
            }
            waited.await;
        }
        tally.report()
    }
}

/// One worker: takes jobs until the queue is closed and empty.
async fn work<S: Store>(shared: Arc<Shared<S>>, queue: flume::Receiver<Job>, tally: Arc<Tally>) {
    while let Ok(job) = queue.recv_async().await {
        let ready = match shared.ready(job) {
            Ok(ready) => ready,
            Err(release) => {
                tally.note(caught(release).await.map(|r| r.map(|()| Outcome::Skipped)));
                continue;
            }
        };
        match Arc::clone(&ready.target.gate.in_flight).try_acquire_owned() {
            Ok(permit) => tally.note(caught(shared.attempt(ready, permit)).await),
            Err(_) => {
                // The endpoint is busy: wait for it elsewhere, and take the next job.
                tally.waiting.fetch_add(1, Ordering::AcqRel);
                let (shared, tally) = (Arc::clone(&shared), Arc::clone(&tally));
                tokio::spawn(async move {
                    tally.note(caught(shared.wait_and_attempt(ready)).await);
                    if tally.waiting.fetch_sub(1, Ordering::AcqRel) == 1 {
                        tally.waited.notify_waiters();
                    }
                });
            }
        }
    }
}

pin_project! {
    /// A delivery's future with its panics caught, so that one bad delivery does not take
    /// its worker down.
    struct Caught<F> {
        #[pin]
        inner: F,
    }
}

/// `future`, resolving to `None` (logged) if it panics.
fn caught<F: Future>(future: F) -> Caught<F> {
    Caught { inner: future }
}

impl<F: Future> Future for Caught<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.project().inner;
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(poll) => poll.map(Some),
            Err(_) => {
                tracing::error!(
                    "a delivery panicked; its lease will expire and it will be retried"
                );
                Poll::Ready(None)
            }
        }
    }
}
