//! Wiring: settings + logger → database, state and HTTP server; then the shutdown sequence.
//!
//! Shutdown on SIGTERM or SIGINT: readiness turns 503 at once, the listener keeps serving for
//! `SHUTDOWN_DELAY_MS` (so load balancers stop sending), then stops accepting and drains in-flight
//! requests for at most `SHUTDOWN_TIMEOUT_SECS`, then the database pool closes and the process exits.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{error, web, App, HttpServer};
use slog::{info, warn, Logger};

use crate::configuration::Settings;
use crate::db::Database;
use crate::metrics::Metrics;
use crate::middleware::request_context;
use crate::problem::{json_error, ApiError};
use crate::routes::{self, OpenApiJson};
use crate::state::AppState;

/// How often idle clients are forgotten by the rate limiter, bounding its memory.
const RATE_LIMITER_SWEEP: Duration = Duration::from_secs(60);

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
}

#[derive(Debug)]
pub struct StartupError(pub String);

impl std::fmt::Display for StartupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartupError {}

impl Application {
    /// Connects, migrates, binds and builds the server; nothing is served until [`Self::run`].
    pub async fn build(settings: Settings, logger: Logger) -> Result<Self, StartupError> {
        let listener = TcpListener::bind((settings.host.as_str(), settings.port)).map_err(|e| {
            StartupError(format!(
                "cannot listen on {}:{}: {e}",
                settings.host, settings.port
            ))
        })?;
        Self::build_with_listener(settings, logger, listener).await
    }

    pub async fn build_with_listener(
        settings: Settings,
        logger: Logger,
        listener: TcpListener,
    ) -> Result<Self, StartupError> {
        let port = listener
            .local_addr()
            .map_err(|e| StartupError(format!("listener address: {e}")))?
            .port();
        let db = Database::connect_lazy(&settings).map_err(StartupError)?;
        let applied = db
            .migrate()
            .await
            .map_err(|e| StartupError(format!("database migration failed: {e:?}")))?;
        info!(logger, "database ready"; "backend" => db.backend(), "migrations_applied" => format!("{applied:?}"));

        let revision = option_env!("GIT_REVISION").unwrap_or("unknown");
        let metrics =
            Metrics::new(revision).map_err(|e| StartupError(format!("metrics registry: {e}")))?;
        // The migrations just reached the database; readiness probes keep this current.
        metrics.db_up.set(1);
        let state = web::Data::new(AppState::new(settings, db, metrics, logger));
        let server = server(state.clone(), listener)?;
        Ok(Application {
            port,
            server,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until SIGTERM or SIGINT, then shuts down as described in the module docs.
    pub async fn run(self) -> std::io::Result<()> {
        let state = self.state.clone();
        let handle = self.server.handle();
        actix_web::rt::spawn(async move {
            wait_for_signal().await;
            begin_shutdown(&state).await;
            handle.stop(true).await;
        });
        self.run_until_stopped().await
    }

    /// Serves until the server stops (tests stop it by dropping the task).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
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
        info!(self.state.logger, "listening";
            "address" => format!("{}:{}", self.state.settings.host, self.port),
            "environment" => self.state.settings.environment.as_str(),
            "database" => self.state.db.backend());
        let result = self.server.await;
        self.state.db.close().await;
        info!(self.state.logger, "stopped");
        result
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

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = int.recv() => {},
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn server(state: web::Data<AppState>, listener: TcpListener) -> Result<Server, StartupError> {
    let settings = state.settings.clone();
    let body_limit = settings.max_body_bytes;
    let openapi = web::Data::new(OpenApiJson::render());
    let server = HttpServer::new(move || {
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
            .configure(routes::configure)
            .default_service(web::to(routes::not_found))
    })
    .workers(settings.workers)
    .max_connections(settings.max_connections)
    .client_request_timeout(settings.header_read_timeout)
    .client_disconnect_timeout(Duration::from_secs(1))
    .keep_alive(settings.keep_alive)
    .shutdown_timeout(settings.shutdown_timeout.as_secs().max(1))
    .disable_signals()
    .listen(listener)
    .map_err(|e| StartupError(format!("cannot serve on the listener: {e}")))?
    .run();
    Ok(server)
}
