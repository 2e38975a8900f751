//! Interop with the real Python `relay-sdk` 0.3.1: two steps of one workflow, written with
//! the Python SDK, run against our `MetadataService` on loopback. The script reports what
//! every call returned or raised; this test checks each, and what reached the sink and the
//! output store.
//!
//! Needs `SWITCHYARD_INTEROP_PYTHON`, a Python with `relay-sdk` installed; `cargo xtask ci`
//! makes that venv under `target/` and sets the variable. Without it the test prints a notice
//! and checks nothing.
#![allow(clippy::print_stdout)] // The skip notice.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_metadata::{
    ChannelSink, DecoratorKind, Emitted, Interface, MetadataService, Path, SpecSource,
    WebhookServer,
};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/relay_step.py");

const DEPLOY_SPEC: &str = r#"
azure:
  connection: {$type: Connection, type: azure, name: prod}
password: {$type: Secret, name: db-password}
signing_key: {$type: Secret, name: signing-key}
image: {$type: Output, taskName: build, name: image}
blob: {$type: Output, from: build, name: blob}
missing: {$type: Secret, name: not-set}
environment: {$type: Parameter, name: env}
items: [{name: first}, {name: second}]
labels:
  app.kubernetes.io/name: web
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_relay_sdk_against_our_service() {
    let Ok(python) = std::env::var("SWITCHYARD_INTEROP_PYTHON") else {
        println!(
            "NOTICE: SWITCHYARD_INTEROP_PYTHON is not set; skipping relay-sdk interop (cargo xtask ci sets it)"
        );
        return;
    };
    let (sink, mut emitted) = ChannelSink::new(64, "https://ci.example.com");
    let service = MetadataService::builder()
        .step(
            "build",
            SpecSource::from_json(r#"{"source": {"repo": "github.com/example/app", "depth": 1}}"#)
                .expect("spec"),
        )
        .step("deploy", SpecSource::from_yaml(DEPLOY_SPEC).expect("spec"))
        .token("build-token", "build")
        .token("deploy-token", "deploy")
        .secret("db-password", "hunter2")
        .secret("signing-key", vec![0xde, 0xad, 0xbe, 0xef, 0xff])
        .connection(
            "azure",
            "prod",
            json!({"clientID": "app-7", "secret": "s3cr3t"}),
        )
        .parameter("env", json!("staging"))
        .sink(sink)
        .build()
        .expect("service");
    let server = WebhookServer::bind_to(service, "127.0.0.1:0".parse().expect("addr"))
        .bind()
        .await
        .expect("bind");
    let addr = server.local_addr().expect("addr");
    tokio::spawn(server.serve_until(std::future::pending()));

    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(SCRIPT)
            .env("BUILD_URL", format!("http://token:build-token@{addr}"))
            .env("DEPLOY_URL", format!("http://token:deploy-token@{addr}"))
            .output()
    })
    .await
    .expect("join")
    .expect("run python");
    assert!(
        output.status.success(),
        "the Python driver failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Value = serde_json::from_slice(&output.stdout).expect("driver output");
    let check = |name: &str, want: Value| {
        assert_eq!(results[name], want, "{name}");
    };

    // Reading the spec.
    check(
        "build_whole_spec",
        json!({"value": {"source": {"repo": "github.com/example/app", "depth": 1}}}),
    );
    check(
        "deploy_whole_spec",
        json!({"raised": "UnresolvableException"}),
    );
    check("dynamic", json!({"value": "s3cr3t"}));
    check("bracket_string", json!({"value": "app-7"}));
    check("dotted_string", json!({"value": "app-7"}));
    check("single_quoted", json!({"value": "app-7"}));
    check("index", json!({"value": "second"}));
    check("string_index", json!({"value": "first"}));
    check("dotted_key", json!({"value": "web"}));
    check("text_secret", json!({"value": "hunter2"}));
    check("binary_secret", json!({"bytes": "3q2+7/8="}));
    check("parameter", json!({"value": "staging"}));
    check(
        "unresolvable_secret",
        json!({"raised": "UnresolvableException"}),
    );
    check(
        "output_before_set",
        json!({"raised": "UnresolvableException"}),
    );
    check("not_found", json!({"raised": "HTTPError", "status": 404}));
    check("bad_query", json!({"raised": "HTTPError", "status": 400}));
    check("wrong_token", json!({"raised": "HTTPError", "status": 401}));

    // Outputs, set by one step, read by the other (binary ones as bytes again).
    check("outputs_set", json!({"value": null}));
    check("outputs_set_slash", json!({"value": null}));
    check("outputs_set_bytes", json!({"value": null}));
    check("output_after_set", json!({"value": "registry/app:1.2"}));
    check("binary_output", json!({"bytes": "/wA="}));

    // Events, runs, decorators.
    check("emit", json!({"value": null}));
    check("emit_without_key", json!({"value": null}));
    check(
        "run",
        json!({"dataclass": "Run", "fields": {"name": "nightly build", "run_number": 1,
            "app_url": "https://ci.example.com/workflows/nightly%20build/runs/1"}}),
    );
    check(
        "run_again",
        json!({"dataclass": "Run", "fields": {"name": "nightly build", "run_number": 2,
            "app_url": "https://ci.example.com/workflows/nightly%20build/runs/2"}}),
    );
    check("decorator", json!({"value": null}));

    let mut received = Vec::new();
    while let Ok(Some(item)) =
        tokio::time::timeout(Duration::from_millis(500), emitted.recv()).await
    {
        received.push(item);
    }
    assert_eq!(received.len(), 5, "{received:?}");
    match &received[0] {
        Emitted::Event(event) => {
            assert_eq!(event.step, "build");
            assert_eq!(
                Value::Object(event.data.clone()),
                json!({"tag": "v1", "n": 2})
            );
            assert_eq!(event.key.as_deref(), Some("push-1"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&received[1], Emitted::Event(e) if e.key.is_none()));
    match &received[2] {
        Emitted::Run(request, _) => {
            assert_eq!(request.workflow, "nightly build");
            assert_eq!(
                Value::Object(request.parameters.clone()),
                json!({"branch": "main"})
            );
        }
        other => panic!("{other:?}"),
    }
    match &received[4] {
        Emitted::Decorator(d) => {
            assert_eq!((d.step.as_str(), d.name.as_str()), ("build", "pr"));
            assert_eq!(
                d.kind,
                DecoratorKind::Link {
                    description: "Pull request".into(),
                    uri: "https://example.com/pr/1".into()
                }
            );
        }
        other => panic!("{other:?}"),
    }

    // What Python stored, read back with our client: the name kept its `/` and space.
    let ours = Interface::new(&format!("http://token:deploy-token@{addr}")).expect("client");
    assert_eq!(
        ours.get("image").await.expect("our client"),
        json!("registry/app:1.2")
    );

    // Python's Dynamic renderings parse to the path we build, and we render them identically.
    let renderings = results["dynamic_renderings"]
        .as_array()
        .expect("renderings");
    assert_eq!(renderings.len(), 10);
    for pair in renderings {
        let key = pair[0].as_str().expect("key");
        let rendered = pair[1].as_str().expect("rendering");
        let ours = Path::root("root").key(key);
        assert_eq!(ours.to_string(), rendered, "key {key:?}");
        assert_eq!(
            rendered.parse::<Path>().expect("parses"),
            ours,
            "key {key:?}"
        );
    }
    assert_eq!(
        results["dynamic_root"],
        json!(switchyard_metadata::dynamic!(azure.connection.secret).to_string())
    );
}
