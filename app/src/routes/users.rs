//! The users API: list, create, read, replace, patch, delete. Writes need the bearer token.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use slog::{error, info};

use crate::auth::Authenticated;
use crate::db::DbError;
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

/// Lists users in id order, a page at a time.
#[utoipa::path(
    get,
    path = "/api/users",
    tag = "users",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of users", body = UserPage),
        (status = 400, description = "Malformed query string", body = Problem, content_type = "application/problem+json"),
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
    Ok(HttpResponse::Ok().json(UserPage {
        items,
        limit,
        next_cursor,
    }))
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
            headers(("Location" = String, description = "URL of the new user"))),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Email already taken", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
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
    info!(log, "user created"; "event" => "user_created", "user_id" => created.id);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/users/{}", created.id)))
        .json(created))
}

/// Reads one user.
#[utoipa::path(
    get,
    path = "/api/users/{id}",
    tag = "users",
    params(("id" = i64, Path, description = "User id", minimum = 1)),
    responses(
        (status = 200, description = "The user", body = User),
        (status = 400, description = "Id is not a number", body = Problem, content_type = "application/problem+json"),
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
    Ok(HttpResponse::Ok().json(user))
}

/// Replaces a user's name and email.
#[utoipa::path(
    put,
    path = "/api/users/{id}",
    tag = "users",
    params(("id" = i64, Path, description = "User id", minimum = 1)),
    request_body = UserInput,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The updated user", body = User),
        (status = 400, description = "Malformed JSON or id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Email already taken", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
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
    let updated = state
        .db
        .replace_user(id, &user)
        .await
        .map_err(|e| db_error(&state, &log, "replace_user", e))?
        .ok_or_else(|| not_found(id))?;
    info!(log, "user replaced"; "event" => "user_updated", "user_id" => id);
    Ok(HttpResponse::Ok().json(updated))
}

/// Changes the given fields of a user.
#[utoipa::path(
    patch,
    path = "/api/users/{id}",
    tag = "users",
    params(("id" = i64, Path, description = "User id", minimum = 1)),
    request_body = UserPatch,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The updated user", body = User),
        (status = 400, description = "Malformed JSON or id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Email already taken", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
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
    let updated = state
        .db
        .patch_user(id, &patch)
        .await
        .map_err(|e| db_error(&state, &log, "patch_user", e))?
        .ok_or_else(|| not_found(id))?;
    info!(log, "user patched"; "event" => "user_updated", "user_id" => id);
    Ok(HttpResponse::Ok().json(updated))
}

/// Deletes a user.
#[utoipa::path(
    delete,
    path = "/api/users/{id}",
    tag = "users",
    params(("id" = i64, Path, description = "User id", minimum = 1)),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Id is not a number", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
        (status = "default", description = "Error", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_user(
    _auth: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    RequestLogger(log): RequestLogger,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let _timer = state.metrics.db_timer("delete_user");
    let deleted = state
        .db
        .delete_user(id)
        .await
        .map_err(|e| db_error(&state, &log, "delete_user", e))?;
    if !deleted {
        return Err(not_found(id));
    }
    info!(log, "user deleted"; "event" => "user_deleted", "user_id" => id);
    Ok(HttpResponse::NoContent().finish())
}
