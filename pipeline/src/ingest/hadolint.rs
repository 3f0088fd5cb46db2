//! `hadolint -f json`: Dockerfile findings, category iac. Severity: error high, warning medium,
//! info low, style info.

use std::path::Path;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{json_borrowed, none_readable, not_a_report, title, Parsed};
use crate::error::Result;
use crate::model::{Category, RawFinding, Severity};

#[derive(Deserialize)]
struct Entry {
    code: String,
    file: String,
    level: String,
    line: u32,
    message: String,
}

pub fn parse(file: &Path, bytes: &[u8]) -> Result<Parsed> {
    if super::first_byte(bytes) != Some(b'[') {
        let _: serde_json::Value = super::json(file, bytes)?;
        return Err(not_a_report(
            file,
            "hadolint JSON",
            "an array of {code, file, level, line, message}",
        ));
    }
    let entries: Vec<&RawValue> = json_borrowed(file, bytes)?;
    let mut parsed = Parsed::default();
    let read = super::results::<Entry>(bytes, &entries, "entry", &mut parsed);
    if read.is_empty() && !entries.is_empty() {
        return Err(none_readable(
            file,
            "hadolint",
            "entry",
            entries.len(),
            &parsed.warnings,
        ));
    }
    for (_, e) in read {
        let severity = match e.level.as_str() {
            "error" => Severity::High,
            "warning" => Severity::Medium,
            "info" => Severity::Low,
            _ => Severity::Info,
        };
        let mut finding = RawFinding::new(
            "hadolint",
            Category::Iac,
            severity,
            &e.code,
            &title(&e.message),
        )
        .at(&e.file, Some(e.line), Some(e.line));
        finding.help_uri = e
            .code
            .starts_with("DL")
            .then(|| format!("https://github.com/hadolint/hadolint/wiki/{}", e.code));
        parsed.findings.push(finding);
    }
    Ok(parsed)
}
