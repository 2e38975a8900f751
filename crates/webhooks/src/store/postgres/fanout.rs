//! Fan-outs on PostgreSQL: a message's first attempts to its unordered endpoints, kept as
//! one row instead of one row per endpoint.
//!
//! Storing a message writes one row of `fanouts` holding its endpoints' ids. A lease claims
//! the whole row (one update, taken with `FOR UPDATE SKIP LOCKED` like delivery rows) and
//! hands out one lease per endpoint, a *share*. Finishing a share records its attempt and
//! counts the share off; only a share that did not simply succeed (it failed and will be
//! retried, it was held back, it was dropped) becomes a row of `deliveries`, from where the
//! usual retry path takes it. When the last share is counted off the fan-out row goes. So a
//! message to 100 endpoints that all answer 2xx writes its message row, one fan-out row
//! (claimed once, deleted once) and 100 attempts, where one row per delivery wrote 100 rows,
//! leased and updated 100 times, with their index entries.
//!
//! What a share came to is read from three places: its delivery row if it has one, else a
//! successful attempt recorded under its claim (`attempts.held`), else the fan-out row
//! (still pending). A claim that runs out (its process died) is claimed again, and only the
//! shares with neither are handed out again.
//!
//! Counting off happens in memory in the process that made the claim (the row is touched
//! once, when the claim's last share is done), else in the row (`shares_left`). A claim whose
//! shares were reported through several processes may not see its count reach zero; its row
//! then stays until the claim runs out, and the next claim finds every share settled and
//! deletes it.
//!
//! Ordered endpoints never take part: their deliveries are rows from the start, so the
//! order check sees them.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};

use super::rows::corrupt;
use super::{code16, micros};
use crate::error::StoreError;
use crate::id::MessageId;
use crate::model::{
    AttemptStatus, AttemptTrigger, Delivery, DeliveryStatus, DeliveryUpdate, Lease,
};

/// What every share's lease token starts with (a delivery row's token never does).
const SHARE: &str = "share:";

/// The claims this process made and still holds, with the shares of each not reported yet:
/// a second report on the same share is refused, and the last one closes the fan-out,
/// without counting in the database.
///
/// A transaction works on a copy of the entries it touches ([`Memo`]), applied once it has
/// committed: a transaction retried after a deadlock, or rolled back, changes nothing here.
#[derive(Debug, Default)]
pub(super) struct Claims {
    /// Per message id: the claim's token and its open shares (endpoint ids).
    open: HashMap<String, Claim>,
}

/// A claim's token and its shares not reported yet (endpoint ids).
type Claim = (String, HashSet<String>);

/// What a transaction changes in [`Claims`], to apply after it commits: per message, the
/// claim's token the transaction started from (`None`: none in memory) and what the entry
/// became (`None`: removed).
#[derive(Debug, Default)]
#[must_use = "apply it once the transaction has committed"]
pub(super) struct Memo {
    changes: HashMap<String, (Option<String>, Option<Claim>)>,
}

impl Memo {
    /// Applies the changes to `claims`, each only where the entry is still the one the
    /// transaction started from (a claim made since stays).
    pub(super) fn apply(self, claims: &Mutex<Claims>) {
        let mut memory = claims.lock().unwrap_or_else(PoisonError::into_inner);
        for (msg, (from, to)) in self.changes {
            let current = memory.open.get(&msg).map(|(token, _)| token);
            if current != from.as_ref() {
                continue;
            }
            match to {
                Some(entry) => memory.open.insert(msg, entry),
                None => memory.open.remove(&msg),
            };
        }
    }

    /// Adds the changes of a later transaction step on other messages (a lease's turns).
    pub(super) fn extend(&mut self, other: Memo) {
        for (msg, (from, to)) in other.changes {
            match self.changes.get_mut(&msg) {
                Some(entry) => entry.1 = to,
                None => {
                    self.changes.insert(msg, (from, to));
                }
            }
        }
    }
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

/// One turn's fan-outs: for each application `$1[i]`, its claimable fan-outs (unclaimed, or
/// whose claim ran out at `$3`), oldest first, as many as fill `$2[i]` shares (the last one
/// whole), claimed until `$4` with token `$5`. Returns the claimed rows with whether they
/// had been claimed before (their shares are then counted again).
const CLAIM: &str = "
WITH picked AS (
    SELECT p.msg, p.app, p.n, p.leased_until, p.recount, t.share
    FROM unnest($1::bigint[], $2::bigint[]) AS t(app, share)
    CROSS JOIN LATERAL (
        SELECT f.msg, f.app, f.shares_left AS n, f.leased_until, f.recount
        FROM fanouts f
        WHERE f.app = t.app AND f.leased_until <= $3
        ORDER BY f.leased_until, f.msg
        LIMIT t.share
        FOR UPDATE OF f SKIP LOCKED
    ) p
), counted AS (
    SELECT msg, recount, share,
        sum(n) OVER (PARTITION BY app ORDER BY leased_until, msg) - n AS before
    FROM picked
)
UPDATE fanouts f SET leased_until = $4, lease_token = $5, recount = TRUE
FROM counted c
WHERE f.msg = c.msg AND c.before < c.share
RETURNING f.app, f.msg, f.created_at, f.endpoints, c.recount";

/// The shares of one turn's claims, per application.
pub(super) type Claimed = HashMap<i64, Vec<Lease>>;

/// Claims fan-outs of the applications `apps`, up to `shares[i]` shares each, and returns
/// their shares as leases, with the claims to remember once the transaction commits.
/// Fan-outs with no share left (every one settled, or its endpoint deleted) are deleted
/// instead.
pub(super) async fn claim(
    tx: &deadpool_postgres::Transaction<'_>,
    claims: &Mutex<Claims>,
    (apps, shares): (&[i64], &[i64]),
    now: i64,
    until: i64,
    token: &str,
) -> Result<(Claimed, Memo), StoreError> {
    // The row holds the token the shares carry.
    let share_token = format!("{SHARE}{token}");
    let statement = tx.prepare_cached(CLAIM).await?;
    let rows = tx
        .query(&statement, &[&apps, &shares, &now, &until, &share_token])
        .await?;
    if rows.is_empty() {
        return Ok((Claimed::new(), Memo::default()));
    }
    struct Row {
        app: i64,
        msg: String,
        created_at: i64,
        endpoints: Vec<String>,
        recount: bool,
    }
    let mut claimed = Vec::with_capacity(rows.len());
    for row in &rows {
        claimed.push(Row {
            app: row.try_get(0)?,
            msg: row.try_get(1)?,
            created_at: row.try_get(2)?,
            endpoints: row.try_get(3)?,
            recount: row.try_get(4)?,
        });
    }
    // Shares settled already (a claim before this one ran out, or a resend made a row).
    let recount: Vec<&str> = claimed
        .iter()
        .filter(|c| c.recount)
        .map(|c| c.msg.as_str())
        .collect();
    let settled = settled(tx, &recount).await?;
    // Endpoints deleted since the message was sent take no share.
    let mut all: Vec<&str> = claimed
        .iter()
        .flat_map(|c| c.endpoints.iter().map(String::as_str))
        .collect();
    all.sort_unstable();
    all.dedup();
    let live = live(tx, &all).await?;

    let mut out = Claimed::new();
    let mut empty: Vec<&str> = Vec::new();
    let (mut recounted, mut counts): (Vec<&str>, Vec<i32>) = (Vec::new(), Vec::new());
    let mut remember: Vec<(String, HashSet<String>)> = Vec::new();
    for c in &claimed {
        let done = settled.get(&c.msg);
        let open: Vec<&String> = c
            .endpoints
            .iter()
            .filter(|e| live.contains(e.as_str()) && done.is_none_or(|d| !d.contains(*e)))
            .collect();
        if open.is_empty() {
            empty.push(&c.msg);
            continue;
        }
        if open.len() != c.endpoints.len() {
            recounted.push(&c.msg);
            counts.push(i32::try_from(open.len()).unwrap_or(i32::MAX));
        }
        let created_at = DateTime::from_timestamp_micros(c.created_at)
            .ok_or_else(|| corrupt(format!("fan-out of message {}", c.msg), "created_at"))?;
        let message_id = c
            .msg
            .parse()
            .map_err(|e| corrupt(format!("fan-out of message {}", c.msg), e))?;
        let leases = out.entry(c.app).or_default();
        for endpoint in &open {
            leases.push(Lease {
                delivery: Delivery {
                    message_id: Clone::clone(&message_id),
                    endpoint_id: endpoint
                        .parse()
                        .map_err(|e| corrupt(format!("fan-out of message {}", c.msg), e))?,
                    status: DeliveryStatus::Pending,
                    attempts: 0,
                    next_attempt_at: created_at,
                    leased_until: DateTime::from_timestamp_micros(until),
                    trigger: AttemptTrigger::Scheduled,
                },
                token: share_token.clone(),
            });
        }
        remember.push((c.msg.clone(), open.into_iter().cloned().collect()));
    }
    let mut memo = Memo::default();
    {
        let memory = claims.lock().unwrap_or_else(PoisonError::into_inner);
        let from = |msg: &str| memory.open.get(msg).map(|(token, _)| token.clone());
        for msg in &empty {
            memo.changes.insert((*msg).to_owned(), (from(msg), None));
        }
        for (msg, open) in remember {
            let was = from(&msg);
            memo.changes
                .insert(msg, (was, Some((share_token.clone(), open))));
        }
    }
    if !empty.is_empty() {
        tx.execute("DELETE FROM fanouts WHERE msg = ANY($1)", &[&empty])
            .await?;
    }
    if !recounted.is_empty() {
        tx.execute(
            "UPDATE fanouts f SET shares_left = t.n
             FROM unnest($1::text[], $2::integer[]) AS t(msg, n) WHERE f.msg = t.msg",
            &[&recounted, &counts],
        )
        .await?;
    }
    Ok((out, memo))
}

/// Per message of `messages`: the endpoints whose share is done, those with a delivery row
/// (it took the share over) and those with a successful attempt recorded under a claim.
async fn settled(
    tx: &deadpool_postgres::Transaction<'_>,
    messages: &[&str],
) -> Result<HashMap<String, HashSet<String>>, StoreError> {
    let mut done: HashMap<String, HashSet<String>> = HashMap::new();
    if messages.is_empty() {
        return Ok(done);
    }
    let statement = tx
        .prepare_cached(
            "SELECT msg, ep FROM deliveries WHERE msg = ANY($1)
             UNION
             SELECT msg, ep FROM attempts WHERE msg = ANY($1) AND held AND status = $2",
        )
        .await?;
    let success = code16(AttemptStatus::Success.code());
    for row in tx.query(&statement, &[&messages, &success]).await? {
        done.entry(row.try_get(0)?)
            .or_default()
            .insert(row.try_get(1)?);
    }
    Ok(done)
}

/// Which of `endpoints` exist.
async fn live(
    tx: &deadpool_postgres::Transaction<'_>,
    endpoints: &[&str],
) -> Result<HashSet<String>, StoreError> {
    let statement = tx
        .prepare_cached("SELECT id FROM endpoints WHERE id = ANY($1)")
        .await?;
    tx.query(&statement, &[&endpoints])
        .await?
        .iter()
        .map(|row| row.try_get(0).map_err(StoreError::from))
        .collect()
}

/// Whether a lease is a share of a fan-out.
pub(super) fn is_share(lease: &Lease) -> bool {
    lease.token.starts_with(SHARE)
}

/// Takes the reports of shares `items` (in order): for each, whether it was taken. A report
/// is taken when its claim is still held with its token, the share was not reported before,
/// not resent meanwhile (a resend makes a delivery row, in any process), and its endpoint
/// still exists. A taken report that did not simply succeed turns the share into a delivery
/// row. Every share reported under a claim still held counts off; the last closes the
/// fan-out. What changes in `claims` is returned, to apply once the transaction commits.
pub(super) async fn report(
    tx: &deadpool_postgres::Transaction<'_>,
    claims: &Mutex<Claims>,
    items: &[(&Lease, &DeliveryUpdate)],
) -> Result<(Vec<bool>, Memo), StoreError> {
    if items.is_empty() {
        return Ok((Vec::new(), Memo::default()));
    }
    let mut messages: Vec<&str> = items
        .iter()
        .map(|(lease, _)| lease.delivery.message_id.as_str())
        .collect();
    messages.sort_unstable();
    messages.dedup();
    // This transaction's copy of the claims it touches.
    let mut local = Claims::default();
    let mut memo = Memo::default();
    {
        let memory = claims.lock().unwrap_or_else(PoisonError::into_inner);
        for msg in &messages {
            if let Some(entry) = memory.open.get(*msg) {
                local.open.insert((*msg).to_owned(), entry.clone());
            }
        }
    }
    for msg in &messages {
        let from = local.open.get(*msg).map(|(token, _)| token.clone());
        memo.changes.insert((*msg).to_owned(), (from, None));
    }
    // The fan-out rows, locked in id order (so concurrent batches never deadlock on them).
    let lock = tx
        .prepare_cached(
            "SELECT msg, lease_token FROM fanouts WHERE msg = ANY($1) ORDER BY msg FOR UPDATE",
        )
        .await?;
    let mut claimed: HashMap<String, Option<String>> = HashMap::new();
    for row in tx.query(&lock, &[&messages]).await? {
        claimed.insert(row.try_get(0)?, row.try_get(1)?);
    }
    // The delivery rows of these messages: a resend made one, or a report before this one.
    let rows_of = tx
        .prepare_cached("SELECT msg, ep FROM deliveries WHERE msg = ANY($1)")
        .await?;
    let mut rows: HashMap<String, HashSet<String>> = HashMap::new();
    for row in tx.query(&rows_of, &[&messages]).await? {
        rows.entry(row.try_get(0)?)
            .or_default()
            .insert(row.try_get(1)?);
    }
    let mut endpoints: Vec<&str> = items
        .iter()
        .map(|(lease, _)| lease.delivery.endpoint_id.as_str())
        .collect();
    endpoints.sort_unstable();
    endpoints.dedup();
    let live = live(tx, &endpoints).await?;
    // Shares settled by a successful attempt, read only for claims another process made.
    let mut settled_by: Option<HashMap<String, HashSet<String>>> = None;

    let mut taken = Vec::with_capacity(items.len());
    let mut closed: Vec<String> = Vec::new();
    let mut new_rows: Vec<(usize, &Lease, &DeliveryUpdate)> = Vec::new();
    for (i, (lease, update)) in items.iter().enumerate() {
        let msg = lease.delivery.message_id.as_str();
        let ep = lease.delivery.endpoint_id.as_str();
        let token = lease.token.as_str();
        let row = rows.get(msg).is_some_and(|eps| eps.contains(ep));
        let held = claimed
            .get(msg)
            .is_some_and(|claim| claim.as_deref() == Some(token));
        // Where the share stands: from this process's claims when it made the claim, else
        // from the database (a row or a taken success closes it).
        let remembered = {
            match local.open.get_mut(msg) {
                Some((claim, open)) if claim == token => Some(match (open.remove(ep), row) {
                    (true, false) => Standing::Open,
                    (true, true) => Standing::Revoked,
                    (false, _) => Standing::Closed,
                }),
                _ => None,
            }
        };
        let standing = match remembered {
            Some(standing) => standing,
            None => {
                if settled_by.is_none() {
                    settled_by = Some(settled(tx, &messages).await?);
                }
                let done = settled_by
                    .as_ref()
                    .and_then(|s| s.get(msg))
                    .is_some_and(|eps| eps.contains(ep));
                if row || done {
                    Standing::Closed
                } else {
                    Standing::Open
                }
            }
        };
        if standing == Standing::Closed {
            taken.push(false);
            continue;
        }
        if !held {
            // Our claim is gone (it ran out and was claimed again, or the fan-out closed).
            if local.open.get(msg).is_some_and(|(claim, _)| claim == token) {
                local.open.remove(msg);
            }
            taken.push(false);
            continue;
        }
        // Count the share off: in memory when this process made the claim, else in the row.
        let in_memory = match local.open.get(msg) {
            Some((claim, open)) if claim == token => Some(open.is_empty()),
            _ => None,
        };
        let done = match in_memory {
            Some(done) => done,
            None => {
                let left: i32 = tx
                    .query_one(
                        "UPDATE fanouts SET shares_left = shares_left - 1 WHERE msg = $1
                         RETURNING shares_left",
                        &[&msg],
                    )
                    .await?
                    .try_get(0)?;
                left <= 0
            }
        };
        if done {
            closed.push(msg.to_owned());
            local.open.remove(msg);
            claimed.insert(msg.to_owned(), None);
        }
        if standing == Standing::Revoked || !live.contains(ep) {
            taken.push(false);
            continue;
        }
        let succeeded = update.status == DeliveryStatus::Succeeded
            && update
                .attempt
                .as_ref()
                .is_some_and(|a| a.status == AttemptStatus::Success);
        if succeeded {
            if let Some(s) = settled_by.as_mut() {
                s.entry(msg.to_owned()).or_default().insert(ep.to_owned());
            }
        } else {
            new_rows.push((i, lease, update));
            rows.entry(msg.to_owned())
                .or_default()
                .insert(ep.to_owned());
        }
        taken.push(true);
    }
    if !closed.is_empty() {
        tx.execute("DELETE FROM fanouts WHERE msg = ANY($1)", &[&closed])
            .await?;
    }
    if !new_rows.is_empty() {
        let (mut msg, mut ep, mut status, mut attempts, mut next) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (_, lease, update) in &new_rows {
            msg.push(lease.delivery.message_id.as_str());
            ep.push(lease.delivery.endpoint_id.as_str());
            status.push(code16(update.status.code()));
            attempts.push(i32::try_from(update.attempts).unwrap_or(i32::MAX));
            next.push(micros(update.next_attempt_at));
        }
        // A resend that made the row between our read and now wins: that report is not
        // taken.
        let inserted = tx
            .query(
                "INSERT INTO deliveries (msg, ep, app, status, attempts, next_attempt_at,
                    next_trigger)
                 SELECT t.msg, t.ep, m.app, t.status, t.attempts, t.next, 0
                 FROM unnest($1::text[], $2::text[], $3::smallint[], $4::integer[],
                    $5::bigint[]) AS t(msg, ep, status, attempts, next)
                 JOIN messages m ON m.id = t.msg
                 ON CONFLICT (msg, ep) DO NOTHING
                 RETURNING msg, ep",
                &[&msg, &ep, &status, &attempts, &next],
            )
            .await?;
        let made: HashSet<(String, String)> = inserted
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, StoreError>>()?;
        for (i, lease, _) in &new_rows {
            let key = (
                lease.delivery.message_id.to_string(),
                lease.delivery.endpoint_id.to_string(),
            );
            if !made.contains(&key) {
                taken[*i] = false;
            }
        }
    }
    for (msg, (_, to)) in &mut memo.changes {
        *to = local.open.remove(msg);
    }
    Ok((taken, memo))
}

/// The deliveries of message `msg` (made at `created_at`) that only its fan-out knows about
/// (none of `with_rows`), with what they came to: succeeded (a successful attempt recorded
/// under a claim), or pending while the fan-out is open. Shares to deleted endpoints that
/// never succeeded are left out.
pub(super) async fn derived(
    client: &deadpool_postgres::Object,
    msg: &MessageId,
    created_at: DateTime<Utc>,
    with_rows: &HashSet<String>,
) -> Result<Vec<Delivery>, StoreError> {
    let what = || format!("deliveries of message {msg}");
    let delivery = |ep: &str, status, attempts, leased_until| -> Result<Delivery, StoreError> {
        Ok(Delivery {
            message_id: msg.clone(),
            endpoint_id: ep.parse().map_err(|e| corrupt(what(), e))?,
            status,
            attempts,
            next_attempt_at: created_at,
            leased_until,
            trigger: AttemptTrigger::Scheduled,
        })
    };
    let held = client
        .prepare_cached(
            "SELECT ep, count(*) FROM attempts WHERE msg = $1 AND held GROUP BY ep
             HAVING bool_or(status = $2)",
        )
        .await?;
    let success = code16(AttemptStatus::Success.code());
    let mut derived = Vec::new();
    let mut seen = HashSet::new();
    for row in client.query(&held, &[&msg.as_str(), &success]).await? {
        let ep: String = row.try_get(0)?;
        if with_rows.contains(&ep) {
            continue;
        }
        let count: i64 = row.try_get(1)?;
        let count = u32::try_from(count).map_err(|e| corrupt(what(), e))?;
        derived.push(delivery(&ep, DeliveryStatus::Succeeded, count, None)?);
        seen.insert(ep);
    }
    let fanout = client
        .prepare_cached(
            "SELECT f.leased_until,
                ARRAY(SELECT e.id FROM endpoints e WHERE e.id = ANY(f.endpoints))
             FROM fanouts f WHERE f.msg = $1",
        )
        .await?;
    if let Some(row) = client.query_opt(&fanout, &[&msg.as_str()]).await? {
        let leased_until: i64 = row.try_get(0)?;
        let leased_until = (leased_until > 0)
            .then(|| DateTime::from_timestamp_micros(leased_until))
            .flatten();
        let live: Vec<String> = row.try_get(1)?;
        for ep in live {
            if !with_rows.contains(&ep) && !seen.contains(&ep) {
                derived.push(delivery(&ep, DeliveryStatus::Pending, 0, leased_until)?);
            }
        }
    }
    Ok(derived)
}
