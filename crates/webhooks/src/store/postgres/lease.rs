//! Leasing on PostgreSQL: fair turns among applications, rows taken with
//! `FOR UPDATE SKIP LOCKED`.
//!
//! One lease is one transaction:
//!
//! 1. **Who is waiting.** The applications with a pending delivery or a fan-out available
//!    now, found by walking the distinct applications of the `deliveries_ready` and
//!    `fanouts_ready` indexes (recursive queries that jump from one application to the next,
//!    so they cost one probe per application with something pending, however much each has)
//!    and reading each one's earliest unleased due delivery or fan-out from the same indexes
//!    (passing over its leased ones, which the engine's per-application cap keeps few).
//!    Served longest ago first, then earliest due.
//! 2. **Turns.** Each turn gives every waiting application an equal share of what is left of
//!    the batch (capped by its room), in two statements: per application, its earliest
//!    available delivery rows, locked with `SKIP LOCKED` (a row another process is leasing
//!    right now is left to it) and marked leased; then, for what is left of each share,
//!    whole fan-outs, oldest first (`fanout.rs`). An application that filled its share and
//!    has room takes part in the next turn.
//! 3. **Served.** Every application that took a turn is marked served in this lease's turn
//!    number, so it waits behind the others next time.
//!
//! Rows are re-checked under their lock (PostgreSQL re-evaluates the conditions on the
//! newest version of a locked row), so a delivery leased and committed by another process
//! meanwhile is not leased twice.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{PostgresStore, fanout, lease_end, micros, new_token, rows};
use crate::error::StoreError;
use crate::model::Lease;
use crate::store::AppLimits;

/// The applications with something available at `$1` (a delivery row or a fan-out), served
/// longest ago first; those in `$2` (no room) left out; at most `$3`. A fan-out is due when
/// its message was made, or when its claim ran out.
const WAITING: &str = "
WITH RECURSIVE pending(app) AS (
    (SELECT app FROM deliveries WHERE status = 0 ORDER BY app LIMIT 1)
    UNION ALL
    SELECT (SELECT d.app FROM deliveries d WHERE d.status = 0 AND d.app > p.app
            ORDER BY d.app LIMIT 1)
    FROM pending p WHERE p.app IS NOT NULL
), fanned(app) AS (
    (SELECT app FROM fanouts ORDER BY app LIMIT 1)
    UNION ALL
    SELECT (SELECT f.app FROM fanouts f WHERE f.app > p.app ORDER BY f.app LIMIT 1)
    FROM fanned p WHERE p.app IS NOT NULL
)
SELECT a.seq, a.id
FROM (SELECT app FROM pending WHERE app IS NOT NULL
      UNION SELECT app FROM fanned WHERE app IS NOT NULL) p
JOIN apps a ON a.seq = p.app
CROSS JOIN LATERAL (
    SELECT LEAST(
        (SELECT d.next_attempt_at FROM deliveries d
         WHERE d.app = p.app AND d.status = 0 AND COALESCE(d.leased_until, 0) <= $1
         ORDER BY d.next_attempt_at LIMIT 1),
        (SELECT CASE WHEN f.leased_until = 0 THEN f.created_at ELSE f.leased_until END
         FROM fanouts f WHERE f.app = p.app AND f.leased_until <= $1
         ORDER BY f.leased_until, f.msg LIMIT 1)) AS due
) first
WHERE first.due <= $1 AND a.id <> ALL($2::text[])
ORDER BY a.served, first.due, a.seq
LIMIT $3";

/// One turn: for each application `$1[i]`, up to `$2[i]` of its available rows at `$3`,
/// leased until `$4` with token `$5`.
const TURN: &str = "
WITH picked AS (
    SELECT p.msg, p.ep
    FROM unnest($1::bigint[], $2::bigint[]) AS t(app, share)
    CROSS JOIN LATERAL (
        SELECT d.msg, d.ep FROM deliveries d
        WHERE d.app = t.app AND d.status = 0
          AND d.next_attempt_at <= $3 AND COALESCE(d.leased_until, 0) <= $3
          AND NOT EXISTS (
              SELECT 1 FROM endpoints e
              WHERE e.id = d.ep AND e.ordered AND EXISTS (
                  SELECT 1 FROM deliveries o
                  WHERE o.ep = d.ep AND o.status = 0 AND o.msg < d.msg))
        ORDER BY d.next_attempt_at, d.msg, d.ep
        LIMIT t.share
        FOR UPDATE OF d SKIP LOCKED
    ) p
)
UPDATE deliveries d SET leased_until = $4, lease_token = $5
FROM picked WHERE d.msg = picked.msg AND d.ep = picked.ep
RETURNING d.app, d.msg, d.ep, d.status, d.attempts, d.next_attempt_at, d.leased_until,
    d.next_trigger";

/// See [`Store::lease_deliveries_within`](crate::store::Store::lease_deliveries_within).
pub(super) async fn lease(
    store: &PostgresStore,
    now: DateTime<Utc>,
    lease_for: Duration,
    limit: usize,
    limits: &AppLimits,
) -> Result<Vec<Lease>, StoreError> {
    let wanted = limit.max(1);
    let now_us = micros(now);
    let until = lease_end(now, lease_for);
    let token = new_token();
    let full: Vec<&str> = limits
        .room
        .iter()
        .filter(|(_, room)| **room == 0)
        .map(|(app, _)| app.as_str())
        .collect();
    let most = i64::try_from(wanted).unwrap_or(i64::MAX);

    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    super::bookkeeping(&tx).await?;
    let waiting = tx.prepare_cached(WAITING).await?;
    let mut active: Vec<(i64, usize)> = Vec::new();
    for row in tx.query(&waiting, &[&now_us, &full, &most]).await? {
        let seq: i64 = row.try_get(0)?;
        let id: String = row.try_get(1)?;
        let room = match id.parse() {
            Ok(app) => limits.room(&app),
            Err(_) => limits.each.unwrap_or(usize::MAX),
        };
        if room > 0 {
            active.push((seq, room));
        }
    }
    let mut served: Vec<i64> = active.iter().map(|(seq, _)| *seq).collect();
    let turn = tx.prepare_cached(TURN).await?;
    let mut leases = Vec::with_capacity(wanted);
    let mut memo = fanout::Memo::default();
    while !active.is_empty() && leases.len() < wanted {
        let mut left = wanted - leases.len();
        let share = left.div_ceil(active.len()).max(1);
        let mut apps = Vec::with_capacity(active.len());
        let mut shares = Vec::with_capacity(active.len());
        for (seq, room) in &active {
            let take = share.min(*room).min(left);
            if take == 0 {
                break;
            }
            left -= take;
            apps.push(*seq);
            shares.push(i64::try_from(take).unwrap_or(i64::MAX));
        }
        let rows = tx
            .query(&turn, &[&apps, &shares, &now_us, &until, &token])
            .await?;
        let mut got: HashMap<i64, usize> = HashMap::new();
        for row in &rows {
            *got.entry(row.try_get(0)?).or_default() += 1;
            leases.push(Lease {
                delivery: rows::delivery(row)?,
                token: token.clone(),
            });
        }
        // What delivery rows left of each share goes to fan-outs, claimed whole.
        let (mut fan_apps, mut fan_shares) = (Vec::new(), Vec::new());
        for (app, share) in apps.iter().zip(&shares) {
            let had = i64::try_from(got.get(app).copied().unwrap_or(0)).unwrap_or(i64::MAX);
            if had < *share {
                fan_apps.push(*app);
                fan_shares.push(share - had);
            }
        }
        if !fan_apps.is_empty() {
            let (claimed, claims) = fanout::claim(
                &tx,
                &store.claims,
                (&fan_apps, &fan_shares),
                now_us,
                until,
                &token,
            )
            .await?;
            memo.extend(claims);
            for (app, shares) in claimed {
                *got.entry(app).or_default() += shares.len();
                leases.extend(shares);
            }
        }
        let asked: HashMap<i64, i64> = apps.into_iter().zip(shares).collect();
        active = active
            .into_iter()
            .filter_map(|(seq, room)| {
                // Not asked this turn (the batch ran out before its place): it waits for
                // the next. Asked: it goes on if it filled its share and has room left.
                let Some(share) = asked.get(&seq) else {
                    return Some((seq, room));
                };
                let had = got.get(&seq).copied().unwrap_or(0);
                let full_share = usize::try_from(*share).is_ok_and(|s| had >= s);
                let room = room.saturating_sub(had);
                (full_share && room > 0).then_some((seq, room))
            })
            .collect();
    }
    if !served.is_empty() {
        served.sort_unstable();
        tx.execute(
            // One turn number for every application this lease served (an uncorrelated
            // subquery runs once).
            "UPDATE apps SET served = (SELECT nextval('lease_turns')) WHERE seq = ANY($1)",
            &[&served],
        )
        .await?;
    }
    tx.commit().await?;
    memo.apply(&store.claims);
    leases.sort_by(|a, b| {
        (a.delivery.next_attempt_at, &a.delivery.message_id)
            .cmp(&(b.delivery.next_attempt_at, &b.delivery.message_id))
    });
    Ok(leases)
}
