//! `cargo deny --format json check` (NDJSON on stderr). Diagnostics with an advisory are sca
//! findings (severity from CVSS; medium without one; unmaintained/unsound/yanked low); license
//! diagnostics are license findings; bans and sources are quality. `error` diagnostics without an
//! advisory are high, warnings low. Summary records and log records below ERROR are skipped; a log
//! record at level ERROR (no advisory database, an unreadable deny.toml) means a check did not run,
//! so the report is an error naming it, never zero findings. The fix is the upgrade cargo-deny
//! names in its "Solution: Upgrade to ..." note.

use std::path::Path;

use serde::Deserialize;

use super::{not_a_report, title, Parsed, RustsecAdvisory};
use crate::error::{Error, Result};
use crate::model::{Category, RawFinding, Severity};

#[derive(Deserialize)]
struct Record {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    fields: Option<Fields>,
}

#[derive(Deserialize)]
struct Fields {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    message: Option<String>,
    /// Log records: ERROR, WARN, INFO, ...
    #[serde(default)]
    level: Option<String>,
    #[serde(default)]
    advisory: Option<RustsecAdvisory>,
    #[serde(default)]
    graphs: Vec<Graph>,
    #[serde(default)]
    notes: Vec<String>,
}

#[derive(Deserialize)]
struct Graph {
    #[serde(rename = "Krate")]
    krate: Krate,
}

#[derive(Deserialize)]
struct Krate {
    name: String,
    version: String,
}

/// "Solution: Upgrade to >=0.6.14, <1.0.0 OR >=1.6.1 (try `cargo update -p smallvec`)" -> the
/// requirements; "No safe upgrade is available!" -> none.
fn upgrades(notes: &[String]) -> Vec<String> {
    notes
        .iter()
        .filter_map(|n| n.strip_prefix("Solution: Upgrade to "))
        .flat_map(|s| {
            s.split(" (try")
                .next()
                .unwrap_or("")
                .split(" OR ")
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The record types `cargo deny --format json` writes. A line with another `type` is not one of
/// its records (a JSON array of another tool spread over lines has objects with a `type` key too).
pub const RECORD_TYPES: [&str; 3] = ["diagnostic", "log", "summary"];

pub fn parse(file: &std::path::Path, bytes: &[u8]) -> Result<Parsed> {
    let _: &Path = file;
    let mut parsed = Parsed::default();
    let mut records: Vec<(usize, Record)> = super::records(bytes, &mut parsed);
    records.retain(|(line, record)| {
        let known = RECORD_TYPES.contains(&record.kind.as_str());
        if !known {
            parsed.skipped += 1;
            parsed.warnings.push(format!(
                "line {line} skipped: record type {:?} is not one cargo-deny writes",
                record.kind
            ));
        }
        known
    });
    if records.is_empty() {
        return Err(not_a_report(
            file,
            "cargo-deny JSON",
            "lines of JSON objects with \"type\" (cargo deny --format json check, on stderr)",
        ));
    }
    // A check that could not run makes the whole report untrustworthy: its findings are unknown.
    let failures: Vec<String> = records
        .iter()
        .filter(|(_, r)| r.kind == "log")
        .filter_map(|(line, r)| {
            let fields = r.fields.as_ref()?;
            fields
                .level
                .as_deref()
                .is_some_and(|l| l.eq_ignore_ascii_case("error"))
                .then(|| {
                    format!(
                        "line {line}: {}",
                        title(fields.message.as_deref().unwrap_or("(no message)"))
                    )
                })
        })
        .collect();
    if !failures.is_empty() {
        return Err(Error::input(
            file,
            format!(
                "cargo-deny reported an error, so its checks did not all run: {}",
                failures.join("; ")
            ),
        ));
    }
    for (line, record) in records {
        if record.kind != "diagnostic" {
            continue;
        }
        // A diagnostic without its fields (a damaged line) is a result not read, never a pass.
        let Some(fields) = record.fields else {
            parsed.skipped += 1;
            parsed.warnings.push(format!(
                "line {line}: a diagnostic without its fields was skipped"
            ));
            continue;
        };
        parsed.read += 1;
        let code = fields.code.clone().unwrap_or_else(|| "diagnostic".into());
        let krate = fields
            .graphs
            .first()
            .map(|g| (g.krate.name.clone(), g.krate.version.clone()));
        let message = fields.message.clone().unwrap_or_default();
        let finding = if let Some(advisory) = fields.advisory {
            advisory
                .finding("cargo-deny", None, &message)
                .fixed_by(upgrades(&fields.notes))
        } else {
            let category =
                if code.starts_with("license") || code == "rejected" || code == "unlicensed" {
                    Category::License
                } else {
                    Category::Quality
                };
            let severity = match fields.severity.as_deref() {
                Some("error") => Severity::High,
                Some("warning") => Severity::Low,
                _ => Severity::Info,
            };
            RawFinding::new("cargo-deny", category, severity, &code, &title(&message))
        };
        let finding = match krate {
            Some((name, version)) => finding.in_component(&name, Some(&version), "cargo"),
            None => finding,
        };
        parsed.findings.push(finding);
    }
    Ok(parsed)
}
