//! Settings from the environment (12-factor), optionally layered over a TOML file.
//!
//! Precedence: environment variable > `CONFIG_FILE` (TOML, same names in lower case) > built-in default.
//! Everything is validated once at start; a bad value stops the process with a message naming the
//! variable, never later at request time.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The token the development defaults use. Production refuses it.
pub const DEVELOPMENT_TOKEN: &str = "development-only-token";
/// Minimum length of an API token in production.
pub const MIN_PRODUCTION_TOKEN_LEN: usize = 32;

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
    /// Use the first X-Forwarded-For address as the client (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// Readiness turns 503 at SIGTERM; the listener keeps serving for this long so load balancers notice.
    pub shutdown_delay: Duration,
    /// Upper bound for draining in-flight requests after the listener stops.
    pub shutdown_timeout: Duration,
    pub hsts_max_age: Option<u64>,
    pub db_max_connections: u32,
    pub db_acquire_timeout: Duration,
    pub db_statement_timeout: Duration,
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

    fn parse<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        match self.get(key) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|e| ConfigError(format!("{key}: invalid value {raw:?}: {e}"))),
        }
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key).map(str::to_ascii_lowercase).as_deref() {
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
        let environment = match src.get("APP_ENV").map(str::to_ascii_lowercase).as_deref() {
            None | Some("development") | Some("dev") => Environment::Development,
            Some("production") | Some("prod") => Environment::Production,
            Some(other) => {
                return Err(ConfigError(format!(
                    "APP_ENV: expected development or production, got {other:?}"
                )))
            }
        };

        let api_token = match (src.get("API_TOKEN"), src.get("API_TOKEN_FILE")) {
            (Some(_), Some(_)) => {
                return Err(ConfigError(
                    "API_TOKEN and API_TOKEN_FILE are both set; set one".into(),
                ))
            }
            (Some(token), None) => Some(token.to_string()),
            (None, Some(path)) => {
                let raw = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("API_TOKEN_FILE {path}: {e}")))?;
                Some(raw.trim_end_matches(['\n', '\r']).to_string())
            }
            (None, None) => None,
        };
        let api_token = match (environment, api_token) {
            (Environment::Development, None) => DEVELOPMENT_TOKEN.to_string(),
            (Environment::Production, None) => {
                return Err(ConfigError(
                    "API_TOKEN or API_TOKEN_FILE is required when APP_ENV=production".into(),
                ))
            }
            (_, Some(token)) => token,
        };
        if api_token.is_empty() {
            return Err(ConfigError("API_TOKEN is empty".into()));
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

        let database_url = match (src.get("DATABASE_URL"), src.get("DATABASE_URL_FILE")) {
            (Some(_), Some(_)) => {
                return Err(ConfigError(
                    "DATABASE_URL and DATABASE_URL_FILE are both set; set one".into(),
                ))
            }
            (Some(url), None) => url.to_string(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| ConfigError(format!("DATABASE_URL_FILE {path}: {e}")))?
                .trim()
                .to_string(),
            (None, None) => "sqlite://data/devsecops-app.db".to_string(),
        };
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(ConfigError(
                "DATABASE_URL: expected a sqlite: or postgres:// URL".into(),
            ));
        }

        let hsts = src.parse::<u64>("HSTS_MAX_AGE_SECS", 0)?;
        let default_workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);

        let settings = Settings {
            host: src.get("HOST").unwrap_or("127.0.0.1").to_string(),
            port: src.parse("PORT", 8080)?,
            database_url: Secret::new(database_url),
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
            trust_forwarded_for: src.bool("TRUST_FORWARDED_FOR", false)?,
            shutdown_delay: src.millis("SHUTDOWN_DELAY_MS", 0)?,
            shutdown_timeout: src.seconds("SHUTDOWN_TIMEOUT_SECS", 20)?,
            hsts_max_age: (hsts > 0).then_some(hsts),
            db_max_connections: src.parse("DB_MAX_CONNECTIONS", 10)?,
            db_acquire_timeout: src.millis("DB_ACQUIRE_TIMEOUT_MS", 2_000)?,
            db_statement_timeout: src.millis("DB_STATEMENT_TIMEOUT_MS", 5_000)?,
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
            ("DB_MAX_CONNECTIONS", self.db_max_connections as u128),
            ("REQUEST_TIMEOUT_MS", self.request_timeout.as_millis()),
            (
                "HEADER_READ_TIMEOUT_MS",
                self.header_read_timeout.as_millis(),
            ),
            ("DB_ACQUIRE_TIMEOUT_MS", self.db_acquire_timeout.as_millis()),
            ("SHUTDOWN_TIMEOUT_SECS", self.shutdown_timeout.as_millis()),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(ConfigError(format!("{name}: must be greater than 0")));
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

    /// The whole time a SIGTERM may take: the readiness delay plus the drain bound.
    pub fn shutdown_budget(&self) -> Duration {
        self.shutdown_delay + self.shutdown_timeout
    }
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
    let mut distinct: Vec<char> = token.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 10 {
        return Err(ConfigError(
            "API_TOKEN: too few distinct characters; generate one with `openssl rand -hex 32`"
                .into(),
        ));
    }
    let lower = token.to_ascii_lowercase();
    for weak in [
        "password", "changeme", "secret", "token", "123456", "qwerty",
    ] {
        if lower.contains(weak) {
            return Err(ConfigError(format!(
                "API_TOKEN: contains the common word {weak:?}; generate one with `openssl rand -hex 32`"
            )));
        }
    }
    Ok(())
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
    fn defaults_run_in_development_with_sqlite() {
        let s = settings(&[]).expect("defaults are valid");
        assert_eq!(s.environment, Environment::Development);
        assert!(s.is_sqlite());
        assert_eq!(s.port, 8080);
        assert_eq!(s.api_token.expose(), DEVELOPMENT_TOKEN);
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
        let repetitive =
            settings(&[("APP_ENV", "production"), ("API_TOKEN", &"ab".repeat(20))]).unwrap_err();
        assert!(repetitive.0.contains("distinct"), "{repetitive}");
        let word = settings(&[
            ("APP_ENV", "production"),
            ("API_TOKEN", "my-password-is-very-long-0123456789abcdef"),
        ])
        .unwrap_err();
        assert!(word.0.contains("password"), "{word}");
        let good = settings(&[
            ("APP_ENV", "production"),
            ("API_TOKEN", "3f9a1c7e5b2d4f6a8c0e1b3d5f7a9c2e4b6d8f0a"),
        ]);
        assert!(good.is_ok());
    }

    #[test]
    fn token_file_is_read_and_trailing_newline_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "from-a-file\n").expect("write");
        let s = settings(&[("API_TOKEN_FILE", path.to_str().expect("utf-8"))]).expect("valid");
        assert_eq!(s.api_token.expose(), "from-a-file");
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
