//! SQLite backup and restore (`devsecops-app backup` and `restore`), and the lock that keeps a
//! restore away from a database in use.
//!
//! The lock: every process that opens the database through [`crate::db::Database`] (the service,
//! `migrate`, `backup`) holds a shared `flock(2)` on `<database>.lock` for as long as it runs;
//! `restore` takes it exclusively without waiting, so it refuses while any of them runs, and they
//! refuse to start while a restore runs. The kernel drops the lock when a process exits, however it
//! exits, so a crash never leaves a stale lock behind. A separate file rather than the database
//! itself: SQLite's own locks are POSIX record locks on the database file, and on NFS the kernel
//! emulates `flock` with those, where the two would collide.
//!
//! A backup is `VACUUM INTO` a temporary file next to the target: a consistent snapshot taken in
//! one read transaction while the service goes on writing (WAL), not a copy of the file. The copy is
//! verified ([`verify_copy`]), fsynced and renamed into place, then recorded in the database so the
//! service can export when the newest backup was taken.
//!
//! A restore verifies a copy of the backup next to the database before anything is touched, keeps
//! the database it replaces (a hard link, with its WAL renamed along), and renames the copy into
//! place: at every moment the database path names either the old or the new file.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{Connection, Row};
use time::OffsetDateTime;

use crate::db::{Database, SCHEMA_VERSION};

/// Name of the lock file of a database.
pub fn lock_path(database: &Path) -> PathBuf {
    sibling(database, ".lock")
}

/// `path` with `suffix` appended to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

#[derive(Debug)]
pub enum LockError {
    /// Another process holds the lock in a conflicting mode.
    Busy(PathBuf),
    Io(PathBuf, std::io::Error),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Busy(path) => write!(
                f,
                "{} is locked: a restore is replacing the database (or, for a restore, the database is in use)",
                path.display()
            ),
            LockError::Io(path, err) => write!(f, "cannot lock {}: {err}", path.display()),
        }
    }
}

/// A held `flock` on a database's lock file; released when dropped (or when the process exits).
#[derive(Debug)]
pub struct DatabaseLock {
    _file: File,
}

impl DatabaseLock {
    /// The lock users of the database hold: any number of them at once.
    pub fn shared(database: &Path) -> Result<Self, LockError> {
        Self::take(database, rustix::fs::FlockOperation::NonBlockingLockShared)
    }

    /// The lock a restore holds: only when nobody else holds any.
    pub fn exclusive(database: &Path) -> Result<Self, LockError> {
        Self::take(
            database,
            rustix::fs::FlockOperation::NonBlockingLockExclusive,
        )
    }

    fn take(database: &Path, operation: rustix::fs::FlockOperation) -> Result<Self, LockError> {
        let path = lock_path(database);
        let io = |err| LockError::Io(path.clone(), err);
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
        {
            // A lock file another user created: flock works on a read-only descriptor too.
            Err(err) if err.kind() == ErrorKind::PermissionDenied && path.exists() => {
                File::open(&path).map_err(io)?
            }
            other => other.map_err(io)?,
        };
        loop {
            match rustix::fs::flock(&file, operation) {
                Ok(()) => return Ok(DatabaseLock { _file: file }),
                Err(rustix::io::Errno::WOULDBLOCK) => return Err(LockError::Busy(path)),
                Err(rustix::io::Errno::INTR) => continue,
                Err(err) => return Err(io(err.into())),
            }
        }
    }
}

/// How a command failed; each kind has its exit code.
#[derive(Debug)]
pub struct CommandError {
    pub kind: CommandErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandErrorKind {
    /// Exit 1: the operation failed; nothing was kept or replaced.
    Failed,
    /// Exit 2: the command cannot apply as given (configuration, PostgreSQL, paths).
    Usage,
    /// Exit 3: the database is in use.
    InUse,
}

impl CommandErrorKind {
    pub fn exit_code(self) -> u8 {
        match self {
            CommandErrorKind::Failed => 1,
            CommandErrorKind::Usage => 2,
            CommandErrorKind::InUse => 3,
        }
    }
}

impl CommandError {
    pub fn failed(message: impl Into<String>) -> Self {
        CommandError {
            kind: CommandErrorKind::Failed,
            message: message.into(),
        }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        CommandError {
            kind: CommandErrorKind::Usage,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The message for `backup` and `restore` on PostgreSQL.
pub const POSTGRES_REFUSAL: &str = "backup and restore copy SQLite databases; for PostgreSQL use pg_dump and pg_restore (README.md, section Command line, backups and restore), or the chart's CloudNativePG scheduled backups";

/// Where a backup goes.
#[derive(Debug, Clone)]
pub enum BackupTarget {
    /// This file, replaced atomically if it exists.
    File(PathBuf),
    /// A new timestamped file in this directory; then the oldest beyond `keep` are deleted.
    Directory {
        dir: PathBuf,
        keep: Option<NonZeroUsize>,
    },
}

/// Prefix and suffix of the files `backup --dir` writes and `--keep` deletes; nothing else in the
/// directory is ever deleted.
const BACKUP_PREFIX: &str = "devsecops-app-";
const BACKUP_SUFFIX: &str = ".db";

/// `devsecops-app-20261201T150405.123Z.db`: sorts by time as text.
fn backup_file_name(at: OffsetDateTime) -> String {
    format!(
        "{BACKUP_PREFIX}{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z{BACKUP_SUFFIX}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

/// Whether `name` is one that [`backup_file_name`] produces.
fn is_backup_file_name(name: &str) -> bool {
    let Some(stamp) = name
        .strip_prefix(BACKUP_PREFIX)
        .and_then(|rest| rest.strip_suffix(BACKUP_SUFFIX))
    else {
        return false;
    };
    let bytes = stamp.as_bytes();
    bytes.len() == 20
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 => *b == b'T',
            15 => *b == b'.',
            19 => *b == b'Z',
            _ => b.is_ascii_digit(),
        })
}

/// What a backup wrote.
#[derive(Debug)]
pub struct BackupReport {
    pub path: PathBuf,
    pub bytes: u64,
    pub taken_at: OffsetDateTime,
    pub schema_version: i64,
    pub users: i64,
    /// Older backups deleted by `--keep`.
    pub deleted: Vec<PathBuf>,
}

/// What a verified copy holds.
#[derive(Debug)]
pub struct CopyInfo {
    pub schema_version: i64,
    pub users: i64,
}

/// Takes a verified online backup of the SQLite database `db` (already opened, holding the shared
/// lock) and records it there.
pub async fn backup(db: &Database, target: &BackupTarget) -> Result<BackupReport, CommandError> {
    let database = db
        .sqlite_path()
        .ok_or_else(|| CommandError::usage(POSTGRES_REFUSAL))?;
    match db.schema_version().await {
        Ok(Some(SCHEMA_VERSION)) => {}
        Ok(Some(version)) if version > SCHEMA_VERSION => {
            return Err(CommandError::failed(format!(
                "the database is at schema version {version}, newer than this build's {SCHEMA_VERSION}: back it up with the release that runs it"
            )))
        }
        Ok(found) => {
            return Err(CommandError::failed(format!(
                "the database is at schema version {}, this build writes {SCHEMA_VERSION}: start the service or run `devsecops-app migrate` first",
                found.unwrap_or(0)
            )))
        }
        Err(err) => {
            return Err(CommandError::failed(format!(
                "cannot read the database {}: {}",
                database.display(),
                err.describe()
            )))
        }
    }

    let taken_at = OffsetDateTime::now_utc();
    let (final_path, keep) = match target {
        BackupTarget::File(path) => (path.clone(), None),
        BackupTarget::Directory { dir, keep } => (dir.join(backup_file_name(taken_at)), *keep),
    };
    let dir = parent_dir(&final_path);
    if !dir.is_dir() {
        return Err(CommandError::usage(format!(
            "the backup directory {} does not exist",
            dir.display()
        )));
    }
    refuse_database_files(&database, &final_path)?;
    if final_path.is_dir() {
        return Err(CommandError::usage(format!(
            "{} is a directory: give a file with --to or use --dir",
            final_path.display()
        )));
    }

    let temporary = sibling(
        &dir.join(format!(
            ".{}",
            final_path.file_name().unwrap_or_default().to_string_lossy()
        )),
        &format!(".partial-{}", std::process::id()),
    );
    remove_if_exists(&temporary).map_err(|e| CommandError::failed(e.to_string()))?;
    if keep.is_some() {
        remove_abandoned_partials(&dir);
    }
    *lock_partial() = Some(temporary.clone());
    let result = async {
        db.vacuum_into(&temporary).await.map_err(|e| {
            CommandError::failed(format!(
                "copying the database into {} failed: {}",
                temporary.display(),
                e.describe()
            ))
        })?;
        let info = verify_copy(&temporary)
            .await
            .map_err(|e| CommandError::failed(format!("the copy failed verification: {e}")))?;
        if info.schema_version != SCHEMA_VERSION {
            return Err(CommandError::failed(format!(
                "the copy is at schema version {}, the database at {SCHEMA_VERSION}",
                info.schema_version
            )));
        }
        sync_file(&temporary).map_err(|e| CommandError::failed(e.to_string()))?;
        Ok(info)
    }
    .await;
    let info = match result {
        Ok(info) => info,
        Err(err) => {
            remove_partial();
            return Err(err);
        }
    };
    std::fs::rename(&temporary, &final_path).map_err(|e| {
        remove_partial();
        CommandError::failed(format!(
            "cannot move the verified copy to {}: {e}",
            final_path.display()
        ))
    })?;
    *lock_partial() = None;
    sync_dir(&dir).map_err(|e| CommandError::failed(e.to_string()))?;
    let bytes = std::fs::metadata(&final_path)
        .map(|m| m.len())
        .map_err(|e| CommandError::failed(format!("{}: {e}", final_path.display())))?;

    db.record_backup(
        taken_at,
        OffsetDateTime::now_utc(),
        &final_path.to_string_lossy(),
        bytes,
    )
    .await
    .map_err(|e| {
        CommandError::failed(format!(
            "the backup {} is complete and verified, but recording it in the database failed ({}): app_backup_last_success_timestamp_seconds does not show it",
            final_path.display(),
            e.describe()
        ))
    })?;

    let deleted = match keep {
        Some(keep) => prune(&dir, keep, &final_path).map_err(|e| {
            CommandError::failed(format!(
                "the backup {} is complete, but deleting old backups in {} failed: {e}",
                final_path.display(),
                dir.display()
            ))
        })?,
        None => Vec::new(),
    };
    Ok(BackupReport {
        path: final_path,
        bytes,
        taken_at,
        schema_version: info.schema_version,
        users: info.users,
        deleted,
    })
}

/// The copy a running backup is writing, for [`remove_partial`].
static PARTIAL: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);

fn lock_partial() -> std::sync::MutexGuard<'static, Option<PathBuf>> {
    PARTIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Deletes the unfinished copy of a running backup (and SQLite's journal beside it): on failure,
/// and when a signal ends the command (a Job's deadline, an eviction, a restore's Conflicts=).
pub fn remove_partial() {
    if let Some(path) = lock_partial().take() {
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(sibling(&path, "-journal"));
    }
}

/// A copy not written to for this long belongs to a backup that was killed (SIGKILL, a node
/// lost): a running one writes to its copy all the time.
const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// Deletes the unfinished copies killed backups left in `dir` (`.devsecops-app-*.db.partial-PID`
/// and their journals): each is as large as the database, and a few fill the backups volume.
fn remove_abandoned_partials(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Some((base, _)) = name
            .strip_prefix('.')
            .and_then(|rest| rest.split_once(".partial-"))
        else {
            continue;
        };
        let abandoned = entry.metadata().is_ok_and(|m| {
            m.is_file()
                && m.modified()
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > ABANDONED_AFTER)
        });
        if is_backup_file_name(base) && abandoned {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Deletes the oldest backups in `dir` beyond the newest `keep`; never `just_written`.
fn prune(dir: &Path, keep: NonZeroUsize, just_written: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| is_backup_file_name(name))
        // A file with a backup's name that is not a whole SQLite database (junk, a name set far
        // in the future) is neither counted as a backup nor deleted.
        .filter(|name| check_header(&dir.join(name)).is_ok())
        .collect();
    names.sort_unstable_by(|a, b| b.cmp(a));
    let mut deleted = Vec::new();
    for name in names.into_iter().skip(keep.get()) {
        let path = dir.join(&name);
        if path == just_written {
            continue;
        }
        std::fs::remove_file(&path)?;
        deleted.push(path);
    }
    if !deleted.is_empty() {
        sync_dir(dir)?;
    }
    Ok(deleted)
}

/// What a restore did.
#[derive(Debug)]
pub struct RestoreReport {
    pub database: PathBuf,
    pub from: PathBuf,
    pub schema_version: i64,
    pub users: i64,
    /// Where the replaced database was kept, if there was one.
    pub previous: Option<PathBuf>,
}

/// Replaces the SQLite database at `database` with a verified copy of `from`. Refuses while any
/// process holds the database's lock. On any error before the final rename, nothing has changed.
pub async fn restore(database: &Path, from: &Path) -> Result<RestoreReport, CommandError> {
    let dir = parent_dir(database);
    std::fs::create_dir_all(&dir).map_err(|e| {
        CommandError::usage(format!(
            "cannot create the database directory {}: {e}",
            dir.display()
        ))
    })?;
    let _lock = DatabaseLock::exclusive(database).map_err(|e| match e {
        LockError::Busy(path) => CommandError {
            kind: CommandErrorKind::InUse,
            message: format!(
                "the database {} is in use (a service, migrate or backup holds {}): stop the service first",
                database.display(),
                path.display()
            ),
        },
        other => CommandError::failed(other.to_string()),
    })?;
    let from_meta = std::fs::metadata(from)
        .map_err(|e| CommandError::usage(format!("{}: {e}", from.display())))?;
    if !from_meta.is_file() {
        return Err(CommandError::usage(format!(
            "{} is not a regular file",
            from.display()
        )));
    }
    refuse_database_files(database, from)?;
    // A copy of a database that crashed (or still runs) is not whole without its WAL or journal:
    // the file alone lacks every commit since the last checkpoint, and would restore with exit 0.
    for suffix in ["-wal", "-journal"] {
        let companion = sibling(from, suffix);
        if std::fs::metadata(&companion).is_ok_and(|m| m.len() > 0) {
            return Err(CommandError::failed(format!(
                "{} exists beside {}: the file is not whole without it; checkpoint it first (`sqlite3 {} 'PRAGMA wal_checkpoint(TRUNCATE)'`, with no service using it) or restore a backup `devsecops-app backup` wrote; nothing was changed",
                companion.display(),
                from.display(),
                from.display()
            )));
        }
    }

    let temporary = sibling(
        &dir.join(format!(
            ".{}",
            database.file_name().unwrap_or_default().to_string_lossy()
        )),
        &format!(".restore-{}", std::process::id()),
    );
    remove_if_exists(&temporary).map_err(|e| CommandError::failed(e.to_string()))?;
    let prepared = async {
        std::fs::copy(from, &temporary).map_err(|e| {
            CommandError::failed(format!(
                "cannot copy {} to {}: {e}",
                from.display(),
                temporary.display()
            ))
        })?;
        let info = verify_copy(&temporary).await.map_err(|e| {
            CommandError::failed(format!(
                "{} is not a usable backup: {e}; nothing was changed",
                from.display()
            ))
        })?;
        if info.schema_version > SCHEMA_VERSION {
            return Err(CommandError::failed(format!(
                "{} is at schema version {}, newer than this build's {SCHEMA_VERSION}: restore it with the release that wrote it; nothing was changed",
                from.display(),
                info.schema_version
            )));
        }
        // A backup does not hold its own record: restored as is, the newest backup the service
        // reports would go back one period (or to none) and the backup-age alert would fire.
        record_restored_backup(&temporary, from, from_meta.len())
            .await
            .map_err(|e| {
                CommandError::failed(format!(
                    "cannot record {} in the restored copy: {e}; nothing was changed",
                    from.display()
                ))
            })?;
        match_owner(database, &temporary)?;
        sync_file(&temporary).map_err(|e| CommandError::failed(e.to_string()))?;
        Ok(info)
    }
    .await;
    let info = match prepared {
        Ok(info) => info,
        Err(err) => {
            let _ = std::fs::remove_file(&temporary);
            // SQLite may have left a journal next to the copy it opened.
            let _ = std::fs::remove_file(sibling(&temporary, "-journal"));
            return Err(err);
        }
    };

    let replaced = replace(database, &temporary);
    if replaced.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    let previous = replaced?;
    sync_dir(&dir).map_err(|e| CommandError::failed(e.to_string()))?;
    Ok(RestoreReport {
        database: database.to_path_buf(),
        from: from.to_path_buf(),
        schema_version: info.schema_version,
        users: info.users,
        previous,
    })
}

/// Puts the verified `copy` in place of `database`; returns where the replaced database was kept.
fn replace(database: &Path, copy: &Path) -> Result<Option<PathBuf>, CommandError> {
    if !database.exists() {
        std::fs::rename(copy, database).map_err(|e| {
            CommandError::failed(format!(
                "cannot move the verified copy to {}: {e}",
                database.display()
            ))
        })?;
        return Ok(None);
    }
    let stamp = backup_file_name(OffsetDateTime::now_utc());
    let stamp = stamp
        .trim_start_matches(BACKUP_PREFIX)
        .trim_end_matches(BACKUP_SUFFIX);
    let kept = sibling(database, &format!(".pre-restore-{stamp}"));
    std::fs::hard_link(database, &kept).map_err(|e| {
        CommandError::failed(format!(
            "cannot keep the current database as {}: {e}; nothing was changed",
            kept.display()
        ))
    })?;
    // A WAL or rollback journal left by a crash belongs to the old file: replayed into the new one
    // it would corrupt it. It goes along with the kept copy, where SQLite finds it under the
    // copy's name, and comes back if the copy cannot be put in place.
    let mut moved: Vec<(PathBuf, PathBuf)> = Vec::new();
    for suffix in ["-wal", "-journal"] {
        let file = sibling(database, suffix);
        if file.exists() {
            let aside = sibling(&kept, suffix);
            if let Err(e) = std::fs::rename(&file, &aside) {
                move_back(&moved);
                return Err(CommandError::failed(format!(
                    "cannot move {} aside: {e}; the database is unchanged, and kept as {}",
                    file.display(),
                    kept.display()
                )));
            }
            moved.push((file, aside));
        }
    }
    if let Err(e) = std::fs::rename(copy, database) {
        move_back(&moved);
        return Err(CommandError::failed(format!(
            "cannot move the verified copy to {}: {e}; the database is unchanged",
            database.display()
        )));
    }
    // The old WAL index: SQLite builds a new one for the new file.
    remove_if_exists(&sibling(database, "-shm"))
        .map_err(|e| CommandError::failed(e.to_string()))?;
    Ok(Some(kept))
}

/// A connection to a copy this command made (rollback-journal mode: no WAL beside it).
async fn open_copy(copy: &Path) -> Result<sqlx::SqliteConnection, String> {
    let options = SqliteConnectOptions::new()
        .filename(copy)
        .create_if_missing(false)
        .journal_mode(SqliteJournalMode::Delete);
    sqlx::SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| e.to_string())
}

/// Puts the companion files [`replace`] moved aside back where they were.
fn move_back(moved: &[(PathBuf, PathBuf)]) {
    for (original, aside) in moved.iter().rev() {
        let _ = std::fs::rename(aside, original);
    }
}

/// Adds the backup being restored to the restored copy's own records, taken when the file was
/// last written (the moment it was complete).
async fn record_restored_backup(copy: &Path, from: &Path, bytes: u64) -> Result<(), String> {
    let mut conn = open_copy(copy).await?;
    // A backup from before the records existed gets the table from the migrations, empty.
    let has_table =
        sqlx::query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'backups'")
            .fetch_optional(&mut conn)
            .await
            .map_err(|e| e.to_string())?
            .is_some();
    let _ = conn.close().await;
    if !has_table {
        return Ok(());
    }
    let taken_at = std::fs::metadata(from)
        .and_then(|m| m.modified())
        .map(OffsetDateTime::from)
        .map_err(|e| format!("{}: {e}", from.display()))?;
    let mut conn = open_copy(copy).await?;
    let result = sqlx::query(
        "INSERT INTO backups (taken_at, completed_at, path, bytes) VALUES ($1, $2, $3, $4)",
    )
    .bind(taken_at)
    .bind(taken_at)
    .bind(from.to_string_lossy().into_owned())
    .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
    .execute(&mut conn)
    .await
    .map(|_| ())
    .map_err(|e| e.to_string());
    let _ = conn.close().await;
    result
}

/// Checks that `path` holds a whole, consistent devsecops-app database: the SQLite header and a
/// file size that matches it (SQLite reads a short file without complaint until it needs a missing
/// page), `PRAGMA integrity_check`, the schema version, and a readable users table. The file is
/// opened read-write in rollback-journal mode: callers pass their own copies, never an original.
pub async fn verify_copy(path: &Path) -> Result<CopyInfo, String> {
    check_header(path)?;
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .journal_mode(SqliteJournalMode::Delete);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| format!("SQLite cannot open it: {e}"))?;
    let result = async {
        let problems: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&mut conn)
            .await
            .map_err(|e| format!("integrity check failed: {e}"))?;
        if problems != ["ok"] {
            let shown: Vec<&str> = problems.iter().take(5).map(String::as_str).collect();
            return Err(format!(
                "integrity check found {} problem(s): {}",
                problems.len(),
                shown.join("; ")
            ));
        }
        let has_migrations = !sqlx::query(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
        )
        .fetch_all(&mut conn)
        .await
        .map_err(|e| e.to_string())?
        .is_empty();
        if !has_migrations {
            return Err("not a devsecops-app database (no schema_migrations table)".into());
        }
        let version: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
            .fetch_all(&mut conn)
            .await
            .map_err(|e| format!("cannot read the schema version: {e}"))?
            .into_iter()
            .next()
            .flatten();
        let schema_version = version
            .filter(|v| *v >= 1)
            .ok_or("not a devsecops-app database (no migration recorded)")?;
        let users: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_all(&mut conn)
            .await
            .map_err(|e| format!("cannot read the users table: {e}"))?
            .first()
            .map(|row| row.try_get("n"))
            .transpose()
            .map_err(|e| e.to_string())?
            .unwrap_or(0);
        Ok(CopyInfo {
            schema_version,
            users,
        })
    }
    .await;
    let _ = conn.close().await;
    result
}

/// The SQLite file header (https://www.sqlite.org/fileformat.html#the_database_header): magic,
/// page size, and, when the in-header page count is valid, a file of exactly that many pages.
fn check_header(path: &Path) -> Result<(), String> {
    let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if size == 0 {
        return Err("the file is empty".into());
    }
    let mut header = [0u8; 100];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .map_err(|_| format!("not an SQLite database ({size} bytes, shorter than its header)"))?;
    if &header[..16] != b"SQLite format 3\0" {
        return Err("not an SQLite database (wrong magic)".into());
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536u64,
        n if n >= 512 && n.is_power_of_two() => u64::from(n),
        n => return Err(format!("corrupt header: page size {n}")),
    };
    let change_counter = &header[24..28];
    let version_valid_for = &header[92..96];
    let pages = u64::from(u32::from_be_bytes([
        header[28], header[29], header[30], header[31],
    ]));
    if change_counter == version_valid_for && pages > 0 {
        if size != pages * page_size {
            return Err(format!(
                "truncated or padded: the header counts {pages} pages of {page_size} bytes ({} bytes), the file has {size}",
                pages * page_size
            ));
        }
    } else if size % page_size != 0 {
        return Err(format!(
            "truncated: {size} bytes is not a whole number of {page_size}-byte pages"
        ));
    }
    Ok(())
}

/// Refuses `other` when it is the database or one of its companion files.
fn refuse_database_files(database: &Path, other: &Path) -> Result<(), CommandError> {
    let canonical = |p: &Path| -> PathBuf {
        let dir = parent_dir(p);
        let dir = dir.canonicalize().unwrap_or(dir);
        dir.join(p.file_name().unwrap_or_default())
    };
    let other = canonical(other);
    let database = canonical(database);
    for suffix in ["", "-wal", "-shm", "-journal", ".lock"] {
        if other == sibling(&database, suffix) {
            return Err(CommandError::usage(format!(
                "{} is the database's own file; choose another path",
                other.display()
            )));
        }
    }
    Ok(())
}

/// A restored file must belong to whoever owned the file it replaces (the service's user), not to
/// the operator who ran the restore (root on a NixOS host, say): else the service cannot write it.
fn match_owner(database: &Path, copy: &Path) -> Result<(), CommandError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Ok(old) = std::fs::metadata(database) else {
        return Ok(());
    };
    let new = std::fs::metadata(copy).map_err(|e| CommandError::failed(e.to_string()))?;
    if (old.uid(), old.gid()) != (new.uid(), new.gid()) {
        std::os::unix::fs::chown(copy, Some(old.uid()), Some(old.gid())).map_err(|e| {
            CommandError::failed(format!(
                "cannot give the restored file the owner of {} (uid {}, gid {}): {e}; run restore as that user or as root",
                database.display(),
                old.uid(),
                old.gid()
            ))
        })?;
    }
    std::fs::set_permissions(copy, std::fs::Permissions::from_mode(old.mode() & 0o7777))
        .map_err(|e| CommandError::failed(format!("{}: {e}", copy.display())))
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn remove_if_exists(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != ErrorKind::NotFound => Err(std::io::Error::new(
            err.kind(),
            format!("{}: {err}", path.display()),
        )),
        _ => Ok(()),
    }
}

fn sync_file(path: &Path) -> std::io::Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| std::io::Error::new(e.kind(), format!("fsync {}: {e}", path.display())))
}

/// Makes a rename durable: the directory entry is written only when the directory is synced.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| std::io::Error::new(e.kind(), format!("fsync {}: {e}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_names_sort_by_time_and_only_they_are_pruned() {
        let early = OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("time");
        let late = early + time::Duration::milliseconds(1_500);
        let (a, b) = (backup_file_name(early), backup_file_name(late));
        assert_eq!(a, "devsecops-app-20231114T221320.000Z.db");
        assert!(a < b);
        assert!(is_backup_file_name(&a) && is_backup_file_name(&b));
        for other in [
            "devsecops-app.db",
            "devsecops-app-latest.db",
            "devsecops-app-20231114T221320.000Z.db.partial-1",
            ".devsecops-app-20231114T221320.000Z.db.partial-1",
            "devsecops-app-20231114T2213200000Z.db",
            "devsecops-app-2023111xT221320.000Z.db",
        ] {
            assert!(!is_backup_file_name(other), "{other}");
        }
    }

    /// The copy cannot be put in place: the old database keeps its WAL and journal where SQLite
    /// looks for them (moved aside and left there, they were lost to the database still in use).
    #[test]
    fn a_failed_replace_puts_the_old_wal_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let database = dir.path().join("app.db");
        std::fs::write(&database, b"old database").expect("write");
        std::fs::write(sibling(&database, "-wal"), b"old wal").expect("write");
        std::fs::write(sibling(&database, "-journal"), b"old journal").expect("write");
        let missing_copy = dir.path().join("no-such-copy");
        let err = replace(&database, &missing_copy).expect_err("the rename fails");
        assert!(err.message.contains("the database is unchanged"), "{err}");
        assert_eq!(std::fs::read(&database).expect("db"), b"old database");
        assert_eq!(
            std::fs::read(sibling(&database, "-wal")).expect("wal back in place"),
            b"old wal"
        );
        assert_eq!(
            std::fs::read(sibling(&database, "-journal")).expect("journal back in place"),
            b"old journal"
        );
    }

    #[test]
    fn lock_file_sits_next_to_the_database() {
        assert_eq!(
            lock_path(Path::new("/data/devsecops-app.db")),
            PathBuf::from("/data/devsecops-app.db.lock")
        );
    }

    #[test]
    fn shared_locks_coexist_and_exclude_the_exclusive_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("app.db");
        let first = DatabaseLock::shared(&db).expect("shared");
        let second = DatabaseLock::shared(&db).expect("a second shared lock");
        assert!(matches!(
            DatabaseLock::exclusive(&db),
            Err(LockError::Busy(_))
        ));
        drop((first, second));
        let exclusive = DatabaseLock::exclusive(&db).expect("exclusive once released");
        assert!(matches!(DatabaseLock::shared(&db), Err(LockError::Busy(_))));
        drop(exclusive);
    }
}
