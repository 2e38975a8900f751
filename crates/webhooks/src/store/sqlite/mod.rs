//! The embedded durable [`Store`]: one SQLite file in WAL mode, written by one thread of its
//! own that groups concurrent writes into shared transactions.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, ErrorCode, OptionalExtension as _, params};

use super::{
    AccessToken, AppLimits, AttemptCounts, AttemptFilter, EndpointFilter, Finished, Health,
    HealthChange, IdempotencyClaim, MessageFilter, RememberedResponse, Store, bucket_of,
    join_channels, lease_token,
};
use crate::error::StoreError;
use crate::id::{AppId, AttemptId, EndpointId, MessageId};
use crate::model::{
    AppUid, Application, Attempt, AttemptStatus, Channel, Delivery, DeliveryUpdate, Endpoint,
    EndpointRecord, EndpointUid, EventType, EventTypeFilter, EventTypeName, Lease, Message, after,
};
use crate::page::{Order, PageRequest};
use crate::seal::{self, KeyRing, SealError};

mod fanout;
mod import;
mod rows;
mod schema;
mod worker;

use super::keys::{HEADERS_FIELD, KEYS_FIELD, RESPONSE_FIELD, Sealer, StoredKeys};
pub use import::Imported;
use rows::{StoredHeaders, corrupt, micros, to_json};
use worker::Db;

/// A [`Store`] in one SQLite file (WAL journal, `synchronous=FULL`, so a committed send
/// survives a crash or power cut). Several processes may open the same file; leasing stays
/// atomic because it is one `UPDATE … RETURNING` statement under SQLite's write lock.
///
/// Writes go to a thread of the store's own, which runs everything queued in one
/// transaction: concurrent sends and attempt records share one disk sync. Reads run on the
/// calling thread, on a small pool of connections (in WAL mode they never wait for the
/// writer).
///
/// Endpoint secrets are stored in the file so that deliveries can be signed. Opened with
/// [`SqliteStore::open_sealed`], their signing keys and custom headers are sealed under a
/// main key ([`seal`](crate::seal)) and the file alone signs nothing; opened with
/// [`SqliteStore::open`] they are kept clear: protect the file like any credential store.
///
/// ```
/// use switchyard_webhooks::{Registry, store::SqliteStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let registry = Registry::new(SqliteStore::open(dir.path().join("webhooks.db")).await?);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStore {
    db: Arc<Db>,
    /// Fan-out shares handed out by this store and not finished (used by the writer only).
    claims: Arc<Mutex<fanout::Claims>>,
    /// Seals endpoints' keys and headers (or keeps them clear).
    sealer: Sealer,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and brings its schema up to
    /// date (files written by earlier versions are upgraded in place). A new file is created
    /// readable and writable by its owner only.
    ///
    /// # Errors
    /// [`StoreError::Io`] when a new file cannot be created; [`StoreError::Database`] when the
    /// file cannot be opened or written;
    /// [`StoreError::UnsupportedSchemaVersion`] when a newer build wrote it.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let store = Self::open_with(path.as_ref(), Sealer::default()).await?;
        if let Some((id, key_id)) = store.db.read(first_sealed)? {
            store.close().await;
            return Err(SealError::UnknownKey {
                what: format!("the keys of endpoint {id}"),
                key_id,
            }
            .into());
        }
        Ok(store)
    }

    /// [`SqliteStore::open`], keeping endpoints' signing keys and custom headers sealed under
    /// `ring`'s current main key. What is clear, or sealed under one of the ring's old keys,
    /// is sealed again under the current one before this returns, a batch of endpoints per
    /// transaction: a crash half way leaves each endpoint either way, both readable, and the
    /// next open finishes the work. So a rotation is: open with the new key as current and
    /// the old one in the ring; when this returns, the old key is no longer needed.
    ///
    /// # Errors
    /// As [`SqliteStore::open`]; [`StoreError::Sealed`] when a value was sealed under a main
    /// key the ring does not hold (the message names the key's id), or was altered.
    pub async fn open_sealed(path: impl AsRef<Path>, ring: KeyRing) -> Result<Self, StoreError> {
        let store = Self::open_with(path.as_ref(), Sealer::new(Some(ring))).await?;
        if let Err(error) = store.reseal().await {
            store.close().await;
            return Err(error);
        }
        Ok(store)
    }

    async fn open_with(path: &Path, sealer: Sealer) -> Result<Self, StoreError> {
        create_private(path)?;
        let db = Db::open(path, schema::migrate).await?;
        Ok(Self {
            db: Arc::new(db),
            claims: Arc::default(),
            sealer,
        })
    }

    /// Seals again, under the current main key, every endpoint's keys and headers that are
    /// clear or sealed under an old key; returns how many endpoints were rewritten. Done by
    /// [`SqliteStore::open_sealed`] and after an import; nothing without a ring. When it
    /// rewrote anything it then rebuilds the file (`VACUUM`), which blocks writes about as
    /// long as copying the file takes: to move to a new key while serving, use
    /// [`SqliteStore::rotate_keys`].
    ///
    /// # Errors
    /// [`StoreError::Sealed`] for a value no key of the ring opens; the database's errors.
    pub async fn reseal(&self) -> Result<usize, StoreError> {
        let resealed = self.reseal_pass().await?;
        if resealed.rows > 0 {
            self.vacuum()?;
        }
        Ok(resealed.rows)
    }

    /// Moves the store to `ring` while it serves: values are sealed under `ring`'s current
    /// key from the moment this is called, everything sealed under another key (or clear) is
    /// sealed again a batch per transaction between other writes, and then the keys `ring`
    /// lacks are dropped, once nothing is sealed under them. Returns how many endpoints (or
    /// remembered responses) were rewritten.
    ///
    /// Interrupted (a crash, an error), every value is under the old ring or the new one, and
    /// calling this again, or opening with [`SqliteStore::open_sealed`] and a ring holding
    /// both keys, finishes. The file is rebuilt (`VACUUM`, blocking writes meanwhile) only
    /// when clear values were sealed, so that none survives in free pages; what a rotation
    /// rewrites was sealed already, and its old copies open only under the old key.
    ///
    /// # Errors
    /// [`StoreError::Sealed`] for a value no key of either ring opens, or
    /// ([`SealError::StillInUse`]) when a key to drop still seals a value; the store then
    /// still opens everything under both rings' keys.
    pub async fn rotate_keys(&self, ring: KeyRing) -> Result<usize, StoreError> {
        let rotation = self.sealer.rotate(ring).await;
        let resealed = self.reseal_pass().await?;
        let mut still = None;
        for (key_id, prefix) in rotation.dropped() {
            if let Some(what) = self.db.read(move |conn| sealed_under(conn, &prefix))? {
                still = Some((key_id.to_owned(), what));
                break;
            }
        }
        rotation.finish(still)?;
        if resealed.clear {
            self.vacuum()?;
        }
        Ok(resealed.rows)
    }

    /// Seals again what is not under the current key, a batch per write transaction.
    async fn reseal_pass(&self) -> Result<Resealed, StoreError> {
        let Some(ring) = self.sealer.ring() else {
            return Ok(Resealed::default());
        };
        let current = ring.current_prefix();
        let mut total = Resealed::default();
        loop {
            let (sealer, current) = (self.sealer.clone(), current.clone());
            let done = self
                .db
                .write(move |conn| reseal_batch(conn, &sealer, &current))
                .await?;
            total.rows += done.rows;
            total.clear |= done.clear;
            if done.rows < RESEAL_BATCH {
                return Ok(total);
            }
        }
    }

    /// What rewritten rows held can survive in free space and in the unused parts of pages
    /// SQLite rebalanced; rebuilding the file leaves none of it, and folding the log back
    /// leaves no old page there either. A one-off, at an upgrade or a rotation: it takes
    /// about as long as copying the file.
    fn vacuum(&self) -> Result<(), StoreError> {
        self.db.read(|conn| {
            conn.execute_batch("VACUUM")?;
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            Ok(())
        })
    }

    /// Finishes the writes queued, then closes every connection. Later calls fail with
    /// [`StoreError::Closed`].
    pub async fn close(&self) {
        self.db.close().await;
    }
}

/// Creates a missing database file readable and writable by its owner only (0600), so the
/// payloads and signing secrets in it are private; SQLite gives its `-wal` and `-shm` files
/// the database file's mode. An existing file keeps its mode; `:memory:` and `file:` URIs are
/// left to SQLite.
fn create_private(path: &Path) -> Result<(), StoreError> {
    let text = path.to_string_lossy();
    if text == ":memory:" || text.starts_with("file:") {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(StoreError::Io {
            path: path.to_owned(),
            source: error,
        }),
    }
}

/// A `SELECT` assembled from this file's constant fragments: only the conditions that apply
/// are included (so SQLite can use an index for each; `? IS NULL OR …` would defeat it), and
/// every value is a bound parameter.
struct ListQuery {
    sql: String,
    binds: Vec<SqlValue>,
}

impl ListQuery {
    fn new(select: &str) -> Self {
        Self {
            sql: format!("{select} WHERE 1"),
            binds: Vec::new(),
        }
    }

    fn condition(&mut self, condition: &str, binds: impl IntoIterator<Item = SqlValue>) {
        self.sql.push_str(" AND ");
        self.sql.push_str(condition);
        self.binds.extend(binds);
    }

    /// `AND column IN (…)` of `values`; nothing when there are none.
    fn any_of<'v>(&mut self, column: &str, values: impl ExactSizeIterator<Item = &'v str>) {
        if values.len() > 0 {
            let condition = format!("{column} IN ({})", placeholders(values.len()));
            self.condition(&condition, values.map(text));
        }
    }

    /// Keyset pagination on `column` and the `ORDER BY … LIMIT`.
    fn page(self, page: &PageRequest, column: &str) -> Self {
        self.page_from(page, column, "?")
    }

    /// [`ListQuery::page`] with the cursor's value in `column` given by `cursor`, SQL taking
    /// the cursor as its one parameter.
    fn page_from(mut self, page: &PageRequest, column: &str, cursor: &str) -> Self {
        let (cmp, direction) = match page.order {
            Order::Ascending => (">", "ASC"),
            Order::Descending => ("<", "DESC"),
        };
        if let Some(after) = &page.after {
            self.condition(&format!("{column} {cmp} {cursor}"), [text(after)]);
        }
        let limit = page.limit.saturating_add(1);
        self.sql
            .push_str(&format!(" ORDER BY {column} {direction} LIMIT {limit}"));
        self
    }

    fn fetch<T>(
        self,
        conn: &Connection,
        mut map: impl FnMut(&rusqlite::Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut statement = conn.prepare_cached(&self.sql)?;
        let mut rows = statement.query(rusqlite::params_from_iter(self.binds))?;
        let mut found = Vec::new();
        while let Some(row) = rows.next()? {
            found.push(map(row)?);
        }
        Ok(found)
    }
}

fn text(value: &str) -> SqlValue {
    SqlValue::Text(value.to_owned())
}

/// The SQL condition "endpoint `e` receives event type ?" (binds the type once).
const RECEIVES_TYPE: &str = "(e.all_types = 1 OR EXISTS (SELECT 1 FROM endpoint_types t \
     WHERE t.endpoint_id = e.id AND t.event_type = ?))";
const HAS_NO_CHANNELS: &str =
    "NOT EXISTS (SELECT 1 FROM endpoint_channels c WHERE c.endpoint_id = e.id)";
const HAS_CHANNEL: &str =
    "EXISTS (SELECT 1 FROM endpoint_channels c WHERE c.endpoint_id = e.id AND c.channel = ?)";
/// A message (`m`) or attempt (`a`) sent to a channel: its `channel` column holds the
/// channels joined with `,` (see `join_channels`).
const HAS_MESSAGE_CHANNEL_M: &str = "instr(',' || m.channel || ',', ',' || ? || ',') > 0";
const HAS_MESSAGE_CHANNEL_A: &str = "instr(',' || a.channel || ',', ',' || ? || ',') > 0";

/// Endpoints (`e`) with their application's id.
const SELECT_ENDPOINTS: &str =
    "SELECT e.*, (SELECT id FROM apps WHERE seq = e.app) AS app_id FROM endpoints e";
/// Messages (`m`) with their application's id.
const SELECT_MESSAGES: &str =
    "SELECT m.*, (SELECT id FROM apps WHERE seq = m.app) AS app_id FROM messages m";
/// The integer key of the application with this id (binds the id; no row when there is no
/// such application, so a condition on it matches nothing).
const APP_KEY: &str = "(SELECT seq FROM apps WHERE id = ?)";

/// Where an attempt id stands in the order attempts were recorded.
const ATTEMPT_CURSOR: &str = "(SELECT seq FROM attempts WHERE id = ?)";

/// Attempts with the ids of their message and endpoint.
const SELECT_ATTEMPTS: &str = "SELECT a.*, \
     (SELECT id FROM messages WHERE seq = a.msg) AS message_id, \
     (SELECT id FROM endpoints WHERE seq = a.ep) AS endpoint_id \
     FROM attempts a";

fn is_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(e, _)
            if e.code == ErrorCode::ConstraintViolation
                && e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}

fn one<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    map: impl FnOnce(&rusqlite::Row<'_>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    match rows.next()? {
        Some(row) => Ok(Some(map(row)?)),
        None => Ok(None),
    }
}

/// Endpoints sealed again per transaction by [`SqliteStore::reseal`].
const RESEAL_BATCH: usize = 256;

/// What a pass of sealing again rewrote.
#[derive(Debug, Default, Clone, Copy)]
struct Resealed {
    /// Rows: endpoints or remembered responses, whichever were more in a batch.
    rows: usize,
    /// Whether a clear value was among them.
    clear: bool,
}

/// Seals again up to [`RESEAL_BATCH`] live endpoints whose keys or headers do not start with
/// `current` (the current key's prefix), and as many remembered responses; counts the
/// larger of the two (a full batch means there may be more).
fn reseal_batch(conn: &Connection, sealer: &Sealer, current: &str) -> Result<Resealed, StoreError> {
    let prefix = i64::try_from(current.len()).unwrap_or(i64::MAX);
    let mut stale = conn.prepare_cached(
        "SELECT id, keys, headers FROM endpoints
         WHERE deleted = 0 AND (substr(keys, 1, ?1) <> ?2 OR substr(headers, 1, ?1) <> ?2)
         LIMIT ?3",
    )?;
    let rows = stale
        .query_map(
            params![
                prefix,
                current,
                i64::try_from(RESEAL_BATCH).unwrap_or(i64::MAX)
            ],
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                ))
            },
        )?
        .collect::<Result<Vec<_>, _>>()?;
    // What the rows held must not survive in the file's free space: overwrite it with zeros
    // while this batch rewrites them.
    conn.pragma_update(None, "secure_delete", true)?;
    let mut update =
        conn.prepare_cached("UPDATE endpoints SET keys = ?, headers = ? WHERE id = ?")?;
    let mut clear = false;
    for (id, keys, headers) in &rows {
        clear |= !seal::is_sealed(keys) || !seal::is_sealed(headers);
        let keys = sealer.seal(id, KEYS_FIELD, sealer.open(id, KEYS_FIELD, keys.clone())?)?;
        let headers = sealer.seal(
            id,
            HEADERS_FIELD,
            sealer.open(id, HEADERS_FIELD, headers.clone())?,
        )?;
        update.execute(params![keys, headers, id])?;
    }
    // Remembered responses (a rotated secret, a portal token may be in one).
    let responses = conn
        .prepare_cached(
            "SELECT key, body FROM idempotency
             WHERE body IS NOT NULL AND substr(body, 1, ?1) <> ?2 LIMIT ?3",
        )?
        .query_map(
            params![
                prefix,
                current.as_bytes(),
                i64::try_from(RESEAL_BATCH).unwrap_or(i64::MAX)
            ],
            |row| Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?)),
        )?
        .collect::<Result<Vec<_>, _>>()?;
    let mut update = conn.prepare_cached("UPDATE idempotency SET body = ? WHERE key = ?")?;
    for (key, body) in &responses {
        clear |= !body.starts_with(seal::SEALED_PREFIX.as_bytes());
        let body = sealer.seal_bytes(
            key,
            RESPONSE_FIELD,
            sealer.open_bytes(key, RESPONSE_FIELD, body.clone())?,
        )?;
        update.execute(params![body, key])?;
    }
    conn.pragma_update(None, "secure_delete", false)?;
    Ok(Resealed {
        rows: rows.len().max(responses.len()),
        clear,
    })
}

/// A live endpoint or remembered response still holding a value that starts with `prefix`
/// (a key's `sealed:v1:<id>:`), named.
fn sealed_under(conn: &Connection, prefix: &str) -> Result<Option<String>, StoreError> {
    let length = i64::try_from(prefix.len()).unwrap_or(i64::MAX);
    let endpoint: Option<String> = conn
        .prepare_cached(
            "SELECT id FROM endpoints
             WHERE deleted = 0 AND (substr(keys, 1, ?1) = ?2 OR substr(headers, 1, ?1) = ?2)
             LIMIT 1",
        )?
        .query_row(params![length, prefix], |row| row.get(0))
        .optional()?;
    if let Some(id) = endpoint {
        return Ok(Some(format!("endpoint {id}")));
    }
    let response: Option<String> = conn
        .prepare_cached(
            "SELECT key FROM idempotency WHERE body IS NOT NULL AND substr(body, 1, ?1) = ?2
             LIMIT 1",
        )?
        .query_row(params![length, prefix.as_bytes()], |row| row.get(0))
        .optional()?;
    Ok(response.map(|key| format!("the remembered response {key}")))
}

/// The first live endpoint whose keys are sealed, with the id of the key that sealed them.
fn first_sealed(conn: &Connection) -> Result<Option<(String, String)>, StoreError> {
    let found: Option<(String, String)> = conn
        .prepare_cached(
            "SELECT id, keys FROM endpoints WHERE deleted = 0 AND substr(keys, 1, ?1) = ?2
             LIMIT 1",
        )?
        .query_row(
            params![
                i64::try_from(seal::SEALED_PREFIX.len()).unwrap_or(i64::MAX),
                seal::SEALED_PREFIX
            ],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    Ok(found.map(|(id, keys)| {
        let key_id = seal::sealed_key_id(&keys).unwrap_or_default().to_owned();
        (id, key_id)
    }))
}

fn write_endpoint(
    conn: &Connection,
    record: &EndpointRecord,
    sealer: &Sealer,
) -> Result<(), StoreError> {
    let endpoint = &record.endpoint;
    let id = endpoint.id.as_str();
    let event_types: Vec<&EventTypeName> = match &endpoint.event_types {
        EventTypeFilter::All => Vec::new(),
        EventTypeFilter::Only(names) => names.iter().collect(),
    };
    let result = conn
        .prepare_cached(
            "INSERT INTO endpoints (id, uid, url, all_types, event_types, channels, metadata,
                headers, disabled, description, keys, created_at, updated_at, rate_limit,
                ordered, app)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, (SELECT seq FROM apps WHERE id = ?))
             ON CONFLICT (id) DO UPDATE SET uid = excluded.uid, url = excluded.url,
                all_types = excluded.all_types, event_types = excluded.event_types,
                channels = excluded.channels, metadata = excluded.metadata,
                headers = excluded.headers, disabled = excluded.disabled,
                description = excluded.description, keys = excluded.keys,
                created_at = excluded.created_at, updated_at = excluded.updated_at,
                rate_limit = excluded.rate_limit, ordered = excluded.ordered, deleted = 0,
                failing_since = CASE WHEN endpoints.disabled = 1 AND excluded.disabled = 0
                    THEN NULL ELSE endpoints.failing_since END",
        )?
        .execute(params![
            endpoint.id.as_str(),
            endpoint.uid.as_ref().map(EndpointUid::as_str),
            endpoint.url,
            matches!(endpoint.event_types, EventTypeFilter::All),
            to_json(&event_types)?,
            to_json(&endpoint.channels)?,
            to_json(&endpoint.metadata)?,
            sealer.seal(id, HEADERS_FIELD, to_json(&endpoint.headers)?)?,
            endpoint.disabled,
            endpoint.description,
            sealer.seal(id, KEYS_FIELD, to_json(&StoredKeys::of(&record.keys))?)?,
            micros(endpoint.created_at),
            micros(endpoint.updated_at),
            endpoint.rate_limit.map(|n| i64::from(n.get())),
            endpoint.ordered,
            endpoint.app.as_str(),
        ]);
    match result {
        Err(error) if is_unique_violation(&error) => {
            return Err(StoreError::Conflict {
                what: format!(
                    "an endpoint with uid `{}`",
                    endpoint
                        .uid
                        .as_ref()
                        .map(EndpointUid::as_str)
                        .unwrap_or_default()
                ),
            });
        }
        other => other?,
    };
    conn.prepare_cached("DELETE FROM endpoint_types WHERE endpoint_id = ?")?
        .execute([id])?;
    conn.prepare_cached("DELETE FROM endpoint_channels WHERE endpoint_id = ?")?
        .execute([id])?;
    if let EventTypeFilter::Only(names) = &endpoint.event_types {
        let mut insert = conn.prepare_cached(
            "INSERT OR IGNORE INTO endpoint_types (event_type, endpoint_id) VALUES (?, ?)",
        )?;
        for name in names {
            insert.execute([name.as_str(), id])?;
        }
    }
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO endpoint_channels (endpoint_id, channel) VALUES (?, ?)",
    )?;
    for channel in &endpoint.channels {
        insert.execute([id, channel.as_str()])?;
    }
    Ok(())
}

/// The integer keys of a message and an endpoint (`None` for one that does not exist).
fn keys(
    conn: &Connection,
    message: &str,
    endpoint: &str,
) -> Result<(Option<i64>, Option<i64>), StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT (SELECT seq FROM messages WHERE id = ?1),
                    (SELECT seq FROM endpoints WHERE id = ?2)",
        )?
        .query_row([message, endpoint], |row| Ok((row.get(0)?, row.get(1)?)))?)
}

/// The status of a delivery row whose endpoint was deleted while it was pending: not
/// listed, never leased (the model has no such status; the row only keeps the fan-out from
/// speaking for the delivery).
const DROPPED: i64 = 3;

/// Records the attempts and updates the deliveries of a batch; for each item, whether its
/// lease was held. An attempt is recorded whatever happened to the lease: the request was
/// made.
fn finish_in(
    conn: &Connection,
    claims: &Mutex<fanout::Claims>,
    items: &[(Lease, DeliveryUpdate)],
    headers: &[StoredHeaders],
) -> Result<Vec<bool>, StoreError> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO attempts (id, msg, ep, event_type, channel, url, status, response_status,
            response, headers, elided, duration_us, trigger_code, created_at, held, app)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
            (SELECT app FROM messages WHERE seq = ?2))",
    )?;
    let mut headers = headers.iter();
    // A postponement (no attempt) keeps a manual trigger for the attempt still to come.
    let mut update = conn.prepare_cached(
        "UPDATE deliveries SET status = ?4, attempts = ?5, next_attempt_at = ?6,
            leased_until = NULL, lease_token = NULL,
            next_trigger = CASE WHEN ?7 THEN 0 ELSE next_trigger END
         WHERE msg = ?1 AND ep = ?2 AND lease_token = ?3",
    )?;
    let mut claims = claims.lock().unwrap_or_else(PoisonError::into_inner);
    let mut reports = fanout::Reports::new(conn);
    let mut held = Vec::with_capacity(items.len());
    for (lease, change) in items {
        let delivery = &lease.delivery;
        let attempt = with_headers(change, &mut headers)?;
        if let Some(share) = fanout::share_of(lease) {
            let (_, msg, ep) = share;
            let taken = reports.report(&mut claims, share, change)?;
            if let Some((attempt, stored)) = attempt {
                let keys = (Some(msg), Some(ep));
                record_attempt(conn, &mut insert, (attempt, stored, taken), delivery, keys)?;
            }
            held.push(taken);
            continue;
        }
        let (msg, ep) = keys(
            conn,
            delivery.message_id.as_str(),
            delivery.endpoint_id.as_str(),
        )?;
        let taken = match (msg, ep) {
            (Some(msg), Some(ep)) => {
                update.execute(params![
                    msg,
                    ep,
                    lease.token,
                    change.status.code(),
                    change.attempts,
                    micros(change.next_attempt_at),
                    change.attempt.is_some(),
                ])? == 1
            }
            _ => false,
        };
        if let Some((attempt, stored)) = attempt {
            record_attempt(
                conn,
                &mut insert,
                (attempt, stored, taken),
                delivery,
                (msg, ep),
            )?;
        }
        held.push(taken);
    }
    Ok(held)
}

/// The attempt of an update with its stored headers, the next of `headers` (which hold one
/// entry per update *with* an attempt, in order).
fn with_headers<'a>(
    change: &'a DeliveryUpdate,
    headers: &mut std::slice::Iter<'a, StoredHeaders>,
) -> Result<Option<(&'a Attempt, &'a StoredHeaders)>, StoreError> {
    let Some(attempt) = &change.attempt else {
        return Ok(None);
    };
    let stored = headers
        .next()
        .ok_or_else(|| corrupt(format!("attempt {}", attempt.id), "no stored headers"))?;
    Ok(Some((attempt, stored)))
}

/// Records an attempt; `held`: whether its report was taken (made under a lease still held),
/// which only such attempts count towards what a delivery came to.
fn record_attempt(
    conn: &Connection,
    insert: &mut rusqlite::CachedStatement<'_>,
    (attempt, (headers, elided), held): (&Attempt, &StoredHeaders, bool),
    delivery: &Delivery,
    lease_keys: (Option<i64>, Option<i64>),
) -> Result<(), StoreError> {
    // The attempt names its delivery's message and endpoint; look them up only if not.
    let keys = if attempt.message_id == delivery.message_id
        && attempt.endpoint_id == delivery.endpoint_id
    {
        lease_keys
    } else {
        keys(
            conn,
            attempt.message_id.as_str(),
            attempt.endpoint_id.as_str(),
        )?
    };
    let (Some(msg), Some(ep)) = keys else {
        tracing::warn!(attempt = %attempt.id, message = %attempt.message_id,
            endpoint = %attempt.endpoint_id, "attempt names no stored message or endpoint; not recorded");
        return Ok(());
    };
    insert.execute(params![
        attempt.id.as_str(),
        msg,
        ep,
        attempt.event_type.as_str(),
        join_channels(&attempt.channels),
        attempt.url,
        attempt.status.code(),
        attempt.response_status,
        attempt.response,
        headers,
        elided,
        i64::try_from(attempt.duration.as_micros()).unwrap_or(i64::MAX),
        attempt.trigger.code(),
        micros(attempt.timestamp),
        held,
    ])?;
    Ok(())
}

/// The stored headers of the items' attempts, in item order (items without an attempt have
/// none).
fn stored_headers(items: &[(Lease, DeliveryUpdate)]) -> Result<Vec<StoredHeaders>, StoreError> {
    items
        .iter()
        .filter_map(|(_, update)| update.attempt.as_ref())
        .map(rows::stored_headers)
        .collect()
}

/// Applies the outcomes of attempts — (endpoint, success, when), in order — to their
/// endpoints' health: one read per endpoint involved, then one write per endpoint whose
/// health changed (none while all is well).
fn health_in(
    conn: &Connection,
    outcomes: &[(&EndpointId, bool, DateTime<Utc>)],
    disable_after: Duration,
) -> Result<Vec<(EndpointId, HealthChange)>, StoreError> {
    // Per endpoint: its health as read, and as it becomes.
    let mut states: HashMap<&str, (Health, Health)> = HashMap::new();
    let mut read = conn.prepare_cached(
        "SELECT failing_since, disabled FROM endpoints WHERE id = ? AND deleted = 0",
    )?;
    for (id, _, _) in outcomes {
        if states.contains_key(id.as_str()) {
            continue;
        }
        let found: Option<(Option<i64>, bool)> = read
            .query_row([id.as_str()], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        // An endpoint deleted meanwhile has no health to keep.
        let Some((failing_since, disabled)) = found else {
            continue;
        };
        let failing_since = failing_since
            .map(|since| {
                DateTime::from_timestamp_micros(since).ok_or_else(|| {
                    corrupt(format!("endpoint {id}"), format!("failing_since {since}"))
                })
            })
            .transpose()?;
        let health = Health {
            failing_since,
            disabled,
        };
        states.insert(id.as_str(), (health, health));
    }
    let mut changes = Vec::new();
    let mut disabled_at = HashMap::new();
    for &(endpoint, success, at) in outcomes {
        let Some((_, health)) = states.get_mut(endpoint.as_str()) else {
            continue;
        };
        let change = health.apply(success, at, disable_after);
        if let HealthChange::Disabled { .. } = change {
            disabled_at.insert(endpoint.as_str(), at);
        }
        if change != HealthChange::Unchanged {
            changes.push((endpoint.clone(), change));
        }
    }
    let mut write = conn.prepare_cached(
        "UPDATE endpoints SET failing_since = ?, disabled = ?,
            updated_at = COALESCE(?, updated_at)
         WHERE id = ?",
    )?;
    for (id, (before, after)) in states.iter().filter(|(_, (b, a))| b != a) {
        write.execute(params![
            after.failing_since.map(micros),
            after.disabled || before.disabled,
            disabled_at.get(id).copied().map(micros),
            id,
        ])?;
    }
    Ok(changes)
}

/// The outcomes of a batch's attempts, for [`health_in`].
fn outcomes(items: &[(Lease, DeliveryUpdate)]) -> Vec<(&EndpointId, bool, DateTime<Utc>)> {
    items
        .iter()
        .filter_map(|(_, update)| update.attempt.as_ref())
        .map(|a| {
            (
                &a.endpoint_id,
                a.status == AttemptStatus::Success,
                a.timestamp,
            )
        })
        .collect()
}

/// Stores a message for the endpoints that exist: the unordered ones as its fan-out, one
/// delivery row per ordered one (their order is kept by the rows' lease rule).
fn insert_message_in(
    conn: &Connection,
    message: &Message,
    endpoints: &[EndpointId],
) -> Result<(), StoreError> {
    // Svix's rule: one message per event id in an application. The writer thread runs
    // writes one at a time, so the check and the insert cannot interleave with another's.
    if let Some(event_id) = &message.event_id {
        let taken = conn
            .prepare_cached(
                "SELECT 1 FROM messages
                 WHERE app = (SELECT seq FROM apps WHERE id = ?) AND event_id = ?",
            )?
            .exists(params![message.app.as_str(), event_id])?;
        if taken {
            return Err(StoreError::Conflict {
                what: format!("a message with event id `{event_id}`"),
            });
        }
    }
    // One statement for all the endpoints (a message often has many), in the given order.
    let mut find = conn.prepare_cached(
        "SELECT e.seq, e.ordered FROM json_each(?1) j JOIN endpoints e ON e.id = j.value
         WHERE e.deleted = 0 AND e.app = (SELECT seq FROM apps WHERE id = ?2) ORDER BY j.key",
    )?;
    let mut shares: Vec<i64> = Vec::with_capacity(endpoints.len());
    let mut ordered: Vec<i64> = Vec::new();
    let mut found = find.query(params![to_json(&endpoints)?, message.app.as_str()])?;
    while let Some(row) = found.next()? {
        if row.get::<_, bool>(1)? {
            ordered.push(row.get(0)?);
        } else {
            shares.push(row.get(0)?);
        }
    }
    drop(found);
    conn.prepare_cached(
        "INSERT INTO messages (id, event_type, channel, event_id, payload, created_at, fanout,
            app)
         VALUES (?, ?, ?, ?, ?, ?, ?, (SELECT seq FROM apps WHERE id = ?))",
    )?
    .execute(params![
        message.id.as_str(),
        message.event_type.as_str(),
        join_channels(&message.channels),
        message.event_id,
        message.payload,
        micros(message.created_at),
        fanout::encode(&shares),
        message.app.as_str(),
    ])?;
    let msg = conn.last_insert_rowid();
    fanout::start(conn, msg, shares.len())?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO deliveries (msg, ep, status, attempts, next_attempt_at, app)
         VALUES (?1, ?2, 0, 0, ?3, (SELECT app FROM messages WHERE seq = ?1))",
    )?;
    for ep in ordered {
        insert.execute(params![msg, ep, micros(message.created_at)])?;
    }
    Ok(())
}

/// Ids of messages and endpoints by integer key, each looked up once per call.
struct Names<'c> {
    conn: &'c Connection,
    messages: HashMap<i64, String>,
    /// Id, and whether the endpoint is deleted.
    endpoints: HashMap<i64, (EndpointId, bool)>,
}

impl<'c> Names<'c> {
    fn new(conn: &'c Connection) -> Self {
        Self {
            conn,
            messages: HashMap::new(),
            endpoints: HashMap::new(),
        }
    }

    fn message(&mut self, seq: i64) -> Result<&str, StoreError> {
        if let std::collections::hash_map::Entry::Vacant(entry) = self.messages.entry(seq) {
            let id: Option<String> = self
                .conn
                .prepare_cached("SELECT id FROM messages WHERE seq = ?")?
                .query_row([seq], |row| row.get(0))
                .optional()?;
            entry.insert(id.ok_or_else(|| corrupt(format!("message row {seq}"), "missing"))?);
        }
        Ok(self
            .messages
            .get(&seq)
            .map(String::as_str)
            .unwrap_or_default())
    }

    fn lookup(&mut self, seq: i64) -> Result<&(EndpointId, bool), StoreError> {
        if let std::collections::hash_map::Entry::Vacant(entry) = self.endpoints.entry(seq) {
            let found: Option<(String, bool)> = self
                .conn
                .prepare_cached("SELECT id, deleted FROM endpoints WHERE seq = ?")?
                .query_row([seq], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            let (id, deleted) =
                found.ok_or_else(|| corrupt(format!("endpoint row {seq}"), "missing"))?;
            let id = id
                .parse()
                .map_err(|e| corrupt(format!("endpoint {id}"), e))?;
            entry.insert((id, deleted));
        }
        self.endpoints
            .get(&seq)
            .ok_or_else(|| corrupt(format!("endpoint row {seq}"), "missing"))
    }

    /// The endpoint's id (deleted ones too: their attempts still name them).
    fn endpoint(&mut self, seq: i64) -> Result<&EndpointId, StoreError> {
        Ok(&self.lookup(seq)?.0)
    }

    /// The endpoint's id unless it was deleted.
    fn live_endpoint(&mut self, seq: i64) -> Result<Option<EndpointId>, StoreError> {
        let (id, deleted) = self.lookup(seq)?;
        Ok((!deleted).then(|| id.clone()))
    }
}

/// When a delivery row is available: due, and not held by a live lease. The same text as in
/// the `deliveries_ready` index, so that the queries below use it.
const AVAILABLE: &str = "MAX(d.next_attempt_at, COALESCE(d.leased_until, 0))";

/// An application's delivery rows available at `now`, earliest first: (message, endpoint,
/// available at). An ordered endpoint's delivery waits while an earlier message to it is
/// pending.
fn due_rows(
    conn: &Connection,
    app: i64,
    now: i64,
    limit: i64,
) -> Result<Vec<(i64, i64, i64)>, StoreError> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT d.msg, d.ep, {AVAILABLE} FROM deliveries d
         WHERE d.status = 0 AND d.app = ?1 AND {AVAILABLE} <= ?2
           AND (NOT EXISTS (SELECT 1 FROM endpoints e WHERE e.seq = d.ep AND e.ordered = 1)
                OR NOT EXISTS (SELECT 1 FROM deliveries p
                               WHERE p.status = 0 AND p.ep = d.ep AND p.msg < d.msg))
         ORDER BY {AVAILABLE}, d.msg, d.ep LIMIT ?3"
    ))?;
    let rows = statement.query_map(params![app, now, limit], |row| {
        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The applications whose turn has come at `now` (something of theirs may be available),
/// longest waiting first, at most `limit`.
fn due_apps(conn: &Connection, now: i64, limit: i64) -> Result<Vec<i64>, StoreError> {
    let mut statement =
        conn.prepare_cached("SELECT app FROM ready WHERE due <= ?1 ORDER BY due, app LIMIT ?2")?;
    let apps = statement.query_map(params![now, limit], |row| row.get(0))?;
    Ok(apps.collect::<Result<_, _>>()?)
}

/// After an application was served: when it next has something available (the earliest of
/// its pending rows and fan-outs, leased ones at their lease's end), or no turn at all when
/// it has nothing pending. Never later than `now` while something of it is available.
fn next_turn(conn: &Connection, app: i64, now: i64, more: bool) -> Result<(), StoreError> {
    if more {
        // Served its share and has more: behind those that waited longer.
        conn.prepare_cached("UPDATE ready SET due = ?2 WHERE app = ?1")?
            .execute(params![app, now])?;
        return Ok(());
    }
    let row: Option<i64> = conn
        .prepare_cached(&format!(
            "SELECT MIN({AVAILABLE}) FROM deliveries d WHERE d.status = 0 AND d.app = ?1"
        ))?
        .query_row([app], |row| row.get(0))?;
    let fanout: Option<i64> = conn
        .prepare_cached("SELECT MIN(leased_until) FROM fanouts WHERE app = ?1")?
        .query_row([app], |row| row.get(0))?;
    match (row, fanout) {
        (None, None) => {
            conn.prepare_cached("DELETE FROM ready WHERE app = ?1")?
                .execute([app])?;
        }
        (a, b) => {
            let due = a.unwrap_or(i64::MAX).min(b.unwrap_or(i64::MAX)).max(now);
            conn.prepare_cached("UPDATE ready SET due = ?2 WHERE app = ?1")?
                .execute(params![app, due])?;
        }
    }
    Ok(())
}

/// One lease's work on the writer: the token, the claims, and the ids read so far.
struct Batch<'b, 'c> {
    conn: &'c Connection,
    names: &'b mut Names<'c>,
    claims: &'b mut fanout::Claims,
    token: &'b str,
    until: i64,
    now: i64,
}

impl Batch<'_, '_> {
    /// Leases up to `share` of `app`'s available deliveries (earliest first, rows and
    /// fan-outs together; a fan-out is claimed whole, so its last one may take more) into
    /// `leases`. Whether the application has more available.
    fn serve(
        &mut self,
        app: i64,
        share: usize,
        leases: &mut Vec<Lease>,
    ) -> Result<bool, StoreError> {
        let conn = self.conn;
        let limit = i64::try_from(share).unwrap_or(i64::MAX);
        let due_rows = due_rows(conn, app, self.now, limit)?;
        let fanouts = fanout::candidates(conn, app, self.now, limit)?;
        let (row_count, fanout_count) = (due_rows.len(), fanouts.len());
        let mut rows = due_rows.into_iter().peekable();
        let mut fanouts = fanouts.into_iter().peekable();
        let mut lease = conn.prepare_cached(
            "UPDATE deliveries SET leased_until = ?3, lease_token = ?4
             WHERE msg = ?1 AND ep = ?2 RETURNING *",
        )?;
        let mut taken = 0;
        while taken < share {
            let row_first = match (rows.peek(), fanouts.peek()) {
                (Some(row), Some(fanout)) => row.2 <= fanout.due,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            if row_first {
                let Some((msg, ep, _)) = rows.next() else {
                    break;
                };
                let mut updated = lease.query(params![msg, ep, self.until, self.token])?;
                if let Some(row) = updated.next()? {
                    let message = self.names.message(msg)?.to_owned();
                    let endpoint = self.names.endpoint(ep)?.as_str().to_owned();
                    leases.push(Lease {
                        delivery: rows::delivery(row, &message, &endpoint)?,
                        token: self.token.to_owned(),
                    });
                    taken += 1;
                }
            } else if let Some(candidate) = fanouts.next() {
                let claimed =
                    candidate.claim(conn, self.claims, self.names, self.token, self.until)?;
                taken += claimed.len();
                leases.extend(claimed);
            }
        }
        // More when a query filled its limit, or not everything it found was taken.
        let row_left = rows.peek().is_some() || row_count == share;
        let fanout_left = fanouts.peek().is_some() || fanout_count == share;
        Ok(row_left || fanout_left)
    }
}

impl Store for SqliteStore {
    async fn put_event_type(&self, event_type: &EventType) -> Result<(), StoreError> {
        let row = (
            event_type.name.to_string(),
            event_type.description.clone(),
            to_json(&event_type.schema)?,
            event_type.archived,
            micros(event_type.created_at),
            micros(event_type.updated_at),
        );
        self.db
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO event_types (name, description, schema, archived, created_at,
                        updated_at)
                     VALUES (?, ?, ?, ?, ?, ?)
                     ON CONFLICT (name) DO UPDATE SET description = excluded.description,
                        schema = excluded.schema, archived = excluded.archived,
                        created_at = excluded.created_at, updated_at = excluded.updated_at",
                )?
                .execute(params![row.0, row.1, row.2, row.3, row.4, row.5])?;
                Ok(())
            })
            .await
    }

    async fn event_type(&self, name: &EventTypeName) -> Result<Option<EventType>, StoreError> {
        self.db.read(|conn| {
            one(
                conn,
                "SELECT * FROM event_types WHERE name = ?",
                [name.as_str()],
                rows::event_type,
            )
        })
    }

    async fn list_event_types(
        &self,
        page: &PageRequest,
        include_archived: bool,
    ) -> Result<Vec<EventType>, StoreError> {
        let mut query = ListQuery::new("SELECT * FROM event_types");
        if !include_archived {
            query.condition("archived = 0", []);
        }
        self.db
            .read(|conn| query.page(page, "name").fetch(conn, rows::event_type))
    }

    async fn put_application(&self, application: &Application) -> Result<(), StoreError> {
        let row = (
            application.id.to_string(),
            application.uid.as_ref().map(ToString::to_string),
            application.name.clone(),
            to_json(&application.metadata)?,
            application.rate_limit.map(|n| i64::from(n.get())),
            micros(application.created_at),
            micros(application.updated_at),
        );
        self.db
            .write(move |conn| {
                let result = conn
                    .prepare_cached(
                        "INSERT INTO apps (id, uid, name, metadata, rate_limit, created_at,
                            updated_at)
                         VALUES (?, ?, ?, ?, ?, ?, ?)
                         ON CONFLICT (id) DO UPDATE SET uid = excluded.uid,
                            name = excluded.name, metadata = excluded.metadata,
                            rate_limit = excluded.rate_limit,
                            created_at = excluded.created_at, updated_at = excluded.updated_at",
                    )?
                    .execute(params![row.0, row.1, row.2, row.3, row.4, row.5, row.6]);
                match result {
                    Err(error) if is_unique_violation(&error) => Err(StoreError::Conflict {
                        what: format!(
                            "an application with uid `{}`",
                            row.1.as_deref().unwrap_or_default()
                        ),
                    }),
                    other => other.map(|_| ()).map_err(StoreError::from),
                }
            })
            .await
    }

    async fn application(&self, id: &AppId) -> Result<Option<Application>, StoreError> {
        self.db.read(|conn| {
            one(
                conn,
                "SELECT * FROM apps WHERE id = ?",
                [id.as_str()],
                rows::application,
            )
        })
    }

    async fn application_by_uid(&self, uid: &AppUid) -> Result<Option<Application>, StoreError> {
        self.db.read(|conn| {
            one(
                conn,
                "SELECT * FROM apps WHERE uid = ?",
                [uid.as_str()],
                rows::application,
            )
        })
    }

    async fn list_applications(&self, page: &PageRequest) -> Result<Vec<Application>, StoreError> {
        let query = ListQuery::new("SELECT * FROM apps");
        self.db
            .read(|conn| query.page(page, "id").fetch(conn, rows::application))
    }

    async fn delete_application(&self, id: &AppId) -> Result<bool, StoreError> {
        if *id == AppId::default_app() {
            return Ok(false);
        }
        let id = id.to_string();
        self.db
            .write(move |conn| {
                let Some(app) = one(conn, "SELECT seq FROM apps WHERE id = ?", [&id], |row| {
                    Ok(row.get::<_, i64>(0)?)
                })?
                else {
                    return Ok(false);
                };
                // Endpoints become tombstones (attempts still out name them), as when one is
                // deleted; messages keep a row with nothing in it, so their keys are never
                // reused; everything else of the application goes.
                for sql in [
                    "UPDATE endpoints SET deleted = 1, uid = NULL, keys = '', headers = '{}',
                        metadata = '{}', event_types = '[]', channels = '[]', all_types = 0,
                        disabled = 1
                     WHERE app = ?1 AND deleted = 0",
                    "DELETE FROM endpoint_types WHERE endpoint_id IN
                        (SELECT id FROM endpoints WHERE app = ?1)",
                    "DELETE FROM endpoint_channels WHERE endpoint_id IN
                        (SELECT id FROM endpoints WHERE app = ?1)",
                    "DELETE FROM deliveries WHERE msg IN (SELECT seq FROM messages WHERE app = ?1)",
                    "DELETE FROM fanouts WHERE app = ?1",
                    "DELETE FROM ready WHERE app = ?1",
                    "DELETE FROM attempts WHERE msg IN (SELECT seq FROM messages WHERE app = ?1)",
                    "UPDATE messages SET payload = '', expired = 1, fanout = '', event_id = NULL
                     WHERE app = ?1",
                    "DELETE FROM access_tokens WHERE app = ?1",
                    "DELETE FROM apps WHERE seq = ?1",
                ] {
                    conn.prepare_cached(sql)?.execute([app])?;
                }
                Ok(true)
            })
            .await
    }

    async fn put_endpoint(&self, record: &EndpointRecord) -> Result<(), StoreError> {
        let (record, sealer) = (record.clone(), self.sealer.clone());
        self.db
            .write(move |conn| write_endpoint(conn, &record, &sealer))
            .await
    }

    async fn endpoint(
        &self,
        app: &AppId,
        id: &EndpointId,
    ) -> Result<Option<EndpointRecord>, StoreError> {
        self.db.read(|conn| {
            one(
                conn,
                &format!(
                    "{SELECT_ENDPOINTS} WHERE e.id = ? AND e.app = {APP_KEY} AND e.deleted = 0"
                ),
                [id.as_str(), app.as_str()],
                |row| rows::endpoint_record(row, &self.sealer),
            )
        })
    }

    async fn endpoints(&self, ids: &[EndpointId]) -> Result<Vec<EndpointRecord>, StoreError> {
        self.db.read(|conn| {
            let mut found = Vec::with_capacity(ids.len());
            let sql = format!("{SELECT_ENDPOINTS} WHERE e.id = ? AND e.deleted = 0");
            for id in ids {
                found.extend(one(conn, &sql, [id.as_str()], |row| {
                    rows::endpoint_record(row, &self.sealer)
                })?);
            }
            Ok(found)
        })
    }

    async fn endpoint_by_uid(
        &self,
        app: &AppId,
        uid: &EndpointUid,
    ) -> Result<Option<EndpointRecord>, StoreError> {
        self.db.read(|conn| {
            one(
                conn,
                &format!(
                    "{SELECT_ENDPOINTS} WHERE e.app = {APP_KEY} AND e.uid = ? AND e.deleted = 0"
                ),
                [app.as_str(), uid.as_str()],
                |row| rows::endpoint_record(row, &self.sealer),
            )
        })
    }

    async fn delete_endpoint(&self, app: &AppId, id: &EndpointId) -> Result<bool, StoreError> {
        let (app, id) = (app.to_string(), id.to_string());
        self.db
            .write(move |conn| {
                // A tombstone: its attempts still name it; its secrets, headers and uid go.
                let deleted = conn
                    .prepare_cached(
                        "UPDATE endpoints SET deleted = 1, uid = NULL, keys = '',
                            headers = '{}', metadata = '{}', event_types = '[]',
                            channels = '[]', all_types = 0, disabled = 1
                         WHERE id = ?1 AND deleted = 0
                           AND app = (SELECT seq FROM apps WHERE id = ?2)",
                    )?
                    .execute([&id, &app])?;
                if deleted == 0 {
                    return Ok(false);
                }
                for sql in [
                    "DELETE FROM endpoint_types WHERE endpoint_id = ?",
                    "DELETE FROM endpoint_channels WHERE endpoint_id = ?",
                    // Dropped, not deleted: the row still stands for the delivery, so a
                    // fan-out share it took over (a resend) is not read back from the
                    // fan-out as what it came to before.
                    "UPDATE deliveries SET status = 3, leased_until = NULL, lease_token = NULL
                     WHERE status = 0 AND ep = (SELECT seq FROM endpoints WHERE id = ?)",
                ] {
                    conn.prepare_cached(sql)?.execute([&id])?;
                }
                Ok(true)
            })
            .await
    }

    async fn list_endpoints(
        &self,
        app: &AppId,
        filter: &EndpointFilter,
        page: &PageRequest,
    ) -> Result<Vec<Endpoint>, StoreError> {
        let mut query = ListQuery::new(SELECT_ENDPOINTS);
        query.condition(&format!("e.app = {APP_KEY}"), [text(app.as_str())]);
        query.condition("e.deleted = 0", []);
        if let Some(event_type) = &filter.event_type {
            query.condition(RECEIVES_TYPE, [text(event_type.as_str())]);
        }
        if let Some(channel) = &filter.channel {
            query.condition(
                &format!("({HAS_NO_CHANNELS} OR {HAS_CHANNEL})"),
                [text(channel.as_str())],
            );
        }
        self.db.read(|conn| {
            query
                .page(page, "e.id")
                .fetch(conn, |row| rows::endpoint(row, &self.sealer))
        })
    }

    async fn recipients(
        &self,
        app: &AppId,
        event_type: &EventTypeName,
        channels: &[Channel],
    ) -> Result<Vec<EndpointId>, StoreError> {
        let mut query = ListQuery::new("SELECT e.id FROM endpoints e");
        query.condition(&format!("e.app = {APP_KEY}"), [text(app.as_str())]);
        query.condition("e.deleted = 0 AND e.disabled = 0", []);
        query.condition(RECEIVES_TYPE, [text(event_type.as_str())]);
        match channels {
            [] => query.condition(HAS_NO_CHANNELS, []),
            [channel] => query.condition(
                &format!("({HAS_NO_CHANNELS} OR {HAS_CHANNEL})"),
                [text(channel.as_str())],
            ),
            several => query.condition(
                &format!(
                    "({HAS_NO_CHANNELS} OR EXISTS (SELECT 1 FROM endpoint_channels c
                        WHERE c.endpoint_id = e.id AND c.channel IN ({})))",
                    placeholders(several.len())
                ),
                several.iter().map(|c| text(c.as_str())),
            ),
        }
        query.sql.push_str(" ORDER BY e.id");
        self.db.read(|conn| {
            query.fetch(conn, |row| {
                let id: String = row.get(0)?;
                id.parse().map_err(|e| corrupt(format!("endpoint {id}"), e))
            })
        })
    }

    async fn insert_message(
        &self,
        message: &Message,
        endpoints: &[EndpointId],
    ) -> Result<(), StoreError> {
        let (message, endpoints) = (message.clone(), endpoints.to_vec());
        self.db
            .write(move |conn| insert_message_in(conn, &message, &endpoints))
            .await
    }

    async fn message(&self, app: &AppId, id: &MessageId) -> Result<Option<Message>, StoreError> {
        self.db.read(|conn| {
            one(
                conn,
                &format!("{SELECT_MESSAGES} WHERE m.id = ? AND m.app = {APP_KEY}"),
                [id.as_str(), app.as_str()],
                rows::message,
            )
        })
    }

    async fn messages(&self, ids: &[MessageId]) -> Result<Vec<Message>, StoreError> {
        self.db.read(|conn| {
            let mut found = Vec::with_capacity(ids.len());
            let sql = format!("{SELECT_MESSAGES} WHERE m.id = ?");
            for id in ids {
                found.extend(one(conn, &sql, [id.as_str()], rows::message)?);
            }
            Ok(found)
        })
    }

    async fn list_messages(
        &self,
        app: &AppId,
        filter: &MessageFilter,
        page: &PageRequest,
    ) -> Result<Vec<Message>, StoreError> {
        let mut query = ListQuery::new(SELECT_MESSAGES);
        query.condition(&format!("m.app = {APP_KEY}"), [text(app.as_str())]);
        query.any_of(
            "m.event_type",
            filter.event_types.iter().map(EventTypeName::as_str),
        );
        if let Some(channel) = &filter.channel {
            query.condition(HAS_MESSAGE_CHANNEL_M, [text(channel.as_str())]);
        }
        if let Some(before) = filter.before {
            query.condition("m.created_at < ?", [SqlValue::Integer(micros(before))]);
        }
        if let Some(after) = filter.after {
            query.condition("m.created_at > ?", [SqlValue::Integer(micros(after))]);
        }
        if let Some(lowest) = filter.lowest_id() {
            query.condition("m.id >= ?", [text(lowest.as_str())]);
        }
        self.db
            .read(|conn| query.page(page, "m.id").fetch(conn, rows::message))
    }

    async fn deliveries(
        &self,
        app: &AppId,
        message: &MessageId,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.db.read(|conn| {
            let Some((seq, stored)) = one(
                conn,
                &format!("{SELECT_MESSAGES} WHERE m.id = ? AND m.app = {APP_KEY}"),
                [message.as_str(), app.as_str()],
                |row| Ok((row.get::<_, i64>("seq")?, rows::message(row)?)),
            )?
            else {
                return Ok(Vec::new());
            };
            let mut statement = conn.prepare_cached(
                "SELECT d.*, (SELECT id FROM endpoints WHERE seq = d.ep) AS endpoint_id
                 FROM deliveries d WHERE d.msg = ?",
            )?;
            let mut found = Vec::new();
            let mut with_rows = HashSet::new();
            let mut rows = statement.query([seq])?;
            while let Some(row) = rows.next()? {
                with_rows.insert(row.get::<_, i64>("ep")?);
                if row.get::<_, i64>("status")? == DROPPED {
                    continue;
                }
                let endpoint: String = row.get("endpoint_id")?;
                found.push(rows::delivery(row, message.as_str(), &endpoint)?);
            }
            drop(rows);
            let mut names = Names::new(conn);
            found.extend(fanout::derived(conn, &stored, seq, &with_rows, &mut names)?);
            found.sort_by(|a, b| a.endpoint_id.cmp(&b.endpoint_id));
            Ok(found)
        })
    }

    async fn lease_deliveries_within(
        &self,
        now: DateTime<Utc>,
        lease_for: Duration,
        limit: usize,
        limits: &AppLimits,
    ) -> Result<Vec<Lease>, StoreError> {
        let token = lease_token();
        let until = micros(after(now, lease_for));
        let now = micros(now);
        let wanted = limit.max(1);
        let each = limits.each.unwrap_or(usize::MAX);
        let room: Vec<(String, usize)> = limits
            .room
            .iter()
            .map(|(app, room)| (app.to_string(), (*room).min(each)))
            .collect();
        let claims = Arc::clone(&self.claims);
        self.db
            .write_relaxed(move |conn| {
                // Under the write lock, so two workers (even in two processes) never come
                // back with the same delivery.
                let mut rooms: HashMap<i64, usize> = HashMap::with_capacity(room.len());
                for (id, room) in &room {
                    if let Some(app) = one(conn, "SELECT seq FROM apps WHERE id = ?", [id], |r| {
                        Ok(r.get::<_, i64>(0)?)
                    })? {
                        rooms.insert(app, *room);
                    }
                }
                let full = rooms.values().filter(|room| **room == 0).count();
                let mut active =
                    due_apps(conn, now, i64::try_from(wanted + full).unwrap_or(i64::MAX))?;
                active.retain(|app| rooms.get(app).is_none_or(|room| *room > 0));
                active.truncate(wanted);
                let mut names = Names::new(conn);
                let mut leases = Vec::with_capacity(wanted);
                let mut claims = claims.lock().unwrap_or_else(PoisonError::into_inner);
                let mut batch = Batch {
                    conn,
                    names: &mut names,
                    claims: &mut claims,
                    token: &token,
                    until,
                    now,
                };
                // Turns: every application with something due gets an equal share of what
                // is left; one that has less than its share is done, and the others share
                // what it left in the next turn.
                while !active.is_empty() && leases.len() < wanted {
                    let share = (wanted - leases.len()).div_ceil(active.len()).max(1);
                    let mut more = Vec::with_capacity(active.len());
                    for app in active {
                        let room = wanted.saturating_sub(leases.len());
                        if room == 0 {
                            // Its turn did not come in this batch: it keeps its place.
                            continue;
                        }
                        let app_room = rooms.entry(app).or_insert(each);
                        let before = leases.len();
                        let has_more =
                            batch.serve(app, share.min(room).min(*app_room), &mut leases)?;
                        *app_room = app_room.saturating_sub(leases.len() - before);
                        if has_more && *app_room > 0 {
                            more.push(app);
                        }
                        next_turn(conn, app, now, has_more)?;
                    }
                    active = more;
                }
                drop(claims);
                leases.sort_by(|a, b| {
                    (a.delivery.next_attempt_at, &a.delivery.message_id)
                        .cmp(&(b.delivery.next_attempt_at, &b.delivery.message_id))
                });
                Ok(leases)
            })
            .await
    }

    async fn finish_delivery(
        &self,
        lease: &Lease,
        update: &DeliveryUpdate,
    ) -> Result<bool, StoreError> {
        let items = [(lease.clone(), update.clone())];
        let headers = stored_headers(&items)?;
        let claims = Arc::clone(&self.claims);
        self.db
            .write_relaxed(move |conn| {
                Ok(finish_in(conn, &claims, &items, &headers)?
                    .first()
                    .copied()
                    .unwrap_or(false))
            })
            .await
    }

    async fn finish_deliveries(
        &self,
        items: Vec<(Lease, DeliveryUpdate)>,
        disable_after: Duration,
    ) -> Result<Finished, StoreError> {
        if items.is_empty() {
            return Ok(Finished::default());
        }
        // Serialised here, not on the writer thread every write waits for.
        let headers = stored_headers(&items)?;
        let claims = Arc::clone(&self.claims);
        let (finished, items) = self
            .db
            .write_relaxed(move |conn| {
                let held = finish_in(conn, &claims, &items, &headers)?;
                let health = health_in(conn, &outcomes(&items), disable_after)?;
                // The items go back to be freed where they were made: freeing another
                // thread's allocations costs the writer, which every write waits for.
                Ok((Finished { held, health }, (items, headers)))
            })
            .await?;
        drop(items);
        Ok(finished)
    }

    async fn list_attempts(
        &self,
        app: &AppId,
        filter: &AttemptFilter,
        page: &PageRequest,
    ) -> Result<Vec<Attempt>, StoreError> {
        let mut query = ListQuery::new(SELECT_ATTEMPTS);
        query.condition(&format!("a.app = {APP_KEY}"), [text(app.as_str())]);
        if let Some(message) = &filter.message {
            query.condition(
                "a.msg = (SELECT seq FROM messages WHERE id = ?)",
                [text(message.as_str())],
            );
        }
        if let Some(endpoint) = &filter.endpoint {
            query.condition(
                "a.ep = (SELECT seq FROM endpoints WHERE id = ?)",
                [text(endpoint.as_str())],
            );
        }
        query.any_of(
            "a.event_type",
            filter.event_types.iter().map(EventTypeName::as_str),
        );
        if let Some(channel) = &filter.channel {
            query.condition(HAS_MESSAGE_CHANNEL_A, [text(channel.as_str())]);
        }
        if let Some(status) = filter.status {
            // A literal (one of four codes), so the partial index of failures can serve it.
            query.condition(&format!("a.status = {}", status.code()), []);
        }
        if let Some(range) = &filter.response_status {
            query.condition(
                "a.response_status BETWEEN ? AND ?",
                [
                    SqlValue::Integer(i64::from(*range.start())),
                    SqlValue::Integer(i64::from(*range.end())),
                ],
            );
        }
        if let Some(time) = filter.before {
            query.condition("a.created_at < ?", [SqlValue::Integer(micros(time))]);
        }
        if let Some(time) = filter.after {
            query.condition("a.created_at > ?", [SqlValue::Integer(micros(time))]);
        }
        // In the order recorded; the cursor is the id of the last attempt of the page before
        // (one that names no attempt lists nothing).
        self.db.read(|conn| {
            query
                .page_from(page, "a.seq", ATTEMPT_CURSOR)
                .fetch(conn, rows::attempt)
        })
    }

    async fn attempt(&self, app: &AppId, id: &AttemptId) -> Result<Option<Attempt>, StoreError> {
        self.db.read(|conn| {
            one(
                conn,
                &format!(
                    "{SELECT_ATTEMPTS} WHERE a.id = ? AND EXISTS (SELECT 1 FROM messages m \
                     WHERE m.seq = a.msg AND m.app = {APP_KEY})"
                ),
                [id.as_str(), app.as_str()],
                rows::attempt,
            )
        })
    }

    async fn attempt_counts(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<AttemptCounts, StoreError> {
        self.db.read(|conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT a.status, count(*) FROM attempts a
                 WHERE a.ep = (SELECT seq FROM endpoints WHERE id = ? AND app = {APP_KEY})
                   AND a.created_at >= ? AND a.created_at < ?
                 GROUP BY a.status"
            ))?;
            let mut rows = statement.query(params![
                endpoint.as_str(),
                app.as_str(),
                micros(since),
                micros(until)
            ])?;
            let mut counts = AttemptCounts::default();
            while let Some(row) = rows.next()? {
                let code: i64 = row.get(0)?;
                let count: i64 = row.get(1)?;
                let status = AttemptStatus::from_code(code)
                    .ok_or_else(|| corrupt("attempt status", code))?;
                counts.add(status, u64::try_from(count).unwrap_or(0));
            }
            Ok(counts)
        })
    }

    async fn attempt_histogram(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        buckets: u32,
    ) -> Result<Vec<AttemptCounts>, StoreError> {
        let (from, to) = (micros(since), micros(until));
        let spans = if to > from { buckets as usize } else { 0 };
        let mut counts = vec![AttemptCounts::default(); spans];
        if spans == 0 {
            return Ok(counts);
        }
        self.db.read(|conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT min(a.created_at), a.status, count(*) FROM attempts a
                 WHERE a.ep = (SELECT seq FROM endpoints WHERE id = ? AND app = {APP_KEY})
                   AND a.created_at >= ? AND a.created_at < ?
                 GROUP BY ((a.created_at - ?) * ?) / ?, a.status"
            ))?;
            let mut rows = statement.query(params![
                endpoint.as_str(),
                app.as_str(),
                from,
                to,
                from,
                i64::from(buckets),
                to - from
            ])?;
            while let Some(row) = rows.next()? {
                let at: i64 = row.get(0)?;
                let code: i64 = row.get(1)?;
                let count: i64 = row.get(2)?;
                let status = AttemptStatus::from_code(code)
                    .ok_or_else(|| corrupt("attempt status", code))?;
                if let Some(slot) = bucket_of(at, from, to, buckets).and_then(|i| counts.get_mut(i))
                {
                    slot.add(status, u64::try_from(count).unwrap_or(0));
                }
            }
            Ok(counts)
        })
    }

    async fn failing_since(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let since: Option<Option<i64>> = self.db.read(|conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT failing_since FROM endpoints
                     WHERE id = ? AND app = {APP_KEY} AND deleted = 0"
                ))?
                .query_row([endpoint.as_str(), app.as_str()], |row| row.get(0))
                .optional()?)
        })?;
        since
            .flatten()
            .map(|since| {
                DateTime::from_timestamp_micros(since).ok_or_else(|| {
                    corrupt(
                        format!("endpoint {endpoint}"),
                        format!("failing_since {since}"),
                    )
                })
            })
            .transpose()
    }

    async fn expunge_payload(&self, app: &AppId, message: &MessageId) -> Result<bool, StoreError> {
        let (app, message) = (app.to_string(), message.to_string());
        self.db
            .write(move |conn| {
                let changed = conn
                    .prepare_cached(&format!(
                        "UPDATE messages SET payload = '', expired = 1
                         WHERE id = ? AND app = {APP_KEY}"
                    ))?
                    .execute([message, app])?;
                Ok(changed > 0)
            })
            .await
    }

    async fn expunge_response(&self, app: &AppId, attempt: &AttemptId) -> Result<bool, StoreError> {
        let (app, attempt) = (app.to_string(), attempt.to_string());
        self.db
            .write(move |conn| {
                let changed = conn
                    .prepare_cached(&format!(
                        "UPDATE attempts SET response = ''
                         WHERE id = ? AND EXISTS (SELECT 1 FROM messages m
                             WHERE m.seq = attempts.msg AND m.app = {APP_KEY})"
                    ))?
                    .execute([attempt, app])?;
                Ok(changed > 0)
            })
            .await
    }

    async fn requeue_delivery(
        &self,
        app: &AppId,
        message: &MessageId,
        endpoint: &EndpointId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (app, message, endpoint) = (app.to_string(), message.to_string(), endpoint.to_string());
        self.db
            .write(move |conn| {
                let inserted = conn
                    .prepare_cached(
                        "INSERT INTO deliveries (msg, ep, status, attempts, next_attempt_at,
                            next_trigger, app)
                         SELECT m.seq, e.seq, 0, 0, ?3, 1, m.app FROM messages m, endpoints e
                         WHERE m.id = ?1 AND e.id = ?2
                           AND m.app = (SELECT seq FROM apps WHERE id = ?4) AND e.app = m.app
                         ON CONFLICT (msg, ep) DO UPDATE SET status = 0, attempts = 0,
                            next_attempt_at = excluded.next_attempt_at, next_trigger = 1,
                            leased_until = NULL, lease_token = NULL",
                    )?
                    .execute(params![message, endpoint, micros(now), app])?;
                // A share of this delivery still out loses it to the resend (the row now
                // stands for it), and the fan-out's next claim leaves it out.
                if inserted > 0
                    && let (Some(msg), Some(_)) = keys(conn, &message, &endpoint)?
                {
                    fanout::recount(conn, msg)?;
                }
                Ok(())
            })
            .await
    }

    async fn recover_deliveries(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let (app, endpoint) = (app.to_string(), endpoint.to_string());
        let until = until.map(micros);
        self.db
            .write(move |conn| {
                let changed = conn
                    .prepare_cached(
                        "UPDATE deliveries SET status = 0, attempts = 0, next_attempt_at = ?1,
                            next_trigger = 1, leased_until = NULL, lease_token = NULL
                         WHERE status = 2
                           AND ep = (SELECT seq FROM endpoints WHERE id = ?2
                                     AND app = (SELECT seq FROM apps WHERE id = ?4))
                           AND msg IN (SELECT seq FROM messages WHERE created_at >= ?3
                                       AND (?5 IS NULL OR created_at < ?5))",
                    )?
                    .execute(params![micros(now), endpoint, micros(since), app, until])?;
                Ok(changed as u64)
            })
            .await
    }

    async fn record_health(
        &self,
        endpoint: &EndpointId,
        success: bool,
        now: DateTime<Utc>,
        disable_after: Duration,
    ) -> Result<HealthChange, StoreError> {
        let endpoint = endpoint.clone();
        self.db
            .write_relaxed(move |conn| {
                let changes = health_in(conn, &[(&endpoint, success, now)], disable_after)?;
                Ok(changes
                    .into_iter()
                    .next()
                    .map_or(HealthChange::Unchanged, |(_, change)| change))
            })
            .await
    }

    async fn idempotency_begin(
        &self,
        key: &str,
        now: DateTime<Utc>,
        hold_until: DateTime<Utc>,
    ) -> Result<IdempotencyClaim, StoreError> {
        let key = key.to_owned();
        let sealer = self.sealer.clone();
        // One writer: the look and the claim cannot interleave with another request's.
        self.db
            .write_relaxed(move |conn| {
                let found = conn
                    .prepare_cached(
                        "SELECT status, headers, body FROM idempotency WHERE key = ? AND until > ?",
                    )?
                    .query_row(params![key, micros(now)], |row| {
                        Ok((
                            row.get::<_, Option<i64>>(0)?,
                            row.get::<_, Option<String>>(1)?,
                            row.get::<_, Option<Vec<u8>>>(2)?,
                        ))
                    })
                    .optional()?;
                match found {
                    Some((Some(status), headers, body)) => {
                        let body = body
                            .map(|body| sealer.open_bytes(&key, RESPONSE_FIELD, body))
                            .transpose()?;
                        Ok(IdempotencyClaim::Done(RememberedResponse::from_columns(
                            status,
                            headers.as_deref(),
                            body,
                        )?))
                    }
                    Some((None, _, _)) => Ok(IdempotencyClaim::Running),
                    None => {
                        conn.prepare_cached(
                            "INSERT OR REPLACE INTO idempotency (key, until) VALUES (?, ?)",
                        )?
                        .execute(params![key, micros(hold_until)])?;
                        Ok(IdempotencyClaim::Claimed)
                    }
                }
            })
            .await
    }

    async fn idempotency_finish(
        &self,
        key: &str,
        response: &RememberedResponse,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let key = key.to_owned();
        let headers = to_json(&response.headers)?;
        let status = i64::from(response.status);
        let body = self
            .sealer
            .seal_bytes(&key, RESPONSE_FIELD, response.body.clone())?;
        self.db
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT OR REPLACE INTO idempotency (key, until, status, headers, body)
                     VALUES (?, ?, ?, ?, ?)",
                )?
                .execute(params![
                    key,
                    micros(expires_at),
                    status,
                    headers,
                    body
                ])?;
                Ok(())
            })
            .await
    }

    async fn idempotency_release(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.db
            .write_relaxed(move |conn| {
                conn.prepare_cached("DELETE FROM idempotency WHERE key = ? AND status IS NULL")?
                    .execute([key])?;
                Ok(())
            })
            .await
    }

    async fn purge_idempotency(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let now = micros(now);
        self.db
            .write_relaxed(move |conn| {
                let purged = conn
                    .prepare_cached("DELETE FROM idempotency WHERE until <= ?")?
                    .execute([now])?;
                Ok(purged as u64)
            })
            .await
    }

    async fn put_access_token(&self, token: &AccessToken) -> Result<bool, StoreError> {
        let token = token.clone();
        self.db
            .write(move |conn| {
                let inserted = conn
                    .prepare_cached(
                        "INSERT OR REPLACE INTO access_tokens (hash, app, expires_at, read_only)
                         SELECT ?, seq, ?, ? FROM apps WHERE id = ?",
                    )?
                    .execute(params![
                        token.hash,
                        micros(token.expires_at),
                        token.read_only,
                        token.app.as_str()
                    ])?;
                Ok(inserted > 0)
            })
            .await
    }

    async fn access_token(&self, hash: &str) -> Result<Option<AccessToken>, StoreError> {
        self.db.read(|conn| {
            one(
                conn,
                "SELECT t.hash, a.id, t.expires_at, t.read_only
                 FROM access_tokens t JOIN apps a ON a.seq = t.app WHERE t.hash = ?",
                [hash],
                |row| {
                    let app: String = row.get(1)?;
                    let expires: i64 = row.get(2)?;
                    Ok(AccessToken {
                        hash: row.get(0)?,
                        app: app
                            .parse()
                            .map_err(|e| corrupt("access token's application", e))?,
                        expires_at: DateTime::from_timestamp_micros(expires)
                            .ok_or_else(|| corrupt("access token's expiry", expires))?,
                        read_only: row.get(3)?,
                    })
                },
            )
        })
    }

    async fn delete_access_token(&self, hash: &str) -> Result<bool, StoreError> {
        let hash = hash.to_owned();
        self.db
            .write(move |conn| {
                let deleted = conn
                    .prepare_cached("DELETE FROM access_tokens WHERE hash = ?")?
                    .execute([hash])?;
                Ok(deleted > 0)
            })
            .await
    }

    async fn purge_access_tokens(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let now = micros(now);
        self.db
            .write_relaxed(move |conn| {
                let purged = conn
                    .prepare_cached("DELETE FROM access_tokens WHERE expires_at <= ?")?
                    .execute([now])?;
                Ok(purged as u64)
            })
            .await
    }

    async fn purge_payloads(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let before = micros(before);
        self.db
            .write_relaxed(move |conn| {
                let purged = conn
                    .prepare_cached(
                        "UPDATE messages SET payload = '', expired = 1
                         WHERE created_at < ? AND expired = 0",
                    )?
                    .execute([before])?;
                Ok(purged as u64)
            })
            .await
    }
}

/// `?, ?, …`: `n` parameters for an `IN (…)` list.
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

#[cfg(test)]
mod tests;
