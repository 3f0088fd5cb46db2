//! `checkov -o json`: failed checks are iac findings (secrets checks are secret findings). Checkov
//! only reports a severity with a platform key; without one it is medium. The resource name is the
//! stable context, so two failures of one check in one file stay apart.

use std::path::Path;

use serde::Deserialize;

use super::{json, title};
use crate::error::Result;
use crate::model::{Category, RawFinding, Severity};

#[derive(Deserialize)]
#[serde(untagged)]
enum Report {
    Many(Vec<Section>),
    One(Section),
}

#[derive(Deserialize)]
struct Section {
    #[serde(default)]
    check_type: String,
    results: Results,
}

#[derive(Deserialize)]
struct Results {
    #[serde(default)]
    failed_checks: Vec<Check>,
}

#[derive(Deserialize)]
struct Check {
    check_id: String,
    check_name: String,
    file_path: String,
    #[serde(default)]
    file_line_range: Vec<u32>,
    #[serde(default)]
    resource: String,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    guideline: Option<String>,
}

pub fn parse(file: &Path, bytes: &[u8]) -> Result<Vec<RawFinding>> {
    let sections = match json::<Report>(file, bytes)? {
        Report::Many(sections) => sections,
        Report::One(section) => vec![section],
    };
    let mut out = Vec::new();
    for section in sections {
        let category = if section.check_type == "secrets" {
            Category::Secret
        } else {
            Category::Iac
        };
        for check in section.results.failed_checks {
            let severity = check
                .severity
                .as_deref()
                .and_then(Severity::from_label)
                .unwrap_or(Severity::Medium);
            let path = check.file_path.trim_start_matches('/');
            let mut finding = RawFinding::new(
                "checkov",
                category,
                severity,
                &check.check_id,
                &title(&check.check_name),
            )
            .at(
                path,
                check.file_line_range.first().copied(),
                check.file_line_range.get(1).copied(),
            );
            finding.context = check.resource;
            finding.help_uri = check.guideline;
            out.push(finding);
        }
    }
    Ok(out)
}
