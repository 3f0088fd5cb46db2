//! `cargo audit --json`. Vulnerabilities take their severity from the CVSS vector (CVSS v3 ratings;
//! medium when the advisory has none); warnings: unsound medium, unmaintained/yanked/notice low.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{json, RustsecAdvisory};
use crate::error::Result;
use crate::model::{Category, RawFinding, Severity};

#[derive(Deserialize)]
struct Report {
    vulnerabilities: Vulnerabilities,
    #[serde(default)]
    warnings: BTreeMap<String, Vec<Entry>>,
}

#[derive(Deserialize)]
struct Vulnerabilities {
    #[serde(default)]
    list: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    advisory: Option<RustsecAdvisory>,
    package: Package,
    #[serde(default)]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    version: String,
}

pub fn parse(file: &Path, bytes: &[u8]) -> Result<Vec<RawFinding>> {
    let report: Report = json(file, bytes)?;
    let mut out = Vec::new();
    for entry in report.vulnerabilities.list {
        if let Some(finding) = convert(entry, None) {
            out.push(finding);
        }
    }
    for (kind, entries) in report.warnings {
        for entry in entries {
            let kind = entry.kind.clone().unwrap_or_else(|| kind.clone());
            if let Some(finding) = convert(entry, Some(&kind)) {
                out.push(finding);
            }
        }
    }
    Ok(out)
}

fn convert(entry: Entry, warning: Option<&str>) -> Option<RawFinding> {
    let package = entry.package;
    let Some(advisory) = entry.advisory else {
        // A yanked crate has no advisory.
        let finding = RawFinding::new(
            "cargo-audit",
            Category::Sca,
            Severity::Low,
            &format!("{}-{}", warning.unwrap_or("warning"), package.name),
            &format!(
                "{} {} is {}",
                package.name,
                package.version,
                warning.unwrap_or("flagged")
            ),
        )
        .in_component(&package.name, Some(&package.version), "cargo");
        return Some(finding);
    };
    // cargo-audit puts the kind of a warning beside the advisory; vulnerabilities have none.
    let finding = advisory
        .finding("cargo-audit", warning, "advisory")
        .in_component(&package.name, Some(&package.version), "cargo");
    Some(finding)
}
