//! `cargo audit --json`. Vulnerabilities take their severity from the CVSS vector (CVSS v3 ratings;
//! medium when the advisory has none); warnings: unsound medium, unmaintained/yanked/notice low.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{json, title};
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
    advisory: Option<Advisory>,
    package: Package,
    #[serde(default)]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct Advisory {
    id: String,
    title: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    cvss: Option<String>,
    #[serde(default)]
    url: Option<String>,
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
    // cargo-audit puts the kind of a warning beside the advisory; "vulnerability" has none.
    let severity = super::rustsec_severity(warning, advisory.cvss.as_deref());
    let mut finding = RawFinding::new(
        "cargo-audit",
        Category::Sca,
        severity,
        &advisory.id,
        &title(&advisory.title),
    )
    .in_component(&package.name, Some(&package.version), "cargo")
    .with_ids(std::iter::once(advisory.id.clone()).chain(advisory.aliases));
    finding.description = advisory.description;
    finding.help_uri = advisory
        .url
        .filter(|u| !u.is_empty())
        .or_else(|| Some(format!("https://rustsec.org/advisories/{}", advisory.id)));
    Some(finding)
}
