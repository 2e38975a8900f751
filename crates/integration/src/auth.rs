//! Credentials passed to a dispatch: the platform's auth envelope
//! `{"auth_type": ..., "credentials": {...}}`, kept out of `Debug` output and logs.

use std::fmt;

use serde_json::{Map, Value};

use crate::error::AuthError;

/// How the platform authenticated the user; decides whether
/// [`ExecutionContext::fetch`](crate::ExecutionContext::fetch) adds a bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthType {
    /// `"PlatformOauth2"`: platform-managed OAuth 2.0; `credentials.access_token` is sent as
    /// `Authorization: Bearer`.
    PlatformOauth2,
    /// `"PlatformTeams"`: platform-managed Microsoft Teams auth.
    PlatformTeams,
    /// `"ApiKey"`: one API key entered by the user.
    ApiKey,
    /// `"Basic"`: user name and password.
    Basic,
    /// `"Custom"`: the fields of the config's `auth.fields` schema.
    Custom,
}

impl AuthType {
    /// The spelling on the wire.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PlatformOauth2 => "PlatformOauth2",
            Self::PlatformTeams => "PlatformTeams",
            Self::ApiKey => "ApiKey",
            Self::Basic => "Basic",
            Self::Custom => "Custom",
        }
    }

    /// Parses the wire spelling.
    ///
    /// # Errors
    /// [`AuthError::UnknownAuthType`] for anything else.
    pub fn parse(text: &str) -> Result<Self, AuthError> {
        Ok(match text {
            "PlatformOauth2" => Self::PlatformOauth2,
            "PlatformTeams" => Self::PlatformTeams,
            "ApiKey" => Self::ApiKey,
            "Basic" => Self::Basic,
            "Custom" => Self::Custom,
            other => return Err(AuthError::UnknownAuthType(other.to_owned())),
        })
    }
}

/// The credentials of one dispatch. `Debug` shows the auth type and the credential *names*,
/// never their values.
///
/// ```
/// use serde_json::json;
/// use switchyard_integration::{Auth, AuthType};
///
/// let auth = Auth::from_envelope(&json!({
///     "auth_type": "PlatformOauth2",
///     "credentials": {"access_token": "secret-token"}
/// }))?;
/// assert_eq!(auth.auth_type(), AuthType::PlatformOauth2);
/// assert_eq!(auth.access_token(), Some("secret-token"));
/// assert!(!format!("{auth:?}").contains("secret-token"));
/// # Ok::<(), switchyard_integration::AuthError>(())
/// ```
#[derive(Clone, PartialEq)]
pub struct Auth {
    auth_type: AuthType,
    /// Always an object; kept as a `Value` so validation needs no copy.
    credentials: Value,
}

impl Auth {
    /// Credentials of the given type.
    #[must_use]
    pub fn new(auth_type: AuthType, credentials: Map<String, Value>) -> Self {
        Self {
            auth_type,
            credentials: Value::Object(credentials),
        }
    }

    /// Platform OAuth with an access token.
    #[must_use]
    pub fn bearer(access_token: impl Into<String>) -> Self {
        let mut credentials = Map::new();
        credentials.insert(
            "access_token".to_owned(),
            Value::String(access_token.into()),
        );
        Self::new(AuthType::PlatformOauth2, credentials)
    }

    /// Reads the platform envelope `{"auth_type": ..., "credentials": {...}}`.
    ///
    /// # Errors
    /// [`AuthError::NotAnEnvelope`] unless `value` is an object with a non-empty string
    /// `auth_type` and an object `credentials` (flat credentials are refused, as by the
    /// original since 2.0); [`AuthError::UnknownAuthType`] for an unknown type.
    pub fn from_envelope(value: &Value) -> Result<Self, AuthError> {
        let (Some(Value::String(auth_type)), Some(Value::Object(credentials))) =
            (value.get("auth_type"), value.get("credentials"))
        else {
            return Err(AuthError::NotAnEnvelope);
        };
        if auth_type.is_empty() {
            return Err(AuthError::NotAnEnvelope);
        }
        Ok(Self::new(AuthType::parse(auth_type)?, credentials.clone()))
    }

    /// The envelope form, as the platform sends it.
    #[must_use]
    pub fn to_envelope(&self) -> Value {
        let mut envelope = Map::new();
        envelope.insert(
            "auth_type".to_owned(),
            Value::String(self.auth_type.as_str().to_owned()),
        );
        envelope.insert("credentials".to_owned(), self.credentials.clone());
        Value::Object(envelope)
    }

    /// The auth type.
    #[must_use]
    pub fn auth_type(&self) -> AuthType {
        self.auth_type
    }

    /// All credentials.
    #[must_use]
    pub fn credentials(&self) -> &Map<String, Value> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        self.credentials
            .as_object()
            .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
    }

    /// The credentials as one JSON object, as validated against `auth.fields`.
    pub(crate) fn credentials_value(&self) -> &Value {
        &self.credentials
    }

    /// One credential as text, if it is a string.
    #[must_use]
    pub fn credential(&self, name: &str) -> Option<&str> {
        self.credentials.get(name).and_then(Value::as_str)
    }

    /// `credentials.access_token`, if it is a string.
    #[must_use]
    pub fn access_token(&self) -> Option<&str> {
        self.credential("access_token")
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Names<'a>(&'a Map<String, Value>);
        impl fmt::Debug for Names<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_set().entries(self.0.keys()).finish()
            }
        }
        f.debug_struct("Auth")
            .field("auth_type", &self.auth_type)
            .field("credentials", &Names(self.credentials()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn envelopes() {
        let auth = Auth::from_envelope(
            &json!({"auth_type": "Custom", "credentials": {"api_key": "k-123"}}),
        )
        .unwrap();
        assert_eq!(auth.credential("api_key"), Some("k-123"));
        assert_eq!(
            auth.to_envelope(),
            json!({"auth_type": "Custom", "credentials": {"api_key": "k-123"}})
        );
        let debug = format!("{auth:?}");
        assert!(
            debug.contains("api_key") && !debug.contains("k-123"),
            "{debug}"
        );

        for flat in [
            json!({"api_key": "k"}),
            json!({"auth_type": "", "credentials": {}}),
            json!({"auth_type": "Custom", "credentials": "k"}),
            json!({"auth_type": 3, "credentials": {}}),
            json!("Custom"),
        ] {
            assert_eq!(
                Auth::from_envelope(&flat),
                Err(AuthError::NotAnEnvelope),
                "{flat}"
            );
        }
        assert_eq!(
            Auth::from_envelope(&json!({"auth_type": "OAuth", "credentials": {}})),
            Err(AuthError::UnknownAuthType("OAuth".into()))
        );
    }
}
