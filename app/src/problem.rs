//! RFC 9457 problem details: the one error format of the API.
//!
//! Handlers return [`ApiError`]; extractor failures (bad JSON, bad query, bad path) are mapped here too,
//! and the request middleware turns any other 4xx/5xx that lacks a problem body (404 from routing, 405,
//! timeouts) into one, so no error leaves the service in another shape. Details never carry internal
//! error text: that goes to the log only.

use std::fmt;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// One invalid field of a request body.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    /// The JSON field name.
    pub field: String,
    /// A machine-readable code, such as `required`, `too_long` or `invalid_format`.
    pub code: String,
    /// What is wrong, for people.
    pub message: String,
}

/// An RFC 9457 problem details object.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the problem type.
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    pub problem_type: String,
    /// Short summary of the problem type.
    #[schema(example = "Not Found")]
    pub title: String,
    /// The HTTP status code.
    #[schema(example = 404, minimum = 400, maximum = 599)]
    pub status: u16,
    /// Explanation specific to this occurrence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Per-field validation errors (422 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// Readiness checks and their state (503 from /ready only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub checks: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<Option<String>>) -> Self {
        Problem {
            problem_type: problem_type(status).to_string(),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: None,
            checks: None,
        }
    }

    pub fn into_response(self) -> HttpResponse {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        HttpResponse::build(status)
            .insert_header((
                header::CONTENT_TYPE,
                HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
            ))
            .body(body)
    }
}

/// Stable problem type URNs for the problems clients act on; `about:blank` for the rest (RFC 9457 4.2.1).
fn problem_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "urn:devsecops-app:problem:unauthorized",
        409 => "urn:devsecops-app:problem:conflict",
        422 => "urn:devsecops-app:problem:validation",
        429 => "urn:devsecops-app:problem:rate-limited",
        503 => "urn:devsecops-app:problem:unavailable",
        _ => "about:blank",
    }
}

/// Every error a handler can return.
#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    Unauthorized {
        reason: &'static str,
    },
    Forbidden(String),
    NotFound(String),
    Conflict(String),
    PayloadTooLarge(usize),
    UnsupportedMediaType,
    /// A request body with a content coding: bodies are read as sent, never decompressed (415).
    EncodedBody,
    /// A conditional request whose precondition does not hold for the resource (412).
    PreconditionFailed,
    Validation(Vec<FieldError>),
    /// Query parameters out of range (422 naming the query, not the body).
    InvalidQuery(Vec<FieldError>),
    RateLimited {
        retry_after_secs: u64,
    },
    /// The client did not send its request in time (408; closes the connection).
    RequestTimeout(String),
    Unavailable(String),
    Internal,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType | ApiError::EncodedBody => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ApiError::Validation(_) | ApiError::InvalidQuery(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut problem = Problem::new(status, None);
        match self {
            ApiError::BadRequest(detail)
            | ApiError::Forbidden(detail)
            | ApiError::NotFound(detail)
            | ApiError::Conflict(detail)
            | ApiError::RequestTimeout(detail)
            | ApiError::Unavailable(detail) => problem.detail = Some(detail.clone()),
            ApiError::Unauthorized { .. } => {
                problem.detail = Some("a valid bearer token is required".into())
            }
            ApiError::PayloadTooLarge(limit) => {
                problem.detail = Some(format!("request body exceeds {limit} bytes"))
            }
            ApiError::UnsupportedMediaType => {
                problem.detail = Some("request body must be application/json".into())
            }
            ApiError::EncodedBody => {
                problem.detail =
                    Some("request bodies are accepted without a content coding only".into())
            }
            ApiError::PreconditionFailed => {
                problem.detail = Some(
                    "the resource has changed: its current ETag does not match the request's preconditions"
                        .into(),
                )
            }
            ApiError::Validation(errors) => {
                problem.detail = Some("request body failed validation".into());
                problem.errors = Some(errors.clone());
            }
            ApiError::InvalidQuery(errors) => {
                problem.detail = Some("query parameters failed validation".into());
                problem.errors = Some(errors.clone());
            }
            ApiError::RateLimited { retry_after_secs } => {
                problem.detail = Some(format!(
                    "too many requests; retry after {retry_after_secs} s"
                ))
            }
            ApiError::Internal => problem.detail = Some("internal error".into()),
        }
        let mut response = problem.into_response();
        let headers = response.headers_mut();
        match self {
            ApiError::Unauthorized { reason } => {
                let value = if *reason == "missing" {
                    r#"Bearer realm="devsecops-app""#.to_string()
                } else {
                    r#"Bearer realm="devsecops-app", error="invalid_token""#.to_string()
                };
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.insert(header::WWW_AUTHENTICATE, value);
                }
            }
            ApiError::RateLimited { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            ApiError::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            // RFC 9110 section 12.5.3: the codings that would have been accepted.
            ApiError::EncodedBody => {
                headers.insert(
                    header::ACCEPT_ENCODING,
                    HeaderValue::from_static("identity"),
                );
            }
            _ => {}
        }
        if matches!(self, ApiError::RequestTimeout(_)) {
            // The rest of the body may still arrive: the connection cannot carry another request.
            response
                .head_mut()
                .set_connection_type(actix_web::http::ConnectionType::Close);
        }
        response
    }
}

/// Maps JSON body extractor failures to precise problems.
pub fn json_error(err: actix_web::error::JsonPayloadError, limit: usize) -> ApiError {
    use actix_web::error::JsonPayloadError as E;
    match err {
        E::OverflowKnownLength { .. } | E::Overflow { .. } => ApiError::PayloadTooLarge(limit),
        E::ContentType => ApiError::UnsupportedMediaType,
        E::Deserialize(e) if e.is_data() => ApiError::BadRequest(format!(
            "request body does not match the expected shape: {}",
            sanitize(&e.to_string())
        )),
        E::Deserialize(e) => ApiError::BadRequest(format!(
            "request body is not valid JSON: {}",
            sanitize(&e.to_string())
        )),
        E::Payload(actix_web::error::PayloadError::Overflow) => ApiError::PayloadTooLarge(limit),
        _ => ApiError::BadRequest("request body could not be read".into()),
    }
}

/// serde messages name fields and positions, which is useful; cap their length so a hostile body cannot
/// be echoed back at length.
fn sanitize(message: &str) -> String {
    message.chars().take(200).collect()
}
