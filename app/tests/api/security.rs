use serde_json::json;

use crate::backend_tests;
use crate::helpers::{spawn_app, spawn_app_with, Backend, TOKEN};

async fn writes_without_a_valid_token_are_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = json!({"name": "A", "email": "a@b.co"});
    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "missing"),
        (Some("Bearer wrong-token".into()), "invalid"),
        (Some(format!("Bearer {TOKEN}x")), "invalid"),
        (Some(format!("Basic {TOKEN}")), "malformed"),
        (Some("Bearer".into()), "malformed"),
    ];
    for (header, reason) in &cases {
        let mut req = app.client.post(app.url("/api/users"));
        if let Some(h) = header {
            req = req.insert_header(("Authorization", h.as_str()));
        }
        let reply = app.send(req, Some(body.clone())).await;
        reply.problem(401);
        let challenge = reply.header("www-authenticate").expect("WWW-Authenticate");
        assert!(challenge.starts_with("Bearer realm="), "{challenge}");
        if *reason != "missing" {
            assert!(challenge.contains("invalid_token"), "{challenge}");
        }
    }
    for (reason, count) in [("missing", 1.0), ("invalid", 2.0), ("malformed", 2.0)] {
        assert_eq!(
            app.metric_value("app_auth_failures_total", &[("reason", reason)])
                .await,
            Some(count),
            "{reason}"
        );
    }
    // Nothing was written.
    assert_eq!(app.get("/api/users").await.json()["items"], json!([]));
    // Every write needs it.
    let created = app.create_user("A", "a@b.co").await.json();
    let path = format!("/api/users/{}", created["id"]);
    app.send(app.client.put(app.url(&path)), Some(body.clone()))
        .await
        .problem(401);
    app.send(app.client.patch(app.url(&path)), Some(json!({"name": "B"})))
        .await
        .problem(401);
    app.send(app.client.delete(app.url(&path)), None)
        .await
        .problem(401);
    // Reads do not.
    assert_eq!(app.get(&path).await.status, 200);
}

async fn auth_failures_are_security_events_without_the_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let secret_attempt = "Bearer attacker-guess-s3cr3t";
    let req = app
        .client
        .post(app.url("/api/users"))
        .insert_header(("Authorization", secret_attempt))
        .insert_header(("X-Request-ID", "auth-test-1"));
    app.send(req, Some(json!({"name": "A", "email": "a@b.co"})))
        .await
        .problem(401);
    assert_eq!(app.create_user("B", "b@b.co").await.status, 201);

    let events: Vec<_> = app
        .logs
        .lines()
        .into_iter()
        .filter(|l| l["event"] == "auth_failure")
        .collect();
    assert_eq!(events.len(), 1, "{}", app.logs.text());
    let event = &events[0];
    assert_eq!(event["level"], "warn");
    assert_eq!(event["reason"], "invalid");
    assert_eq!(event["request_id"], "auth-test-1");
    assert_eq!(event["security"], true);
    assert_eq!(event["client_address"], "127.0.0.1");
    let all = app.logs.text();
    assert!(
        !all.contains("attacker-guess-s3cr3t"),
        "presented token logged"
    );
    assert!(!all.contains(TOKEN), "configured token logged");
    assert!(
        !all.to_lowercase().contains("authorization"),
        "auth header logged"
    );
}

async fn security_headers_on_every_response(backend: Backend) {
    let app = spawn_app(backend).await;
    for reply in [
        app.get("/health").await,
        app.get("/api/users").await,
        app.get("/nope").await,
        app.send(app.client.post(app.url("/api/users")), None).await,
    ] {
        assert_eq!(
            reply.header("x-content-type-options").as_deref(),
            Some("nosniff")
        );
        assert_eq!(reply.header("x-frame-options").as_deref(), Some("DENY"));
        assert_eq!(
            reply.header("referrer-policy").as_deref(),
            Some("no-referrer")
        );
        let csp = reply.header("content-security-policy").expect("CSP");
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
        assert!(
            reply.header("strict-transport-security").is_none(),
            "HSTS off by default"
        );
    }
    let app = spawn_app_with(backend, &[("HSTS_MAX_AGE_SECS", "31536000")]).await;
    assert_eq!(
        app.get("/health")
            .await
            .header("strict-transport-security")
            .as_deref(),
        Some("max-age=31536000; includeSubDomains")
    );
}

async fn clients_over_their_rate_are_429_but_probes_are_not(backend: Backend) {
    let app = spawn_app_with(
        backend,
        &[("RATE_LIMIT_PER_SECOND", "1"), ("RATE_LIMIT_BURST", "3")],
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(app.get("/api/users").await);
    }
    let codes: Vec<u16> = statuses.iter().map(|r| r.status).collect();
    assert_eq!(&codes[..3], &[200, 200, 200], "burst allowed: {codes:?}");
    assert_eq!(codes[3], 429, "{codes:?}");
    let limited = &statuses[3];
    limited.problem(429);
    let retry: u64 = limited
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=2).contains(&retry), "retry after {retry}");
    // Probes and scrapes stay available to a limited client.
    for path in ["/health", "/ready"] {
        assert_eq!(app.get(path).await.status, 200, "{path}");
    }
    let limited_count = app
        .metric_value("app_rate_limited_requests_total", &[])
        .await;
    assert_eq!(limited_count, Some(2.0));
    assert!(app.logs.text().contains("\"event\":\"rate_limited\""));
    // The quota refills.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(app.get("/api/users").await.status, 200);
}

async fn oversized_headers_are_431(backend: Backend) {
    let app = spawn_app_with(backend, &[("MAX_HEADER_BYTES", "2048")]).await;
    let req = app
        .client
        .get(app.url("/api/users"))
        .insert_header(("X-Padding", "p".repeat(3000)));
    let body = app.send(req, None).await.problem(431);
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("2048")));
    assert_eq!(app.get("/api/users").await.status, 200);
}

async fn slow_clients_are_cut_off_at_the_header_read_timeout(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(backend, &[("HEADER_READ_TIMEOUT_MS", "500")]).await;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("partial head");
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut buf),
    )
    .await;
    assert!(read.is_ok(), "the server kept a slow client open for 5 s");
    let elapsed = started.elapsed();
    assert!(
        elapsed < std::time::Duration::from_secs(3),
        "closed after {elapsed:?}"
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
}

async fn connections_beyond_the_limit_wait_for_a_free_slot(backend: Backend) {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app_with(
        backend,
        &[("MAX_CONNECTIONS", "1"), ("HEADER_READ_TIMEOUT_MS", "5000")],
    )
    .await;
    // One client holds the only slot with an unfinished request head.
    let mut holder = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");
    holder
        .write_all(b"GET /health HTTP/1.1\r\n")
        .await
        .expect("partial head");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let waiting = actix_web::rt::spawn({
        let url = app.url("/health");
        let client = app.client;
        async move {
            let started = std::time::Instant::now();
            let reply = client.get(url).send_bytes(b"").await;
            (reply.status, started.elapsed())
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert!(
        !waiting.is_finished(),
        "a second connection was served beyond MAX_CONNECTIONS=1"
    );
    drop(holder);
    let (status, waited) = waiting.await.expect("task");
    assert_eq!(status, 200);
    assert!(
        waited >= std::time::Duration::from_millis(600),
        "waited {waited:?}"
    );
}

async fn debug_memory_is_403_unless_enabled(backend: Backend) {
    let app = spawn_app(backend).await;
    let req = app.authed(app.client.get(app.internal_url("/debug/memory")));
    app.send(req, None).await.problem(403);

    let app = spawn_app_with(backend, &[("DEBUG", "true")]).await;
    app.send(app.client.get(app.internal_url("/debug/memory")), None)
        .await
        .problem(401);
    // Never on the public listener, whatever the token.
    let req = app.authed(app.client.get(app.url("/debug/memory")));
    app.send(req, None).await.problem(404);
    let req = app.authed(app.client.get(app.internal_url("/debug/memory")));
    let reply = app.send(req, None).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["pid"], std::process::id());
    assert!(
        body["rss_bytes"].as_u64().is_some_and(|n| n > 1_000_000),
        "{body}"
    );
    assert!(body["virtual_bytes"].as_u64() >= body["rss_bytes"].as_u64());
    assert!(body["system_total_memory_bytes"]
        .as_u64()
        .is_some_and(|n| n > 0));
    assert!(body["db_pool"]["max"].as_u64().is_some_and(|n| n > 0));
}

backend_tests!(
    writes_without_a_valid_token_are_401,
    auth_failures_are_security_events_without_the_token,
    security_headers_on_every_response,
    clients_over_their_rate_are_429_but_probes_are_not,
    oversized_headers_are_431,
    slow_clients_are_cut_off_at_the_header_read_timeout,
    connections_beyond_the_limit_wait_for_a_free_slot,
    debug_memory_is_403_unless_enabled,
);
