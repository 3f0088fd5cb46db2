use serde_json::json;

use crate::backend_tests;
use crate::helpers::{sample_value, spawn_app, Backend};

async fn request_ids_are_accepted_or_generated(backend: Backend) {
    let app = spawn_app(backend).await;
    let generated = app
        .get("/health")
        .await
        .header("x-request-id")
        .expect("generated id");
    assert_eq!(generated.len(), 32);
    assert!(generated.bytes().all(|b| b.is_ascii_hexdigit()));
    let other = app
        .get("/health")
        .await
        .header("x-request-id")
        .expect("generated id");
    assert_ne!(generated, other);

    let req = app
        .client
        .get(app.url("/health"))
        .insert_header(("X-Request-ID", "trace-abc.123:x_y-z"));
    let echoed = app.send(req, None).await.header("x-request-id");
    assert_eq!(echoed.as_deref(), Some("trace-abc.123:x_y-z"));

    for bad in ["has space", "quote\"", &"a".repeat(129), "<script>"] {
        let req = app
            .client
            .get(app.url("/health"))
            .insert_header(("X-Request-ID", bad));
        let id = app
            .send(req, None)
            .await
            .header("x-request-id")
            .expect("id");
        assert_ne!(id, bad);
        assert_eq!(id.len(), 32, "replaced by a generated id");
    }
}

async fn every_log_line_of_a_request_carries_its_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let req = app
        .authed(app.client.post(app.url("/api/users")))
        .insert_header(("X-Request-ID", "req-42"))
        .insert_header(("User-Agent", "integration-test/1.0"));
    let reply = app
        .send(req, Some(json!({"name": "A", "email": "a@b.co"})))
        .await;
    assert_eq!(reply.status, 201);
    let lines: Vec<_> = app
        .logs
        .lines()
        .into_iter()
        .filter(|l| l["request_id"] == "req-42")
        .collect();
    let events: Vec<_> = lines
        .iter()
        .map(|l| l["event"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(events, ["user_created", "access"], "{}", app.logs.text());

    let access = &lines[1];
    for key in [
        "timestamp",
        "level",
        "message",
        "request_id",
        "method",
        "route",
        "status",
        "duration_ms",
        "user_agent",
        "client_address",
        "service",
        "version",
    ] {
        assert!(
            access.get(key).is_some(),
            "access log lacks {key}: {access}"
        );
    }
    assert_eq!(access["method"], "POST");
    assert_eq!(access["route"], "/api/users");
    assert_eq!(access["status"], 201);
    assert_eq!(access["user_agent"], "integration-test/1.0");
    assert_eq!(access["client_address"], "127.0.0.1");
    assert_eq!(access["service"], "devsecops-app");
    assert_eq!(access["level"], "info");
    assert!(access["duration_ms"].as_f64().is_some_and(|d| d >= 0.0));
}

async fn exactly_one_access_line_per_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let before = access_lines(&app);
    let paths = [
        "/health",
        "/ready",
        "/api/users",
        "/nope",
        "/api/users/1",
        "/api/users/x",
    ];
    for path in paths {
        app.get(path).await;
    }
    app.send(app.client.post(app.url("/api/users")), None).await;
    app.send(app.client.delete(app.url("/health")), None).await;
    let after = access_lines(&app);
    assert_eq!(after - before, paths.len() + 2, "{}", app.logs.text());
    let levels: Vec<_> = app
        .logs
        .lines()
        .into_iter()
        .filter(|l| l["event"] == "access")
        .map(|l| {
            (
                l["status"].as_u64().unwrap_or(0),
                l["level"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(
        levels.iter().all(|(s, l)| (*s >= 500) == (l == "error")),
        "{levels:?}"
    );
}

fn access_lines(app: &crate::helpers::TestApp) -> usize {
    app.logs
        .lines()
        .iter()
        .filter(|l| l["event"] == "access")
        .count()
}

async fn metrics_are_labelled_by_route_template(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.create_user("A", "a@b.co").await.json();
    for _ in 0..3 {
        app.get(&format!("/api/users/{}", user["id"])).await;
    }
    app.get("/api/users/424242").await;
    for i in 0..20 {
        app.get(&format!("/wp-admin/probe-{i}.php")).await;
    }
    let text = app.metrics().await;
    let ok = sample_value(
        &text,
        "http_requests_total",
        &[
            ("method", "GET"),
            ("endpoint", "/api/users/{id}"),
            ("status", "200"),
        ],
    );
    assert_eq!(ok, Some(3.0), "{text}");
    let missing = sample_value(
        &text,
        "http_requests_total",
        &[("endpoint", "/api/users/{id}"), ("status", "404")],
    );
    assert_eq!(missing, Some(1.0));
    let unmatched = sample_value(
        &text,
        "http_requests_total",
        &[("endpoint", "unmatched"), ("status", "404")],
    );
    assert_eq!(unmatched, Some(20.0));
    assert!(
        !text.contains("wp-admin"),
        "raw paths must not become labels"
    );
    assert!(
        !text.contains(&format!("/api/users/{}", user["id"])),
        "ids must not become labels"
    );
    let created = sample_value(
        &text,
        "http_requests_total",
        &[
            ("method", "POST"),
            ("endpoint", "/api/users"),
            ("status", "201"),
        ],
    );
    assert_eq!(created, Some(1.0));
    let count = sample_value(
        &text,
        "http_request_duration_seconds_count",
        &[("method", "GET"), ("endpoint", "/api/users/{id}")],
    );
    assert_eq!(count, Some(4.0));
    assert!(sample_value(&text, "http_requests_in_flight", &[]).is_some());
    assert_eq!(
        sample_value(
            &text,
            "app_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    assert!(sample_value(&text, "app_db_pool_max_connections", &[]).is_some_and(|v| v > 0.0));
    assert!(sample_value(&text, "app_db_pool_connections", &[("state", "idle")]).is_some());
    assert!(sample_value(&text, "process_resident_memory_bytes", &[]).is_some_and(|v| v > 0.0));
    assert!(sample_value(
        &text,
        "app_db_query_duration_seconds_count",
        &[("operation", "get_user")]
    )
    .is_some_and(|v| v >= 4.0));
}

#[actix_web::test]
async fn metrics_catalog_document_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md");
    let on_disk = std::fs::read_to_string(path).expect("docs/metrics.md exists");
    assert_eq!(
        on_disk,
        devsecops_app::metrics::catalog_markdown(),
        "docs/metrics.md is stale: run `cargo run -p devsecops-app --example metrics-doc > docs/metrics.md`"
    );
    // Every catalogued metric is really exported.
    let app = spawn_app(Backend::Sqlite).await;
    app.get("/api/users").await;
    let text = app.metrics().await;
    for (name, _, _, _) in devsecops_app::metrics::CATALOG {
        let name = name.trim_end_matches('*');
        assert!(
            text.contains(&format!("\n{name}")) || text.starts_with(name),
            "{name} not exported"
        );
    }
}

backend_tests!(
    request_ids_are_accepted_or_generated,
    every_log_line_of_a_request_carries_its_id,
    exactly_one_access_line_per_request,
    metrics_are_labelled_by_route_template,
);
