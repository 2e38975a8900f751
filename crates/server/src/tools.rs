//! The small command-line tools: Standard Webhooks signing and verification
//! (`switchyard sign`, `switchyard verify`) and CloudEvents between HTTP modes and spec
//! versions (`switchyard events encode`, `switchyard events decode`).
//!
//! ```
//! use switchyard_server::tools;
//!
//! let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
//! let body = br#"{"test": 2432232314}"#;
//! let signature = tools::sign(&[secret.to_owned()], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)?;
//! assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
//! let verified = tools::verify(
//!     &[secret.to_owned()], "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", &signature, body,
//!     Some(1614265330),
//! )?;
//! assert_eq!(verified.timestamp, 1614265330);
//! # Ok::<(), tools::ToolError>(())
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use switchyard_cloudevents::http::{Mode, from_http, to_batch, to_binary, to_structured};
use switchyard_cloudevents::{Event, SpecVersion, json};

use switchyard_webhooks::signature::SigningSecret;
use switchyard_webhooks::{
    KeyError, Secret, Signer, SigningKey, Verified, Verifier, VerifyError, VerifyingKey,
};

/// Why a tool failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// No key was given.
    #[error("give at least one key (--secret)")]
    NoKey,
    /// A key could not be read.
    #[error("key {index}: {source}")]
    Key {
        /// Which `--secret` (from 1).
        index: usize,
        /// Why.
        source: KeyError,
    },
    /// A key of a kind this operation cannot use (a public key to sign with).
    #[error("key {index}: a `{prefix}` key cannot {operation}")]
    WrongKind {
        /// Which `--secret` (from 1).
        index: usize,
        /// The key's prefix.
        prefix: &'static str,
        /// What was attempted.
        operation: &'static str,
    },
    /// The signature did not verify.
    #[error("not verified: {0}")]
    Verify(#[from] VerifyError),
    /// The body could not be read.
    #[error("cannot read the body: {0}")]
    Body(std::io::Error),
    /// Not a valid CloudEvent (or HTTP message of one), or not representable as asked.
    #[error("cloudevents: {0}")]
    CloudEvents(#[from] switchyard_cloudevents::Error),
    /// The HTTP message text is malformed (a header line without `:`, say).
    #[error("line {line}: {reason}")]
    Message {
        /// The 1-based line.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Binary and structured mode carry one event; the input held several.
    #[error("{mode:?} mode carries one event; the input holds {count} (use batch mode)")]
    NotOneEvent {
        /// The mode asked for.
        mode: Mode,
        /// How many events the input held.
        count: usize,
    },
}

/// Encodes CloudEvents given in the JSON format (one object, or an array for several) as an
/// HTTP message in `mode`, converted to `version` when given. The message is written as
/// header lines, a blank line and the body, the form [`decode_events`] reads.
///
/// ```
/// use switchyard_server::tools::encode_events;
/// use switchyard_cloudevents::{SpecVersion, http::Mode};
///
/// let event = br#"{"specversion": "1.0", "id": "1", "type": "t", "source": "/s", "data": {"n": 1}}"#;
/// let message = encode_events(event, Mode::Binary, Some(SpecVersion::V0_3))?;
/// let text = String::from_utf8(message)?;
/// assert!(text.contains("ce-specversion: 0.3\n"));
/// assert!(text.ends_with("\n\n{\"n\": 1}"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`ToolError::CloudEvents`] for input that is not a valid event, or a conversion or
/// encoding that fails; [`ToolError::NotOneEvent`] for several events in binary or
/// structured mode.
pub fn encode_events(
    input: &[u8],
    mode: Mode,
    version: Option<SpecVersion>,
) -> Result<Vec<u8>, ToolError> {
    let events = convert(read_json_events(input)?, version)?;
    let message = match (mode, events.as_slice()) {
        (Mode::Batch, events) => to_batch(events)?,
        (Mode::Binary, [event]) => to_binary(event)?,
        (Mode::Structured, [event]) => to_structured(event)?,
        (mode, events) => {
            return Err(ToolError::NotOneEvent {
                mode,
                count: events.len(),
            });
        }
    };
    let mut out = Vec::with_capacity(message.body.len() + 256);
    for (name, value) in &message.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(&message.body);
    Ok(out)
}

/// Decodes an HTTP message (header lines, a blank line, the body; CRLF or LF) holding
/// CloudEvents in any mode, and writes them in the JSON format, converted to `version` when
/// given: one object, or an array when the message was a batch.
///
/// # Errors
/// [`ToolError::Message`] for malformed header lines; [`ToolError::CloudEvents`] for a
/// message that is not a valid CloudEvent, or a conversion that fails.
pub fn decode_events(message: &[u8], version: Option<SpecVersion>) -> Result<Vec<u8>, ToolError> {
    let (headers, body) = parse_message(message)?;
    let received = from_http(&headers, body)?;
    let batch = received.mode() == Mode::Batch;
    let events = convert(received.into_events(), version)?;
    let mut out = match (batch, events.as_slice()) {
        (false, [event]) => json::encode(event)?,
        _ => json::encode_batch(&events)?,
    };
    out.push(b'\n');
    Ok(out)
}

fn read_json_events(input: &[u8]) -> Result<Vec<Event>, ToolError> {
    let first = input.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        Ok(json::decode_batch(input)?)
    } else {
        Ok(vec![json::decode(input)?])
    }
}

fn convert(events: Vec<Event>, version: Option<SpecVersion>) -> Result<Vec<Event>, ToolError> {
    match version {
        None => Ok(events),
        Some(version) => events
            .into_iter()
            .map(|e| e.into_version(version).map_err(ToolError::from))
            .collect(),
    }
}

fn parse_message(message: &[u8]) -> Result<(HeaderMap, &[u8]), ToolError> {
    let mut headers = HeaderMap::new();
    let mut rest = message;
    let mut line_number = 0;
    loop {
        line_number += 1;
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return Err(ToolError::Message {
                line: line_number,
                reason: "the headers must end with a blank line",
            });
        };
        let line = rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end]);
        rest = &rest[end + 1..];
        if line.is_empty() {
            return Ok((headers, rest));
        }
        let invalid = |reason| ToolError::Message {
            line: line_number,
            reason,
        };
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| invalid("a header line needs `name: value`"))?;
        let name = HeaderName::from_bytes(line[..colon].trim_ascii())
            .map_err(|_| invalid("not a valid header name"))?;
        let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii())
            .map_err(|_| invalid("not a valid header value"))?;
        headers.append(name, value);
    }
}

fn key_error(index: usize) -> impl Fn(KeyError) -> ToolError {
    move |source| ToolError::Key { index, source }
}

/// The `webhook-signature` value for a message: one signature per key, in order. Keys are
/// `whsec_…` (HMAC, `v1`) or `whsk_…` (Ed25519, `v1a`).
///
/// # Errors
/// [`ToolError::NoKey`], [`ToolError::Key`], [`ToolError::WrongKind`] for a `whpk_` key.
pub fn sign(
    keys: &[String],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, ToolError> {
    if keys.is_empty() {
        return Err(ToolError::NoKey);
    }
    let mut signing = Vec::with_capacity(keys.len());
    for (i, key) in keys.iter().enumerate() {
        let index = i + 1;
        let key = key.trim();
        if key.starts_with("whpk_") {
            return Err(ToolError::WrongKind {
                index,
                prefix: "whpk_",
                operation: "sign (it is a public key)",
            });
        }
        if key.starts_with("whsk_") {
            signing.push(SigningSecret::from(
                key.parse::<SigningKey>().map_err(key_error(index))?,
            ));
        } else {
            signing.push(SigningSecret::from(
                key.parse::<Secret>().map_err(key_error(index))?,
            ));
        }
    }
    Ok(Signer::with_keys(signing).sign(msg_id, timestamp, body))
}

/// Verifies a message's three `webhook-*` header values and body against any of `keys`
/// (`whsec_…` or `whpk_…`). The timestamp must be within five minutes of `now` (the
/// current time when `None`).
///
/// # Errors
/// [`ToolError::Verify`] saying why (no matching signature, timestamp too old or new,
/// malformed header); [`ToolError::Key`] or [`ToolError::WrongKind`] for a bad key.
pub fn verify(
    keys: &[String],
    msg_id: &str,
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now: Option<i64>,
) -> Result<Verified, ToolError> {
    if keys.is_empty() {
        return Err(ToolError::NoKey);
    }
    let mut verifier = Verifier::empty();
    for (i, key) in keys.iter().enumerate() {
        let index = i + 1;
        let key = key.trim();
        if key.starts_with("whsk_") {
            return Err(ToolError::WrongKind {
                index,
                prefix: "whsk_",
                operation: "verify (give its `whpk_` public key)",
            });
        }
        verifier = if key.starts_with("whpk_") {
            verifier.with_public_key(key.parse::<VerifyingKey>().map_err(key_error(index))?)
        } else {
            verifier.with_secret(key.parse::<Secret>().map_err(key_error(index))?)
        };
    }
    let now = now.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    });
    Ok(verifier.verify_parts(msg_id, timestamp, signature, body, now)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"specversion": "1.0", "id": "e-1", "type": "com.example.t", "source": "/s",
        "datacontenttype": "application/json", "time": "2026-11-25T10:00:00+01:00",
        "data": {"msg": "Grüße"}}"#;

    #[test]
    fn events_round_trip_through_every_mode_and_version() {
        for mode in [Mode::Binary, Mode::Structured, Mode::Batch] {
            for version in [None, Some(SpecVersion::V0_3), Some(SpecVersion::V1_0)] {
                let message = encode_events(V1.as_bytes(), mode, version).unwrap();
                let back = decode_events(&message, Some(SpecVersion::V1_0)).unwrap();
                let decoded: Vec<Event> = if mode == Mode::Batch {
                    json::decode_batch(&back).unwrap()
                } else {
                    vec![json::decode(&back).unwrap()]
                };
                let original = json::decode(V1.as_bytes()).unwrap();
                assert_eq!(decoded, vec![original], "{mode:?} {version:?}");
            }
        }
        let v03 = encode_events(V1.as_bytes(), Mode::Structured, Some(SpecVersion::V0_3)).unwrap();
        assert!(String::from_utf8_lossy(&v03).contains(r#""specversion":"0.3""#));
        // CRLF line ends are read too.
        let crlf = String::from_utf8(encode_events(V1.as_bytes(), Mode::Binary, None).unwrap())
            .unwrap()
            .replace('\n', "\r\n");
        assert!(decode_events(crlf.as_bytes(), None).is_ok());
    }

    #[test]
    fn event_tool_errors_are_typed() {
        let two = format!("[{V1}, {V1}]");
        assert!(matches!(
            encode_events(two.as_bytes(), Mode::Binary, None),
            Err(ToolError::NotOneEvent { count: 2, .. })
        ));
        assert!(matches!(
            encode_events(b"{}", Mode::Structured, None),
            Err(ToolError::CloudEvents(_))
        ));
        assert!(matches!(
            decode_events(b"ce-id 1\n\n", None),
            Err(ToolError::Message { line: 1, .. })
        ));
        assert!(matches!(
            decode_events(b"ce-id: 1\n", None),
            Err(ToolError::Message { line: 2, .. })
        ));
        assert!(matches!(
            decode_events(b"content-type: text/plain\n\nhello", None),
            Err(ToolError::CloudEvents(
                switchyard_cloudevents::Error::NotACloudEvent
            ))
        ));
    }

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";

    #[test]
    fn sign_and_verify_round_trip_with_both_kinds() {
        let signing = SigningKey::generate().unwrap();
        let public = signing.verifying_key().to_string();
        let keys = [SECRET.to_owned(), signing.expose()];
        let signature = sign(&keys, ID, 1_614_265_330, b"{}").unwrap();
        assert!(signature.starts_with("v1,"), "{signature}");
        assert!(signature.contains(" v1a,"), "{signature}");
        verify(
            &[public],
            ID,
            "1614265330",
            &signature,
            b"{}",
            Some(1_614_265_330),
        )
        .unwrap();
        verify(
            &[SECRET.to_owned()],
            ID,
            "1614265330",
            &signature,
            b"{}",
            Some(1_614_265_330),
        )
        .unwrap();
    }

    #[test]
    fn failures_are_typed() {
        assert!(matches!(sign(&[], ID, 0, b""), Err(ToolError::NoKey)));
        assert!(matches!(
            sign(&["nope".to_owned()], ID, 0, b""),
            Err(ToolError::Key { index: 1, .. })
        ));
        let signature = sign(&[SECRET.to_owned()], ID, 1_614_265_330, b"{}").unwrap();
        let tampered = verify(
            &[SECRET.to_owned()],
            ID,
            "1614265330",
            &signature,
            b"{ }",
            Some(1_614_265_330),
        );
        assert!(
            matches!(
                tampered,
                Err(ToolError::Verify(VerifyError::NoMatchingSignature))
            ),
            "{tampered:?}"
        );
        let late = verify(
            &[SECRET.to_owned()],
            ID,
            "1614265330",
            &signature,
            b"{}",
            Some(1_614_265_330 + 3600),
        );
        assert!(
            matches!(
                late,
                Err(ToolError::Verify(VerifyError::TimestampTooOld { .. }))
            ),
            "{late:?}"
        );
    }
}
