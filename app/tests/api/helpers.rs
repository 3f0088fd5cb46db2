//! Test harness: spawns the service on a random port with a fresh database per test, on SQLite or on
//! the real PostgreSQL the test command starts (`TEST_POSTGRES_URL`).

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::web;
use devsecops_app::configuration::{Settings, Source};
use devsecops_app::startup::Application;
use devsecops_app::state::AppState;
use devsecops_app::telemetry::{self, SharedBuffer};
use serde_json::Value;
use sqlx::Connection;

pub const TOKEN: &str = "integration-test-token-0123456789abcdef";
const DEFAULT_POSTGRES_URL: &str =
    "postgres://devsecops_test:devsecops_test@127.0.0.1:5432/postgres";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one test per backend for each `async fn name(backend: Backend)` listed:
/// `mod sqlite { fn name() }` and `mod postgres { fn name() }`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )+
        }
        mod postgres {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            )+
        }
    };
}

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: awc::Client,
    pub logs: SharedBuffer,
    pub state: web::Data<AppState>,
    pub database_url: String,
    _dir: tempfile::TempDir,
}

pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string())
}

/// Creates an empty PostgreSQL database and returns its URL.
pub async fn fresh_postgres_database() -> String {
    let admin = postgres_admin_url();
    let name = format!("test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable at TEST_POSTGRES_URL ({e}); scripts/test.sh installs and starts it"
        )
    });
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let base = admin.rsplit_once('/').expect("URL has a database").0;
    format!("{base}/{name}")
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[]).await
}

/// Starts the service with the test defaults, overridden by `overrides` (environment variable names).
pub async fn spawn_app_with(backend: Backend, overrides: &[(&str, &str)]) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let database_url = match backend {
        Backend::Sqlite => format!("sqlite://{}/app.db", dir.path().display()),
        Backend::Postgres => fresh_postgres_database().await,
    };
    spawn_app_on(database_url, dir, overrides).await
}

pub async fn spawn_app_on(
    database_url: String,
    dir: tempfile::TempDir,
    overrides: &[(&str, &str)],
) -> TestApp {
    let mut env: HashMap<String, String> = [
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("API_TOKEN", TOKEN),
        ("WORKERS", "1"),
        ("LOG_LEVEL", "debug"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.insert("DATABASE_URL".into(), database_url.clone());
    for (k, v) in overrides {
        env.insert(k.to_string(), v.to_string());
    }
    let settings = Settings::from_source(&Source::from_map(env)).expect("valid test settings");
    let logs = SharedBuffer::default();
    let logger = telemetry::logger(Box::new(logs.clone()), settings.log_level);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a random port");
    let app = Application::build_with_listener(settings, logger, listener)
        .await
        .expect("the application starts");
    let port = app.port();
    let state = app.state();
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        client: awc::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .finish(),
        logs,
        state,
        database_url,
        _dir: dir,
    }
}

/// A response read whole.
pub struct Reply {
    pub status: u16,
    pub headers: awc::http::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
    /// Asserts an RFC 9457 problem with this status and returns its body.
    pub fn problem(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("application/problem+json"),
            "problem content type for {status}"
        );
        let body = self.json();
        assert_eq!(body["status"], status);
        assert!(body["title"].is_string(), "title: {body}");
        assert!(body["type"].is_string(), "type: {body}");
        let text = body.to_string().to_lowercase();
        for leak in [
            "sqlx",
            "panicked",
            "src/",
            "backtrace",
            "error returned from database",
        ] {
            assert!(
                !text.contains(leak),
                "internal detail {leak:?} leaked: {body}"
            );
        }
        body
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn send(&self, req: awc::ClientRequest, body: Option<Value>) -> Reply {
        let result = match body {
            Some(body) => req.send_json(&body).await,
            None => req.send().await,
        };
        let mut response = result.expect("request sent");
        let body = response
            .body()
            .limit(16 * 1024 * 1024)
            .await
            .expect("body read");
        Reply {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: body.to_vec(),
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.client.get(self.url(path)), None).await
    }

    pub fn authed(&self, req: awc::ClientRequest) -> awc::ClientRequest {
        req.insert_header(("Authorization", format!("Bearer {TOKEN}")))
    }

    pub async fn create_user(&self, name: &str, email: &str) -> Reply {
        let req = self.authed(self.client.post(self.url("/api/users")));
        self.send(req, Some(serde_json::json!({"name": name, "email": email})))
            .await
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.text()
    }

    /// The value of one sample in the exposition text, e.g. `http_requests_total{...}`.
    pub async fn metric_value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        sample_value(&self.metrics().await, name, labels)
    }
}

/// Finds the sample of `name` whose labels include all of `labels`.
pub fn sample_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A TCP proxy between the service and PostgreSQL that a test can cut, to simulate outages.
pub struct Proxy {
    pub port: u16,
    mode: Arc<Mutex<ProxyMode>>,
    connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    freeze: tokio::sync::watch::Sender<bool>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ProxyMode {
    /// Forward traffic.
    Open,
    /// Close every connection and refuse new ones at once: the database host is down.
    Reset,
    /// Stop moving bytes but keep sockets open, and accept new ones that never answer: a partition.
    Blackhole,
}

impl Proxy {
    pub async fn start(target: std::net::SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let mode = Arc::new(Mutex::new(ProxyMode::Open));
        let connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (freeze, frozen) = tokio::sync::watch::channel(false);
        let (accept_mode, accept_connections) = (mode.clone(), connections.clone());
        actix_web::rt::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let current = *accept_mode.lock().expect("mode lock");
                let mut frozen = frozen.clone();
                let task = match current {
                    ProxyMode::Reset => {
                        drop(inbound);
                        continue;
                    }
                    ProxyMode::Blackhole => actix_web::rt::spawn(async move {
                        let _held = inbound;
                        std::future::pending::<()>().await;
                    }),
                    ProxyMode::Open => actix_web::rt::spawn(async move {
                        let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                            return;
                        };
                        // The watch guard must not outlive the wait: `send` would block on it.
                        let partitioned = async move {
                            let _ = frozen.wait_for(|f| *f).await.map(|_| ());
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = partitioned => {
                                // Partition: hold both sockets open and silent until aborted.
                                std::future::pending::<()>().await;
                            }
                        }
                    }),
                };
                accept_connections
                    .lock()
                    .expect("connections lock")
                    .push(task);
            }
        });
        Proxy {
            port,
            mode,
            connections,
            freeze,
        }
    }

    pub fn set_mode(&self, mode: ProxyMode) {
        *self.mode.lock().expect("mode lock") = mode;
        match mode {
            ProxyMode::Blackhole => {
                let _ = self.freeze.send(true);
            }
            ProxyMode::Reset | ProxyMode::Open => {
                // Reset kills live connections; Open after a partition drops the frozen ones, as a
                // healed network would find them dead.
                for task in self.connections.lock().expect("connections lock").drain(..) {
                    task.abort();
                }
                let _ = self.freeze.send(false);
            }
        }
    }
}
