use crate::backend_tests;
use crate::helpers::{spawn_app, spawn_app_with, Backend};

async fn malformed_json_is_400(backend: Backend) {
    let app = spawn_app(backend).await;
    let req = app
        .authed(app.client.post(app.url("/api/users")))
        .insert_header(("content-type", "application/json"));
    let body = req
        .send_bytes(br#"{"name": "A", "email": "#)
        .await
        .problem(400);
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("not valid JSON")),
        "{body}"
    );
}

async fn non_json_content_type_is_415(backend: Backend) {
    let app = spawn_app(backend).await;
    let req = app
        .authed(app.client.post(app.url("/api/users")))
        .insert_header(("content-type", "text/plain"));
    req.send_bytes(b"name=A").await.problem(415);
}

async fn body_over_the_limit_is_413(backend: Backend) {
    let app = spawn_app_with(backend, &[("MAX_BODY_BYTES", "1024")]).await;
    let name = "x".repeat(2_000);
    let post = app.authed(app.client.post(app.url("/api/users")));
    let body = app
        .send(
            post,
            Some(serde_json::json!({"name": name, "email": "a@b.co"})),
        )
        .await
        .problem(413);
    assert!(
        body["detail"].as_str().is_some_and(|d| d.contains("1024")),
        "{body}"
    );
    assert_eq!(
        app.get("/api/users").await.json()["items"]
            .as_array()
            .map(Vec::len),
        Some(0),
        "nothing stored"
    );
}

async fn unknown_route_is_404_problem(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in [
        "/nope",
        "/api",
        "/api/users/1/extra",
        "/../etc/passwd",
        "/api/users/",
    ] {
        app.get(path).await.problem(404);
    }
}

async fn wrong_method_is_405_with_allow(backend: Backend) {
    let app = spawn_app(backend).await;
    let reply = app.send(app.client.delete(app.url("/health")), None).await;
    reply.problem(405);
    assert_eq!(reply.header("allow").as_deref(), Some("GET, HEAD"));
    let reply = app.send(app.client.put(app.url("/api/users")), None).await;
    reply.problem(405);
    assert_eq!(reply.header("allow").as_deref(), Some("GET, HEAD, POST"));
    let reply = app
        .send(app.client.post(app.url("/api/users/1")), None)
        .await;
    reply.problem(405);
    assert_eq!(
        reply.header("allow").as_deref(),
        Some("GET, HEAD, PUT, PATCH, DELETE")
    );
}

async fn slow_handlers_answer_503_at_the_request_time_limit(backend: Backend) {
    // A database lock held by another connection makes the write wait; the request time limit
    // answers first. SQLite is used via an exclusive transaction; PostgreSQL via a row lock.
    let app = spawn_app_with(
        backend,
        &[
            ("REQUEST_TIMEOUT_MS", "800"),
            ("DB_ACQUIRE_TIMEOUT_MS", "500"),
            ("DB_STATEMENT_TIMEOUT_MS", "5000"),
        ],
    )
    .await;
    let user = app.create_user("A", "a@example.com").await.json();
    let id = user["id"].as_i64().expect("id");
    let blocker = match backend {
        Backend::Sqlite => {
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect(&app.database_url)
                .await
                .expect("connect");
            sqlx::query("BEGIN EXCLUSIVE")
                .execute(&mut conn)
                .await
                .expect("lock");
            Blocker::Sqlite(conn)
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&app.database_url)
                .await
                .expect("connect");
            sqlx::query("BEGIN")
                .execute(&mut conn)
                .await
                .expect("begin");
            sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
                .bind(id)
                .execute(&mut conn)
                .await
                .expect("lock");
            Blocker::Postgres(conn)
        }
    };
    let started = std::time::Instant::now();
    let patch = app.authed(app.client.patch(app.url(&format!("/api/users/{id}"))));
    let reply = app
        .send(patch, Some(serde_json::json!({"name": "B"})))
        .await;
    let elapsed = started.elapsed();
    let body = reply.problem(503);
    assert!(
        reply.header("x-request-id").is_some(),
        "headers on timeout responses too"
    );
    assert!(
        elapsed < std::time::Duration::from_secs(3),
        "answered in {elapsed:?}"
    );
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("800 ms")),
        "{body}"
    );
    drop(blocker);
    let logs = app.logs.text();
    assert!(
        logs.contains("\"event\":\"request_timeout\""),
        "timeout logged"
    );
}

enum Blocker {
    Sqlite(#[allow(dead_code)] sqlx::SqliteConnection),
    Postgres(#[allow(dead_code)] sqlx::PgConnection),
}

backend_tests!(
    malformed_json_is_400,
    non_json_content_type_is_415,
    body_over_the_limit_is_413,
    unknown_route_is_404_problem,
    wrong_method_is_405_with_allow,
    slow_handlers_answer_503_at_the_request_time_limit,
);
