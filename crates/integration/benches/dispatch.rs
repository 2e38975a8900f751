//! Integration benchmarks, each side by side with its lower bound in the same run:
//!
//! * `execute_action/*`: `Integration::execute_action` on a real 56-action config
//!   (`projectworks`, custom auth with an `auth.fields` schema) with a trivial handler, against
//!   calling the same handler directly with no validation. Small inputs, as in the issue's
//!   target (within 3× of the lower bound); the rejected-input path is measured too.
//! * `load/*`: `Integration::load` of the largest real config (`zoho`, 224 KB, 54 actions)
//!   against `serde_json` parsing the same file (what any loader must do at least).
//!
//! The configs are read from `../shared/conformance/autohive-configs/` at run time; without
//! that folder the bench prints a notice and measures nothing.
//!
//! Run: `cargo bench -p switchyard-integration --bench dispatch`.
// A bench binary reports on stdout.
#![allow(clippy::print_stdout)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use serde_json::{Map, Value, json};
use switchyard_integration::{
    ActionHandler, ActionResult, Auth, AuthType, ExecutionContext, HandlerError, Integration,
    ResultType,
};

fn configs() -> Option<PathBuf> {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/autohive-configs");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("notice: {} is absent; nothing to measure", dir.display());
        None
    }
}

/// Drives a future that never waits (the handlers here do not) to completion, so neither side
/// pays for an executor.
fn now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the benchmarked future waited"),
    }
}

/// The trivial handler: answers what `delete_task` promises.
struct DeleteTask;

impl ActionHandler for DeleteTask {
    async fn execute(
        &self,
        inputs: Value,
        _ctx: &ExecutionContext,
    ) -> Result<ActionResult, HandlerError> {
        Ok(ActionResult::new(
            json!({"task_id": inputs["task_id"], "deleted": true}),
        ))
    }
}

fn execute_action(c: &mut Criterion) {
    let Some(dir) = configs() else { return };
    let mut integration =
        Integration::load(dir.join("projectworks/config.json")).expect("projectworks loads");
    integration
        .register_action("delete_task", DeleteTask)
        .expect("defined");
    let mut credentials = Map::new();
    credentials.insert("consumer_key".into(), json!("key"));
    credentials.insert("consumer_secret".into(), json!("secret"));
    let ctx = ExecutionContext::builder()
        .auth(Auth::new(AuthType::Custom, credentials))
        .build();
    let inputs = json!({"task_id": 42});
    let result = now(integration.execute_action("delete_task", inputs.clone(), &ctx));
    assert_eq!(result.result_type(), ResultType::Action, "{result:?}");

    let mut group = c.benchmark_group("execute_action");
    group.bench_function("handler-directly", |b| {
        b.iter(|| now(DeleteTask.execute(black_box(inputs.clone()), &ctx)))
    });
    group.bench_function("execute_action", |b| {
        b.iter(|| now(integration.execute_action("delete_task", black_box(inputs.clone()), &ctx)))
    });
    let rejected = json!({"task_id": "forty-two"});
    group.bench_function("execute_action-rejected-input", |b| {
        b.iter(|| now(integration.execute_action("delete_task", black_box(rejected.clone()), &ctx)))
    });
    group.finish();
}

fn load(c: &mut Criterion) {
    let Some(dir) = configs() else { return };
    let file = dir.join("zoho/config.json");
    let mut group = c.benchmark_group("load");
    group.sample_size(20);
    group.bench_function("serde_json-parse-only", |b| {
        b.iter(|| {
            let text = std::fs::read_to_string(&file).expect("readable");
            serde_json::from_str::<Value>(&text).expect("json")
        })
    });
    group.bench_function("Integration::load", |b| {
        b.iter(|| Integration::load(black_box(&file)).expect("loads"))
    });
    group.finish();
}

criterion_group!(benches, execute_action, load);
criterion_main!(benches);
