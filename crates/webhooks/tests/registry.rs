//! The registry's behaviour through its public API, as one suite run against every store:
//! each test below runs over `MemoryStore`, `SqliteStore` and (with the `postgres` feature,
//! which `cargo xtask ci` turns on) `PostgresStore`, each in a database of its own.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::num::NonZeroU32;

#[cfg(feature = "postgres")]
use switchyard_webhooks::store::PostgresStore;
use switchyard_webhooks::store::{
    AppLimits, AttemptFilter, EndpointFilter, HealthChange, IdempotencyClaim, MemoryStore,
    MessageFilter, RememberedResponse, SqliteStore, Store,
};
use switchyard_webhooks::{
    AppId, AppScope, AppUid, Application, ApplicationSpec, Attempt, AttemptId, AttemptStatus,
    AttemptTrigger, Channel, Clock, DeliveryStatus, DeliveryUpdate, Endpoint, EndpointSpec, Error,
    EventTypeName, Lease, ListOptions, Message, MessageId, NewMessage, Order, PageRequest,
    Registry, RegistryConfig, SchemaError, Secret, SentEventQuery, Signer,
};

/// A registry whose clock the test moves by hand.
struct Harness<S> {
    registry: Registry<S>,
    now_micros: Arc<AtomicI64>,
    /// What must outlive the store (its directory or its database).
    _keep: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl<S: Store> Harness<S> {
    /// A harness whose registry has `config` but for the clock, which the test moves.
    fn configured(
        store: S,
        dir: Option<Box<dyn std::any::Any + Send + Sync>>,
        config: RegistryConfig,
    ) -> Self {
        let now_micros = Arc::new(AtomicI64::new(1_750_000_000_000_000));
        let clock_source = Arc::clone(&now_micros);
        let clock = Clock::from_fn(move || {
            DateTime::from_timestamp_micros(clock_source.load(Ordering::SeqCst)).unwrap()
        });
        let config = RegistryConfig { clock, ..config };
        Self {
            registry: Registry::with_config(store, config),
            now_micros,
            _keep: dir,
        }
    }

    fn advance(&self, by: Duration) {
        self.now_micros
            .fetch_add(by.as_micros() as i64, Ordering::SeqCst);
    }

    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.now_micros.load(Ordering::SeqCst)).unwrap()
    }
}

fn name(text: &str) -> EventTypeName {
    EventTypeName::new(text).unwrap()
}

fn visit_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "required": ["origin"],
        "properties": {
            "origin": {"type": "string"},
            "visit": {"type": "integer", "minimum": 1}
        }
    })
}

async fn with_visit_type<S: Store>(h: &Harness<S>) -> EventTypeName {
    let visit = name("origin.visit");
    h.registry
        .create_event_type(visit.clone(), "An origin was visited", visit_schema())
        .await
        .unwrap();
    visit
}

async fn event_types_create_update_list_archive<S: Store>(h: Harness<S>) {
    let r = &h.registry;
    let visit = with_visit_type(&h).await;
    let created = r.event_type(&visit).await.unwrap();
    assert_eq!(created.description, "An origin was visited");
    assert_eq!(created.schema, visit_schema());

    h.advance(Duration::from_secs(5));
    r.create_event_type(visit.clone(), "updated", json!({"type": "object"}))
        .await
        .unwrap();
    let updated = r.event_type(&visit).await.unwrap();
    assert_eq!(updated.description, "updated");
    assert_eq!(updated.created_at, created.created_at);
    assert!(updated.updated_at > created.updated_at);

    for n in ["b.x", "a.x", "c.x"] {
        r.create_event_type(name(n), n, json!({})).await.unwrap();
    }
    let page = r.list_event_types(&ListOptions::new()).await.unwrap();
    let names: Vec<&str> = page.items.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a.x", "b.x", "c.x", "origin.visit"]);
    assert!(page.done);

    // Archive: kept, not listed, not gettable, no sends; creating again unarchives.
    r.archive_event_type(&name("b.x")).await.unwrap();
    assert!(matches!(
        r.event_type(&name("b.x")).await,
        Err(Error::EventTypeNotFound { .. })
    ));
    assert!(matches!(
        r.archive_event_type(&name("b.x")).await,
        Err(Error::EventTypeNotFound { .. })
    ));
    let names: Vec<String> = r
        .list_event_types(&ListOptions::new())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert_eq!(names, ["a.x", "c.x", "origin.visit"]);
    // Listed again when asked for, marked archived, paged in name order.
    let all = r
        .list_event_types_with(&ListOptions::new().limit(2), true)
        .await
        .unwrap();
    let names: Vec<(&str, bool)> = all
        .items
        .iter()
        .map(|t| (t.name.as_str(), t.archived))
        .collect();
    assert_eq!(names, [("a.x", false), ("b.x", true)]);
    let rest = r
        .list_event_types_with(
            &ListOptions::new().limit(2).iterator(all.iterator.unwrap()),
            true,
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 2);
    assert!(rest.done);
    r.create_endpoint(EndpointSpec::new("https://x.example/").event_type(name("a.x")))
        .await
        .unwrap();
    assert!(matches!(
        r.send(&name("b.x"), "{}", None).await,
        Err(Error::EventTypeNotFound { .. })
    ));
    r.create_event_type(name("b.x"), "back", json!({}))
        .await
        .unwrap();
    assert_eq!(
        r.event_type(&name("b.x")).await.unwrap().description,
        "back"
    );
    assert!(matches!(
        r.event_type(&name("never.made")).await,
        Err(Error::EventTypeNotFound { .. })
    ));
}

async fn bad_schemas_are_refused_with_their_path<S: Store>(h: Harness<S>) {
    let err = h
        .registry
        .create_event_type(
            name("a.b"),
            "",
            json!({"type": "object", "properties": {"x": {"minimum": "one"}}}),
        )
        .await
        .unwrap_err();
    match err {
        Error::Schema(SchemaError::InvalidSchema { path, .. }) => {
            assert_eq!(path, "/properties/x/minimum")
        }
        other => panic!("{other:?}"),
    }
    // Nothing was stored.
    assert!(h.registry.event_type(&name("a.b")).await.is_err());
    // swh-webhooks' `<group>.<event>`, held by default: a name Svix would take is refused.
    for ungrouped in ["no-dot", "message.attempt.failing"] {
        assert!(matches!(
            h.registry
                .create_event_type(name(ungrouped), "", json!({}))
                .await,
            Err(Error::UngroupedEventTypeName { .. })
        ));
    }
    assert!(EventTypeName::new("has space").is_err());
}

async fn endpoints_by_id_and_uid_update_and_delete<S: Store>(h: Harness<S>) {
    let r = &h.registry;
    let visit = with_visit_type(&h).await;
    let spec = EndpointSpec::new("https://hooks.example.com/a")
        .event_type(visit.clone())
        .uid("user-1.visits")
        .unwrap()
        .channel("swh:1:ori")
        .unwrap()
        .header("x-tenant", "1")
        .metadata("owner", json!({"name": "ada", "ids": [1, 2]}));
    let created = r.create_endpoint(spec).await.unwrap();
    assert!(created.id.as_str().starts_with("ep_"));
    assert_eq!(r.endpoint(created.id.as_str()).await.unwrap(), created);
    assert_eq!(r.endpoint("user-1.visits").await.unwrap(), created);
    assert_eq!(
        created.metadata["owner"],
        json!({"name": "ada", "ids": [1, 2]})
    );
    assert_eq!(created.headers["x-tenant"], "1");
    let first_secret = r.endpoint_secret("user-1.visits").await.unwrap();
    assert!(first_secret.expose().starts_with("whsec_"));

    // Same uid: an update of the same endpoint, secret rotated, old one still live.
    h.advance(Duration::from_secs(1));
    let updated = r
        .create_endpoint(
            EndpointSpec::new("https://hooks.example.com/b")
                .event_type(visit.clone())
                .uid("user-1.visits")
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(updated.id, created.id);
    assert_eq!(updated.created_at, created.created_at);
    assert_eq!(updated.url, "https://hooks.example.com/b");
    assert!(updated.channels.is_empty());
    let live = r.live_keys(created.id.as_str()).await.unwrap();
    assert_eq!(live.len(), 2);
    assert_ne!(live[0], first_secret);
    assert_eq!(live[1], first_secret);

    // A given secret is used as is.
    let mine: Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse().unwrap();
    let other = r
        .create_endpoint(EndpointSpec::new("http://localhost:9/").secret(mine.clone()))
        .await
        .unwrap();
    assert_eq!(r.endpoint_secret(other.id.as_str()).await.unwrap(), mine);

    // Replacing the custom headers keeps the secret (no rotation) and checks the headers.
    let keys_before = r.live_keys("user-1.visits").await.unwrap();
    let headers = [("X-Swh-Event".to_owned(), "origin.visit".to_owned())].into();
    let with_headers = r
        .update_endpoint_headers("user-1.visits", headers)
        .await
        .unwrap();
    assert_eq!(with_headers.headers.len(), 1);
    assert_eq!(with_headers.headers["X-Swh-Event"], "origin.visit");
    assert_eq!(r.endpoint("user-1.visits").await.unwrap(), with_headers);
    assert_eq!(r.live_keys("user-1.visits").await.unwrap(), keys_before);
    let reserved = [("webhook-id".to_owned(), "x".to_owned())].into();
    assert!(matches!(
        r.update_endpoint_headers("user-1.visits", reserved).await,
        Err(Error::InvalidHeader { .. })
    ));
    assert!(matches!(
        r.update_endpoint_headers("nobody", Default::default())
            .await,
        Err(Error::EndpointNotFound { .. })
    ));

    // A full update by id: new settings, same id, creation time and keys; a uid another
    // endpoint has is refused; a secret in the spec is rotated in.
    h.advance(Duration::from_secs(1));
    let replaced = r
        .update_endpoint(
            created.id.as_str(),
            EndpointSpec::new("https://hooks.example.com/c")
                .uid("user-1.renamed")
                .unwrap()
                .description("moved")
                .disabled(true),
        )
        .await
        .unwrap();
    assert_eq!(replaced.id, created.id);
    assert_eq!(replaced.created_at, created.created_at);
    assert!(replaced.updated_at > with_headers.updated_at);
    assert_eq!(replaced.url, "https://hooks.example.com/c");
    assert!(replaced.headers.is_empty() && replaced.disabled);
    assert_eq!(r.endpoint("user-1.renamed").await.unwrap(), replaced);
    assert!(matches!(
        r.endpoint("user-1.visits").await,
        Err(Error::EndpointNotFound { .. })
    ));
    assert_eq!(r.live_keys("user-1.renamed").await.unwrap(), keys_before);
    let taken = r
        .create_endpoint(
            EndpointSpec::new("https://x.example/")
                .uid("taken")
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(matches!(
        r.update_endpoint(
            "user-1.renamed",
            EndpointSpec::new("https://x.example/")
                .uid("taken")
                .unwrap()
        )
        .await,
        Err(Error::EndpointExists { .. })
    ));
    let next: Secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".parse().unwrap();
    r.update_endpoint(
        "user-1.renamed",
        EndpointSpec::new("https://hooks.example.com/b")
            .uid("user-1.visits")
            .unwrap()
            .secret(next.clone()),
    )
    .await
    .unwrap();
    let live = r.live_keys("user-1.visits").await.unwrap();
    assert_eq!(live[0], next);
    assert_eq!(live[1], keys_before[0]);
    assert!(matches!(
        r.update_endpoint("nobody", EndpointSpec::new("https://x.example/"))
            .await,
        Err(Error::EndpointNotFound { .. })
    ));
    r.delete_endpoint(taken.id.as_str()).await.unwrap();

    r.delete_endpoint("user-1.visits").await.unwrap();
    assert!(matches!(
        r.endpoint(created.id.as_str()).await,
        Err(Error::EndpointNotFound { .. })
    ));
    assert!(matches!(
        r.delete_endpoint("user-1.visits").await,
        Err(Error::EndpointNotFound { .. })
    ));
    // The uid is free again.
    r.create_endpoint(
        EndpointSpec::new("https://x.example/")
            .uid("user-1.visits")
            .unwrap(),
    )
    .await
    .unwrap();
}

async fn endpoint_input_is_checked<S: Store>(h: Harness<S>) {
    let r = &h.registry;
    let visit = with_visit_type(&h).await;
    for (url, ok) in [
        ("ftp://x.example/", false),
        ("/relative", false),
        ("not a url", false),
        ("https://", false),
        ("http://127.0.0.1:8080/hook?x=1", true),
    ] {
        let result = r.create_endpoint(EndpointSpec::new(url)).await;
        assert_eq!(result.is_ok(), ok, "{url}: {result:?}");
        if !ok {
            assert!(matches!(result, Err(Error::InvalidUrl { .. })));
        }
    }
    let mut spec = EndpointSpec::new("https://x.example/");
    for i in 0..11 {
        spec = spec.channel(&format!("c{i}")).unwrap();
    }
    assert!(matches!(
        r.create_endpoint(spec).await,
        Err(Error::TooManyChannels { count: 11, max: 10 })
    ));
    for header in ["webhook-signature", "Content-Type", "bad header"] {
        let result = r
            .create_endpoint(EndpointSpec::new("https://x.example/").header(header, "v"))
            .await;
        assert!(
            matches!(result, Err(Error::InvalidHeader { .. })),
            "{header}"
        );
    }
    let result = r
        .create_endpoint(EndpointSpec::new("https://x.example/").event_type(name("no.such")))
        .await;
    assert!(matches!(result, Err(Error::EventTypeNotFound { .. })));
    assert!(EndpointSpec::new("x").uid("has space").is_err());
    assert!(EndpointSpec::new("x").channel("a/b").is_err());
    assert!("whsec_dG9vIHNob3J0".parse::<Secret>().is_err());
    // Nothing above was stored.
    let all = r
        .list_endpoints(&EndpointFilter::default(), &ListOptions::new())
        .await
        .unwrap();
    assert_eq!(all.items.len(), 1);
    let _ = visit;
}

async fn listing_endpoints_by_type_and_channel<S: Store>(h: Harness<S>) {
    let r = &h.registry;
    let visit = with_visit_type(&h).await;
    let other = name("other.event");
    r.create_event_type(other.clone(), "", json!({}))
        .await
        .unwrap();
    let plain = r
        .create_endpoint(EndpointSpec::new("https://a.example/").event_type(visit.clone()))
        .await
        .unwrap();
    let lower = r
        .create_endpoint(
            EndpointSpec::new("https://b.example/")
                .event_type(visit.clone())
                .channel("project")
                .unwrap(),
        )
        .await
        .unwrap();
    let upper = r
        .create_endpoint(
            EndpointSpec::new("https://c.example/")
                .event_type(visit.clone())
                .channel("Project")
                .unwrap(),
        )
        .await
        .unwrap();
    let all_types = r
        .create_endpoint(EndpointSpec::new("https://d.example/"))
        .await
        .unwrap();
    let other_only = r
        .create_endpoint(EndpointSpec::new("https://e.example/").event_type(other.clone()))
        .await
        .unwrap();

    let ids = |page: switchyard_webhooks::Page<switchyard_webhooks::Endpoint>| {
        page.items.into_iter().map(|e| e.id).collect::<Vec<_>>()
    };
    let by_type = EndpointFilter {
        event_type: Some(visit.clone()),
        channel: None,
    };
    assert_eq!(
        ids(r
            .list_endpoints(&by_type, &ListOptions::new())
            .await
            .unwrap()),
        [
            plain.id.clone(),
            lower.id.clone(),
            upper.id.clone(),
            all_types.id.clone()
        ]
    );
    let by_channel = EndpointFilter {
        event_type: Some(visit.clone()),
        channel: Some(Channel::new("project").unwrap()),
    };
    assert_eq!(
        ids(r
            .list_endpoints(&by_channel, &ListOptions::new())
            .await
            .unwrap()),
        [plain.id.clone(), lower.id.clone(), all_types.id.clone()]
    );
    let desc = ListOptions::new().order(Order::Descending).limit(2);
    let page = r.list_endpoints(&by_type, &desc).await.unwrap();
    assert!(!page.done);
    assert_eq!(ids(page.clone()), [all_types.id.clone(), upper.id.clone()]);
    let next = r
        .list_endpoints(&by_type, &desc.clone().iterator(page.iterator.unwrap()))
        .await
        .unwrap();
    assert!(next.done);
    assert_eq!(ids(next), [lower.id.clone(), plain.id.clone()]);
    let by_other = EndpointFilter {
        event_type: Some(other),
        channel: None,
    };
    assert_eq!(
        ids(r
            .list_endpoints(&by_other, &ListOptions::new())
            .await
            .unwrap()),
        [all_types.id.clone(), other_only.id.clone()]
    );
    assert!(matches!(
        r.list_endpoints(
            &EndpointFilter {
                event_type: Some(name("no.such")),
                channel: None
            },
            &ListOptions::new()
        )
        .await,
        Err(Error::EventTypeNotFound { .. })
    ));
}

async fn send_routes_validates_and_keeps_bytes<S: Store>(h: Harness<S>) {
    let r = &h.registry;
    let visit = with_visit_type(&h).await;
    let payload = "{ \"visit\" : 3,\n  \"origin\":\"https://example.org/ré\" }";
    assert_eq!(r.send(&visit, payload, None).await.unwrap(), None);
    assert!(
        r.list_messages(&MessageFilter::default(), &ListOptions::new())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let plain = r
        .create_endpoint(EndpointSpec::new("https://a.example/").event_type(visit.clone()))
        .await
        .unwrap();
    let channeled = r
        .create_endpoint(
            EndpointSpec::new("https://b.example/")
                .event_type(visit.clone())
                .channel("project")
                .unwrap(),
        )
        .await
        .unwrap();
    r.create_endpoint(
        EndpointSpec::new("https://c.example/")
            .event_type(visit.clone())
            .disabled(true),
    )
    .await
    .unwrap();

    let (id, at) = r.send(&visit, payload, None).await.unwrap().unwrap();
    assert!(id.as_str().starts_with("msg_"));
    assert_eq!(at, h.now());
    let message = r.message(id.as_str()).await.unwrap();
    assert_eq!(message.payload, payload, "payload bytes kept exactly");
    assert_eq!(message.event_type, visit);
    let deliveries = r.deliveries(&id).await.unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].endpoint_id, plain.id);
    assert_eq!(deliveries[0].status, DeliveryStatus::Pending);
    assert_eq!(deliveries[0].attempts, 0);

    // On a channel: the unchanneled endpoint and the one listening to it; case matters.
    let (id, _) = r
        .send(&visit, r#"{"origin":"x"}"#, Some("project"))
        .await
        .unwrap()
        .unwrap();
    let mut to: Vec<_> = r
        .deliveries(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.endpoint_id)
        .collect();
    to.sort();
    let mut expected = vec![plain.id.clone(), channeled.id.clone()];
    expected.sort();
    assert_eq!(to, expected);
    let (id, _) = r
        .send(&visit, r#"{"origin":"x"}"#, Some("Project"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.deliveries(&id).await.unwrap().len(), 1);

    // Validation: every violation with its path; nothing stored.
    let before = r
        .list_messages(&MessageFilter::default(), &ListOptions::new())
        .await
        .unwrap()
        .items
        .len();
    match r.send(&visit, r#"{"visit": 0}"#, None).await.unwrap_err() {
        Error::Schema(SchemaError::InvalidPayload { violations }) => {
            let paths: Vec<&str> = violations.iter().map(|v| v.path.as_str()).collect();
            assert_eq!(violations.len(), 2, "{violations:?}");
            assert!(
                paths.contains(&"/visit") && paths.contains(&""),
                "{paths:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        r.send(&visit, "{not json", None).await,
        Err(Error::Schema(SchemaError::NotJson { .. }))
    ));
    assert!(matches!(
        r.send(&visit, [0xff, 0xfe], None).await,
        Err(Error::Schema(SchemaError::NotJson { .. }))
    ));
    assert!(matches!(
        r.send(&visit, "{}", Some("bad channel")).await,
        Err(Error::InvalidChannel { .. })
    ));
    let huge = format!(
        r#"{{"origin":"{}"}}"#,
        "x".repeat(switchyard_webhooks::DEFAULT_MAX_PAYLOAD)
    );
    assert!(matches!(
        r.send(&visit, huge, None).await,
        Err(Error::PayloadTooLarge { .. })
    ));
    let after = r
        .list_messages(&MessageFilter::default(), &ListOptions::new())
        .await
        .unwrap()
        .items
        .len();
    assert_eq!(before, after);
    assert!(matches!(
        r.message("msg_2bWgqMTZbJKxRJvlsbgvjpvFbWS").await,
        Err(Error::MessageNotFound { .. })
    ));
    assert!(matches!(
        r.message("nope").await,
        Err(Error::InvalidId { .. })
    ));

    // create_message stores even without listeners.
    let other = name("other.event");
    r.create_event_type(other.clone(), "", json!({}))
        .await
        .unwrap();
    let stored = r.create_message(&other, "[]", None).await.unwrap();
    assert!(r.deliveries(&stored.id).await.unwrap().is_empty());
    assert_eq!(r.message(stored.id.as_str()).await.unwrap(), stored);
}

async fn rotation_grace_and_cap<S: Store>(h: Harness<S>) {
    let r = &h.registry;
    let endpoint = r
        .create_endpoint(EndpointSpec::new("https://a.example/"))
        .await
        .unwrap();
    let id = endpoint.id.as_str();
    let first = r.endpoint_secret(id).await.unwrap();
    r.rotate_secret(id, None).await.unwrap();
    let second = r.endpoint_secret(id).await.unwrap();
    assert_ne!(first, second);
    assert_eq!(
        r.live_keys(id).await.unwrap(),
        [second.clone(), first.clone()]
    );
    h.advance(Duration::from_secs(23 * 3600));
    assert_eq!(r.live_keys(id).await.unwrap().len(), 2);
    h.advance(Duration::from_secs(3600));
    assert_eq!(r.live_keys(id).await.unwrap(), [second]);

    // A message signed with the old key, then the key rotated: the endpoint's verifier takes
    // both the old and the new signature.
    let old = r.endpoint_secret(id).await.unwrap();
    let old_headers = Signer::new(old).headers("msg_1", 1_700_000_000, b"{}");
    r.rotate_secret(id, None).await.unwrap();
    let new_headers =
        Signer::new(r.endpoint_secret(id).await.unwrap()).headers("msg_1", 1_700_000_000, b"{}");
    let verifier = r.verifier(id).await.unwrap();
    assert!(
        verifier
            .verify_at(&old_headers, b"{}", 1_700_000_000)
            .is_ok()
    );
    assert!(
        verifier
            .verify_at(&new_headers, b"{}", 1_700_000_000)
            .is_ok()
    );

    for _ in 0..15 {
        r.rotate_secret(id, None).await.unwrap();
    }
    assert_eq!(
        r.live_keys(id).await.unwrap().len(),
        11,
        "current + 10 previous"
    );
    let given = Secret::generate().unwrap();
    r.rotate_secret(id, Some(given.clone())).await.unwrap();
    assert_eq!(r.endpoint_secret(id).await.unwrap(), given);
}

async fn pagination_is_complete_in_both_orders<S: Store>(h: Harness<S>) {
    let r = &h.registry;
    let ty = name("bulk.item");
    r.create_event_type(ty.clone(), "", json!({}))
        .await
        .unwrap();
    const COUNT: usize = 1200;
    let mut sent = Vec::with_capacity(COUNT);
    for i in 0..COUNT {
        if i % 400 == 0 {
            h.advance(Duration::from_secs(1));
        }
        let message = r
            .create_message(&ty, format!("{{\"i\":{i}}}"), None)
            .await
            .unwrap();
        sent.push(message.id);
    }
    assert!(
        sent.windows(2).all(|w| w[0] < w[1]),
        "ids are time-sortable"
    );
    // A time window: the messages made inside it, in full pages, whatever else is listed.
    let at = |i: usize| {
        let id = sent[i].clone();
        async move { r.message(id.as_str()).await.unwrap().created_at }
    };
    let (first_second, second_second) = (at(400).await, at(800).await);
    let window = |before: Option<chrono::DateTime<chrono::Utc>>,
                  after: Option<chrono::DateTime<chrono::Utc>>| {
        let filter = MessageFilter {
            before,
            after,
            ..MessageFilter::default()
        };
        async move {
            let mut all = Vec::new();
            let mut options = ListOptions::new().limit(250);
            loop {
                let page = r.list_messages(&filter, &options).await.unwrap();
                assert!(page.done || page.items.len() == 250, "pages are full");
                all.extend(page.items.iter().map(|m| m.id.clone()));
                if page.done {
                    break all;
                }
                options = options.iterator(page.iterator.unwrap());
            }
        }
    };
    let just_before = |t: chrono::DateTime<chrono::Utc>| t - chrono::Duration::microseconds(1);
    assert_eq!(window(Some(first_second), None).await, sent[..400]);
    assert_eq!(
        window(None, Some(just_before(second_second))).await,
        sent[800..]
    );
    assert_eq!(
        window(Some(second_second), Some(just_before(first_second))).await,
        sent[400..800]
    );
    assert!(
        window(Some(first_second), Some(second_second))
            .await
            .is_empty()
    );
    for order in [Order::Ascending, Order::Descending] {
        let mut seen = Vec::new();
        let mut options = ListOptions::new().limit(250).order(order);
        let mut pages = 0;
        let mut last_prev;
        loop {
            let page = r
                .list_messages(&MessageFilter::default(), &options)
                .await
                .unwrap();
            pages += 1;
            assert!(page.items.len() <= 250);
            last_prev = page.prev_iterator.clone();
            seen.extend(page.items.into_iter().map(|m| m.id));
            if page.done {
                break;
            }
            options = options.iterator(page.iterator.unwrap());
        }
        assert_eq!(pages, COUNT.div_ceil(250));
        let mut expected = sent.clone();
        if order == Order::Descending {
            expected.reverse();
        }
        assert_eq!(seen, expected);

        // Back from the last page with each page's `prev_iterator`: the same pages, each in
        // the list's order, down to the first.
        let last_page = COUNT - (COUNT - 1) / 250 * 250;
        let mut back = Vec::new();
        let mut prev = last_prev;
        loop {
            let page = r
                .list_messages(
                    &MessageFilter::default(),
                    &ListOptions::new()
                        .limit(250)
                        .order(order)
                        .iterator(prev.take().unwrap()),
                )
                .await
                .unwrap();
            let ids: Vec<_> = page.items.into_iter().map(|m| m.id).collect();
            back.splice(0..0, ids);
            if page.done {
                break;
            }
            prev = page.prev_iterator;
        }
        assert_eq!(back, expected[..COUNT - last_page]);
    }
    assert!(matches!(
        r.list_messages(
            &MessageFilter::default(),
            &ListOptions::new().iterator("bogus")
        )
        .await,
        Err(Error::InvalidId { .. })
    ));
    let filtered = r
        .list_messages(
            &MessageFilter {
                event_types: vec![name("no.such")],
                ..MessageFilter::default()
            },
            &ListOptions::new(),
        )
        .await
        .unwrap();
    assert!(filtered.items.is_empty() && filtered.done);
    // Several types: a message of any of them.
    let either = r
        .list_messages(
            &MessageFilter {
                event_types: vec![name("no.such"), ty.clone()],
                ..MessageFilter::default()
            },
            &ListOptions::new().limit(5),
        )
        .await
        .unwrap();
    assert_eq!(either.items.len(), 5);
}

/// Three endpoints for the visit type, then `messages` visits sent to all of them.
async fn sent_to_three_endpoints<S: Store>(h: &Harness<S>, messages: usize) {
    let r = &h.registry;
    let visit = with_visit_type(h).await;
    for i in 0..3 {
        r.create_endpoint(
            EndpointSpec::new(format!("https://{i}.example/")).event_type(visit.clone()),
        )
        .await
        .unwrap();
    }
    for _ in 0..messages {
        r.send(&visit, r#"{"origin":"o"}"#, None)
            .await
            .unwrap()
            .unwrap();
    }
}

async fn leases_are_exclusive_and_expire<S: Store>(h: Harness<S>) {
    let r = &h.registry;
    sent_to_three_endpoints(&h, 20).await;
    let now = h.now();
    let store = r.store();

    // Four concurrent workers drain 60 deliveries; each is leased exactly once.
    let drain = || async {
        let mut mine = Vec::new();
        loop {
            let batch = store
                .lease_deliveries(now, Duration::from_secs(30), 7)
                .await
                .unwrap();
            if batch.is_empty() {
                break mine;
            }
            mine.extend(batch);
            tokio::task::yield_now().await;
        }
    };
    let (w1, w2, w3, w4) = tokio::join!(drain(), drain(), drain(), drain());
    let leased: Vec<_> = [w1, w2, w3, w4].into_iter().flatten().collect();
    assert_eq!(leased.len(), 60);
    let mut keys: Vec<_> = leased
        .iter()
        .map(|l| {
            (
                l.delivery.message_id.clone(),
                l.delivery.endpoint_id.clone(),
            )
        })
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 60, "no delivery leased twice");

    // Finish one as succeeded: it is never leased again.
    let done = &leased[0];
    let update = DeliveryUpdate {
        status: DeliveryStatus::Succeeded,
        attempts: 1,
        next_attempt_at: now,
        attempt: None,
    };
    assert!(store.finish_delivery(done, &update).await.unwrap());
    assert!(
        !store.finish_delivery(done, &update).await.unwrap(),
        "lease already released"
    );

    // Reschedule one for later.
    let retry = &leased[1];
    let later = now + chrono::Duration::seconds(60);
    assert!(
        store
            .finish_delivery(
                retry,
                &DeliveryUpdate {
                    status: DeliveryStatus::Pending,
                    attempts: 1,
                    next_attempt_at: later,
                    attempt: None,
                }
            )
            .await
            .unwrap()
    );

    // Leases still live: nothing to take.
    assert!(
        store
            .lease_deliveries(now, Duration::from_secs(30), 100)
            .await
            .unwrap()
            .is_empty()
    );
    // 31 s later the 58 abandoned leases have expired and can be taken again; the retry is
    // not due yet and the success never comes back.
    let after = now + chrono::Duration::seconds(31);
    let again = store
        .lease_deliveries(after, Duration::from_secs(30), 100)
        .await
        .unwrap();
    assert_eq!(again.len(), 58);
    // The worker that held an expired lease can no longer report on it.
    let stale = leased
        .iter()
        .find(|l| {
            l.delivery.message_id == again[0].delivery.message_id
                && l.delivery.endpoint_id == again[0].delivery.endpoint_id
        })
        .unwrap();
    assert!(!store.finish_delivery(stale, &update).await.unwrap());
    let at_retry = store
        .lease_deliveries(later, Duration::from_secs(30), 100)
        .await
        .unwrap();
    assert_eq!(at_retry.len(), 1);
    assert_eq!(at_retry[0].delivery.attempts, 1);
    let statuses: Vec<_> = r
        .deliveries(&done.delivery.message_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.endpoint_id == done.delivery.endpoint_id)
        .map(|d| d.status)
        .collect();
    assert_eq!(statuses, [DeliveryStatus::Succeeded]);
}

/// A batch comes back short of its limit only when nothing more is due: the delivery engine
/// waits for new work after a short batch, so a store that stopped early would stall it.
async fn a_short_batch_means_nothing_more_is_due<S: Store>(h: Harness<S>) {
    let r = &h.registry;
    sent_to_three_endpoints(&h, 10).await;
    let store = r.store();
    let mut remaining = 30;
    while remaining > 0 {
        let batch = store
            .lease_deliveries(h.now(), Duration::from_secs(30), 4)
            .await
            .unwrap();
        assert!(
            batch.len() >= remaining.min(4),
            "{} leased with {remaining} due",
            batch.len()
        );
        remaining -= batch.len();
    }
    assert!(
        store
            .lease_deliveries(h.now(), Duration::from_secs(30), 4)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn deleting_an_endpoint_drops_its_pending_deliveries<S: Store>(h: Harness<S>) {
    let r = &h.registry;
    let visit = with_visit_type(&h).await;
    let a = r
        .create_endpoint(EndpointSpec::new("https://a.example/").event_type(visit.clone()))
        .await
        .unwrap();
    let b = r
        .create_endpoint(EndpointSpec::new("https://b.example/").event_type(visit.clone()))
        .await
        .unwrap();
    let (id, _) = r
        .send(&visit, r#"{"origin":"o"}"#, None)
        .await
        .unwrap()
        .unwrap();
    r.delete_endpoint(a.id.as_str()).await.unwrap();
    let left: Vec<_> = r
        .deliveries(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.endpoint_id)
        .collect();
    assert_eq!(left, [b.id]);
    let leases = r
        .store()
        .lease_deliveries(h.now(), Duration::from_secs(5), 10)
        .await
        .unwrap();
    assert_eq!(leases.len(), 1);
}

/// What a worker would record for an attempt on `lease` at `at`.
async fn attempt_for<S: Store>(
    h: &Harness<S>,
    lease: &Lease,
    status: AttemptStatus,
    code: u16,
    at: DateTime<Utc>,
) -> Attempt {
    let message = h
        .registry
        .message(lease.delivery.message_id.as_str())
        .await
        .unwrap();
    let endpoint = h
        .registry
        .endpoint(lease.delivery.endpoint_id.as_str())
        .await
        .unwrap();
    Attempt {
        id: AttemptId::generate(at.timestamp()).unwrap(),
        message_id: message.id.clone(),
        endpoint_id: endpoint.id.clone(),
        event_type: message.event_type.clone(),
        channels: message.channels.clone(),
        url: endpoint.url.clone(),
        status,
        response_status: code,
        response: format!("answer {code}"),
        headers: BTreeMap::from([("webhook-id".to_owned(), message.id.to_string())]).into(),
        duration: Duration::from_millis(12),
        trigger: lease.delivery.trigger,
        timestamp: at,
    }
}

async fn finish<S: Store>(
    h: &Harness<S>,
    lease: &Lease,
    status: DeliveryStatus,
    code: u16,
) -> Attempt {
    let now = h.now();
    let ok = status == DeliveryStatus::Succeeded;
    let attempt = attempt_for(
        h,
        lease,
        if ok {
            AttemptStatus::Success
        } else {
            AttemptStatus::Failed
        },
        code,
        now,
    )
    .await;
    let update = DeliveryUpdate {
        status,
        attempts: lease.delivery.attempts + 1,
        next_attempt_at: now + chrono::Duration::seconds(5),
        attempt: Some(attempt.clone()),
    };
    assert!(
        h.registry
            .store()
            .finish_delivery(lease, &update)
            .await
            .unwrap()
    );
    attempt
}

async fn application_tokens_expire_and_are_revoked<S: Store>(h: Harness<S>) {
    let r = &h.registry;
    let app = r
        .create_application(ApplicationSpec::new("portal").uid("portal").unwrap())
        .await
        .unwrap();
    let (token, record) = r
        .issue_access_token("portal", Duration::from_secs(60), true)
        .await
        .unwrap();
    assert_eq!(record.app, app.id);
    assert!(record.read_only);
    assert!(token.expose().starts_with("appsk_"));
    assert_eq!(r.access_token(token.expose()).await.unwrap(), Some(record));
    assert_eq!(r.access_token("appsk_nothing").await.unwrap(), None);
    assert_eq!(
        r.access_token(&format!("appsk_{}", "A".repeat(43)))
            .await
            .unwrap(),
        None
    );
    // It expires.
    h.advance(Duration::from_secs(61));
    assert_eq!(r.access_token(token.expose()).await.unwrap(), None);
    assert_eq!(r.store().purge_access_tokens(h.now()).await.unwrap(), 1);
    // It is revoked.
    let (second, _) = r
        .issue_access_token(app.id.as_str(), Duration::from_secs(60), false)
        .await
        .unwrap();
    assert!(r.access_token(second.expose()).await.unwrap().is_some());
    assert!(r.revoke_access_token(second.expose()).await.unwrap());
    assert!(!r.revoke_access_token(second.expose()).await.unwrap());
    assert_eq!(r.access_token(second.expose()).await.unwrap(), None);
    // It goes with its application.
    let (third, _) = r
        .issue_access_token("portal", Duration::from_secs(60), false)
        .await
        .unwrap();
    r.delete_application("portal").await.unwrap();
    assert_eq!(r.access_token(third.expose()).await.unwrap(), None);
    // None for the default application, or one that does not exist.
    for missing in [AppId::default_app().as_str(), "nobody"] {
        assert!(matches!(
            r.issue_access_token(missing, Duration::from_secs(60), false)
                .await,
            Err(Error::ApplicationNotFound { .. })
        ));
    }
}

async fn idempotency_keys_claim_remember_and_expire<S: Store>(h: Harness<S>) {
    let store = h.registry.store();
    let t0 = h.now();
    let hold = t0 + chrono::Duration::seconds(30);
    assert_eq!(
        store.idempotency_begin("k1", t0, hold).await.unwrap(),
        IdempotencyClaim::Claimed
    );
    assert_eq!(
        store.idempotency_begin("k1", t0, hold).await.unwrap(),
        IdempotencyClaim::Running,
        "claimed by the first"
    );
    let response = RememberedResponse {
        status: 202,
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        body: br#"{"id": "msg_1"}"#.to_vec(),
    };
    let expires = t0 + chrono::Duration::hours(12);
    store
        .idempotency_finish("k1", &response, expires)
        .await
        .unwrap();
    assert_eq!(
        store.idempotency_begin("k1", t0, hold).await.unwrap(),
        IdempotencyClaim::Done(response.clone())
    );
    // Released (the request failed): the next one claims it.
    store.idempotency_begin("k2", t0, hold).await.unwrap();
    store.idempotency_release("k2").await.unwrap();
    assert_eq!(
        store.idempotency_begin("k2", t0, hold).await.unwrap(),
        IdempotencyClaim::Claimed
    );
    // Releasing does not forget a finished response.
    store.idempotency_release("k1").await.unwrap();
    assert!(matches!(
        store.idempotency_begin("k1", t0, hold).await.unwrap(),
        IdempotencyClaim::Done(_)
    ));
    // A claim that ran out is taken over; a response that expired is forgotten.
    let later = hold + chrono::Duration::seconds(1);
    assert_eq!(
        store
            .idempotency_begin("k2", later, later + chrono::Duration::seconds(30))
            .await
            .unwrap(),
        IdempotencyClaim::Claimed
    );
    let after_expiry = expires + chrono::Duration::seconds(1);
    assert_eq!(
        store
            .idempotency_begin("k1", after_expiry, after_expiry)
            .await
            .unwrap(),
        IdempotencyClaim::Claimed
    );
    store.idempotency_begin("k3", t0, hold).await.unwrap();
    let purged = store
        .purge_idempotency(after_expiry + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(purged, 3, "k1's and k2's claims ran out, and k3's");
    assert_eq!(
        store.idempotency_begin("k3", t0, hold).await.unwrap(),
        IdempotencyClaim::Claimed
    );
}

async fn attempts_by_id_counted_and_expunged<S: Store>(h: Harness<S>) {
    let r = &h.registry;
    let visit = with_visit_type(&h).await;
    let endpoint = r
        .create_endpoint(EndpointSpec::new("https://a.example/").event_type(visit.clone()))
        .await
        .unwrap();
    let other = r
        .create_endpoint(EndpointSpec::new("https://b.example/").event_type(visit.clone()))
        .await
        .unwrap();
    let t0 = h.now();
    let (first, _) = r
        .send(&visit, br#"{"origin": "one"}"#, None)
        .await
        .unwrap()
        .unwrap();
    let (second, _) = r
        .send(&visit, br#"{"origin": "two"}"#, None)
        .await
        .unwrap()
        .unwrap();
    let leases = r
        .store()
        .lease_deliveries(h.now(), Duration::from_secs(30), 10)
        .await
        .unwrap();
    assert_eq!(leases.len(), 4);
    h.advance(Duration::from_secs(5));
    let mut recorded = Vec::new();
    for lease in &leases {
        let failed =
            lease.delivery.endpoint_id == endpoint.id && lease.delivery.message_id == second;
        let status = if failed {
            DeliveryStatus::Pending
        } else {
            DeliveryStatus::Succeeded
        };
        recorded.push(finish(&h, lease, status, if failed { 500 } else { 200 }).await);
    }
    let app = r.default_app();

    // By id, within its message only.
    let one = recorded.iter().find(|a| a.message_id == first).unwrap();
    let found = app.attempt(first.as_str(), one.id.as_str()).await.unwrap();
    assert_eq!(&found, one);
    assert!(matches!(
        app.attempt(second.as_str(), one.id.as_str()).await,
        Err(Error::AttemptNotFound { .. })
    ));
    assert!(matches!(
        app.attempt(first.as_str(), "atmpt_2lO1MQKQnkMVmGfSAMNLDEtmoaX")
            .await,
        Err(Error::AttemptNotFound { .. })
    ));

    // Counted by how they ended, in a window.
    let now = h.now();
    let counts = app
        .attempt_counts(endpoint.id.as_str(), t0, now + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!((counts.success, counts.failed, counts.pending), (1, 1, 0));
    let others = app
        .attempt_counts(other.id.as_str(), t0, now + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!((others.success, others.failed), (2, 0));
    let before = app
        .attempt_counts(endpoint.id.as_str(), t0, t0)
        .await
        .unwrap();
    assert_eq!(before, Default::default(), "an empty window");

    // The response body of one attempt emptied; the others keep theirs.
    app.expunge_response(first.as_str(), one.id.as_str())
        .await
        .unwrap();
    assert_eq!(
        app.attempt(first.as_str(), one.id.as_str())
            .await
            .unwrap()
            .response,
        ""
    );
    let kept = recorded.iter().find(|a| a.message_id == second).unwrap();
    assert_eq!(
        app.attempt(second.as_str(), kept.id.as_str())
            .await
            .unwrap()
            .response,
        kept.response
    );

    // A message's payload expunged: it lists, expired, and its pending delivery is dropped.
    app.expunge_payload(second.as_str()).await.unwrap();
    let expunged = r.message(second.as_str()).await.unwrap();
    assert!(expunged.expired);
    assert_eq!(expunged.payload, "");
    assert!(!r.message(first.as_str()).await.unwrap().expired);
    assert!(matches!(
        app.expunge_payload("msg_2lO1MQKQnkMVmGfSAMNLDEtmoaX").await,
        Err(Error::MessageNotFound { .. })
    ));

    // Another application sees none of it.
    let elsewhere = r
        .create_application(ApplicationSpec::new("elsewhere"))
        .await
        .unwrap();
    let elsewhere = r.app(elsewhere.id.as_str()).await.unwrap();
    assert!(
        elsewhere
            .attempt(first.as_str(), one.id.as_str())
            .await
            .is_err()
    );
    assert!(elsewhere.expunge_payload(first.as_str()).await.is_err());
    assert!(!r.message(first.as_str()).await.unwrap().expired);
}

async fn attempts_are_recorded_listed_and_become_sent_events<S: Store>(h: Harness<S>) {
    let r = &h.registry;
    let visit = with_visit_type(&h).await;
    let plain = r
        .create_endpoint(EndpointSpec::new("https://a.example/").event_type(visit.clone()))
        .await
        .unwrap();
    let channeled = r
        .create_endpoint(
            EndpointSpec::new("https://b.example/")
                .event_type(visit.clone())
                .channel("blue")
                .unwrap(),
        )
        .await
        .unwrap();
    let t0 = h.now();
    let (first, _) = r
        .send(&visit, br#"{"origin": "one"}"#, Some("blue"))
        .await
        .unwrap()
        .unwrap();
    h.advance(Duration::from_secs(10));
    let (second, _) = r
        .send(&visit, br#"{"origin":  "two"}"#, None)
        .await
        .unwrap()
        .unwrap();
    let store = r.store();
    let leases = store
        .lease_deliveries(h.now(), Duration::from_secs(30), 10)
        .await
        .unwrap();
    assert_eq!(
        leases.len(),
        3,
        "two for the blue message, one for the other"
    );
    h.advance(Duration::from_secs(10));
    let mut recorded = Vec::new();
    for lease in &leases {
        let (status, code) = if lease.delivery.endpoint_id == channeled.id {
            (DeliveryStatus::Pending, 500)
        } else {
            (DeliveryStatus::Succeeded, 204)
        };
        recorded.push(finish(&h, lease, status, code).await);
    }
    let t_attempts = h.now();

    // Every filter narrows as documented.
    let all = r
        .list_attempts(&AttemptFilter::default(), &ListOptions::default())
        .await
        .unwrap();
    assert_eq!(all.items.len(), 3);
    assert_eq!(
        all.items[0],
        recorded
            .iter()
            .min_by_key(|a| a.id.clone())
            .unwrap()
            .clone()
    );
    let by = |filter: AttemptFilter| async move {
        r.list_attempts(&filter, &ListOptions::default())
            .await
            .unwrap()
            .items
    };
    assert_eq!(
        by(AttemptFilter {
            endpoint: Some(plain.id.clone()),
            ..Default::default()
        })
        .await
        .len(),
        2
    );
    assert_eq!(
        by(AttemptFilter {
            message: Some(first.clone()),
            ..Default::default()
        })
        .await
        .len(),
        2
    );
    let blue = Channel::new("blue").unwrap();
    assert_eq!(
        by(AttemptFilter {
            channel: Some(blue.clone()),
            ..Default::default()
        })
        .await
        .len(),
        2
    );
    for (range, count) in [(500..=599, 1), (200..=299, 2), (0..=99, 0)] {
        assert_eq!(
            by(AttemptFilter {
                response_status: Some(range.clone()),
                ..Default::default()
            })
            .await
            .len(),
            count,
            "{range:?}"
        );
    }
    let unknown = EventTypeName::new("no.such").unwrap();
    for (types, count) in [
        (vec![unknown.clone()], 0),
        (vec![unknown, visit.clone()], 3),
    ] {
        assert_eq!(
            by(AttemptFilter {
                event_types: types,
                ..Default::default()
            })
            .await
            .len(),
            count
        );
    }
    let failed = by(AttemptFilter {
        status: Some(AttemptStatus::Failed),
        ..Default::default()
    })
    .await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].endpoint_id, channeled.id);
    assert_eq!(failed[0].response_status, 500);
    assert_eq!(failed[0].duration, Duration::from_millis(12));
    assert_eq!(failed[0].trigger, AttemptTrigger::Scheduled);
    assert!(
        by(AttemptFilter {
            before: Some(t_attempts),
            ..Default::default()
        })
        .await
        .is_empty()
    );
    assert_eq!(
        by(AttemptFilter {
            after: Some(t0),
            ..Default::default()
        })
        .await
        .len(),
        3
    );

    // Sent events: the seed's two listings, newest first, with the payload bytes as sent.
    let for_plain = r
        .sent_events_for_endpoint(plain.id.as_str(), &SentEventQuery::default())
        .await
        .unwrap();
    assert_eq!(for_plain.len(), 2);
    assert!(for_plain[0].timestamp >= for_plain[1].timestamp);
    let two = for_plain.iter().find(|e| e.message_id == second).unwrap();
    assert_eq!(two.payload, r#"{"origin":  "two"}"#);
    assert_eq!(two.endpoint_url, "https://a.example/");
    assert_eq!(two.response_status_code, 204);
    assert_eq!(two.headers.get("webhook-id"), Some(second.as_str()));
    assert_eq!(two.payload_json().unwrap()["origin"], "two");
    let limited = r
        .sent_events_for_endpoint(
            plain.id.as_str(),
            &SentEventQuery {
                limit: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(limited.len(), 1);
    let on_blue = r
        .sent_events_for_event_type(&visit, Some("blue"), &SentEventQuery::default())
        .await
        .unwrap();
    assert_eq!(on_blue.len(), 2);
    assert!(
        on_blue
            .iter()
            .all(|e| e.message_id == first && e.channel == Some(blue.clone()))
    );
    let of_type = r
        .sent_events_for_event_type(&visit, None, &SentEventQuery::default())
        .await
        .unwrap();
    assert_eq!(of_type.len(), 3);
    assert!(matches!(
        r.sent_events_for_endpoint("nobody", &SentEventQuery::default())
            .await,
        Err(Error::EndpointNotFound { .. })
    ));
    assert!(matches!(
        r.sent_events_for_event_type(&name("no.such"), None, &SentEventQuery::default())
            .await,
        Err(Error::EventTypeNotFound { .. })
    ));
}

async fn a_lost_lease_still_records_its_attempt<S: Store>(h: Harness<S>) {
    let r = &h.registry;
    let visit = with_visit_type(&h).await;
    let endpoint = r
        .create_endpoint(EndpointSpec::new("https://a.example/").event_type(visit.clone()))
        .await
        .unwrap();
    let (message, _) = r
        .send(&visit, br#"{"origin": "x"}"#, None)
        .await
        .unwrap()
        .unwrap();
    let store = r.store();
    let lease = store
        .lease_deliveries(h.now(), Duration::from_secs(30), 10)
        .await
        .unwrap()
        .pop()
        .unwrap();
    // Someone resends while the worker is on the wire: the lease is revoked.
    r.resend(message.as_str(), endpoint.id.as_str())
        .await
        .unwrap();
    let attempt = attempt_for(&h, &lease, AttemptStatus::Success, 200, h.now()).await;
    let update = DeliveryUpdate {
        status: DeliveryStatus::Succeeded,
        attempts: 1,
        next_attempt_at: h.now(),
        attempt: Some(attempt),
    };
    assert!(!store.finish_delivery(&lease, &update).await.unwrap());
    // The request happened, so the attempt is on record; the resend is still pending.
    let attempts = r
        .list_attempts(&AttemptFilter::default(), &ListOptions::default())
        .await
        .unwrap();
    assert_eq!(attempts.items.len(), 1);
    let delivery = &r.deliveries(&message).await.unwrap()[0];
    assert_eq!(delivery.status, DeliveryStatus::Pending);
    assert_eq!(delivery.trigger, AttemptTrigger::Manual);
}

/// `messages` messages sent to three endpoints, and every one of their deliveries leased.
async fn leased_from_three_endpoints<S: Store>(
    h: &Harness<S>,
    messages: usize,
) -> (DateTime<Utc>, Vec<Lease>) {
    sent_to_three_endpoints(h, messages).await;
    let now = h.now();
    let leases = h
        .registry
        .store()
        .lease_deliveries(now, Duration::from_secs(30), 100)
        .await
        .unwrap();
    assert_eq!(leases.len(), 3 * messages);
    (now, leases)
}

/// Attempts list in the order they were recorded, whatever their ids say, page by page in
/// both orders and filtered by endpoint; a cursor naming no attempt lists nothing.
async fn attempts_list_in_the_order_recorded<S: Store>(h: Harness<S>) {
    let r = &h.registry;
    let store = r.store();
    let (now, leases) = leased_from_three_endpoints(&h, 2).await;
    let mut attempts = Vec::new();
    for lease in &leases {
        attempts.push(attempt_for(&h, lease, AttemptStatus::Success, 200, now).await);
    }
    // Recorded one at a time, newest id first.
    let mut recorded = Vec::new();
    for (lease, attempt) in leases.iter().zip(attempts).rev() {
        recorded.push(attempt.id.clone());
        let update = DeliveryUpdate {
            status: DeliveryStatus::Succeeded,
            attempts: 1,
            next_attempt_at: now,
            attempt: Some(attempt),
        };
        assert!(store.finish_delivery(lease, &update).await.unwrap());
    }
    for order in [Order::Ascending, Order::Descending] {
        let mut listed = Vec::new();
        let mut options = ListOptions::new().limit(4).order(order);
        loop {
            let page = r
                .list_attempts(&AttemptFilter::default(), &options)
                .await
                .unwrap();
            listed.extend(page.items.into_iter().map(|a| a.id));
            match page.iterator {
                Some(iterator) if !page.done => options = options.iterator(iterator),
                _ => break,
            }
        }
        let mut expected = recorded.clone();
        if order == Order::Descending {
            expected.reverse();
        }
        assert_eq!(listed, expected, "{order:?}");
    }
    let endpoint = leases[0].delivery.endpoint_id.clone();
    let filter = AttemptFilter {
        endpoint: Some(endpoint.clone()),
        ..AttemptFilter::default()
    };
    let mine: Vec<_> = r
        .list_attempts(&filter, &ListOptions::new())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|a| (a.endpoint_id, a.id))
        .collect();
    let expected: Vec<_> = recorded
        .iter()
        .zip(leases.iter().rev())
        .filter(|(_, lease)| lease.delivery.endpoint_id == endpoint)
        .map(|(id, _)| (endpoint.clone(), id.clone()))
        .collect();
    assert_eq!(mine, expected);
    let unknown = AttemptId::generate(now.timestamp()).unwrap();
    let page = store
        .list_attempts(
            &AppId::default_app(),
            &AttemptFilter::default(),
            &PageRequest {
                after: Some(unknown.to_string()),
                order: Order::Ascending,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert!(page.is_empty());
}

/// One `finish_deliveries` call mixing postponements (no attempt), successes and failures:
/// every attempt is recorded once, with its own headers, and every delivery gets its own
/// outcome.
async fn a_batch_of_mixed_outcomes_records_each_its_own<S: Store>(h: Harness<S>) {
    let r = &h.registry;
    let store = r.store();
    let (now, leases) = leased_from_three_endpoints(&h, 4).await;
    let later = now + chrono::Duration::seconds(5);
    let mut items = Vec::new();
    let mut expected = BTreeMap::new();
    for (n, lease) in leases.iter().enumerate() {
        let key = (
            lease.delivery.message_id.clone(),
            lease.delivery.endpoint_id.clone(),
        );
        let update = match n % 3 {
            // Postponed: no request was made.
            0 => DeliveryUpdate {
                status: DeliveryStatus::Pending,
                attempts: 0,
                next_attempt_at: later,
                attempt: None,
            },
            outcome => {
                let (status, code, delivery) = if outcome == 1 {
                    (AttemptStatus::Success, 200, DeliveryStatus::Succeeded)
                } else {
                    (AttemptStatus::Failed, 500, DeliveryStatus::Pending)
                };
                let mut attempt = attempt_for(&h, lease, status, code, now).await;
                attempt.headers.insert("x-n".to_owned(), n.to_string());
                expected.insert(attempt.id.to_string(), (key.clone(), n, status));
                DeliveryUpdate {
                    status: delivery,
                    attempts: 1,
                    next_attempt_at: if outcome == 1 { now } else { later },
                    attempt: Some(attempt),
                }
            }
        };
        items.push((lease.clone(), update));
    }
    let finished = store
        .finish_deliveries(items, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(finished.held, vec![true; 12]);

    let mut options = ListOptions::new();
    options.limit = Some(100);
    let attempts = r
        .list_attempts(&AttemptFilter::default(), &options)
        .await
        .unwrap()
        .items;
    assert_eq!(attempts.len(), expected.len());
    for attempt in &attempts {
        let ((message, endpoint), n, status) = &expected[attempt.id.as_str()];
        assert_eq!(
            (&attempt.message_id, &attempt.endpoint_id),
            (message, endpoint)
        );
        assert_eq!(attempt.status, *status);
        assert_eq!(
            attempt.headers.get("x-n"),
            Some(n.to_string().as_str()),
            "{}",
            attempt.id
        );
    }
    for (n, lease) in leases.iter().enumerate() {
        let delivery = r
            .deliveries(&lease.delivery.message_id)
            .await
            .unwrap()
            .into_iter()
            .find(|d| d.endpoint_id == lease.delivery.endpoint_id)
            .unwrap();
        let (status, attempts) = match n % 3 {
            0 => (DeliveryStatus::Pending, 0),
            1 => (DeliveryStatus::Succeeded, 1),
            _ => (DeliveryStatus::Pending, 1),
        };
        assert_eq!(
            (delivery.status, delivery.attempts),
            (status, attempts),
            "{n}"
        );
    }
    // Only the postponed and the failed come back, when due.
    let again = store
        .lease_deliveries(later, Duration::from_secs(30), 100)
        .await
        .unwrap();
    assert_eq!(again.len(), 8);
}

async fn attempts_are_counted_by_span<S: Store>(h: Harness<S>) {
    let r = &h.registry;
    let visit = with_visit_type(&h).await;
    let endpoint = r
        .create_endpoint(EndpointSpec::new("https://a.example/").event_type(visit.clone()))
        .await
        .unwrap();
    let t0 = h.now();
    for i in 0..3 {
        r.send(&visit, format!(r#"{{"origin": "o{i}"}}"#), None)
            .await
            .unwrap();
    }
    let leases = r
        .store()
        .lease_deliveries(h.now(), Duration::from_secs(300), 10)
        .await
        .unwrap();
    assert_eq!(leases.len(), 3);
    // One attempt in each ten seconds: a success, a failure, a success.
    for (lease, (status, code)) in leases.iter().zip([
        (DeliveryStatus::Succeeded, 200),
        (DeliveryStatus::Pending, 500),
        (DeliveryStatus::Succeeded, 204),
    ]) {
        h.advance(Duration::from_secs(5));
        finish(&h, lease, status, code).await;
        h.advance(Duration::from_secs(5));
    }
    let app = r.default_app();
    let id = endpoint.id.as_str();
    let until = t0 + chrono::Duration::seconds(30);
    let spans = app.attempt_histogram(id, t0, until, 3).await.unwrap();
    let shape: Vec<(u64, u64)> = spans.iter().map(|c| (c.success, c.failed)).collect();
    assert_eq!(shape, [(1, 0), (0, 1), (1, 0)]);
    // One span is the counts; six split each ten seconds in two halves.
    let one = app.attempt_histogram(id, t0, until, 1).await.unwrap();
    assert_eq!(one, [app.attempt_counts(id, t0, until).await.unwrap()]);
    let six = app.attempt_histogram(id, t0, until, 6).await.unwrap();
    let shape: Vec<(u64, u64)> = six.iter().map(|c| (c.success, c.failed)).collect();
    assert_eq!(shape, [(0, 0), (1, 0), (0, 0), (0, 1), (0, 0), (1, 0)]);
    // Bounded: no more than the most spans; an empty window has none.
    let many = app
        .attempt_histogram(id, t0, until, u32::MAX)
        .await
        .unwrap();
    assert_eq!(
        many.len(),
        switchyard_webhooks::MAX_HISTOGRAM_BUCKETS as usize
    );
    assert_eq!(many.iter().map(|c| c.success + c.failed).sum::<u64>(), 3);
    assert!(
        app.attempt_histogram(id, until, t0, 3)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        app.attempt_histogram("nobody", t0, until, 3).await,
        Err(Error::EndpointNotFound { .. })
    ));
}

async fn resend_and_recover<S: Store>(h: Harness<S>) {
    let r = &h.registry;
    let visit = with_visit_type(&h).await;
    let flaky = r
        .create_endpoint(EndpointSpec::new("https://a.example/").event_type(visit.clone()))
        .await
        .unwrap();
    let mut messages = Vec::new();
    for i in 0..3 {
        let body = format!(r#"{{"origin": "o{i}"}}"#);
        messages.push(r.send(&visit, body, None).await.unwrap().unwrap().0);
        h.advance(Duration::from_secs(60));
    }
    let since = h.now() - chrono::Duration::seconds(150); // after the first message
    let store = r.store();
    for lease in store
        .lease_deliveries(h.now(), Duration::from_secs(30), 10)
        .await
        .unwrap()
    {
        finish(&h, &lease, DeliveryStatus::Exhausted, 500).await;
    }
    // Recover queues the exhausted deliveries of messages sent since then (and before
    // `until`, when given), and only those.
    let until = h.now() - chrono::Duration::seconds(90); // after the second message
    assert_eq!(
        r.default_app()
            .recover_between(flaky.id.as_str(), since, Some(until))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        r.deliveries(&messages[2]).await.unwrap()[0].status,
        DeliveryStatus::Exhausted,
        "the third was sent after `until`"
    );
    assert_eq!(r.recover(flaky.id.as_str(), since).await.unwrap(), 1);
    for (i, message) in messages.iter().enumerate() {
        let delivery = &r.deliveries(message).await.unwrap()[0];
        if i == 0 {
            assert_eq!(delivery.status, DeliveryStatus::Exhausted);
        } else {
            assert_eq!(delivery.status, DeliveryStatus::Pending);
            assert_eq!(delivery.attempts, 0, "a fresh schedule");
            assert_eq!(delivery.trigger, AttemptTrigger::Manual);
            assert_eq!(delivery.next_attempt_at, h.now());
        }
    }
    // The manual attempt is recorded as manual; the retries after it are scheduled again.
    let lease = store
        .lease_deliveries(h.now(), Duration::from_secs(30), 1)
        .await
        .unwrap()
        .pop()
        .unwrap();
    let attempt = finish(&h, &lease, DeliveryStatus::Pending, 503).await;
    assert_eq!(attempt.trigger, AttemptTrigger::Manual);
    let delivery = &r.deliveries(&lease.delivery.message_id).await.unwrap()[0];
    assert_eq!(delivery.trigger, AttemptTrigger::Scheduled);

    // Resend reaches an endpoint that was not a recipient when the message was sent.
    let late = r
        .create_endpoint(EndpointSpec::new("https://late.example/"))
        .await
        .unwrap();
    r.resend(messages[0].as_str(), late.id.as_str())
        .await
        .unwrap();
    let deliveries = r.deliveries(&messages[0]).await.unwrap();
    assert_eq!(deliveries.len(), 2);
    assert!(deliveries.iter().any(|d| d.endpoint_id == late.id
        && d.status == DeliveryStatus::Pending
        && d.trigger == AttemptTrigger::Manual));
    assert!(matches!(
        r.resend(messages[0].as_str(), "nobody").await,
        Err(Error::EndpointNotFound { .. })
    ));
    assert!(matches!(
        r.recover("nobody", since).await,
        Err(Error::EndpointNotFound { .. })
    ));
}

async fn failing_endpoints_are_disabled_and_recover<S: Store>(h: Harness<S>) {
    let r = &h.registry;
    let store = r.store();
    let endpoint = r
        .create_endpoint(EndpointSpec::new("https://a.example/"))
        .await
        .unwrap();
    let id = &endpoint.id;
    let limit = Duration::from_secs(5 * 24 * 3600);
    assert_eq!(
        store.record_health(id, true, h.now(), limit).await.unwrap(),
        HealthChange::Unchanged
    );
    let app = r.default_app();
    let since = || app.failing_since(id.as_str());
    assert_eq!(since().await.unwrap(), None, "healthy");
    let began = h.now();
    assert_eq!(
        store.record_health(id, false, began, limit).await.unwrap(),
        HealthChange::Unchanged
    );
    assert_eq!(since().await.unwrap(), Some(began));
    // Another application's scope does not see it.
    let other = r
        .create_application(ApplicationSpec::new("other"))
        .await
        .unwrap();
    assert_eq!(store.failing_since(&other.id, id).await.unwrap(), None);
    // A success in between resets the clock.
    h.advance(Duration::from_secs(4 * 24 * 3600));
    assert_eq!(
        store.record_health(id, true, h.now(), limit).await.unwrap(),
        HealthChange::Recovered {
            failing_since: began
        }
    );
    assert_eq!(since().await.unwrap(), None, "recovered");
    let began = h.now();
    store.record_health(id, false, began, limit).await.unwrap();
    h.advance(Duration::from_secs(5 * 24 * 3600));
    assert_eq!(
        store
            .record_health(id, false, h.now(), limit)
            .await
            .unwrap(),
        HealthChange::Unchanged,
        "exactly the threshold is not longer than it"
    );
    h.advance(Duration::from_secs(1));
    assert_eq!(
        store
            .record_health(id, false, h.now(), limit)
            .await
            .unwrap(),
        HealthChange::Disabled {
            failing_since: began
        }
    );
    assert!(r.endpoint(id.as_str()).await.unwrap().disabled);
    assert_eq!(
        since().await.unwrap(),
        Some(began),
        "disabled, still failing"
    );
    // Reported once.
    assert_eq!(
        store
            .record_health(id, false, h.now(), limit)
            .await
            .unwrap(),
        HealthChange::Unchanged
    );
    // Turning it back on starts the clock afresh.
    let record = store
        .endpoint(&AppId::default_app(), id)
        .await
        .unwrap()
        .unwrap();
    let mut enabled = record.clone();
    enabled.endpoint.disabled = false;
    store.put_endpoint(&enabled).await.unwrap();
    assert_eq!(
        store
            .record_health(id, false, h.now(), limit)
            .await
            .unwrap(),
        HealthChange::Unchanged
    );
    assert!(!r.endpoint(id.as_str()).await.unwrap().disabled);
}

async fn expired_payloads_still_list<S: Store>(h: Harness<S>) {
    let r = &h.registry;
    let visit = with_visit_type(&h).await;
    let old = r
        .create_message(&visit, br#"{"origin": "old"}"#, None)
        .await
        .unwrap();
    h.advance(Duration::from_secs(100));
    let new = r
        .create_message(&visit, br#"{"origin": "new"}"#, None)
        .await
        .unwrap();
    let purged = r
        .store()
        .purge_payloads(h.now() - chrono::Duration::seconds(50))
        .await
        .unwrap();
    assert_eq!(purged, 1);
    let old = r.message(old.id.as_str()).await.unwrap();
    assert!(old.expired);
    assert!(old.payload.is_empty());
    let new = r.message(new.id.as_str()).await.unwrap();
    assert!(!new.expired);
    assert_eq!(new.payload, r#"{"origin": "new"}"#);
    let listed = r
        .list_messages(&MessageFilter::default(), &ListOptions::default())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 2);
    h.advance(Duration::from_secs(1));
    assert_eq!(
        r.store().purge_payloads(h.now()).await.unwrap(),
        1,
        "already expired ones are not counted again"
    );
}

async fn ordered_endpoints_get_one_message_at_a_time<S: Store>(h: Harness<S>) {
    let r = &h.registry;
    let visit = with_visit_type(&h).await;
    let ordered = r
        .create_endpoint(
            EndpointSpec::new("https://ordered.example/")
                .event_type(visit.clone())
                .ordered(true)
                .rate_limit(NonZeroU32::new(5).unwrap()),
        )
        .await
        .unwrap();
    assert!(ordered.ordered);
    assert_eq!(ordered.rate_limit, NonZeroU32::new(5));
    let free = r
        .create_endpoint(EndpointSpec::new("https://free.example/").event_type(visit.clone()))
        .await
        .unwrap();
    let mut sent = Vec::new();
    for i in 0..4 {
        let body = format!(r#"{{"origin": "o{i}"}}"#);
        sent.push(r.send(&visit, body, None).await.unwrap().unwrap().0);
    }
    let store = r.store();
    let take = |limit| store.lease_deliveries(h.now(), Duration::from_secs(30), limit);
    let leases = take(100).await.unwrap();
    let to_ordered: Vec<_> = leases
        .iter()
        .filter(|l| l.delivery.endpoint_id == ordered.id)
        .collect();
    let to_free = leases
        .iter()
        .filter(|l| l.delivery.endpoint_id == free.id)
        .count();
    assert_eq!(to_free, 4, "an unordered endpoint gets everything at once");
    assert_eq!(
        to_ordered.len(),
        1,
        "an ordered one gets the first message only"
    );
    assert_eq!(to_ordered[0].delivery.message_id, sent[0]);
    let first = to_ordered[0].clone();
    // A retry keeps the line: nothing else goes while the first is pending.
    finish(&h, &first, DeliveryStatus::Pending, 500).await;
    h.advance(Duration::from_secs(1));
    assert!(take(100).await.unwrap().is_empty());
    // Once it is exhausted (or succeeded), the next one goes.
    h.advance(Duration::from_secs(10));
    let retry = take(100).await.unwrap();
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].delivery.message_id, sent[0]);
    finish(&h, &retry[0], DeliveryStatus::Exhausted, 500).await;
    let next = take(100).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].delivery.message_id, sent[1]);
    // Settings survive a reload.
    let reloaded = r.endpoint(ordered.id.as_str()).await.unwrap();
    assert!(reloaded.ordered);
    assert_eq!(reloaded.rate_limit, NonZeroU32::new(5));
}

/// Sends made at the same time (which the SQLite store writes as one batch) each store their
/// message, exact payload and deliveries.
async fn concurrent_sends_each_store_their_message<S: Store>(h: Harness<S>) {
    let r = &h.registry;
    let visit = with_visit_type(&h).await;
    let mut endpoints = Vec::new();
    for i in 0..3 {
        let spec =
            EndpointSpec::new(format!("https://example.org/hook/{i}")).event_type(visit.clone());
        endpoints.push(r.create_endpoint(spec).await.unwrap().id);
    }
    endpoints.sort();
    let sender = |n: usize| {
        let visit = visit.clone();
        async move {
            let mut sent = Vec::new();
            for i in 0..5 {
                let payload = format!("{{\"origin\": \"o-{n}-{i}\",  \"visit\": {}}}", i + 1);
                let (id, _) = r.send(&visit, &payload, None).await.unwrap().unwrap();
                sent.push((id, payload));
            }
            sent
        }
    };
    let (a, b, c, d, e, f, g, k) = tokio::join!(
        sender(0),
        sender(1),
        sender(2),
        sender(3),
        sender(4),
        sender(5),
        sender(6),
        sender(7)
    );
    let sent: Vec<_> = [a, b, c, d, e, f, g, k].into_iter().flatten().collect();
    assert_eq!(sent.len(), 40);
    for (id, payload) in sent {
        let message = r.message(id.as_str()).await.unwrap();
        assert_eq!(message.payload, payload);
        let mut to: Vec<_> = r
            .deliveries(&id)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.endpoint_id)
            .collect();
        to.sort();
        assert_eq!(to, endpoints, "deliveries of {id}");
    }
}

/// Svix's message rules by default: an event type nobody registered is taken (and reaches
/// the endpoints that take every type), a registered one still has its payloads checked, and
/// the sender's event id is kept. `send` (swh-webhooks' `event_send`) still refuses unknown
/// types.
async fn a_message_goes_to_several_channels<S: Store>(h: Harness<S>) {
    let r = &h.registry;
    let visit = with_visit_type(&h).await;
    let mut endpoints = Vec::new();
    for channels in [&["blue"][..], &["red", "pink"], &[], &["green"]] {
        let mut spec = EndpointSpec::new("https://a.example/");
        for channel in channels {
            spec = spec.channel(channel).unwrap();
        }
        endpoints.push(r.create_endpoint(spec).await.unwrap().id);
    }
    let new = NewMessage::new(&visit, br#"{"origin": "o"}"#)
        .channel("red")
        .channel("blue")
        .channel("red");
    let message = r.create_message_with(new).await.unwrap();
    assert_eq!(
        message.channels,
        [Channel::new("red").unwrap(), Channel::new("blue").unwrap()],
        "in the order given, each once"
    );
    let stored = r.message(message.id.as_str()).await.unwrap();
    assert_eq!(stored.channels, message.channels);
    // Each endpoint listening to one of them, and the one listening to none.
    let mut got: Vec<_> = r
        .deliveries(&message.id)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.endpoint_id)
        .collect();
    got.sort();
    let mut expected = endpoints[..3].to_vec();
    expected.sort();
    assert_eq!(got, expected);
    // Listed under each of its channels, and no other.
    for (channel, listed) in [("red", 1), ("blue", 1), ("pink", 0), ("re", 0)] {
        let page = r
            .list_messages(
                &MessageFilter {
                    channel: Some(Channel::new(channel).unwrap()),
                    ..MessageFilter::default()
                },
                &ListOptions::new(),
            )
            .await
            .unwrap();
        assert_eq!(page.items.len(), listed, "{channel}");
    }
    // One channel still goes where it went before; none, to the unchanneled only.
    let one = r
        .create_message(&visit, r#"{"origin": "o"}"#, Some("green"))
        .await
        .unwrap();
    assert_eq!(one.channels, [Channel::new("green").unwrap()]);
    let mut to: Vec<_> = r
        .deliveries(&one.id)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.endpoint_id)
        .collect();
    to.sort();
    let mut expected = vec![endpoints[2].clone(), endpoints[3].clone()];
    expected.sort();
    assert_eq!(to, expected);
    // At most five.
    let mut six = NewMessage::new(&visit, br#"{"origin": "o"}"#);
    for channel in ["a", "b", "c", "d", "e", "f"] {
        six = six.channel(channel);
    }
    assert!(matches!(
        r.create_message_with(six).await,
        Err(Error::TooManyChannels { count: 6, max: 5 })
    ));
    let bad = NewMessage::new(&visit, br#"{"origin": "o"}"#).channel("a,b");
    assert!(matches!(
        r.create_message_with(bad).await,
        Err(Error::InvalidChannel { .. })
    ));
}

async fn messages_follow_svix_by_default<S: Store>(h: Harness<S>) {
    let r = &h.registry;
    let visit = with_visit_type(&h).await;
    let everything = r
        .create_endpoint(EndpointSpec::new("https://all.example/"))
        .await
        .unwrap();
    let visits_only = r
        .create_endpoint(EndpointSpec::new("https://visits.example/").event_type(visit.clone()))
        .await
        .unwrap();

    let unknown = name("user.signup");
    let message = r
        .create_message_with(
            NewMessage::new(&unknown, br#"{"anything": [1, 2]}"#).event_id("signup-42"),
        )
        .await
        .unwrap();
    assert_eq!(message.event_id.as_deref(), Some("signup-42"));
    let stored = r.message(message.id.as_str()).await.unwrap();
    assert_eq!(stored, message);
    let to: Vec<_> = r
        .deliveries(&message.id)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.endpoint_id)
        .collect();
    assert_eq!(to, std::slice::from_ref(&everything.id));
    assert!(!to.contains(&visits_only.id));
    let listed = r
        .list_messages(&MessageFilter::default(), &ListOptions::new())
        .await
        .unwrap();
    assert_eq!(listed.items[0].event_id.as_deref(), Some("signup-42"));
    // One message per event id in an application (Svix's rule): a second is refused and
    // stores nothing; another application may use the same event id.
    let again = r
        .create_message_with(NewMessage::new(&unknown, br#"{"again": true}"#).event_id("signup-42"))
        .await;
    assert!(
        matches!(&again, Err(Error::MessageExists { event_id }) if event_id == "signup-42"),
        "{again:?}"
    );
    let count = r
        .list_messages(&MessageFilter::default(), &ListOptions::new())
        .await
        .unwrap()
        .items
        .len();
    assert_eq!(count, 1);
    let tenant = r
        .create_application(ApplicationSpec::new("tenant"))
        .await
        .unwrap();
    r.app(tenant.id.as_str())
        .await
        .unwrap()
        .create_message_with(NewMessage::new(&unknown, b"{}").event_id("signup-42"))
        .await
        .unwrap();

    // A registered type's schema still applies.
    assert!(matches!(
        r.create_message(&visit, br#"{"visit": 1}"#, None).await,
        Err(Error::Schema(SchemaError::InvalidPayload { .. }))
    ));
    // An archived type is taken too, and its schema still applies.
    r.archive_event_type(&visit).await.unwrap();
    assert!(
        r.create_message(&visit, br#"{"origin": "o"}"#, None)
            .await
            .is_ok()
    );
    assert!(
        r.create_message(&visit, br#"{"visit": 1}"#, None)
            .await
            .is_err()
    );

    assert!(matches!(
        r.send(&unknown, "{}", None).await,
        Err(Error::EventTypeNotFound { .. })
    ));
    for bad in ["", "has space", "slash/", &"x".repeat(257)] {
        let err = r
            .create_message_with(NewMessage::new(&unknown, b"{}").event_id(bad))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidEventId { .. }),
            "{bad:?}: {err}"
        );
    }
    let longest = "e".repeat(256);
    let kept = r
        .create_message_with(NewMessage::new(&unknown, b"{}").event_id(&longest))
        .await
        .unwrap();
    assert_eq!(
        r.message(kept.id.as_str()).await.unwrap().event_id,
        Some(longest)
    );
}

/// The stricter rules are settings: registered event types only, and no payload validation.
async fn stricter_and_laxer_message_rules<S: Store>(strict: Harness<S>, lax: Harness<S>) {
    let unknown = name("user.signup");
    assert!(matches!(
        strict.registry.create_message(&unknown, "{}", None).await,
        Err(Error::EventTypeNotFound { .. })
    ));
    let visit = with_visit_type(&strict).await;
    assert!(
        strict
            .registry
            .create_message(&visit, "{}", None)
            .await
            .is_err()
    );

    let visit = with_visit_type(&lax).await;
    let message = lax
        .registry
        .create_message(&visit, br#"{"visit": "not even a number"}"#, None)
        .await
        .unwrap();
    assert_eq!(message.payload, r#"{"visit": "not even a number"}"#);
    // JSON is still required.
    assert!(matches!(
        lax.registry.create_message(&visit, "{", None).await,
        Err(Error::Schema(SchemaError::NotJson { .. }))
    ));
    // Names as Svix takes them: registered and sent.
    for svix_name in ["signup", "message.attempt.failing"] {
        lax.registry
            .create_event_type(name(svix_name), "", json!({}))
            .await
            .unwrap();
        lax.registry
            .create_message(&name(svix_name), "{}", None)
            .await
            .unwrap();
    }
    assert!(matches!(
        strict
            .registry
            .create_message(&name("signup"), "{}", None)
            .await,
        Err(Error::UngroupedEventTypeName { .. })
    ));
}

/// `format` is an annotation unless asserted: the naive timestamps swh-webhooks sends pass.
async fn formats_are_annotations_by_default<S: Store>(default: Harness<S>, asserted: Harness<S>) {
    let schema = json!({
        "type": "object",
        "properties": {"visit_date": {"type": "string", "format": "date-time"}}
    });
    let naive = br#"{"visit_date": "2026-12-05T15:15:16.123456"}"#;
    for h in [&default, &asserted] {
        h.registry
            .create_event_type(name("origin.visit"), "", schema.clone())
            .await
            .unwrap();
        h.registry
            .create_endpoint(EndpointSpec::new("https://a.example/"))
            .await
            .unwrap();
    }
    assert!(
        default
            .registry
            .send(&name("origin.visit"), naive, None)
            .await
            .unwrap()
            .is_some()
    );
    let err = asserted
        .registry
        .send(&name("origin.visit"), naive, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("/visit_date"), "{err}");
}

fn strict_config() -> RegistryConfig {
    RegistryConfig {
        require_event_types: true,
        ..RegistryConfig::default()
    }
}

/// Svix's rules: any JSON object, any name of Svix's alphabet.
fn lax_config() -> RegistryConfig {
    RegistryConfig {
        validate_payloads: false,
        grouped_event_type_names: false,
        ..RegistryConfig::default()
    }
}

fn asserting_config() -> RegistryConfig {
    RegistryConfig {
        assert_formats: true,
        ..RegistryConfig::default()
    }
}

#[tokio::test]
async fn memory_store_message_settings() {
    stricter_and_laxer_message_rules(
        memory_with(strict_config()).await,
        memory_with(lax_config()).await,
    )
    .await;
    formats_are_annotations_by_default(memory().await, memory_with(asserting_config()).await).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_store_message_settings() {
    stricter_and_laxer_message_rules(
        postgres_with(strict_config()).await,
        postgres_with(lax_config()).await,
    )
    .await;
    formats_are_annotations_by_default(postgres().await, postgres_with(asserting_config()).await)
        .await;
}

#[tokio::test]
async fn sqlite_store_message_settings() {
    stricter_and_laxer_message_rules(
        sqlite_with(strict_config()).await,
        sqlite_with(lax_config()).await,
    )
    .await;
    formats_are_annotations_by_default(sqlite().await, sqlite_with(asserting_config()).await).await;
}

/// Applications: created, found by id or uid, listed (the default one first), updated and
/// deleted; the same endpoint uid may exist in two; nothing of one is reachable from another.
async fn applications_are_isolated<S: Store>(h: Harness<S>) {
    let r = &h.registry;
    let visit = with_visit_type(&h).await;
    let acme = r
        .create_application(ApplicationSpec::new("Acme").uid("acme").unwrap())
        .await
        .unwrap();
    let globex = r
        .create_application(ApplicationSpec::new("Globex").uid("globex").unwrap())
        .await
        .unwrap();
    assert!(matches!(
        r.create_application(ApplicationSpec::new("Again").uid("acme").unwrap())
            .await,
        Err(Error::ApplicationExists { .. })
    ));
    assert!(matches!(
        r.create_application(ApplicationSpec::new("  ")).await,
        Err(Error::InvalidAppName)
    ));
    assert_eq!(r.application("acme").await.unwrap(), acme);
    assert_eq!(r.application(acme.id.as_str()).await.unwrap(), acme);
    let listed = r.list_applications(&ListOptions::new()).await.unwrap();
    let ids: Vec<&AppId> = listed.items.iter().map(|a| &a.id).collect();
    assert_eq!(ids, [&AppId::default_app(), &acme.id, &globex.id]);

    let a = r.app("acme").await.unwrap();
    let g = r.app("globex").await.unwrap();
    // The same uid in two applications: two endpoints.
    let a_hook = a
        .create_endpoint(EndpointSpec::new("https://a.example/").uid("hook").unwrap())
        .await
        .unwrap();
    let g_hook = g
        .create_endpoint(EndpointSpec::new("https://g.example/").uid("hook").unwrap())
        .await
        .unwrap();
    assert_ne!(a_hook.id, g_hook.id);
    assert_eq!(a.endpoint("hook").await.unwrap().id, a_hook.id);
    assert_eq!(g.endpoint("hook").await.unwrap().id, g_hook.id);
    assert!(matches!(
        g.endpoint(a_hook.id.as_str()).await,
        Err(Error::EndpointNotFound { .. })
    ));
    assert!(
        matches!(
            r.endpoint("hook").await,
            Err(Error::EndpointNotFound { .. })
        ),
        "the default application has none"
    );

    let sent = a
        .create_message(&visit, br#"{"origin": "a"}"#, None)
        .await
        .unwrap();
    assert_eq!(sent.app, acme.id);
    let to: Vec<_> = a
        .deliveries(&sent.id)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.endpoint_id)
        .collect();
    assert_eq!(to, std::slice::from_ref(&a_hook.id));
    assert!(matches!(
        g.message(sent.id.as_str()).await,
        Err(Error::MessageNotFound { .. })
    ));
    assert!(g.deliveries(&sent.id).await.unwrap().is_empty());
    assert!(
        g.list_messages(&MessageFilter::default(), &ListOptions::new())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        g.list_endpoints(&EndpointFilter::default(), &ListOptions::new())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    // A resend naming the other application's endpoint does nothing.
    g.resend(sent.id.as_str(), "hook").await.unwrap_err();
    assert_eq!(a.deliveries(&sent.id).await.unwrap().len(), 1);

    // Leasing across applications hands out only what each application's messages asked.
    let leases = r
        .store()
        .lease_deliveries(h.now(), Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].delivery.endpoint_id, a_hook.id);

    // Updating: a new name and uid; the old uid is free again.
    let renamed = r
        .update_application(
            "acme",
            ApplicationSpec::new("Acme Inc").uid("acme-inc").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(renamed.id, acme.id);
    assert!(r.application("acme").await.is_err());
    assert_eq!(r.application("acme-inc").await.unwrap().name, "Acme Inc");

    // Deleting: its endpoints, messages and attempts go; the others stay.
    let pending = a
        .create_message(&visit, br#"{"origin": "later"}"#, None)
        .await
        .unwrap();
    r.delete_application("acme-inc").await.unwrap();
    assert!(r.app("acme-inc").await.is_err());
    assert!(r.application(acme.id.as_str()).await.is_err());
    assert!(matches!(
        r.delete_application(acme.id.as_str()).await,
        Err(Error::ApplicationNotFound { .. })
    ));
    assert!(
        r.delete_application(AppId::default_app().as_str())
            .await
            .is_err()
    );
    h.advance(Duration::from_secs(120));
    let leases = r
        .store()
        .lease_deliveries(h.now(), Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert!(
        leases.iter().all(|l| l.delivery.message_id != pending.id),
        "a deleted application's deliveries are never attempted"
    );
    assert_eq!(g.endpoint("hook").await.unwrap().id, g_hook.id);
    // Its uid can be taken again, and the new application has none of the old one's.
    let reborn = r
        .create_application(ApplicationSpec::new("Acme").uid("acme-inc").unwrap())
        .await
        .unwrap();
    let reborn = r.app(reborn.id.as_str()).await.unwrap();
    assert!(reborn.endpoint("hook").await.is_err());
    assert!(reborn.message(pending.id.as_str()).await.is_err());
}

/// Under concurrency, across applications with the same endpoint uids, every delivery goes
/// to an endpoint of its message's application.
async fn concurrent_sends_stay_in_their_application<S: Store>(h: Harness<S>) {
    let r = &h.registry;
    let visit = with_visit_type(&h).await;
    let mut apps = Vec::new();
    for i in 0..6 {
        let app = r
            .create_application(
                ApplicationSpec::new(format!("app {i}"))
                    .uid(format!("app-{i}"))
                    .unwrap(),
            )
            .await
            .unwrap();
        let scope = r.app(app.id.as_str()).await.unwrap();
        for uid in ["one", "two"] {
            scope
                .create_endpoint(
                    EndpointSpec::new(format!("https://{i}.example/{uid}"))
                        .uid(uid)
                        .unwrap(),
                )
                .await
                .unwrap();
        }
        apps.push(app.id);
    }
    let sender = |app: AppId| {
        let visit = visit.clone();
        async move {
            let scope = r.app(app.as_str()).await.unwrap();
            let mut sent = Vec::new();
            for n in 0..10 {
                let payload = format!("{{\"origin\": \"{n}\"}}");
                sent.push(scope.create_message(&visit, payload, None).await.unwrap());
            }
            sent
        }
    };
    let (a, b, c, d, e, f) = tokio::join!(
        sender(apps[0].clone()),
        sender(apps[1].clone()),
        sender(apps[2].clone()),
        sender(apps[3].clone()),
        sender(apps[4].clone()),
        sender(apps[5].clone()),
    );
    let messages: Vec<_> = [a, b, c, d, e, f].into_iter().flatten().collect();
    assert_eq!(messages.len(), 60);
    let mut endpoints_of = std::collections::HashMap::new();
    for app in &apps {
        let listed = r
            .app(app.as_str())
            .await
            .unwrap()
            .list_endpoints(&EndpointFilter::default(), &ListOptions::new())
            .await
            .unwrap();
        for endpoint in listed.items {
            endpoints_of.insert(endpoint.id, app.clone());
        }
    }
    let app_of: std::collections::HashMap<_, _> = messages
        .iter()
        .map(|m| (m.id.clone(), m.app.clone()))
        .collect();
    let mut leased = 0;
    loop {
        let batch = r
            .store()
            .lease_deliveries(h.now(), Duration::from_secs(60), 25)
            .await
            .unwrap();
        if batch.is_empty() {
            break;
        }
        for lease in batch {
            let delivery = &lease.delivery;
            assert_eq!(
                endpoints_of[&delivery.endpoint_id], app_of[&delivery.message_id],
                "{delivery:?}"
            );
            leased += 1;
        }
    }
    assert_eq!(
        leased, 120,
        "each message to its application's two endpoints"
    );
}

async fn memory() -> Harness<MemoryStore> {
    memory_with(RegistryConfig::default()).await
}

async fn sqlite() -> Harness<SqliteStore> {
    sqlite_with(RegistryConfig::default()).await
}

#[cfg(feature = "postgres")]
#[path = "support/postgres.rs"]
mod pg;

#[cfg(feature = "postgres")]
async fn postgres() -> Harness<PostgresStore> {
    postgres_with(RegistryConfig::default()).await
}

#[cfg(feature = "postgres")]
async fn postgres_with(config: RegistryConfig) -> Harness<PostgresStore> {
    let database = pg::TestDatabase::create().await;
    let store = PostgresStore::connect(&database.url).await.unwrap();
    Harness::configured(store, Some(Box::new(database)), config)
}

async fn memory_with(config: RegistryConfig) -> Harness<MemoryStore> {
    Harness::configured(MemoryStore::new(), None, config)
}

async fn sqlite_with(config: RegistryConfig) -> Harness<SqliteStore> {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("webhooks.db"))
        .await
        .unwrap();
    Harness::configured(store, Some(Box::new(dir)), config)
}

/// Leases are shared among applications: one application's backlog, queued long before,
/// does not keep another's deliveries out of the next batch; an application left out by the
/// engine is not leased; and every delivery is still leased exactly once.
async fn leases_are_shared_fairly_among_applications<S: Store>(h: Harness<S>) {
    let r = &h.registry;
    let visit = with_visit_type(&h).await;
    let mut endpoints = HashMap::new();
    for name in ["noisy", "quiet", "other"] {
        r.create_application(ApplicationSpec::new(name).uid(name).unwrap())
            .await
            .unwrap();
        let endpoint = r
            .app(name)
            .await
            .unwrap()
            .create_endpoint(EndpointSpec::new(format!("https://{name}.example/")))
            .await
            .unwrap();
        endpoints.insert(endpoint.id, name);
    }
    let noisy = r.app("noisy").await.unwrap();
    let (quiet, other) = (r.app("quiet").await.unwrap(), r.app("other").await.unwrap());
    let payload = r#"{"origin": "https://x"}"#;
    for _ in 0..300 {
        noisy.send(&visit, payload, None).await.unwrap().unwrap();
    }
    h.advance(Duration::from_secs(1));
    quiet.send(&visit, payload, None).await.unwrap().unwrap();
    other.send(&visit, payload, None).await.unwrap().unwrap();
    h.advance(Duration::from_secs(1));

    let store = r.store();
    let per_app = |batch: &[Lease]| {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for lease in batch {
            *counts
                .entry(endpoints[&lease.delivery.endpoint_id])
                .or_default() += 1;
        }
        counts
    };
    // The 300 were due first, yet a batch of 10 holds the two later ones.
    let batch = store
        .lease_deliveries(h.now(), Duration::from_secs(30), 10)
        .await
        .unwrap();
    assert_eq!(batch.len(), 10);
    assert_eq!(
        per_app(&batch),
        BTreeMap::from([("noisy", 8), ("other", 1), ("quiet", 1)])
    );
    let mut leased: HashSet<(MessageId, String)> = batch
        .iter()
        .map(|l| {
            (
                l.delivery.message_id.clone(),
                l.delivery.endpoint_id.to_string(),
            )
        })
        .collect();

    // The engine leaves the noisy application out: nothing else is due.
    let noisy_id = r.application("noisy").await.unwrap().id;
    let limits = AppLimits {
        each: Some(10),
        room: HashMap::from([(noisy_id, 0)]),
    };
    let skipping =
        |limit| store.lease_deliveries_within(h.now(), Duration::from_secs(30), limit, &limits);
    assert!(skipping(10).await.unwrap().is_empty());
    // A new message of the quiet application still gets through.
    quiet.send(&visit, payload, None).await.unwrap().unwrap();
    let batch = skipping(10).await.unwrap();
    assert_eq!(per_app(&batch), BTreeMap::from([("quiet", 1)]));
    leased.extend(batch.iter().map(|l| {
        (
            l.delivery.message_id.clone(),
            l.delivery.endpoint_id.to_string(),
        )
    }));

    // The rest of the backlog, each exactly once.
    loop {
        let batch = store
            .lease_deliveries(h.now(), Duration::from_secs(30), 64)
            .await
            .unwrap();
        if batch.is_empty() {
            break;
        }
        assert_eq!(per_app(&batch).keys().collect::<Vec<_>>(), [&"noisy"]);
        for lease in batch {
            let key = (
                lease.delivery.message_id.clone(),
                lease.delivery.endpoint_id.to_string(),
            );
            assert!(leased.insert(key), "leased twice");
        }
    }
    assert_eq!(leased.len(), 303);

    // Once the leases run out, each application's deliveries come back, again shared.
    h.advance(Duration::from_secs(31));
    let batch = store
        .lease_deliveries(h.now(), Duration::from_secs(30), 6)
        .await
        .unwrap();
    assert_eq!(
        per_app(&batch),
        BTreeMap::from([("noisy", 3), ("other", 1), ("quiet", 2)])
    );
}

macro_rules! suite {
    ($($test:ident),* $(,)?) => {
        mod memory_store {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::memory().await).await;
                }
            )*
        }
        mod sqlite_store {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::sqlite().await).await;
                }
            )*
        }
        #[cfg(feature = "postgres")]
        mod postgres_store {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(super::postgres().await).await;
                }
            )*
        }
    };
}

suite!(
    event_types_create_update_list_archive,
    bad_schemas_are_refused_with_their_path,
    endpoints_by_id_and_uid_update_and_delete,
    attempts_by_id_counted_and_expunged,
    idempotency_keys_claim_remember_and_expire,
    application_tokens_expire_and_are_revoked,
    endpoint_input_is_checked,
    listing_endpoints_by_type_and_channel,
    send_routes_validates_and_keeps_bytes,
    rotation_grace_and_cap,
    pagination_is_complete_in_both_orders,
    leases_are_exclusive_and_expire,
    a_short_batch_means_nothing_more_is_due,
    deleting_an_endpoint_drops_its_pending_deliveries,
    attempts_are_recorded_listed_and_become_sent_events,
    a_lost_lease_still_records_its_attempt,
    a_batch_of_mixed_outcomes_records_each_its_own,
    attempts_list_in_the_order_recorded,
    resend_and_recover,
    attempts_are_counted_by_span,
    failing_endpoints_are_disabled_and_recover,
    expired_payloads_still_list,
    ordered_endpoints_get_one_message_at_a_time,
    concurrent_sends_each_store_their_message,
    messages_follow_svix_by_default,
    a_message_goes_to_several_channels,
    applications_are_isolated,
    concurrent_sends_stay_in_their_application,
    leases_are_shared_fairly_among_applications,
);

/// Everything survives closing and reopening the SQLite file.
#[tokio::test]
async fn sqlite_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhooks.db");
    let (endpoint, secret, rotated_from, message) = {
        let registry = Registry::new(SqliteStore::open(&path).await.unwrap());
        let visit = name("origin.visit");
        registry
            .create_event_type(visit.clone(), "visits", visit_schema())
            .await
            .unwrap();
        registry
            .create_event_type(name("gone.away"), "", json!({}))
            .await
            .unwrap();
        registry
            .archive_event_type(&name("gone.away"))
            .await
            .unwrap();
        let endpoint = registry
            .create_endpoint(
                EndpointSpec::new("https://a.example/")
                    .event_type(visit.clone())
                    .uid("keep-me")
                    .unwrap()
                    .channel("c1")
                    .unwrap()
                    .header("x-k", "v")
                    .metadata("m", json!([1, {"deep": true}])),
            )
            .await
            .unwrap();
        let rotated_from = registry.endpoint_secret("keep-me").await.unwrap();
        registry.rotate_secret("keep-me", None).await.unwrap();
        let secret = registry.endpoint_secret("keep-me").await.unwrap();
        let endpoint = registry.endpoint(endpoint.id.as_str()).await.unwrap();
        let (id, _) = registry
            .send(&visit, "{\"origin\" :  \"o\"}", Some("c1"))
            .await
            .unwrap()
            .unwrap();
        let message = registry.message(id.as_str()).await.unwrap();
        registry.store().close().await;
        (endpoint, secret, rotated_from, message)
    };

    let registry = Registry::new(SqliteStore::open(&path).await.unwrap());
    let visit = registry.event_type(&name("origin.visit")).await.unwrap();
    assert_eq!(visit.schema, visit_schema());
    assert!(
        registry.event_type(&name("gone.away")).await.is_err(),
        "still archived"
    );
    assert_eq!(registry.endpoint("keep-me").await.unwrap(), endpoint);
    assert_eq!(registry.endpoint_secret("keep-me").await.unwrap(), secret);
    assert_eq!(
        registry.live_keys("keep-me").await.unwrap(),
        [secret, rotated_from]
    );
    assert_eq!(
        registry.message(message.id.as_str()).await.unwrap(),
        message
    );
    let pending = registry
        .store()
        .lease_deliveries(Utc::now(), Duration::from_secs(5), 10)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].delivery.message_id, message.id);
    // And the schema still validates after the restart.
    assert!(
        registry
            .send(&visit.name, r#"{"origin": 1}"#, Some("c1"))
            .await
            .is_err()
    );
}

/// Two stores opened on one file (as two processes would) lease concurrently without ever
/// handing out the same delivery.
#[tokio::test]
async fn sqlite_leases_are_exclusive_across_separately_opened_stores() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let registry = Registry::new(SqliteStore::open(&path).await.unwrap());
    let visit = name("origin.visit");
    registry
        .create_event_type(visit.clone(), "", json!({}))
        .await
        .unwrap();
    for i in 0..4 {
        registry
            .create_endpoint(
                EndpointSpec::new(format!("https://{i}.example/")).event_type(visit.clone()),
            )
            .await
            .unwrap();
    }
    for _ in 0..50 {
        registry.send(&visit, "{}", None).await.unwrap().unwrap();
    }
    let now = Utc::now();
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let path = path.clone();
            tokio::spawn(async move {
                let store = SqliteStore::open(&path).await.unwrap();
                let mut mine = Vec::new();
                loop {
                    let batch = store
                        .lease_deliveries(now, Duration::from_secs(60), 9)
                        .await
                        .unwrap();
                    if batch.is_empty() {
                        break mine;
                    }
                    mine.extend(
                        batch
                            .into_iter()
                            .map(|l| (l.delivery.message_id, l.delivery.endpoint_id)),
                    );
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    assert_eq!(all.len(), 200);
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 200, "no delivery leased twice");
}

/// A store file of one application (what each application's file was in the server's first
/// versions) imported into another store keeps everything: endpoints with their key
/// history and tombstones, messages with their payloads and event ids, delivery rows, a
/// fan-out still out, attempts in order; its pending work is leased from the new store.
/// Importing it again does nothing.
#[tokio::test]
async fn importing_a_store_file_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let old = Harness::configured(
        SqliteStore::open(&path).await.unwrap(),
        None,
        RegistryConfig::default(),
    );
    let r = &old.registry;
    let visit = with_visit_type(&old).await;
    let kept = r
        .create_endpoint(
            EndpointSpec::new("https://a.example/")
                .uid("kept")
                .unwrap()
                .event_type(visit.clone())
                .channel("blue")
                .unwrap()
                .header("x-tenant", "t1"),
        )
        .await
        .unwrap();
    r.rotate_secret("kept", None).await.unwrap();
    let gone = r
        .create_endpoint(EndpointSpec::new("https://gone.example/"))
        .await
        .unwrap();
    let first = r
        .create_message_with(
            NewMessage::new(&visit, br#"{"origin":  "one"}"#)
                .event_id("e-1")
                .channel("blue"),
        )
        .await
        .unwrap();
    let leases = r
        .store()
        .lease_deliveries(old.now(), Duration::from_secs(30), 10)
        .await
        .unwrap();
    assert_eq!(leases.len(), 2);
    for lease in &leases {
        let status = if lease.delivery.endpoint_id == kept.id {
            DeliveryStatus::Succeeded
        } else {
            DeliveryStatus::Pending
        };
        finish(&old, lease, status, 200).await;
    }
    r.delete_endpoint(gone.id.as_str()).await.unwrap();
    old.advance(Duration::from_secs(1));
    // Still out when the file is imported: a fan-out nobody claimed.
    let second = r
        .create_message(&visit, br#"{"origin": "two"}"#, Some("blue"))
        .await
        .unwrap();
    let before = Snapshot::of(&r.default_app(), &[first.id.clone(), second.id.clone()]).await;
    r.store().close().await;
    drop(old);

    // Into a store that already has an application with endpoints and messages of its own.
    let target = sqlite_with(RegistryConfig::default()).await;
    let t = &target.registry;
    with_visit_type(&target).await;
    let other = t
        .create_application(ApplicationSpec::new("other").uid("other").unwrap())
        .await
        .unwrap();
    let scope = t.app("other").await.unwrap();
    scope
        .create_endpoint(
            EndpointSpec::new("https://other.example/")
                .uid("kept")
                .unwrap(),
        )
        .await
        .unwrap();
    scope
        .create_message(&visit, r#"{"origin": "o"}"#, None)
        .await
        .unwrap();
    let _ = other;
    let imported_app = Application {
        uid: Some(AppUid::new("imported").unwrap()),
        name: "Imported".to_owned(),
        ..Application::default_app()
    };
    let imported_app = Application {
        id: "app_2ylMPb5DLdBRLfHmRYkcwGVkW8V".parse().unwrap(),
        ..imported_app
    };
    let source_path = path.clone();
    let counts = t.store().import(&source_path, &imported_app).await.unwrap();
    assert_eq!(
        (counts.endpoints, counts.messages, counts.attempts),
        (2, 2, 2)
    );
    assert_eq!(
        counts.fanouts, 1,
        "the second message's first attempts are still out"
    );
    let after = Snapshot::of(
        &t.app("imported").await.unwrap(),
        &[first.id.clone(), second.id.clone()],
    )
    .await;
    assert_eq!(after, before);
    assert_eq!(t.application("imported").await.unwrap().name, "Imported");
    // Again: nothing.
    let again = t.store().import(&source_path, &imported_app).await.unwrap();
    assert_eq!(again, switchyard_webhooks::store::Imported::default());
    // The imported application's pending work is leased from here: the retry of the first
    // message (due 5 s after its attempt) and the second message's first attempt.
    target.advance(Duration::from_secs(60));
    let leases = t
        .store()
        .lease_deliveries(target.now(), Duration::from_secs(30), 10)
        .await
        .unwrap();
    let imported_work: Vec<_> = leases
        .iter()
        .filter(|l| l.delivery.message_id == first.id || l.delivery.message_id == second.id)
        .map(|l| {
            (
                l.delivery.message_id.clone(),
                l.delivery.endpoint_id.clone(),
            )
        })
        .collect();
    assert_eq!(imported_work, [(second.id.clone(), kept.id.clone())]);
}

/// What an application shows through the registry: endpoints (with keys), messages,
/// deliveries and attempts.
#[derive(Debug, PartialEq)]
struct Snapshot {
    endpoints: Vec<(Endpoint, Vec<Secret>)>,
    messages: Vec<Message>,
    deliveries: Vec<Vec<switchyard_webhooks::Delivery>>,
    attempts: Vec<Attempt>,
}

impl Snapshot {
    async fn of<S: Store>(scope: &AppScope<'_, S>, messages: &[MessageId]) -> Self {
        let mut endpoints = Vec::new();
        for endpoint in scope
            .list_endpoints(&EndpointFilter::default(), &ListOptions::new())
            .await
            .unwrap()
            .items
        {
            let keys = scope.live_keys(endpoint.id.as_str()).await.unwrap();
            endpoints.push((
                Endpoint {
                    app: AppId::default_app(),
                    ..endpoint
                },
                keys,
            ));
        }
        let mut listed = Vec::new();
        let mut deliveries = Vec::new();
        for id in messages {
            let message = scope.message(id.as_str()).await.unwrap();
            listed.push(Message {
                app: AppId::default_app(),
                ..message
            });
            deliveries.push(scope.deliveries(id).await.unwrap());
        }
        let attempts = scope
            .list_attempts(&AttemptFilter::default(), &ListOptions::new())
            .await
            .unwrap()
            .items;
        Self {
            endpoints,
            messages: listed,
            deliveries,
            attempts,
        }
    }
}
