//! The webhook portal at `/portal`: pages rendered by the server (no build step), for two
//! audiences.
//!
//! - **The operator** signs in with a server token, typed into a form (never in a URL), and
//!   gets a session cookie signed with the server token (HMAC-SHA256, 12 hours): every
//!   application is theirs to see.
//! - **A customer** follows the link `POST /api/v1/auth/app-portal-access/{app}` hands out
//!   (`/portal/#key=appsk_…`): the page's script moves the key from the fragment (which no
//!   browser sends to a server) into the same sign-in form, clears it from the address bar
//!   and submits it; the cookie then carries that application token, so it expires and is
//!   revoked with the token, and reaches that application only (another's pages are 404s).
//!
//! Safe by default: the cookie is `HttpOnly`, `SameSite=Strict`, `Path=/portal` (and
//! `Secure` when `public_url` is `https`); every form that changes something carries a CSRF
//! token derived from the cookie (HMAC with the server token), checked in constant time;
//! every page is sent with a strict Content-Security-Policy (scripts and styles from
//! `/portal/assets/` only, no inline script, no framing), `no-store`, `nosniff` and a
//! `same-origin` referrer policy (so a browser names the origin of the portal's own forms,
//! which the form handlers check); all text reaches the page through maud's escaping.

mod pages;
mod view;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use hmac::{Hmac, Mac};
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, LOCATION, REFERRER_POLICY,
    SET_COOKIE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;
use switchyard_webhooks::store::{AccessToken, EndpointFilter};
use switchyard_webhooks::{AppId, Error as WebhooksError, ListOptions, Order};

use crate::config::Token;
use crate::svix::SvixState;

/// The session cookie's name.
const COOKIE_NAME: &str = "switchyard_portal";
/// How long an operator's session lasts.
const OPERATOR_SESSION: Duration = Duration::from_secs(12 * 60 * 60);
/// The Content-Security-Policy of every portal response.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
                   base-uri 'none'";
/// The largest sign-in form read.
const MAX_FORM: usize = 16 * 1024;

/// What the portal needs: the webhooks, the server's tokens (which sign sessions), and
/// whether cookies must be `Secure`.
pub(crate) struct PortalState {
    pub svix: Arc<SvixState>,
    pub tokens: Arc<Vec<Token>>,
    pub secure_cookies: bool,
}

type Shared = State<Arc<PortalState>>;

/// Who is signed in.
#[derive(Debug, Clone)]
enum Session {
    /// A server token's holder: every application.
    Operator,
    /// An application token's holder: that application only.
    Customer(AccessToken),
}

impl Session {
    /// Whether this session may see application `app`.
    fn sees(&self, app: &AppId) -> bool {
        match self {
            Self::Operator => true,
            Self::Customer(token) => token.app == *app,
        }
    }
}

/// A signed-in request: the session and its cookie's value (for the CSRF token).
struct SignedIn {
    session: Session,
    csrf: String,
}

/// The routes under `/portal`, and `/` sending browsers there.
pub(crate) fn routes(state: Arc<PortalState>) -> Router {
    Router::new()
        .route("/", get(|| async { redirect("/portal") }))
        .route("/portal", get(home))
        .route("/portal/session", post(sign_in))
        .route("/portal/sign-out", post(sign_out))
        .route("/portal/event-types", get(pages::event_types))
        .route("/portal/app/{app}", get(application))
        .route("/portal/app/{app}/msg", get(pages::messages))
        .route("/portal/app/{app}/msg/{msg}", get(pages::message))
        .route("/portal/app/{app}/msg/{msg}/resend", post(pages::resend))
        .route("/portal/app/{app}/endpoint/new", get(pages::new_endpoint))
        .route("/portal/app/{app}/endpoint", post(pages::create_endpoint))
        .route("/portal/app/{app}/endpoint/{ep}", get(pages::endpoint))
        .route(
            "/portal/app/{app}/endpoint/{ep}/{action}",
            get(endpoint_page).post(endpoint_action),
        )
        .route("/portal/assets/portal.js", get(script))
        .route("/portal/assets/portal.css", get(style))
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(state)
}

/// The headers every portal response carries.
async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn redirect(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, to)]).into_response()
}

fn html(status: StatusCode, page: maud::Markup) -> Response {
    (
        status,
        [(CONTENT_TYPE, "text/html; charset=utf-8")],
        page.into_string(),
    )
        .into_response()
}

async fn script() -> Response {
    (
        [(CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("portal.js"),
    )
        .into_response()
}

async fn style() -> Response {
    (
        [(CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("portal.css"),
    )
        .into_response()
}

/// HMAC-SHA256 of `message` under `token`, base64url.
fn sign(token: &Token, message: &str) -> String {
    // An HMAC takes a key of any length.
    let mut mac = match Hmac::<Sha256>::new_from_slice(token.expose().as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(message.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

impl PortalState {
    /// The key sessions are signed with now (the first server token; any of them verifies).
    fn signing_token(&self) -> Option<&Token> {
        self.tokens.first()
    }

    /// A new operator session's cookie value: `op.<expiry>.<signature>`.
    fn operator_cookie(&self) -> Option<String> {
        let expires = Utc::now().timestamp() + OPERATOR_SESSION.as_secs() as i64;
        let claim = format!("op.{expires}");
        let token = self.signing_token()?;
        Some(format!("{claim}.{}", sign(token, &claim)))
    }

    /// The CSRF token of the session whose cookie is `cookie`.
    fn csrf(&self, cookie: &str) -> String {
        self.signing_token()
            .map(|token| sign(token, &format!("csrf.{cookie}")))
            .unwrap_or_default()
    }

    /// Whether `given` is the CSRF token of `cookie`, in constant time.
    fn csrf_matches(&self, cookie: &str, given: &str) -> bool {
        let expected = self.csrf(cookie);
        !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
    }

    /// The session `cookie` opens, if any: a valid operator claim, or a live application
    /// token.
    async fn session(&self, cookie: &str) -> Option<Session> {
        if let Some(rest) = cookie.strip_prefix("op.") {
            let (expires, signature) = rest.split_once('.')?;
            let expires: i64 = expires.parse().ok()?;
            if expires <= Utc::now().timestamp() {
                return None;
            }
            let claim = format!("op.{expires}");
            let mut valid = false;
            for token in self.tokens.iter() {
                valid |= bool::from(sign(token, &claim).as_bytes().ct_eq(signature.as_bytes()));
            }
            return valid.then_some(Session::Operator);
        }
        let token = cookie.strip_prefix("app.")?;
        match self.svix.webhooks.registry.access_token(token).await {
            Ok(found) => found.map(Session::Customer),
            Err(error) => {
                tracing::warn!(%error, "reading an application token for the portal failed");
                None
            }
        }
    }

    /// The signed-in session of a request, if any.
    async fn signed_in(&self, headers: &HeaderMap) -> Option<SignedIn> {
        let cookie = session_cookie(headers)?;
        let session = self.session(cookie).await?;
        Some(SignedIn {
            session,
            csrf: self.csrf(cookie),
        })
    }

    /// A form posted by a signed-in page: from this origin, with the session's CSRF token;
    /// the session and the form's bytes, else the response to give.
    async fn form(
        &self,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<(SignedIn, axum::body::Bytes), Response> {
        if !same_origin(headers) {
            return Err(cross_site());
        }
        let Some(cookie) = session_cookie(headers) else {
            return Err(redirect("/portal"));
        };
        let Some(session) = self.session(cookie).await else {
            return Err(redirect("/portal"));
        };
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM).await else {
            return Err(html(
                StatusCode::PAYLOAD_TOO_LARGE,
                view::message("The form is too large."),
            ));
        };
        let csrf = form_field(&bytes, "csrf").unwrap_or_default();
        if !self.csrf_matches(cookie, &csrf) {
            return Err(html(
                StatusCode::FORBIDDEN,
                view::message("This form has expired; reload the page and try again."),
            ));
        }
        let signed_in = SignedIn {
            session,
            csrf: self.csrf(cookie),
        };
        Ok((signed_in, bytes))
    }

    /// A `Set-Cookie` value holding `value` for `max_age` (zero: removed).
    fn cookie(&self, value: &str, max_age: Duration) -> String {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        format!(
            "{COOKIE_NAME}={value}; Path=/portal; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            max_age.as_secs()
        )
    }
}

/// The value of the session cookie a request carries.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value)
}

/// `/portal`: the sign-in page, the operator's application list, or the customer's
/// application.
async fn home(State(state): Shared, headers: HeaderMap, Query(page): Query<PageQuery>) -> Response {
    let Some(signed_in) = state.signed_in(&headers).await else {
        return html(StatusCode::OK, view::sign_in(None));
    };
    match &signed_in.session {
        Session::Customer(token) => {
            let location = format!("/portal/app/{}", token.app);
            (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response()
        }
        Session::Operator => {
            let options = page.options(Order::Ascending);
            match state
                .svix
                .webhooks
                .registry
                .list_applications(&options)
                .await
            {
                Ok(mut list) => {
                    list.items.retain(|a| a.id != AppId::default_app());
                    html(
                        StatusCode::OK,
                        view::applications(&signed_in.csrf, &list, page.asked()),
                    )
                }
                Err(WebhooksError::InvalidId { .. }) => not_found(&signed_in),
                Err(error) => failure(&signed_in, &error),
            }
        }
    }
}

/// A page's `iterator` and `limit`.
#[derive(Debug, Default, Deserialize)]
struct PageQuery {
    iterator: Option<String>,
}

impl PageQuery {
    /// The iterator asked for, if any.
    fn asked(&self) -> Option<&str> {
        self.iterator.as_deref().filter(|i| !i.is_empty())
    }

    fn options(&self, order: Order) -> ListOptions {
        let options = ListOptions::new().limit(50).order(order);
        match self.asked() {
            Some(iterator) => options.iterator(iterator),
            None => options,
        }
    }
}

/// `POST /portal/session` (form: `token`): a server token opens an operator session, an
/// application token a customer one; anything else is the sign-in page again, 401.
async fn sign_in(State(state): Shared, headers: HeaderMap, body: Body) -> Response {
    if !same_origin(&headers) {
        return cross_site();
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM).await else {
        return html(
            StatusCode::PAYLOAD_TOO_LARGE,
            view::sign_in(Some("The form is too large.")),
        );
    };
    let given = form_field(&bytes, "token").unwrap_or_default();
    let given = given.trim();
    let mut operator = false;
    for token in state.tokens.iter() {
        operator |= bool::from(token.expose().as_bytes().ct_eq(given.as_bytes()));
    }
    let (value, lifetime) = if operator {
        match state.operator_cookie() {
            Some(value) => (value, OPERATOR_SESSION),
            None => return refused(),
        }
    } else {
        match state.svix.webhooks.registry.access_token(given).await {
            Ok(Some(token)) => {
                let left = (token.expires_at - Utc::now()).to_std().unwrap_or_default();
                (format!("app.{given}"), left)
            }
            Ok(None) => return refused(),
            Err(error) => {
                tracing::warn!(%error, "reading an application token for the portal failed");
                return refused();
            }
        }
    };
    tracing::info!(operator, "portal session opened");
    (
        StatusCode::SEE_OTHER,
        [
            (LOCATION, "/portal".to_owned()),
            (SET_COOKIE, state.cookie(&value, lifetime)),
        ],
    )
        .into_response()
}

fn refused() -> Response {
    html(
        StatusCode::UNAUTHORIZED,
        view::sign_in(Some("That token is not valid (or has expired).")),
    )
}

/// `POST /portal/sign-out` (form: `csrf`): the cookie is removed.
async fn sign_out(State(state): Shared, headers: HeaderMap, body: Body) -> Response {
    if let Err(response) = state.form(&headers, body).await {
        return response;
    }
    (
        StatusCode::SEE_OTHER,
        [
            (LOCATION, "/portal".to_owned()),
            (SET_COOKIE, state.cookie("", Duration::ZERO)),
        ],
    )
        .into_response()
}

/// Whether a form was posted from a page of this server: a browser names the page's origin
/// in `Origin` on every `POST`; none (a client that is not a browser) passes, a foreign one
/// (another site's form, signing the victim into the attacker's session) does not.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(http::header::ORIGIN) else {
        return true;
    };
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, host)| host);
    matches!((origin_host, host), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b))
}

fn cross_site() -> Response {
    html(
        StatusCode::FORBIDDEN,
        view::message("This form was sent from another site."),
    )
}

/// A form field's value.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// `/portal/app/{app}`: the application and its endpoints.
async fn application(
    State(state): Shared,
    headers: HeaderMap,
    Path(app): Path<String>,
    Query(page): Query<PageQuery>,
) -> Response {
    let Some(signed_in) = state.signed_in(&headers).await else {
        return redirect("/portal");
    };
    let (application, scope) = match pages::visible(&state, &signed_in, &app).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    match scope
        .list_endpoints(&EndpointFilter::default(), &page.options(Order::Descending))
        .await
    {
        Ok(endpoints) => html(
            StatusCode::OK,
            view::application(
                &signed_in.csrf,
                operator(&signed_in),
                &application,
                &endpoints,
                page.asked(),
            ),
        ),
        // An iterator this server did not hand out.
        Err(WebhooksError::InvalidId { .. }) => not_found(&signed_in),
        Err(error) => failure(&signed_in, &error),
    }
}

fn operator(signed_in: &SignedIn) -> bool {
    matches!(signed_in.session, Session::Operator)
}

fn not_found(signed_in: &SignedIn) -> Response {
    html(
        StatusCode::NOT_FOUND,
        view::page(
            &signed_in.csrf,
            operator(signed_in),
            "Not found",
            view::message("There is nothing here, or it is not yours to see."),
        ),
    )
}

fn failure(signed_in: &SignedIn, error: &WebhooksError) -> Response {
    tracing::error!(%error, "a portal page failed");
    html(
        StatusCode::INTERNAL_SERVER_ERROR,
        view::page(
            &signed_in.csrf,
            operator(signed_in),
            "Something went wrong",
            view::message("The page could not be made; the server's log says why."),
        ),
    )
}

/// `POST /portal/app/{app}/endpoint/{ep}/{action}`: `secret` (reveal), `rotate`, `toggle`,
/// `delete`, `recover`, `example` or `edit`.
async fn endpoint_action(
    State(state): Shared,
    headers: HeaderMap,
    Path((app, ep, action)): Path<(String, String, String)>,
    body: Body,
) -> Response {
    let action = match action.as_str() {
        "secret" => pages::Action::Reveal,
        "rotate" => pages::Action::Rotate,
        "toggle" => pages::Action::Toggle,
        "delete" => pages::Action::Delete,
        "recover" => pages::Action::Recover,
        "example" => return pages::send_example(state, headers, app, ep, body).await,
        "edit" => return pages::edit_endpoint(state, headers, app, ep, body).await,
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    pages::endpoint_action(state, headers, app, ep, action, body).await
}

/// `GET /portal/app/{app}/endpoint/{ep}/edit`: the form changing its settings.
async fn endpoint_page(
    State(state): Shared,
    headers: HeaderMap,
    Path((app, ep, page)): Path<(String, String, String)>,
) -> Response {
    match page.as_str() {
        "edit" => pages::edit_endpoint_form(state, headers, app, ep).await,
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}
