//! The webhooks behind the Svix API: one store (`<data_dir>/webhooks/store.db`, or the
//! PostgreSQL database of `--database`), one registry and one delivery engine for every
//! application. Applications, endpoints and
//! messages are the webhooks crate's (its `AppScope` keeps each application's records apart);
//! this module opens them, runs the engine, and brings a data directory of the server's first
//! versions (a SQLite file, a registry and an engine per application) into the one store.
//!
//! ## Upgrading a data directory of the first versions
//!
//! Those kept `webhooks/apps.db` (the application list), `webhooks/event-types.db` (the
//! shared event types) and `webhooks/apps/<app id>.db` (one store per application). At
//! start, the shared event types are imported first (they are the truth: an application's
//! copies only add what they lack), then each application's file as that application (ids,
//! uids, secrets and their history, messages, pending deliveries, attempts: everything),
//! and then the old files are renamed with a `.imported` suffix
//! and kept (delete them once satisfied). Each application's import is one transaction and an
//! application already in the store is not imported twice, so an upgrade interrupted at any
//! point finishes when the server starts again (or `switchyard migrate` runs).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use switchyard_webhooks::delivery::{DeliveryConfig, DeliveryEngine};
use switchyard_webhooks::seal::KeyRing;
use switchyard_webhooks::store::{PostgresOptions, PostgresStore, SqliteStore, Store as _};
use switchyard_webhooks::{
    AppUid, Application, Error as WebhooksError, EventType, EventTypeName, Registry, RegistryConfig,
};
use tokio::sync::{Mutex, watch};

use super::operational::Operational;
use super::store::ServerStore;
use crate::config::{DatabaseConfig, WebhooksConfig};
use crate::error::{ApiError, ServerError};

/// What [`Webhooks::put_event_type`] may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PutMode {
    /// Only create: an existing event type (even archived) is a conflict.
    Create,
    /// Only update: a missing event type is not found.
    Update,
    /// Either (Svix's `PUT`).
    Upsert,
}

/// The registry over the server's store.
pub(crate) type AppRegistry = Registry<ServerStore>;

/// The file of the one store, under `<data_dir>/webhooks`.
pub(crate) const STORE_FILE: &str = "store.db";

/// The webhooks of the server: the registry and its delivery engine.
pub(crate) struct Webhooks {
    pub registry: Arc<AppRegistry>,
    /// Serialises the writes that check before they write (a uid already taken, an event
    /// type that exists), so two concurrent requests cannot both pass the check.
    pub writes: Mutex<()>,
    /// The sender of operational webhooks, when `[webhooks] operational_app` is set.
    pub operational: Option<Arc<Operational>>,
    engine: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks").finish_non_exhaustive()
    }
}

impl Webhooks {
    /// Opens the store (the database, or the file under `data_dir/webhooks`, upgrading a
    /// data directory of the first versions), and starts the delivery engine and, when
    /// `operational_app` names the management application, operational webhooks.
    pub(crate) async fn open(
        data_dir: &Path,
        database: Option<&DatabaseConfig>,
        delivery: DeliveryConfig,
        rules: RegistryConfig,
        operational_app: Option<&AppUid>,
        keys: &WebhooksConfig,
    ) -> Result<Self, ServerError> {
        let ring = crate::main_key::key_ring(keys, data_dir)?;
        let current = ring.current().clone();
        let (store, _) = open_store(data_dir, database, ring).await?;
        crate::main_key::drop_old_keys(&store, keys, data_dir, &current).await?;
        tracing::info!(store = store.kind(), "webhooks store open");
        let registry = Arc::new(Registry::with_config(store, rules));
        let engine = DeliveryEngine::new(Arc::clone(&registry), delivery)?;
        let operational = match operational_app {
            Some(uid) => {
                Some(Operational::start(Arc::clone(&registry), uid, engine.notifications()).await?)
            }
            None => None,
        };
        let (stop, mut stopped) = watch::channel(false);
        let engine = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|stopped| *stopped).await;
            };
            if let Err(error) = engine.run(shutdown).await {
                tracing::error!(%error, "delivery engine stopped");
            }
        });
        Ok(Self {
            registry,
            writes: Mutex::new(()),
            operational,
            engine: std::sync::Mutex::new(Some(engine)),
            stop,
        })
    }

    /// Stops the delivery engine, letting in-flight deliveries finish within `grace`.
    pub(crate) async fn shutdown(&self, grace: std::time::Duration) {
        let _ = self.stop.send(true);
        let engine = self
            .engine
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(mut engine) = engine
            && tokio::time::timeout(grace, &mut engine).await.is_err()
        {
            tracing::warn!(
                ?grace,
                "the delivery engine did not stop in time; aborting it"
            );
            engine.abort();
        }
    }
}

impl Webhooks {
    /// Creates or updates an event type, as `mode` allows; answers the saved event type and
    /// whether it was created. One write, two when it is saved archived.
    pub(crate) async fn put_event_type(
        &self,
        name: EventTypeName,
        description: String,
        schema: Value,
        archived: bool,
        mode: PutMode,
    ) -> Result<(EventType, bool), ApiError> {
        let _writes = self.writes.lock().await;
        let existing = self.event_type(&name).await?;
        match (&existing, mode) {
            (Some(_), PutMode::Create) => {
                return Err(ApiError::new(
                    http::StatusCode::CONFLICT,
                    "event_type_exists",
                    format!("an event type named `{name}` already exists"),
                ));
            }
            (None, PutMode::Update) => {
                return Err(ApiError::not_found(format!(
                    "event type `{name}` does not exist"
                )));
            }
            _ => {}
        }
        let mut saved = self
            .registry
            .create_event_type(name, description, schema)
            .await?;
        if archived {
            self.registry.archive_event_type(&saved.name).await?;
            saved.archived = true;
        }
        Ok((saved, existing.is_none()))
    }

    /// Archives an event type; archiving an archived one does nothing.
    pub(crate) async fn archive_event_type(&self, name: &EventTypeName) -> Result<(), ApiError> {
        let _writes = self.writes.lock().await;
        match self.event_type(name).await? {
            None => Err(ApiError::not_found(format!(
                "event type `{name}` does not exist"
            ))),
            Some(event_type) if event_type.archived => Ok(()),
            Some(_) => Ok(self.registry.archive_event_type(name).await?),
        }
    }

    /// The event type with this name, archived or not.
    pub(crate) async fn event_type(
        &self,
        name: &EventTypeName,
    ) -> Result<Option<EventType>, ApiError> {
        Ok(self
            .registry
            .store()
            .event_type(name)
            .await
            .map_err(WebhooksError::from)?)
    }
}

/// Opens the store: the PostgreSQL database when one is configured (migrating its schema),
/// else (creating) the file under `data_dir/webhooks`, first bringing in what a data
/// directory of the first versions holds.
///
/// # Errors
/// [`ServerError::DataDir`] for the directory; [`ServerError::Webhooks`] for the store or
/// an import; [`ServerError::Upgrade`] for an old application list that cannot be read.
pub(crate) async fn open_store(
    data_dir: &Path,
    database: Option<&DatabaseConfig>,
    ring: KeyRing,
) -> Result<(ServerStore, Upgraded), ServerError> {
    if let Some(database) = database {
        let store = connect(database, ring).await?;
        return Ok((ServerStore::Postgres(store), Upgraded::default()));
    }
    let (store, upgraded) = open_sqlite(data_dir, ring).await?;
    Ok((ServerStore::Sqlite(store), upgraded))
}

/// Connects to the database's webhooks store with the configured pool size, migrating its
/// schema.
///
/// # Errors
/// [`ServerError::Webhooks`] when it cannot be reached or a newer build wrote the schema.
pub(crate) async fn connect(
    database: &DatabaseConfig,
    ring: KeyRing,
) -> Result<PostgresStore, ServerError> {
    let mut options = PostgresOptions::default();
    options.max_connections = database.max_connections;
    Ok(PostgresStore::connect_sealed(&database.url, options, ring)
        .await
        .map_err(WebhooksError::from)?)
}

/// Brings the database's webhooks schema up to date, needing no main key.
///
/// # Errors
/// [`ServerError::Webhooks`] when it cannot be reached or a newer build wrote the schema.
pub(crate) async fn migrate_schema(database: &DatabaseConfig) -> Result<(), ServerError> {
    let mut options = PostgresOptions::default();
    options.max_connections = database.max_connections;
    PostgresStore::migrate(&database.url, options)
        .await
        .map_err(WebhooksError::from)?;
    Ok(())
}

/// Opens (creating) the SQLite store under `data_dir/webhooks`, first bringing in what a
/// data directory of the first versions holds.
async fn open_sqlite(
    data_dir: &Path,
    ring: KeyRing,
) -> Result<(SqliteStore, Upgraded), ServerError> {
    let dir = data_dir.join("webhooks");
    crate::private::dir(&dir)?;
    let store = SqliteStore::open_sealed(dir.join(STORE_FILE), ring)
        .await
        .map_err(WebhooksError::from)?;
    let upgraded = upgrade(&dir, &store).await?;
    Ok((store, upgraded))
}

/// What upgrading a data directory found and did (see [`migrate`](crate::migrate)).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Upgraded {
    /// Whether the directory was in the first versions' layout (nothing else is done when
    /// it was not).
    pub found: bool,
    /// Applications imported now.
    pub applications: usize,
    /// Applications found already imported (an earlier run was interrupted after them).
    pub already: usize,
}

/// Brings a data directory of the first versions into `store` (see the module docs);
/// nothing to do when there is none.
pub(crate) async fn upgrade(dir: &Path, store: &SqliteStore) -> Result<Upgraded, ServerError> {
    let list = dir.join("apps.db");
    let catalogue = dir.join("event-types.db");
    let files = dir.join("apps");
    let mut upgraded = Upgraded::default();
    if !list.exists() && !catalogue.exists() && !files.exists() {
        return Ok(upgraded);
    }
    upgraded.found = true;
    tracing::info!(dir = %dir.display(), "upgrading a data directory of the first versions: a store per application becomes one store");
    if catalogue.exists() {
        // Its event types, as an application that is then deleted: the catalogue keeps
        // them, nothing else of the file is kept (it had no endpoints or messages).
        // A fixed id, so that a run interrupted after this import does not import it again.
        let carrier = Application {
            id: "app_000000000000000000000000001".parse()?,
            name: "event types".to_owned(),
            ..Application::default_app()
        };
        store
            .import(&catalogue, &carrier)
            .await
            .map_err(WebhooksError::from)?;
        store
            .delete_application(&carrier.id)
            .await
            .map_err(WebhooksError::from)?;
    }
    let applications = if list.exists() {
        read_application_list(&list)?
    } else {
        Vec::new()
    };
    for application in &applications {
        let file = files.join(format!("{}.db", application.id));
        if store
            .application(&application.id)
            .await
            .map_err(WebhooksError::from)?
            .is_some()
        {
            upgraded.already += 1;
            continue;
        }
        if file.exists() {
            store
                .import(&file, application)
                .await
                .map_err(WebhooksError::from)?;
        } else {
            // An application whose file was never made (or was lost): the record alone.
            store
                .put_application(application)
                .await
                .map_err(WebhooksError::from)?;
        }
        upgraded.applications += 1;
    }
    for old in [list, catalogue, files] {
        set_aside(&old)?;
    }
    tracing::info!(
        imported = upgraded.applications,
        already = upgraded.already,
        "data directory upgraded; the old files are kept with a `.imported` suffix"
    );
    Ok(upgraded)
}

/// Renames `old` (a file or a directory) with a `.imported` suffix, a database file's
/// `-wal` and `-shm` with it when they are still there, so that it opens as it was.
fn set_aside(old: &Path) -> Result<(), ServerError> {
    for suffix in ["-wal", "-shm", ""] {
        let mut from = old.as_os_str().to_owned();
        from.push(suffix);
        let from = PathBuf::from(from);
        if !from.exists() {
            continue;
        }
        let mut to = old.as_os_str().to_owned();
        to.push(".imported");
        to.push(suffix);
        std::fs::rename(&from, &to).map_err(|source| ServerError::DataDir {
            path: from.clone(),
            source,
        })?;
    }
    Ok(())
}

/// The applications of the first versions' `apps.db`: `id`, `uid`, `name`, `metadata` (JSON
/// text), `rate_limit`, and times as RFC 3339 text.
fn read_application_list(path: &PathBuf) -> Result<Vec<Application>, ServerError> {
    let failed = |reason: String| ServerError::Upgrade {
        path: path.clone(),
        reason,
    };
    // Read-write (nothing is written) and checkpointed: what a killed server left in the
    // WAL is folded into the file, which is then kept whole under its new name.
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
            .map_err(|e| failed(e.to_string()))?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .map_err(|e| failed(e.to_string()))?;
    let mut statement = conn
        .prepare(
            "SELECT id, uid, name, metadata, rate_limit, created_at, updated_at
             FROM apps ORDER BY id",
        )
        .map_err(|e| failed(e.to_string()))?;
    let mut rows = statement.query([]).map_err(|e| failed(e.to_string()))?;
    let mut found = Vec::new();
    let time = |text: String| {
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| failed(format!("a time `{text}`: {e}")))
    };
    while let Some(row) = rows.next().map_err(|e| failed(e.to_string()))? {
        let get_text = |i: usize| -> Result<String, ServerError> {
            row.get::<_, String>(i).map_err(|e| failed(e.to_string()))
        };
        let id = get_text(0)?;
        let uid: Option<String> = row.get(1).map_err(|e| failed(e.to_string()))?;
        let metadata = match serde_json::from_str(&get_text(3)?) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        let rate_limit: Option<i64> = row.get(4).map_err(|e| failed(e.to_string()))?;
        found.push(Application {
            id: id
                .parse()
                .map_err(|e: WebhooksError| failed(format!("application {id}: {e}")))?,
            uid: uid
                .map(AppUid::new)
                .transpose()
                .map_err(|e| failed(format!("application {id}: {e}")))?,
            name: get_text(2)?,
            metadata,
            rate_limit: rate_limit
                .and_then(|r| u32::try_from(r).ok())
                .and_then(std::num::NonZeroU32::new),
            created_at: time(get_text(5)?)?,
            updated_at: time(get_text(6)?)?,
        });
    }
    Ok(found)
}
