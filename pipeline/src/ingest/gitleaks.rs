//! `gitleaks ... --report-format json`: every leak is a high-severity secret finding. When the report
//! is not redacted the secret's hash (never the secret) tells findings apart and lets other secret
//! scanners reporting the same value merge with it.

use std::path::Path;

use serde::Deserialize;

use super::{json, title};
use crate::error::Result;
use crate::model::{secret_context, Category, RawFinding, Severity};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Leak {
    #[serde(rename = "RuleID")]
    rule_id: String,
    description: String,
    start_line: u32,
    end_line: u32,
    file: String,
    #[serde(default)]
    secret: String,
}

pub fn parse(file: &Path, bytes: &[u8]) -> Result<Vec<RawFinding>> {
    let leaks: Vec<Leak> = json(file, bytes)?;
    Ok(leaks
        .into_iter()
        .map(|leak| {
            let mut finding = RawFinding::new(
                "gitleaks",
                Category::Secret,
                Severity::High,
                &leak.rule_id,
                &title(&leak.description),
            )
            .at(&leak.file, Some(leak.start_line), Some(leak.end_line))
            .with_ids(["CWE-798"]);
            if !leak.secret.is_empty() && leak.secret != "REDACTED" {
                finding.context = secret_context(&leak.secret);
            }
            finding
        })
        .collect())
}
