//! Applications, Svix's namespace for endpoints and messages: a catalogue of them (a small
//! SQLite table), one webhooks [`Registry`] and delivery engine per application, and the
//! event types every application shares.
//!
//! Event types are global in Svix, endpoints and messages belong to one application. Each
//! application's registry lives in its own SQLite file, so applications are isolated by
//! construction (a message of one never reaches another's endpoints); the shared event
//! types are kept in a catalogue registry and copied into every application's registry,
//! where they validate payloads. A copy that differs from the catalogue (after a crash
//! between the two writes) is repaired when the server starts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{Row, sqlite::SqliteRow};
use switchyard_webhooks::delivery::{DeliveryConfig, DeliveryEngine};
use switchyard_webhooks::store::{SqliteStore, Store};
use switchyard_webhooks::{
    Error as WebhooksError, EventType, EventTypeName, ListOptions, Registry, RegistryConfig,
};
use tokio::sync::{Mutex, RwLock, watch};
use tokio::task::JoinSet;

use crate::error::{ApiError, ServerError};

/// An application's registry.
pub(crate) type AppRegistry = Registry<SqliteStore>;

const APPS_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS apps (
    id TEXT PRIMARY KEY NOT NULL,
    uid TEXT UNIQUE,
    name TEXT NOT NULL,
    metadata TEXT NOT NULL,
    rate_limit INTEGER,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
)";

/// One application.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Application {
    pub id: String,
    pub uid: Option<String>,
    pub name: String,
    pub metadata: Map<String, Value>,
    pub rate_limit: Option<u32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An open application: its record and its registry.
#[derive(Debug)]
pub(crate) struct AppHandle {
    pub app: Application,
    pub registry: Arc<AppRegistry>,
    /// Serialises endpoint writes that check before they write (a uid conflict).
    pub writes: Mutex<()>,
}

/// Every application, the event-type catalogue and the delivery engines.
pub(crate) struct Apps {
    pool: SqlitePool,
    catalogue: AppRegistry,
    dir: PathBuf,
    open: RwLock<HashMap<String, Arc<AppHandle>>>,
    /// Serialises creating applications and changing event types, so a new application
    /// never misses an event type being written.
    writes: Mutex<()>,
    delivery: DeliveryConfig,
    /// The rules every application's registry follows.
    rules: RegistryConfig,
    engines: std::sync::Mutex<JoinSet<()>>,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for Apps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Apps")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// What [`Apps::get_or_create`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Created {
    /// A new application was made.
    New,
    /// One with that uid existed and is returned.
    Existing,
}

impl Apps {
    /// Opens the catalogue under `data_dir/webhooks` and every application in it, and starts
    /// a delivery engine for each.
    pub(crate) async fn open(
        data_dir: &Path,
        delivery: DeliveryConfig,
        rules: RegistryConfig,
    ) -> Result<Self, ServerError> {
        let dir = data_dir.join("webhooks");
        let apps_dir = dir.join("apps");
        crate::private::dir(&apps_dir)?;
        crate::private::file(&dir.join("apps.db"))?;
        let options = SqliteConnectOptions::new()
            .filename(dir.join("apps.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        sqlx::query(APPS_SCHEMA).execute(&pool).await?;
        let catalogue = Registry::new(
            SqliteStore::open(dir.join("event-types.db"))
                .await
                .map_err(WebhooksError::from)?,
        );
        let (stop, _) = watch::channel(false);
        let apps = Self {
            pool,
            catalogue,
            dir: apps_dir,
            open: RwLock::new(HashMap::new()),
            writes: Mutex::new(()),
            delivery,
            rules,
            engines: std::sync::Mutex::new(JoinSet::new()),
            stop,
        };
        let rows = sqlx::query("SELECT * FROM apps ORDER BY id")
            .fetch_all(&apps.pool)
            .await?;
        let catalogue_types = apps.all_event_types().await?;
        for row in &rows {
            let app = app_from_row(row)?;
            let handle = apps.start(app).await?;
            sync_event_types(&handle.registry, &catalogue_types).await?;
        }
        tracing::info!(
            applications = rows.len(),
            event_types = catalogue_types.len(),
            "webhooks store open"
        );
        Ok(apps)
    }

    /// The shared event-type catalogue.
    pub(crate) fn catalogue(&self) -> &AppRegistry {
        &self.catalogue
    }

    /// Every active event type in the catalogue.
    async fn all_event_types(&self) -> Result<Vec<EventType>, WebhooksError> {
        let mut all = Vec::new();
        let mut options = ListOptions::new().limit(250);
        loop {
            let page = self.catalogue.list_event_types(&options).await?;
            all.extend(page.items);
            match page.iterator {
                Some(next) if !page.done => options = options.iterator(next),
                _ => break,
            }
        }
        Ok(all)
    }

    /// Opens an application's registry and starts its delivery engine.
    async fn start(&self, app: Application) -> Result<Arc<AppHandle>, ServerError> {
        let path = self.dir.join(format!("{}.db", app.id));
        let store = SqliteStore::open(&path)
            .await
            .map_err(WebhooksError::from)?;
        let registry = Arc::new(Registry::with_config(store, self.rules.clone()));
        let engine = DeliveryEngine::new(Arc::clone(&registry), self.delivery.clone())?;
        let mut stop = self.stop.subscribe();
        let app_id = app.id.clone();
        self.engines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .spawn(async move {
                let shutdown = async move {
                    let _ = stop.wait_for(|stopped| *stopped).await;
                };
                if let Err(error) = engine.run(shutdown).await {
                    tracing::error!(app = %app_id, %error, "delivery engine stopped");
                }
            });
        let handle = Arc::new(AppHandle {
            app,
            registry,
            writes: Mutex::new(()),
        });
        self.open
            .write()
            .await
            .insert(handle.app.id.clone(), Arc::clone(&handle));
        Ok(handle)
    }

    /// The application with this id or uid.
    pub(crate) async fn get(&self, id_or_uid: &str) -> Result<Arc<AppHandle>, ApiError> {
        let open = self.open.read().await;
        if let Some(handle) = open.get(id_or_uid) {
            return Ok(Arc::clone(handle));
        }
        open.values()
            .find(|h| h.app.uid.as_deref() == Some(id_or_uid))
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("application `{id_or_uid}` does not exist")))
    }

    /// Every application, ordered by id.
    pub(crate) async fn list(&self) -> Vec<Arc<AppHandle>> {
        let mut all: Vec<_> = self.open.read().await.values().cloned().collect();
        all.sort_by(|a, b| a.app.id.cmp(&b.app.id));
        all
    }

    /// Creates an application; with `get_if_exists`, an existing one with the same uid is
    /// returned instead of a conflict.
    pub(crate) async fn get_or_create(
        &self,
        name: String,
        uid: Option<String>,
        metadata: Map<String, Value>,
        rate_limit: Option<u32>,
        get_if_exists: bool,
    ) -> Result<(Arc<AppHandle>, Created), ApiError> {
        let _writes = self.writes.lock().await;
        if let Some(uid) = &uid {
            if let Ok(existing) = self.get(uid).await {
                return if get_if_exists {
                    Ok((existing, Created::Existing))
                } else {
                    Err(ApiError::conflict(format!(
                        "an application with uid `{uid}` already exists"
                    )))
                };
            }
            if uid.starts_with("app_") {
                return Err(ApiError::invalid_field(
                    "uid",
                    "a uid may not start with `app_`",
                ));
            }
        }
        let now = Utc::now();
        let id = new_app_id(now)?;
        let app = Application {
            id,
            uid,
            name,
            metadata,
            rate_limit,
            created_at: now,
            updated_at: now,
        };
        let metadata_text = Value::Object(app.metadata.clone()).to_string();
        sqlx::query(
            "INSERT INTO apps (id, uid, name, metadata, rate_limit, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&app.id)
        .bind(&app.uid)
        .bind(&app.name)
        .bind(metadata_text)
        .bind(app.rate_limit.map(i64::from))
        .bind(app.created_at.to_rfc3339())
        .bind(app.updated_at.to_rfc3339())
        .execute(&self.pool)
        .await
        .map_err(|e| ApiError::internal(&e))?;
        let handle = self.start(app).await.map_err(|e| ApiError::internal(&e))?;
        let types = self.all_event_types().await?;
        sync_event_types(&handle.registry, &types)
            .await
            .map_err(|e| ApiError::internal(&e))?;
        tracing::info!(app = %handle.app.id, "application created");
        Ok((handle, Created::New))
    }

    /// Deletes an application with its endpoints, messages and attempts.
    pub(crate) async fn delete(&self, id_or_uid: &str) -> Result<(), ApiError> {
        let _writes = self.writes.lock().await;
        let handle = self.get(id_or_uid).await?;
        sqlx::query("DELETE FROM apps WHERE id = ?")
            .bind(&handle.app.id)
            .execute(&self.pool)
            .await
            .map_err(|e| ApiError::internal(&e))?;
        self.open.write().await.remove(&handle.app.id);
        // Its engine keeps the registry until shutdown; with no endpoints left it idles.
        let mut endpoints = ListOptions::new().limit(250);
        loop {
            let page = handle
                .registry
                .list_endpoints(&Default::default(), &endpoints)
                .await?;
            for endpoint in &page.items {
                handle
                    .registry
                    .delete_endpoint(endpoint.id.as_str())
                    .await?;
            }
            match page.iterator {
                Some(next) if !page.done => endpoints = endpoints.iterator(next),
                _ => break,
            }
        }
        tracing::info!(app = %handle.app.id, "application deleted");
        Ok(())
    }

    /// Creates or updates an event type everywhere. With `create_only`, an existing one
    /// (even archived) is a conflict.
    pub(crate) async fn put_event_type(
        &self,
        name: EventTypeName,
        description: String,
        schema: Value,
        archived: bool,
        create_only: bool,
    ) -> Result<EventType, ApiError> {
        let _writes = self.writes.lock().await;
        let existing = self
            .catalogue
            .store()
            .event_type(&name)
            .await
            .map_err(|e| ApiError::internal(&e))?;
        match (&existing, create_only) {
            (Some(_), true) => {
                return Err(ApiError::new(
                    http::StatusCode::CONFLICT,
                    "event_type_exists",
                    format!("an event type named `{name}` already exists"),
                ));
            }
            (None, false) => {
                return Err(ApiError::not_found(format!(
                    "event type `{name}` does not exist"
                )));
            }
            _ => {}
        }
        let mut saved = self
            .catalogue
            .create_event_type(name.clone(), description.clone(), schema.clone())
            .await?;
        for handle in self.open.read().await.values() {
            handle
                .registry
                .create_event_type(name.clone(), description.clone(), schema.clone())
                .await?;
        }
        if archived {
            self.archive_locked(&name).await?;
            saved.archived = true;
        }
        Ok(saved)
    }

    /// Archives an event type everywhere; archiving an archived one does nothing.
    pub(crate) async fn archive_event_type(&self, name: &EventTypeName) -> Result<(), ApiError> {
        let _writes = self.writes.lock().await;
        match self.event_type(name).await? {
            None => Err(ApiError::not_found(format!(
                "event type `{name}` does not exist"
            ))),
            Some(event_type) if event_type.archived => Ok(()),
            Some(_) => self.archive_locked(name).await,
        }
    }

    async fn archive_locked(&self, name: &EventTypeName) -> Result<(), ApiError> {
        self.catalogue.archive_event_type(name).await?;
        for handle in self.open.read().await.values() {
            match handle.registry.archive_event_type(name).await {
                Ok(()) | Err(WebhooksError::EventTypeNotFound { .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    /// The event type with this name, archived or not.
    pub(crate) async fn event_type(
        &self,
        name: &EventTypeName,
    ) -> Result<Option<EventType>, ApiError> {
        self.catalogue
            .store()
            .event_type(name)
            .await
            .map_err(|e| ApiError::internal(&e))
    }

    /// Stops every delivery engine, letting in-flight deliveries finish within `grace`.
    pub(crate) async fn shutdown(&self, grace: std::time::Duration) {
        let _ = self.stop.send(true);
        let mut engines = std::mem::take(
            &mut *self
                .engines
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let drained = tokio::time::timeout(grace, async {
            while engines.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                ?grace,
                "delivery engines did not stop in time; aborting them"
            );
            engines.abort_all();
        }
    }
}

/// Makes an application's registry agree with the catalogue.
async fn sync_event_types(
    registry: &AppRegistry,
    catalogue: &[EventType],
) -> Result<(), WebhooksError> {
    for wanted in catalogue {
        let have = registry.store().event_type(&wanted.name).await?;
        let same = have.as_ref().is_some_and(|have| {
            !have.archived && have.description == wanted.description && have.schema == wanted.schema
        });
        if !same {
            registry
                .create_event_type(
                    wanted.name.clone(),
                    wanted.description.clone(),
                    wanted.schema.clone(),
                )
                .await?;
        }
    }
    // Active here but not in the catalogue: archived there while this copy was not updated.
    let mut options = ListOptions::new().limit(250);
    loop {
        let page = registry.list_event_types(&options).await?;
        for have in &page.items {
            if !catalogue.iter().any(|t| t.name == have.name) {
                registry.archive_event_type(&have.name).await?;
            }
        }
        match page.iterator {
            Some(next) if !page.done => options = options.iterator(next),
            _ => break,
        }
    }
    Ok(())
}

fn new_app_id(now: DateTime<Utc>) -> Result<String, ApiError> {
    // The same KSUID shape as the registry's ids, with Svix's `app_` prefix.
    let endpoint = switchyard_webhooks::EndpointId::generate(now.timestamp())
        .map_err(|e| ApiError::internal(&e))?;
    let ksuid = endpoint
        .as_str()
        .strip_prefix(switchyard_webhooks::EndpointId::PREFIX)
        .unwrap_or(endpoint.as_str());
    Ok(format!("app_{ksuid}"))
}

fn app_from_row(row: &SqliteRow) -> Result<Application, sqlx::Error> {
    let parse_time = |column: &str| -> Result<DateTime<Utc>, sqlx::Error> {
        let text: String = row.try_get(column)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))
    };
    let metadata_text: String = row.try_get("metadata")?;
    let metadata = match serde_json::from_str(&metadata_text) {
        Ok(Value::Object(map)) => map,
        Ok(_) => Map::new(),
        Err(e) => return Err(sqlx::Error::Decode(Box::new(e))),
    };
    let rate_limit: Option<i64> = row.try_get("rate_limit")?;
    Ok(Application {
        id: row.try_get("id")?,
        uid: row.try_get("uid")?,
        name: row.try_get("name")?,
        metadata,
        rate_limit: rate_limit.and_then(|r| u32::try_from(r).ok()),
        created_at: parse_time("created_at")?,
        updated_at: parse_time("updated_at")?,
    })
}
