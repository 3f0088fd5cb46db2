//! `devsecops.toml`: policy as code, scanners and report settings. Every key is checked; unknown
//! keys are errors (a typo must not silently relax the gate).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::model::{Category, Severity};

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub policy: Policy,
    #[serde(default)]
    pub paths: Paths,
    #[serde(default, rename = "scanner")]
    pub scanners: Vec<Scanner>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Only findings missing from the baseline can fail the build.
    New,
    /// Every finding at a failing severity fails the build.
    All,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default = "default_fail_on")]
    pub fail_on: Vec<Severity>,
    #[serde(default = "default_mode")]
    pub mode: Mode,
    /// Days a finding of each severity may stay open.
    #[serde(default = "default_sla")]
    pub sla_days: BTreeMap<Severity, u32>,
    /// Whether a finding past its SLA fails the build (whatever the mode).
    #[serde(default = "yes")]
    pub fail_on_sla_breach: bool,
    /// Whether an expired suppression fails the build (its finding counts again either way).
    #[serde(default)]
    pub fail_on_expired_suppression: bool,
    /// Whether a scanner that is not optional and produced no readable result (missing output,
    /// unreadable output, bad exit code, timeout) fails the build. Its findings are unknown, so
    /// passing would pass on findings nobody read.
    #[serde(default = "yes")]
    pub fail_on_scanner_error: bool,
    /// Whether a gate that read nothing (no report ingested, no scanner that produced a result)
    /// fails the build. Its zero findings say nothing about the code; it is said first in every
    /// report either way.
    #[serde(default = "yes")]
    pub fail_on_nothing_scanned: bool,
    /// Whether a report in which any result was skipped (malformed, or not scanned by the tool's
    /// own account) fails the build. Either way the skipped results are listed as warnings and
    /// said before the findings in every report; a report none of whose results could be read is
    /// an error whatever this says.
    #[serde(default)]
    pub fail_on_skipped_results: bool,
    /// Dependency findings with no known fix do not fail the build (they are still reported):
    /// what trivy's `--ignore-unfixed` and grype's `--only-fixed` do.
    #[serde(default)]
    pub ignore_unfixed: bool,
    /// Age in days beyond which an advisory database counts as stale: reported as a warning, or
    /// failing the build with `fail_on_stale_advisory_db`.
    #[serde(default = "default_db_age")]
    pub max_advisory_db_age_days: u32,
    #[serde(default)]
    pub fail_on_stale_advisory_db: bool,
    #[serde(default)]
    pub categories: BTreeMap<Category, CategoryPolicy>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryPolicy {
    pub fail_on: Vec<Severity>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paths {
    #[serde(default = "default_findings")]
    pub findings: PathBuf,
    #[serde(default = "default_baseline")]
    pub baseline: PathBuf,
    #[serde(default = "default_suppressions")]
    pub suppressions: PathBuf,
    #[serde(default = "default_history")]
    pub history: PathBuf,
    #[serde(default = "default_reports")]
    pub reports: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scanner {
    pub name: String,
    /// The format its output is ingested as (see `devsecops ingest --help`).
    pub format: String,
    pub command: Vec<String>,
    /// Where the tool writes its report; `stdout` or `stderr` to capture those instead.
    #[serde(default = "default_output")]
    pub output: String,
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// Exit codes that mean "ran fine" (scanners often exit 1 when they find something).
    #[serde(default = "default_ok_codes")]
    pub ok_exit_codes: Vec<i32>,
    /// A missing tool is reported as skipped instead of failing the scan.
    #[serde(default)]
    pub optional: bool,
    /// How to install the tool, shown when it is missing.
    #[serde(default)]
    pub install: Option<String>,
    /// Files the tool takes rules or exceptions from (`deny.toml`, `.semgrep`, `.trivyignore`): a
    /// file, a directory (every file under it), or `file.toml#table.key` for one TOML value.
    /// `gate --base` counts any change to them as weakening the policy.
    #[serde(default)]
    pub rules: Vec<String>,
}

fn yes() -> bool {
    true
}
fn default_db_age() -> u32 {
    7
}
fn default_fail_on() -> Vec<Severity> {
    vec![Severity::Critical, Severity::High]
}
fn default_mode() -> Mode {
    Mode::New
}
fn default_sla() -> BTreeMap<Severity, u32> {
    BTreeMap::from([
        (Severity::Critical, 7),
        (Severity::High, 30),
        (Severity::Medium, 90),
        (Severity::Low, 180),
    ])
}
fn default_findings() -> PathBuf {
    PathBuf::from(".devsecops/findings.json")
}
fn default_baseline() -> PathBuf {
    PathBuf::from(".devsecops/baseline.json")
}
fn default_suppressions() -> PathBuf {
    PathBuf::from(".devsecops/suppressions.toml")
}
fn default_history() -> PathBuf {
    PathBuf::from(".devsecops/history.db")
}
fn default_reports() -> PathBuf {
    PathBuf::from("reports")
}
fn default_output() -> String {
    "stdout".into()
}
fn default_timeout() -> u64 {
    300
}
fn default_ok_codes() -> Vec<i32> {
    vec![0, 1]
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            fail_on: default_fail_on(),
            mode: default_mode(),
            sla_days: default_sla(),
            fail_on_sla_breach: true,
            fail_on_expired_suppression: false,
            fail_on_scanner_error: true,
            fail_on_skipped_results: false,
            fail_on_nothing_scanned: true,
            ignore_unfixed: false,
            max_advisory_db_age_days: default_db_age(),
            fail_on_stale_advisory_db: false,
            categories: BTreeMap::new(),
        }
    }
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            findings: default_findings(),
            baseline: default_baseline(),
            suppressions: default_suppressions(),
            history: default_history(),
            reports: default_reports(),
        }
    }
}

impl Config {
    /// Reads `path`; a missing file means the defaults.
    pub fn load(path: &Path) -> Result<Config> {
        if !path.exists() {
            return Ok(Config::default());
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::input(path, e.to_string()))?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Config> {
        let config: Config =
            toml::from_str(text).map_err(|e| Error::input(path, toml_error(text, &e)))?;
        let mut names = std::collections::BTreeSet::new();
        for scanner in &config.scanners {
            if !names.insert(&scanner.name) {
                return Err(Error::input(
                    path,
                    format!("scanner {:?} is defined twice", scanner.name),
                ));
            }
            if scanner.command.is_empty() {
                return Err(Error::input(
                    path,
                    format!("scanner {:?}: command is empty", scanner.name),
                ));
            }
            // A glob would match nothing literally and leave the files it meant unwatched.
            if let Some(rule) = scanner
                .rules
                .iter()
                .find(|r| r.is_empty() || r.contains(['*', '?', '[']))
            {
                return Err(Error::input(
                    path,
                    format!(
                        "scanner {:?}: rules entry {rule:?} must name a file or directory (no globs)",
                        scanner.name
                    ),
                ));
            }
            if !crate::ingest::TOOLS
                .iter()
                .any(|(t, _)| *t == scanner.format)
            {
                return Err(Error::input(
                    path,
                    format!(
                        "scanner {:?}: unknown format {:?}",
                        scanner.name, scanner.format
                    ),
                ));
            }
        }
        Ok(config)
    }

    /// Whether a severity fails for a category, after per-category overrides.
    pub fn fails(&self, category: Category, severity: Severity) -> bool {
        match self.policy.categories.get(&category) {
            Some(over) => over.fail_on.contains(&severity),
            None => self.policy.fail_on.contains(&severity),
        }
    }

    /// Paths are relative to the directory holding devsecops.toml.
    pub fn resolve(&mut self, root: &Path) {
        for path in [
            &mut self.paths.findings,
            &mut self.paths.baseline,
            &mut self.paths.suppressions,
            &mut self.paths.history,
            &mut self.paths.reports,
        ] {
            if path.is_relative() {
                *path = root.join(&*path);
            }
        }
    }
}

/// A TOML error as "line L, column C: message".
pub fn toml_error(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().to_string();
    match err.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fail_on_critical_and_high_new_findings() {
        let c = Config::parse(Path::new("d.toml"), "").expect("empty is valid");
        assert_eq!(c.policy.mode, Mode::New);
        assert!(c.fails(Category::Sca, Severity::High));
        assert!(!c.fails(Category::Sca, Severity::Medium));
    }

    #[test]
    fn category_overrides_and_errors_with_positions() {
        let c = Config::parse(
            Path::new("d.toml"),
            "[policy]\nfail_on = [\"critical\"]\n[policy.categories.secret]\nfail_on = [\"critical\", \"high\", \"medium\"]\n",
        )
        .expect("valid");
        assert!(c.fails(Category::Secret, Severity::Medium));
        assert!(!c.fails(Category::Sca, Severity::High));
        let typo = Config::parse(Path::new("d.toml"), "[policy]\nfail_onn = []\n")
            .expect_err("unknown key");
        assert!(
            typo.to_string().starts_with("d.toml: line 2, column 1"),
            "{typo}"
        );
        let bad = Config::parse(Path::new("d.toml"), "[policy]\nfail_on = [\"severe\"]\n")
            .expect_err("bad severity");
        assert!(bad.to_string().contains("line 2"), "{bad}");
        let dup = Config::parse(
            Path::new("d.toml"),
            "[[scanner]]\nname = \"a\"\nformat = \"sarif\"\ncommand = [\"x\"]\n[[scanner]]\nname = \"a\"\nformat = \"sarif\"\ncommand = [\"y\"]\n",
        )
        .expect_err("duplicate");
        assert!(dup.to_string().contains("defined twice"));
    }
}
