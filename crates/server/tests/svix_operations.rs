//! Svix's whole API, operation by operation: every path and method of the open source Svix
//! server's OpenAPI document (read at test time from `../shared/conformance/svix/`, or
//! `$SWITCHYARD_CONFORMANCE_DIR/svix/`) is routed and answers without a 5xx, and the
//! updates, patches and the routes around messages answer as Svix does.
#![allow(clippy::unwrap_used, clippy::print_stdout)] // Test code: the counts are printed.

mod common;

use std::time::Duration;

use common::Api;
use http::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn every_operation_of_the_svix_document_is_routed() {
    let Some(document) = common::svix_document() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());
    let mut unrouted = Vec::new();
    let operations = common::svix_operations(&document);
    let total = operations.len();
    for (method, path) in operations {
        let body = if matches!(method, Method::POST | Method::PUT | Method::PATCH) {
            "{}"
        } else {
            ""
        };
        let reply = api
            .send(
                method.clone(),
                &common::concrete(&path, "nothing-here"),
                body,
            )
            .await;
        assert!(
            reply.status.as_u16() < 500,
            "{method} {path}: {} {:?}",
            reply.status,
            reply.body
        );
        // The router's own answers: a 404 naming no route, or 405. HEAD has no body.
        let no_route = reply.status == StatusCode::METHOD_NOT_ALLOWED
            || (reply.status == StatusCode::NOT_FOUND
                && (method == Method::HEAD
                    || reply.json()["detail"]
                        .as_str()
                        .is_some_and(|d| d.starts_with("no route for"))));
        if no_route {
            unrouted.push(format!("{method} {path}"));
        }
    }
    println!(
        "Svix document: {} of {total} operations routed",
        total - unrouted.len()
    );
    assert!(unrouted.is_empty(), "not routed: {unrouted:#?}");
    assert_eq!(total, 43, "41 operations and two HEADs");
    server.shutdown().await.unwrap();
}

async fn app(api: &Api, uid: &str) -> Value {
    let created = api
        .post("/api/v1/app", &json!({"name": uid, "uid": uid}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    created.json()
}

#[tokio::test]
async fn applications_and_event_types_update_and_patch() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());

    // PUT replaces an application; of one that does not exist, it creates it (201).
    let first = app(&api, "tenant-1").await;
    let put = api
        .put(
            "/api/v1/app/tenant-1",
            &json!({"name": "Tenant one", "uid": "tenant-1", "throttleRate": 5,
                    "metadata": {"plan": "gold"}}),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{:?}", put.body);
    let put = put.json();
    assert_eq!(put["id"], first["id"]);
    assert_eq!(put["name"], "Tenant one");
    assert_eq!(put["throttleRate"], 5);
    assert_eq!(put["rateLimit"], 5);
    assert_eq!(put["metadata"], json!({"plan": "gold"}));
    let created = api
        .put(
            "/api/v1/app/tenant-2",
            &json!({"name": "Two", "uid": "tenant-2"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(api.get("/api/v1/app/tenant-2").await.json()["name"], "Two");
    // A uid another application has: 409, and nothing changed.
    let taken = api
        .put(
            "/api/v1/app/tenant-2",
            &json!({"name": "Two", "uid": "tenant-1"}),
        )
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    let bad = api.put("/api/v1/app/tenant-2", &json!({"name": " "})).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);

    // PATCH changes what is given: the name; `null` clears the rate limit; the old name of
    // the rate field works too; metadata absent stays.
    let patched = api
        .send(
            Method::PATCH,
            "/api/v1/app/tenant-1",
            json!({"name": "Renamed", "throttleRate": null}).to_string(),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
    let patched = patched.json();
    assert_eq!(patched["name"], "Renamed");
    assert_eq!(patched["uid"], "tenant-1");
    assert_eq!(patched["throttleRate"], Value::Null);
    assert_eq!(patched["metadata"], json!({"plan": "gold"}));
    let old_name = api
        .send(
            Method::PATCH,
            "/api/v1/app/tenant-1",
            json!({"rateLimit": 9}).to_string(),
        )
        .await
        .json();
    assert_eq!(old_name["throttleRate"], 9);
    let disagree = api
        .send(
            Method::PATCH,
            "/api/v1/app/tenant-1",
            json!({"rateLimit": 9, "throttleRate": 8}).to_string(),
        )
        .await;
    assert_eq!(disagree.status, StatusCode::UNPROCESSABLE_ENTITY);
    // `uid: null` clears the uid: the application is then reached by its id only.
    let id = first["id"].as_str().unwrap();
    let cleared = api
        .send(
            Method::PATCH,
            &format!("/api/v1/app/{id}"),
            json!({"uid": null}).to_string(),
        )
        .await
        .json();
    assert_eq!(cleared["uid"], Value::Null);
    assert_eq!(
        api.get("/api/v1/app/tenant-1").await.status,
        StatusCode::NOT_FOUND
    );
    let missing = api
        .send(Method::PATCH, "/api/v1/app/nobody", "{}".to_owned())
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // Event types: PATCH keeps the schema unless given; `schemas: null` removes it.
    let schema = json!({"type": "object", "required": ["url"]});
    api.post(
        "/api/v1/event-type",
        &json!({"name": "origin.visit", "description": "visited", "schemas": {"1": schema}}),
    )
    .await;
    let patched = api
        .send(
            Method::PATCH,
            "/api/v1/event-type/origin.visit",
            json!({"description": "a visit"}).to_string(),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
    let patched = patched.json();
    assert_eq!(patched["description"], "a visit");
    assert_eq!(patched["schemas"], json!({"1": schema}));
    let no_schema = api
        .send(
            Method::PATCH,
            "/api/v1/event-type/origin.visit",
            json!({"schemas": null}).to_string(),
        )
        .await
        .json();
    assert_eq!(no_schema["schemas"], json!({"1": {}}));
    assert_eq!(no_schema["description"], "a visit");
    let archived = api
        .send(
            Method::PATCH,
            "/api/v1/event-type/origin.visit",
            json!({"archived": true}).to_string(),
        )
        .await
        .json();
    assert_eq!(archived["archived"], true);
    assert_eq!(
        api.get("/api/v1/event-type").await.json()["data"],
        json!([])
    );
    let with_archived = api
        .get("/api/v1/event-type?include_archived=true")
        .await
        .json();
    assert_eq!(with_archived["data"][0]["name"], "origin.visit");
    assert_eq!(with_archived["data"][0]["archived"], true);
    assert_eq!(
        api.send(
            Method::PATCH,
            "/api/v1/event-type/origin.none",
            "{}".to_owned()
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    // Expunging is refused: event types are archived, never deleted.
    let expunge = api
        .delete("/api/v1/event-type/origin.visit?expunge=true")
        .await;
    assert_eq!(expunge.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        expunge.json()["detail"][0]["loc"],
        json!(["query", "expunge"])
    );

    // `health/ping`, without a token, as Svix.
    let anonymous = api.with_token(None);
    assert_eq!(
        anonymous.get("/api/v1/health/ping").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        anonymous
            .send(Method::HEAD, "/api/v1/health/ping", "")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn endpoints_update_patch_headers_resend_and_recover() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());
    app(&api, "tenant").await;
    for name in ["origin.visit", "origin.other"] {
        api.post(
            "/api/v1/event-type",
            &json!({"name": name, "description": ""}),
        )
        .await;
    }
    let (url, requests) = common::recording_receiver(Duration::ZERO).await;
    let path = "/api/v1/app/tenant/endpoint";
    let created = api
        .post(
            path,
            &json!({"url": url, "uid": "ep-1", "eventTypes": ["origin.visit"],
                    "headers": {"X-Tenant": "1"}, "metadata": {"k": "v"}}),
        )
        .await
        .json();
    let ep = created["id"].as_str().unwrap().to_owned();
    let secret = api.get(&format!("{path}/ep-1/secret")).await.json()["key"].clone();

    // PUT replaces the settings; the custom headers and the secret stay.
    let put = api
        .put(
            &format!("{path}/ep-1"),
            &json!({"url": format!("{url}/v2"), "uid": "ep-1", "description": "second",
                    "filterTypes": ["origin.visit", "origin.other"], "rateLimit": 3}),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{:?}", put.body);
    let put = put.json();
    assert_eq!(put["id"], ep.as_str());
    assert_eq!(put["url"], format!("{url}/v2"));
    assert_eq!(put["description"], "second");
    assert_eq!(put["eventTypes"], json!(["origin.other", "origin.visit"]));
    assert_eq!(put["throttleRate"], 3);
    assert_eq!(
        put["metadata"],
        json!({}),
        "PUT replaces: metadata not given is empty"
    );
    assert_eq!(put["createdAt"], created["createdAt"]);
    assert_eq!(
        api.get(&format!("{path}/ep-1/headers")).await.json()["headers"],
        json!({"X-Tenant": "1"})
    );
    assert_eq!(
        api.get(&format!("{path}/ep-1/secret")).await.json()["key"],
        secret
    );
    // Of an endpoint that does not exist, PUT creates it.
    let made = api
        .put(
            &format!("{path}/ep-new"),
            &json!({"url": url, "uid": "ep-new"}),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
    assert_eq!(
        api.get(&format!("{path}/ep-new")).await.json()["uid"],
        "ep-new"
    );
    let taken = api
        .put(
            &format!("{path}/ep-1"),
            &json!({"url": url, "uid": "ep-new"}),
        )
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    let unknown_type = api
        .put(
            &format!("{path}/ep-1"),
            &json!({"url": url, "uid": "ep-1", "eventTypes": ["origin.none"]}),
        )
        .await;
    assert_eq!(unknown_type.status, StatusCode::UNPROCESSABLE_ENTITY);

    // PATCH: only what is given; `eventTypes: null` means every event type.
    let patched = api
        .send(
            Method::PATCH,
            &format!("{path}/{ep}"),
            json!({"url": url, "eventTypes": null, "metadata": {"a": "b"}}).to_string(),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
    let patched = patched.json();
    assert_eq!(patched["url"], url.as_str());
    assert_eq!(patched["eventTypes"], Value::Null);
    assert_eq!(patched["description"], "second");
    assert_eq!(patched["throttleRate"], 3);
    assert_eq!(patched["metadata"], json!({"a": "b"}));
    assert_eq!(patched["uid"], "ep-1");
    let disabled = api
        .send(
            Method::PATCH,
            &format!("{path}/ep-1"),
            json!({"disabled": true}).to_string(),
        )
        .await
        .json();
    assert_eq!(disabled["disabled"], true);
    let enabled = api
        .send(
            Method::PATCH,
            &format!("{path}/ep-1"),
            json!({"disabled": false, "eventTypes": []}).to_string(),
        )
        .await;
    assert_eq!(
        enabled.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "empty list"
    );
    api.send(
        Method::PATCH,
        &format!("{path}/ep-1"),
        json!({"disabled": false}).to_string(),
    )
    .await;

    // Headers: PATCH sets the given ones and removes those given as null.
    let headers = api
        .send(
            Method::PATCH,
            &format!("{path}/ep-1/headers"),
            json!({"headers": {"x-tenant": null, "X-Region": "eu"}}).to_string(),
        )
        .await;
    assert_eq!(headers.status, StatusCode::NO_CONTENT, "{:?}", headers.body);
    assert_eq!(
        api.get(&format!("{path}/ep-1/headers")).await.json()["headers"],
        json!({"X-Region": "eu"})
    );

    // A message, where it went, and a resend that delivers it again.
    let msg = api
        .post(
            "/api/v1/app/tenant/msg",
            &json!({"eventType": "origin.visit", "payload": {"url": "u"}}),
        )
        .await
        .json();
    let msg_id = msg["id"].as_str().unwrap().to_owned();
    let delivered_to_ep1 = || {
        requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _, _)| p == "/")
            .count()
    };
    for _ in 0..400 {
        if delivered_to_ep1() >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let destinations = api
        .get(&format!("/api/v1/app/tenant/msg/{msg_id}/endpoint"))
        .await;
    assert_eq!(
        destinations.status,
        StatusCode::OK,
        "{:?}",
        destinations.body
    );
    let destinations = destinations.json();
    assert_eq!(destinations["done"], true);
    let listed: Vec<&str> = destinations["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed.len(),
        2,
        "ep-1 (all types now) and ep-new: {destinations}"
    );
    assert!(listed.contains(&ep.as_str()));
    let one = api
        .get(&format!("/api/v1/app/tenant/msg/{msg_id}/endpoint?limit=1"))
        .await
        .json();
    assert_eq!(one["data"].as_array().unwrap().len(), 1);
    assert_eq!(one["done"], false);
    let next = api
        .get(&format!(
            "/api/v1/app/tenant/msg/{msg_id}/endpoint?limit=1&iterator={}",
            one["iterator"].as_str().unwrap()
        ))
        .await
        .json();
    assert_eq!(next["done"], true);
    assert_ne!(next["data"][0]["id"], one["data"][0]["id"]);
    let back = api
        .get(&format!(
            "/api/v1/app/tenant/msg/{msg_id}/endpoint?limit=1&iterator={}",
            next["prevIterator"].as_str().unwrap()
        ))
        .await
        .json();
    assert_eq!(back["data"], one["data"], "the page before, again");
    assert_eq!(back["done"], true);

    let before = requests.lock().unwrap().len();
    let resent = api
        .post(
            &format!("/api/v1/app/tenant/msg/{msg_id}/endpoint/ep-1/resend"),
            &json!({}),
        )
        .await;
    assert_eq!(resent.status, StatusCode::ACCEPTED, "{:?}", resent.body);
    for _ in 0..400 {
        if requests.lock().unwrap().len() > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(requests.lock().unwrap().len() > before, "resent");
    assert_eq!(
        api.post(
            &format!("/api/v1/app/tenant/msg/{msg_id}/endpoint/nobody/resend"),
            &json!({}),
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );

    // Recover: 202 with Svix's task shape; at most 14 days (and five minutes) back from
    // `until` (default now), else a 422 naming `since`.
    let now = chrono::Utc::now();
    let since = |days: i64| (now - chrono::TimeDelta::days(days)).to_rfc3339();
    let recovered = api
        .post(
            &format!("{path}/ep-1/recover"),
            &json!({"since": since(14)}),
        )
        .await;
    assert_eq!(
        recovered.status,
        StatusCode::ACCEPTED,
        "{:?}",
        recovered.body
    );
    let recovered = recovered.json();
    assert_eq!(recovered["status"], "running");
    assert_eq!(recovered["task"], "endpoint.recover");
    assert!(recovered["id"].as_str().unwrap().starts_with("qtask_"));
    let too_far = api
        .post(
            &format!("{path}/ep-1/recover"),
            &json!({"since": since(15)}),
        )
        .await;
    assert_eq!(too_far.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(too_far.json()["detail"][0]["loc"], json!(["body", "since"]));
    let window = api
        .post(
            &format!("{path}/ep-1/recover"),
            &json!({"since": "2026-01-01T00:00:00Z", "until": "2026-01-14T00:00:00Z"}),
        )
        .await;
    assert_eq!(window.status, StatusCode::ACCEPTED, "{:?}", window.body);
    let no_since = api.post(&format!("{path}/ep-1/recover"), &json!({})).await;
    assert_eq!(no_since.status, StatusCode::UNPROCESSABLE_ENTITY);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn examples_stats_attempts_and_expunging() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());
    app(&api, "tenant").await;
    let schema = json!({"type": "object", "required": ["url"],
                        "examples": [{"url": "https://example.org/"}]});
    api.post(
        "/api/v1/event-type",
        &json!({"name": "origin.visit", "description": "", "schemas": {"1": schema}}),
    )
    .await;
    api.post(
        "/api/v1/event-type",
        &json!({"name": "origin.bare", "description": ""}),
    )
    .await;
    let (url_a, seen_a) = common::recording_receiver(Duration::ZERO).await;
    let (url_b, seen_b) = common::recording_receiver(Duration::ZERO).await;
    let path = "/api/v1/app/tenant/endpoint";
    // `a` does not subscribe to `origin.visit`: an example goes to it all the same.
    api.post(
        path,
        &json!({"url": url_a, "uid": "a", "eventTypes": ["origin.bare"]}),
    )
    .await;
    api.post(path, &json!({"url": url_b, "uid": "b"})).await;

    let example = api
        .post(
            &format!("{path}/a/send-example"),
            &json!({"eventType": "origin.visit"}),
        )
        .await;
    assert_eq!(example.status, StatusCode::OK, "{:?}", example.body);
    let example = example.json();
    assert_eq!(example["eventType"], "origin.visit");
    assert_eq!(example["payload"], json!({"url": "https://example.org/"}));
    let ping = api
        .post(
            &format!("{path}/a/send-example"),
            &json!({"eventType": "svix.ping"}),
        )
        .await;
    assert_eq!(ping.status, StatusCode::OK, "{:?}", ping.body);
    assert_eq!(ping.json()["payload"], json!({"success": true}));
    let no_example = api
        .post(
            &format!("{path}/a/send-example"),
            &json!({"eventType": "origin.bare"}),
        )
        .await;
    assert_eq!(no_example.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        api.post(
            &format!("{path}/a/send-example"),
            &json!({"eventType": "origin.none"}),
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    for _ in 0..400 {
        if seen_a.lock().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(seen_a.lock().unwrap().len(), 2, "the example and the ping");
    let bodies: Vec<Value> = seen_a
        .lock()
        .unwrap()
        .iter()
        .map(|(_, _, body)| serde_json::from_slice(body).unwrap())
        .collect();
    assert!(bodies.contains(&json!({"url": "https://example.org/"})));
    assert!(seen_b.lock().unwrap().is_empty(), "only the endpoint named");

    // Stats: two successful attempts for `a`, none for `b`; a window too wide or in the
    // future is refused, naming the parameter.
    let mut stats = json!(null);
    for _ in 0..400 {
        stats = api.get(&format!("{path}/a/stats")).await.json();
        if stats["success"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        stats,
        json!({"success": 2, "pending": 0, "sending": 0, "fail": 0, "canceled": 0})
    );
    assert_eq!(
        api.get(&format!("{path}/b/stats")).await.json()["success"],
        0
    );
    let wide = api
        .get(&format!(
            "{path}/a/stats?since=2020-01-01T00:00:00Z&until=2020-03-01T00:00:00Z"
        ))
        .await;
    assert_eq!(wide.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(wide.json()["detail"][0]["loc"], json!(["query", "since"]));
    let future = api
        .get(&format!("{path}/a/stats?until=2999-01-01T00:00:00Z"))
        .await;
    assert_eq!(future.status, StatusCode::UNPROCESSABLE_ENTITY);

    // One attempt by id, then its response body expunged.
    let msg_id = example["id"].as_str().unwrap();
    let attempts = api
        .get(&format!("/api/v1/app/tenant/attempt/msg/{msg_id}"))
        .await
        .json();
    let attempt_id = attempts["data"][0]["id"].as_str().unwrap().to_owned();
    let attempt_path = format!("/api/v1/app/tenant/msg/{msg_id}/attempt/{attempt_id}");
    let attempt = api.get(&attempt_path).await;
    assert_eq!(attempt.status, StatusCode::OK, "{:?}", attempt.body);
    let attempt = attempt.json();
    assert_eq!(attempt["id"], attempt_id.as_str());
    assert_eq!(attempt["response"], "ok");
    assert_eq!(attempt["statusText"], "success");
    let ping_id = ping.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        api.get(&format!(
            "/api/v1/app/tenant/msg/{ping_id}/attempt/{attempt_id}"
        ))
        .await
        .status,
        StatusCode::NOT_FOUND,
        "an attempt of another message"
    );
    assert_eq!(
        api.get(&format!("/api/v1/app/tenant/msg/{msg_id}/attempt/nonsense"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.delete(&format!("{attempt_path}/content")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(api.get(&attempt_path).await.json()["response"], "");

    // The message's payload expunged: it lists with `{}`.
    assert_eq!(
        api.delete(&format!("/api/v1/app/tenant/msg/{msg_id}/content"))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.get(&format!("/api/v1/app/tenant/msg/{msg_id}"))
            .await
            .json()["payload"],
        json!({})
    );
    assert_eq!(
        api.get(&format!("/api/v1/app/tenant/msg/{ping_id}"))
            .await
            .json()["payload"],
        json!({"success": true})
    );
    assert_eq!(
        api.delete("/api/v1/app/tenant/msg/msg_nothing/content")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_messages_attempted_to_an_endpoint_list_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());
    app(&api, "tenant").await;
    let (url, seen) = common::recording_receiver(Duration::ZERO).await;
    api.post(
        "/api/v1/app/tenant/endpoint",
        &json!({"url": url, "uid": "ep"}),
    )
    .await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let sent = api
            .post(
                "/api/v1/app/tenant/msg",
                &json!({"eventType": "origin.visit", "payload": {"n": n}, "eventId": format!("e{n}")}),
            )
            .await
            .json();
        ids.push(sent["id"].as_str().unwrap().to_owned());
        // One at a time, so the attempts are in the messages' order.
        for _ in 0..400 {
            if seen.lock().unwrap().len() > n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    // The first message sent again: attempted twice, listed once, as the most recent.
    api.post(
        &format!("/api/v1/app/tenant/msg/{}/endpoint/ep/resend", ids[0]),
        &json!({}),
    )
    .await;
    for _ in 0..400 {
        if seen.lock().unwrap().len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let path = "/api/v1/app/tenant/endpoint/ep/msg";
    let mut listed = api.get(path).await.json();
    for _ in 0..400 {
        if listed["data"][0]["id"] == ids[0].as_str() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        listed = api.get(path).await.json();
    }
    let order: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(order, vec![&ids[0], &ids[2], &ids[1]], "{listed}");
    assert_eq!(listed["done"], true);
    let first = &listed["data"][0];
    assert_eq!(first["statusText"], "success");
    assert_eq!(first["status"], 0);
    assert_eq!(first["payload"], json!({"n": 0}));
    assert_eq!(first["eventId"], "e0");
    assert_eq!(first["nextAttempt"], Value::Null);

    // Paged: two, then the last one, never twice.
    let page = api.get(&format!("{path}?limit=2")).await.json();
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    assert_eq!(page["done"], false);
    let rest = api
        .get(&format!(
            "{path}?limit=2&iterator={}",
            page["iterator"].as_str().unwrap()
        ))
        .await
        .json();
    assert!(rest["data"].is_array(), "{rest}");
    let rest_ids: Vec<&str> = rest["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(rest_ids, vec![ids[1].as_str()]);
    assert_eq!(rest["done"], true);
    let without = api.get(&format!("{path}?with_content=false")).await.json();
    assert_eq!(without["data"][0]["payload"], json!({}));
    let failed = api.get(&format!("{path}?status=2")).await.json();
    assert_eq!(failed["data"], json!([]));
    server.shutdown().await.unwrap();
}
