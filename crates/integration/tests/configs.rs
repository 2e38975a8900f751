//! Loading: every real Autohive `config.json` in `../shared/conformance/autohive-configs/`
//! loads (read at test time; skipped with a notice when the folder is absent), and broken
//! configs fail with errors naming the file, the JSON path and the problem.
// The conformance test prints a one-line notice when its data is absent, and a summary.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_integration::{
    AuthKind, ConfigError, Integration, IntegrationConfig, IntervalError, LoadOptions,
};

fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/autohive-configs")
}

fn real_configs() -> Option<Vec<PathBuf>> {
    let dir = configs_dir();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        println!(
            "notice: {} is absent; skipping the real-config run",
            dir.display()
        );
        return None;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("config.json"))
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    Some(files)
}

#[test]
fn every_real_config_loads_with_all_its_actions() {
    let Some(files) = real_configs() else { return };
    assert_eq!(files.len(), 97, "the conformance folder holds 97 configs");
    let (mut actions, mut warnings) = (0, 0);
    for file in &files {
        let config = IntegrationConfig::load(file, &LoadOptions::default())
            .unwrap_or_else(|error| panic!("{error}"));
        let raw: Value =
            serde_json::from_str(&std::fs::read_to_string(file).expect("readable")).expect("json");
        assert_eq!(config.name, raw["name"].as_str().expect("name"));
        assert_eq!(config.version, raw["version"].as_str().expect("version"));
        let raw_actions = raw["actions"].as_object().expect("actions");
        assert_eq!(
            config.actions.len(),
            raw_actions.len(),
            "{}",
            file.display()
        );
        for (name, action) in raw_actions {
            let loaded = &config.actions[name];
            assert_eq!(
                loaded.description,
                action["description"].as_str().expect("d")
            );
            if config.warnings.is_empty() {
                assert_eq!(loaded.input_schema.as_json(), &action["input_schema"]);
                assert_eq!(loaded.output_schema.as_json(), &action["output_schema"]);
            }
        }
        match raw.get("auth").and_then(Value::as_object) {
            Some(auth) if !auth.is_empty() => {
                let loaded = config.auth.as_ref().expect("auth loaded");
                assert_eq!(loaded.kind.as_str(), auth["type"].as_str().expect("type"));
                assert_eq!(loaded.fields.is_some(), auth.contains_key("fields"));
            }
            _ => assert!(config.auth.is_none(), "{}", file.display()),
        }
        // Strict formats load too (unknown formats like "password" are ignored).
        IntegrationConfig::load(file, &LoadOptions::new().validate_formats(true))
            .unwrap_or_else(|error| panic!("{error}"));
        actions += config.actions.len();
        warnings += config.warnings.len();
    }
    println!(
        "loaded {} real configs: {actions} actions, {warnings} legacy warning(s)",
        files.len()
    );
    assert_eq!(actions, 1469);
}

#[test]
fn the_aws_config_loads_with_a_warning_for_its_boolean_required() {
    let file = configs_dir().join("aws/config.json");
    if !file.is_file() {
        println!("notice: {} is absent; skipping", file.display());
        return;
    }
    let config = IntegrationConfig::load(&file, &LoadOptions::default()).expect("loads");
    assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
    assert_eq!(
        config.warnings[0].path,
        "$.auth.fields.properties.aws_session_token.required"
    );
    assert!(config.warnings[0].message.contains("Draft 3"));
    assert_eq!(config.auth.as_ref().map(|a| a.kind), Some(AuthKind::Custom));
}

const MINIMAL: &str = r#"{
  "name": "demo", "version": "1.0.0", "description": "Demo",
  "display_name": "Demo", "entry_point": "demo.py",
  "supports_billing": true,
  "auth": {"type": "platform", "provider": "Demo", "scopes": ["read", "write"]},
  "actions": {"ping": {"display_name": "Ping", "description": "Pings",
      "input_schema": {"type": "object"}, "output_schema": {"type": "object"}}},
  "polling_triggers": {"new_items": {"description": "New items", "polling_interval": "5m",
      "input_schema": {"type": "object"}, "output_schema": {"type": "object"}}}
}"#;

fn load(document: &Value) -> Result<IntegrationConfig, ConfigError> {
    IntegrationConfig::from_json(
        &document.to_string(),
        "demo/config.json",
        &LoadOptions::default(),
    )
}

fn edited(edit: impl FnOnce(&mut Value)) -> Result<IntegrationConfig, ConfigError> {
    let mut document: Value = serde_json::from_str(MINIMAL).expect("json");
    edit(&mut document);
    load(&document)
}

#[test]
fn every_documented_key_is_read() {
    let config = edited(|_| {}).expect("loads");
    assert_eq!(config.display_name.as_deref(), Some("Demo"));
    assert_eq!(config.entry_point.as_deref(), Some("demo.py"));
    assert!(config.supports_billing);
    assert!(!config.supports_connected_account);
    let auth = config.auth.expect("auth");
    assert_eq!(auth.kind, AuthKind::Platform);
    assert_eq!(auth.provider.as_deref(), Some("Demo"));
    assert_eq!(auth.scopes, ["read", "write"]);
    assert!(auth.fields.is_none());
    assert_eq!(config.actions["ping"].display_name.as_deref(), Some("Ping"));
    assert_eq!(
        config.polling_triggers["new_items"].polling_interval,
        Duration::from_secs(300)
    );
}

#[test]
fn missing_keys_name_the_path() {
    type Edit = fn(&mut Value);
    let cases: [(&str, Edit, &str, &str); 5] = [
        (
            "name",
            |d| drop(d.as_object_mut().map(|o| o.remove("name"))),
            "$",
            "name",
        ),
        (
            "description",
            |d| {
                drop(
                    d["actions"]["ping"]
                        .as_object_mut()
                        .map(|o| o.remove("description")),
                )
            },
            "$.actions.ping",
            "description",
        ),
        (
            "output_schema",
            |d| {
                drop(
                    d["actions"]["ping"]
                        .as_object_mut()
                        .map(|o| o.remove("output_schema")),
                )
            },
            "$.actions.ping",
            "output_schema",
        ),
        (
            "polling_interval",
            |d| {
                drop(
                    d["polling_triggers"]["new_items"]
                        .as_object_mut()
                        .map(|o| o.remove("polling_interval")),
                )
            },
            "$.polling_triggers.new_items",
            "polling_interval",
        ),
        (
            "auth type",
            |d| drop(d["auth"].as_object_mut().map(|o| o.remove("type"))),
            "$.auth",
            "type",
        ),
    ];
    for (what, edit, want_path, want_key) in cases {
        let error = edited(edit).expect_err(what);
        let ConfigError::MissingKey { file, path, key } = &error else {
            panic!("{what}: {error:?}")
        };
        assert_eq!(file, Path::new("demo/config.json"));
        assert_eq!((path.as_str(), *key), (want_path, want_key), "{what}");
        let text = error.to_string();
        assert!(
            text.starts_with("demo/config.json: ") && text.contains(want_key),
            "{text}"
        );
    }
}

#[test]
fn bad_intervals_are_refused_with_the_reason() {
    for (interval, reason) in [
        ("", IntervalError::Empty),
        ("5", IntervalError::MissingUnit),
        ("1.5h", IntervalError::NotAWholeNumber),
        ("-5m", IntervalError::NotAWholeNumber),
        ("0s", IntervalError::Zero),
    ] {
        let error =
            edited(|d| d["polling_triggers"]["new_items"]["polling_interval"] = json!(interval))
                .expect_err(interval);
        let ConfigError::BadInterval {
            path,
            value,
            reason: got,
            ..
        } = &error
        else {
            panic!("{interval:?}: {error:?}")
        };
        assert_eq!(path, "$.polling_triggers.new_items.polling_interval");
        assert_eq!(value, interval);
        assert_eq!(*got, reason, "{interval:?}");
    }
    let error = edited(|d| d["polling_triggers"]["new_items"]["polling_interval"] = json!(300))
        .expect_err("number");
    assert!(
        matches!(
            error,
            ConfigError::WrongType {
                expected: "a string",
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn schemas_that_cannot_compile_name_the_keyword() {
    let error = edited(|d| {
        d["actions"]["ping"]["input_schema"] =
            json!({"type": "object", "properties": {"n": {"type": "integr"}}});
    })
    .expect_err("bad type");
    let ConfigError::BadSchema { path, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(path, "$.actions.ping.input_schema.properties.n.type");

    let error = edited(|d| {
        d["actions"]["ping"]["output_schema"] = json!({"type": "string", "pattern": "(["});
    })
    .expect_err("bad regex");
    assert!(matches!(error, ConfigError::BadSchema { .. }), "{error:?}");
    assert!(
        error.to_string().contains("$.actions.ping.output_schema"),
        "{error}"
    );

    let error = edited(|d| d["auth"] = json!({"type": "custom", "fields": {"required": "token"}}))
        .expect_err("bad fields");
    let ConfigError::BadSchema { path, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(path, "$.auth.fields.required");

    let error = edited(|d| d["actions"]["ping"]["input_schema"] = json!("object"))
        .expect_err("not a schema");
    assert!(matches!(error, ConfigError::WrongType { .. }), "{error:?}");
}

#[test]
fn other_shape_errors() {
    let error = edited(|d| d["auth"]["type"] = json!("oauth")).expect_err("auth type");
    assert!(
        matches!(&error, ConfigError::InvalidValue { path, .. } if path == "$.auth.type"),
        "{error:?}"
    );
    let error = edited(|d| d["actions"] = json!([])).expect_err("actions array");
    assert!(
        matches!(&error, ConfigError::WrongType { path, expected: "an object", found: "an array", .. } if path == "$.actions"),
        "{error:?}"
    );
    let error = edited(|d| d["auth"]["scopes"] = json!(["a", 1])).expect_err("scope");
    assert!(
        matches!(&error, ConfigError::WrongType { path, .. } if path == "$.auth.scopes[1]"),
        "{error:?}"
    );
    let error = edited(|d| {
        let action = d["actions"]["ping"].clone();
        d["actions"]["odd.name"] = action;
        d["actions"]["odd.name"]["description"] = json!(1);
    })
    .expect_err("odd name");
    assert!(
        matches!(&error, ConfigError::WrongType { path, .. } if path == "$.actions[\"odd.name\"].description"),
        "{error:?}"
    );
    // An empty auth object (the github config has one) means no auth.
    let config = edited(|d| d["auth"] = json!({})).expect("loads");
    assert!(config.auth.is_none());

    let error =
        IntegrationConfig::from_json("{\"name\": \n  oops}", "x.json", &LoadOptions::default())
            .expect_err("syntax");
    assert!(
        matches!(
            error,
            ConfigError::Json {
                line: 2,
                column: 3,
                ..
            }
        ),
        "{error:?}"
    );
    let error = Integration::load("/nonexistent/config.json").expect_err("missing file");
    assert!(matches!(error, ConfigError::Io { .. }), "{error:?}");
    assert!(
        error.to_string().starts_with("/nonexistent/config.json: "),
        "{error}"
    );
}

#[test]
fn formats_are_enforced_only_on_request() {
    let document = json!({
        "name": "f", "version": "1", "description": "d",
        "actions": {"send": {"description": "d",
            "input_schema": {"type": "object", "properties": {"to": {"type": "string", "format": "email"}}},
            "output_schema": {}}}
    });
    let lenient = load(&document).expect("loads");
    let strict = IntegrationConfig::from_json(
        &document.to_string(),
        "f.json",
        &LoadOptions::new().validate_formats(true),
    )
    .expect("loads");
    let input = json!({"to": "not-an-address"});
    assert!(lenient.actions["send"].input_schema.is_valid(&input));
    assert!(!strict.actions["send"].input_schema.is_valid(&input));
}
