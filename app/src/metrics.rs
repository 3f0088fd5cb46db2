//! Prometheus metrics. The names below are the one source of truth: alert rules, dashboards and tests
//! reference `docs/metrics.md`, which a test keeps identical to [`CATALOG`].

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::telemetry::VERSION;

pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "http_request_duration_seconds";
pub const HTTP_REQUESTS_IN_FLIGHT: &str = "http_requests_in_flight";
pub const BUILD_INFO: &str = "app_build_info";
pub const AUTH_FAILURES_TOTAL: &str = "app_auth_failures_total";
pub const RATE_LIMITED_TOTAL: &str = "app_rate_limited_requests_total";
pub const DB_POOL_CONNECTIONS: &str = "app_db_pool_connections";
pub const DB_POOL_MAX_CONNECTIONS: &str = "app_db_pool_max_connections";
pub const DB_UP: &str = "app_db_up";
pub const DB_QUERY_DURATION_SECONDS: &str = "app_db_query_duration_seconds";
pub const SHUTTING_DOWN: &str = "app_shutting_down";
pub const DB_ERRORS_TOTAL: &str = "app_db_errors_total";
pub const REQUESTS_REFUSED_EARLY_TOTAL: &str = "http_requests_refused_before_routing_total";
pub const BACKUP_LAST_SUCCESS: &str = "app_backup_last_success_timestamp_seconds";
pub const LOG_LINES_DROPPED_TOTAL: &str = "app_log_lines_dropped_total";

/// The `endpoint` label of every request that matched no route: one fixed value, so probing random
/// paths cannot grow the label set.
pub const UNMATCHED_ENDPOINT: &str = "unmatched";

/// Methods that get their own `method` label value; every other token (HTTP allows any) counts as
/// `other`, so a client cannot grow the label set.
pub const KNOWN_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
];
pub const OTHER_METHOD: &str = "other";

/// The `method` label value for a request method.
pub fn method_label(method: &str) -> &'static str {
    KNOWN_METHODS
        .iter()
        .find(|known| **known == method)
        .copied()
        .unwrap_or(OTHER_METHOD)
}

/// The `reason` values of [`REQUESTS_REFUSED_EARLY_TOTAL`].
pub const REFUSED_EARLY_REASONS: &[&str] = &["malformed", "head_too_large", "head_timeout"];

/// Every metric the service exports, with its type, labels and meaning.
pub const CATALOG: &[(&str, &str, &str, &str)] = &[
    (
        HTTP_REQUESTS_TOTAL,
        "counter",
        "method, endpoint, status",
        "Requests answered, by route template (`unmatched` for unknown paths); methods outside the nine of RFC 9110 count as `other`.",
    ),
    (
        HTTP_REQUEST_DURATION_SECONDS,
        "histogram",
        "method, endpoint",
        "Time from request to response, by route template.",
    ),
    (
        HTTP_REQUESTS_IN_FLIGHT,
        "gauge",
        "",
        "Requests being handled now.",
    ),
    (
        BUILD_INFO,
        "gauge",
        "version, revision",
        "Always 1; labels carry the build.",
    ),
    (
        AUTH_FAILURES_TOTAL,
        "counter",
        "reason",
        "Rejected bearer tokens (`missing`, `malformed`, `invalid`).",
    ),
    (
        RATE_LIMITED_TOTAL,
        "counter",
        "",
        "Requests answered 429 by the per-client rate limiter.",
    ),
    (
        DB_POOL_CONNECTIONS,
        "gauge",
        "state",
        "Database pool connections (`idle`, `in_use`), read at scrape time.",
    ),
    (
        DB_POOL_MAX_CONNECTIONS,
        "gauge",
        "",
        "Configured database pool size.",
    ),
    (
        DB_UP,
        "gauge",
        "",
        "1 when the last readiness check reached the database and could write to it, else 0.",
    ),
    (
        DB_QUERY_DURATION_SECONDS,
        "histogram",
        "operation",
        "Time spent in database calls, by repository operation.",
    ),
    (SHUTTING_DOWN, "gauge", "", "1 from SIGTERM until exit."),
    (
        DB_ERRORS_TOTAL,
        "counter",
        "reason",
        "Requests answered 503 because storage failed, by reason (`unreachable`, `timeout`, `locked`, `full`, `read_only`, `permission`, `io`, `corrupt`, `file_missing`, `not_migrated`, `misconfigured`).",
    ),
    (
        REQUESTS_REFUSED_EARLY_TOTAL,
        "counter",
        "reason",
        "Requests the HTTP layer refused before routing, so with no route or request id (`malformed`, `head_too_large`, `head_timeout`).",
    ),
    (
        BACKUP_LAST_SUCCESS,
        "gauge",
        "",
        "SQLite only: when the newest backup recorded by `devsecops-app backup` was taken (Unix seconds; the point in time it restores to), read at scrape time; 0 when none has been recorded.",
    ),
    (
        LOG_LINES_DROPPED_TOTAL,
        "counter",
        "",
        "Log lines lost since the process started because standard output failed (a closed pipe, a full disk) or a value could not be formatted; requests go on being served. Read at scrape time.",
    ),
    (
        "process_*",
        "various",
        "",
        "Process CPU, memory, open file descriptors and start time (Linux).",
    ),
];

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub requests_total: IntCounterVec,
    pub request_duration: HistogramVec,
    pub in_flight: IntGauge,
    pub auth_failures: IntCounterVec,
    pub rate_limited: IntCounter,
    pub db_pool_connections: IntGaugeVec,
    pub db_pool_max: IntGauge,
    pub db_up: IntGauge,
    pub db_query_duration: HistogramVec,
    pub shutting_down: IntGauge,
    pub db_errors: IntCounterVec,
    pub refused_early: IntCounterVec,
    /// Registered by [`Metrics::enable_backup_metric`] on SQLite only: PostgreSQL backups are
    /// pg_dump's or CloudNativePG's, which this service does not see.
    pub backup_last_success: IntGauge,
    pub log_lines_dropped: IntCounter,
}

impl Metrics {
    pub fn new(revision: &str) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests_total = IntCounterVec::new(
            Opts::new(HTTP_REQUESTS_TOTAL, "HTTP requests answered."),
            &["method", "endpoint", "status"],
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(HTTP_REQUEST_DURATION_SECONDS, "HTTP request latency.")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["method", "endpoint"],
        )?;
        let in_flight = IntGauge::new(HTTP_REQUESTS_IN_FLIGHT, "HTTP requests being handled.")?;
        let build_info = IntGaugeVec::new(
            Opts::new(BUILD_INFO, "Build information; always 1."),
            &["version", "revision"],
        )?;
        build_info.with_label_values(&[VERSION, revision]).set(1);
        let auth_failures = IntCounterVec::new(
            Opts::new(AUTH_FAILURES_TOTAL, "Rejected bearer tokens."),
            &["reason"],
        )?;
        let rate_limited = IntCounter::new(RATE_LIMITED_TOTAL, "Requests refused with 429.")?;
        let db_pool_connections = IntGaugeVec::new(
            Opts::new(DB_POOL_CONNECTIONS, "Database pool connections by state."),
            &["state"],
        )?;
        let db_pool_max = IntGauge::new(DB_POOL_MAX_CONNECTIONS, "Database pool size.")?;
        let db_up = IntGauge::new(DB_UP, "1 when the database answered the last check.")?;
        let db_query_duration = HistogramVec::new(
            HistogramOpts::new(DB_QUERY_DURATION_SECONDS, "Database call latency.")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["operation"],
        )?;
        let shutting_down = IntGauge::new(SHUTTING_DOWN, "1 while shutting down.")?;
        let log_lines_dropped = IntCounter::new(
            LOG_LINES_DROPPED_TOTAL,
            "Log lines that could not be written.",
        )?;
        let db_errors = IntCounterVec::new(
            Opts::new(
                DB_ERRORS_TOTAL,
                "Requests answered 503 because storage failed.",
            ),
            &["reason"],
        )?;
        let refused_early = IntCounterVec::new(
            Opts::new(
                REQUESTS_REFUSED_EARLY_TOTAL,
                "Requests refused by the HTTP layer before routing.",
            ),
            &["reason"],
        )?;

        registry.register(Box::new(requests_total.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(build_info))?;
        registry.register(Box::new(auth_failures.clone()))?;
        registry.register(Box::new(rate_limited.clone()))?;
        registry.register(Box::new(db_pool_connections.clone()))?;
        registry.register(Box::new(db_pool_max.clone()))?;
        registry.register(Box::new(db_up.clone()))?;
        registry.register(Box::new(db_query_duration.clone()))?;
        registry.register(Box::new(shutting_down.clone()))?;
        registry.register(Box::new(db_errors.clone()))?;
        registry.register(Box::new(refused_early.clone()))?;
        registry.register(Box::new(log_lines_dropped.clone()))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;

        // Zero-initialise the label sets that alerts divide by, so rate() has a series before the
        // first event instead of "no data".
        for reason in ["missing", "malformed", "invalid"] {
            auth_failures.with_label_values(&[reason]);
        }
        for state in ["idle", "in_use"] {
            db_pool_connections.with_label_values(&[state]);
        }
        for fault in crate::db::StorageFault::ALL {
            db_errors.with_label_values(&[fault.as_str()]);
        }
        for reason in REFUSED_EARLY_REASONS {
            refused_early.with_label_values(&[reason]);
        }

        let backup_last_success = IntGauge::new(
            BACKUP_LAST_SUCCESS,
            "When the newest recorded backup was taken, Unix seconds; 0 when none.",
        )?;

        Ok(Metrics {
            registry,
            requests_total,
            request_duration,
            in_flight,
            auth_failures,
            rate_limited,
            db_pool_connections,
            db_pool_max,
            db_up,
            db_query_duration,
            shutting_down,
            db_errors,
            refused_early,
            backup_last_success,
            log_lines_dropped,
        })
    }

    /// Exports [`BACKUP_LAST_SUCCESS`] (SQLite deployments, whose backups this service records).
    pub fn enable_backup_metric(&self) -> Result<(), prometheus::Error> {
        self.registry
            .register(Box::new(self.backup_last_success.clone()))
    }

    pub fn observe_request(&self, method: &str, endpoint: &str, status: &str, seconds: f64) {
        self.requests_total
            .with_label_values(&[method, endpoint, status])
            .inc();
        self.request_duration
            .with_label_values(&[method, endpoint])
            .observe(seconds);
    }

    pub fn db_timer(&self, operation: &str) -> prometheus::HistogramTimer {
        self.db_query_duration
            .with_label_values(&[operation])
            .start_timer()
    }

    pub fn encode(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::with_capacity(16 * 1024);
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

/// Renders [`CATALOG`] as the Markdown table in `docs/metrics.md`.
pub fn catalog_markdown() -> String {
    let mut out = String::from(
        "# Metrics exported by devsecops-app\n\n\
         Generated from `app/src/metrics.rs` (`cargo run -p devsecops-app --example metrics-doc`);\n\
         a test fails when this file and the code disagree.\n\n\
         | name | type | labels | meaning |\n|---|---|---|---|\n",
    );
    for (name, kind, labels, help) in CATALOG {
        out.push_str(&format!("| `{name}` | {kind} | {labels} | {help} |\n"));
    }
    out
}
