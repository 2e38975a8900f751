//! Tests of what only the SQLite store has: query plans, schema upgrades, the writer thread.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::model::{AttemptTrigger, DeliveryStatus};

fn page(after: Option<&str>) -> PageRequest {
    PageRequest {
        after: after.map(str::to_owned),
        order: Order::Descending,
        limit: 50,
    }
}

fn plan(conn: &Connection, sql: &str, binds: &[SqlValue]) -> String {
    let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let rows = statement
        .query_map(rusqlite::params_from_iter(binds), |row| {
            row.get::<_, String>("detail")
        })
        .unwrap();
    rows.map(Result::unwrap).collect::<Vec<_>>().join(" | ")
}

/// Every page query must walk an index from the cursor, never scan the table from the start
/// or sort it: that is what keeps listing N items page by page linear. The same holds for
/// the statements every delivery runs.
#[tokio::test]
async fn queries_seek_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("plan.db")).await.unwrap();
    let cursor = page(Some("x_1"));
    let mut cases: Vec<ListQuery> = vec![
        ListQuery::new("SELECT * FROM messages").page(&cursor, "id"),
        {
            let mut q = ListQuery::new("SELECT * FROM messages");
            q.condition("event_type = ?", [text("a.b")]);
            q.page(&cursor, "id")
        },
        {
            let mut q = ListQuery::new("SELECT * FROM event_types");
            q.condition("archived = 0", []);
            q.page(&cursor, "name")
        },
        {
            let mut q = ListQuery::new("SELECT e.* FROM endpoints e");
            q.condition("e.deleted = 0", []);
            q.page(&cursor, "e.id")
        },
    ];
    for (column, value) in [
        ("a.ep = (SELECT seq FROM endpoints WHERE id = ?)", "ep_x"),
        ("a.msg = (SELECT seq FROM messages WHERE id = ?)", "msg_x"),
    ] {
        let mut q = ListQuery::new(SELECT_ATTEMPTS);
        q.condition(column, [text(value)]);
        q.condition("a.created_at < ?", [SqlValue::Integer(5)]);
        cases.push(q.page_from(&cursor, "a.seq", ATTEMPT_CURSOR));
    }
    {
        // An application's attempts of one status (the portal's log), through its index.
        let mut q = ListQuery::new(SELECT_ATTEMPTS);
        q.condition(&format!("a.app = {APP_KEY}"), [text("app_x")]);
        q.condition("a.status = 2", []);
        cases.push(q.page_from(&cursor, "a.seq", ATTEMPT_CURSOR));
    }
    {
        let mut q = ListQuery::new(SELECT_ATTEMPTS);
        q.condition("a.event_type = ?", [text("a.b")]);
        q.condition("a.channel = ?", [text("blue")]);
        cases.push(q.page_from(&cursor, "a.seq", ATTEMPT_CURSOR));
    }
    store
        .db
        .read(|conn| {
            for query in &cases {
                let text = plan(conn, &query.sql, &query.binds);
                assert!(
                    text.contains("SEARCH") && text.contains("USING"),
                    "{}: {text}",
                    query.sql
                );
                assert!(!text.contains("TEMP B-TREE"), "{}: {text}", query.sql);
                assert!(!text.contains("SCAN a"), "{}: {text}", query.sql);
                if query.sql.contains("a.status = 2") {
                    assert!(text.contains("attempts_failed"), "{}: {text}", query.sql);
                }
                if query.sql.contains(ATTEMPT_CURSOR) {
                    assert!(text.contains("attempts_by_id"), "{}: {text}", query.sql);
                }
            }
            // Leasing takes the applications whose turn came in order, then walks each one's
            // rows and fan-outs in the order they become available; finishing and
            // recovering seek.
            let turns = plan(
                conn,
                "SELECT app FROM ready WHERE due <= 1 ORDER BY due, app LIMIT 10",
                &[],
            );
            assert!(turns.contains("ready_by_due"), "{turns}");
            assert!(!turns.contains("TEMP B-TREE"), "{turns}");
            let lease = plan(
                conn,
                &format!(
                    "SELECT d.msg, d.ep FROM deliveries d
                     WHERE d.status = 0 AND d.app = 1 AND {AVAILABLE} <= 1
                     ORDER BY {AVAILABLE}, d.msg, d.ep LIMIT 10"
                ),
                &[],
            );
            assert!(lease.contains("deliveries_ready"), "{lease}");
            assert!(!lease.contains("TEMP B-TREE"), "{lease}");
            let next = plan(
                conn,
                &format!(
                    "SELECT MIN({AVAILABLE}) FROM deliveries d WHERE d.status = 0 AND d.app = 1"
                ),
                &[],
            );
            assert!(next.contains("deliveries_ready"), "{next}");
            let recover = plan(
                conn,
                "SELECT 1 FROM deliveries WHERE status = 2 AND ep = 1 AND msg > 0",
                &[],
            );
            assert!(recover.contains("deliveries_exhausted"), "{recover}");
            let ordered = plan(
                conn,
                "SELECT 1 FROM deliveries p WHERE p.status = 0 AND p.ep = 1 AND p.msg < 5",
                &[],
            );
            assert!(ordered.contains("deliveries_pending"), "{ordered}");
            // Fan-outs are claimed in index order, their messages found by key.
            let binds = [
                SqlValue::Integer(1),
                SqlValue::Integer(1),
                SqlValue::Integer(10),
            ];
            let claim = plan(conn, fanout::CANDIDATES, &binds);
            assert!(claim.contains("fanouts_ready"), "{claim}");
            assert!(claim.contains("INTEGER PRIMARY KEY"), "{claim}");
            assert!(!claim.contains("TEMP B-TREE"), "{claim}");
            Ok(())
        })
        .unwrap();
}

/// A file written by schema version 1 (before the delivery engine) opens, upgrades in place
/// and keeps its data.
#[tokio::test]
async fn version_1_files_upgrade_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    {
        let conn = Connection::open(&path).unwrap();
        for statement in schema::V1 {
            conn.execute_batch(statement).unwrap();
        }
        conn.execute_batch(
            "PRAGMA user_version = 1;
             INSERT INTO messages (id, event_type, channel, payload, created_at)
             VALUES ('msg_2ylMPb5DLdBRLfHmRYkcwGVkW8V', 'a.b', NULL, '{\"x\": 1}', 0);
             INSERT INTO endpoints (id, uid, url, all_types, event_types, channels, metadata,
                headers, disabled, description, keys, created_at, updated_at)
             VALUES ('ep_2ylMPb5DLdBRLfHmRYkcwGVkW8V', NULL, 'https://example.com/', 1, '[]',
                '[]', '{}', '{}', 0, '',
                '{\"current\":\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\",\"previous\":[]}', 0, 0);
             INSERT INTO deliveries (message_id, endpoint_id, status, attempts, next_attempt_at)
             VALUES ('msg_2ylMPb5DLdBRLfHmRYkcwGVkW8V', 'ep_2ylMPb5DLdBRLfHmRYkcwGVkW8V',
                0, 0, 0);",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).await.unwrap();
    let version: i64 = store
        .db
        .read(|conn| Ok(conn.query_row("PRAGMA user_version", [], |row| row.get(0))?))
        .unwrap();
    assert_eq!(version, schema::VERSION);
    let id: MessageId = "msg_2ylMPb5DLdBRLfHmRYkcwGVkW8V".parse().unwrap();
    let message = store
        .message(&AppId::default_app(), &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(message.payload, r#"{"x": 1}"#);
    assert!(!message.expired);
    let delivery = &store.deliveries(&AppId::default_app(), &id).await.unwrap()[0];
    assert_eq!(delivery.trigger, AttemptTrigger::Scheduled);
    assert_eq!(delivery.status, DeliveryStatus::Pending);
    let attempts = store
        .list_attempts(
            &AppId::default_app(),
            &AttemptFilter::default(),
            &page(None),
        )
        .await
        .unwrap();
    assert!(attempts.is_empty());
    // The upgraded file delivers: its pending delivery can be leased.
    let leases = store
        .lease_deliveries(Utc::now(), Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].delivery.message_id, id);
    store.close().await;
    // Opening again is a no-op.
    let again = SqliteStore::open(&path).await.unwrap();
    assert!(
        again
            .message(&AppId::default_app(), &id)
            .await
            .unwrap()
            .is_some()
    );
}

/// A version 2 file (text keys everywhere) keeps every message, delivery and attempt when it
/// moves to integer keys, including the attempts of an endpoint deleted before the upgrade.
#[tokio::test]
async fn version_2_files_upgrade_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.db");
    let live = "ep_2ylMPb5DLdBRLfHmRYkcwGVkW8V";
    let gone = "ep_2ylMPb5DLdBRLfHmRYkcwGVkW9A";
    let first = "msg_2ylMPb5DLdBRLfHmRYkcwGVkW8V";
    let second = "msg_2ylMPb5DLdBRLfHmRYkcwGVkW9A";
    {
        let mut conn = Connection::open(&path).unwrap();
        {
            let tx = conn.transaction().unwrap();
            for statement in schema::V1.iter().chain(schema::V2) {
                tx.execute_batch(statement).unwrap();
            }
            tx.commit().unwrap();
        }
        conn.execute_batch(&format!(
            "PRAGMA user_version = 2;
             INSERT INTO messages (id, event_type, channel, payload, created_at, expired)
             VALUES ('{first}', 'a.b', 'blue', '{{\"n\": 1}}', 10, 0),
                    ('{second}', 'a.b', NULL, '', 20, 1);
             INSERT INTO endpoints (id, uid, url, all_types, event_types, channels, metadata,
                headers, disabled, description, keys, created_at, updated_at, ordered)
             VALUES ('{live}', 'live', 'https://example.com/', 0, '[\"a.b\"]',
                '[\"blue\"]', '{{}}', '{{}}', 0, 'd',
                '{{\"current\":\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\",\"previous\":[]}}',
                1, 2, 1);
             INSERT INTO endpoint_types VALUES ('a.b', '{live}');
             INSERT INTO endpoint_channels VALUES ('{live}', 'blue');
             INSERT INTO deliveries (message_id, endpoint_id, status, attempts,
                next_attempt_at, next_trigger)
             VALUES ('{first}', '{live}', 1, 1, 10, 0),
                    ('{first}', '{gone}', 2, 8, 10, 0),
                    ('{second}', '{live}', 0, 2, 99, 1);
             INSERT INTO attempts (id, message_id, endpoint_id, event_type, channel, url,
                status, response_status, response, headers, duration_us, next_trigger,
                created_at)
             VALUES ('atmpt_2ylMPb5DLdBRLfHmRYkcwGVkW8V', '{first}', '{live}', 'a.b', 'blue',
                    'https://example.com/', 0, 204, '', '{{\"webhook-id\":\"{first}\"}}', 5, 0, 11),
                    ('atmpt_2ylMPb5DLdBRLfHmRYkcwGVkW9A', '{first}', '{gone}', 'a.b', 'blue',
                    'https://gone.example/', 2, 500, 'no', '{{}}', 7, 1, 12);"
        ))
        .unwrap();
    }
    let store = SqliteStore::open(&path).await.unwrap();
    let first_id: MessageId = first.parse().unwrap();
    let second_id: MessageId = second.parse().unwrap();
    let endpoint = store
        .endpoint(&AppId::default_app(), &live.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(endpoint.endpoint.uid.as_ref().unwrap().as_str(), "live");
    assert!(endpoint.endpoint.ordered);
    assert_eq!(endpoint.endpoint.channels[0].as_str(), "blue");
    // The deleted endpoint is a tombstone: not found, but still named by its attempts.
    assert!(
        store
            .endpoint(&AppId::default_app(), &gone.parse().unwrap())
            .await
            .unwrap()
            .is_none()
    );
    let deliveries = store
        .deliveries(&AppId::default_app(), &first_id)
        .await
        .unwrap();
    assert_eq!(deliveries.len(), 2);
    assert_eq!(deliveries[0].endpoint_id.as_str(), live);
    assert_eq!(deliveries[0].status, DeliveryStatus::Succeeded);
    assert_eq!(deliveries[1].endpoint_id.as_str(), gone);
    assert_eq!(deliveries[1].status, DeliveryStatus::Exhausted);
    let pending = &store
        .deliveries(&AppId::default_app(), &second_id)
        .await
        .unwrap()[0];
    assert_eq!(
        (pending.attempts, pending.trigger),
        (2, AttemptTrigger::Manual)
    );
    assert!(
        store
            .message(&AppId::default_app(), &second_id)
            .await
            .unwrap()
            .unwrap()
            .expired
    );
    let attempts = store
        .list_attempts(
            &AppId::default_app(),
            &AttemptFilter {
                message: Some(first_id.clone()),
                ..AttemptFilter::default()
            },
            &page(None),
        )
        .await
        .unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].endpoint_id.as_str(), gone);
    assert_eq!(attempts[0].response, "no");
    assert_eq!(attempts[0].trigger, AttemptTrigger::Manual);
    assert_eq!(attempts[1].endpoint_id.as_str(), live);
    assert_eq!(attempts[1].headers.get("webhook-id"), Some(first));
    let by_channel = store
        .list_attempts(
            &AppId::default_app(),
            &AttemptFilter {
                event_types: vec![EventTypeName::new("a.b").unwrap()],
                channel: Some(Channel::new("blue").unwrap()),
                ..AttemptFilter::default()
            },
            &page(None),
        )
        .await
        .unwrap();
    assert_eq!(by_channel.len(), 2);
    let recipients = store
        .recipients(
            &AppId::default_app(),
            &EventTypeName::new("a.b").unwrap(),
            &[Channel::new("blue").unwrap()],
        )
        .await
        .unwrap();
    assert_eq!(recipients, vec![live.parse::<EndpointId>().unwrap()]);
}

/// The first write of a transaction runs without a savepoint: when it fails or panics, the
/// transaction is rolled back and begun again, and the writes queued with it still commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_first_write_leaves_its_batch_to_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("f.db")).await.unwrap();
    let db = Arc::clone(&store.db);
    let insert = |conn: &Connection, name: &str| {
        conn.execute(
            "INSERT INTO event_types VALUES (?, '', '{}', 0, 0, 0)",
            [name],
        )
    };
    // Keep the writer busy so that the writes below queue into one batch.
    let (started, busy) = tokio::sync::oneshot::channel();
    let blocker = tokio::spawn({
        let db = Arc::clone(&db);
        async move {
            db.write(move |_| {
                let _ = started.send(());
                std::thread::sleep(std::time::Duration::from_millis(300));
                Ok(())
            })
            .await
        }
    });
    busy.await.unwrap();
    let durable_a = tokio::spawn({
        let db = Arc::clone(&db);
        async move { db.write(move |conn| Ok(insert(conn, "t.a")?)).await }
    });
    // These two are the first writes of the bookkeeping transaction in turn, and the
    // durable writes commit in a transaction of their own.
    let failing = tokio::spawn({
        let db = Arc::clone(&db);
        async move {
            db.write_relaxed(move |conn| {
                insert(conn, "t.failed")?;
                Err::<(), _>(corrupt("test", "refused"))
            })
            .await
        }
    });
    let panicking = tokio::spawn({
        let db = Arc::clone(&db);
        async move {
            db.write_relaxed(move |conn| -> Result<(), StoreError> {
                insert(conn, "t.panicked")?;
                panic!("a write that panics");
            })
            .await
        }
    });
    let durable_b = tokio::spawn({
        let db = Arc::clone(&db);
        async move { db.write(move |conn| Ok(insert(conn, "t.b")?)).await }
    });
    blocker.await.unwrap().unwrap();
    assert!(matches!(
        failing.await.unwrap(),
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        panicking.await.unwrap(),
        Err(StoreError::Interrupted)
    ));
    assert_eq!(durable_a.await.unwrap().unwrap(), 1);
    assert_eq!(durable_b.await.unwrap().unwrap(), 1);
    let names: Vec<String> = db
        .read(|conn| {
            let mut statement = conn.prepare("SELECT name FROM event_types ORDER BY name")?;
            let names = statement.query_map([], |row| row.get(0))?;
            Ok(names.collect::<Result<_, _>>()?)
        })
        .unwrap();
    assert_eq!(names, ["t.a", "t.b"]);
    store.close().await;
}

/// Writes queued together commit together, a failing write is rolled back alone, and a
/// closed store refuses writes with a typed error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_share_transactions_and_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("w.db")).await.unwrap();
    let db = Arc::clone(&store.db);
    let mut writes = Vec::new();
    for i in 0..200_i64 {
        let db = Arc::clone(&db);
        writes.push(tokio::spawn(async move {
            db.write(move |conn| {
                conn.execute(
                    "INSERT INTO event_types VALUES (?, '', '{}', 0, ?, ?)",
                    params![format!("t.n{i}"), i, i],
                )?;
                if i % 10 == 3 {
                    // Fails after writing: its row must not survive.
                    return Err(corrupt("test", "refused"));
                }
                Ok(i)
            })
            .await
        }));
    }
    for (i, write) in writes.into_iter().enumerate() {
        let result = write.await.unwrap();
        if i % 10 == 3 {
            assert!(
                matches!(result, Err(StoreError::Corrupt { .. })),
                "{result:?}"
            );
        } else {
            assert_eq!(result.unwrap(), i as i64);
        }
    }
    let count: i64 = db
        .read(|conn| Ok(conn.query_row("SELECT count(*) FROM event_types", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(count, 180);
    store.close().await;
    let refused = store
        .put_event_type(&EventType {
            name: EventTypeName::new("a.b").unwrap(),
            description: String::new(),
            schema: serde_json::json!({}),
            archived: false,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        })
        .await;
    assert!(matches!(refused, Err(StoreError::Closed)), "{refused:?}");
}

/// The database and its journal files hold payloads and signing secrets: owner-only.
#[cfg(unix)]
#[tokio::test]
async fn new_files_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("private.db");
    let store = SqliteStore::open(&path).await.unwrap();
    store
        .put_event_type(&crate::model::EventType {
            name: "a.b".parse().unwrap(),
            description: String::new(),
            schema: serde_json::json!({}),
            archived: false,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        })
        .await
        .unwrap();
    let mut seen = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", entry.path().display());
        seen += 1;
    }
    assert!(seen >= 2, "the database and its WAL");
    store.close().await;
}
