//! The portal at `/portal`, over HTTP: sign-in for the operator and through a portal link,
//! the session cookie's attributes, CSRF on sign-out, the security headers, escaping, and a
//! customer's session reaching its own application only. (`cargo xtask ci` drives the same
//! pages in Chromium too.)
#![allow(clippy::unwrap_used)] // Test code.

mod common;

use http::{Method, StatusCode};
use serde_json::json;

use common::{Api, Reply, TOKEN};

/// A browser-like client: no bearer token, a cookie when given.
async fn get(api: &Api, path: &str, cookie: Option<&str>) -> Reply {
    let cookie = cookie.map(|c| format!("switchyard_portal={c}"));
    let headers: Vec<(&str, &str)> = cookie.iter().map(|c| ("cookie", c.as_str())).collect();
    api.send_with(Method::GET, path, &headers, "").await
}

async fn post_form(api: &Api, path: &str, cookie: Option<&str>, form: &str) -> Reply {
    let cookie = cookie.map(|c| format!("switchyard_portal={c}"));
    let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
    if let Some(cookie) = &cookie {
        headers.push(("cookie", cookie.as_str()));
    }
    api.send_with(Method::POST, path, &headers, form.to_owned())
        .await
}

/// A server (in a fresh data directory, kept alive by the first value) with the application
/// `shop`, an API client with the server token, and a browser-like client without one.
async fn shop() -> (
    tempfile::TempDir,
    switchyard_server::RunningServer,
    Api,
    Api,
) {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());
    let browser = api.with_token(None);
    api.post("/api/v1/app", &json!({"name": "Shop", "uid": "shop"}))
        .await;
    (dir, server, api, browser)
}

/// Signs in with `token`: the session cookie's value, after checking its attributes.
async fn sign_in(api: &Api, token: &str) -> String {
    let form = format!("token={token}");
    let reply = post_form(api, "/portal/session", None, &form).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{:?}", reply.body);
    assert_eq!(reply.headers["location"], "/portal");
    let set = reply.headers["set-cookie"].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/portal", "Max-Age="] {
        assert!(set.contains(attribute), "{attribute} missing from {set}");
    }
    let value = set
        .strip_prefix("switchyard_portal=")
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    value.to_owned()
}

fn text(reply: &Reply) -> String {
    String::from_utf8(reply.body.to_vec()).unwrap()
}

/// The CSRF token of the sign-out form on a page.
fn csrf_of(page: &str) -> String {
    let at = page.find(r#"name="csrf" value=""#).unwrap() + r#"name="csrf" value=""#.len();
    page[at..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn the_operator_signs_in_and_sees_every_application() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());
    let browser = api.with_token(None);

    let root = get(&browser, "/", None).await;
    assert_eq!(root.status, StatusCode::SEE_OTHER);
    assert_eq!(root.headers["location"], "/portal");
    let sign_in_page = get(&browser, "/portal", None).await;
    assert_eq!(sign_in_page.status, StatusCode::OK);
    let csp = sign_in_page.headers["content-security-policy"]
        .to_str()
        .unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert_eq!(sign_in_page.headers["cache-control"], "no-store");
    assert_eq!(sign_in_page.headers["x-content-type-options"], "nosniff");
    assert!(text(&sign_in_page).contains(r#"action="/portal/session""#));
    assert!(
        !text(&sign_in_page).contains("<script>"),
        "no inline script: the policy would refuse it"
    );

    // A form posted from another site is refused before the token is looked at.
    let foreign = browser
        .send_with(
            Method::POST,
            "/portal/session",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("origin", "https://evil.example"),
            ],
            format!("token={TOKEN}"),
        )
        .await;
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    assert!(foreign.headers.get("set-cookie").is_none());
    let refused = post_form(&browser, "/portal/session", None, "token=wrong").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.headers.get("set-cookie").is_none());

    // An application whose name and endpoint are attacker-chosen text.
    let hostile = "<script>alert(1)</script>";
    api.post("/api/v1/app", &json!({"name": hostile, "uid": "evil"}))
        .await;
    let endpoint = api
        .post(
            "/api/v1/app/evil/endpoint",
            &json!({"url": "https://example.com/hook?a=1&b=2",
                    "description": "\"><img src=x onerror=alert(1)><b>bold</b>"}),
        )
        .await;
    assert_eq!(endpoint.status, StatusCode::CREATED, "{:?}", endpoint.body);
    api.post("/api/v1/app", &json!({"name": "Plain", "uid": "plain"}))
        .await;

    let cookie = sign_in(&browser, TOKEN).await;
    assert!(cookie.starts_with("op."), "{cookie}");
    assert!(
        !cookie.contains(TOKEN),
        "the server token is not in the cookie"
    );
    let list = get(&browser, "/portal", Some(&cookie)).await;
    assert_eq!(list.status, StatusCode::OK);
    let page = text(&list);
    assert!(page.contains("Plain"));
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    assert!(!page.contains(hostile));
    assert!(
        !page.contains(r#"rel="prev""#) && !page.contains(r#"rel="next""#),
        "one page: nothing before or after it"
    );

    let app = get(&browser, "/portal/app/evil", Some(&cookie)).await;
    assert_eq!(app.status, StatusCode::OK);
    let page = text(&app);
    assert!(page.contains("&lt;b&gt;bold&lt;/b&gt;"));
    assert!(page.contains("https://example.com/hook?a=1&amp;b=2"));
    assert!(!page.contains("<img src=x"), "{page}");

    // A tampered or foreign cookie is no session.
    let tampered = format!("{}x", &cookie[..cookie.len() - 1]);
    let again = get(&browser, "/portal", Some(&tampered)).await;
    assert!(text(&again).contains(r#"action="/portal/session""#));
    let forged_expiry = cookie.replacen("op.", "op.9", 1);
    let again = get(&browser, "/portal/app/plain", Some(&forged_expiry)).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "back to sign-in");

    // Sign-out needs the page's CSRF token.
    let without = post_form(&browser, "/portal/sign-out", Some(&cookie), "csrf=nope").await;
    assert_eq!(without.status, StatusCode::FORBIDDEN);
    let csrf = csrf_of(&page);
    let out = post_form(
        &browser,
        "/portal/sign-out",
        Some(&cookie),
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(
        out.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_portal_link_opens_its_application_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());
    let browser = api.with_token(None);
    let mut ids = Vec::new();
    for uid in ["tenant-a", "tenant-b"] {
        let app = api
            .post("/api/v1/app", &json!({"name": uid, "uid": uid}))
            .await
            .json();
        ids.push(app["id"].as_str().unwrap().to_owned());
        api.post(
            &format!("/api/v1/app/{uid}/endpoint"),
            &json!({"url": format!("https://{uid}.example/hook")}),
        )
        .await;
    }
    let issued = api
        .post("/api/v1/auth/app-portal-access/tenant-a", &json!({}))
        .await
        .json();
    let token = issued["token"].as_str().unwrap();
    assert!(issued["url"].as_str().unwrap().contains("/portal/#key="));

    let cookie = sign_in(&browser, token).await;
    let home = get(&browser, "/portal", Some(&cookie)).await;
    assert_eq!(home.status, StatusCode::SEE_OTHER);
    assert_eq!(home.headers["location"], format!("/portal/app/{}", ids[0]));
    let own = get(&browser, &format!("/portal/app/{}", ids[0]), Some(&cookie)).await;
    assert_eq!(own.status, StatusCode::OK);
    assert!(text(&own).contains("https://tenant-a.example/hook"));
    for other in [ids[1].as_str(), "tenant-b"] {
        let other = get(&browser, &format!("/portal/app/{other}"), Some(&cookie)).await;
        assert_eq!(other.status, StatusCode::NOT_FOUND);
        assert!(!text(&other).contains("tenant-b.example"));
    }

    // Logging the token out ends the session.
    let logout = api
        .with_token(Some(token))
        .post("/api/v1/auth/logout", &json!({}))
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    let after = get(&browser, &format!("/portal/app/{}", ids[0]), Some(&cookie)).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn endpoints_are_added_and_messages_read_through_the_pages() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());
    let browser = api.with_token(None);
    let app = api
        .post("/api/v1/app", &json!({"name": "Shop", "uid": "shop"}))
        .await
        .json();
    let app_id = app["id"].as_str().unwrap();
    for name in ["invoice.paid", "invoice.failed"] {
        api.post(
            "/api/v1/event-type",
            &json!({"name": name, "description": ""}),
        )
        .await;
    }
    let cookie = sign_in(&browser, TOKEN).await;
    let form_page = text(&get(&browser, "/portal/app/shop/endpoint/new", Some(&cookie)).await);
    let csrf = csrf_of(&form_page);

    // Without the CSRF token nothing is made; an address the SSRF guard refuses is said so.
    let path = format!("/portal/app/{app_id}/endpoint");
    let forged = post_form(
        &browser,
        &path,
        Some(&cookie),
        "url=https%3A%2F%2Fa.example%2F",
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let private = post_form(
        &browser,
        &path,
        Some(&cookie),
        &format!("csrf={csrf}&url=http%3A%2F%2F169.254.169.254%2F"),
    )
    .await;
    assert_eq!(private.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(&private).contains("SSRF guard"), "{}", text(&private));
    let bad_rate = post_form(
        &browser,
        &path,
        Some(&cookie),
        &format!("csrf={csrf}&url=https%3A%2F%2Fa.example%2F&rate_limit=0"),
    )
    .await;
    assert_eq!(bad_rate.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        text(&bad_rate).contains(r#"value="https://a.example/""#),
        "the form keeps what was typed"
    );
    assert!(
        api.get("/api/v1/app/shop/endpoint").await.json()["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let made = post_form(
        &browser,
        &path,
        Some(&cookie),
        &format!(
            "csrf={csrf}&url=https%3A%2F%2Fa.example%2Fhook&description=Mine\
             &event_types=invoice.paid%2C+invoice.failed&channels=eu&rate_limit=5"
        ),
    )
    .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", text(&made));
    let listed = api.get("/api/v1/app/shop/endpoint").await.json();
    let endpoint = &listed["data"][0];
    assert_eq!(endpoint["url"], "https://a.example/hook");
    assert_eq!(
        endpoint["filterTypes"],
        json!(["invoice.failed", "invoice.paid"])
    );
    assert_eq!(endpoint["channels"], json!(["eu"]));
    assert_eq!(endpoint["rateLimit"], 5);

    // The message log, filtered; a message's page shows its payload as text.
    let mut ids = Vec::new();
    for (event_type, note) in [
        ("invoice.paid", "<script>x()</script>"),
        ("invoice.failed", ""),
    ] {
        let sent = api
            .post(
                "/api/v1/app/shop/msg",
                &json!({"eventType": event_type, "payload": {"note": note}, "channels": ["eu"]}),
            )
            .await
            .json();
        ids.push(sent["id"].as_str().unwrap().to_owned());
    }
    let log = text(&get(&browser, "/portal/app/shop/msg", Some(&cookie)).await);
    assert!(log.contains(&ids[0]) && log.contains(&ids[1]));
    let paid = text(
        &get(
            &browser,
            "/portal/app/shop/msg?event_type=invoice.paid",
            Some(&cookie),
        )
        .await,
    );
    assert!(paid.contains(&ids[0]) && !paid.contains(&ids[1]));
    let bad = get(
        &browser,
        "/portal/app/shop/msg?channel=a%20b",
        Some(&cookie),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Sent after or before a time (RFC 3339, or a local time read as UTC).
    for (query, shown) in [
        ("after=2999-01-01T00%3A00%3A00Z", false),
        ("before=2000-01-01T00%3A00%3A00Z", false),
        ("after=2000-01-01T00%3A00", true),
        (
            "before=2999-01-01T00%3A00%3A00%2B02%3A00&event_type=invoice.paid",
            true,
        ),
    ] {
        let path = format!("/portal/app/shop/msg?{query}");
        let page = text(&get(&browser, &path, Some(&cookie)).await);
        assert_eq!(page.contains(&ids[0]), shown, "{query}");
    }
    let bad_time = get(
        &browser,
        "/portal/app/shop/msg?after=yesterday",
        Some(&cookie),
    )
    .await;
    assert_eq!(bad_time.status, StatusCode::UNPROCESSABLE_ENTITY);
    let page = text(
        &get(
            &browser,
            &format!("/portal/app/shop/msg/{}", ids[0]),
            Some(&cookie),
        )
        .await,
    );
    assert!(page.contains("&lt;script&gt;x()&lt;/script&gt;"), "{page}");
    assert!(!page.contains("<script>x()"));
    assert!(page.contains("https://a.example/hook"), "where it went");

    // Resend needs the CSRF token too; a read-only link may look, not change.
    let resend = format!("/portal/app/shop/msg/{}/resend", ids[0]);
    let endpoint_id = endpoint["id"].as_str().unwrap();
    let forged = post_form(
        &browser,
        &resend,
        Some(&cookie),
        &format!("endpoint={endpoint_id}"),
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let resent = post_form(
        &browser,
        &resend,
        Some(&cookie),
        &format!("csrf={}&endpoint={endpoint_id}", csrf_of(&page)),
    )
    .await;
    assert_eq!(resent.status, StatusCode::SEE_OTHER);
    let issued = api
        .post(
            "/api/v1/auth/app-portal-access/shop",
            &json!({"readOnly": true}),
        )
        .await
        .json();
    let reader = sign_in(&browser, issued["token"].as_str().unwrap()).await;
    let reader_page = text(
        &get(
            &browser,
            &format!("/portal/app/shop/msg/{}", ids[0]),
            Some(&reader),
        )
        .await,
    );
    let refused = post_form(
        &browser,
        &resend,
        Some(&reader),
        &format!("csrf={}&endpoint={endpoint_id}", csrf_of(&reader_page)),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_endpoints_page_reveals_rotates_disables_recovers_and_deletes() {
    let (_dir, server, api, browser) = shop().await;
    let endpoint = api
        .post(
            "/api/v1/app/shop/endpoint",
            &json!({"url": "https://a.example/hook", "uid": "main"}),
        )
        .await
        .json();
    let id = endpoint["id"].as_str().unwrap();
    let secret = api
        .get(&format!("/api/v1/app/shop/endpoint/{id}/secret"))
        .await
        .json()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let cookie = sign_in(&browser, TOKEN).await;
    let base = format!("/portal/app/shop/endpoint/{id}");
    let page = text(&get(&browser, &base, Some(&cookie)).await);
    assert!(page.contains("https://a.example/hook"));
    assert!(!page.contains(&secret), "the secret shows only on request");
    let csrf = csrf_of(&page);
    let act = |action: &str, extra: &str| {
        let form = format!("csrf={csrf}{extra}");
        let path = format!("{base}/{action}");
        let (browser, cookie) = (&browser, cookie.clone());
        async move { post_form(browser, &path, Some(&cookie), &form).await }
    };

    let forged = post_form(&browser, &format!("{base}/secret"), Some(&cookie), "").await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(!text(&forged).contains(&secret));
    let revealed = act("secret", "").await;
    assert_eq!(revealed.status, StatusCode::OK);
    assert!(text(&revealed).contains(&secret));

    let rotated = act("rotate", "").await;
    let new_secret = api
        .get(&format!("/api/v1/app/shop/endpoint/{id}/secret"))
        .await
        .json()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_secret, secret);
    assert!(text(&rotated).contains(&new_secret));

    let toggled = act("toggle", "").await;
    assert_eq!(toggled.status, StatusCode::SEE_OTHER);
    let got = api
        .get(&format!("/api/v1/app/shop/endpoint/{id}"))
        .await
        .json();
    assert_eq!(got["disabled"], true);
    assert_eq!(got["uid"], "main", "the other settings stay");
    act("toggle", "").await;
    let got = api
        .get(&format!("/api/v1/app/shop/endpoint/{id}"))
        .await
        .json();
    assert_eq!(got["disabled"], false);

    let recovered = act("recover", "&since=2026-01-01T00%3A00%3A00Z").await;
    assert_eq!(recovered.status, StatusCode::OK);
    assert!(text(&recovered).contains("0 failed messages are being sent again"));
    let local = act("recover", "&since=&since_local=2026-01-01T00%3A00").await;
    assert!(text(&local).contains("being sent again"));

    let unknown = act("explode", "").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let deleted = act("delete", "").await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    assert_eq!(
        api.get(&format!("/api/v1/app/shop/endpoint/{id}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let gone = get(&browser, &base, Some(&cookie)).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    server.shutdown().await.unwrap();
}

/// The message log's page times with 50,000 messages in the application (issue 25's
/// figure; measured and printed, not asserted):
/// `cargo test --release -p switchyard-server --test portal -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run on demand in release"]
#[allow(clippy::print_stdout)] // The figures are the output.
async fn the_message_log_with_fifty_thousand_messages() {
    use std::time::{Duration, Instant};
    use switchyard_webhooks::store::SqliteStore;
    use switchyard_webhooks::{ApplicationSpec, EventTypeName, ListOptions, NewMessage, Registry};

    const MESSAGES: usize = 50_000;
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("webhooks");
    std::fs::create_dir_all(&store_dir).unwrap();
    let started = Instant::now();
    let mut ids = Vec::with_capacity(MESSAGES);
    // Every message goes to one endpoint, which takes it: 50,000 attempts, all successes.
    let (url, seen) = common::recording_receiver(Duration::ZERO).await;
    {
        let registry = Registry::new(SqliteStore::open(store_dir.join("store.db")).await.unwrap());
        registry
            .create_application(ApplicationSpec::new("Big").uid("big").unwrap())
            .await
            .unwrap();
        let app = registry.app("big").await.unwrap();
        app.create_endpoint(switchyard_webhooks::EndpointSpec::new(url))
            .await
            .unwrap();
        let (paid, failed) = (
            EventTypeName::new("invoice.paid").unwrap(),
            EventTypeName::new("invoice.failed").unwrap(),
        );
        for i in 0..MESSAGES {
            let payload = format!(r#"{{"n": {i}}}"#);
            let event_type = if i % 10 == 0 { &failed } else { &paid };
            let mut new = NewMessage::new(event_type, payload.as_bytes());
            if i % 100 == 0 {
                new = new.channel("rare");
            }
            ids.push(app.create_message_with(new).await.unwrap().id);
        }
    }
    println!(
        "seeded {MESSAGES} messages in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());
    let delivered = Instant::now();
    while seen.lock().unwrap().len() < MESSAGES {
        assert!(
            delivered.elapsed() < Duration::from_secs(300),
            "deliveries stalled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "delivered them in {:.1} s",
        delivered.elapsed().as_secs_f64()
    );
    let browser = api.with_token(None);
    let cookie = sign_in(&browser, TOKEN).await;
    let middle = ListOptions::iterator_after(ids[MESSAGES / 2].as_str());
    let pages = [
        ("first page", "/portal/app/big/msg".to_owned()),
        (
            "page at the middle",
            format!("/portal/app/big/msg?iterator={middle}"),
        ),
        (
            "page before the middle",
            format!("/portal/app/big/msg?iterator=-{middle}"),
        ),
        (
            "event type 1 in 10",
            "/portal/app/big/msg?event_type=invoice.failed".to_owned(),
        ),
        (
            "channel 1 in 100",
            "/portal/app/big/msg?channel=rare".to_owned(),
        ),
        (
            "attempts that succeeded",
            "/portal/app/big/msg?status=succeeded".to_owned(),
        ),
        (
            "attempts that failed (none: all 50,000 read)",
            "/portal/app/big/msg?status=failed".to_owned(),
        ),
    ];
    println!("| page | p50 | max (20 requests, loopback, release) |\n|---|---:|---:|");
    for (what, path) in pages {
        let mut times: Vec<Duration> = Vec::new();
        for _ in 0..20 {
            let at = Instant::now();
            let reply = get(&browser, &path, Some(&cookie)).await;
            times.push(at.elapsed());
            assert_eq!(reply.status, StatusCode::OK, "{what}");
            let page = text(&reply);
            assert!(
                page.contains("msg_") || page.contains("No attempts."),
                "{what}: a page of messages"
            );
        }
        times.sort();
        println!(
            "| {what} | {:.1} ms | {:.1} ms |",
            times[times.len() / 2].as_secs_f64() * 1000.0,
            times[times.len() - 1].as_secs_f64() * 1000.0
        );
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_catalogue_examples_and_editing_an_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(dir.path()).await;
    let api = Api::new(server.local_addr());
    let browser = api.with_token(None);
    let schema = json!({"type": "object", "examples": [{"amount": "<b>3</b>"}]});
    api.post(
        "/api/v1/event-type",
        &json!({"name": "invoice.paid", "description": "An invoice was <em>paid</em>",
                "schemas": {"1": schema}}),
    )
    .await;
    api.post(
        "/api/v1/event-type",
        &json!({"name": "invoice.bare", "description": ""}),
    )
    .await;
    api.post("/api/v1/app", &json!({"name": "Shop", "uid": "shop"}))
        .await;
    let endpoint = api
        .post(
            "/api/v1/app/shop/endpoint",
            &json!({"url": "https://a.example/hook", "uid": "main",
                    "headers": {"x-kept": "yes"}, "channels": ["eu"]}),
        )
        .await
        .json();
    let id = endpoint["id"].as_str().unwrap();
    let cookie = sign_in(&browser, TOKEN).await;

    let catalogue = text(&get(&browser, "/portal/event-types", Some(&cookie)).await);
    assert!(catalogue.contains("invoice.paid") && catalogue.contains("invoice.bare"));
    assert!(catalogue.contains("An invoice was &lt;em&gt;paid&lt;/em&gt;"));
    assert!(
        catalogue.contains("&lt;b&gt;3&lt;/b&gt;"),
        "the example, escaped"
    );

    // Send example: the schema's example, or svix.ping; a type without one is said so.
    let page = text(
        &get(
            &browser,
            &format!("/portal/app/shop/endpoint/{id}"),
            Some(&cookie),
        )
        .await,
    );
    let csrf = csrf_of(&page);
    let example = |event_type: &str| {
        let form = format!("csrf={csrf}&event_type={event_type}");
        let path = format!("/portal/app/shop/endpoint/{id}/example");
        let (browser, cookie) = (&browser, cookie.clone());
        async move { post_form(browser, &path, Some(&cookie), &form).await }
    };
    let sent = example("invoice.paid").await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", text(&sent));
    let message_page = sent.headers["location"].to_str().unwrap().to_owned();
    let shown = text(&get(&browser, &message_page, Some(&cookie)).await);
    assert!(shown.contains("&lt;b&gt;3&lt;/b&gt;"), "{shown}");
    assert_eq!(example("svix.ping").await.status, StatusCode::SEE_OTHER);
    let none = example("invoice.bare").await;
    assert_eq!(none.status, StatusCode::OK);
    assert!(text(&none).contains("has no example"));

    // Editing changes the form's settings and keeps the rest.
    let form = text(
        &get(
            &browser,
            &format!("/portal/app/shop/endpoint/{id}/edit"),
            Some(&cookie),
        )
        .await,
    );
    assert!(form.contains(r#"value="https://a.example/hook""#));
    assert!(form.contains(r#"value="eu""#));
    let edit = format!("/portal/app/shop/endpoint/{id}/edit");
    let bad = post_form(
        &browser,
        &edit,
        Some(&cookie),
        &format!("csrf={csrf}&url=not+a+url"),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let saved = post_form(
        &browser,
        &edit,
        Some(&cookie),
        &format!(
            "csrf={csrf}&url=https%3A%2F%2Fb.example%2Fhook&description=Moved\
             &event_types=invoice.paid&channels=&rate_limit=7"
        ),
    )
    .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", text(&saved));
    let got = api
        .get(&format!("/api/v1/app/shop/endpoint/{id}"))
        .await
        .json();
    assert_eq!(got["url"], "https://b.example/hook");
    assert_eq!(got["description"], "Moved");
    assert_eq!(got["filterTypes"], json!(["invoice.paid"]));
    assert_eq!(got["channels"], json!(null));
    assert_eq!(got["rateLimit"], 7);
    assert_eq!(got["uid"], "main");
    let headers = api
        .get(&format!("/api/v1/app/shop/endpoint/{id}/headers"))
        .await
        .json();
    assert_eq!(headers["headers"]["x-kept"], "yes", "headers stay");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_endpoints_health_counts_its_attempts() {
    let (_dir, server, api, browser) = shop().await;
    let (url, seen) = common::recording_receiver(std::time::Duration::ZERO).await;
    let endpoint = api
        .post("/api/v1/app/shop/endpoint", &json!({"url": url}))
        .await
        .json();
    let id = endpoint["id"].as_str().unwrap();
    let cookie = sign_in(&browser, TOKEN).await;
    let base = format!("/portal/app/shop/endpoint/{id}");
    let before = text(&get(&browser, &base, Some(&cookie)).await);
    assert!(before.contains("no attempts yet"));
    assert!(before.contains("0 succeeded, 0 failed"));
    for i in 0..2 {
        api.post(
            "/api/v1/app/shop/msg",
            &json!({"eventType": "a.b", "payload": {"i": i}}),
        )
        .await;
    }
    for _ in 0..200 {
        if seen.lock().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    for period in ["hour", "day", "week", "fortnight"] {
        let page = text(&get(&browser, &format!("{base}?period={period}"), Some(&cookie)).await);
        assert!(page.contains("healthy"), "{period}");
        assert!(page.contains("2 succeeded, 0 failed"), "{period}: {page}");
        assert!(page.contains("<svg"), "{period}");
        let expected = if period == "fortnight" { "day" } else { period };
        assert!(
            page.contains(&format!("<strong>Last {expected}</strong>")),
            "{period}"
        );
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn hostile_portal_requests_get_answers_below_500() {
    let (_dir, server, api, browser) = shop().await;
    let cookie = sign_in(&browser, TOKEN).await;
    let csrf = csrf_of(&text(&get(&browser, "/portal", Some(&cookie)).await));
    for path in [
        "/portal?iterator=garbage",
        "/portal?iterator=-garbage",
        "/portal/app/nope",
        "/portal/app/shop?iterator=izz",
        "/portal/app/shop/msg?iterator=-izz",
        "/portal/app/shop/msg?event_type=%00",
        "/portal/app/shop/msg/garbage",
        "/portal/app/shop/msg/msg_3N5LCbLfCg6Cl9Pywhkk1O9MVPD",
        "/portal/app/shop/endpoint/garbage",
        "/portal/app/shop/endpoint/garbage/edit",
        "/portal/app/shop/endpoint/garbage/nothing",
        "/portal/app/shop/endpoint/garbage?period=%ff",
        "/portal/event-types?iterator=q",
    ] {
        let reply = get(&browser, path, Some(&cookie)).await;
        assert!(reply.status.as_u16() < 500, "{path}: {}", reply.status);
    }
    let long = "x".repeat(20_000);
    for (path, form) in [
        (
            "/portal/app/shop/msg/garbage/resend",
            "endpoint=nope".to_owned(),
        ),
        (
            "/portal/app/shop/msg/msg_3N5LCbLfCg6Cl9Pywhkk1O9MVPD/resend",
            "endpoint=nope".to_owned(),
        ),
        ("/portal/app/shop/endpoint", format!("url={long}")),
        (
            "/portal/app/shop/endpoint",
            "url=%ZZ&rate_limit=-1".to_owned(),
        ),
        ("/portal/app/shop/endpoint/garbage/delete", String::new()),
        (
            "/portal/app/shop/endpoint/garbage/example",
            "event_type=..".to_owned(),
        ),
        ("/portal/app/shop/endpoint/garbage/edit", "url=".to_owned()),
    ] {
        let form = format!("csrf={csrf}&{form}");
        let reply = post_form(&browser, path, Some(&cookie), &form).await;
        assert!(reply.status.as_u16() < 500, "{path}: {}", reply.status);
    }
    // The store is untouched by all of it.
    assert!(
        api.get("/api/v1/app/shop/endpoint").await.json()["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn endpoint_headers_through_the_form_keep_credentials_hidden() {
    let (_dir, server, api, browser) = shop().await;
    let cookie = sign_in(&browser, TOKEN).await;
    let csrf = csrf_of(&text(
        &get(&browser, "/portal/app/shop/endpoint/new", Some(&cookie)).await,
    ));
    let add = |headers: &str| {
        let form = format!(
            "csrf={csrf}&url=https%3A%2F%2Fa.example%2Fhook&headers={}",
            form_urlencoded::byte_serialize(headers.as_bytes()).collect::<String>()
        );
        let (browser, cookie) = (&browser, cookie.clone());
        async move { post_form(browser, "/portal/app/shop/endpoint", Some(&cookie), &form).await }
    };
    // A line that is not `Name: value`, a name given twice, a header the signer sets: the
    // form again, naming the line or header and never a value.
    for (lines, says) in [
        ("X-Tenant 42", "header line 1"),
        ("X-Tenant: 1\r\nx-tenant: 2", "given twice"),
        ("webhook-signature: forged-value", "webhook-signature"),
    ] {
        let refused = add(lines).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{lines}");
        let page = text(&refused);
        let alert = page
            .split(r#"role="alert">"#)
            .nth(1)
            .and_then(|rest| rest.split("</p>").next())
            .unwrap();
        assert!(alert.contains(says), "{lines}: {alert}");
        assert!(
            !alert.contains("42") && !alert.contains("forged-value"),
            "{alert}"
        );
    }
    let added = add("X-Tenant: 42\r\n\r\nAuthorization: Bearer very-secret-value\r\n").await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", text(&added));
    let list = api.get("/api/v1/app/shop/endpoint").await.json();
    let id = list["data"][0]["id"].as_str().unwrap().to_owned();
    let stored = |api: &Api| {
        let path = format!("/api/v1/app/shop/endpoint/{id}/headers");
        let api = api.clone();
        async move { api.get(&path).await.json()["headers"].clone() }
    };
    assert_eq!(
        stored(&api).await,
        json!({"X-Tenant": "42", "Authorization": "Bearer very-secret-value"})
    );

    // The endpoint page and the edit form show the plain header, and of the credential
    // only its name.
    let base = format!("/portal/app/shop/endpoint/{id}");
    let page = text(&get(&browser, &base, Some(&cookie)).await);
    assert!(page.contains("X-Tenant: 42"), "{page}");
    assert!(page.contains("Authorization: <em>hidden</em>"), "{page}");
    let edit = format!("{base}/edit");
    let form = text(&get(&browser, &edit, Some(&cookie)).await);
    assert!(form.contains("X-Tenant: 42"), "{form}");
    assert!(form.contains(r#"name="remove_header" value="Authorization""#));
    for shown in [&page, &form] {
        assert!(!shown.contains("very-secret-value"));
    }

    // Saving the form as shown keeps the hidden header; a line of the same name replaces
    // it; ticking it removes it; plain headers are the lines given.
    let save = |extra: &str| {
        let form = format!("csrf={csrf}&url=https%3A%2F%2Fa.example%2Fhook&headers={extra}");
        let (browser, cookie, edit) = (&browser, cookie.clone(), edit.clone());
        async move { post_form(browser, &edit, Some(&cookie), &form).await }
    };
    assert_eq!(save("X-Tenant%3A+43").await.status, StatusCode::SEE_OTHER);
    assert_eq!(
        stored(&api).await,
        json!({"X-Tenant": "43", "Authorization": "Bearer very-secret-value"})
    );
    assert_eq!(
        save("authorization%3A+Bearer+new").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(stored(&api).await, json!({"authorization": "Bearer new"}));
    let removed = save("X-Other%3A+1&remove_header=authorization").await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    assert_eq!(stored(&api).await, json!({"X-Other": "1"}));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_failing_endpoint_says_since_when() {
    let (_dir, server, api, browser) = shop().await;
    // Nothing listens on port 9 of loopback: every attempt fails without a response.
    let endpoint = api
        .post(
            "/api/v1/app/shop/endpoint",
            &json!({"url": "http://127.0.0.1:9/hook"}),
        )
        .await
        .json();
    let id = endpoint["id"].as_str().unwrap();
    let cookie = sign_in(&browser, TOKEN).await;
    let base = format!("/portal/app/shop/endpoint/{id}");
    api.post(
        "/api/v1/app/shop/msg",
        &json!({"eventType": "a.b", "payload": {}}),
    )
    .await;
    let mut page = String::new();
    for _ in 0..200 {
        page = text(&get(&browser, &base, Some(&cookie)).await);
        if page.contains("failing since") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(page.contains(r#"id="state">failing since <time"#), "{page}");
    // The first failure or a retry after it (every 200 ms in these tests).
    assert!(
        ["1", "2", "3", "4"]
            .iter()
            .any(|n| page.contains(&format!("0 succeeded, {n} failed"))),
        "{page}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_log_filters_attempts_by_status_and_endpoint() {
    let (_dir, server, api, browser) = shop().await;
    let (url, seen) = common::recording_receiver(std::time::Duration::ZERO).await;
    let good = api
        .post(
            "/api/v1/app/shop/endpoint",
            &json!({"url": url, "uid": "good"}),
        )
        .await
        .json();
    let bad = api
        .post(
            "/api/v1/app/shop/endpoint",
            &json!({"url": "http://127.0.0.1:9/hook", "uid": "bad"}),
        )
        .await
        .json();
    let (good, bad) = (good["id"].as_str().unwrap(), bad["id"].as_str().unwrap());
    // Another application's attempts never show here.
    api.post("/api/v1/app", &json!({"name": "Other", "uid": "other"}))
        .await;
    api.post("/api/v1/app/other/endpoint", &json!({"url": url}))
        .await;
    api.post(
        "/api/v1/app/other/msg",
        &json!({"eventType": "other.thing", "payload": {}}),
    )
    .await;
    for i in 0..3 {
        api.post(
            "/api/v1/app/shop/msg",
            &json!({"eventType": "order.made", "payload": {"i": i}}),
        )
        .await;
    }
    let cookie = sign_in(&browser, TOKEN).await;
    let log = |query: &str| {
        let path = format!("/portal/app/shop/msg?{query}");
        let (browser, cookie) = (&browser, cookie.clone());
        async move { get(browser, &path, Some(&cookie)).await }
    };
    // Until every first attempt is recorded.
    for _ in 0..200 {
        let failed = text(&log("status=failed").await);
        let succeeded = text(&log("status=succeeded").await);
        if seen.lock().unwrap().len() >= 4
            && failed.matches("<tr>").count() >= 4
            && succeeded.matches("<tr>").count() >= 4
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let failed = text(&log("status=failed").await);
    assert!(failed.contains(r#"id="attempts""#), "{failed}");
    assert!(failed.contains(bad) && !failed.contains(&format!(">{good}<")));
    assert!(!failed.contains("other.thing"));
    let succeeded = text(&log("status=succeeded").await);
    assert_eq!(
        succeeded.matches(&format!("<code>{good}</code>")).count(),
        3
    );
    assert!(!succeeded.contains(&format!("<code>{bad}</code>")));
    // By endpoint (its uid is enough), any status; with a status too.
    let to_good = text(&log("endpoint=good").await);
    assert_eq!(to_good.matches("<tr>").count(), 4, "a header row and three");
    assert!(to_good.contains(&format!(r#"<option value="{good}" selected>"#)));
    let none = text(&log(&format!("endpoint={good}&status=failed")).await);
    assert!(none.contains("No attempts."));
    // Without either, messages as before.
    assert!(text(&log("").await).contains(r#"id="messages""#));
    for query in ["status=lost", "endpoint=nobody"] {
        let refused = log(query).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
    }
    server.shutdown().await.unwrap();
}
