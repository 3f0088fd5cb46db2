//! The command line: `serve` (the default), `healthcheck`, `migrate`, `backup`, `restore`.
//!
//! Exit codes: 0 done; 1 the operation failed (nothing kept or replaced); 2 usage or configuration
//! error (clap's own code for an unknown command or flag); 3 a restore refused because the
//! database is in use. `migrate`, `backup` and `restore` read only the database settings
//! (`DATABASE_URL` or `DATABASE_URL_FILE`, `CONFIG_FILE`, `DB_*`): a backup job needs no token.
//! Each writes JSON log lines on stdout, like the service, and a failure also as one line on stderr.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Args, Parser, Subcommand};
use slog::{crit, info, Logger};
use time::format_description::well_known::Rfc3339;
use tokio::signal::unix::{signal, SignalKind};

use crate::backup::{self, BackupTarget, CommandError, CommandErrorKind, POSTGRES_REFUSAL};
use crate::configuration::{
    database_options, token_strength_log10, DatabaseOptions, DatabaseSettings,
};
use crate::db::{Database, OpenError};
use crate::telemetry::{self, LogWrite};

#[derive(Debug, Parser)]
#[command(
    name = "devsecops-app",
    version,
    about = "Users API with health, readiness, Prometheus metrics and JSON logs",
    long_about = "Users API with health, readiness, Prometheus metrics and JSON logs.\n\nWithout a command it serves (configuration from the environment; see README.md). Exit codes: 0 done, 1 failed (nothing kept or replaced), 2 usage or configuration error, 3 restore refused because the database is in use."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default when no command is given)
    Serve,
    /// GET a URL and exit 0 on a 2xx answer, 1 otherwise (for images without a shell)
    Healthcheck {
        /// Plain http:// URL
        #[arg(default_value = crate::healthcheck::DEFAULT_URL)]
        url: String,
    },
    /// Apply the database migrations and exit (SQLite or PostgreSQL; for Jobs and upgrades)
    Migrate,
    /// Take a verified online copy of the SQLite database and record it
    Backup(BackupArgs),
    /// Replace the SQLite database with a verified backup; refused while the database is in use
    Restore(RestoreArgs),
    /// Print log10 of the guesses a token read on standard input needs (used by the service itself)
    #[command(hide = true)]
    TokenStrength,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["to", "dir"])))]
pub struct BackupArgs {
    /// Write the backup to FILE (replaced atomically if it exists)
    #[arg(long, value_name = "FILE")]
    pub to: Option<PathBuf>,
    /// Write devsecops-app-<UTC time>.db into DIR
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// After a successful backup, delete the oldest devsecops-app-<UTC time>.db files in DIR beyond the newest N
    #[arg(long, value_name = "N", requires = "dir", conflicts_with = "to")]
    pub keep: Option<NonZeroUsize>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup to restore (a file `backup` wrote, or a copy of a stopped database)
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
}

/// The logger of the commands other than `serve`: every line written at once.
fn command_logger() -> Logger {
    telemetry::logger_with(
        Box::new(std::io::stdout()),
        slog::Level::Info,
        LogWrite::Sync,
    )
}

/// Reports a failure on stderr (for a person) and as a critical JSON line (for the log pipeline).
fn fail(logger: &Logger, command: &str, err: &CommandError) -> ExitCode {
    eprintln!("devsecops-app {command}: {}", err.message);
    crit!(logger, "command failed";
        "event" => format!("{command}_failed"),
        "exit_code" => err.kind.exit_code(),
        "error" => &err.message);
    ExitCode::from(err.kind.exit_code())
}

fn load_database_settings() -> Result<DatabaseSettings, CommandError> {
    DatabaseSettings::load().map_err(|e| CommandError::usage(format!("configuration error: {e}")))
}

fn open(settings: &DatabaseSettings) -> Result<Database, CommandError> {
    Database::connect_lazy(settings).map_err(|e| match e {
        OpenError::Invalid(message) => {
            CommandError::usage(format!("{}: {message}", settings.source))
        }
        OpenError::Busy(message) => CommandError::failed(message),
    })
}

fn run<F: std::future::Future<Output = Result<(), CommandError>>>(
    future: impl FnOnce() -> F,
) -> Result<(), CommandError> {
    actix_web::rt::System::new().block_on(future())
}

pub fn migrate() -> ExitCode {
    let logger = command_logger();
    let result = load_database_settings().and_then(|settings| {
        run(|| async {
            let db = open(&settings)?;
            let outcome = db.migrate().await;
            db.close().await;
            let applied = outcome.map_err(|e| {
                CommandError::failed(format!("migrations failed: {}", e.describe()))
            })?;
            info!(logger, "migrations applied";
                "event" => "migrated",
                "database" => db.backend(),
                "applied" => format!("{applied:?}"),
                "schema_version" => crate::db::SCHEMA_VERSION);
            Ok(())
        })
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&logger, "migrate", &err),
    }
}

pub fn backup(args: BackupArgs) -> ExitCode {
    let logger = command_logger();
    let target = match (args.to, args.dir) {
        (Some(file), None) => BackupTarget::File(file),
        (None, Some(dir)) => BackupTarget::Directory {
            dir,
            keep: args.keep,
        },
        // clap's group makes exactly one of them present.
        _ => {
            return fail(
                &logger,
                "backup",
                &CommandError::usage("give --to FILE or --dir DIR"),
            )
        }
    };
    let result = load_database_settings().and_then(|settings| {
        let path = sqlite_file(&settings)?;
        if !path.is_file() {
            return Err(CommandError::failed(format!(
                "no database at {} ({}): nothing to back up",
                path.display(),
                settings.source
            )));
        }
        run(|| async {
            let db = open(&settings)?;
            // A signal (a Job's deadline, an eviction, systemd stopping the unit) ends the backup
            // without leaving its unfinished copy, as large as the database, behind.
            let mut terminate = signal(SignalKind::terminate());
            let mut interrupt = signal(SignalKind::interrupt());
            let outcome = tokio::select! {
                outcome = backup::backup(&db, &target) => outcome,
                Some(name) = async {
                    tokio::select! {
                        Some(()) = async { terminate.as_mut().ok()?.recv().await } => Some("SIGTERM"),
                        Some(()) = async { interrupt.as_mut().ok()?.recv().await } => Some("SIGINT"),
                        else => None,
                    }
                } => {
                    backup::remove_partial();
                    Err(CommandError::failed(format!(
                        "stopped by {name}: the unfinished copy was deleted, nothing was kept"
                    )))
                }
            };
            db.close().await;
            let report = outcome?;
            info!(logger, "backup completed";
                "event" => "backup_completed",
                "path" => report.path.display().to_string(),
                "bytes" => report.bytes,
                "taken_at" => report.taken_at.format(&Rfc3339).unwrap_or_default(),
                "schema_version" => report.schema_version,
                "users" => report.users,
                "deleted" => format!("{:?}", report.deleted));
            Ok(())
        })
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&logger, "backup", &err),
    }
}

pub fn restore(args: RestoreArgs) -> ExitCode {
    let logger = command_logger();
    let result = load_database_settings().and_then(|settings| {
        let database = sqlite_file(&settings)?;
        // Restoring where no database is, on the default path, is most likely a shell without the
        // service's settings: it would create a database nobody reads and report success.
        if settings.source == crate::configuration::DEFAULT_DATABASE_SOURCE && !database.exists() {
            return Err(CommandError::usage(format!(
                "no database at {} and DATABASE_URL is unset: set DATABASE_URL (or DATABASE_URL_FILE) to the service's database",
                database.display()
            )));
        }
        run(|| async {
            let report = backup::restore(&database, &args.from).await?;
            info!(logger, "database restored";
                "event" => "restored",
                "database" => report.database.display().to_string(),
                "from" => report.from.display().to_string(),
                "schema_version" => report.schema_version,
                "users" => report.users,
                "previous_kept_as" => report.previous.map(|p| p.display().to_string()));
            Ok(())
        })
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let code = fail(&logger, "restore", &err);
            if err.kind == CommandErrorKind::InUse {
                eprintln!("devsecops-app restore: stop every instance of the service first (scale the Deployment to 0, or stop the systemd unit)");
            }
            code
        }
    }
}

/// The SQLite file the settings name; PostgreSQL is refused with the way to back it up.
fn sqlite_file(settings: &DatabaseSettings) -> Result<PathBuf, CommandError> {
    match database_options(settings.url.expose()) {
        Ok(DatabaseOptions::Sqlite(options)) => Ok(options.get_filename().to_path_buf()),
        Ok(DatabaseOptions::Postgres(_)) => Err(CommandError::usage(POSTGRES_REFUSAL)),
        Err(e) => Err(CommandError::usage(format!("{}: {e}", settings.source))),
    }
}

/// `token-strength`: the score of the token on standard input, as [`token_strength_log10`] computes it.
pub fn token_strength() -> ExitCode {
    use std::io::Read;
    let mut token = String::new();
    if std::io::stdin().read_to_string(&mut token).is_err() {
        eprintln!("devsecops-app token-strength: standard input is not UTF-8 text");
        return ExitCode::from(2);
    }
    println!("{}", token_strength_log10(&token));
    ExitCode::SUCCESS
}

/// Scores a token in a child process of this binary (`token-strength`, the token on its standard
/// input, an empty environment), so that the dictionaries zxcvbn builds on first use, about 8 MB
/// that stay allocated for the life of a process, leave with the child. Any failure to run it
/// scores the token here instead: the check itself never depends on the child.
pub fn token_strength_in_child(token: &str) -> f64 {
    score_in_child(token).unwrap_or_else(|| {
        eprintln!(
            "devsecops-app: the token could not be scored in a child process; scoring it here \
             (its dictionaries then stay in this process's memory)"
        );
        token_strength_log10(token)
    })
}

fn score_in_child(token: &str) -> Option<f64> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    // The running image itself, even if its file was replaced or deleted since it started (the
    // path `current_exe` returns could then name another program).
    let mut child = Command::new("/proc/self/exe")
        .arg("token-strength")
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    // Written, then closed by the drop: the child reads to the end.
    let written = child.stdin.take()?.write_all(token.as_bytes());
    let output = child.wait_with_output().ok()?;
    written.ok()?;
    if !output.status.success() {
        return None;
    }
    std::str::from_utf8(&output.stdout)
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|score| score.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_command_serves_and_unknown_ones_are_errors() {
        assert!(Cli::try_parse_from(["devsecops-app"])
            .expect("no arguments")
            .command
            .is_none());
        for bad in [
            vec!["devsecops-app", "serv"],
            vec!["devsecops-app", "--port", "1"],
            vec!["devsecops-app", "backup"],
            vec!["devsecops-app", "backup", "--to", "a", "--dir", "b"],
            vec!["devsecops-app", "backup", "--to", "a", "--keep", "2"],
            vec!["devsecops-app", "backup", "--dir", "b", "--keep", "0"],
            vec!["devsecops-app", "restore"],
        ] {
            let err = Cli::try_parse_from(&bad).expect_err("refused");
            assert_eq!(err.exit_code(), 2, "{bad:?}: {err}");
        }
    }
}
