//! Signature benchmarks: `v1` sign and verify of a 1 KiB body, side by side with the `svix`
//! crate (the Svix server's own Rust library) and with bare HMAC-SHA256 over the same signed
//! content (the lower bound), then the ratios printed. Also `v1a` (Ed25519) sign and verify,
//! which no peer library implements.
//!
//! `cargo bench -p switchyard-webhooks --bench signatures`
#![allow(clippy::unwrap_used, clippy::print_stdout)] // Benchmark harness code.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use criterion::{Criterion, Throughput};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;
use switchyard_webhooks::{Secret, Signer, SigningKey, Verifier};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ID: &str = "msg_2bWgqMTZbJKxRJvlsbgvjpvFbWS";

fn body() -> Vec<u8> {
    let mut body = String::from(r#"{"type":"origin.visit","data":["#);
    let mut i = 0;
    while body.len() < 960 {
        body.push_str(&format!(
            r#"{{"url":"https://example.org/repo/{i}","status":"full"}},"#
        ));
        i += 1;
    }
    body.pop();
    body.push_str("]}");
    while body.len() < 1024 {
        body.insert(body.len() - 1, ' ');
    }
    body.into_bytes()
}

/// Bare HMAC-SHA256 of `{id}.{ts}.{body}` with a fresh key schedule, as the lower bound.
fn bare_hmac(key: &[u8], ts: &str, body: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(ID.as_bytes());
    mac.update(b".");
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

fn benches(c: &mut Criterion) {
    let body = body();
    assert_eq!(body.len(), 1024);
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let ts_text = ts.to_string();
    let secret: Secret = SECRET.parse().unwrap();
    let key = secret.expose_bytes().to_vec();
    let ours = Signer::new(secret.clone());
    let verifier = Verifier::new(secret);
    let svix = svix::webhooks::Webhook::new(SECRET).unwrap();
    let headers = ours.headers(ID, ts, &body);
    // Both libraries must agree before they are timed.
    assert_eq!(
        svix.sign(ID, ts, &body).unwrap(),
        headers["webhook-signature"].to_str().unwrap()
    );
    svix.verify(&body, &headers).unwrap();
    let expected = bare_hmac(&key, &ts_text, &body);

    let mut group = c.benchmark_group("sign/1KiB");
    group.throughput(Throughput::Elements(1));
    group.bench_function("switchyard", |b| {
        b.iter(|| ours.sign(black_box(ID), black_box(ts), black_box(&body)))
    });
    group.bench_function("svix", |b| {
        b.iter(|| {
            svix.sign(black_box(ID), black_box(ts), black_box(&body))
                .unwrap()
        })
    });
    group.bench_function("bare-hmac", |b| {
        b.iter(|| bare_hmac(black_box(&key), black_box(&ts_text), black_box(&body)))
    });
    group.finish();

    let mut group = c.benchmark_group("verify/1KiB");
    group.throughput(Throughput::Elements(1));
    group.bench_function("switchyard", |b| {
        b.iter(|| {
            verifier
                .verify(black_box(&headers), black_box(&body))
                .unwrap()
        })
    });
    group.bench_function("svix", |b| {
        b.iter(|| svix.verify(black_box(&body), black_box(&headers)).unwrap())
    });
    let signature = headers["webhook-signature"].to_str().unwrap().to_owned();
    group.bench_function("bare-hmac", |b| {
        b.iter(|| {
            let mac = bare_hmac(black_box(&key), black_box(&ts_text), black_box(&body));
            let mut decoded = [0u8; 33];
            let n = STANDARD
                .decode_slice(&black_box(&signature)[3..], &mut decoded)
                .unwrap();
            assert!(bool::from(mac.as_slice().ct_eq(&decoded[..n])));
            assert_eq!(mac, expected);
        })
    });
    group.finish();

    let signing_key = SigningKey::generate().unwrap();
    let ed_signer = Signer::new(signing_key.clone());
    let ed_headers = ed_signer.headers(ID, ts, &body);
    let ed_verifier = Verifier::empty().with_public_key(signing_key.verifying_key());
    let mut group = c.benchmark_group("v1a/1KiB");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sign", |b| {
        b.iter(|| ed_signer.sign(black_box(ID), black_box(ts), black_box(&body)))
    });
    group.bench_function("verify", |b| {
        b.iter(|| {
            ed_verifier
                .verify(black_box(&ed_headers), black_box(&body))
                .unwrap()
        })
    });
    group.finish();
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
    println!("\n| case | switchyard | svix | bare HMAC | ours/s | svix ÷ ours | ours ÷ bare |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for group in ["sign/1KiB", "verify/1KiB"] {
        let (Some(ours), Some(peer), Some(bound)) = (
            mean_ns(&root, group, "switchyard"),
            mean_ns(&root, group, "svix"),
            mean_ns(&root, group, "bare-hmac"),
        ) else {
            continue;
        };
        println!(
            "| {group} | {ours:.0} ns | {peer:.0} ns | {bound:.0} ns | {:.0} | {:.2}× | {:.2}× |",
            1e9 / ours,
            peer / ours,
            ours / bound
        );
    }
    for name in ["sign", "verify"] {
        if let Some(ns) = mean_ns(&root, "v1a/1KiB", name) {
            println!(
                "| v1a {name}/1KiB | {ns:.0} ns | — | — | {:.0} | — | — |",
                1e9 / ns
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
