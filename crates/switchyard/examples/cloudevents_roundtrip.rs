//! Sends one CloudEvent in each HTTP content mode to a loopback receiver and prints what it
//! decoded: `cargo run --release --example cloudevents_roundtrip -p switchyard`.
#![allow(clippy::print_stdout)] // A demo program: printing is its job.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use switchyard::cloudevents::{Event, http as ce_http};
use tokio::net::{TcpListener, TcpStream};

/// The receiver: decode whatever arrives and describe it in the response body.
async fn describe(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let text = match ce_http::from_http(&parts.headers, &body) {
        Ok(received) => {
            let mode = received.mode();
            let events = received.into_events();
            let lines: Vec<String> = events
                .iter()
                .map(|e| {
                    format!(
                        "  {} {} from {} ({} bytes of data)",
                        e.specversion(),
                        e.ty(),
                        e.source(),
                        e.data().map_or(0, |d| d.as_bytes().len())
                    )
                })
                .collect();
            format!(
                "{mode:?} mode, {} event(s):\n{}",
                events.len(),
                lines.join("\n")
            )
        }
        Err(error) => format!("rejected: {error}"),
    };
    Ok(Response::new(Full::new(Bytes::from(text))))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(
                http1::Builder::new().serve_connection(TokioIo::new(stream), service_fn(describe)),
            );
        }
    });

    let event = Event::builder()
        .ty("com.example.sampletype1")
        .source("https://example.com/event-producer")
        .datacontenttype("application/json")
        .json_data(&serde_json::json!({"message": "Hello World!"}))
        .build()?;
    let messages = [
        ("binary", ce_http::to_binary(&event)?),
        ("structured", ce_http::to_structured(&event)?),
        ("batch", ce_http::to_batch(&[event.clone(), event.clone()])?),
    ];
    for (name, message) in messages {
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(TcpStream::connect(addr).await?))
                .await?;
        tokio::spawn(connection);
        let request = message
            .into_request(format!("http://{addr}/").parse()?)
            .map(|b| Full::new(Bytes::from(b)));
        let reply = sender
            .send_request(request)
            .await?
            .into_body()
            .collect()
            .await?
            .to_bytes();
        println!(
            "sent {name}: receiver saw {}",
            String::from_utf8_lossy(&reply)
        );
    }
    Ok(())
}
