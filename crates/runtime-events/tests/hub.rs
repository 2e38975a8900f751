//! The hub's semantics: subscribe from now on, order across subscriptions, timeouts,
//! unsubscribe, bounded queues, evaluation errors, the index, cancel safety and concurrency.

use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_runtime_events::{
    Error, Event, Hub, HubConfig, SubscribeOptions, SubscriptionId, WhenFull,
};

fn event(source: &str, event_type: &str, n: i64) -> Event {
    Event::new(source, event_type, json!({ "n": n }))
}

const POLL: Option<Duration> = Some(Duration::ZERO);

#[tokio::test]
async fn only_events_published_after_subscribe_are_queued() {
    let hub = Hub::new();
    let early = hub.subscribe("s", "").expect("subscribe");
    hub.publish(event("s", "t", 1)).expect("publish");
    let late = hub.subscribe("s", "").expect("subscribe");
    hub.publish(event("s", "t", 2)).expect("publish");

    let got = hub
        .next_event(&[late], POLL)
        .await
        .expect("ok")
        .expect("event");
    assert_eq!(got.data["n"], 2);
    assert!(hub.next_event(&[late], POLL).await.expect("ok").is_none());
    assert_eq!(
        hub.next_event(&[early], POLL)
            .await
            .expect("ok")
            .expect("e")
            .data["n"],
        1
    );
    assert_eq!(
        hub.next_event(&[early], POLL)
            .await
            .expect("ok")
            .expect("e")
            .data["n"],
        2
    );
}

#[tokio::test]
async fn other_sources_are_not_seen() {
    let hub = Hub::new();
    let id = hub.subscribe("a", "").expect("subscribe");
    let published = hub.publish(event("b", "t", 1)).expect("publish");
    assert_eq!(published.queued, 0);
    assert!(hub.next_event(&[id], POLL).await.expect("ok").is_none());
}

#[tokio::test]
async fn oldest_first_across_subscriptions() {
    let hub = Hub::new();
    let a = hub.subscribe("a", "").expect("subscribe");
    let b = hub.subscribe("b", "").expect("subscribe");
    // Sorted ids must not decide the order: publish to the later id first.
    let (first, second) = if a > b { (a, b) } else { (b, a) };
    let source = |id: SubscriptionId| if id == a { "a" } else { "b" };
    hub.publish(event(source(first), "t", 1)).expect("publish");
    hub.publish(event(source(second), "t", 2)).expect("publish");
    hub.publish(event(source(first), "t", 3)).expect("publish");
    let mut seen = Vec::new();
    while let Some(e) = hub.next_event(&[a, b], POLL).await.expect("ok") {
        seen.push(e.data["n"].as_i64().expect("n"));
    }
    assert_eq!(seen, [1, 2, 3]);
}

#[tokio::test]
async fn timeouts_poll_and_wait() {
    let hub = Hub::new();
    let id = hub.subscribe("s", "").expect("subscribe");
    let started = Instant::now();
    assert!(hub.next_event(&[id], POLL).await.expect("ok").is_none());
    assert!(
        hub.next_event(&[id], Some(Duration::from_millis(50)))
            .await
            .expect("ok")
            .is_none()
    );
    assert!(started.elapsed() >= Duration::from_millis(50));

    // A waiter without a timeout is woken by a publish.
    let waiter = {
        let hub = hub.clone();
        tokio::spawn(async move { hub.next_event(&[id], None).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    hub.publish(event("s", "t", 7)).expect("publish");
    let got = waiter.await.expect("join").expect("ok").expect("event");
    assert_eq!(got.data["n"], 7);
}

#[tokio::test]
async fn unknown_ids_and_unsubscribe_are_errors() {
    let hub = Hub::new();
    let id = hub.subscribe("s", "").expect("subscribe");
    let other = hub.subscribe("s", "").expect("subscribe");
    assert_eq!(hub.next_event(&[], POLL).await, Err(Error::NoSubscriptions));

    let waiter = {
        let hub = hub.clone();
        tokio::spawn(async move { hub.next_event(&[other, id], None).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    hub.unsubscribe(id).expect("unsubscribe");
    assert_eq!(waiter.await.expect("join"), Err(Error::Unsubscribed(id)));

    assert_eq!(
        hub.next_event(&[id], POLL).await,
        Err(Error::UnknownSubscription(id))
    );
    assert_eq!(hub.unsubscribe(id), Err(Error::UnknownSubscription(id)));
    assert_eq!(hub.stats(id), Err(Error::UnknownSubscription(id)));
    assert_eq!(hub.len(), 1);
    // Nothing is queued for an unsubscribed id any more.
    let published = hub.publish(event("s", "t", 1)).expect("publish");
    assert_eq!(published.queued, 1);
}

#[tokio::test]
async fn full_queues_drop_the_oldest_and_count_it() {
    let hub = Hub::with_config(HubConfig {
        queue_limit: 3,
        ..HubConfig::default()
    });
    let id = hub.subscribe("s", "").expect("subscribe");
    for n in 0..5 {
        hub.publish(event("s", "t", n)).expect("never refused");
    }
    let stats = hub.stats(id).expect("stats");
    assert_eq!((stats.queued, stats.dropped, stats.matched), (3, 2, 5));
    let first = hub
        .next_event(&[id], POLL)
        .await
        .expect("ok")
        .expect("event");
    assert_eq!(first.data["n"], 2);
}

#[tokio::test]
async fn full_queues_may_refuse_the_whole_publish() {
    let hub = Hub::new();
    let strict = hub
        .subscribe_with(
            "s",
            "",
            SubscribeOptions {
                queue_limit: Some(2),
                when_full: Some(WhenFull::Refuse),
                ..SubscribeOptions::default()
            },
        )
        .expect("subscribe");
    let lenient = hub.subscribe("s", "").expect("subscribe");
    hub.publish(event("s", "t", 1)).expect("room");
    hub.publish(event("s", "t", 2)).expect("room");
    assert_eq!(
        hub.publish(event("s", "t", 3)),
        Err(Error::QueueFull {
            subscription: strict,
            limit: 2
        })
    );
    // Refused means refused for everyone: no duplicate when the publisher retries.
    assert_eq!(hub.stats(lenient).expect("stats").queued, 2);
    assert_eq!(hub.stats(strict).expect("stats").refused, 1);
    hub.next_event(&[strict], POLL)
        .await
        .expect("ok")
        .expect("event");
    hub.publish(event("s", "t", 3)).expect("room again");
    assert_eq!(hub.stats(lenient).expect("stats").queued, 3);
}

#[tokio::test]
async fn evaluation_errors_are_counted_as_no_match() {
    let hub = Hub::new();
    let id = hub.subscribe("s", "data.count + 1 > 5").expect("subscribe");
    hub.publish(Event::new("s", "t", json!({"count": 10})))
        .expect("publish");
    hub.publish(Event::new("s", "t", json!({"other": 10})))
        .expect("publish");
    hub.publish(Event::new("s", "t", json!({"count": "ten"})))
        .expect("publish");
    hub.publish(Event::new("s", "t", json!({"count": 1})))
        .expect("publish");
    let stats = hub.stats(id).expect("stats");
    assert_eq!((stats.matched, stats.eval_errors), (1, 2));
}

#[tokio::test]
async fn rejected_filters_subscribe_nothing() {
    let hub = Hub::new();
    assert!(matches!(
        hub.subscribe("s", "payload.x == 1"),
        Err(Error::Filter(_))
    ));
    assert!(hub.is_empty());
}

#[test]
fn ten_thousand_type_filters_evaluate_one_per_publish() {
    let hub = Hub::with_config(HubConfig {
        max_subscriptions: 10_002,
        ..HubConfig::default()
    });
    let ids: Vec<_> = (0..10_000)
        .map(|i| {
            hub.subscribe("s", &format!("event_type == 'type_{i}' && data.n >= 0"))
                .expect("subscribe")
        })
        .collect();
    let prefix = hub
        .subscribe("s", "event_type.startsWith('type_12')")
        .expect("subscribe");
    let any = hub.subscribe("s", "data.n == 42").expect("subscribe");
    let before = hub.evaluations();
    let published = hub.publish(event("s", "type_1234", 42)).expect("publish");
    // The exact bucket, the prefix bucket and the unindexed filter: three, not 10,002.
    assert_eq!(published.evaluated, 3);
    assert_eq!(published.queued, 3);
    assert_eq!(hub.evaluations() - before, 3);
    assert_eq!(hub.stats(ids[1234]).expect("stats").matched, 1);
    assert_eq!(hub.stats(ids[1235]).expect("stats").matched, 0);
    assert_eq!(hub.stats(prefix).expect("stats").matched, 1);
    assert_eq!(hub.stats(any).expect("stats").matched, 1);

    for id in ids {
        hub.unsubscribe(id).expect("unsubscribe");
    }
    let published = hub.publish(event("s", "type_1234", 1)).expect("publish");
    assert_eq!(published.evaluated, 2);
}

#[test]
fn blocking_wrapper_for_synchronous_callers() {
    let hub = Hub::new();
    let id = hub.subscribe("s", "").expect("subscribe");
    let publisher = {
        let hub = hub.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            hub.publish(event("s", "t", 5)).expect("publish");
        })
    };
    let got = hub
        .next_event_blocking(&[id], Some(Duration::from_secs(5)))
        .expect("ok")
        .expect("event");
    assert_eq!(got.data["n"], 5);
    publisher.join().expect("join");
    assert_eq!(hub.next_event_blocking(&[id], POLL), Ok(None));
}

#[tokio::test]
async fn blocking_wrapper_refuses_async_context() {
    let hub = Hub::new();
    let id = hub.subscribe("s", "").expect("subscribe");
    assert_eq!(
        hub.next_event_blocking(&[id], POLL),
        Err(Error::BlockingInAsync)
    );
}

#[tokio::test]
async fn cancelled_waits_lose_no_event() {
    let hub = Hub::new();
    let id = hub.subscribe("s", "").expect("subscribe");
    let ids = [id];
    for n in 0..200 {
        // Start a wait, cancel it at a random-ish point, publish around it.
        let wait = hub.next_event(&ids, None);
        if n % 2 == 0 {
            hub.publish(event("s", "t", n)).expect("publish");
        }
        let _ = tokio::time::timeout(Duration::from_micros(1), wait).await;
        if n % 2 == 1 {
            hub.publish(event("s", "t", n)).expect("publish");
        }
    }
    // Some waits completed (and returned their event), the rest were dropped. Either way the
    // events not returned must still be queued: count both.
    let stats = hub.stats(id).expect("stats");
    assert_eq!(stats.delivered + stats.queued as u64, 200);
    assert_eq!(stats.matched, 200);
}

#[test]
fn many_publishers_and_waiters_lose_and_duplicate_nothing() {
    const PUBLISHERS: i64 = 4;
    const PER_PUBLISHER: i64 = 2_500;
    const WAITERS: usize = 4;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_time()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let hub = Hub::with_config(HubConfig {
            queue_limit: 1 << 20,
            ..HubConfig::default()
        });
        // Two subscriptions that both match every event, shared by all waiters: every event
        // must come out exactly twice in total.
        let a = hub.subscribe("s", "data.n >= 0").expect("subscribe");
        let b = hub.subscribe("s", "").expect("subscribe");
        let total = (PUBLISHERS * PER_PUBLISHER) as usize * 2;
        let received = Arc::new(std::sync::Mutex::new(Vec::with_capacity(total)));
        let remaining = Arc::new(std::sync::atomic::AtomicUsize::new(total));

        let mut waiters = Vec::new();
        for w in 0..WAITERS {
            let hub = hub.clone();
            let received = Arc::clone(&received);
            let remaining = Arc::clone(&remaining);
            waiters.push(tokio::spawn(async move {
                let ids = if w % 2 == 0 { [a, b] } else { [b, a] };
                while remaining.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                    if let Some(e) = hub
                        .next_event(&ids, Some(Duration::from_millis(50)))
                        .await
                        .expect("ok")
                    {
                        remaining.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                        received
                            .lock()
                            .expect("lock")
                            .push(e.data["n"].as_i64().expect("n"));
                    }
                }
            }));
        }
        let mut publishers = Vec::new();
        for p in 0..PUBLISHERS {
            let hub = hub.clone();
            publishers.push(tokio::spawn(async move {
                for i in 0..PER_PUBLISHER {
                    hub.publish(event("s", "t", p * PER_PUBLISHER + i))
                        .expect("publish");
                    if i % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            }));
        }
        for task in publishers {
            task.await.expect("publisher");
        }
        tokio::time::timeout(Duration::from_secs(60), async {
            for task in waiters {
                task.await.expect("waiter");
            }
        })
        .await
        .expect("waiters finish");

        let received = received.lock().expect("lock");
        assert_eq!(received.len(), total);
        let mut counts: HashMap<i64, usize> = HashMap::new();
        for n in received.iter() {
            *counts.entry(*n).or_default() += 1;
        }
        assert_eq!(counts.len(), (PUBLISHERS * PER_PUBLISHER) as usize);
        assert!(
            counts.values().all(|&c| c == 2),
            "an event came out other than twice"
        );
        for id in [a, b] {
            let stats = hub.stats(id).expect("stats");
            assert_eq!(stats.queued, 0);
            assert_eq!(stats.dropped, 0);
        }
    });
}

#[cfg(feature = "cloudevents")]
#[test]
fn events_from_cloudevents() {
    use switchyard_cloudevents::Event as CloudEvent;
    let cloud = CloudEvent::builder()
        .id("ce-1")
        .ty("com.example.order.created")
        .source("/orders")
        .json_data(&json!({"order": 42}))
        .build()
        .expect("valid");
    let event = Event::from(cloud);
    assert_eq!(event.id, "ce-1");
    assert_eq!(event.source, "/orders");
    assert_eq!(event.event_type, "com.example.order.created");
    assert_eq!(event.data, json!({"order": 42}));

    let binary = CloudEvent::builder()
        .id("ce-2")
        .ty("t")
        .source("/s")
        .data(switchyard_cloudevents::Data::Binary(vec![0xde, 0xad]))
        .build()
        .expect("valid");
    assert_eq!(Event::from(binary).data, json!("3q0="));
}

/// A CloudEvent's attributes reach filters as `cloudevent`, with extensions typed; an event
/// that was not a CloudEvent has an empty `cloudevent`, so `has()` on it is false, not an
/// error.
#[cfg(feature = "cloudevents")]
#[tokio::test]
async fn cloudevent_attributes_are_visible_to_filters() {
    use switchyard_cloudevents::Event as CloudEvent;

    let hub = Hub::new();
    let from_github = hub
        .subscribe(
            "s",
            "cloudevent.source == '/github/acme' && cloudevent.subject.startsWith('pr/') \
             && cloudevent.priority > 3 && cloudevent.urgent \
             && timestamp(cloudevent.time) > timestamp('2026-01-01T00:00:00Z')",
        )
        .expect("subscribe");
    let plain_only = hub
        .subscribe("s", "!has(cloudevent.specversion)")
        .expect("subscribe");
    let cloud = CloudEvent::builder()
        .id("e-1")
        .ty("pull_request.opened")
        .source("/github/acme")
        .subject("pr/42")
        .time("2026-12-05T10:00:00Z")
        .extension("priority", 5)
        .extension("urgent", true)
        .extension("traceparent", "00-abc-def-01")
        .json_data(&json!({"number": 42}))
        .build()
        .expect("a valid CloudEvent");
    let mut from_cloud = Event::from(cloud);
    // A server may file it under a source of its own; the attributes keep the original.
    from_cloud.source = "s".to_owned();
    hub.publish(from_cloud).expect("publish");
    hub.publish(event("s", "post", 1)).expect("publish");

    let got = hub
        .next_event(&[from_github], POLL)
        .await
        .expect("ok")
        .expect("the CloudEvent matched");
    let attributes = got.cloudevent.as_ref().expect("attributes kept");
    assert_eq!(attributes["subject"], "pr/42");
    assert_eq!(attributes["traceparent"], "00-abc-def-01");
    assert_eq!(attributes["priority"], 5);
    assert!(
        hub.next_event(&[from_github], POLL)
            .await
            .expect("ok")
            .is_none()
    );
    let got = hub
        .next_event(&[plain_only], POLL)
        .await
        .expect("ok")
        .expect("the plain event matched");
    assert_eq!(got.data["n"], 1);
    assert!(got.cloudevent.is_none());
    assert!(
        hub.next_event(&[plain_only], POLL)
            .await
            .expect("ok")
            .is_none()
    );
    assert_eq!(hub.stats(from_github).expect("stats").eval_errors, 1);
}

/// An event of about `kib` KiB of data.
fn big(source: &str, n: i64, kib: usize) -> Event {
    Event::new(source, "t", json!({"n": n, "blob": "x".repeat(kib * 1024)}))
}

#[tokio::test]
async fn queues_are_bounded_in_bytes_per_subscription_and_in_total() {
    let hub = Hub::with_config(HubConfig {
        queue_bytes: 64 * 1024,
        total_bytes: 100 * 1024,
        ..HubConfig::default()
    });
    let first = hub.subscribe("s", "").expect("subscribe");
    let second = hub.subscribe("s", "").expect("subscribe");
    // 1,100 events of 10 KiB each to two idle subscriptions (the hostile report's shape).
    for n in 0..1100 {
        hub.publish(big("s", n, 10)).expect("publish");
        assert!(hub.queued_bytes() <= 100 * 1024, "{}", hub.queued_bytes());
    }
    let (a, b) = (hub.stats(first).unwrap(), hub.stats(second).unwrap());
    assert!(a.queued_bytes <= 64 * 1024 && b.queued_bytes <= 64 * 1024);
    assert_eq!(a.queued_bytes + b.queued_bytes, hub.queued_bytes());
    assert!(a.dropped > 1000, "{a:?}");
    // What is kept is the newest of each queue, in order.
    let newest = hub
        .next_event(&[first], POLL)
        .await
        .unwrap()
        .expect("an event");
    assert!(
        newest.data["n"].as_i64().unwrap() > 1090,
        "{}",
        newest.data["n"]
    );
    // Taking events frees their bytes.
    while hub
        .next_event(&[first, second], POLL)
        .await
        .unwrap()
        .is_some()
    {}
    assert_eq!(hub.queued_bytes(), 0);

    // An event larger than a queue's byte limit never fits: dropped (counted), or the
    // publish refused for a `Refuse` subscription.
    let before = hub.stats(first).unwrap().dropped;
    hub.publish(big("s", 0, 80)).expect("publish");
    assert_eq!(hub.stats(first).unwrap().dropped, before + 1);
    let strict = hub
        .subscribe_with(
            "s",
            "",
            SubscribeOptions {
                when_full: Some(WhenFull::Refuse),
                ..SubscribeOptions::default()
            },
        )
        .unwrap();
    assert!(matches!(
        hub.publish(big("s", 0, 80)),
        Err(Error::QueueFull { subscription, .. }) if subscription == strict
    ));
}

#[test]
fn subscriptions_are_capped() {
    let hub = Hub::with_config(HubConfig {
        max_subscriptions: 3,
        ..HubConfig::default()
    });
    let ids: Vec<_> = (0..3).map(|_| hub.subscribe("s", "").unwrap()).collect();
    assert_eq!(
        hub.subscribe("s", ""),
        Err(Error::TooManySubscriptions { limit: 3 })
    );
    hub.unsubscribe(ids[0]).unwrap();
    assert!(hub.subscribe("s", "").is_ok(), "room again");
}

#[tokio::test]
async fn subscriptions_nobody_polls_expire() {
    let hub = Hub::with_config(HubConfig {
        idle_expiry: Duration::from_millis(1200),
        ..HubConfig::default()
    });
    let forgotten = hub.subscribe("s", "").unwrap();
    let polled = hub.subscribe("s", "").unwrap();
    // Waited on the whole time by a long-poll its filter keeps waiting.
    let waited_on = hub.subscribe("s", "event_type == 'never'").unwrap();
    let waiter = {
        let hub = hub.clone();
        tokio::spawn(async move {
            hub.next_event(&[waited_on], Some(Duration::from_secs(4)))
                .await
        })
    };
    for n in 0..5 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        hub.publish(event("s", "t", n)).unwrap();
        assert!(hub.next_event(&[polled], POLL).await.unwrap().is_some());
    }
    // 2.5 s without a poll: gone, with what it queued; asking for it says so.
    assert_eq!(
        hub.next_event(&[forgotten], POLL).await,
        Err(Error::Expired(forgotten))
    );
    assert_eq!(hub.unsubscribe(forgotten), Err(Error::Expired(forgotten)));
    assert_eq!(hub.len(), 2, "the polled one and the waited-on one stay");
    // The long-poll ends on its own timeout, not with an error.
    assert_eq!(waiter.await.unwrap(), Ok(None));
    assert_eq!(
        hub.queued_bytes(),
        hub.stats(polled).unwrap().queued_bytes + hub.stats(waited_on).unwrap().queued_bytes
    );
}
