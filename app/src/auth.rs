//! Bearer-token authentication for writes.
//!
//! Handlers that change data take an [`Authenticated`] argument; the extractor compares the SHA-256
//! digest of the presented token with the configured one in constant time, and on failure counts the
//! reason, logs a security event (never the token) and answers 401 with `WWW-Authenticate`.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use slog::warn;
use subtle::ConstantTimeEq;

use crate::middleware::{client_of, RequestLogger};
use crate::problem::ApiError;
use crate::state::{digest, AppState};

/// Proof that the request carried the API token.
pub struct Authenticated;

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(authenticate(req))
    }
}

fn authenticate(req: &HttpRequest) -> Result<Authenticated, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or(ApiError::Internal)?;
    let failure = match bearer_token(req) {
        Ok(token) if bool::from(digest(token).ct_eq(&state.token_digest)) => {
            return Ok(Authenticated)
        }
        Ok(_) => "invalid",
        Err(reason) => reason,
    };
    state
        .metrics
        .auth_failures
        .with_label_values(&[failure])
        .inc();
    if let Some(RequestLogger(logger)) = RequestLogger::of(req) {
        warn!(logger, "authentication failed";
            "event" => "auth_failure",
            "security" => true,
            "reason" => failure,
            "method" => req.method().as_str(),
            "path" => req.path().chars().take(256).collect::<String>(),
            "client_address" => client_of(req).map(|ip| ip.to_string()));
    }
    Err(ApiError::Unauthorized { reason: failure })
}

/// The token of an `Authorization: Bearer <token>` header, or why there is none.
fn bearer_token(req: &HttpRequest) -> Result<&str, &'static str> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or("missing")?
        .to_str()
        .map_err(|_| "malformed")?;
    let (scheme, token) = value.split_once(' ').ok_or("malformed")?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err("malformed");
    }
    Ok(token)
}
