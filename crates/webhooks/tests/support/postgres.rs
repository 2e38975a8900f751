//! A PostgreSQL database of its own for one test, dropped when the test ends (passed or
//! not). The server is `SWITCHYARD_TEST_POSTGRES` (a connection URL to a database the user
//! may create databases from), by default the project's local one,
//! `postgres://postgres@127.0.0.1:5432/postgres`. A test that cannot reach it fails, saying
//! how to start it: it is never skipped.

use std::sync::atomic::{AtomicU32, Ordering};

/// The server tests use unless `SWITCHYARD_TEST_POSTGRES` says otherwise.
const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database made for one test.
#[derive(Debug)]
pub struct TestDatabase {
    /// Its connection URL.
    pub url: String,
    name: String,
    admin: String,
}

fn admin_url() -> String {
    std::env::var("SWITCHYARD_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = match tokio_postgres::connect(url, tokio_postgres::NoTls).await {
        Ok(pair) => pair,
        Err(e) => panic!(
            "cannot reach PostgreSQL at {url} ({e}). The PostgreSQL tests need a server: \
             start the local one (`service postgresql start`, see the env notes), or set \
             SWITCHYARD_TEST_POSTGRES to a URL where the user may create databases"
        ),
    };
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

impl TestDatabase {
    /// Creates an empty database with a name no other test uses.
    pub async fn create() -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "switchyard_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            uuid::Uuid::new_v4().simple()
        );
        let admin_url = admin_url();
        let client = admin(&admin_url).await;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the test database");
        let url = match admin_url.rsplit_once('/') {
            Some((server, last)) if !last.contains('@') => {
                let query = last.split_once('?').map(|(_, q)| format!("?{q}"));
                format!("{server}/{name}{}", query.unwrap_or_default())
            }
            _ => format!("{admin_url}/{name}"),
        };
        Self {
            url,
            name,
            admin: admin_url,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime: use a runtime of its own on another thread.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the test database");
            runtime.block_on(async {
                let client = admin(&admin_url).await;
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) && !std::thread::panicking() {
            panic!("could not drop the test database {}", self.name);
        }
    }
}
