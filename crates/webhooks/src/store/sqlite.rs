//! The embedded durable [`Store`]: one SQLite file in WAL mode, through sqlx.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::path::Path;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
// `AssertSqlSafe` marks SQL assembled from this file's own constants: no caller text is ever
// formatted into a statement; every value is a bound parameter.
use sqlx::{AssertSqlSafe, Row as _, Sqlite, Transaction};

use super::{
    AttemptFilter, EndpointFilter, Finished, Health, HealthChange, MessageFilter, Store,
    lease_token,
};
use crate::error::StoreError;
use crate::group::GroupCommit;
use crate::id::{EndpointId, MessageId};
use crate::model::{
    Attempt, AttemptStatus, AttemptTrigger, Channel, Delivery, DeliveryStatus, DeliveryUpdate,
    Endpoint, EndpointKeys, EndpointRecord, EndpointUid, EventType, EventTypeFilter, EventTypeName,
    Lease, Message, after,
};
use crate::page::{Order, PageRequest};
use crate::secret::Secret;

/// The schema version this build writes (SQLite's `user_version`).
const SCHEMA_VERSION: i64 = 2;

/// Version 1: the registry (event types, endpoints, messages, deliveries).
const SCHEMA_V1: &[&str] = &[
    "CREATE TABLE event_types (
        name TEXT PRIMARY KEY NOT NULL,
        description TEXT NOT NULL,
        schema TEXT NOT NULL,
        archived INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    )",
    "CREATE TABLE endpoints (
        id TEXT PRIMARY KEY NOT NULL,
        uid TEXT UNIQUE,
        url TEXT NOT NULL,
        all_types INTEGER NOT NULL,
        event_types TEXT NOT NULL,
        channels TEXT NOT NULL,
        metadata TEXT NOT NULL,
        headers TEXT NOT NULL,
        disabled INTEGER NOT NULL,
        description TEXT NOT NULL,
        keys TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    )",
    "CREATE TABLE endpoint_types (
        event_type TEXT NOT NULL,
        endpoint_id TEXT NOT NULL,
        PRIMARY KEY (event_type, endpoint_id)
    ) WITHOUT ROWID",
    "CREATE TABLE endpoint_channels (
        endpoint_id TEXT NOT NULL,
        channel TEXT NOT NULL,
        PRIMARY KEY (endpoint_id, channel)
    ) WITHOUT ROWID",
    "CREATE TABLE messages (
        id TEXT PRIMARY KEY NOT NULL,
        event_type TEXT NOT NULL,
        channel TEXT,
        payload TEXT NOT NULL,
        created_at INTEGER NOT NULL
    )",
    "CREATE INDEX messages_by_type ON messages (event_type, id)",
    "CREATE TABLE deliveries (
        message_id TEXT NOT NULL,
        endpoint_id TEXT NOT NULL,
        status INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        next_attempt_at INTEGER NOT NULL,
        leased_until INTEGER,
        lease_token TEXT,
        PRIMARY KEY (message_id, endpoint_id)
    )",
    "CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at)",
    "CREATE INDEX deliveries_by_endpoint ON deliveries (endpoint_id, status)",
];

/// Version 2: the delivery engine (attempts, endpoint health and limits, manual triggers,
/// payload retention). Applied on top of version 1, so files written by 0.1 upgrade in place.
const SCHEMA_V2: &[&str] = &[
    "ALTER TABLE endpoints ADD COLUMN rate_limit INTEGER",
    "ALTER TABLE endpoints ADD COLUMN ordered INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE endpoints ADD COLUMN failing_since INTEGER",
    "ALTER TABLE messages ADD COLUMN expired INTEGER NOT NULL DEFAULT 0",
    "CREATE INDEX messages_by_time ON messages (created_at)",
    "ALTER TABLE deliveries ADD COLUMN next_trigger INTEGER NOT NULL DEFAULT 0",
    "DROP INDEX deliveries_by_endpoint",
    "CREATE INDEX deliveries_by_endpoint ON deliveries (endpoint_id, status, message_id)",
    "CREATE TABLE attempts (
        id TEXT PRIMARY KEY NOT NULL,
        message_id TEXT NOT NULL,
        endpoint_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        channel TEXT,
        url TEXT NOT NULL,
        status INTEGER NOT NULL,
        response_status INTEGER NOT NULL,
        response TEXT NOT NULL,
        headers TEXT NOT NULL,
        duration_us INTEGER NOT NULL,
        next_trigger INTEGER NOT NULL,
        created_at INTEGER NOT NULL
    )",
    "CREATE INDEX attempts_by_endpoint ON attempts (endpoint_id, id)",
    "CREATE INDEX attempts_by_message ON attempts (message_id, id)",
    "CREATE INDEX attempts_by_type ON attempts (event_type, id)",
];

/// A [`Store`] in one SQLite file (WAL journal, `synchronous=FULL`, so a committed send
/// survives a crash or power cut). Several processes may open the same file; leasing stays
/// atomic because it is one `UPDATE … RETURNING` statement.
///
/// Endpoint secrets are stored in the file so that deliveries can be signed: protect it like
/// any credential store.
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
    /// Readers (WAL lets them run beside the writer).
    pool: SqlitePool,
    /// The one connection this process writes through. SQLite allows one writer at a time;
    /// writing through several connections made them collide and back off in SQLite's busy
    /// handler (millisecond sleeps), and writers queued behind readers for a connection.
    /// Other processes are still coordinated by SQLite's lock and the busy timeout.
    writer: SqlitePool,
    /// Messages sent at the same time are stored in one transaction (one disk sync).
    inserts: Arc<GroupCommit<(Message, Vec<EndpointId>), ()>>,
}

fn micros(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros()
}

fn corrupt(what: impl Into<String>, reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what: what.into(),
        reason: reason.to_string(),
    }
}

fn time(row: &SqliteRow, column: &str) -> Result<DateTime<Utc>, StoreError> {
    let value: i64 = row.try_get(column)?;
    DateTime::from_timestamp_micros(value)
        .ok_or_else(|| corrupt(column, format!("timestamp {value} out of range")))
}

fn json<T: serde::de::DeserializeOwned>(row: &SqliteRow, column: &str) -> Result<T, StoreError> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| corrupt(column, e))
}

fn to_json(value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| corrupt("record", e))
}

/// The stored form of an endpoint's keys.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredKeys {
    current: String,
    previous: Vec<(String, i64)>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and brings its schema up to
    /// date.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the file cannot be opened or written;
    /// [`StoreError::UnsupportedSchemaVersion`] when a newer build wrote it.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path.as_ref())
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        // Migrate before any reader connects: a connection that saw the old schema would
        // keep describing rows by it.
        Self::migrate(&writer).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        Ok(Self {
            pool,
            writer,
            inserts: Arc::default(),
        })
    }

    async fn migrate(writer: &SqlitePool) -> Result<(), StoreError> {
        let mut tx = writer.begin().await?;
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut *tx)
            .await?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::UnsupportedSchemaVersion {
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        for (target, statements) in [(1, SCHEMA_V1), (2, SCHEMA_V2)] {
            if version < target {
                for statement in statements {
                    sqlx::query(*statement).execute(&mut *tx).await?;
                }
            }
        }
        if version < SCHEMA_VERSION {
            sqlx::query(AssertSqlSafe(format!(
                "PRAGMA user_version = {SCHEMA_VERSION}"
            )))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Closes every connection (waiting for them to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}

fn event_type_from_row(row: &SqliteRow) -> Result<EventType, StoreError> {
    let name: String = row.try_get("name")?;
    Ok(EventType {
        name: EventTypeName::new(name.clone())
            .map_err(|e| corrupt(format!("event type {name}"), e))?,
        description: row.try_get("description")?,
        schema: json(row, "schema")?,
        archived: row.try_get::<i64, _>("archived")? != 0,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

fn endpoint_from_row(row: &SqliteRow) -> Result<EndpointRecord, StoreError> {
    let id: String = row.try_get("id")?;
    let what = || format!("endpoint {id}");
    let uid: Option<String> = row.try_get("uid")?;
    let event_types: Vec<EventTypeName> = json(row, "event_types")?;
    let keys: StoredKeys = json(row, "keys")?;
    let current = Secret::from_str(&keys.current).map_err(|e| corrupt(what(), e))?;
    let mut previous = Vec::with_capacity(keys.previous.len());
    for (secret, expires) in keys.previous {
        let secret = Secret::from_str(&secret).map_err(|e| corrupt(what(), e))?;
        let expires = DateTime::from_timestamp_micros(expires)
            .ok_or_else(|| corrupt(what(), "key expiry out of range"))?;
        previous.push((secret, expires));
    }
    let endpoint = Endpoint {
        id: id.parse().map_err(|e| corrupt(what(), e))?,
        uid: uid
            .map(EndpointUid::new)
            .transpose()
            .map_err(|e| corrupt(what(), e))?,
        url: row.try_get("url")?,
        event_types: if row.try_get::<i64, _>("all_types")? != 0 {
            EventTypeFilter::All
        } else {
            EventTypeFilter::Only(event_types)
        },
        channels: json(row, "channels")?,
        metadata: json::<Map<String, Value>>(row, "metadata")?,
        headers: json(row, "headers")?,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        description: row.try_get("description")?,
        rate_limit: row
            .try_get::<Option<i64>, _>("rate_limit")?
            .map(|n| {
                u32::try_from(n)
                    .ok()
                    .and_then(NonZeroU32::new)
                    .ok_or_else(|| corrupt(what(), format!("rate limit {n}")))
            })
            .transpose()?,
        ordered: row.try_get::<i64, _>("ordered")? != 0,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    };
    Ok(EndpointRecord {
        endpoint,
        keys: EndpointKeys { current, previous },
    })
}

fn message_from_row(row: &SqliteRow) -> Result<Message, StoreError> {
    let id: String = row.try_get("id")?;
    let what = || format!("message {id}");
    let channel: Option<String> = row.try_get("channel")?;
    Ok(Message {
        id: id.parse().map_err(|e| corrupt(what(), e))?,
        event_type: EventTypeName::new(row.try_get::<String, _>("event_type")?)
            .map_err(|e| corrupt(what(), e))?,
        channel: channel
            .map(Channel::new)
            .transpose()
            .map_err(|e| corrupt(what(), e))?,
        payload: row.try_get("payload")?,
        created_at: time(row, "created_at")?,
        expired: row.try_get::<i64, _>("expired")? != 0,
    })
}

fn attempt_from_row(row: &SqliteRow) -> Result<Attempt, StoreError> {
    let id: String = row.try_get("id")?;
    let what = || format!("attempt {id}");
    let channel: Option<String> = row.try_get("channel")?;
    let status: i64 = row.try_get("status")?;
    let trigger: i64 = row.try_get("next_trigger")?;
    let duration: i64 = row.try_get("duration_us")?;
    Ok(Attempt {
        id: id.parse().map_err(|e| corrupt(what(), e))?,
        message_id: row
            .try_get::<String, _>("message_id")?
            .parse()
            .map_err(|e| corrupt(what(), e))?,
        endpoint_id: row
            .try_get::<String, _>("endpoint_id")?
            .parse()
            .map_err(|e| corrupt(what(), e))?,
        event_type: EventTypeName::new(row.try_get::<String, _>("event_type")?)
            .map_err(|e| corrupt(what(), e))?,
        channel: channel
            .map(Channel::new)
            .transpose()
            .map_err(|e| corrupt(what(), e))?,
        url: row.try_get("url")?,
        status: AttemptStatus::from_code(status)
            .ok_or_else(|| corrupt(what(), format!("unknown status {status}")))?,
        response_status: u16::try_from(row.try_get::<i64, _>("response_status")?)
            .map_err(|e| corrupt(what(), e))?,
        response: row.try_get("response")?,
        headers: json(row, "headers")?,
        duration: Duration::from_micros(u64::try_from(duration).map_err(|e| corrupt(what(), e))?),
        trigger: AttemptTrigger::from_code(trigger)
            .ok_or_else(|| corrupt(what(), format!("unknown trigger {trigger}")))?,
        timestamp: time(row, "created_at")?,
    })
}

fn delivery_from_row(row: &SqliteRow) -> Result<Delivery, StoreError> {
    let message: String = row.try_get("message_id")?;
    let endpoint: String = row.try_get("endpoint_id")?;
    let what = || format!("delivery {message}/{endpoint}");
    let status: i64 = row.try_get("status")?;
    let leased_until: Option<i64> = row.try_get("leased_until")?;
    let trigger: i64 = row.try_get("next_trigger")?;
    Ok(Delivery {
        message_id: message.parse().map_err(|e| corrupt(what(), e))?,
        endpoint_id: endpoint.parse().map_err(|e| corrupt(what(), e))?,
        status: DeliveryStatus::from_code(status)
            .ok_or_else(|| corrupt(what(), format!("unknown status {status}")))?,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts")?)
            .map_err(|e| corrupt(what(), e))?,
        next_attempt_at: time(row, "next_attempt_at")?,
        leased_until: leased_until.and_then(DateTime::from_timestamp_micros),
        trigger: AttemptTrigger::from_code(trigger)
            .ok_or_else(|| corrupt(what(), format!("unknown trigger {trigger}")))?,
    })
}

fn limit(page: &PageRequest) -> i64 {
    i64::try_from(page.limit.saturating_add(1)).unwrap_or(i64::MAX)
}

/// A `SELECT` assembled from this file's constant fragments: only the conditions that apply
/// are included (so SQLite can use an index for each; `? IS NULL OR …` would defeat it), and
/// every value is a bound parameter.
struct ListQuery {
    sql: String,
    binds: Vec<String>,
}

impl ListQuery {
    fn new(select: &str) -> Self {
        Self {
            sql: format!("{select} WHERE 1"),
            binds: Vec::new(),
        }
    }

    fn condition(&mut self, condition: &str, binds: &[&str]) {
        self.sql.push_str(" AND ");
        self.sql.push_str(condition);
        self.binds.extend(binds.iter().map(|b| (*b).to_owned()));
    }

    /// Keyset pagination on `column` and the `ORDER BY … LIMIT`.
    fn page(mut self, page: &PageRequest, column: &str) -> Self {
        let (cmp, direction) = match page.order {
            Order::Ascending => (">", "ASC"),
            Order::Descending => ("<", "DESC"),
        };
        if let Some(after) = &page.after {
            self.condition(&format!("{column} {cmp} ?"), &[after]);
        }
        self.sql.push_str(&format!(
            " ORDER BY {column} {direction} LIMIT {}",
            limit(page)
        ));
        self
    }

    async fn fetch(self, pool: &SqlitePool) -> Result<Vec<SqliteRow>, StoreError> {
        let mut query = sqlx::query(AssertSqlSafe(self.sql));
        for bind in self.binds {
            query = query.bind(bind);
        }
        Ok(query.fetch_all(pool).await?)
    }
}

async fn write_endpoint_index(
    tx: &mut Transaction<'_, Sqlite>,
    endpoint: &Endpoint,
) -> Result<(), StoreError> {
    let id = endpoint.id.as_str();
    sqlx::query("DELETE FROM endpoint_types WHERE endpoint_id = ?")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM endpoint_channels WHERE endpoint_id = ?")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    if let EventTypeFilter::Only(names) = &endpoint.event_types {
        for name in names {
            sqlx::query(
                "INSERT OR IGNORE INTO endpoint_types (event_type, endpoint_id) VALUES (?, ?)",
            )
            .bind(name.as_str())
            .bind(id)
            .execute(&mut **tx)
            .await?;
        }
    }
    for channel in &endpoint.channels {
        sqlx::query("INSERT OR IGNORE INTO endpoint_channels (endpoint_id, channel) VALUES (?, ?)")
            .bind(id)
            .bind(channel.as_str())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The ids as one JSON array, bound to a single parameter and unpacked with `json_each`:
/// a batch of any size is one statement, with no limit on bound variables.
fn id_array<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
    Value::Array(ids.into_iter().map(Value::from).collect()).to_string()
}

/// Records the attempts and updates the deliveries of a batch inside `tx` (four statements
/// whatever its size); for each item, whether its lease was held.
async fn finish_in(
    tx: &mut Transaction<'_, Sqlite>,
    items: &[(&Lease, &DeliveryUpdate)],
) -> Result<Vec<bool>, StoreError> {
    let mut attempts = Vec::new();
    for attempt in items
        .iter()
        .filter_map(|(_, update)| update.attempt.as_ref())
    {
        attempts.push(Value::Array(vec![
            attempt.id.as_str().into(),
            attempt.message_id.as_str().into(),
            attempt.endpoint_id.as_str().into(),
            attempt.event_type.as_str().into(),
            attempt.channel.as_ref().map(Channel::as_str).into(),
            attempt.url.as_str().into(),
            attempt.status.code().into(),
            attempt.response_status.into(),
            attempt.response.as_str().into(),
            to_json(&attempt.headers)?.into(),
            i64::try_from(attempt.duration.as_micros())
                .unwrap_or(i64::MAX)
                .into(),
            attempt.trigger.code().into(),
            micros(attempt.timestamp).into(),
        ]));
    }
    // The attempt is recorded whatever happened to the lease: the request was made.
    if !attempts.is_empty() {
        sqlx::query(
            "INSERT INTO attempts (id, message_id, endpoint_id, event_type, channel, url,
                    status, response_status, response, headers, duration_us, next_trigger,
                    created_at)
             SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4,
                    value ->> 5, value ->> 6, value ->> 7, value ->> 8, value ->> 9,
                    value ->> 10, value ->> 11, value ->> 12
             FROM json_each(?)",
        )
        .bind(Value::Array(attempts).to_string())
        .execute(&mut **tx)
        .await?;
    }
    let updates = Value::Array(
        items
            .iter()
            .map(|(lease, update)| {
                Value::Array(vec![
                    lease.delivery.message_id.as_str().into(),
                    lease.delivery.endpoint_id.as_str().into(),
                    lease.token.as_str().into(),
                    update.status.code().into(),
                    update.attempts.into(),
                    micros(update.next_attempt_at).into(),
                    update.attempt.is_some().into(),
                ])
            })
            .collect(),
    )
    .to_string();
    const BATCH: &str = "SELECT value ->> 0 AS message_id, value ->> 1 AS endpoint_id,
            value ->> 2 AS token, value ->> 3 AS status, value ->> 4 AS attempts,
            value ->> 5 AS next_attempt_at, value ->> 6 AS attempted
        FROM json_each(?)";
    // Which leases are still held, read before the update clears the tokens (the writer
    // connection's transaction makes read and update one step).
    let held: HashSet<(String, String)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT d.message_id, d.endpoint_id FROM deliveries d JOIN ({BATCH}) v
             ON d.message_id = v.message_id AND d.endpoint_id = v.endpoint_id
                AND d.lease_token = v.token"
    )))
    .bind(&updates)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .collect();
    if !held.is_empty() {
        // A postponement (no attempt) keeps a manual trigger for the attempt still to come.
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE deliveries SET status = v.status, attempts = v.attempts,
                next_attempt_at = v.next_attempt_at, leased_until = NULL, lease_token = NULL,
                next_trigger = CASE WHEN v.attempted THEN 0 ELSE deliveries.next_trigger END
             FROM ({BATCH}) v
             WHERE deliveries.message_id = v.message_id AND deliveries.endpoint_id = v.endpoint_id
               AND deliveries.lease_token = v.token"
        )))
        .bind(&updates)
        .execute(&mut **tx)
        .await?;
    }
    Ok(items
        .iter()
        .map(|(lease, _)| {
            held.contains(&(
                lease.delivery.message_id.as_str().to_owned(),
                lease.delivery.endpoint_id.as_str().to_owned(),
            ))
        })
        .collect())
}

/// Applies the outcomes of attempts — (endpoint, success, when), in order — to their
/// endpoints' health inside `tx`: one read of the endpoints involved, then one write per
/// endpoint whose health changed (none while all is well).
async fn health_in(
    tx: &mut Transaction<'_, Sqlite>,
    outcomes: &[(&EndpointId, bool, DateTime<Utc>)],
    disable_after: Duration,
) -> Result<Vec<(EndpointId, HealthChange)>, StoreError> {
    if outcomes.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "SELECT id, failing_since, disabled FROM endpoints
         WHERE id IN (SELECT value FROM json_each(?))",
    )
    .bind(id_array(outcomes.iter().map(|(id, _, _)| id.as_str())))
    .fetch_all(&mut **tx)
    .await?;
    // Per endpoint: its health as read, and as it becomes.
    let mut states = HashMap::with_capacity(rows.len());
    for row in &rows {
        let id: String = row.try_get("id")?;
        let failing_since: Option<i64> = row.try_get("failing_since")?;
        let failing_since = failing_since
            .map(|since| {
                DateTime::from_timestamp_micros(since).ok_or_else(|| {
                    corrupt(format!("endpoint {id}"), format!("failing_since {since}"))
                })
            })
            .transpose()?;
        let health = Health {
            failing_since,
            disabled: row.try_get::<i64, _>("disabled")? != 0,
        };
        states.insert(id, (health, health));
    }
    let mut changes = Vec::new();
    let mut disabled_at = HashMap::new();
    for &(endpoint, success, at) in outcomes {
        // An endpoint deleted meanwhile has no health to keep.
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
    for (id, (before, after)) in states.iter().filter(|(_, (b, a))| b != a) {
        sqlx::query(
            "UPDATE endpoints SET failing_since = ?, disabled = ?,
                updated_at = COALESCE(?, updated_at)
             WHERE id = ?",
        )
        .bind(after.failing_since.map(micros))
        .bind(after.disabled || before.disabled)
        .bind(disabled_at.get(id.as_str()).copied().map(micros))
        .bind(id)
        .execute(&mut **tx)
        .await?;
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

/// Messages per `INSERT` statement (five bound values each, far below SQLite's limit).
const MESSAGES_PER_STATEMENT: usize = 500;

/// Stores messages and their pending deliveries inside `tx`: a statement per 500 messages,
/// one for all the deliveries. Payloads are bound as they are, byte for byte.
async fn insert_messages_in(
    tx: &mut Transaction<'_, Sqlite>,
    batch: &[(Message, Vec<EndpointId>)],
) -> Result<(), StoreError> {
    for chunk in batch.chunks(MESSAGES_PER_STATEMENT) {
        let rows = vec!["(?, ?, ?, ?, ?)"; chunk.len()].join(", ");
        let sql = format!(
            "INSERT INTO messages (id, event_type, channel, payload, created_at) VALUES {rows}"
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (message, _) in chunk {
            query = query
                .bind(message.id.as_str())
                .bind(message.event_type.as_str())
                .bind(message.channel.as_ref().map(Channel::as_str))
                .bind(message.payload.as_str())
                .bind(micros(message.created_at));
        }
        query.execute(&mut **tx).await?;
    }
    let deliveries: Vec<Value> = batch
        .iter()
        .flat_map(|(message, endpoints)| {
            endpoints.iter().map(move |endpoint| {
                Value::Array(vec![
                    message.id.as_str().into(),
                    endpoint.as_str().into(),
                    micros(message.created_at).into(),
                ])
            })
        })
        .collect();
    if !deliveries.is_empty() {
        sqlx::query(
            "INSERT INTO deliveries (message_id, endpoint_id, status, attempts, next_attempt_at)
             SELECT value ->> 0, value ->> 1, 0, 0, value ->> 2 FROM json_each(?)",
        )
        .bind(Value::Array(deliveries).to_string())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// The SQL condition "endpoint `e` receives event type ?" (binds the type once).
const RECEIVES_TYPE: &str = "(e.all_types = 1 OR EXISTS (SELECT 1 FROM endpoint_types t \
     WHERE t.endpoint_id = e.id AND t.event_type = ?))";
const HAS_NO_CHANNELS: &str =
    "NOT EXISTS (SELECT 1 FROM endpoint_channels c WHERE c.endpoint_id = e.id)";
const HAS_CHANNEL: &str =
    "EXISTS (SELECT 1 FROM endpoint_channels c WHERE c.endpoint_id = e.id AND c.channel = ?)";

impl Store for SqliteStore {
    async fn put_event_type(&self, event_type: &EventType) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO event_types (name, description, schema, archived, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (name) DO UPDATE SET description = excluded.description,
                schema = excluded.schema, archived = excluded.archived,
                created_at = excluded.created_at, updated_at = excluded.updated_at",
        )
        .bind(event_type.name.as_str())
        .bind(&event_type.description)
        .bind(to_json(&event_type.schema)?)
        .bind(i64::from(event_type.archived))
        .bind(micros(event_type.created_at))
        .bind(micros(event_type.updated_at))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn event_type(&self, name: &EventTypeName) -> Result<Option<EventType>, StoreError> {
        sqlx::query("SELECT * FROM event_types WHERE name = ?")
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(event_type_from_row)
            .transpose()
    }

    async fn list_event_types(&self, page: &PageRequest) -> Result<Vec<EventType>, StoreError> {
        let mut query = ListQuery::new("SELECT * FROM event_types");
        query.condition("archived = 0", &[]);
        query
            .page(page, "name")
            .fetch(&self.pool)
            .await?
            .iter()
            .map(event_type_from_row)
            .collect()
    }

    async fn put_endpoint(&self, record: &EndpointRecord) -> Result<(), StoreError> {
        let endpoint = &record.endpoint;
        let keys = StoredKeys {
            current: record.keys.current.expose(),
            previous: record
                .keys
                .previous
                .iter()
                .map(|(secret, until)| (secret.expose(), micros(*until)))
                .collect(),
        };
        let event_types: Vec<&EventTypeName> = match &endpoint.event_types {
            EventTypeFilter::All => Vec::new(),
            EventTypeFilter::Only(names) => names.iter().collect(),
        };
        let mut tx = self.writer.begin().await?;
        let result = sqlx::query(
            "INSERT INTO endpoints (id, uid, url, all_types, event_types, channels, metadata,
                headers, disabled, description, keys, created_at, updated_at, rate_limit, ordered)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET uid = excluded.uid, url = excluded.url,
                all_types = excluded.all_types, event_types = excluded.event_types,
                channels = excluded.channels, metadata = excluded.metadata,
                headers = excluded.headers, disabled = excluded.disabled,
                description = excluded.description, keys = excluded.keys,
                created_at = excluded.created_at, updated_at = excluded.updated_at,
                rate_limit = excluded.rate_limit, ordered = excluded.ordered,
                failing_since = CASE WHEN endpoints.disabled = 1 AND excluded.disabled = 0
                    THEN NULL ELSE endpoints.failing_since END",
        )
        .bind(endpoint.id.as_str())
        .bind(endpoint.uid.as_ref().map(EndpointUid::as_str))
        .bind(&endpoint.url)
        .bind(i64::from(matches!(
            endpoint.event_types,
            EventTypeFilter::All
        )))
        .bind(to_json(&event_types)?)
        .bind(to_json(&endpoint.channels)?)
        .bind(to_json(&endpoint.metadata)?)
        .bind(to_json(&endpoint.headers)?)
        .bind(i64::from(endpoint.disabled))
        .bind(&endpoint.description)
        .bind(to_json(&keys)?)
        .bind(micros(endpoint.created_at))
        .bind(micros(endpoint.updated_at))
        .bind(endpoint.rate_limit.map(|n| i64::from(n.get())))
        .bind(i64::from(endpoint.ordered))
        .execute(&mut *tx)
        .await;
        if let Err(sqlx::Error::Database(error)) = &result
            && error.is_unique_violation()
        {
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
        result?;
        write_endpoint_index(&mut tx, endpoint).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn endpoint(&self, id: &EndpointId) -> Result<Option<EndpointRecord>, StoreError> {
        sqlx::query("SELECT * FROM endpoints WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(endpoint_from_row)
            .transpose()
    }

    async fn endpoints(&self, ids: &[EndpointId]) -> Result<Vec<EndpointRecord>, StoreError> {
        sqlx::query("SELECT * FROM endpoints WHERE id IN (SELECT value FROM json_each(?))")
            .bind(id_array(ids.iter().map(EndpointId::as_str)))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(endpoint_from_row)
            .collect()
    }

    async fn endpoint_by_uid(
        &self,
        uid: &EndpointUid,
    ) -> Result<Option<EndpointRecord>, StoreError> {
        sqlx::query("SELECT * FROM endpoints WHERE uid = ?")
            .bind(uid.as_str())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(endpoint_from_row)
            .transpose()
    }

    async fn delete_endpoint(&self, id: &EndpointId) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await?;
        let deleted = sqlx::query("DELETE FROM endpoints WHERE id = ?")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        for sql in [
            "DELETE FROM endpoint_types WHERE endpoint_id = ?",
            "DELETE FROM endpoint_channels WHERE endpoint_id = ?",
            "DELETE FROM deliveries WHERE endpoint_id = ? AND status = 0",
        ] {
            sqlx::query(sql).bind(id.as_str()).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(deleted > 0)
    }

    async fn list_endpoints(
        &self,
        filter: &EndpointFilter,
        page: &PageRequest,
    ) -> Result<Vec<Endpoint>, StoreError> {
        let mut query = ListQuery::new("SELECT e.* FROM endpoints e");
        if let Some(event_type) = &filter.event_type {
            query.condition(RECEIVES_TYPE, &[event_type.as_str()]);
        }
        if let Some(channel) = &filter.channel {
            query.condition(
                &format!("({HAS_NO_CHANNELS} OR {HAS_CHANNEL})"),
                &[channel.as_str()],
            );
        }
        query
            .page(page, "e.id")
            .fetch(&self.pool)
            .await?
            .iter()
            .map(|row| endpoint_from_row(row).map(|r| r.endpoint))
            .collect()
    }

    async fn recipients(
        &self,
        event_type: &EventTypeName,
        channel: Option<&Channel>,
    ) -> Result<Vec<EndpointId>, StoreError> {
        let ids: Vec<String> = match channel {
            None => {
                let sql = format!(
                    "SELECT e.id FROM endpoints e
                     WHERE e.disabled = 0 AND {RECEIVES_TYPE} AND {HAS_NO_CHANNELS}
                     ORDER BY e.id"
                );
                sqlx::query_scalar(AssertSqlSafe(sql))
                    .bind(event_type.as_str())
                    .fetch_all(&self.pool)
                    .await?
            }
            Some(channel) => {
                let sql = format!(
                    "SELECT e.id FROM endpoints e
                     WHERE e.disabled = 0 AND {RECEIVES_TYPE}
                       AND ({HAS_NO_CHANNELS} OR {HAS_CHANNEL})
                     ORDER BY e.id"
                );
                sqlx::query_scalar(AssertSqlSafe(sql))
                    .bind(event_type.as_str())
                    .bind(channel.as_str())
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        ids.into_iter()
            .map(|id| id.parse().map_err(|e| corrupt(format!("endpoint {id}"), e)))
            .collect()
    }

    async fn insert_message(
        &self,
        message: &Message,
        endpoints: &[EndpointId],
    ) -> Result<(), StoreError> {
        self.inserts
            .submit((message.clone(), endpoints.to_vec()), |batch| async move {
                let mut tx = self.writer.begin().await?;
                insert_messages_in(&mut tx, &batch).await?;
                tx.commit().await?;
                Ok(vec![(); batch.len()])
            })
            .await
    }

    async fn message(&self, id: &MessageId) -> Result<Option<Message>, StoreError> {
        sqlx::query("SELECT * FROM messages WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(message_from_row)
            .transpose()
    }

    async fn messages(&self, ids: &[MessageId]) -> Result<Vec<Message>, StoreError> {
        sqlx::query("SELECT * FROM messages WHERE id IN (SELECT value FROM json_each(?))")
            .bind(id_array(ids.iter().map(MessageId::as_str)))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(message_from_row)
            .collect()
    }

    async fn list_messages(
        &self,
        filter: &MessageFilter,
        page: &PageRequest,
    ) -> Result<Vec<Message>, StoreError> {
        let mut query = ListQuery::new("SELECT * FROM messages");
        if let Some(event_type) = &filter.event_type {
            query.condition("event_type = ?", &[event_type.as_str()]);
        }
        if let Some(channel) = &filter.channel {
            query.condition("channel = ?", &[channel.as_str()]);
        }
        query
            .page(page, "id")
            .fetch(&self.pool)
            .await?
            .iter()
            .map(message_from_row)
            .collect()
    }

    async fn deliveries(&self, message: &MessageId) -> Result<Vec<Delivery>, StoreError> {
        sqlx::query("SELECT * FROM deliveries WHERE message_id = ? ORDER BY endpoint_id")
            .bind(message.as_str())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(delivery_from_row)
            .collect()
    }

    async fn lease_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_for: Duration,
        limit: usize,
    ) -> Result<Vec<Lease>, StoreError> {
        let token = lease_token();
        let now_micros = micros(now);
        // One statement, so SQLite's write lock makes it atomic across connections and
        // processes: two workers can never come back with the same delivery.
        let rows = sqlx::query(
            "UPDATE deliveries SET leased_until = ?, lease_token = ?
             WHERE rowid IN (
                SELECT d.rowid FROM deliveries d
                WHERE d.status = 0 AND d.next_attempt_at <= ?
                  AND (d.leased_until IS NULL OR d.leased_until <= ?)
                  AND (NOT EXISTS (SELECT 1 FROM endpoints e
                                   WHERE e.id = d.endpoint_id AND e.ordered = 1)
                       OR NOT EXISTS (SELECT 1 FROM deliveries p
                                      WHERE p.endpoint_id = d.endpoint_id AND p.status = 0
                                        AND p.message_id < d.message_id))
                ORDER BY d.next_attempt_at, d.rowid LIMIT ?)
             RETURNING *",
        )
        .bind(micros(after(now, lease_for)))
        .bind(&token)
        .bind(now_micros)
        .bind(now_micros)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.writer)
        .await?;
        let mut leases = rows
            .iter()
            .map(|row| {
                Ok(Lease {
                    delivery: delivery_from_row(row)?,
                    token: token.clone(),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
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
        let mut tx = self.writer.begin().await?;
        let held = finish_in(&mut tx, &[(lease, update)]).await?;
        tx.commit().await?;
        Ok(held.first().copied().unwrap_or(false))
    }

    async fn finish_deliveries(
        &self,
        items: &[(Lease, DeliveryUpdate)],
        disable_after: Duration,
    ) -> Result<Finished, StoreError> {
        if items.is_empty() {
            return Ok(Finished::default());
        }
        let mut tx = self.writer.begin().await?;
        let refs: Vec<(&Lease, &DeliveryUpdate)> = items.iter().map(|(l, u)| (l, u)).collect();
        let held = finish_in(&mut tx, &refs).await?;
        let health = health_in(&mut tx, &outcomes(items), disable_after).await?;
        tx.commit().await?;
        Ok(Finished { held, health })
    }

    async fn list_attempts(
        &self,
        filter: &AttemptFilter,
        page: &PageRequest,
    ) -> Result<Vec<Attempt>, StoreError> {
        let mut query = ListQuery::new("SELECT * FROM attempts");
        if let Some(message) = &filter.message {
            query.condition("message_id = ?", &[message.as_str()]);
        }
        if let Some(endpoint) = &filter.endpoint {
            query.condition("endpoint_id = ?", &[endpoint.as_str()]);
        }
        if let Some(event_type) = &filter.event_type {
            query.condition("event_type = ?", &[event_type.as_str()]);
        }
        if let Some(channel) = &filter.channel {
            query.condition("channel = ?", &[channel.as_str()]);
        }
        let status;
        if let Some(code) = filter.status {
            status = code.code().to_string();
            query.condition("status = CAST(? AS INTEGER)", &[&status]);
        }
        let before;
        if let Some(time) = filter.before {
            before = micros(time).to_string();
            query.condition("created_at < CAST(? AS INTEGER)", &[&before]);
        }
        let after;
        if let Some(time) = filter.after {
            after = micros(time).to_string();
            query.condition("created_at > CAST(? AS INTEGER)", &[&after]);
        }
        query
            .page(page, "id")
            .fetch(&self.pool)
            .await?
            .iter()
            .map(attempt_from_row)
            .collect()
    }

    async fn requeue_delivery(
        &self,
        message: &MessageId,
        endpoint: &EndpointId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO deliveries (message_id, endpoint_id, status, attempts, next_attempt_at,
                next_trigger)
             VALUES (?, ?, 0, 0, ?, 1)
             ON CONFLICT (message_id, endpoint_id) DO UPDATE SET status = 0, attempts = 0,
                next_attempt_at = excluded.next_attempt_at, next_trigger = 1,
                leased_until = NULL, lease_token = NULL",
        )
        .bind(message.as_str())
        .bind(endpoint.as_str())
        .bind(micros(now))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn recover_deliveries(
        &self,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "UPDATE deliveries SET status = 0, attempts = 0, next_attempt_at = ?,
                next_trigger = 1, leased_until = NULL, lease_token = NULL
             WHERE endpoint_id = ? AND status = 2
               AND message_id IN (SELECT id FROM messages WHERE created_at >= ?)",
        )
        .bind(micros(now))
        .bind(endpoint.as_str())
        .bind(micros(since))
        .execute(&self.writer)
        .await?
        .rows_affected())
    }

    async fn record_health(
        &self,
        endpoint: &EndpointId,
        success: bool,
        now: DateTime<Utc>,
        disable_after: Duration,
    ) -> Result<HealthChange, StoreError> {
        let mut tx = self.writer.begin().await?;
        let changes = health_in(&mut tx, &[(endpoint, success, now)], disable_after).await?;
        tx.commit().await?;
        Ok(changes
            .into_iter()
            .next()
            .map_or(HealthChange::Unchanged, |(_, change)| change))
    }

    async fn purge_payloads(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "UPDATE messages SET payload = '', expired = 1 WHERE created_at < ? AND expired = 0",
        )
        .bind(micros(before))
        .execute(&self.writer)
        .await?
        .rows_affected())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Every page query must walk an index from the cursor, never scan the table from the
    /// start or sort it: that is what keeps listing N items page by page linear.
    #[tokio::test]
    async fn page_queries_seek_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("plan.db")).await.unwrap();
        let page = PageRequest {
            after: Some("msg_x".into()),
            order: Order::Descending,
            limit: 50,
        };
        let cases: Vec<(ListQuery, &str)> = vec![
            (
                ListQuery::new("SELECT * FROM messages").page(&page, "id"),
                "messages",
            ),
            (
                {
                    let mut q = ListQuery::new("SELECT * FROM messages");
                    q.condition("event_type = ?", &["a.b"]);
                    q.page(&page, "id")
                },
                "messages",
            ),
            (
                {
                    let mut q = ListQuery::new("SELECT * FROM event_types");
                    q.condition("archived = 0", &[]);
                    q.page(&page, "name")
                },
                "event_types",
            ),
            (
                ListQuery::new("SELECT e.* FROM endpoints e").page(&page, "e.id"),
                "endpoints",
            ),
            (
                {
                    let mut q = ListQuery::new("SELECT * FROM attempts");
                    q.condition("endpoint_id = ?", &["ep_x"]);
                    q.page(&page, "id")
                },
                "attempts",
            ),
            (
                {
                    let mut q = ListQuery::new("SELECT * FROM attempts");
                    q.condition("event_type = ?", &["a.b"]);
                    q.condition("channel = ?", &["blue"]);
                    q.page(&page, "id")
                },
                "attempts",
            ),
        ];
        for (query, table) in cases {
            let mut explain =
                sqlx::query(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {}", query.sql)));
            for bind in &query.binds {
                explain = explain.bind(bind.clone());
            }
            let plan: Vec<String> = explain
                .fetch_all(&store.pool)
                .await
                .unwrap()
                .iter()
                .map(|row| row.try_get::<String, _>("detail").unwrap())
                .collect();
            let text = plan.join(" | ");
            assert!(
                text.contains(&format!("SEARCH {table}")) || text.contains("SEARCH e USING"),
                "{}: {text}",
                query.sql
            );
            assert!(!text.contains("TEMP B-TREE"), "{}: {text}", query.sql);
        }
    }

    /// A file written by schema version 1 (before the delivery engine) opens, upgrades in
    /// place and keeps its data.
    #[tokio::test]
    async fn version_1_files_upgrade_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        {
            let options = SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true);
            let pool = SqlitePool::connect_with(options).await.unwrap();
            for statement in SCHEMA_V1 {
                sqlx::query(*statement).execute(&pool).await.unwrap();
            }
            sqlx::query("PRAGMA user_version = 1")
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query(
                "INSERT INTO messages (id, event_type, channel, payload, created_at)
                 VALUES ('msg_2ylMPb5DLdBRLfHmRYkcwGVkW8V', 'a.b', NULL, '{\"x\": 1}', 0)",
            )
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO deliveries (message_id, endpoint_id, status, attempts,
                    next_attempt_at)
                 VALUES ('msg_2ylMPb5DLdBRLfHmRYkcwGVkW8V', 'ep_2ylMPb5DLdBRLfHmRYkcwGVkW8V',
                    0, 0, 0)",
            )
            .execute(&pool)
            .await
            .unwrap();
            pool.close().await;
        }
        let store = SqliteStore::open(&path).await.unwrap();
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let id: MessageId = "msg_2ylMPb5DLdBRLfHmRYkcwGVkW8V".parse().unwrap();
        let message = store.message(&id).await.unwrap().unwrap();
        assert_eq!(message.payload, r#"{"x": 1}"#);
        assert!(!message.expired);
        let delivery = &store.deliveries(&id).await.unwrap()[0];
        assert_eq!(delivery.trigger, AttemptTrigger::Scheduled);
        let attempts = store
            .list_attempts(
                &AttemptFilter::default(),
                &PageRequest {
                    after: None,
                    order: Order::Ascending,
                    limit: 10,
                },
            )
            .await
            .unwrap();
        assert!(attempts.is_empty());
        store.close().await;
        // Opening again is a no-op.
        let again = SqliteStore::open(&path).await.unwrap();
        assert!(again.message(&id).await.unwrap().is_some());
    }
}
