//! [`Integration`]: a loaded config plus registered handlers, and dispatch in the original
//! SDK's order (handler → inputs → credentials → run → output), every failure a result.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde_json::{Map, Value};

use crate::config::{IntegrationConfig, LoadOptions};
use crate::context::ExecutionContext;
use crate::error::{ConfigError, RegisterError};
use crate::handler::{
    ActionHandler, CatchPanic, ConnectedAccountHandler, DynAction, DynConnectedAccount, DynPolling,
    HandlerError, PollingTriggerHandler,
};
use crate::result::{
    AUTOHIVE_SDK_VERSION, ErrorResult, IntegrationResult, ResultPayload, ValidationFailure,
    ValidationSource,
};
use crate::schema::{Schema, python_message};

/// An integration: its config and the handlers registered for it.
///
/// ```
/// use serde_json::json;
/// use switchyard_integration::{action_fn, ActionResult, ExecutionContext, Integration, ResultType};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let mut integration = Integration::from_json(r#"{
///     "name": "greeter", "version": "1.0.0", "description": "Says hello",
///     "actions": {"greet": {
///         "description": "Greets someone",
///         "input_schema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
///         "output_schema": {"type": "object", "properties": {"greeting": {"type": "string"}}}
///     }}
/// }"#)?;
/// integration.register_action("greet", action_fn(|inputs, _ctx| async move {
///     let name = inputs["name"].as_str().unwrap_or_default().to_owned();
///     Ok(ActionResult::new(json!({"greeting": format!("Hello, {name}!")})))
/// }))?;
///
/// let ctx = ExecutionContext::new();
/// let ok = integration.execute_action("greet", json!({"name": "Ada"}), &ctx).await;
/// assert_eq!(ok.as_action().unwrap().data, json!({"greeting": "Hello, Ada!"}));
///
/// let bad = integration.execute_action("greet", json!({}), &ctx).await;
/// assert_eq!(bad.result_type(), ResultType::ValidationError);
/// assert_eq!(bad.as_validation_error().unwrap().property.as_deref(), Some("/name"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct Integration {
    config: IntegrationConfig,
    actions: BTreeMap<String, Box<dyn DynAction>>,
    polling: BTreeMap<String, Box<dyn DynPolling>>,
    connected_account: Option<Box<dyn DynConnectedAccount>>,
    result_version: String,
}

impl fmt::Debug for Integration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Integration")
            .field("name", &self.config.name)
            .field("actions", &self.actions.keys().collect::<Vec<_>>())
            .field("polling_triggers", &self.polling.keys().collect::<Vec<_>>())
            .field("connected_account", &self.connected_account.is_some())
            .finish_non_exhaustive()
    }
}

/// What a polling-trigger dispatch produced.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PollOutcome {
    /// The records, each an object with `id` and a `data` that matched the output schema.
    Records(Vec<Map<String, Value>>),
    /// A `validation_error` or `error` result saying why there are no records.
    Failed(IntegrationResult),
}

impl PollOutcome {
    /// The records, or the failure.
    ///
    /// # Errors
    /// The failure result, when the poll failed.
    pub fn into_result(self) -> Result<Vec<Map<String, Value>>, Box<IntegrationResult>> {
        match self {
            Self::Records(records) => Ok(records),
            Self::Failed(result) => Err(Box::new(result)),
        }
    }
}

/// What [`Integration::check`] found missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckReport {
    /// Actions in the config with no registered handler.
    pub actions_without_handler: Vec<String>,
    /// Polling triggers in the config with no registered handler.
    pub polling_triggers_without_handler: Vec<String>,
    /// The config says `supports_connected_account` but no handler is registered.
    pub connected_account_missing: bool,
}

impl CheckReport {
    /// Whether everything the config defines has a handler.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.actions_without_handler.is_empty()
            && self.polling_triggers_without_handler.is_empty()
            && !self.connected_account_missing
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_complete() {
            return f.write_str("every action and polling trigger has a handler");
        }
        let mut parts = Vec::new();
        if !self.actions_without_handler.is_empty() {
            parts.push(format!(
                "actions without a handler: {}",
                self.actions_without_handler.join(", ")
            ));
        }
        if !self.polling_triggers_without_handler.is_empty() {
            parts.push(format!(
                "polling triggers without a handler: {}",
                self.polling_triggers_without_handler.join(", ")
            ));
        }
        if self.connected_account_missing {
            parts.push(
                "supports_connected_account is true but no connected-account handler is registered"
                    .to_owned(),
            );
        }
        f.write_str(&parts.join("; "))
    }
}

impl Integration {
    /// Loads the `config.json` at `path` (`format` not enforced).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the file and the JSON path of the problem.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        Self::load_with(path, &LoadOptions::default())
    }

    /// Loads the `config.json` at `path` with options.
    ///
    /// # Errors
    /// As [`Integration::load`].
    pub fn load_with(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Self, ConfigError> {
        IntegrationConfig::load(path, options).map(Self::new)
    }

    /// An integration from config text (reported as `config.json` in errors).
    ///
    /// # Errors
    /// As [`Integration::load`], except for I/O.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        IntegrationConfig::from_json(text, "config.json", &LoadOptions::default()).map(Self::new)
    }

    /// An integration over a loaded config, with no handlers yet.
    #[must_use]
    pub fn new(config: IntegrationConfig) -> Self {
        Self {
            config,
            actions: BTreeMap::new(),
            polling: BTreeMap::new(),
            connected_account: None,
            result_version: AUTOHIVE_SDK_VERSION.to_owned(),
        }
    }

    /// The config.
    #[must_use]
    pub fn config(&self) -> &IntegrationConfig {
        &self.config
    }

    /// Sets the `version` written into every result (default [`AUTOHIVE_SDK_VERSION`]).
    pub fn set_result_version(&mut self, version: impl Into<String>) -> &mut Self {
        self.result_version = version.into();
        self
    }

    /// Registers the handler of the action `name`, replacing any earlier one.
    ///
    /// # Errors
    /// [`RegisterError::UnknownAction`] when the config defines no such action.
    pub fn register_action(
        &mut self,
        name: &str,
        handler: impl ActionHandler,
    ) -> Result<&mut Self, RegisterError> {
        if !self.config.actions.contains_key(name) {
            return Err(RegisterError::UnknownAction {
                name: name.to_owned(),
                suggestion: closest(name, self.config.actions.keys()),
            });
        }
        self.actions.insert(name.to_owned(), Box::new(handler));
        Ok(self)
    }

    /// Registers the handler of the polling trigger `name`, replacing any earlier one.
    ///
    /// # Errors
    /// [`RegisterError::UnknownPollingTrigger`] when the config defines no such trigger.
    pub fn register_polling_trigger(
        &mut self,
        name: &str,
        handler: impl PollingTriggerHandler,
    ) -> Result<&mut Self, RegisterError> {
        if !self.config.polling_triggers.contains_key(name) {
            return Err(RegisterError::UnknownPollingTrigger {
                name: name.to_owned(),
                suggestion: closest(name, self.config.polling_triggers.keys()),
            });
        }
        self.polling.insert(name.to_owned(), Box::new(handler));
        Ok(self)
    }

    /// Registers the connected-account handler, replacing any earlier one.
    pub fn register_connected_account(
        &mut self,
        handler: impl ConnectedAccountHandler,
    ) -> &mut Self {
        if !self.config.supports_connected_account {
            tracing::warn!(
                integration = %self.config.name,
                "a connected-account handler is registered but the config does not set supports_connected_account"
            );
        }
        self.connected_account = Some(Box::new(handler));
        self
    }

    /// What the config defines that has no handler.
    #[must_use]
    pub fn check(&self) -> CheckReport {
        CheckReport {
            actions_without_handler: self
                .config
                .actions
                .keys()
                .filter(|name| !self.actions.contains_key(*name))
                .cloned()
                .collect(),
            polling_triggers_without_handler: self
                .config
                .polling_triggers
                .keys()
                .filter(|name| !self.polling.contains_key(*name))
                .cloned()
                .collect(),
            connected_account_missing: self.config.supports_connected_account
                && self.connected_account.is_none(),
        }
    }

    /// Runs the action `name`: handler registered → inputs valid → credentials valid against
    /// `auth.fields` → run → (an [`ActionError`](crate::ActionError) becomes `action_error`)
    /// → output valid → `action`. Every failure is a result: `validation_error` for the
    /// checks, `error` for a handler that failed otherwise or panicked.
    pub async fn execute_action(
        &self,
        name: &str,
        inputs: Value,
        ctx: &ExecutionContext,
    ) -> IntegrationResult {
        let (Some(handler), Some(action)) = (self.actions.get(name), self.config.actions.get(name))
        else {
            return self.validation(
                format!("Action '{name}' not registered"),
                ValidationSource::Legacy,
            );
        };
        if let Err(failure) = check(&action.input_schema, &inputs, ValidationSource::Input) {
            return self.result(ResultPayload::ValidationError(failure));
        }
        if let Err(failure) = self.check_auth(ctx) {
            return self.result(ResultPayload::ValidationError(failure));
        }
        let outcome = CatchPanic::new(handler.call(inputs, ctx)).await;
        let output = match outcome {
            Ok(Ok(output)) => output,
            Ok(Err(HandlerError::Action(error))) => {
                return self.result(ResultPayload::ActionError(error));
            }
            Ok(Err(error)) => return self.error(format!("action '{name}' failed: {error}")),
            Err(panic) => return self.error(format!("handler panicked: {panic}")),
        };
        if let Err(failure) = check(
            &action.output_schema,
            &output.data,
            ValidationSource::Output,
        ) {
            return self.result(ResultPayload::ValidationError(failure));
        }
        self.result(ResultPayload::Action(output))
    }

    /// Runs the polling trigger `name`: handler registered → inputs valid → credentials valid
    /// → poll → every record has `id` and `data`, and `data` matches the output schema (the
    /// same Draft 7 validator as actions, where the original mixes drafts).
    pub async fn execute_polling_trigger(
        &self,
        name: &str,
        inputs: Value,
        last_poll_ts: Option<&str>,
        ctx: &ExecutionContext,
    ) -> PollOutcome {
        let (Some(handler), Some(trigger)) = (
            self.polling.get(name),
            self.config.polling_triggers.get(name),
        ) else {
            return PollOutcome::Failed(self.validation(
                format!("Polling trigger '{name}' not registered"),
                ValidationSource::Legacy,
            ));
        };
        if let Err(failure) = check(&trigger.input_schema, &inputs, ValidationSource::Input) {
            return PollOutcome::Failed(self.result(ResultPayload::ValidationError(failure)));
        }
        if let Err(failure) = self.check_auth(ctx) {
            return PollOutcome::Failed(self.result(ResultPayload::ValidationError(failure)));
        }
        let records = match CatchPanic::new(handler.call(inputs, last_poll_ts, ctx)).await {
            Ok(Ok(records)) => records,
            Ok(Err(error)) => {
                return PollOutcome::Failed(
                    self.error(format!("polling trigger '{name}' failed: {error}")),
                );
            }
            Err(panic) => {
                return PollOutcome::Failed(self.error(format!("handler panicked: {panic}")));
            }
        };
        for (index, record) in records.iter().enumerate() {
            for field in ["id", "data"] {
                if !record.contains_key(field) {
                    return PollOutcome::Failed(self.result(ResultPayload::ValidationError(
                        ValidationFailure {
                            message: format!(
                                "Polling trigger '{name}' returned record without required '{field}' field"
                            ),
                            property: Some(format!("/{index}/{field}")),
                            value: Value::Null,
                            source: ValidationSource::Output,
                        },
                    )));
                }
            }
            let data = &record["data"];
            if let Err(mut failure) = check(&trigger.output_schema, data, ValidationSource::Output)
            {
                failure.property = failure
                    .property
                    .map(|pointer| format!("/{index}/data{pointer}"));
                return PollOutcome::Failed(self.result(ResultPayload::ValidationError(failure)));
            }
        }
        PollOutcome::Records(records)
    }

    /// Runs the connected-account handler: registered → credentials valid → run →
    /// `connected_account`.
    pub async fn get_connected_account(&self, ctx: &ExecutionContext) -> IntegrationResult {
        let Some(handler) = &self.connected_account else {
            return self.validation(
                "No connected account handler registered".to_owned(),
                ValidationSource::Legacy,
            );
        };
        if let Err(failure) = self.check_auth(ctx) {
            return self.result(ResultPayload::ValidationError(failure));
        }
        match CatchPanic::new(handler.call(ctx)).await {
            Ok(Ok(info)) => self.result(ResultPayload::ConnectedAccount(info)),
            Ok(Err(error)) => self.error(format!("connected account lookup failed: {error}")),
            Err(panic) => self.error(format!("handler panicked: {panic}")),
        }
    }

    /// Checks the context's credentials against `auth.fields`, when the config has one. The
    /// failing value is never echoed: it may be a secret.
    fn check_auth(&self, ctx: &ExecutionContext) -> Result<(), ValidationFailure> {
        let Some(fields) = self.config.auth.as_ref().and_then(|a| a.fields.as_ref()) else {
            return Ok(());
        };
        let Some(auth) = ctx.auth() else {
            return Err(ValidationFailure {
                // The original's words, so platforms matching on them keep working.
                message: "context.auth must be the platform auth envelope \
                          {\"auth_type\": ..., \"credentials\": {...}} with a non-empty \
                          auth_type; flat auth is not supported."
                    .to_owned(),
                property: None,
                value: Value::Null,
                source: ValidationSource::Auth,
            });
        };
        check(fields, auth.credentials_value(), ValidationSource::Auth)
    }

    fn result(&self, payload: ResultPayload) -> IntegrationResult {
        IntegrationResult {
            version: self.result_version.clone(),
            payload,
        }
    }

    fn validation(&self, message: String, source: ValidationSource) -> IntegrationResult {
        self.result(ResultPayload::ValidationError(ValidationFailure {
            message,
            property: None,
            value: Value::Null,
            source,
        }))
    }

    fn error(&self, message: String) -> IntegrationResult {
        tracing::warn!(integration = %self.config.name, %message, "handler failed");
        self.result(ResultPayload::Error(ErrorResult { message }))
    }
}

/// Validates with the fast check first; builds the report only on failure.
fn check(
    schema: &Schema,
    value: &Value,
    source: ValidationSource,
) -> Result<(), ValidationFailure> {
    if schema.is_valid(value) {
        return Ok(());
    }
    // Credentials are secrets: their values stay out of messages and results.
    let violations = if source == ValidationSource::Auth {
        schema.violations_redacted(value)
    } else {
        schema.violations(value)
    };
    let first = violations.first();
    Err(ValidationFailure {
        message: python_message(&violations),
        property: first.map(|v| v.pointer.clone()),
        value: first.map(|v| v.value.clone()).unwrap_or(Value::Null),
        source,
    })
}

/// The defined name closest to `name`, if it is close enough to be a likely typo.
fn closest<'a>(name: &str, defined: impl Iterator<Item = &'a String>) -> Option<String> {
    let limit = (name.chars().count() / 3).max(2);
    defined
        .map(|candidate| (edit_distance(name, candidate), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate.clone())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typo_suggestions() {
        let names = ["create_task".to_owned(), "list_tasks".to_owned()];
        assert_eq!(
            closest("create_tsak", names.iter()).as_deref(),
            Some("create_task")
        );
        assert_eq!(
            closest("list_task", names.iter()).as_deref(),
            Some("list_tasks")
        );
        assert_eq!(closest("delete_everything", names.iter()), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
