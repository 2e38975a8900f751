//! Hearing what other processes change: one `LISTEN` connection per store (not per
//! application, endpoint or engine), started the first time someone asks for
//! [`Store::changes`](crate::store::Store::changes), its notifications fanned out on a
//! broadcast channel.
//!
//! Writers `NOTIFY` the channel [`CHANNEL`] with [`WORK`] (deliveries may be due: sends are
//! rate-limited to one notification per [`WORK_EVERY`] per store, since the sending process
//! wakes its own engine anyway) or [`ENDPOINTS`] (an endpoint was changed, disabled or
//! removed). A lost connection is opened again after a second; the gap is reported as
//! [`Change::Missed`].

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::store::Change;

/// The notification channel.
pub(super) const CHANNEL: &str = "switchyard_webhooks";
/// Deliveries may have become due.
pub(super) const WORK: &str = "work";
/// Endpoints changed.
pub(super) const ENDPOINTS: &str = "endpoints";
/// The least time between two [`WORK`] notifications from one store.
pub(super) const WORK_EVERY: Duration = Duration::from_millis(100);

/// The listening side and the rate limit of the sending side, shared by a store's clones.
pub(super) struct Changes {
    config: tokio_postgres::Config,
    started: OnceLock<Listener>,
    /// When this store last sent [`WORK`], in microseconds since `epoch`.
    last_work: AtomicI64,
    epoch: Instant,
}

struct Listener {
    sender: broadcast::Sender<Change>,
    task: tokio::task::AbortHandle,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Changes {
    pub(super) fn new(config: tokio_postgres::Config) -> Arc<Self> {
        Arc::new(Self {
            config,
            started: OnceLock::new(),
            last_work: AtomicI64::new(i64::MIN / 2),
            epoch: Instant::now(),
        })
    }

    /// A receiver of the changes, starting the listener the first time.
    pub(super) fn subscribe(&self) -> broadcast::Receiver<Change> {
        let listener = self.started.get_or_init(|| {
            let (sender, _) = broadcast::channel(64);
            let task = tokio::spawn(listen(self.config.clone(), sender.clone())).abort_handle();
            Listener { sender, task }
        });
        listener.sender.subscribe()
    }

    /// Whether a send should notify [`WORK`] now (at most once per [`WORK_EVERY`]).
    pub(super) fn work_due(&self) -> bool {
        let now = i64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(i64::MAX);
        let last = self.last_work.load(Ordering::Relaxed);
        let every = i64::try_from(WORK_EVERY.as_micros()).unwrap_or(i64::MAX);
        now - last >= every
            && self
                .last_work
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }
}

/// Listens until aborted, reconnecting after a second when the connection is lost.
async fn listen(config: tokio_postgres::Config, sender: broadcast::Sender<Change>) {
    let mut first = true;
    loop {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let (notes, mut heard) = tokio::sync::mpsc::unbounded_channel();
                let driver = tokio::spawn(async move {
                    loop {
                        match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                            Some(Ok(AsyncMessage::Notification(note))) => {
                                if notes.send(note.payload().to_owned()).is_err() {
                                    return;
                                }
                            }
                            Some(Ok(_)) => {}
                            Some(Err(error)) => {
                                tracing::warn!(%error, "the PostgreSQL LISTEN connection failed");
                                return;
                            }
                            None => return,
                        }
                    }
                });
                match client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                    Ok(()) => {
                        if !first {
                            // What was said while no one listened is unknown.
                            let _ = sender.send(Change::Missed);
                        }
                        first = false;
                        while let Some(payload) = heard.recv().await {
                            let change = match payload.as_str() {
                                WORK => Change::Work,
                                ENDPOINTS => Change::Endpoints,
                                _ => Change::Missed,
                            };
                            // No receiver is fine: nobody is interested yet.
                            let _ = sender.send(change);
                        }
                    }
                    Err(error) => tracing::warn!(%error, "LISTEN failed"),
                }
                driver.abort();
            }
            Err(error) => {
                tracing::warn!(%error, "cannot open the PostgreSQL LISTEN connection; retrying");
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
