//! Prometheus text format for the Grafana security dashboard (node_exporter's textfile collector or
//! a Pushgateway): findings by severity, category and state, and SLA breaches by severity.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::assess::Assessment;
use crate::model::Severity;

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
