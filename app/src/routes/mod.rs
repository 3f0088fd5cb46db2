//! Routes and the OpenAPI document generated from the same handlers.

pub mod debug;
pub mod health;
pub mod users;

use std::sync::{Arc, OnceLock};

use actix_web::http::header::{self, HeaderValue};
use actix_web::web::Bytes;
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
        openapi_json,
        users::list_users,
        users::create_user,
        users::get_user,
        users::replace_user,
        users::patch_user,
        users::delete_user,
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
    )),
    modifiers(&BearerAuth, &PatchNeedsAField, &FieldPatterns, &TagListPatterns),
    tags(
        (name = "users", description = "Users: reads are open, writes need the bearer token"),
        (name = "operations", description = "Probes and API description"),
    )
)]
pub struct ApiDoc;

/// The internal listener (`METRICS_PORT`): metrics, diagnostics and this description. Never routed
/// by an ingress; the NetworkPolicy admits Prometheus only.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "devsecops-app (internal listener)",
        description = "Prometheus metrics and diagnostics, served on METRICS_PORT only.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(health::metrics, openapi_json, debug::memory),
    components(schemas(crate::problem::Problem, debug::MemoryReport, debug::DbPool)),
    modifiers(&BearerAuth),
    tags((name = "operations", description = "Metrics, API description and diagnostics"))
)]
pub struct InternalDoc;

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

/// Sets the `pattern` of the name and email fields from [`crate::domain`], where validation takes
/// its rules from the same Unicode data: utoipa takes only literal patterns, and these are generated.
struct FieldPatterns;

impl Modify for FieldPatterns {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{schema::Schema, RefOr};
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for name in ["UserInput", "UserPatch"] {
            if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(name) {
                for (field, pattern) in [
                    ("name", crate::domain::name_pattern()),
                    ("email", crate::domain::email_pattern()),
                ] {
                    if let Some(RefOr::T(Schema::Object(property))) =
                        object.properties.get_mut(field)
                    {
                        property.pattern = Some(pattern);
                    }
                }
            }
        }
    }
}

/// Header parameters are strings when present (utoipa types an optional one as string-or-null);
/// `If-Match` and `If-None-Match` get the `pattern` of
/// [`crate::conditional::TAG_LIST_PATTERN`], which the parser is tested against.
struct TagListPatterns;

impl Modify for TagListPatterns {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::schema::{Schema, SchemaType, Type};
        use utoipa::openapi::RefOr;
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                item.get.as_mut(),
                item.put.as_mut(),
                item.patch.as_mut(),
                item.delete.as_mut(),
            ];
            for operation in operations.into_iter().flatten() {
                for parameter in operation.parameters.iter_mut().flatten() {
                    if !matches!(parameter.parameter_in, ParameterIn::Header) {
                        continue;
                    }
                    let is_tag_list =
                        matches!(parameter.name.as_str(), "If-Match" | "If-None-Match");
                    if let Some(RefOr::T(Schema::Object(object))) = parameter.schema.as_mut() {
                        object.schema_type = SchemaType::Type(Type::String);
                        if is_tag_list {
                            object.pattern = Some(crate::conditional::TAG_LIST_PATTERN.to_string());
                        }
                    }
                }
            }
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
pub async fn openapi_json(doc: web::Data<OpenApiJson>) -> Result<HttpResponse, ApiError> {
    let body = match doc.rendered() {
        Some(body) => body,
        // Not rendered yet (a request right after start): wait on the blocking pool, not on
        // this worker's event loop, which has other requests to serve.
        None => {
            let doc = doc.into_inner();
            web::block(move || doc.wait()).await.map_err(|_| {
                ApiError::Unavailable("the API description is not available yet".into())
            })?
        }
    };
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ))
        .body(body))
}

/// The serialized document of a listener, rendered once. Rendering the public one takes tens of
/// milliseconds (its name and email patterns list every refused code point, found by testing all
/// of Unicode), so it is rendered off the start-up path, on a thread of its own; a request that
/// comes first waits for it.
pub struct OpenApiJson {
    document: Arc<OnceLock<Bytes>>,
    render: fn() -> Result<String, serde_json::Error>,
}

impl OpenApiJson {
    pub fn public() -> Self {
        Self::render_in_background(|| ApiDoc::openapi().to_pretty_json())
    }
    pub fn internal() -> Self {
        Self::render_in_background(|| InternalDoc::openapi().to_pretty_json())
    }

    fn render_in_background(render: fn() -> Result<String, serde_json::Error>) -> Self {
        let document = Arc::new(OnceLock::new());
        let rendered = document.clone();
        let spawned = std::thread::Builder::new()
            .name("openapi".into())
            .spawn(move || {
                rendered.get_or_init(|| Self::render(render));
            });
        if spawned.is_err() {
            document.get_or_init(|| Self::render(render));
        }
        OpenApiJson { document, render }
    }

    fn render(render: fn() -> Result<String, serde_json::Error>) -> Bytes {
        Bytes::from(render().unwrap_or_default())
    }

    /// The document, if it is rendered.
    pub fn rendered(&self) -> Option<Bytes> {
        self.document.get().cloned()
    }

    /// The document; blocks the thread until it is rendered.
    pub fn wait(&self) -> Bytes {
        // The background thread initialises it; should that thread have died, render here.
        self.document
            .get_or_init(|| Self::render(self.render))
            .clone()
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

/// A resource that answers GET and HEAD (RFC 9110 9.3.2: HEAD wherever GET is served) with
/// `handler`, and 405 to anything else.
macro_rules! get_resource {
    ($path:expr, $handler:expr) => {
        web::resource($path)
            .route(web::get().to($handler))
            .route(web::head().to($handler))
            .default_service(method_not_allowed("GET, HEAD"))
    };
}

/// Registers the public routes. `ApiDoc` lists the same handlers; a test checks the two agree.
pub fn configure_public(cfg: &mut web::ServiceConfig, openapi_public: bool) {
    cfg.service(get_resource!("/health", health::health))
        .service(get_resource!("/ready", health::ready))
        .service(
            web::resource("/api/users")
                .route(web::get().to(users::list_users))
                .route(web::head().to(users::list_users))
                .route(web::post().to(users::create_user))
                .default_service(method_not_allowed("GET, HEAD, POST")),
        )
        .service(
            web::resource("/api/users/{id}")
                .route(web::get().to(users::get_user))
                .route(web::head().to(users::get_user))
                .route(web::put().to(users::replace_user))
                .route(web::patch().to(users::patch_user))
                .route(web::delete().to(users::delete_user))
                .default_service(method_not_allowed("GET, HEAD, PUT, PATCH, DELETE")),
        );
    if openapi_public {
        cfg.service(get_resource!("/openapi.json", openapi_json));
    }
}

/// Registers the internal listener's routes (`InternalDoc`).
pub fn configure_internal(cfg: &mut web::ServiceConfig) {
    cfg.service(get_resource!("/metrics", health::metrics))
        .service(get_resource!("/openapi.json", openapi_json))
        .service(get_resource!("/debug/memory", debug::memory));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{email_pattern, name_pattern};

    #[actix_web::test]
    async fn a_request_before_the_document_is_rendered_leaves_the_event_loop_free() {
        fn slow() -> Result<String, serde_json::Error> {
            std::thread::sleep(std::time::Duration::from_millis(300));
            Ok("{}".into())
        }
        let doc = web::Data::new(OpenApiJson::render_in_background(slow));
        let ticks = std::rc::Rc::new(std::cell::Cell::new(0u32));
        let ticker = {
            let ticks = ticks.clone();
            actix_web::rt::spawn(async move {
                loop {
                    actix_web::rt::time::sleep(std::time::Duration::from_millis(10)).await;
                    ticks.set(ticks.get() + 1);
                }
            })
        };
        let response = openapi_json(doc).await.expect("a response");
        ticker.abort();
        assert!(
            ticks.get() >= 10,
            "the event loop ran {} ticks while the document rendered",
            ticks.get()
        );
        let body = actix_web::body::to_bytes(response.into_body())
            .await
            .expect("body");
        assert_eq!(&body[..], b"{}");
    }

    /// utoipa takes patterns as literals only; this keeps them equal to the ones validation documents.
    #[test]
    fn schema_patterns_are_the_validation_patterns() {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("serializes");
        for schema in ["UserInput", "UserPatch"] {
            let props = &doc["components"]["schemas"][schema]["properties"];
            assert_eq!(props["name"]["pattern"], name_pattern(), "{schema}.name");
            assert_eq!(props["email"]["pattern"], email_pattern(), "{schema}.email");
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
