//! The default target: the service itself, started in this process on a free loopback port with a
//! fresh SQLite database, so `cargo run -p loadtest` needs nothing else.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use devsecops_app::configuration::{Settings, Source};
use devsecops_app::startup::Application;
use devsecops_app::telemetry;

/// Users created before the load starts, so browsing has two pages to walk from the first second.
pub const SEED_USERS: usize = 30;

pub struct LocalService {
    pub url: String,
    pub token: String,
    /// Holds the database; removed when the run ends.
    _dir: tempfile::TempDir,
}

/// Starts the service with production settings (a fresh random token, rate limiting off: every
/// simulated user shares one address) and its JSON log written to `log_path`.
pub fn start(workers: usize, log_path: &Path) -> Result<LocalService, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let env: HashMap<String, String> = [
        ("HOST", "127.0.0.1".to_string()),
        ("PORT", "0".to_string()),
        // The internal listener (metrics) on a free port too: runs side by side must not collide.
        ("METRICS_PORT", "0".to_string()),
        ("APP_ENV", "production".to_string()),
        ("API_TOKEN", token.clone()),
        ("WORKERS", workers.to_string()),
        ("RATE_LIMIT_PER_SECOND", "0".to_string()),
        (
            "DATABASE_URL",
            format!("sqlite://{}/loadtest.db", dir.path().display()),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let settings = Settings::from_source(&Source::from_map(env)).map_err(|e| e.to_string())?;
    let log = std::fs::File::create(log_path)
        .map_err(|e| format!("service log {}: {e}", log_path.display()))?;
    let logger = telemetry::logger(Box::new(log), settings.log_level);
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("listener address: {e}"))?
        .port();

    // The service runs on its own actix system in its own thread; it ends with the process.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("service".into())
        .spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                match Application::build_with_listener(settings, logger, listener).await {
                    Ok(app) => {
                        let _ = ready_tx.send(Ok(()));
                        let _ = app.run_until_stopped().await;
                    }
                    Err(err) => {
                        let _ = ready_tx.send(Err(err.to_string()));
                    }
                }
            })
        })
        .map_err(|e| format!("service thread: {e}"))?;
    ready_rx
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| "the service did not start within 30 s".to_string())??;

    let url = format!("http://127.0.0.1:{port}");
    for n in 0..SEED_USERS {
        let body = format!(r#"{{"name":"Seed {n}","email":"seed-{n}@example.com"}}"#);
        let status =
            post(port, "/api/users", &token, &body).map_err(|e| format!("seeding users: {e}"))?;
        if status != 201 {
            return Err(format!("seeding users: POST /api/users answered {status}"));
        }
    }
    Ok(LocalService {
        url,
        token,
        _dir: dir,
    })
}

/// One POST with `Connection: close`; returns the status code.
fn post(port: u16, path: &str, token: &str, body: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {response:.80}")))
}
