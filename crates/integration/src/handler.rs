//! Handler traits (actions, polling triggers, connected accounts), closure adapters, and the
//! type-erased, panic-catching form the dispatcher stores them in.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use serde_json::{Map, Value};

use crate::context::ExecutionContext;
use crate::error::FetchError;
use crate::result::{ActionError, ActionResult, ConnectedAccountInfo};

/// Why a handler did not produce its output.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandlerError {
    /// An expected failure, reported to the user as an `action_error` result (for polling
    /// triggers and connected accounts, as an `error` result).
    #[error(transparent)]
    Action(#[from] ActionError),
    /// An API call failed; an `error` result.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// Anything else; an `error` result.
    #[error("{0}")]
    Failed(String),
}

impl HandlerError {
    /// An unexpected failure with a message.
    #[must_use]
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed(message.into())
    }
}

impl From<serde_json::Error> for HandlerError {
    fn from(error: serde_json::Error) -> Self {
        Self::Failed(format!("JSON: {error}"))
    }
}

/// Runs one action. Register it with
/// [`Integration::register_action`](crate::Integration::register_action); implement it with
/// `async fn execute(...)` or use [`action_fn`] for a closure.
///
/// ```
/// use serde_json::Value;
/// use switchyard_integration::{ActionHandler, ActionResult, ExecutionContext, HandlerError};
///
/// struct Echo;
///
/// impl ActionHandler for Echo {
///     async fn execute(&self, inputs: Value, _ctx: &ExecutionContext) -> Result<ActionResult, HandlerError> {
///         Ok(ActionResult::new(inputs))
///     }
/// }
/// ```
pub trait ActionHandler: Send + Sync + 'static {
    /// Runs the action on inputs that already matched the input schema. Return
    /// `Err(ActionError::new("...").into())` for an expected failure.
    fn execute(
        &self,
        inputs: Value,
        ctx: &ExecutionContext,
    ) -> impl Future<Output = Result<ActionResult, HandlerError>> + Send;
}

/// Polls for new records. Each record must be an object with an `id` and a `data` member;
/// `data` is checked against the trigger's output schema.
pub trait PollingTriggerHandler: Send + Sync + 'static {
    /// Returns the records that appeared since `last_poll_ts` (the platform's timestamp of the
    /// previous poll; `None` on the first).
    fn poll(
        &self,
        inputs: Value,
        last_poll_ts: Option<&str>,
        ctx: &ExecutionContext,
    ) -> impl Future<Output = Result<Vec<Map<String, Value>>, HandlerError>> + Send;
}

/// Looks up the details of the account a user connected.
pub trait ConnectedAccountHandler: Send + Sync + 'static {
    /// Fetches the account's details from the provider.
    fn account_info(
        &self,
        ctx: &ExecutionContext,
    ) -> impl Future<Output = Result<ConnectedAccountInfo, HandlerError>> + Send;
}

/// An [`ActionHandler`] from an async closure taking the inputs and (a cheap clone of) the
/// context.
///
/// ```
/// use switchyard_integration::{action_fn, ActionResult};
///
/// let handler = action_fn(|inputs, _ctx| async move { Ok(ActionResult::new(inputs)) });
/// # let _ = handler;
/// ```
pub fn action_fn<F, Fut>(f: F) -> ActionFn<F>
where
    F: Fn(Value, ExecutionContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ActionResult, HandlerError>> + Send,
{
    ActionFn(f)
}

/// The handler made by [`action_fn`].
#[derive(Debug, Clone)]
pub struct ActionFn<F>(F);

impl<F, Fut> ActionHandler for ActionFn<F>
where
    F: Fn(Value, ExecutionContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ActionResult, HandlerError>> + Send,
{
    fn execute(
        &self,
        inputs: Value,
        ctx: &ExecutionContext,
    ) -> impl Future<Output = Result<ActionResult, HandlerError>> + Send {
        (self.0)(inputs, ctx.clone())
    }
}

/// A [`PollingTriggerHandler`] from an async closure taking the inputs, the last poll
/// timestamp and the context.
pub fn polling_fn<F, Fut>(f: F) -> PollingFn<F>
where
    F: Fn(Value, Option<String>, ExecutionContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<Map<String, Value>>, HandlerError>> + Send,
{
    PollingFn(f)
}

/// The handler made by [`polling_fn`].
#[derive(Debug, Clone)]
pub struct PollingFn<F>(F);

impl<F, Fut> PollingTriggerHandler for PollingFn<F>
where
    F: Fn(Value, Option<String>, ExecutionContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<Map<String, Value>>, HandlerError>> + Send,
{
    fn poll(
        &self,
        inputs: Value,
        last_poll_ts: Option<&str>,
        ctx: &ExecutionContext,
    ) -> impl Future<Output = Result<Vec<Map<String, Value>>, HandlerError>> + Send {
        (self.0)(inputs, last_poll_ts.map(str::to_owned), ctx.clone())
    }
}

/// A [`ConnectedAccountHandler`] from an async closure taking the context.
pub fn connected_account_fn<F, Fut>(f: F) -> ConnectedAccountFn<F>
where
    F: Fn(ExecutionContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ConnectedAccountInfo, HandlerError>> + Send,
{
    ConnectedAccountFn(f)
}

/// The handler made by [`connected_account_fn`].
#[derive(Debug, Clone)]
pub struct ConnectedAccountFn<F>(F);

impl<F, Fut> ConnectedAccountHandler for ConnectedAccountFn<F>
where
    F: Fn(ExecutionContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ConnectedAccountInfo, HandlerError>> + Send,
{
    fn account_info(
        &self,
        ctx: &ExecutionContext,
    ) -> impl Future<Output = Result<ConnectedAccountInfo, HandlerError>> + Send {
        (self.0)(ctx.clone())
    }
}

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Object-safe forms of the handler traits, as stored by the dispatcher.
pub(crate) trait DynAction: Send + Sync {
    fn call<'a>(
        &'a self,
        inputs: Value,
        ctx: &'a ExecutionContext,
    ) -> BoxFuture<'a, Result<ActionResult, HandlerError>>;
}

impl<H: ActionHandler> DynAction for H {
    fn call<'a>(
        &'a self,
        inputs: Value,
        ctx: &'a ExecutionContext,
    ) -> BoxFuture<'a, Result<ActionResult, HandlerError>> {
        Box::pin(self.execute(inputs, ctx))
    }
}

pub(crate) trait DynPolling: Send + Sync {
    fn call<'a>(
        &'a self,
        inputs: Value,
        last_poll_ts: Option<&'a str>,
        ctx: &'a ExecutionContext,
    ) -> BoxFuture<'a, Result<Vec<Map<String, Value>>, HandlerError>>;
}

impl<H: PollingTriggerHandler> DynPolling for H {
    fn call<'a>(
        &'a self,
        inputs: Value,
        last_poll_ts: Option<&'a str>,
        ctx: &'a ExecutionContext,
    ) -> BoxFuture<'a, Result<Vec<Map<String, Value>>, HandlerError>> {
        Box::pin(self.poll(inputs, last_poll_ts, ctx))
    }
}

pub(crate) trait DynConnectedAccount: Send + Sync {
    fn call<'a>(
        &'a self,
        ctx: &'a ExecutionContext,
    ) -> BoxFuture<'a, Result<ConnectedAccountInfo, HandlerError>>;
}

impl<H: ConnectedAccountHandler> DynConnectedAccount for H {
    fn call<'a>(
        &'a self,
        ctx: &'a ExecutionContext,
    ) -> BoxFuture<'a, Result<ConnectedAccountInfo, HandlerError>> {
        Box::pin(self.account_info(ctx))
    }
}

/// Polls a boxed future, turning a panic in any poll into `Err(message)`. The handler's
/// future is dropped after a panic and never polled again.
pub(crate) struct CatchPanic<'a, T> {
    inner: Option<BoxFuture<'a, T>>,
}

impl<'a, T> CatchPanic<'a, T> {
    pub(crate) fn new(inner: BoxFuture<'a, T>) -> Self {
        Self { inner: Some(inner) }
    }
}

impl<T> Future for CatchPanic<'_, T> {
    type Output = Result<T, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(Err("handler polled after it panicked".to_owned()));
        };
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => {
                self.inner = None;
                Poll::Ready(Ok(value))
            }
            Err(payload) => {
                self.inner = None;
                Poll::Ready(Err(panic_message(payload.as_ref())))
            }
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic with a non-text payload".to_owned()
    }
}
