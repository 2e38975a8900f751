//! Reading stored rows back into the model, and the column encodings shared by every
//! statement (timestamps as microseconds, lists and maps as JSON text).

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::Row;
use serde_json::{Map, Value};

use super::super::keys::{HEADERS_FIELD, KEYS_FIELD, Sealer, StoredKeys};
use crate::error::StoreError;
use crate::model::{
    AppUid, Application, Attempt, AttemptStatus, AttemptTrigger, Delivery, DeliveryStatus,
    Endpoint, EndpointRecord, EndpointUid, EventType, EventTypeFilter, EventTypeName, Message,
    USER_AGENT,
};
use crate::store::split_channels;

/// How every timestamp is stored: microseconds since the Unix epoch.
pub(super) fn micros(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros()
}

pub(super) fn corrupt(what: impl Into<String>, reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what: what.into(),
        reason: reason.to_string(),
    }
}

pub(super) fn to_json(value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| corrupt("record", e))
}

/// Headers an attempt records whose value follows from the attempt itself. Those that have
/// exactly that value are left out of the stored map (bit `i` of `elided` for `DERIVED[i]`)
/// and put back when the attempt is read.
const DERIVED: [&str; 4] = [
    "content-type",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
];

/// The value `DERIVED[index]` has for an attempt on `message_id` at `timestamp` (Unix
/// seconds, as text).
fn derived_value<'a>(index: usize, message_id: &'a str, timestamp: &'a str) -> &'a str {
    match index {
        0 => "application/json",
        1 => USER_AGENT,
        2 => message_id,
        _ => timestamp,
    }
}

/// An attempt's headers as stored: the JSON map without the derived ones, and which those
/// are (the `elided` bits).
pub(super) type StoredHeaders = (String, i64);

/// The [`StoredHeaders`] of an attempt.
pub(super) fn stored_headers(attempt: &Attempt) -> Result<StoredHeaders, StoreError> {
    let timestamp = attempt.timestamp.timestamp().to_string();
    let mut elided = 0;
    let mut kept = Vec::new();
    for (name, value) in attempt.headers.iter() {
        match DERIVED.iter().position(|d| *d == name) {
            Some(i) if value == derived_value(i, attempt.message_id.as_str(), &timestamp) => {
                elided |= 1 << i;
            }
            _ => kept.push((name, value)),
        }
    }
    Ok((to_json(&JsonMap(&kept))?, elided))
}

/// Name-value pairs written as a JSON object, in their order.
struct JsonMap<'a>(&'a [(&'a str, &'a str)]);

impl serde::Serialize for JsonMap<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().copied())
    }
}

fn time(row: &Row<'_>, column: &str) -> Result<DateTime<Utc>, StoreError> {
    let value: i64 = row.get(column)?;
    DateTime::from_timestamp_micros(value)
        .ok_or_else(|| corrupt(column, format!("timestamp {value} out of range")))
}

fn json<T: serde::de::DeserializeOwned>(row: &Row<'_>, column: &str) -> Result<T, StoreError> {
    let text: String = row.get(column)?;
    serde_json::from_str(&text).map_err(|e| corrupt(column, e))
}

/// A JSON column the store may keep sealed (see [`Sealer`]), of endpoint `id`.
fn sealed_json<T: serde::de::DeserializeOwned>(
    row: &Row<'_>,
    column: &str,
    sealer: &Sealer,
    id: &str,
) -> Result<T, StoreError> {
    let text = sealer.open(id, column, row.get(column)?)?;
    serde_json::from_str(&text)
        .map_err(|e| corrupt(format!("endpoint {id}"), format!("{column}: {e}")))
}

fn flag(row: &Row<'_>, column: &str) -> Result<bool, StoreError> {
    Ok(row.get::<_, i64>(column)? != 0)
}

pub(super) fn event_type(row: &Row<'_>) -> Result<EventType, StoreError> {
    let name: String = row.get("name")?;
    Ok(EventType {
        name: EventTypeName::new(name.clone())
            .map_err(|e| corrupt(format!("event type {name}"), e))?,
        description: row.get("description")?,
        schema: json(row, "schema")?,
        archived: flag(row, "archived")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

/// An endpoint without its keys (what listings return); `sealer` opens its headers.
pub(super) fn endpoint(row: &Row<'_>, sealer: &Sealer) -> Result<Endpoint, StoreError> {
    let id: String = row.get("id")?;
    let what = || format!("endpoint {id}");
    let uid: Option<String> = row.get("uid")?;
    let event_types: Vec<EventTypeName> = json(row, "event_types")?;
    let app: String = row.get("app_id")?;
    Ok(Endpoint {
        id: id.parse().map_err(|e| corrupt(what(), e))?,
        app: app.parse().map_err(|e| corrupt(what(), e))?,
        uid: uid
            .map(EndpointUid::new)
            .transpose()
            .map_err(|e| corrupt(what(), e))?,
        url: row.get("url")?,
        event_types: if flag(row, "all_types")? {
            EventTypeFilter::All
        } else {
            EventTypeFilter::Only(event_types)
        },
        channels: json(row, "channels")?,
        metadata: json::<Map<String, Value>>(row, "metadata")?,
        headers: sealed_json(row, HEADERS_FIELD, sealer, &id)?,
        disabled: flag(row, "disabled")?,
        description: row.get("description")?,
        rate_limit: row
            .get::<_, Option<i64>>("rate_limit")?
            .map(|n| {
                u32::try_from(n)
                    .ok()
                    .and_then(NonZeroU32::new)
                    .ok_or_else(|| corrupt(what(), format!("rate limit {n}")))
            })
            .transpose()?,
        ordered: flag(row, "ordered")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

pub(super) fn application(row: &Row<'_>) -> Result<Application, StoreError> {
    let id: String = row.get("id")?;
    let what = || format!("application {id}");
    let uid: Option<String> = row.get("uid")?;
    Ok(Application {
        id: id.parse().map_err(|e| corrupt(what(), e))?,
        uid: uid
            .map(AppUid::new)
            .transpose()
            .map_err(|e| corrupt(what(), e))?,
        name: row.get("name")?,
        metadata: json::<Map<String, Value>>(row, "metadata")?,
        rate_limit: row
            .get::<_, Option<i64>>("rate_limit")?
            .map(|n| {
                u32::try_from(n)
                    .ok()
                    .and_then(NonZeroU32::new)
                    .ok_or_else(|| corrupt(what(), format!("rate limit {n}")))
            })
            .transpose()?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

pub(super) fn endpoint_record(
    row: &Row<'_>,
    sealer: &Sealer,
) -> Result<EndpointRecord, StoreError> {
    let endpoint = endpoint(row, sealer)?;
    let what = || format!("endpoint {}", endpoint.id);
    let keys: StoredKeys = sealed_json(row, KEYS_FIELD, sealer, endpoint.id.as_str())?;
    let keys = keys.into_keys(&what())?;
    Ok(EndpointRecord { endpoint, keys })
}

pub(super) fn message(row: &Row<'_>) -> Result<Message, StoreError> {
    let id: String = row.get("id")?;
    let what = || format!("message {id}");
    let channel: Option<String> = row.get("channel")?;
    let app: String = row.get("app_id")?;
    Ok(Message {
        id: id.parse().map_err(|e| corrupt(what(), e))?,
        app: app.parse().map_err(|e| corrupt(what(), e))?,
        event_type: EventTypeName::new(row.get::<_, String>("event_type")?)
            .map_err(|e| corrupt(what(), e))?,
        channels: split_channels(channel.as_deref())?,
        event_id: row.get("event_id")?,
        payload: row.get("payload")?,
        created_at: time(row, "created_at")?,
        expired: flag(row, "expired")?,
    })
}

/// An attempt, from a row of `attempts` with the ids of its message and endpoint joined in
/// as `message_id` and `endpoint_id`.
pub(super) fn attempt(row: &Row<'_>) -> Result<Attempt, StoreError> {
    let id: String = row.get("id")?;
    let what = || format!("attempt {id}");
    let channel: Option<String> = row.get("channel")?;
    let status: i64 = row.get("status")?;
    let trigger: i64 = row.get("trigger_code")?;
    let duration: i64 = row.get("duration_us")?;
    let message_id: String = row.get("message_id")?;
    let timestamp = time(row, "created_at")?;
    let mut headers: BTreeMap<String, String> = json(row, "headers")?;
    let elided: i64 = row.get("elided")?;
    let seconds = timestamp.timestamp().to_string();
    for (i, name) in DERIVED.iter().enumerate() {
        if elided & (1 << i) != 0 {
            headers.insert(
                (*name).to_owned(),
                derived_value(i, &message_id, &seconds).to_owned(),
            );
        }
    }
    Ok(Attempt {
        id: id.parse().map_err(|e| corrupt(what(), e))?,
        message_id: message_id.parse().map_err(|e| corrupt(what(), e))?,
        endpoint_id: row
            .get::<_, String>("endpoint_id")?
            .parse()
            .map_err(|e| corrupt(what(), e))?,
        event_type: EventTypeName::new(row.get::<_, String>("event_type")?)
            .map_err(|e| corrupt(what(), e))?,
        channels: split_channels(channel.as_deref())?,
        url: row.get("url")?,
        status: AttemptStatus::from_code(status)
            .ok_or_else(|| corrupt(what(), format!("unknown status {status}")))?,
        response_status: u16::try_from(row.get::<_, i64>("response_status")?)
            .map_err(|e| corrupt(what(), e))?,
        response: row.get("response")?,
        headers: headers.into(),
        duration: Duration::from_micros(u64::try_from(duration).map_err(|e| corrupt(what(), e))?),
        trigger: AttemptTrigger::from_code(trigger)
            .ok_or_else(|| corrupt(what(), format!("unknown trigger {trigger}")))?,
        timestamp,
    })
}

/// A delivery, from a row of `deliveries` (whose message and endpoint ids the caller knows).
pub(super) fn delivery(
    row: &Row<'_>,
    message_id: &str,
    endpoint_id: &str,
) -> Result<Delivery, StoreError> {
    let what = || format!("delivery {message_id}/{endpoint_id}");
    let status: i64 = row.get("status")?;
    let leased_until: Option<i64> = row.get("leased_until")?;
    let trigger: i64 = row.get("next_trigger")?;
    Ok(Delivery {
        message_id: message_id.parse().map_err(|e| corrupt(what(), e))?,
        endpoint_id: endpoint_id.parse().map_err(|e| corrupt(what(), e))?,
        status: DeliveryStatus::from_code(status)
            .ok_or_else(|| corrupt(what(), format!("unknown status {status}")))?,
        attempts: u32::try_from(row.get::<_, i64>("attempts")?).map_err(|e| corrupt(what(), e))?,
        next_attempt_at: time(row, "next_attempt_at")?,
        leased_until: leased_until.and_then(DateTime::from_timestamp_micros),
        trigger: AttemptTrigger::from_code(trigger)
            .ok_or_else(|| corrupt(what(), format!("unknown trigger {trigger}")))?,
    })
}
