//! The metadata service through HTTP on loopback: every route, with our client and with raw
//! requests for the error cases a client would never send.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use switchyard_metadata::{
    Binary, BuildError, ChannelSink, ClientError, DecoratorKind, Emitted, FileOutputs, Interface,
    MetadataService, OutputStore, SpecSource, WebhookServer, dynamic,
};
use tokio::sync::{mpsc, oneshot};

struct Running {
    base: String,
    addr: SocketAddr,
    emitted: mpsc::Receiver<Emitted>,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn serve(service: MetadataService, emitted: mpsc::Receiver<Emitted>) -> Running {
    let server = WebhookServer::bind_to(service, "127.0.0.1:0".parse().expect("addr"))
        .drain_timeout(Duration::from_secs(1))
        .bind()
        .await
        .expect("bind");
    let addr = server.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.serve_until(async {
        let _ = stopped.await;
    }));
    Running {
        base: format!("http://{addr}"),
        addr,
        emitted,
        stop: Some(stop),
    }
}

fn deploy_spec() -> SpecSource {
    SpecSource::from_yaml(
        r#"
azure:
  connection: {$type: Connection, type: azure, name: prod}
password: {$type: Secret, name: db-password}
signing_key: {$type: Secret, name: signing-key}
image: {$type: Output, taskName: build, name: image}
missing: {$type: Secret, name: not-set}
environment: {$type: Parameter, name: env}
items: [{name: first}, {name: second}]
"labels":
  "app.kubernetes.io/name": web
"#,
    )
    .expect("spec")
}

fn builder() -> (
    switchyard_metadata::MetadataServiceBuilder,
    mpsc::Receiver<Emitted>,
) {
    let (sink, emitted) = ChannelSink::new(64, "https://ci.example.com/");
    let builder = MetadataService::builder()
        .secret("db-password", "hunter2")
        .secret("signing-key", vec![0xde, 0xad, 0xbe, 0xef, 0xff])
        .connection(
            "azure",
            "prod",
            json!({"clientID": "app-7", "secret": "s3cr3t"}),
        )
        .parameter("env", json!("staging"))
        .sink(sink);
    (builder, emitted)
}

async fn single_step() -> Running {
    let (builder, emitted) = builder();
    let service = builder
        .step("deploy", deploy_spec())
        .build()
        .expect("build");
    serve(service, emitted).await
}

/// Sends a raw request; returns status, headers and the body parsed as JSON (or Null).
async fn raw(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> (u16, http::HeaderMap, Value) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = client
        .request(request.body(Full::new(body.into())).expect("request"))
        .await
        .expect("response");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, value)
}

#[tokio::test]
async fn get_in_every_query_form() {
    let server = single_step().await;
    let relay = Interface::new(&server.base).expect("client");
    let secret = json!("s3cr3t");
    assert_eq!(
        relay
            .get(dynamic!(azure.connection.secret))
            .await
            .expect("dynamic"),
        secret
    );
    assert_eq!(
        relay
            .get(r#"azure["connection"]["secret"]"#)
            .await
            .expect("bracket"),
        secret
    );
    assert_eq!(
        relay.get("azure.connection.secret").await.expect("dotted"),
        secret
    );
    assert_eq!(
        relay.get("items[1].name").await.expect("index"),
        json!("second")
    );
    assert_eq!(
        relay
            .get(r#"labels["app.kubernetes.io/name"]"#)
            .await
            .expect("dotted key"),
        json!("web")
    );
    assert_eq!(
        relay.get(dynamic!(environment)).await.expect("parameter"),
        json!("staging")
    );
    let password: String = relay.get_as("password").await.expect("get_as");
    assert_eq!(password, "hunter2");
    let key: Binary = relay.get_as("signing_key").await.expect("binary");
    assert_eq!(key.as_bytes(), &[0xde, 0xad, 0xbe, 0xef, 0xff]);
    assert_eq!(
        relay.get("signing_key").await.expect("raw binary"),
        json!({"$encoding": "base64", "data": "3q2+7/8="})
    );
}

#[tokio::test]
async fn incomplete_and_missing_values() {
    let server = single_step().await;
    let relay = Interface::new(&server.base).expect("client");

    match relay.get("missing").await {
        Err(ClientError::Unresolvable {
            query,
            unresolvable,
        }) => {
            assert_eq!(query, "missing");
            assert_eq!(unresolvable.secrets[0].name, "not-set");
        }
        other => panic!("{other:?}"),
    }
    // The whole spec is incomplete too (two references cannot be resolved); the raw reply
    // shows them in place.
    let reply = relay.get_reply("").await.expect("reply");
    assert!(!reply.complete);
    assert_eq!(
        reply.value["missing"],
        json!({"$type": "Secret", "name": "not-set"})
    );
    assert_eq!(
        reply.value["image"],
        json!({"$type": "Output", "taskName": "build", "name": "image"})
    );
    assert_eq!(
        serde_json::to_value(&reply.unresolvable).expect("json"),
        json!({"secrets": [{"name": "not-set"}], "outputs": [{"from": "build", "name": "image"}]})
    );

    match relay.get("azure.nope").await {
        Err(ClientError::NotFound { query }) => assert_eq!(query, r#"azure["nope"]"#),
        other => panic!("{other:?}"),
    }
    match relay.get("azure[").await {
        Err(ClientError::Query(e)) => assert_eq!(e.offset(), 6),
        other => panic!("{other:?}"),
    }
    match relay.get_as::<u32>("password").await {
        Err(ClientError::Decode { .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn raw_spec_errors_are_json() {
    let server = single_step().await;
    let (status, _, body) = raw(&server.base, "GET", "/spec?q=azure%5Bx%5D", &[], "").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "bad_query");
    assert_eq!(body["error"]["arguments"]["offset"], 6);
    assert_eq!(
        body["error"]["arguments"]["expected"],
        "a quoted key or an integer index"
    );

    let (status, _, body) = raw(&server.base, "GET", "/spec?q=nope", &[], "").await;
    assert_eq!(status, 404);
    assert_eq!(
        body["error"]["description"]["friendly"],
        r#"`the spec` has no key "nope""#
    );

    let (status, _, body) = raw(&server.base, "GET", "/spec?q=a&lang=jsonpath", &[], "").await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["code"], "unsupported_query_language");

    // Form encoding: `+` is a space.
    let (status, _, body) = raw(
        &server.base,
        "GET",
        "/spec?q=azure%5B%22connection%22%5D.clientID&lang=path",
        &[],
        "",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"value": "app-7", "unresolvable": {}, "complete": true})
    );

    let (status, headers, _) = raw(&server.base, "POST", "/spec", &[], "").await;
    assert_eq!(status, 405);
    assert_eq!(headers["allow"], "GET");
    let (status, headers, _) = raw(&server.base, "GET", "/outputs/x", &[], "").await;
    assert_eq!(
        (status, &headers["allow"]),
        (405, &"PUT".parse().expect("header"))
    );
    let (status, headers, _) = raw(&server.base, "DELETE", "/outputs/s/x", &[], "").await;
    assert_eq!(
        (status, &headers["allow"]),
        (405, &"GET, PUT".parse().expect("header"))
    );
    let (status, _, body) = raw(&server.base, "GET", "/nothing/here", &[], "").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "route_not_found");
    let (status, _, body) = raw(&server.base, "GET", "/healthz", &[], "").await;
    assert_eq!((status, body), (200, json!({})));
}

#[tokio::test]
async fn outputs_flow_between_steps() {
    let (builder, emitted) = builder();
    let build_spec = SpecSource::from_json("{}").expect("spec");
    let service = builder
        .step("build", build_spec)
        .step("deploy", deploy_spec())
        .token("build-token", "build")
        .token("deploy-token", "deploy")
        .build()
        .expect("build");
    let server = serve(service, emitted).await;
    let addr = server.addr;
    let build = Interface::new(&format!("http://token:build-token@{addr}")).expect("client");
    let deploy = Interface::new(&format!("http://:deploy-token@{addr}")).expect("client");

    assert!(matches!(
        deploy.get("image").await,
        Err(ClientError::Unresolvable { .. })
    ));
    build
        .outputs()
        .set("image", &"registry/app:1.2")
        .await
        .expect("set");
    assert_eq!(
        deploy.get("image").await.expect("now set"),
        json!("registry/app:1.2")
    );

    // Names are percent-encoded with `/` kept, and read back whole.
    build
        .outputs()
        .set("dir/with space", &json!({"n": 1}))
        .await
        .expect("set");
    let (status, _, body) = raw(
        &server.base,
        "GET",
        "/outputs/build/dir/with%20space",
        &[("authorization", "Bearer build-token")],
        "",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"taskName": "build", "key": "dir/with space", "value": {"n": 1}})
    );
    // Another step reads only the outputs its spec references: `image`, not this one (404,
    // as if it did not exist).
    let deploy_auth = [("authorization", "Bearer deploy-token")];
    let (status, _, _) = raw(
        &server.base,
        "GET",
        "/outputs/build/dir/with%20space",
        &deploy_auth,
        "",
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, body) = raw(
        &server.base,
        "GET",
        "/outputs/build/image",
        &deploy_auth,
        "",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["value"], "registry/app:1.2");

    // Text and bytes bodies, as Relay accepted them.
    let auth = [("authorization", "Bearer build-token")];
    let text = [auth[0], ("content-type", "text/plain")];
    let (status, _, _) = raw(&server.base, "PUT", "/outputs/note", &text, "plain words").await;
    assert_eq!(status, 201);
    let bytes = [auth[0], ("content-type", "application/octet-stream")];
    let (status, _, _) = raw(
        &server.base,
        "PUT",
        "/outputs/blob",
        &bytes,
        vec![0xffu8, 0x00],
    )
    .await;
    assert_eq!(status, 201);
    let (_, _, body) = raw(&server.base, "GET", "/outputs/build/blob", &auth, "").await;
    assert_eq!(
        body["value"],
        json!({"$encoding": "base64", "data": "/wA="})
    );
    let (_, _, body) = raw(&server.base, "GET", "/outputs/build/note", &auth, "").await;
    assert_eq!(body["value"], json!("plain words"));

    // Bad bodies.
    let json_type = [auth[0], ("content-type", "application/json")];
    let (status, _, body) = raw(&server.base, "PUT", "/outputs/x", &json_type, "{oops").await;
    assert_eq!(status, 422);
    assert!(
        body["error"]["description"]["friendly"]
            .as_str()
            .is_some_and(|m| m.contains("line 1, column 2")),
        "{body}"
    );
    let xml = [auth[0], ("content-type", "application/xml")];
    let (status, _, body) = raw(&server.base, "PUT", "/outputs/x", &xml, "<a/>").await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["code"], "unsupported_media_type");
    let (status, _, _) = raw(&server.base, "GET", "/outputs/build/nope", &auth, "").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn tokens_decide_the_step() {
    let (builder, emitted) = builder();
    let service = builder
        .step("deploy", deploy_spec())
        .token("deploy-token", "deploy")
        .build()
        .expect("build");
    let server = serve(service, emitted).await;
    let base = &server.base;
    let (status, headers, body) = raw(base, "GET", "/spec?q=password", &[], "").await;
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], "Basic realm=\"metadata\"");
    assert_eq!(body["error"]["code"], "unauthorized");
    for bad in [
        "Bearer wrong",
        "Bearer ",
        "Basic !!!",
        "Digest x",
        "Basic c3RlcDpkZXBsb3ktdG9rZW4=", // step:deploy-token (wrong user)
    ] {
        let (status, _, _) = raw(
            base,
            "GET",
            "/spec?q=password",
            &[("authorization", bad)],
            "",
        )
        .await;
        assert_eq!(status, 401, "{bad}");
    }
    for good in [
        "Bearer deploy-token",
        "Basic OmRlcGxveS10b2tlbg==",         // :deploy-token
        "Basic dG9rZW46ZGVwbG95LXRva2Vu",     // token:deploy-token
        "basic ZGVwbG95OmRlcGxveS10b2tlbg==", // deploy:deploy-token
    ] {
        let (status, _, body) = raw(
            base,
            "GET",
            "/spec?q=password",
            &[("authorization", good)],
            "",
        )
        .await;
        assert_eq!((status, &body["value"]), (200, &json!("hunter2")), "{good}");
    }
    let (status, _, _) = raw(base, "GET", "/healthz", &[], "").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn secrets_route_only_serves_referenced_secrets() {
    let (builder, emitted) = builder();
    let service = builder
        .secret("unrelated", "nope")
        .step("deploy", deploy_spec())
        .build()
        .expect("build");
    let server = serve(service, emitted).await;
    let (status, _, body) = raw(&server.base, "GET", "/secrets/db-password", &[], "").await;
    assert_eq!(
        (status, body),
        (200, json!({"key": "db-password", "value": "hunter2"}))
    );
    let (status, _, _) = raw(&server.base, "GET", "/secrets/unrelated", &[], "").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn events_runs_and_decorators_reach_the_sink() {
    let mut server = single_step().await;
    let relay = Interface::new(&server.base).expect("client");

    relay
        .events()
        .emit(&json!({"tag": "v1"}), Some("push-1"))
        .await
        .expect("emit");
    relay
        .events()
        .emit(&json!({"tag": "v2"}), Some(""))
        .await
        .expect("emit");
    for (tag, key) in [("v1", Some("push-1")), ("v2", None)] {
        match server.emitted.recv().await {
            Some(Emitted::Event(event)) => {
                assert_eq!(event.step, "deploy");
                assert_eq!(event.data["tag"], tag);
                assert_eq!(event.key.as_deref(), key);
            }
            other => panic!("{other:?}"),
        }
    }

    let first = relay
        .workflows()
        .run("nightly build", &json!({"branch": "main", "n": 3}))
        .await
        .expect("run");
    let second = relay
        .workflows()
        .run_without_parameters("nightly build")
        .await
        .expect("run");
    assert_eq!(first.name, "nightly build");
    assert_eq!((first.run_number, second.run_number), (1, 2));
    assert_eq!(
        first.app_url,
        "https://ci.example.com/workflows/nightly%20build/runs/1"
    );
    match server.emitted.recv().await {
        Some(Emitted::Run(request, run)) => {
            assert_eq!(request.workflow, "nightly build");
            assert_eq!(
                Value::Object(request.parameters),
                json!({"branch": "main", "n": 3})
            );
            assert_eq!(run, first);
        }
        other => panic!("{other:?}"),
    }
    let _ = server.emitted.recv().await;

    // The reply has exactly the three keys the Python dataclass accepts.
    let (status, _, body) = raw(
        &server.base,
        "POST",
        "/workflows/w/run",
        &[("content-type", "application/json")],
        "{}",
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(
        body,
        json!({"workflow_run": {"name": "w", "run_number": 1, "app_url": "https://ci.example.com/workflows/w/runs/1"}})
    );
    let _ = server.emitted.recv().await;

    relay
        .decorators()
        .set_link("pr", "Pull request", "https://example.com/pr/1")
        .await
        .expect("decorator");
    match server.emitted.recv().await {
        Some(Emitted::Decorator(d)) => {
            assert_eq!(d.name, "pr");
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

    // Malformed bodies.
    let json_type = [("content-type", "application/json")];
    for (path, body, message) in [
        ("/events", r#"{"key": "x"}"#, "missing `data`"),
        (
            "/events",
            r#"{"data": [1]}"#,
            "`data` must be an object, found an array",
        ),
        (
            "/events",
            r#"{"data": {}, "key": 5}"#,
            "`key` must be a string, found a number",
        ),
        (
            "/events",
            "[]",
            "the body must be a JSON object, found an array",
        ),
        (
            "/workflows/w/run",
            r#"{"parameters": {"p": 1}}"#,
            "parameter \"p\" must be {\"value\": …}",
        ),
        (
            "/decorators/d",
            r#"{"type": "badge"}"#,
            "unsupported decorator type \"badge\" (supported: \"link\")",
        ),
        (
            "/decorators/d",
            r#"{"type": "link", "uri": "u"}"#,
            "missing `description`",
        ),
    ] {
        let (status, _, reply) = raw(&server.base, "POST", path, &json_type, body).await;
        assert_eq!(status, 422, "{path} {body}");
        assert_eq!(
            reply["error"]["description"]["friendly"], message,
            "{path} {body}"
        );
    }
    let (status, _, _) = raw(
        &server.base,
        "POST",
        "/events",
        &[("content-type", "text/csv")],
        "a,b",
    )
    .await;
    assert_eq!(status, 422);
    // Client-side checks.
    assert!(matches!(
        relay.events().emit(&json!([1]), None).await,
        Err(ClientError::NotAnObject { .. })
    ));
}

#[tokio::test]
async fn closed_sink_is_503_and_big_bodies_413() {
    let (builder, emitted) = builder();
    let service = builder
        .step("deploy", deploy_spec())
        .body_limit(1024)
        .build()
        .expect("build");
    drop(emitted);
    let (_, unused) = mpsc::channel(1);
    let server = serve(service, unused).await;
    let relay = Interface::new(&server.base).expect("client");
    match relay.events().emit(&json!({"a": 1}), None).await {
        Err(ClientError::Server {
            status, message, ..
        }) => {
            assert_eq!(status, 503);
            assert_eq!(message, "the event sink is closed");
        }
        other => panic!("{other:?}"),
    }
    let big = json!({"blob": "x".repeat(2000)});
    match relay.outputs().set("big", &big).await {
        Err(ClientError::Server { status, .. }) => assert_eq!(status, 413),
        other => panic!("{other:?}"),
    }
    // Nothing was stored.
    let (status, _, _) = raw(&server.base, "GET", "/outputs/deploy/big", &[], "").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn file_outputs_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("outputs.json");
    let spec = || {
        SpecSource::from_json(r#"{"image": {"$type": "Output", "from": "build", "name": "image"}}"#)
            .expect("spec")
    };
    {
        let (builder, emitted) = builder();
        let service = builder
            .step("build", spec())
            .outputs(FileOutputs::open(&file).await.expect("open"))
            .build()
            .expect("build");
        let server = serve(service, emitted).await;
        let relay = Interface::new(&server.base).expect("client");
        relay.outputs().set("image", &"app:9").await.expect("set");
    }
    let store: Arc<dyn OutputStore> = Arc::new(FileOutputs::open(&file).await.expect("reopen"));
    let (builder, emitted) = builder();
    let service = builder
        .step("build", spec())
        .shared_outputs(store)
        .build()
        .expect("build");
    let server = serve(service, emitted).await;
    let relay = Interface::new(&server.base).expect("client");
    assert_eq!(relay.get("image").await.expect("get"), json!("app:9"));
}

#[test]
fn builder_refuses_bad_configurations() {
    let spec = || SpecSource::from_json("{}").expect("spec");
    let sink = || ChannelSink::new(1, "https://x").0;
    assert_eq!(
        MetadataService::builder().sink(sink()).build().err(),
        Some(BuildError::NoSteps)
    );
    assert_eq!(
        MetadataService::builder().step("a", spec()).build().err(),
        Some(BuildError::NoSink)
    );
    assert_eq!(
        MetadataService::builder()
            .step("a", spec())
            .step("b", spec())
            .sink(sink())
            .build()
            .err(),
        Some(BuildError::StepsNeedTokens { count: 2 })
    );
    assert_eq!(
        MetadataService::builder()
            .step("a", spec())
            .token("t", "z")
            .sink(sink())
            .build()
            .err(),
        Some(BuildError::UnknownStep { step: "z".into() })
    );
    assert_eq!(
        MetadataService::builder()
            .step("a", spec())
            .step("b", spec())
            .token("t", "a")
            .token("t", "b")
            .sink(sink())
            .build()
            .err(),
        Some(BuildError::DuplicateToken {
            first: "a".into(),
            second: "b".into()
        })
    );
    assert_eq!(
        MetadataService::builder()
            .step("a", spec())
            .token("", "a")
            .sink(sink())
            .build()
            .err(),
        Some(BuildError::EmptyToken { step: "a".into() })
    );
}

/// An output is capped in size, and so are all of a step's outputs together, at exactly the
/// configured bytes (the length of each value's JSON). Replacing an output counts only the
/// new value. Both stores of the crate count, so both caps hold with a file store too.
#[tokio::test]
async fn outputs_are_capped_one_by_one_and_per_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (builder, emitted) = builder();
    let service = builder
        .step("build", SpecSource::from_json("{}").expect("spec"))
        .outputs(
            switchyard_metadata::FileOutputs::open(dir.path().join("outputs.json"))
                .await
                .expect("open"),
        )
        .max_output_bytes(100)
        .max_step_output_bytes(250)
        .build()
        .expect("build");
    let server = serve(service, emitted).await;
    let json = [("content-type", "application/json")];
    // A string of n characters is n + 2 bytes of JSON.
    let text = |n: usize| format!("\"{}\"", "x".repeat(n));
    let put = |name: &str, body: String| {
        let base = server.base.clone();
        let path = format!("/outputs/{name}");
        async move { raw(&base, "PUT", &path, &json, body).await }
    };
    assert_eq!(put("a", text(98)).await.0, 201, "exactly the output limit");
    let (status, _, body) = put("b", text(99)).await;
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], "output_too_large");
    assert_eq!(put("b", text(98)).await.0, 201);
    // 200 bytes set; 50 more fit exactly, 51 do not.
    let (status, _, body) = put("c", text(49)).await;
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], "step_outputs_too_large");
    assert_eq!(put("c", text(48)).await.0, 201, "exactly the step's limit");
    // Replacing an output frees what it held.
    assert_eq!(put("a", text(8)).await.0, 201);
    assert_eq!(put("d", text(88)).await.0, 201);
    let (_, _, body) = raw(&server.base, "GET", "/outputs/build/d", &[], "").await;
    assert_eq!(body["value"], json!("x".repeat(88)));
}
