//! The decision: every finding's state against the baseline, its suppression, its age against the
//! SLA, and whether it fails the build under the policy.

use std::collections::HashMap;

use serde::Serialize;
use time::{Date, OffsetDateTime};

use crate::baseline::{Baseline, Entry, State};
use crate::config::{Config, Mode};
use crate::model::{AdvisoryDb, Category, Finding};
use crate::store::ScannerError;
use crate::suppress::Suppression;

#[derive(Debug, Clone, Serialize)]
pub struct Assessed {
    #[serde(flatten)]
    pub finding: Finding,
    pub state: State,
    /// Index (1-based) of the active suppression that covers it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed_by: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppression_justification: Option<String>,
    pub age_days: i64,
    pub sla_days: Option<u32>,
    pub sla_breached: bool,
    /// A dependency finding with no known fix that the policy (`ignore_unfixed`) lets pass.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unfixed_ignored: bool,
    /// What the newest VEX statement about it states, and whose statement it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vex: Option<crate::vex::Decision>,
    /// Whether this finding fails the build.
    pub fails: bool,
}

impl Assessed {
    /// Whether a person has accepted it: suppressed, or already in the baseline. Consumers that
    /// ignore SARIF suppressions and baseline states get findings without these.
    pub fn is_accepted(&self) -> bool {
        self.suppressed_by.is_some() || self.state == State::Unchanged
    }
}

/// An advisory database with its age on the day of the assessment.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseStatus {
    #[serde(flatten)]
    pub database: AdvisoryDb,
    /// Days since it was updated; absent when the tool does not say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_days: Option<i64>,
    pub stale: bool,
}

/// What the run itself produced besides findings: scanners without a readable result, results
/// skipped as malformed, advisory databases used.
#[derive(Debug, Clone, Default)]
pub struct RunContext {
    pub scanner_errors: Vec<ScannerError>,
    pub warnings: Vec<String>,
    pub databases: Vec<AdvisoryDb>,
    /// Ingested VEX statements: `not_affected` and `fixed` ones accept findings as suppressions.
    pub vex: Vec<crate::vex::Statement>,
    /// No report was read and no scanner produced a result ([`crate::store::Store::nothing_scanned`]).
    pub nothing_scanned: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SuppressionReport {
    pub index: usize,
    pub matches: String,
    pub owner: String,
    pub justification: String,
    pub expires: String,
    pub expired: bool,
    pub matched: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Assessment {
    #[serde(with = "time::serde::rfc3339")]
    pub generated: OffsetDateTime,
    pub findings: Vec<Assessed>,
    /// Baseline findings no longer reported.
    pub fixed: Vec<(String, Entry)>,
    pub suppressions: Vec<SuppressionReport>,
    /// Scanners that were configured but produced no readable result (missing, failed, timed out,
    /// unreadable output).
    pub scanner_errors: Vec<ScannerError>,
    /// Results skipped as malformed while reading the reports, each naming file and index.
    pub warnings: Vec<String>,
    pub databases: Vec<DatabaseStatus>,
    /// Nothing was read: no report ingested, no scanner with a result (said first everywhere).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub nothing_scanned: bool,
    pub failed: bool,
    /// Why the build fails, one line per reason; scanner errors first.
    pub reasons: Vec<String>,
    /// What a reader must know before trusting the result, though it does not fail the build:
    /// optional scanners that did not run, skipped results, stale or undated advisory databases.
    pub notices: Vec<String>,
    /// Recent runs from the history database, oldest first (for the dashboard's trend).
    #[serde(skip)]
    pub trend: Vec<crate::history::RunTotals>,
    /// With `--base`: how the change's policy differs from the base's, and what is approved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<crate::policy_diff::PolicyReport>,
}

impl Assessment {
    pub fn count(&self, predicate: impl Fn(&Assessed) -> bool) -> usize {
        self.findings.iter().filter(|a| predicate(a)).count()
    }
}

pub fn assess(
    config: &Config,
    findings: Vec<Finding>,
    baseline: Option<&Baseline>,
    suppressions: &[Suppression],
    first_seen: &HashMap<String, OffsetDateTime>,
    now: OffsetDateTime,
    run: RunContext,
) -> Assessment {
    let today: Date = now.date();
    let mut matched = vec![0usize; suppressions.len()];
    // VEX statements that can accept findings are listed after the suppressions, numbered on.
    let vex_index: HashMap<usize, usize> = run
        .vex
        .iter()
        .enumerate()
        .filter(|(_, s)| s.status.accepts())
        .enumerate()
        .map(|(k, (at, _))| (at, suppressions.len() + 1 + k))
        .collect();
    let mut vex_matched = vec![0usize; run.vex.len()];
    let mut assessed = Vec::with_capacity(findings.len());
    for finding in findings {
        let state = baseline
            .map(|b| b.state_of(&finding.fingerprint))
            .unwrap_or(State::New);
        let mut active = None;
        for (i, s) in suppressions.iter().enumerate() {
            if s.matches(&finding) {
                matched[i] += 1;
                if !s.is_expired(today) && active.is_none() {
                    active = Some(s);
                }
            }
        }
        let vex = crate::vex::deciding(&run.vex, &finding);
        if let Some((at, _)) = vex {
            vex_matched[at] += 1;
        }
        let vex = vex.map(|(at, s)| (at, crate::vex::Decision::of(s, today)));
        let by_vex = match &vex {
            Some((at, d)) if active.is_none() && d.accepts => Some((vex_index[at], &run.vex[*at])),
            _ => None,
        };
        let accepted = active.is_some() || by_vex.is_some();
        let seen = first_seen.get(&finding.fingerprint).copied().unwrap_or(now);
        let age_days = (now - seen).whole_days().max(0);
        let sla_days = config.policy.sla_days.get(&finding.severity).copied();
        let sla_breached = !accepted && sla_days.is_some_and(|d| age_days > i64::from(d));
        let severity_fails = config.fails(finding.category, finding.severity);
        let unfixed_ignored = config.policy.ignore_unfixed
            && matches!(finding.category, Category::Sca | Category::Container)
            && finding.is_dependency()
            && !finding.fix_available();
        let fails = !accepted
            && !unfixed_ignored
            && ((severity_fails && (config.policy.mode == Mode::All || state == State::New))
                || (sla_breached && config.policy.fail_on_sla_breach));
        assessed.push(Assessed {
            suppressed_by: active.map(|s| s.index).or(by_vex.map(|(i, _)| i)),
            suppression_justification: active
                .map(|s| s.justification.clone())
                .or(by_vex.map(|(_, s)| s.describe())),
            finding,
            state,
            age_days,
            sla_days,
            sla_breached,
            unfixed_ignored,
            vex: vex.map(|(_, d)| d),
            fails,
        });
    }
    let current: std::collections::HashSet<&str> = assessed
        .iter()
        .map(|a| a.finding.fingerprint.as_str())
        .collect();
    let fixed = baseline
        .map(|b| {
            b.findings
                .iter()
                .filter(|(fp, _)| !current.contains(fp.as_str()))
                .map(|(fp, e)| (fp.clone(), e.clone()))
                .collect()
        })
        .unwrap_or_default();
    let mut suppressions: Vec<SuppressionReport> = suppressions
        .iter()
        .zip(&matched)
        .map(|(s, n)| SuppressionReport {
            index: s.index,
            matches: s.describe(),
            owner: s.owner.clone(),
            justification: s.justification.clone(),
            expires: s.expires.to_string(),
            expired: s.is_expired(today),
            matched: *n,
        })
        .collect();

    for (at, statement) in run.vex.iter().enumerate() {
        if let Some(index) = vex_index.get(&at) {
            suppressions.push(SuppressionReport {
                index: *index,
                matches: format!(
                    "VEX {} for {} (statement #{} of {})",
                    statement.vulnerability,
                    statement.products.join(", "),
                    statement.index,
                    statement.source
                ),
                owner: statement.author.clone(),
                justification: statement.describe(),
                expires: statement
                    .expires
                    .clone()
                    .unwrap_or_else(|| "never (a VEX statement)".into()),
                expired: statement.is_expired(today),
                matched: vex_matched[at],
            });
        }
    }
    let mut reasons = Vec::new();
    let mut notices = Vec::new();
    if run.nothing_scanned {
        let line = "nothing was scanned: no report was ingested and no scanner produced a result, \
                    so there were no findings to find"
            .to_string();
        if config.policy.fail_on_nothing_scanned {
            reasons.push(line);
        } else {
            notices.push(line);
        }
    }
    for e in &run.scanner_errors {
        let line = format!(
            "scanner {} produced no readable result: {}",
            e.scanner, e.reason
        );
        if e.optional || !config.policy.fail_on_scanner_error {
            notices.push(line);
        } else {
            reasons.push(line);
        }
    }
    if !run.warnings.is_empty() {
        let line = format!(
            "{} malformed result(s) skipped while reading the reports (listed under warnings)",
            run.warnings.len()
        );
        if config.policy.fail_on_skipped_results {
            reasons.push(line);
        } else {
            notices.push(line);
        }
    }
    let databases: Vec<DatabaseStatus> = run
        .databases
        .into_iter()
        .map(|database| {
            let age_days = database
                .updated
                .as_deref()
                .and_then(|u| u.get(..10))
                .and_then(|d| {
                    Date::parse(d, time::macros::format_description!("[year]-[month]-[day]")).ok()
                })
                .map(|d| (today - d).whole_days());
            let stale =
                age_days.is_some_and(|d| d > i64::from(config.policy.max_advisory_db_age_days));
            DatabaseStatus {
                database,
                age_days,
                stale,
            }
        })
        .collect();
    for db in &databases {
        let name = format!("{} of {}", db.database.name, db.database.tool);
        match db.age_days {
            Some(days) if db.stale => {
                let line = format!(
                    "advisory database {name} is {days} days old (policy: at most {})",
                    config.policy.max_advisory_db_age_days
                );
                if config.policy.fail_on_stale_advisory_db {
                    reasons.push(line);
                } else {
                    notices.push(line);
                }
            }
            Some(_) => {}
            None => {
                // Its age is unknown, so it cannot be shown to be fresh: under a policy that fails
                // on stale databases, that fails too.
                let line = format!(
                    "advisory database {name} does not say when it was updated (policy: at most {} days old)",
                    config.policy.max_advisory_db_age_days
                );
                if config.policy.fail_on_stale_advisory_db {
                    reasons.push(line);
                } else {
                    notices.push(line);
                }
            }
        }
    }
    let failing = assessed.iter().filter(|a| a.fails).count();
    if failing > 0 {
        let breached = assessed
            .iter()
            .filter(|a| a.fails && a.sla_breached)
            .count();
        reasons.push(format!(
            "{failing} finding(s) fail the policy ({} mode, failing severities {}){}",
            match config.policy.mode {
                Mode::New => "new-only",
                Mode::All => "all",
            },
            config
                .policy
                .fail_on
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            if breached > 0 {
                format!(", {breached} past their SLA")
            } else {
                String::new()
            }
        ));
    }
    let expired: Vec<&SuppressionReport> = suppressions.iter().filter(|s| s.expired).collect();
    if config.policy.fail_on_expired_suppression && !expired.is_empty() {
        reasons.push(format!("{} suppression(s) expired", expired.len()));
    }
    Assessment {
        generated: now,
        failed: !reasons.is_empty(),
        findings: assessed,
        fixed,
        suppressions,
        scanner_errors: run.scanner_errors,
        warnings: run.warnings,
        databases,
        nothing_scanned: run.nothing_scanned,
        reasons,
        notices,
        trend: Vec::new(),
        policy: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{fingerprint_all, Category, RawFinding, Severity};

    fn finding(severity: Severity) -> Finding {
        fingerprint_all(vec![RawFinding::new(
            "t",
            Category::Sast,
            severity,
            "r",
            "x",
        )
        .at("a.rs", Some(1), None)])
        .remove(0)
    }

    #[test]
    fn findings_past_their_sla_fail_even_when_baselined() {
        let config = Config::default();
        let f = finding(Severity::Medium);
        let baseline = Baseline::from_findings(std::slice::from_ref(&f));
        let now = OffsetDateTime::now_utc();
        let young = HashMap::from([(f.fingerprint.clone(), now - time::Duration::days(10))]);
        let a = assess(
            &config,
            vec![f.clone()],
            Some(&baseline),
            &[],
            &young,
            now,
            RunContext::default(),
        );
        assert!(!a.failed, "medium, unchanged, 10 of 90 days");
        assert_eq!(a.findings[0].age_days, 10);
        let old = HashMap::from([(f.fingerprint.clone(), now - time::Duration::days(91))]);
        let a = assess(
            &config,
            vec![f.clone()],
            Some(&baseline),
            &[],
            &old,
            now,
            RunContext::default(),
        );
        assert!(
            a.failed && a.findings[0].sla_breached,
            "91 days > 90-day SLA"
        );
        assert!(a.reasons[0].contains("past their SLA"), "{:?}", a.reasons);
        let mut lenient = Config::default();
        lenient.policy.fail_on_sla_breach = false;
        let a = assess(
            &lenient,
            vec![f],
            Some(&baseline),
            &[],
            &old,
            now,
            RunContext::default(),
        );
        assert!(
            !a.failed && a.findings[0].sla_breached,
            "reported, not failing"
        );
    }

    #[test]
    fn category_overrides_decide_what_fails() {
        let mut config = Config::default();
        config.policy.categories.insert(
            Category::Sast,
            crate::config::CategoryPolicy {
                fail_on: vec![Severity::Critical],
            },
        );
        let now = OffsetDateTime::now_utc();
        let a = assess(
            &config,
            vec![finding(Severity::High)],
            None,
            &[],
            &HashMap::new(),
            now,
            RunContext::default(),
        );
        assert!(
            !a.failed,
            "high sast does not fail when sast fails on critical only"
        );
        let a = assess(
            &config,
            vec![finding(Severity::Critical)],
            None,
            &[],
            &HashMap::new(),
            now,
            RunContext::default(),
        );
        assert!(a.failed);
    }
}
