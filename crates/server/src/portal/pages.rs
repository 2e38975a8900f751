//! The portal's pages about one application's messages and endpoints: the message log, a
//! message with its deliveries and attempts (and resending it to an endpoint), and adding an
//! endpoint.

use std::num::NonZeroU32;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::header::LOCATION;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use switchyard_webhooks::store::{AttemptFilter, EndpointFilter, MessageFilter};
use switchyard_webhooks::{
    AppId, AppScope, Application, AttemptStatus, Channel, Endpoint, EndpointSpec,
    Error as WebhooksError, EventTypeName, ListOptions, Order,
};

use super::{PortalState, SignedIn, failure, form_field, html, not_found, operator, view};
use crate::svix::operational::EndpointChange;
use crate::svix::store::ServerStore;

/// The most attempts a message's page shows (newest first).
const ATTEMPTS_SHOWN: usize = 100;

/// The application `app` names, when the session may see it; else the response to give.
pub(super) async fn visible<'s>(
    state: &'s PortalState,
    signed_in: &SignedIn,
    app: &str,
) -> Result<(Application, AppScope<'s, ServerStore>), Response> {
    let registry = &state.svix.webhooks.registry;
    let application = match registry.application(app).await {
        Ok(found) if found.id != AppId::default_app() && signed_in.session.sees(&found.id) => found,
        Ok(_) | Err(WebhooksError::ApplicationNotFound { .. }) => {
            return Err(not_found(signed_in));
        }
        Err(error) => return Err(failure(signed_in, &error)),
    };
    match registry.app(application.id.as_str()).await {
        Ok(scope) => Ok((application, scope)),
        Err(error) => Err(failure(signed_in, &error)),
    }
}

/// Whether a form changes something (a read-only link may post only those that do not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Changes {
    Yes,
    No,
}

/// A form posted about application `app`: checked (origin, session, CSRF), the application
/// visible to the session, and a read-only session refused a form that changes something.
async fn posted<'s>(
    state: &'s PortalState,
    headers: &HeaderMap,
    body: Body,
    app: &str,
    changes: Changes,
) -> Result<
    (
        SignedIn,
        axum::body::Bytes,
        Application,
        AppScope<'s, ServerStore>,
    ),
    Response,
> {
    let (signed_in, form) = state.form(headers, body).await?;
    let (application, scope) = visible(state, &signed_in, app).await?;
    if changes == Changes::Yes && read_only(&signed_in) {
        return Err(forbidden(&signed_in));
    }
    Ok((signed_in, form, application, scope))
}

/// The message log's query: paging and filters.
#[derive(Debug, Default, Deserialize)]
pub(super) struct LogQuery {
    iterator: Option<String>,
    event_type: Option<String>,
    channel: Option<String>,
    /// Sent after this time: RFC 3339 (the page's script turns the browser's local time
    /// into it), or `YYYY-MM-DDTHH:MM` read as UTC.
    after: Option<String>,
    /// Sent before this time, likewise.
    before: Option<String>,
    /// Attempts that ended so (`succeeded`, `failed`, `pending`, `sending`): the log lists
    /// attempts instead of messages.
    status: Option<String>,
    /// Attempts to this endpoint (id or uid): likewise.
    endpoint: Option<String>,
}

/// A status filter of the log, as its select names it.
fn log_status(name: &str) -> Option<AttemptStatus> {
    Some(match name {
        "succeeded" => AttemptStatus::Success,
        "failed" => AttemptStatus::Failed,
        "pending" => AttemptStatus::Pending,
        "sending" => AttemptStatus::Sending,
        _ => return None,
    })
}

/// The most endpoints the log's endpoint filter offers (an endpoint beyond them can still be
/// named in the link, by id or uid).
const LOG_ENDPOINT_CHOICES: usize = 100;

/// A time filter of the log: RFC 3339, or a `datetime-local` value read as UTC.
fn log_time(value: Option<&str>) -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
    let Some(text) = value.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(Some(at.with_timezone(&chrono::Utc)));
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
        .map(|at| Some(at.and_utc()))
        .map_err(|_| format!("`{text}` is not a time"))
}

/// `/portal/app/{app}/msg`: the application's messages, newest first, 50 a page, filtered
/// by event type, channel and time; with a status or an endpoint, its attempts instead
/// (filtered the same way).
pub(super) async fn messages(
    State(state): State<Arc<PortalState>>,
    headers: HeaderMap,
    Path(app): Path<String>,
    Query(query): Query<LogQuery>,
) -> Response {
    let Some(signed_in) = state.signed_in(&headers).await else {
        return super::redirect("/portal");
    };
    let (application, scope) = match visible(&state, &signed_in, &app).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let given = |value: &Option<String>| {
        value
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let (event_type, channel) = (given(&query.event_type), given(&query.channel));
    let mut filter = MessageFilter::default();
    let mut problem = None;
    if let Some(name) = &event_type {
        match EventTypeName::new(name.as_str()) {
            Ok(name) => filter.event_types.push(name),
            Err(error) => problem = Some(error.to_string()),
        }
    }
    if let Some(name) = &channel {
        match Channel::new(name.as_str()) {
            Ok(channel) => filter.channel = Some(channel),
            Err(error) => problem = Some(error.to_string()),
        }
    }
    for (value, slot) in [
        (query.after.as_deref(), &mut filter.after),
        (query.before.as_deref(), &mut filter.before),
    ] {
        match log_time(value) {
            Ok(at) => *slot = at,
            Err(error) => problem = Some(error),
        }
    }
    let (status, endpoint) = (given(&query.status), given(&query.endpoint));
    let status_filter = match status.as_deref().map(log_status) {
        None => None,
        Some(Some(status)) => Some(status),
        Some(None) => {
            problem = Some("the status is one of succeeded, failed, pending or sending".to_owned());
            None
        }
    };
    let endpoint_filter = match &endpoint {
        None => None,
        Some(ep) => match scope.endpoint(ep).await {
            Ok(found) => Some(found.id),
            Err(WebhooksError::EndpointNotFound { .. }) => {
                problem = Some(format!("`{ep}` is not an endpoint of this application"));
                None
            }
            Err(error) => return failure(&signed_in, &error),
        },
    };
    let choices = match scope
        .list_endpoints(
            &EndpointFilter::default(),
            &ListOptions::new().limit(LOG_ENDPOINT_CHOICES),
        )
        .await
    {
        Ok(page) => page.items,
        Err(error) => return failure(&signed_in, &error),
    };
    let asked = query.iterator.as_deref().filter(|i| !i.is_empty());
    let mut options = ListOptions::new().limit(50).order(Order::Descending);
    if let Some(iterator) = asked {
        options = options.iterator(iterator);
    }
    let bad_link = |problem: &mut Option<String>| {
        *problem = Some("That page link is not valid; start again.".to_owned());
    };
    let mut list = view::LogList::Nothing;
    if problem.is_none() {
        if status.is_some() || endpoint.is_some() {
            let attempts = AttemptFilter {
                endpoint: endpoint_filter,
                event_types: filter.event_types.clone(),
                channel: filter.channel.clone(),
                status: status_filter,
                before: filter.before,
                after: filter.after,
                ..AttemptFilter::default()
            };
            match scope.list_attempts(&attempts, &options).await {
                Ok(page) => list = view::LogList::Attempts(page),
                Err(WebhooksError::InvalidId { .. }) => bad_link(&mut problem),
                Err(error) => return failure(&signed_in, &error),
            }
        } else {
            match scope.list_messages(&filter, &options).await {
                Ok(page) => list = view::LogList::Messages(page),
                Err(WebhooksError::InvalidId { .. }) => bad_link(&mut problem),
                Err(error) => return failure(&signed_in, &error),
            }
        }
    }
    let (after, before) = (given(&query.after), given(&query.before));
    let filters = view::LogFilters {
        event_type: event_type.as_deref(),
        channel: channel.as_deref(),
        after: after.as_deref(),
        before: before.as_deref(),
        status: status.as_deref(),
        endpoint: endpoint.as_deref(),
        endpoints: &choices,
    };
    html(
        if problem.is_some() {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::OK
        },
        view::messages(
            &signed_in.csrf,
            operator(&signed_in),
            &application,
            &list,
            &filters,
            problem.as_deref(),
            asked,
        ),
    )
}

/// `/portal/app/{app}/msg/{msg}`: a message's payload, where it went, and its attempts.
pub(super) async fn message(
    State(state): State<Arc<PortalState>>,
    headers: HeaderMap,
    Path((app, msg)): Path<(String, String)>,
) -> Response {
    let Some(signed_in) = state.signed_in(&headers).await else {
        return super::redirect("/portal");
    };
    let (application, scope) = match visible(&state, &signed_in, &app).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let message = match scope.message(&msg).await {
        Ok(message) => message,
        Err(WebhooksError::MessageNotFound { .. } | WebhooksError::InvalidId { .. }) => {
            return not_found(&signed_in);
        }
        Err(error) => return failure(&signed_in, &error),
    };
    let deliveries = match scope.deliveries(&message.id).await {
        Ok(deliveries) => deliveries,
        Err(error) => return failure(&signed_in, &error),
    };
    let mut destinations = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        // An endpoint deleted since shows by its id.
        let url = scope
            .endpoint(delivery.endpoint_id.as_str())
            .await
            .ok()
            .map(|e| e.url);
        destinations.push((delivery, url));
    }
    let filter = AttemptFilter {
        message: Some(message.id.clone()),
        ..AttemptFilter::default()
    };
    let options = ListOptions::new()
        .limit(ATTEMPTS_SHOWN)
        .order(Order::Descending);
    let attempts = match scope.list_attempts(&filter, &options).await {
        Ok(page) => page.items,
        Err(error) => return failure(&signed_in, &error),
    };
    html(
        StatusCode::OK,
        view::message_page(
            &signed_in.csrf,
            operator(&signed_in),
            &application,
            &message,
            &destinations,
            &attempts,
        ),
    )
}

/// `POST /portal/app/{app}/msg/{msg}/resend` (form: `csrf`, `endpoint`): the message goes
/// to that endpoint again now.
pub(super) async fn resend(
    State(state): State<Arc<PortalState>>,
    headers: HeaderMap,
    Path((app, msg)): Path<(String, String)>,
    body: Body,
) -> Response {
    let (signed_in, form, application, scope) =
        match posted(&state, &headers, body, &app, Changes::Yes).await {
            Ok(found) => found,
            Err(response) => return response,
        };
    let endpoint = form_field(&form, "endpoint").unwrap_or_default();
    match scope.resend(&msg, &endpoint).await {
        Ok(()) => {}
        Err(
            WebhooksError::MessageNotFound { .. }
            | WebhooksError::EndpointNotFound { .. }
            | WebhooksError::InvalidId { .. },
        ) => {
            return not_found(&signed_in);
        }
        Err(error) => return failure(&signed_in, &error),
    }
    let location = format!("/portal/app/{}/msg/{msg}", application.id);
    (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response()
}

/// `/portal/app/{app}/endpoint/new`: the form adding an endpoint.
pub(super) async fn new_endpoint(
    State(state): State<Arc<PortalState>>,
    headers: HeaderMap,
    Path(app): Path<String>,
) -> Response {
    let Some(signed_in) = state.signed_in(&headers).await else {
        return super::redirect("/portal");
    };
    let (application, _) = match visible(&state, &signed_in, &app).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    html(
        StatusCode::OK,
        view::endpoint_form(
            &signed_in.csrf,
            operator(&signed_in),
            &application,
            &view::EndpointForm::default(),
            None,
            None,
        ),
    )
}

/// `POST /portal/app/{app}/endpoint` (form: `csrf`, `url`, `description`, `event_types` and
/// `channels` separated by commas, `rate_limit`, `headers` one `Name: value` a line): adds
/// the endpoint, or shows the form again saying what is wrong.
pub(super) async fn create_endpoint(
    State(state): State<Arc<PortalState>>,
    headers: HeaderMap,
    Path(app): Path<String>,
    body: Body,
) -> Response {
    let (signed_in, form, application, scope) =
        match posted(&state, &headers, body, &app, Changes::Yes).await {
            Ok(found) => found,
            Err(response) => return response,
        };
    let input = endpoint_input(&form);
    let again = |problem: String| {
        html(
            StatusCode::UNPROCESSABLE_ENTITY,
            view::endpoint_form(
                &signed_in.csrf,
                operator(&signed_in),
                &application,
                &input,
                Some(&problem),
                None,
            ),
        )
    };
    let spec = match endpoint_spec(&state, &input) {
        Ok(spec) => spec,
        Err(problem) => return again(problem),
    };
    match scope.create_endpoint(spec).await {
        Ok(endpoint) => {
            operational(&state, EndpointChange::Created, &endpoint).await;
            let location = format!("/portal/app/{}", application.id);
            (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response()
        }
        Err(
            error @ (WebhooksError::InvalidUrl { .. }
            | WebhooksError::InvalidHeader { .. }
            | WebhooksError::InvalidChannel { .. }
            | WebhooksError::TooManyChannels { .. }
            | WebhooksError::EventTypeNotFound { .. }),
        ) => again(error.to_string()),
        Err(error) => failure(&signed_in, &error),
    }
}

/// The endpoint the form describes, checked as the API checks one (the SSRF guard included).
fn endpoint_spec(state: &PortalState, input: &view::EndpointForm) -> Result<EndpointSpec, String> {
    if let Err(refused) = state.svix.addresses.check_url(&input.url) {
        return Err(format!(
            "deliveries to a {} address are refused (SSRF guard)",
            refused.range
        ));
    }
    let mut spec = EndpointSpec::new(input.url.clone()).description(input.description.clone());
    for name in list(&input.event_types) {
        spec = spec.event_type(EventTypeName::new(name).map_err(|e| e.to_string())?);
    }
    for channel in list(&input.channels) {
        spec = spec.channel(channel).map_err(|e| e.to_string())?;
    }
    for (name, value) in header_lines(&input.headers)? {
        spec = spec.header(name, value);
    }
    if !input.rate_limit.is_empty() {
        let rate: NonZeroU32 = input
            .rate_limit
            .parse()
            .map_err(|_| "the rate limit is a whole number of messages a second, at least 1")?;
        spec = spec.rate_limit(rate);
    }
    Ok(spec)
}

/// The headers of the form's text, one `Name: value` a line (blank lines skipped). Errors
/// name the line and the header, never a value.
fn header_lines(text: &str) -> Result<std::collections::BTreeMap<String, String>, String> {
    let mut headers = std::collections::BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let expected = || format!("header line {}: `Name: value` expected", number + 1);
        let (name, value) = line.split_once(':').ok_or_else(expected)?;
        let name = name.trim();
        if name.is_empty() {
            return Err(expected());
        }
        if headers
            .keys()
            .any(|given: &String| given.eq_ignore_ascii_case(name))
        {
            return Err(format!("header `{name}` is given twice"));
        }
        headers.insert(name.to_owned(), value.trim().to_owned());
    }
    Ok(headers)
}

/// The items of a comma-separated field.
fn list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// Whether the session may only read (a read-only application token).
fn read_only(signed_in: &SignedIn) -> bool {
    matches!(&signed_in.session, super::Session::Customer(token) if token.read_only)
}

fn forbidden(signed_in: &SignedIn) -> Response {
    html(
        StatusCode::FORBIDDEN,
        view::page(
            &signed_in.csrf,
            operator(signed_in),
            "Read only",
            view::message("This link may only look, not change anything."),
        ),
    )
}

/// What an endpoint's page shows besides the endpoint: a secret revealed on request.
enum Reveal {
    Hidden,
    Secret(String),
}

/// `/portal/app/{app}/endpoint/{ep}`: an endpoint's settings and state, with its actions.
pub(super) async fn endpoint(
    State(state): State<Arc<PortalState>>,
    headers: HeaderMap,
    Path((app, ep)): Path<(String, String)>,
    Query(query): Query<EndpointQuery>,
) -> Response {
    let period = match query.period.as_deref() {
        Some("hour") => Period::Hour,
        Some("week") => Period::Week,
        _ => Period::Day,
    };
    let Some(signed_in) = state.signed_in(&headers).await else {
        return super::redirect("/portal");
    };
    let (application, scope) = match visible(&state, &signed_in, &app).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    endpoint_page(
        &signed_in,
        &application,
        &scope,
        &ep,
        Reveal::Hidden,
        None,
        period,
    )
    .await
}

async fn endpoint_page(
    signed_in: &SignedIn,
    application: &Application,
    scope: &AppScope<'_, ServerStore>,
    ep: &str,
    reveal: Reveal,
    notice: Option<&str>,
    period: Period,
) -> Response {
    let endpoint = match scope.endpoint(ep).await {
        Ok(endpoint) => endpoint,
        Err(WebhooksError::EndpointNotFound { .. }) => return not_found(signed_in),
        Err(error) => return failure(signed_in, &error),
    };
    let secret = match reveal {
        Reveal::Hidden => None,
        Reveal::Secret(secret) => Some(secret),
    };
    let until = chrono::Utc::now();
    let since = until - period.span();
    let spans = match scope
        .attempt_histogram(endpoint.id.as_str(), since, until, period.buckets())
        .await
    {
        Ok(spans) => spans,
        Err(error) => return failure(signed_in, &error),
    };
    let last = AttemptFilter {
        endpoint: Some(endpoint.id.clone()),
        ..AttemptFilter::default()
    };
    let last = match scope
        .list_attempts(&last, &ListOptions::new().limit(1).order(Order::Descending))
        .await
    {
        Ok(page) => page.items.into_iter().next(),
        Err(error) => return failure(signed_in, &error),
    };
    let failing_since = match scope.failing_since(endpoint.id.as_str()).await {
        Ok(since) => since,
        Err(error) => return failure(signed_in, &error),
    };
    let health = view::Health {
        period,
        since,
        spans: &spans,
        last: last.as_ref(),
        failing_since,
    };
    html(
        StatusCode::OK,
        view::endpoint(
            &signed_in.csrf,
            operator(signed_in),
            application,
            &endpoint,
            &view::EndpointShown {
                secret: secret.as_deref(),
                notice,
                read_only: read_only(signed_in),
                health: &health,
            },
        ),
    )
}

/// The window an endpoint's health chart shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Period {
    /// The last hour, in five-minute spans.
    Hour,
    /// The last day, in hours.
    #[default]
    Day,
    /// The last week, in six-hour spans.
    Week,
}

impl Period {
    pub(super) fn span(self) -> chrono::TimeDelta {
        match self {
            Self::Hour => chrono::TimeDelta::hours(1),
            Self::Day => chrono::TimeDelta::days(1),
            Self::Week => chrono::TimeDelta::weeks(1),
        }
    }

    pub(super) fn buckets(self) -> u32 {
        match self {
            Self::Hour => 12,
            Self::Day => 24,
            Self::Week => 28,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Week => "week",
        }
    }
}

/// The endpoint page's query: the chart's period (`hour`, `day` or `week`; anything else
/// is `day`).
#[derive(Debug, Default, Deserialize)]
pub(super) struct EndpointQuery {
    period: Option<String>,
}

/// What an endpoint action does.
#[derive(Debug, Clone, Copy)]
pub(super) enum Action {
    /// Shows the signing secret.
    Reveal,
    /// Rotates the signing secret (the old one signs on for its grace period) and shows the
    /// new one.
    Rotate,
    /// Disables an enabled endpoint, enables a disabled one.
    Toggle,
    /// Deletes it.
    Delete,
    /// Sends again every message since the form's time whose delivery to it failed.
    Recover,
}

/// `POST /portal/app/{app}/endpoint/{ep}/{action}` (form: `csrf`; `since` for recover).
pub(super) async fn endpoint_action(
    state: Arc<PortalState>,
    headers: HeaderMap,
    app: String,
    ep: String,
    action: Action,
    body: Body,
) -> Response {
    // Revealing only reads; everything else changes the endpoint.
    let changes = if matches!(action, Action::Reveal) {
        Changes::No
    } else {
        Changes::Yes
    };
    let (signed_in, form, application, scope) =
        match posted(&state, &headers, body, &app, changes).await {
            Ok(found) => found,
            Err(response) => return response,
        };
    let endpoint = match scope.endpoint(&ep).await {
        Ok(endpoint) => endpoint,
        Err(WebhooksError::EndpointNotFound { .. }) => return not_found(&signed_in),
        Err(error) => return failure(&signed_in, &error),
    };
    let id = endpoint.id.to_string();
    let here = format!("/portal/app/{}/endpoint/{id}", application.id);
    let result = match action {
        Action::Reveal => match scope.endpoint_secret(&id).await {
            Ok(secret) => {
                return endpoint_page(
                    &signed_in,
                    &application,
                    &scope,
                    &id,
                    Reveal::Secret(secret.expose().to_owned()),
                    None,
                    Period::Day,
                )
                .await;
            }
            Err(error) => Err(error),
        },
        Action::Rotate => match scope.rotate_secret(&id, None).await {
            Ok(()) => {
                announce(&state, &scope, &id, EndpointChange::Updated).await;
                let secret = match scope.endpoint_secret(&id).await {
                    Ok(secret) => secret.expose().to_owned(),
                    Err(error) => return failure(&signed_in, &error),
                };
                return endpoint_page(
                    &signed_in,
                    &application,
                    &scope,
                    &id,
                    Reveal::Secret(secret),
                    Some("Rotated: the previous secret signs on for 24 hours."),
                    Period::Day,
                )
                .await;
            }
            Err(error) => Err(error),
        },
        Action::Toggle => {
            let mut spec = EndpointSpec::from(&endpoint);
            spec.disabled = !endpoint.disabled;
            match scope.update_endpoint(&id, spec).await {
                Ok(updated) => {
                    operational(&state, EndpointChange::Updated, &updated).await;
                    Ok(())
                }
                Err(error) => Err(error),
            }
        }
        Action::Delete => match scope.delete_endpoint(&id).await {
            Ok(()) => {
                operational(&state, EndpointChange::Deleted, &endpoint).await;
                let location = format!("/portal/app/{}", application.id);
                return (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response();
            }
            Err(error) => Err(error),
        },
        Action::Recover => {
            let Some(since) = form_time(&form) else {
                return endpoint_page(
                    &signed_in,
                    &application,
                    &scope,
                    &id,
                    Reveal::Hidden,
                    Some("Give the time to recover from."),
                    Period::Day,
                )
                .await;
            };
            match scope.recover(&id, since).await {
                Ok(queued) => {
                    let notice = format!("{queued} failed messages are being sent again.");
                    return endpoint_page(
                        &signed_in,
                        &application,
                        &scope,
                        &id,
                        Reveal::Hidden,
                        Some(&notice),
                        Period::Day,
                    )
                    .await;
                }
                Err(error) => Err(error),
            }
        }
    };
    match result {
        Ok(()) => (StatusCode::SEE_OTHER, [(LOCATION, here)]).into_response(),
        Err(WebhooksError::EventTypeNotFound { name }) => {
            let notice = format!(
                "It listens for `{name}`, which is archived: change its event types through \
                 the API first."
            );
            endpoint_page(
                &signed_in,
                &application,
                &scope,
                &id,
                Reveal::Hidden,
                Some(&notice),
                Period::Day,
            )
            .await
        }
        Err(error) => failure(&signed_in, &error),
    }
}

/// The recover form's time: `since` (RFC 3339, filled in by the page's script from the
/// browser's local time), else `since_local` read as UTC.
fn form_time(form: &[u8]) -> Option<chrono::DateTime<chrono::Utc>> {
    if let Some(since) = form_field(form, "since").filter(|s| !s.is_empty()) {
        return chrono::DateTime::parse_from_rfc3339(&since)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc));
    }
    let local = form_field(form, "since_local")?;
    chrono::NaiveDateTime::parse_from_str(&local, "%Y-%m-%dT%H:%M")
        .ok()
        .map(|t| t.and_utc())
}

/// Tells operational webhooks (when they are on) about a change to endpoint `id`.
async fn announce(
    state: &PortalState,
    scope: &AppScope<'_, ServerStore>,
    id: &str,
    change: EndpointChange,
) {
    if state.svix.webhooks.operational.is_some()
        && let Ok(endpoint) = scope.endpoint(id).await
    {
        operational(state, change, &endpoint).await;
    }
}

async fn operational(state: &PortalState, change: EndpointChange, endpoint: &Endpoint) {
    if let Some(operational) = &state.svix.webhooks.operational {
        operational.endpoint_changed(change, endpoint).await;
    }
}

/// `/portal/event-types`: the event-type catalogue, with each schema and its example.
pub(super) async fn event_types(
    State(state): State<Arc<PortalState>>,
    headers: HeaderMap,
    Query(query): Query<LogQuery>,
) -> Response {
    let Some(signed_in) = state.signed_in(&headers).await else {
        return super::redirect("/portal");
    };
    let asked = query.iterator.as_deref().filter(|i| !i.is_empty());
    let mut options = ListOptions::new().limit(50).order(Order::Ascending);
    if let Some(iterator) = asked {
        options = options.iterator(iterator);
    }
    match state
        .svix
        .webhooks
        .registry
        .list_event_types_with(&options, false)
        .await
    {
        Ok(page) => html(
            StatusCode::OK,
            view::event_types(&signed_in.csrf, operator(&signed_in), &page, asked),
        ),
        Err(WebhooksError::InvalidId { .. }) => not_found(&signed_in),
        Err(error) => failure(&signed_in, &error),
    }
}

/// `POST /portal/app/{app}/endpoint/{ep}/example` (form: `csrf`, `event_type`): sends the
/// event type's example to this endpoint only (Svix's send-example), then shows the message.
pub(super) async fn send_example(
    state: Arc<PortalState>,
    headers: HeaderMap,
    app: String,
    ep: String,
    body: Body,
) -> Response {
    let (signed_in, form, application, scope) =
        match posted(&state, &headers, body, &app, Changes::Yes).await {
            Ok(found) => found,
            Err(response) => return response,
        };
    let name = form_field(&form, "event_type").unwrap_or_default();
    let sent: Result<String, String> = async {
        let event_type = EventTypeName::new(name.trim()).map_err(|e| e.to_string())?;
        let registered = state
            .svix
            .webhooks
            .event_type(&event_type)
            .await
            .map_err(|_| "the event type could not be read".to_owned())?;
        let payload = crate::svix::endpoints::example_payload(&event_type, registered.as_ref())?;
        let new = switchyard_webhooks::NewMessage::new(&event_type, payload.as_bytes());
        match scope.create_message_to(new, &ep).await {
            Ok(message) => Ok(format!("/portal/app/{}/msg/{}", application.id, message.id)),
            Err(error) => Err(error.to_string()),
        }
    }
    .await;
    match sent {
        Ok(location) => (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response(),
        Err(problem) => {
            endpoint_page(
                &signed_in,
                &application,
                &scope,
                &ep,
                Reveal::Hidden,
                Some(&problem),
                Period::Day,
            )
            .await
        }
    }
}

/// The endpoint form's fields.
fn endpoint_input(form: &[u8]) -> view::EndpointForm {
    let field = |name: &str| form_field(form, name).unwrap_or_default();
    view::EndpointForm {
        url: field("url").trim().to_owned(),
        description: field("description"),
        event_types: field("event_types"),
        channels: field("channels"),
        rate_limit: field("rate_limit").trim().to_owned(),
        headers: field("headers"),
        hidden_headers: Vec::new(),
        removed: form_urlencoded::parse(form)
            .filter(|(key, _)| key == "remove_header")
            .map(|(_, value)| value.into_owned())
            .collect(),
    }
}

/// `/portal/app/{app}/endpoint/{ep}/edit`: the form changing an endpoint's settings.
pub(super) async fn edit_endpoint_form(
    state: Arc<PortalState>,
    headers: HeaderMap,
    app: String,
    ep: String,
) -> Response {
    let Some(signed_in) = state.signed_in(&headers).await else {
        return super::redirect("/portal");
    };
    let (application, scope) = match visible(&state, &signed_in, &app).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    if read_only(&signed_in) {
        return forbidden(&signed_in);
    }
    match scope.endpoint(&ep).await {
        Ok(endpoint) => html(
            StatusCode::OK,
            view::endpoint_form(
                &signed_in.csrf,
                operator(&signed_in),
                &application,
                &view::EndpointForm::of(&endpoint),
                None,
                Some(&endpoint),
            ),
        ),
        Err(WebhooksError::EndpointNotFound { .. }) => not_found(&signed_in),
        Err(error) => failure(&signed_in, &error),
    }
}

/// `POST /portal/app/{app}/endpoint/{ep}/edit`: changes the form's settings (URL,
/// description, event types, channels, rate limit, headers: the lines given, and the hidden
/// ones not replaced or ticked for removal); its secret, uid, metadata and state stay.
pub(super) async fn edit_endpoint(
    state: Arc<PortalState>,
    headers: HeaderMap,
    app: String,
    ep: String,
    body: Body,
) -> Response {
    let (signed_in, form, application, scope) =
        match posted(&state, &headers, body, &app, Changes::Yes).await {
            Ok(found) => found,
            Err(response) => return response,
        };
    let existing = match scope.endpoint(&ep).await {
        Ok(endpoint) => endpoint,
        Err(WebhooksError::EndpointNotFound { .. }) => return not_found(&signed_in),
        Err(error) => return failure(&signed_in, &error),
    };
    let mut input = endpoint_input(&form);
    input.hidden_headers = view::hidden_headers(&existing);
    let again = |problem: String| {
        html(
            StatusCode::UNPROCESSABLE_ENTITY,
            view::endpoint_form(
                &signed_in.csrf,
                operator(&signed_in),
                &application,
                &input,
                Some(&problem),
                Some(&existing),
            ),
        )
    };
    let given = match endpoint_spec(&state, &input) {
        Ok(spec) => spec,
        Err(problem) => return again(problem),
    };
    let mut spec = EndpointSpec::from(&existing);
    spec.url = given.url;
    spec.description = given.description;
    spec.event_types = given.event_types;
    spec.channels = given.channels;
    spec.rate_limit = given.rate_limit;
    // The headers are the form's lines, and the hidden ones it neither replaced nor removed.
    let mut headers = given.headers;
    for (name, value) in &existing.headers {
        let removed = input.removed.iter().any(|r| r.eq_ignore_ascii_case(name));
        let replaced = headers.keys().any(|given| given.eq_ignore_ascii_case(name));
        if view::hidden_header(name) && !removed && !replaced {
            headers.insert(name.clone(), value.clone());
        }
    }
    // A form without the field (not the portal's) leaves the headers as they were.
    if form_field(&form, "headers").is_some() {
        spec.headers = headers;
    }
    match scope.update_endpoint(existing.id.as_str(), spec).await {
        Ok(updated) => {
            operational(&state, EndpointChange::Updated, &updated).await;
            let location = format!("/portal/app/{}/endpoint/{}", application.id, updated.id);
            (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response()
        }
        Err(
            error @ (WebhooksError::InvalidUrl { .. }
            | WebhooksError::InvalidHeader { .. }
            | WebhooksError::InvalidChannel { .. }
            | WebhooksError::TooManyChannels { .. }
            | WebhooksError::EventTypeNotFound { .. }),
        ) => again(error.to_string()),
        Err(error) => failure(&signed_in, &error),
    }
}
