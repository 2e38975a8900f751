//! Metadata benchmarks, each side by side with its lower bound in the same run:
//!
//! * `path/*`: parsing and rendering a typical query (`azure["connection"]["secret"]`) against
//!   `serde_json` parsing the same keys as a JSON array (the least any parser of quoted keys
//!   must do).
//! * `spec/*`: answering `GET /spec?q=…` through the tower service in process (routing, query
//!   parsing, reference resolution, reply encoding) against serialising the same reply with
//!   `serde_json` alone.
//! * `http/*`: a full `Interface::get` over loopback against a bare hyper client asking a bare
//!   hyper server that answers the same bytes (the transport's floor).
//!
//! Run: `cargo bench -p switchyard-metadata --bench metadata`.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, black_box, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{BodyExt as _, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use switchyard_metadata::{
    ChannelSink, Interface, MetadataService, Path, SpecResponse, SpecSource, Unresolvable,
    WebhookServer,
};
use tower_service::Service as _;

const QUERY: &str = r#"azure["connection"]["secret"]"#;

fn service() -> MetadataService {
    let (sink, receiver) = ChannelSink::new(1024, "https://ci.example.com");
    std::mem::forget(receiver);
    let spec = SpecSource::from_yaml(
        r#"
azure:
  connection: {$type: Connection, type: azure, name: prod}
password: {$type: Secret, name: db-password}
image: {$type: Output, taskName: build, name: image}
items: [{name: first}, {name: second}]
"#,
    )
    .expect("spec");
    MetadataService::builder()
        .step("deploy", spec)
        .secret("db-password", "hunter2")
        .connection(
            "azure",
            "prod",
            json!({"clientID": "app-7", "secret": "s3cr3t"}),
        )
        .sink(sink)
        .build()
        .expect("service")
}

fn paths(c: &mut Criterion) {
    let mut group = c.benchmark_group("path");
    group.bench_function("parse", |b| {
        b.iter(|| Path::parse(black_box(QUERY)).expect("parses"))
    });
    let as_json = r#"["azure","connection","secret"]"#;
    group.bench_function("lower_bound_serde_json_keys", |b| {
        b.iter(|| serde_json::from_str::<Vec<String>>(black_box(as_json)).expect("parses"))
    });
    let path = Path::parse(QUERY).expect("parses");
    group.bench_function("render", |b| b.iter(|| black_box(&path).to_string()));
    group.finish();
}

fn spec(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut service = service();
    let uri = format!(
        "/spec?{}",
        form_urlencoded::Serializer::new(String::new())
            .append_pair("q", QUERY)
            .finish()
    );
    let mut group = c.benchmark_group("spec");
    group.bench_function("service_get", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let request = Request::get(uri.as_str())
                    .body(Empty::<Bytes>::new())
                    .expect("request");
                let response = service.call(request).await.expect("infallible");
                assert_eq!(response.status(), 200);
                response
                    .into_body()
                    .collect()
                    .await
                    .expect("body")
                    .to_bytes()
            })
        })
    });
    let reply = SpecResponse {
        value: json!("s3cr3t"),
        unresolvable: Unresolvable::default(),
        complete: true,
    };
    group.bench_function("lower_bound_serialize_reply", |b| {
        b.iter(|| serde_json::to_vec(black_box(&reply)).expect("serialises"))
    });
    group.finish();
}

fn http(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (ours, bare) = runtime.block_on(async {
        let server = WebhookServer::bind_to(service(), "127.0.0.1:0".parse().expect("addr"))
            .bind()
            .await
            .expect("bind");
        let ours = server.local_addr().expect("addr");
        tokio::spawn(server.serve_until(std::future::pending()));

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let bare = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(|_req| async {
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                            br#"{"value":"s3cr3t","unresolvable":{},"complete":true}"#,
                        ))))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (ours, bare)
    });
    let relay = Interface::new(&format!("http://{ours}")).expect("client");
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1)
        .build_http::<Empty<Bytes>>();
    let bare_uri: http::Uri = format!("http://{bare}/spec?q=x").parse().expect("uri");

    let mut group = c.benchmark_group("http");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("interface_get", |b| {
        b.iter(|| runtime.block_on(async { relay.get(QUERY).await.expect("value") }))
    });
    group.bench_function("lower_bound_bare_hyper", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let response = client.get(bare_uri.clone()).await.expect("response");
                response
                    .into_body()
                    .collect()
                    .await
                    .expect("body")
                    .to_bytes()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, paths, spec, http);
criterion_main!(benches);
