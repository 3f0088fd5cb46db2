//! Every request is visible. Requests actix-http refuses before routing (bad syntax, CL+TE, too
//! many headers, a head over its buffer, a head too slow) get its bare answer, which cannot be
//! changed, but are counted by reason and logged; a body that stops arriving is the client's
//! fault (408, logged at info), not an outage (503).

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::helpers::{raw_exchange, spawn_app_with, Backend, TestApp};

async fn refused(app: &TestApp, reason: &str) -> f64 {
    app.metric_value(
        "http_requests_refused_before_routing_total",
        &[("reason", reason)],
    )
    .await
    .unwrap_or(0.0)
}

fn status_of(response: &[u8]) -> String {
    String::from_utf8_lossy(response)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[actix_web::test]
async fn malformed_heads_are_counted_and_logged() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    // These events would also arrive through `log` without the subscriber: make sure they do not.
    assert!(devsecops_app::http_log::receives_tracing_events());
    let smuggling = b"POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    let mut many_headers = String::from("GET /health HTTP/1.1\r\nHost: x\r\n");
    for i in 0..120 {
        many_headers.push_str(&format!("X-H{i}: v\r\n"));
    }
    many_headers.push_str("\r\n");
    let cases: [(&[u8], &str); 3] = [
        (smuggling, "HTTP/1.1 400"),
        (
            b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
            "HTTP/1.1 400",
        ),
        // More than 96 headers is "too large" to actix-http.
        (many_headers.as_bytes(), "HTTP/1.1 431"),
    ];
    for (case, expect) in cases {
        let response = raw_exchange(&app.address, case).await;
        assert!(
            status_of(&response).starts_with(expect),
            "{}",
            String::from_utf8_lossy(&response)
        );
    }
    assert_eq!(
        refused(&app, "malformed").await,
        2.0,
        "{}",
        app.metrics().await
    );
    assert_eq!(refused(&app, "head_too_large").await, 1.0);
    let logs = app.logs.text();
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("\"event\":\"request_refused\""))
        .collect();
    assert_eq!(lines.len(), 3, "{logs}");
    assert!(
        lines.iter().all(|l| l.contains("\"level\":\"warn\"")),
        "{logs}"
    );
}

#[actix_web::test]
async fn heads_over_the_buffer_are_counted() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let head = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(140 * 1024)
    );
    let response = raw_exchange(&app.address, head.as_bytes()).await;
    assert!(
        status_of(&response).starts_with("HTTP/1.1 431"),
        "{}",
        status_of(&response)
    );
    assert_eq!(refused(&app, "head_too_large").await, 1.0);
}

#[actix_web::test]
async fn slow_heads_are_counted() {
    let app = spawn_app_with(Backend::Sqlite, &[("HEADER_READ_TIMEOUT_MS", "300")]).await;
    let response = raw_exchange(&app.address, b"GET /health HTTP/1.1\r\nHost: x\r\n").await;
    assert!(
        status_of(&response).starts_with("HTTP/1.1 408"),
        "{}",
        status_of(&response)
    );
    assert_eq!(
        refused(&app, "head_timeout").await,
        1.0,
        "{}",
        app.metrics().await
    );
}

#[actix_web::test]
async fn a_slow_body_is_408_not_an_outage() {
    let app = spawn_app_with(
        Backend::Sqlite,
        &[
            ("REQUEST_TIMEOUT_MS", "500"),
            ("DB_ACQUIRE_TIMEOUT_MS", "200"),
        ],
    )
    .await;
    let authority = app.address.strip_prefix("http://").expect("http");
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .expect("connect");
    let head = format!(
        "POST /api/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":",
        crate::helpers::TOKEN
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        use tokio::io::AsyncReadExt;
        let _ = stream.read_to_end(&mut response).await;
    })
    .await;
    assert!(read.is_ok(), "the connection was not closed");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
    assert!(text.to_ascii_lowercase().contains("x-request-id"), "{text}");
    let logs = app.logs.text();
    let line = logs
        .lines()
        .find(|l| l.contains("\"event\":\"request_body_timeout\""))
        .unwrap_or_else(|| panic!("{logs}"));
    assert!(line.contains("\"level\":\"info\""), "{line}");
    assert!(
        !logs.contains("\"level\":\"error\""),
        "a client's slowness logged as an error: {logs}"
    );
    assert_eq!(
        app.metric_value(
            "http_requests_total",
            &[("endpoint", "/api/users"), ("status", "408")]
        )
        .await,
        Some(1.0)
    );
}
