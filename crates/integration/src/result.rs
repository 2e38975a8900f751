//! What a dispatch returns: [`IntegrationResult`], serialised exactly as the Autohive SDK's
//! lambda wrapper sends it (`{"version", "type", "result"}`), and the payloads inside it.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The Autohive SDK release whose result format this crate writes. It is the default
/// [`IntegrationResult::version`], so a platform that reads the field to pick a parser picks
/// the right one; [`Integration::set_result_version`](crate::Integration::set_result_version)
/// changes it.
pub const AUTOHIVE_SDK_VERSION: &str = "2.0.1";

/// The result of a dispatch, as the platform receives it.
///
/// ```
/// use serde_json::json;
/// use switchyard_integration::{ActionResult, IntegrationResult, ResultPayload};
///
/// let result = IntegrationResult::new(ResultPayload::Action(ActionResult::new(json!({"id": 7}))));
/// assert_eq!(
///     serde_json::to_value(&result)?,
///     json!({"version": "2.0.1", "type": "action", "result": {"data": {"id": 7}, "cost_usd": null}})
/// );
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct IntegrationResult {
    /// The format version (see [`AUTOHIVE_SDK_VERSION`]).
    pub version: String,
    /// The payload; its kind is the `type` field.
    pub payload: ResultPayload,
}

impl IntegrationResult {
    /// A result with the default version.
    #[must_use]
    pub fn new(payload: ResultPayload) -> Self {
        Self {
            version: AUTOHIVE_SDK_VERSION.to_owned(),
            payload,
        }
    }

    /// The `type` field.
    #[must_use]
    pub fn result_type(&self) -> ResultType {
        match self.payload {
            ResultPayload::Action(_) => ResultType::Action,
            ResultPayload::ActionError(_) => ResultType::ActionError,
            ResultPayload::ConnectedAccount(_) => ResultType::ConnectedAccount,
            ResultPayload::Error(_) => ResultType::Error,
            ResultPayload::ValidationError(_) => ResultType::ValidationError,
        }
    }

    /// The action's output, when this is an `action` result.
    #[must_use]
    pub fn as_action(&self) -> Option<&ActionResult> {
        match &self.payload {
            ResultPayload::Action(result) => Some(result),
            _ => None,
        }
    }

    /// The validation failure, when this is a `validation_error` result.
    #[must_use]
    pub fn as_validation_error(&self) -> Option<&ValidationFailure> {
        match &self.payload {
            ResultPayload::ValidationError(failure) => Some(failure),
            _ => None,
        }
    }
}

/// The `type` of an [`IntegrationResult`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ResultType {
    /// `"action"`: the action ran and its output matched the output schema.
    Action,
    /// `"action_error"`: the handler reported an expected failure ([`ActionError`]).
    ActionError,
    /// `"connected_account"`: account details from the connected-account handler.
    ConnectedAccount,
    /// `"error"`: the handler failed unexpectedly (an error it did not handle, or a panic).
    Error,
    /// `"validation_error"`: inputs, credentials or outputs did not match their schema, or no
    /// handler is registered under the name.
    ValidationError,
}

/// The `result` of an [`IntegrationResult`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ResultPayload {
    /// For [`ResultType::Action`].
    Action(ActionResult),
    /// For [`ResultType::ActionError`].
    ActionError(ActionError),
    /// For [`ResultType::ConnectedAccount`].
    ConnectedAccount(ConnectedAccountInfo),
    /// For [`ResultType::Error`].
    Error(ErrorResult),
    /// For [`ResultType::ValidationError`].
    ValidationError(ValidationFailure),
}

/// What an action handler returns on success: its output and, optionally, what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ActionResult {
    /// The output, checked against the action's `output_schema`.
    pub data: Value,
    /// The cost in US dollars, for integrations that bill (`supports_billing`).
    pub cost_usd: Option<f64>,
}

impl ActionResult {
    /// An output with no cost.
    #[must_use]
    pub fn new(data: Value) -> Self {
        Self {
            data,
            cost_usd: None,
        }
    }

    /// Sets the cost in US dollars.
    #[must_use]
    pub fn with_cost(mut self, cost_usd: f64) -> Self {
        self.cost_usd = Some(cost_usd);
        self
    }
}

/// An expected, application-level failure reported by an action handler ("user not found").
/// It skips output validation and becomes an `action_error` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
#[non_exhaustive]
pub struct ActionError {
    /// What went wrong, for the user.
    pub message: String,
    /// What was spent before it went wrong.
    pub cost_usd: Option<f64>,
}

impl ActionError {
    /// A failure with no cost.
    #[must_use]
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            cost_usd: None,
        }
    }

    /// Sets the cost in US dollars.
    #[must_use]
    pub fn with_cost(mut self, cost_usd: f64) -> Self {
        self.cost_usd = Some(cost_usd);
        self
    }
}

/// Account details from a connected-account handler, shown in the platform's UI. Every field
/// is optional; all seven are always serialised (absent ones as `null`), as in the original.
/// The field set is the wire format's, so the struct is exhaustive: build it with a literal
/// and `..ConnectedAccountInfo::default()`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectedAccountInfo {
    /// Email address.
    pub email: Option<String>,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Username.
    pub username: Option<String>,
    /// The account's id at the provider.
    pub user_id: Option<String>,
    /// URL of the avatar image.
    pub avatar_url: Option<String>,
    /// Organisation name.
    pub organization: Option<String>,
}

impl ConnectedAccountInfo {
    /// Empty account details; set the fields you have.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

/// The payload of an `error` result: the handler failed in a way it did not report as an
/// [`ActionError`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ErrorResult {
    /// What failed (a panic's message is prefixed with `handler panicked: `).
    pub message: String,
}

/// The payload of a `validation_error` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ValidationFailure {
    /// Every violation, in the original's wording: for each, the schema path as a Python
    /// list, the validator's message, and `",\n "`. Other failures (no handler registered,
    /// a record without `id`) are one sentence.
    pub message: String,
    /// JSON Pointer to the first failing value (the original always sends `null`).
    pub property: Option<String>,
    /// The first failing value (the original always sends `null`). Always `null` when the
    /// source is `auth`: credentials are never echoed.
    pub value: Value,
    /// What was being checked.
    pub source: ValidationSource,
}

/// What a [`ValidationFailure`] was checking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ValidationSource {
    /// The inputs, against the input schema.
    Input,
    /// The handler's output, against the output schema (or a polling record's shape).
    Output,
    /// The context's credentials, against `auth.fields`.
    Auth,
    /// Anything else (no handler registered), as the original labels it.
    Legacy,
}

#[derive(Serialize)]
struct WireOut<'a, T: Serialize> {
    version: &'a str,
    #[serde(rename = "type")]
    kind: ResultType,
    result: &'a T,
}

#[derive(Deserialize)]
struct WireIn {
    version: String,
    #[serde(rename = "type")]
    kind: ResultType,
    result: Value,
}

impl Serialize for IntegrationResult {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let version = self.version.as_str();
        let kind = self.result_type();
        match &self.payload {
            ResultPayload::Action(result) => WireOut {
                version,
                kind,
                result,
            }
            .serialize(serializer),
            ResultPayload::ActionError(result) => WireOut {
                version,
                kind,
                result,
            }
            .serialize(serializer),
            ResultPayload::ConnectedAccount(result) => WireOut {
                version,
                kind,
                result,
            }
            .serialize(serializer),
            ResultPayload::Error(result) => WireOut {
                version,
                kind,
                result,
            }
            .serialize(serializer),
            ResultPayload::ValidationError(result) => WireOut {
                version,
                kind,
                result,
            }
            .serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for IntegrationResult {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = WireIn::deserialize(deserializer)?;
        let payload = match wire.kind {
            ResultType::Action => serde_json::from_value(wire.result).map(ResultPayload::Action),
            ResultType::ActionError => {
                serde_json::from_value(wire.result).map(ResultPayload::ActionError)
            }
            ResultType::ConnectedAccount => {
                serde_json::from_value(wire.result).map(ResultPayload::ConnectedAccount)
            }
            ResultType::Error => serde_json::from_value(wire.result).map(ResultPayload::Error),
            ResultType::ValidationError => {
                serde_json::from_value(wire.result).map(ResultPayload::ValidationError)
            }
        }
        .map_err(D::Error::custom)?;
        Ok(Self {
            version: wire.version,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_kind_round_trips() {
        let results = [
            ResultPayload::Action(ActionResult::new(json!([1, 2])).with_cost(0.05)),
            ResultPayload::ActionError(ActionError::new("User not found")),
            ResultPayload::ConnectedAccount(ConnectedAccountInfo {
                email: Some("a@example.com".into()),
                ..ConnectedAccountInfo::default()
            }),
            ResultPayload::Error(ErrorResult {
                message: "boom".into(),
            }),
            ResultPayload::ValidationError(ValidationFailure {
                message: "m".into(),
                property: Some("/a".into()),
                value: json!(3),
                source: ValidationSource::Input,
            }),
        ];
        for payload in results {
            let result = IntegrationResult::new(payload);
            let text = serde_json::to_string(&result).unwrap();
            let back: IntegrationResult = serde_json::from_str(&text).unwrap();
            assert_eq!(back, result, "{text}");
        }
    }

    #[test]
    fn wire_shapes_match_the_original() {
        let account =
            IntegrationResult::new(ResultPayload::ConnectedAccount(ConnectedAccountInfo::new()));
        assert_eq!(
            serde_json::to_value(&account).unwrap(),
            json!({"version": "2.0.1", "type": "connected_account", "result": {
                "email": null, "first_name": null, "last_name": null, "username": null,
                "user_id": null, "avatar_url": null, "organization": null}})
        );
        let failure = IntegrationResult::new(ResultPayload::ValidationError(ValidationFailure {
            message: "Action 'x' not registered".into(),
            property: None,
            value: Value::Null,
            source: ValidationSource::Legacy,
        }));
        assert_eq!(
            serde_json::to_value(&failure).unwrap(),
            json!({"version": "2.0.1", "type": "validation_error", "result": {
                "message": "Action 'x' not registered", "property": null, "value": null,
                "source": "legacy"}})
        );
        let bad = serde_json::from_value::<IntegrationResult>(
            json!({"version": "1", "type": "action", "result": {"cost_usd": null}}),
        );
        assert!(bad.is_err());
    }
}
