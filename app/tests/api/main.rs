//! Integration tests: the real service on a random port, real SQLite and real PostgreSQL.

mod helpers;

mod backup;
mod command_line;
mod compression;
mod conditional;
mod contract;
mod errors;
mod forwarding;
mod health;
mod input;
mod labels;
mod observability;
mod openapi;
mod outage;
mod security;
mod shutdown;
mod startup;
mod storage;
mod users;
mod visibility;
