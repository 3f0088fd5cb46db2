//! `devsecops-app`: the users service that the platform builds, secures, delivers and observes.
//!
//! Layout: [`configuration`] reads and validates settings; [`startup`] wires the database, state and
//! HTTP server; [`middleware`] instruments every request; [`routes`] holds the handlers and the
//! OpenAPI document; [`db`] stores users in SQLite or PostgreSQL; [`telemetry`] and [`metrics`] are
//! the log and metric outputs. See ARCHITECTURE.md.

pub mod auth;
pub mod backup;
pub mod cli;
pub mod client_address;
pub mod conditional;
pub mod configuration;
pub mod db;
pub mod domain;
pub mod healthcheck;
pub mod http_log;
pub mod metrics;
pub mod middleware;
pub mod problem;
pub mod routes;
pub mod startup;
pub mod state;
pub mod telemetry;
