//! Process statistics for operators. Off unless `DEBUG=true`, and behind the bearer token even then.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System};
use utoipa::ToSchema;

use crate::auth::Authenticated;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct MemoryReport {
    pub pid: u32,
    /// Resident set size, bytes.
    pub rss_bytes: u64,
    /// Virtual memory size, bytes.
    pub virtual_bytes: u64,
    /// Seconds since the process started.
    pub uptime_seconds: u64,
    /// CPU time used since start, milliseconds.
    pub cpu_time_ms: u64,
    /// Open file descriptors, when readable.
    pub open_files: Option<u64>,
    pub system_total_memory_bytes: u64,
    pub system_used_memory_bytes: u64,
    /// Database pool: connections open, idle and the configured maximum.
    pub db_pool: DbPool,
}

#[derive(Serialize, ToSchema)]
pub struct DbPool {
    pub open: u32,
    pub idle: u32,
    pub max: u32,
}

/// Memory and CPU statistics of this process (sysinfo). 403 unless debug is enabled.
#[utoipa::path(
    get,
    path = "/debug/memory",
    tag = "operations",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Process statistics", body = MemoryReport),
        (status = 401, description = "Missing or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Debug endpoints are disabled", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = Problem, content_type = "application/problem+json"),
        (status = "default", description = "Error", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn memory(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    if !state.settings.debug {
        return Err(ApiError::Forbidden(
            "debug endpoints are disabled; set DEBUG=true to enable them".into(),
        ));
    }
    // Checked after the debug switch so a disabled endpoint answers 403 whatever the credentials.
    <Authenticated as actix_web::FromRequest>::extract(&req).await?;

    let pid = sysinfo::get_current_pid().map_err(|_| ApiError::Internal)?;
    let report = web::block(move || {
        let mut system = System::new();
        system.refresh_memory();
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            true,
            ProcessRefreshKind::nothing().with_memory().with_cpu(),
        );
        let process = system.process(pid)?;
        Some((
            process.memory(),
            process.virtual_memory(),
            process.run_time(),
            process.accumulated_cpu_time(),
            process.open_files().map(|n| n as u64),
            system.total_memory(),
            system.used_memory(),
        ))
    })
    .await
    .map_err(|_| ApiError::Internal)?
    .ok_or(ApiError::Internal)?;
    let (open, idle, max) = state.db.pool_stats();
    Ok(HttpResponse::Ok().json(MemoryReport {
        pid: pid.as_u32(),
        rss_bytes: report.0,
        virtual_bytes: report.1,
        uptime_seconds: report.2,
        cpu_time_ms: report.3,
        open_files: report.4,
        system_total_memory_bytes: report.5,
        system_used_memory_bytes: report.6,
        db_pool: DbPool { open, idle, max },
    }))
}
