//! Input is what the OpenAPI document says: bodies are objects, names and emails hold no invisible
//! or reordering characters, emails are unique after Unicode compatibility folding, and query
//! errors name the query.

use serde_json::json;

use crate::backend_tests;
use crate::helpers::{spawn_app, Backend};

async fn json_arrays_are_not_objects(backend: Backend) {
    let app = spawn_app(backend).await;
    let req = app.authed(app.client.post(app.url("/api/users")));
    let reply = app.send(req, Some(json!(["Arr", "arr@example.com"]))).await;
    let body = reply.problem(400);
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("JSON object")),
        "{body}"
    );
    let id = app.create_user("Ada", "ada@example.com").await.json()["id"].clone();
    let req = app.authed(app.client.put(app.url(&format!("/api/users/{id}"))));
    app.send(req, Some(json!(["Ada", "x@example.com"])))
        .await
        .problem(400);
    let req = app.authed(app.client.patch(app.url(&format!("/api/users/{id}"))));
    app.send(req, Some(json!(["Ada"]))).await.problem(400);
    assert_eq!(
        app.get("/api/users").await.json()["items"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

async fn invisible_and_bidi_characters_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    for name in [
        "\u{200B}\u{200B}",     // zero-width spaces only
        "Ada\u{202E}ecalevol",  // right-to-left override
        "Ada\u{2066}x\u{2069}", // isolates
        "A\u{200D}da",          // zero-width joiner
        "Ada\u{2028}Lovelace",  // line separator
        "Ada\u{FEFF}",          // byte order mark
        "Ada\u{E0041}",         // tag character
    ] {
        let reply = app.create_user(name, "x@example.com").await;
        let body = reply.problem(422);
        assert_eq!(body["errors"][0]["field"], "name", "{name:?}: {body}");
        assert_eq!(body["errors"][0]["code"], "invalid_characters", "{body}");
    }
    // A lone combining mark is not a name.
    let body = app
        .create_user("\u{0301}", "x@example.com")
        .await
        .problem(422);
    assert_eq!(body["errors"][0]["code"], "empty", "{body}");
    for email in [
        "ad\u{200B}a@example.com",
        "ada@exa\u{202E}mple.com",
        "ada\u{3164}@example.com",
    ] {
        let reply = app.create_user("Ada", email).await;
        let body = reply.problem(422);
        assert_eq!(body["errors"][0]["field"], "email", "{email:?}: {body}");
    }
    // Visible non-ASCII stays welcome; the joiners of emoji sequences do not (they are format
    // characters like any other, see domain::is_refused_char).
    assert_eq!(
        app.create_user("Ada Lövelace 李 👩💻", "ada@example.com")
            .await
            .status,
        201
    );
}

async fn emails_are_unique_after_unicode_folding(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(app.create_user("Ada", "ada@example.com").await.status, 201);
    assert_eq!(
        app.create_user("Straße", "straße@example.com").await.status,
        201
    );
    for twin in [
        "ＡＤＡ@example.com", // full-width letters
        "ADA@EXAMPLE.COM",
        "strasse@example.com", // ß case-folds to ss
        "STRASSE@example.com",
        "ada@ｅｘａｍｐｌｅ.com",
    ] {
        let reply = app.create_user("Twin", twin).await;
        reply.problem(409);
    }
    // Internationalized domains are compared as DNS compares them.
    assert_eq!(app.create_user("Bü", "a@bücher.de").await.status, 201);
    app.create_user("Bü", "a@xn--bcher-kva.de")
        .await
        .problem(409);
    app.create_user("Bü", "a@BÜCHER.de").await.problem(409);
    // A change of address meets the same rule.
    let other = app.create_user("Other", "other@example.com").await.json();
    let id = other["id"].as_i64().expect("id");
    let req = app.authed(app.client.patch(app.url(&format!("/api/users/{id}"))));
    app.send(req, Some(json!({"email": "ＡＤＡ@example.com"})))
        .await
        .problem(409);
}

async fn query_errors_name_the_query(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = app.get("/api/users?limit=0").await.problem(422);
    assert_eq!(
        body["detail"], "query parameters failed validation",
        "{body}"
    );
    assert_eq!(body["errors"][0]["field"], "limit", "{body}");
}

backend_tests!(
    json_arrays_are_not_objects,
    invisible_and_bidi_characters_are_refused,
    emails_are_unique_after_unicode_folding,
    query_errors_name_the_query,
);
