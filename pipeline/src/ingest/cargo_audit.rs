//! `cargo audit --json`. Vulnerabilities take their severity from the CVSS vector (v3.x or v4.0
//! ratings; medium when the advisory has none); warnings: unsound medium, unmaintained/yanked/notice
//! low. The patched version requirements are the fix; the advisory database (commit and date) is
//! recorded.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{json_borrowed, not_a_report, Parsed, RustsecAdvisory, RustsecVersions};
use crate::error::Result;
use crate::model::{AdvisoryDb, Category, RawFinding, Severity};

#[derive(Deserialize)]
struct Report<'a> {
    #[serde(borrow)]
    vulnerabilities: Vulnerabilities<'a>,
    #[serde(default, borrow)]
    warnings: BTreeMap<String, Vec<&'a RawValue>>,
    #[serde(default)]
    database: Option<Database>,
}

/// Every cargo-audit version writes `found`, `count` and `list`: a missing `list` is a damaged
/// report, never "no vulnerabilities".
#[derive(Deserialize)]
struct Vulnerabilities<'a> {
    #[serde(borrow)]
    list: Vec<&'a RawValue>,
    #[serde(default)]
    count: Option<usize>,
}

#[derive(Deserialize)]
struct Database {
    #[serde(default, rename = "last-commit")]
    last_commit: Option<String>,
    #[serde(default, rename = "last-updated")]
    last_updated: Option<String>,
}

#[derive(Deserialize)]
struct Entry {
    advisory: Option<RustsecAdvisory>,
    package: Package,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    versions: Option<RustsecVersions>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    version: String,
}

pub fn parse(file: &Path, bytes: &[u8]) -> Result<Parsed> {
    if super::first_byte(bytes) != Some(b'{') {
        let _: serde_json::Value = super::json(file, bytes)?;
        return Err(not_a_report(
            file,
            "cargo-audit JSON",
            "an object with \"vulnerabilities\"",
        ));
    }
    let report: Report = json_borrowed(file, bytes)?;
    if let Some(count) = report.vulnerabilities.count {
        if count != report.vulnerabilities.list.len() {
            return Err(crate::error::Error::input(
                file,
                format!(
                    "damaged cargo-audit report: vulnerabilities.count is {count} but the list holds {}",
                    report.vulnerabilities.list.len()
                ),
            ));
        }
    }
    let mut parsed = Parsed::default();
    if let Some(db) = report.database {
        parsed.databases.push(AdvisoryDb {
            tool: "cargo-audit".into(),
            name: "RustSec advisory-db".into(),
            commit: db.last_commit,
            updated: db.last_updated,
        });
    }
    for (_, entry) in super::results::<Entry>(
        bytes,
        &report.vulnerabilities.list,
        "vulnerability",
        &mut parsed,
    ) {
        parsed.findings.push(convert(entry, None));
    }
    for (kind, entries) in &report.warnings {
        for (_, entry) in
            super::results::<Entry>(bytes, entries, &format!("{kind} warning"), &mut parsed)
        {
            let kind = entry.kind.clone().unwrap_or_else(|| kind.clone());
            parsed.findings.push(convert(entry, Some(&kind)));
        }
    }
    Ok(parsed)
}

fn convert(entry: Entry, warning: Option<&str>) -> RawFinding {
    let package = entry.package;
    let patched = entry.versions.unwrap_or_default().patched;
    let Some(advisory) = entry.advisory else {
        // A yanked crate has no advisory.
        return RawFinding::new(
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
    };
    // cargo-audit puts the kind of a warning beside the advisory; vulnerabilities have none.
    advisory
        .finding("cargo-audit", warning, "advisory")
        .in_component(&package.name, Some(&package.version), "cargo")
        .fixed_by(patched)
}
