//! A step's events reach runtime-event subscribers: the step emits through the metadata API
//! (our client, over loopback), a `Sink` publishes each event into a runtime-events `Hub`
//! under the emitting step's name, and a CEL-filtered subscription receives only the events
//! its filter accepts. This is the path the server wires for `POST /events`.
#![allow(clippy::unwrap_used)] // Test helpers: a panic is a failed test.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard::metadata::{
    BoxFuture, Decorator, EmittedEvent, Interface, MetadataService, RunRequest, Sink, SinkError,
    SpecSource, WebhookServer, WorkflowRun,
};
use switchyard::runtime_events::{Event, Hub};

/// Publishes emitted events into a hub; refuses runs and decorators (not part of this flow).
struct HubSink {
    hub: Arc<Hub>,
}

impl Sink for HubSink {
    fn emit(&self, event: EmittedEvent) -> BoxFuture<'_, Result<(), SinkError>> {
        let mut data = serde_json::Map::new();
        data.insert("data".into(), Value::Object(event.data));
        data.insert("key".into(), event.key.map_or(Value::Null, Value::String));
        let published = self
            .hub
            .publish(Event::new(event.step, "step.event", Value::Object(data)))
            .map(drop)
            .map_err(|e| SinkError::Rejected(e.to_string()));
        Box::pin(async move { published })
    }

    fn run_workflow(&self, _: RunRequest) -> BoxFuture<'_, Result<WorkflowRun, SinkError>> {
        Box::pin(async { Err(SinkError::Rejected("runs are not wired here".into())) })
    }

    fn set_decorator(&self, _: Decorator) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async { Err(SinkError::Rejected("decorators are not wired here".into())) })
    }
}

#[tokio::test]
async fn emitted_events_reach_filtered_subscribers() {
    let hub = Arc::new(Hub::new());
    let pushes = hub
        .subscribe("dockerhub-trigger", r#"data.data.tag.startsWith("v")"#)
        .unwrap();
    let service = MetadataService::builder()
        .step("dockerhub-trigger", SpecSource::from_json("{}").unwrap())
        .sink(HubSink {
            hub: Arc::clone(&hub),
        })
        .build()
        .unwrap();
    let server = WebhookServer::bind_to(service, "127.0.0.1:0".parse().unwrap())
        .bind()
        .await
        .unwrap();
    let relay = Interface::new(&format!("http://{}", server.local_addr().unwrap())).unwrap();
    tokio::spawn(server.serve_until(std::future::pending()));

    relay
        .events()
        .emit(&json!({"tag": "latest", "pusher": "ada"}), None)
        .await
        .unwrap();
    relay
        .events()
        .emit(&json!({"tag": "v1.2.0", "pusher": "ada"}), Some("push-7"))
        .await
        .unwrap();

    let event = hub
        .next_event(&[pushes], Some(Duration::from_secs(5)))
        .await
        .unwrap()
        .expect("the v-tagged push arrives");
    assert_eq!(event.source, "dockerhub-trigger");
    assert_eq!(
        event.data,
        json!({"data": {"tag": "v1.2.0", "pusher": "ada"}, "key": "push-7"})
    );
    // The `latest` push did not match the filter.
    assert!(
        hub.next_event(&[pushes], Some(Duration::from_millis(100)))
            .await
            .unwrap()
            .is_none()
    );

    // A refusal from the sink is the step's 422, with the sink's words.
    let err = relay
        .workflows()
        .run("nightly", &json!({}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("runs are not wired here"), "{err}");
}
