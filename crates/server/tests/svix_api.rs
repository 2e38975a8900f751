//! The Svix-compatible API over loopback HTTP: status codes, bodies, errors, auth, limits,
//! application isolation, delivery and a restart on the same data directory.
#![allow(clippy::unwrap_used)] // Test code.

mod common;

use std::time::Duration;

use common::Api;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use switchyard_webhooks::{Secret, Verifier};

/// A loopback receiver that records (path, headers, body) and answers 200 after `delay`.
async fn receiver(delay: Duration) -> (String, common::Requests) {
    common::recording_receiver(delay).await
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn with_event_type(api: &Api) {
    let created = api
        .post(
            "/api/v1/event-type",
            &json!({"name": "origin.visit", "description": "visited",
                    "schemas": {"1": {"type": "object", "required": ["url"]}}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
}

#[tokio::test]
async fn health_needs_no_token_everything_else_does() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());
    let anonymous = api.with_token(None);

    let health = anonymous.get("/health").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json()["status"], "ok");
    assert_eq!(
        anonymous.get("/api/v1/health/").await.status,
        StatusCode::NO_CONTENT
    );

    let missing = anonymous.get("/api/v1/event-type").await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.json()["code"], "authentication_failed");
    assert!(missing.headers.contains_key("www-authenticate"));
    let wrong = api
        .with_token(Some("test-token-0123456789abcdeX"))
        .get("/api/v1/event-type")
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.json()["detail"], "Invalid token", "Svix's words");
    assert_eq!(api.get("/api/v1/event-type").await.status, StatusCode::OK);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_requests_get_typed_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.body_limit = 4096;
    let server = switchyard_server::Server::start(config).await.unwrap();
    let api = Api::new(server.local_addr());

    let unknown = api.get("/api/v1/nothing-here").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(
        unknown.json(),
        json!({"code": "not_found", "detail": "no route for GET /api/v1/nothing-here"})
    );
    let method = api.send(Method::PATCH, "/api/v1/event-type", "{}").await;
    assert_eq!(method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(method.json()["code"], "method_not_allowed");

    let broken = api
        .send(Method::POST, "/api/v1/event-type", "{\"name\": ")
        .await;
    // Svix's rule and its document's: a body that does not parse, or none, is a 422.
    assert_eq!(broken.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(broken.json()["detail"][0]["loc"], json!(["body"]));
    assert_eq!(broken.json()["detail"][0]["type"], "value_error.jsondecode");
    let empty = api.send(Method::POST, "/api/v1/event-type", "").await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(empty.json()["detail"][0]["type"], "value_error.missing");
    // A query parameter given twice is a 422 naming it, not axum's plain-text 400.
    let twice = api.get("/api/v1/app?limit=1&limit=2").await;
    assert_eq!(twice.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(twice.json()["detail"][0]["loc"], json!(["query", "limit"]));
    let missing = api
        .post("/api/v1/event-type", &json!({"name": "a.b"}))
        .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        missing.json()["detail"][0]["loc"],
        json!(["body", "description"])
    );
    assert_eq!(missing.json()["detail"][0]["type"], "missing");
    let wrong_type = api
        .post("/api/v1/event-type", &json!({"name": 5, "description": ""}))
        .await;
    assert_eq!(wrong_type.status, StatusCode::UNPROCESSABLE_ENTITY);
    let bad_name = api
        .post(
            "/api/v1/event-type",
            &json!({"name": "no/slash", "description": ""}),
        )
        .await;
    assert_eq!(bad_name.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_name.json()["detail"][0]["loc"], json!(["body", "name"]));
    let bad_schema = api
        .post(
            "/api/v1/event-type",
            &json!({"name": "a.b", "description": "", "schemas": {"1": {"type": "nonsense"}}}),
        )
        .await;
    assert_eq!(bad_schema.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad_schema.json()["detail"][0]["msg"]
            .as_str()
            .unwrap()
            .contains("invalid JSON Schema")
    );

    let huge = format!(
        "{{\"name\": \"a.b\", \"description\": \"{}\"}}",
        "x".repeat(5000)
    );
    let too_large = api.send(Method::POST, "/api/v1/event-type", huge).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_large.json()["code"], "payload_too_large");

    let bad_query = api.get("/api/v1/event-type?limit=0").await;
    assert_eq!(bad_query.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        bad_query.json()["detail"][0]["loc"],
        json!(["query", "limit"])
    );
    let bad_iterator = api.get("/api/v1/event-type?iterator=garbage!").await;
    assert_eq!(bad_iterator.status, StatusCode::UNPROCESSABLE_ENTITY);

    let no_app = api.get("/api/v1/app/nobody/endpoint").await;
    assert_eq!(no_app.status, StatusCode::NOT_FOUND);
    assert_eq!(no_app.json()["code"], "not_found");
    // Nothing above was stored.
    assert_eq!(
        api.get("/api/v1/event-type").await.json()["data"],
        json!([])
    );
    // Svix's names, not only swh-webhooks' `<group>.<event>` (a setting restores that).
    for name in ["nodot", "message.attempt.failing"] {
        let taken = api
            .post(
                "/api/v1/event-type",
                &json!({"name": name, "description": ""}),
            )
            .await;
        assert_eq!(
            taken.status,
            StatusCode::CREATED,
            "{name}: {:?}",
            taken.body
        );
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn applications_event_types_and_endpoints_answer_as_svix_does() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());

    // Applications: 201, then 200 with get_if_exists, 409 without.
    let app = api
        .post(
            "/api/v1/app?get_if_exists=true",
            &json!({"name": "Visits", "uid": "visits"}),
        )
        .await;
    assert_eq!(app.status, StatusCode::CREATED);
    let app_id = app.json()["id"].as_str().unwrap().to_owned();
    assert!(app_id.starts_with("app_"), "{app_id}");
    let again = api
        .post(
            "/api/v1/app?get_if_exists=true",
            &json!({"name": "Visits", "uid": "visits"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json()["id"], app_id.as_str());
    // The rate limit under its current name (`throttleRate`) and its old one.
    let throttled = api
        .post("/api/v1/app", &json!({"name": "T", "throttleRate": 5}))
        .await
        .json();
    assert_eq!(throttled["throttleRate"], 5);
    assert_eq!(throttled["rateLimit"], 5);
    let old_name = api
        .post("/api/v1/app", &json!({"name": "R", "rateLimit": 6}))
        .await
        .json();
    assert_eq!(old_name["throttleRate"], 6);
    let both = api
        .post(
            "/api/v1/app",
            &json!({"name": "B", "throttleRate": 5, "rateLimit": 6}),
        )
        .await;
    assert_eq!(both.status, StatusCode::UNPROCESSABLE_ENTITY);
    for made in [&throttled, &old_name] {
        let id = made["id"].as_str().unwrap();
        assert_eq!(
            api.delete(&format!("/api/v1/app/{id}")).await.status,
            StatusCode::NO_CONTENT
        );
    }
    let conflict = api
        .post("/api/v1/app", &json!({"name": "Visits", "uid": "visits"}))
        .await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert_eq!(conflict.json()["code"], "conflict");
    assert_eq!(
        api.get(&format!("/api/v1/app/{app_id}")).await.json()["uid"],
        "visits"
    );

    // Event types: 201, 409 event_type_exists, PUT updates, DELETE archives.
    with_event_type(&api).await;
    let exists = api
        .post(
            "/api/v1/event-type/",
            &json!({"name": "origin.visit", "description": "x"}),
        )
        .await;
    assert_eq!(exists.status, StatusCode::CONFLICT);
    assert_eq!(exists.json()["code"], "event_type_exists");
    let updated = api
        .put(
            "/api/v1/event-type/origin.visit",
            &json!({"description": "updated", "schemas": {"1": {"type": "object"}}}),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK);
    assert_eq!(updated.json()["description"], "updated");
    let listed = api.get("/api/v1/event-type?with_content=true").await.json();
    assert_eq!(listed["done"], true);
    assert_eq!(
        listed["data"][0]["schemas"],
        json!({"1": {"type": "object"}})
    );
    assert!(listed.get("prevIterator").is_some());
    let without = api.get("/api/v1/event-type").await.json();
    assert!(without["data"][0].get("schemas").is_none());
    // PUT of an event type that does not exist creates it, as Svix does.
    assert_eq!(
        api.put("/api/v1/event-type/origin.put", &json!({"description": ""}))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        api.get("/api/v1/event-type/origin.put").await.status,
        StatusCode::OK
    );

    // Endpoints: 201, uid conflict 409, id or uid in paths, headers, secret rotation.
    let path = format!("/api/v1/app/{app_id}/endpoint");
    let (url, _) = receiver(Duration::ZERO).await;
    let endpoint = api
        .post(
            &path,
            &json!({"url": url, "uid": "ep-1", "version": 1, "filterTypes": ["origin.visit"],
                             "channels": ["c1"], "metadata": {"k": "v"}}),
        )
        .await;
    assert_eq!(endpoint.status, StatusCode::CREATED, "{:?}", endpoint.body);
    let endpoint = endpoint.json();
    let ep_id = endpoint["id"].as_str().unwrap().to_owned();
    // The renamed fields go out under both names, and `version` for 1.x clients.
    assert_eq!(endpoint["filterTypes"], json!(["origin.visit"]));
    assert_eq!(endpoint["eventTypes"], json!(["origin.visit"]));
    assert_eq!(endpoint["version"], 1);
    assert_eq!(endpoint["throttleRate"], json!(null));
    assert_eq!(endpoint["channels"], json!(["c1"]));
    assert_eq!(endpoint["metadata"], json!({"k": "v"}));
    let dup = api.post(&path, &json!({"url": url, "uid": "ep-1"})).await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert_eq!(dup.json()["code"], "conflict");
    let unknown_type = api
        .post(&path, &json!({"url": url, "filterTypes": ["origin.none"]}))
        .await;
    assert_eq!(unknown_type.status, StatusCode::UNPROCESSABLE_ENTITY);
    // The current names: `eventTypes` and `throttleRate` (svix 2.x), read back under both.
    let current = api
        .post(
            &path,
            &json!({"url": url, "eventTypes": ["origin.visit"], "throttleRate": 7}),
        )
        .await;
    assert_eq!(current.status, StatusCode::CREATED, "{:?}", current.body);
    let current = current.json();
    assert_eq!(current["eventTypes"], json!(["origin.visit"]));
    assert_eq!(current["filterTypes"], json!(["origin.visit"]));
    assert_eq!(current["throttleRate"], 7);
    assert_eq!(current["rateLimit"], 7);
    let current_id = current["id"].as_str().unwrap().to_owned();
    assert_eq!(
        api.delete(&format!("{path}/{current_id}")).await.status,
        StatusCode::NO_CONTENT
    );
    // Both spellings at once: the same value is fine, different values are a 422.
    let same = api
        .post(
            &path,
            &json!({"url": url, "eventTypes": ["origin.visit"], "filterTypes": ["origin.visit"],
                    "throttleRate": 3, "rateLimit": 3}),
        )
        .await;
    assert_eq!(same.status, StatusCode::CREATED, "{:?}", same.body);
    let same_id = same.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        api.delete(&format!("{path}/{same_id}")).await.status,
        StatusCode::NO_CONTENT
    );
    for (body, field) in [
        (
            json!({"url": url, "eventTypes": ["origin.visit"], "filterTypes": ["origin.create"]}),
            "eventTypes",
        ),
        (
            json!({"url": url, "throttleRate": 3, "rateLimit": 4}),
            "throttleRate",
        ),
        (json!({"url": url, "eventTypes": []}), "eventTypes"),
    ] {
        let refused = api.post(&path, &body).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(
            refused.json()["detail"][0]["loc"],
            json!(["body", field]),
            "{body}"
        );
    }
    let bad_secret = api
        .post(&path, &json!({"url": url, "secret": "plaintext"}))
        .await;
    assert_eq!(bad_secret.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        bad_secret.json()["detail"][0]["loc"],
        json!(["body", "secret"])
    );
    assert_eq!(
        api.get(&format!("{path}/ep-1")).await.json()["id"],
        ep_id.as_str()
    );
    assert_eq!(
        api.get(&format!("{path}/{ep_id}/")).await.json()["uid"],
        "ep-1"
    );

    let secret = api.get(&format!("{path}/ep-1/secret")).await.json()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(secret.starts_with("whsec_"));
    let given = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let rotated = api
        .post(
            &format!("{path}/ep-1/secret/rotate"),
            &json!({"key": given}),
        )
        .await;
    // 200 with the new key (svix 2.x parses the answer), where the document says 204.
    assert_eq!(rotated.status, StatusCode::OK);
    assert_eq!(rotated.json(), json!({"key": given}));
    assert_eq!(
        api.get(&format!("{path}/ep-1/secret")).await.json()["key"],
        given
    );
    let fresh = api
        .send(Method::POST, &format!("{path}/ep-1/secret/rotate"), "")
        .await;
    assert_eq!(fresh.status, StatusCode::OK);
    let fresh = fresh.json()["key"].clone();
    assert_ne!(fresh, given);
    assert_eq!(
        api.get(&format!("{path}/ep-1/secret")).await.json()["key"],
        fresh
    );

    let headers = api
        .put(
            &format!("{path}/ep-1/headers"),
            &json!({"headers": {"X-Swh-Event": "origin.visit"}}),
        )
        .await;
    assert_eq!(headers.status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.get(&format!("{path}/ep-1/headers")).await.json()["headers"],
        json!({"X-Swh-Event": "origin.visit"})
    );
    let reserved = api
        .put(
            &format!("{path}/ep-1/headers"),
            &json!({"headers": {"webhook-id": "x"}}),
        )
        .await;
    assert_eq!(reserved.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Pagination: three endpoints, two per page, newest first by default.
    for n in 2..=3 {
        api.post(&path, &json!({"url": url, "uid": format!("ep-{n}")}))
            .await;
    }
    let first = api.get(&format!("{path}?limit=2")).await.json();
    assert_eq!(first["done"], false);
    assert_eq!(first["data"][0]["uid"], "ep-3");
    let iterator = first["iterator"].as_str().unwrap();
    let second = api
        .get(&format!("{path}?limit=2&iterator={iterator}"))
        .await
        .json();
    assert_eq!(second["done"], true);
    assert_eq!(second["data"][0]["uid"], "ep-1");
    let ascending = api.get(&format!("{path}?order=ascending")).await.json();
    assert_eq!(ascending["data"][0]["uid"], "ep-1");

    assert_eq!(
        api.delete(&format!("{path}/ep-2")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.delete(&format!("{path}/ep-2")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.delete("/api/v1/event-type/origin.visit").await.status,
        StatusCode::NO_CONTENT
    );
    let archived = api.get("/api/v1/event-type/origin.visit").await.json();
    assert_eq!(archived["archived"], true);
    let names: Vec<Value> = api.get("/api/v1/event-type").await.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("origin.put")]);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_delivered_signed_and_applications_are_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());
    with_event_type(&api).await;
    let (url, seen) = receiver(Duration::ZERO).await;
    let mut secrets = Vec::new();
    for app in ["a", "b"] {
        api.post("/api/v1/app", &json!({"name": app, "uid": app}))
            .await;
        let created = api
            .post(
                &format!("/api/v1/app/{app}/endpoint"),
                &json!({"url": format!("{url}/{app}"), "uid": "ep"}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED);
        let key = api
            .get(&format!("/api/v1/app/{app}/endpoint/ep/secret"))
            .await
            .json()["key"]
            .clone();
        secrets.push(key.as_str().unwrap().parse::<Secret>().unwrap());
    }

    // The payload's bytes are kept exactly: spacing and key order included.
    let body = r#"{"eventType": "origin.visit", "payload": {"url":  "https://x", "a": [1, 2.50]}, "eventId": "e-1"}"#;
    let sent = api.send(Method::POST, "/api/v1/app/a/msg", body).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{:?}", sent.body);
    let sent = sent.json();
    let msg_id = sent["id"].as_str().unwrap().to_owned();
    assert_eq!(sent["eventId"], "e-1");
    assert_eq!(sent["payload"], json!({"url": "https://x", "a": [1, 2.50]}));

    wait_for("the delivery", || !seen.lock().unwrap().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let deliveries = seen.lock().unwrap().clone();
    assert_eq!(
        deliveries.len(),
        1,
        "only application a's endpoint receives it"
    );
    let (path, headers, delivered) = &deliveries[0];
    assert_eq!(path, "/a");
    assert_eq!(
        delivered.as_ref(),
        br#"{"url":  "https://x", "a": [1, 2.50]}"#
    );
    Verifier::new(secrets[0].clone())
        .verify(headers, delivered)
        .unwrap();
    assert!(
        Verifier::new(secrets[1].clone())
            .verify(headers, delivered)
            .is_err()
    );

    // The message, its attempts, and the lists, from application a only.
    let message = api.get(&format!("/api/v1/app/a/msg/{msg_id}")).await;
    assert_eq!(message.status, StatusCode::OK);
    assert_eq!(message.json()["eventId"], "e-1", "kept, not only echoed");
    assert_eq!(
        api.get(&format!("/api/v1/app/b/msg/{msg_id}")).await.status,
        StatusCode::NOT_FOUND
    );
    let listed = api
        .get("/api/v1/app/a/msg?event_types=origin.visit")
        .await
        .json();
    assert_eq!(listed["data"][0]["id"], msg_id.as_str());
    // Several event types, given as Svix's clients give them (the parameter repeated) or
    // joined with commas: a message of any of them.
    for query in [
        "event_types=no.such&event_types=origin.visit",
        "event_types=no.such,origin.visit",
    ] {
        let listed = api.get(&format!("/api/v1/app/a/msg?{query}")).await.json();
        assert_eq!(listed["data"][0]["id"], msg_id.as_str(), "{query}");
    }
    let none = api
        .get("/api/v1/app/a/msg?event_types=no.such&event_types=nor.this")
        .await
        .json();
    assert_eq!(none["data"], json!([]));
    // At most 100 of them.
    let names = |n: usize| {
        (0..n)
            .map(|i| format!("event_types=t.n{i}"))
            .collect::<Vec<_>>()
            .join("&")
    };
    let at_limit = api.get(&format!("/api/v1/app/a/msg?{}", names(100))).await;
    assert_eq!(at_limit.status, StatusCode::OK);
    let past = api.get(&format!("/api/v1/app/a/msg?{}", names(101))).await;
    assert_eq!(past.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        past.json()["detail"][0]["loc"],
        json!(["query", "event_types"])
    );
    assert_eq!(api.get("/api/v1/app/b/msg").await.json()["data"], json!([]));
    // Attempts by the class of their response status.
    for (class, count) in [("200", 1), ("500", 0), ("0", 0)] {
        let listed = api
            .get(&format!(
                "/api/v1/app/a/attempt/msg/{msg_id}?status_code_class={class}"
            ))
            .await
            .json();
        assert_eq!(listed["data"].as_array().unwrap().len(), count, "{class}");
    }
    let bad_class = api
        .get(&format!(
            "/api/v1/app/a/attempt/msg/{msg_id}?status_code_class=250"
        ))
        .await;
    assert_eq!(bad_class.status, StatusCode::UNPROCESSABLE_ENTITY);
    let attempts = api
        .get(&format!("/api/v1/app/a/attempt/msg/{msg_id}"))
        .await
        .json();
    let attempt = &attempts["data"][0];
    assert_eq!(attempt["msgId"], msg_id.as_str());
    assert_eq!(attempt["status"], 0);
    assert_eq!(attempt["statusText"], "success");
    assert_eq!(attempt["triggerType"], 0);
    assert_eq!(attempt["responseStatusCode"], 200);
    assert_eq!(attempt["response"], "ok");
    let by_endpoint = api
        .get("/api/v1/app/a/attempt/endpoint/ep?status=0")
        .await
        .json();
    assert_eq!(by_endpoint["data"][0]["id"], attempt["id"]);
    let later = api
        .get("/api/v1/app/a/attempt/endpoint/ep?after=2999-01-01T00:00:00%2B00:00")
        .await
        .json();
    assert_eq!(later["data"], json!([]));
    let bad_time = api
        .get("/api/v1/app/a/attempt/endpoint/ep?before=yesterday")
        .await;
    assert_eq!(bad_time.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Schema violations and unknown event types are refused and store nothing.
    let invalid = api
        .post(
            "/api/v1/app/a/msg",
            &json!({"eventType": "origin.visit", "payload": {}}),
        )
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        invalid.json()["detail"][0]["msg"]
            .as_str()
            .unwrap()
            .contains("url")
    );
    // An event type nobody registered is taken, as Svix takes it.
    let unknown = api
        .post(
            "/api/v1/app/a/msg",
            &json!({"eventType": "origin.none", "payload": {"free": "form"}}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::ACCEPTED, "{:?}", unknown.body);
    let bad_event_id = api
        .post(
            "/api/v1/app/a/msg",
            &json!({"eventType": "origin.none", "payload": {}, "eventId": "a b"}),
        )
        .await;
    assert_eq!(bad_event_id.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        bad_event_id.json()["detail"][0]["loc"],
        json!(["body", "eventId"])
    );
    let not_object = api
        .post(
            "/api/v1/app/a/msg",
            &json!({"eventType": "origin.visit", "payload": [1]}),
        )
        .await;
    assert_eq!(not_object.status, StatusCode::UNPROCESSABLE_ENTITY);
    let bad_channel = api
        .post(
            "/api/v1/app/a/msg",
            &json!({"eventType": "origin.visit", "payload": {"url": "x"}, "channels": ["a", "b c"]}),
        )
        .await;
    assert_eq!(bad_channel.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        bad_channel.json()["detail"][0]["loc"],
        json!(["body", "channels"])
    );
    // The first message and the one of an unregistered type; none of the refused ones.
    assert_eq!(
        api.get("/api/v1/app/a/msg").await.json()["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Deleting an application takes its endpoints with it.
    assert_eq!(
        api.delete("/api/v1/app/b").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(api.get("/api/v1/app/b").await.status, StatusCode::NOT_FOUND);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_deliveries_and_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());
    with_event_type(&api).await;
    let (url, seen) = receiver(Duration::from_millis(700)).await;
    api.post("/api/v1/app", &json!({"name": "slow", "uid": "slow"}))
        .await;
    api.post(
        "/api/v1/app/slow/endpoint",
        &json!({"url": url, "uid": "ep"}),
    )
    .await;
    let sent = api
        .post(
            "/api/v1/app/slow/msg",
            &json!({"eventType": "origin.visit", "payload": {"url": "x"}}),
        )
        .await;
    let msg_id = sent.json()["id"].as_str().unwrap().to_owned();
    // The receiver is still answering when the server is told to stop.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(seen.lock().unwrap().is_empty());
    server.shutdown().await.unwrap();
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "the in-flight delivery finished"
    );

    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());
    assert_eq!(api.get("/api/v1/app/slow").await.status, StatusCode::OK);
    assert_eq!(
        api.get("/api/v1/event-type/origin.visit").await.json()["archived"],
        false
    );
    let attempts = api
        .get(&format!("/api/v1/app/slow/attempt/msg/{msg_id}"))
        .await
        .json();
    assert_eq!(attempts["data"].as_array().unwrap().len(), 1, "{attempts}");
    assert_eq!(
        attempts["data"][0]["status"], 0,
        "the attempt was recorded as a success"
    );
    // An application created after the restart gets the event types too.
    api.post("/api/v1/app", &json!({"name": "new", "uid": "new"}))
        .await;
    api.post(
        "/api/v1/app/new/endpoint",
        &json!({"url": url, "uid": "ep"}),
    )
    .await;
    let sent = api
        .post(
            "/api/v1/app/new/msg",
            &json!({"eventType": "origin.visit", "payload": {"url": "y"}}),
        )
        .await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{:?}", sent.body);
    let generated: Value = api.get("/health").await.json();
    assert_eq!(generated["status"], "ok");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_token_is_generated_once_when_none_is_configured() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.tokens.clear();
    let server = switchyard_server::Server::start(config.clone())
        .await
        .unwrap();
    let token = server.token().expose().to_owned();
    assert!(token.starts_with("sy_") && token.len() > 40, "{token}");
    let file = std::fs::read_to_string(dir.path().join(switchyard_server::TOKEN_FILE)).unwrap();
    assert_eq!(file.trim(), token);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let api = Api::new(server.local_addr()).with_token(Some(&token));
    assert_eq!(api.get("/api/v1/app").await.status, StatusCode::OK);
    server.shutdown().await.unwrap();
    let again = switchyard_server::Server::start(config).await.unwrap();
    assert_eq!(again.token().expose(), token);
    again.shutdown().await.unwrap();
}

/// The `[webhooks]` rules: Svix's by default (any event type, payloads of registered types
/// validated, `format` an annotation); each stricter or laxer rule is a setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_rules_are_settings() {
    let naive = json!({"visit_date": "2026-12-05T15:15:16.123456"});
    let schema = json!({"1": {"type": "object", "required": ["visit_date"],
        "properties": {"visit_date": {"type": "string", "format": "date-time"}}}});
    let cases = [
        // (rules, unregistered type, naive date-time, missing required field)
        (switchyard_server::WebhooksConfig::default(), 202, 202, 422),
        (
            switchyard_server::WebhooksConfig {
                require_event_types: true,
                ..Default::default()
            },
            422,
            202,
            422,
        ),
        (
            switchyard_server::WebhooksConfig {
                assert_formats: true,
                ..Default::default()
            },
            202,
            422,
            422,
        ),
        (
            switchyard_server::WebhooksConfig {
                validate_payloads: false,
                ..Default::default()
            },
            202,
            202,
            202,
        ),
    ];
    for (rules, unregistered, naive_status, missing) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut config = common::config(dir.path());
        config.webhooks = rules.clone();
        let server = switchyard_server::Server::start(config).await.unwrap();
        let api = Api::new(server.local_addr());
        assert_eq!(
            api.post("/api/v1/app", &json!({"name": "a", "uid": "a"}))
                .await
                .status,
            StatusCode::CREATED
        );
        let created = api
            .post(
                "/api/v1/event-type",
                &json!({"name": "origin.visit", "description": "", "schemas": schema}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED);
        let send = |event_type: &str, payload: &serde_json::Value| {
            let api = api.clone();
            let body = json!({"eventType": event_type, "payload": payload});
            async move { api.post("/api/v1/app/a/msg", &body).await.status.as_u16() }
        };
        assert_eq!(
            send("user.signup", &json!({})).await,
            unregistered,
            "{rules:?}"
        );
        assert_eq!(
            send("origin.visit", &naive).await,
            naive_status,
            "{rules:?}"
        );
        assert_eq!(send("origin.visit", &json!({})).await, missing, "{rules:?}");
        server.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn lists_page_back_with_prev_iterator() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());
    api.post("/api/v1/app", &json!({"name": "a", "uid": "a"}))
        .await;
    let mut sent = Vec::new();
    for i in 0..5 {
        let message = api
            .post(
                "/api/v1/app/a/msg",
                &json!({"eventType": "origin.visit", "payload": {"i": i}}),
            )
            .await
            .json();
        sent.push(message["id"].as_str().unwrap().to_owned());
    }
    sent.reverse(); // Messages list newest first.
    let ids = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let get = |query: String| {
        let api = &api;
        async move {
            api.get(&format!("/api/v1/app/a/msg?limit=2{query}"))
                .await
                .json()
        }
    };
    let first = get(String::new()).await;
    assert_eq!(ids(&first), sent[0..2]);
    let second = get(format!("&iterator={}", first["iterator"].as_str().unwrap())).await;
    assert_eq!(ids(&second), sent[2..4]);
    let prev = second["prevIterator"].as_str().unwrap();
    assert!(prev.starts_with('-'), "Svix's mark: {prev}");
    // Back: the first page again, in the same order, and nothing before it.
    let back = get(format!("&iterator={prev}")).await;
    assert_eq!(ids(&back), sent[0..2]);
    assert_eq!(back["done"], true);
    let before_first = get(format!(
        "&iterator={}",
        first["prevIterator"].as_str().unwrap()
    ))
    .await;
    assert_eq!(before_first["data"], json!([]));
    assert_eq!(before_first["done"], true);
    // From the page after, forward again.
    let again = get(format!("&iterator={}", back["iterator"].as_str().unwrap())).await;
    assert_eq!(ids(&again), sent[2..4]);
    let garbage = api.get("/api/v1/app/a/msg?iterator=-nonsense").await;
    assert_eq!(garbage.status, StatusCode::UNPROCESSABLE_ENTITY);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_message_goes_to_each_of_its_channels() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());
    api.post("/api/v1/app", &json!({"name": "a", "uid": "a"}))
        .await;
    let (url, seen) = receiver(Duration::ZERO).await;
    for (uid, channels) in [
        ("blue", json!(["blue"])),
        ("red", json!(["red"])),
        ("green", json!(["green"])),
    ] {
        let created = api
            .post(
                "/api/v1/app/a/endpoint",
                &json!({"url": format!("{url}/{uid}"), "uid": uid, "channels": channels}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    }
    let sent = api
        .post(
            "/api/v1/app/a/msg",
            &json!({"eventType": "origin.visit", "payload": {}, "channels": ["red", "blue"]}),
        )
        .await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{:?}", sent.body);
    let message = sent.json();
    assert_eq!(message["channels"], json!(["red", "blue"]));
    wait_for("both deliveries", || seen.lock().unwrap().len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut paths: Vec<String> = seen.lock().unwrap().iter().map(|r| r.0.clone()).collect();
    paths.sort();
    assert_eq!(paths, ["/blue", "/red"], "not the green endpoint");
    let listed = api.get("/api/v1/app/a/msg?channel=blue").await.json();
    assert_eq!(listed["data"][0]["id"], message["id"]);
    let six = api
        .post(
            "/api/v1/app/a/msg",
            &json!({"eventType": "origin.visit", "payload": {},
                    "channels": ["a", "b", "c", "d", "e", "f"]}),
        )
        .await;
    assert_eq!(six.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(six.json()["detail"][0]["loc"], json!(["body", "channels"]));
    server.shutdown().await.unwrap();
}
