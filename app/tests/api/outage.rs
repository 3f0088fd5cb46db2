//! Database outages on PostgreSQL, through a proxy the test cuts: liveness stays up, readiness and the
//! API answer 503 quickly (never hang), and everything recovers when the database returns.

use std::time::{Duration, Instant};

use crate::helpers::{
    fresh_postgres_database, spawn_app_on, start_app_on, Proxy, ProxyMode, TestApp,
};

const REQUEST_TIMEOUT_MS: u64 = 3_000;

async fn app_behind_proxy() -> (TestApp, Proxy) {
    let url = fresh_postgres_database().await;
    let target: std::net::SocketAddr = "127.0.0.1:5432".parse().expect("address");
    let port = url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|hostport| hostport.rsplit(':').next())
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(5432);
    let target = std::net::SocketAddr::new(target.ip(), port);
    let proxy = Proxy::start(target).await;
    let proxied = url.replacen(&format!(":{port}/"), &format!(":{}/", proxy.port), 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_on(
        proxied,
        dir,
        &[
            ("REQUEST_TIMEOUT_MS", &REQUEST_TIMEOUT_MS.to_string()),
            ("DB_ACQUIRE_TIMEOUT_MS", "1000"),
            ("DB_STATEMENT_TIMEOUT_MS", "1000"),
        ],
    )
    .await;
    (app, proxy)
}

async fn timed_get(app: &TestApp, path: &str) -> (u16, Duration) {
    let started = Instant::now();
    let reply = app.get(path).await;
    (reply.status, started.elapsed())
}

async fn outage_then_recovery(mode: ProxyMode) {
    let (app, proxy) = app_behind_proxy().await;
    assert_eq!(app.create_user("A", "a@example.com").await.status, 201);
    assert_eq!(app.get("/ready").await.status, 200);

    proxy.set_mode(mode);
    let bound = Duration::from_millis(REQUEST_TIMEOUT_MS + 1_000);
    let (status, took) = timed_get(&app, "/health").await;
    assert_eq!(status, 200, "liveness ignores the database");
    assert!(took < Duration::from_millis(500), "/health took {took:?}");
    for path in ["/ready", "/api/users", "/api/users/1"] {
        let started = Instant::now();
        let reply = app.get(path).await;
        let took = started.elapsed();
        let body = reply.problem(503);
        assert!(took < bound, "{path} took {took:?} during {mode:?}");
        assert!(reply.header("retry-after").is_some(), "{path}: Retry-After");
        if path == "/ready" {
            assert_eq!(body["checks"]["database"]["status"], "down", "{body}");
        }
    }
    let write = app.create_user("B", "b@example.com").await;
    write.problem(503);
    assert_eq!(app.metric_value("app_db_up", &[]).await, Some(0.0));

    proxy.set_mode(ProxyMode::Open);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if app.get("/ready").await.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "readiness did not recover after {mode:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let page = app.get("/api/users").await;
    assert_eq!(page.status, 200, "{}", page.text());
    assert_eq!(
        page.json()["items"][0]["email"],
        "a@example.com",
        "data survived"
    );
    assert_eq!(app.create_user("B", "b@example.com").await.status, 201);
    assert_eq!(app.metric_value("app_db_up", &[]).await, Some(1.0));
}

#[actix_web::test]
async fn postgres_down_answers_503_fast_and_recovers() {
    outage_then_recovery(ProxyMode::Reset).await;
}

#[actix_web::test]
async fn postgres_partitioned_never_hangs_and_recovers() {
    outage_then_recovery(ProxyMode::Blackhole).await;
}

/// PostgreSQL down at start: the process starts unready instead of exiting into a crash loop,
/// answers 503 without hanging, migrates once the database answers, and turns ready.
#[actix_web::test]
async fn starts_unready_while_postgres_is_down_then_migrates() {
    let url = fresh_postgres_database().await;
    let target: std::net::SocketAddr = "127.0.0.1:5432".parse().expect("address");
    let proxy = Proxy::start(target).await;
    proxy.set_mode(ProxyMode::Reset);
    let proxied = url.replacen(":5432/", &format!(":{}/", proxy.port), 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let app = start_app_on(
        proxied,
        dir,
        &[
            ("DB_ACQUIRE_TIMEOUT_MS", "500"),
            ("REQUEST_TIMEOUT_MS", "2000"),
        ],
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "start is not held up by the database"
    );
    assert_eq!(app.get("/health").await.status, 200);
    let ready = app.get("/ready").await;
    let body = ready.problem(503);
    assert_eq!(
        body["checks"]["database"]["reason"], "not_migrated",
        "{body}"
    );
    app.get("/api/users").await.problem(503);
    app.create_user("A", "a@example.com").await.problem(503);
    assert_eq!(
        app.metric_value("app_db_errors_total", &[("reason", "not_migrated")])
            .await,
        Some(2.0)
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let logs = app.logs.text();
    assert!(logs.contains("\"event\":\"migrations_pending\""), "{logs}");
    assert!(!logs.contains("devsecops_test@"), "the URL is not logged");

    proxy.set_mode(ProxyMode::Open);
    let deadline = Instant::now() + Duration::from_secs(15);
    while app.get("/ready").await.status != 200 {
        assert!(
            Instant::now() < deadline,
            "never became ready: {}",
            app.logs.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.create_user("A", "a@example.com").await.status, 201);
    let every_version: Vec<i64> = (1..=devsecops_app::db::SCHEMA_VERSION).collect();
    assert!(app
        .logs
        .text()
        .contains(&format!("\"migrations_applied\":\"{every_version:?}\"")));
}
