//! Runtime events across servers on one database (`--database`): every event ingested by
//! any server is appended to one log table, and every server reads the log in order and
//! publishes each event to its own subscriptions. So an event ingested through one server
//! reaches subscriptions made on any other, and every server sees the events in the same
//! order: the log's.
//!
//! **Why the order is total and gap-free.** An append takes the log's head row
//! (`runtime_log_head`) with `UPDATE … SET seq = seq + n` and holds its row lock until it
//! commits, so appends commit one after another, each numbering its events right after the
//! last committed one: the numbers have no gaps (an append that rolls back also rolls back
//! its increment) and a reader that has seen `k` never later finds a committed event below
//! `k`. Every server reads `seq > last` in `seq` order, so all publish the same sequence.
//!
//! A server learns of appends through `LISTEN runtime_events` (one connection per server)
//! and reads the log at least once a second anyway. Events are kept [`RETENTION`] (10
//! minutes) and then deleted; a server starts reading at the head when it starts, so it
//! publishes what is appended from then on.

use std::collections::VecDeque;
use std::str::FromStr as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use switchyard_runtime_events::{Event, Hub};
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::config::DatabaseConfig;
use crate::error::{ApiError, ServerError};

/// The notification channel appends are announced on.
const CHANNEL: &str = "runtime_events";
/// How long events stay in the log.
pub(crate) const RETENTION: Duration = Duration::from_secs(10 * 60);
/// The most events read from the log at once.
const READ_BATCH: i64 = 1000;
/// How long an append waits for this server to have published it (for its `queued` count).
const PUBLISH_WAIT: Duration = Duration::from_secs(10);
/// How many recent appends' queued counts are remembered.
const REMEMBERED: usize = 4096;
/// The schema version this build writes, in `switchyard_runtime_schema`.
const VERSION: i32 = 1;
/// The advisory lock key migrations hold ("sy-rtev." in ASCII).
const MIGRATION_LOCK: i64 = 0x7379_2d72_7465_762e;

/// The log of one server: appends, and the reader publishing to its hub.
pub(crate) struct EventLog {
    pool: Pool,
    /// The last sequence number this server has published.
    published: watch::Receiver<i64>,
    /// How many of this server's subscriptions each recent event was queued for.
    queued: Arc<Mutex<VecDeque<(i64, usize)>>>,
    reader: tokio::task::AbortHandle,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog")
            .field("published", &*self.published.borrow())
            .finish_non_exhaustive()
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

fn database_error(error: impl std::fmt::Display) -> ServerError {
    ServerError::Events(error.to_string())
}

impl EventLog {
    /// Opens the log in `database` (making its tables the first time) and starts reading it
    /// from its head into `hub`.
    ///
    /// # Errors
    /// [`ServerError::Events`] when the database cannot be reached or its log table was
    /// written by a newer build.
    pub(crate) async fn open(
        database: &DatabaseConfig,
        hub: Arc<Hub>,
    ) -> Result<Self, ServerError> {
        let mut config = tokio_postgres::Config::from_str(&database.url).map_err(database_error)?;
        config.connect_timeout(Duration::from_secs(10));
        config.application_name("switchyard-runtime-events");
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(4)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(database_error)?;
        let mut client = pool.get().await.map_err(database_error)?;
        migrate(&mut client).await?;
        let head: i64 = client
            .query_one("SELECT seq FROM runtime_log_head", &[])
            .await
            .map_err(database_error)?
            .try_get(0)
            .map_err(database_error)?;
        drop(client);
        let (tell, published) = watch::channel(head);
        let queued = Arc::new(Mutex::new(VecDeque::new()));
        let reader = tokio::spawn(read(
            config,
            pool.clone(),
            hub,
            head,
            tell,
            Arc::clone(&queued),
        ))
        .abort_handle();
        Ok(Self {
            pool,
            published,
            queued,
            reader,
        })
    }

    /// Appends events to the log (numbered after the last, in one transaction), waits until
    /// this server has published them, and answers how many of this server's subscriptions
    /// they were queued for.
    ///
    /// # Errors
    /// 503 when the database cannot take them (nothing was appended).
    pub(crate) async fn append(&self, events: Vec<Event>) -> Result<usize, ApiError> {
        let unavailable = |error: &dyn std::fmt::Display| {
            tracing::warn!(%error, "appending runtime events failed");
            ApiError::new(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "events_unavailable",
                "the events log cannot be written now; nothing was ingested",
            )
        };
        if events.is_empty() {
            return Ok(0);
        }
        let texts = events
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ApiError::internal(&e))?;
        let count = i64::try_from(texts.len()).unwrap_or(i64::MAX);
        let mut client = self.pool.get().await.map_err(|e| unavailable(&e))?;
        let tx = client.transaction().await.map_err(|e| unavailable(&e))?;
        // The head's row lock, held to the commit, orders the appends (see the module docs).
        let last: i64 = tx
            .query_one(
                "UPDATE runtime_log_head SET seq = seq + $1 RETURNING seq",
                &[&count],
            )
            .await
            .map_err(|e| unavailable(&e))?
            .try_get(0)
            .map_err(|e| unavailable(&e))?;
        let first = last - count + 1;
        let seqs: Vec<i64> = (first..=last).collect();
        tx.execute(
            "INSERT INTO runtime_events (seq, event)
             SELECT * FROM unnest($1::bigint[], $2::text[])",
            &[&seqs, &texts],
        )
        .await
        .map_err(|e| unavailable(&e))?;
        tx.execute("SELECT pg_notify($1, '')", &[&CHANNEL])
            .await
            .map_err(|e| unavailable(&e))?;
        tx.commit().await.map_err(|e| unavailable(&e))?;
        drop(client);
        // Published here in the log's order, like everywhere else.
        let mut published = self.published.clone();
        let reached = tokio::time::timeout(PUBLISH_WAIT, published.wait_for(|seq| *seq >= last))
            .await
            .is_ok_and(|r| r.is_ok());
        if !reached {
            tracing::warn!(
                last,
                "the events were appended but not yet published here; answering without a count"
            );
            return Ok(0);
        }
        let queued = self.queued.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(queued
            .iter()
            .filter(|(seq, _)| (first..=last).contains(seq))
            .map(|(_, n)| n)
            .sum())
    }
}

async fn migrate(client: &mut deadpool_postgres::Object) -> Result<(), ServerError> {
    let tx = client.transaction().await.map_err(database_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(database_error)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS switchyard_runtime_schema (
            one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
            version INTEGER NOT NULL
        )",
    )
    .await
    .map_err(database_error)?;
    let found: i32 = match tx
        .query_opt("SELECT version FROM switchyard_runtime_schema", &[])
        .await
        .map_err(database_error)?
    {
        Some(row) => row.try_get(0).map_err(database_error)?,
        None => 0,
    };
    if found > VERSION {
        return Err(ServerError::Events(format!(
            "the runtime events schema version {found} is newer than this build supports \
             ({VERSION})"
        )));
    }
    if found < 1 {
        tx.batch_execute(
            "CREATE TABLE runtime_log_head (
                one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
                seq BIGINT NOT NULL
            );
            INSERT INTO runtime_log_head (seq) VALUES (0);
            CREATE TABLE runtime_events (
                seq BIGINT PRIMARY KEY,
                event TEXT NOT NULL,
                created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
            );
            CREATE INDEX runtime_events_by_time ON runtime_events (created_at);
            INSERT INTO switchyard_runtime_schema (version) VALUES (1);",
        )
        .await
        .map_err(database_error)?;
    }
    tx.commit().await.map_err(database_error)?;
    Ok(())
}

/// Reads the log after `last`, in order, publishing each event to `hub`, until aborted;
/// woken by notifications, and once a second without. Deletes what is older than
/// [`RETENTION`] once a minute.
async fn read(
    config: tokio_postgres::Config,
    pool: Pool,
    hub: Arc<Hub>,
    mut last: i64,
    tell: watch::Sender<i64>,
    queued: Arc<Mutex<VecDeque<(i64, usize)>>>,
) {
    let wake = Arc::new(tokio::sync::Notify::new());
    // Stopped with the reader: the guard aborts it when this future is dropped.
    let _listening = AbortOnDrop(tokio::spawn(listen(config, Arc::clone(&wake))));
    let mut next_cleanup = tokio::time::Instant::now();
    loop {
        match read_after(&pool, last).await {
            Ok(rows) => {
                let more = rows.len() as i64 == READ_BATCH;
                for (seq, text) in rows {
                    if seq != last + 1 {
                        tracing::warn!(
                            expected = last + 1,
                            found = seq,
                            "runtime events were deleted before this server read them"
                        );
                    }
                    last = seq;
                    let n = match serde_json::from_str::<Event>(&text) {
                        Ok(event) => publish(&hub, event).await,
                        Err(error) => {
                            tracing::warn!(%error, seq, "an unreadable runtime event was skipped");
                            0
                        }
                    };
                    let mut recent = queued.lock().unwrap_or_else(PoisonError::into_inner);
                    recent.push_back((seq, n));
                    while recent.len() > REMEMBERED {
                        recent.pop_front();
                    }
                    drop(recent);
                    tell.send_replace(last);
                }
                if more {
                    continue;
                }
            }
            Err(error) => tracing::warn!(%error, "reading the runtime events log failed"),
        }
        if tokio::time::Instant::now() >= next_cleanup {
            next_cleanup = tokio::time::Instant::now() + Duration::from_secs(60);
            if let Err(error) = cleanup(&pool).await {
                tracing::warn!(%error, "deleting old runtime events failed");
            }
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn read_after(pool: &Pool, last: i64) -> Result<Vec<(i64, String)>, String> {
    let client = pool.get().await.map_err(|e| e.to_string())?;
    let rows = client
        .query(
            "SELECT seq, event FROM runtime_events WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[&last, &READ_BATCH],
        )
        .await
        .map_err(|e| e.to_string())?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(|e| e.to_string())
}

async fn cleanup(pool: &Pool) -> Result<(), String> {
    let client = pool.get().await.map_err(|e| e.to_string())?;
    client
        .execute(
            "DELETE FROM runtime_events WHERE created_at < clock_timestamp() - make_interval(secs => $1)",
            &[&RETENTION.as_secs_f64()],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Publishes one event to the hub off the async workers (filters run within their
/// budgets); how many subscriptions it was queued for.
async fn publish(hub: &Arc<Hub>, event: Event) -> usize {
    let hub = Arc::clone(hub);
    match tokio::task::spawn_blocking(move || hub.publish(event)).await {
        Ok(Ok(published)) => published.queued,
        Ok(Err(error)) => {
            tracing::warn!(%error, "a runtime event was not published");
            0
        }
        Err(error) => {
            tracing::warn!(%error, "publishing a runtime event failed");
            0
        }
    }
}

/// Wakes the reader on every notification of the channel; reconnects after a second when
/// the connection is lost (the reader's one-second reads cover the gap).
async fn listen(config: tokio_postgres::Config, wake: Arc<tokio::sync::Notify>) {
    loop {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let waker = Arc::clone(&wake);
                let driver = tokio::spawn(async move {
                    while let Some(message) =
                        std::future::poll_fn(|cx| connection.poll_message(cx)).await
                    {
                        match message {
                            Ok(AsyncMessage::Notification(_)) => waker.notify_one(),
                            Ok(_) => {}
                            Err(_) => return,
                        }
                    }
                });
                if client
                    .batch_execute(&format!("LISTEN {CHANNEL}"))
                    .await
                    .is_ok()
                {
                    let _ = driver.await;
                } else {
                    driver.abort();
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot open the runtime events LISTEN connection")
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
