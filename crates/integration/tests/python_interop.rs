//! Interop with the real Autohive Integrations SDK (2.0.1): the same config, handler
//! behaviour, inputs and credentials go through its `Integration` and ours, and the results
//! must serialise to the same JSON — exactly, except where we knowingly add information
//! (`property` and `value` of a validation error, which the original leaves `null`) and the
//! validator's wording of a schema violation (compared by schema path instead).
//!
//! Needs `SWITCHYARD_INTEROP_PYTHON`, a Python with `autohive-integrations-sdk` installed;
//! `cargo xtask ci` makes that venv under `target/` and sets the variable. Without it the test
//! prints a notice and checks nothing. A real config from `../shared/conformance/` is used
//! too when that folder is present.
#![allow(clippy::unwrap_used, clippy::print_stdout)] // Test code.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Map, Value, json};
use switchyard_integration::{
    ActionError, ActionResult, Auth, ConnectedAccountInfo, ExecutionContext, Integration,
    action_fn, connected_account_fn,
};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/interop/autohive_dispatch.py"
);

const CONFIG: &str = r#"{
  "name": "tasks", "version": "1.2.0", "description": "Task tracker",
  "entry_point": "tasks.py", "supports_connected_account": true,
  "auth": {"type": "custom", "fields": {
      "type": "object",
      "properties": {"api_key": {"type": "string", "minLength": 8}},
      "required": ["api_key"]}},
  "actions": {
    "create_task": {"description": "Creates a task",
      "input_schema": {"type": "object",
        "properties": {"title": {"type": "string"}, "priority": {"type": "integer", "minimum": 1},
                       "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2}},
        "required": ["title"]},
      "output_schema": {"type": "object",
        "properties": {"id": {"type": "integer"}}, "required": ["id"]}}
  }
}"#;

fn python() -> Option<String> {
    match std::env::var("SWITCHYARD_INTEROP_PYTHON") {
        Ok(python) => Some(python),
        Err(_) => {
            println!(
                "NOTICE: SWITCHYARD_INTEROP_PYTHON is not set; skipping Autohive SDK interop (cargo xtask ci sets it)"
            );
            None
        }
    }
}

fn run_python(python: &str, cases: &[Value]) -> Vec<Value> {
    let mut child = Command::new(python)
        .arg(SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for case in cases {
        writeln!(stdin, "{case}").unwrap();
    }
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the Python driver failed");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Runs one case through our `Integration`.
async fn run_ours(case: &Value) -> Value {
    let mut integration = Integration::load(case["config"].as_str().unwrap()).unwrap();
    let behaviour = case["behaviour"].clone();
    let register = case
        .get("register")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let ctx = match Auth::from_envelope(&case["auth"]) {
        Ok(auth) => ExecutionContext::builder().auth(auth).build(),
        Err(_) => ExecutionContext::new(),
    };
    let result = if case["op"] == "account" {
        if register {
            let info: ConnectedAccountInfo =
                serde_json::from_value(behaviour["info"].clone()).unwrap();
            integration.register_connected_account(connected_account_fn(move |_| {
                let info = info.clone();
                async move { Ok(info) }
            }));
        }
        integration.get_connected_account(&ctx).await
    } else {
        let action = case["action"].as_str().unwrap();
        if register {
            integration
                .register_action(
                    action,
                    action_fn(move |_, _| {
                        let behaviour = behaviour.clone();
                        async move {
                            let cost = behaviour["cost"].as_f64();
                            if behaviour["kind"] == "result" {
                                let mut result = ActionResult::new(behaviour["data"].clone());
                                result.cost_usd = cost;
                                Ok(result)
                            } else {
                                let mut error =
                                    ActionError::new(behaviour["message"].as_str().unwrap());
                                error.cost_usd = cost;
                                Err(error.into())
                            }
                        }
                    }),
                )
                .unwrap();
        }
        integration
            .execute_action(action, case["inputs"].clone(), &ctx)
            .await
    };
    serde_json::to_value(&result).unwrap()
}

/// The schema paths of a validation message in the original's format, one per violation.
fn schema_paths(message: &str) -> Vec<String> {
    message
        .split(",\n ")
        .filter(|part| !part.is_empty())
        .map(|part| part.split("], ").next().unwrap_or(part).to_owned() + "]")
        .collect()
}

fn compare(case: &Value, ours: &Value, theirs: &Value) {
    let what = &case["what"];
    assert_eq!(ours["version"], theirs["version"], "{what}");
    assert_eq!(ours["type"], theirs["type"], "{what}: {ours} vs {theirs}");
    if ours["type"] != "validation_error" {
        assert_eq!(ours, theirs, "{what}");
        return;
    }
    let (o, t) = (&ours["result"], &theirs["result"]);
    assert_eq!(o["source"], t["source"], "{what}");
    assert_eq!(
        t["property"],
        Value::Null,
        "{what}: the original never fills it"
    );
    assert_eq!(
        t["value"],
        Value::Null,
        "{what}: the original never fills it"
    );
    let (om, tm) = (
        o["message"].as_str().unwrap(),
        t["message"].as_str().unwrap(),
    );
    if tm.starts_with('[') {
        assert_eq!(schema_paths(om), schema_paths(tm), "{what}:\n{om}\n{tm}");
        println!("{what}:\n  ours:     {om:?}\n  original: {tm:?}");
    } else {
        assert_eq!(om, tm, "{what}");
    }
}

fn real_config() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance/autohive-configs/projectworks/config.json");
    path.is_file().then_some(path)
}

#[tokio::test]
async fn results_match_the_autohive_sdk() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, CONFIG).unwrap();
    let config = config.to_str().unwrap().to_owned();
    let good_auth = json!({"auth_type": "Custom", "credentials": {"api_key": "k-12345678"}});
    let ok = json!({"kind": "result", "data": {"id": 7}});

    let mut cases = vec![
        json!({"what": "success", "behaviour": ok, "inputs": {"title": "t"}}),
        json!({"what": "success with cost", "inputs": {"title": "t", "tags": ["a"]},
               "behaviour": {"kind": "result", "data": {"id": 7, "extra": [1, 2.5, null]}, "cost": 0.05}}),
        json!({"what": "action error", "inputs": {"title": "t"},
               "behaviour": {"kind": "action_error", "message": "Project is archived", "cost": 0.01}}),
        json!({"what": "action error without cost", "inputs": {"title": "t"},
               "behaviour": {"kind": "action_error", "message": "Nope"}}),
        json!({"what": "not registered", "register": false, "inputs": {"title": "t"}, "behaviour": ok}),
        json!({"what": "below minimum", "behaviour": ok, "inputs": {"title": "t", "priority": 0}}),
        json!({"what": "missing required", "behaviour": ok, "inputs": {"priority": 2}}),
        json!({"what": "several violations", "behaviour": ok,
               "inputs": {"title": 5, "priority": "high", "tags": ["a", "b", 3]}}),
        json!({"what": "no credentials", "behaviour": ok, "inputs": {"title": "t"}, "auth": {}}),
        json!({"what": "flat credentials", "behaviour": ok, "inputs": {"title": "t"},
               "auth": {"api_key": "k-12345678"}}),
        json!({"what": "short credential", "behaviour": ok, "inputs": {"title": "t"},
               "auth": {"auth_type": "Custom", "credentials": {"api_key": "short"}}}),
        json!({"what": "bad output", "inputs": {"title": "t"},
               "behaviour": {"kind": "result", "data": {"id": "seven"}}}),
        json!({"what": "connected account", "op": "account",
               "behaviour": {"kind": "account", "info": {"email": "ada@example.com", "user_id": "u1"}}}),
        json!({"what": "no connected account handler", "op": "account", "register": false,
               "behaviour": {"kind": "account", "info": {}}}),
    ];
    if let Some(real) = real_config() {
        let real = real.to_str().unwrap().to_owned();
        let auth = json!({"auth_type": "Custom", "credentials": {"consumer_key": "k", "consumer_secret": "s"}});
        cases.push(
            json!({"what": "projectworks delete_task", "config": real, "action": "delete_task",
            "auth": auth, "inputs": {"task_id": 42},
            "behaviour": {"kind": "result", "data": {"task_id": 42, "deleted": true}}}),
        );
        cases.push(
            json!({"what": "projectworks bad input", "config": real, "action": "delete_task",
            "auth": auth, "inputs": {"task_id": "42"}, "behaviour": ok}),
        );
    } else {
        println!("notice: the conformance configs are absent; comparing the inline config only");
    }
    for case in &mut cases {
        let case = case.as_object_mut().unwrap();
        case.entry("config").or_insert_with(|| json!(config));
        case.entry("op").or_insert_with(|| json!("action"));
        case.entry("action").or_insert_with(|| json!("create_task"));
        case.entry("auth").or_insert_with(|| good_auth.clone());
        case.entry("inputs")
            .or_insert_with(|| Value::Object(Map::new()));
    }
    let theirs = run_python(&python, &cases);
    assert_eq!(theirs.len(), cases.len());
    for (case, theirs) in cases.iter().zip(&theirs) {
        let ours = run_ours(case).await;
        compare(case, &ours, theirs);
    }
    println!("{} cases match the Autohive SDK 2.0.1", cases.len());
}
