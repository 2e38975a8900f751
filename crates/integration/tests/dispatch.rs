//! Dispatch: registration rules, the original's order of checks, every result type and its
//! exact JSON, polling-record checks, connected accounts, and panics turned into results.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Map, Value, json};
use switchyard_integration::{
    ActionError, ActionResult, Auth, AuthType, ConnectedAccountInfo, ExecutionContext,
    HandlerError, Integration, PollOutcome, RegisterError, ResultType, ValidationSource, action_fn,
    connected_account_fn, polling_fn,
};

const CONFIG: &str = r#"{
  "name": "tasks", "version": "1.2.0", "description": "Task tracker",
  "supports_connected_account": true,
  "auth": {"type": "custom", "fields": {
      "type": "object",
      "properties": {"api_key": {"type": "string", "minLength": 8}},
      "required": ["api_key"]}},
  "actions": {
    "create_task": {"description": "Creates a task",
      "input_schema": {"type": "object",
        "properties": {"title": {"type": "string"}, "priority": {"type": "integer", "minimum": 1}},
        "required": ["title"]},
      "output_schema": {"type": "object",
        "properties": {"id": {"type": "integer"}}, "required": ["id"]}},
    "delete_task": {"description": "Deletes a task",
      "input_schema": {"type": "object"}, "output_schema": {"type": "object"}}
  },
  "polling_triggers": {
    "new_tasks": {"description": "New tasks", "polling_interval": "1m",
      "input_schema": {"type": "object", "properties": {"project": {"type": "string"}}},
      "output_schema": {"type": "object", "required": ["title"]}}
  }
}"#;

fn integration() -> Integration {
    Integration::from_json(CONFIG).expect("config loads")
}

fn ctx() -> ExecutionContext {
    let mut credentials = Map::new();
    credentials.insert("api_key".into(), json!("k-12345678"));
    ExecutionContext::builder()
        .auth(Auth::new(AuthType::Custom, credentials))
        .build()
}

fn create_task_returning(output: Value, calls: Arc<AtomicUsize>) -> Integration {
    let mut integration = integration();
    integration
        .register_action(
            "create_task",
            action_fn(move |_inputs, _ctx| {
                let output = output.clone();
                let calls = Arc::clone(&calls);
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Ok(ActionResult::new(output))
                }
            }),
        )
        .expect("defined");
    integration
}

#[test]
fn registering_an_undefined_name_is_an_error_with_a_hint() {
    let mut integration = integration();
    let error = integration
        .register_action(
            "create_tsak",
            action_fn(|_, _| async { Ok(ActionResult::new(json!({}))) }),
        )
        .expect_err("undefined");
    assert_eq!(
        error,
        RegisterError::UnknownAction {
            name: "create_tsak".into(),
            suggestion: Some("create_task".into())
        }
    );
    assert!(error.to_string().contains("did you mean `create_task`?"));
    let error = integration
        .register_polling_trigger("old_tasks", polling_fn(|_, _, _| async { Ok(Vec::new()) }))
        .expect_err("undefined");
    assert!(matches!(error, RegisterError::UnknownPollingTrigger { .. }));
}

#[test]
fn check_reports_what_has_no_handler() {
    let mut integration = integration();
    let report = integration.check();
    assert_eq!(
        report.actions_without_handler,
        ["create_task", "delete_task"]
    );
    assert_eq!(report.polling_triggers_without_handler, ["new_tasks"]);
    assert!(report.connected_account_missing);
    assert!(!report.is_complete());
    assert!(
        report.to_string().contains("create_task, delete_task"),
        "{report}"
    );

    integration
        .register_action(
            "create_task",
            action_fn(|_, _| async { Ok(ActionResult::new(json!({"id": 1}))) }),
        )
        .and_then(|i| {
            i.register_action(
                "delete_task",
                action_fn(|_, _| async { Ok(ActionResult::new(json!({}))) }),
            )
        })
        .and_then(|i| {
            i.register_polling_trigger("new_tasks", polling_fn(|_, _, _| async { Ok(Vec::new()) }))
        })
        .expect("all defined");
    integration.register_connected_account(connected_account_fn(|_| async {
        Ok(ConnectedAccountInfo::new())
    }));
    assert!(integration.check().is_complete());
}

#[tokio::test]
async fn a_successful_action_serialises_like_the_original() {
    let calls = Arc::new(AtomicUsize::new(0));
    let integration = create_task_returning(json!({"id": 42}), Arc::clone(&calls));
    let result = integration
        .execute_action("create_task", json!({"title": "Write tests"}), &ctx())
        .await;
    assert_eq!(
        serde_json::to_string(&result).expect("serialises"),
        r#"{"version":"2.0.1","type":"action","result":{"data":{"id":42},"cost_usd":null}}"#
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn unregistered_actions_come_first() {
    let integration = integration();
    let result = integration
        .execute_action(
            "create_task",
            json!("not even an object"),
            &ExecutionContext::new(),
        )
        .await;
    assert_eq!(
        serde_json::to_value(&result).expect("serialises"),
        json!({"version": "2.0.1", "type": "validation_error", "result": {
            "message": "Action 'create_task' not registered", "property": null, "value": null,
            "source": "legacy"}})
    );
}

#[tokio::test]
async fn invalid_inputs_stop_before_auth_and_the_handler() {
    let calls = Arc::new(AtomicUsize::new(0));
    let integration = create_task_returning(json!({"id": 1}), Arc::clone(&calls));
    // No credentials either: inputs are checked first, as in the original.
    let result = integration
        .execute_action(
            "create_task",
            json!({"title": "t", "priority": 0}),
            &ExecutionContext::new(),
        )
        .await;
    let failure = result.as_validation_error().expect("validation error");
    assert_eq!(failure.source, ValidationSource::Input);
    assert_eq!(failure.property.as_deref(), Some("/priority"));
    assert_eq!(failure.value, json!(0));
    assert!(
        failure
            .message
            .starts_with("['properties', 'priority', 'minimum'], 0 is less than the minimum of 1"),
        "{}",
        failure.message
    );
    assert!(failure.message.ends_with(",\n "));

    // Several violations are all listed, ordered by where they are.
    let result = integration
        .execute_action("create_task", json!({"priority": "high"}), &ctx())
        .await;
    let failure = result.as_validation_error().expect("validation error");
    assert_eq!(failure.property.as_deref(), Some("/priority"));
    assert_eq!(
        failure.message.matches(",\n ").count(),
        2,
        "{}",
        failure.message
    );
    assert!(
        failure.message.contains("['required']"),
        "{}",
        failure.message
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn credentials_are_checked_and_never_echoed() {
    let calls = Arc::new(AtomicUsize::new(0));
    let integration = create_task_returning(json!({"id": 1}), Arc::clone(&calls));
    let inputs = json!({"title": "t"});

    let result = integration
        .execute_action("create_task", inputs.clone(), &ExecutionContext::new())
        .await;
    let failure = result.as_validation_error().expect("validation error");
    assert_eq!(failure.source, ValidationSource::Auth);
    assert!(
        failure
            .message
            .starts_with("context.auth must be the platform auth envelope"),
        "{}",
        failure.message
    );

    let short = ExecutionContext::builder()
        .auth_envelope(&json!({"auth_type": "Custom", "credentials": {"api_key": "s3cr3t"}}))
        .expect("envelope")
        .build();
    let result = integration
        .execute_action("create_task", inputs.clone(), &short)
        .await;
    let failure = result.as_validation_error().expect("validation error");
    assert_eq!(failure.source, ValidationSource::Auth);
    assert_eq!(failure.property.as_deref(), Some("/api_key"));
    assert_eq!(failure.value, Value::Null);
    let text = serde_json::to_string(&result).expect("serialises");
    assert!(!text.contains("s3cr3t"), "{text}");
    assert!(
        failure.message.contains("[redacted]"),
        "{}",
        failure.message
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    let result = integration
        .execute_action("create_task", inputs, &ctx())
        .await;
    assert_eq!(result.result_type(), ResultType::Action);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn invalid_output_is_a_validation_error_from_the_output() {
    let integration =
        create_task_returning(json!({"id": "not a number"}), Arc::new(AtomicUsize::new(0)));
    let result = integration
        .execute_action("create_task", json!({"title": "t"}), &ctx())
        .await;
    let failure = result.as_validation_error().expect("validation error");
    assert_eq!(failure.source, ValidationSource::Output);
    assert_eq!(failure.property.as_deref(), Some("/id"));
    assert_eq!(failure.value, json!("not a number"));
}

#[tokio::test]
async fn action_errors_skip_output_validation() {
    let mut integration = integration();
    integration
        .register_action(
            "create_task",
            action_fn(|_, _| async {
                Err(ActionError::new("Project is archived")
                    .with_cost(0.01)
                    .into())
            }),
        )
        .expect("defined");
    let result = integration
        .execute_action("create_task", json!({"title": "t"}), &ctx())
        .await;
    assert_eq!(
        serde_json::to_value(&result).expect("serialises"),
        json!({"version": "2.0.1", "type": "action_error",
               "result": {"message": "Project is archived", "cost_usd": 0.01}})
    );
}

#[tokio::test]
async fn failures_and_panics_are_error_results() {
    let mut integration = integration();
    integration
        .register_action(
            "create_task",
            action_fn(|_, _| async { Err(HandlerError::failed("database unavailable")) }),
        )
        .expect("defined")
        .register_action(
            "delete_task",
            action_fn(|inputs, _| async move {
                tokio::task::yield_now().await;
                if inputs.get("boom").is_some() {
                    panic!("index out of range");
                }
                Ok(ActionResult::new(json!({})))
            }),
        )
        .expect("defined");
    let result = integration
        .execute_action("create_task", json!({"title": "t"}), &ctx())
        .await;
    assert_eq!(result.result_type(), ResultType::Error);
    let text = serde_json::to_value(&result).expect("serialises");
    assert_eq!(
        text["result"]["message"],
        "action 'create_task' failed: database unavailable"
    );

    let result = integration
        .execute_action("delete_task", json!({"boom": true}), &ctx())
        .await;
    assert_eq!(result.result_type(), ResultType::Error);
    assert_eq!(
        serde_json::to_value(&result).expect("serialises")["result"]["message"],
        "handler panicked: index out of range"
    );
    // The integration keeps working after a panic.
    let result = integration
        .execute_action("delete_task", json!({}), &ctx())
        .await;
    assert_eq!(result.result_type(), ResultType::Action);
}

#[tokio::test]
async fn the_result_version_can_be_set() {
    let mut integration = create_task_returning(json!({"id": 1}), Arc::new(AtomicUsize::new(0)));
    integration.set_result_version("9.9.9");
    let result = integration
        .execute_action("create_task", json!({"title": "t"}), &ctx())
        .await;
    assert_eq!(result.version, "9.9.9");
}

fn record(id: Value, data: Value) -> Map<String, Value> {
    let mut record = Map::new();
    record.insert("id".into(), id);
    record.insert("data".into(), data);
    record
}

#[tokio::test]
async fn polling_checks_every_record() {
    let mut integration = integration();
    integration
        .register_polling_trigger(
            "new_tasks",
            polling_fn(|inputs, last, _| async move {
                let since = last.unwrap_or_default();
                Ok(match inputs["project"].as_str() {
                    Some("good") => vec![
                        record(json!("t1"), json!({"title": "One", "since": since})),
                        record(json!(2), json!({"title": "Two"})),
                    ],
                    Some("no-id") => {
                        let mut r = Map::new();
                        r.insert("data".into(), json!({"title": "x"}));
                        vec![record(json!(1), json!({"title": "ok"})), r]
                    }
                    Some("no-data") => {
                        let mut r = Map::new();
                        r.insert("id".into(), json!(1));
                        vec![r]
                    }
                    Some("bad-data") => vec![record(json!(1), json!({"name": "no title"}))],
                    _ => return Err(HandlerError::failed("unknown project")),
                })
            }),
        )
        .expect("defined");
    let ctx = ctx();

    let outcome = integration
        .execute_polling_trigger(
            "new_tasks",
            json!({"project": "good"}),
            Some("2026-01-01T00:00:00Z"),
            &ctx,
        )
        .await;
    let records = outcome.into_result().expect("records");
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["data"]["since"], "2026-01-01T00:00:00Z");

    for (project, message, property) in [
        (
            "no-id",
            "Polling trigger 'new_tasks' returned record without required 'id' field",
            "/1/id",
        ),
        (
            "no-data",
            "Polling trigger 'new_tasks' returned record without required 'data' field",
            "/0/data",
        ),
    ] {
        let outcome = integration
            .execute_polling_trigger("new_tasks", json!({"project": project}), None, &ctx)
            .await;
        let PollOutcome::Failed(result) = outcome else {
            panic!("{project}: records")
        };
        let failure = result.as_validation_error().expect("validation error");
        assert_eq!(failure.message, message);
        assert_eq!(failure.property.as_deref(), Some(property));
        assert_eq!(failure.source, ValidationSource::Output);
    }

    let outcome = integration
        .execute_polling_trigger("new_tasks", json!({"project": "bad-data"}), None, &ctx)
        .await;
    let result = outcome.into_result().expect_err("bad data");
    let failure = result.as_validation_error().expect("validation error");
    assert_eq!(failure.property.as_deref(), Some("/0/data/title"));
    assert_eq!(failure.source, ValidationSource::Output);

    let outcome = integration
        .execute_polling_trigger("new_tasks", json!({"project": 7}), None, &ctx)
        .await;
    let result = outcome.into_result().expect_err("bad input");
    assert_eq!(
        result.as_validation_error().map(|f| f.source),
        Some(ValidationSource::Input)
    );

    let outcome = integration
        .execute_polling_trigger("new_tasks", json!({"project": "other"}), None, &ctx)
        .await;
    let result = outcome.into_result().expect_err("handler error");
    assert_eq!(result.result_type(), ResultType::Error);

    let outcome = integration
        .execute_polling_trigger(
            "new_tasks",
            json!({"project": "good"}),
            None,
            &ExecutionContext::new(),
        )
        .await;
    let result = outcome.into_result().expect_err("no credentials");
    assert_eq!(
        result.as_validation_error().map(|f| f.source),
        Some(ValidationSource::Auth)
    );
}

#[tokio::test]
async fn connected_accounts() {
    let mut integration = integration();
    let result = integration.get_connected_account(&ctx()).await;
    assert_eq!(
        result.as_validation_error().map(|f| f.message.as_str()),
        Some("No connected account handler registered")
    );
    integration.register_connected_account(connected_account_fn(|ctx| async move {
        let key = ctx
            .auth()
            .and_then(|a| a.credential("api_key"))
            .unwrap_or_default();
        Ok(ConnectedAccountInfo {
            email: Some("ada@example.com".into()),
            user_id: Some(format!("user-for-{}", key.len())),
            ..ConnectedAccountInfo::default()
        })
    }));
    let result = integration.get_connected_account(&ctx()).await;
    assert_eq!(
        serde_json::to_value(&result).expect("serialises"),
        json!({"version": "2.0.1", "type": "connected_account", "result": {
            "email": "ada@example.com", "first_name": null, "last_name": null,
            "username": null, "user_id": "user-for-10", "avatar_url": null, "organization": null}})
    );
    let result = integration
        .get_connected_account(&ExecutionContext::new())
        .await;
    assert_eq!(
        result.as_validation_error().map(|f| f.source),
        Some(ValidationSource::Auth)
    );
}

#[tokio::test]
async fn handlers_can_be_trait_impls_that_borrow_the_context() {
    use switchyard_integration::ActionHandler;

    struct Counter(AtomicUsize);
    impl ActionHandler for Counter {
        async fn execute(
            &self,
            inputs: Value,
            ctx: &ExecutionContext,
        ) -> Result<ActionResult, HandlerError> {
            let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            let has_key = ctx
                .auth()
                .is_some_and(|a| a.credential("api_key").is_some());
            Ok(ActionResult::new(
                json!({"id": n, "title": inputs["title"], "key": has_key}),
            ))
        }
    }
    let mut integration = integration();
    integration
        .register_action("create_task", Counter(AtomicUsize::new(0)))
        .expect("defined");
    let integration = Arc::new(integration);
    let ctx = ctx();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let integration = Arc::clone(&integration);
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            integration
                .execute_action("create_task", json!({"title": format!("t{i}")}), &ctx)
                .await
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        let result = task.await.expect("joined");
        let data = &result.as_action().expect("action").data;
        assert_eq!(data["key"], true);
        ids.push(data["id"].as_i64().expect("id"));
    }
    ids.sort_unstable();
    assert_eq!(ids, (1..=8).collect::<Vec<_>>());
}
