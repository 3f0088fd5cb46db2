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
    /// The internal listener: metrics, diagnostics, API description.
    pub internal_address: String,
    pub client: HttpClient,
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

/// Starts the service on `database_url` and waits until it is ready (PostgreSQL migrates in the
/// background).
pub async fn spawn_app_on(
    database_url: String,
    dir: tempfile::TempDir,
    overrides: &[(&str, &str)],
) -> TestApp {
    let app = start_app_on(database_url, dir, overrides).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !app.state.db.is_migrated() {
        assert!(
            std::time::Instant::now() < deadline,
            "the service did not migrate its database within 20 s: {}",
            app.logs.text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    app
}

/// Starts the service without waiting for its database.
pub async fn start_app_on(
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
        ("METRICS_PORT", "0"),
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
    let metrics_port = app.metrics_port();
    let state = app.state();
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        internal_address: format!("http://127.0.0.1:{metrics_port}"),
        client: HttpClient,
        logs,
        state,
        database_url,
        _dir: dir,
    }
}

/// A deliberately small HTTP/1.1 client (one connection per request, `Connection: close`): the tests
/// see exactly the bytes the service sends, and the dependency tree stays free of an HTTP/2 stack.
#[derive(Clone, Copy)]
pub struct HttpClient;

impl HttpClient {
    pub fn request(&self, method: &str, url: String) -> Request {
        Request {
            method: method.to_string(),
            url,
            headers: Vec::new(),
        }
    }
    pub fn get(&self, url: String) -> Request {
        self.request("GET", url)
    }
    pub fn post(&self, url: String) -> Request {
        self.request("POST", url)
    }
    pub fn put(&self, url: String) -> Request {
        self.request("PUT", url)
    }
    pub fn patch(&self, url: String) -> Request {
        self.request("PATCH", url)
    }
    pub fn delete(&self, url: String) -> Request {
        self.request("DELETE", url)
    }
}

pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
}

impl Request {
    pub fn insert_header<K: Into<String>, V: Into<String>>(
        mut self,
        (name, value): (K, V),
    ) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sends the request with `body` and reads the whole response.
    pub async fn send_bytes(self, body: &[u8]) -> Reply {
        tokio::time::timeout(std::time::Duration::from_secs(30), self.exchange(body))
            .await
            .expect("the service answered within 30 s")
            .unwrap_or_else(|e| panic!("HTTP exchange failed: {e}"))
    }

    async fn exchange(self, body: &[u8]) -> std::io::Result<Reply> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let rest = self.url.strip_prefix("http://").expect("http URL");
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let path = if path.is_empty() { "/" } else { path };
        let mut head = format!(
            "{} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.method,
            body.len()
        );
        if !self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
        {
            head.push_str("User-Agent: api-tests\r\n");
        }
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut stream = tokio::net::TcpStream::connect(authority).await?;
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Reply::parse(&raw)
    }
}

/// A response read whole.
pub struct Reply {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Reply {
    fn parse(raw: &[u8]) -> std::io::Result<Reply> {
        let invalid = |what: &str| {
            std::io::Error::other(format!("{what}: {:?}", String::from_utf8_lossy(raw)))
        };
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| invalid("no header end"))?;
        let head = std::str::from_utf8(&raw[..split]).map_err(|_| invalid("head not UTF-8"))?;
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid("no status"))?;
        let mut headers = HashMap::new();
        for line in lines {
            if let Some((k, v)) = line.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let mut body = raw[split + 4..].to_vec();
        if headers
            .get("transfer-encoding")
            .is_some_and(|v| v.contains("chunked"))
        {
            body = dechunk(&body).ok_or_else(|| invalid("bad chunked body"))?;
        }
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

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
        self.headers.get(&name.to_ascii_lowercase()).cloned()
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

    /// A URL on the internal listener.
    pub fn internal_url(&self, path: &str) -> String {
        format!("{}{}", self.internal_address, path)
    }

    /// Sends `req`, with `body` as JSON when given.
    pub async fn send(&self, req: Request, body: Option<Value>) -> Reply {
        match body {
            Some(body) => {
                let bytes = serde_json::to_vec(&body).expect("serialize");
                req.insert_header(("Content-Type", "application/json"))
                    .send_bytes(&bytes)
                    .await
            }
            None => req.send_bytes(b"").await,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.client.get(self.url(path)), None).await
    }

    pub fn authed(&self, req: Request) -> Request {
        req.insert_header(("Authorization", format!("Bearer {TOKEN}")))
    }

    pub async fn create_user(&self, name: &str, email: &str) -> Reply {
        let req = self.authed(self.client.post(self.url("/api/users")));
        self.send(req, Some(serde_json::json!({"name": name, "email": email})))
            .await
    }

    pub async fn metrics(&self) -> String {
        let reply = self
            .send(self.client.get(self.internal_url("/metrics")), None)
            .await;
        assert_eq!(reply.status, 200, "metrics: {}", reply.text());
        reply.text()
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

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// Sends raw bytes on a new connection to `address` (`host:port`) and reads until the server
/// closes it (at most 10 s): for requests no well-behaved client would send.
pub async fn raw_exchange(address: &str, bytes: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = address.strip_prefix("http://").unwrap_or(address);
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .expect("connect");
    stream.write_all(bytes).await.expect("write");
    let mut response = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut response),
    )
    .await;
    response
}

/// What a run of the real binary printed, and how it exited.
pub struct CliRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CliRun {
    /// The JSON log lines on stdout.
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The one stdout line with this `event`.
    pub fn event(&self, event: &str) -> Value {
        self.json_lines()
            .into_iter()
            .find(|l| l["event"] == event)
            .unwrap_or_else(|| panic!("no {event} line: {} / {}", self.stdout, self.stderr))
    }
}

/// Runs the real `devsecops-app` with `args` and only the environment given (no inherited
/// variables); a run that takes over 60 s is killed and fails the test.
pub async fn run_cli(args: &[&str], env: &[(&str, &str)]) -> CliRun {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_devsecops-app"));
    command
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().expect("start the binary");
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("devsecops-app {args:?} did not exit within 60 s"))
        .expect("output");
    CliRun {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
