//! Operational webhooks: with `[webhooks] operational_app` set, endpoint changes and
//! delivery trouble in any application become signed messages of the management
//! application, in the payload shapes of Svix's document (read at test time from
//! `../shared/conformance/svix/openapi.json`).
#![allow(clippy::unwrap_used)] // Test code.

mod common;

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use switchyard_server::{Config, RunningServer, Server};
use switchyard_webhooks::{AppUid, Secret, Verifier};

use common::{Api, Requests};

/// An address nothing listens on: every attempt to it fails.
const REFUSED: &str = "http://127.0.0.1:9/";

/// A server with operational webhooks in application `ops` and the given retry schedule.
async fn start(
    dir: &std::path::Path,
    schedule_ms: &[u64],
    disable_after: Duration,
) -> RunningServer {
    let mut config: Config = common::config(dir);
    config.webhooks.operational_app = Some(AppUid::new("ops").unwrap());
    config.delivery.retry.schedule = schedule_ms
        .iter()
        .map(|ms| Duration::from_millis(*ms))
        .collect();
    config.delivery.disable_after = disable_after;
    // Retries due between polls wait for the next one: poll often enough for the schedule.
    config.delivery.poll_interval = Duration::from_millis(20);
    Server::start(config).await.unwrap()
}

/// An endpoint in the management application delivering to a recording receiver, and its
/// signing secret.
async fn listen(api: &Api, filter: Option<&[&str]>) -> (Requests, Secret) {
    let (url, seen) = common::recording_receiver(Duration::ZERO).await;
    let mut body = json!({"url": url, "uid": "ops-listener"});
    if let Some(types) = filter {
        body["filterTypes"] = json!(types);
    }
    let created = api.post("/api/v1/app/ops/endpoint", &body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let secret = api
        .get(&format!("/api/v1/app/ops/endpoint/{id}/secret"))
        .await
        .json()["key"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    (seen, secret)
}

/// The operational events received so far, in order, each checked for its signature.
fn received(seen: &Requests, secret: &Secret) -> Vec<Value> {
    let seen = seen.lock().unwrap().clone();
    seen.iter()
        .map(|(_, headers, body)| {
            Verifier::new(secret.clone()).verify(headers, body).unwrap();
            serde_json::from_slice(body).unwrap()
        })
        .collect()
}

/// Waits (up to 10 s) until an event of `event_type` has been received; answers it.
async fn wait_for(seen: &Requests, secret: &Secret, event_type: &str) -> Value {
    for _ in 0..200 {
        if let Some(event) = received(seen, secret)
            .into_iter()
            .find(|event| event["type"] == event_type)
        {
            return event;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {event_type} received; got {:?}", received(seen, secret));
}

/// Checks `event` against the schema Svix's document gives its type (under `x-webhooks`);
/// nothing to check where the document is absent.
fn check_against_document(event: &Value) {
    let Some(document) = common::svix_document() else {
        return;
    };
    let name = match event["type"].as_str().unwrap() {
        "endpoint.created" => "EndpointCreatedEvent",
        "endpoint.updated" => "EndpointUpdatedEvent",
        "endpoint.deleted" => "EndpointDeletedEvent",
        "endpoint.disabled" => "EndpointDisabledEvent",
        "message.attempt.failing" => "MessageAttemptFailingEvent",
        "message.attempt.exhausted" => "MessageAttemptExhaustedEvent",
        "message.attempt.recovered" => "MessageAttemptRecoveredEvent",
        other => panic!("not an operational event type: {other}"),
    };
    let reference = &document["x-webhooks"][name]["post"]["requestBody"]["content"]["application/json"]
        ["schema"]["$ref"];
    let mut components = document["components"].clone();
    openapi_nullable(&mut components);
    let schema = json!({"$ref": reference, "components": components});
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(event)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{name}: {errors:?} in {event}");
    // The document's required fields are there, and nothing it does not name.
    let data_ref = document["components"]["schemas"][name]["properties"]["data"]["$ref"]
        .as_str()
        .unwrap();
    let data_schema = &document["components"]["schemas"][data_ref.rsplit('/').next().unwrap()];
    for key in event["data"].as_object().unwrap().keys() {
        assert!(
            data_schema["properties"].get(key).is_some(),
            "{name}: `{key}` is not in the document"
        );
    }
}

/// OpenAPI 3.0's `nullable: true` as JSON Schema: `null` joins the type.
fn openapi_nullable(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("nullable") == Some(&Value::Bool(true))
                && let Some(Value::String(kind)) = map.get("type").cloned()
            {
                map.insert("type".to_owned(), json!([kind, "null"]));
            }
            for inner in map.values_mut() {
                openapi_nullable(inner);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(openapi_nullable),
        _ => {}
    }
}

#[tokio::test]
async fn endpoint_changes_and_a_failing_delivery_that_recovers_are_announced() {
    let dir = tempfile::tempdir().unwrap();
    // Attempts at about 0, 0.1, 0.2 and 0.3 s (the fourth failure is `failing`), the fifth
    // 1.5 s later: time to point the endpoint somewhere that answers.
    let server = start(
        dir.path(),
        &[100, 100, 100, 1500, 100],
        Duration::from_secs(3600),
    )
    .await;
    let api = Api::new(server.local_addr());
    let (seen, secret) = listen(&api, None).await;

    let app = api
        .post("/api/v1/app", &json!({"name": "Tenant", "uid": "tenant"}))
        .await
        .json();
    let app_id = app["id"].as_str().unwrap();
    let endpoint = api
        .post(
            "/api/v1/app/tenant/endpoint",
            &json!({"url": REFUSED, "uid": "flaky"}),
        )
        .await
        .json();
    let endpoint_id = endpoint["id"].as_str().unwrap();
    let created = wait_for(&seen, &secret, "endpoint.created").await;
    assert_eq!(
        created["data"],
        json!({"appId": app_id, "appUid": "tenant", "endpointId": endpoint_id,
               "endpointUid": "flaky"})
    );

    let message = api
        .post(
            "/api/v1/app/tenant/msg",
            &json!({"eventType": "invoice.paid", "eventId": "evt-1", "payload": {}}),
        )
        .await;
    assert_eq!(message.status, StatusCode::ACCEPTED);
    let msg_id = message.json()["id"].as_str().unwrap().to_owned();
    let failing = wait_for(&seen, &secret, "message.attempt.failing").await;
    let data = &failing["data"];
    assert_eq!(data["appId"], app_id);
    assert_eq!(data["appUid"], "tenant");
    assert_eq!(data["msgId"], msg_id.as_str());
    assert_eq!(data["msgEventId"], "evt-1");
    assert_eq!(data["endpointId"], endpoint_id);
    assert_eq!(data["lastAttempt"]["responseStatusCode"], 0);
    // The attempt it names is the fourth.
    let attempts = api
        .get(&format!("/api/v1/app/tenant/attempt/msg/{msg_id}"))
        .await
        .json();
    let attempt_ids: Vec<&str> = attempts["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(attempt_ids.len(), 4, "{attempts}");
    assert!(attempt_ids.contains(&data["lastAttempt"]["id"].as_str().unwrap()));

    // Pointed somewhere that answers: updated, then the fifth attempt recovers it.
    let (good, _) = common::recording_receiver(Duration::ZERO).await;
    let patched = api
        .send(
            Method::PATCH,
            "/api/v1/app/tenant/endpoint/flaky",
            json!({"url": good}).to_string(),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
    let updated = wait_for(&seen, &secret, "endpoint.updated").await;
    assert_eq!(updated["data"]["endpointId"], endpoint_id);
    let recovered = wait_for(&seen, &secret, "message.attempt.recovered").await;
    assert_eq!(recovered["data"]["msgId"], msg_id.as_str());
    assert_eq!(recovered["data"]["lastAttempt"]["responseStatusCode"], 200);

    let deleted = api.delete("/api/v1/app/tenant/endpoint/flaky").await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let deleted = wait_for(&seen, &secret, "endpoint.deleted").await;
    assert_eq!(deleted["data"]["endpointUid"], "flaky");

    let events = received(&seen, &secret);
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "endpoint.created",
            "message.attempt.failing",
            "endpoint.updated",
            "message.attempt.recovered",
            "endpoint.deleted"
        ],
        "each once, in order; nothing about the management application's own endpoint"
    );
    for event in &events {
        check_against_document(event);
    }
    // They are messages of the management application like any other.
    let listed = api.get("/api/v1/app/ops/msg").await.json();
    assert_eq!(listed["data"].as_array().unwrap().len(), 5);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_exhausted_delivery_and_a_disabled_endpoint_are_announced() {
    let dir = tempfile::tempdir().unwrap();
    // Four attempts at about 0, 0.1, 0.2 and 3.2 s; failing for longer than 1.5 s disables
    // the endpoint, at the last attempt.
    let server = start(dir.path(), &[100, 100, 3000], Duration::from_millis(1500)).await;
    let api = Api::new(server.local_addr());
    let (seen, secret) = listen(
        &api,
        Some(&["message.attempt.exhausted", "endpoint.disabled"]),
    )
    .await;
    api.post("/api/v1/app", &json!({"name": "Tenant", "uid": "tenant"}))
        .await;
    let endpoint = api
        .post("/api/v1/app/tenant/endpoint", &json!({"url": REFUSED}))
        .await
        .json();
    let endpoint_id = endpoint["id"].as_str().unwrap();
    let message = api
        .post(
            "/api/v1/app/tenant/msg",
            &json!({"eventType": "invoice.paid", "payload": {"n": 1}}),
        )
        .await
        .json();

    let exhausted = wait_for(&seen, &secret, "message.attempt.exhausted").await;
    assert_eq!(exhausted["data"]["msgId"], message["id"]);
    assert_eq!(exhausted["data"]["msgEventId"], Value::Null);
    assert_eq!(exhausted["data"]["endpointId"], endpoint_id);
    let disabled = wait_for(&seen, &secret, "endpoint.disabled").await;
    assert_eq!(disabled["data"]["endpointId"], endpoint_id);
    assert_eq!(disabled["data"]["endpointUid"], Value::Null);
    assert!(disabled["data"]["failSince"].as_str().is_some());
    let got = api
        .get(&format!("/api/v1/app/tenant/endpoint/{endpoint_id}"))
        .await
        .json();
    assert_eq!(got["disabled"], true);

    let events = received(&seen, &secret);
    let mut types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    types.sort_unstable();
    assert_eq!(
        types,
        ["endpoint.disabled", "message.attempt.exhausted"],
        "the listener's filter holds back endpoint.created"
    );
    for event in &events {
        check_against_document(event);
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_management_application_and_its_event_types_are_made_once() {
    let dir = tempfile::tempdir().unwrap();
    {
        let server = start(dir.path(), &[100], Duration::from_secs(3600)).await;
        let api = Api::new(server.local_addr());
        let app = api.get("/api/v1/app/ops").await;
        assert_eq!(app.status, StatusCode::OK);
        let types = api.get("/api/v1/event-type?limit=50").await.json();
        let names: Vec<&str> = types["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        for name in [
            "endpoint.created",
            "endpoint.deleted",
            "endpoint.disabled",
            "endpoint.updated",
            "message.attempt.exhausted",
            "message.attempt.failing",
            "message.attempt.recovered",
        ] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
        // An operator's own schema for one of them is kept across restarts.
        let put = api
            .put(
                "/api/v1/event-type/endpoint.created",
                &json!({"description": "mine", "schemas": {"1": {"type": "object"}}}),
            )
            .await;
        assert_eq!(put.status, StatusCode::OK, "{:?}", put.body);
        server.shutdown().await.unwrap();
    }
    let server = start(dir.path(), &[100], Duration::from_secs(3600)).await;
    let api = Api::new(server.local_addr());
    let apps = api.get("/api/v1/app?limit=50").await.json();
    let ops: Vec<&Value> = apps["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["uid"] == "ops")
        .collect();
    assert_eq!(ops.len(), 1, "{apps}");
    let kept = api.get("/api/v1/event-type/endpoint.created").await.json();
    assert_eq!(kept["description"], "mine");
    server.shutdown().await.unwrap();
}
