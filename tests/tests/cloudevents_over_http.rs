//! CloudEvents over a real loopback HTTP connection: a hyper client sends events in every
//! content mode and version, a hyper server decodes them with `from_http` and answers with
//! the event converted to 1.0 in the other mode, which the client decodes again.
#![allow(clippy::unwrap_used)] // Test helpers: a panic is a failed test.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use switchyard::cloudevents::http::{self as ce_http, HttpMessage, Mode};
use switchyard::cloudevents::{Data, Event, SpecVersion};
use tokio::net::{TcpListener, TcpStream};

/// Decodes the request; answers 400 with the error text, or 200 with the first event
/// converted to 1.0, in structured mode for a binary request and binary mode otherwise.
async fn receive(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let reply = ce_http::from_http(&parts.headers, &body).and_then(|received| {
        let mode = received.mode();
        let events = received.into_events();
        let count = events.len();
        let Some(event) = events.into_iter().next() else {
            return Ok(HttpMessage {
                headers: Default::default(),
                body: b"empty batch".to_vec(),
            });
        };
        let mut event = event.into_version(SpecVersion::V1_0)?;
        event.set_extension("receivedcount", i32::try_from(count).unwrap_or(i32::MAX))?;
        match mode {
            Mode::Binary => ce_http::to_structured(&event),
            Mode::Structured | Mode::Batch => ce_http::to_binary(&event),
        }
    });
    let response = match reply {
        Ok(message) => message.into_response(StatusCode::OK),
        Err(error) => {
            let mut response = Response::new(error.to_string().into_bytes());
            *response.status_mut() = StatusCode::BAD_REQUEST;
            response
        }
    };
    Ok(response.map(|body| Full::new(Bytes::from(body))))
}

async fn start_receiver() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(receive))
                    .await;
            });
        }
    });
    addr
}

/// Sends one message and returns the status and the decoded reply (or the error body).
async fn send(addr: SocketAddr, message: HttpMessage) -> (StatusCode, Result<Event, String>) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = message
        .into_request(format!("http://{addr}/events").parse().unwrap())
        .map(|body| Full::new(Bytes::from(body)));
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    if status != StatusCode::OK {
        return (status, Err(String::from_utf8_lossy(&body).into_owned()));
    }
    let event = ce_http::from_http(&parts.headers, &body)
        .and_then(|r| r.into_single())
        .map_err(|e| e.to_string());
    (status, event)
}

fn sample(version: SpecVersion) -> Event {
    Event::builder()
        .specversion(version)
        .id("e2e-1")
        .ty("com.example.order.created")
        .source("https://shop.example.com/orders")
        .subject("order 42 — über")
        .time("2026-11-24T10:00:00.123+01:00")
        .datacontenttype("application/json")
        .json_data(&serde_json::json!({"order": 42, "items": ["a", "b"]}))
        .extension("tenant", "acme")
        .build()
        .unwrap()
}

#[tokio::test]
async fn every_mode_and_version_survives_the_wire() {
    let addr = start_receiver().await;
    for version in [SpecVersion::V0_3, SpecVersion::V1_0] {
        let event = sample(version);
        let expected = {
            let mut e = event.clone().into_version(SpecVersion::V1_0).unwrap();
            e.set_extension("receivedcount", 1).unwrap();
            e
        };
        for message in [ce_http::to_binary(&event), ce_http::to_structured(&event)] {
            let (status, reply) = send(addr, message.unwrap()).await;
            assert_eq!(status, StatusCode::OK);
            let reply = reply.unwrap();
            // The reply crossed in the other mode; a header carries the count as a string.
            assert_eq!(reply.id(), expected.id());
            assert_eq!(reply.subject(), expected.subject());
            assert_eq!(reply.time(), expected.time());
            assert_eq!(reply.data(), expected.data());
            assert_eq!(reply.attribute("receivedcount").as_deref(), Some("1"));
        }
    }
}

#[tokio::test]
async fn batches_cross_and_report_their_size() {
    let addr = start_receiver().await;
    let events: Vec<Event> = (0..3)
        .map(|i| {
            Event::builder()
                .id(format!("b{i}"))
                .ty("t")
                .source("/batch")
                .datacontenttype("application/octet-stream")
                .data(vec![i as u8; 4])
                .build()
                .unwrap()
        })
        .collect();
    let (status, reply) = send(addr, ce_http::to_batch(&events).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let reply = reply.unwrap();
    assert_eq!(reply.id(), "b0");
    assert_eq!(reply.data(), Some(&Data::Binary(vec![0; 4])));
    assert_eq!(reply.attribute("receivedcount").as_deref(), Some("3"));
}

#[tokio::test]
async fn malformed_events_get_a_clear_400() {
    let addr = start_receiver().await;
    let mut message = ce_http::to_binary(&sample(SpecVersion::V1_0)).unwrap();
    message
        .headers
        .insert("ce-specversion", "0.9".parse().unwrap());
    let (status, reply) = send(addr, message).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.unwrap_err(),
        "unsupported specversion `0.9` (supported: 0.3, 1.0)"
    );

    let mut message = ce_http::to_structured(&sample(SpecVersion::V1_0)).unwrap();
    message.body.truncate(20);
    let (status, reply) = send(addr, message).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(reply.unwrap_err().starts_with("malformed JSON at line 1"));
}
