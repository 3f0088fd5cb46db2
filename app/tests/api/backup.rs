//! Backups tested by restoring them. Under write load: take a backup, keep writing, restore into a
//! fresh instance, and check that every write acknowledged before the backup started is there and
//! that every row is one the service acknowledged (SQLite with `devsecops-app backup`/`restore`,
//! PostgreSQL with Debian's pg_dump/pg_restore, the commands the documentation gives). Damaged
//! backups are refused and change nothing; a database in use is never replaced.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::Connection;

use crate::helpers::{
    fresh_postgres_database, run_cli, spawn_app, spawn_app_on, spawn_app_with, Backend, HttpClient,
    TestApp, TOKEN,
};

/// Every write the service acknowledged, in the order the acknowledgements arrived.
#[derive(Default)]
struct Ledger {
    acked: Vec<Value>,
}

/// Creates users and renames earlier ones until `stop`; every 201/200 goes into the ledger.
async fn write_load(
    base: String,
    writer: usize,
    ledger: Rc<RefCell<Ledger>>,
    stop: Rc<RefCell<bool>>,
) {
    let client = HttpClient;
    let mut i = 0usize;
    while !*stop.borrow() {
        i += 1;
        let body = json!({"name": format!("Load {writer}-{i}"), "email": format!("load-{writer}-{i}@example.com")});
        let reply = client
            .post(format!("{base}/api/users"))
            .insert_header(("Authorization", format!("Bearer {TOKEN}")))
            .insert_header(("Content-Type", "application/json"))
            .send_bytes(&serde_json::to_vec(&body).expect("json"))
            .await;
        assert_eq!(reply.status, 201, "create under load: {}", reply.text());
        let created = reply.json();
        ledger.borrow_mut().acked.push(created.clone());
        if i % 3 == 0 {
            let id = created["id"].as_i64().expect("id");
            let reply = client
                .patch(format!("{base}/api/users/{id}"))
                .insert_header(("Authorization", format!("Bearer {TOKEN}")))
                .insert_header(("Content-Type", "application/json"))
                .send_bytes(
                    &serde_json::to_vec(&json!({"name": format!("Renamed {writer}-{i}")}))
                        .expect("json"),
                )
                .await;
            assert_eq!(reply.status, 200, "rename under load: {}", reply.text());
            ledger.borrow_mut().acked.push(reply.json());
        }
    }
}

/// Runs `during` while two writers load `app`; returns how many acknowledgements had arrived when
/// `during` began, and the whole ledger once the writers have stopped (every request answered).
async fn under_write_load<F, Fut, T>(
    app: &TestApp,
    warm_up: Duration,
    during: F,
) -> (usize, Vec<Value>, T)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let ledger = Rc::new(RefCell::new(Ledger::default()));
    let stop = Rc::new(RefCell::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            actix_web::rt::spawn(write_load(
                app.address.clone(),
                w,
                ledger.clone(),
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(warm_up).await;
    let before = ledger.borrow().acked.len();
    assert!(
        before > 10,
        "the load made only {before} writes before the backup"
    );
    let result = during().await;
    // Keep writing after the backup: those writes must not break anything.
    tokio::time::sleep(Duration::from_millis(300)).await;
    *stop.borrow_mut() = true;
    for writer in writers {
        writer.await.expect("writer");
    }
    let acked = std::mem::take(&mut ledger.borrow_mut().acked);
    assert!(acked.len() > before, "no write after the backup started");
    (before, acked, result)
}

/// Every acknowledgement before `before` is in `restored` (as acknowledged, or as acknowledged by
/// a later write), and every restored row is one the service acknowledged: no lost, torn or
/// phantom rows.
async fn check_restored(restored: &TestApp, acked: &[Value], before: usize) {
    let mut rows = Vec::new();
    let mut after = 0i64;
    loop {
        let page = restored
            .get(&format!("/api/users?limit=100&cursor={after}"))
            .await;
        assert_eq!(page.status, 200, "{}", page.text());
        let page = page.json();
        rows.extend(page["items"].as_array().expect("items").iter().cloned());
        match page["next_cursor"].as_i64() {
            Some(cursor) => after = cursor,
            None => break,
        }
    }
    let restored_by_id: BTreeMap<i64, &Value> = rows
        .iter()
        .map(|u| (u["id"].as_i64().expect("id"), u))
        .collect();
    assert_eq!(restored_by_id.len(), rows.len(), "an id appears twice");
    let every_state: HashSet<String> = acked.iter().map(Value::to_string).collect();
    for row in &rows {
        assert!(
            every_state.contains(&row.to_string()),
            "restored row {row} was never acknowledged"
        );
    }
    // The newest state of each id acknowledged before the backup, and the states acknowledged after.
    let mut expected: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for (i, state) in acked.iter().enumerate() {
        let id = state["id"].as_i64().expect("id");
        let states = expected.entry(id).or_default();
        if i < before {
            states.clear();
        }
        states.push(state.to_string());
    }
    let mut checked = 0;
    for (index, state) in acked[..before].iter().enumerate() {
        let id = state["id"].as_i64().expect("id");
        let row = restored_by_id.get(&id).unwrap_or_else(|| {
            panic!("write #{index} (user {id}) was acknowledged before the backup and is lost")
        });
        assert!(
            expected[&id].contains(&row.to_string()),
            "user {id} restored as {row}, acknowledged before the backup as {}",
            expected[&id][0]
        );
        checked += 1;
    }
    assert_eq!(checked, before);
}

/// The load generator is one client: the per-client rate limit would refuse it.
const NO_RATE_LIMIT: &[(&str, &str)] = &[("RATE_LIMIT_PER_SECOND", "0")];

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}/app.db", dir.display())
}

#[actix_web::test]
async fn sqlite_backup_under_write_load_restores_every_acknowledged_write() {
    let app = spawn_app_with(Backend::Sqlite, NO_RATE_LIMIT).await;
    let backups = tempfile::tempdir().expect("tempdir");
    // An unrelated file in the backup directory must survive retention.
    std::fs::write(backups.path().join("notes.txt"), "keep me").expect("write");
    let dir = backups.path().to_str().expect("utf-8").to_string();
    let env = [("DATABASE_URL", app.database_url.as_str())];

    assert_eq!(
        app.metric_value("app_backup_last_success_timestamp_seconds", &[])
            .await,
        Some(0.0),
        "no backup recorded yet"
    );
    let started = time::OffsetDateTime::now_utc().unix_timestamp();
    let args = ["backup", "--dir", dir.as_str(), "--keep", "2"];
    let (before, acked, run) =
        under_write_load(&app, Duration::from_millis(700), || run_cli(&args, &env)).await;
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let line = run.event("backup_completed");
    let path = PathBuf::from(line["path"].as_str().expect("path"));
    assert_eq!(path.parent(), Some(backups.path()));
    assert!(path.is_file());

    // The service reads the record the backup wrote.
    let recorded = app
        .metric_value("app_backup_last_success_timestamp_seconds", &[])
        .await
        .expect("exported on SQLite");
    assert!(
        recorded >= started as f64
            && recorded <= time::OffsetDateTime::now_utc().unix_timestamp() as f64,
        "recorded {recorded}, started {started}"
    );

    // Restore into a fresh instance and read everything back through the API.
    let fresh = tempfile::tempdir().expect("tempdir");
    let fresh_url = sqlite_url(fresh.path());
    let restore = run_cli(
        &["restore", "--from", path.to_str().expect("utf-8")],
        &[("DATABASE_URL", fresh_url.as_str())],
    )
    .await;
    assert_eq!(
        restore.code,
        Some(0),
        "{}{}",
        restore.stdout,
        restore.stderr
    );
    assert_eq!(restore.event("restored")["previous_kept_as"], Value::Null);
    let restored = spawn_app_on(fresh_url, fresh, &[]).await;
    check_restored(&restored, &acked, before).await;

    // Retention: two more backups with --keep 2 leave the newest two, and nothing else is touched.
    for _ in 0..2 {
        let run = run_cli(&["backup", "--dir", &dir, "--keep", "2"], &env).await;
        assert_eq!(run.code, Some(0), "{}", run.stderr);
    }
    let mut names: Vec<String> = std::fs::read_dir(backups.path())
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(names[2], "notes.txt");
    assert!(!names.contains(
        &path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned()
    ));
}

#[actix_web::test]
async fn sqlite_backup_to_a_file_refuses_the_database_itself_and_a_database_not_migrated() {
    let app = spawn_app(Backend::Sqlite).await;
    app.create_user("A", "a@example.com").await;
    let database = app.database_url.trim_start_matches("sqlite://").to_string();
    let env = [("DATABASE_URL", app.database_url.as_str())];
    for target in [database.clone(), format!("{database}-wal")] {
        let run = run_cli(&["backup", "--to", &target], &env).await;
        assert_eq!(run.code, Some(2), "{target}: {}", run.stderr);
        assert!(run.stderr.contains("own file"), "{}", run.stderr);
    }
    let missing_dir = run_cli(&["backup", "--to", "/nonexistent/dir/b.db"], &env).await;
    assert_eq!(missing_dir.code, Some(2), "{}", missing_dir.stderr);
    assert!(
        missing_dir.stderr.contains("/nonexistent/dir"),
        "{}",
        missing_dir.stderr
    );
    assert_eq!(
        app.get("/api/users").await.json()["items"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // --to replaces an existing file atomically, and the copy restores.
    let out = tempfile::tempdir().expect("tempdir");
    let target = out.path().join("latest.db");
    std::fs::write(&target, "an older backup").expect("write");
    let run = run_cli(&["backup", "--to", target.to_str().expect("utf-8")], &env).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.event("backup_completed")["users"], 1);
    let leftovers: Vec<_> = std::fs::read_dir(out.path())
        .expect("read dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "temporary files left: {leftovers:?}");

    // A database file nobody migrated is not backed up (and not created by the attempt).
    let empty = tempfile::tempdir().expect("tempdir");
    let nothing = run_cli(
        &[
            "backup",
            "--to",
            out.path().join("x.db").to_str().expect("utf-8"),
        ],
        &[("DATABASE_URL", &sqlite_url(empty.path()))],
    )
    .await;
    assert_eq!(nothing.code, Some(1), "{}", nothing.stderr);
    assert!(
        nothing.stderr.contains("no database at"),
        "{}",
        nothing.stderr
    );
    assert!(!empty.path().join("app.db").exists());
}

/// A stopped database with `users` users, made by the real binary's migrate.
async fn stopped_database(dir: &Path, users: usize) -> PathBuf {
    let url = sqlite_url(dir);
    let run = run_cli(&["migrate"], &[("DATABASE_URL", url.as_str())]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("connect");
    for i in 0..users {
        sqlx::query("INSERT INTO users (name, email, email_key, created_at, updated_at) VALUES ($1, $2, $2, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')")
            .bind(format!("Stopped {i}"))
            .bind(format!("stopped-{i}@example.com"))
            .execute(&mut conn)
            .await
            .expect("insert");
    }
    conn.close().await.expect("close");
    dir.join("app.db")
}

/// The bytes of every file in `dir`, to show a refused restore changed nothing.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry"))
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .map(|e| {
            (
                e.file_name().into_string().expect("utf-8"),
                std::fs::read(e.path()).expect("read"),
            )
        })
        .collect()
}

#[actix_web::test]
async fn restore_refuses_damaged_backups_and_changes_nothing() {
    let source = tempfile::tempdir().expect("tempdir");
    let good = stopped_database(source.path(), 300).await;
    let good_bytes = std::fs::read(&good).expect("read");
    assert!(
        good_bytes.len() > 8 * 4096,
        "the test database is too small to cut"
    );
    let page = usize::from(u16::from_be_bytes([good_bytes[16], good_bytes[17]]));

    let target = tempfile::tempdir().expect("tempdir");
    let database = stopped_database(target.path(), 2).await;
    let url = sqlite_url(target.path());
    let before = snapshot(target.path());

    let damaged = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, bytes: &[u8]| {
        let path = damaged.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        path
    };
    let mut flipped = good_bytes.clone();
    // Overwrite a b-tree page in the middle of the file with garbage.
    let middle = (good_bytes.len() / page / 2) * page;
    for (i, byte) in flipped[middle..middle + page].iter_mut().enumerate() {
        *byte = (i * 7 + 13) as u8;
    }
    let other = damaged.path().join("other.db");
    {
        let mut conn =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", other.display()))
                .await
                .expect("connect");
        sqlx::query("CREATE TABLE t (x)")
            .execute(&mut conn)
            .await
            .expect("create");
        conn.close().await.expect("close");
    }
    let newer = damaged.path().join("newer.db");
    std::fs::copy(&good, &newer).expect("copy");
    {
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", newer.display()))
            .await
            .expect("connect");
        sqlx::query("INSERT INTO schema_migrations (version, description, applied_at) VALUES (99, 'future', '2030-01-01T00:00:00Z')")
            .execute(&mut conn)
            .await
            .expect("insert");
        sqlx::query("PRAGMA journal_mode = DELETE")
            .execute(&mut conn)
            .await
            .expect("pragma");
        conn.close().await.expect("close");
    }
    let cases: Vec<(PathBuf, &str)> = vec![
        (
            write("half.db", &good_bytes[..good_bytes.len() / 2]),
            "truncated",
        ),
        (
            write("one-page-short.db", &good_bytes[..good_bytes.len() - page]),
            "truncated",
        ),
        (
            write("odd-size.db", &good_bytes[..good_bytes.len() - 100]),
            "truncated",
        ),
        (
            write("header-only.db", &good_bytes[..50]),
            "not an SQLite database",
        ),
        (write("flipped.db", &flipped), "integrity"),
        (write("garbage.db", &[0x42; 8192]), "not an SQLite database"),
        (write("empty.db", b""), "empty"),
        (other, "not a devsecops-app database"),
        (newer, "newer than this build"),
    ];
    for (path, reason) in &cases {
        let run = run_cli(
            &["restore", "--from", path.to_str().expect("utf-8")],
            &[("DATABASE_URL", url.as_str())],
        )
        .await;
        assert_eq!(
            run.code,
            Some(1),
            "{}: {}{}",
            path.display(),
            run.stdout,
            run.stderr
        );
        assert!(
            run.stderr.contains(path.to_str().expect("utf-8")) && run.stderr.contains(reason),
            "{}: expected {reason:?} in {}",
            path.display(),
            run.stderr
        );
        assert!(run.stderr.contains("nothing was changed"), "{}", run.stderr);
        assert_eq!(
            snapshot(target.path()),
            before,
            "{}: the target directory changed",
            path.display()
        );
    }
    let directory = run_cli(
        &["restore", "--from", damaged.path().to_str().expect("utf-8")],
        &[("DATABASE_URL", url.as_str())],
    )
    .await;
    assert_eq!(directory.code, Some(2), "{}", directory.stderr);
    assert_eq!(snapshot(target.path()), before);

    // The good one is restored, and the database it replaced is kept beside it.
    let run = run_cli(
        &["restore", "--from", good.to_str().expect("utf-8")],
        &[("DATABASE_URL", url.as_str())],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let line = run.event("restored");
    assert_eq!(line["users"], 300);
    let kept = PathBuf::from(line["previous_kept_as"].as_str().expect("kept"));
    assert_eq!(std::fs::read(&kept).expect("kept"), before["app.db"]);
    assert_eq!(
        std::fs::read(&database).expect("restored").len(),
        good_bytes.len()
    );
    let restored = spawn_app_on(url, target, &[]).await;
    let page = restored.get("/api/users?limit=100").await.json();
    assert_eq!(page["items"][0]["name"], "Stopped 0");
}

#[actix_web::test]
async fn restore_refuses_a_database_in_use_and_serve_waits_for_a_restore() {
    let source = tempfile::tempdir().expect("tempdir");
    let backup = stopped_database(source.path(), 3).await;

    let live = spawn_app(Backend::Sqlite).await;
    live.create_user("Live", "live@example.com").await;
    let database = PathBuf::from(live.database_url.trim_start_matches("sqlite://"));
    let before = std::fs::read(&database).expect("read");
    let run = run_cli(
        &["restore", "--from", backup.to_str().expect("utf-8")],
        &[("DATABASE_URL", live.database_url.as_str())],
    )
    .await;
    assert_eq!(run.code, Some(3), "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("in use"), "{}", run.stderr);
    assert!(run.stderr.contains("stop"), "{}", run.stderr);
    assert_eq!(std::fs::read(&database).expect("read"), before);
    assert_eq!(
        live.get("/api/users").await.json()["items"][0]["name"],
        "Live"
    );

    // While a restore holds the lock, the service does not open the database.
    let restoring = tempfile::tempdir().expect("tempdir");
    let url = sqlite_url(restoring.path());
    let _lock = devsecops_app::backup::DatabaseLock::exclusive(&restoring.path().join("app.db"))
        .expect("lock");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
        .to_string();
    let serve = run_cli(
        &[],
        &[
            ("DATABASE_URL", url.as_str()),
            ("PORT", port.as_str()),
            ("METRICS_PORT", "0"),
        ],
    )
    .await;
    assert_eq!(serve.code, Some(1), "{}{}", serve.stdout, serve.stderr);
    assert!(serve.stderr.contains("restore"), "{}", serve.stderr);
    assert!(
        !restoring.path().join("app.db").exists(),
        "the database was created"
    );
}

/// pg_dump and pg_restore exactly as the documentation gives them (docs/troubleshooting.md).
async fn pg(program: &str, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(program)
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("{program} ({e}): scripts/lib.sh installs PostgreSQL's client tools")
        })
}

#[actix_web::test]
async fn postgres_pg_dump_under_write_load_restores_every_acknowledged_write() {
    let app = spawn_app_with(Backend::Postgres, NO_RATE_LIMIT).await;
    assert_eq!(
        app.metric_value("app_backup_last_success_timestamp_seconds", &[]).await,
        None,
        "PostgreSQL backups are pg_dump's or CloudNativePG's: the service does not export the metric"
    );
    let dumps = tempfile::tempdir().expect("tempdir");
    let dump = dumps.path().join("app.dump");
    let dump_arg = dump.to_str().expect("utf-8").to_string();
    let source = app.database_url.clone();
    let args = [
        "--format=custom",
        "--no-owner",
        "--no-privileges",
        "--file",
        dump_arg.as_str(),
        "--dbname",
        source.as_str(),
    ];
    let (before, acked, output) =
        under_write_load(&app, Duration::from_millis(700), || pg("pg_dump", &args)).await;
    assert!(
        output.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    // A truncated dump is refused by pg_restore and leaves the new database empty.
    let bytes = std::fs::read(&dump).expect("read");
    let truncated = dumps.path().join("truncated.dump");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).expect("write");
    let target = fresh_postgres_database().await;
    let output = pg(
        "pg_restore",
        &[
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--single-transaction",
            "--dbname",
            &target,
            truncated.to_str().expect("utf-8"),
        ],
    )
    .await;
    assert!(
        !output.status.success(),
        "pg_restore accepted a truncated dump"
    );
    let mut conn = sqlx::PgConnection::connect(&target).await.expect("connect");
    let tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(&mut conn)
    .await
    .expect("count");
    assert_eq!(tables, 0, "a refused restore left tables behind");
    conn.close().await.expect("close");

    let output = pg(
        "pg_restore",
        &[
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--single-transaction",
            "--dbname",
            &target,
            &dump_arg,
        ],
    )
    .await;
    assert!(
        output.status.success(),
        "pg_restore: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let restored = spawn_app_on(target, tempfile::tempdir().expect("tempdir"), &[]).await;
    check_restored(&restored, &acked, before).await;
    // The restored database takes writes: its sequences came along.
    assert_eq!(
        restored
            .create_user("After", "after@example.com")
            .await
            .status,
        201
    );
}

/// A service killed with SIGKILL leaves committed writes in its WAL. A restore must not let SQLite
/// replay that WAL into the restored file (it belongs to the old one): it goes aside with the kept
/// copy of the old database, which still opens with every write the killed service confirmed.
#[actix_web::test]
async fn restore_after_a_crash_moves_the_old_wal_aside_with_the_old_database() {
    let source = tempfile::tempdir().expect("tempdir");
    let backup = stopped_database(source.path(), 5).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let url = sqlite_url(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut service = tokio::process::Command::new(env!("CARGO_BIN_EXE_devsecops-app"))
        .env_clear()
        .env("DATABASE_URL", &url)
        .env("PORT", port.to_string())
        .env("METRICS_PORT", "0")
        .env("API_TOKEN", TOKEN)
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the service");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Ok(stream)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(("127.0.0.1", port)),
        )
        .await
        {
            drop(stream);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the service did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let client = HttpClient;
    let mut confirmed = Vec::new();
    for i in 0..20 {
        let reply = client
            .post(format!("{base}/api/users"))
            .insert_header(("Authorization", format!("Bearer {TOKEN}")))
            .insert_header(("Content-Type", "application/json"))
            .send_bytes(
                format!(r#"{{"name":"Crashed {i}","email":"crashed-{i}@example.com"}}"#).as_bytes(),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text());
        confirmed.push(reply.json()["id"].as_i64().expect("id"));
    }
    service.start_kill().expect("SIGKILL");
    service.wait().await.expect("wait");
    let wal = dir.path().join("app.db-wal");
    assert!(
        std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) > 0,
        "the killed service left no WAL: the test proves nothing"
    );

    let run = run_cli(
        &["restore", "--from", backup.to_str().expect("utf-8")],
        &[("DATABASE_URL", url.as_str())],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let kept = PathBuf::from(
        run.event("restored")["previous_kept_as"]
            .as_str()
            .expect("kept"),
    );
    assert!(
        !wal.exists(),
        "the old WAL is still next to the restored database"
    );
    assert!(PathBuf::from(format!("{}-wal", kept.display())).exists());

    // Undoing the restore from the kept file alone would lose what its WAL holds: refused.
    let before = snapshot(dir.path());
    let undo = run_cli(
        &["restore", "--from", kept.to_str().expect("utf-8")],
        &[("DATABASE_URL", url.as_str())],
    )
    .await;
    assert_eq!(undo.code, Some(1), "{}{}", undo.stdout, undo.stderr);
    assert!(
        undo.stderr.contains("not whole without it"),
        "{}",
        undo.stderr
    );
    assert_eq!(
        snapshot(dir.path()),
        before,
        "a refused restore changed files"
    );

    // The restored database is exactly the backup.
    let restored = spawn_app_on(url, dir, &[]).await;
    let page = restored.get("/api/users?limit=100").await.json();
    let names: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|u| u["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "Stopped 0",
            "Stopped 1",
            "Stopped 2",
            "Stopped 3",
            "Stopped 4"
        ]
    );
    // The old database, with its WAL, still has every write the killed service confirmed.
    let mut old = sqlx::SqliteConnection::connect(&format!("sqlite://{}", kept.display()))
        .await
        .expect("open the kept database");
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM users ORDER BY id")
        .fetch_all(&mut old)
        .await
        .expect("read");
    assert_eq!(ids, confirmed);
    old.close().await.expect("close");
}

/// `restore` in a shell without the service's settings would create a database nobody reads at the
/// default path and report success: refused, nothing created.
#[actix_web::test]
async fn restore_without_database_url_and_no_database_is_refused() {
    let source = tempfile::tempdir().expect("tempdir");
    let backup = stopped_database(source.path(), 1).await;
    let cwd = tempfile::tempdir().expect("tempdir");
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_devsecops-app"));
    let output = command
        .args(["restore", "--from", backup.to_str().expect("utf-8")])
        .env_clear()
        .current_dir(cwd.path())
        .output()
        .await
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("DATABASE_URL is unset"), "{stderr}");
    assert!(!cwd.path().join("data").exists(), "a database was created");
}

/// A restored database holds the record of the backup it came from, so the newest backup the
/// service reports does not go back one period (the backup-age alert would fire after a routine
/// restore).
#[actix_web::test]
async fn a_restored_database_records_the_backup_it_came_from() {
    let source = tempfile::tempdir().expect("tempdir");
    stopped_database(source.path(), 2).await;
    let source_url = sqlite_url(source.path());
    let backups = tempfile::tempdir().expect("tempdir");
    let target = backups.path().join("b.db");
    let run = run_cli(
        &["backup", "--to", target.to_str().expect("utf-8")],
        &[("DATABASE_URL", source_url.as_str())],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let written = time::OffsetDateTime::from(
        std::fs::metadata(&target)
            .and_then(|m| m.modified())
            .expect("mtime"),
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let url = sqlite_url(dir.path());
    let run = run_cli(
        &["restore", "--from", target.to_str().expect("utf-8")],
        &[("DATABASE_URL", url.as_str())],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("connect");
    let (taken_at, path): (time::OffsetDateTime, String) =
        sqlx::query_as("SELECT taken_at, path FROM backups ORDER BY id DESC LIMIT 1")
            .fetch_one(&mut conn)
            .await
            .expect("the restored backup's record");
    conn.close().await.expect("close");
    assert_eq!(path, target.to_string_lossy());
    assert!(
        (taken_at - written).abs() < time::Duration::seconds(1),
        "{taken_at} vs {written}"
    );
}

/// A backup stopped by SIGTERM (a Job's deadline, an eviction) deletes its unfinished copy, as
/// large as the database; copies SIGKILL left are deleted by the next backup once abandoned; a
/// file with a backup's name that is not a database is neither counted nor deleted.
#[actix_web::test]
async fn interrupted_backups_leave_no_copies_and_retention_counts_only_databases() {
    let source = tempfile::tempdir().expect("tempdir");
    stopped_database(source.path(), 0).await;
    let url = sqlite_url(source.path());
    {
        let mut conn = sqlx::SqliteConnection::connect(&url)
            .await
            .expect("connect");
        // Large enough (about 100 MB) that the copy is still being written when the signal comes.
        sqlx::query("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400000) INSERT INTO users (name, email, email_key, created_at, updated_at) SELECT printf('User %d %s', i, hex(randomblob(100))), printf('u%d@example.com', i), printf('u%d@example.com', i), '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z' FROM n")
            .execute(&mut conn)
            .await
            .expect("fill");
        conn.close().await.expect("close");
    }
    let backups = tempfile::tempdir().expect("tempdir");
    let dir = backups.path().to_str().expect("utf-8").to_string();
    let partials = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .expect("read dir")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.contains(".partial-"))
            .collect()
    };

    let mut backup = tokio::process::Command::new(env!("CARGO_BIN_EXE_devsecops-app"))
        .args(["backup", "--dir", &dir, "--keep", "1"])
        .env_clear()
        .env("DATABASE_URL", &url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the backup");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while partials(backups.path()).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no unfinished copy appeared"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pid = backup.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = backup.wait().await.expect("wait");
    assert_eq!(status.code(), Some(1), "{status:?}");
    assert_eq!(partials(backups.path()), Vec::<String>::new());

    // What SIGKILL leaves, abandoned two hours ago; and junk under a backup's name.
    let abandoned = backups
        .path()
        .join(".devsecops-app-20200101T000000.000Z.db.partial-4242");
    std::fs::write(&abandoned, b"half a copy").expect("write");
    std::fs::File::options()
        .write(true)
        .open(&abandoned)
        .and_then(|f| f.set_modified(std::time::SystemTime::now() - Duration::from_secs(7_200)))
        .expect("age the abandoned copy");
    let junk = backups.path().join("devsecops-app-20991231T000000.000Z.db");
    std::fs::write(&junk, b"garbage").expect("write");
    for _ in 0..2 {
        let run = run_cli(
            &["backup", "--dir", &dir, "--keep", "1"],
            &[("DATABASE_URL", url.as_str())],
        )
        .await;
        assert_eq!(run.code, Some(0), "{}", run.stderr);
    }
    assert!(!abandoned.exists(), "the abandoned copy is still there");
    assert!(junk.exists(), "a file that is not a backup was deleted");
    let databases: Vec<String> = std::fs::read_dir(backups.path())
        .expect("read dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| {
            n.starts_with("devsecops-app-") && n.as_str() != "devsecops-app-20991231T000000.000Z.db"
        })
        .collect();
    assert_eq!(
        databases.len(),
        1,
        "--keep 1 keeps one real backup: {databases:?}"
    );
}
