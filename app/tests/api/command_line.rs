//! The real binary's command line: help and version answer without starting anything, anything
//! unknown is a usage error (exit 2) before any file, port or database is touched, and `migrate`
//! applies the migrations and exits, needing no token.

use std::net::TcpListener;

use crate::helpers::{fresh_postgres_database, run_cli};

/// The environment of a service that would bind `port` and create `dir/app.db` if it started.
fn serving_env(dir: &std::path::Path, port: u16) -> Vec<(String, String)> {
    vec![
        ("HOST".into(), "127.0.0.1".into()),
        ("PORT".into(), port.to_string()),
        ("METRICS_PORT".into(), "0".into()),
        (
            "DATABASE_URL".into(),
            format!("sqlite://{}/app.db", dir.display()),
        ),
    ]
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[actix_web::test]
async fn help_and_version_exit_0_without_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let env = serving_env(dir.path(), port);
    for args in [
        vec!["--help"],
        vec!["-h"],
        vec!["help"],
        vec!["backup", "--help"],
        vec!["restore", "--help"],
        vec!["migrate", "--help"],
        vec!["serve", "--help"],
    ] {
        let run = run_cli(&args, &pairs(&env)).await;
        assert_eq!(run.code, Some(0), "{args:?}: {}{}", run.stdout, run.stderr);
        assert!(
            run.stdout.contains("Usage: devsecops-app"),
            "{args:?}: {}",
            run.stdout
        );
    }
    let help = run_cli(&["--help"], &pairs(&env)).await;
    for command in ["serve", "healthcheck", "migrate", "backup", "restore"] {
        assert!(
            help.stdout.contains(command),
            "{command} missing: {}",
            help.stdout
        );
    }
    let backup_help = run_cli(&["backup", "--help"], &pairs(&env)).await;
    for flag in ["--to <FILE>", "--dir <DIR>", "--keep <N>"] {
        assert!(
            backup_help.stdout.contains(flag),
            "{flag}: {}",
            backup_help.stdout
        );
    }
    for flag in ["--version", "-V"] {
        let run = run_cli(&[flag], &pairs(&env)).await;
        assert_eq!(run.code, Some(0), "{flag}: {}", run.stderr);
        assert_eq!(
            run.stdout.trim(),
            format!("devsecops-app {}", env!("CARGO_PKG_VERSION"))
        );
    }
    assert_nothing_started(dir.path(), port);
}

#[actix_web::test]
async fn unknown_arguments_are_usage_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let env = serving_env(dir.path(), port);
    for args in [
        vec!["--bogus"],
        vec!["frobnicate"],
        vec!["serve", "--port", "1"],
        vec!["serve", "extra"],
        vec!["migrate", "now"],
        vec!["backup"],
        vec!["backup", "--to", "a.db", "--dir", "."],
        vec!["backup", "--to", "a.db", "--keep", "3"],
        vec!["backup", "--dir", ".", "--keep", "0"],
        vec!["backup", "--dir", ".", "--keep", "many"],
        vec!["restore"],
        vec!["restore", "--from"],
        vec!["healthcheck", "http://127.0.0.1:1/", "extra"],
    ] {
        let run = run_cli(&args, &pairs(&env)).await;
        assert_eq!(run.code, Some(2), "{args:?}: {}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains("error:"), "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("Usage:") || run.stderr.contains("--help"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
    assert_nothing_started(dir.path(), port);
}

/// No database file or lock was created and the port is still free: nothing started.
fn assert_nothing_started(dir: &std::path::Path, port: u16) {
    let entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert!(entries.is_empty(), "files were created: {entries:?}");
    TcpListener::bind(("127.0.0.1", port)).expect("the port was never bound");
}

#[actix_web::test]
async fn migrate_applies_the_schema_and_exits_without_a_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = format!("sqlite://{}/data/app.db", dir.path().display());
    let postgres = fresh_postgres_database().await;
    for url in [sqlite.as_str(), postgres.as_str()] {
        // Production without a token: the service would refuse to start; migrate needs none.
        let env = [("DATABASE_URL", url), ("APP_ENV", "production")];
        let run = run_cli(&["migrate"], &env).await;
        assert_eq!(run.code, Some(0), "{url}: {}{}", run.stdout, run.stderr);
        let line = run.event("migrated");
        let every: Vec<i64> = (1..=devsecops_app::db::SCHEMA_VERSION).collect();
        assert_eq!(line["applied"], format!("{every:?}"), "{line}");
        assert_eq!(line["schema_version"], devsecops_app::db::SCHEMA_VERSION);
        // Twice is a no-op.
        let again = run_cli(&["migrate"], &env).await;
        assert_eq!(again.code, Some(0), "{}", again.stderr);
        assert_eq!(again.event("migrated")["applied"], "[]");
    }
    assert!(dir.path().join("data/app.db").is_file());

    let unreachable = run_cli(
        &["migrate"],
        &[
            ("DATABASE_URL", "postgres://nobody:pw@127.0.0.1:1/none"),
            ("DB_ACQUIRE_TIMEOUT_MS", "500"),
        ],
    )
    .await;
    assert_eq!(unreachable.code, Some(1), "{}", unreachable.stderr);
    assert!(
        unreachable.stderr.contains("migrations failed"),
        "{}",
        unreachable.stderr
    );
    assert!(
        !unreachable.stderr.contains("pw@"),
        "{}",
        unreachable.stderr
    );

    let bad = run_cli(&["migrate"], &[("DATABASE_URL", "mysql://x/y")]).await;
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
    assert!(bad.stderr.contains("DATABASE_URL"), "{}", bad.stderr);
}

#[actix_web::test]
async fn backup_and_restore_refuse_postgres_pointing_to_pg_dump() {
    let url = fresh_postgres_database().await;
    for args in [
        vec!["backup", "--to", "/tmp/never-written.db"],
        vec!["restore", "--from", "/tmp/never-read.db"],
    ] {
        let run = run_cli(&args, &[("DATABASE_URL", url.as_str())]).await;
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("pg_dump"), "{}", run.stderr);
        assert!(run.stderr.contains("CloudNativePG"), "{}", run.stderr);
        let line = run.event(&format!("{}_failed", args[0]));
        assert_eq!(line["level"], "critical");
    }
    assert!(!std::path::Path::new("/tmp/never-written.db").exists());
}

/// The service scores its production token in a child process of the same binary: the child's
/// number is the library's, digit for digit, and its output carries nothing else.
#[test]
fn token_strength_in_a_child_is_the_library_score() {
    use devsecops_app::configuration::token_strength_log10;
    use std::io::Write;
    for token in [
        "",
        "password",
        "correct horse battery staple",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "ünïcödé tökén with spaces and \u{1F980}",
    ] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_devsecops-app"))
            .arg("token-strength")
            .env_clear()
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the binary");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(token.as_bytes())
            .expect("write the token");
        let output = child.wait_with_output().expect("output");
        assert!(output.status.success(), "{token:?}: {output:?}");
        let printed = String::from_utf8(output.stdout).expect("UTF-8");
        assert_eq!(
            printed,
            format!("{}\n", token_strength_log10(token)),
            "{token:?}"
        );
    }
    // Help does not list it: it is the service's, not an operator's, command.
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_devsecops-app"))
        .arg("--help")
        .output()
        .expect("help");
    assert!(!String::from_utf8_lossy(&help.stdout).contains("token-strength"));
}
