//! The portal's pages, as maud templates: every value is escaped on its way into the page
//! (payloads, URLs, names and descriptions are the senders' and receivers' text).

use maud::{DOCTYPE, Markup, html};
use switchyard_webhooks::{Application, Endpoint, EventTypeFilter, Page};

use crate::svix::request::time;

/// The frame of every page: head, the signed-in bar (with sign-out), the title, the body.
pub(super) fn page(csrf: &str, operator: bool, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Switchyard" }
                link rel="stylesheet" href="/portal/assets/portal.css";
                script src="/portal/assets/portal.js" defer {}
            }
            body {
                header {
                    a.brand href="/portal" { "Switchyard" }
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
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Sign in · Switchyard" }
                link rel="stylesheet" href="/portal/assets/portal.css";
                script src="/portal/assets/portal.js" defer {}
            }
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

/// The links to the pages before and after this one; `asked` is the iterator the page was
/// asked for with (none: the first page; `-…`: a page before another).
fn pager<T>(page: &Page<T>, base: &str, asked: Option<&str>) -> Markup {
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
                    a rel="prev" href={ (base) "?iterator=" (prev) } { "← Previous" }
                }
            }
            @if has_next {
                @if let Some(next) = &page.iterator {
                    a rel="next" href={ (base) "?iterator=" (next) } { "Next →" }
                }
            }
        }
    }
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
        h2 { "Endpoints" }
        @if endpoints.items.is_empty() {
            p { "No endpoints yet." }
        } @else {
            table #endpoints {
                thead { tr { th { "URL" } th { "Description" } th { "Event types" } th { "Channels" } th { "State" } } }
                tbody {
                    @for endpoint in &endpoints.items {
                        tr {
                            td { code { (switchyard_webhooks::redact_userinfo(&endpoint.url)) } }
                            td { (endpoint.description) }
                            td {
                                @match &endpoint.event_types {
                                    EventTypeFilter::All => { "all" }
                                    EventTypeFilter::Only(names) => {
                                        @for (i, name) in names.iter().enumerate() {
                                            @if i > 0 { ", " }
                                            code { (name) }
                                        }
                                    }
                                }
                            }
                            td {
                                @for (i, channel) in endpoint.channels.iter().enumerate() {
                                    @if i > 0 { ", " }
                                    code { (channel) }
                                }
                            }
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
