//! `hadolint -f json`: Dockerfile findings, category iac. Severity: error high, warning medium,
//! info low, style info.

use std::path::Path;

use serde::Deserialize;

use super::{json, title};
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

pub fn parse(file: &Path, bytes: &[u8]) -> Result<Vec<RawFinding>> {
    let entries: Vec<Entry> = json(file, bytes)?;
    Ok(entries
        .into_iter()
        .map(|e| {
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
            finding
        })
        .collect())
}
