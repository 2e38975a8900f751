//! Putting the APIs together: the router (Svix-compatible webhooks, Relay-compatible
//! metadata, health), bearer-token auth, JSON errors for unknown routes and methods, and a
//! server that shuts down gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use http::header::AUTHORIZATION;
use http::{Method, StatusCode, Uri};
use subtle::ConstantTimeEq;
use switchyard_metadata::{
    ChannelSink, DecoratorKind, Emitted, FileOutputs, MetadataService, OutputStore,
    PostgresOutputs, SpecSource,
};
use switchyard_runtime_events::{Event, Hub};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::Layer as _;
use tower_http::normalize_path::NormalizePathLayer;

use crate::config::{Config, Token, WebhooksConfig};
use crate::conn;
use crate::error::{ApiError, ServerError};
use crate::events_log::EventLog;
use crate::idempotency::{self, Idempotency};
use crate::portal::{self, PortalState};
use crate::private;
use crate::runtime::{self, METADATA_SOURCE, RuntimeState};
use crate::svix::{self, SvixState, store::ServerStore, webhooks::Webhooks};

/// The file a generated token is kept in, inside the data directory.
pub const TOKEN_FILE: &str = "token";
/// The file in the data directory holding the generated metadata step token, when the
/// config names none: a token of its own, which opens the metadata API and nothing else.
pub const STEP_TOKEN_FILE: &str = "step-token";

/// Starts servers. See [`Server::start`].
#[derive(Debug)]
pub struct Server;

/// A server that is listening. Stop it with [`RunningServer::shutdown`] or run it until a
/// signal with [`RunningServer::run_until`].
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    token: Token,
    stop: watch::Sender<bool>,
    http: JoinHandle<()>,
    svix: Arc<SvixState>,
    grace: Duration,
    data_dir: PathBuf,
}

/// Reads a running server's main keys again and moves its store to them while it serves:
/// what `SIGHUP` does to `switchyard serve`. Get one from [`RunningServer::key_reloader`].
#[derive(Debug, Clone)]
pub struct KeyReloader {
    svix: Arc<SvixState>,
    data_dir: PathBuf,
}

/// What a [`KeyReloader::reload`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reloaded {
    /// The id of the main key values are now sealed under.
    pub key_id: String,
    /// Values sealed again (endpoints' keys and headers, remembered responses).
    pub resealed: usize,
}

impl KeyReloader {
    /// Reads the main keys `webhooks` names (or the data directory's key file) again: new
    /// values are sealed under the first at once, what the store holds under other keys is
    /// sealed again between requests, and old keys the data directory's key file lists are
    /// then dropped from it. Requests and deliveries go on meanwhile.
    ///
    /// # Errors
    /// [`ServerError::MainKey`] for a key source that cannot be read (the server keeps its
    /// keys); [`ServerError::Webhooks`] for a value no key opens or an old key still in
    /// use — the store then opens under the old and the new keys alike.
    pub async fn reload(&self, webhooks: &WebhooksConfig) -> Result<Reloaded, ServerError> {
        let ring = crate::main_key::reload(webhooks, &self.data_dir)?;
        let key_id = ring.current().id().to_owned();
        let store = self.svix.webhooks.registry.store();
        let current = ring.current().clone();
        let resealed = store
            .rotate_keys(ring)
            .await
            .map_err(switchyard_webhooks::Error::from)?
            + crate::main_key::drop_old_keys(store, webhooks, &self.data_dir, &current).await?;
        Ok(Reloaded { key_id, resealed })
    }
}

impl Server {
    /// Opens the store under the data directory, binds the address and starts serving
    /// (and delivering) in the background.
    ///
    /// # Errors
    /// [`ServerError::DataDir`], [`ServerError::Bind`], [`ServerError::Webhooks`],
    /// [`ServerError::MetadataSpec`] and the other start-up failures, each naming the file,
    /// address or setting at fault.
    pub async fn start(config: Config) -> Result<RunningServer, ServerError> {
        // Owner-only: the data directory, and what earlier versions left in it readable.
        private::dir(&config.data_dir)?;
        private::tighten(&config.data_dir.join(TOKEN_FILE))?;
        private::tighten(&config.data_dir.join(STEP_TOKEN_FILE))?;
        private::tighten(&config.data_dir.join("webhooks"))?;
        let tokens = if config.tokens.is_empty() {
            vec![load_or_generate_token(&config.data_dir, TOKEN_FILE, "sy_")?]
        } else {
            config.tokens.clone()
        };
        // The stores open before the port is bound: a connection is answered or refused,
        // never accepted and left waiting while the stores open.
        let webhooks = Webhooks::open(
            &config.data_dir,
            config.database.as_ref(),
            config.delivery.clone(),
            config.webhooks.registry_config(),
            config.webhooks.operational_app.as_ref(),
            &config.webhooks,
        )
        .await?;
        let hub = Arc::new(Hub::with_config(config.runtime.clone()));
        // With a database, runtime events go through its log (see `events_log`).
        let log = match &config.database {
            Some(database) => Some(Arc::new(EventLog::open(database, Arc::clone(&hub)).await?)),
            None => None,
        };
        let listener =
            TcpListener::bind(config.bind)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: config.bind,
                    source,
                })?;
        let addr = listener.local_addr().map_err(ServerError::Serve)?;
        let svix = Arc::new(SvixState {
            webhooks,
            body_limit: config.body_limit,
            addresses: config.delivery.addresses.clone(),
            public_url: config.public_base(addr),
        });
        let metadata = match &config.metadata {
            Some(metadata) => Some(
                metadata_service(
                    &config,
                    metadata,
                    &tokens,
                    addr,
                    Arc::clone(&hub),
                    log.clone(),
                )
                .await?,
            ),
            None => None,
        };
        let runtime = Arc::new(RuntimeState {
            hub,
            body_limit: config.body_limit,
            log,
        });
        let router = router(
            Arc::clone(&svix),
            runtime,
            metadata,
            Arc::new(tokens.clone()),
        );
        let app = NormalizePathLayer::trim_trailing_slash().layer(router);
        let (stop, stopped) = watch::channel(false);
        let http = tokio::spawn(conn::serve(listener, app, config.connections, stopped));
        tracing::info!(%addr, data_dir = %config.data_dir.display(), "switchyard serving");
        Ok(RunningServer {
            addr,
            token: tokens.into_iter().next().unwrap_or_else(|| Token::new("")),
            stop,
            http,
            svix,
            grace: config.shutdown_grace,
            data_dir: config.data_dir.clone(),
        })
    }
}

impl RunningServer {
    /// The address it listens on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The first accepted bearer token (the generated one when none was configured).
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// A handle that reloads the main keys while this serves.
    pub fn key_reloader(&self) -> KeyReloader {
        KeyReloader {
            svix: Arc::clone(&self.svix),
            data_dir: self.data_dir.clone(),
        }
    }

    /// Serves until `signal` resolves, then shuts down gracefully.
    ///
    /// # Errors
    /// [`ServerError::Serve`] when serving failed.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> Result<(), ServerError> {
        signal.await;
        self.shutdown().await
    }

    /// Stops accepting connections, lets in-flight requests finish, then stops the delivery
    /// engines, letting in-flight deliveries finish and record their attempts (each within
    /// the configured grace period).
    ///
    /// # Errors
    /// [`ServerError::Serve`] when serving had failed.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        tracing::info!("shutting down: finishing in-flight requests and deliveries");
        let _ = self.stop.send(true);
        let mut http = self.http;
        let served = match tokio::time::timeout(self.grace, &mut http).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(join)) => Err(ServerError::Serve(std::io::Error::other(join))),
            Err(_) => {
                tracing::warn!(grace = ?self.grace, "requests still running after the grace period; closing them");
                http.abort();
                Ok(())
            }
        };
        self.svix.webhooks.shutdown(self.grace).await;
        tracing::info!("stopped");
        served
    }
}

/// Reads `<data_dir>/<file>`, or writes a new random token (`<prefix>…`) there, readable by
/// the owner only.
fn load_or_generate_token(data_dir: &Path, file: &str, prefix: &str) -> Result<Token, ServerError> {
    let path = data_dir.join(file);
    let io = |source| ServerError::DataDir {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let text = text.trim();
            if text.is_empty() {
                return Err(io(std::io::Error::other("the token file is empty")));
            }
            return Ok(Token::new(text));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| io(std::io::Error::other(e)))?;
    let token = format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    private::write(&path, &token).map_err(io)?;
    tracing::info!(path = %path.display(), "generated a token (clients send it as `Authorization: Bearer …`)");
    Ok(Token::new(token))
}

/// The most PostgreSQL connections the metadata outputs take (beside the webhooks' pool).
const OUTPUT_CONNECTIONS: usize = 4;

async fn metadata_service(
    config: &Config,
    metadata: &crate::config::MetadataConfig,
    server_tokens: &[Token],
    addr: SocketAddr,
    hub: Arc<Hub>,
    log: Option<Arc<EventLog>>,
) -> Result<MetadataService, ServerError> {
    let spec = SpecSource::from_file(&metadata.spec)?;
    // With a database, outputs live there, so a step reads what it set through any server.
    let outputs: Arc<dyn OutputStore> =
        match &config.database {
            Some(database) => Arc::new(
                PostgresOutputs::connect(
                    &database.url,
                    OUTPUT_CONNECTIONS.min(database.max_connections),
                )
                .await?,
            ),
            None => {
                let outputs_path = metadata
                    .outputs
                    .clone()
                    .unwrap_or_else(|| config.data_dir.join("outputs.json"));
                private::tighten(&outputs_path)?;
                Arc::new(FileOutputs::open(&outputs_path).await.map_err(|e| {
                    ServerError::DataDir {
                        path: outputs_path.clone(),
                        source: std::io::Error::other(e),
                    }
                })?)
            }
        };
    let (sink, mut emitted) = ChannelSink::new(1024, &format!("http://{addr}/workflows"));
    // What steps send is published as runtime events (source `metadata`), so subscribers
    // can wait for a step's events, runs and decorators.
    tokio::spawn(async move {
        while let Some(item) = emitted.recv().await {
            let Some(event) = metadata_event(item) else {
                continue;
            };
            if let Some(log) = &log {
                // Through the database's log, like every other event (see `events_log`).
                if let Err(error) = log.append(vec![event]).await {
                    tracing::warn!(?error, "a metadata event was not published");
                }
                continue;
            }
            // Filters run off the async workers (each within its iteration budget).
            let hub = Arc::clone(&hub);
            let published = tokio::task::spawn_blocking(move || hub.publish(event)).await;
            match published {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::warn!(%error, "a metadata event was not published"),
                Err(error) => tracing::warn!(%error, "publishing a metadata event failed"),
            }
        }
    });
    // The step has a token of its own: one that opened the whole API as well would let any
    // step manage every application's webhooks.
    let generated;
    let tokens = if metadata.tokens.is_empty() {
        generated = [load_or_generate_token(
            &config.data_dir,
            STEP_TOKEN_FILE,
            "sy_step_",
        )?];
        &generated[..]
    } else {
        &metadata.tokens[..]
    };
    if tokens.iter().any(|step| server_tokens.contains(step)) {
        return Err(ServerError::Config {
            path: std::path::PathBuf::from("[metadata] tokens"),
            message: "a step token must differ from the server's tokens, which open every route"
                .to_owned(),
        });
    }
    let mut builder = MetadataService::builder()
        .step(metadata.step.clone(), spec)
        .shared_outputs(outputs)
        .sink(sink)
        .body_limit(config.body_limit)
        .max_output_bytes(metadata.max_output_bytes)
        .max_step_output_bytes(metadata.max_step_output_bytes);
    // Secrets and connections are read now, once; an error names the source, not the value.
    for (name, source) in &metadata.secrets {
        let value = source.read().map_err(|reason| ServerError::MetadataValue {
            what: format!("secret `{name}`"),
            reason,
        })?;
        builder = builder.secret(name.clone(), value);
    }
    for (kind, named) in &metadata.connections {
        for (name, source) in named {
            let what = || format!("connection `{kind}`/`{name}`");
            let bytes = source.read().map_err(|reason| ServerError::MetadataValue {
                what: what(),
                reason,
            })?;
            let value = match serde_json::from_slice::<serde_json::Value>(&bytes) {
                Ok(value @ serde_json::Value::Object(_)) => value,
                // serde_json's messages give a line and column, never the text.
                Ok(_) => {
                    return Err(ServerError::MetadataValue {
                        what: what(),
                        reason: "must be a JSON object".to_owned(),
                    });
                }
                Err(error) => {
                    return Err(ServerError::MetadataValue {
                        what: what(),
                        reason: format!("not JSON: {error}"),
                    });
                }
            };
            builder = builder.connection(kind.clone(), name.clone(), value);
        }
    }
    for (name, value) in &metadata.parameters {
        builder = builder.parameter(name.clone(), value.clone());
    }
    for token in tokens {
        builder = builder.token(token.expose(), metadata.step.clone());
    }
    Ok(builder.build()?)
}

/// A runtime event for what a step sent through the metadata API.
fn metadata_event(item: Emitted) -> Option<Event> {
    let (event_type, data) = match item {
        Emitted::Event(event) => {
            tracing::info!(step = %event.step, key = ?event.key, "step emitted an event");
            (
                "step.event",
                serde_json::json!({"step": event.step, "data": event.data, "key": event.key}),
            )
        }
        Emitted::Run(request, run) => {
            tracing::info!(step = %request.step, workflow = %run.name, run = run.run_number, "step started a workflow run");
            (
                "workflow.run",
                serde_json::json!({"step": request.step, "workflow": run.name,
                    "run_number": run.run_number, "parameters": request.parameters}),
            )
        }
        Emitted::Decorator(decorator) => {
            tracing::info!(step = %decorator.step, name = %decorator.name, "step set a decorator");
            let (description, uri) = match decorator.kind {
                DecoratorKind::Link { description, uri } => (description, uri),
                _ => (String::new(), String::new()),
            };
            (
                "step.decorator",
                serde_json::json!({"step": decorator.step, "name": decorator.name,
                    "description": description, "uri": uri}),
            )
        }
        _ => return None,
    };
    Some(Event::new(METADATA_SOURCE, event_type, data))
}

/// The routes of the metadata API (Relay serves them at the root).
const METADATA_ROUTES: &[&str] = &[
    "/spec",
    "/outputs",
    "/outputs/{*rest}",
    "/secrets/{*rest}",
    "/events",
    "/workflows/{*rest}",
    "/decorators/{*rest}",
    "/healthz",
];

fn router(
    svix: Arc<SvixState>,
    runtime: Arc<RuntimeState>,
    metadata: Option<MetadataService>,
    tokens: Arc<Vec<Token>>,
) -> Router {
    let store = svix.webhooks.registry.store().clone();
    let portal = Arc::new(PortalState {
        svix: Arc::clone(&svix),
        tokens: Arc::clone(&tokens),
        secure_cookies: svix.public_url.starts_with("https://"),
    });
    let idempotency = Arc::new(Idempotency {
        store: store.clone(),
        max_answer: svix.body_limit.saturating_mul(2).max(1024 * 1024),
    });
    // Layers run outside in, the last added first: a token is checked before a key is
    // claimed.
    let auth = Arc::new(Auth {
        tokens,
        svix: Arc::clone(&svix),
    });
    let protected = svix::routes(svix)
        .merge(runtime::routes(runtime))
        .layer(axum::middleware::from_fn_with_state(
            idempotency,
            idempotency::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(auth, authenticate));
    let mut router = Router::new()
        .route("/health", get(health))
        .route("/health/ready", get(move || ready(store.clone())))
        .route("/api/v1/health", get(svix_health).head(svix_health))
        .route("/api/v1/health/ping", get(svix_health).head(svix_health))
        .merge(portal::routes(portal))
        .merge(protected);
    // The metadata service checks its own step tokens (Basic password or Bearer).
    if let Some(metadata) = metadata {
        for route in METADATA_ROUTES {
            router = router.route_service(route, metadata.clone());
        }
    }
    router
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
}

async fn health() -> Response {
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")})),
    )
        .into_response()
}

/// How long the readiness check waits for the store.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Readiness: 200 when the webhooks store answers a query within [`READY_TIMEOUT`], else
/// 503 (the reason goes to the log, not to the unauthenticated caller).
async fn ready(store: ServerStore) -> Response {
    let kind = store.kind();
    let failure = match tokio::time::timeout(READY_TIMEOUT, store.ready()).await {
        Ok(Ok(())) => {
            return (
                StatusCode::OK,
                axum::Json(serde_json::json!({"status": "ready", "store": kind})),
            )
                .into_response();
        }
        Ok(Err(error)) => error.to_string(),
        Err(_) => format!("no answer within {READY_TIMEOUT:?}"),
    };
    tracing::warn!(store = kind, error = %failure, "readiness check failed");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(serde_json::json!({
            "status": "unavailable",
            "store": kind,
            "detail": "the webhooks store does not answer",
        })),
    )
        .into_response()
}

async fn svix_health() -> StatusCode {
    StatusCode::NO_CONTENT
}

async fn unknown_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// The bearer token of a request's `Authorization` header.
pub(crate) fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
}

/// Who may call the protected routes: the server's tokens, and the application tokens the
/// store knows (see `svix::auth`).
struct Auth {
    tokens: Arc<Vec<Token>>,
    svix: Arc<SvixState>,
}

/// Bearer-token auth: a server token (compared in constant time with each accepted one)
/// reaches everything; an application token what `svix::auth::permits` allows.
async fn authenticate(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
    let Some(given) = bearer(request.headers()) else {
        return ApiError::unauthorized("Invalid token (send `Authorization: Bearer <token>`)")
            .into_response();
    };
    let mut accepted = false;
    for token in auth.tokens.iter() {
        // Every token is compared, so timing does not tell which one (or whether any) matched.
        accepted |= bool::from(token.expose().as_bytes().ct_eq(given.as_bytes()));
    }
    if accepted {
        return next.run(request).await;
    }
    // An application token is found by its hash: a lookup by a secret's hash tells nothing
    // through its timing.
    match auth.svix.webhooks.registry.access_token(given).await {
        Ok(Some(token)) => {
            match svix::auth::permits(&auth.svix, &token, request.method(), request.uri().path())
                .await
            {
                Ok(()) => next.run(request).await,
                Err(refused) => refused.into_response(),
            }
        }
        // Svix's words: clients (swh-webhooks' CLI among them) show them as they are.
        Ok(None) => ApiError::unauthorized("Invalid token").into_response(),
        Err(error) => ApiError::from(error).into_response(),
    }
}
