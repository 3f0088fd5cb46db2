//! `osv-scanner --format json` (google/osv-scanner pkg/models/results.go): `results[]` per source
//! (lock file or SBOM), each with `packages[]` (`package`: name, version, ecosystem) and their
//! OSV `vulnerabilities[]`. One finding per (group of aliased advisories, package): osv-scanner's
//! `groups[]` tell which ids are one advisory; severity from the group's `max_severity` score,
//! else the advisory's CVSS vectors, else its `database_specific.severity`; fixes from the
//! `affected[].ranges[].events[].fixed` of the matching package. Unlike osv-scanner's SARIF, this
//! keeps the package, so its findings merge with cargo-audit's and trivy's.

use std::path::Path;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::{each, json_borrowed, not_a_report, purl_type, title, Parsed};
use crate::error::Result;
use crate::model::{Category, RawFinding, Severity};

#[derive(Deserialize)]
struct Report<'a> {
    #[serde(borrow)]
    results: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
struct Source {
    #[serde(alias = "packageSource")]
    source: SourceInfo,
    #[serde(default)]
    packages: Option<Vec<Box<RawValue>>>,
}

#[derive(Deserialize)]
struct SourceInfo {
    path: String,
}

#[derive(Deserialize)]
struct PackageVulns {
    package: PackageInfo,
    #[serde(default)]
    vulnerabilities: Vec<Osv>,
    #[serde(default)]
    groups: Vec<Group>,
}

#[derive(Deserialize)]
struct PackageInfo {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    ecosystem: String,
}

#[derive(Deserialize)]
struct Group {
    ids: Vec<String>,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    max_severity: Option<String>,
}

#[derive(Deserialize)]
struct Osv {
    id: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    details: Option<String>,
    #[serde(default)]
    severity: Vec<OsvSeverity>,
    #[serde(default)]
    affected: Vec<Affected>,
    #[serde(default)]
    database_specific: Option<Value>,
}

#[derive(Deserialize)]
struct OsvSeverity {
    score: String,
}

#[derive(Deserialize)]
struct Affected {
    #[serde(default)]
    package: Option<AffectedPackage>,
    #[serde(default)]
    ranges: Vec<Range>,
}

#[derive(Deserialize)]
struct AffectedPackage {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct Range {
    #[serde(default)]
    events: Vec<Value>,
}

fn severity_of(group: Option<&Group>, vulns: &[&Osv]) -> Severity {
    if let Some(score) = group
        .and_then(|g| g.max_severity.as_deref())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite())
    {
        return Severity::from_cvss(score);
    }
    vulns
        .iter()
        .flat_map(|v| {
            v.severity
                .iter()
                .filter_map(|s| Severity::from_cvss_vector(&s.score))
        })
        .max()
        .or_else(|| {
            vulns
                .iter()
                .filter_map(|v| {
                    v.database_specific
                        .as_ref()?
                        .get("severity")?
                        .as_str()
                        .and_then(Severity::from_label)
                })
                .max()
        })
        .unwrap_or(Severity::Medium)
}

pub fn parse(file: &Path, bytes: &[u8]) -> Result<Parsed> {
    const EXPECTED: &str = "an object with \"results\" (osv-scanner --format json)";
    if super::first_byte(bytes) != Some(b'{') {
        let _: Value = super::json(file, bytes)?;
        return Err(not_a_report(file, "osv-scanner JSON", EXPECTED));
    }
    let report: Report = json_borrowed(file, bytes)?;
    let Some(results) = report.results else {
        return Err(not_a_report(file, "osv-scanner JSON", EXPECTED));
    };
    let mut parsed = Parsed::default();
    let sources = each::<Source>(bytes, &results, "result", &mut parsed.warnings);
    parsed.skipped += results.len() - sources.len();
    for (source_index, source) in sources {
        let packages = source.packages.unwrap_or_default();
        for (package_index, raw) in packages.iter().enumerate() {
            let package: PackageVulns = match serde_json::from_str(raw.get()) {
                Ok(p) => p,
                Err(e) => {
                    parsed.skipped += 1;
                    parsed.warnings.push(format!(
                        "result #{source_index} package #{package_index} skipped: {}",
                        e.to_string().split(" at line ").next().unwrap_or("")
                    ));
                    continue;
                }
            };
            parsed.read += 1;
            convert(&source.source.path, package, &mut parsed.findings);
        }
    }
    Ok(parsed)
}

fn convert(path: &str, package: PackageVulns, out: &mut Vec<RawFinding>) {
    let ecosystem = purl_type(package.package.ecosystem.split(':').next().unwrap_or(""));
    // Each group is one advisory under several ids; without groups, each advisory is its own.
    let groups: Vec<(Option<&Group>, Vec<&Osv>)> = if package.groups.is_empty() {
        package
            .vulnerabilities
            .iter()
            .map(|v| (None, vec![v]))
            .collect()
    } else {
        package
            .groups
            .iter()
            .map(|g| {
                (
                    Some(g),
                    package
                        .vulnerabilities
                        .iter()
                        .filter(|v| g.ids.contains(&v.id))
                        .collect(),
                )
            })
            .collect()
    };
    for (group, vulns) in groups {
        let Some(first) = vulns.first().copied() else {
            continue;
        };
        let mut ids: Vec<String> = vulns
            .iter()
            .flat_map(|v| std::iter::once(v.id.clone()).chain(v.aliases.clone()))
            .collect();
        if let Some(g) = group {
            ids.extend(g.ids.iter().cloned());
            ids.extend(g.aliases.iter().cloned());
        }
        let fixed: Vec<String> = vulns
            .iter()
            .flat_map(|v| &v.affected)
            .filter(|a| {
                a.package
                    .as_ref()
                    .is_none_or(|p| p.name == package.package.name)
            })
            .flat_map(|a| &a.ranges)
            .flat_map(|r| &r.events)
            .filter_map(|e| e.get("fixed").and_then(Value::as_str).map(str::to_string))
            .collect();
        let text = first
            .summary
            .clone()
            .or_else(|| first.details.clone())
            .unwrap_or_else(|| first.id.clone());
        let mut f = RawFinding::new(
            "osv-scanner",
            Category::Sca,
            severity_of(group, &vulns),
            &first.id,
            &title(&text),
        )
        .in_component(
            &package.package.name,
            package.package.version.as_deref(),
            &ecosystem,
        )
        .with_ids(ids)
        .fixed_by(fixed)
        .at(path, None, None);
        f.description = first.details.clone();
        f.help_uri = Some(format!("https://osv.dev/vulnerability/{}", first.id));
        out.push(f);
    }
}
