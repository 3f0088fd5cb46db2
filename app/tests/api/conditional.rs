//! Validators and conditional requests on both databases: ETag and Last-Modified on users and
//! pages, 304 for If-None-Match and If-Modified-Since, and lost-update protection with If-Match,
//! If-None-Match and If-Unmodified-Since on PUT, PATCH and DELETE, checked and written atomically
//! (concurrent writers with the same If-Match: exactly one wins).

use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{spawn_app, spawn_app_with, Backend, Reply, TestApp};

async fn get_with(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = app.client.get(app.url(path));
    for (name, value) in headers {
        req = req.insert_header((*name, *value));
    }
    app.send(req, None).await
}

async fn write_with(
    app: &TestApp,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Reply {
    let mut req = app.authed(app.client.request(method, app.url(path)));
    for (name, value) in headers {
        req = req.insert_header((*name, *value));
    }
    app.send(req, body).await
}

fn etag(reply: &Reply) -> String {
    let tag = reply
        .header("etag")
        .unwrap_or_else(|| panic!("no ETag: {:?}", reply.headers));
    assert!(
        tag.starts_with('"') && tag.ends_with('"') && tag.len() > 2,
        "a strong ETag: {tag}"
    );
    tag
}

fn http_date(seconds: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds as u64);
    actix_web::http::header::HttpDate::from(at).to_string()
}

async fn users_carry_validators_and_answer_304(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_user("Ada", "ada@example.com").await;
    assert_eq!(created.status, 201);
    let created_tag = etag(&created);
    let id = created.json()["id"].as_i64().expect("id");
    let path = format!("/api/users/{id}");

    let first = app.get(&path).await;
    assert_eq!(first.status, 200);
    let tag = etag(&first);
    assert_eq!(
        tag, created_tag,
        "the 201 names the representation a GET returns"
    );
    assert_eq!(
        first.header("cache-control").as_deref(),
        Some("private, no-cache")
    );
    let last_modified = first.header("last-modified").expect("Last-Modified");
    let updated_at = time::OffsetDateTime::parse(
        first.json()["updated_at"].as_str().expect("updated_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339");
    assert_eq!(last_modified, http_date(updated_at.unix_timestamp()));

    // If-None-Match: the current tag (strong or weak, alone or in a list) is 304, without a body.
    for value in [
        tag.clone(),
        format!("W/{tag}"),
        format!("\"other\", {tag}"),
        "*".into(),
    ] {
        let reply = get_with(&app, &path, &[("If-None-Match", &value)]).await;
        assert_eq!(
            reply.status,
            304,
            "If-None-Match: {value}: {}",
            reply.text()
        );
        assert!(reply.body.is_empty());
        assert_eq!(reply.header("etag"), Some(tag.clone()));
        assert_eq!(
            reply.header("cache-control").as_deref(),
            Some("private, no-cache")
        );
    }
    let other = get_with(&app, &path, &[("If-None-Match", "\"not-it\"")]).await;
    assert_eq!(other.status, 200);
    assert_eq!(other.json(), first.json());
    // HEAD answers like GET.
    let head = app
        .send(
            app.client
                .request("HEAD", app.url(&path))
                .insert_header(("If-None-Match", tag.as_str())),
            None,
        )
        .await;
    assert_eq!(head.status, 304);

    // If-Modified-Since, when there is no If-None-Match.
    let since = http_date(updated_at.unix_timestamp());
    assert_eq!(
        get_with(&app, &path, &[("If-Modified-Since", &since)])
            .await
            .status,
        304
    );
    let earlier = http_date(updated_at.unix_timestamp() - 60);
    assert_eq!(
        get_with(&app, &path, &[("If-Modified-Since", &earlier)])
            .await
            .status,
        200
    );
    let both = get_with(
        &app,
        &path,
        &[("If-Modified-Since", &since), ("If-None-Match", "\"x\"")],
    )
    .await;
    assert_eq!(both.status, 200, "If-None-Match takes precedence");
    let invalid = get_with(&app, &path, &[("If-Modified-Since", "last tuesday")]).await;
    assert_eq!(invalid.status, 200, "an invalid date is ignored");

    // A write changes the tag: the old one no longer matches.
    let patched = write_with(&app, "PATCH", &path, &[], Some(json!({"name": "Ada K"}))).await;
    assert_eq!(patched.status, 200);
    let new_tag = etag(&patched);
    assert_ne!(new_tag, tag);
    let reply = get_with(&app, &path, &[("If-None-Match", &tag)]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(etag(&reply), new_tag);

    // Malformed entity tags are refused, not ignored.
    for bad in ["unquoted", "\"open", "\"a\" \"b\""] {
        let reply = get_with(&app, &path, &[("If-None-Match", bad)]).await;
        let body = reply.problem(400);
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("if-none-match")),
            "{body}"
        );
    }
    // Errors carry no validators, and preconditions do not turn a 404 into anything else.
    let missing = get_with(&app, "/api/users/999999", &[("If-None-Match", "*")]).await;
    missing.problem(404);
    assert!(missing.header("etag").is_none());
}

async fn pages_carry_validators_and_answer_304(backend: Backend) {
    let app = spawn_app(backend).await;
    let empty = app.get("/api/users").await;
    let empty_tag = etag(&empty);
    assert!(
        empty.header("last-modified").is_none(),
        "an empty page has no date"
    );
    for i in 0..3 {
        app.create_user(&format!("U{i}"), &format!("u{i}@example.com"))
            .await;
    }
    let page = app.get("/api/users?limit=2").await;
    let tag = etag(&page);
    assert_ne!(tag, empty_tag);
    assert!(page.header("last-modified").is_some());
    assert_eq!(
        get_with(&app, "/api/users?limit=2", &[("If-None-Match", &tag)])
            .await
            .status,
        304
    );
    // Another page is another representation.
    let next = get_with(&app, "/api/users?limit=3", &[("If-None-Match", &tag)]).await;
    assert_eq!(next.status, 200);
    // Deleting a user on the page changes its tag although no remaining row changed, which is
    // why If-Modified-Since is not evaluated for pages.
    let first_id = page.json()["items"][0]["id"].as_i64().expect("id");
    let modified = page.header("last-modified").expect("date");
    assert_eq!(
        write_with(&app, "DELETE", &format!("/api/users/{first_id}"), &[], None)
            .await
            .status,
        204
    );
    let after = get_with(&app, "/api/users?limit=2", &[("If-None-Match", &tag)]).await;
    assert_eq!(after.status, 200);
    assert_ne!(etag(&after), tag);
    let by_date = get_with(
        &app,
        "/api/users?limit=2",
        &[("If-Modified-Since", &modified)],
    )
    .await;
    assert_eq!(by_date.status, 200, "a page's date is no validator");
}

async fn if_match_protects_writes(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app.create_user("Grace", "grace@example.com").await;
    let id = created.json()["id"].as_i64().expect("id");
    let path = format!("/api/users/{id}");
    let tag = etag(&created);

    // Someone else writes first.
    let theirs = write_with(
        &app,
        "PATCH",
        &path,
        &[("If-Match", &tag)],
        Some(json!({"name": "Theirs"})),
    )
    .await;
    assert_eq!(theirs.status, 200, "{}", theirs.text());
    let current = etag(&theirs);

    // Our writes, based on the old tag, are refused and change nothing.
    for (method, body) in [
        ("PATCH", Some(json!({"name": "Mine"}))),
        (
            "PUT",
            Some(json!({"name": "Mine", "email": "mine@example.com"})),
        ),
        ("DELETE", None),
    ] {
        let reply = write_with(&app, method, &path, &[("If-Match", &tag)], body).await;
        let problem = reply.problem(412);
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("changed")),
            "{problem}"
        );
        let now = app.get(&path).await;
        assert_eq!(
            now.json()["name"],
            "Theirs",
            "{method} with a stale If-Match wrote"
        );
        assert_eq!(etag(&now), current);
    }
    // Weak tags never match If-Match (strong comparison).
    let weak = write_with(
        &app,
        "PATCH",
        &path,
        &[("If-Match", &format!("W/{current}"))],
        Some(json!({"name": "Mine"})),
    )
    .await;
    weak.problem(412);
    // If-None-Match on a write: * or the current tag refuses.
    for value in ["*".to_string(), current.clone()] {
        let reply = write_with(
            &app,
            "PATCH",
            &path,
            &[("If-None-Match", &value)],
            Some(json!({"name": "Mine"})),
        )
        .await;
        reply.problem(412);
    }
    // If-Unmodified-Since before the last change refuses; after it, the write goes through.
    let updated = time::OffsetDateTime::parse(
        theirs.json()["updated_at"].as_str().expect("updated_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("date")
    .unix_timestamp();
    let reply = write_with(
        &app,
        "PATCH",
        &path,
        &[("If-Unmodified-Since", &http_date(updated - 60))],
        Some(json!({"name": "Mine"})),
    )
    .await;
    reply.problem(412);
    let reply = write_with(
        &app,
        "PATCH",
        &path,
        &[("If-Unmodified-Since", &http_date(updated + 60))],
        Some(json!({"name": "Dated"})),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let current = etag(&reply);

    // The current tag in a list, the coding-suffixed tag a compressed GET carries, and *: accepted.
    let listed = format!("\"stale\", {current}");
    let reply = write_with(
        &app,
        "PATCH",
        &path,
        &[("If-Match", &listed)],
        Some(json!({"name": "Listed"})),
    )
    .await;
    assert_eq!(reply.status, 200, "If-Match: {listed}: {}", reply.text());
    let next = etag(&reply);
    assert_ne!(next, current);
    let suffixed = format!("{}-gzip\"", next.trim_end_matches('"'));
    let reply = write_with(
        &app,
        "PATCH",
        &path,
        &[("If-Match", &suffixed)],
        Some(json!({"name": "Suffixed"})),
    )
    .await;
    assert_eq!(reply.status, 200, "If-Match: {suffixed}: {}", reply.text());
    let reply = write_with(
        &app,
        "PUT",
        &path,
        &[("If-Match", "*")],
        Some(json!({"name": "Any", "email": "any@example.com"})),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let latest = etag(&reply);
    // A missing user is 404 whatever the preconditions (they only apply to what exists).
    let missing = write_with(
        &app,
        "PATCH",
        "/api/users/999999",
        &[("If-Match", "*")],
        Some(json!({"name": "X"})),
    )
    .await;
    missing.problem(404);
    // Malformed If-Match is refused before anything is written.
    let reply = write_with(
        &app,
        "PATCH",
        &path,
        &[("If-Match", "not-quoted")],
        Some(json!({"name": "Bad"})),
    )
    .await;
    reply.problem(400);
    assert_eq!(app.get(&path).await.json()["name"], "Any");
    // DELETE with the current tag deletes.
    let reply = write_with(&app, "DELETE", &path, &[("If-Match", &latest)], None).await;
    assert_eq!(reply.status, 204, "{}", reply.text());
    app.get(&path).await.problem(404);
}

/// Twenty writers read the same ETag and PATCH with it at once: the check and the write are one
/// step, so exactly one succeeds and the others get 412, on both databases.
async fn concurrent_conditional_writes_apply_once(backend: Backend) {
    let app = spawn_app_with(backend, &[("RATE_LIMIT_PER_SECOND", "0"), ("WORKERS", "4")]).await;
    for round in 0..3 {
        let created = app
            .create_user(
                &format!("Race {round}"),
                &format!("race-{round}@example.com"),
            )
            .await;
        let id = created.json()["id"].as_i64().expect("id");
        let tag = etag(&created);
        let path = format!("/api/users/{id}");
        let writers: Vec<_> = (0..20)
            .map(|i| {
                let req = app
                    .authed(app.client.patch(app.url(&path)))
                    .insert_header(("If-Match", tag.clone()))
                    .insert_header(("Content-Type", "application/json"));
                let body =
                    serde_json::to_vec(&json!({"name": format!("Writer {i}")})).expect("json");
                actix_web::rt::spawn(async move { (i, req.send_bytes(&body).await) })
            })
            .collect();
        let mut winners = Vec::new();
        for writer in writers {
            let (i, reply) = writer.await.expect("writer");
            match reply.status {
                200 => winners.push(i),
                412 => {}
                other => panic!("writer {i}: {other} {}", reply.text()),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: writers {winners:?} all succeeded with one ETag"
        );
        let stored = app.get(&path).await.json();
        assert_eq!(stored["name"], format!("Writer {}", winners[0]));
    }
}

backend_tests!(
    users_carry_validators_and_answer_304,
    pages_carry_validators_and_answer_304,
    if_match_protects_writes,
    concurrent_conditional_writes_apply_once
);
