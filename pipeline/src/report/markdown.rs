//! A Markdown summary for pull requests and `$GITHUB_STEP_SUMMARY`.

use std::fmt::Write;

use crate::assess::Assessment;
use crate::baseline::State;
use crate::model::Severity;

pub fn render(a: &Assessment) -> String {
    let mut out = String::new();
    let verdict = if a.failed { "❌ failed" } else { "✅ passed" };
    let _ = writeln!(out, "## devsecops: {verdict}\n");
    for reason in &a.reasons {
        let _ = writeln!(out, "- {reason}");
    }
    if !a.reasons.is_empty() {
        out.push('\n');
    }
    out.push_str(
        "| severity | new | unchanged | suppressed | fixed |\n|---|---:|---:|---:|---:|\n",
    );
    for severity in Severity::ALL {
        let count = |state: State| {
            a.count(|f| {
                f.finding.severity == severity && f.state == state && f.suppressed_by.is_none()
            })
        };
        let suppressed = a.count(|f| f.finding.severity == severity && f.suppressed_by.is_some());
        let fixed = a
            .fixed
            .iter()
            .filter(|(_, e)| e.severity == severity)
            .count();
        let _ = writeln!(
            out,
            "| {severity} | {} | {} | {suppressed} | {fixed} |",
            count(State::New),
            count(State::Unchanged)
        );
    }
    let failing: Vec<_> = a.findings.iter().filter(|f| f.fails).collect();
    if !failing.is_empty() {
        let _ = writeln!(out, "\n### Failing findings ({})\n", failing.len());
        for item in failing.iter().take(50) {
            let f = &item.finding;
            let place = match f.place() {
                p if p.is_empty() => p,
                p => format!("`{p}`"),
            };
            let _ = writeln!(
                out,
                "- **{}** `{}` {} {place} ({}){}",
                f.severity,
                f.rule,
                f.title.replace('|', "\\|"),
                f.tools.iter().cloned().collect::<Vec<_>>().join(", "),
                if item.sla_breached {
                    format!(", open {} days, past its SLA", item.age_days)
                } else {
                    String::new()
                }
            );
        }
        if failing.len() > 50 {
            let _ = writeln!(
                out,
                "- … and {} more (see the SARIF report)",
                failing.len() - 50
            );
        }
    }
    let expired: Vec<_> = a.suppressions.iter().filter(|s| s.expired).collect();
    let unused: Vec<_> = a.suppressions.iter().filter(|s| s.matched == 0).collect();
    if !expired.is_empty() || !unused.is_empty() {
        out.push_str("\n### Suppressions to review\n\n");
        for s in expired {
            let _ = writeln!(
                out,
                "- #{} ({}) expired on {}, owner {}: its findings count again",
                s.index, s.matches, s.expires, s.owner
            );
        }
        for s in unused {
            let _ = writeln!(
                out,
                "- #{} ({}) matches nothing: remove it",
                s.index, s.matches
            );
        }
    }
    if !a.skipped.is_empty() {
        out.push_str("\n### Scanners that did not run\n\n");
        for (tool, why) in &a.skipped {
            let _ = writeln!(out, "- {tool}: {why}");
        }
    }
    out
}
