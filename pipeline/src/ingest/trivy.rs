//! `trivy ... --format json`: vulnerabilities (sca, or container for OS packages), misconfigurations
//! (iac), secrets (secret) and licenses (license). Trivy's own severities map one to one; UNKNOWN is
//! info. A target is a path in the scanned tree or an image layer.

use std::path::Path;

use serde::Deserialize;

use super::{json, title};
use crate::error::Result;
use crate::model::{Category, RawFinding, Severity};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Report {
    #[serde(default)]
    results: Vec<TrivyResult>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TrivyResult {
    target: String,
    #[serde(default)]
    class: String,
    #[serde(default, rename = "Type")]
    kind: String,
    #[serde(default)]
    vulnerabilities: Vec<Vulnerability>,
    #[serde(default)]
    misconfigurations: Vec<Misconfiguration>,
    #[serde(default)]
    secrets: Vec<Secret>,
    #[serde(default)]
    licenses: Vec<License>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Vulnerability {
    #[serde(rename = "VulnerabilityID")]
    id: String,
    pkg_name: String,
    #[serde(default)]
    installed_version: Option<String>,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default, rename = "PrimaryURL")]
    primary_url: Option<String>,
    #[serde(default, rename = "CweIDs")]
    cwe_ids: Vec<String>,
    #[serde(default)]
    vendor_ids: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Misconfiguration {
    #[serde(rename = "ID")]
    id: String,
    title: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    severity: String,
    #[serde(default, rename = "PrimaryURL")]
    primary_url: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    cause_metadata: Option<Cause>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Cause {
    #[serde(default)]
    start_line: Option<u32>,
    #[serde(default)]
    end_line: Option<u32>,
    #[serde(default)]
    resource: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Secret {
    #[serde(rename = "RuleID")]
    rule_id: String,
    title: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    start_line: Option<u32>,
    #[serde(default)]
    end_line: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct License {
    #[serde(default)]
    severity: String,
    #[serde(default)]
    pkg_name: String,
    name: String,
    #[serde(default)]
    file_path: Option<String>,
}

fn severity(label: &str) -> Severity {
    Severity::from_label(label).unwrap_or(Severity::Info)
}

fn ecosystem(kind: &str) -> &str {
    match kind {
        "cargo" | "rust-binary" | "rustbinary" => "cargo",
        "npm" | "yarn" | "pnpm" | "node-pkg" => "npm",
        "pip" | "pipenv" | "poetry" | "python-pkg" => "pypi",
        "gomod" | "gobinary" => "golang",
        "debian" | "ubuntu" => "deb",
        "alpine" => "apk",
        "" => "generic",
        other => other,
    }
}

pub fn parse(file: &Path, bytes: &[u8]) -> Result<Vec<RawFinding>> {
    let report: Report = json(file, bytes)?;
    let mut out = Vec::new();
    for result in report.results {
        for v in result.vulnerabilities {
            let category = if result.class == "os-pkgs" {
                Category::Container
            } else {
                Category::Sca
            };
            let mut f = RawFinding::new(
                "trivy",
                category,
                severity(&v.severity),
                &v.id,
                &title(v.title.as_deref().unwrap_or(&v.id)),
            )
            .in_component(
                &v.pkg_name,
                v.installed_version.as_deref(),
                ecosystem(&result.kind),
            )
            .with_ids(
                std::iter::once(v.id.clone())
                    .chain(v.vendor_ids)
                    .chain(v.cwe_ids),
            );
            f.description = v.description;
            f.help_uri = v.primary_url;
            out.push(f);
        }
        for m in result.misconfigurations {
            if m.status.as_deref().is_some_and(|s| s != "FAIL") {
                continue;
            }
            let cause = m.cause_metadata.unwrap_or(Cause {
                start_line: None,
                end_line: None,
                resource: None,
            });
            let mut f = RawFinding::new(
                "trivy",
                Category::Iac,
                severity(&m.severity),
                &m.id,
                &title(&m.title),
            )
            .at(&result.target, cause.start_line, cause.end_line);
            f.description = m.message.or(m.description);
            f.help_uri = m.primary_url;
            f.context = cause.resource.unwrap_or_default();
            out.push(f);
        }
        for s in result.secrets {
            let f = RawFinding::new(
                "trivy",
                Category::Secret,
                severity(&s.severity),
                &s.rule_id,
                &title(&s.title),
            )
            .at(&result.target, s.start_line, s.end_line)
            .with_ids(["CWE-798"]);
            out.push(f);
        }
        for l in result.licenses {
            let mut f = RawFinding::new(
                "trivy",
                Category::License,
                severity(&l.severity),
                &format!("license:{}", l.name),
                &format!("{} is licensed {}", l.pkg_name, l.name),
            );
            if let Some(path) = l.file_path {
                f = f.at(&path, None, None);
            }
            f = f.in_component(&l.pkg_name, None, ecosystem(&result.kind));
            out.push(f);
        }
    }
    Ok(out)
}
