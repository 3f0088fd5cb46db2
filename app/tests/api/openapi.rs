use std::collections::BTreeSet;

use serde_json::Value;

use crate::backend_tests;
use crate::helpers::{spawn_app_with, Backend};

const METHODS: &[&str] = &["get", "post", "put", "patch", "delete"];

/// Each listener's document describes what its router serves, no more and no less: every
/// documented operation is routed (never 404/405), and on each documented path the methods the
/// router accepts (its `Allow` header, and what answers other than 405) are exactly the documented
/// ones, plus HEAD wherever GET is (RFC 9110 9.3.2), answered like GET without a body.
async fn openapi_document_matches_the_router(backend: Backend) {
    let app = spawn_app_with(backend, &[("DEBUG", "true")]).await;
    let public = [
        "/health",
        "/ready",
        "/openapi.json",
        "/api/users",
        "/api/users/{id}",
    ];
    check_listener(&app, &app.address, &public).await;
    let internal = ["/metrics", "/openapi.json", "/debug/memory"];
    check_listener(&app, &app.internal_address, &internal).await;
    // Neither listener serves the other's paths.
    for path in ["/metrics", "/debug/memory"] {
        app.get(path).await.problem(404);
    }
    for path in ["/api/users", "/health", "/ready"] {
        let reply = app
            .send(
                app.client.get(format!("{}{path}", app.internal_address)),
                None,
            )
            .await;
        reply.problem(404);
    }
}

async fn openapi_can_be_kept_off_the_public_listener(backend: Backend) {
    let app = spawn_app_with(backend, &[("OPENAPI_PUBLIC", "false")]).await;
    app.get("/openapi.json").await.problem(404);
    let internal = app
        .send(app.client.get(app.internal_url("/openapi.json")), None)
        .await;
    assert_eq!(internal.status, 200);
}

async fn check_listener(app: &crate::helpers::TestApp, base: &str, expected: &[&str]) {
    let url = |path: &str| format!("{base}{path}");
    let reply = app.send(app.client.get(url("/openapi.json")), None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/json")
    );
    let doc = reply.json();
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "OpenAPI 3.1"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    let paths = doc["paths"].as_object().expect("paths");
    let expected: BTreeSet<&str> = expected.iter().copied().collect();
    assert_eq!(
        paths.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        expected
    );

    for (path, item) in paths {
        let concrete = path.replace("{id}", "1");
        let documented: BTreeSet<String> = METHODS
            .iter()
            .filter(|m| item.get(**m).is_some())
            .map(|m| m.to_uppercase())
            .collect();
        if documented.contains("GET") {
            let get = app
                .send(app.authed(app.client.get(url(&concrete))), None)
                .await;
            let head = app
                .send(app.authed(app.client.request("HEAD", url(&concrete))), None)
                .await;
            assert_eq!(head.status, get.status, "HEAD {path} answers like GET");
            assert!(head.body.is_empty(), "HEAD {path} has no body");
        }
        for method in METHODS {
            let req = app.client.request(&method.to_uppercase(), url(&concrete));
            let reply = app.send(app.authed(req), None).await;
            let is_documented = documented.contains(&method.to_uppercase());
            if is_documented {
                assert!(
                    reply.status != 404 || path.contains("{id}"),
                    "{method} {path} is documented but not routed"
                );
                assert_ne!(
                    reply.status, 405,
                    "{method} {path} is documented but refused"
                );
                check_operation(&doc, &item[*method], reply.status, path, method);
            } else {
                assert_eq!(
                    reply.status, 405,
                    "{method} {path} is served but undocumented"
                );
                let allow: BTreeSet<String> = reply
                    .header("allow")
                    .expect("Allow")
                    .split(", ")
                    .map(str::to_string)
                    .collect();
                let mut allowed = documented.clone();
                allowed.insert("HEAD".to_string());
                assert_eq!(allow, allowed, "Allow of {path}");
            }
        }
    }
}

/// Each operation documents the status it answered, an operationId, and every 4xx/5xx as a problem.
fn check_operation(doc: &Value, op: &Value, status: u16, path: &str, method: &str) {
    assert!(
        op["operationId"].is_string(),
        "{method} {path}: operationId"
    );
    let responses = op["responses"].as_object().expect("responses");
    assert!(
        responses.contains_key(&status.to_string()) || responses.contains_key("default"),
        "{method} {path}: status {status} undocumented"
    );
    assert!(
        responses.contains_key("default"),
        "{method} {path}: no default error"
    );
    for (code, response) in responses {
        if code == "default" || code.starts_with('4') || code.starts_with('5') {
            let schema = &response["content"]["application/problem+json"]["schema"]["$ref"];
            assert_eq!(
                schema, "#/components/schemas/Problem",
                "{method} {path} {code}"
            );
        }
    }
    let _ = doc;
}

backend_tests!(
    openapi_document_matches_the_router,
    openapi_can_be_kept_off_the_public_listener
);
