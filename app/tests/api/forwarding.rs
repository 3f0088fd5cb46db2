//! The client address cannot be forged: behind a trusted proxy the forwarding header is read from
//! the right, so hops a client adds on the left change nothing, for the rate limiter and for the
//! security log alike; without trusted proxies the header is ignored.

use crate::helpers::{spawn_app_with, Backend, TestApp};

async fn list_as(app: &TestApp, forwarded_for: &str) -> u16 {
    let req = app
        .client
        .get(app.url("/api/users"))
        .insert_header(("X-Forwarded-For", forwarded_for));
    app.send(req, None).await.status
}

#[actix_web::test]
async fn rotating_forged_hops_does_not_escape_the_rate_limit() {
    // The test client connects from 127.0.0.1: that is the trusted proxy here.
    let app = spawn_app_with(
        Backend::Sqlite,
        &[
            ("TRUSTED_PROXIES", "127.0.0.1/32"),
            ("RATE_LIMIT_PER_SECOND", "1"),
            ("RATE_LIMIT_BURST", "5"),
        ],
    )
    .await;
    let mut statuses = Vec::new();
    for i in 0..30 {
        statuses.push(list_as(&app, &format!("198.51.100.{i}, 203.0.113.9")).await);
    }
    let passed = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        passed <= 6,
        "forged hops got {passed} of 30 past the limit: {statuses:?}"
    );
    // The address the proxy appended is a client of its own.
    assert_eq!(list_as(&app, "198.51.100.1, 203.0.113.10").await, 200);
}

#[actix_web::test]
async fn without_trusted_proxies_the_header_is_ignored() {
    let app = spawn_app_with(
        Backend::Sqlite,
        &[("RATE_LIMIT_PER_SECOND", "1"), ("RATE_LIMIT_BURST", "5")],
    )
    .await;
    let statuses: Vec<u16> = futures_statuses(&app, 30).await;
    let passed = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        passed <= 6,
        "{passed} of 30 passed by rotating X-Forwarded-For: {statuses:?}"
    );
}

async fn futures_statuses(app: &TestApp, n: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for i in 0..n {
        statuses.push(list_as(app, &format!("203.0.113.{i}")).await);
    }
    statuses
}

#[actix_web::test]
async fn security_events_log_the_real_client() {
    let app = spawn_app_with(Backend::Sqlite, &[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    let req = app
        .client
        .post(app.url("/api/users"))
        .insert_header(("X-Forwarded-For", "6.6.6.6, 203.0.113.9"))
        .insert_header(("Authorization", "Bearer wrong-token"));
    app.send(req, None).await.problem(401);
    let logs = app.logs.text();
    let event = logs
        .lines()
        .find(|l| l.contains("\"event\":\"auth_failure\""))
        .unwrap_or_else(|| panic!("{logs}"));
    assert!(
        event.contains("\"client_address\":\"203.0.113.9\""),
        "{event}"
    );
    assert!(!logs.contains("6.6.6.6"), "the forged hop was logged");
}

#[actix_web::test]
async fn rfc7239_forwarded_is_read_when_configured() {
    let app = spawn_app_with(
        Backend::Sqlite,
        &[
            ("TRUSTED_PROXIES", "127.0.0.1"),
            ("FORWARDED_HEADER", "forwarded"),
        ],
    )
    .await;
    let req = app
        .client
        .post(app.url("/api/users"))
        .insert_header((
            "Forwarded",
            "for=6.6.6.6, for=\"[2001:db8::9]:443\";proto=https",
        ))
        .insert_header(("X-Forwarded-For", "7.7.7.7"));
    app.send(req, None).await.problem(401);
    let logs = app.logs.text();
    assert!(
        logs.contains("\"client_address\":\"2001:db8::9\""),
        "{logs}"
    );
    assert!(
        !logs.contains("7.7.7.7") && !logs.contains("6.6.6.6"),
        "{logs}"
    );
}
