//! The users API: list, create, read, replace, patch, delete. Writes need the bearer token.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use slog::{error, info};

use crate::auth::Authenticated;
use crate::conditional::{self, DateIsNotAValidator, Preconditions};
use crate::db::{DbError, StoredUser, WriteOutcome};
use crate::domain::{JsonObject, PageQuery, User, UserInput, UserPage, UserPatch};
use crate::middleware::RequestLogger;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

/// Maps storage failures to problems; the cause goes to the log, never to the client. Storage
/// faults are 503 with `Retry-After`, counted by reason.
fn db_error(state: &AppState, log: &slog::Logger, operation: &str, err: DbError) -> ApiError {
    match err {
        DbError::Conflict => ApiError::Conflict("a user with this email already exists".into()),
        DbError::Unavailable(fault, cause) => {
            state
                .metrics
                .db_errors
                .with_label_values(&[fault.as_str()])
                .inc();
            error!(log, "storage unavailable";
                "event" => "storage_unavailable",
                "operation" => operation,
                "reason" => fault.as_str(),
                "error" => cause);
            ApiError::Unavailable(format!(
                "the database cannot serve this request now ({}); retry later",
                fault.as_str()
            ))
        }
        DbError::Other(cause) => {
            error!(log, "database error"; "operation" => operation, "error" => cause);
            ApiError::Internal
        }
    }
}

fn not_found(id: i64) -> ApiError {
    ApiError::NotFound(format!("no user with id {id}"))
}

/// A user as a response with its validators.
fn user_response(
    mut response: actix_web::HttpResponseBuilder,
    stored: &StoredUser,
) -> HttpResponse {
    let mut response = response.json(&stored.user);
    let etag = conditional::user_etag(stored.version, stored.user.updated_at);
    conditional::set_validators(&mut response, &etag, Some(stored.user.updated_at));
    response
}

/// The outcome of a conditional write as a response, or the problem it is.
fn write_outcome<T>(outcome: WriteOutcome<T>, id: i64) -> Result<T, ApiError> {
    match outcome {
        WriteOutcome::Done(value) => Ok(value),
        WriteOutcome::NotFound => Err(not_found(id)),
        WriteOutcome::PreconditionFailed => Err(ApiError::PreconditionFailed),
    }
}

/// Lists users in id order, a page at a time.
#[utoipa::path(
    get,
    path = "/api/users",
    tag = "users",
    params(
        PageQuery,
        ("If-None-Match" = Option<String>, Header, description = "ETags of pages the client holds: 304 when one is current (weak comparison)"),
    ),
    responses(
        (status = 200, description = "A page of users. Compressed (br, zstd, gzip) when asked for and at least 1 KiB.", body = UserPage,
            headers(
                ("ETag" = String, description = "Strong validator of this page (a digest of its body; names the content coding when compressed)"),
                ("Last-Modified" = String, description = "The newest change among the users shown; informational, If-Modified-Since is not evaluated for pages"),
                ("Cache-Control" = String, description = "private, no-cache: revalidate before reuse"),
            )),
        (status = 304, description = "Not modified: the page matches an ETag in If-None-Match",
            headers(("ETag" = String, description = "The page's current ETag"))),
        (status = 400, description = "Malformed query string or precondition header", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Query out of range", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
        (status = "default", description = "Error", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_users(
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
    RequestLogger(log): RequestLogger,
) -> Result<HttpResponse, ApiError> {
    let (limit, cursor) = query.validate().map_err(ApiError::InvalidQuery)?;
    let _timer = state.metrics.db_timer("list_users");
    // One extra row tells whether a next page exists without a COUNT(*).
    let mut items = state
        .db
        .list_users(cursor, limit + 1)
        .await
        .map_err(|e| db_error(&state, &log, "list_users", e))?;
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|u| u.id)
    } else {
        None
    };
    let last_modified = items.iter().map(|u| u.updated_at).max();
    let body = serde_json::to_vec(&UserPage {
        items,
        limit,
        next_cursor,
    })
    .map_err(|_| ApiError::Internal)?;
    let etag = conditional::body_etag(&body);
    let mut response = HttpResponse::Ok().content_type(mime_json()).body(body);
    conditional::set_validators(&mut response, &etag, last_modified);
    conditional::revalidate(&mut response);
    // A deleted user changes the page without changing any remaining row's date.
    response.extensions_mut().insert(DateIsNotAValidator);
    Ok(response)
}

fn mime_json() -> actix_web::http::header::ContentType {
    actix_web::http::header::ContentType::json()
}

/// Creates a user. The email must be unique (case-insensitive).
#[utoipa::path(
    post,
    path = "/api/users",
    tag = "users",
    request_body = UserInput,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = User,
            headers(
                ("Location" = String, description = "URL of the new user"),
                ("ETag" = String, description = "The new user's ETag, for If-Match on later writes"),
                ("Last-Modified" = String, description = "When the user was created"),
            )),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Email already taken", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON, or carries a Content-Encoding", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Validation failed, per field", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
        (status = "default", description = "Error", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_user(
    _auth: Authenticated,
    state: web::Data<AppState>,
    body: web::Json<JsonObject<UserInput>>,
    RequestLogger(log): RequestLogger,
) -> Result<HttpResponse, ApiError> {
    let user = body
        .into_inner()
        .0
        .validate()
        .map_err(ApiError::Validation)?;
    let _timer = state.metrics.db_timer("create_user");
    let created = state
        .db
        .create_user(&user)
        .await
        .map_err(|e| db_error(&state, &log, "create_user", e))?;
    info!(log, "user created"; "event" => "user_created", "user_id" => created.user.id);
    let mut response = HttpResponse::Created();
    response.insert_header((header::LOCATION, format!("/api/users/{}", created.user.id)));
    Ok(user_response(response, &created))
}

/// Reads one user.
#[utoipa::path(
    get,
    path = "/api/users/{id}",
    tag = "users",
    params(
        ("id" = i64, Path, description = "User id", minimum = 1),
        ("If-None-Match" = Option<String>, Header, description = "ETags the client holds: 304 when one is current (weak comparison)"),
        ("If-Modified-Since" = Option<String>, Header, description = "HTTP-date: 304 when the user has not changed since (evaluated only without If-None-Match; an invalid date is ignored)"),
    ),
    responses(
        (status = 200, description = "The user", body = User,
            headers(
                ("ETag" = String, description = "Strong validator: changes with every write to the user"),
                ("Last-Modified" = String, description = "updated_at as an HTTP-date"),
                ("Cache-Control" = String, description = "private, no-cache: revalidate before reuse"),
            )),
        (status = 304, description = "Not modified: the client's copy is current",
            headers(("ETag" = String, description = "The user's current ETag"))),
        (status = 400, description = "Id is not a number, or a malformed precondition header", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
        (status = "default", description = "Error", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_user(
    state: web::Data<AppState>,
    id: web::Path<i64>,
    RequestLogger(log): RequestLogger,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let _timer = state.metrics.db_timer("get_user");
    let user = state
        .db
        .get_user(id)
        .await
        .map_err(|e| db_error(&state, &log, "get_user", e))?
        .ok_or_else(|| not_found(id))?;
    let mut response = user_response(HttpResponse::Ok(), &user);
    conditional::revalidate(&mut response);
    Ok(response)
}

/// Replaces a user's name and email.
#[utoipa::path(
    put,
    path = "/api/users/{id}",
    tag = "users",
    params(
        ("id" = i64, Path, description = "User id", minimum = 1),
        ("If-Match" = Option<String>, Header, description = "Lost-update protection: the write applies only if the user's current ETag is listed (strong comparison; a tag with a content-coding suffix names the same version), or the user exists for *. Checked and written atomically."),
        ("If-None-Match" = Option<String>, Header, description = "The write applies only if no listed ETag is current (* : only if the user does not exist, which for an existing user is 412)"),
        ("If-Unmodified-Since" = Option<String>, Header, description = "HTTP-date: the write applies only if the user has not changed since (evaluated only without If-Match; an invalid date is ignored)"),
    ),
    request_body = UserInput,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The updated user", body = User,
            headers(
                ("ETag" = String, description = "The user's new ETag"),
                ("Last-Modified" = String, description = "updated_at as an HTTP-date"),
            )),
        (status = 400, description = "Malformed JSON, id or precondition header", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Email already taken", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Precondition failed: the user changed since the client read it (If-Match, If-None-Match or If-Unmodified-Since)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON, or carries a Content-Encoding", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Validation failed, per field", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
        (status = "default", description = "Error", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn replace_user(
    _auth: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    preconditions: Preconditions,
    body: web::Json<JsonObject<UserInput>>,
    RequestLogger(log): RequestLogger,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let user = body
        .into_inner()
        .0
        .validate()
        .map_err(ApiError::Validation)?;
    let _timer = state.metrics.db_timer("replace_user");
    let condition = conditional::write_condition(&preconditions);
    let outcome = state
        .db
        .replace_user(id, &user, condition.as_ref().map(|c| c as _))
        .await
        .map_err(|e| db_error(&state, &log, "replace_user", e))?;
    let updated = write_outcome(outcome, id)?;
    info!(log, "user replaced"; "event" => "user_updated", "user_id" => id);
    Ok(user_response(HttpResponse::Ok(), &updated))
}

/// Changes the given fields of a user.
#[utoipa::path(
    patch,
    path = "/api/users/{id}",
    tag = "users",
    params(
        ("id" = i64, Path, description = "User id", minimum = 1),
        ("If-Match" = Option<String>, Header, description = "Lost-update protection: the write applies only if the user's current ETag is listed (strong comparison; a tag with a content-coding suffix names the same version), or the user exists for *. Checked and written atomically."),
        ("If-None-Match" = Option<String>, Header, description = "The write applies only if no listed ETag is current (* : only if the user does not exist, which for an existing user is 412)"),
        ("If-Unmodified-Since" = Option<String>, Header, description = "HTTP-date: the write applies only if the user has not changed since (evaluated only without If-Match; an invalid date is ignored)"),
    ),
    request_body = UserPatch,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The updated user", body = User,
            headers(
                ("ETag" = String, description = "The user's new ETag"),
                ("Last-Modified" = String, description = "updated_at as an HTTP-date"),
            )),
        (status = 400, description = "Malformed JSON, id or precondition header", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Email already taken", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Precondition failed: the user changed since the client read it (If-Match, If-None-Match or If-Unmodified-Since)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON, or carries a Content-Encoding", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Validation failed, per field", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
        (status = "default", description = "Error", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn patch_user(
    _auth: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    preconditions: Preconditions,
    body: web::Json<JsonObject<UserPatch>>,
    RequestLogger(log): RequestLogger,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let patch = body
        .into_inner()
        .0
        .validate()
        .map_err(ApiError::Validation)?;
    let _timer = state.metrics.db_timer("patch_user");
    let condition = conditional::write_condition(&preconditions);
    let outcome = state
        .db
        .patch_user(id, &patch, condition.as_ref().map(|c| c as _))
        .await
        .map_err(|e| db_error(&state, &log, "patch_user", e))?;
    let updated = write_outcome(outcome, id)?;
    info!(log, "user patched"; "event" => "user_updated", "user_id" => id);
    Ok(user_response(HttpResponse::Ok(), &updated))
}

/// Deletes a user.
#[utoipa::path(
    delete,
    path = "/api/users/{id}",
    tag = "users",
    params(
        ("id" = i64, Path, description = "User id", minimum = 1),
        ("If-Match" = Option<String>, Header, description = "Lost-update protection: the write applies only if the user's current ETag is listed (strong comparison; a tag with a content-coding suffix names the same version), or the user exists for *. Checked and written atomically."),
        ("If-None-Match" = Option<String>, Header, description = "The write applies only if no listed ETag is current (* : only if the user does not exist, which for an existing user is 412)"),
        ("If-Unmodified-Since" = Option<String>, Header, description = "HTTP-date: the write applies only if the user has not changed since (evaluated only without If-Match; an invalid date is ignored)"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Id is not a number, or a malformed precondition header", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Precondition failed: the user changed since the client read it (If-Match, If-None-Match or If-Unmodified-Since)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
        (status = "default", description = "Error", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_user(
    _auth: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    preconditions: Preconditions,
    RequestLogger(log): RequestLogger,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let _timer = state.metrics.db_timer("delete_user");
    let condition = conditional::write_condition(&preconditions);
    let outcome = state
        .db
        .delete_user(id, condition.as_ref().map(|c| c as _))
        .await
        .map_err(|e| db_error(&state, &log, "delete_user", e))?;
    write_outcome(outcome, id)?;
    info!(log, "user deleted"; "event" => "user_deleted", "user_id" => id);
    Ok(HttpResponse::NoContent().finish())
}
