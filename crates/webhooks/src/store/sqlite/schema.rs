//! The SQLite schema, versioned with `PRAGMA user_version`, and the migrations that bring a
//! file written by an older build up to date in place.
//!
//! A new file goes through every migration too, so the upgrade path is what every test runs.

use rusqlite::Connection;

use crate::error::StoreError;

/// The schema version this build writes.
pub(super) const VERSION: i64 = 11;

/// Version 1: the registry (event types, endpoints, messages, deliveries).
pub(super) const V1: &[&str] = &[
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
/// payload retention).
pub(super) const V2: &[&str] = &[
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

/// Version 3: the per-delivery tables written for every delivery (deliveries, attempts)
/// refer to messages and endpoints by integer keys, and their indexes hold only what the
/// queries seek. Recording a delivery's attempt touched about ten B-trees keyed by
/// 31-character ids; it now touches fewer, keyed by small integers.
///
/// - `messages.seq`, `endpoints.seq`: the integer keys. Ids stay unique and are what the
///   API speaks.
/// - Deleted endpoints are kept as tombstones (`deleted = 1`, secrets, headers and metadata
///   wiped, uid freed) so their attempts still name them.
/// - `deliveries` is clustered on (message, endpoint); the due queue, the pending
///   deliveries of an endpoint and its exhausted ones are partial indexes, so a delivery
///   that succeeded leaves them.
const V3: &[&str] = &[
    "CREATE TABLE endpoints_v3 (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
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
        updated_at INTEGER NOT NULL,
        rate_limit INTEGER,
        ordered INTEGER NOT NULL DEFAULT 0,
        failing_since INTEGER,
        deleted INTEGER NOT NULL DEFAULT 0
    )",
    "INSERT INTO endpoints_v3 (id, uid, url, all_types, event_types, channels, metadata,
        headers, disabled, description, keys, created_at, updated_at, rate_limit, ordered,
        failing_since)
     SELECT id, uid, url, all_types, event_types, channels, metadata, headers, disabled,
        description, keys, created_at, updated_at, rate_limit, ordered, failing_since
     FROM endpoints ORDER BY id",
    // Endpoints deleted before this version, still named by deliveries or attempts.
    "INSERT INTO endpoints_v3 (id, url, all_types, event_types, channels, metadata, headers,
        disabled, description, keys, created_at, updated_at, deleted)
     SELECT endpoint_id, '', 0, '[]', '[]', '{}', '{}', 1, '', '', 0, 0, 1
     FROM (SELECT endpoint_id FROM deliveries UNION SELECT endpoint_id FROM attempts)
     WHERE endpoint_id NOT IN (SELECT id FROM endpoints)
     ORDER BY endpoint_id",
    "CREATE TABLE messages_v3 (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        event_type TEXT NOT NULL,
        channel TEXT,
        payload TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expired INTEGER NOT NULL DEFAULT 0
    )",
    "INSERT INTO messages_v3 (id, event_type, channel, payload, created_at, expired)
     SELECT id, event_type, channel, payload, created_at, expired FROM messages ORDER BY id",
    "CREATE TABLE deliveries_v3 (
        msg INTEGER NOT NULL,
        ep INTEGER NOT NULL,
        status INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        next_attempt_at INTEGER NOT NULL,
        leased_until INTEGER,
        lease_token TEXT,
        next_trigger INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (msg, ep)
    ) WITHOUT ROWID",
    // A delivery of a message that is gone has nothing to deliver.
    "INSERT INTO deliveries_v3 (msg, ep, status, attempts, next_attempt_at, leased_until,
        lease_token, next_trigger)
     SELECT m.seq, e.seq, d.status, d.attempts, d.next_attempt_at, d.leased_until,
        d.lease_token, d.next_trigger
     FROM deliveries d
     JOIN messages_v3 m ON m.id = d.message_id
     JOIN endpoints_v3 e ON e.id = d.endpoint_id",
    "CREATE TABLE attempts_v3 (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL,
        msg INTEGER NOT NULL,
        ep INTEGER NOT NULL,
        event_type TEXT NOT NULL,
        channel TEXT,
        url TEXT NOT NULL,
        status INTEGER NOT NULL,
        response_status INTEGER NOT NULL,
        response TEXT NOT NULL,
        headers TEXT NOT NULL,
        duration_us INTEGER NOT NULL,
        trigger_code INTEGER NOT NULL,
        created_at INTEGER NOT NULL
    )",
    "INSERT INTO attempts_v3 (id, msg, ep, event_type, channel, url, status, response_status,
        response, headers, duration_us, trigger_code, created_at)
     SELECT a.id, m.seq, e.seq, a.event_type, a.channel, a.url, a.status, a.response_status,
        a.response, a.headers, a.duration_us, a.next_trigger, a.created_at
     FROM attempts a
     JOIN messages_v3 m ON m.id = a.message_id
     JOIN endpoints_v3 e ON e.id = a.endpoint_id
     ORDER BY a.id",
    "DROP TABLE attempts",
    "DROP TABLE deliveries",
    "DROP TABLE messages",
    "DROP TABLE endpoints",
    "ALTER TABLE endpoints_v3 RENAME TO endpoints",
    "ALTER TABLE messages_v3 RENAME TO messages",
    "ALTER TABLE deliveries_v3 RENAME TO deliveries",
    "ALTER TABLE attempts_v3 RENAME TO attempts",
    "CREATE INDEX messages_by_type ON messages (event_type, id)",
    "CREATE INDEX messages_by_time ON messages (created_at)",
    "CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 0",
    "CREATE INDEX deliveries_pending ON deliveries (ep, msg) WHERE status = 0",
    "CREATE INDEX deliveries_exhausted ON deliveries (ep, msg) WHERE status = 2",
    "CREATE INDEX attempts_by_endpoint ON attempts (ep, id)",
    "CREATE INDEX attempts_by_message ON attempts (msg, id)",
    "CREATE INDEX attempts_by_type ON attempts (event_type, id)",
];

/// Version 4: fan-outs. A message's first attempts to its (unordered) endpoints are kept as
/// one record instead of a delivery row each: the endpoints in `messages.fanout` (integer
/// keys, comma-separated), and, while some of them are still to be attempted, a small row in
/// `fanouts` (how many are left under the current lease, and the lease). A delivery row is
/// written only when a delivery leaves that path: it failed and will be retried, it was held
/// back, or someone resent it. A first attempt that succeeds writes its attempt and nothing
/// else. An attempt's stored headers leave out those that follow from the attempt itself
/// (`elided` says which), a third of the row; `held` says whether its report was taken.
/// Deleting an endpoint marks its pending delivery rows dropped (status 3) instead of
/// deleting them.
const V4: &[&str] = &[
    "ALTER TABLE messages ADD COLUMN fanout TEXT NOT NULL DEFAULT ''",
    "CREATE TABLE fanouts (
        msg INTEGER PRIMARY KEY,
        left INTEGER NOT NULL,
        recount INTEGER NOT NULL DEFAULT 0,
        leased_until INTEGER NOT NULL DEFAULT 0,
        lease_token TEXT
    )",
    "CREATE INDEX fanouts_due ON fanouts (leased_until, msg)",
    // Which of the headers that follow from the attempt itself were left out of `headers`.
    "ALTER TABLE attempts ADD COLUMN elided INTEGER NOT NULL DEFAULT 0",
    // Whether the attempt's report was taken (its lease still held); a stale report's
    // attempt is listed but does not settle a fan-out's share.
    "ALTER TABLE attempts ADD COLUMN held INTEGER NOT NULL DEFAULT 1",
];

/// Version 5: attempts are listed in the order they were recorded (their row keys), so their
/// indexes hold a small integer and the row key instead of a 31-character id: about a quarter
/// of the size, and much cheaper to keep up, since every attempt adds an entry to each (the
/// endpoint's one in a different place for each of a message's endpoints). An index on the
/// id finds where a page's cursor (an attempt id) stands.
const V5: &[&str] = &[
    "DROP INDEX attempts_by_endpoint",
    "DROP INDEX attempts_by_message",
    "DROP INDEX attempts_by_type",
    "CREATE INDEX attempts_by_endpoint ON attempts (ep)",
    "CREATE INDEX attempts_by_message ON attempts (msg)",
    "CREATE INDEX attempts_by_type ON attempts (event_type)",
    "CREATE INDEX attempts_by_id ON attempts (id)",
];

/// Version 6: a message keeps the sender's event id (Svix's `eventId`), found by an index
/// that holds only messages that have one.
const V6: &[&str] = &[
    "ALTER TABLE messages ADD COLUMN event_id TEXT",
    "CREATE INDEX messages_by_event_id ON messages (event_id) WHERE event_id IS NOT NULL",
];

/// Version 7: applications. Every endpoint and message belongs to one (`app`, the
/// application's integer key); what a file held before belongs to the default application
/// (key 1). Endpoint uids are unique within their application, so the endpoints table is
/// rebuilt without its column-wide `UNIQUE`. Messages are listed per application (by id, by
/// type, by event id).
const V7: &[&str] = &[
    "CREATE TABLE apps (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        uid TEXT UNIQUE,
        name TEXT NOT NULL,
        metadata TEXT NOT NULL,
        rate_limit INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    )",
    "INSERT INTO apps (seq, id, name, metadata, created_at, updated_at)
     VALUES (1, 'app_000000000000000000000000000', 'default', '{}', 0, 0)",
    "CREATE TABLE endpoints_v7 (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        app INTEGER NOT NULL DEFAULT 1,
        uid TEXT,
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
        updated_at INTEGER NOT NULL,
        rate_limit INTEGER,
        ordered INTEGER NOT NULL DEFAULT 0,
        failing_since INTEGER,
        deleted INTEGER NOT NULL DEFAULT 0
    )",
    "INSERT INTO endpoints_v7 (seq, id, uid, url, all_types, event_types, channels, metadata,
        headers, disabled, description, keys, created_at, updated_at, rate_limit, ordered,
        failing_since, deleted)
     SELECT seq, id, uid, url, all_types, event_types, channels, metadata, headers, disabled,
        description, keys, created_at, updated_at, rate_limit, ordered, failing_since, deleted
     FROM endpoints",
    "DROP TABLE endpoints",
    "ALTER TABLE endpoints_v7 RENAME TO endpoints",
    "CREATE UNIQUE INDEX endpoints_by_uid ON endpoints (app, uid) WHERE uid IS NOT NULL",
    "CREATE INDEX endpoints_by_app ON endpoints (app, id) WHERE deleted = 0",
    "ALTER TABLE messages ADD COLUMN app INTEGER NOT NULL DEFAULT 1",
    "DROP INDEX messages_by_type",
    "DROP INDEX messages_by_event_id",
    "CREATE INDEX messages_by_app ON messages (app, id)",
    "CREATE INDEX messages_by_type ON messages (app, event_type, id)",
    "CREATE INDEX messages_by_event_id ON messages (app, event_id) WHERE event_id IS NOT NULL",
];

/// Version 8: fair leasing across applications. Delivery rows and fan-outs carry their
/// message's application, and are found per application in the order they become available
/// (a row: when it is due and not leased, `MAX(next_attempt_at, leased_until)`; a fan-out:
/// when its claim, if any, runs out). `ready` holds, per application with pending work, a
/// time at or before which it may have something available: triggers lower it whenever a
/// row or fan-out is written, and leasing, which serves the applications whose time has come
/// in turn, sets it to the exact next time (or drops it) after serving one. So leasing looks
/// only at applications with something due, however long another's backlog is.
const V8: &[&str] = &[
    "ALTER TABLE deliveries ADD COLUMN app INTEGER NOT NULL DEFAULT 1",
    "UPDATE deliveries SET app = (SELECT m.app FROM messages m WHERE m.seq = deliveries.msg)",
    "ALTER TABLE fanouts ADD COLUMN app INTEGER NOT NULL DEFAULT 1",
    "UPDATE fanouts SET app = (SELECT m.app FROM messages m WHERE m.seq = fanouts.msg)",
    "DROP INDEX deliveries_due",
    "DROP INDEX fanouts_due",
    "CREATE INDEX deliveries_ready ON deliveries
        (app, MAX(next_attempt_at, COALESCE(leased_until, 0)), msg, ep) WHERE status = 0",
    "CREATE INDEX fanouts_ready ON fanouts (app, leased_until, msg)",
    "CREATE TABLE ready (
        app INTEGER PRIMARY KEY,
        due INTEGER NOT NULL
    )",
    "CREATE INDEX ready_by_due ON ready (due, app)",
    "INSERT INTO ready (app, due)
     SELECT app, 0 FROM deliveries WHERE status = 0
     UNION SELECT app, 0 FROM fanouts",
    // A pending row written: its application may have something at that time. A row leaving
    // pending (done, exhausted, dropped) may free the next one of an ordered endpoint: look
    // again at once.
    "CREATE TRIGGER deliveries_ready_insert AFTER INSERT ON deliveries WHEN NEW.status = 0
     BEGIN
        INSERT INTO ready (app, due)
        VALUES (NEW.app, MAX(NEW.next_attempt_at, COALESCE(NEW.leased_until, 0)))
        ON CONFLICT (app) DO UPDATE SET due = MIN(due, excluded.due);
     END",
    "CREATE TRIGGER deliveries_ready_update
     AFTER UPDATE OF status, next_attempt_at, leased_until ON deliveries
     WHEN NEW.status = 0 OR OLD.status = 0
     BEGIN
        INSERT INTO ready (app, due)
        VALUES (NEW.app, CASE WHEN NEW.status = 0
            THEN MAX(NEW.next_attempt_at, COALESCE(NEW.leased_until, 0)) ELSE 0 END)
        ON CONFLICT (app) DO UPDATE SET due = MIN(due, excluded.due);
     END",
    "CREATE TRIGGER fanouts_ready_insert AFTER INSERT ON fanouts
     BEGIN
        INSERT INTO ready (app, due) VALUES (NEW.app, NEW.leased_until)
        ON CONFLICT (app) DO UPDATE SET due = MIN(due, excluded.due);
     END",
    "CREATE TRIGGER fanouts_ready_update AFTER UPDATE OF leased_until ON fanouts
     BEGIN
        INSERT INTO ready (app, due) VALUES (NEW.app, NEW.leased_until)
        ON CONFLICT (app) DO UPDATE SET due = MIN(due, excluded.due);
     END",
];

/// Version 9: idempotency keys. An API layer claims a key (`status` NULL, `until` the end of
/// the claim), then keeps the response under it (`status`, `headers`, `body`, `until` its
/// expiry); entries past `until` are purged.
const V9: &[&str] = &[
    "CREATE TABLE idempotency (
        key TEXT PRIMARY KEY NOT NULL,
        until INTEGER NOT NULL,
        status INTEGER,
        headers TEXT,
        body BLOB
    ) WITHOUT ROWID",
    "CREATE INDEX idempotency_until ON idempotency (until)",
];

/// Version 10: application-scoped API tokens, kept as hashes.
const V10: &[&str] = &[
    "CREATE TABLE access_tokens (
        hash TEXT PRIMARY KEY NOT NULL,
        app INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        read_only INTEGER NOT NULL
    ) WITHOUT ROWID",
    "CREATE INDEX access_tokens_by_app ON access_tokens (app)",
    "CREATE INDEX access_tokens_by_expiry ON access_tokens (expires_at)",
];

/// Version 11: an attempt carries its message's application, so an application's attempts
/// are listed through an index of their own (newest first, as every attempt list) rather
/// than by reading the whole store's, and its failed attempts through a partial index that
/// holds only failures. Existing attempts are given their application in the same
/// transaction. (An index on an endpoint's attempts by time, for its health over a window,
/// was measured and left out: every attempt paid for it, 10–15 % of the delivery bench with
/// 100 endpoints a message.)
const V11: &[&str] = &[
    "ALTER TABLE attempts ADD COLUMN app INTEGER NOT NULL DEFAULT 0",
    "UPDATE attempts SET app = COALESCE((SELECT m.app FROM messages m WHERE m.seq = attempts.msg), 0)",
    "CREATE INDEX attempts_by_app ON attempts (app)",
    // Failed attempts are few and the ones a person looks for: listed per application
    // without reading its successes. Only failures have an entry.
    "CREATE INDEX attempts_failed ON attempts (app) WHERE status = 2",
];

/// Brings the file's schema up to [`VERSION`], in one transaction.
///
/// # Errors
/// [`StoreError::UnsupportedSchemaVersion`] for a file a newer build wrote;
/// [`StoreError::Database`].
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let found: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found > VERSION {
        return Err(StoreError::UnsupportedSchemaVersion {
            found,
            supported: VERSION,
        });
    }
    for (target, statements) in [
        (1, V1),
        (2, V2),
        (3, V3),
        (4, V4),
        (5, V5),
        (6, V6),
        (7, V7),
        (8, V8),
        (9, V9),
        (10, V10),
        (11, V11),
    ] {
        if found < target {
            for statement in statements {
                tx.execute_batch(statement)?;
            }
        }
    }
    if found < VERSION {
        tx.pragma_update(None, "user_version", VERSION)?;
    }
    tx.commit()?;
    Ok(())
}
