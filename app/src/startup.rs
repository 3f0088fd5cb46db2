//! Wiring: settings + logger → database, state and HTTP server; then the shutdown sequence.
//!
//! Shutdown on SIGTERM or SIGINT: readiness turns 503 at once, the listener keeps serving for
//! `SHUTDOWN_DELAY_MS` (so load balancers stop sending), then stops accepting and drains in-flight
//! requests for at most `SHUTDOWN_TIMEOUT_SECS`, then the database pool closes and the process exits.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{error, web, App, HttpServer};
use slog::{crit, error, info, warn, Logger};

use crate::configuration::Settings;
use crate::db::{Database, DbError, OpenError, StorageFault};
use crate::metrics::Metrics;
use crate::middleware::request_context;
use crate::problem::{json_error, ApiError};
use crate::routes::{self, OpenApiJson};
use crate::state::AppState;

/// How often idle clients are forgotten by the rate limiter, bounding its memory.
const RATE_LIMITER_SWEEP: Duration = Duration::from_secs(10);

pub struct Application {
    port: u16,
    metrics_port: u16,
    server: Server,
    internal: Server,
    state: web::Data<AppState>,
}

/// Why the service could not start. A configuration error (exit 2) names the variable or path to
/// fix; anything else exits 1.
#[derive(Debug)]
pub struct StartupError {
    pub message: String,
    pub kind: StartupErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartupErrorKind {
    Configuration,
    Runtime,
}

impl StartupError {
    pub fn configuration(message: impl Into<String>) -> Self {
        StartupError {
            message: message.into(),
            kind: StartupErrorKind::Configuration,
        }
    }
    pub fn runtime(message: impl Into<String>) -> Self {
        StartupError {
            message: message.into(),
            kind: StartupErrorKind::Runtime,
        }
    }
}

impl std::fmt::Display for StartupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StartupError {}

fn bind(host: &str, port: u16, variable: &str) -> Result<TcpListener, StartupError> {
    TcpListener::bind((host, port)).map_err(|e| {
        StartupError::configuration(format!("{variable}: cannot listen on {host}:{port}: {e}"))
    })
}

/// Prometheus and operators are on the cluster network; the public listener's slow-client bound
/// would only make scrapes flaky.
const INTERNAL_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest pause between attempts to reach PostgreSQL for the migrations.
const MIGRATION_RETRY_MAX: Duration = Duration::from_secs(5);

impl Application {
    /// Connects, migrates, binds and builds the servers; nothing is served until [`Self::run`].
    pub async fn build(settings: Settings, logger: Logger) -> Result<Self, StartupError> {
        let listener = bind(&settings.host, settings.port, "PORT")?;
        Self::build_with_listener(settings, logger, listener).await
    }

    /// As [`Self::build`], on a public listener bound by the caller; the internal listener is bound
    /// from `METRICS_HOST`/`METRICS_PORT` (0 picks a free port).
    pub async fn build_with_listener(
        settings: Settings,
        logger: Logger,
        listener: TcpListener,
    ) -> Result<Self, StartupError> {
        let internal = bind(
            &settings.metrics_host,
            settings.metrics_port,
            "METRICS_PORT",
        )?;
        Self::build_with_listeners(settings, logger, listener, internal).await
    }

    pub async fn build_with_listeners(
        settings: Settings,
        logger: Logger,
        listener: TcpListener,
        internal_listener: TcpListener,
    ) -> Result<Self, StartupError> {
        let port = local_port(&listener)?;
        let metrics_port = local_port(&internal_listener)?;
        let variable = settings.database_url_source.clone();
        let db = Database::connect_lazy(&settings.database()).map_err(|e| match e {
            OpenError::Invalid(message) => {
                StartupError::configuration(format!("{variable}: {message}"))
            }
            // A restore is replacing the file: starting later is the fix.
            OpenError::Busy(message) => StartupError::runtime(message),
        })?;
        info!(logger, "configuration loaded";
            "api_token_source" => &settings.api_token_source,
            "database" => db.backend(),
            "trusted_proxies" => settings.trusted_proxies.len());

        let revision = option_env!("GIT_REVISION").unwrap_or("unknown");
        let metrics = Metrics::new(revision)
            .map_err(|e| StartupError::runtime(format!("metrics registry: {e}")))?;
        let state = web::Data::new(AppState::new(settings, db, metrics, logger));
        crate::http_log::subscribe(&state);

        if let Some(path) = state.db.sqlite_path() {
            // A local file: anything wrong with it is for the operator to fix before starting.
            let existed = path.exists();
            let has_content = std::fs::metadata(&path).is_ok_and(|m| m.len() > 0);
            // Only a schema read that succeeded and found none means "no schema": a file that
            // cannot be read now (locked by another process, an I/O error) is said as such, never
            // with advice to move a database that may be whole.
            let schema = if has_content {
                Some(state.db.schema_version().await.map_err(|e| {
                    StartupError::configuration(format!(
                        "{variable}: cannot read the SQLite database {}: {}",
                        path.display(),
                        e.describe()
                    ))
                })?)
            } else {
                None
            };
            if schema == Some(None) {
                // A file with pages but no schema: not a database this service made, or one whose
                // WAL (holding everything since the last checkpoint) was deleted. Migrating it
                // would serve an empty database as if nothing had happened.
                return Err(StartupError::configuration(format!(
                    "{variable}: {} exists but holds no schema of this service (its WAL may have been deleted, or it is another program's file): restore a backup, or move the file away to start empty",
                    path.display()
                )));
            }
            let applied = state.db.migrate().await.map_err(|e| {
                StartupError::configuration(format!(
                    "{variable}: cannot open or migrate the SQLite database {}: {}",
                    path.display(),
                    e.describe()
                ))
            })?;
            // Migrations may need no write at all; the service's job is writing, so check it can.
            state.db.check_ready().await.map_err(|e| {
                StartupError::configuration(format!(
                    "{variable}: the SQLite database {} cannot be written: {}",
                    path.display(),
                    e.describe()
                ))
            })?;
            state.db.hold_open().await.map_err(|e| {
                StartupError::configuration(format!(
                    "{variable}: cannot hold the SQLite database {} open: {}",
                    path.display(),
                    e.describe()
                ))
            })?;
            if !existed {
                warn!(state.logger, "created a new, empty database: if one existed here before, it is gone (restore a backup)";
                    "event" => "database_created", "path" => path.display().to_string());
            }
            info!(state.logger, "database ready"; "backend" => "sqlite", "migrations_applied" => format!("{applied:?}"));
            state.metrics.db_up.set(1);
            state
                .metrics
                .enable_backup_metric()
                .map_err(|e| StartupError::runtime(format!("metrics registry: {e}")))?;
        }
        // PostgreSQL may come up after the service: it starts unready and migrates when the
        // database answers (in `run_until_stopped`), instead of exiting into a crash loop.

        let server = public_server(state.clone(), listener)?;
        let internal = internal_server(state.clone(), internal_listener)?;
        Ok(Application {
            port,
            metrics_port,
            server,
            internal,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn metrics_port(&self) -> u16 {
        self.metrics_port
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until SIGTERM or SIGINT, then shuts down as described in the module docs.
    pub async fn run(self) -> Result<(), StartupError> {
        self.run_with(ShutdownSignals::install()).await
    }

    /// As [`Self::run`], with signal handlers installed earlier (before the build, so that a
    /// SIGTERM during start-up is handled, not fatal).
    pub async fn run_with(self, mut signals: ShutdownSignals) -> Result<(), StartupError> {
        let state = self.state.clone();
        let handle = self.server.handle();
        actix_web::rt::spawn(async move {
            signals.recv().await;
            begin_shutdown(&state).await;
            handle.stop(true).await;
        });
        self.run_until_stopped().await
    }

    /// Serves until the public server stops (tests stop it by dropping the task). The internal
    /// listener stops after it, so metrics stay scrapeable while requests drain. A database that
    /// refuses the configuration at start (PostgreSQL: wrong password, no such database, a schema
    /// newer than this build) stops both and is returned as a configuration error.
    pub async fn run_until_stopped(self) -> Result<(), StartupError> {
        if self.state.rate_limiter.is_some() {
            let state = self.state.clone();
            actix_web::rt::spawn(async move {
                let mut tick = tokio::time::interval(RATE_LIMITER_SWEEP);
                loop {
                    tick.tick().await;
                    if let Some(limiter) = state.rate_limiter.as_ref() {
                        limiter.retain_recent();
                        limiter.shrink_to_fit();
                    }
                }
            });
        }
        let fatal: Arc<Mutex<Option<StartupError>>> = Arc::default();
        if !self.state.db.is_migrated() {
            actix_web::rt::spawn(migrate_when_reachable(
                self.state.clone(),
                fatal.clone(),
                [self.server.handle(), self.internal.handle()],
            ));
        }
        info!(self.state.logger, "listening";
            "address" => format!("{}:{}", self.state.settings.host, self.port),
            "internal_address" => format!("{}:{}", self.state.settings.metrics_host, self.metrics_port),
            "environment" => self.state.settings.environment.as_str(),
            "database" => self.state.db.backend());
        let internal_handle = self.internal.handle();
        let internal = actix_web::rt::spawn(self.internal);
        let result = self.server.await;
        internal_handle.stop(false).await;
        let _ = internal.await;
        self.state.db.close().await;
        info!(self.state.logger, "stopped");
        if let Some(err) = fatal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            return Err(err);
        }
        result.map_err(|e| StartupError::runtime(format!("server error: {e}")))
    }
}

/// SIGTERM and SIGINT, listened for from the moment this is made.
pub struct ShutdownSignals {
    #[cfg(unix)]
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl ShutdownSignals {
    /// Installs the handlers; needs a Tokio runtime.
    pub fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            ShutdownSignals {
                streams: signal(SignalKind::terminate())
                    .and_then(|term| Ok((term, signal(SignalKind::interrupt())?)))
                    .ok(),
            }
        }
        #[cfg(not(unix))]
        ShutdownSignals {}
    }

    /// Waits for the first signal.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some((term, int)) = self.streams.as_mut() {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn local_port(listener: &TcpListener) -> Result<u16, StartupError> {
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| StartupError::runtime(format!("listener address: {e}")))
}

/// Retries the PostgreSQL migrations until they succeed, with backoff; readiness is 503 meanwhile.
/// A database that answers but refuses the configuration (credentials, database name, a schema
/// newer than this build) is not waited for: the servers stop and the process exits 2.
async fn migrate_when_reachable(
    state: web::Data<AppState>,
    fatal: Arc<Mutex<Option<StartupError>>>,
    servers: [actix_web::dev::ServerHandle; 2],
) {
    let mut pause = Duration::from_millis(250);
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match state.db.migrate().await {
            Ok(applied) => {
                info!(state.logger, "database ready"; "backend" => state.db.backend(),
                    "migrations_applied" => format!("{applied:?}"), "attempts" => attempts);
                state.metrics.db_up.set(1);
                return;
            }
            Err(
                err @ (DbError::Unavailable(StorageFault::Misconfigured, _) | DbError::Other(_)),
            ) => {
                let message = format!(
                    "{}: the database refuses this configuration: {}",
                    state.settings.database_url_source,
                    err.describe()
                );
                crit!(state.logger, "the database refuses the configuration: stopping";
                    "event" => "database_misconfigured", "error" => &message);
                *fatal
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some(StartupError::configuration(message));
                for server in servers {
                    server.stop(false).await;
                }
                return;
            }
            Err(err) => {
                state.metrics.db_up.set(0);
                // The first failure and then every tenth, so an outage does not flood the log.
                if attempts == 1 || attempts % 10 == 0 {
                    error!(state.logger, "database migrations pending: the database did not answer; serving unready until it does";
                        "event" => "migrations_pending", "attempts" => attempts, "error" => err.describe());
                }
            }
        }
        if state.lifecycle.is_shutting_down() {
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MIGRATION_RETRY_MAX);
    }
}

async fn begin_shutdown(state: &AppState) {
    if state.lifecycle.begin_shutdown() {
        state.metrics.shutting_down.set(1);
        warn!(state.logger, "shutdown started: readiness is now 503";
            "event" => "shutdown",
            "delay_ms" => state.settings.shutdown_delay.as_millis() as u64,
            "drain_timeout_s" => state.settings.shutdown_timeout.as_secs());
        tokio::time::sleep(state.settings.shutdown_delay).await;
        info!(state.logger, "draining in-flight requests"; "event" => "shutdown");
    }
}

/// The listener clients, ingresses and probes use.
fn public_server(
    state: web::Data<AppState>,
    listener: TcpListener,
) -> Result<Server, StartupError> {
    let settings = state.settings.clone();
    let body_limit = settings.max_body_bytes;
    let openapi = web::Data::new(OpenApiJson::public());
    let openapi_public = settings.openapi_public;
    let server = HttpServer::new(move || {
        // Runs on each worker's thread as the worker starts.
        state.db.register_worker();
        App::new()
            .app_data(state.clone())
            .app_data(openapi.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(body_limit)
                    .error_handler(move |err, _| json_error(err, body_limit).into()),
            )
            .app_data(web::PayloadConfig::new(body_limit))
            .app_data(web::PathConfig::default().error_handler(|err, _| {
                ApiError::BadRequest(format!("invalid path parameter: {err}")).into()
            }))
            .app_data(web::QueryConfig::default().error_handler(|err, _| {
                let detail: String = err.to_string().chars().take(200).collect();
                error::Error::from(ApiError::BadRequest(format!(
                    "invalid query string: {detail}"
                )))
            }))
            .wrap(from_fn(request_context))
            .configure(|cfg| routes::configure_public(cfg, openapi_public))
            .default_service(web::to(routes::not_found))
    })
    .workers(settings.workers)
    // A compressed body is streamed: its last chunk is a second small write, which Nagle's
    // algorithm holds until the client's delayed ACK (40 ms on Linux). actix-web keeps the OS
    // default unless told.
    .tcp_nodelay(true)
    .max_connections(settings.max_connections)
    .client_request_timeout(settings.header_read_timeout)
    .client_disconnect_timeout(Duration::from_secs(1))
    .keep_alive(settings.keep_alive)
    .shutdown_timeout(settings.shutdown_timeout.as_secs().max(1))
    .disable_signals()
    .listen(listener)
    .map_err(|e| StartupError::runtime(format!("cannot serve on the listener: {e}")))?
    .run();
    Ok(server)
}

/// The internal listener: metrics, diagnostics and the API description, for Prometheus and
/// operators; one worker is plenty.
fn internal_server(
    state: web::Data<AppState>,
    listener: TcpListener,
) -> Result<Server, StartupError> {
    let settings = state.settings.clone();
    let openapi = web::Data::new(OpenApiJson::internal());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(openapi.clone())
            .wrap(from_fn(request_context))
            .configure(routes::configure_internal)
            .default_service(web::to(routes::not_found))
    })
    .workers(1)
    .tcp_nodelay(true)
    .max_connections(64)
    .client_request_timeout(INTERNAL_HEADER_READ_TIMEOUT)
    .client_disconnect_timeout(Duration::from_secs(1))
    .keep_alive(settings.keep_alive)
    .shutdown_timeout(1)
    .disable_signals()
    .listen(listener)
    .map_err(|e| StartupError::runtime(format!("cannot serve on the internal listener: {e}")))?
    .run();
    Ok(server)
}
