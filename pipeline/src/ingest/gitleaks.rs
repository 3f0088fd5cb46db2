//! `gitleaks ... --report-format json`: every leak is a high-severity secret finding. Both report
//! generations are read: v8 (`RuleID`, `File`, `StartLine`; gitleaks/gitleaks report/finding.go)
//! and v7 (`rule`, `file`, `lineNumber`, `offender`; gitleaks v7 scan/leak.go), and `null`, which
//! gitleaks writes when it finds nothing. When the report is not redacted the secret's hash (never
//! the secret) tells findings apart and lets other secret scanners reporting the same value merge.

use std::path::Path;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{json_borrowed, none_readable, not_a_report, title, Parsed};
use crate::error::Result;
use crate::model::{secret_context, Category, RawFinding, Severity};

#[derive(Deserialize)]
#[serde(untagged)]
enum Leak {
    V8(V8),
    V7(V7),
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct V8 {
    #[serde(rename = "RuleID")]
    rule_id: String,
    #[serde(default)]
    description: String,
    start_line: u32,
    #[serde(default)]
    end_line: Option<u32>,
    file: String,
    #[serde(default)]
    secret: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct V7 {
    rule: String,
    file: String,
    line_number: u32,
    #[serde(default)]
    offender: String,
}

pub fn parse(file: &Path, bytes: &[u8]) -> Result<Parsed> {
    let leaks: Option<Vec<&RawValue>> = match super::first_byte(bytes) {
        Some(b'[' | b'n') => json_borrowed(file, bytes)?,
        _ => {
            let _: serde_json::Value = super::json(file, bytes)?;
            return Err(not_a_report(
                file,
                "gitleaks JSON",
                "an array of leaks (v8 or v7), or null",
            ));
        }
    };
    let leaks = leaks.unwrap_or_default();
    let mut parsed = Parsed::default();
    let read = super::results::<Leak>(bytes, &leaks, "leak", &mut parsed);
    if read.is_empty() && !leaks.is_empty() {
        return Err(none_readable(
            file,
            "gitleaks",
            "leak",
            leaks.len(),
            &parsed.warnings,
        ));
    }
    for (_, leak) in read {
        let (rule, text, path, start, end, secret) = match leak {
            Leak::V8(l) => {
                let text = if l.description.is_empty() {
                    l.rule_id.clone()
                } else {
                    l.description
                };
                (l.rule_id, text, l.file, l.start_line, l.end_line, l.secret)
            }
            Leak::V7(l) => (
                l.rule.clone(),
                l.rule,
                l.file,
                l.line_number,
                None,
                l.offender,
            ),
        };
        // A leak whose rule id is empty is still a secret found: kept under a rule of its own,
        // never dropped and never left without a rule (findings are keyed by rule).
        let rule = if rule.trim().is_empty() {
            "gitleaks-unnamed-rule".to_string()
        } else {
            rule
        };
        let mut finding = RawFinding::new(
            "gitleaks",
            Category::Secret,
            Severity::High,
            &rule,
            &title(&text),
        )
        .at(&path, Some(start), end)
        .with_ids(["CWE-798"]);
        if !secret.is_empty() && secret != "REDACTED" {
            finding.context = secret_context(&secret);
        }
        parsed.findings.push(finding);
    }
    Ok(parsed)
}
