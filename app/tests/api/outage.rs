//! Database outages on PostgreSQL, through a proxy the test cuts: liveness stays up, readiness and the
//! API answer 503 quickly (never hang), and everything recovers when the database returns.

use std::time::{Duration, Instant};

use crate::helpers::{fresh_postgres_database, spawn_app_on, Proxy, ProxyMode, TestApp};

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

#[actix_web::test]
async fn startup_fails_clearly_when_the_database_is_unreachable() {
    let settings = devsecops_app::configuration::Settings::from_source(
        &devsecops_app::configuration::Source::from_map(
            [
                ("API_TOKEN", "x"),
                ("DATABASE_URL", "postgres://nobody:nothing@127.0.0.1:1/none"),
                ("DB_ACQUIRE_TIMEOUT_MS", "500"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ),
    )
    .expect("settings");
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let started = Instant::now();
    let err = devsecops_app::startup::Application::build_with_listener(settings, logger, listener)
        .await
        .err()
        .expect("startup fails");
    assert!(err.0.starts_with("database migration failed"), "{}", err.0);
    assert!(!err.0.contains("nothing"), "password leaked: {}", err.0);
    assert!(started.elapsed() < Duration::from_secs(5));
}
