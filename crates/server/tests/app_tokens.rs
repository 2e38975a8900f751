//! Application tokens (`POST /api/v1/auth/app-portal-access/{app}`): a token reaches its own
//! application's routes and nothing of another's, read-only tokens only read, and logging
//! out revokes it.
#![allow(clippy::unwrap_used)] // Test code.

mod common;

use http::{Method, StatusCode};
use serde_json::{Value, json};

use common::Api;

/// Issues a token for `app` through the server token.
async fn token_for(api: &Api, app: &str, body: &Value) -> (String, String) {
    let issued = api
        .post(&format!("/api/v1/auth/app-portal-access/{app}"), body)
        .await;
    assert_eq!(issued.status, StatusCode::OK, "{:?}", issued.body);
    let issued = issued.json();
    (
        issued["token"].as_str().unwrap().to_owned(),
        issued["url"].as_str().unwrap().to_owned(),
    )
}

/// Two applications, each with an endpoint and a message.
async fn two_tenants(api: &Api) -> Vec<(String, String, String)> {
    api.post(
        "/api/v1/event-type",
        &json!({"name": "origin.visit", "description": ""}),
    )
    .await;
    let mut made = Vec::new();
    for uid in ["tenant-a", "tenant-b"] {
        let app = api
            .post("/api/v1/app", &json!({"name": uid, "uid": uid}))
            .await
            .json();
        let endpoint = api
            .post(
                &format!("/api/v1/app/{uid}/endpoint"),
                &json!({"url": "http://127.0.0.1:9/", "uid": format!("{uid}-ep")}),
            )
            .await
            .json();
        let message = api
            .post(
                &format!("/api/v1/app/{uid}/msg"),
                &json!({"eventType": "origin.visit", "payload": {}}),
            )
            .await
            .json();
        made.push((
            app["id"].as_str().unwrap().to_owned(),
            endpoint["id"].as_str().unwrap().to_owned(),
            message["id"].as_str().unwrap().to_owned(),
        ));
    }
    made
}

#[tokio::test]
async fn a_token_reaches_its_application_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());
    let tenants = two_tenants(&api).await;
    let (token, url) = token_for(&api, "tenant-a", &json!({})).await;
    assert!(token.starts_with("appsk_"), "{token}");
    assert_eq!(
        url,
        format!("http://{}/portal/#key={token}", server.local_addr())
    );
    let own = api.with_token(Some(&token));

    // Its own application: by uid and by id, endpoints, messages, attempts; the event-type
    // catalogue, read-only.
    let (a_id, a_ep, a_msg) = &tenants[0];
    for path in [
        "/api/v1/app/tenant-a".to_owned(),
        format!("/api/v1/app/{a_id}"),
        "/api/v1/app/tenant-a/endpoint".to_owned(),
        format!("/api/v1/app/tenant-a/endpoint/{a_ep}/secret"),
        "/api/v1/app/tenant-a/msg".to_owned(),
        format!("/api/v1/app/tenant-a/msg/{a_msg}"),
        format!("/api/v1/app/tenant-a/attempt/msg/{a_msg}"),
        "/api/v1/event-type".to_owned(),
        "/api/v1/event-type/origin.visit".to_owned(),
    ] {
        let reply = own.get(&path).await;
        assert_eq!(reply.status, StatusCode::OK, "GET {path}: {:?}", reply.body);
    }
    let created = own
        .post(
            "/api/v1/app/tenant-a/endpoint",
            &json!({"url": "http://127.0.0.1:9/second"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let resent = own
        .post(
            &format!("/api/v1/app/tenant-a/msg/{a_msg}/endpoint/{a_ep}/resend"),
            &json!({}),
        )
        .await;
    assert_eq!(resent.status, StatusCode::ACCEPTED, "{:?}", resent.body);

    // What is the operator's: other applications, the application list and its settings,
    // event-type changes, sending messages, expunging, issuing tokens, the runtime events.
    for (method, path, body) in [
        (Method::GET, "/api/v1/app".to_owned(), ""),
        (Method::POST, "/api/v1/app".to_owned(), r#"{"name": "x"}"#),
        (
            Method::PUT,
            "/api/v1/app/tenant-a".to_owned(),
            r#"{"name": "x"}"#,
        ),
        (Method::DELETE, "/api/v1/app/tenant-a".to_owned(), ""),
        (
            Method::POST,
            "/api/v1/event-type".to_owned(),
            r#"{"name": "a.b", "description": ""}"#,
        ),
        (
            Method::POST,
            "/api/v1/app/tenant-a/msg".to_owned(),
            r#"{"eventType": "origin.visit", "payload": {}}"#,
        ),
        (
            Method::DELETE,
            format!("/api/v1/app/tenant-a/msg/{a_msg}/content"),
            "",
        ),
        (
            Method::POST,
            "/api/v1/auth/app-portal-access/tenant-a".to_owned(),
            "{}",
        ),
        (Method::POST, "/runtime/v1/subscriptions".to_owned(), "{}"),
    ] {
        let reply = own.send(method.clone(), &path, body).await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{method} {path}: {:?}",
            reply.body
        );
        assert_eq!(reply.json()["code"], "forbidden");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn every_route_of_another_application_is_refused() {
    let Some(document) = common::svix_document() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());
    let tenants = two_tenants(&api).await;
    let (token, _) = token_for(&api, "tenant-a", &json!({})).await;
    let own = api.with_token(Some(&token));
    let (b_id, b_ep, b_msg) = &tenants[1];
    // Routes of no application: the health checks (no token needed), the event-type
    // catalogue (shared, readable) and logging out (the token's own).
    let shared = |path: &str| {
        path.starts_with("/api/v1/health")
            || path.starts_with("/api/v1/event-type")
            || path == "/api/v1/auth/logout"
    };
    let mut tried = 0;
    for (method, template) in common::svix_operations(&document) {
        if shared(&template) {
            continue;
        }
        // Real ids of the other application's records, so a refusal is not a 404.
        let path = template
            .replace("{endpoint_id}", b_ep)
            .replace("{msg_id}", b_msg)
            .replace("{event_type_name}", "origin.visit");
        for app in [b_id.as_str(), "tenant-b"] {
            let path = common::concrete_for(&path, app, "something");
            let body = if matches!(method, Method::POST | Method::PUT | Method::PATCH) {
                r#"{"name": "x", "url": "http://127.0.0.1:9/"}"#
            } else {
                ""
            };
            let reply = own.send(method.clone(), &path, body).await;
            assert!(
                matches!(
                    reply.status,
                    StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED
                ),
                "{method} {path} with tenant-a's token: {} {:?}",
                reply.status,
                reply.body
            );
            tried += 1;
        }
    }
    assert_eq!(
        tried,
        2 * 32,
        "32 operations of an application (or the operator), by id and uid"
    );
    // Nothing of tenant-b changed.
    let endpoints = api.get("/api/v1/app/tenant-b/endpoint").await.json();
    assert_eq!(endpoints["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        api.get("/api/v1/app/tenant-b").await.json()["name"],
        "tenant-b"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn read_only_tokens_logout_expiry_and_creation() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());
    two_tenants(&api).await;

    let (reader, _) = token_for(&api, "tenant-a", &json!({"readOnly": true})).await;
    let reader = api.with_token(Some(&reader));
    assert_eq!(
        reader.get("/api/v1/app/tenant-a/endpoint").await.status,
        StatusCode::OK
    );
    let write = reader
        .post(
            "/api/v1/app/tenant-a/endpoint",
            &json!({"url": "http://127.0.0.1:9/"}),
        )
        .await;
    assert_eq!(write.status, StatusCode::FORBIDDEN);

    // Logging out revokes the token; a server token cannot log out.
    let (token, _) = token_for(&api, "tenant-a", &json!({})).await;
    let holder = api.with_token(Some(&token));
    assert_eq!(
        holder.post("/api/v1/auth/logout", &json!({})).await.status,
        StatusCode::NO_CONTENT
    );
    let after = holder.get("/api/v1/app/tenant-a/endpoint").await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        api.post("/api/v1/auth/logout", &json!({})).await.status,
        StatusCode::FORBIDDEN
    );

    // The lifetime: 1 hour to 7 days, else 422 naming `expiry`.
    for expiry in [0, 3599, 604_801] {
        let refused = api
            .post(
                "/api/v1/auth/app-portal-access/tenant-a",
                &json!({"expiry": expiry}),
            )
            .await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{expiry}");
        assert_eq!(
            refused.json()["detail"][0]["loc"],
            json!(["body", "expiry"])
        );
    }
    for expiry in [3600, 604_800] {
        token_for(&api, "tenant-a", &json!({"expiry": expiry})).await;
    }

    // A missing application: 404, or created from `application` (its uid the path's).
    assert_eq!(
        api.post("/api/v1/auth/app-portal-access/tenant-c", &json!({}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let mismatch = api
        .post(
            "/api/v1/auth/app-portal-access/tenant-c",
            &json!({"application": {"name": "C", "uid": "other"}}),
        )
        .await;
    assert_eq!(mismatch.status, StatusCode::UNPROCESSABLE_ENTITY);
    let (created, _) = token_for(
        &api,
        "tenant-c",
        &json!({"application": {"name": "C", "uid": "tenant-c"}}),
    )
    .await;
    assert_eq!(api.get("/api/v1/app/tenant-c").await.json()["name"], "C");
    assert_eq!(
        api.with_token(Some(&created))
            .get("/api/v1/app/tenant-c/endpoint")
            .await
            .status,
        StatusCode::OK
    );
    // The old name of the route works too.
    let old = api
        .post("/api/v1/auth/dashboard-access/tenant-a", &json!({}))
        .await;
    assert_eq!(old.status, StatusCode::OK);

    // Deleting the application revokes its tokens.
    api.delete("/api/v1/app/tenant-c").await;
    assert_eq!(
        api.with_token(Some(&created))
            .get("/api/v1/app/tenant-c/endpoint")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    server.shutdown().await.unwrap();
}
