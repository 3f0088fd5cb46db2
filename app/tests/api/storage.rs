//! Storage faults injected for real: a full filesystem (a tmpfs the test mounts and fills), a
//! filesystem remounted read-only, immutable files, a write lock held by another connection, the
//! database file deleted under the running service, and on PostgreSQL a read-only database and a
//! revoked privilege. After each, every write the service confirmed (201/200/204) must read back
//! exactly as confirmed, refused writes answer 503 problem+json with `Retry-After` counted by
//! reason, and readiness reflects a database that cannot be written.
//!
//! Mounting needs root; `scripts/test.sh` runs as root. These tests fail, never skip, without it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{postgres_admin_url, spawn_app_on, spawn_app_with, Backend, TestApp};

/// A tmpfs mounted for one test and unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("tempdir");
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                path_str(dir.path()),
            ],
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes zeros until the filesystem refuses; returns the filler to delete later.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.path().join("filler");
        let mut file = std::fs::File::create(&filler).expect("filler");
        let chunk = vec![0u8; 4096];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let path = path_str(self.dir.path()).to_string();
        for name in ["app.db", "app.db-wal", "app.db-shm"] {
            let _ = Command::new("chattr")
                .args(["-i", &format!("{path}/{name}")])
                .status();
        }
        let _ = Command::new("umount").args(["-l", &path]).status();
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

fn run(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed (these tests need root, as scripts/test.sh runs them): {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The service on a SQLite file inside `fs`.
async fn app_on(fs: &Tmpfs, overrides: &[(&str, &str)]) -> TestApp {
    let url = format!("sqlite://{}/app.db", fs.path().display());
    spawn_app_on(url, tempfile::tempdir().expect("tempdir"), overrides).await
}

/// Every write the service confirmed, to read back later.
#[derive(Default)]
struct Confirmed {
    users: Vec<Value>,
    refused: usize,
}

impl Confirmed {
    async fn create(&mut self, app: &TestApp, n: usize, tag: &str) {
        for i in 0..n {
            let reply = app
                .create_user(
                    &format!("User {tag} {i}"),
                    &format!("{tag}-{i}@example.com"),
                )
                .await;
            match reply.status {
                201 => self.users.push(reply.json()),
                503 => {
                    let body = reply.problem(503);
                    assert!(reply.header("retry-after").is_some(), "Retry-After: {body}");
                    self.refused += 1;
                }
                other => panic!(
                    "POST answered {other}: {}\n{}",
                    reply.text(),
                    app.logs.text()
                ),
            }
        }
    }

    /// PATCHes every confirmed user's name; a 200 must have stored the new name.
    async fn rename_all(&mut self, app: &TestApp, suffix: &str) {
        for user in &mut self.users {
            let id = user["id"].as_i64().expect("id");
            let name = format!("{} {suffix}", user["name"].as_str().expect("name"));
            let req = app.authed(app.client.patch(app.url(&format!("/api/users/{id}"))));
            let reply = app.send(req, Some(json!({ "name": name }))).await;
            match reply.status {
                200 => *user = reply.json(),
                503 => {
                    reply.problem(503);
                    self.refused += 1;
                }
                other => panic!(
                    "PATCH answered {other}: {}\n{}",
                    reply.text(),
                    app.logs.text()
                ),
            }
        }
    }

    /// Every confirmed user reads back exactly as confirmed, and ids are distinct.
    async fn verify(&self, app: &TestApp) {
        let mut ids: Vec<i64> = self
            .users
            .iter()
            .map(|u| u["id"].as_i64().expect("id"))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), self.users.len(), "the same id confirmed twice");
        for user in &self.users {
            let id = user["id"].as_i64().expect("id");
            let reply = app.get(&format!("/api/users/{id}")).await;
            assert_eq!(
                reply.status,
                200,
                "confirmed user {id} is gone: {}",
                reply.text()
            );
            assert_eq!(
                &reply.json(),
                user,
                "user {id} differs from what was confirmed"
            );
        }
    }
}

async fn wait_ready(app: &TestApp, want: u16) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = app.get("/ready").await;
        if reply.status == want {
            return if want == 200 {
                reply.json()
            } else {
                reply.problem(want)
            };
        }
        assert!(
            Instant::now() < deadline,
            "/ready stayed {} ({}), expected {want}",
            reply.status,
            reply.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn errors(app: &TestApp, reason: &str) -> f64 {
    app.metric_value("app_db_errors_total", &[("reason", reason)])
        .await
        .unwrap_or(0.0)
}

#[actix_web::test]
async fn sqlite_full_disk_confirms_only_stored_writes() {
    let fs = Tmpfs::mount("2m");
    let app = app_on(&fs, &[]).await;
    let mut confirmed = Confirmed::default();
    confirmed.create(&app, 5, "before").await;
    assert_eq!(confirmed.refused, 0);

    let filler = fs.fill();
    confirmed.create(&app, 60, "full").await;
    confirmed.rename_all(&app, "renamed").await;
    assert!(
        confirmed.refused > 0,
        "a full disk refused no write: the test did not fill it"
    );
    assert!(errors(&app, "full").await > 0.0, "{}", app.metrics().await);
    let body = wait_ready(&app, 503).await;
    assert_eq!(body["checks"]["database"]["reason"], "full", "{body}");

    std::fs::remove_file(filler).expect("free the disk");
    wait_ready(&app, 200).await;
    confirmed.verify(&app).await;
    confirmed.create(&app, 3, "after").await;
    confirmed.verify(&app).await;
    // A second instance opens the file afresh: what was confirmed is in the file, not in a cache.
    let restarted = app_on(&fs, &[]).await;
    confirmed.verify(&restarted).await;
}

/// An ext4 filesystem on a loop device that the kernel turns read-only on an error
/// (`errors=remount-ro`, as a failing disk does), while the service has its files open.
struct FailingExt4 {
    dir: tempfile::TempDir,
}

impl FailingExt4 {
    fn mount() -> FailingExt4 {
        let dir = tempfile::tempdir().expect("tempdir");
        let image = dir.path().join("disk.img");
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(32 << 20))
            .expect("image");
        run("mkfs.ext4", &["-q", "-F", path_str(&image)]);
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).expect("mount point");
        run(
            "mount",
            &[
                "-o",
                "loop,errors=remount-ro",
                path_str(&image),
                path_str(&mnt),
            ],
        );
        FailingExt4 { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    /// Reports a filesystem error to ext4, which remounts it read-only at once.
    fn fail(&self) {
        let output = Command::new("findmnt")
            .args(["-n", "-o", "SOURCE", path_str(&self.path())])
            .output()
            .expect("findmnt");
        let source = String::from_utf8_lossy(&output.stdout).trim().to_string();
        let device = source.rsplit('/').next().expect("device").to_string();
        std::fs::write(format!("/sys/fs/ext4/{device}/trigger_fs_error"), "test")
            .expect("trigger an ext4 error");
    }
}

impl Drop for FailingExt4 {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .args(["-l", path_str(&self.path())])
            .status();
    }
}

#[actix_web::test]
async fn sqlite_filesystem_turned_read_only_is_503_and_unready() {
    let fs = FailingExt4::mount();
    let url = format!("sqlite://{}/app.db", fs.path().display());
    let app = spawn_app_on(url, tempfile::tempdir().expect("tempdir"), &[]).await;
    let mut confirmed = Confirmed::default();
    confirmed.create(&app, 3, "before").await;

    fs.fail();
    confirmed.create(&app, 5, "ro").await;
    confirmed.rename_all(&app, "renamed").await;
    assert_eq!(
        confirmed.refused,
        5 + 3,
        "writes on a read-only filesystem were confirmed"
    );
    let body = wait_ready(&app, 503).await;
    assert_eq!(body["checks"]["database"]["status"], "down", "{body}");
    assert!(
        errors(&app, "read_only").await + errors(&app, "io").await >= 8.0,
        "{}",
        app.metrics().await
    );
    confirmed.verify(&app).await;
}

/// Immutable files (`chattr +i`): the service's open descriptors may still write, so writes are
/// either refused or really stored. A service started on them now cannot open them and says so;
/// once they are writable again, a fresh start finds every confirmed write.
#[actix_web::test]
async fn sqlite_immutable_files_lose_no_confirmed_write() {
    let fs = Tmpfs::mount("16m");
    let app = app_on(&fs, &[]).await;
    let mut confirmed = Confirmed::default();
    confirmed.create(&app, 3, "before").await;
    let files: Vec<String> = ["app.db", "app.db-wal", "app.db-shm"]
        .iter()
        .map(|f| format!("{}/{f}", fs.path().display()))
        .filter(|f| Path::new(f).exists())
        .collect();
    for file in &files {
        run("chattr", &["+i", file]);
    }
    confirmed.create(&app, 5, "immutable").await;
    confirmed.rename_all(&app, "renamed").await;
    confirmed.verify(&app).await;

    let settings = devsecops_app::configuration::Settings::from_source(
        &devsecops_app::configuration::Source::from_map(
            [
                (
                    "DATABASE_URL",
                    format!("sqlite://{}/app.db", fs.path().display()),
                ),
                ("METRICS_PORT", "0".to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        ),
    )
    .expect("settings");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let err = devsecops_app::startup::Application::build_with_listener(settings, logger, listener)
        .await
        .err()
        .expect("a start on immutable files fails");
    assert_eq!(
        err.kind,
        devsecops_app::startup::StartupErrorKind::Configuration,
        "{err}"
    );
    assert!(err.message.starts_with("DATABASE_URL: "), "{err}");
    assert!(
        err.message
            .contains(&format!("{}/app.db", fs.path().display())),
        "{err}"
    );

    for file in &files {
        run("chattr", &["-i", file]);
    }
    let restarted = app_on(&fs, &[]).await;
    confirmed.verify(&restarted).await;
}

#[actix_web::test]
async fn sqlite_lock_held_past_the_busy_timeout_is_503() {
    use sqlx::Connection;
    let fs = Tmpfs::mount("16m");
    let app = app_on(&fs, &[("DB_STATEMENT_TIMEOUT_MS", "300")]).await;
    let mut confirmed = Confirmed::default();
    confirmed.create(&app, 2, "before").await;

    let url = format!("sqlite://{}/app.db", fs.path().display());
    let mut holder = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("connect");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .expect("take the write lock");
    let started = Instant::now();
    confirmed.create(&app, 2, "locked").await;
    assert_eq!(
        confirmed.refused, 2,
        "writes while another connection held the lock"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(errors(&app, "locked").await, 2.0);
    sqlx::query("ROLLBACK")
        .execute(&mut holder)
        .await
        .expect("release");

    confirmed.create(&app, 2, "after").await;
    confirmed.verify(&app).await;
}

/// Many readiness checks while another connection holds the write lock share one write probe
/// (single flight): they answer 503 together in about one busy timeout instead of queueing on the
/// pool one after another, and leave the pool free for writes once the lock is gone.
#[actix_web::test]
async fn readiness_checks_under_a_held_lock_share_one_probe() {
    use sqlx::Connection;
    let fs = Tmpfs::mount("16m");
    let app = app_on(
        &fs,
        &[
            ("DB_STATEMENT_TIMEOUT_MS", "500"),
            ("DB_MAX_CONNECTIONS", "2"),
        ],
    )
    .await;
    wait_ready(&app, 200).await;
    let url = format!("sqlite://{}/app.db", fs.path().display());
    let mut holder = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("connect");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .expect("take the write lock");
    // A failed write makes the next readiness check probe again at once.
    let mut confirmed = Confirmed::default();
    confirmed.create(&app, 1, "locked").await;
    assert_eq!(confirmed.refused, 1);

    let started = Instant::now();
    let checks: Vec<_> = (0..20)
        .map(|_| {
            let req = app.client.get(app.url("/ready"));
            actix_web::rt::spawn(async move { req.send_bytes(b"").await })
        })
        .collect();
    for check in checks {
        let reply = check.await.expect("check");
        assert_eq!(reply.status, 503, "{}", reply.text());
    }
    // One probe waits one busy timeout (0.5 s); twenty in turn on a pool of two would take 5 s.
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(3),
        "20 checks took {elapsed:?}"
    );

    sqlx::query("ROLLBACK")
        .execute(&mut holder)
        .await
        .expect("release");
    confirmed.create(&app, 3, "after").await;
    assert_eq!(
        confirmed.users.len(),
        3,
        "writes after the lock was released"
    );
    wait_ready(&app, 200).await;
    confirmed.verify(&app).await;
}

#[actix_web::test]
async fn sqlite_file_deleted_while_running_is_detected() {
    let fs = Tmpfs::mount("16m");
    let app = app_on(&fs, &[]).await;
    let mut confirmed = Confirmed::default();
    confirmed.create(&app, 2, "before").await;
    for name in ["app.db", "app.db-wal", "app.db-shm"] {
        let _ = std::fs::remove_file(fs.path().join(name));
    }
    let body = wait_ready(&app, 503).await;
    assert_eq!(
        body["checks"]["database"]["reason"], "file_missing",
        "{body}"
    );
    let reply = app.create_user("Lost", "lost@example.com").await;
    reply.problem(503);
    let logs = app.logs.text();
    let alarm = logs
        .lines()
        .find(|l| l.contains("\"event\":\"database_file_missing\""))
        .unwrap_or_else(|| panic!("no alarm logged: {logs}"));
    assert!(alarm.contains("\"level\":\"critical\""), "{alarm}");
    assert_eq!(
        logs.matches("database_file_missing").count(),
        1,
        "the alarm is raised once"
    );
}

/// PostgreSQL: a read-only database (the stand-in for a full disk) and a revoked privilege.
#[actix_web::test]
async fn postgres_read_only_and_revoked_writes_are_503() {
    use sqlx::Connection;
    let app = crate::helpers::spawn_app(Backend::Postgres).await;
    let mut confirmed = Confirmed::default();
    confirmed.create(&app, 3, "before").await;
    let mut admin = sqlx::PgConnection::connect(&app.database_url)
        .await
        .expect("connect");
    let database = app
        .database_url
        .rsplit('/')
        .next()
        .expect("name")
        .to_string();

    // Read-only: new sessions start read-only; the service's sessions are ended so it reconnects.
    sqlx::query(&format!(
        "ALTER DATABASE \"{database}\" SET default_transaction_read_only = on"
    ))
    .execute(&mut admin)
    .await
    .expect("alter database");
    terminate_other_sessions(&mut admin, &database).await;
    confirmed.create(&app, 4, "ro").await;
    assert!(
        confirmed.refused >= 4,
        "writes to a read-only database were confirmed"
    );
    // Pooled sessions that were ended answer `unreachable` once, then reconnect read-only.
    let read_only = errors(&app, "read_only").await;
    assert!(
        read_only >= 1.0 && read_only + errors(&app, "unreachable").await >= 4.0,
        "{}",
        app.metrics().await
    );
    let body = wait_ready(&app, 503).await;
    assert_eq!(body["checks"]["database"]["reason"], "read_only", "{body}");
    sqlx::query(&format!(
        "ALTER DATABASE \"{database}\" SET default_transaction_read_only = off"
    ))
    .execute(&mut admin)
    .await
    .expect("alter database");
    terminate_other_sessions(&mut admin, &database).await;
    wait_ready(&app, 200).await;

    // Revoked: the role may no longer write users.
    sqlx::query("REVOKE INSERT, UPDATE ON users FROM CURRENT_USER")
        .execute(&mut admin)
        .await
        .expect("revoke");
    let refused_before = confirmed.refused;
    confirmed.create(&app, 3, "revoked").await;
    confirmed.rename_all(&app, "renamed").await;
    // Readiness sees it too: its probe runs the users table's write statements.
    let body = wait_ready(&app, 503).await;
    assert_eq!(body["checks"]["database"]["reason"], "permission", "{body}");
    assert!(
        confirmed.refused >= refused_before + 3 + 3,
        "writes without privilege were confirmed"
    );
    assert!(
        errors(&app, "permission").await >= 6.0,
        "{}",
        app.metrics().await
    );
    sqlx::query("GRANT INSERT, UPDATE ON users TO CURRENT_USER")
        .execute(&mut admin)
        .await
        .expect("grant");
    wait_ready(&app, 200).await;
    confirmed.create(&app, 2, "after").await;
    confirmed.verify(&app).await;
}

/// Each HTTP worker queries PostgreSQL through a pool of its own (a connection opened by another
/// worker's runtime would wake that worker's thread on every query), and the pools together stay
/// within DB_MAX_CONNECTIONS.
#[actix_web::test]
async fn postgres_workers_query_through_their_own_pools_within_the_bound() {
    use sqlx::Connection;
    let app = spawn_app_with(
        Backend::Postgres,
        &[("WORKERS", "2"), ("DB_MAX_CONNECTIONS", "10")],
    )
    .await;
    assert_eq!(app.state.db.worker_pools().len(), 2, "one pool per worker");
    let requests: Vec<_> = (0..40)
        .map(|_| {
            let request = app.client.get(app.url("/api/users?limit=5"));
            tokio::spawn(async move { request.send_bytes(b"").await.status })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.expect("request task"), 200);
    }
    let opened = app.state.db.worker_pools();
    assert!(
        opened.iter().all(|&open| open > 0),
        "requests on both workers went through their own pools: {opened:?}"
    );
    let database = app
        .database_url
        .rsplit('/')
        .next()
        .expect("a database name");
    let mut admin = sqlx::PgConnection::connect(&postgres_admin_url())
        .await
        .expect("admin connection");
    let sessions: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'devsecops-app'",
    )
    .bind(database)
    .fetch_one(&mut admin)
    .await
    .expect("count sessions");
    assert!(
        sessions <= 10,
        "{sessions} sessions, above DB_MAX_CONNECTIONS=10"
    );
    assert!(app.state.db.pool_stats().0 <= 10);
}

async fn terminate_other_sessions(admin: &mut sqlx::PgConnection, database: &str) {
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(database)
    .execute(admin)
    .await
    .expect("terminate sessions");
}

/// The WAL holds every write since the last checkpoint: deleting it alone loses them as surely as
/// deleting the database. Detected like a deleted database file; and a start on the file left
/// behind (pages, but no schema) refuses instead of serving an empty database.
/// Deletes one of the database's files under the running service; readiness turns 503
/// `file_missing`.
async fn delete_and_expect_unready(fs: &Tmpfs, app: &TestApp, name: &str) {
    std::fs::remove_file(fs.path().join(name)).unwrap_or_else(|e| panic!("delete {name}: {e}"));
    let body = wait_ready(app, 503).await;
    assert_eq!(
        body["checks"]["database"]["reason"], "file_missing",
        "{name}: {body}"
    );
}

/// The WAL index deleted while running: the service's next connection would build a new one
/// that other processes (a backup, an operator's sqlite3) do not share, and their commits would be
/// lost. Readiness and writes say so; nothing confirmed is lost.
#[actix_web::test]
async fn sqlite_shared_memory_deleted_while_running_is_detected() {
    let fs = Tmpfs::mount("16m");
    let app = app_on(&fs, &[]).await;
    let mut confirmed = Confirmed::default();
    confirmed.create(&app, 3, "before").await;
    delete_and_expect_unready(&fs, &app, "app.db-shm").await;
    confirmed.create(&app, 2, "after").await;
    assert_eq!(
        confirmed.refused, 2,
        "writes after the WAL index was deleted"
    );
    assert_eq!(errors(&app, "file_missing").await, 2.0);
}

#[actix_web::test]
async fn sqlite_wal_deleted_while_running_is_detected() {
    let fs = Tmpfs::mount("16m");
    let app = app_on(&fs, &[]).await;
    let mut confirmed = Confirmed::default();
    confirmed.create(&app, 3, "before").await;
    delete_and_expect_unready(&fs, &app, "app.db-wal").await;
    app.create_user("Lost", "lost@example.com")
        .await
        .problem(503);

    // Beside the running service, whose WAL index still points into the deleted WAL, a second
    // start cannot read the file and says that (not "no schema", whose advice is to move it).
    let err = start_on(&fs.path().join("app.db")).await;
    assert!(err.contains("cannot read the SQLite database"), "{err}");
    assert!(!err.contains("move the file away"), "{err}");
    // The file alone, as a restart finds it: its pages hold no schema (everything was in the
    // WAL), and the start refuses to migrate it into an empty database.
    let alone = tempfile::tempdir().expect("tempdir");
    std::fs::copy(fs.path().join("app.db"), alone.path().join("app.db")).expect("copy");
    let err = start_on(&alone.path().join("app.db")).await;
    assert!(err.contains("holds no schema"), "{err}");
}

/// Starts the service in this process on the SQLite file `path` and returns its start-up error.
async fn start_on(path: &Path) -> String {
    let settings = devsecops_app::configuration::Settings::from_source(
        &devsecops_app::configuration::Source::from_map(
            [
                ("DATABASE_URL", format!("sqlite://{}", path.display())),
                ("METRICS_PORT", "0".to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        ),
    )
    .expect("settings");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    devsecops_app::startup::Application::build_with_listener(settings, logger, listener)
        .await
        .err()
        .expect("the start fails")
        .message
}

/// On ext4 an immutable database file and WAL refuse the service's writes: 503, unready, and
/// ready again once they are writable.
#[actix_web::test]
async fn sqlite_immutable_files_on_ext4_are_503_and_unready() {
    let fs = FailingExt4::mount();
    let url = format!("sqlite://{}/app.db", fs.path().display());
    let app = spawn_app_on(url, tempfile::tempdir().expect("tempdir"), &[]).await;
    let mut confirmed = Confirmed::default();
    confirmed.create(&app, 3, "before").await;
    let files = [
        format!("{}/app.db", fs.path().display()),
        format!("{}/app.db-wal", fs.path().display()),
    ];
    for file in &files {
        run("chattr", &["+i", file]);
    }
    confirmed.create(&app, 4, "immutable").await;
    assert_eq!(
        confirmed.refused, 4,
        "writes to immutable files were confirmed"
    );
    wait_ready(&app, 503).await;
    for file in &files {
        run("chattr", &["-i", file]);
    }
    wait_ready(&app, 200).await;
    confirmed.create(&app, 2, "after").await;
    confirmed.verify(&app).await;
}

/// An immutable shared-memory file: SQLite writes it through a memory map, and ext4 answers a write
/// fault on an immutable file with SIGBUS, which no user-space code can turn into an error reply.
/// The process dies without confirming the write; a start on the immutable file refuses with exit
/// 2 naming the path; once the file is writable again, every confirmed write is there.
#[actix_web::test]
async fn sqlite_immutable_shared_memory_kills_the_process_and_loses_no_confirmed_write() {
    let fs = FailingExt4::mount();
    let db = format!("sqlite://{}/app.db", fs.path().display());
    let start = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_devsecops-app"))
            .env_clear()
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("METRICS_PORT", "0")
            .env("API_TOKEN", crate::helpers::TOKEN)
            .env("DATABASE_URL", &db)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start the binary")
    };
    let mut child = start();
    let port = listening_port(&mut child);
    let post = |n: usize| {
        let body = format!(r#"{{"name":"U{n}","email":"u{n}@example.com"}}"#);
        format!(
            "POST /api/users HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            crate::helpers::TOKEN,
            body.len()
        )
    };
    let address = format!("127.0.0.1:{port}");
    let mut confirmed = Vec::new();
    for n in 0..3 {
        let reply = crate::helpers::raw_exchange(&address, post(n).as_bytes()).await;
        assert!(
            reply.starts_with(b"HTTP/1.1 201"),
            "{}",
            String::from_utf8_lossy(&reply)
        );
        confirmed.push(n);
    }
    run(
        "chattr",
        &["+i", &format!("{}/app.db-shm", fs.path().display())],
    );
    for n in 3..6 {
        // The process may already be gone: a refused connection confirms nothing.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut stream) = tokio::net::TcpStream::connect(&address).await else {
            continue;
        };
        let mut reply = Vec::new();
        if stream.write_all(post(n).as_bytes()).await.is_ok() {
            let _ =
                tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut reply)).await;
        }
        if reply.starts_with(b"HTTP/1.1 201") {
            confirmed.push(n);
        }
    }
    let status = child.wait().expect("the process ends");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(7), "expected SIGBUS, got {status:?}");

    let refused = start().wait_with_output().expect("output");
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("DATABASE_URL") && stderr.contains("app.db"),
        "{stderr}"
    );

    run(
        "chattr",
        &["-i", &format!("{}/app.db-shm", fs.path().display())],
    );
    let mut child = start();
    let port = listening_port(&mut child);
    for n in confirmed {
        let reply = crate::helpers::raw_exchange(
            &format!("127.0.0.1:{port}"),
            format!(
                "GET /api/users/{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                n + 1
            )
            .as_bytes(),
        )
        .await;
        let text = String::from_utf8_lossy(&reply);
        assert!(
            text.starts_with("HTTP/1.1 200") && text.contains(&format!("u{n}@example.com")),
            "{text}"
        );
    }
    let _ = child.kill();
}

/// Reads the binary's log until its `listening` line and returns the public port.
fn listening_port(child: &mut std::process::Child) -> u16 {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("the service logs until it listens")
            .expect("a log line");
        let value: Value = serde_json::from_str(&line).unwrap_or_default();
        if value["message"] == "listening" {
            break value["address"]
                .as_str()
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse().ok())
                .expect("a port");
        }
    };
    // Keep draining the log so the service never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    port
}
