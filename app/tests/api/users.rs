use serde_json::json;

use crate::backend_tests;
use crate::helpers::{spawn_app, Backend};

async fn create_read_replace_patch_delete(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_user("  Ada Lovelace ", "Ada@Example.com").await;
    assert_eq!(created.status, 201, "{}", created.text());
    let user = created.json();
    let id = user["id"].as_i64().expect("id");
    assert_eq!(user["name"], "Ada Lovelace");
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(created.header("location"), Some(format!("/api/users/{id}")));

    let read = app.get(&format!("/api/users/{id}")).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.json(), user);

    let put = app.authed(app.client.put(app.url(&format!("/api/users/{id}"))));
    let replaced = app
        .send(
            put,
            Some(json!({"name": "Ada King", "email": "king@example.com"})),
        )
        .await;
    assert_eq!(replaced.status, 200, "{}", replaced.text());
    assert_eq!(replaced.json()["email"], "king@example.com");
    assert_eq!(replaced.json()["created_at"], user["created_at"]);

    let patch = app.authed(app.client.patch(app.url(&format!("/api/users/{id}"))));
    let patched = app.send(patch, Some(json!({"name": "Countess"}))).await;
    assert_eq!(patched.status, 200, "{}", patched.text());
    assert_eq!(patched.json()["name"], "Countess");
    assert_eq!(patched.json()["email"], "king@example.com");

    let delete = app.authed(app.client.delete(app.url(&format!("/api/users/{id}"))));
    let deleted = app.send(delete, None).await;
    assert_eq!(deleted.status, 204);
    assert!(deleted.body.is_empty());
    app.get(&format!("/api/users/{id}")).await.problem(404);
    let delete = app.authed(app.client.delete(app.url(&format!("/api/users/{id}"))));
    app.send(delete, None).await.problem(404);
}

async fn pages_cover_every_user_once(backend: Backend) {
    let app = spawn_app(backend).await;
    for i in 0..7 {
        let reply = app
            .create_user(&format!("User {i}"), &format!("u{i}@example.com"))
            .await;
        assert_eq!(reply.status, 201);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<i64> = None;
    let mut pages = 0;
    loop {
        let path = match cursor {
            Some(c) => format!("/api/users?limit=3&cursor={c}"),
            None => "/api/users?limit=3".to_string(),
        };
        let page = app.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.text());
        let page = page.json();
        assert_eq!(page["limit"], 3);
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 3);
        seen.extend(
            items
                .iter()
                .map(|u| u["email"].as_str().expect("email").to_string()),
        );
        pages += 1;
        match page["next_cursor"].as_i64() {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..7).map(|i| format!("u{i}@example.com")).collect();
    assert_eq!(seen, expected);

    let default = app.get("/api/users").await.json();
    assert_eq!(default["limit"], 20);
    assert_eq!(default["items"].as_array().map(Vec::len), Some(7));
    assert!(default.get("next_cursor").is_none());
}

async fn page_size_is_bounded(backend: Backend) {
    let app = spawn_app(backend).await;
    for query in ["limit=0", "limit=101", "cursor=-1"] {
        let body = app.get(&format!("/api/users?{query}")).await.problem(422);
        assert!(
            body["errors"].as_array().is_some_and(|e| !e.is_empty()),
            "{query}: {body}"
        );
    }
    assert_eq!(app.get("/api/users?limit=100").await.status, 200);
    app.get("/api/users?limit=lots").await.problem(400);
}

async fn duplicate_email_is_409_whatever_the_case(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(app.create_user("A", "same@example.com").await.status, 201);
    let body = app.create_user("B", "SAME@example.com").await.problem(409);
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("email")));

    // Changing another user's email to a taken one conflicts too.
    let other = app.create_user("C", "other@example.com").await.json();
    let patch = app.authed(
        app.client
            .patch(app.url(&format!("/api/users/{}", other["id"]))),
    );
    app.send(patch, Some(json!({"email": "same@example.com"})))
        .await
        .problem(409);
}

async fn validation_reports_every_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let post = app.authed(app.client.post(app.url("/api/users")));
    let body = app
        .send(post, Some(json!({"name": "   ", "email": "nope"})))
        .await
        .problem(422);
    let errors = body["errors"].as_array().expect("errors");
    let fields: Vec<_> = errors
        .iter()
        .map(|e| {
            (
                e["field"].as_str().expect("field"),
                e["code"].as_str().expect("code"),
            )
        })
        .collect();
    assert_eq!(fields, [("name", "empty"), ("email", "invalid_format")]);

    let post = app.authed(app.client.post(app.url("/api/users")));
    let body = app.send(post, Some(json!({}))).await.problem(422);
    assert_eq!(body["errors"].as_array().map(Vec::len), Some(2));

    let post = app.authed(app.client.post(app.url("/api/users")));
    let long = "x".repeat(101);
    let body = app
        .send(post, Some(json!({"name": long, "email": "a@b.co"})))
        .await
        .problem(422);
    assert_eq!(body["errors"][0]["code"], "too_long");

    let created = app.create_user("A", "a@example.com").await.json();
    let patch = app.authed(
        app.client
            .patch(app.url(&format!("/api/users/{}", created["id"]))),
    );
    app.send(patch, Some(json!({}))).await.problem(422);
    let put = app.authed(
        app.client
            .put(app.url(&format!("/api/users/{}", created["id"]))),
    );
    app.send(put, Some(json!({"name": "only a name"})))
        .await
        .problem(422);
    // Nothing changed.
    let after = app
        .get(&format!("/api/users/{}", created["id"]))
        .await
        .json();
    assert_eq!(after, created);
}

async fn unknown_fields_and_wrong_types_are_400(backend: Backend) {
    let app = spawn_app(backend).await;
    let post = app.authed(app.client.post(app.url("/api/users")));
    app.send(
        post,
        Some(json!({"name": "A", "email": "a@b.co", "admin": true})),
    )
    .await
    .problem(400);
    let post = app.authed(app.client.post(app.url("/api/users")));
    app.send(post, Some(json!({"name": 5, "email": "a@b.co"})))
        .await
        .problem(400);
    let post = app.authed(app.client.post(app.url("/api/users")));
    app.send(post, Some(json!([1, 2]))).await.problem(400);
}

async fn missing_users_are_404(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = app.get("/api/users/999999").await.problem(404);
    assert!(body["detail"]
        .as_str()
        .is_some_and(|d| d.contains("999999")));
    let put = app.authed(app.client.put(app.url("/api/users/999999")));
    app.send(put, Some(json!({"name": "A", "email": "a@b.co"})))
        .await
        .problem(404);
    let patch = app.authed(app.client.patch(app.url("/api/users/999999")));
    app.send(patch, Some(json!({"name": "A"})))
        .await
        .problem(404);
    app.get("/api/users/not-a-number").await.problem(400);
    app.get("/api/users/99999999999999999999999")
        .await
        .problem(400);
}

backend_tests!(
    create_read_replace_patch_delete,
    pages_cover_every_user_once,
    page_size_is_bounded,
    duplicate_email_is_409_whatever_the_case,
    validation_reports_every_field,
    unknown_fields_and_wrong_types_are_400,
    missing_users_are_404,
);
