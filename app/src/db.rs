//! Storage: SQLite by default (one file, zero configuration), PostgreSQL when `DATABASE_URL` says so.
//!
//! Both backends run the same SQL text (`$n` placeholders and `RETURNING` work in both); the
//! [`on_pool!`] macro expands one body per backend so each is type-checked against its own driver.
//! Migrations are embedded and applied at start inside a transaction; on PostgreSQL an advisory lock
//! serialises replicas that start together.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Row, SqlitePool};
use time::OffsetDateTime;

use crate::configuration::Settings;
use crate::domain::{User, ValidPatch, ValidUser};

/// Ordered schema migrations: (version, description, SQLite DDL, PostgreSQL DDL).
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[(
    1,
    "create users",
    "CREATE TABLE users (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        email TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )",
    "CREATE TABLE users (
        id BIGSERIAL PRIMARY KEY,
        name TEXT NOT NULL,
        email TEXT NOT NULL UNIQUE,
        created_at TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL
    )",
)];

/// Serialises concurrent migrators on PostgreSQL (an arbitrary constant, the same for every replica).
const MIGRATION_LOCK_ID: i64 = 0x6465_7673_6563;

#[derive(Debug)]
pub enum DbError {
    /// The email is already taken.
    Conflict,
    /// The database could not be reached in time.
    Unavailable(String),
    /// Anything else: a bug or corrupt data.
    Other(String),
}

impl From<sqlx::Error> for DbError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => DbError::Conflict,
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => DbError::Unavailable(err.to_string()),
            // PostgreSQL: statement timeout, admin shutdown, cannot connect now.
            sqlx::Error::Database(db)
                if matches!(
                    db.code().as_deref(),
                    Some("57014" | "57P01" | "57P03" | "53300")
                ) =>
            {
                DbError::Unavailable(err.to_string())
            }
            _ => DbError::Other(err.to_string()),
        }
    }
}

#[derive(Clone)]
pub enum Database {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to whichever pool backs `$db`.
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            Database::Sqlite($pool) => $body,
            Database::Postgres($pool) => $body,
        }
    };
}

/// Reads a `users` row; a macro so that each backend's `Row` type is checked on its own.
macro_rules! user_from_row {
    ($row:expr) => {
        (|| -> Result<User, sqlx::Error> {
            Ok(User {
                id: $row.try_get("id")?,
                name: $row.try_get("name")?,
                email: $row.try_get("email")?,
                created_at: $row.try_get("created_at")?,
                updated_at: $row.try_get("updated_at")?,
            })
        })()
    };
}

impl Database {
    /// Opens the pool without touching the database: the service starts even while the database is
    /// down, and readiness reports it.
    pub fn connect_lazy(settings: &Settings) -> Result<Self, String> {
        let url = settings.database_url.expose();
        if settings.is_sqlite() {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|e| format!("DATABASE_URL: {e}"))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(settings.db_statement_timeout);
            if let Some(dir) = options.get_filename().parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        format!("DATABASE_URL: cannot create {}: {e}", dir.display())
                    })?;
                }
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(settings.db_max_connections)
                .test_before_acquire(false)
                .acquire_timeout(settings.db_acquire_timeout)
                .connect_lazy_with(options);
            Ok(Database::Sqlite(pool))
        } else {
            let statement_timeout = settings.db_statement_timeout.as_millis().to_string();
            let options = PgConnectOptions::from_str(url)
                .map_err(|e| format!("DATABASE_URL: {e}"))?
                .application_name("devsecops-app")
                .options([("statement_timeout", statement_timeout.as_str())]);
            // No ping before each use: it doubles the round trips of every request. A broken
            // connection fails its query instead (503), is discarded, and the next one reconnects.
            let pool = PgPoolOptions::new()
                .max_connections(settings.db_max_connections)
                .test_before_acquire(false)
                .acquire_timeout(settings.db_acquire_timeout)
                // Connections idle past this are closed, so a pool recovers quickly from an outage.
                .idle_timeout(Duration::from_secs(60))
                .connect_lazy_with(options);
            Ok(Database::Postgres(pool))
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Database::Sqlite(_) => "sqlite",
            Database::Postgres(_) => "postgres",
        }
    }

    /// Applies the migrations not yet recorded in `schema_migrations`; returns the versions applied.
    pub async fn migrate(&self) -> Result<Vec<i64>, DbError> {
        let postgres = matches!(self, Database::Postgres(_));
        let (version_type, time_type) = if postgres {
            ("BIGINT", "TIMESTAMPTZ")
        } else {
            ("INTEGER", "TEXT")
        };
        let create = format!(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version {version_type} PRIMARY KEY, description TEXT NOT NULL, applied_at {time_type} NOT NULL)"
        );
        let mut applied = Vec::new();
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            if postgres {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(MIGRATION_LOCK_ID)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(&create).execute(&mut *tx).await?;
            for (version, description, sqlite_ddl, postgres_ddl) in MIGRATIONS {
                let done: Option<i64> =
                    sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                        .bind(version)
                        .fetch_optional(&mut *tx)
                        .await?;
                if done.is_none() {
                    let ddl = if postgres { postgres_ddl } else { sqlite_ddl };
                    sqlx::query(ddl).execute(&mut *tx).await?;
                    sqlx::query("INSERT INTO schema_migrations (version, description, applied_at) VALUES ($1, $2, $3)")
                        .bind(version)
                        .bind(description)
                        .bind(OffsetDateTime::now_utc())
                        .execute(&mut *tx)
                        .await?;
                    applied.push(*version);
                }
            }
            tx.commit().await?;
        });
        Ok(applied)
    }

    /// A round trip to the database, for readiness.
    pub async fn ping(&self) -> Result<(), DbError> {
        on_pool!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// (connections open, idle, configured maximum)
    pub fn pool_stats(&self) -> (u32, u32, u32) {
        on_pool!(self, pool => (
            pool.size(),
            u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
            pool.options().get_max_connections(),
        ))
    }

    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }

    pub async fn list_users(&self, after_id: i64, limit: u32) -> Result<Vec<User>, DbError> {
        const SQL: &str = "SELECT id, name, email, created_at, updated_at FROM users WHERE id > $1 ORDER BY id LIMIT $2";
        let users = on_pool!(self, pool => {
            sqlx::query(SQL)
                .bind(after_id)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| user_from_row!(row))
                .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        Ok(users)
    }

    pub async fn get_user(&self, id: i64) -> Result<Option<User>, DbError> {
        const SQL: &str = "SELECT id, name, email, created_at, updated_at FROM users WHERE id = $1";
        let user = on_pool!(self, pool => {
            match sqlx::query(SQL).bind(id).fetch_optional(pool).await? {
                Some(row) => Some(user_from_row!(row)?),
                None => None,
            }
        });
        Ok(user)
    }

    pub async fn create_user(&self, user: &ValidUser) -> Result<User, DbError> {
        const SQL: &str = "INSERT INTO users (name, email, created_at, updated_at) VALUES ($1, $2, $3, $3) RETURNING id, name, email, created_at, updated_at";
        let now = now_micros();
        let created = on_pool!(self, pool => {
            let row = sqlx::query(SQL)
                .bind(&user.name)
                .bind(&user.email)
                .bind(now)
                .fetch_one(pool)
                .await?;
            user_from_row!(row)?
        });
        Ok(created)
    }

    /// Replaces name and email; `None` when the user does not exist.
    pub async fn replace_user(&self, id: i64, user: &ValidUser) -> Result<Option<User>, DbError> {
        self.patch_user(
            id,
            &ValidPatch {
                name: Some(user.name.clone()),
                email: Some(user.email.clone()),
            },
        )
        .await
    }

    /// Changes the fields given; `None` when the user does not exist.
    pub async fn patch_user(&self, id: i64, patch: &ValidPatch) -> Result<Option<User>, DbError> {
        const SQL: &str = "UPDATE users SET name = COALESCE($2, name), email = COALESCE($3, email), updated_at = $4 WHERE id = $1 RETURNING id, name, email, created_at, updated_at";
        let now = now_micros();
        let user = on_pool!(self, pool => {
            match sqlx::query(SQL)
                .bind(id)
                .bind(patch.name.as_deref())
                .bind(patch.email.as_deref())
                .bind(now)
                .fetch_optional(pool)
                .await?
            {
                Some(row) => Some(user_from_row!(row)?),
                None => None,
            }
        });
        Ok(user)
    }

    /// Deletes a user; false when there was none.
    pub async fn delete_user(&self, id: i64) -> Result<bool, DbError> {
        let affected = on_pool!(self, pool => {
            sqlx::query("DELETE FROM users WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(affected > 0)
    }
}

/// PostgreSQL keeps microseconds; truncating here makes both backends return the same instant.
fn now_micros() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .unwrap_or(now)
}
