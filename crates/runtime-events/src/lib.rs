//! Runtime events: subscribe to an event source with a CEL filter, pull matching events with
//! [`Hub::next_event`], and [`Hub::unsubscribe`] when done.
//!
//! This is the Rust counterpart of AutoKitteh's `subscribe` / `next_event` / `unsubscribe`,
//! with the gaps of the original closed:
//!
//! * filters are compiled and checked once, at [`Hub::subscribe`]: unknown variables and
//!   functions, syntax errors and filters that cannot yield a boolean are rejected with the
//!   column and the reason ([`FilterError`]), and literal `matches()` patterns are compiled
//!   then, not per event;
//! * JSON integers are CEL `int`, so `data.count + 1 > 5` works; an evaluation error counts as
//!   no match and is counted ([`SubscriptionStats::eval_errors`]) and logged;
//! * [`Hub::next_event`] over several subscriptions returns the event published first, waits
//!   with a timeout (`Duration::ZERO` polls), is cancel-safe, and wakes with
//!   [`Error::Unsubscribed`] when its subscription ends;
//! * queues are bounded with an explicit policy ([`WhenFull`]); publishing never waits;
//! * subscriptions are indexed by source and by the `event_type` conditions in their filters,
//!   so a publish evaluates only the filters that can match.
//!
//! ```
//! use std::time::Duration;
//! use switchyard_runtime_events::{Event, Hub};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let hub = Hub::new();
//! let issues = hub.subscribe("jira", "event_type.startsWith('issue_')")?;
//! let created = hub.subscribe("jira", "event_type.endsWith('_created')")?;
//!
//! hub.publish(Event::new("jira", "page_created", serde_json::json!({"id": 1})))?;
//! hub.publish(Event::new("jira", "issue_updated", serde_json::json!({"id": 2})))?;
//!
//! // Oldest first across both subscriptions.
//! let first = hub.next_event(&[issues, created], None).await?.expect("queued");
//! assert_eq!(first.event_type, "page_created");
//! let second = hub.next_event(&[issues, created], None).await?.expect("queued");
//! assert_eq!(second.event_type, "issue_updated");
//! # Ok::<(), switchyard_runtime_events::Error>(())
//! # }).unwrap();
//! ```
//!
//! The filter works alone, with no runtime: [`Filter::compile`] checks a CEL filter once and
//! [`Filter::matches`] runs it on an [`Event`] (`default-features = false` builds only that).
//!
//! | cargo feature | default | what it adds |
//! |---|---|---|
//! | `hub` | yes | [`Hub`]: subscribe / next_event / unsubscribe, bounded queues, idle expiry, [`Error`] (tokio's sync and timers) |
//! | `cloudevents` | yes | `From<switchyard_cloudevents::Event>` for [`Event`] |
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod binding;
mod budget;
mod error;
mod event;
mod fast;
mod filter;
#[cfg(feature = "hub")]
mod hub;
mod pattern;

pub use binding::bind_json;
#[cfg(feature = "hub")]
pub use error::Error;
pub use error::{EvalError, FilterError};
pub use event::Event;
pub use filter::{Filter, FilterLimits};
#[cfg(feature = "hub")]
pub use hub::{
    Hub, HubConfig, Published, SubscribeOptions, SubscriptionId, SubscriptionStats, WhenFull,
};
pub use pattern::REGEX_SIZE_LIMIT;
