//! `checkov -o json`: failed checks are iac findings (secrets checks are secret findings). Checkov
//! only reports a severity with a platform key; without one it is medium. The resource name is the
//! stable context, so two failures of one check in one file stay apart.
//!
//! Three shapes: one report (`check_type`, `results`, `summary`), a list of them (one per
//! framework), and the bare summary checkov prints when it found nothing to scan (`passed`,
//! `failed`, ... with no `results`), which is zero findings only if its `failed` count is 0.

use std::path::Path;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{json_borrowed, none_readable, not_a_report, title, Parsed};
use crate::error::{Error, Result};
use crate::model::{Category, RawFinding, Severity};

const EXPECTED: &str =
    "a report object with \"check_type\" and \"results\", a list of them, or the summary \
object checkov prints when there is nothing to scan";

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    check_type: Option<String>,
    #[serde(default, borrow)]
    results: Option<Results<'a>>,
    #[serde(default)]
    failed: Option<u64>,
    #[serde(default)]
    passed: Option<u64>,
}

#[derive(Deserialize)]
struct Results<'a> {
    #[serde(default, borrow)]
    failed_checks: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct Check {
    check_id: String,
    check_name: String,
    file_path: String,
    #[serde(default)]
    file_line_range: Option<Vec<u32>>,
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    guideline: Option<String>,
}

pub fn parse(file: &Path, bytes: &[u8]) -> Result<Parsed> {
    let sections: Vec<&RawValue> = match super::first_byte(bytes) {
        Some(b'[') => json_borrowed(file, bytes)?,
        Some(b'{') => vec![json_borrowed(file, bytes)?],
        _ => {
            let _: serde_json::Value = super::json(file, bytes)?;
            return Err(not_a_report(file, "checkov JSON", EXPECTED));
        }
    };
    let mut parsed = Parsed::default();
    for (index, raw) in sections.iter().enumerate() {
        let section: Envelope = serde_json::from_str(raw.get()).map_err(|e| {
            Error::input(
                file,
                super::element_warning(bytes, raw, "report", index, &e).replace(" skipped:", ":"),
            )
        })?;
        let Some(results) = section.results else {
            match (section.passed, section.failed) {
                (Some(_), Some(0)) => continue,
                (Some(_), Some(n)) => {
                    return Err(Error::input(
                        file,
                        format!(
                        "report #{index}: the summary counts {n} failed check(s) but lists none"
                    ),
                    ))
                }
                _ => return Err(not_a_report(file, "checkov JSON", EXPECTED)),
            }
        };
        let category = if section.check_type.as_deref() == Some("secrets") {
            Category::Secret
        } else {
            Category::Iac
        };
        let what = format!("report #{index} failed check");
        let read = super::results::<Check>(bytes, &results.failed_checks, &what, &mut parsed);
        if read.is_empty() && !results.failed_checks.is_empty() {
            return Err(none_readable(
                file,
                "checkov",
                "failed check",
                results.failed_checks.len(),
                &parsed.warnings,
            ));
        }
        for (_, check) in read {
            let severity = check
                .severity
                .as_deref()
                .and_then(Severity::from_label)
                .unwrap_or(Severity::Medium);
            let path = check.file_path.trim_start_matches('/');
            let range = check.file_line_range.unwrap_or_default();
            let mut finding = RawFinding::new(
                "checkov",
                category,
                severity,
                &check.check_id,
                &title(&check.check_name),
            )
            .at(path, range.first().copied(), range.get(1).copied());
            finding.context = check.resource.unwrap_or_default();
            finding.help_uri = check.guideline;
            parsed.findings.push(finding);
        }
    }
    Ok(parsed)
}
