//! The decision: every finding's state against the baseline, its suppression, its age against the
//! SLA, and whether it fails the build under the policy.

use std::collections::HashMap;

use serde::Serialize;
use time::{Date, OffsetDateTime};

use crate::baseline::{Baseline, Entry, State};
use crate::config::{Config, Mode};
use crate::model::Finding;
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
    /// Whether this finding fails the build.
    pub fails: bool,
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
    /// Tools that were configured but did not run (optional and missing, failed or timed out).
    pub skipped: Vec<(String, String)>,
    pub failed: bool,
    /// Why the build fails, one line per reason.
    pub reasons: Vec<String>,
    /// Recent runs from the history database, oldest first (for the dashboard's trend).
    #[serde(skip)]
    pub trend: Vec<crate::history::RunTotals>,
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
    skipped: Vec<(String, String)>,
) -> Assessment {
    let today: Date = now.date();
    let mut matched = vec![0usize; suppressions.len()];
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
        let seen = first_seen.get(&finding.fingerprint).copied().unwrap_or(now);
        let age_days = (now - seen).whole_days().max(0);
        let sla_days = config.policy.sla_days.get(&finding.severity).copied();
        let sla_breached = active.is_none() && sla_days.is_some_and(|d| age_days > i64::from(d));
        let severity_fails = config.fails(finding.category, finding.severity);
        let fails = active.is_none()
            && ((severity_fails && (config.policy.mode == Mode::All || state == State::New))
                || (sla_breached && config.policy.fail_on_sla_breach));
        assessed.push(Assessed {
            suppressed_by: active.map(|s| s.index),
            suppression_justification: active.map(|s| s.justification.clone()),
            finding,
            state,
            age_days,
            sla_days,
            sla_breached,
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
    let suppressions: Vec<SuppressionReport> = suppressions
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

    let mut reasons = Vec::new();
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
        skipped,
        reasons,
        trend: Vec::new(),
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
            vec![],
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
            vec![],
        );
        assert!(
            a.failed && a.findings[0].sla_breached,
            "91 days > 90-day SLA"
        );
        assert!(a.reasons[0].contains("past their SLA"), "{:?}", a.reasons);
        let mut lenient = Config::default();
        lenient.policy.fail_on_sla_breach = false;
        let a = assess(&lenient, vec![f], Some(&baseline), &[], &old, now, vec![]);
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
            vec![],
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
            vec![],
        );
        assert!(a.failed);
    }
}
