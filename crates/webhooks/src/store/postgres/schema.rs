//! The PostgreSQL schema, versioned in a table of its own, and the migrations that bring a
//! database written by an older build up to date.
//!
//! Migrations run in one transaction under an advisory lock, so several processes starting
//! at once on one database migrate it once; a database a newer build wrote is refused, never
//! changed.
//!
//! Every text column that is a key or a cursor is `COLLATE "C"`: pages are keyset-paginated
//! on ids and names, and byte order is the order every other store uses, whatever the
//! database's default collation.

use deadpool_postgres::Client;

use crate::error::StoreError;
use crate::model::Application;

/// The schema version this build writes.
pub(super) const VERSION: i32 = 5;

/// The advisory lock key migrations hold (any fixed number; "switchya" in ASCII).
const MIGRATION_LOCK: i64 = 0x7377_6974_6368_7961;

/// Version 1: applications, event types, endpoints, messages, deliveries, attempts.
///
/// - Timestamps are microseconds since the Unix epoch (`BIGINT`), as in the SQLite store.
/// - `deliveries_ready` finds an application's pending deliveries in the order they fall
///   due; a lease walks the applications that have pending deliveries through the same
///   index (see `lease.rs`). It leaves out the lease columns, so taking or releasing a
///   lease changes no indexed column and PostgreSQL updates the row in place (a HOT update,
///   for which the table leaves 30 % of each page free): a lease writes no index entries.
/// - `apps.served` is the lease turn in which the application was last served: the
///   applications served longest ago take their turns first.
/// - Attempts are listed in the order recorded, their `seq`, through an index per way of
///   listing them (application, message, endpoint); the id is the key a page's cursor is
///   found by. `seq` itself needs no index of its own: each attempt costs four index
///   entries.
const V1: &[&str] = &[
    "CREATE TABLE apps (
        seq BIGSERIAL PRIMARY KEY,
        id TEXT COLLATE \"C\" NOT NULL UNIQUE,
        uid TEXT COLLATE \"C\" UNIQUE,
        name TEXT NOT NULL,
        metadata TEXT NOT NULL,
        rate_limit BIGINT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        served BIGINT NOT NULL DEFAULT 0
    )",
    "CREATE SEQUENCE lease_turns",
    "CREATE TABLE event_types (
        name TEXT COLLATE \"C\" PRIMARY KEY,
        description TEXT NOT NULL,
        schema TEXT NOT NULL,
        archived BOOLEAN NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    )",
    "CREATE TABLE endpoints (
        seq BIGSERIAL PRIMARY KEY,
        id TEXT COLLATE \"C\" NOT NULL UNIQUE,
        app BIGINT NOT NULL,
        uid TEXT COLLATE \"C\",
        url TEXT NOT NULL,
        all_types BOOLEAN NOT NULL,
        event_types TEXT[] NOT NULL,
        channels TEXT[] NOT NULL,
        metadata TEXT NOT NULL,
        headers TEXT NOT NULL,
        disabled BOOLEAN NOT NULL,
        description TEXT NOT NULL,
        keys TEXT NOT NULL,
        rate_limit BIGINT,
        ordered BOOLEAN NOT NULL,
        failing_since BIGINT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    )",
    "CREATE UNIQUE INDEX endpoints_by_uid ON endpoints (app, uid) WHERE uid IS NOT NULL",
    "CREATE INDEX endpoints_by_app ON endpoints (app, id)",
    "CREATE TABLE messages (
        seq BIGSERIAL PRIMARY KEY,
        id TEXT COLLATE \"C\" NOT NULL UNIQUE,
        app BIGINT NOT NULL,
        event_type TEXT COLLATE \"C\" NOT NULL,
        channel TEXT COLLATE \"C\",
        event_id TEXT,
        payload TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expired BOOLEAN NOT NULL DEFAULT FALSE
    )",
    "CREATE INDEX messages_by_app ON messages (app, id)",
    "CREATE INDEX messages_by_type ON messages (app, event_type, id)",
    "CREATE INDEX messages_to_purge ON messages (created_at) WHERE NOT expired",
    "CREATE TABLE deliveries (
        msg TEXT COLLATE \"C\" NOT NULL,
        ep TEXT COLLATE \"C\" NOT NULL,
        app BIGINT NOT NULL,
        status SMALLINT NOT NULL,
        attempts INTEGER NOT NULL,
        next_attempt_at BIGINT NOT NULL,
        leased_until BIGINT,
        lease_token TEXT,
        next_trigger SMALLINT NOT NULL,
        PRIMARY KEY (msg, ep)
    ) WITH (fillfactor = 70)",
    "CREATE INDEX deliveries_ready ON deliveries (app, next_attempt_at, msg, ep)
        WHERE status = 0",
    "CREATE INDEX deliveries_pending ON deliveries (ep, msg) WHERE status = 0",
    "CREATE INDEX deliveries_exhausted ON deliveries (ep, msg) WHERE status = 2",
    "CREATE TABLE attempts (
        seq BIGSERIAL NOT NULL,
        id TEXT COLLATE \"C\" PRIMARY KEY,
        app BIGINT NOT NULL,
        msg TEXT COLLATE \"C\" NOT NULL,
        ep TEXT COLLATE \"C\" NOT NULL,
        event_type TEXT COLLATE \"C\" NOT NULL,
        channel TEXT COLLATE \"C\",
        url TEXT NOT NULL,
        status SMALLINT NOT NULL,
        response_status INTEGER NOT NULL,
        response TEXT NOT NULL,
        headers TEXT NOT NULL,
        duration_us BIGINT NOT NULL,
        trigger_code SMALLINT NOT NULL,
        created_at BIGINT NOT NULL
    )",
    "CREATE INDEX attempts_by_app ON attempts (app, seq)",
    "CREATE INDEX attempts_by_message ON attempts (msg, seq)",
    "CREATE INDEX attempts_by_endpoint ON attempts (ep, seq)",
];

/// Version 2: the live nodes (processes running a delivery engine on this database), each
/// with when it was last heard from on the database's clock, so no two machines' clocks are
/// compared.
const V2: &[&str] = &["CREATE TABLE nodes (
        id TEXT COLLATE \"C\" PRIMARY KEY,
        seen_at TIMESTAMPTZ NOT NULL
    )"];

/// Version 3: fan-outs (see `fanout.rs`). A message's first attempts to its unordered
/// endpoints are one row of `fanouts` holding the endpoints' ids; `fanouts_ready` finds an
/// application's claimable ones (unclaimed first: `leased_until` 0). An attempt records
/// whether its report was taken (`held`), which only such successful attempts count towards
/// what a fan-out's share came to; attempts recorded before are taken as held. A delivery row
/// whose endpoint was deleted while it was pending is kept, marked dropped (status 3), so
/// that the fan-out does not speak for it; rows deleted so by version 2 had no fan-out.
const V3: &[&str] = &[
    "CREATE TABLE fanouts (
        msg TEXT COLLATE \"C\" PRIMARY KEY,
        app BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        endpoints TEXT[] NOT NULL,
        shares_left INTEGER NOT NULL,
        leased_until BIGINT NOT NULL DEFAULT 0,
        lease_token TEXT,
        recount BOOLEAN NOT NULL DEFAULT FALSE
    ) WITH (fillfactor = 70)",
    "CREATE INDEX fanouts_ready ON fanouts (app, leased_until, msg)",
    "ALTER TABLE attempts ADD COLUMN held BOOLEAN NOT NULL DEFAULT TRUE",
];

/// Version 4: a message's event id is found per application (Svix creates one message per
/// event id), and idempotency keys: an API layer claims a key (`status` NULL, `until` the
/// end of the claim), then keeps the response under it (`until` its expiry).
const V4: &[&str] = &[
    "CREATE INDEX messages_by_event_id ON messages (app, event_id) WHERE event_id IS NOT NULL",
    "CREATE TABLE idempotency (
        key TEXT COLLATE \"C\" PRIMARY KEY,
        until BIGINT NOT NULL,
        status SMALLINT,
        headers TEXT,
        body BYTEA
    )",
    "CREATE INDEX idempotency_until ON idempotency (until)",
];

/// Version 5: application-scoped API tokens, kept as hashes.
const V5: &[&str] = &[
    "CREATE TABLE access_tokens (
        hash TEXT COLLATE \"C\" PRIMARY KEY,
        app BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        read_only BOOLEAN NOT NULL
    )",
    "CREATE INDEX access_tokens_by_app ON access_tokens (app)",
    "CREATE INDEX access_tokens_by_expiry ON access_tokens (expires_at)",
];

/// Brings the database's schema up to [`VERSION`], in one transaction, under an advisory
/// lock (a second process starting at the same time waits, then finds it done).
///
/// # Errors
/// [`StoreError::UnsupportedSchemaVersion`] for a database a newer build wrote;
/// [`StoreError::Postgres`].
pub(super) async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS switchyard_webhooks_schema (
            one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
            version INTEGER NOT NULL
        )",
    )
    .await?;
    let found: i32 = tx
        .query_opt("SELECT version FROM switchyard_webhooks_schema", &[])
        .await?
        .map(|row| row.try_get(0))
        .transpose()?
        .unwrap_or(0);
    if found > VERSION {
        return Err(StoreError::UnsupportedSchemaVersion {
            found: i64::from(found),
            supported: i64::from(VERSION),
        });
    }
    if found < 1 {
        for statement in V1 {
            tx.batch_execute(statement).await?;
        }
        let default = Application::default_app();
        tx.execute(
            "INSERT INTO apps (id, name, metadata, created_at, updated_at)
             VALUES ($1, $2, '{}', $3, $3)",
            &[
                &default.id.as_str(),
                &default.name,
                &default.created_at.timestamp_micros(),
            ],
        )
        .await?;
    }
    if found < 2 {
        for statement in V2 {
            tx.batch_execute(statement).await?;
        }
    }
    if found < 3 {
        for statement in V3 {
            tx.batch_execute(statement).await?;
        }
    }
    if found < 4 {
        for statement in V4 {
            tx.batch_execute(statement).await?;
        }
    }
    if found < 5 {
        for statement in V5 {
            tx.batch_execute(statement).await?;
        }
    }
    if found < VERSION {
        tx.execute(
            "INSERT INTO switchyard_webhooks_schema (version) VALUES ($1)
             ON CONFLICT (one) DO UPDATE SET version = excluded.version",
            &[&VERSION],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
