//! Prometheus text format for the Grafana security dashboard (node_exporter's textfile collector or
//! a Pushgateway): findings by severity, category and state, SLA breaches and findings with a fix
//! by severity, scanner errors, skipped results, and each advisory database's age. Label values
//! are escaped as the exposition format requires.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::assess::Assessment;
use crate::model::Severity;

/// A label value: backslash, double quote and line feed escaped (Prometheus exposition format).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub fn render(a: &Assessment) -> String {
    let mut counts: BTreeMap<(&str, &str, &str), usize> = BTreeMap::new();
    for item in &a.findings {
        let state = if item.suppressed_by.is_some() {
            "suppressed"
        } else {
            item.state.as_str()
        };
        *counts
            .entry((
                item.finding.severity.as_str(),
                item.finding.category.as_str(),
                state,
            ))
            .or_default() += 1;
    }
    for (_, entry) in &a.fixed {
        *counts
            .entry((entry.severity.as_str(), entry.category.as_str(), "fixed"))
            .or_default() += 1;
    }
    let mut out = String::from(
        "# HELP devsecops_findings Findings of the last devsecops run by severity, category and state.\n# TYPE devsecops_findings gauge\n",
    );
    for ((severity, category, state), n) in &counts {
        let _ = writeln!(out, "devsecops_findings{{severity=\"{severity}\",category=\"{category}\",state=\"{state}\"}} {n}");
    }
    out.push_str("# HELP devsecops_findings_sla_breached Open findings past their SLA, by severity.\n# TYPE devsecops_findings_sla_breached gauge\n");
    for severity in Severity::ALL {
        let n = a.count(|f| f.finding.severity == severity && f.sla_breached);
        let _ = writeln!(
            out,
            "devsecops_findings_sla_breached{{severity=\"{severity}\"}} {n}"
        );
    }
    out.push_str("# HELP devsecops_findings_fix_available Open findings with a known fixed version, by severity.\n# TYPE devsecops_findings_fix_available gauge\n");
    for severity in Severity::ALL {
        let n = a.count(|f| {
            f.finding.severity == severity && f.suppressed_by.is_none() && f.finding.fix_available()
        });
        let _ = writeln!(
            out,
            "devsecops_findings_fix_available{{severity=\"{severity}\"}} {n}"
        );
    }
    out.push_str("# HELP devsecops_scanner_errors Configured scanners that produced no readable result.\n# TYPE devsecops_scanner_errors gauge\n");
    let _ = writeln!(out, "devsecops_scanner_errors {}", a.scanner_errors.len());
    out.push_str("# HELP devsecops_ingest_warnings Results skipped as malformed while reading the reports.\n# TYPE devsecops_ingest_warnings gauge\n");
    let _ = writeln!(out, "devsecops_ingest_warnings {}", a.warnings.len());
    if a.databases.iter().any(|d| d.age_days.is_some()) {
        out.push_str("# HELP devsecops_advisory_db_age_days Age of each advisory database a scanner used.\n# TYPE devsecops_advisory_db_age_days gauge\n");
        for db in &a.databases {
            if let Some(days) = db.age_days {
                let _ = writeln!(
                    out,
                    "devsecops_advisory_db_age_days{{tool=\"{}\",database=\"{}\"}} {days}",
                    label(&db.database.tool),
                    label(&db.database.name)
                );
            }
        }
    }
    if let Some(policy) = &a.policy {
        out.push_str("# HELP devsecops_policy_changes Changes to the policy against the base revision, by kind and approval.\n# TYPE devsecops_policy_changes gauge\n");
        for kind in [
            crate::policy_diff::Kind::Weakening,
            crate::policy_diff::Kind::Strengthening,
            crate::policy_diff::Kind::Neutral,
        ] {
            for approved in [true, false] {
                let n = policy
                    .changes
                    .iter()
                    .filter(|c| c.kind == kind && c.unapproved() != approved)
                    .count();
                let _ = writeln!(
                    out,
                    "devsecops_policy_changes{{kind=\"{}\",approved=\"{approved}\"}} {n}",
                    kind.as_str()
                );
            }
        }
    }
    out.push_str("# HELP devsecops_gate_failed 1 when the last run failed the policy.\n# TYPE devsecops_gate_failed gauge\n");
    let _ = writeln!(out, "devsecops_gate_failed {}", u8::from(a.failed));
    out.push_str("# HELP devsecops_scan_timestamp_seconds When the last run was assessed.\n# TYPE devsecops_scan_timestamp_seconds gauge\n");
    let _ = writeln!(
        out,
        "devsecops_scan_timestamp_seconds {}",
        a.generated.unix_timestamp()
    );
    out
}
