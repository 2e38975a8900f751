//! Application tokens (`/api/v1/auth/…`): `app-portal-access` issues a token that reaches
//! one application only (and its deprecated name, `dashboard-access`), `logout` revokes
//! the token it is called with; [`permits`] is what such a token may do.
//!
//! A server token reaches everything. An application token (`appsk_…`, kept in the store as
//! a hash, expiring, revocable) reaches its own application's endpoints, messages and
//! attempts (reading the application itself, not changing or deleting it; not creating
//! messages, not expunging content), reads the event-type catalogue, and logs out; a
//! read-only one only reads. Anything else is a 403, whichever application the path names.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::post;
use http::{HeaderMap, Method, StatusCode};
use serde::{Deserialize, Serialize};
use switchyard_webhooks::store::AccessToken;
use switchyard_webhooks::{AppToken, Error as WebhooksError};

use super::apps::ApplicationIn;
use super::request::{optional_json_body, reply};
use super::{ApiResult, Shared, SvixState};
use crate::error::ApiError;

/// How long a token lives unless asked otherwise (Svix: 7 days).
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// The shortest and longest lifetimes a token may be given (Svix: 1 hour to 7 days).
pub const LIFETIMES: std::ops::RangeInclusive<u64> = 60 * 60..=7 * 24 * 60 * 60;

/// The auth routes.
pub(super) fn routes() -> Router<Arc<SvixState>> {
    Router::new()
        .route(
            "/api/v1/auth/app-portal-access/{app}",
            post(app_portal_access),
        )
        .route(
            "/api/v1/auth/dashboard-access/{app}",
            post(app_portal_access),
        )
        .route("/api/v1/auth/logout", post(logout))
}

/// `POST /api/v1/auth/app-portal-access/{app}`. `featureFlags` is accepted and ignored;
/// `expiry` (seconds) and `readOnly` are those of Svix's later API.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AppPortalAccessIn {
    #[serde(default)]
    application: Option<ApplicationIn>,
    #[serde(default)]
    expiry: Option<u64>,
    #[serde(default)]
    read_only: Option<bool>,
}

/// Svix's `AppPortalAccessOut`.
#[derive(Debug, Serialize)]
struct AppPortalAccessOut {
    token: String,
    url: String,
}

/// Issues a token for the application (created first from `application` when the path names
/// none, as Svix does): 200 with the token and the portal link, whose fragment carries the
/// token (a fragment is never sent to a server, so it stays out of access logs).
async fn app_portal_access(
    State(state): Shared,
    Path(app): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    let input: AppPortalAccessIn = optional_json_body(body, state.body_limit).await?;
    let lifetime = match input.expiry {
        None => DEFAULT_LIFETIME,
        Some(seconds) if LIFETIMES.contains(&seconds) => Duration::from_secs(seconds),
        Some(_) => {
            return Err(ApiError::invalid_field(
                "expiry",
                format!(
                    "must be from {} to {} seconds (1 hour to 7 days)",
                    LIFETIMES.start(),
                    LIFETIMES.end()
                ),
            ));
        }
    };
    let registry = &state.webhooks.registry;
    let application = match super::application(&state, &app).await {
        Ok(application) => application,
        Err(missing) if missing.status == StatusCode::NOT_FOUND => {
            let Some(input) = input.application else {
                return Err(missing);
            };
            if input.uid.as_deref() != Some(app.as_str()) {
                return Err(ApiError::invalid_field(
                    "application",
                    "to be created, the application's uid must be the one in the path",
                ));
            }
            let _writes = state.webhooks.writes.lock().await;
            super::apps::create(registry, input).await?
        }
        Err(other) => return Err(other),
    };
    let (token, _) = registry
        .issue_access_token(
            application.id.as_str(),
            lifetime,
            input.read_only.unwrap_or(false),
        )
        .await?;
    Ok(reply(
        StatusCode::OK,
        &AppPortalAccessOut {
            url: format!("{}/portal/#key={}", state.public_url, token.expose()),
            token: token.expose().to_owned(),
        },
    ))
}

/// Revokes the application token the request carries: 204. A server token cannot log out
/// (403), as Svix says: "trying to log out other tokens will fail".
async fn logout(State(state): Shared, headers: HeaderMap) -> ApiResult<StatusCode> {
    let token = crate::server::bearer(&headers).unwrap_or_default();
    if !AppToken::looks_like(token) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only an application token can log out; server tokens are configured",
        ));
    }
    state.webhooks.registry.revoke_access_token(token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What part of the API a path is, for an application token.
enum Reach<'a> {
    /// A route of the application this path segment (id or uid) names.
    App(&'a str),
    /// A route of no application (the event-type catalogue, logging out).
    Shared,
    /// Not for application tokens.
    Nothing,
}

fn reach<'a>(method: &Method, path: &'a str) -> Reach<'a> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let read = method == Method::GET || method == Method::HEAD;
    match segments.as_slice() {
        ["api", "v1", "event-type"] | ["api", "v1", "event-type", _] if read => Reach::Shared,
        ["api", "v1", "auth", "logout"] if method == Method::POST => Reach::Shared,
        ["api", "v1", "app", app] if read => Reach::App(app),
        ["api", "v1", "app", app, "endpoint", ..] => Reach::App(app),
        ["api", "v1", "app", app, "msg"] if read => Reach::App(app),
        ["api", "v1", "app", _, "msg", .., "content"] => Reach::Nothing,
        ["api", "v1", "app", app, "msg", _, ..] => Reach::App(app),
        ["api", "v1", "app", app, "attempt", ..] if read => Reach::App(app),
        _ => Reach::Nothing,
    }
}

/// Whether an application token may make this request: 403 when not.
///
/// # Errors
/// 403 `forbidden` for what the token may not do (another application's routes among
/// them); what the store answers when it cannot be asked.
pub(crate) async fn permits(
    state: &SvixState,
    token: &AccessToken,
    method: &Method,
    path: &str,
) -> ApiResult<()> {
    let forbidden = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this token may not do that: it reaches one application's routes only",
        )
    };
    let logout = method == Method::POST && path.trim_end_matches('/') == "/api/v1/auth/logout";
    let reads = method == Method::GET || method == Method::HEAD;
    if token.read_only && !reads && !logout {
        return Err(forbidden());
    }
    match reach(method, path) {
        Reach::Shared => Ok(()),
        Reach::Nothing => Err(forbidden()),
        Reach::App(named) => match state.webhooks.registry.application(named).await {
            Ok(application) if application.id == token.app => Ok(()),
            Ok(_) | Err(WebhooksError::ApplicationNotFound { .. }) => Err(forbidden()),
            Err(other) => Err(other.into()),
        },
    }
}
