//! JUnit XML for Jenkins: one test suite per category, one test case per finding. Failing findings
//! are failures, suppressed ones skipped, the rest pass. A suite `run` comes first with what the run
//! itself tells: scanners without a readable result (errors when they fail the gate, skipped when
//! optional), results skipped as malformed, and the advisory databases used. With `--base`, a
//! suite `policy` follows: one test case per change to the policy, failing when it weakens the
//! policy without approval, and one failing case per problem. Every string is escaped
//! (attributes and text), so no file name or message can add elements.

use std::fmt::Write;

use super::escape;
use crate::assess::Assessment;
use crate::model::Category;

pub fn render(a: &Assessment) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let (policy_cases, policy_failures) = a
        .policy
        .as_ref()
        .map(|p| {
            (
                p.changes.len() + p.problems.len(),
                p.unapproved() + p.problems.len(),
            )
        })
        .unwrap_or((0, 0));
    // Databases too old (or undated) under a policy that fails on it, and skipped results under
    // fail_on_skipped_results, are failures of the run suite, as the gate counts them.
    let db_fails = |db: &crate::assess::DatabaseStatus| {
        let name = format!(
            "advisory database {} of {} ",
            db.database.name, db.database.tool
        );
        a.reasons.iter().any(|r| r.starts_with(&name))
    };
    let failing_dbs = a.databases.iter().filter(|db| db_fails(db)).count();
    let warnings_fail = a.reasons.iter().any(|r| {
        r.ends_with("malformed result(s) skipped while reading the reports (listed under warnings)")
    });
    let run_failures = failing_dbs + if warnings_fail { a.warnings.len() } else { 0 };
    let failures = a.count(|f| f.fails) + policy_failures + run_failures;
    let failing_scanners: Vec<_> = a
        .scanner_errors
        .iter()
        .filter(|e| {
            a.reasons
                .iter()
                .any(|r| r.starts_with(&format!("scanner {} ", e.scanner)))
        })
        .collect();
    // Nothing scanned is a case of its own, first, so a JUnit reader never sees an empty pass.
    let nothing = usize::from(a.nothing_scanned);
    let nothing_fails = a.nothing_scanned
        && a.reasons
            .iter()
            .any(|r| r.starts_with("nothing was scanned"));
    let run_errors = failing_scanners.len() + usize::from(nothing_fails);
    let run_cases = nothing + a.scanner_errors.len() + a.warnings.len() + a.databases.len();
    let _ = writeln!(
        out,
        "<testsuites name=\"devsecops\" tests=\"{}\" failures=\"{failures}\" errors=\"{}\">",
        a.findings.len() + run_cases + policy_cases,
        run_errors
    );
    if run_cases > 0 {
        let skipped = run_cases
            - run_errors
            - a.databases.len()
            - if warnings_fail { a.warnings.len() } else { 0 };
        let _ = writeln!(
            out,
            "  <testsuite name=\"run\" tests=\"{run_cases}\" failures=\"{run_failures}\" errors=\"{run_errors}\" skipped=\"{skipped}\">"
        );
        if a.nothing_scanned {
            let _ = writeln!(
                out,
                "    <testcase classname=\"devsecops.run\" name=\"something was scanned\">\n      <{} message=\"nothing was scanned: no report was ingested and no scanner produced a result\"/>\n    </testcase>",
                if nothing_fails { "error" } else { "skipped" }
            );
        }
        for e in &a.scanner_errors {
            let failing = failing_scanners.iter().any(|f| f.scanner == e.scanner);
            let _ = writeln!(
                out,
                "    <testcase classname=\"devsecops.scanners\" name=\"{}\">\n      <{} message=\"{}\"/>\n    </testcase>",
                escape(&e.scanner),
                if failing { "error" } else { "skipped" },
                escape(&format!("no readable result: {}", e.reason))
            );
        }
        for (i, w) in a.warnings.iter().enumerate() {
            let _ = writeln!(
                out,
                "    <testcase classname=\"devsecops.warnings\" name=\"warning {}\">\n      <{} message=\"{}\"/>\n    </testcase>",
                i + 1,
                if warnings_fail { "failure" } else { "skipped" },
                escape(w)
            );
        }
        for db in &a.databases {
            let name = format!(
                "{} ({}){}: {}",
                db.database.name,
                db.database.tool,
                db.database
                    .commit
                    .as_deref()
                    .map(|c| format!(" at {c}"))
                    .unwrap_or_default(),
                match (&db.database.updated, db.age_days) {
                    (Some(u), Some(d)) => format!(
                        "updated {u}, {d} days old{}",
                        if db.stale { ", stale" } else { "" }
                    ),
                    _ => "update date unknown".to_string(),
                }
            );
            if db_fails(db) {
                let _ = writeln!(
                    out,
                    "    <testcase classname=\"devsecops.advisory-databases\" name=\"{}\">\n      <failure type=\"policy\" message=\"older than the policy allows, or undated\"/>\n    </testcase>",
                    escape(&name)
                );
            } else {
                let _ = writeln!(
                    out,
                    "    <testcase classname=\"devsecops.advisory-databases\" name=\"{}\"/>",
                    escape(&name)
                );
            }
        }
        out.push_str("  </testsuite>\n");
    }
    if let Some(policy) = a.policy.as_ref().filter(|_| policy_cases > 0) {
        let _ = writeln!(
            out,
            "  <testsuite name=\"policy\" tests=\"{policy_cases}\" failures=\"{policy_failures}\" errors=\"0\" skipped=\"0\">"
        );
        for change in &policy.changes {
            let _ = write!(
                out,
                "    <testcase classname=\"devsecops.policy.{}\" name=\"{}\" file=\"{}\"",
                change.kind.as_str(),
                escape(&crate::policy_diff::PolicyReport::line(change)),
                escape(&change.file)
            );
            if change.unapproved() {
                let _ = writeln!(
                    out,
                    ">\n      <failure type=\"policy\" message=\"{}\"/>\n    </testcase>",
                    escape(&format!(
                        "weakens the policy of {} without approval (change {})",
                        policy.base, policy.change_id
                    ))
                );
            } else {
                out.push_str("/>\n");
            }
        }
        for problem in &policy.problems {
            let _ = writeln!(
                out,
                "    <testcase classname=\"devsecops.policy.problem\" name=\"{}\">\n      <failure type=\"policy\" message=\"{}\"/>\n    </testcase>",
                escape(problem),
                escape(problem)
            );
        }
        out.push_str("  </testsuite>\n");
    }
    for category in Category::ALL {
        let items: Vec<_> = a
            .findings
            .iter()
            .filter(|f| f.finding.category == category)
            .collect();
        if items.is_empty() {
            continue;
        }
        let failed = items.iter().filter(|f| f.fails).count();
        let skipped = items
            .iter()
            .filter(|f| !f.fails && f.suppressed_by.is_some())
            .count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{category}\" tests=\"{}\" failures=\"{failed}\" errors=\"0\" skipped=\"{skipped}\">",
            items.len()
        );
        for item in items {
            let f = &item.finding;
            let fix = f.fix_text();
            let _ = write!(
                out,
                "    <testcase classname=\"devsecops.{category}.{}\" name=\"{}\" file=\"{}\"",
                escape(&f.tools.iter().cloned().collect::<Vec<_>>().join("+")),
                escape(&format!(
                    "{} {}: {} ({}){}",
                    f.severity.as_str(),
                    f.rule,
                    f.title,
                    f.place(),
                    if fix.is_empty() {
                        String::new()
                    } else {
                        format!(", {fix}")
                    }
                )),
                escape(f.location.as_ref().map(|l| l.path.as_str()).unwrap_or(""))
            );
            if item.fails {
                let _ =
                    writeln!(
                    out,
                    ">\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>",
                    escape(f.severity.as_str()),
                    escape(&format!(
                        "{} {} finding ({}){}",
                        item.state.as_str(),
                        f.severity.as_str(),
                        f.fingerprint,
                        if item.sla_breached { ", past its SLA" } else { "" }
                    )),
                    escape(f.description.as_deref().unwrap_or(&f.title))
                );
            } else if let Some(why) = &item.suppression_justification {
                let _ = writeln!(
                    out,
                    ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                    escape(&format!("suppressed: {why}"))
                );
            } else {
                out.push_str("/>\n");
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
