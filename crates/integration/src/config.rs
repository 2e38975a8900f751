//! Loading an integration's `config.json` (the Autohive format): metadata, auth, actions and
//! polling triggers, with every schema compiled once and every problem named by file and path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::{ConfigError, IntervalError};
use crate::schema::Schema;

/// How to load a config.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct LoadOptions {
    /// Treat the JSON Schema `format` keyword as an assertion (`"format": "email"` rejects
    /// strings that are not addresses). Default `false`: as in the original SDK, `format` is an
    /// annotation only. Formats the validator does not know (`"password"`) never fail.
    pub validate_formats: bool,
}

impl LoadOptions {
    /// The defaults: `format` is not enforced.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`LoadOptions::validate_formats`].
    #[must_use]
    pub fn validate_formats(mut self, yes: bool) -> Self {
        self.validate_formats = yes;
        self
    }
}

/// A loaded and checked `config.json`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IntegrationConfig {
    /// Where it was loaded from (or the name given to [`IntegrationConfig::from_json`]).
    pub file: PathBuf,
    /// `name`: the integration's identifier.
    pub name: String,
    /// `version`.
    pub version: String,
    /// `description`.
    pub description: String,
    /// `display_name`, when given (two of the 97 real configs omit it).
    pub display_name: Option<String>,
    /// `entry_point`, the module the platform runs (the original SDK does not read it either).
    pub entry_point: Option<String>,
    /// `supports_billing` (default `false`): actions may report `cost_usd`.
    pub supports_billing: bool,
    /// `supports_connected_account` (default `false`): the integration has a connected-account
    /// handler.
    pub supports_connected_account: bool,
    /// `auth`; `None` when absent or an empty object.
    pub auth: Option<AuthConfig>,
    /// `actions`, by name.
    pub actions: BTreeMap<String, Action>,
    /// `polling_triggers`, by name.
    pub polling_triggers: BTreeMap<String, PollingTrigger>,
    /// Legacy quirks that were accepted and repaired, each also logged as a `tracing` warning.
    pub warnings: Vec<LoadWarning>,
}

/// A legacy quirk found while loading (and repaired), such as `"required": false` inside a
/// property schema.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadWarning {
    /// The JSON path of the quirk.
    pub path: String,
    /// What it was and what was done.
    pub message: String,
}

/// The `auth` section.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AuthConfig {
    /// `type`.
    pub kind: AuthKind,
    /// `provider`, for platform OAuth (`"Google"`, `"HubSpot"`, ...).
    pub provider: Option<String>,
    /// `scopes` requested from the provider.
    pub scopes: Vec<String>,
    /// `fields`: the schema of the credentials a user enters (custom auth). When present,
    /// every dispatch checks the context's credentials against it.
    pub fields: Option<Schema>,
    /// `title`, shown above the credential form.
    pub title: Option<String>,
    /// `identifier` of the credential set.
    pub identifier: Option<String>,
    /// The section as written, for keys this type does not model (`use_pkce`, ...).
    pub raw: Map<String, Value>,
}

/// `auth.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthKind {
    /// `"platform"`: the platform runs the OAuth flow and passes an access token.
    Platform,
    /// `"custom"`: the user enters the credentials described by `fields`.
    Custom,
    /// `"oauth2_pkce"`: OAuth 2.0 with PKCE.
    OAuth2Pkce,
}

impl AuthKind {
    /// The spelling in `config.json`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Platform => "platform",
            Self::Custom => "custom",
            Self::OAuth2Pkce => "oauth2_pkce",
        }
    }
}

/// One entry of `actions`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Action {
    /// Its key in `actions`.
    pub name: String,
    /// `display_name`.
    pub display_name: Option<String>,
    /// `description`.
    pub description: String,
    /// `input_schema`, checked before the handler runs.
    pub input_schema: Schema,
    /// `output_schema`, checked against the handler's `data`.
    pub output_schema: Schema,
}

/// One entry of `polling_triggers`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PollingTrigger {
    /// Its key in `polling_triggers`.
    pub name: String,
    /// `display_name`.
    pub display_name: Option<String>,
    /// `description`.
    pub description: String,
    /// `polling_interval` (`"30s"`, `"5m"`, `"1h"`, `"1d"`).
    pub polling_interval: Duration,
    /// `input_schema`.
    pub input_schema: Schema,
    /// `output_schema`, checked against each record's `data`.
    pub output_schema: Schema,
}

impl IntegrationConfig {
    /// Reads and checks the config at `path`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the file and, inside it, the JSON path of the problem.
    pub fn load(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Self, ConfigError> {
        let file = path.as_ref().to_path_buf();
        let text = std::fs::read_to_string(&file).map_err(|source| ConfigError::Io {
            file: file.clone(),
            source,
        })?;
        Self::from_json(&text, file, options)
    }

    /// Checks a config given as text; `file` is only used in messages.
    ///
    /// # Errors
    /// As [`IntegrationConfig::load`], except for I/O.
    pub fn from_json(
        text: &str,
        file: impl Into<PathBuf>,
        options: &LoadOptions,
    ) -> Result<Self, ConfigError> {
        let file = file.into();
        let document: Value = serde_json::from_str(text).map_err(|error| ConfigError::Json {
            file: file.clone(),
            line: error.line(),
            column: error.column(),
            message: error.to_string(),
        })?;
        let mut loader = Loader {
            file,
            options,
            warnings: Vec::new(),
        };
        loader.config(document)
    }
}

/// Parses `"30s"`, `"5m"`, `"1h"`, `"1d"`: a positive whole number and a unit (the unit may be
/// upper case, as the original lower-cases it).
///
/// ```
/// use std::time::Duration;
/// use switchyard_integration::parse_interval;
///
/// assert_eq!(parse_interval("5m"), Ok(Duration::from_secs(300)));
/// assert!(parse_interval("1.5h").is_err());
/// ```
///
/// # Errors
/// An [`IntervalError`] saying what is wrong.
pub fn parse_interval(text: &str) -> Result<Duration, IntervalError> {
    let Some(unit) = text.chars().last() else {
        return Err(IntervalError::Empty);
    };
    let seconds_per_unit: u64 = match unit.to_ascii_lowercase() {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        _ => return Err(IntervalError::MissingUnit),
    };
    let amount = &text[..text.len() - unit.len_utf8()];
    if amount.is_empty() || !amount.bytes().all(|b| b.is_ascii_digit()) {
        return Err(IntervalError::NotAWholeNumber);
    }
    let amount: u64 = amount.parse().map_err(|_| IntervalError::TooLong)?;
    if amount == 0 {
        return Err(IntervalError::Zero);
    }
    amount
        .checked_mul(seconds_per_unit)
        .map(Duration::from_secs)
        .ok_or(IntervalError::TooLong)
}

/// Appends `key` to a JSON path: `.key` for plain identifiers, `[3]` for array indexes (all
/// digits), `["key"]` otherwise.
pub(crate) fn child(path: &str, key: &str) -> String {
    if !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit()) {
        return format!("{path}[{key}]");
    }
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !key.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        format!("{path}.{key}")
    } else {
        let quoted = serde_json::to_string(key).unwrap_or_else(|_| format!("{key:?}"));
        format!("{path}[{quoted}]")
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

struct Loader<'a> {
    file: PathBuf,
    options: &'a LoadOptions,
    warnings: Vec<LoadWarning>,
}

impl Loader<'_> {
    fn config(&mut self, document: Value) -> Result<IntegrationConfig, ConfigError> {
        let mut root = self.object(document, "$")?;
        let name = self.required_string(&mut root, "$", "name")?;
        let version = self.required_string(&mut root, "$", "version")?;
        let description = self.required_string(&mut root, "$", "description")?;
        let display_name = self.optional_string(&mut root, "$", "display_name")?;
        let entry_point = self.optional_string(&mut root, "$", "entry_point")?;
        let supports_billing = self.optional_bool(&mut root, "$", "supports_billing")?;
        let supports_connected_account =
            self.optional_bool(&mut root, "$", "supports_connected_account")?;
        let auth = match root.remove("auth") {
            None | Some(Value::Null) => None,
            Some(value) => self.auth(value)?,
        };
        let mut actions = BTreeMap::new();
        if let Some(value) = root.remove("actions") {
            for (action_name, entry) in self.object(value, "$.actions")? {
                let path = child("$.actions", &action_name);
                let mut entry = self.object(entry, &path)?;
                let action = Action {
                    display_name: self.optional_string(&mut entry, &path, "display_name")?,
                    description: self.required_string(&mut entry, &path, "description")?,
                    input_schema: self.schema(&mut entry, &path, "input_schema")?,
                    output_schema: self.schema(&mut entry, &path, "output_schema")?,
                    name: action_name.clone(),
                };
                actions.insert(action_name, action);
            }
        }
        let mut polling_triggers = BTreeMap::new();
        if let Some(value) = root.remove("polling_triggers") {
            for (trigger_name, entry) in self.object(value, "$.polling_triggers")? {
                let path = child("$.polling_triggers", &trigger_name);
                let mut entry = self.object(entry, &path)?;
                let interval = self.required_string(&mut entry, &path, "polling_interval")?;
                let polling_interval =
                    parse_interval(&interval).map_err(|reason| ConfigError::BadInterval {
                        file: self.file.clone(),
                        path: child(&path, "polling_interval"),
                        value: interval.clone(),
                        reason,
                    })?;
                let trigger = PollingTrigger {
                    display_name: self.optional_string(&mut entry, &path, "display_name")?,
                    description: self.required_string(&mut entry, &path, "description")?,
                    polling_interval,
                    input_schema: self.schema(&mut entry, &path, "input_schema")?,
                    output_schema: self.schema(&mut entry, &path, "output_schema")?,
                    name: trigger_name.clone(),
                };
                polling_triggers.insert(trigger_name, trigger);
            }
        }
        Ok(IntegrationConfig {
            file: self.file.clone(),
            name,
            version,
            description,
            display_name,
            entry_point,
            supports_billing,
            supports_connected_account,
            auth,
            actions,
            polling_triggers,
            warnings: std::mem::take(&mut self.warnings),
        })
    }

    fn auth(&mut self, value: Value) -> Result<Option<AuthConfig>, ConfigError> {
        let path = "$.auth";
        let mut section = self.object(value, path)?;
        if section.is_empty() {
            return Ok(None);
        }
        let raw = section.clone();
        let kind_text = self.required_string(&mut section, path, "type")?;
        let kind = match kind_text.as_str() {
            "platform" => AuthKind::Platform,
            "custom" => AuthKind::Custom,
            "oauth2_pkce" => AuthKind::OAuth2Pkce,
            other => {
                return Err(ConfigError::InvalidValue {
                    file: self.file.clone(),
                    path: child(path, "type"),
                    message: format!(
                        "unknown auth type {other:?}; expected \"platform\", \"custom\" or \"oauth2_pkce\""
                    ),
                });
            }
        };
        let scopes = match section.remove("scopes") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => {
                let mut scopes = Vec::with_capacity(items.len());
                for (index, item) in items.into_iter().enumerate() {
                    match item {
                        Value::String(scope) => scopes.push(scope),
                        other => {
                            return Err(self.wrong_type(
                                format!("$.auth.scopes[{index}]"),
                                "a string",
                                &other,
                            ));
                        }
                    }
                }
                scopes
            }
            Some(other) => return Err(self.wrong_type(child(path, "scopes"), "an array", &other)),
        };
        let fields = if section.contains_key("fields") {
            Some(self.schema(&mut section, path, "fields")?)
        } else {
            None
        };
        Ok(Some(AuthConfig {
            kind,
            provider: self.optional_string(&mut section, path, "provider")?,
            scopes,
            fields,
            title: self.optional_string(&mut section, path, "title")?,
            identifier: self.optional_string(&mut section, path, "identifier")?,
            raw,
        }))
    }

    fn schema(
        &mut self,
        object: &mut Map<String, Value>,
        path: &str,
        key: &'static str,
    ) -> Result<Schema, ConfigError> {
        let Some(raw) = object.remove(key) else {
            return Err(self.missing(path, key));
        };
        let schema_path = child(path, key);
        if !raw.is_object() && !raw.is_boolean() {
            return Err(self.wrong_type(schema_path, "a JSON Schema (an object)", &raw));
        }
        match Schema::compile(raw, self.options.validate_formats) {
            Ok((schema, repairs)) => {
                for repair in repairs {
                    let path = repair
                        .segments
                        .iter()
                        .fold(schema_path.clone(), |path, segment| child(&path, segment));
                    tracing::warn!(file = %self.file.display(), %path, "{}", repair.message);
                    self.warnings.push(LoadWarning {
                        path,
                        message: repair.message,
                    });
                }
                Ok(schema)
            }
            Err(error) => Err(ConfigError::BadSchema {
                file: self.file.clone(),
                path: error
                    .segments
                    .iter()
                    .fold(schema_path, |path, segment| child(&path, segment)),
                message: error.message,
            }),
        }
    }

    fn object(&self, value: Value, path: &str) -> Result<Map<String, Value>, ConfigError> {
        match value {
            Value::Object(map) => Ok(map),
            other => Err(self.wrong_type(path.to_owned(), "an object", &other)),
        }
    }

    fn required_string(
        &self,
        object: &mut Map<String, Value>,
        path: &str,
        key: &'static str,
    ) -> Result<String, ConfigError> {
        match object.remove(key) {
            None => Err(self.missing(path, key)),
            Some(Value::String(text)) => Ok(text),
            Some(other) => Err(self.wrong_type(child(path, key), "a string", &other)),
        }
    }

    fn optional_string(
        &self,
        object: &mut Map<String, Value>,
        path: &str,
        key: &'static str,
    ) -> Result<Option<String>, ConfigError> {
        match object.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(self.wrong_type(child(path, key), "a string", &other)),
        }
    }

    fn optional_bool(
        &self,
        object: &mut Map<String, Value>,
        path: &str,
        key: &'static str,
    ) -> Result<bool, ConfigError> {
        match object.remove(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(flag)) => Ok(flag),
            Some(other) => Err(self.wrong_type(child(path, key), "a boolean", &other)),
        }
    }

    fn missing(&self, path: &str, key: &'static str) -> ConfigError {
        ConfigError::MissingKey {
            file: self.file.clone(),
            path: path.to_owned(),
            key,
        }
    }

    fn wrong_type(&self, path: String, expected: &'static str, found: &Value) -> ConfigError {
        ConfigError::WrongType {
            file: self.file.clone(),
            path,
            expected,
            found: type_name(found),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_interval("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_interval("1h"), Ok(Duration::from_secs(3_600)));
        assert_eq!(parse_interval("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_interval("2H"), Ok(Duration::from_secs(7_200)));
        assert_eq!(parse_interval(""), Err(IntervalError::Empty));
        assert_eq!(parse_interval("5"), Err(IntervalError::MissingUnit));
        assert_eq!(parse_interval("5w"), Err(IntervalError::MissingUnit));
        assert_eq!(parse_interval("1.5h"), Err(IntervalError::NotAWholeNumber));
        assert_eq!(parse_interval("-5m"), Err(IntervalError::NotAWholeNumber));
        assert_eq!(parse_interval("+5m"), Err(IntervalError::NotAWholeNumber));
        assert_eq!(parse_interval(" 5m"), Err(IntervalError::NotAWholeNumber));
        assert_eq!(parse_interval("m"), Err(IntervalError::NotAWholeNumber));
        assert_eq!(parse_interval("0s"), Err(IntervalError::Zero));
        assert_eq!(parse_interval("00m"), Err(IntervalError::Zero));
        assert_eq!(
            parse_interval("99999999999999999999d"),
            Err(IntervalError::TooLong)
        );
        assert_eq!(
            parse_interval("999999999999999999d"),
            Err(IntervalError::TooLong)
        );
        assert_eq!(parse_interval("5é"), Err(IntervalError::MissingUnit));
    }

    #[test]
    fn json_paths() {
        assert_eq!(child("$", "actions"), "$.actions");
        assert_eq!(child("$.actions", "get.user"), "$.actions[\"get.user\"]");
        assert_eq!(child("$.a", "0"), "$.a[0]");
        assert_eq!(child("$.a", "9x"), "$.a[\"9x\"]");
        assert_eq!(child("$.a", "x-y_z1"), "$.a.x-y_z1");
    }
}
