//! The [`Store`] on PostgreSQL: several processes (the nodes of a cluster) on one database,
//! leasing with `FOR UPDATE SKIP LOCKED`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use super::keys::{HEADERS_FIELD, KEYS_FIELD, RESPONSE_FIELD, Sealer, StoredKeys};
use super::{
    AccessToken, AppLimits, AttemptCounts, AttemptFilter, EndpointFilter, Finished, Health,
    HealthChange, IdempotencyClaim, MessageFilter, RememberedResponse, Store, bucket_of,
    join_channels, lease_token,
};
use crate::error::StoreError;
use crate::id::{AppId, AttemptId, EndpointId, MessageId};
use crate::model::{
    AppUid, Application, Attempt, AttemptStatus, AttemptTrigger, Channel, Delivery, DeliveryUpdate,
    Endpoint, EndpointRecord, EndpointUid, EventType, EventTypeFilter, EventTypeName, Lease,
    Message, after,
};
use crate::page::{Order, PageRequest};
use crate::seal::{self, KeyRing, SealError};

mod fanout;
mod lease;
mod listen;
mod rows;
mod schema;

use rows::{corrupt, to_json};

/// Endpoints sealed again per statement by [`PostgresStore::reseal`].
const RESEAL_BATCH: usize = 256;

/// A column holding sealed values, and the record id they are bound to.
struct SealedColumn {
    table: &'static str,
    /// The record's id column (the associated data's record).
    id: &'static str,
    column: &'static str,
    /// The field the values are sealed as.
    field: &'static str,
    /// Whether the column is `text` (else `bytea`).
    text: bool,
}

impl SealedColumn {
    /// The column's value as bytes.
    fn value(&self) -> String {
        self.value_of(self.table)
    }

    /// [`SealedColumn::value`] through the table's alias `alias`.
    fn value_of(&self, alias: &str) -> String {
        if self.text {
            format!("convert_to({alias}.{}, 'UTF8')", self.column)
        } else {
            format!("{alias}.{}", self.column)
        }
    }

    /// What to store from the bytes `expr`.
    fn stored(&self, expr: &str) -> String {
        if self.text {
            format!("convert_from({expr}, 'UTF8')")
        } else {
            expr.to_owned()
        }
    }
}

/// Every column a main key seals: an endpoint's signing keys and custom headers, and the
/// responses kept for idempotent replay (a rotated secret or a portal token may be in one).
const SEALED_COLUMNS: [SealedColumn; 3] = [
    SealedColumn {
        table: "endpoints",
        id: "id",
        column: "keys",
        field: KEYS_FIELD,
        text: true,
    },
    SealedColumn {
        table: "endpoints",
        id: "id",
        column: "headers",
        field: HEADERS_FIELD,
        text: true,
    },
    SealedColumn {
        table: "idempotency",
        id: "key",
        column: "body",
        field: RESPONSE_FIELD,
        text: false,
    },
];

/// What a pass of sealing again rewrote.
#[derive(Debug, Default, Clone, Copy)]
struct Resealed {
    /// Values rewritten.
    values: usize,
    /// Whether a clear value was among them.
    clear: bool,
}

/// How a [`PostgresStore`] connects.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// The most connections the store opens (default 16). Each node of a cluster has its own
    /// pool: keep their sum under the server's `max_connections`.
    pub max_connections: usize,
    /// How long a call waits for a free connection before failing with
    /// [`StoreError::Pool`] (default 30 s).
    pub wait_timeout: Duration,
    /// How long opening a connection may take (default 10 s).
    pub connect_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            wait_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// A [`Store`] in a PostgreSQL database, for running several processes (the nodes of a
/// cluster) on one set of data. SQLite stays the zero-setup default; this store is for
/// outgrowing one machine.
///
/// Everything the trait promises holds across processes: a message and its deliveries are
/// one statement; a lease takes rows with `FOR UPDATE SKIP LOCKED` and marks them leased in
/// the same transaction, so two processes never hold the same delivery; a lease held by a
/// process that died runs out and is taken over. Leases are shared fairly among
/// applications (see [`Store::lease_deliveries`]): the store walks the applications that have
/// pending deliveries, served longest ago first, through one index, never a backlog.
///
/// The schema is versioned; opening a database migrates it (once, under an advisory lock,
/// however many processes start together) and refuses one a newer build wrote. Tables are
/// made in the connection's `search_path` (by default `public`): give the connection string
/// `options=-csearch_path=switchyard` to keep them in a schema of their own.
///
/// Connections are plain TCP without TLS: run it on a trusted network or through a local
/// proxy. Endpoint secrets are stored in the database so that deliveries can be signed:
/// protect it like any credential store.
///
/// ```no_run
/// use switchyard_webhooks::{Registry, store::PostgresStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = PostgresStore::connect("postgres://postgres@127.0.0.1:5432/switchyard").await?;
/// let registry = Registry::new(store);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    changes: std::sync::Arc<listen::Changes>,
    /// The fan-out claims this process holds (shared by every clone of the handle).
    claims: std::sync::Arc<std::sync::Mutex<fanout::Claims>>,
    /// Seals endpoints' keys and headers (or keeps them clear).
    sealer: Sealer,
}

impl fmt::Debug for PostgresStore {
    // The pool's configuration holds the connection's password: show only its state.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.pool.status();
        f.debug_struct("PostgresStore")
            .field("max_connections", &status.max_size)
            .field("open", &status.size)
            .field("idle", &status.available)
            .finish_non_exhaustive()
    }
}

/// Makes the transaction commit without waiting for its WAL to reach the disk: for the
/// delivery engine's bookkeeping (leases, attempt outcomes, health), as the SQLite store
/// does. A database crash can lose the last fraction of a second of them, and those
/// deliveries are made again, which at-least-once allows; what a send stores is never
/// committed this way.
async fn bookkeeping(tx: &deadpool_postgres::Transaction<'_>) -> Result<(), StoreError> {
    tx.batch_execute("SET LOCAL synchronous_commit = off")
        .await?;
    Ok(())
}

/// Whether an error is one a retry of the whole transaction can cure.
fn retryable(error: &StoreError) -> bool {
    matches!(error, StoreError::Postgres(e)
        if matches!(e.code(), Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED
            || *c == SqlState::T_R_SERIALIZATION_FAILURE))
}

/// Whether an error is a unique index refusing a duplicate.
fn unique_violation(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// The page clause of a keyset list on `column`: `(comparison, direction)`.
fn keyset(page: &PageRequest) -> (&'static str, &'static str) {
    match page.order {
        Order::Ascending => (">", "ASC"),
        Order::Descending => ("<", "DESC"),
    }
}

/// `limit + 1`, as a query parameter.
fn take(page: &PageRequest) -> i64 {
    i64::try_from(page.limit.saturating_add(1)).unwrap_or(i64::MAX)
}

fn micros(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros()
}

/// The columns of an endpoint, with its application's id as `app_id`.
const ENDPOINT_COLUMNS: &str = "e.id, a.id AS app_id, e.uid, e.url, e.all_types, e.event_types,
    e.channels, e.metadata, e.headers, e.disabled, e.description, e.keys, e.rate_limit,
    e.ordered, e.created_at, e.updated_at";

/// The columns of a message, with its application's id as `app_id`.
const MESSAGE_COLUMNS: &str = "m.id, a.id AS app_id, m.event_type, m.channel, m.event_id,
    m.payload, m.created_at, m.expired";

const APP_COLUMNS: &str = "id, uid, name, metadata, rate_limit, created_at, updated_at";

impl PostgresStore {
    /// Connects to the database at `url` (a `postgres://` URL or a `key=value` string) with
    /// [`PostgresOptions::default`] and brings its schema up to date.
    ///
    /// # Errors
    /// [`StoreError::Postgres`] when the URL is malformed, the database cannot be reached or
    /// a statement fails; [`StoreError::UnsupportedSchemaVersion`] when a newer build wrote
    /// the schema.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, PostgresOptions::default()).await
    }

    /// [`PostgresStore::connect`] with options.
    ///
    /// # Errors
    /// As [`PostgresStore::connect`].
    pub async fn connect_with(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let store = Self::connect_inner(url, options, Sealer::default()).await?;
        let found = store
            .query(
                "SELECT id, keys FROM endpoints WHERE left(keys, $1) = $2 LIMIT 1",
                &[
                    &i32::try_from(seal::SEALED_PREFIX.len()).unwrap_or(i32::MAX),
                    &seal::SEALED_PREFIX,
                ],
            )
            .await?;
        if let Some(row) = found.first() {
            let (id, keys): (String, String) = (row.try_get(0)?, row.try_get(1)?);
            return Err(SealError::UnknownKey {
                what: format!("the keys of endpoint {id}"),
                key_id: seal::sealed_key_id(&keys).unwrap_or_default().to_owned(),
            }
            .into());
        }
        Ok(store)
    }

    /// Brings the database's schema up to date and disconnects, reading nothing else: what
    /// `switchyard migrate --database` runs before servers of a new version start (which
    /// need the main key; this does not).
    ///
    /// # Errors
    /// As [`PostgresStore::connect`].
    pub async fn migrate(url: &str, options: PostgresOptions) -> Result<(), StoreError> {
        Self::connect_inner(url, options, Sealer::default()).await?;
        Ok(())
    }

    /// [`PostgresStore::connect_with`], keeping endpoints' signing keys and custom headers
    /// sealed under `ring`'s current main key; what is clear or sealed under an old key of the
    /// ring is sealed again before this returns (see [`PostgresStore::reseal`]).
    ///
    /// Several servers on one database must be able to open what any of them seals: give a
    /// new main key to every server as an old key first, then make it the current one.
    ///
    /// # Errors
    /// As [`PostgresStore::connect`]; [`StoreError::Sealed`] when a value was sealed under a
    /// main key the ring does not hold (the message names the key's id), or was altered.
    pub async fn connect_sealed(
        url: &str,
        options: PostgresOptions,
        ring: KeyRing,
    ) -> Result<Self, StoreError> {
        let store = Self::connect_inner(url, options, Sealer::new(Some(ring))).await?;
        if store.reseal().await? > 0 {
            // A one-off at an upgrade or a rotation at start (the tables are locked while
            // they are rewritten: endpoints are few, responses short-lived).
            store.vacuum().await?;
        }
        Ok(store)
    }

    /// Seals again, under the current main key, every endpoint's keys and headers (and
    /// remembered response) that are clear or sealed under an old key, a batch per
    /// statement; returns how many values were rewritten. Each value is replaced only if it
    /// still holds what was read (another server may be writing it), and a batch that
    /// rewrites nothing ends the pass.
    ///
    /// # Errors
    /// [`StoreError::Sealed`] for a value no key of the ring opens; the database's errors.
    pub async fn reseal(&self) -> Result<usize, StoreError> {
        Ok(self.reseal_pass().await?.values)
    }

    /// Moves the store to `ring` while it (and other servers on the database) serve: values
    /// are sealed under `ring`'s current key from the moment this is called, everything
    /// sealed under another key (or clear) is sealed again as [`PostgresStore::reseal`] does,
    /// and then the keys `ring` lacks are dropped, once nothing is sealed under them. Returns
    /// how many values were rewritten.
    ///
    /// Interrupted, every value is under the old ring or the new one; calling this again, or
    /// connecting with a ring holding both keys, finishes. The tables are rewritten
    /// (`VACUUM FULL`, locking them meanwhile) only when clear values were sealed; what a
    /// rotation rewrites was sealed already, and the old row versions open only under the
    /// old key.
    ///
    /// # Errors
    /// [`StoreError::Sealed`] for a value no key of either ring opens, or
    /// ([`SealError::StillInUse`]) when a key to drop still seals a value (a server that has
    /// not been given the new key sealed under the old one); the store then still opens
    /// everything under both rings' keys.
    pub async fn rotate_keys(&self, ring: KeyRing) -> Result<usize, StoreError> {
        let rotation = self.sealer.rotate(ring).await;
        let resealed = self.reseal_pass().await?;
        let mut still = None;
        for (key_id, prefix) in rotation.dropped() {
            if let Some(what) = self.sealed_under(&prefix).await? {
                still = Some((key_id.to_owned(), what));
                break;
            }
        }
        rotation.finish(still)?;
        if resealed.clear {
            self.vacuum().await?;
        }
        Ok(resealed.values)
    }

    /// The rows' earlier versions stay in the tables' files until vacuumed; rewriting the
    /// tables leaves none.
    async fn vacuum(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client.batch_execute("VACUUM FULL endpoints").await?;
        client.batch_execute("VACUUM FULL idempotency").await?;
        Ok(())
    }

    /// Seals again every value of [`SEALED_COLUMNS`] not under the current key.
    async fn reseal_pass(&self) -> Result<Resealed, StoreError> {
        let Some(ring) = self.sealer.ring() else {
            return Ok(Resealed::default());
        };
        let current = ring.current_prefix();
        let prefix = i32::try_from(current.len()).unwrap_or(i32::MAX);
        let batch = i64::try_from(RESEAL_BATCH).unwrap_or(i64::MAX);
        let mut total = Resealed::default();
        for column in &SEALED_COLUMNS {
            let select = format!(
                "SELECT {id}, {value} FROM {table}
                 WHERE substring({value} FROM 1 FOR $1) <> $2 ORDER BY {id} LIMIT $3",
                id = column.id,
                value = column.value(),
                table = column.table,
            );
            let update = format!(
                "UPDATE {table} t SET {name} = {new}
                 FROM unnest($1::text[], $2::bytea[], $3::bytea[]) AS n(id, old, new)
                 WHERE t.{id} = n.id AND {old} = n.old",
                table = column.table,
                name = column.column,
                new = column.stored("n.new"),
                id = column.id,
                old = column.value_of("t"),
            );
            loop {
                let stale = self
                    .query(&select, &[&prefix, &current.as_bytes(), &batch])
                    .await?;
                let (mut ids, mut old, mut new) = (Vec::new(), Vec::new(), Vec::new());
                for row in &stale {
                    let (id, value): (String, Vec<u8>) = (row.try_get(0)?, row.try_get(1)?);
                    total.clear |= !value.starts_with(seal::SEALED_PREFIX.as_bytes());
                    let open = self.sealer.open_bytes(&id, column.field, value.clone())?;
                    new.push(self.sealer.seal_bytes(&id, column.field, open)?);
                    old.push(value);
                    ids.push(id);
                }
                if ids.is_empty() {
                    break;
                }
                let changed = self
                    .client()
                    .await?
                    .execute(&update, &[&ids, &old, &new])
                    .await?;
                total.values += usize::try_from(changed).unwrap_or(usize::MAX);
                if changed == 0 {
                    break;
                }
            }
        }
        Ok(total)
    }

    /// A record still holding a value that starts with `prefix` (a key's
    /// `sealed:v1:<id>:`), named.
    async fn sealed_under(&self, prefix: &str) -> Result<Option<String>, StoreError> {
        let length = i32::try_from(prefix.len()).unwrap_or(i32::MAX);
        for column in &SEALED_COLUMNS {
            let found = self
                .query(
                    &format!(
                        "SELECT {id} FROM {table} WHERE substring({value} FROM 1 FOR $1) = $2
                         LIMIT 1",
                        id = column.id,
                        table = column.table,
                        value = column.value(),
                    ),
                    &[&length, &prefix.as_bytes()],
                )
                .await?;
            if let Some(row) = found.first() {
                let id: String = row.try_get(0)?;
                return Ok(Some(format!("the {} of {id}", column.field)));
            }
        }
        Ok(None)
    }

    async fn connect_inner(
        url: &str,
        options: PostgresOptions,
        sealer: Sealer,
    ) -> Result<Self, StoreError> {
        let mut config = tokio_postgres::Config::from_str(url)?;
        config.connect_timeout(options.connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name("switchyard");
        }
        let changes = listen::Changes::new(config.clone());
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections.max(1))
            .wait_timeout(Some(options.wait_timeout))
            .create_timeout(Some(options.connect_timeout))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        let store = Self {
            pool,
            changes,
            claims: std::sync::Arc::default(),
            sealer,
        };
        let mut client = store.client().await?;
        schema::migrate(&mut client).await?;
        Ok(store)
    }

    /// A connection from the pool.
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => StoreError::Postgres(e),
            other => StoreError::Pool(other.to_string()),
        })
    }

    /// Answers whether the database can be reached and answers a query (a readiness check).
    ///
    /// # Errors
    /// [`StoreError::Pool`] or [`StoreError::Postgres`] when it cannot.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.client().await?.simple_query("SELECT 1").await?;
        Ok(())
    }

    /// Rows of one query on a pooled connection.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await?;
        Ok(client.query(&statement, params).await?)
    }

    /// How many rows one statement changed, on a pooled connection.
    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await?;
        Ok(client.execute(&statement, params).await?)
    }

    /// Tells the other processes listening that something changed (after it committed).
    /// A notification that cannot be sent is logged: they will see it at their next poll or
    /// endpoint refresh.
    async fn notify(&self, what: &str) {
        let sent = self
            .execute("SELECT pg_notify($1, $2)", &[&listen::CHANNEL, &what])
            .await;
        if let Err(error) = sent {
            tracing::warn!(%error, what, "could not notify the other processes");
        }
    }

    /// The key of the application with this id.
    async fn app_seq(&self, app: &AppId) -> Result<Option<i64>, StoreError> {
        let rows = self
            .query("SELECT seq FROM apps WHERE id = $1", &[&app.as_str()])
            .await?;
        Ok(match rows.first() {
            Some(row) => Some(row.try_get(0)?),
            None => None,
        })
    }

    async fn one_endpoint(
        &self,
        condition: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<EndpointRecord>, StoreError> {
        let sql = format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoints e JOIN apps a ON a.seq = e.app
             WHERE {condition}"
        );
        self.query(&sql, params)
            .await?
            .first()
            .map(|row| rows::endpoint_record(row, &self.sealer))
            .transpose()
    }

    async fn one_application(
        &self,
        condition: &str,
        param: &str,
    ) -> Result<Option<Application>, StoreError> {
        let sql = format!("SELECT {APP_COLUMNS} FROM apps WHERE {condition}");
        self.query(&sql, &[&param])
            .await?
            .first()
            .map(rows::application)
            .transpose()
    }

    /// Runs `attempt` (one transaction), again when PostgreSQL aborted it for a deadlock or
    /// a serialization failure (a few times, then the error is returned).
    async fn retrying<T, F, Fut>(&self, mut attempt: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut tries = 0;
        loop {
            match attempt().await {
                Err(e) if retryable(&e) && tries < 5 => {
                    tries += 1;
                    tracing::debug!(error = %e, tries, "retrying a PostgreSQL transaction");
                }
                other => return other,
            }
        }
    }
}

/// One report of [`Store::finish_deliveries`], as columns.
#[derive(Default)]
struct Reports {
    msg: Vec<String>,
    ep: Vec<String>,
    token: Vec<String>,
    status: Vec<i16>,
    attempts: Vec<i32>,
    next: Vec<i64>,
    attempted: Vec<bool>,
}

/// Attempts to record, as columns.
#[derive(Default)]
struct AttemptRows {
    id: Vec<String>,
    msg: Vec<String>,
    ep: Vec<String>,
    event_type: Vec<String>,
    channel: Vec<Option<String>>,
    url: Vec<String>,
    status: Vec<i16>,
    response_status: Vec<i32>,
    response: Vec<String>,
    headers: Vec<String>,
    duration_us: Vec<i64>,
    trigger: Vec<i16>,
    created_at: Vec<i64>,
    held: Vec<bool>,
}

impl AttemptRows {
    /// Adds an attempt; `held`: whether its report was taken.
    fn push(&mut self, attempt: &Attempt, held: bool) -> Result<(), StoreError> {
        let headers: BTreeMap<&str, &str> = attempt.headers.iter().collect();
        self.id.push(attempt.id.to_string());
        self.msg.push(attempt.message_id.to_string());
        self.ep.push(attempt.endpoint_id.to_string());
        self.event_type.push(attempt.event_type.to_string());
        self.channel.push(join_channels(&attempt.channels));
        self.url.push(attempt.url.clone());
        self.status.push(code16(attempt.status.code()));
        self.response_status
            .push(i32::from(attempt.response_status));
        self.response.push(attempt.response.clone());
        self.headers.push(to_json(&headers)?);
        self.duration_us
            .push(i64::try_from(attempt.duration.as_micros()).unwrap_or(i64::MAX));
        self.trigger.push(code16(attempt.trigger.code()));
        self.created_at.push(micros(attempt.timestamp));
        self.held.push(held);
        Ok(())
    }

    /// Records them in the application of its message; those whose message is gone are
    /// dropped, and so is an attempt recorded again under an id already recorded (ids are
    /// fresh for every request, so that is a report written twice).
    async fn insert(&self, tx: &deadpool_postgres::Transaction<'_>) -> Result<(), StoreError> {
        if self.id.is_empty() {
            return Ok(());
        }
        let insert = tx
            .prepare_cached(
                "INSERT INTO attempts (id, app, msg, ep, event_type, channel, url, status,
                    response_status, response, headers, duration_us, trigger_code, created_at,
                    held)
                 SELECT t.id, m.app, t.msg, t.ep, t.event_type, t.channel, t.url, t.status,
                    t.response_status, t.response, t.headers, t.duration_us, t.trigger_code,
                    t.created_at, t.held
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                    $6::text[], $7::smallint[], $8::integer[], $9::text[], $10::text[],
                    $11::bigint[], $12::smallint[], $13::bigint[], $14::boolean[])
                    WITH ORDINALITY
                    AS t(id, msg, ep, event_type, channel, url, status, response_status,
                    response, headers, duration_us, trigger_code, created_at, held, n)
                 JOIN messages m ON m.id = t.msg
                 ORDER BY t.n
                 ON CONFLICT (id) DO NOTHING",
            )
            .await?;
        tx.execute(
            &insert,
            &[
                &self.id,
                &self.msg,
                &self.ep,
                &self.event_type,
                &self.channel,
                &self.url,
                &self.status,
                &self.response_status,
                &self.response,
                &self.headers,
                &self.duration_us,
                &self.trigger,
                &self.created_at,
                &self.held,
            ],
        )
        .await?;
        Ok(())
    }
}

/// Whether a health change disabled an endpoint (which other processes' caches must hear).
fn disables(change: HealthChange) -> bool {
    matches!(change, HealthChange::Disabled { .. })
}

/// A status or trigger code as stored (they are all small).
fn code16(code: i64) -> i16 {
    i16::try_from(code).unwrap_or(i16::MAX)
}

/// Applies the health outcomes `(endpoint, success, at)` in order, in `tx`: the endpoints
/// are locked (in id order, so concurrent batches never deadlock on them), their health
/// rule applied, and the changed ones written.
async fn apply_health(
    tx: &deadpool_postgres::Transaction<'_>,
    outcomes: &[(EndpointId, bool, DateTime<Utc>)],
    disable_after: Duration,
) -> Result<Vec<(EndpointId, HealthChange)>, StoreError> {
    if outcomes.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids: Vec<&str> = outcomes.iter().map(|(e, _, _)| e.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let lock = tx
        .prepare_cached(
            "SELECT id, failing_since, disabled FROM endpoints WHERE id = ANY($1)
             ORDER BY id FOR UPDATE",
        )
        .await?;
    let mut health: HashMap<String, (Health, Health)> = HashMap::new();
    for row in tx.query(&lock, &[&ids]).await? {
        let id: String = row.try_get(0)?;
        let since: Option<i64> = row.try_get(1)?;
        let state = Health {
            failing_since: since.and_then(DateTime::from_timestamp_micros),
            disabled: row.try_get(2)?,
        };
        health.insert(id, (state, state));
    }
    let mut changes = Vec::new();
    let mut disabled_at: HashMap<String, i64> = HashMap::new();
    for (endpoint, success, at) in outcomes {
        let Some((_, state)) = health.get_mut(endpoint.as_str()) else {
            continue;
        };
        let was_disabled = state.disabled;
        let change = state.apply(*success, *at, disable_after);
        if state.disabled && !was_disabled {
            disabled_at.insert(endpoint.to_string(), micros(*at));
        }
        if change != HealthChange::Unchanged {
            changes.push((endpoint.clone(), change));
        }
    }
    let update = tx
        .prepare_cached(
            "UPDATE endpoints SET failing_since = $2, disabled = disabled OR $3,
                updated_at = COALESCE($4, updated_at)
             WHERE id = $1",
        )
        .await?;
    for (id, (before, after)) in &health {
        if before != after {
            let since = after.failing_since.map(micros);
            let disabled_now = disabled_at.get(id).copied();
            tx.execute(&update, &[id, &since, &after.disabled, &disabled_now])
                .await?;
        }
    }
    Ok(changes)
}

impl Store for PostgresStore {
    async fn put_event_type(&self, event_type: &EventType) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO event_types (name, description, schema, archived, created_at,
                updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (name) DO UPDATE SET description = excluded.description,
                schema = excluded.schema, archived = excluded.archived,
                created_at = excluded.created_at, updated_at = excluded.updated_at",
            &[
                &event_type.name.as_str(),
                &event_type.description,
                &to_json(&event_type.schema)?,
                &event_type.archived,
                &micros(event_type.created_at),
                &micros(event_type.updated_at),
            ],
        )
        .await?;
        Ok(())
    }

    async fn event_type(&self, name: &EventTypeName) -> Result<Option<EventType>, StoreError> {
        self.query(
            "SELECT name, description, schema, archived, created_at, updated_at
             FROM event_types WHERE name = $1",
            &[&name.as_str()],
        )
        .await?
        .first()
        .map(rows::event_type)
        .transpose()
    }

    async fn list_event_types(
        &self,
        page: &PageRequest,
        include_archived: bool,
    ) -> Result<Vec<EventType>, StoreError> {
        let (cmp, dir) = keyset(page);
        let sql = format!(
            "SELECT name, description, schema, archived, created_at, updated_at
             FROM event_types
             WHERE ($3 OR NOT archived) AND ($1::text IS NULL OR name {cmp} $1)
             ORDER BY name {dir} LIMIT $2"
        );
        self.query(&sql, &[&page.after, &take(page), &include_archived])
            .await?
            .iter()
            .map(rows::event_type)
            .collect()
    }

    async fn put_application(&self, application: &Application) -> Result<(), StoreError> {
        let rate_limit = application.rate_limit.map(|n| i64::from(n.get()));
        let result = self
            .execute(
                "INSERT INTO apps (id, uid, name, metadata, rate_limit, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (id) DO UPDATE SET uid = excluded.uid, name = excluded.name,
                    metadata = excluded.metadata, rate_limit = excluded.rate_limit,
                    created_at = excluded.created_at, updated_at = excluded.updated_at",
                &[
                    &application.id.as_str(),
                    &application.uid.as_ref().map(AppUid::as_str),
                    &application.name,
                    &to_json(&application.metadata)?,
                    &rate_limit,
                    &micros(application.created_at),
                    &micros(application.updated_at),
                ],
            )
            .await;
        match result {
            Err(StoreError::Postgres(e)) if unique_violation(&e) => Err(StoreError::Conflict {
                what: format!(
                    "an application with uid `{}`",
                    application.uid.as_ref().map_or("", AppUid::as_str)
                ),
            }),
            other => other.map(|_| ()),
        }
    }

    async fn application(&self, id: &AppId) -> Result<Option<Application>, StoreError> {
        self.one_application("id = $1", id.as_str()).await
    }

    async fn application_by_uid(&self, uid: &AppUid) -> Result<Option<Application>, StoreError> {
        self.one_application("uid = $1", uid.as_str()).await
    }

    async fn list_applications(&self, page: &PageRequest) -> Result<Vec<Application>, StoreError> {
        let (cmp, dir) = keyset(page);
        let sql = format!(
            "SELECT {APP_COLUMNS} FROM apps WHERE ($1::text IS NULL OR id {cmp} $1)
             ORDER BY id {dir} LIMIT $2"
        );
        self.query(&sql, &[&page.after, &take(page)])
            .await?
            .iter()
            .map(rows::application)
            .collect()
    }

    async fn delete_application(&self, id: &AppId) -> Result<bool, StoreError> {
        if *id == AppId::default_app() {
            return Ok(false);
        }
        let deleted = self
            .retrying(|| async {
                let mut client = self.client().await?;
                let tx = client.transaction().await?;
                let Some(row) = tx
                    .query_opt(
                        "DELETE FROM apps WHERE id = $1 RETURNING seq",
                        &[&id.as_str()],
                    )
                    .await?
                else {
                    return Ok(false);
                };
                let seq: i64 = row.try_get(0)?;
                tx.execute(
                    "DELETE FROM deliveries d USING messages m WHERE m.app = $1 AND d.msg = m.id",
                    &[&seq],
                )
                .await?;
                // Deliveries to its endpoints of no message of its own cannot exist: every
                // delivery is of a message of the endpoint's application.
                tx.execute("DELETE FROM fanouts WHERE app = $1", &[&seq])
                    .await?;
                tx.execute("DELETE FROM access_tokens WHERE app = $1", &[&seq])
                    .await?;
                tx.execute("DELETE FROM attempts WHERE app = $1", &[&seq])
                    .await?;
                tx.execute("DELETE FROM messages WHERE app = $1", &[&seq])
                    .await?;
                tx.execute("DELETE FROM endpoints WHERE app = $1", &[&seq])
                    .await?;
                tx.commit().await?;
                Ok(true)
            })
            .await?;
        if deleted {
            self.notify(listen::ENDPOINTS).await;
        }
        Ok(deleted)
    }

    async fn put_endpoint(&self, record: &EndpointRecord) -> Result<(), StoreError> {
        let endpoint = &record.endpoint;
        let id = endpoint.id.as_str();
        let (all_types, event_types): (bool, Vec<&str>) = match &endpoint.event_types {
            EventTypeFilter::All => (true, Vec::new()),
            EventTypeFilter::Only(names) => (false, names.iter().map(|n| n.as_str()).collect()),
        };
        let channels: Vec<&str> = endpoint.channels.iter().map(|c| c.as_str()).collect();
        let rate_limit = endpoint.rate_limit.map(|n| i64::from(n.get()));
        let result = self
            .execute(
                "INSERT INTO endpoints (id, app, uid, url, all_types, event_types, channels,
                    metadata, headers, disabled, description, keys, rate_limit, ordered,
                    created_at, updated_at)
                 SELECT $1, a.seq, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                    $16
                 FROM apps a WHERE a.id = $2
                 ON CONFLICT (id) DO UPDATE SET uid = excluded.uid, url = excluded.url,
                    all_types = excluded.all_types, event_types = excluded.event_types,
                    channels = excluded.channels, metadata = excluded.metadata,
                    headers = excluded.headers, disabled = excluded.disabled,
                    description = excluded.description, keys = excluded.keys,
                    rate_limit = excluded.rate_limit, ordered = excluded.ordered,
                    created_at = excluded.created_at, updated_at = excluded.updated_at,
                    failing_since = CASE WHEN endpoints.disabled AND NOT excluded.disabled
                        THEN NULL ELSE endpoints.failing_since END
                 WHERE endpoints.app = excluded.app",
                &[
                    &endpoint.id.as_str(),
                    &endpoint.app.as_str(),
                    &endpoint.uid.as_ref().map(EndpointUid::as_str),
                    &endpoint.url,
                    &all_types,
                    &event_types,
                    &channels,
                    &to_json(&endpoint.metadata)?,
                    &self
                        .sealer
                        .seal(id, HEADERS_FIELD, to_json(&endpoint.headers)?)?,
                    &endpoint.disabled,
                    &endpoint.description,
                    &self
                        .sealer
                        .seal(id, KEYS_FIELD, to_json(&StoredKeys::of(&record.keys))?)?,
                    &rate_limit,
                    &endpoint.ordered,
                    &micros(endpoint.created_at),
                    &micros(endpoint.updated_at),
                ],
            )
            .await;
        match result {
            Ok(0) => Err(corrupt(
                format!("endpoint {}", endpoint.id),
                format!(
                    "its application {} does not exist, or is not the one it belongs to",
                    endpoint.app
                ),
            )),
            Ok(_) => {
                self.notify(listen::ENDPOINTS).await;
                Ok(())
            }
            Err(StoreError::Postgres(e)) if unique_violation(&e) => Err(StoreError::Conflict {
                what: format!(
                    "an endpoint with uid `{}`",
                    endpoint.uid.as_ref().map_or("", EndpointUid::as_str)
                ),
            }),
            Err(e) => Err(e),
        }
    }

    async fn endpoint(
        &self,
        app: &AppId,
        id: &EndpointId,
    ) -> Result<Option<EndpointRecord>, StoreError> {
        self.one_endpoint("e.id = $1 AND a.id = $2", &[&id.as_str(), &app.as_str()])
            .await
    }

    async fn endpoint_by_uid(
        &self,
        app: &AppId,
        uid: &EndpointUid,
    ) -> Result<Option<EndpointRecord>, StoreError> {
        self.one_endpoint(
            "e.app = (SELECT seq FROM apps WHERE id = $2) AND e.uid = $1",
            &[&uid.as_str(), &app.as_str()],
        )
        .await
    }

    async fn delete_endpoint(&self, app: &AppId, id: &EndpointId) -> Result<bool, StoreError> {
        let deleted = self
            .retrying(|| async {
                let mut client = self.client().await?;
                let tx = client.transaction().await?;
                let deleted = tx
                    .execute(
                        "DELETE FROM endpoints e USING apps a
                     WHERE e.id = $1 AND e.app = a.seq AND a.id = $2",
                        &[&id.as_str(), &app.as_str()],
                    )
                    .await?;
                if deleted == 0 {
                    return Ok(false);
                }
                // Marked dropped, not deleted, so that a fan-out does not speak for them.
                tx.execute(
                    "UPDATE deliveries SET status = $2 WHERE ep = $1 AND status = 0",
                    &[&id.as_str(), &DROPPED],
                )
                .await?;
                tx.commit().await?;
                Ok(true)
            })
            .await?;
        if deleted {
            self.notify(listen::ENDPOINTS).await;
        }
        Ok(deleted)
    }

    async fn list_endpoints(
        &self,
        app: &AppId,
        filter: &EndpointFilter,
        page: &PageRequest,
    ) -> Result<Vec<Endpoint>, StoreError> {
        let (cmp, dir) = keyset(page);
        let sql = format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoints e JOIN apps a ON a.seq = e.app
             WHERE a.id = $1 AND ($2::text IS NULL OR e.id {cmp} $2)
               AND ($3::text IS NULL OR e.all_types OR $3 = ANY(e.event_types))
               AND ($4::text IS NULL OR cardinality(e.channels) = 0 OR $4 = ANY(e.channels))
             ORDER BY e.id {dir} LIMIT $5"
        );
        self.query(
            &sql,
            &[
                &app.as_str(),
                &page.after,
                &filter.event_type.as_ref().map(EventTypeName::as_str),
                &filter.channel.as_ref().map(Channel::as_str),
                &take(page),
            ],
        )
        .await?
        .iter()
        .map(|row| rows::endpoint(row, &self.sealer))
        .collect()
    }

    async fn recipients(
        &self,
        app: &AppId,
        event_type: &EventTypeName,
        channels: &[Channel],
    ) -> Result<Vec<EndpointId>, StoreError> {
        let channels: Vec<&str> = channels.iter().map(Channel::as_str).collect();
        let rows = self
            .query(
                "SELECT e.id FROM endpoints e
                 WHERE e.app = (SELECT seq FROM apps WHERE id = $1) AND NOT e.disabled
                   AND (e.all_types OR $2 = ANY(e.event_types))
                   AND (cardinality(e.channels) = 0 OR e.channels && $3::text[])
                 ORDER BY e.id",
                &[&app.as_str(), &event_type.as_str(), &channels],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get(0)?;
                id.parse().map_err(|e| corrupt(format!("endpoint {id}"), e))
            })
            .collect()
    }

    async fn insert_message(
        &self,
        message: &Message,
        endpoints: &[EndpointId],
    ) -> Result<(), StoreError> {
        let endpoints: Vec<&str> = endpoints.iter().map(EndpointId::as_str).collect();
        let params: [&(dyn ToSql + Sync); 9] = [
            &message.id.as_str(),
            &message.app.as_str(),
            &message.event_type.as_str(),
            &join_channels(&message.channels),
            &message.event_id,
            &message.payload,
            &micros(message.created_at),
            &message.expired,
            &endpoints,
        ];
        let rows = match &message.event_id {
            // One statement: the message and its deliveries, or nothing.
            None => self.query(INSERT_MESSAGE, &params).await,
            // Svix's rule, one message per event id in an application, across processes: a
            // transaction holding a lock on the (application, event id) pair checks, then
            // inserts.
            Some(event_id) => {
                let mut client = self.client().await?;
                let tx = client.transaction().await?;
                // Neither an application id nor an event id has a space.
                let pair = format!("{} {event_id}", message.app);
                tx.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                    &[&pair],
                )
                .await?;
                let taken = tx
                    .query_opt(
                        "SELECT 1 FROM messages m JOIN apps a ON a.seq = m.app
                         WHERE a.id = $1 AND m.event_id = $2 LIMIT 1",
                        &[&message.app.as_str(), event_id],
                    )
                    .await?;
                if taken.is_some() {
                    return Err(StoreError::Conflict {
                        what: format!("a message with event id `{event_id}`"),
                    });
                }
                let statement = tx.prepare_cached(INSERT_MESSAGE).await?;
                let rows = tx.query(&statement, &params).await;
                match rows {
                    Ok(rows) => {
                        tx.commit().await?;
                        Ok(rows)
                    }
                    Err(error) => Err(StoreError::Postgres(error)),
                }
            }
        };
        let rows = match rows {
            Err(StoreError::Postgres(e)) if unique_violation(&e) => {
                return Err(StoreError::Conflict {
                    what: format!("a message with id `{}`", message.id),
                });
            }
            other => other?,
        };
        let inserted: i64 = match rows.first() {
            Some(row) => row.try_get(0)?,
            None => 0,
        };
        if inserted == 0 {
            return Err(corrupt(
                format!("message {}", message.id),
                format!("its application {} does not exist", message.app),
            ));
        }
        if !endpoints.is_empty() && self.changes.work_due() {
            self.notify(listen::WORK).await;
        }
        Ok(())
    }

    async fn message(&self, app: &AppId, id: &MessageId) -> Result<Option<Message>, StoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN apps a ON a.seq = m.app
             WHERE m.id = $1 AND a.id = $2"
        );
        self.query(&sql, &[&id.as_str(), &app.as_str()])
            .await?
            .first()
            .map(rows::message)
            .transpose()
    }

    async fn list_messages(
        &self,
        app: &AppId,
        filter: &MessageFilter,
        page: &PageRequest,
    ) -> Result<Vec<Message>, StoreError> {
        let (cmp, dir) = keyset(page);
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN apps a ON a.seq = m.app
             WHERE a.id = $1 AND ($2::text IS NULL OR m.id {cmp} $2)
               AND (cardinality($3::text[]) = 0 OR m.event_type = ANY($3))
               AND ($4::text IS NULL OR $4 = ANY(string_to_array(m.channel, ',')))
               AND ($6::bigint IS NULL OR m.created_at < $6)
               AND ($7::bigint IS NULL OR m.created_at > $7)
               AND ($8::text IS NULL OR m.id >= $8)
             ORDER BY m.id {dir} LIMIT $5"
        );
        let lowest = filter.lowest_id();
        self.query(
            &sql,
            &[
                &app.as_str(),
                &page.after,
                &type_names(&filter.event_types),
                &filter.channel.as_ref().map(Channel::as_str),
                &take(page),
                &filter.before.map(micros),
                &filter.after.map(micros),
                &lowest.as_ref().map(MessageId::as_str),
            ],
        )
        .await?
        .iter()
        .map(rows::message)
        .collect()
    }

    async fn deliveries(
        &self,
        app: &AppId,
        message: &MessageId,
    ) -> Result<Vec<Delivery>, StoreError> {
        let client = self.client().await?;
        let Some(created_at) = client
            .query_opt(
                "SELECT m.created_at FROM messages m JOIN apps a ON a.seq = m.app
                 WHERE m.id = $1 AND a.id = $2",
                &[&message.as_str(), &app.as_str()],
            )
            .await?
        else {
            return Ok(Vec::new());
        };
        let created_at: i64 = created_at.try_get(0)?;
        let mut found = Vec::new();
        let mut with_rows = std::collections::HashSet::new();
        for row in client
            .query(
                "SELECT d.msg, d.ep, d.status, d.attempts, d.next_attempt_at, d.leased_until,
                    d.next_trigger
                 FROM deliveries d WHERE d.msg = $1",
                &[&message.as_str()],
            )
            .await?
        {
            let status: i16 = row.try_get("status")?;
            with_rows.insert(row.try_get::<_, String>("ep")?);
            // A dropped row (its endpoint was deleted while it was pending) is not listed.
            if status != DROPPED {
                found.push(rows::delivery(&row)?);
            }
        }
        let created_at = DateTime::from_timestamp_micros(created_at)
            .ok_or_else(|| corrupt(format!("message {message}"), "created_at"))?;
        found.extend(fanout::derived(&client, message, created_at, &with_rows).await?);
        found.sort_by(|a, b| a.endpoint_id.cmp(&b.endpoint_id));
        Ok(found)
    }

    async fn lease_deliveries_within(
        &self,
        now: DateTime<Utc>,
        lease_for: Duration,
        limit: usize,
        limits: &AppLimits,
    ) -> Result<Vec<Lease>, StoreError> {
        self.retrying(|| lease::lease(self, now, lease_for, limit, limits))
            .await
    }

    async fn finish_delivery(
        &self,
        lease: &Lease,
        update: &DeliveryUpdate,
    ) -> Result<bool, StoreError> {
        let items = [(lease, update)];
        let held = self
            .retrying(|| async {
                let mut client = self.client().await?;
                let tx = client.transaction().await?;
                bookkeeping(&tx).await?;
                let (held, memo) = finish_items(&tx, &self.claims, &items).await?;
                tx.commit().await?;
                memo.apply(&self.claims);
                Ok(held)
            })
            .await?;
        Ok(held.first().copied().unwrap_or(false))
    }

    async fn finish_deliveries(
        &self,
        items: Vec<(Lease, DeliveryUpdate)>,
        disable_after: Duration,
    ) -> Result<Finished, StoreError> {
        let mut outcomes = Vec::new();
        let items: Vec<(&Lease, &DeliveryUpdate)> = items.iter().map(|(l, u)| (l, u)).collect();
        for (_, update) in &items {
            if let Some(attempt) = &update.attempt {
                outcomes.push((
                    attempt.endpoint_id.clone(),
                    attempt.status == AttemptStatus::Success,
                    attempt.timestamp,
                ));
            }
        }
        let finished = self
            .retrying(|| async {
                let mut client = self.client().await?;
                let tx = client.transaction().await?;
                bookkeeping(&tx).await?;
                let (held, memo) = finish_items(&tx, &self.claims, &items).await?;
                let health = apply_health(&tx, &outcomes, disable_after).await?;
                tx.commit().await?;
                memo.apply(&self.claims);
                Ok(Finished { held, health })
            })
            .await?;
        if finished.health.iter().any(|(_, change)| disables(*change)) {
            self.notify(listen::ENDPOINTS).await;
        }
        Ok(finished)
    }

    async fn endpoints(&self, ids: &[EndpointId]) -> Result<Vec<EndpointRecord>, StoreError> {
        let ids: Vec<&str> = ids.iter().map(EndpointId::as_str).collect();
        let sql = format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoints e JOIN apps a ON a.seq = e.app
             WHERE e.id = ANY($1)"
        );
        self.query(&sql, &[&ids])
            .await?
            .iter()
            .map(|row| rows::endpoint_record(row, &self.sealer))
            .collect()
    }

    async fn messages(&self, ids: &[MessageId]) -> Result<Vec<Message>, StoreError> {
        let ids: Vec<&str> = ids.iter().map(MessageId::as_str).collect();
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN apps a ON a.seq = m.app
             WHERE m.id = ANY($1)"
        );
        self.query(&sql, &[&ids])
            .await?
            .iter()
            .map(rows::message)
            .collect()
    }

    async fn list_attempts(
        &self,
        app: &AppId,
        filter: &AttemptFilter,
        page: &PageRequest,
    ) -> Result<Vec<Attempt>, StoreError> {
        let Some(app) = self.app_seq(app).await? else {
            return Ok(Vec::new());
        };
        let after: Option<i64> = match &page.after {
            None => None,
            Some(id) => {
                let rows = self
                    .query("SELECT seq FROM attempts WHERE id = $1", &[id])
                    .await?;
                match rows.first() {
                    Some(row) => Some(row.try_get(0)?),
                    None => return Ok(Vec::new()),
                }
            }
        };
        let (cmp, dir) = keyset(page);
        let sql = format!(
            "SELECT id, msg, ep, event_type, channel, url, status, response_status, response,
                headers, duration_us, trigger_code, created_at
             FROM attempts
             WHERE app = $1 AND ($2::bigint IS NULL OR seq {cmp} $2)
               AND ($3::text IS NULL OR msg = $3)
               AND ($4::text IS NULL OR ep = $4)
               AND (cardinality($5::text[]) = 0 OR event_type = ANY($5))
               AND ($6::text IS NULL OR $6 = ANY(string_to_array(channel, ',')))
               AND ($7::smallint IS NULL OR status = $7)
               AND ($8::bigint IS NULL OR created_at < $8)
               AND ($9::bigint IS NULL OR created_at > $9)
               AND ($11::integer IS NULL OR response_status BETWEEN $11 AND $12)
             ORDER BY seq {dir} LIMIT $10"
        );
        self.query(
            &sql,
            &[
                &app,
                &after,
                &filter.message.as_ref().map(MessageId::as_str),
                &filter.endpoint.as_ref().map(EndpointId::as_str),
                &type_names(&filter.event_types),
                &filter.channel.as_ref().map(Channel::as_str),
                &filter.status.map(|s| code16(s.code())),
                &filter.before.map(micros),
                &filter.after.map(micros),
                &take(page),
                &filter
                    .response_status
                    .as_ref()
                    .map(|r| i32::from(*r.start())),
                &filter.response_status.as_ref().map(|r| i32::from(*r.end())),
            ],
        )
        .await?
        .iter()
        .map(rows::attempt)
        .collect()
    }

    async fn attempt(&self, app: &AppId, id: &AttemptId) -> Result<Option<Attempt>, StoreError> {
        self.query(
            "SELECT t.id, t.msg, t.ep, t.event_type, t.channel, t.url, t.status,
                t.response_status, t.response, t.headers, t.duration_us, t.trigger_code,
                t.created_at
             FROM attempts t JOIN apps a ON a.seq = t.app
             WHERE t.id = $1 AND a.id = $2",
            &[&id.as_str(), &app.as_str()],
        )
        .await?
        .first()
        .map(rows::attempt)
        .transpose()
    }

    async fn attempt_counts(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<AttemptCounts, StoreError> {
        let rows = self
            .query(
                "SELECT t.status, count(*) FROM attempts t JOIN apps a ON a.seq = t.app
                 WHERE t.ep = $1 AND a.id = $2 AND t.created_at >= $3 AND t.created_at < $4
                 GROUP BY t.status",
                &[
                    &endpoint.as_str(),
                    &app.as_str(),
                    &micros(since),
                    &micros(until),
                ],
            )
            .await?;
        let mut counts = AttemptCounts::default();
        for row in &rows {
            let code: i16 = row.try_get(0)?;
            let count: i64 = row.try_get(1)?;
            let status =
                AttemptStatus::from_code(i64::from(code)).ok_or_else(|| StoreError::Corrupt {
                    what: "attempt status".to_owned(),
                    reason: code.to_string(),
                })?;
            counts.add(status, u64::try_from(count).unwrap_or(0));
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
        let (from, to) = (micros(since), micros(until));
        let spans = if to > from { buckets as usize } else { 0 };
        let mut counts = vec![AttemptCounts::default(); spans];
        if spans == 0 {
            return Ok(counts);
        }
        let rows = self
            .query(
                "SELECT min(t.created_at), t.status, count(*) FROM attempts t
                 JOIN apps a ON a.seq = t.app
                 WHERE t.ep = $1 AND a.id = $2 AND t.created_at >= $3 AND t.created_at < $4
                 GROUP BY ((t.created_at - $3) * $5) / ($4 - $3), t.status",
                &[
                    &endpoint.as_str(),
                    &app.as_str(),
                    &from,
                    &to,
                    &i64::from(buckets),
                ],
            )
            .await?;
        for row in &rows {
            let at: i64 = row.try_get(0)?;
            let code: i16 = row.try_get(1)?;
            let count: i64 = row.try_get(2)?;
            let status =
                AttemptStatus::from_code(i64::from(code)).ok_or_else(|| StoreError::Corrupt {
                    what: "attempt status".to_owned(),
                    reason: code.to_string(),
                })?;
            if let Some(slot) = bucket_of(at, from, to, buckets).and_then(|i| counts.get_mut(i)) {
                slot.add(status, u64::try_from(count).unwrap_or(0));
            }
        }
        Ok(counts)
    }

    async fn failing_since(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let rows = self
            .query(
                "SELECT e.failing_since FROM endpoints e JOIN apps a ON a.seq = e.app
                 WHERE e.id = $1 AND a.id = $2",
                &[&endpoint.as_str(), &app.as_str()],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let since: Option<i64> = row.try_get(0)?;
        since
            .map(|since| {
                DateTime::from_timestamp_micros(since).ok_or_else(|| StoreError::Corrupt {
                    what: format!("endpoint {endpoint}"),
                    reason: format!("failing_since {since}"),
                })
            })
            .transpose()
    }

    async fn expunge_payload(&self, app: &AppId, message: &MessageId) -> Result<bool, StoreError> {
        let changed = self
            .execute(
                "UPDATE messages SET payload = '', expired = TRUE
                 WHERE id = $1 AND app = (SELECT seq FROM apps WHERE id = $2)",
                &[&message.as_str(), &app.as_str()],
            )
            .await?;
        Ok(changed > 0)
    }

    async fn expunge_response(&self, app: &AppId, attempt: &AttemptId) -> Result<bool, StoreError> {
        let changed = self
            .execute(
                "UPDATE attempts SET response = ''
                 WHERE id = $1 AND app = (SELECT seq FROM apps WHERE id = $2)",
                &[&attempt.as_str(), &app.as_str()],
            )
            .await?;
        Ok(changed > 0)
    }

    async fn requeue_delivery(
        &self,
        app: &AppId,
        message: &MessageId,
        endpoint: &EndpointId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // The row takes the delivery over from a fan-out, which counts its shares again at
        // its next claim.
        self.execute(
            "WITH d AS (
                INSERT INTO deliveries (msg, ep, app, status, attempts, next_attempt_at,
                    next_trigger)
                SELECT m.id, e.id, m.app, 0, 0, $4, $5
                FROM apps a JOIN messages m ON m.app = a.seq JOIN endpoints e ON e.app = a.seq
                WHERE a.id = $1 AND m.id = $2 AND e.id = $3
                ON CONFLICT (msg, ep) DO UPDATE SET status = 0, attempts = 0,
                    next_attempt_at = excluded.next_attempt_at, leased_until = NULL,
                    lease_token = NULL, next_trigger = excluded.next_trigger
                RETURNING msg
             )
             UPDATE fanouts SET recount = TRUE WHERE msg IN (SELECT msg FROM d)",
            &[
                &app.as_str(),
                &message.as_str(),
                &endpoint.as_str(),
                &micros(now),
                &code16(AttemptTrigger::Manual.code()),
            ],
        )
        .await?;
        self.notify(listen::WORK).await;
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
        let recovered = self
            .execute(
                "UPDATE deliveries d SET status = 0, attempts = 0, next_attempt_at = $4,
                leased_until = NULL, lease_token = NULL, next_trigger = $5
             FROM messages m, endpoints e, apps a
             WHERE d.ep = $2 AND d.status = 2 AND m.id = d.msg AND m.created_at >= $3
               AND ($6::bigint IS NULL OR m.created_at < $6)
               AND e.id = d.ep AND e.app = a.seq AND a.id = $1",
                &[
                    &app.as_str(),
                    &endpoint.as_str(),
                    &micros(since),
                    &micros(now),
                    &code16(AttemptTrigger::Manual.code()),
                    &until.map(micros),
                ],
            )
            .await?;
        if recovered > 0 {
            self.notify(listen::WORK).await;
        }
        Ok(recovered)
    }

    async fn record_health(
        &self,
        endpoint: &EndpointId,
        success: bool,
        now: DateTime<Utc>,
        disable_after: Duration,
    ) -> Result<HealthChange, StoreError> {
        let outcomes = [(endpoint.clone(), success, now)];
        let changes = self
            .retrying(|| async {
                let mut client = self.client().await?;
                let tx = client.transaction().await?;
                bookkeeping(&tx).await?;
                let changes = apply_health(&tx, &outcomes, disable_after).await?;
                tx.commit().await?;
                Ok(changes)
            })
            .await?;
        let change = changes
            .into_iter()
            .next()
            .map_or(HealthChange::Unchanged, |(_, change)| change);
        if disables(change) {
            self.notify(listen::ENDPOINTS).await;
        }
        Ok(change)
    }

    async fn heartbeat(&self, node: &str, expire: Duration) -> Result<usize, StoreError> {
        // One statement: this node's time is refreshed, the silent ones dropped, the others
        // counted (the count reads the table as it was, so this node is added by hand).
        let rows = self
            .query(
                "WITH seen AS (
                    INSERT INTO nodes (id, seen_at) VALUES ($1, clock_timestamp())
                    ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at
                 ), gone AS (
                    DELETE FROM nodes
                    WHERE seen_at < clock_timestamp() - make_interval(secs => $2)
                 )
                 SELECT 1 + count(*) FROM nodes
                 WHERE id <> $1 AND seen_at >= clock_timestamp() - make_interval(secs => $2)",
                &[&node, &expire.as_secs_f64()],
            )
            .await?;
        let live: i64 = match rows.first() {
            Some(row) => row.try_get(0)?,
            None => 1,
        };
        Ok(usize::try_from(live).unwrap_or(1).max(1))
    }

    async fn leave(&self, node: &str) -> Result<(), StoreError> {
        self.execute("DELETE FROM nodes WHERE id = $1", &[&node])
            .await?;
        Ok(())
    }

    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<super::Change>> {
        Some(self.changes.subscribe())
    }

    async fn idempotency_begin(
        &self,
        key: &str,
        now: DateTime<Utc>,
        hold_until: DateTime<Utc>,
    ) -> Result<IdempotencyClaim, StoreError> {
        // The insert is the claim: of two processes, one inserts (or takes over an entry
        // whose time is up); the other finds the row.
        let claimed = self
            .query(
                "INSERT INTO idempotency (key, until) VALUES ($1, $3)
                 ON CONFLICT (key) DO UPDATE
                    SET until = excluded.until, status = NULL, headers = NULL, body = NULL
                    WHERE idempotency.until <= $2
                 RETURNING 1",
                &[&key, &micros(now), &micros(hold_until)],
            )
            .await?;
        if !claimed.is_empty() {
            return Ok(IdempotencyClaim::Claimed);
        }
        let rows = self
            .query(
                "SELECT status, headers, body FROM idempotency WHERE key = $1",
                &[&key],
            )
            .await?;
        let Some(row) = rows.first() else {
            // Released or purged in between: the caller asks again.
            return Ok(IdempotencyClaim::Running);
        };
        let status: Option<i16> = row.try_get(0)?;
        let Some(status) = status else {
            return Ok(IdempotencyClaim::Running);
        };
        let headers: Option<String> = row.try_get(1)?;
        let body: Option<Vec<u8>> = row.try_get(2)?;
        let body = body
            .map(|body| self.sealer.open_bytes(key, RESPONSE_FIELD, body))
            .transpose()?;
        Ok(IdempotencyClaim::Done(RememberedResponse::from_columns(
            i64::from(status),
            headers.as_deref(),
            body,
        )?))
    }

    async fn idempotency_finish(
        &self,
        key: &str,
        response: &RememberedResponse,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let headers = serde_json::to_string(&response.headers)
            .map_err(|e| corrupt("remembered response headers", e))?;
        let status =
            i16::try_from(response.status).map_err(|e| corrupt("remembered response status", e))?;
        let body = self
            .sealer
            .seal_bytes(key, RESPONSE_FIELD, response.body.clone())?;
        self.execute(
            "INSERT INTO idempotency (key, until, status, headers, body)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (key) DO UPDATE SET until = excluded.until, status = excluded.status,
                headers = excluded.headers, body = excluded.body",
            &[&key, &micros(expires_at), &status, &headers, &body],
        )
        .await?;
        Ok(())
    }

    async fn idempotency_release(&self, key: &str) -> Result<(), StoreError> {
        self.execute(
            "DELETE FROM idempotency WHERE key = $1 AND status IS NULL",
            &[&key],
        )
        .await?;
        Ok(())
    }

    async fn purge_idempotency(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.execute("DELETE FROM idempotency WHERE until <= $1", &[&micros(now)])
            .await
    }

    async fn put_access_token(&self, token: &AccessToken) -> Result<bool, StoreError> {
        let inserted = self
            .execute(
                "INSERT INTO access_tokens (hash, app, expires_at, read_only)
                 SELECT $1, seq, $2, $3 FROM apps WHERE id = $4
                 ON CONFLICT (hash) DO UPDATE SET app = excluded.app,
                    expires_at = excluded.expires_at, read_only = excluded.read_only",
                &[
                    &token.hash,
                    &micros(token.expires_at),
                    &token.read_only,
                    &token.app.as_str(),
                ],
            )
            .await?;
        Ok(inserted > 0)
    }

    async fn access_token(&self, hash: &str) -> Result<Option<AccessToken>, StoreError> {
        let rows = self
            .query(
                "SELECT t.hash, a.id, t.expires_at, t.read_only
                 FROM access_tokens t JOIN apps a ON a.seq = t.app WHERE t.hash = $1",
                &[&hash],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let app: String = row.try_get(1)?;
        let expires: i64 = row.try_get(2)?;
        Ok(Some(AccessToken {
            hash: row.try_get(0)?,
            app: app
                .parse()
                .map_err(|e| corrupt("access token's application", e))?,
            expires_at: DateTime::from_timestamp_micros(expires)
                .ok_or_else(|| corrupt("access token's expiry", expires))?,
            read_only: row.try_get(3)?,
        }))
    }

    async fn delete_access_token(&self, hash: &str) -> Result<bool, StoreError> {
        let deleted = self
            .execute("DELETE FROM access_tokens WHERE hash = $1", &[&hash])
            .await?;
        Ok(deleted > 0)
    }

    async fn purge_access_tokens(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.execute(
            "DELETE FROM access_tokens WHERE expires_at <= $1",
            &[&micros(now)],
        )
        .await
    }

    async fn purge_payloads(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.execute(
            "UPDATE messages SET payload = '', expired = TRUE
             WHERE created_at < $1 AND NOT expired",
            &[&micros(before)],
        )
        .await
    }
}

/// A message and its deliveries in one statement: the deliveries to ordered endpoints are
/// rows, the others one fan-out (see `fanout.rs`). Answers how many messages it inserted (0
/// when the application does not exist).
const INSERT_MESSAGE: &str = "WITH m AS (
        INSERT INTO messages (id, app, event_type, channel, event_id, payload, created_at,
            expired)
        SELECT $1, a.seq, $3, $4, $5, $6, $7, $8 FROM apps a WHERE a.id = $2
        RETURNING id, app, created_at
     ), e AS (
        SELECT e.id, e.ordered FROM m JOIN endpoints e ON e.app = m.app AND e.id = ANY($9)
     ), d AS (
        INSERT INTO deliveries (msg, ep, app, status, attempts, next_attempt_at, next_trigger)
        SELECT m.id, e.id, m.app, 0, 0, m.created_at, 0
        FROM m JOIN e ON e.ordered
     ), f AS (
        INSERT INTO fanouts (msg, app, created_at, endpoints, shares_left)
        SELECT m.id, m.app, m.created_at, array_agg(e.id ORDER BY e.id), count(*)
        FROM m JOIN e ON NOT e.ordered
        GROUP BY m.id, m.app, m.created_at
     )
     SELECT count(*) FROM m";

/// The status of a delivery row whose endpoint was deleted while it was pending: not listed,
/// never leased (the model has no such status; the row only keeps a fan-out from speaking for
/// the delivery).
const DROPPED: i16 = 3;

/// Applies the reports `items` in `tx`: the delivery rows' through their lease tokens, the
/// fan-out shares' through their claims (see `fanout.rs`), then records every attempt with
/// whether its report was taken. For each item, whether it was, and what changes in the
/// claims this process remembers once the transaction commits.
async fn finish_items(
    tx: &deadpool_postgres::Transaction<'_>,
    claims: &std::sync::Mutex<fanout::Claims>,
    items: &[(&Lease, &DeliveryUpdate)],
) -> Result<(Vec<bool>, fanout::Memo), StoreError> {
    let mut reports = Reports::default();
    let mut shares = Vec::new();
    for (lease, update) in items {
        if fanout::is_share(lease) {
            shares.push((*lease, *update));
        } else {
            push_report(&mut reports, lease, update);
        }
    }
    let mut by_row = finish(tx, &reports).await?.into_iter();
    let (by_share, memo) = fanout::report(tx, claims, &shares).await?;
    let mut by_share = by_share.into_iter();
    let mut held = Vec::with_capacity(items.len());
    let mut attempts = AttemptRows::default();
    for (lease, update) in items {
        let taken = if fanout::is_share(lease) {
            by_share.next()
        } else {
            by_row.next()
        }
        .unwrap_or(false);
        if let Some(attempt) = &update.attempt {
            attempts.push(attempt, taken)?;
        }
        held.push(taken);
    }
    attempts.insert(tx).await?;
    Ok((held, memo))
}

/// Adds one report to the columns.
fn push_report(reports: &mut Reports, lease: &Lease, update: &DeliveryUpdate) {
    reports.msg.push(lease.delivery.message_id.to_string());
    reports.ep.push(lease.delivery.endpoint_id.to_string());
    reports.token.push(lease.token.clone());
    reports.status.push(code16(update.status.code()));
    reports
        .attempts
        .push(i32::try_from(update.attempts).unwrap_or(i32::MAX));
    reports.next.push(micros(update.next_attempt_at));
    reports.attempted.push(update.attempt.is_some());
}

/// Applies the reports whose lease is still held; for each report, whether it was.
async fn finish(
    tx: &deadpool_postgres::Transaction<'_>,
    reports: &Reports,
) -> Result<Vec<bool>, StoreError> {
    if reports.msg.is_empty() {
        return Ok(Vec::new());
    }
    let statement = tx
        .prepare_cached(
            "UPDATE deliveries d SET status = t.status, attempts = t.attempts,
                next_attempt_at = t.next, leased_until = NULL, lease_token = NULL,
                next_trigger = CASE WHEN t.attempted THEN 0 ELSE d.next_trigger END
             FROM unnest($1::text[], $2::text[], $3::text[], $4::smallint[], $5::integer[],
                $6::bigint[], $7::boolean[]) AS t(msg, ep, token, status, attempts, next,
                attempted)
             WHERE d.msg = t.msg AND d.ep = t.ep AND d.lease_token = t.token
               AND d.status <> 3
             RETURNING d.msg, d.ep",
        )
        .await?;
    let rows = tx
        .query(
            &statement,
            &[
                &reports.msg,
                &reports.ep,
                &reports.token,
                &reports.status,
                &reports.attempts,
                &reports.next,
                &reports.attempted,
            ],
        )
        .await?;
    let mut held = std::collections::HashSet::with_capacity(rows.len());
    for row in &rows {
        let msg: String = row.try_get(0)?;
        let ep: String = row.try_get(1)?;
        held.insert((msg, ep));
    }
    Ok(reports
        .msg
        .iter()
        .zip(&reports.ep)
        .map(|(m, e)| held.contains(&(m.clone(), e.clone())))
        .collect())
}

/// `after(now, lease_for)` in microseconds.
fn lease_end(now: DateTime<Utc>, lease_for: Duration) -> i64 {
    micros(after(now, lease_for))
}

/// A new lease token (one per lease call: every delivery of the batch carries it).
fn new_token() -> String {
    lease_token()
}

/// Event type names as a `text[]` parameter.
fn type_names(names: &[EventTypeName]) -> Vec<&str> {
    names.iter().map(EventTypeName::as_str).collect()
}
