//! The connections behind [`SqliteStore`](super::SqliteStore): one writer thread that runs
//! every write, grouping whatever is queued into one transaction (one disk sync), and a pool
//! of reader connections used on the caller's thread.
//!
//! Why a thread of our own: a write is many statements, and handing each statement to a
//! connection thread and back (what an async driver does) costs two thread switches per
//! statement. Here a whole queue of writes crosses threads once, both ways. Reads in WAL mode
//! never wait for the writer and take microseconds, so they run where they are called.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::error::StoreError;

/// The most writes grouped into one transaction.
const MAX_BATCH: usize = 512;
/// Idle reader connections kept open.
const MAX_IDLE_READERS: usize = 4;
/// How long a connection waits for another process holding the write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 64;

/// Tells a write's caller how it ended, given the error that failed its transaction (if any).
type Answer = Box<dyn FnOnce(Option<&Arc<StoreError>>) + Send>;
/// Runs a write on the connection, or, given the error that kept its batch from running,
/// only prepares its answer.
type Run = Box<dyn FnOnce(Result<&Connection, &Arc<StoreError>>) -> Ran + Send>;

/// What a write job hands back after running: whether it succeeded (so its savepoint is
/// kept), and how to answer its caller once the transaction's fate is known.
struct Ran {
    ok: bool,
    answer: Answer,
}

/// A queued write: given the connection (inside the batch's transaction) it runs; given the
/// error that kept the batch from starting, it only answers.
struct Job {
    /// Whether the write must be on disk before its caller hears back (see [`Db::write`]).
    durable: bool,
    run: Run,
}

/// Opens a connection to `path` with the settings every connection shares.
fn connect(path: &Path, writer: bool) -> Result<Connection, StoreError> {
    let flags = if writer {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // WAL: readers never block the writer or each other. FULL: a commit is on disk (WAL
    // synced) before it returns, so an accepted message survives a power cut.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // Savepoint journals and the buffers of `RETURNING` in memory, not in temporary files.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Pages cached per connection, in KiB (negative): the writer touches the indexes of
    // every delivery, readers mostly the newest pages.
    conn.pragma_update(None, "cache_size", if writer { -32_768 } else { -8_192 })?;
    Ok(conn)
}

/// The writer thread's handle and the reader pool.
pub(super) struct Db {
    path: PathBuf,
    jobs: Mutex<Option<Sender<Job>>>,
    exited: Mutex<Option<oneshot::Receiver<()>>>,
    readers: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Db {
    /// Opens the file (creating it), runs `setup` on the writer connection (the schema
    /// migration) before anything else can use the file, and starts the writer thread.
    pub(super) async fn open(
        path: &Path,
        setup: impl FnOnce(&mut Connection) -> Result<(), StoreError> + Send + 'static,
    ) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready, opened) = oneshot::channel();
        let (exit, exited) = oneshot::channel();
        let thread_path = path.to_path_buf();
        std::thread::Builder::new()
            .name("switchyard-sqlite-writer".into())
            .spawn(move || {
                let conn = connect(&thread_path, true).and_then(|mut conn| {
                    setup(&mut conn)?;
                    Ok(conn)
                });
                match conn {
                    Ok(conn) => {
                        let _ = ready.send(Ok(()));
                        write_loop(&conn, &queue);
                        drop(conn);
                    }
                    Err(error) => {
                        let _ = ready.send(Err(error));
                    }
                }
                let _ = exit.send(());
            })
            .map_err(|e| StoreError::Thread(e.to_string()))?;
        opened.await.map_err(|_| StoreError::Interrupted)??;
        Ok(Self {
            path: path.to_path_buf(),
            jobs: Mutex::new(Some(jobs)),
            exited: Mutex::new(Some(exited)),
            readers: Mutex::new(Vec::new()),
        })
    }

    /// Runs `write` on the writer connection, inside a transaction shared with whatever else
    /// is queued; resolves once that transaction is committed and synced to disk (or has
    /// failed). A failing write is rolled back alone (its own savepoint); the others still
    /// commit.
    ///
    /// The write runs to completion even if the returned future is dropped.
    pub(super) async fn write<R: Send + 'static>(
        &self,
        write: impl FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        self.submit(true, write).await
    }

    /// [`Db::write`] for a write that may be lost in a power cut (not in a crash of the
    /// process) when no durable write shares or follows its transaction: a transaction of
    /// such writes only is committed without waiting for the disk. For the delivery
    /// engine's own bookkeeping — leases and attempt outcomes — whose loss means a delivery
    /// is made again, which at-least-once delivery allows. Any later durable commit syncs
    /// it too (the log is written in order).
    pub(super) async fn write_relaxed<R: Send + 'static>(
        &self,
        write: impl FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        self.submit(false, write).await
    }

    async fn submit<R: Send + 'static>(
        &self,
        durable: bool,
        write: impl FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (answer, answered) = oneshot::channel::<Result<R, StoreError>>();
        let run = Box::new(move |conn: Result<&Connection, &Arc<StoreError>>| {
            let result = match conn {
                Ok(conn) => write(conn),
                Err(error) => Err(StoreError::Batch(Arc::clone(error))),
            };
            Ran {
                ok: result.is_ok(),
                answer: Box::new(move |failed: Option<&Arc<StoreError>>| {
                    let outcome = match (failed, result) {
                        (Some(error), Ok(_)) => Err(StoreError::Batch(Arc::clone(error))),
                        (_, result) => result,
                    };
                    let _ = answer.send(outcome);
                }),
            }
        });
        let job = Job { durable, run };
        {
            let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
            let sender = jobs.as_ref().ok_or(StoreError::Closed)?;
            sender.send(job).map_err(|_| StoreError::Closed)?;
        }
        answered.await.map_err(|_| StoreError::Interrupted)?
    }

    /// Runs `read` on a reader connection, on this thread.
    ///
    /// # Errors
    /// [`StoreError::Closed`] after [`Db::close`]; what `read` returns.
    pub(super) fn read<R>(
        &self,
        read: impl FnOnce(&Connection) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        if self
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
        {
            return Err(StoreError::Closed);
        }
        let idle = self
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(conn) => conn,
            None => connect(&self.path, false)?,
        };
        let result = read(&conn);
        let mut readers = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if readers.len() < MAX_IDLE_READERS {
            readers.push(conn);
        }
        result
    }

    /// Stops taking writes, lets the writer finish what is queued, and closes every
    /// connection.
    pub(super) async fn close(&self) {
        let sender = self
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(sender);
        let exited = self
            .exited
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(exited) = exited {
            let _ = exited.await;
        }
        self.readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// Takes the jobs queued, up to [`MAX_BATCH`] at a time, and runs each batch in one
/// transaction, until every sender is gone.
fn write_loop(conn: &Connection, queue: &Receiver<Job>) {
    let mut synced = true;
    while let Ok(first) = queue.recv() {
        let mut batch = Vec::with_capacity(16);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Writes that must be on disk before they return commit on their own, first: they
        // wait for the disk, but not for a large bookkeeping write queued with them.
        let (durable, relaxed): (Vec<Job>, Vec<Job>) = batch.into_iter().partition(|j| j.durable);
        for (jobs, sync) in [(durable, true), (relaxed, false)] {
            if jobs.is_empty() {
                continue;
            }
            // `synchronous` is per connection; set it only when it changes.
            if sync != synced {
                let level = if sync { "FULL" } else { "NORMAL" };
                match conn.pragma_update(None, "synchronous", level) {
                    Ok(()) => synced = sync,
                    Err(error) => tracing::error!(%error, level, "could not set synchronous"),
                }
            }
            run_batch(conn, jobs);
        }
    }
}

/// Runs a batch in one transaction. Every write but the transaction's first runs in a
/// savepoint of its own, so that a failing one is rolled back alone. The first needs none
/// (and is spared the savepoint's cost: SQLite copies every page a savepoint changes): if
/// it fails, the transaction, which holds nothing else yet, is rolled back and begun again.
fn run_batch(conn: &Connection, batch: Vec<Job>) {
    // `BEGIN IMMEDIATE` takes the write lock now, so another process holding it makes this
    // wait (busy timeout) instead of failing half-way through the batch.
    let begin = || {
        conn.execute_batch("BEGIN IMMEDIATE").map_err(|error| {
            let error = Arc::new(StoreError::from(error));
            tracing::error!(%error, "could not start a write transaction");
            error
        })
    };
    let mut failed: Option<Arc<StoreError>> = begin().err();
    let mut answers = Vec::with_capacity(batch.len());
    for job in batch {
        if let Some(error) = &failed {
            ((job.run)(Err(error)).answer)(None);
            continue;
        }
        let first = answers.is_empty();
        if !first && let Err(error) = conn.execute_batch("SAVEPOINT job") {
            let error = Arc::new(StoreError::from(error));
            ((job.run)(Err(&error)).answer)(None);
            failed = Some(error);
            continue;
        }
        // A write that panics is rolled back alone; its caller sees `Interrupted`.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (job.run)(Ok(conn))));
        let ok = ran.as_ref().is_ok_and(|ran| ran.ok);
        if !ok {
            tracing::debug!(first, "a write failed; it is rolled back");
        }
        if first {
            match ran {
                Ok(ran) if ran.ok => answers.push(ran.answer),
                failed_write => {
                    // Nothing else is in the transaction: roll it back, answer, begin again.
                    if let Err(error) = conn.execute_batch("ROLLBACK") {
                        failed = Some(Arc::new(error.into()));
                    }
                    match failed_write {
                        Ok(ran) => (ran.answer)(None),
                        Err(_) => tracing::error!("a write panicked; it was rolled back"),
                    }
                    if failed.is_none() {
                        failed = begin().err();
                    }
                }
            }
            continue;
        }
        match ran {
            Ok(ran) => answers.push(ran.answer),
            Err(_) => tracing::error!("a write panicked; it was rolled back"),
        }
        let end = if ok {
            "RELEASE job"
        } else {
            "ROLLBACK TO job; RELEASE job"
        };
        if let Err(error) = conn.execute_batch(end) {
            failed = Some(Arc::new(error.into()));
        }
    }
    if answers.is_empty() && failed.is_none() {
        // Every write failed and was answered; nothing to commit.
        if !conn.is_autocommit()
            && let Err(error) = conn.execute_batch("ROLLBACK")
        {
            tracing::error!(%error, "could not end an empty write transaction");
        }
        return;
    }
    let outcome = match failed {
        Some(error) => Err(error),
        None => conn
            .execute_batch("COMMIT")
            .map_err(|e| Arc::new(StoreError::from(e))),
    };
    match outcome {
        Ok(()) => {
            for answer in answers {
                answer(None);
            }
        }
        Err(error) => {
            tracing::error!(%error, writes = answers.len(), "write transaction failed");
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            for answer in answers {
                answer(Some(&error));
            }
        }
    }
}
