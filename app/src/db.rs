//! Storage: SQLite by default (one file, zero configuration), PostgreSQL when `DATABASE_URL` says so.
//!
//! Both backends run the same SQL text (`$n` placeholders, `RETURNING` and `ON CONFLICT` work in
//! both); the [`on_pool!`] macro expands one body per backend so each is type-checked against its own
//! driver. Migrations are embedded and applied inside a transaction; on PostgreSQL an advisory lock
//! serialises replicas that start together.
//!
//! A write is confirmed only after its `COMMIT` returned: every write runs in an explicit
//! transaction and reads all its result rows, because a statement abandoned after its first row
//! (sqlx's `fetch_one`/`fetch_optional`) never reports an error that SQLite raises when the implicit
//! commit fails, such as a full disk (sqlx issues #2099 and #3430). Storage failures are classified
//! into a fixed set of [`StorageFault`]s that the API answers with 503 and that readiness reflects.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Row, SqlitePool};
use time::OffsetDateTime;

use crate::backup::DatabaseLock;
use crate::configuration::{database_options, DatabaseOptions, DatabaseSettings};
use crate::domain::{email_key, User, ValidPatch, ValidUser};

/// One schema migration: statements per backend, applied in order in one transaction, then an
/// optional data step written in Rust (for what SQL cannot compute on both backends).
struct Migration {
    version: i64,
    description: &'static str,
    sqlite: &'static [&'static str],
    postgres: &'static [&'static str],
    after: Option<DataStep>,
}

#[derive(Clone, Copy)]
enum DataStep {
    /// Fills `users.email_key` for rows written before the column existed, then makes it unique.
    FillEmailKeys,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "create users",
        sqlite: &["CREATE TABLE users (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL,
            email TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )"],
        postgres: &["CREATE TABLE users (
            id BIGSERIAL PRIMARY KEY,
            name TEXT NOT NULL,
            email TEXT NOT NULL UNIQUE,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL
        )"],
        after: None,
    },
    Migration {
        version: 2,
        description: "readiness write probe",
        sqlite: &[
            "CREATE TABLE readiness_probe (id INTEGER PRIMARY KEY, checked_at TEXT NOT NULL)",
        ],
        postgres: &[
            "CREATE TABLE readiness_probe (id BIGINT PRIMARY KEY, checked_at TIMESTAMPTZ NOT NULL)",
        ],
        after: None,
    },
    Migration {
        version: 3,
        description: "unique email key (NFKC, case folded)",
        sqlite: &["ALTER TABLE users ADD COLUMN email_key TEXT"],
        postgres: &["ALTER TABLE users ADD COLUMN email_key TEXT"],
        after: Some(DataStep::FillEmailKeys),
    },
    Migration {
        version: 4,
        description: "row versions for conditional requests",
        sqlite: &["ALTER TABLE users ADD COLUMN version INTEGER NOT NULL DEFAULT 1"],
        postgres: &["ALTER TABLE users ADD COLUMN version BIGINT NOT NULL DEFAULT 1"],
        after: None,
    },
    Migration {
        version: 5,
        description: "backup records",
        sqlite: &["CREATE TABLE backups (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            taken_at TEXT NOT NULL,
            completed_at TEXT NOT NULL,
            path TEXT NOT NULL,
            bytes INTEGER NOT NULL
        )"],
        postgres: &["CREATE TABLE backups (
            id BIGSERIAL PRIMARY KEY,
            taken_at TIMESTAMPTZ NOT NULL,
            completed_at TIMESTAMPTZ NOT NULL,
            path TEXT NOT NULL,
            bytes BIGINT NOT NULL
        )"],
        after: None,
    },
];

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i64 = 5;

/// Backup records kept in the `backups` table; older ones are deleted as new ones are written.
const BACKUP_RECORDS_KEPT: i64 = 100;

/// Serialises concurrent migrators on PostgreSQL (an arbitrary constant, the same for every replica).
const MIGRATION_LOCK_ID: i64 = 0x6465_7673_6563;

/// How long closing a broken connection may hold the next writer's turn (sqlx's own close on drop
/// waits as long).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Readiness writes at most this often; callers in between share the last result, so polling
/// `/ready` cannot turn into a write load.
const WRITE_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Why the database could not serve a request. The names are the `reason` label of
/// `app_db_errors_total`, so the set is fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageFault {
    /// No connection in time, or the connection broke.
    Unreachable,
    /// A statement ran past its time limit.
    Timeout,
    /// Another connection held the lock past the busy timeout, or a serialization conflict.
    Locked,
    /// The disk (or a quota, or memory) is full.
    Full,
    /// The database or its files are read-only.
    ReadOnly,
    /// Writes are not permitted to the service's role.
    Permission,
    /// The storage layer reported an I/O error or cannot open its files.
    Io,
    /// The database file is damaged.
    Corrupt,
    /// The SQLite file was deleted or replaced while the service ran.
    FileMissing,
    /// Migrations have not been applied yet (the database has not answered since start).
    NotMigrated,
    /// The database refuses the service's credentials or does not exist: a configuration error.
    Misconfigured,
}

impl StorageFault {
    pub const ALL: &'static [StorageFault] = &[
        StorageFault::Unreachable,
        StorageFault::Timeout,
        StorageFault::Locked,
        StorageFault::Full,
        StorageFault::ReadOnly,
        StorageFault::Permission,
        StorageFault::Io,
        StorageFault::Corrupt,
        StorageFault::FileMissing,
        StorageFault::NotMigrated,
        StorageFault::Misconfigured,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StorageFault::Unreachable => "unreachable",
            StorageFault::Timeout => "timeout",
            StorageFault::Locked => "locked",
            StorageFault::Full => "full",
            StorageFault::ReadOnly => "read_only",
            StorageFault::Permission => "permission",
            StorageFault::Io => "io",
            StorageFault::Corrupt => "corrupt",
            StorageFault::FileMissing => "file_missing",
            StorageFault::NotMigrated => "not_migrated",
            StorageFault::Misconfigured => "misconfigured",
        }
    }

    /// Whether the fault is about writing: it keeps the service unready until a write succeeds.
    fn blocks_writes(self) -> bool {
        !matches!(self, StorageFault::Timeout)
    }
}

#[derive(Debug)]
pub enum DbError {
    /// The email is already taken.
    Conflict,
    /// The database cannot serve now; the client may retry (503).
    Unavailable(StorageFault, String),
    /// Anything else: a bug or corrupt data.
    Other(String),
}

impl DbError {
    /// The error as an operator reads it (no URL, no password: sqlx errors carry neither).
    pub fn describe(&self) -> String {
        match self {
            DbError::Unavailable(fault, cause) => format!("{} ({cause})", fault.as_str()),
            DbError::Other(cause) => cause.clone(),
            DbError::Conflict => "a unique constraint failed".into(),
        }
    }
}

impl From<sqlx::Error> for DbError {
    fn from(err: sqlx::Error) -> Self {
        match classify(&err) {
            Ok(()) => DbError::Conflict,
            Err(Some(fault)) => DbError::Unavailable(fault, err.to_string()),
            Err(None) => DbError::Other(err.to_string()),
        }
    }
}

/// `Ok(())` for a unique violation, `Err(Some(fault))` for a storage fault, `Err(None)` otherwise.
fn classify(err: &sqlx::Error) -> Result<(), Option<StorageFault>> {
    match err {
        sqlx::Error::Database(db) if db.is_unique_violation() => Ok(()),
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => Err(Some(StorageFault::Unreachable)),
        sqlx::Error::Database(db) => {
            if let Some(sqlite) = db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
                let code: i32 = sqlx::error::DatabaseError::code(sqlite)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                // Primary result codes: https://www.sqlite.org/rescode.html
                return Err(match code & 0xff {
                    5 | 6 => Some(StorageFault::Locked),
                    7 | 13 => Some(StorageFault::Full),
                    8 => Some(StorageFault::ReadOnly),
                    3 => Some(StorageFault::Permission),
                    10 | 14 | 15 => Some(StorageFault::Io),
                    11 | 26 => Some(StorageFault::Corrupt),
                    _ => None,
                });
            }
            // PostgreSQL SQLSTATE classes: https://www.postgresql.org/docs/current/errcodes-appendix.html
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            Err(match code.as_str() {
                "57014" => Some(StorageFault::Timeout),
                "55P03" | "40P01" | "40001" => Some(StorageFault::Locked),
                "25006" => Some(StorageFault::ReadOnly),
                "42501" => Some(StorageFault::Permission),
                "58030" => Some(StorageFault::Io),
                "XX001" | "XX002" => Some(StorageFault::Corrupt),
                // Invalid authorization (wrong password, no such role) or no such database.
                "3D000" => Some(StorageFault::Misconfigured),
                c if c.starts_with("28") => Some(StorageFault::Misconfigured),
                c if c.starts_with("53") => Some(StorageFault::Full),
                c if c.starts_with("08") || c.starts_with("57P") => Some(StorageFault::Unreachable),
                _ => None,
            })
        }
        _ => Err(None),
    }
}

/// The identity of the SQLite file when the service opened it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    device: u64,
    inode: u64,
}

fn file_identity(path: &Path) -> std::io::Result<FileIdentity> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    Ok(FileIdentity {
        device: meta.dev(),
        inode: meta.ino(),
    })
}

/// What readiness knows about storage beyond one ping.
#[derive(Default)]
struct Health {
    migrated: AtomicBool,
    /// The SQLite file's path and identity, recorded after the migrations, and its WAL's once the
    /// service holds the database open ([`Database::hold_open`]).
    sqlite_file: Mutex<Option<(PathBuf, FileIdentity)>>,
    sqlite_wal: Mutex<Option<(PathBuf, FileIdentity)>>,
    /// The WAL index (`-shm`): deleted under a running service, the next connection builds a new
    /// one and SQLite's processes no longer see each other's commits (a backup's record was lost).
    sqlite_shm: Mutex<Option<(PathBuf, FileIdentity)>>,
    /// A connection kept open for the life of the service: SQLite deletes the WAL when its last
    /// connection closes, and with this one open the WAL is the same file from start to exit, so a
    /// WAL deleted by someone else is told apart from one SQLite recycled.
    sqlite_sentinel: Mutex<Option<sqlx::SqliteConnection>>,
    /// Held by the one write probe in flight; callers wait for its result instead of starting
    /// another (a held lock would otherwise turn readiness polling into a connection storm).
    probe_in_flight: Arc<tokio::sync::Mutex<()>>,
    /// When the last write fault was recorded: a fault newer than the last probe makes the next
    /// readiness check probe again.
    write_fault_at: Mutex<Option<Instant>>,
    /// The last write probe: when, and the fault it found.
    last_probe: Mutex<Option<(Instant, Option<StorageFault>)>>,
    /// Set by a write that failed with a storage fault; cleared by the next successful write.
    write_fault: Mutex<Option<StorageFault>>,
    /// Whether the missing SQLite file has been reported (critical, once).
    file_missing_reported: AtomicBool,
}

#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPools),
}

/// PostgreSQL's connections: a pool per HTTP worker, and one for everything else.
///
/// Each actix worker runs its own single-threaded Tokio runtime, and a connection's socket belongs
/// to the runtime that opened it: with one pool, a worker using a connection another worker had
/// opened was woken through that worker's thread, an extra wake-up per query (measured: 10 % more
/// context switches per `GET /api/users`, 14-28 % fewer requests per second). A worker's own
/// pool keeps its queries on its thread. The pools share `DB_MAX_CONNECTIONS` out, so their sum
/// is still the bound on the server's sessions.
#[derive(Clone)]
struct PgPools {
    /// Start-up, migrations, and every thread that is not an HTTP worker.
    shared: PgPool,
    workers: Arc<WorkerPools>,
}

struct WorkerPools {
    /// Which database a worker thread's pool belongs to (tests run several in one process).
    id: u64,
    options: sqlx::postgres::PgConnectOptions,
    /// Connections each worker's pool may open; 0 when there are too few to share out.
    size: u32,
    /// How many workers the connections were shared out for.
    slots: usize,
    acquire_timeout: Duration,
    /// Every worker's pool, for the pool metrics and for closing them.
    pools: Mutex<Vec<PgPool>>,
}

thread_local! {
    /// The pool of the HTTP worker running on this thread, and the database it belongs to.
    static WORKER_POOL: std::cell::RefCell<Option<(u64, PgPool)>> = const { std::cell::RefCell::new(None) };
}

fn postgres_pool(
    options: sqlx::postgres::PgConnectOptions,
    size: u32,
    acquire_timeout: Duration,
) -> PgPool {
    // No ping before each use: it doubles the round trips of every request. A broken connection
    // fails its query instead (503), is discarded, and the next one reconnects.
    PgPoolOptions::new()
        .max_connections(size)
        .test_before_acquire(false)
        .acquire_timeout(acquire_timeout)
        // Connections idle past this are closed, so a pool recovers quickly.
        .idle_timeout(Duration::from_secs(60))
        .connect_lazy_with(options)
}

impl PgPools {
    fn new(
        options: sqlx::postgres::PgConnectOptions,
        max_connections: u32,
        http_workers: u32,
        acquire_timeout: Duration,
    ) -> Self {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        // Each worker gets an equal share and the shared pool the rest (at least one). A share
        // below MIN_WORKER_POOL would let one slow query stall a worker while others' connections
        // sit idle: then everything uses the shared pool, as with WORKERS at or above the limit.
        const MIN_WORKER_POOL: u32 = 4;
        let share = max_connections
            .saturating_sub(1)
            .checked_div(http_workers)
            .unwrap_or(0);
        let size = if share >= MIN_WORKER_POOL { share } else { 0 };
        let shared_size = max_connections - size * http_workers;
        PgPools {
            shared: postgres_pool(options.clone(), shared_size, acquire_timeout),
            workers: Arc::new(WorkerPools {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                options,
                size,
                slots: usize::try_from(http_workers).unwrap_or(usize::MAX),
                acquire_timeout,
                pools: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The pool of the worker on this thread, or the shared one.
    fn current(&self) -> PgPool {
        WORKER_POOL
            .with(|slot| match &*slot.borrow() {
                Some((id, pool)) if *id == self.workers.id => Some(pool.clone()),
                _ => None,
            })
            .unwrap_or_else(|| self.shared.clone())
    }

    /// Gives the calling thread a pool of its own, once per thread and up to the number of
    /// workers the connections were shared out for.
    fn register_worker(&self) {
        let workers = &self.workers;
        if workers.size == 0 {
            return;
        }
        WORKER_POOL.with(|slot| {
            let mut slot = slot.borrow_mut();
            if matches!(&*slot, Some((id, _)) if *id == workers.id) {
                return;
            }
            let mut pools = lock(&workers.pools);
            // More threads than workers (an actix worker restarted after a panic): the newcomer
            // uses the shared pool rather than exceed the bound.
            if pools.len() >= workers.slots {
                return;
            }
            let pool = postgres_pool(
                workers.options.clone(),
                workers.size,
                workers.acquire_timeout,
            );
            pools.push(pool.clone());
            *slot = Some((workers.id, pool));
        });
    }

    fn all(&self) -> Vec<PgPool> {
        let mut all = vec![self.shared.clone()];
        all.extend(lock(&self.workers.pools).iter().cloned());
        all
    }
}

#[derive(Clone)]
pub struct Database {
    pool: Pool,
    health: Arc<Health>,
    /// SQLite: writers queue here, one at a time, before `BEGIN IMMEDIATE`. SQLite has one writer
    /// anyway, and a connection that finds the write lock taken does not wait in a queue: its busy
    /// handler sleeps in steps of up to 100 ms and tries again, so under concurrent writes a few
    /// requests slept for most of a second while others went ahead (p99 860 ms at p50 3.7 ms).
    /// This queue is first come, first served and wakes the next writer as soon as the lock is free.
    write_gate: WriteGate,
    /// SQLite: the shared lock on the database's lock file, held while this process uses it, so
    /// that `restore` cannot replace the file underneath (see [`crate::backup`]).
    _lock: Option<Arc<DatabaseLock>>,
}

/// Why the database could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// The URL or the SQLite path is unusable: the operator's to fix.
    Invalid(String),
    /// A restore holds the database's lock.
    Busy(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Invalid(message) | OpenError::Busy(message) => f.write_str(message),
        }
    }
}

/// A stored user and the version of its row, which every write increments; the ETag is made from
/// the version and `updated_at`.
#[derive(Debug, Clone)]
pub struct StoredUser {
    pub user: User,
    pub version: i64,
}

/// The result of a write that may be conditional.
#[derive(Debug)]
pub enum WriteOutcome<T> {
    Done(T),
    NotFound,
    /// The condition did not hold for the row as it was, or the row changed meanwhile.
    PreconditionFailed,
}

/// What a conditional write requires of the row as it is (its ETag and dates): `If-Match` and the
/// other preconditions of RFC 9110 section 13, evaluated by the caller.
pub type Condition<'a> = &'a dyn Fn(&StoredUser) -> bool;

/// Runs `$body` with `$pool` bound to whichever pool backs `$db`.
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match &$db.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres(pools) => {
                let $pool = &pools.current();
                $body
            }
        }
    };
}

/// The queue of SQLite writers (see [`Database::write_gate`]); PostgreSQL does not use it, its
/// row locks wait in the server's own queue.
#[derive(Clone)]
struct WriteGate {
    turn: Arc<tokio::sync::Mutex<()>>,
    /// How long a writer waits for its turn: the busy timeout it would otherwise have waited.
    wait: Duration,
}

impl WriteGate {
    async fn enter(&self) -> Result<tokio::sync::OwnedMutexGuard<()>, DbError> {
        tokio::time::timeout(self.wait, Arc::clone(&self.turn).lock_owned())
            .await
            .map_err(|_| {
                DbError::Unavailable(
                    StorageFault::Locked,
                    format!(
                        "other writes held the database for more than {} ms",
                        self.wait.as_millis()
                    ),
                )
            })
    }
}

/// Runs `$body` inside a write transaction on the connection `$conn` and commits it; the value of
/// `$body` is returned only when `COMMIT` succeeded. SQLite takes the write lock at
/// `BEGIN IMMEDIATE`, so a held lock waits for the busy timeout there instead of failing halfway.
///
/// The transaction is begun by hand rather than with sqlx's `Transaction`: when `COMMIT` fails
/// (a full disk), SQLite has already rolled back, sqlx's own rollback then fails, and the pooled
/// connection came back still counting an open transaction (every later write on it failed with
/// "begin_with at non-zero transaction depth"). Here a failed transaction is rolled back, and a
/// connection whose state is unknown (rollback failed, or the request was cancelled mid-way) is
/// closed instead of returned to the pool.
macro_rules! in_write_transaction {
    ($db:expr, $conn:ident => $body:expr) => {
        match &$db.pool {
            Pool::Sqlite(pool) => {
                let turn = $db.write_gate.enter().await?;
                write_transaction!(pool, Some(turn), "BEGIN IMMEDIATE", $conn => $body)
            }
            Pool::Postgres(pools) => {
                let pool = pools.current();
                write_transaction!(pool, None, "BEGIN", $conn => $body)
            }
        }
    };
}

macro_rules! write_transaction {
    ($pool:expr, $turn:expr, $begin:expr, $conn:ident => $body:expr) => {{
        let turn = $turn;
        let mut guard = WriteConnection {
            conn: Some($pool.acquire().await?),
            state: TransactionState::Unknown,
            turn,
        };
        let outcome: Result<_, DbError> = async {
            sqlx::query($begin).execute(guard.connection()).await?;
            let $conn = guard.connection();
            let value = $body;
            sqlx::query("COMMIT").execute(guard.connection()).await?;
            Ok(value)
        }
        .await;
        guard.state = match &outcome {
            Ok(_) => TransactionState::Ended,
            Err(_) => match sqlx::query("ROLLBACK").execute(guard.connection()).await {
                Ok(_) => TransactionState::Ended,
                Err(_) => TransactionState::Broken,
            },
        };
        outcome?
    }};
}

/// How a hand-begun transaction ended, for [`WriteConnection`]'s drop.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TransactionState {
    /// Committed or rolled back: the connection goes back to the pool.
    Ended,
    /// The rollback failed: the connection's state is unknown, so it is closed.
    Broken,
    /// The request was cancelled mid-way (client gone, time limit): the connection may be inside
    /// a statement that is still running on the server, holding locks.
    Unknown,
}

/// A pooled connection in a hand-begun transaction.
///
/// When a request is cancelled mid-transaction, the statement it sent goes on running on the
/// server (waiting for a lock, until `statement_timeout`). Closing the connection then would free
/// its pool slot at once while the server's session lived on, and a burst of cancelled requests
/// would open sessions beyond the pool's size. Instead a task keeps the connection, waits for the
/// statement to end, rolls back, and only then returns it to the pool (or closes it if the
/// rollback fails): the pool's size stays the bound on the server's sessions.
struct WriteConnection<DB: RollbackLater> {
    conn: Option<sqlx::pool::PoolConnection<DB>>,
    state: TransactionState,
    /// SQLite: the writer's turn, held until the transaction has ended, by the rollback task too.
    turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl<DB: RollbackLater> WriteConnection<DB> {
    fn connection(&mut self) -> &mut DB::Connection {
        self.conn
            .as_deref_mut()
            .unwrap_or_else(|| unreachable!("the connection is taken only on drop"))
    }
}

impl<DB: RollbackLater> Drop for WriteConnection<DB> {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let turn = self.turn.take();
        match self.state {
            TransactionState::Ended => {}
            TransactionState::Broken => match (turn, tokio::runtime::Handle::try_current()) {
                // The next writer's turn comes once this connection, which may still hold
                // SQLite's lock, is closed.
                (Some(turn), Ok(runtime)) => {
                    runtime.spawn(async move {
                        // Bounded like sqlx's own close on drop: a connection thread stuck in I/O
                        // must not keep every later writer waiting.
                        let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.close()).await;
                        drop(turn);
                    });
                }
                _ => conn.close_on_drop(),
            },
            TransactionState::Unknown => match tokio::runtime::Handle::try_current() {
                Ok(runtime) => DB::rollback_later(&runtime, conn, turn),
                Err(_) => conn.close_on_drop(),
            },
        }
    }
}

/// Rolls back a cancelled transaction in a task of its own, once its last statement has ended.
trait RollbackLater: sqlx::Database {
    fn rollback_later(
        runtime: &tokio::runtime::Handle,
        conn: sqlx::pool::PoolConnection<Self>,
        turn: Option<tokio::sync::OwnedMutexGuard<()>>,
    );
}

macro_rules! rollback_later {
    ($db:ty) => {
        impl RollbackLater for $db {
            fn rollback_later(
                runtime: &tokio::runtime::Handle,
                mut conn: sqlx::pool::PoolConnection<Self>,
                turn: Option<tokio::sync::OwnedMutexGuard<()>>,
            ) {
                runtime.spawn(async move {
                    if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
                        let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.close()).await;
                    }
                    // The next writer goes only once this transaction has let go of the lock.
                    drop(turn);
                });
            }
        }
    };
}

rollback_later!(sqlx::Sqlite);
rollback_later!(sqlx::Postgres);

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

/// Reads a `users` row with its version.
macro_rules! stored_user_from_row {
    ($row:expr) => {
        (|| -> Result<StoredUser, sqlx::Error> {
            Ok(StoredUser {
                user: user_from_row!($row)?,
                version: $row.try_get("version")?,
            })
        })()
    };
}

/// The columns [`stored_user_from_row!`] reads, for `concat!`.
macro_rules! user_columns {
    () => {
        "id, name, email, created_at, updated_at, version"
    };
}

/// Inside a write transaction: `Ok(None)` without a condition; with one, reads the row and gives
/// `Ok(Some(version))` when the condition holds for it, else the outcome to answer.
macro_rules! evaluate_condition {
    ($conn:expr, $id:expr, $condition:expr) => {
        match $condition {
            None => Ok(None),
            Some(holds) => {
                match sqlx::query(concat!(
                    "SELECT ",
                    user_columns!(),
                    " FROM users WHERE id = $1"
                ))
                .bind($id)
                .fetch_all(&mut *$conn)
                .await?
                .first()
                {
                    None => Err(WriteOutcome::NotFound),
                    Some(row) => {
                        let current = stored_user_from_row!(row)?;
                        if holds(&current) {
                            Ok(Some(current.version))
                        } else {
                            Err(WriteOutcome::PreconditionFailed)
                        }
                    }
                }
            }
        }
    };
}

impl Database {
    /// Opens the pool without touching the database: the service starts even while the database is
    /// down, and readiness reports it. On SQLite it creates the directory and takes the shared lock
    /// first; a restore in progress makes it fail with [`OpenError::Busy`].
    pub fn connect_lazy(settings: &DatabaseSettings) -> Result<Self, OpenError> {
        let mut lock = None;
        let pool = match database_options(settings.url.expose()).map_err(OpenError::Invalid)? {
            DatabaseOptions::Sqlite(options) => {
                let options = options
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // FULL: the WAL is synced at every commit, so a write confirmed is a write
                    // that survives a power loss (NORMAL may roll the last commits back then).
                    .synchronous(if settings.sqlite_synchronous_full {
                        SqliteSynchronous::Full
                    } else {
                        SqliteSynchronous::Normal
                    })
                    .foreign_keys(true)
                    .busy_timeout(settings.statement_timeout);
                if let Some(dir) = options.get_filename().parent() {
                    if !dir.as_os_str().is_empty() {
                        std::fs::create_dir_all(dir).map_err(|e| {
                            OpenError::Invalid(format!(
                                "cannot create the database directory {}: {e}",
                                dir.display()
                            ))
                        })?;
                    }
                }
                lock = Some(Arc::new(
                    DatabaseLock::shared(options.get_filename()).map_err(|e| match e {
                        crate::backup::LockError::Busy(_) => OpenError::Busy(e.to_string()),
                        crate::backup::LockError::Io(..) => OpenError::Invalid(e.to_string()),
                    })?,
                ));
                Pool::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(settings.max_connections)
                        .test_before_acquire(false)
                        .acquire_timeout(settings.acquire_timeout)
                        .connect_lazy_with(options),
                )
            }
            DatabaseOptions::Postgres(options) => {
                let statement_timeout = settings.statement_timeout.as_millis().to_string();
                let options = options
                    .application_name("devsecops-app")
                    .options([("statement_timeout", statement_timeout.as_str())]);
                Pool::Postgres(PgPools::new(
                    options,
                    settings.max_connections,
                    settings.http_workers,
                    settings.acquire_timeout,
                ))
            }
        };
        Ok(Database {
            pool,
            health: Arc::default(),
            write_gate: WriteGate {
                turn: Arc::default(),
                wait: settings.statement_timeout,
            },
            _lock: lock,
        })
    }

    pub fn backend(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// The SQLite file, when the backend is SQLite.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        match &self.pool {
            Pool::Sqlite(pool) => Some(pool.connect_options().get_filename().to_path_buf()),
            Pool::Postgres(_) => None,
        }
    }

    pub fn is_migrated(&self) -> bool {
        self.health.migrated.load(Ordering::SeqCst)
    }

    /// Applies the migrations not yet recorded in `schema_migrations`; returns the versions applied.
    /// Refuses a database whose schema is newer than this build.
    pub async fn migrate(&self) -> Result<Vec<i64>, DbError> {
        let postgres = matches!(self.pool, Pool::Postgres(_));
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
            let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .next()
                .flatten();
            if let Some(newest) = newest.filter(|v| *v > SCHEMA_VERSION) {
                return Err(DbError::Other(format!(
                    "the database schema is at version {newest}, newer than this build's {SCHEMA_VERSION}: run a newer release or restore a backup"
                )));
            }
            for migration in MIGRATIONS {
                let done: Vec<i64> =
                    sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                        .bind(migration.version)
                        .fetch_all(&mut *tx)
                        .await?;
                if !done.is_empty() {
                    continue;
                }
                let statements = if postgres { migration.postgres } else { migration.sqlite };
                for statement in statements {
                    sqlx::query(statement).execute(&mut *tx).await?;
                }
                match migration.after {
                    Some(DataStep::FillEmailKeys) => {
                        let rows = sqlx::query("SELECT id, email FROM users WHERE email_key IS NULL")
                            .fetch_all(&mut *tx)
                            .await?;
                        for row in rows {
                            let id: i64 = row.try_get("id")?;
                            let email: String = row.try_get("email")?;
                            sqlx::query("UPDATE users SET email_key = $1 WHERE id = $2")
                                .bind(email_key(&email))
                                .bind(id)
                                .execute(&mut *tx)
                                .await?;
                        }
                        sqlx::query("CREATE UNIQUE INDEX users_email_key_unique ON users (email_key)")
                            .execute(&mut *tx)
                            .await
                            .map_err(|e| match classify(&e) {
                                Ok(()) => DbError::Other(
                                    "two stored users have emails that differ only by Unicode compatibility form or case; merge them before upgrading".into(),
                                ),
                                _ => DbError::from(e),
                            })?;
                    }
                    None => {}
                }
                sqlx::query("INSERT INTO schema_migrations (version, description, applied_at) VALUES ($1, $2, $3)")
                    .bind(migration.version)
                    .bind(migration.description)
                    .bind(OffsetDateTime::now_utc())
                    .execute(&mut *tx)
                    .await?;
                applied.push(migration.version);
            }
            tx.commit().await?;
        });
        if let Some(path) = self.sqlite_path() {
            let identity = file_identity(&path).map_err(|e| {
                DbError::Unavailable(
                    StorageFault::FileMissing,
                    format!("{}: {e}", path.display()),
                )
            })?;
            *lock(&self.health.sqlite_file) = Some((path, identity));
        }
        self.health.migrated.store(true, Ordering::SeqCst);
        Ok(applied)
    }

    /// For the serving process, after the migrations: keeps one SQLite connection open for the
    /// life of the service and records the WAL's identity, so that a WAL deleted under the service
    /// (it holds every write since the last checkpoint) is detected like a deleted database file.
    pub async fn hold_open(&self) -> Result<(), DbError> {
        let Pool::Sqlite(pool) = &self.pool else {
            return Ok(());
        };
        use sqlx::Connection;
        let options = pool.connect_options();
        let sentinel = sqlx::SqliteConnection::connect_with(&options).await?;
        *lock(&self.health.sqlite_sentinel) = Some(sentinel);
        // The migrations and the first write probe wrote through the WAL, so both files exist now.
        for (suffix, slot) in [
            ("-wal", &self.health.sqlite_wal),
            ("-shm", &self.health.sqlite_shm),
        ] {
            let mut path = options.get_filename().as_os_str().to_owned();
            path.push(suffix);
            let path = PathBuf::from(path);
            let identity = file_identity(&path).map_err(|e| {
                DbError::Unavailable(
                    StorageFault::FileMissing,
                    format!("{}: {e}", path.display()),
                )
            })?;
            *lock(slot) = Some((path, identity));
        }
        Ok(())
    }

    /// Fails when the service cannot trust storage at all: migrations pending, or the SQLite file
    /// or its WAL is no longer the file the service opened (deleted or replaced: writes would go
    /// to an unlinked file and vanish at the next start).
    pub fn check_storage(&self) -> Result<(), DbError> {
        if !self.is_migrated() {
            return Err(DbError::Unavailable(
                StorageFault::NotMigrated,
                "migrations have not been applied yet".into(),
            ));
        }
        for slot in [
            &self.health.sqlite_file,
            &self.health.sqlite_wal,
            &self.health.sqlite_shm,
        ] {
            let guard = lock(slot);
            let Some((path, opened)) = guard.as_ref() else {
                continue;
            };
            match file_identity(path) {
                Ok(now) if now == *opened => {}
                Ok(_) => {
                    return Err(DbError::Unavailable(
                        StorageFault::FileMissing,
                        format!("{} was replaced by another file", path.display()),
                    ))
                }
                Err(e) => {
                    return Err(DbError::Unavailable(
                        StorageFault::FileMissing,
                        format!("{}: {e}", path.display()),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Readiness: the database answers and accepts a write. The write probe runs at most once per
    /// [`WRITE_PROBE_INTERVAL`], or again when a request's write failed after it; in between, a
    /// ping still reaches the database, so an outage shows on the next check. Only one probe runs
    /// at a time, in a task of its own: callers wait for it (their own time limit may give up
    /// waiting, but never cancels the probe midway and never starts a second one).
    pub async fn check_ready(&self) -> Result<(), DbError> {
        self.check_storage()?;
        if let Some(fault) = self.fresh_probe() {
            return match fault {
                Some(fault) => Err(DbError::Unavailable(
                    fault,
                    "the last write probe failed".into(),
                )),
                None => self.ping().await,
            };
        }
        let in_flight = self.health.probe_in_flight.clone();
        if let Ok(permit) = in_flight.clone().try_lock_owned() {
            let db = self.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let result = db.write_probe().await;
                let fault = match &result {
                    Ok(()) => None,
                    Err(DbError::Unavailable(fault, _)) => Some(*fault),
                    Err(_) => Some(StorageFault::Io),
                };
                *lock(&db.health.last_probe) = Some((started, fault));
                drop(permit);
            });
        }
        // Wait for the probe in flight (this caller's or another's) and take its result.
        drop(in_flight.lock().await);
        match *lock(&self.health.last_probe) {
            Some((_, None)) => Ok(()),
            Some((_, Some(fault))) => {
                Err(DbError::Unavailable(fault, "the write probe failed".into()))
            }
            None => Err(DbError::Unavailable(
                StorageFault::Unreachable,
                "no write probe has completed".into(),
            )),
        }
    }

    /// The last probe's fault when it is recent enough to stand for now and no write failed
    /// since it started; `None` when a new probe is due.
    fn fresh_probe(&self) -> Option<Option<StorageFault>> {
        let (at, fault) = (*lock(&self.health.last_probe))?;
        let fault_since = lock(&self.health.write_fault_at).is_some_and(|failed| failed >= at);
        (at.elapsed() < WRITE_PROBE_INTERVAL && !fault_since).then_some(fault)
    }

    /// One round trip.
    async fn ping(&self) -> Result<(), DbError> {
        on_pool!(self, pool => {
            sqlx::query("SELECT 1").fetch_all(pool).await?;
        });
        Ok(())
    }

    /// One small committed write (a full disk, a read-only database or a held lock fails it), and
    /// the users table's write statements matching no row, which PostgreSQL checks for privileges
    /// before it runs them: a revoked INSERT, UPDATE or DELETE fails the probe too.
    async fn write_probe(&self) -> Result<(), DbError> {
        const PROBE: &str = "INSERT INTO readiness_probe (id, checked_at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at";
        const PRIVILEGES: &[&str] = &[
            "INSERT INTO users (name, email, email_key, created_at, updated_at) SELECT name, email, email_key, created_at, updated_at FROM users WHERE 1 = 0",
            "UPDATE users SET name = name WHERE 1 = 0",
            "DELETE FROM users WHERE 1 = 0",
        ];
        self.write(|| async {
            let now = OffsetDateTime::now_utc();
            in_write_transaction!(self, conn => {
                sqlx::query(PROBE).bind(now).execute(&mut *conn).await?;
                for statement in PRIVILEGES {
                    sqlx::query(statement).execute(&mut *conn).await?;
                }
            });
            Ok(())
        })
        .await
    }

    /// Runs a write: refused while storage cannot be trusted; its storage faults are remembered for
    /// readiness, and a success clears them.
    async fn write<T, F, Fut>(&self, op: F) -> Result<T, DbError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T, DbError>>,
    {
        self.check_storage()?;
        let result = op().await;
        match &result {
            Ok(_) => *lock(&self.health.write_fault) = None,
            Err(DbError::Unavailable(fault, _)) if fault.blocks_writes() => {
                *lock(&self.health.write_fault) = Some(*fault);
                *lock(&self.health.write_fault_at) = Some(Instant::now());
            }
            Err(_) => {}
        }
        // A write that landed in a file deleted meanwhile is not stored: do not confirm it.
        self.check_storage()?;
        result
    }

    /// True the first time it is called after the SQLite file went missing: the alarm is raised
    /// once, not on every probe.
    pub fn first_file_missing_report(&self) -> bool {
        !self
            .health
            .file_missing_reported
            .swap(true, Ordering::SeqCst)
    }

    /// A storage fault seen by a request, as readiness reports it; `None` when writes work.
    pub fn write_fault(&self) -> Option<StorageFault> {
        *lock(&self.health.write_fault)
    }

    /// (connections open, idle, configured maximum), over every pool.
    pub fn pool_stats(&self) -> (u32, u32, u32) {
        let pools = match &self.pool {
            Pool::Sqlite(pool) => {
                return (
                    pool.size(),
                    u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
                    pool.options().get_max_connections(),
                )
            }
            Pool::Postgres(pools) => pools,
        };
        let mut stats = (0, 0, 0);
        for pool in pools.all() {
            stats.0 += pool.size();
            stats.1 += u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
        }
        // The configured bound, whether or not every worker has opened its pool yet.
        stats.2 = pools.shared.options().get_max_connections()
            + pools.workers.size * u32::try_from(pools.workers.slots).unwrap_or(u32::MAX);
        stats
    }

    /// The connections open in each HTTP worker's own PostgreSQL pool (none on SQLite).
    pub fn worker_pools(&self) -> Vec<u32> {
        match &self.pool {
            Pool::Sqlite(_) => Vec::new(),
            Pool::Postgres(pools) => lock(&pools.workers.pools)
                .iter()
                .map(PgPool::size)
                .collect(),
        }
    }

    /// Called on each HTTP worker's thread as it starts: on PostgreSQL, the worker's queries use
    /// connections of its own from then on (see [`PgPools`]).
    pub fn register_worker(&self) {
        if let Pool::Postgres(pools) = &self.pool {
            pools.register_worker();
        }
    }

    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pools) => {
                for pool in pools.all() {
                    pool.close().await;
                }
            }
        }
    }

    /// A page of users in id order, without their versions: a page's ETag is a digest of its body.
    pub async fn list_users(&self, after_id: i64, limit: u32) -> Result<Vec<User>, DbError> {
        const SQL: &str = "SELECT id, name, email, created_at, updated_at FROM users WHERE id > $1 ORDER BY id LIMIT $2";
        self.check_storage()?;
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

    pub async fn get_user(&self, id: i64) -> Result<Option<StoredUser>, DbError> {
        const SQL: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");
        self.check_storage()?;
        let user = on_pool!(self, pool => {
            match sqlx::query(SQL).bind(id).fetch_all(pool).await?.first() {
                Some(row) => Some(stored_user_from_row!(row)?),
                None => None,
            }
        });
        Ok(user)
    }

    pub async fn create_user(&self, user: &ValidUser) -> Result<StoredUser, DbError> {
        const SQL: &str = concat!(
            "INSERT INTO users (name, email, email_key, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) RETURNING ",
            user_columns!()
        );
        let now = now_micros();
        let key = email_key(&user.email);
        self.write(|| async {
            let created = in_write_transaction!(self, conn => {
                let rows = sqlx::query(SQL)
                    .bind(&user.name)
                    .bind(&user.email)
                    .bind(&key)
                    .bind(now)
                    .fetch_all(&mut *conn)
                    .await?;
                let row = rows
                    .first()
                    .ok_or_else(|| DbError::Other("INSERT returned no row".into()))?;
                stored_user_from_row!(row)?
            });
            Ok(created)
        })
        .await
    }

    /// Replaces name and email, when `condition` (if any) holds for the row as it is.
    pub async fn replace_user(
        &self,
        id: i64,
        user: &ValidUser,
        condition: Option<Condition<'_>>,
    ) -> Result<WriteOutcome<StoredUser>, DbError> {
        self.patch_user(
            id,
            &ValidPatch {
                name: Some(user.name.clone()),
                email: Some(user.email.clone()),
            },
            condition,
        )
        .await
    }

    /// Changes the fields given, when `condition` (if any) holds for the row as it is.
    ///
    /// A condition is evaluated on the row read inside the write transaction, and the UPDATE then
    /// names the version it was evaluated on (`AND version = $6`): on SQLite the transaction holds
    /// the write lock from `BEGIN IMMEDIATE`, and on PostgreSQL a row changed by another
    /// transaction meanwhile no longer matches the WHERE clause, so the write never lands on a
    /// version the condition was not checked against (it answers `PreconditionFailed` instead).
    pub async fn patch_user(
        &self,
        id: i64,
        patch: &ValidPatch,
        condition: Option<Condition<'_>>,
    ) -> Result<WriteOutcome<StoredUser>, DbError> {
        const SQL: &str = concat!(
            "UPDATE users SET name = COALESCE($2, name), email = COALESCE($3, email), email_key = COALESCE($4, email_key), updated_at = $5, version = version + 1 WHERE id = $1 AND ($6 IS NULL OR version = $6) RETURNING ",
            user_columns!()
        );
        let now = now_micros();
        let key = patch.email.as_deref().map(email_key);
        self.write(|| async {
            let outcome = in_write_transaction!(self, conn => {
                let expected = evaluate_condition!(conn, id, condition);
                match expected {
                    Err(outcome) => outcome,
                    Ok(expected) => {
                        match sqlx::query(SQL)
                            .bind(id)
                            .bind(patch.name.as_deref())
                            .bind(patch.email.as_deref())
                            .bind(key.as_deref())
                            .bind(now)
                            .bind(expected)
                            .fetch_all(&mut *conn)
                            .await?
                            .first()
                        {
                            Some(row) => WriteOutcome::Done(stored_user_from_row!(row)?),
                            None if expected.is_some() => WriteOutcome::PreconditionFailed,
                            None => WriteOutcome::NotFound,
                        }
                    }
                }
            });
            Ok(outcome)
        })
        .await
    }

    /// Deletes a user, when `condition` (if any) holds for the row as it is; the same atomicity as
    /// [`Self::patch_user`].
    pub async fn delete_user(
        &self,
        id: i64,
        condition: Option<Condition<'_>>,
    ) -> Result<WriteOutcome<()>, DbError> {
        self.write(|| async {
            let outcome = in_write_transaction!(self, conn => {
                let expected = evaluate_condition!(conn, id, condition);
                match expected {
                    Err(outcome) => outcome,
                    Ok(expected) => {
                        let affected = sqlx::query("DELETE FROM users WHERE id = $1 AND ($2 IS NULL OR version = $2)")
                            .bind(id)
                            .bind(expected)
                            .execute(&mut *conn)
                            .await?
                            .rows_affected();
                        match (affected, expected) {
                            (0, Some(_)) => WriteOutcome::PreconditionFailed,
                            (0, None) => WriteOutcome::NotFound,
                            _ => WriteOutcome::Done(()),
                        }
                    }
                }
            });
            Ok(outcome)
        })
        .await
    }

    /// The schema version recorded in `schema_migrations`; `None` when the table is missing or empty.
    pub async fn schema_version(&self) -> Result<Option<i64>, DbError> {
        let exists = on_pool!(self, pool => {
            let sql = if matches!(self.pool, Pool::Postgres(_)) {
                "SELECT 1 FROM information_schema.tables WHERE table_name = 'schema_migrations' AND table_schema = current_schema()"
            } else {
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
            };
            !sqlx::query(sql).fetch_all(pool).await?.is_empty()
        });
        if !exists {
            return Ok(None);
        }
        let version: Option<i64> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
                .fetch_all(pool)
                .await?
                .into_iter()
                .next()
                .flatten()
        });
        Ok(version)
    }

    /// Records a verified backup; the service exports the newest one's `taken_at`.
    pub async fn record_backup(
        &self,
        taken_at: OffsetDateTime,
        completed_at: OffsetDateTime,
        path: &str,
        bytes: u64,
    ) -> Result<(), DbError> {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        in_write_transaction!(self, conn => {
            sqlx::query("INSERT INTO backups (taken_at, completed_at, path, bytes) VALUES ($1, $2, $3, $4)")
                .bind(taken_at)
                .bind(completed_at)
                .bind(path)
                .bind(bytes)
                .execute(&mut *conn)
                .await?;
            sqlx::query("DELETE FROM backups WHERE id <= (SELECT MAX(id) FROM backups) - $1")
                .bind(BACKUP_RECORDS_KEPT)
                .execute(&mut *conn)
                .await?;
        });
        Ok(())
    }

    /// When the newest recorded backup was taken (the point in time it restores to).
    pub async fn last_backup_taken_at(&self) -> Result<Option<OffsetDateTime>, DbError> {
        let taken_at: Option<OffsetDateTime> = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT taken_at FROM backups ORDER BY id DESC LIMIT 1")
                .fetch_all(pool)
                .await?
                .into_iter()
                .next()
        });
        Ok(taken_at)
    }

    /// SQLite: writes a consistent copy of the database to `target`, which must not exist. A read
    /// transaction, so writers go on meanwhile (WAL); every transaction committed before it began
    /// is in the copy. SQLite does not fsync the copy: the caller does.
    pub async fn vacuum_into(&self, target: &Path) -> Result<(), DbError> {
        let Pool::Sqlite(pool) = &self.pool else {
            return Err(DbError::Other("VACUUM INTO is SQLite only".into()));
        };
        let target = target
            .to_str()
            .ok_or_else(|| DbError::Other(format!("{}: not UTF-8", target.display())))?;
        sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(pool)
            .await?;
        Ok(())
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked (plain values only).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// PostgreSQL keeps microseconds; truncating here makes both backends return the same instant.
fn now_micros() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::configuration::Source;

    /// Concurrent writers queue for their turn instead of meeting on SQLite's lock. With a busy
    /// timeout of 1 ms, any writer that found the lock taken would fail at `BEGIN IMMEDIATE`
    /// (SQLITE_BUSY); through the queue none does, however many write at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_sqlite_writers_never_meet_on_the_lock() {
        let (_dir, db) = sqlite_with_short_busy_timeout().await;
        let writers: Vec<_> = (0..200)
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move {
                    let user = ValidUser {
                        name: format!("User {i}"),
                        email: format!("user{i}@example.com"),
                    };
                    db.create_user(&user).await.map(|_| ())
                })
            })
            .collect();
        let mut failures = Vec::new();
        for writer in writers {
            if let Err(e) = writer.await.expect("writer task") {
                failures.push(e.describe());
            }
        }
        assert!(
            failures.is_empty(),
            "{} writes failed: {failures:?}",
            failures.len()
        );
        assert_eq!(db.list_users(0, 1000).await.expect("list").len(), 200);
    }

    /// A write cancelled inside its transaction (client gone, time limit) keeps its turn until
    /// its rollback has released SQLite's lock, so the writer after it does not meet the lock.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_cancelled_sqlite_write_keeps_its_turn_until_rolled_back() {
        let (_dir, db) = sqlite_with_short_busy_timeout().await;
        for i in 0..5 {
            let (inside, mut now_inside) = tokio::sync::mpsc::channel::<()>(1);
            let writer = {
                let db = db.clone();
                tokio::spawn(async move {
                    let result: Result<(), DbError> = async {
                        in_write_transaction!(db, conn => {
                            sqlx::query("INSERT INTO users (name, email, email_key, created_at, updated_at) VALUES ('Cancelled', $1, $1, 0, 0)")
                                .bind(format!("cancelled{i}@example.com"))
                                .execute(&mut *conn)
                                .await?;
                            let _ = inside.send(()).await;
                            // A statement still running when the request is cancelled: the
                            // rollback can only follow it.
                            sqlx::query("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000) SELECT count(*) FROM c")
                                .execute(&mut *conn)
                                .await?;
                            tokio::time::sleep(Duration::from_secs(60)).await;
                        });
                        Ok(())
                    }
                    .await;
                    result
                })
            };
            now_inside
                .recv()
                .await
                .expect("the writer reached its transaction");
            tokio::time::sleep(Duration::from_millis(20)).await;
            writer.abort();
            assert!(writer.await.is_err(), "the writer was cancelled");
            let next = ValidUser {
                name: format!("Next {i}"),
                email: format!("next{i}@example.com"),
            };
            if let Err(e) = db.create_user(&next).await {
                panic!(
                    "the write after cancelled write {i} failed: {}",
                    e.describe()
                );
            }
        }
        assert_eq!(
            db.list_users(0, 1000).await.expect("list").len(),
            5,
            "only the completed writes are stored"
        );
    }

    fn postgres_settings(max_connections: u32, http_workers: u32) -> DatabaseSettings {
        let values = [
            ("DATABASE_URL", "postgres://app@127.0.0.1:1/app".to_string()),
            ("DB_MAX_CONNECTIONS", max_connections.to_string()),
        ];
        let mut settings = DatabaseSettings::from_source(&Source::from_map(
            values
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        ))
        .expect("valid settings");
        settings.http_workers = http_workers;
        settings
    }

    /// The connections are shared out so that the pools together never exceed
    /// DB_MAX_CONNECTIONS, whatever the number of threads that ask for a pool of their own.
    #[tokio::test]
    async fn postgres_pools_share_the_connection_bound_out() {
        for (max, workers, per_worker, shared) in [
            (10, 2, 4, 2),
            (11, 2, 5, 1),
            (9, 2, 4, 1),
            (8, 2, 0, 8),
            (10, 5, 0, 10),
            (40, 8, 4, 8),
            (3, 2, 0, 3),
            (2, 2, 0, 2),
            (1, 1, 0, 1),
            (10, 0, 0, 10),
        ] {
            let db = Database::connect_lazy(&postgres_settings(max, workers)).expect("open");
            let Pool::Postgres(pools) = &db.pool else {
                unreachable!()
            };
            assert_eq!(
                (
                    pools.workers.size,
                    pools.shared.options().get_max_connections()
                ),
                (per_worker, shared),
                "DB_MAX_CONNECTIONS={max}, {workers} workers"
            );
            // Twice as many threads as workers register: only `workers` get a pool.
            let runtime = tokio::runtime::Handle::current();
            std::thread::scope(|scope| {
                for _ in 0..workers * 2 {
                    scope.spawn(|| {
                        let _context = runtime.enter();
                        db.register_worker();
                        db.register_worker();
                    });
                }
            });
            let expected = if per_worker == 0 { 0 } else { workers as usize };
            assert_eq!(
                db.worker_pools().len(),
                expected,
                "DB_MAX_CONNECTIONS={max}, {workers} workers"
            );
            let bound: u32 = pools
                .all()
                .iter()
                .map(|p| p.options().get_max_connections())
                .sum();
            assert!(
                bound <= max,
                "pools may open {bound} connections, above {max}"
            );
            assert_eq!(db.pool_stats().2, max, "the bound the metrics report");
        }
    }

    /// A thread's pool belongs to one database: another database used on the same thread (tests
    /// run several services in one process) uses its own pools.
    #[tokio::test]
    async fn a_worker_pool_belongs_to_its_database() {
        let first = Database::connect_lazy(&postgres_settings(10, 2)).expect("open");
        let second = Database::connect_lazy(&postgres_settings(10, 2)).expect("open");
        first.register_worker();
        let (Pool::Postgres(a), Pool::Postgres(b)) = (&first.pool, &second.pool) else {
            unreachable!()
        };
        assert_eq!(
            a.current().options().get_max_connections(),
            4,
            "the worker's own pool"
        );
        assert_eq!(
            b.current().options().get_max_connections(),
            2,
            "the other database's shared pool"
        );
    }

    async fn sqlite_with_short_busy_timeout() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().expect("tempdir");
        let values = [
            (
                "DATABASE_URL",
                format!("sqlite://{}/app.db", dir.path().display()),
            ),
            ("DB_STATEMENT_TIMEOUT_MS", "1".into()),
            ("DB_MAX_CONNECTIONS", "10".into()),
            ("SQLITE_SYNCHRONOUS", "normal".into()),
        ];
        let settings = DatabaseSettings::from_source(&Source::from_map(
            values
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        ))
        .expect("valid settings");
        let mut db = Database::connect_lazy(&settings).expect("open");
        db.migrate().await.expect("migrate");
        // Only the turn's wait is long: SQLite's own busy wait stays at 1 ms.
        db.write_gate.wait = Duration::from_secs(60);
        (dir, db)
    }
}
