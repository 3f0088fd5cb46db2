//! Settings from the environment (12-factor), optionally layered over a TOML file.
//!
//! Precedence: environment variable > `CONFIG_FILE` (TOML, same names in lower case) > built-in default.
//! Everything is validated once at start; a bad value stops the process with a message naming the
//! variable, never later at request time.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

/// The token the development defaults use. Production refuses it.
pub const DEVELOPMENT_TOKEN: &str = "development-only-token";
/// The source named for the database when neither DATABASE_URL nor DATABASE_URL_FILE is set.
pub const DEFAULT_DATABASE_SOURCE: &str =
    "DATABASE_URL (unset: the default sqlite://data/devsecops-app.db)";
/// Minimum length of an API token in production.
pub const MIN_PRODUCTION_TOKEN_LEN: usize = 32;
/// Longest production token accepted: scoring grows with the square of the length (0.5 s at 1,000
/// characters, minutes at 16,000), and start-up must not wait on it. `openssl rand -hex 32` gives 64.
pub const MAX_PRODUCTION_TOKEN_LEN: usize = 512;
/// Minimum strength of a production token, as log10 of the guesses zxcvbn estimates (see
/// [`token_strength_log10`]). Tokens of the documented generator, `openssl rand -hex 32`, never
/// scored below 55 in 3,000 draws; 128 random bits (32 hex characters) score 29 on median and
/// below 26 in 2 of 20,000 draws, which are refused with the advice to use the generator.
pub const MIN_PRODUCTION_TOKEN_STRENGTH: f64 = 26.0;
/// Bounds that keep a typo from starting a service that cannot work: thousands of worker threads
/// exhaust memory at start; a header limit below what probes and scrapers send answers them all
/// 431; a shutdown bound of days never ends.
const MAX_WORKERS: usize = 256;
const MIN_HEADER_BYTES: usize = 1024;
/// actix-http refuses heads over 128 KiB itself.
const MAX_HEADER_BYTES: usize = 128 * 1024;
const MAX_SHUTDOWN: Duration = Duration::from_secs(600);

/// The default port of the internal listener (metrics, diagnostics, API description).
pub const DEFAULT_METRICS_PORT: u16 = 9464;

/// Which forwarding header the trusted proxies write. Only that one is read: a client can send the
/// other, and a proxy that does not know it passes it through untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`
    Forwarded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Production => "production",
        }
    }
}

/// A secret that never prints itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    pub database_url: Secret,
    /// Where the database URL came from (`DATABASE_URL` or `DATABASE_URL_FILE (path)`), for errors.
    pub database_url_source: String,
    pub api_token: Secret,
    pub environment: Environment,
    pub debug: bool,
    pub log_level: slog::Level,
    /// How log lines are written (`LOG_WRITE`): group commit per worker turn, or one write each.
    pub log_write: crate::telemetry::LogWrite,
    pub workers: usize,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Largest accepted sum of request header names and values, in bytes.
    pub max_header_bytes: usize,
    /// Time allowed to read a request's head; slow clients are cut off after it.
    pub header_read_timeout: Duration,
    /// Time allowed for one request, handler included.
    pub request_timeout: Duration,
    pub keep_alive: Duration,
    /// Concurrent connections per worker.
    pub max_connections: usize,
    /// Requests per second per client, and the burst it may spend at once. 0 turns limiting off.
    pub rate_limit_per_second: u32,
    pub rate_limit_burst: u32,
    /// Proxies whose forwarding header is believed; empty: the client is the TCP peer.
    pub trusted_proxies: Vec<IpNet>,
    /// The header the trusted proxies write.
    pub forwarded_header: ForwardedHeader,
    /// How many hops of that header, from the right, are walked at most: the number of proxies
    /// in front of the service that append to it.
    pub forwarded_hops: usize,
    /// The internal listener for `/metrics`, `/debug/memory` and `/openapi.json`.
    pub metrics_host: String,
    pub metrics_port: u16,
    /// Whether the public listener serves `/openapi.json` too.
    pub openapi_public: bool,
    /// Where the API token came from, for the start-up log (never the token itself).
    pub api_token_source: String,
    /// Readiness turns 503 at SIGTERM; the listener keeps serving for this long so load balancers notice.
    pub shutdown_delay: Duration,
    /// Upper bound for draining in-flight requests after the listener stops.
    pub shutdown_timeout: Duration,
    pub hsts_max_age: Option<u64>,
    pub db_max_connections: u32,
    pub db_acquire_timeout: Duration,
    pub db_statement_timeout: Duration,
    pub sqlite_synchronous_full: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Where values come from: a snapshot of the variables, so tests never touch the process environment.
pub struct Source {
    values: HashMap<String, String>,
}

impl Source {
    /// The process environment, layered over `CONFIG_FILE` when set.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::layered(std::env::vars().collect())
    }

    /// Given variables, layered over the `CONFIG_FILE` they name, if any.
    pub fn layered(env: HashMap<String, String>) -> Result<Self, ConfigError> {
        let mut values = HashMap::new();
        if let Some(path) = env.get("CONFIG_FILE").filter(|p| !p.is_empty()) {
            values = read_config_file(&PathBuf::from(path))?;
        }
        values.extend(env);
        Ok(Source { values })
    }

    pub fn from_map(values: HashMap<String, String>) -> Self {
        Source { values }
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// A setting whose meaning is a value (a number, a switch, the environment): set but empty is
    /// an error, never the default. `APP_ENV=` from a template whose value went missing would
    /// otherwise start a production deployment in development mode, with the public token.
    fn get_value(&self, key: &str) -> Result<Option<&str>, ConfigError> {
        match self.get(key) {
            None if self.values.contains_key(key) => Err(ConfigError(format!(
                "{key}: set but empty; give it a value or unset it for the default"
            ))),
            value => Ok(value),
        }
    }

    fn parse<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        match self.get_value(key)? {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|e| ConfigError(format!("{key}: invalid value {raw:?}: {e}"))),
        }
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get_value(key)?.map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("1" | "true" | "yes" | "on") => Ok(true),
            Some("0" | "false" | "no" | "off") => Ok(false),
            Some(other) => Err(ConfigError(format!(
                "{key}: expected true or false, got {other:?}"
            ))),
        }
    }

    fn seconds(&self, key: &str, default: u64) -> Result<Duration, ConfigError> {
        Ok(Duration::from_secs(self.parse(key, default)?))
    }

    fn millis(&self, key: &str, default: u64) -> Result<Duration, ConfigError> {
        Ok(Duration::from_millis(self.parse(key, default)?))
    }
}

fn read_config_file(path: &PathBuf) -> Result<HashMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("CONFIG_FILE {}: {e}", path.display())))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| ConfigError(format!("CONFIG_FILE {}: {e}", path.display())))?;
    let mut values = HashMap::new();
    for (key, value) in table {
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(ConfigError(format!(
                    "CONFIG_FILE {}: key {key}: expected a string, integer or boolean, got {}",
                    path.display(),
                    other.type_str()
                )))
            }
        };
        values.insert(key.to_ascii_uppercase(), text);
    }
    Ok(values)
}

impl Settings {
    pub fn load() -> Result<Self, ConfigError> {
        Self::from_source(&Source::from_env()?)
    }

    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let environment = match src
            .get_value("APP_ENV")?
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("development") | Some("dev") => Environment::Development,
            Some("production") | Some("prod") => Environment::Production,
            Some(other) => {
                return Err(ConfigError(format!(
                    "APP_ENV: expected development or production, got {other:?}"
                )))
            }
        };

        let (api_token, api_token_source) = match (src.get("API_TOKEN"), src.get("API_TOKEN_FILE"))
        {
            (Some(_), Some(_)) => {
                return Err(ConfigError(
                    "API_TOKEN and API_TOKEN_FILE are both set; set one".into(),
                ))
            }
            (Some(token), None) => (Some(token.to_string()), "API_TOKEN".to_string()),
            (None, Some(path)) => {
                let raw = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("API_TOKEN_FILE {path}: {e}")))?;
                // Trimmed exactly as API_TOKEN is: a stray space or newline in a Secret
                // would otherwise lock every write out.
                (
                    Some(raw.trim().to_string()),
                    format!("API_TOKEN_FILE ({path})"),
                )
            }
            (None, None) => (None, String::new()),
        };
        let (api_token, api_token_source) = match (environment, api_token) {
            (Environment::Development, None) => (
                DEVELOPMENT_TOKEN.to_string(),
                "development default".to_string(),
            ),
            (Environment::Production, None) => {
                return Err(ConfigError(
                    "API_TOKEN or API_TOKEN_FILE is required when APP_ENV=production".into(),
                ))
            }
            (_, Some(token)) => (token, api_token_source),
        };
        if api_token.is_empty() {
            return Err(ConfigError(format!(
                "{api_token_source}: the token is empty"
            )));
        }
        if environment == Environment::Production {
            check_production_token(&api_token)?;
        }

        let log_level = match src.get("LOG_LEVEL").map(str::to_ascii_lowercase).as_deref() {
            None => slog::Level::Info,
            Some(raw) => match raw {
                "trace" => slog::Level::Trace,
                "debug" => slog::Level::Debug,
                "info" => slog::Level::Info,
                "warn" | "warning" => slog::Level::Warning,
                "error" => slog::Level::Error,
                "critical" => slog::Level::Critical,
                other => {
                    return Err(ConfigError(format!(
                        "LOG_LEVEL: expected trace, debug, info, warn, error or critical, got {other:?}"
                    )))
                }
            },
        };

        let database = DatabaseSettings::from_source(src)?;

        let hsts = src.parse::<u64>("HSTS_MAX_AGE_SECS", 0)?;
        let default_workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);

        let settings = Settings {
            host: src.get("HOST").unwrap_or("127.0.0.1").to_string(),
            port: src.parse("PORT", 8080)?,
            database_url: database.url,
            database_url_source: database.source,
            api_token: Secret::new(api_token),
            environment,
            debug: src.bool("DEBUG", false)?,
            log_level,
            log_write: src.parse("LOG_WRITE", crate::telemetry::LogWrite::default())?,
            workers: src.parse("WORKERS", default_workers)?,
            max_body_bytes: src.parse("MAX_BODY_BYTES", 64 * 1024)?,
            max_header_bytes: src.parse("MAX_HEADER_BYTES", 16 * 1024)?,
            header_read_timeout: src.millis("HEADER_READ_TIMEOUT_MS", 5_000)?,
            request_timeout: src.millis("REQUEST_TIMEOUT_MS", 10_000)?,
            keep_alive: src.seconds("KEEP_ALIVE_SECS", 30)?,
            max_connections: src.parse("MAX_CONNECTIONS", 10_000)?,
            rate_limit_per_second: src.parse("RATE_LIMIT_PER_SECOND", 50)?,
            rate_limit_burst: src.parse("RATE_LIMIT_BURST", 100)?,
            trusted_proxies: trusted_proxies(src)?,
            forwarded_hops: src.parse("FORWARDED_HOPS", 1)?,
            forwarded_header: match src
                .get("FORWARDED_HEADER")
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                None | Some("x-forwarded-for") => ForwardedHeader::XForwardedFor,
                Some("forwarded") => ForwardedHeader::Forwarded,
                Some(other) => {
                    return Err(ConfigError(format!(
                        "FORWARDED_HEADER: expected x-forwarded-for or forwarded, got {other:?}"
                    )))
                }
            },
            metrics_host: src
                .get("METRICS_HOST")
                .or(src.get("HOST"))
                .unwrap_or("127.0.0.1")
                .to_string(),
            metrics_port: src.parse("METRICS_PORT", DEFAULT_METRICS_PORT)?,
            openapi_public: src.bool("OPENAPI_PUBLIC", true)?,
            api_token_source,
            shutdown_delay: src.millis("SHUTDOWN_DELAY_MS", 0)?,
            shutdown_timeout: src.seconds("SHUTDOWN_TIMEOUT_SECS", 20)?,
            hsts_max_age: (hsts > 0).then_some(hsts),
            db_max_connections: database.max_connections,
            db_acquire_timeout: database.acquire_timeout,
            db_statement_timeout: database.statement_timeout,
            sqlite_synchronous_full: database.sqlite_synchronous_full,
        };
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("WORKERS", self.workers as u128),
            ("MAX_BODY_BYTES", self.max_body_bytes as u128),
            ("MAX_HEADER_BYTES", self.max_header_bytes as u128),
            ("MAX_CONNECTIONS", self.max_connections as u128),
            ("REQUEST_TIMEOUT_MS", self.request_timeout.as_millis()),
            (
                "HEADER_READ_TIMEOUT_MS",
                self.header_read_timeout.as_millis(),
            ),
            ("SHUTDOWN_TIMEOUT_SECS", self.shutdown_timeout.as_millis()),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(ConfigError(format!("{name}: must be greater than 0")));
            }
        }
        let bounded = [
            ("WORKERS", self.workers as u128, 1, MAX_WORKERS as u128),
            (
                "MAX_HEADER_BYTES",
                self.max_header_bytes as u128,
                MIN_HEADER_BYTES as u128,
                MAX_HEADER_BYTES as u128,
            ),
            (
                "SHUTDOWN_DELAY_MS",
                self.shutdown_delay.as_millis(),
                0,
                MAX_SHUTDOWN.as_millis(),
            ),
            (
                "SHUTDOWN_TIMEOUT_SECS",
                self.shutdown_timeout.as_secs().into(),
                1,
                MAX_SHUTDOWN.as_secs().into(),
            ),
            ("FORWARDED_HOPS", self.forwarded_hops as u128, 1, 16),
            // An hour: longer only pins idle connections.
            (
                "KEEP_ALIVE_SECS",
                self.keep_alive.as_secs().into(),
                0,
                3_600,
            ),
        ];
        for (name, value, min, max) in bounded {
            if value < min || value > max {
                return Err(ConfigError(format!(
                    "{name}: {value} is outside {min}..={max}"
                )));
            }
        }
        if self.rate_limit_per_second > 0 && self.rate_limit_burst == 0 {
            return Err(ConfigError(
                "RATE_LIMIT_BURST: must be greater than 0 when rate limiting is on".into(),
            ));
        }
        if self.db_acquire_timeout >= self.request_timeout {
            return Err(ConfigError(
                "DB_ACQUIRE_TIMEOUT_MS must be below REQUEST_TIMEOUT_MS so a database outage answers 503, not a timeout".into(),
            ));
        }
        if self.metrics_port != 0
            && self.metrics_port == self.port
            && self.metrics_host == self.host
        {
            return Err(ConfigError(format!(
                "METRICS_PORT: {} is also PORT; the internal listener needs its own port",
                self.metrics_port
            )));
        }
        if self.environment == Environment::Production && self.debug {
            return Err(ConfigError(
                "DEBUG=true is refused when APP_ENV=production".into(),
            ));
        }
        Ok(())
    }

    pub fn is_sqlite(&self) -> bool {
        self.database_url.expose().starts_with("sqlite:")
    }

    /// The database part, as the command-line tools read it on their own.
    pub fn database(&self) -> DatabaseSettings {
        DatabaseSettings {
            url: self.database_url.clone(),
            source: self.database_url_source.clone(),
            max_connections: self.db_max_connections,
            acquire_timeout: self.db_acquire_timeout,
            statement_timeout: self.db_statement_timeout,
            sqlite_synchronous_full: self.sqlite_synchronous_full,
            http_workers: u32::try_from(self.workers).unwrap_or(u32::MAX),
        }
    }

    /// The whole time a SIGTERM may take: the readiness delay plus the drain bound.
    pub fn shutdown_budget(&self) -> Duration {
        self.shutdown_delay + self.shutdown_timeout
    }
}

/// What every database user reads: the service, and the `migrate`, `backup` and `restore` commands,
/// which need nothing else (no token, no ports).
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: Secret,
    /// Where the URL came from (`DATABASE_URL` or `DATABASE_URL_FILE (path)`), for errors.
    pub source: String,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// PostgreSQL's `statement_timeout` and SQLite's busy timeout.
    pub statement_timeout: Duration,
    /// SQLite's `synchronous` (`SQLITE_SYNCHRONOUS`): `full` (the default) syncs the WAL at every
    /// commit, so a confirmed write survives a power loss; `normal` syncs at checkpoints only and
    /// may lose the last commits then (never on a process crash).
    pub sqlite_synchronous_full: bool,
    /// The service's HTTP workers, among which PostgreSQL's connections are shared out (see
    /// [`crate::db`]); 0 for the command-line tools, which use one pool.
    pub http_workers: u32,
}

impl DatabaseSettings {
    /// The process environment, layered over `CONFIG_FILE` when set.
    pub fn load() -> Result<Self, ConfigError> {
        Self::from_source(&Source::from_env()?)
    }

    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let (url, source) = match (src.get("DATABASE_URL"), src.get("DATABASE_URL_FILE")) {
            (Some(_), Some(_)) => {
                return Err(ConfigError(
                    "DATABASE_URL and DATABASE_URL_FILE are both set; set one".into(),
                ))
            }
            (Some(url), None) => (url.to_string(), "DATABASE_URL".to_string()),
            (None, Some(path)) => (
                std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("DATABASE_URL_FILE {path}: {e}")))?
                    .trim()
                    .to_string(),
                format!("DATABASE_URL_FILE ({path})"),
            ),
            (None, None) => (
                "sqlite://data/devsecops-app.db".to_string(),
                DEFAULT_DATABASE_SOURCE.to_string(),
            ),
        };
        database_options(&url).map_err(|e| ConfigError(format!("{source}: {e}")))?;
        let settings = DatabaseSettings {
            url: Secret::new(url),
            source,
            max_connections: src.parse("DB_MAX_CONNECTIONS", 10)?,
            acquire_timeout: src.millis("DB_ACQUIRE_TIMEOUT_MS", 2_000)?,
            statement_timeout: src.millis("DB_STATEMENT_TIMEOUT_MS", 5_000)?,
            http_workers: 0,
            sqlite_synchronous_full: match src
                .get("SQLITE_SYNCHRONOUS")
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                None | Some("full") => true,
                Some("normal") => false,
                Some(other) => {
                    return Err(ConfigError(format!(
                        "SQLITE_SYNCHRONOUS: expected full or normal, got {other:?}"
                    )))
                }
            },
        };
        if settings.max_connections == 0 {
            return Err(ConfigError(
                "DB_MAX_CONNECTIONS: must be greater than 0".into(),
            ));
        }
        if settings.acquire_timeout.is_zero() {
            return Err(ConfigError(
                "DB_ACQUIRE_TIMEOUT_MS: must be greater than 0".into(),
            ));
        }
        // 0 would mean no limit at all on PostgreSQL, and no busy wait on SQLite.
        if settings.statement_timeout.is_zero() {
            return Err(ConfigError(
                "DB_STATEMENT_TIMEOUT_MS: must be greater than 0".into(),
            ));
        }
        // SQLite's busy timeout and PostgreSQL's statement_timeout are C ints of milliseconds.
        if settings.statement_timeout.as_millis() > i32::MAX as u128 {
            return Err(ConfigError(format!(
                "DB_STATEMENT_TIMEOUT_MS: {} is above {} (the databases' limit)",
                settings.statement_timeout.as_millis(),
                i32::MAX
            )));
        }
        Ok(settings)
    }

    pub fn is_sqlite(&self) -> bool {
        self.url.expose().starts_with("sqlite:")
    }
}

/// `TRUSTED_PROXIES`: addresses or CIDR blocks, comma-separated. The variable it replaces,
/// `TRUST_FORWARDED_FOR`, believed any client's first hop; it is refused rather than ignored so that
/// a deployment that still sets it learns why its client addresses changed.
fn trusted_proxies(src: &Source) -> Result<Vec<IpNet>, ConfigError> {
    if src.get("TRUST_FORWARDED_FOR").is_some() {
        return Err(ConfigError(
            "TRUST_FORWARDED_FOR is no longer read: list the proxies to believe in TRUSTED_PROXIES (addresses or CIDRs, comma-separated)".into(),
        ));
    }
    let Some(raw) = src.get("TRUSTED_PROXIES") else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| {
                    ConfigError(format!(
                        "TRUSTED_PROXIES: {item:?} is neither an IP address nor a CIDR block"
                    ))
                })
                .and_then(|net| {
                    // Trusting every address lets any client write its own address, and a few
                    // wide networks (0.0.0.0/1 and 128.0.0.0/1) add up to every address. No
                    // proxy network is wider than IPv4's 10.0.0.0/8 or IPv6's fc00::/7.
                    let widest = if net.addr().is_ipv4() { 8 } else { 7 };
                    if net.prefix_len() < widest {
                        Err(ConfigError(format!(
                            "TRUSTED_PROXIES: {item:?} is wider than /{widest} and trusts clients' addresses, so any client could choose its own; list the proxies' own addresses or networks"
                        )))
                    } else {
                        Ok(net)
                    }
                })
        })
        .collect()
}

/// Parsed connection options of a `DATABASE_URL`: one parser for validation at start and for
/// connecting, so a URL that passes here is the URL the pool uses.
pub enum DatabaseOptions {
    Sqlite(sqlx::sqlite::SqliteConnectOptions),
    Postgres(sqlx::postgres::PgConnectOptions),
}

/// Parses a database URL. Errors never contain the URL's password.
pub fn database_options(url: &str) -> Result<DatabaseOptions, String> {
    use std::str::FromStr;
    let redact = |message: String| match url::Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_string))
    {
        Some(password) if !password.is_empty() => message.replace(&password, "***"),
        _ => message,
    };
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
            .map_err(|e| redact(format!("invalid SQLite URL: {e}")))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        // `sqlite://user:secret@host/x.db` names a file called `user:secret@host/x.db`, and the
        // secret would be logged with the path.
        if path
            .trim_start_matches("//")
            .split('/')
            .next()
            .is_some_and(|first| first.contains('@'))
        {
            return Err(
                "a sqlite: URL names a file, not a server: it takes no user, password or host"
                    .into(),
            );
        }
        let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let param = |key: &str| {
            params
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let file = path.trim_start_matches("//");
        // Every pooled connection would open its own private database: writes would vanish
        // between requests and tables would be missing on all but one connection.
        if file.is_empty()
            || file == ":memory:"
            || param("mode") == Some("memory")
            || param("vfs").is_some_and(|v| v.eq_ignore_ascii_case("memdb"))
        {
            return Err(
                "an in-memory or unnamed SQLite database cannot be shared by the connection pool; give a file path such as sqlite://data/devsecops-app.db".into(),
            );
        }
        if param("mode") == Some("ro") || matches!(param("immutable"), Some("1" | "true")) {
            return Err("a read-only SQLite database cannot store writes".into());
        }
        Ok(DatabaseOptions::Sqlite(options))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let options = sqlx::postgres::PgConnectOptions::from_str(url)
            .map_err(|e| redact(format!("invalid PostgreSQL URL: {e}")))?;
        Ok(DatabaseOptions::Postgres(options))
    } else {
        Err("expected a sqlite: or postgres:// URL".into())
    }
}

/// How a production token is scored: [`token_strength_log10`] in this process, unless the binary
/// installs another way to compute the same number (the service scores it in a child process).
static STRENGTH_ESTIMATOR: std::sync::OnceLock<fn(&str) -> f64> = std::sync::OnceLock::new();

/// Installs how production tokens are scored; the first call wins.
pub fn set_strength_estimator(estimate: fn(&str) -> f64) {
    let _ = STRENGTH_ESTIMATOR.set(estimate);
}

/// Production tokens must be long, not the development default, and not trivially guessable.
fn check_production_token(token: &str) -> Result<(), ConfigError> {
    if token == DEVELOPMENT_TOKEN {
        return Err(ConfigError(
            "API_TOKEN: the development default is refused when APP_ENV=production".into(),
        ));
    }
    if token.len() < MIN_PRODUCTION_TOKEN_LEN {
        return Err(ConfigError(format!(
            "API_TOKEN: at least {MIN_PRODUCTION_TOKEN_LEN} characters are required when APP_ENV=production"
        )));
    }
    if token.len() > MAX_PRODUCTION_TOKEN_LEN {
        return Err(ConfigError(format!(
            "API_TOKEN: at most {MAX_PRODUCTION_TOKEN_LEN} bytes are accepted when APP_ENV=production"
        )));
    }
    let strength = match STRENGTH_ESTIMATOR.get() {
        Some(estimate) => estimate(token),
        None => token_strength_log10(token),
    };
    if strength < MIN_PRODUCTION_TOKEN_STRENGTH {
        return Err(ConfigError(format!(
            "API_TOKEN: too guessable (about 10^{strength:.0} guesses, at least 10^{MIN_PRODUCTION_TOKEN_STRENGTH:.0} required); generate one with `openssl rand -hex 32`"
        )));
    }
    Ok(())
}

/// log10 of the guesses zxcvbn needs for `token`. zxcvbn finds repeats, sequences, keyboard walks,
/// dictionary words and dates, which a count of distinct characters or a word list does not; but
/// it counts guesses in a `u64`, so it rates every string of about 20 or more characters at the
/// same 10^19.3, and its search for the weakest reading stops working before that. So the token is
/// scored in 16-character chunks, each below that ceiling, and the chunks' scores are summed; every
/// chunk is scored with the rest of the token (its substrings of 6 to 16 characters) as zxcvbn's
/// "user inputs", so a chunk that repeats another part of the token counts as a word already
/// guessed. Chunks are cut at two alignments and the weaker sum counts, so a pattern one cut splits
/// is whole in the other.
pub fn token_strength_log10(token: &str) -> f64 {
    const CHUNK: usize = 16;
    const MIN_REPEAT: usize = 6;
    let chars: Vec<char> = token.chars().collect();
    let score = |first: usize| -> f64 {
        let mut total = 0.0;
        let mut start = 0;
        let mut len = first;
        while start < chars.len() {
            let end = (start + len).min(chars.len());
            let chunk: String = chars[start..end].iter().collect();
            let rest: Vec<char> = chars[..start]
                .iter()
                .chain(&chars[end..])
                .copied()
                .collect();
            let mut elsewhere: Vec<String> = Vec::new();
            for from in 0..rest.len() {
                for to in (from + MIN_REPEAT)..=(from + CHUNK).min(rest.len()) {
                    elsewhere.push(rest[from..to].iter().collect());
                }
            }
            let inputs: Vec<&str> = elsewhere.iter().map(String::as_str).collect();
            total += zxcvbn::zxcvbn(&chunk, &inputs).guesses_log10().max(0.0);
            start = end;
            len = CHUNK;
        }
        total
    };
    score(CHUNK).min(score(CHUNK / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_source(&Source::from_map(map))
    }

    #[test]
    fn set_but_empty_values_are_refused_not_defaulted() {
        for key in [
            "APP_ENV",
            "WORKERS",
            "FORWARDED_HOPS",
            "DB_STATEMENT_TIMEOUT_MS",
            "SHUTDOWN_TIMEOUT_SECS",
            "DEBUG",
        ] {
            let err = settings(&[(key, " ")]).expect_err(key);
            assert!(err.0.starts_with(key) && err.0.contains("empty"), "{err}");
        }
        // Lists and secrets keep their meaning of empty: none.
        assert!(settings(&[("TRUSTED_PROXIES", "")]).is_ok());
    }

    #[test]
    fn database_and_keep_alive_timeouts_are_bounded() {
        let err = settings(&[("DB_STATEMENT_TIMEOUT_MS", "2147483648")]).expect_err("too big");
        assert!(err.0.starts_with("DB_STATEMENT_TIMEOUT_MS"), "{err}");
        assert!(settings(&[("DB_STATEMENT_TIMEOUT_MS", "2147483647")]).is_ok());
        let err = settings(&[("KEEP_ALIVE_SECS", "99999999999999")]).expect_err("too long");
        assert!(err.0.starts_with("KEEP_ALIVE_SECS"), "{err}");
    }

    #[test]
    fn trusted_networks_that_add_up_to_everyone_are_refused() {
        for wide in [
            "0.0.0.0/1,128.0.0.0/1",
            "0.0.0.0/0",
            "10.0.0.0/7",
            "::/0",
            "2000::/3",
        ] {
            let err = settings(&[("TRUSTED_PROXIES", wide)]).expect_err(wide);
            assert!(err.0.contains("wider than"), "{wide}: {err}");
        }
        for fine in ["10.0.0.0/8", "fc00::/7", "192.0.2.7", "2001:db8::/64"] {
            assert!(settings(&[("TRUSTED_PROXIES", fine)]).is_ok(), "{fine}");
        }
    }

    #[test]
    fn defaults_run_in_development_with_sqlite() {
        let s = settings(&[]).expect("defaults are valid");
        assert_eq!(s.environment, Environment::Development);
        assert!(s.is_sqlite());
        assert_eq!(s.port, 8080);
        assert_eq!(s.api_token.expose(), DEVELOPMENT_TOKEN);
    }

    /// `n` uniformly distributed bytes as hex, like `openssl rand -hex n`; the same bytes on every
    /// run (SHA-256 in counter mode, seeded by a counter), so the tests that score many tokens
    /// judge the same tokens each time instead of flaking on a rare draw.
    fn random_hex(n: usize) -> String {
        use sha2::Digest;
        use std::sync::atomic::{AtomicU64, Ordering};
        static DRAW: AtomicU64 = AtomicU64::new(0);
        let draw = DRAW.fetch_add(1, Ordering::Relaxed);
        let mut bytes = Vec::new();
        let mut block = 0u64;
        while bytes.len() < n {
            let digest = sha2::Sha256::new()
                .chain_update(draw.to_le_bytes())
                .chain_update(block.to_le_bytes())
                .finalize();
            bytes.extend_from_slice(&digest);
            block += 1;
        }
        bytes[..n].iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn production_refuses_missing_default_and_weak_tokens() {
        let missing = settings(&[("APP_ENV", "production")]).unwrap_err();
        assert!(missing.0.contains("required"), "{missing}");
        let default =
            settings(&[("APP_ENV", "production"), ("API_TOKEN", DEVELOPMENT_TOKEN)]).unwrap_err();
        assert!(default.0.contains("development default"), "{default}");
        let short = settings(&[("APP_ENV", "production"), ("API_TOKEN", "abc")]).unwrap_err();
        assert!(short.0.contains("at least"), "{short}");
        for weak in [
            "abcdefghij".repeat(4),
            "ab".repeat(20),
            "0123456789abcdef".repeat(2),
            "my-password-is-very-long-0123456789abcdef".to_string(),
            "integration-test-token-0123456789abcdef".to_string(),
            "qwertyuiopasdfghjklzxcvbnm1234567890".to_string(),
        ] {
            let err = settings(&[("APP_ENV", "production"), ("API_TOKEN", &weak)]).unwrap_err();
            assert!(err.0.contains("too guessable"), "{weak}: {err}");
        }
        let good = settings(&[("APP_ENV", "production"), ("API_TOKEN", &random_hex(32))]);
        assert!(good.is_ok());
        // Scoring time grows with the square of the length: a megabyte token must not hold the
        // start for minutes; the longest accepted one is still scored.
        let huge = "x7".repeat(1 << 19);
        let started = std::time::Instant::now();
        let err = settings(&[("APP_ENV", "production"), ("API_TOKEN", &huge)]).unwrap_err();
        assert!(err.0.contains("at most"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let longest = random_hex(MAX_PRODUCTION_TOKEN_LEN / 2);
        assert!(settings(&[("APP_ENV", "production"), ("API_TOKEN", &longest)]).is_ok());
    }

    /// Every token of the documented generator passes; 128-bit ones almost always do.
    #[test]
    fn random_tokens_are_strong_enough() {
        for _ in 0..1_000 {
            let token = random_hex(32);
            let strength = token_strength_log10(&token);
            assert!(
                strength >= MIN_PRODUCTION_TOKEN_STRENGTH,
                "{token}: {strength}"
            );
        }
        // 2 in 20,000 128-bit tokens score below the floor: allow a few in 500.
        let weak = (0..500)
            .map(|_| random_hex(16))
            .filter(|t| token_strength_log10(t) < MIN_PRODUCTION_TOKEN_STRENGTH)
            .count();
        assert!(weak <= 3, "{weak} of 500 random 128-bit tokens refused");
    }

    /// Patterns zxcvbn knows, also when they span the 16-character chunks.
    #[test]
    fn guessable_long_tokens_are_refused() {
        let half = random_hex(8);
        for weak in [
            "Tr0ub4dor&3".repeat(3),
            "2024-01-01T00:00:00Z-2024-01-01T00:00".to_string(),
            format!("{half}{half}"),
            "17330612341234567891733061299987654321".to_string(),
            "my-password-is-very-long-0123456789abcdef".to_string(),
        ] {
            let strength = token_strength_log10(&weak);
            assert!(
                strength < MIN_PRODUCTION_TOKEN_STRENGTH,
                "{weak}: {strength}"
            );
        }
    }

    #[test]
    fn token_file_is_read_and_trailing_newline_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        // Trimmed like API_TOKEN: a stray space or CRLF from an editor must not lock writes out.
        std::fs::write(&path, " from-a-file \r\n").expect("write");
        let s = settings(&[("API_TOKEN_FILE", path.to_str().expect("utf-8"))]).expect("valid");
        assert_eq!(s.api_token.expose(), "from-a-file");
        assert!(s.api_token_source.starts_with("API_TOKEN_FILE ("));
        let both = settings(&[
            ("API_TOKEN", "x"),
            ("API_TOKEN_FILE", path.to_str().expect("utf-8")),
        ])
        .unwrap_err();
        assert!(both.0.contains("both"), "{both}");
        let absent = settings(&[("API_TOKEN_FILE", "/nonexistent/token")]).unwrap_err();
        assert!(
            absent.0.starts_with("API_TOKEN_FILE /nonexistent/token"),
            "{absent}"
        );
    }

    #[test]
    fn database_url_can_come_from_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("url");
        std::fs::write(&path, "postgres://app:pw@db:5432/app\n").expect("write");
        let file = path.to_str().expect("utf-8");
        let s = settings(&[("DATABASE_URL_FILE", file)]).expect("valid");
        assert_eq!(s.database_url.expose(), "postgres://app:pw@db:5432/app");
        assert!(!s.is_sqlite());
        let both =
            settings(&[("DATABASE_URL", "sqlite:x.db"), ("DATABASE_URL_FILE", file)]).unwrap_err();
        assert!(both.0.contains("both"), "{both}");
        let missing = settings(&[("DATABASE_URL_FILE", "/nonexistent")]).unwrap_err();
        assert!(
            missing.0.starts_with("DATABASE_URL_FILE /nonexistent"),
            "{missing}"
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (key, value, expect) in [
            ("PORT", "http", "PORT: invalid value"),
            ("PORT", "70000", "PORT: invalid value"),
            ("DEBUG", "maybe", "DEBUG: expected true or false"),
            ("LOG_LEVEL", "loud", "LOG_LEVEL: expected"),
            ("LOG_WRITE", "later", "LOG_WRITE: invalid value"),
            ("APP_ENV", "staging", "APP_ENV: expected"),
            ("DATABASE_URL", "mysql://x", "DATABASE_URL: expected"),
            ("WORKERS", "0", "WORKERS: must be greater than 0"),
            (
                "REQUEST_TIMEOUT_MS",
                "1000",
                "DB_ACQUIRE_TIMEOUT_MS must be below",
            ),
        ] {
            let err = settings(&[(key, value)]).unwrap_err();
            assert!(err.0.starts_with(expect), "{key}={value}: {err}");
        }
    }

    #[test]
    fn production_refuses_debug() {
        let err = settings(&[
            ("APP_ENV", "production"),
            ("API_TOKEN", "3f9a1c7e5b2d4f6a8c0e1b3d5f7a9c2e4b6d8f0a"),
            ("DEBUG", "true"),
        ])
        .unwrap_err();
        assert!(err.0.contains("DEBUG"), "{err}");
    }

    #[test]
    fn config_file_is_overridden_by_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("app.toml");
        std::fs::write(
            &path,
            "port = 9000\nlog_level = \"debug\"\nhost = \"0.0.0.0\"\n",
        )
        .expect("write");
        let env = HashMap::from([
            (
                "CONFIG_FILE".to_string(),
                path.to_str().expect("utf-8").to_string(),
            ),
            ("PORT".to_string(), "9100".to_string()),
        ]);
        let s = Settings::from_source(&Source::layered(env).expect("file parses")).expect("valid");
        assert_eq!(s.port, 9100);
        assert_eq!(s.host, "0.0.0.0");
        assert_eq!(s.log_level, slog::Level::Debug);

        std::fs::write(&path, "port = [1]\n").expect("write");
        let env = HashMap::from([(
            "CONFIG_FILE".to_string(),
            path.to_str().expect("utf-8").to_string(),
        )]);
        let err = Source::layered(env).err().expect("arrays are refused");
        assert!(err.0.contains("key port"), "{err}");
    }

    #[test]
    fn secrets_do_not_print() {
        let s = settings(&[("API_TOKEN", "super-secret-value")]).expect("valid");
        let printed = format!("{s:?}");
        assert!(!printed.contains("super-secret-value"));
        assert!(printed.contains("REDACTED"));
    }
}
