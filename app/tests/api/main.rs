//! Integration tests: the real service on a random port, real SQLite and real PostgreSQL.

mod helpers;

mod errors;
mod health;
mod observability;
mod openapi;
mod outage;
mod security;
mod shutdown;
mod storage;
mod users;
