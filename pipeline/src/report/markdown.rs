//! A Markdown summary for pull requests and `$GITHUB_STEP_SUMMARY`. What could make the result
//! untrustworthy comes first (why it fails, scanners without a readable result, stale advisory
//! databases, skipped results), then, with `--base`, every change to the policy. Every string from a scanner is escaped (`markdown_text`) or put in
//! a code span fenced longer than any backtick run inside it, so no rule, file name or message can
//! add markup, HTML or links to the comment CI posts.

use std::fmt::Write;

use super::markdown_text as md;
use crate::assess::Assessment;
use crate::baseline::State;
use crate::model::Severity;

/// A CommonMark code span holding `text` literally (on one line).
fn code(text: &str) -> String {
    let text: String = text
        .chars()
        .map(|c| {
            if c == '\n' || c == '\r' || c.is_control() {
                ' '
            } else {
                c
            }
        })
        .collect();
    if text.trim().is_empty() {
        return md(&text);
    }
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    // A space on both sides keeps a leading or trailing backtick out of the fence; CommonMark
    // strips one such space.
    format!("{fence} {text} {fence}")
}

/// The policy diff against the base, where reviewers read: every change, the approvals, and how
/// to approve what is not.
fn policy_section(out: &mut String, p: &crate::policy_diff::PolicyReport) {
    use crate::policy_diff::Kind;
    let _ = writeln!(
        out,
        "### Policy changes against {} ({})\n",
        code(&p.base),
        code(p.base_commit.get(..12).unwrap_or(&p.base_commit))
    );
    if p.changes.is_empty() {
        out.push_str(
            "None: the policy, scanners, suppressions, baseline and rule files are the base's.\n",
        );
    }
    for change in &p.changes {
        // Only fixed words go inside the emphasis: a name could end it early.
        let label = match change.kind {
            Kind::Weakening if change.approved_by.is_empty() => {
                "**❌ weakening, not approved**".to_string()
            }
            Kind::Weakening => format!(
                "**✅ weakening, approved** by {}",
                md(&change.approved_by.join(" and "))
            ),
            Kind::Strengthening => "**strengthening**".to_string(),
            Kind::Neutral => "**neutral**".to_string(),
        };
        let _ = writeln!(
            out,
            "- {label}: {} ({})",
            md(&change.what),
            code(&change.file)
        );
    }
    for approval in &p.approvals {
        let _ = writeln!(
            out,
            "- approval {} by {} (key {})",
            code(&approval.file),
            md(&approval.principals),
            code(&approval.key)
        );
    }
    for note in &p.notes {
        let _ = writeln!(out, "- ⚠️ {}", md(note));
    }
    let _ = writeln!(out, "\nChange id: {}", code(&p.change_id));
    if p.unapproved() > 0 {
        let _ = writeln!(
            out,
            "\nTo approve, a code owner of the weakened files signs this change with a key listed in {} on the base: {}",
            code(crate::policy_diff::ALLOWED_SIGNERS),
            code(&format!(
                "devsecops policy --base {} --message | ssh-keygen -Y sign -n {} -f ~/.ssh/id_ed25519 > {}/NAME.sig",
                p.base,
                crate::approval::NAMESPACE,
                crate::policy_diff::APPROVALS
            ))
        );
    }
    out.push('\n');
}

pub fn render(a: &Assessment) -> String {
    let mut out = String::new();
    let verdict = if a.failed { "❌ failed" } else { "✅ passed" };
    let _ = writeln!(out, "## devsecops: {verdict}\n");
    for reason in &a.reasons {
        let _ = writeln!(out, "- {}", md(reason));
    }
    for notice in &a.notices {
        let _ = writeln!(out, "- ⚠️ {}", md(notice));
    }
    if !a.reasons.is_empty() || !a.notices.is_empty() {
        out.push('\n');
    }
    if let Some(policy) = &a.policy {
        policy_section(&mut out, policy);
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
                p => code(&p),
            };
            let fix = f.fix_text();
            let _ = writeln!(
                out,
                "- **{}** {} {} {place} ({}){}{}",
                f.severity,
                code(&f.rule),
                md(&f.title),
                md(&f.tools.iter().cloned().collect::<Vec<_>>().join(", ")),
                if fix.is_empty() {
                    String::new()
                } else {
                    format!(", {}", md(&fix))
                },
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
                "- \\#{} ({}) expired on {}, owner {}: its findings count again",
                s.index,
                md(&s.matches),
                md(&s.expires),
                md(&s.owner)
            );
        }
        for s in unused {
            let _ = writeln!(
                out,
                "- \\#{} ({}) matches nothing: remove it",
                s.index,
                md(&s.matches)
            );
        }
    }
    let decided: Vec<_> = a.findings.iter().filter(|f| f.vex.is_some()).collect();
    if !decided.is_empty() {
        let _ = writeln!(out, "\n### Decided by VEX statements ({})\n", decided.len());
        for item in decided.iter().take(50) {
            let f = &item.finding;
            let Some(d) = &item.vex else { continue };
            let _ = writeln!(
                out,
                "- {} {}: {}{}, stated by {} on {} ({}){}",
                code(&f.rule),
                md(&f.place()),
                d.status.as_str(),
                d.justification
                    .as_deref()
                    .map(|j| format!(" ({})", md(j)))
                    .unwrap_or_default(),
                md(&d.author),
                md(&d.timestamp),
                md(&d.source),
                if d.accepts { ", accepted" } else { "" }
            );
        }
    }
    if !a.databases.is_empty() {
        out.push_str("\n### Advisory databases\n\n");
        for db in &a.databases {
            let _ = writeln!(
                out,
                "- {} ({}): {}",
                md(&db.database.name),
                md(&db.database.tool),
                md(
                    &match (&db.database.commit, &db.database.updated, db.age_days) {
                        (commit, Some(updated), Some(days)) => format!(
                            "{}updated {updated}, {days} days old{}",
                            commit
                                .as_ref()
                                .map(|c| format!("commit {c}, "))
                                .unwrap_or_default(),
                            if db.stale { ", stale" } else { "" }
                        ),
                        (Some(commit), _, _) => format!("commit {commit}, update date unknown"),
                        _ => "commit and date unknown".to_string(),
                    }
                )
            );
        }
    }
    if !a.warnings.is_empty() {
        let _ = writeln!(out, "\n### Warnings ({})\n", a.warnings.len());
        for w in a.warnings.iter().take(20) {
            let _ = writeln!(out, "- {}", md(w));
        }
        if a.warnings.len() > 20 {
            let _ = writeln!(
                out,
                "- … and {} more (see the JSON report)",
                a.warnings.len() - 20
            );
        }
    }
    out
}
