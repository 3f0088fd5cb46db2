use crate::backend_tests;
use crate::helpers::{spawn_app, Backend};

async fn health_reports_status_time_and_version(backend: Backend) {
    let app = spawn_app(backend).await;
    let reply = app.get("/health").await;
    assert_eq!(reply.status, 200);
    let body = reply.json();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    let ts = body["timestamp"].as_str().expect("timestamp");
    time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
        .expect("RFC 3339 timestamp");
}

async fn ready_checks_the_database(backend: Backend) {
    let app = spawn_app(backend).await;
    let reply = app.get("/ready").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"]["status"], "up");
    let expected = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(body["checks"]["database"]["backend"], expected);
    assert_eq!(app.metric_value("app_db_up", &[]).await, Some(1.0));
}

async fn ready_is_503_once_shutdown_begins(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(app.get("/ready").await.status, 200);
    assert!(app.state.lifecycle.begin_shutdown());
    let body = app.get("/ready").await.problem(503);
    assert_eq!(body["checks"]["shutdown"]["status"], "down");
    // Liveness is unaffected: the process is still healthy while it drains.
    assert_eq!(app.get("/health").await.status, 200);
}

async fn migrations_run_once_and_data_survives_a_restart(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(app.create_user("Ada", "ada@example.com").await.status, 201);
    // A second instance on the same database finds the schema applied and the data intact.
    let again = app.state.db.migrate().await.expect("migrate again");
    assert!(again.is_empty(), "no migration re-applied: {again:?}");
    let dir = tempfile::tempdir().expect("tempdir");
    let second = crate::helpers::spawn_app_on(app.database_url.clone(), dir, &[]).await;
    let page = second.get("/api/users").await.json();
    assert_eq!(page["items"][0]["email"], "ada@example.com");
}

backend_tests!(
    health_reports_status_time_and_version,
    ready_checks_the_database,
    ready_is_503_once_shutdown_begins,
    migrations_run_once_and_data_survives_a_restart,
);
