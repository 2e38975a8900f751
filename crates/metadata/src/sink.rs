//! Where emitted events, workflow run requests and decorators go: a [`Sink`] the embedding
//! application provides, or the ready-made [`ChannelSink`].

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::error::SinkError;
use crate::store::BoxFuture;
use crate::value::WorkflowRun;

/// An event a step emitted (`POST /events`).
#[derive(Debug, Clone, PartialEq)]
pub struct EmittedEvent {
    /// The step that emitted it.
    pub step: String,
    /// The event data (an object).
    pub data: Map<String, Value>,
    /// The optional key identifying the event (for de-duplication downstream).
    pub key: Option<String>,
}

/// A request to run a workflow (`POST /workflows/{name}/run`).
#[derive(Debug, Clone, PartialEq)]
pub struct RunRequest {
    /// The step asking.
    pub step: String,
    /// The workflow to run.
    pub workflow: String,
    /// Parameter values (already unwrapped from `{"value": …}`).
    pub parameters: Map<String, Value>,
}

/// A UI decorator a step set (`POST /decorators/{name}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decorator {
    /// The step that set it.
    pub step: String,
    /// The decorator name.
    pub name: String,
    /// What it shows.
    pub kind: DecoratorKind,
}

/// The kinds of decorator.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecoratorKind {
    /// A button linking to `uri`, labelled `description`.
    Link {
        /// The label.
        description: String,
        /// The target.
        uri: String,
    },
}

/// Receives what steps send that is not stored by the service itself.
///
/// Methods return boxed futures so the service can hold any sink as `Arc<dyn Sink>`.
pub trait Sink: Send + Sync + 'static {
    /// An event was emitted. Answered 202 on `Ok`.
    fn emit(&self, event: EmittedEvent) -> BoxFuture<'_, Result<(), SinkError>>;
    /// A workflow run was requested; return the run to answer with (201).
    fn run_workflow(&self, request: RunRequest) -> BoxFuture<'_, Result<WorkflowRun, SinkError>>;
    /// A decorator was set. Answered 201 on `Ok`.
    fn set_decorator(&self, decorator: Decorator) -> BoxFuture<'_, Result<(), SinkError>>;
}

/// One thing a [`ChannelSink`] passes on.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Emitted {
    /// An event.
    Event(EmittedEvent),
    /// A workflow run request, with the run it was answered with.
    Run(RunRequest, WorkflowRun),
    /// A decorator.
    Decorator(Decorator),
}

/// A [`Sink`] that numbers workflow runs (per workflow, from 1) and passes everything on
/// through a bounded channel. When the channel is full, requests wait (back-pressure on the
/// steps); when the receiver is gone, they fail with 503.
///
/// ```
/// use switchyard_metadata::{ChannelSink, Emitted, EmittedEvent, Sink};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (sink, mut received) = ChannelSink::new(16, "https://ci.example.com");
/// let event = EmittedEvent { step: "trigger".into(), data: serde_json::Map::new(), key: None };
/// sink.emit(event.clone()).await?;
/// assert_eq!(received.recv().await, Some(Emitted::Event(event)));
/// # Ok::<(), switchyard_metadata::SinkError>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct ChannelSink {
    sender: mpsc::Sender<Emitted>,
    app_base_url: String,
    run_numbers: Mutex<HashMap<String, u64>>,
}

impl ChannelSink {
    /// A sink with room for `capacity` unread items; run URLs are
    /// `{app_base_url}/workflows/{name}/runs/{number}`.
    #[must_use]
    pub fn new(capacity: usize, app_base_url: &str) -> (Self, mpsc::Receiver<Emitted>) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let sink = ChannelSink {
            sender,
            app_base_url: app_base_url.trim_end_matches('/').to_owned(),
            run_numbers: Mutex::new(HashMap::new()),
        };
        (sink, receiver)
    }

    async fn send(&self, item: Emitted) -> Result<(), SinkError> {
        self.sender.send(item).await.map_err(|_| SinkError::Closed)
    }
}

impl Sink for ChannelSink {
    fn emit(&self, event: EmittedEvent) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(self.send(Emitted::Event(event)))
    }

    fn run_workflow(&self, request: RunRequest) -> BoxFuture<'_, Result<WorkflowRun, SinkError>> {
        Box::pin(async move {
            if self.sender.is_closed() {
                return Err(SinkError::Closed);
            }
            let run_number = {
                let mut numbers = self
                    .run_numbers
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let number = numbers.entry(request.workflow.clone()).or_insert(0);
                *number += 1;
                *number
            };
            let run = WorkflowRun {
                name: request.workflow.clone(),
                run_number,
                app_url: format!(
                    "{}/workflows/{}/runs/{run_number}",
                    self.app_base_url,
                    utf8_percent_encode(&request.workflow, NON_ALPHANUMERIC)
                ),
            };
            self.send(Emitted::Run(request, run.clone())).await?;
            Ok(run)
        })
    }

    fn set_decorator(&self, decorator: Decorator) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(self.send(Emitted::Decorator(decorator)))
    }
}
