//! The portal's pages, as maud templates: every value is escaped on its way into the page
//! (payloads, URLs, names and descriptions are the senders' and receivers' text).

use maud::{DOCTYPE, Markup, html};
use switchyard_webhooks::store::AttemptCounts;
use switchyard_webhooks::{
    Application, Attempt, AttemptStatus, Channel, Delivery, DeliveryStatus, Endpoint, EventType,
    EventTypeFilter, EventTypeName, Message, Page,
};

use crate::svix::request::time;

/// A page's head: its title, the style sheet and the script.
fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Switchyard" }
            link rel="stylesheet" href="/portal/assets/portal.css";
            script src="/portal/assets/portal.js" defer {}
        }
    }
}

/// The frame of every page: head, the signed-in bar (with sign-out), the title, the body.
pub(super) fn page(csrf: &str, operator: bool, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header {
                    a.brand href="/portal" { "Switchyard" }
                    a href="/portal/event-types" { "Event types" }
                    span.who { @if operator { "Operator" } @else { "Application portal" } }
                    form.inline method="post" action="/portal/sign-out" {
                        input type="hidden" name="csrf" value=(csrf);
                        button type="submit" { "Sign out" }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The sign-in page; `error` says why the last try failed.
pub(super) fn sign_in(error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Sign in"))
            body {
                main.narrow {
                    h1 { "Switchyard" }
                    @if let Some(error) = error {
                        p.error role="alert" { (error) }
                    }
                    form #sign-in method="post" action="/portal/session" {
                        label for="token" { "Token" }
                        input #token type="password" name="token" autocomplete="off" required;
                        p.hint {
                            "A server token, or the application token of a portal link."
                        }
                        button type="submit" { "Sign in" }
                    }
                }
            }
        }
    }
}

/// A paragraph on its own.
pub(super) fn message(text: &str) -> Markup {
    html! { p { (text) } }
}

/// A time, in UTC on the page and in the browser's zone once the script has run.
fn when(at: &chrono::DateTime<chrono::Utc>) -> Markup {
    let text = time(at);
    html! { time datetime=(text) { (at.format("%Y-%m-%d %H:%M:%S UTC")) } }
}

/// The links to the pages before and after this one (`Previous`, `Next`); `asked` is the
/// iterator the page was asked for with (none: the first page; `-…`: a page before another).
fn pager<T>(page: &Page<T>, base: &str, asked: Option<&str>) -> Markup {
    pager_with(page, base, asked, "", ("← Previous", "Next →"))
}

/// The operator's list of applications.
pub(super) fn applications(csrf: &str, list: &Page<Application>, asked: Option<&str>) -> Markup {
    let body = html! {
        @if list.items.is_empty() {
            p { "No applications yet. Create one with " code { "POST /api/v1/app" } "." }
        } @else {
            table {
                thead { tr { th { "Name" } th { "Uid" } th { "Id" } th { "Created" } } }
                tbody {
                    @for app in &list.items {
                        tr {
                            td { a href={ "/portal/app/" (app.id) } { (app.name) } }
                            td { @if let Some(uid) = &app.uid { code { (uid) } } }
                            td { code { (app.id) } }
                            td { (when(&app.created_at)) }
                        }
                    }
                }
            }
            (pager(list, "/portal", asked))
        }
    };
    page(csrf, true, "Applications", body)
}

/// An application and its endpoints.
pub(super) fn application(
    csrf: &str,
    operator: bool,
    app: &Application,
    endpoints: &Page<Endpoint>,
    asked: Option<&str>,
) -> Markup {
    let base = format!("/portal/app/{}", app.id);
    let body = html! {
        p.meta {
            "Id " code { (app.id) }
            @if let Some(uid) = &app.uid { " · uid " code { (uid) } }
        }
        (app_nav(app))
        h2 { "Endpoints" }
        p { a.button href={ "/portal/app/" (app.id) "/endpoint/new" } { "Add endpoint" } }
        @if endpoints.items.is_empty() {
            p { "No endpoints yet." }
        } @else {
            table #endpoints {
                thead { tr { th { "URL" } th { "Description" } th { "Event types" } th { "Channels" } th { "State" } } }
                tbody {
                    @for endpoint in &endpoints.items {
                        tr {
                            td { a href={ "/portal/app/" (app.id) "/endpoint/" (endpoint.id) } { code { (switchyard_webhooks::redact_userinfo(&endpoint.url)) } } }
                            td { (endpoint.description) }
                            td { (event_type_list(&endpoint.event_types)) }
                            td { (channel_list(&endpoint.channels)) }
                            td { @if endpoint.disabled { span.bad { "disabled" } } @else { span.good { "enabled" } } }
                        }
                    }
                }
            }
            (pager(endpoints, &base, asked))
        }
    };
    page(csrf, operator, &app.name, body)
}

/// The message log's filters, as given.
pub(super) struct LogFilters<'a> {
    pub event_type: Option<&'a str>,
    pub channel: Option<&'a str>,
    /// As given (RFC 3339 from the page's script).
    pub after: Option<&'a str>,
    pub before: Option<&'a str>,
    /// `succeeded`, `failed`, `pending` or `sending`.
    pub status: Option<&'a str>,
    /// An endpoint id or uid.
    pub endpoint: Option<&'a str>,
    /// The endpoints the filter offers.
    pub endpoints: &'a [Endpoint],
}

/// What the log lists.
pub(super) enum LogList {
    /// Nothing (the filters were refused).
    Nothing,
    /// Messages, newest first.
    Messages(Page<Message>),
    /// Attempts, newest first (a status or an endpoint was chosen).
    Attempts(Page<Attempt>),
}

/// The message log: filters, the page, paging.
pub(super) fn messages(
    csrf: &str,
    operator: bool,
    app: &Application,
    list: &LogList,
    filters: &LogFilters<'_>,
    problem: Option<&str>,
    asked: Option<&str>,
) -> Markup {
    let base = format!("/portal/app/{}/msg", app.id);
    // Paging keeps the filters.
    let mut query = String::new();
    for (name, value) in [
        ("event_type", filters.event_type),
        ("channel", filters.channel),
        ("after", filters.after),
        ("before", filters.before),
        ("status", filters.status),
        ("endpoint", filters.endpoint),
    ] {
        if let Some(value) = value {
            query.push_str(&format!(
                "&{name}={}",
                form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>()
            ));
        }
    }
    let body = html! {
        (app_nav(app))
        form.filters method="get" action=(base) {
            label for="event_type" { "Event type" }
            input #event_type type="text" name="event_type" value=[filters.event_type];
            label for="channel" { "Channel" }
            input #channel type="text" name="channel" value=[filters.channel];
            label for="after_local" { "Sent after" }
            input #after_local type="datetime-local" data-utc="after";
            input type="hidden" name="after" value=[filters.after];
            label for="before_local" { "Sent before" }
            input #before_local type="datetime-local" data-utc="before";
            input type="hidden" name="before" value=[filters.before];
            label for="status" { "Status" }
            select #status name="status" {
                option value="" { "any (messages)" }
                @for name in ["succeeded", "failed", "pending", "sending"] {
                    option value=(name) selected[filters.status == Some(name)] { (name) }
                }
            }
            label for="endpoint" { "Endpoint" }
            select #endpoint name="endpoint" {
                option value="" { "any" }
                @let listed = filters.endpoints.iter().any(|e| Some(e.id.as_str()) == filters.endpoint
                    || e.uid.as_ref().is_some_and(|uid| Some(uid.as_str()) == filters.endpoint));
                @if let (Some(other), false) = (filters.endpoint, listed) {
                    option value=(other) selected { (other) }
                }
                @for endpoint in filters.endpoints {
                    @let chosen = Some(endpoint.id.as_str()) == filters.endpoint
                        || endpoint.uid.as_ref().is_some_and(|uid| Some(uid.as_str()) == filters.endpoint);
                    option value=(endpoint.id) selected[chosen] {
                        (switchyard_webhooks::redact_userinfo(&endpoint.url))
                        @if !endpoint.description.is_empty() { " · " (endpoint.description) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
        @if let Some(problem) = problem {
            p.error role="alert" { (problem) }
        }
        @match list {
            LogList::Nothing => {}
            LogList::Messages(list) if list.items.is_empty() => p { "No messages." },
            LogList::Messages(list) => {
                table #messages {
                    thead { tr { th { "Message" } th { "Event type" } th { "Channels" } th { "Sent" } } }
                    tbody {
                        @for message in &list.items {
                            tr {
                                td { a href={ (base) "/" (message.id) } { code { (message.id) } } }
                                td { code { (message.event_type) } }
                                td { (channel_list(&message.channels)) }
                                td { (when(&message.created_at)) }
                            }
                        }
                    }
                }
                (pager_with(list, &base, asked, &query, ("← Newer", "Older →")))
            }
            LogList::Attempts(list) if list.items.is_empty() => p { "No attempts." },
            LogList::Attempts(list) => {
                table #attempts {
                    thead { tr { th { "Attempted" } th { "Message" } th { "Event type" } th { "Endpoint" } th { "Status" } th { "Response" } } }
                    tbody {
                        @for attempt in &list.items {
                            tr {
                                td { (when(&attempt.timestamp)) }
                                td { a href={ (base) "/" (attempt.message_id) } { code { (attempt.message_id) } } }
                                td { code { (attempt.event_type) } }
                                td { a href={ "/portal/app/" (app.id) "/endpoint/" (attempt.endpoint_id) } { code { (attempt.endpoint_id) } } }
                                td { (attempt_state(attempt.status)) }
                                td { @if attempt.response_status == 0 { "none" } @else { "HTTP " (attempt.response_status) } }
                            }
                        }
                    }
                }
                (pager_with(list, &base, asked, &query, ("← Newer", "Older →")))
            }
        }
    };
    page(csrf, operator, &format!("{} · messages", app.name), body)
}

/// How an attempt ended, in words.
fn attempt_state(status: AttemptStatus) -> Markup {
    match status {
        AttemptStatus::Success => html! { span.good { "succeeded" } },
        AttemptStatus::Failed => html! { span.bad { "failed" } },
        AttemptStatus::Pending => html! { span { "pending" } },
        AttemptStatus::Sending => html! { span { "sending" } },
    }
}

/// The links between an application's pages.
fn app_nav(app: &Application) -> Markup {
    html! {
        nav.app {
            a href={ "/portal/app/" (app.id) } { "Endpoints" }
            a href={ "/portal/app/" (app.id) "/msg" } { "Message log" }
        }
    }
}

/// An endpoint's event types: `all`, or the names.
fn event_type_list(filter: &EventTypeFilter) -> Markup {
    html! {
        @match filter {
            EventTypeFilter::All => { "all" }
            EventTypeFilter::Only(names) => {
                @for (i, name) in names.iter().enumerate() {
                    @if i > 0 { ", " }
                    code { (name) }
                }
            }
        }
    }
}

fn channel_list(channels: &[Channel]) -> Markup {
    html! {
        @for (i, channel) in channels.iter().enumerate() {
            @if i > 0 { ", " }
            code { (channel) }
        }
    }
}

/// [`pager`] whose links carry `query` (`&name=value…`) too, with these labels.
fn pager_with<T>(
    page: &Page<T>,
    base: &str,
    asked: Option<&str>,
    query: &str,
    (before, after): (&str, &str),
) -> Markup {
    let backward = asked.is_some_and(|i| i.starts_with('-'));
    let (has_prev, has_next) = if backward {
        (!page.done, true)
    } else {
        (asked.is_some(), !page.done)
    };
    html! {
        nav.pager {
            @if has_prev {
                @if let Some(prev) = &page.prev_iterator {
                    a rel="prev" href={ (base) "?iterator=" (prev) (query) } { (before) }
                }
            }
            @if has_next {
                @if let Some(next) = &page.iterator {
                    a rel="next" href={ (base) "?iterator=" (next) (query) } { (after) }
                }
            }
        }
    }
}

/// A message: its payload, where it went (with a resend button each), and its attempts.
pub(super) fn message_page(
    csrf: &str,
    operator: bool,
    app: &Application,
    message: &Message,
    destinations: &[(Delivery, Option<String>)],
    attempts: &[Attempt],
) -> Markup {
    let payload = serde_json::from_str::<serde_json::Value>(&message.payload)
        .ok()
        .and_then(|value| serde_json::to_string_pretty(&value).ok())
        .unwrap_or_else(|| message.payload.clone());
    let resend = format!("/portal/app/{}/msg/{}/resend", app.id, message.id);
    let body = html! {
        (app_nav(app))
        p.meta {
            "Event type " code { (message.event_type) }
            @if !message.channels.is_empty() { " · channels " (channel_list(&message.channels)) }
            @if let Some(event_id) = &message.event_id { " · event id " code { (event_id) } }
            " · sent " (when(&message.created_at))
        }
        h2 { "Payload" }
        @if message.expired {
            p { "The payload was purged after the retention period." }
        } @else {
            pre.payload { code { (payload) } }
        }
        h2 { "Deliveries" }
        @if destinations.is_empty() {
            p { "No endpoint was listening when it was sent." }
        } @else {
            table #deliveries {
                thead { tr { th { "Endpoint" } th { "State" } th { "Attempts" } th { "" } } }
                tbody {
                    @for (delivery, url) in destinations {
                        tr {
                            td {
                                @match url {
                                    Some(url) => { code { (switchyard_webhooks::redact_userinfo(url)) } }
                                    None => { code { (delivery.endpoint_id) } " (deleted)" }
                                }
                            }
                            td { (delivery_state(delivery.status)) }
                            td { (delivery.attempts) }
                            td {
                                @if url.is_some() {
                                    form.inline method="post" action=(resend) {
                                        input type="hidden" name="csrf" value=(csrf);
                                        input type="hidden" name="endpoint" value=(delivery.endpoint_id);
                                        button type="submit" { "Resend" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Attempts" }
        @if attempts.is_empty() {
            p { "None yet." }
        } @else {
            @for attempt in attempts {
                details.attempt {
                    summary {
                        (when(&attempt.timestamp)) " · "
                        @if attempt.response_status == 0 { "no response" } @else { "HTTP " (attempt.response_status) }
                        " · " (attempt.duration.as_millis()) " ms · "
                        (attempt_state(attempt.status))
                        " · " code { (switchyard_webhooks::redact_userinfo(&attempt.url)) }
                    }
                    h3 { "Request headers" }
                    table {
                        tbody {
                            @for (name, value) in attempt.headers.iter() {
                                tr { td { code { (name) } } td { code { (value) } } }
                            }
                        }
                    }
                    h3 { "Response body" }
                    pre.response { code { (attempt.response) } }
                }
            }
        }
    };
    page(csrf, operator, &format!("Message {}", message.id), body)
}

fn delivery_state(status: DeliveryStatus) -> Markup {
    html! {
        @match status {
            DeliveryStatus::Succeeded => span.good { "delivered" },
            DeliveryStatus::Exhausted => span.bad { "failed (retries exhausted)" },
            _ => span { "pending" },
        }
    }
}

/// What the endpoint form holds (given back when it is refused).
#[derive(Debug, Default)]
pub(super) struct EndpointForm {
    pub url: String,
    pub description: String,
    pub event_types: String,
    pub channels: String,
    pub rate_limit: String,
    /// Custom headers, one `Name: value` a line (credential headers of a stored endpoint
    /// are not among them).
    pub headers: String,
    /// The stored endpoint's credential headers (see `is_credential_name`), by name: their
    /// values are never put in the page.
    pub hidden_headers: Vec<String>,
    /// The hidden headers ticked for removal.
    pub removed: Vec<String>,
}

/// The form adding an endpoint (`editing` none) or changing one; `problem` says why the last
/// one was refused.
pub(super) fn endpoint_form(
    csrf: &str,
    operator: bool,
    app: &Application,
    input: &EndpointForm,
    problem: Option<&str>,
    editing: Option<&Endpoint>,
) -> Markup {
    let (action, button, title) = match editing {
        None => (
            format!("/portal/app/{}/endpoint", app.id),
            "Add endpoint",
            format!("{} · new endpoint", app.name),
        ),
        Some(endpoint) => (
            format!("/portal/app/{}/endpoint/{}/edit", app.id, endpoint.id),
            "Save",
            format!("{} · edit endpoint", app.name),
        ),
    };
    let body = html! {
        (app_nav(app))
        @if let Some(problem) = problem {
            p.error role="alert" { (problem) }
        }
        form #endpoint-form method="post" action=(action) {
            input type="hidden" name="csrf" value=(csrf);
            label for="url" { "URL" }
            input #url type="text" name="url" value=(input.url) required placeholder="https://example.com/webhooks";
            label for="description" { "Description" }
            input #description type="text" name="description" value=(input.description);
            label for="event_types" { "Event types" }
            input #event_types type="text" name="event_types" value=(input.event_types) placeholder="every type; or invoice.paid, invoice.failed";
            label for="channels" { "Channels" }
            input #channels type="text" name="channels" value=(input.channels) placeholder="none; or project-1, project-2";
            label for="rate_limit" { "Rate limit (messages a second)" }
            input #rate_limit type="text" name="rate_limit" value=(input.rate_limit) placeholder="no limit";
            label for="headers" { "Headers sent with every delivery (one " code { "Name: value" } " a line)" }
            textarea #headers name="headers" rows="4" placeholder="X-Tenant: 42" { (input.headers) }
            @if !input.hidden_headers.is_empty() {
                fieldset #hidden-headers {
                    legend { "Hidden headers: their values are not shown; a line above with the same name replaces one" }
                    @for name in &input.hidden_headers {
                        label {
                            input type="checkbox" name="remove_header" value=(name) checked[input.removed.contains(name)];
                            " remove " code { (name) }
                        }
                    }
                }
            }
            button type="submit" { (button) }
        }
    };
    page(csrf, operator, &title, body)
}

impl EndpointForm {
    /// The form holding `endpoint`'s settings.
    pub(super) fn of(endpoint: &Endpoint) -> Self {
        let joined = |items: Vec<&str>| items.join(", ");
        Self {
            url: endpoint.url.clone(),
            description: endpoint.description.clone(),
            event_types: match &endpoint.event_types {
                EventTypeFilter::All => String::new(),
                EventTypeFilter::Only(names) => {
                    joined(names.iter().map(EventTypeName::as_str).collect())
                }
            },
            channels: joined(endpoint.channels.iter().map(Channel::as_str).collect()),
            rate_limit: endpoint
                .rate_limit
                .map(|rate| rate.to_string())
                .unwrap_or_default(),
            headers: endpoint
                .headers
                .iter()
                .filter(|(name, _)| !hidden_header(name))
                .map(|(name, value)| format!("{name}: {value}\n"))
                .collect(),
            hidden_headers: hidden_headers(endpoint),
            removed: Vec::new(),
        }
    }
}

/// Whether a custom header's value is kept out of pages: it names a credential.
pub(super) fn hidden_header(name: &str) -> bool {
    switchyard_webhooks::is_credential_name(&name.to_ascii_lowercase())
}

/// The names of an endpoint's headers whose values pages do not show.
pub(super) fn hidden_headers(endpoint: &Endpoint) -> Vec<String> {
    endpoint
        .headers
        .keys()
        .filter(|name| hidden_header(name))
        .cloned()
        .collect()
}

/// An endpoint: its settings and state, its secret (when revealed), and its actions.
pub(super) fn endpoint(
    csrf: &str,
    operator: bool,
    app: &Application,
    endpoint: &Endpoint,
    shown: &EndpointShown<'_>,
) -> Markup {
    let EndpointShown {
        secret,
        notice,
        read_only,
        health,
    } = *shown;
    let base = format!("/portal/app/{}/endpoint/{}", app.id, endpoint.id);
    let action = |name: &str, label: &str| {
        html! {
            form.inline method="post" action={ (base) "/" (name) } {
                input type="hidden" name="csrf" value=(csrf);
                button type="submit" { (label) }
            }
        }
    };
    let body = html! {
        (app_nav(app))
        @if let Some(notice) = notice {
            p.notice role="status" { (notice) }
        }
        table #settings {
            tbody {
                tr { th { "URL" } td { code { (switchyard_webhooks::redact_userinfo(&endpoint.url)) } } }
                tr { th { "Id" } td { code { (endpoint.id) } } }
                @if let Some(uid) = &endpoint.uid { tr { th { "Uid" } td { code { (uid) } } } }
                tr { th { "Description" } td { (endpoint.description) } }
                tr { th { "Event types" } td { (event_type_list(&endpoint.event_types)) } }
                tr { th { "Channels" } td { (channel_list(&endpoint.channels)) } }
                tr { th { "Headers" } td {
                    @if endpoint.headers.is_empty() { "none" }
                    ul.headers {
                        @for (name, value) in &endpoint.headers {
                            li { code { (name) ": " @if hidden_header(name) { em { "hidden" } } @else { (value) } } }
                        }
                    }
                } }
                tr { th { "Rate limit" } td {
                    @if let Some(rate) = endpoint.rate_limit { (rate) " a second" } @else { "none" }
                } }
                tr { th { "State" } td {
                    @if endpoint.disabled { span.bad { "disabled" } } @else { span.good { "enabled" } }
                } }
                tr { th { "Updated" } td { (when(&endpoint.updated_at)) } }
            }
        }
        (health_chart(&base, health, endpoint.disabled))
        @if !read_only {
            p { a.button href={ (base) "/edit" } { "Edit settings" } }
        }
        h2 { "Signing secret" }
        @if let Some(secret) = secret {
            p { code #secret { (secret) } }
        } @else {
            p { "Hidden. " (action("secret", "Reveal secret")) }
        }
        @if !read_only {
            p { (action("rotate", "Rotate secret")) }
            h2 { "Actions" }
            p {
                (action("toggle", if endpoint.disabled { "Enable" } else { "Disable" }))
                " "
                (action("delete", "Delete endpoint"))
            }
            h2 { "Send an example" }
            form #example.inline method="post" action={ (base) "/example" } {
                input type="hidden" name="csrf" value=(csrf);
                label for="example_type" { "Event type (its schema's first example; svix.ping sends {\"success\": true})" }
                input #example_type type="text" name="event_type" value="svix.ping" required;
                button type="submit" { "Send example" }
            }
            h2 { "Recover failed messages" }
            form #recover method="post" action={ (base) "/recover" } {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="since" value="";
                label for="since_local" { "Sent since" }
                input #since_local type="datetime-local" name="since_local" required;
                button type="submit" { "Recover" }
            }
        }
    };
    page(csrf, operator, "Endpoint", body)
}

/// The event-type catalogue: each type's description, schema and first example.
pub(super) fn event_types(
    csrf: &str,
    operator: bool,
    list: &Page<EventType>,
    asked: Option<&str>,
) -> Markup {
    let pretty = |value: &serde_json::Value| {
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    };
    let body = html! {
        @if list.items.is_empty() {
            p { "No event types yet. Create one with " code { "POST /api/v1/event-type" } "." }
        }
        @for event_type in &list.items {
            section.event-type {
                h2 { code { (event_type.name) } }
                @if !event_type.description.is_empty() { p { (event_type.description) } }
                @if let Some(example) = event_type.schema.get("examples").and_then(|e| e.get(0)) {
                    h3 { "Example" }
                    pre.example { code { (pretty(example)) } }
                }
                details {
                    summary { "Schema" }
                    pre.schema { code { (pretty(&event_type.schema)) } }
                }
            }
        }
        (pager(list, "/portal/event-types", asked))
    };
    page(csrf, operator, "Event types", body)
}

/// What an endpoint's page shows besides its settings.
#[derive(Clone, Copy)]
pub(super) struct EndpointShown<'a> {
    /// The signing secret, when asked for.
    pub secret: Option<&'a str>,
    /// What the last action did.
    pub notice: Option<&'a str>,
    /// The session may only look: no forms that change anything.
    pub read_only: bool,
    /// The health section.
    pub health: &'a Health<'a>,
}

/// What an endpoint's health section shows.
pub(super) struct Health<'a> {
    pub period: super::pages::Period,
    pub since: chrono::DateTime<chrono::Utc>,
    pub spans: &'a [AttemptCounts],
    pub last: Option<&'a Attempt>,
    /// When its current run of failures began (`None`: healthy).
    pub failing_since: Option<chrono::DateTime<chrono::Utc>>,
}

/// The endpoint's state, its last attempt, and a chart of its successes and failures over
/// the period, one bar per span (an SVG drawn here: no script, no style attribute).
fn health_chart(base: &str, health: &Health<'_>, disabled: bool) -> Markup {
    use super::pages::Period;
    const WIDTH: u64 = 720;
    const HEIGHT: u64 = 120;
    let spans = health.spans;
    let most = spans
        .iter()
        .map(|c| c.success + c.failed)
        .max()
        .unwrap_or(0)
        .max(1);
    let slot = WIDTH / (spans.len() as u64).max(1);
    let bar = slot.saturating_sub(2).max(1);
    let height = |count: u64| count * HEIGHT / most;
    let (succeeded, failed) = spans
        .iter()
        .fold((0, 0), |(s, f), c| (s + c.success, f + c.failed));
    let span_length = health.period.span() / i32::try_from(spans.len().max(1)).unwrap_or(1);
    html! {
        section #health {
            h2 { "Health" }
            p {
                "State: "
                @if disabled {
                    span.bad #state { "disabled" }
                    @if let Some(since) = health.failing_since { " (failing since " (when(&since)) ")" }
                } @else if let Some(since) = health.failing_since {
                    span.bad #state { "failing since " (when(&since)) }
                } @else if health.last.is_some() {
                    span.good #state { "healthy" }
                } @else {
                    span #state { "no attempts yet" }
                }
                @if let Some(last) = health.last {
                    " · last attempt " (when(&last.timestamp)) ", "
                    @if last.response_status == 0 { "no response" } @else { "HTTP " (last.response_status) }
                }
            }
            nav.periods {
                @for period in [Period::Hour, Period::Day, Period::Week] {
                    @if period == health.period {
                        strong { "Last " (period.name()) }
                    } @else {
                        a href={ (base) "?period=" (period.name()) } { "Last " (period.name()) }
                    }
                }
            }
            p.meta { (succeeded) " succeeded, " (failed) " failed since " (when(&health.since)) }
            svg.chart width=(WIDTH) height=(HEIGHT + 2) viewBox={ "0 0 " (WIDTH) " " (HEIGHT + 2) }
                role="img" aria-label={ (succeeded) " succeeded, " (failed) " failed" } {
                @for (i, counts) in spans.iter().enumerate() {
                    @let x = i as u64 * slot;
                    @let ok = height(counts.success);
                    @let bad = height(counts.failed);
                    @let start = health.since + span_length * i32::try_from(i).unwrap_or(0);
                    g {
                        title { (start.format("%Y-%m-%d %H:%M UTC")) ": " (counts.success) " succeeded, " (counts.failed) " failed" }
                        rect.ok x=(x) y=(HEIGHT - ok) width=(bar) height=(ok) fill="#1a7f37" {}
                        rect.bad x=(x) y=(HEIGHT - ok - bad) width=(bar) height=(bad) fill="#cf222e" {}
                    }
                }
                line x1="0" y1=(HEIGHT) x2=(WIDTH) y2=(HEIGHT) stroke="#888" {}
            }
        }
    }
}
