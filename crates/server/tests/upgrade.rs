//! Upgrading a data directory of the server's first versions (an application list, a shared
//! event-type file and a SQLite file per application) into the one store: every record comes
//! through with its id, what was waiting to be delivered is delivered, and an upgrade
//! interrupted part-way finishes when run again without importing anything twice.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};
use switchyard_webhooks::store::{SqliteStore, Store as _};
use switchyard_webhooks::{
    AppId, AppUid, Application, EndpointSpec, EventTypeName, Registry, Secret, Verifier,
};

use common::Api;

type Seen = common::Requests;

async fn receiver() -> (String, Seen) {
    common::recording_receiver(std::time::Duration::ZERO).await
}

/// What the old directory holds, to compare with what the API answers after the upgrade.
struct Old {
    /// Applications as the old list has them, with their endpoint's id and current secret
    /// and the id of the message waiting to be delivered (none for the one without a file).
    apps: Vec<OldApp>,
    /// When the shared `origin.visit` was last changed.
    visit_updated: chrono::DateTime<chrono::Utc>,
}

struct OldApp {
    app: Application,
    endpoint: Option<(String, Secret)>,
    message: Option<String>,
}

fn visit() -> EventTypeName {
    EventTypeName::new("origin.visit").unwrap()
}

/// A data directory as the first versions left it, with `url` as every endpoint's base:
/// Alpha and Beta with a file each, Gamma without, and `more` applications like Alpha.
async fn old_layout(data: &Path, url: &str, more: usize) -> Old {
    let webhooks = data.join("webhooks");
    std::fs::create_dir_all(webhooks.join("apps")).unwrap();

    // The shared event types: one live, one archived.
    let catalogue = Registry::new(
        SqliteStore::open(webhooks.join("event-types.db"))
            .await
            .unwrap(),
    );
    let schema = json!({"type": "object", "required": ["url"]});
    let shared = catalogue
        .create_event_type(visit(), "visited", schema.clone())
        .await
        .unwrap();
    let gone = EventTypeName::new("origin.gone").unwrap();
    catalogue
        .create_event_type(gone.clone(), "gone", json!({}))
        .await
        .unwrap();
    catalogue.archive_event_type(&gone).await.unwrap();
    catalogue.store().close().await;

    let now = chrono::Utc::now().timestamp();
    let mut apps = Vec::new();
    let mut wanted: Vec<(String, Option<String>, bool)> = vec![
        ("Alpha".into(), Some("alpha".into()), true),
        ("Beta".into(), None, true),
        ("Gamma".into(), Some("gamma".into()), false),
    ];
    wanted.extend((0..more).map(|i| (format!("App{i}"), Some(format!("app-{i}")), true)));
    for (name, uid, with_file) in wanted {
        let created_at = chrono::DateTime::parse_from_rfc3339("2026-03-01T10:00:00.123456+00:00")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let mut metadata = serde_json::Map::new();
        metadata.insert("team".into(), Value::String(name.to_lowercase()));
        let app = Application {
            id: AppId::generate(now).unwrap(),
            uid: uid.map(|u| AppUid::new(u).unwrap()),
            name: name.clone(),
            metadata,
            rate_limit: std::num::NonZeroU32::new(if with_file { 50 } else { 0 }),
            created_at,
            updated_at: created_at,
        };
        let (endpoint, message) = if with_file {
            let registry = Registry::new(
                SqliteStore::open(webhooks.join("apps").join(format!("{}.db", app.id)))
                    .await
                    .unwrap(),
            );
            // The first versions' copy of the shared type, made when the application was
            // (a later time; here also another description, to tell them apart).
            registry
                .create_event_type(visit(), "a copy", schema.clone())
                .await
                .unwrap();
            let path = name.to_lowercase();
            let endpoint = registry
                .create_endpoint(
                    EndpointSpec::new(format!("{url}/{path}"))
                        .uid("ep")
                        .unwrap()
                        .event_type(visit()),
                )
                .await
                .unwrap();
            // A deleted endpoint leaves a tombstone; a rotated secret leaves the old key.
            let deleted = registry
                .create_endpoint(EndpointSpec::new(format!("{url}/deleted")))
                .await
                .unwrap();
            registry.delete_endpoint(deleted.id.as_str()).await.unwrap();
            registry
                .rotate_secret(endpoint.id.as_str(), None)
                .await
                .unwrap();
            let secret = registry
                .endpoint_secret(endpoint.id.as_str())
                .await
                .unwrap();
            // Accepted, never delivered: the old server stopped first.
            let message = registry
                .create_message(
                    &visit(),
                    format!(r#"{{"url": "https://{path}"}}"#).as_bytes(),
                    None,
                )
                .await
                .unwrap();
            registry.store().close().await;
            (
                Some((endpoint.id.to_string(), secret)),
                Some(message.id.to_string()),
            )
        } else {
            (None, None)
        };
        apps.push(OldApp {
            app,
            endpoint,
            message,
        });
    }

    // The application list, in the first versions' schema, left as by a server killed with
    // its rows still in the WAL.
    let list = rusqlite::Connection::open(webhooks.join("apps.db")).unwrap();
    list.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )
    .unwrap();
    list.pragma_update(None, "journal_mode", "WAL").unwrap();
    list.execute_batch(
        "CREATE TABLE apps (
            id TEXT PRIMARY KEY NOT NULL, uid TEXT UNIQUE, name TEXT NOT NULL,
            metadata TEXT NOT NULL, rate_limit INTEGER,
            created_at TEXT NOT NULL, updated_at TEXT NOT NULL)",
    )
    .unwrap();
    for old in &apps {
        let app = &old.app;
        list.execute(
            "INSERT INTO apps VALUES (?, ?, ?, ?, ?, ?, ?)",
            rusqlite::params![
                app.id.as_str(),
                app.uid.as_ref().map(|u| u.as_str()),
                app.name,
                Value::Object(app.metadata.clone()).to_string(),
                app.rate_limit.map(|r| i64::from(r.get())),
                app.created_at.to_rfc3339(),
                app.updated_at.to_rfc3339(),
            ],
        )
        .unwrap();
    }
    Old {
        apps,
        visit_updated: shared.updated_at,
    }
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Everything the old directory held, as the API answers it now.
async fn check_everything_came_through(api: &Api, old: &Old) {
    let listed = api.get("/api/v1/app").await.json();
    let listed: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    let mut expected: Vec<&str> = old.apps.iter().map(|o| o.app.id.as_str()).collect();
    expected.sort_unstable();
    assert_eq!(listed, expected, "the same applications, and only those");

    for old in &old.apps {
        let app = &old.app;
        let reply = api.get(&format!("/api/v1/app/{}", app.id)).await;
        assert_eq!(reply.status, StatusCode::OK);
        let got = reply.json();
        assert_eq!(got["name"], app.name);
        assert_eq!(got["uid"], json!(app.uid.as_ref().map(|u| u.as_str())));
        assert_eq!(got["metadata"], Value::Object(app.metadata.clone()));
        assert_eq!(got["rateLimit"], json!(app.rate_limit.map(|r| r.get())));
        assert_eq!(got["createdAt"], "2026-03-01T10:00:00.123456Z");
        if let Some(uid) = &app.uid {
            let by_uid = api.get(&format!("/api/v1/app/{uid}")).await.json();
            assert_eq!(by_uid["id"], app.id.as_str());
        }
        let endpoints = api
            .get(&format!("/api/v1/app/{}/endpoint", app.id))
            .await
            .json();
        let endpoints = endpoints["data"].as_array().unwrap();
        match &old.endpoint {
            None => assert!(endpoints.is_empty()),
            Some((id, secret)) => {
                assert_eq!(endpoints.len(), 1, "the deleted one stays deleted");
                assert_eq!(endpoints[0]["id"], id.as_str());
                assert_eq!(endpoints[0]["uid"], "ep");
                assert_eq!(endpoints[0]["filterTypes"], json!(["origin.visit"]));
                let key = api
                    .get(&format!("/api/v1/app/{}/endpoint/ep/secret", app.id))
                    .await
                    .json();
                assert_eq!(key["key"], secret.expose(), "the rotated secret");
            }
        }
        let messages = api.get(&format!("/api/v1/app/{}/msg", app.id)).await.json();
        let ids: Vec<&str> = messages["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            old.message.iter().map(String::as_str).collect::<Vec<_>>()
        );
    }

    let types = api.get("/api/v1/event-type").await.json();
    let names: Vec<&str> = types["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["origin.visit"]);
    // The shared catalogue's version, not an application's copy.
    assert_eq!(types["data"][0]["description"], "visited");
    assert_eq!(
        types["data"][0]["updatedAt"],
        old.visit_updated
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    );
    let gone = api.get("/api/v1/event-type/origin.gone").await.json();
    assert_eq!(gone["archived"], true, "archived stays archived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_data_directory_is_imported_and_its_deliveries_go_out() {
    let dir = tempfile::tempdir().unwrap();
    let (url, seen) = receiver().await;
    let old = old_layout(dir.path(), &url, 0).await;

    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());
    check_everything_came_through(&api, &old).await;

    // The messages the old server accepted and never delivered go out now, signed with the
    // endpoint's current secret, each to its own application's endpoint only.
    wait_for("the two pending deliveries", || {
        seen.lock().unwrap().len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut delivered = seen.lock().unwrap().clone();
    delivered.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(delivered.len(), 2, "{delivered:?}");
    for ((path, headers, body), old) in delivered.iter().zip(&old.apps) {
        let name = old.app.name.to_lowercase();
        assert_eq!(path, &format!("/{name}"));
        assert_eq!(
            body.as_ref(),
            format!(r#"{{"url": "https://{name}"}}"#).as_bytes()
        );
        let (_, secret) = old.endpoint.as_ref().unwrap();
        Verifier::new(secret.clone()).verify(headers, body).unwrap();
        assert_eq!(
            headers["webhook-id"].to_str().unwrap(),
            old.message.as_deref().unwrap()
        );
    }

    // The old files are kept aside, not read again; the new store is owner-only.
    let webhooks = dir.path().join("webhooks");
    for kept in [
        "apps.db.imported",
        "event-types.db.imported",
        "apps.imported",
    ] {
        assert!(webhooks.join(kept).exists(), "{kept}");
    }
    for gone in ["apps.db", "event-types.db", "apps"] {
        for suffix in ["", "-wal", "-shm"] {
            assert!(
                !webhooks.join(format!("{gone}{suffix}")).exists(),
                "{gone}{suffix}"
            );
        }
    }
    // What the killed server left in the WAL is in the file kept aside.
    let kept = rusqlite::Connection::open(webhooks.join("apps.db.imported")).unwrap();
    let count: i64 = kept
        .query_row("SELECT count(*) FROM apps", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 3);
    drop(kept);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(webhooks.join("store.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // A restart reads the one store and finds the same.
    server.shutdown().await.unwrap();
    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());
    check_everything_came_through(&api, &old).await;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_upgrade_finishes_without_importing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _seen) = receiver().await;
    let old = old_layout(dir.path(), &url, 0).await;
    let webhooks = dir.path().join("webhooks");

    // A run that stopped right after importing the shared event types and the first
    // application.
    let store = SqliteStore::open(webhooks.join("store.db")).await.unwrap();
    let carrier = Application {
        id: AppId::generate(0).unwrap(),
        ..Application::default_app()
    };
    store
        .import(webhooks.join("event-types.db"), &carrier)
        .await
        .unwrap();
    store.delete_application(&carrier.id).await.unwrap();
    let first = &old.apps[0].app;
    store
        .import(
            webhooks.join("apps").join(format!("{}.db", first.id)),
            first,
        )
        .await
        .unwrap();
    store.close().await;

    let upgraded = switchyard_server::migrate(dir.path(), &Default::default())
        .await
        .unwrap();
    assert!(upgraded.found);
    assert_eq!((upgraded.applications, upgraded.already), (2, 1));
    let again = switchyard_server::migrate(dir.path(), &Default::default())
        .await
        .unwrap();
    assert!(!again.found, "nothing is left to do");

    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());
    check_everything_came_through(&api, &old).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_unreadable_old_list_is_a_typed_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let webhooks = dir.path().join("webhooks");
    std::fs::create_dir_all(&webhooks).unwrap();
    let list = rusqlite::Connection::open(webhooks.join("apps.db")).unwrap();
    list.execute_batch(
        "CREATE TABLE apps (
            id TEXT PRIMARY KEY NOT NULL, uid TEXT UNIQUE, name TEXT NOT NULL,
            metadata TEXT NOT NULL, rate_limit INTEGER,
            created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
         INSERT INTO apps VALUES ('app_2abc', NULL, 'x', '{}', NULL, 'yesterday', 'today');",
    )
    .unwrap();
    drop(list);

    let error = switchyard_server::migrate(dir.path(), &Default::default())
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("apps.db"), "{message}");
    assert!(
        matches!(error, switchyard_server::ServerError::Upgrade { .. }),
        "{error:?}"
    );
    assert!(
        webhooks.join("apps.db").exists(),
        "the old list is left as it was"
    );
    let error = switchyard_server::Server::start(common::config(dir.path()))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(error, switchyard_server::ServerError::Upgrade { .. }),
        "{error:?}"
    );
}

/// `switchyard migrate` killed with SIGKILL at ever later points, then run to the end: every
/// application arrives exactly once.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_killed_at_any_point_finishes_when_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _seen) = receiver().await;
    let old = old_layout(dir.path(), &url, 25).await;
    let migrate = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .arg("migrate")
            .arg("--data-dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut kills = 0;
    let mut imported = Vec::new();
    let mut delay = Duration::from_millis(2);
    loop {
        let mut child = migrate();
        tokio::time::sleep(delay).await;
        if child.try_wait().unwrap().is_some() {
            break;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        imported.push(imported_so_far(
            &dir.path().join("webhooks").join("store.db"),
        ));
        delay += Duration::from_millis(4);
        assert!(kills < 500, "the migration never finished");
    }
    let mut child = migrate();
    assert!(child.wait().unwrap().success());
    // Where the kills landed: applications in the store after each (none before it exists).
    eprintln!("killed {kills} times before a run finished; applications imported: {imported:?}");

    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());
    check_everything_came_through(&api, &old).await;
    server.shutdown().await.unwrap();
}

/// How many applications the store at `path` holds besides the default one (0 before it
/// exists or while it is being made).
fn imported_so_far(path: &Path) -> i64 {
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return 0;
    };
    conn.query_row("SELECT count(*) - 1 FROM apps", [], |r| r.get(0))
        .unwrap_or(0)
}
