//! Codec benchmarks: structured and binary encode/decode of a 300-byte and a 64 KiB JSON
//! payload, each run side by side with the `cloudevents-sdk` crate (0.9, the official Rust
//! SDK) and with a lower bound (serde_json into a plain struct), then the ratios printed.
//!
//! `cargo bench -p switchyard-cloudevents --bench codec`
#![allow(clippy::unwrap_used, clippy::print_stdout)] // Benchmark harness code.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use cloudevents::AttributesReader as _;
use criterion::{BatchSize, Criterion, Throughput};
use http::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use switchyard_cloudevents::{Event, http as ce_http, json};

/// A JSON payload of about `size` bytes: objects of mixed field types in an array.
fn payload(size: usize) -> String {
    let mut items = Vec::new();
    let mut i = 0;
    loop {
        let item = format!(
            r#"{{"id":{i},"name":"item number {i}","price":{}.{:02},"tags":["a","b\u00e9"],"ok":{}}}"#,
            i * 7,
            i % 100,
            i % 2 == 0
        );
        items.push(item);
        let text = format!(r#"{{"order":"ord-123","items":[{}]}}"#, items.join(","));
        if text.len() >= size {
            return text;
        }
        i += 1;
    }
}

fn event(data: &str) -> Event {
    Event::builder()
        .id("A234-1234-1234")
        .ty("com.example.order.created")
        .source("https://shop.example.com/orders")
        .subject("order-123")
        .time("2018-04-05T17:31:00Z")
        .datacontenttype("application/json")
        .extension("tenant", "acme")
        .data(switchyard_cloudevents::Data::json_text(data).unwrap())
        .build()
        .unwrap()
}

/// The lower bound: serde_json into a plain struct, no validation, data kept raw.
#[derive(Serialize, Deserialize)]
struct Plain {
    specversion: String,
    id: String,
    source: String,
    #[serde(rename = "type")]
    ty: String,
    subject: Option<String>,
    time: Option<String>,
    datacontenttype: Option<String>,
    tenant: Option<String>,
    data: Box<RawValue>,
}

/// Lower bound for binary decode: copy the attribute headers out and keep the body as is.
fn plain_from_headers(headers: &HeaderMap, body: Vec<u8>) -> (Vec<String>, Vec<u8>) {
    let names = [
        "ce-specversion",
        "ce-id",
        "ce-source",
        "ce-type",
        "ce-subject",
        "ce-time",
        "ce-tenant",
        "content-type",
    ];
    let attrs = names
        .iter()
        .map(|n| headers[*n].to_str().unwrap().to_owned())
        .collect();
    (attrs, body)
}

/// Lower bound for binary encode: the same headers without escaping, and a body copy.
fn plain_to_headers(plain: &Plain) -> (HeaderMap, Vec<u8>) {
    let mut headers = HeaderMap::with_capacity(8);
    headers.insert(
        "ce-specversion",
        HeaderValue::from_str(&plain.specversion).unwrap(),
    );
    headers.insert("ce-id", HeaderValue::from_str(&plain.id).unwrap());
    headers.insert("ce-source", HeaderValue::from_str(&plain.source).unwrap());
    headers.insert("ce-type", HeaderValue::from_str(&plain.ty).unwrap());
    headers.insert(
        "ce-subject",
        HeaderValue::from_str(plain.subject.as_deref().unwrap()).unwrap(),
    );
    headers.insert(
        "ce-time",
        HeaderValue::from_str(plain.time.as_deref().unwrap()).unwrap(),
    );
    headers.insert(
        "ce-tenant",
        HeaderValue::from_str(plain.tenant.as_deref().unwrap()).unwrap(),
    );
    headers.insert(
        "content-type",
        HeaderValue::from_str(plain.datacontenttype.as_deref().unwrap()).unwrap(),
    );
    (headers, plain.data.get().as_bytes().to_vec())
}

const CASES: [(&str, usize); 2] = [("300B", 300), ("64KiB", 64 * 1024)];
const OPS: [&str; 4] = [
    "structured_decode",
    "structured_encode",
    "binary_decode",
    "binary_encode",
];

fn benches(c: &mut Criterion) {
    for (label, size) in CASES {
        let ours = event(&payload(size));
        let structured = json::encode(&ours).unwrap();
        let binary = ce_http::to_binary(&ours).unwrap();
        let peer: cloudevents::Event = serde_json::from_slice(&structured).unwrap();
        let plain: Plain = serde_json::from_slice(&structured).unwrap();
        // All three read the same bytes and agree on what they hold.
        assert_eq!(peer.id(), ours.id());
        assert_eq!(
            plain.data.get().len(),
            ours.data().unwrap().as_bytes().len()
        );

        let mut group = c.benchmark_group(format!("structured_decode/{label}"));
        group.throughput(Throughput::Bytes(structured.len() as u64));
        group.bench_function("switchyard", |b| {
            b.iter(|| json::decode(black_box(&structured)).unwrap())
        });
        group.bench_function("cloudevents-sdk", |b| {
            b.iter(|| serde_json::from_slice::<cloudevents::Event>(black_box(&structured)).unwrap())
        });
        group.bench_function("lower-bound", |b| {
            b.iter(|| serde_json::from_slice::<Plain>(black_box(&structured)).unwrap())
        });
        group.finish();

        let mut group = c.benchmark_group(format!("structured_encode/{label}"));
        group.throughput(Throughput::Bytes(structured.len() as u64));
        group.bench_function("switchyard", |b| {
            b.iter(|| json::encode(black_box(&ours)).unwrap())
        });
        group.bench_function("cloudevents-sdk", |b| {
            b.iter(|| serde_json::to_vec(black_box(&peer)).unwrap())
        });
        group.bench_function("lower-bound", |b| {
            b.iter(|| serde_json::to_vec(black_box(&plain)).unwrap())
        });
        group.finish();

        let mut group = c.benchmark_group(format!("binary_decode/{label}"));
        group.throughput(Throughput::Bytes(binary.body.len() as u64));
        // All three take the body by value; the copy is made outside the timed part.
        group.bench_function("switchyard", |b| {
            b.iter_batched(
                || binary.body.clone(),
                |body| ce_http::from_http_owned(black_box(&binary.headers), body).unwrap(),
                BatchSize::SmallInput,
            )
        });
        group.bench_function("cloudevents-sdk", |b| {
            b.iter_batched(
                || binary.body.clone(),
                |body| {
                    cloudevents::binding::http::to_event(black_box(&binary.headers), body).unwrap()
                },
                BatchSize::SmallInput,
            )
        });
        group.bench_function("lower-bound", |b| {
            b.iter_batched(
                || binary.body.clone(),
                |body| plain_from_headers(black_box(&binary.headers), body),
                BatchSize::SmallInput,
            )
        });
        group.finish();

        let mut group = c.benchmark_group(format!("binary_encode/{label}"));
        group.throughput(Throughput::Bytes(binary.body.len() as u64));
        group.bench_function("switchyard", |b| {
            b.iter(|| ce_http::to_binary(black_box(&ours)).unwrap())
        });
        // The peer consumes the event; the clone is made outside the timed part.
        group.bench_function("cloudevents-sdk", |b| {
            b.iter_batched(
                || peer.clone(),
                |event| http::Request::<Option<Vec<u8>>>::try_from(event).unwrap(),
                BatchSize::SmallInput,
            )
        });
        group.bench_function("lower-bound", |b| {
            b.iter(|| plain_to_headers(black_box(&plain)))
        });
        group.finish();
    }
}

/// Reads criterion's point estimate (mean, ns) for one benchmark, if it ran.
fn mean_ns(root: &Path, group: &str, name: &str) -> Option<f64> {
    let path = root
        .join(group.replace('/', "_"))
        .join(name)
        .join("new")
        .join("estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value["mean"]["point_estimate"].as_f64()
}

fn print_ratios() {
    let root = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("criterion");
    println!("\n| case | switchyard | cloudevents-sdk | lower bound | sdk ÷ ours | ours ÷ bound |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (label, _) in CASES {
        for op in OPS {
            let group = format!("{op}/{label}");
            let (Some(ours), Some(peer), Some(bound)) = (
                mean_ns(&root, &group, "switchyard"),
                mean_ns(&root, &group, "cloudevents-sdk"),
                mean_ns(&root, &group, "lower-bound"),
            ) else {
                continue;
            };
            let fmt = |ns: f64| {
                if ns >= 1000.0 {
                    format!("{:.2} µs", ns / 1000.0)
                } else {
                    format!("{ns:.0} ns")
                }
            };
            println!(
                "| {group} | {} | {} | {} | {:.2}× | {:.2}× |",
                fmt(ours),
                fmt(peer),
                fmt(bound),
                peer / ours,
                ours / bound
            );
        }
    }
}

fn main() {
    let mut criterion = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2))
        .configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();
    print_ratios();
}
