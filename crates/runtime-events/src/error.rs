//! The crate's error types: why a filter was rejected, and why a call failed.

#[cfg(feature = "hub")]
use crate::SubscriptionId;

/// Why a filter was rejected at [`subscribe`](crate::Hub::subscribe).
///
/// Every variant that points into the filter carries `column`, the 1-based character
/// position in the filter text (filters are single-line, as in AutoKitteh).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// The filter is not valid CEL.
    #[error("filter does not parse at column {column}: {message}")]
    Syntax {
        /// Where the parser stopped.
        column: usize,
        /// The parser's explanation.
        message: String,
    },
    /// The filter is longer than [`HubConfig::max_filter_len`](crate::HubConfig).
    #[error("filter is {len} bytes long; the limit is {limit}")]
    TooLong {
        /// The filter's length in bytes.
        len: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The filter nests deeper than the limit (parentheses, calls, operators or macros).
    #[error("filter nests too deeply at column {column} (limit {limit})")]
    TooDeep {
        /// Where the limit was crossed.
        column: usize,
        /// The nesting limit.
        limit: usize,
    },
    /// The filter names a variable other than `event_type`, `data` or a macro's own variable.
    #[error(
        "unknown variable `{name}` at column {column}: filters see only `event_type`, `data` and `cloudevent`"
    )]
    UnknownVariable {
        /// The variable.
        name: String,
        /// Where it is used.
        column: usize,
    },
    /// The filter calls a function CEL and its string, math, lists and encoders extensions do
    /// not have.
    #[error("unknown function `{name}` at column {column}{hint}")]
    UnknownFunction {
        /// The function as written (`endswith`, `math.foo`).
        name: String,
        /// Where it is called.
        column: usize,
        /// A suggestion, such as ` (did you mean `endsWith`?)`, or empty.
        hint: String,
    },
    /// The filter can be seen, without any event, not to yield a boolean.
    #[error("filter yields {found}, not a boolean (at column {column})")]
    NotBoolean {
        /// What it yields instead (`a string`, `an int`, `a list`, ...).
        found: &'static str,
        /// Where that value is produced.
        column: usize,
    },
    /// A literal pattern given to `matches()` is not a valid regular expression (or compiles
    /// beyond the size limit).
    #[error("invalid regular expression at column {column}: {message}")]
    Regex {
        /// Where the pattern is written.
        column: usize,
        /// The regex compiler's explanation.
        message: String,
    },
    /// The filter uses a construct that could make a single evaluation unbounded, such as
    /// macros nested too deeply or `lists.range` with a huge or computed argument.
    #[error("filter too costly at column {column}: {reason}")]
    TooCostly {
        /// Where the construct is.
        column: usize,
        /// What is too costly and the limit.
        reason: String,
    },
}

/// Why a [`Hub`](crate::Hub) call failed.
#[cfg(feature = "hub")]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The filter was rejected; nothing was subscribed.
    #[error("invalid filter: {0}")]
    Filter(#[from] FilterError),
    /// No subscription has this id (it never existed, or it was unsubscribed).
    #[error("unknown subscription {0}")]
    UnknownSubscription(SubscriptionId),
    /// The subscription was unsubscribed while waiting on it.
    #[error("subscription {0} was unsubscribed")]
    Unsubscribed(SubscriptionId),
    /// `next_event` was called with no subscription ids.
    #[error("next_event needs at least one subscription id")]
    NoSubscriptions,
    /// The publish was refused because a matching subscription with the
    /// [`WhenFull::Refuse`](crate::WhenFull) policy has a full queue; no subscription received
    /// the event, so publishing it again later does not duplicate it.
    #[error(
        "subscription {subscription} is full ({limit} events or its byte limit queued); the event was not published"
    )]
    QueueFull {
        /// The full subscription.
        subscription: SubscriptionId,
        /// Its queue limit (events).
        limit: usize,
    },
    /// The hub holds [`HubConfig::max_subscriptions`](crate::HubConfig) subscriptions already.
    #[error("there are {limit} subscriptions already, the most this hub takes")]
    TooManySubscriptions {
        /// The limit.
        limit: usize,
    },
    /// The subscription expired: nobody asked for its events for
    /// [`HubConfig::idle_expiry`](crate::HubConfig), so it was removed with what it had
    /// queued.
    #[error("subscription {0} expired: nobody polled it")]
    Expired(SubscriptionId),
    /// [`Hub::next_event_blocking`](crate::Hub::next_event_blocking) was called from inside an
    /// async runtime, where blocking the thread would stall other tasks.
    #[error("next_event_blocking called from async code; use next_event(..).await there")]
    BlockingInAsync,
    /// The blocking wrapper could not start its timer runtime.
    #[error("could not start a runtime for next_event_blocking: {0}")]
    Runtime(String),
}

/// Why a filter did not evaluate to a boolean for one event: a missing field, a type
/// mismatch, a failing function. A [`Hub`](crate::Hub) treats it as "no match", counts it in
/// the subscription's [`SubscriptionStats::eval_errors`](crate::SubscriptionStats) and emits a
/// tracing event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("filter evaluation failed: {message}")]
pub struct EvalError {
    /// The evaluator's explanation (`No such key: url`).
    pub message: String,
}
