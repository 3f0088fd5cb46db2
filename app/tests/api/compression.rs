//! Content codings: br, zstd and gzip as the client asks, for 200 responses of at least 1 KiB,
//! never when the client does not ask (a Prometheus scrape without Accept-Encoding gets plain
//! text), never for requests with credentials (BREACH: see `conditional.rs` in the crate), and
//! request bodies are never decompressed.

use std::io::Read;

use crate::helpers::{spawn_app_with, Backend, Reply, TestApp};

fn decode(coding: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .expect("gzip");
        }
        "br" => {
            brotli::Decompressor::new(body, 4096)
                .read_to_end(&mut out)
                .expect("br");
        }
        "zstd" => out = zstd::decode_all(body).expect("zstd"),
        other => panic!("unexpected coding {other}"),
    }
    out
}

async fn get(app: &TestApp, url: String, headers: &[(&str, &str)]) -> Reply {
    let mut req = app.client.get(url);
    for (name, value) in headers {
        req = req.insert_header((*name, *value));
    }
    app.send(req, None).await
}

/// Enough users that a page of 50 is well over the threshold.
async fn app_with_users() -> TestApp {
    let app = spawn_app_with(Backend::Sqlite, &[("RATE_LIMIT_PER_SECOND", "0")]).await;
    for i in 0..50 {
        let reply = app
            .create_user(
                &format!("Compressible User {i}"),
                &format!("user-{i}@example.com"),
            )
            .await;
        assert_eq!(reply.status, 201);
    }
    app
}

#[actix_web::test]
async fn large_responses_come_in_the_coding_asked_for() {
    let app = app_with_users().await;
    let url = app.url("/api/users?limit=50");
    let plain = get(&app, url.clone(), &[]).await;
    assert_eq!(plain.status, 200);
    assert!(
        plain.header("content-encoding").is_none(),
        "none asked, none given"
    );
    assert!(
        plain.body.len() >= 1024,
        "the page is {} bytes",
        plain.body.len()
    );
    assert_eq!(plain.header("vary").as_deref(), Some("accept-encoding"));
    let plain_tag = plain.header("etag").expect("ETag");

    for (accept, coding) in [
        ("gzip", "gzip"),
        ("br", "br"),
        ("zstd", "zstd"),
        ("gzip, deflate, br, zstd", "br"),
        ("gzip;q=1.0, br;q=0.5, zstd;q=0.1", "gzip"),
        ("zstd, gzip;q=0.8", "zstd"),
    ] {
        let reply = get(&app, url.clone(), &[("Accept-Encoding", accept)]).await;
        assert_eq!(reply.status, 200, "{accept}");
        assert_eq!(
            reply.header("content-encoding").as_deref(),
            Some(coding),
            "{accept}"
        );
        assert_eq!(
            reply.header("vary").as_deref(),
            Some("accept-encoding"),
            "{accept}"
        );
        assert!(
            reply.body.len() < plain.body.len() / 2,
            "{accept}: {} bytes",
            reply.body.len()
        );
        assert_eq!(
            decode(coding, &reply.body),
            plain.body,
            "{accept}: the same JSON"
        );
        // A strong ETag names the coding, and revalidation works per coding.
        let tag = reply.header("etag").expect("ETag");
        assert_eq!(
            tag,
            format!("{}-{coding}\"", plain_tag.trim_end_matches('"'))
        );
        let again = get(
            &app,
            url.clone(),
            &[("Accept-Encoding", accept), ("If-None-Match", &tag)],
        )
        .await;
        assert_eq!(again.status, 304, "{accept}");
        assert_eq!(again.header("etag"), Some(tag.clone()));
        assert_eq!(again.header("vary").as_deref(), Some("accept-encoding"));
        let other_coding = get(&app, url.clone(), &[("If-None-Match", &tag)]).await;
        assert_eq!(
            other_coding.status, 200,
            "the plain representation is another one"
        );
    }
    // Codings we do not offer, or identity only: plain.
    for accept in [
        "compress",
        "identity",
        "*;q=0, identity;q=1",
        "gzip;q=0",
        "deflate",
    ] {
        let reply = get(&app, url.clone(), &[("Accept-Encoding", accept)]).await;
        assert_eq!(reply.status, 200, "{accept}");
        assert!(reply.header("content-encoding").is_none(), "{accept}");
        assert_eq!(reply.body, plain.body);
    }
    // Refusing identity too still gets an answer, plain (a 406 would break more than it helps).
    let refused = get(
        &app,
        url.clone(),
        &[("Accept-Encoding", "identity;q=0, *;q=0")],
    )
    .await;
    assert_eq!(refused.status, 200);
}

#[actix_web::test]
async fn small_responses_errors_and_credentialed_requests_are_never_compressed() {
    let app = app_with_users().await;
    let gzip = [("Accept-Encoding", "gzip, br, zstd")];
    // Under the threshold: one user, a short page, the probes.
    for path in ["/api/users/1", "/api/users?limit=2", "/health", "/ready"] {
        let reply = get(&app, app.url(path), &gzip).await;
        assert_eq!(reply.status, 200, "{path}");
        assert!(reply.header("content-encoding").is_none(), "{path}");
        assert!(
            reply.header("vary").is_none(),
            "{path}: never coded, never varies"
        );
    }
    // Errors: the body echoes what the client sent.
    let long_query = format!("/api/users?limit={}", "9".repeat(2000));
    let reply = get(&app, app.url(&long_query), &gzip).await;
    assert!(reply.status >= 400);
    assert!(reply.header("content-encoding").is_none());
    // Credentials: a read with a token (or a cookie) is not compressed. (Writes answer with one
    // user, under the threshold anyway.)
    let with_token = app
        .send(
            app.authed(app.client.get(app.url("/api/users?limit=50")))
                .insert_header(gzip[0]),
            None,
        )
        .await;
    assert_eq!(with_token.status, 200);
    assert!(with_token.header("content-encoding").is_none());
    assert!(with_token.body.len() >= 1024);
    let with_cookie = get(
        &app,
        app.url("/api/users?limit=50"),
        &[gzip[0], ("Cookie", "session=x")],
    )
    .await;
    assert!(with_cookie.header("content-encoding").is_none());
}

#[actix_web::test]
async fn metrics_are_compressed_only_when_the_scraper_asks() {
    let app = app_with_users().await;
    let plain = get(&app, app.internal_url("/metrics"), &[]).await;
    assert_eq!(plain.status, 200);
    assert!(plain.header("content-encoding").is_none());
    assert!(plain.text().contains("http_requests_total"));
    // Prometheus sends Accept-Encoding: gzip.
    let scraped = get(
        &app,
        app.internal_url("/metrics"),
        &[("Accept-Encoding", "gzip")],
    )
    .await;
    assert_eq!(scraped.header("content-encoding").as_deref(), Some("gzip"));
    let text = String::from_utf8(decode("gzip", &scraped.body)).expect("UTF-8");
    assert!(
        text.contains("# TYPE http_requests_total counter"),
        "{text}"
    );
}

#[actix_web::test]
async fn encoded_request_bodies_are_refused() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut encoder, br#"{"name":"Zip","email":"zip@example.com"}"#)
        .expect("gzip");
    let body = encoder.finish().expect("gzip");
    let reply = app
        .authed(app.client.post(app.url("/api/users")))
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("Content-Encoding", "gzip"))
        .send_bytes(&body)
        .await;
    let problem = reply.problem(415);
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("content coding")),
        "{problem}"
    );
    assert_eq!(reply.header("accept-encoding").as_deref(), Some("identity"));
    assert_eq!(
        app.get("/api/users").await.json()["items"],
        serde_json::json!([])
    );
}
