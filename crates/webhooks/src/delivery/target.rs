//! An endpoint made ready for requests: what every request to it shares (its parsed URL, the
//! headers that do not change, the same headers as attempts record them, a signer with its
//! live keys and its limits), worked out once each time the endpoint is read instead of once
//! per request.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::header::{CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::Full;

use super::{Gate, USER_AGENT_VALUE};
use crate::error::Error;
use crate::model::{AttemptHeaders, EndpointRecord, Message};
use crate::signature::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, Signer};

static APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
static AGENT: HeaderValue = HeaderValue::from_static(USER_AGENT_VALUE);
static NAME_ID: HeaderName = HeaderName::from_static(HEADER_ID);
static NAME_TIMESTAMP: HeaderName = HeaderName::from_static(HEADER_TIMESTAMP);
static NAME_SIGNATURE: HeaderName = HeaderName::from_static(HEADER_SIGNATURE);

/// An endpoint and what its requests share.
pub(super) struct Target {
    /// The endpoint as read.
    pub(super) record: EndpointRecord,
    /// Its limits (shared with every other read of the same endpoint).
    pub(super) gate: Arc<Gate>,
    /// The URL, parsed; or why it cannot be requested.
    uri: Result<Uri, &'static str>,
    /// `content-type`, `user-agent` and the custom headers; or the custom header that is not
    /// valid.
    headers: Result<HeaderMap, (String, &'static str)>,
    /// The same headers as attempts record them (credentials redacted), shared by them all.
    recorded: Arc<BTreeMap<String, String>>,
    /// Signs with the keys live at `signed_from`, until `signed_until` (when the first of
    /// the previous keys among them expires).
    signer: Signer,
    signed_from: DateTime<Utc>,
    signed_until: Option<DateTime<Utc>>,
}

impl Target {
    /// Prepares `record` for requests made from `now` on.
    pub(super) fn new(record: EndpointRecord, gate: Arc<Gate>, now: DateTime<Utc>) -> Self {
        let uri = record
            .endpoint
            .url
            .parse::<Uri>()
            .map_err(|_| "not a valid URL");
        let mut recorded = BTreeMap::new();
        recorded.insert(CONTENT_TYPE.to_string(), "application/json".to_owned());
        recorded.insert(USER_AGENT.to_string(), USER_AGENT_VALUE.to_owned());
        let mut headers = HeaderMap::with_capacity(record.endpoint.headers.len() + 5);
        headers.insert(CONTENT_TYPE, APPLICATION_JSON.clone());
        headers.insert(USER_AGENT, AGENT.clone());
        let mut invalid = None;
        for (name, value) in &record.endpoint.headers {
            let lower = name.to_ascii_lowercase();
            let Ok(header) = HeaderName::try_from(lower.as_str()) else {
                invalid.get_or_insert((name.clone(), "not a valid header name"));
                continue;
            };
            let Ok(parsed) = HeaderValue::from_str(value) else {
                invalid.get_or_insert((name.clone(), "the value is not a valid header value"));
                continue;
            };
            headers.append(header, parsed);
            let shown = if is_sensitive(&lower) {
                "<redacted>".to_owned()
            } else {
                value.clone()
            };
            recorded.insert(lower, shown);
        }
        let signed_until = record
            .keys
            .previous
            .iter()
            .map(|(_, expires)| *expires)
            .filter(|expires| *expires > now)
            .min();
        let signer = signer_at(&record, now);
        Self {
            gate,
            uri,
            headers: match invalid {
                None => Ok(headers),
                Some(invalid) => Err(invalid),
            },
            recorded: Arc::new(recorded),
            signer,
            signed_from: now,
            signed_until,
            record,
        }
    }

    /// The request for an attempt on `message` at `at`, and its headers as recorded.
    ///
    /// # Errors
    /// [`Error::InvalidHeader`] or [`Error::InvalidUrl`] for an endpoint stored with one
    /// (the registry checks both, so only a store written by other means has them).
    pub(super) fn request(
        &self,
        message: &Message,
        body: Bytes,
        at: DateTime<Utc>,
    ) -> Result<(Request<Full<Bytes>>, AttemptHeaders), Error> {
        let endpoint = &self.record.endpoint;
        let uri = self.uri.clone().map_err(|reason| Error::InvalidUrl {
            url: endpoint.url.clone(),
            reason,
        })?;
        let base = self
            .headers
            .as_ref()
            .map_err(|(name, reason)| Error::InvalidHeader {
                name: name.clone(),
                reason,
            })?;
        let mut headers = HeaderMap::with_capacity(base.len() + 3);
        headers.extend(
            base.iter()
                .map(|(name, value)| (name.clone(), value.clone())),
        );
        // The keys cached are live for [signed_from, signed_until); outside, sign afresh.
        let cached = at >= self.signed_from && self.signed_until.is_none_or(|until| at < until);
        let fresh;
        let signer = if cached {
            &self.signer
        } else {
            fresh = signer_at(&self.record, at);
            &fresh
        };
        let id = message.id.as_str();
        let timestamp = at.timestamp().to_string();
        let signature = signer.sign(id, at.timestamp(), &body);
        // Ids this crate makes, decimal digits and base64 are always valid header values.
        for (name, value) in [
            (&NAME_ID, id),
            (&NAME_TIMESTAMP, timestamp.as_str()),
            (&NAME_SIGNATURE, signature.as_str()),
        ] {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(name.clone(), value);
            }
        }
        let recorded = AttemptHeaders::signed(
            Arc::clone(&self.recorded),
            id.to_owned(),
            signature,
            timestamp,
        );
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        Ok((request, recorded))
    }
}

/// A signer with the endpoint's keys live at `at`, current first.
fn signer_at(record: &EndpointRecord, at: DateTime<Utc>) -> Signer {
    Signer::with_keys(record.keys.live(at).into_iter().map(Into::into))
}

fn is_sensitive(lower_name: &str) -> bool {
    crate::model::is_credential_name(lower_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_header_names() {
        for name in [
            "authorization",
            "x-api-key",
            "x-auth-token",
            "cookie",
            "x-secret",
        ] {
            assert!(is_sensitive(name), "{name}");
        }
        for name in ["x-tenant", "x-request-id", "accept"] {
            assert!(!is_sensitive(name), "{name}");
        }
    }
}
