//! Runtime-events benchmarks, each side by side with its lower bound in the same run:
//!
//! * `filter/*`: one filter per event (binding the event and evaluating it) against the
//!   hand-written Rust check on `serde_json::Value` doing the same thing (`cel` is the filter
//!   as written, `cel-interpreter` an equivalent one the direct evaluator leaves to the CEL
//!   interpreter);
//! * `publish/*`: publish throughput to a source with 1, 100 and 10,000 subscriptions whose
//!   filters are distinct `event_type ==` conditions;
//! * `wakeup/*`: from `publish` to the moment a task waiting in `next_event` has the event;
//! * `budget/*`: the hostile report's payload-driven filter,
//!   `data.body.exists(x, data.body.exists(y, y < 0))`, on a 6 KB body (1,500 numbers: 2.25
//!   million steps unbounded), stopped by the default budget (100,000), next to the hand-written
//!   loop doing the same 100,000 comparisons.
//!
//! Run: `cargo bench -p switchyard-runtime-events --bench filters` (add `-- filter` etc. to
//! pick a group).

use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use serde_json::{Value, json};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use switchyard_runtime_events::{Event, Filter, Hub, HubConfig};

const FILTER: &str = "data.method in ['GET', 'HEAD'] && data.url.path.endsWith('/meow')";
/// The same filter with `dyn()` (the identity) around one operand: outside what the direct
/// evaluator plans, so this measures the CEL interpreter itself.
const INTERPRETED_FILTER: &str =
    "dyn(data.method) in ['GET', 'HEAD'] && data.url.path.endsWith('/meow')";
const MATCHES_FILTER: &str =
    "data.method.matches('^(GET|HEAD)$') && data.url.path.matches('/meow$')";

/// The same check as `FILTER`, written by hand.
fn hand_written(data: &Value) -> bool {
    let method_ok = matches!(
        data.get("method").and_then(Value::as_str),
        Some("GET" | "HEAD")
    );
    method_ok
        && data
            .get("url")
            .and_then(|url| url.get("path"))
            .and_then(Value::as_str)
            .is_some_and(|path| path.ends_with("/meow"))
}

fn request(method: &str, path: &str) -> Event {
    Event::new(
        "webhook",
        "request",
        json!({
            "method": method,
            "url": {"path": path, "query": {"page": "2"}},
            "headers": {"content-type": "application/json", "user-agent": "bench/1.0"},
            "body": {"id": 12345, "tags": ["a", "b", "c"]},
        }),
    )
}

fn filter(c: &mut Criterion) {
    let events = [
        request("GET", "/cats/meow"),
        request("POST", "/cats/meow"),
        request("HEAD", "/dogs/woof"),
    ];
    let compiled = Filter::compile(FILTER).expect("compiles");
    let with_matches = Filter::compile(MATCHES_FILTER).expect("compiles");
    let interpreted = Filter::compile(INTERPRETED_FILTER).expect("compiles");
    // The three must agree before they are worth timing.
    for event in &events {
        let expected = hand_written(&event.data);
        assert_eq!(compiled.matches(event), Ok(expected));
        assert_eq!(with_matches.matches(event), Ok(expected));
        assert_eq!(interpreted.matches(event), Ok(expected));
    }

    let mut group = c.benchmark_group("filter");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("hand-written", |b| {
        b.iter(|| {
            for event in &events {
                black_box(hand_written(black_box(&event.data)));
            }
        })
    });
    group.bench_function("cel", |b| {
        b.iter(|| {
            for event in &events {
                let _ = black_box(compiled.matches(black_box(event)));
            }
        })
    });
    group.bench_function("cel-interpreter", |b| {
        b.iter(|| {
            for event in &events {
                let _ = black_box(interpreted.matches(black_box(event)));
            }
        })
    });
    group.bench_function("cel-matches", |b| {
        b.iter(|| {
            for event in &events {
                let _ = black_box(with_matches.matches(black_box(event)));
            }
        })
    });
    group.finish();
}

fn publish(c: &mut Criterion) {
    let mut group = c.benchmark_group("publish");
    group.throughput(Throughput::Elements(1));
    for subscriptions in [1usize, 100, 10_000] {
        let hub = Hub::with_config(HubConfig {
            queue_limit: 64,
            ..HubConfig::default()
        });
        for i in 0..subscriptions {
            hub.subscribe("s", &format!("event_type == 'type_{i}' && data.n >= 0"))
                .expect("subscribe");
        }
        // Each publish matches exactly one subscription, whose queue stays bounded by
        // dropping its oldest event.
        let mut n = 0usize;
        group.bench_function(BenchmarkId::from_parameter(subscriptions), |b| {
            b.iter(|| {
                n = n.wrapping_add(1);
                let event_type = format!("type_{}", n % subscriptions);
                let published = hub
                    .publish(Event::new("s", event_type, json!({"n": 1})))
                    .expect("publish");
                black_box(published);
            })
        });
    }
    group.finish();
}

fn wakeup(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .expect("runtime");
    let hub = Hub::new();
    let id = hub.subscribe("s", "data.n >= 0").expect("subscribe");
    let (woke_tx, woke_rx) = mpsc::channel::<Instant>();
    {
        let hub = hub.clone();
        runtime.spawn(async move {
            while let Ok(Some(_)) = hub.next_event(&[id], None).await {
                if woke_tx.send(Instant::now()).is_err() {
                    break;
                }
            }
        });
    }
    let mut group = c.benchmark_group("wakeup");
    group.bench_function("publish-to-next_event", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                // Let the waiter park first, so this measures a real wake-up.
                std::thread::sleep(Duration::from_micros(50));
                let event = Event::new("s", "t", json!({"n": 1}));
                let started = Instant::now();
                hub.publish(event).expect("publish");
                let woke = woke_rx.recv().expect("waiter alive");
                total += woke.saturating_duration_since(started);
            }
            total
        })
    });
    group.finish();
}

fn budget(c: &mut Criterion) {
    let mut group = c.benchmark_group("budget");
    let body: Vec<i64> = (0..1500).collect();
    let event = Event::new("s", "t", json!({"body": body}));
    let filter =
        Filter::compile("data.body.exists(x, data.body.exists(y, y < 0))").expect("compiles");
    group.bench_function("hostile-filter-stopped-at-budget", |b| {
        b.iter(|| black_box(filter.matches(black_box(&event)).is_err()));
    });
    // The bound: the comparisons the budget allows, written by hand over the same JSON.
    group.bench_function("hand-written-100k-steps", |b| {
        b.iter(|| {
            let items = black_box(&event).data["body"]
                .as_array()
                .map_or(&[][..], Vec::as_slice);
            let mut steps = 0u64;
            let mut found = false;
            'outer: for _x in items {
                for y in items {
                    steps += 1;
                    if steps > 100_000 {
                        break 'outer;
                    }
                    found |= y.as_i64().is_some_and(|y| y < 0);
                }
            }
            black_box(found)
        });
    });
    group.finish();
}

criterion_group!(benches, filter, publish, wakeup, budget);
criterion_main!(benches);
