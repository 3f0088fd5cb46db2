//! No request can grow a label set: random methods, paths, headers and bodies, sent without a token
//! and past nothing but the limits every client has, leave every metric label within its fixed set
//! and `/metrics` within a fixed size.

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

use crate::helpers::{raw_exchange, spawn_app_with, Backend};

/// A request as bytes: a method token (any `tchar`, up to 40,000 long), a path, headers, a body.
fn request() -> impl Strategy<Value = Vec<u8>> {
    let tchar = prop::sample::select(
        "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
            .chars()
            .collect::<Vec<_>>(),
    );
    let method = prop_oneof![
        prop::sample::select(vec![
            "GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"
        ])
        .prop_map(str::to_string),
        prop::collection::vec(tchar.clone(), 1..12).prop_map(|c| c.into_iter().collect()),
        (1usize..40_000).prop_map(|n| "X".repeat(n)),
    ];
    let segment = "[a-zA-Z0-9%._~{}-]{0,12}";
    let path = prop::collection::vec(segment, 0..5).prop_map(|s| format!("/{}", s.join("/")));
    let path = prop_oneof![
        path,
        Just("/api/users".to_string()),
        (1i64..1_000_000).prop_map(|id| format!("/api/users/{id}")),
    ];
    let header = ("[A-Za-z][A-Za-z0-9-]{0,15}", "[ -~]{0,40}");
    let headers = prop::collection::vec(header, 0..6);
    let body = prop::collection::vec(any::<u8>(), 0..200);
    (method, path, headers, body).prop_map(|(method, path, headers, body)| {
        let mut out = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
        for (name, value) in headers {
            if !["host", "content-length", "transfer-encoding", "connection"]
                .contains(&name.to_ascii_lowercase().as_str())
            {
                out.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&body);
        bytes
    })
}

fn label_values(text: &str, label: &str) -> BTreeSet<String> {
    let needle = format!("{label}=\"");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let start = l.find(&needle)? + needle.len();
            let end = l[start..].find('"')? + start;
            Some(l[start..end].to_string())
        })
        .collect()
}

#[actix_web::test]
async fn random_requests_cannot_grow_label_sets() {
    let app = spawn_app_with(Backend::Sqlite, &[("RATE_LIMIT_PER_SECOND", "0")]).await;
    // Every route and status once, so the size bound below holds the full legitimate set.
    for path in ["/health", "/ready", "/api/users", "/api/users/1", "/nope"] {
        app.get(path).await;
    }
    let mut runner = TestRunner::new(Config {
        rng_algorithm: proptest::test_runner::RngAlgorithm::ChaCha,
        ..Config::default()
    });
    let strategy = request();
    for _ in 0..400 {
        let bytes = strategy
            .new_tree(&mut runner)
            .expect("a generated request")
            .current();
        let _ = raw_exchange(&app.address, &bytes).await;
    }
    let metrics = app.metrics().await;
    let methods = label_values(&metrics, "method");
    let allowed: BTreeSet<String> = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "other",
    ]
    .iter()
    .map(|m| m.to_string())
    .collect();
    assert!(methods.is_subset(&allowed), "method labels: {methods:?}");
    assert!(
        methods.contains("other"),
        "no random method reached the router: {methods:?}"
    );
    let endpoints = label_values(&metrics, "endpoint");
    let routes: BTreeSet<String> = [
        "/health",
        "/ready",
        "/openapi.json",
        "/api/users",
        "/api/users/{id}",
        "unmatched",
    ]
    .iter()
    .map(|m| m.to_string())
    .collect();
    assert!(
        endpoints.is_subset(&routes),
        "endpoint labels: {endpoints:?}"
    );
    for status in label_values(&metrics, "status") {
        assert!(
            status.len() == 3 && status.bytes().all(|b| b.is_ascii_digit()),
            "status label {status:?}"
        );
    }
    // 10 methods x 6 endpoints x a dozen statuses, with histograms, is well under 256 KiB; one
    // 40,000-character method as a label value would not be.
    assert!(
        metrics.len() < 256 * 1024,
        "/metrics grew to {} bytes",
        metrics.len()
    );
}
