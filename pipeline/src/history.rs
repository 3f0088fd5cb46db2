//! The history database (embedded SQLite): when each finding was first and last seen, for SLA ages,
//! and per-run totals, for trends in the dashboard.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::model::{Finding, Severity};

pub struct History {
    runtime: tokio::runtime::Runtime,
    pool: SqlitePool,
    path: std::path::PathBuf,
}

/// Totals of one recorded run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunTotals {
    pub at: String,
    pub total: i64,
    pub critical: i64,
    pub high: i64,
    pub medium: i64,
    pub low: i64,
    pub info: i64,
    pub new: i64,
    pub fixed: i64,
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS findings (fingerprint TEXT PRIMARY KEY, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL, severity TEXT NOT NULL, rule TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, total INTEGER NOT NULL, critical INTEGER NOT NULL, high INTEGER NOT NULL, medium INTEGER NOT NULL, low INTEGER NOT NULL, info INTEGER NOT NULL, new INTEGER NOT NULL, fixed INTEGER NOT NULL)",
];

impl History {
    pub fn open(path: &Path) -> Result<History> {
        let err = |e: &dyn std::fmt::Display| Error::input(path, format!("history database: {e}"));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| err(&e))?;
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(|e| err(&e))?
            .create_if_missing(true);
        let pool = runtime
            .block_on(
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(options),
            )
            .map_err(|e| err(&e))?;
        runtime
            .block_on(async {
                for statement in SCHEMA {
                    sqlx::query(statement).execute(&pool).await?;
                }
                Ok::<_, sqlx::Error>(())
            })
            .map_err(|e| err(&e))?;
        Ok(History {
            runtime,
            pool,
            path: path.to_path_buf(),
        })
    }

    /// Records a run and returns each current finding's first-seen time.
    pub fn record(
        &self,
        at: OffsetDateTime,
        findings: &[Finding],
        new: usize,
        fixed: usize,
    ) -> Result<HashMap<String, OffsetDateTime>> {
        let now = at
            .format(&Rfc3339)
            .map_err(|e| Error::input(&self.path, e.to_string()))?;
        let result = self.runtime.block_on(async {
            let mut tx = self.pool.begin().await?;
            // One statement for all findings: the rows travel as one JSON array parameter and
            // SQLite unpacks them with json_each, which is far faster than a statement per row.
            let rows: Vec<(&str, &str, &str)> = findings
                .iter()
                .map(|f| (f.fingerprint.as_str(), f.severity.as_str(), f.rule.as_str()))
                .collect();
            let payload = serde_json::to_string(&rows).unwrap_or_else(|_| "[]".into());
            // Read as plain pairs: 100,000 full rows held at once cost tens of megabytes.
            let returned: Vec<(String, String)> = sqlx::query_as(
                "INSERT INTO findings (fingerprint, first_seen, last_seen, severity, rule)
                 SELECT json_extract(value, '$[0]'), $2, $2, json_extract(value, '$[1]'), json_extract(value, '$[2]')
                 FROM json_each($1) WHERE true
                 ON CONFLICT(fingerprint) DO UPDATE SET last_seen = excluded.last_seen, severity = excluded.severity
                 RETURNING fingerprint, first_seen",
            )
            .bind(&payload)
            .bind(&now)
            .fetch_all(&mut *tx)
            .await?;
            // Most findings share a first-seen time: each distinct one is parsed once.
            let mut parsed: HashMap<String, Option<OffsetDateTime>> = HashMap::new();
            let mut first_seen = HashMap::with_capacity(returned.len());
            for (fp, seen) in returned {
                let time = *parsed
                    .entry(seen)
                    .or_insert_with_key(|s| OffsetDateTime::parse(s, &Rfc3339).ok());
                if let Some(time) = time {
                    first_seen.insert(fp, time);
                }
            }
            let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count() as i64;
            sqlx::query("INSERT INTO runs (at, total, critical, high, medium, low, info, new, fixed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
                .bind(&now)
                .bind(findings.len() as i64)
                .bind(count(Severity::Critical))
                .bind(count(Severity::High))
                .bind(count(Severity::Medium))
                .bind(count(Severity::Low))
                .bind(count(Severity::Info))
                .bind(new as i64)
                .bind(fixed as i64)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(first_seen)
        });
        result.map_err(|e| Error::input(&self.path, format!("history database: {e}")))
    }

    /// First-seen times of the given findings, without recording a run.
    pub fn lookup(&self, findings: &[Finding]) -> Result<HashMap<String, OffsetDateTime>> {
        let rows = self
            .runtime
            .block_on(
                sqlx::query("SELECT fingerprint, first_seen FROM findings").fetch_all(&self.pool),
            )
            .map_err(|e| Error::input(&self.path, format!("history database: {e}")))?;
        let wanted: std::collections::HashSet<&str> =
            findings.iter().map(|f| f.fingerprint.as_str()).collect();
        Ok(rows
            .iter()
            .filter_map(|r| {
                let fp: String = r.try_get("fingerprint").ok()?;
                let seen: String = r.try_get("first_seen").ok()?;
                wanted.contains(fp.as_str()).then_some(())?;
                OffsetDateTime::parse(&seen, &Rfc3339).ok().map(|t| (fp, t))
            })
            .collect())
    }

    /// The most recent runs, oldest first.
    pub fn trend(&self, limit: u32) -> Result<Vec<RunTotals>> {
        let rows = self
            .runtime
            .block_on(
                sqlx::query("SELECT at, total, critical, high, medium, low, info, new, fixed FROM (SELECT * FROM runs ORDER BY id DESC LIMIT $1) ORDER BY id")
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool),
            )
            .map_err(|e| Error::input(&self.path, format!("history database: {e}")))?;
        rows.iter()
            .map(|r| {
                Ok(RunTotals {
                    at: r.try_get("at")?,
                    total: r.try_get("total")?,
                    critical: r.try_get("critical")?,
                    high: r.try_get("high")?,
                    medium: r.try_get("medium")?,
                    low: r.try_get("low")?,
                    info: r.try_get("info")?,
                    new: r.try_get("new")?,
                    fixed: r.try_get("fixed")?,
                })
            })
            .collect::<std::result::Result<Vec<_>, sqlx::Error>>()
            .map_err(|e| Error::input(&self.path, format!("history database: {e}")))
    }
}
