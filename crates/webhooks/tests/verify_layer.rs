//! The receiver-side verification layer, driven through tower as a server would drive it.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use switchyard_webhooks::verify::VerifyWebhookLayer;
use switchyard_webhooks::{Secret, Signer, Verified, Verifier};
use tower::{ServiceBuilder, ServiceExt as _, service_fn};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An inner service that echoes the body it was handed and the verified id.
fn echo(
    layer: VerifyWebhookLayer,
) -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future: Send,
> + Clone {
    ServiceBuilder::new().layer(layer).service(service_fn(
        |request: Request<Full<Bytes>>| async move {
            let id = request.extensions().get::<Verified>().unwrap().id.clone();
            let body = request.into_body().collect().await.unwrap().to_bytes();
            let mut reply = id.into_bytes();
            reply.push(b'|');
            reply.extend_from_slice(&body);
            Ok::<_, Infallible>(Response::new(Full::from(reply)))
        },
    ))
}

async fn text(response: Response<Full<Bytes>>) -> String {
    String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

fn signed(secret: &Secret, body: &'static str, ts: i64) -> Request<Full<Bytes>> {
    let mut request = Request::post("/").body(Full::from(body)).unwrap();
    *request.headers_mut() = Signer::new(secret.clone()).headers("msg_abc", ts, body.as_bytes());
    request
}

#[tokio::test]
async fn verified_requests_reach_the_handler_with_their_exact_body() {
    let secret = Secret::generate().unwrap();
    let service = echo(VerifyWebhookLayer::new(Verifier::new(secret.clone())));
    let body = "{ \"b\": 1,  \"a\": [2, 3] }";
    let response = service.oneshot(signed(&secret, body, now())).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, format!("msg_abc|{body}"));
}

#[tokio::test]
async fn failures_are_401_with_the_reason() {
    let secret = Secret::generate().unwrap();
    let service = echo(VerifyWebhookLayer::new(Verifier::new(secret.clone())));

    let stranger = Secret::generate().unwrap();
    let response = service
        .clone()
        .oneshot(signed(&stranger, "{}", now()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(text(response).await, "no matching signature");

    let response = service
        .clone()
        .oneshot(signed(&secret, "{}", now() - 3600))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(text(response).await.contains("too old"));

    let response = service
        .oneshot(Request::post("/").body(Full::from("{}")).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(text(response).await, "missing header `webhook-id`");
}

#[tokio::test]
async fn oversized_bodies_are_413_and_the_limit_is_inclusive() {
    let secret = Secret::generate().unwrap();
    let service = echo(VerifyWebhookLayer::new(Verifier::new(secret.clone())).body_limit(8));
    let response = service
        .clone()
        .oneshot(signed(&secret, "12345678", now()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = service
        .oneshot(signed(&secret, "123456789", now()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(text(response).await, "body larger than the 8-byte limit");
}

#[tokio::test]
async fn rotated_keys_verify_during_the_grace_period() {
    let old = Secret::generate().unwrap();
    let new = Secret::generate().unwrap();
    let verifier = Verifier::new(new.clone()).with_secret(old.clone());
    let service = echo(VerifyWebhookLayer::new(verifier));
    for secret in [&old, &new] {
        let response = service
            .clone()
            .oneshot(signed(secret, "{}", now()))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}
