//! The public contract as reviewed snapshots (insta): both OpenAPI documents and the problem body of
//! every error the API answers. A change to any of them is a diff in `snapshots/` that a reviewer
//! accepts with `cargo insta review` (or by deleting the file and running the test), never silently.

use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, Backend, Reply, TestApp, TOKEN};

#[actix_web::test]
async fn openapi_documents() {
    let app = spawn_app_with(Backend::Sqlite, &[]).await;
    let public = app.get("/openapi.json").await.json();
    insta::assert_json_snapshot!("openapi_public", public);
    let internal = app
        .send(app.client.get(app.internal_url("/openapi.json")), None)
        .await
        .json();
    insta::assert_json_snapshot!("openapi_internal", internal);
}

/// Status, the headers a client acts on, and the body.
fn shape(reply: &Reply) -> Value {
    let mut headers = serde_json::Map::new();
    for name in [
        "content-type",
        "accept-encoding",
        "allow",
        "retry-after",
        "www-authenticate",
        "connection",
    ] {
        if let Some(value) = reply.header(name) {
            headers.insert(name.to_string(), Value::String(value));
        }
    }
    json!({"status": reply.status, "headers": headers, "body": reply.json()})
}

async fn send_json(app: &TestApp, method: &str, path: &str, body: &str, token: bool) -> Reply {
    let mut req = app
        .client
        .request(method, app.url(path))
        .insert_header(("Content-Type", "application/json"));
    if token {
        req = req.insert_header(("Authorization", format!("Bearer {TOKEN}")));
    }
    req.send_bytes(body.as_bytes()).await
}

#[actix_web::test]
async fn problem_bodies() {
    let app = spawn_app_with(
        Backend::Sqlite,
        &[
            ("RATE_LIMIT_PER_SECOND", "1"),
            ("RATE_LIMIT_BURST", "100"),
            ("MAX_BODY_BYTES", "1024"),
        ],
    )
    .await;
    let mut cases = serde_json::Map::new();
    let mut add = |name: &str, reply: Reply| {
        cases.insert(name.to_string(), shape(&reply));
    };
    add(
        "400 malformed JSON",
        send_json(&app, "POST", "/api/users", "{", true).await,
    );
    add(
        "400 JSON array",
        send_json(&app, "POST", "/api/users", "[]", true).await,
    );
    add("400 bad id", app.get("/api/users/abc").await);
    add("400 bad query", app.get("/api/users?limit=x").await);
    add(
        "401 missing token",
        send_json(&app, "POST", "/api/users", "{}", false).await,
    );
    add(
        "403 debug disabled",
        app.send(
            app.authed(app.client.get(app.internal_url("/debug/memory"))),
            None,
        )
        .await,
    );
    add("404 route", app.get("/nope").await);
    add("404 user", app.get("/api/users/99").await);
    add(
        "405",
        app.send(app.client.delete(app.url("/health")), None).await,
    );
    let created = send_json(
        &app,
        "POST",
        "/api/users",
        r#"{"name":"A","email":"a@example.com"}"#,
        true,
    )
    .await;
    assert_eq!(created.status, 201);
    add(
        "409 email taken",
        send_json(
            &app,
            "POST",
            "/api/users",
            r#"{"name":"B","email":"Ａ@example.com"}"#,
            true,
        )
        .await,
    );
    add(
        "413 body too large",
        send_json(
            &app,
            "POST",
            "/api/users",
            &format!(r#"{{"name":"{}"}}"#, "x".repeat(2000)),
            true,
        )
        .await,
    );
    add(
        "415 not JSON",
        app.authed(app.client.post(app.url("/api/users")))
            .insert_header(("Content-Type", "text/plain"))
            .send_bytes(b"hello")
            .await,
    );
    add(
        "422 body",
        send_json(
            &app,
            "POST",
            "/api/users",
            r#"{"name":"\u200b","email":"nope"}"#,
            true,
        )
        .await,
    );
    add("422 query", app.get("/api/users?limit=0").await);
    add(
        "400 malformed If-Match",
        app.authed(app.client.patch(app.url("/api/users/1")))
            .insert_header(("Content-Type", "application/json"))
            .insert_header(("If-Match", "not-quoted"))
            .send_bytes(br#"{"name":"B"}"#)
            .await,
    );
    add(
        "412 stale If-Match",
        app.authed(app.client.patch(app.url("/api/users/1")))
            .insert_header(("Content-Type", "application/json"))
            .insert_header(("If-Match", "\"0-0\""))
            .send_bytes(br#"{"name":"B"}"#)
            .await,
    );
    add(
        "415 encoded body",
        app.authed(app.client.post(app.url("/api/users")))
            .insert_header(("Content-Type", "application/json"))
            .insert_header(("Content-Encoding", "gzip"))
            .send_bytes(b"\x1f\x8b")
            .await,
    );
    let mut limited = None;
    for _ in 0..200 {
        let reply = app.get("/api/users").await;
        if reply.status == 429 {
            limited = Some(reply);
            break;
        }
    }
    let mut limited = limited.expect("the rate limit answers 429");
    // The wait depends on timing: snapshot its presence, not its value.
    limited
        .headers
        .insert("retry-after".into(), "<seconds>".into());
    let mut body = limited.json();
    body["detail"] = json!("<detail with seconds>");
    limited.body = serde_json::to_vec(&body).expect("json");
    add("429", limited);
    app.state.lifecycle.begin_shutdown();
    add("503 readiness while shutting down", app.get("/ready").await);
    insta::assert_json_snapshot!("problem_bodies", Value::Object(cases));
}
