//! Absorbing another store file: everything one file holds for its default application
//! (endpoints with their keys and tombstones, messages, deliveries, fan-outs, attempts)
//! becomes one application's here, and event types the catalogue lacks join it. The integer keys
//! of the other file are renumbered into this one's.
//!
//! This is how a data directory of the server's first versions (a file per application) is
//! brought into one store. The whole import is one transaction: it happens entirely or not
//! at all, so an interrupted upgrade can be run again.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, params};

use super::rows::{corrupt, micros, to_json};
use super::{SqliteStore, schema};
use crate::error::StoreError;
use crate::model::Application;

/// What [`SqliteStore::import`] carried over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Imported {
    /// Event types added to the catalogue (one it already has is kept as it is).
    pub event_types: u64,
    /// Endpoints, tombstones of deleted ones included.
    pub endpoints: u64,
    /// Messages.
    pub messages: u64,
    /// Delivery rows (retries, resends, held-back deliveries).
    pub deliveries: u64,
    /// Fan-outs still out (first attempts not yet all made).
    pub fanouts: u64,
    /// Attempts.
    pub attempts: u64,
}

impl SqliteStore {
    /// Copies what the store file at `path` holds into this store: its default
    /// application's endpoints, messages, deliveries, fan-outs and attempts into
    /// `application` (created here with them), and the event types the catalogue lacks into it.
    /// The file is first brought up to this build's schema; nothing else in it changes.
    ///
    /// One transaction: when it fails, nothing was imported. An application already here
    /// with `application`'s id means the file was imported before: nothing is done and the
    /// counts are zero.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when `application`'s uid belongs to another application;
    /// [`StoreError::Database`] when either file cannot be read or written;
    /// [`StoreError::UnsupportedSchemaVersion`] for a file a newer build wrote.
    pub async fn import(
        &self,
        path: impl AsRef<Path>,
        application: &Application,
    ) -> Result<Imported, StoreError> {
        // Bring the other file to this schema (and close it) before reading it.
        SqliteStore::open(path.as_ref()).await?.close().await;
        let path = path.as_ref().to_owned();
        let application = application.clone();
        let imported = self
            .db
            .write(move |conn| {
                // Read-write, though only read: the last connection to close then folds
                // its WAL into the file and removes it, so the file alone holds everything.
                let source = Connection::open_with_flags(
                    &path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                let version: i64 = source.query_row("PRAGMA user_version", [], |r| r.get(0))?;
                if version != schema::VERSION {
                    return Err(StoreError::UnsupportedSchemaVersion {
                        found: version,
                        supported: schema::VERSION,
                    });
                }
                copy(&source, conn, &application)
            })
            .await?;
        // What the file held is clear (or sealed as this store seals): seal it here.
        self.reseal().await?;
        Ok(imported)
    }
}

fn copy(
    source: &Connection,
    conn: &Connection,
    application: &Application,
) -> Result<Imported, StoreError> {
    let mut imported = Imported::default();
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM apps WHERE id = ?)",
        [application.id.as_str()],
        |r| r.get(0),
    )?;
    if exists {
        return Ok(imported);
    }
    // Event types: those the catalogue lacks are added; those it has are kept as they are
    // (the first versions wrote the shared catalogue first and copies later, so a copy's
    // times say when it was copied, not when the type changed).
    {
        let mut read = source.prepare(
            "SELECT name, description, schema, archived, created_at, updated_at FROM event_types",
        )?;
        let mut write = conn.prepare_cached(
            "INSERT INTO event_types (name, description, schema, archived, created_at,
                updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (name) DO NOTHING",
        )?;
        let mut rows = read.query([])?;
        while let Some(row) = rows.next()? {
            let changed = write.execute(params![
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, i64>(3)?,
                row.get::<_, i64>(4)?,
                row.get::<_, i64>(5)?,
            ])?;
            imported.event_types += changed as u64;
        }
    }
    // The application.
    let result = conn
        .prepare_cached(
            "INSERT INTO apps (id, uid, name, metadata, rate_limit, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )?
        .execute(params![
            application.id.as_str(),
            application.uid.as_ref().map(|u| u.as_str()),
            application.name,
            to_json(&application.metadata)?,
            application.rate_limit.map(|n| i64::from(n.get())),
            micros(application.created_at),
            micros(application.updated_at),
        ]);
    match result {
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            return Err(StoreError::Conflict {
                what: format!(
                    "an application with uid `{}`",
                    application
                        .uid
                        .as_ref()
                        .map(|u| u.as_str())
                        .unwrap_or_default()
                ),
            });
        }
        other => other?,
    };
    let app = conn.last_insert_rowid();
    // Endpoints, tombstones included (their attempts name them), in key order.
    let mut endpoints: HashMap<i64, i64> = HashMap::new();
    {
        let mut read = source.prepare(
            "SELECT seq, id, uid, url, all_types, event_types, channels, metadata, headers,
                disabled, description, keys, created_at, updated_at, rate_limit, ordered,
                failing_since, deleted
             FROM endpoints WHERE app = 1 ORDER BY seq",
        )?;
        let mut write = conn.prepare_cached(
            "INSERT INTO endpoints (id, app, uid, url, all_types, event_types, channels,
                metadata, headers, disabled, description, keys, created_at, updated_at,
                rate_limit, ordered, failing_since, deleted)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                ?17, ?18)",
        )?;
        let mut rows = read.query([])?;
        while let Some(row) = rows.next()? {
            let old: i64 = row.get(0)?;
            write.execute(params![
                row.get::<_, String>(1)?,
                app,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, i64>(4)?,
                row.get::<_, String>(5)?,
                row.get::<_, String>(6)?,
                row.get::<_, String>(7)?,
                row.get::<_, String>(8)?,
                row.get::<_, i64>(9)?,
                row.get::<_, String>(10)?,
                row.get::<_, String>(11)?,
                row.get::<_, i64>(12)?,
                row.get::<_, i64>(13)?,
                row.get::<_, Option<i64>>(14)?,
                row.get::<_, i64>(15)?,
                row.get::<_, Option<i64>>(16)?,
                row.get::<_, i64>(17)?,
            ])?;
            endpoints.insert(old, conn.last_insert_rowid());
            imported.endpoints += 1;
        }
    }
    for (table, columns) in [
        ("endpoint_types", "event_type, endpoint_id"),
        ("endpoint_channels", "endpoint_id, channel"),
    ] {
        let mut read = source.prepare(&format!(
            "SELECT {columns} FROM {table} WHERE endpoint_id IN
                (SELECT id FROM endpoints WHERE app = 1)"
        ))?;
        let mut write = conn.prepare(&format!(
            "INSERT OR IGNORE INTO {table} ({columns}) VALUES (?, ?)"
        ))?;
        let mut rows = read.query([])?;
        while let Some(row) = rows.next()? {
            write.execute(params![row.get::<_, String>(0)?, row.get::<_, String>(1)?])?;
        }
    }
    let endpoint = |old: i64| {
        endpoints
            .get(&old)
            .copied()
            .ok_or_else(|| corrupt(format!("endpoint row {old}"), "named but not stored"))
    };
    // Messages, with their fan-outs' endpoint lists renumbered.
    let mut messages: HashMap<i64, i64> = HashMap::new();
    {
        let mut read = source.prepare(
            "SELECT seq, id, event_type, channel, payload, created_at, expired, fanout,
                event_id
             FROM messages WHERE app = 1 ORDER BY seq",
        )?;
        let mut write = conn.prepare_cached(
            "INSERT INTO messages (id, app, event_type, channel, payload, created_at, expired,
                fanout, event_id)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )?;
        let mut rows = read.query([])?;
        while let Some(row) = rows.next()? {
            let old: i64 = row.get(0)?;
            let fanout: String = row.get(7)?;
            let renumbered = if fanout.is_empty() {
                String::new()
            } else {
                fanout
                    .split(',')
                    .map(|seq| {
                        seq.parse::<i64>()
                            .map_err(|e| corrupt(format!("message row {old}"), e))
                            .and_then(&endpoint)
                            .map(|new| new.to_string())
                    })
                    .collect::<Result<Vec<_>, _>>()?
                    .join(",")
            };
            write.execute(params![
                row.get::<_, String>(1)?,
                app,
                row.get::<_, String>(2)?,
                row.get::<_, Option<String>>(3)?,
                row.get::<_, String>(4)?,
                row.get::<_, i64>(5)?,
                row.get::<_, i64>(6)?,
                renumbered,
                row.get::<_, Option<String>>(8)?,
            ])?;
            messages.insert(old, conn.last_insert_rowid());
            imported.messages += 1;
        }
    }
    let message = |old: i64| {
        messages
            .get(&old)
            .copied()
            .ok_or_else(|| corrupt(format!("message row {old}"), "named but not stored"))
    };
    {
        let mut read = source.prepare(
            "SELECT msg, ep, status, attempts, next_attempt_at, leased_until, lease_token,
                next_trigger
             FROM deliveries WHERE msg IN (SELECT seq FROM messages WHERE app = 1)",
        )?;
        let mut write = conn.prepare_cached(
            "INSERT INTO deliveries (msg, ep, status, attempts, next_attempt_at, leased_until,
                lease_token, next_trigger, app)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, (SELECT app FROM messages WHERE seq = ?1))",
        )?;
        let mut rows = read.query([])?;
        while let Some(row) = rows.next()? {
            write.execute(params![
                message(row.get(0)?)?,
                endpoint(row.get(1)?)?,
                row.get::<_, i64>(2)?,
                row.get::<_, i64>(3)?,
                row.get::<_, i64>(4)?,
                row.get::<_, Option<i64>>(5)?,
                row.get::<_, Option<String>>(6)?,
                row.get::<_, i64>(7)?,
            ])?;
            imported.deliveries += 1;
        }
    }
    {
        let mut read = source.prepare(
            "SELECT msg, left, recount, leased_until, lease_token FROM fanouts
                 WHERE msg IN (SELECT seq FROM messages WHERE app = 1)",
        )?;
        let mut write = conn.prepare_cached(
            "INSERT INTO fanouts (msg, left, recount, leased_until, lease_token, app)
             VALUES (?1, ?2, ?3, ?4, ?5, (SELECT app FROM messages WHERE seq = ?1))",
        )?;
        let mut rows = read.query([])?;
        while let Some(row) = rows.next()? {
            write.execute(params![
                message(row.get(0)?)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, i64>(3)?,
                row.get::<_, Option<String>>(4)?,
            ])?;
            imported.fanouts += 1;
        }
    }
    {
        // In the order they were recorded, which is the order they list in.
        let mut read = source.prepare(
            "SELECT id, msg, ep, event_type, channel, url, status, response_status, response,
                headers, elided, duration_us, trigger_code, created_at, held
             FROM attempts WHERE msg IN (SELECT seq FROM messages WHERE app = 1)
             ORDER BY seq",
        )?;
        let mut write = conn.prepare_cached(
            "INSERT INTO attempts (id, msg, ep, event_type, channel, url, status,
                response_status, response, headers, elided, duration_us, trigger_code,
                created_at, held, app)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
                (SELECT app FROM messages WHERE seq = ?2))",
        )?;
        let mut rows = read.query([])?;
        while let Some(row) = rows.next()? {
            write.execute(params![
                row.get::<_, String>(0)?,
                message(row.get(1)?)?,
                endpoint(row.get(2)?)?,
                row.get::<_, String>(3)?,
                row.get::<_, Option<String>>(4)?,
                row.get::<_, String>(5)?,
                row.get::<_, i64>(6)?,
                row.get::<_, i64>(7)?,
                row.get::<_, String>(8)?,
                row.get::<_, String>(9)?,
                row.get::<_, i64>(10)?,
                row.get::<_, i64>(11)?,
                row.get::<_, i64>(12)?,
                row.get::<_, i64>(13)?,
                row.get::<_, i64>(14)?,
            ])?;
            imported.attempts += 1;
        }
    }
    tracing::info!(application = %application.id, ?imported, "store file imported");
    Ok(imported)
}
