//! Fan-outs: a message's first attempts to its unordered endpoints, kept as one record.
//!
//! Storing a message writes its endpoints' integer keys in `messages.fanout` and one small
//! row in `fanouts`. Leasing claims the whole fan-out (one row update) and hands out one
//! lease per endpoint, a *share*. Finishing a share records its attempt and counts the
//! share off; only a share that did not simply succeed (it failed and will be retried, it
//! was held back, it was dropped) becomes a row of `deliveries`, from where the usual
//! retry path takes it. When the last share is counted off the fan-out row goes.
//!
//! What a share came to is therefore read from three places: its delivery row if it has
//! one, else a successful attempt reported under its claim, else the fan-out row (still
//! pending). A claim that expires (its worker died) is claimed again, and only the shares
//! with neither a row nor such an attempt are handed out again.

use std::collections::{HashMap, HashSet};

use chrono::DateTime;
use rusqlite::{Connection, OptionalExtension as _, params};

use super::Names;
use super::rows::{corrupt, micros};
use crate::error::StoreError;
use crate::model::{
    AttemptStatus, AttemptTrigger, Delivery, DeliveryStatus, DeliveryUpdate, Lease, Message,
};

/// What every share's lease token starts with (a delivery row's token never does).
const SHARE: &str = "share:";

/// The shares this store handed out under claims it still holds, not finished yet: a
/// second report on the same share is refused, and the last one closes the fan-out, without
/// counting in the database.
#[derive(Debug, Default)]
pub(super) struct Claims {
    open: HashMap<i64, (String, HashSet<i64>)>,
}

/// Where a share stands when its report comes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// Still open under its claim: the report counts.
    Open,
    /// Its delivery was resent meanwhile: the report is refused, the share counts off.
    Revoked,
    /// Reported before, or its claim is gone: refused.
    Closed,
}

/// The endpoint keys of a fan-out as stored: decimal, comma-separated.
pub(super) fn encode(endpoints: &[i64]) -> String {
    let mut text = String::with_capacity(endpoints.len() * 4);
    for (i, endpoint) in endpoints.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&endpoint.to_string());
    }
    text
}

fn decode(message: i64, text: &str) -> Result<Vec<i64>, StoreError> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|part| {
            part.parse()
                .map_err(|_| corrupt(format!("fan-out of message row {message}"), text))
        })
        .collect()
}

/// The endpoints of a message's fan-out, by integer key.
pub(super) fn endpoints_of(conn: &Connection, message: i64) -> Result<Vec<i64>, StoreError> {
    let text: Option<String> = conn
        .prepare_cached("SELECT fanout FROM messages WHERE seq = ?")?
        .query_row([message], |row| row.get(0))
        .optional()?;
    decode(message, text.as_deref().unwrap_or_default())
}

/// Starts a fan-out for a message just stored.
pub(super) fn start(conn: &Connection, message: i64, shares: usize) -> Result<(), StoreError> {
    if shares > 0 {
        conn.prepare_cached(
            "INSERT INTO fanouts (msg, left, app)
             VALUES (?1, ?2, (SELECT app FROM messages WHERE seq = ?1))",
        )?
        .execute(params![message, i64::try_from(shares).unwrap_or(i64::MAX)])?;
    }
    Ok(())
}

/// A fan-out that may be claimed now.
pub(super) struct Candidate {
    message: i64,
    /// When its shares are due: the message's creation, or when an abandoned claim ran out.
    pub(super) due: i64,
    recount: bool,
    created_at: i64,
    fanout: String,
    message_id: String,
}

/// The fan-outs of application `?1` claimable at `?2`, at most `?3`, in the order of
/// `fanouts_ready`.
pub(super) const CANDIDATES: &str = "SELECT f.msg, f.leased_until, f.recount, m.created_at,
        m.fanout, m.id
     FROM fanouts f JOIN messages m ON m.seq = f.msg
     WHERE f.app = ?1 AND f.leased_until <= ?2
     ORDER BY f.leased_until, f.msg LIMIT ?3";

/// An application's fan-outs unclaimed or whose claim ran out at `now`, oldest first.
pub(super) fn candidates(
    conn: &Connection,
    app: i64,
    now: i64,
    limit: i64,
) -> Result<Vec<Candidate>, StoreError> {
    let mut statement = conn.prepare_cached(CANDIDATES)?;
    let mut rows = statement.query(params![app, now, limit])?;
    let mut found = Vec::new();
    while let Some(row) = rows.next()? {
        let leased_until: i64 = row.get(1)?;
        let created_at: i64 = row.get(3)?;
        found.push(Candidate {
            message: row.get(0)?,
            due: if leased_until == 0 {
                created_at
            } else {
                leased_until
            },
            recount: row.get(2)?,
            created_at,
            fanout: row.get(4)?,
            message_id: row.get(5)?,
        });
    }
    Ok(found)
}

/// Endpoints of a message whose share is done: those with a delivery row (it took the share
/// over) and those with a successful attempt whose report was taken. A stale report (its
/// claim had run out and been taken over) settles nothing: the delivery is made again, as
/// with a delivery row. A failure reported under the claim becomes a row in the same
/// transaction.
fn settled(conn: &Connection, message: i64) -> Result<HashSet<i64>, StoreError> {
    let mut done = HashSet::new();
    let mut rows = conn.prepare_cached("SELECT ep FROM deliveries WHERE msg = ?")?;
    let mut found = rows.query([message])?;
    while let Some(row) = found.next()? {
        done.insert(row.get::<_, i64>(0)?);
    }
    let mut attempts =
        conn.prepare_cached("SELECT ep FROM attempts WHERE msg = ? AND status = ? AND held = 1")?;
    let mut found = attempts.query(params![message, AttemptStatus::Success.code()])?;
    while let Some(row) = found.next()? {
        done.insert(row.get::<_, i64>(0)?);
    }
    Ok(done)
}

impl Candidate {
    /// Claims the fan-out with `token` until `until` and returns a lease per share still to
    /// be attempted (none, and the fan-out is closed, when every share is settled or its
    /// endpoint deleted).
    pub(super) fn claim(
        self,
        conn: &Connection,
        claims: &mut Claims,
        names: &mut Names<'_>,
        token: &str,
        until: i64,
    ) -> Result<Vec<Lease>, StoreError> {
        let mut endpoints = decode(self.message, &self.fanout)?;
        if self.recount {
            let done = settled(conn, self.message)?;
            endpoints.retain(|endpoint| !done.contains(endpoint));
        }
        let mut shares = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            if let Some(id) = names.live_endpoint(endpoint)? {
                shares.push((endpoint, id));
            }
        }
        if shares.is_empty() {
            conn.prepare_cached("DELETE FROM fanouts WHERE msg = ?")?
                .execute([self.message])?;
            claims.open.remove(&self.message);
            return Ok(Vec::new());
        }
        conn.prepare_cached(
            "UPDATE fanouts SET leased_until = ?2, lease_token = ?3, left = ?4, recount = 1
             WHERE msg = ?1",
        )?
        .execute(params![
            self.message,
            until,
            token,
            i64::try_from(shares.len()).unwrap_or(i64::MAX)
        ])?;
        claims.open.insert(
            self.message,
            (token.to_owned(), shares.iter().map(|(e, _)| *e).collect()),
        );
        let created_at = DateTime::from_timestamp_micros(self.created_at)
            .ok_or_else(|| corrupt(format!("message {}", self.message_id), "created_at"))?;
        let leased_until = DateTime::from_timestamp_micros(until);
        let message_id = self
            .message_id
            .parse()
            .map_err(|e| corrupt(format!("message {}", self.message_id), e))?;
        shares
            .into_iter()
            .map(|(endpoint, id)| {
                Ok(Lease {
                    delivery: Delivery {
                        message_id: Clone::clone(&message_id),
                        endpoint_id: id,
                        status: DeliveryStatus::Pending,
                        attempts: 0,
                        next_attempt_at: created_at,
                        leased_until,
                        trigger: AttemptTrigger::Scheduled,
                    },
                    token: format!("{SHARE}{token}:{}:{endpoint}", self.message),
                })
            })
            .collect()
    }
}

/// A share's claim token and integer keys, read off its lease token (`None`: not a share).
pub(super) fn share_of(lease: &Lease) -> Option<(&str, i64, i64)> {
    let rest = lease.token.strip_prefix(SHARE)?;
    let mut parts = rest.rsplitn(3, ':');
    let endpoint = parts.next()?.parse().ok()?;
    let message = parts.next()?.parse().ok()?;
    Some((parts.next()?, message, endpoint))
}

/// What the share reports of one batch read from the database, each read once per batch
/// (a batch holds many shares of few messages): which fan-outs are claimed with which token,
/// which of a message's endpoints have a delivery row, which endpoints are deleted. Kept up
/// to date with what the batch itself writes.
pub(super) struct Reports<'c> {
    conn: &'c Connection,
    /// Per message: the token its fan-out row is claimed with (`None`: no row, or unclaimed).
    claimed: HashMap<i64, Option<String>>,
    /// Per message: the endpoints with a delivery row.
    rows: HashMap<i64, HashSet<i64>>,
    /// Per endpoint: deleted (or gone).
    deleted: HashMap<i64, bool>,
}

impl<'c> Reports<'c> {
    pub(super) fn new(conn: &'c Connection) -> Self {
        Self {
            conn,
            claimed: HashMap::new(),
            rows: HashMap::new(),
            deleted: HashMap::new(),
        }
    }

    fn claimed_with(&mut self, message: i64, token: &str) -> Result<bool, StoreError> {
        if let std::collections::hash_map::Entry::Vacant(entry) = self.claimed.entry(message) {
            let found: Option<Option<String>> = self
                .conn
                .prepare_cached("SELECT lease_token FROM fanouts WHERE msg = ?")?
                .query_row([message], |row| row.get(0))
                .optional()?;
            entry.insert(found.flatten());
        }
        Ok(self
            .claimed
            .get(&message)
            .is_some_and(|claim| claim.as_deref() == Some(token)))
    }

    fn rows_of(&mut self, message: i64) -> Result<&mut HashSet<i64>, StoreError> {
        if let std::collections::hash_map::Entry::Vacant(entry) = self.rows.entry(message) {
            let mut rows = HashSet::new();
            let mut statement = self
                .conn
                .prepare_cached("SELECT ep FROM deliveries WHERE msg = ?")?;
            let mut found = statement.query([message])?;
            while let Some(row) = found.next()? {
                rows.insert(row.get::<_, i64>(0)?);
            }
            entry.insert(rows);
        }
        self.rows
            .get_mut(&message)
            .ok_or_else(|| corrupt(format!("message row {message}"), "rows not read"))
    }

    fn deleted(&mut self, endpoint: i64) -> Result<bool, StoreError> {
        if let Some(deleted) = self.deleted.get(&endpoint) {
            return Ok(*deleted);
        }
        let deleted: bool = self
            .conn
            .prepare_cached("SELECT COALESCE((SELECT deleted FROM endpoints WHERE seq = ?), 1)")?
            .query_row([endpoint], |row| row.get(0))?;
        self.deleted.insert(endpoint, deleted);
        Ok(deleted)
    }

    /// Takes a share's report: counts the share off its fan-out and, if the report is taken,
    /// applies it. Whether it was taken: the claim still held with this token, the share not
    /// reported before, not resent meanwhile (a resend makes a delivery row, in any process),
    /// and its endpoint not deleted. A taken report that did not simply succeed turns the
    /// share into a delivery row.
    pub(super) fn report(
        &mut self,
        claims: &mut Claims,
        (token, message, endpoint): (&str, i64, i64),
        update: &DeliveryUpdate,
    ) -> Result<bool, StoreError> {
        let conn = self.conn;
        let row = self.rows_of(message)?.contains(&endpoint);
        let held = self.claimed_with(message, token)?;
        let deleted = self.deleted(endpoint)?;
        // Where the share stands: from this store's claims when it made the claim, else from
        // the database (a row or a taken success closes it).
        let standing = match claims.open.get_mut(&message) {
            Some((claim, open)) if claim == token => match (open.remove(&endpoint), row) {
                (true, false) => Standing::Open,
                (true, true) => Standing::Revoked,
                (false, _) => Standing::Closed,
            },
            _ if row || settled(conn, message)?.contains(&endpoint) => Standing::Closed,
            _ => Standing::Open,
        };
        if standing == Standing::Closed {
            return Ok(false);
        }
        if !held {
            // Our claim is gone; a newer claim of this store's on the same fan-out stays.
            if claims
                .open
                .get(&message)
                .is_some_and(|(claim, _)| claim == token)
            {
                claims.open.remove(&message);
            }
            return Ok(false);
        }
        // Count the share off: in memory when this store made the claim (the fan-out row is
        // only touched once, when its last share is done), else in the row.
        let done = match claims.open.get(&message) {
            Some((claim, open)) if claim == token => open.is_empty(),
            _ => {
                let left: i64 = conn
                    .prepare_cached(
                        "UPDATE fanouts SET left = left - 1 WHERE msg = ? RETURNING left",
                    )?
                    .query_row([message], |row| row.get(0))?;
                left <= 0
            }
        };
        if done {
            conn.prepare_cached("DELETE FROM fanouts WHERE msg = ?")?
                .execute([message])?;
            claims.open.remove(&message);
            self.claimed.insert(message, None);
        }
        if standing == Standing::Revoked || deleted {
            return Ok(false);
        }
        let succeeded = update.status == DeliveryStatus::Succeeded
            && update
                .attempt
                .as_ref()
                .is_some_and(|a| a.status == AttemptStatus::Success);
        if !succeeded {
            conn.prepare_cached(
                "INSERT INTO deliveries (msg, ep, status, attempts, next_attempt_at, app)
                 VALUES (?1, ?2, ?3, ?4, ?5, (SELECT app FROM messages WHERE seq = ?1))",
            )?
            .execute(params![
                message,
                endpoint,
                update.status.code(),
                update.attempts,
                micros(update.next_attempt_at),
            ])?;
            self.rows_of(message)?.insert(endpoint);
        }
        Ok(true)
    }
}

/// The deliveries of a message that only its fan-out knows about (no delivery row), with
/// what they came to: succeeded (a successful attempt), or pending while the fan-out is
/// open. Shares to deleted endpoints that never got an attempt are left out.
pub(super) fn derived(
    conn: &Connection,
    message: &Message,
    seq: i64,
    rows: &HashSet<i64>,
    names: &mut Names<'_>,
) -> Result<Vec<Delivery>, StoreError> {
    let endpoints = endpoints_of(conn, seq)?;
    if endpoints.iter().all(|e| rows.contains(e)) {
        return Ok(Vec::new());
    }
    let open: Option<i64> = conn
        .prepare_cached("SELECT leased_until FROM fanouts WHERE msg = ?")?
        .query_row([seq], |row| row.get(0))
        .optional()?;
    // Attempts per endpoint, and whether one succeeded.
    let mut attempts: HashMap<i64, (u32, bool)> = HashMap::new();
    {
        let mut statement =
            conn.prepare_cached("SELECT ep, status FROM attempts WHERE msg = ? AND held = 1")?;
        let mut found = statement.query([seq])?;
        while let Some(row) = found.next()? {
            let entry = attempts.entry(row.get(0)?).or_default();
            entry.0 += 1;
            entry.1 |= row.get::<_, i64>(1)? == AttemptStatus::Success.code();
        }
    }
    let mut derived = Vec::new();
    for endpoint in endpoints.into_iter().filter(|e| !rows.contains(e)) {
        let (count, success) = attempts.get(&endpoint).copied().unwrap_or_default();
        let status = if success {
            DeliveryStatus::Succeeded
        } else if open.is_some() && names.live_endpoint(endpoint)?.is_some() {
            DeliveryStatus::Pending
        } else {
            continue;
        };
        derived.push(Delivery {
            message_id: message.id.clone(),
            endpoint_id: names.endpoint(endpoint)?.clone(),
            status,
            attempts: count,
            next_attempt_at: message.created_at,
            leased_until: open
                .filter(|until| *until > 0 && status == DeliveryStatus::Pending)
                .and_then(DateTime::from_timestamp_micros),
            trigger: AttemptTrigger::Scheduled,
        });
    }
    Ok(derived)
}

/// A resend of one of its endpoints makes a fan-out count its shares again at its next
/// claim (the resent one is now a delivery row).
pub(super) fn recount(conn: &Connection, message: i64) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE fanouts SET recount = 1 WHERE msg = ?")?
        .execute([message])?;
    Ok(())
}
