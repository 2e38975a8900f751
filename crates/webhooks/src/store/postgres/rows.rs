//! Reading PostgreSQL rows back into the model. Columns are named as in the schema;
//! queries that join alias the application's id as `app_id`.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tokio_postgres::Row;

use super::super::keys::{HEADERS_FIELD, KEYS_FIELD, Sealer, StoredKeys};
use crate::error::StoreError;
use crate::model::{
    AppUid, Application, Attempt, AttemptStatus, AttemptTrigger, Channel, Delivery, DeliveryStatus,
    Endpoint, EndpointRecord, EndpointUid, EventType, EventTypeFilter, EventTypeName, Message,
};
use crate::store::split_channels;

pub(super) fn corrupt(what: impl Into<String>, reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what: what.into(),
        reason: reason.to_string(),
    }
}

pub(super) fn to_json(value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| corrupt("record", e))
}

fn time(row: &Row, column: &str) -> Result<DateTime<Utc>, StoreError> {
    let value: i64 = row.try_get(column)?;
    DateTime::from_timestamp_micros(value)
        .ok_or_else(|| corrupt(column, format!("timestamp {value} out of range")))
}

fn json<T: serde::de::DeserializeOwned>(row: &Row, column: &str) -> Result<T, StoreError> {
    let text: &str = row.try_get(column)?;
    serde_json::from_str(text).map_err(|e| corrupt(column, e))
}

/// A JSON column the store may keep sealed (see [`Sealer`]), of endpoint `id`.
fn sealed_json<T: serde::de::DeserializeOwned>(
    row: &Row,
    column: &str,
    sealer: &Sealer,
    id: &str,
) -> Result<T, StoreError> {
    let text = sealer.open(id, column, row.try_get::<_, String>(column)?)?;
    serde_json::from_str(&text)
        .map_err(|e| corrupt(format!("endpoint {id}"), format!("{column}: {e}")))
}

fn rate_limit(row: &Row, what: &str) -> Result<Option<NonZeroU32>, StoreError> {
    row.try_get::<_, Option<i64>>("rate_limit")?
        .map(|n| {
            u32::try_from(n)
                .ok()
                .and_then(NonZeroU32::new)
                .ok_or_else(|| corrupt(what, format!("rate limit {n}")))
        })
        .transpose()
}

pub(super) fn event_type(row: &Row) -> Result<EventType, StoreError> {
    let name: String = row.try_get("name")?;
    Ok(EventType {
        name: EventTypeName::new(name.clone())
            .map_err(|e| corrupt(format!("event type {name}"), e))?,
        description: row.try_get("description")?,
        schema: json(row, "schema")?,
        archived: row.try_get("archived")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

pub(super) fn application(row: &Row) -> Result<Application, StoreError> {
    let id: String = row.try_get("id")?;
    let what = format!("application {id}");
    let uid: Option<String> = row.try_get("uid")?;
    Ok(Application {
        id: id.parse().map_err(|e| corrupt(&what, e))?,
        uid: uid
            .map(AppUid::new)
            .transpose()
            .map_err(|e| corrupt(&what, e))?,
        name: row.try_get("name")?,
        metadata: json::<Map<String, Value>>(row, "metadata")?,
        rate_limit: rate_limit(row, &what)?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

/// An endpoint without its keys (what listings return).
pub(super) fn endpoint(row: &Row, sealer: &Sealer) -> Result<Endpoint, StoreError> {
    let id: String = row.try_get("id")?;
    let what = format!("endpoint {id}");
    let uid: Option<String> = row.try_get("uid")?;
    let app: String = row.try_get("app_id")?;
    let event_types: Vec<String> = row.try_get("event_types")?;
    let channels: Vec<String> = row.try_get("channels")?;
    Ok(Endpoint {
        id: id.parse().map_err(|e| corrupt(&what, e))?,
        app: app.parse().map_err(|e| corrupt(&what, e))?,
        uid: uid
            .map(EndpointUid::new)
            .transpose()
            .map_err(|e| corrupt(&what, e))?,
        url: row.try_get("url")?,
        event_types: if row.try_get("all_types")? {
            EventTypeFilter::All
        } else {
            EventTypeFilter::Only(
                event_types
                    .into_iter()
                    .map(EventTypeName::new)
                    .collect::<Result<_, _>>()
                    .map_err(|e| corrupt(&what, e))?,
            )
        },
        channels: channels
            .into_iter()
            .map(Channel::new)
            .collect::<Result<_, _>>()
            .map_err(|e| corrupt(&what, e))?,
        metadata: json::<Map<String, Value>>(row, "metadata")?,
        headers: sealed_json(row, HEADERS_FIELD, sealer, &id)?,
        disabled: row.try_get("disabled")?,
        description: row.try_get("description")?,
        rate_limit: rate_limit(row, &what)?,
        ordered: row.try_get("ordered")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

pub(super) fn endpoint_record(row: &Row, sealer: &Sealer) -> Result<EndpointRecord, StoreError> {
    let endpoint = endpoint(row, sealer)?;
    let keys: StoredKeys = sealed_json(row, KEYS_FIELD, sealer, endpoint.id.as_str())?;
    let keys = keys.into_keys(&format!("endpoint {}", endpoint.id))?;
    Ok(EndpointRecord { endpoint, keys })
}

pub(super) fn message(row: &Row) -> Result<Message, StoreError> {
    let id: String = row.try_get("id")?;
    let what = format!("message {id}");
    let channel: Option<String> = row.try_get("channel")?;
    let app: String = row.try_get("app_id")?;
    Ok(Message {
        id: id.parse().map_err(|e| corrupt(&what, e))?,
        app: app.parse().map_err(|e| corrupt(&what, e))?,
        event_type: EventTypeName::new(row.try_get::<_, String>("event_type")?)
            .map_err(|e| corrupt(&what, e))?,
        channels: split_channels(channel.as_deref())?,
        event_id: row.try_get("event_id")?,
        payload: row.try_get("payload")?,
        created_at: time(row, "created_at")?,
        expired: row.try_get("expired")?,
    })
}

pub(super) fn attempt(row: &Row) -> Result<Attempt, StoreError> {
    let id: String = row.try_get("id")?;
    let what = format!("attempt {id}");
    let channel: Option<String> = row.try_get("channel")?;
    let status: i16 = row.try_get("status")?;
    let trigger: i16 = row.try_get("trigger_code")?;
    let duration: i64 = row.try_get("duration_us")?;
    let headers: BTreeMap<String, String> = json(row, "headers")?;
    Ok(Attempt {
        id: id.parse().map_err(|e| corrupt(&what, e))?,
        message_id: row
            .try_get::<_, String>("msg")?
            .parse()
            .map_err(|e| corrupt(&what, e))?,
        endpoint_id: row
            .try_get::<_, String>("ep")?
            .parse()
            .map_err(|e| corrupt(&what, e))?,
        event_type: EventTypeName::new(row.try_get::<_, String>("event_type")?)
            .map_err(|e| corrupt(&what, e))?,
        channels: split_channels(channel.as_deref())?,
        url: row.try_get("url")?,
        status: AttemptStatus::from_code(i64::from(status))
            .ok_or_else(|| corrupt(&what, format!("unknown status {status}")))?,
        response_status: u16::try_from(row.try_get::<_, i32>("response_status")?)
            .map_err(|e| corrupt(&what, e))?,
        response: row.try_get("response")?,
        headers: headers.into(),
        duration: Duration::from_micros(u64::try_from(duration).map_err(|e| corrupt(&what, e))?),
        trigger: AttemptTrigger::from_code(i64::from(trigger))
            .ok_or_else(|| corrupt(&what, format!("unknown trigger {trigger}")))?,
        timestamp: time(row, "created_at")?,
    })
}

/// A delivery, from a row of `deliveries`.
pub(super) fn delivery(row: &Row) -> Result<Delivery, StoreError> {
    let message_id: String = row.try_get("msg")?;
    let endpoint_id: String = row.try_get("ep")?;
    let what = format!("delivery {message_id}/{endpoint_id}");
    let status: i16 = row.try_get("status")?;
    let leased_until: Option<i64> = row.try_get("leased_until")?;
    let trigger: i16 = row.try_get("next_trigger")?;
    Ok(Delivery {
        message_id: message_id.parse().map_err(|e| corrupt(&what, e))?,
        endpoint_id: endpoint_id.parse().map_err(|e| corrupt(&what, e))?,
        status: DeliveryStatus::from_code(i64::from(status))
            .ok_or_else(|| corrupt(&what, format!("unknown status {status}")))?,
        attempts: u32::try_from(row.try_get::<_, i32>("attempts")?)
            .map_err(|e| corrupt(&what, e))?,
        next_attempt_at: time(row, "next_attempt_at")?,
        leased_until: leased_until.and_then(DateTime::from_timestamp_micros),
        trigger: AttemptTrigger::from_code(i64::from(trigger))
            .ok_or_else(|| corrupt(&what, format!("unknown trigger {trigger}")))?,
    })
}
