//! Routes and the OpenAPI document generated from the same handlers.

pub mod debug;
pub mod health;
pub mod users;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpResponse};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::problem::{ApiError, Problem};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "devsecops-app",
        description = "Users API with health, readiness and Prometheus metrics. Errors are RFC 9457 problem details.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        health::health,
        health::ready,
        health::metrics,
        openapi_json,
        users::list_users,
        users::create_user,
        users::get_user,
        users::replace_user,
        users::patch_user,
        users::delete_user,
        debug::memory,
    ),
    components(schemas(
        crate::domain::User,
        crate::domain::UserInput,
        crate::domain::UserPatch,
        crate::domain::UserPage,
        crate::problem::Problem,
        crate::problem::FieldError,
        health::Health,
        health::Readiness,
        debug::MemoryReport,
        debug::DbPool,
    )),
    modifiers(&BearerAuth, &PatchNeedsAField),
    tags(
        (name = "users", description = "Users: reads are open, writes need the bearer token"),
        (name = "operations", description = "Probes, metrics, API description and diagnostics"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `minProperties: 1` on the PATCH body. Set here because utoipa 5's `min_properties` container
/// attribute emits `maxProperties` instead.
struct PatchNeedsAField;

impl Modify for PatchNeedsAField {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{schema::Schema, RefOr};
        let patch = openapi
            .components
            .as_mut()
            .and_then(|c| c.schemas.get_mut("UserPatch"));
        if let Some(RefOr::T(Schema::Object(object))) = patch {
            object.min_properties = Some(1);
        }
    }
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses(
        (status = 200, description = "OpenAPI 3.1 description of this API", content_type = "application/json", body = Object),
        (status = "default", description = "Error", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn openapi_json(doc: web::Data<OpenApiJson>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ))
        .body(doc.0.clone())
}

/// The serialized document, rendered once at start.
pub struct OpenApiJson(pub String);

impl OpenApiJson {
    pub fn render() -> Self {
        OpenApiJson(ApiDoc::openapi().to_pretty_json().unwrap_or_default())
    }
}

/// A 405 that names the methods the resource does accept (RFC 9110 requires `Allow`).
fn method_not_allowed(allow: &'static str) -> actix_web::Route {
    web::to(move || async move {
        let mut response = Problem::new(
            actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
            Some(format!("this resource accepts {allow}")),
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
        response
    })
}

pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("no resource at this path".into()))
}

/// Registers every route. `ApiDoc` lists the same handlers; a test checks the two agree.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/health")
            .route(web::get().to(health::health))
            .default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/ready")
            .route(web::get().to(health::ready))
            .default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/metrics")
            .route(web::get().to(health::metrics))
            .default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/openapi.json")
            .route(web::get().to(openapi_json))
            .default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/api/users")
            .route(web::get().to(users::list_users))
            .route(web::post().to(users::create_user))
            .default_service(method_not_allowed("GET, POST")),
    )
    .service(
        web::resource("/api/users/{id}")
            .route(web::get().to(users::get_user))
            .route(web::put().to(users::replace_user))
            .route(web::patch().to(users::patch_user))
            .route(web::delete().to(users::delete_user))
            .default_service(method_not_allowed("GET, PUT, PATCH, DELETE")),
    )
    .service(
        web::resource("/debug/memory")
            .route(web::get().to(debug::memory))
            .default_service(method_not_allowed("GET")),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EMAIL_PATTERN, NAME_PATTERN};

    /// utoipa takes patterns as literals only; this keeps them equal to the ones validation documents.
    #[test]
    fn schema_patterns_are_the_validation_patterns() {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("serializes");
        for schema in ["UserInput", "UserPatch"] {
            let props = &doc["components"]["schemas"][schema]["properties"];
            assert_eq!(props["name"]["pattern"], NAME_PATTERN, "{schema}.name");
            assert_eq!(props["email"]["pattern"], EMAIL_PATTERN, "{schema}.email");
            assert_eq!(
                doc["components"]["schemas"][schema]["additionalProperties"], false,
                "{schema} refuses unknown fields"
            );
        }
        let required = &doc["components"]["schemas"]["UserInput"]["required"];
        assert_eq!(required, &serde_json::json!(["name", "email"]));
        assert_eq!(
            doc["components"]["schemas"]["UserPatch"]["minProperties"],
            1
        );
    }
}
