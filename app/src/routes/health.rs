//! Liveness, readiness and metrics: what the orchestrator and Prometheus poll.

use std::time::{Duration, Instant};

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::json;
use slog::{crit, warn};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::db::{DbError, StorageFault};
use crate::middleware::RequestLogger;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;
use crate::telemetry::VERSION;

/// The longest a readiness check waits for the database: well inside a kubelet probe timeout.
const READINESS_DB_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
    /// Server time, RFC 3339.
    #[schema(format = DateTime)]
    pub timestamp: String,
    #[schema(example = "0.1.0")]
    pub version: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    #[schema(example = "ready")]
    pub status: String,
    /// Each check and its state.
    #[schema(value_type = Object)]
    pub checks: serde_json::Map<String, serde_json::Value>,
}

/// Liveness: the process answers. Checks no dependency, so a database outage never restarts pods.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    responses(
        (status = 200, description = "The process is alive", body = Health),
        (status = "default", description = "Error", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn health() -> HttpResponse {
    let timestamp = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default();
    HttpResponse::Ok().json(Health {
        status: "ok",
        timestamp,
        version: VERSION,
    })
}

/// Readiness: 200 when the database answers and accepts a write (probed at most once a second);
/// 503 naming the failing check and its reason, and from the moment shutdown begins.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "operations",
    responses(
        (status = 200, description = "Ready to serve traffic", body = Readiness),
        (status = 503, description = "Not ready: a check failed or shutdown has begun", body = Problem, content_type = "application/problem+json"),
        (status = "default", description = "Error", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn ready(state: web::Data<AppState>, RequestLogger(log): RequestLogger) -> HttpResponse {
    if state.lifecycle.is_shutting_down() {
        return not_ready(
            "shutdown",
            json!({"status": "down", "reason": "shutting down"}),
            "shutdown in progress",
        );
    }
    let started = Instant::now();
    let result = tokio::time::timeout(READINESS_DB_TIMEOUT, state.db.check_ready()).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1_000.0;
    let failure = match result {
        Ok(Ok(())) => None,
        Ok(Err(DbError::Unavailable(fault, cause))) => {
            if fault == StorageFault::FileMissing && state.db.first_file_missing_report() {
                crit!(log, "the database file was deleted or replaced while the service ran: writes would be lost; restore it or restart from a backup";
                    "event" => "database_file_missing",
                    "check" => "database",
                    "error" => &cause);
            } else {
                warn!(log, "readiness check failed"; "check" => "database", "reason" => fault.as_str(), "error" => cause);
            }
            Some(fault.as_str())
        }
        Ok(Err(err)) => {
            warn!(log, "readiness check failed"; "check" => "database", "error" => format!("{err:?}"));
            Some("error")
        }
        Err(_) => {
            warn!(log, "readiness check failed"; "check" => "database", "error" => "timed out");
            Some("timed out")
        }
    };
    state.metrics.db_up.set(i64::from(failure.is_none()));
    match failure {
        None => {
            let mut checks = serde_json::Map::new();
            checks.insert(
                "database".into(),
                json!({"status": "up", "backend": state.db.backend(), "latency_ms": latency_ms}),
            );
            HttpResponse::Ok().json(Readiness {
                status: "ready".into(),
                checks,
            })
        }
        Some(reason) => not_ready(
            "database",
            json!({"status": "down", "backend": state.db.backend(), "reason": reason}),
            "database check failed",
        ),
    }
}

fn not_ready(check: &str, value: serde_json::Value, detail: &str) -> HttpResponse {
    let mut problem = Problem::new(StatusCode::SERVICE_UNAVAILABLE, Some(detail.to_string()));
    let mut checks = serde_json::Map::new();
    checks.insert(check.to_string(), value);
    problem.checks = Some(checks);
    let mut response = problem.into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain"),
        (status = "default", description = "Error", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (size, idle, max) = state.db.pool_stats();
    let pool = &state.metrics.db_pool_connections;
    pool.with_label_values(&["idle"]).set(i64::from(idle));
    pool.with_label_values(&["in_use"])
        .set(i64::from(size.saturating_sub(idle)));
    state.metrics.db_pool_max.set(i64::from(max));
    let dropped = &state.metrics.log_lines_dropped;
    dropped.inc_by(crate::telemetry::lines_dropped().saturating_sub(dropped.get()));
    if state.db.backend() == "sqlite" {
        // One indexed row; on a failure the last value read stays (the database's own alerts fire).
        if let Ok(Ok(taken_at)) =
            tokio::time::timeout(READINESS_DB_TIMEOUT, state.db.last_backup_taken_at()).await
        {
            state
                .metrics
                .backup_last_success
                .set(taken_at.map_or(0, |t| t.unix_timestamp()));
        }
    }
    let body = state.metrics.encode().map_err(|_| ApiError::Internal)?;
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        ))
        .body(body))
}
