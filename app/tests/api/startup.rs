//! Start-up tells the truth: the real binary, given each kind of bad configuration, exits 2 with a
//! message naming the variable (and the path where there is one) on stderr and as a critical JSON
//! line on stdout, and never prints a password.

use std::process::Command;

use crate::helpers::TOKEN;

struct Outcome {
    code: Option<i32>,
    stderr: String,
    stdout: String,
}

fn run_binary(env: &[(&str, &str)]) -> Outcome {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut command = Command::new(env!("CARGO_BIN_EXE_devsecops-app"));
    command
        .env_clear()
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("METRICS_PORT", "0")
        .env("API_TOKEN", TOKEN)
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/app.db", dir.path().display()),
        )
        .current_dir(dir.path());
    for (key, value) in env {
        command.env(key, value);
    }
    // Every case must exit on its own, before serving: a hang fails the test.
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the binary");
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(20));
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    });
    let output = child.wait_with_output().expect("output");
    drop(watchdog);
    Outcome {
        code: output.status.code(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
    }
}

/// Exit 2, `expect` in stderr and in a critical JSON line, and `secret` nowhere.
fn assert_configuration_error(env: &[(&str, &str)], expect: &[&str], secret: Option<&str>) {
    let out = run_binary(env);
    assert_eq!(
        out.code,
        Some(2),
        "{env:?}: exit code; stderr: {}; stdout: {}",
        out.stderr,
        out.stdout
    );
    for needle in expect {
        assert!(
            out.stderr.contains(needle),
            "{env:?}: stderr lacks {needle:?}: {}",
            out.stderr
        );
    }
    let line = out
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "configuration_error")
        .unwrap_or_else(|| panic!("{env:?}: no JSON line on stdout: {}", out.stdout));
    assert_eq!(line["level"], "critical", "{line}");
    for needle in expect {
        assert!(
            line["error"].as_str().is_some_and(|e| e.contains(needle)),
            "{env:?}: log line lacks {needle:?}: {line}"
        );
    }
    if let Some(secret) = secret {
        assert!(
            !out.stderr.contains(secret) && !out.stdout.contains(secret),
            "{env:?}: the password was printed"
        );
    }
}

#[test]
fn bad_database_urls_exit_2_naming_the_variable() {
    assert_configuration_error(
        &[(
            "DATABASE_URL",
            "postgres://app:s3cret-pw@db.example:99999/app",
        )],
        &["DATABASE_URL", "port"],
        Some("s3cret-pw"),
    );
    assert_configuration_error(
        &[("DATABASE_URL", "postgres://app:s3cret-pw@[not-a-host/app")],
        &["DATABASE_URL"],
        Some("s3cret-pw"),
    );
    assert_configuration_error(
        &[("DATABASE_URL", "sqlite://data/app.db?mode=bogus")],
        &["DATABASE_URL", "bogus"],
        None,
    );
    assert_configuration_error(&[("DATABASE_URL", "mysql://x/y")], &["DATABASE_URL"], None);
}

#[test]
fn in_memory_and_unnamed_sqlite_databases_are_refused() {
    for url in [
        "sqlite:",
        "sqlite://",
        "sqlite::memory:",
        "sqlite://app.db?mode=memory",
    ] {
        assert_configuration_error(
            &[("DATABASE_URL", url)],
            &["DATABASE_URL", "in-memory"],
            None,
        );
    }
    assert_configuration_error(
        &[("DATABASE_URL", "sqlite://app.db?mode=ro")],
        &["DATABASE_URL", "read-only"],
        None,
    );
}

#[test]
fn database_paths_that_cannot_be_used_exit_2_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A directory where the file should be.
    let as_dir = dir.path().join("db-is-a-dir");
    std::fs::create_dir(&as_dir).expect("mkdir");
    let url = format!("sqlite://{}", as_dir.display());
    assert_configuration_error(
        &[("DATABASE_URL", &url)],
        &["DATABASE_URL", as_dir.to_str().expect("utf-8")],
        None,
    );
    // A directory that cannot be created (its parent is a file).
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "x").expect("write");
    let url = format!("sqlite://{}/sub/app.db", file.display());
    assert_configuration_error(
        &[("DATABASE_URL", &url)],
        &["DATABASE_URL", file.to_str().expect("utf-8")],
        None,
    );
    // The same from a file: the message names DATABASE_URL_FILE and its path.
    let url_file = dir.path().join("url");
    std::fs::write(&url_file, "sqlite:\n").expect("write");
    assert_configuration_error(
        &[
            ("DATABASE_URL", ""),
            ("DATABASE_URL_FILE", url_file.to_str().expect("utf-8")),
        ],
        &["DATABASE_URL_FILE", url_file.to_str().expect("utf-8")],
        None,
    );
}

#[test]
fn other_configuration_errors_exit_2() {
    assert_configuration_error(
        &[("TRUST_FORWARDED_FOR", "true")],
        &["TRUSTED_PROXIES"],
        None,
    );
    assert_configuration_error(
        &[("TRUSTED_PROXIES", "10.0.0.0/8, not-a-net")],
        &["TRUSTED_PROXIES", "not-a-net"],
        None,
    );
    assert_configuration_error(&[("PORT", "99999")], &["PORT"], None);
    assert_configuration_error(
        &[
            ("APP_ENV", "production"),
            ("API_TOKEN", &"abcdefghij".repeat(4)),
        ],
        &["API_TOKEN", "guessable"],
        Some("abcdefghij"),
    );
    // A port already taken is the operator's to fix too.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("address").port().to_string();
    assert_configuration_error(&[("PORT", &port)], &["PORT", &port], None);
}

#[test]
fn the_token_source_is_logged_never_the_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN} \n")).expect("write");
    // A directory as the database makes the start fail right after the token is read and logged.
    let db_dir = dir.path().join("db");
    std::fs::create_dir(&db_dir).expect("mkdir");
    let out = run_binary(&[
        ("API_TOKEN", ""),
        ("API_TOKEN_FILE", token_file.to_str().expect("utf-8")),
        ("DATABASE_URL", &format!("sqlite://{}", db_dir.display())),
    ]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    let loaded = out
        .stdout
        .lines()
        .find(|l| l.contains("\"configuration loaded\""))
        .unwrap_or_else(|| panic!("no configuration line: {}", out.stdout));
    assert!(
        loaded.contains(&format!("API_TOKEN_FILE ({})", token_file.display())),
        "{loaded}"
    );
    assert!(!out.stdout.contains(TOKEN), "the token was logged");
}

/// The token read from API_TOKEN_FILE (its trailing newline trimmed) is the one requests carry.
#[actix_web::test]
async fn a_token_from_a_file_authenticates() {
    use crate::helpers::{spawn_app_with, Backend};
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("write");
    let app = spawn_app_with(
        Backend::Sqlite,
        &[
            ("API_TOKEN", ""),
            ("API_TOKEN_FILE", token_file.to_str().expect("utf-8")),
        ],
    )
    .await;
    let reply = app
        .create_user("File Token", "file-token@example.com")
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let wrong = app
        .client
        .post(app.url("/api/users"))
        .insert_header(("Authorization", format!("Bearer {TOKEN}-other")));
    let reply = app
        .send(
            wrong,
            Some(serde_json::json!({"name": "Other", "email": "other@example.com"})),
        )
        .await;
    assert_eq!(reply.status, 401, "{}", reply.text());
}

/// PostgreSQL refusing the configuration (a wrong password, a database that does not exist) is a
/// configuration error: exit 2 naming DATABASE_URL, never the password, instead of serving
/// unready forever.
#[test]
fn postgres_refusing_the_configuration_exits_2() {
    let admin = crate::helpers::postgres_admin_url();
    let url = url::Url::parse(&admin).expect("TEST_POSTGRES_URL");
    let mut wrong_password = url.clone();
    wrong_password
        .set_password(Some("not-the-password-4711"))
        .expect("password");
    assert_configuration_error(
        &[("DATABASE_URL", wrong_password.as_str())],
        &["DATABASE_URL", "refuses"],
        Some("not-the-password-4711"),
    );
    // The test role's password is also its name, which the message may carry: checked only when
    // they differ (the wrong password above is checked always).
    let password = url
        .password()
        .filter(|p| *p != url.username())
        .map(str::to_owned);
    let mut no_database = url;
    no_database.set_path("/no_such_database_4711");
    assert_configuration_error(
        &[("DATABASE_URL", no_database.as_str())],
        &["DATABASE_URL", "refuses", "no_such_database_4711"],
        password.as_deref(),
    );
}
