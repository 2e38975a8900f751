//! Step outputs in a PostgreSQL database, so that several servers on one database read the
//! outputs any of them stored (feature `postgres`).

use std::fmt;
use std::str::FromStr as _;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde_json::Value;
use tokio_postgres::NoTls;

use crate::error::StoreError;
use crate::store::{BoxFuture, OutputStore, value_bytes};

/// The schema version this build writes, in `switchyard_metadata_schema`.
const VERSION: i32 = 1;

/// The advisory lock key migrations hold ("sy-meta." in ASCII).
const MIGRATION_LOCK: i64 = 0x7379_2d6d_6574_612e;

/// Outputs in a PostgreSQL table, one row per (step, name), with the size of each value's
/// JSON kept beside it so a step's total is one indexed sum. A set is one upsert: it is
/// durable when it returns, and every server on the database reads it.
///
/// ```no_run
/// use switchyard_metadata::{MetadataService, PostgresOutputs, SpecSource};
///
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let outputs = PostgresOutputs::connect("postgres://postgres@127.0.0.1:5432/switchyard", 4).await?;
/// let spec = SpecSource::from_file("spec.yaml")?;
/// let service = MetadataService::builder().step("deploy", spec).outputs(outputs);
/// # let _ = service;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PostgresOutputs {
    pool: Pool,
}

impl fmt::Debug for PostgresOutputs {
    // The pool's configuration holds the connection's password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresOutputs")
            .field("max_connections", &self.pool.status().max_size)
            .finish_non_exhaustive()
    }
}

impl PostgresOutputs {
    /// Connects to the database at `url` with at most `max_connections` connections and
    /// makes (or checks) its outputs table.
    ///
    /// # Errors
    /// [`StoreError::Postgres`] when the URL is malformed or the database cannot be reached;
    /// [`StoreError::UnsupportedSchemaVersion`] when a newer build wrote the table.
    pub async fn connect(url: &str, max_connections: usize) -> Result<Self, StoreError> {
        let mut config = tokio_postgres::Config::from_str(url)?;
        config.connect_timeout(Duration::from_secs(10));
        if config.get_application_name().is_none() {
            config.application_name("switchyard-metadata");
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        let outputs = Self { pool };
        outputs.migrate().await?;
        Ok(outputs)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => StoreError::Postgres(e),
            other => StoreError::Pool(other.to_string()),
        })
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS switchyard_metadata_schema (
                one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
                version INTEGER NOT NULL
            )",
        )
        .await?;
        let found: i32 = match tx
            .query_opt("SELECT version FROM switchyard_metadata_schema", &[])
            .await?
        {
            Some(row) => row.try_get(0)?,
            None => 0,
        };
        if found > VERSION {
            return Err(StoreError::UnsupportedSchemaVersion {
                found,
                supported: VERSION,
            });
        }
        if found < 1 {
            tx.batch_execute(
                "CREATE TABLE metadata_outputs (
                    step TEXT COLLATE \"C\" NOT NULL,
                    name TEXT COLLATE \"C\" NOT NULL,
                    value TEXT NOT NULL,
                    bytes BIGINT NOT NULL,
                    PRIMARY KEY (step, name)
                );
                INSERT INTO switchyard_metadata_schema (version) VALUES (1)",
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

impl OutputStore for PostgresOutputs {
    fn get<'a>(
        &'a self,
        step: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, StoreError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let statement = client
                .prepare_cached("SELECT value FROM metadata_outputs WHERE step = $1 AND name = $2")
                .await?;
            let Some(row) = client.query_opt(&statement, &[&step, &name]).await? else {
                return Ok(None);
            };
            let text: &str = row.try_get(0)?;
            serde_json::from_str(text)
                .map(Some)
                .map_err(|e| StoreError::Unreadable {
                    what: format!("output {step}/{name}"),
                    message: e.to_string(),
                })
        })
    }

    fn set<'a>(
        &'a self,
        step: &'a str,
        name: &'a str,
        value: Value,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let text = value.to_string();
            let bytes = i64::try_from(value_bytes(&value)).unwrap_or(i64::MAX);
            let client = self.client().await?;
            let statement = client
                .prepare_cached(
                    "INSERT INTO metadata_outputs (step, name, value, bytes)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (step, name) DO UPDATE
                     SET value = excluded.value, bytes = excluded.bytes",
                )
                .await?;
            client
                .execute(&statement, &[&step, &name, &text, &bytes])
                .await?;
            Ok(())
        })
    }

    fn step_bytes<'a>(&'a self, step: &'a str) -> BoxFuture<'a, Result<Option<u64>, StoreError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(
                    "SELECT COALESCE(SUM(bytes), 0)::BIGINT FROM metadata_outputs WHERE step = $1",
                )
                .await?;
            let row = client.query_one(&statement, &[&step]).await?;
            let total: i64 = row.try_get(0)?;
            Ok(Some(u64::try_from(total).unwrap_or(0)))
        })
    }
}
