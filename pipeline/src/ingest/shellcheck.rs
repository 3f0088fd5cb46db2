//! `shellcheck -f json1`: shell script findings, category sast. Severity: error high, warning medium,
//! info low, style info.

use std::path::Path;

use serde::Deserialize;

use super::{json, title};
use crate::error::Result;
use crate::model::{Category, RawFinding, Severity};

#[derive(Deserialize)]
struct Report {
    comments: Vec<Comment>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Comment {
    file: String,
    line: u32,
    end_line: u32,
    level: String,
    code: u32,
    message: String,
}

pub fn parse(file: &Path, bytes: &[u8]) -> Result<Vec<RawFinding>> {
    let report: Report = json(file, bytes)?;
    Ok(report
        .comments
        .into_iter()
        .map(|c| {
            let severity = match c.level.as_str() {
                "error" => Severity::High,
                "warning" => Severity::Medium,
                "info" => Severity::Low,
                _ => Severity::Info,
            };
            let rule = format!("SC{}", c.code);
            let mut f = RawFinding::new(
                "shellcheck",
                Category::Sast,
                severity,
                &rule,
                &title(&c.message),
            )
            .at(&c.file, Some(c.line), Some(c.end_line));
            f.help_uri = Some(format!("https://www.shellcheck.net/wiki/{rule}"));
            f
        })
        .collect())
}
