//! `trivy ... --format json`: vulnerabilities (sca, or container for OS packages), misconfigurations
//! (iac), secrets (secret) and licenses (license). Trivy's own severities map one to one; UNKNOWN is
//! info. A target is a path in the scanned tree or an image layer.
//!
//! Every report shape trivy has written (aquasecurity/trivy pkg/types/report.go and
//! pkg/k8s/report/report.go): the report object of image, fs, repo, rootfs, config and sbom scans
//! (`SchemaVersion`, `Results`, which is absent or null when nothing was found); the Kubernetes
//! cluster report (`ClusterName` with `Resources[]`, the consolidated `Findings[]`, or the older
//! `Vulnerabilities[]`/`Misconfigurations[]` groupings, each resource holding `Results[]`); and the
//! top-level array of results of trivy before 0.20. Anything else is an error. A resource trivy
//! could not scan (`Error`) is a warning.

use std::path::Path;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{each, json_borrowed, none_readable, not_a_report, purl_type, title, Parsed};
use crate::error::Result;
use crate::model::{Category, RawFinding, Severity};

const EXPECTED: &str = "a report object with \"SchemaVersion\" (image, fs, repo, config, sbom), \
a Kubernetes report with \"ClusterName\" and \"Resources\", \"Findings\", \"Vulnerabilities\" or \
\"Misconfigurations\", or an array of results (trivy before 0.20)";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Envelope<'a> {
    #[serde(default)]
    schema_version: Option<serde_json::Value>,
    #[serde(default)]
    cluster_name: Option<String>,
    #[serde(default, borrow)]
    results: Option<Vec<&'a RawValue>>,
    #[serde(default, borrow)]
    resources: Option<Vec<&'a RawValue>>,
    #[serde(default, borrow)]
    findings: Option<Vec<&'a RawValue>>,
    #[serde(default, borrow)]
    vulnerabilities: Option<Vec<&'a RawValue>>,
    #[serde(default, borrow)]
    misconfigurations: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Resource<'a> {
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default, borrow)]
    results: Option<Vec<&'a RawValue>>,
    #[serde(default)]
    error: Option<String>,
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
    vulnerabilities: Option<Vec<Vulnerability>>,
    #[serde(default)]
    misconfigurations: Option<Vec<Misconfiguration>>,
    #[serde(default)]
    secrets: Option<Vec<Secret>>,
    #[serde(default)]
    licenses: Option<Vec<License>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Vulnerability {
    #[serde(rename = "VulnerabilityID")]
    id: String,
    pkg_name: String,
    #[serde(default)]
    pkg_path: Option<String>,
    #[serde(default)]
    pkg_identifier: Option<PkgIdentifier>,
    #[serde(default)]
    installed_version: Option<String>,
    #[serde(default)]
    fixed_version: Option<String>,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default, rename = "PrimaryURL")]
    primary_url: Option<String>,
    #[serde(default, rename = "CweIDs")]
    cwe_ids: Option<Vec<String>>,
    #[serde(default, rename = "VendorIDs")]
    vendor_ids: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PkgIdentifier {
    #[serde(default, rename = "PURL")]
    purl: Option<String>,
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

#[derive(Deserialize, Default)]
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

pub fn parse(file: &Path, bytes: &[u8]) -> Result<Parsed> {
    let mut parsed = Parsed::default();
    match super::first_byte(bytes) {
        Some(b'[') => {
            // trivy before 0.20: the results themselves.
            let results: Vec<&RawValue> = json_borrowed(file, bytes)?;
            if results_of(bytes, &results, "", "result", &mut parsed) == 0 && !results.is_empty() {
                return Err(none_readable(
                    file,
                    "trivy",
                    "result",
                    results.len(),
                    &parsed.warnings,
                ));
            }
            return Ok(parsed);
        }
        Some(b'{') => {}
        _ => {
            let _: serde_json::Value = super::json(file, bytes)?;
            return Err(not_a_report(file, "trivy JSON", EXPECTED));
        }
    }
    let envelope: Envelope = json_borrowed(file, bytes)?;
    let groups = [
        ("Resources", &envelope.resources),
        ("Findings", &envelope.findings),
        ("Vulnerabilities", &envelope.vulnerabilities),
        ("Misconfigurations", &envelope.misconfigurations),
    ];
    if envelope.cluster_name.is_some() || groups.iter().any(|(_, g)| g.is_some()) {
        if envelope.cluster_name.is_none() {
            return Err(not_a_report(file, "trivy JSON", EXPECTED));
        }
        for (group, resources) in groups {
            let Some(resources) = resources else { continue };
            let what = format!("{group} resource");
            let read = each::<Resource>(bytes, resources, &what, &mut parsed.warnings);
            parsed.skipped += resources.len() - read.len();
            for (index, resource) in read {
                let name = format!("{}/{}/{}", resource.namespace, resource.kind, resource.name);
                if let Some(error) = resource.error.filter(|e| !e.is_empty()) {
                    parsed.skipped += 1;
                    parsed.warnings.push(format!(
                        "{what} #{index} ({name}) was not scanned: {}",
                        title(&error)
                    ));
                }
                if let Some(results) = resource.results {
                    let what = format!("{what} #{index} result");
                    results_of(bytes, &results, &name, &what, &mut parsed);
                }
            }
        }
        return Ok(parsed);
    }
    if envelope.schema_version.is_none() {
        return Err(not_a_report(file, "trivy JSON", EXPECTED));
    }
    if let Some(results) = envelope.results {
        if results_of(bytes, &results, "", "result", &mut parsed) == 0 && !results.is_empty() {
            return Err(none_readable(
                file,
                "trivy",
                "result",
                results.len(),
                &parsed.warnings,
            ));
        }
    }
    Ok(parsed)
}

/// Converts results; `resource` names the Kubernetes resource they belong to (empty otherwise).
fn results_of(
    bytes: &[u8],
    results: &[&RawValue],
    resource: &str,
    what: &str,
    parsed: &mut Parsed,
) -> usize {
    let read = super::results::<TrivyResult>(bytes, results, what, parsed);
    let n = read.len();
    for (_, result) in read {
        convert(result, resource, &mut parsed.findings);
    }
    n
}

fn convert(result: TrivyResult, resource: &str, out: &mut Vec<RawFinding>) {
    let ecosystem = purl_type(&result.kind);
    for v in result.vulnerabilities.unwrap_or_default() {
        let category = if result.class == "os-pkgs" {
            Category::Container
        } else {
            Category::Sca
        };
        let purl = v.pkg_identifier.as_ref().and_then(|p| p.purl.as_deref());
        let mut f = RawFinding::new(
            "trivy",
            category,
            severity(&v.severity),
            &v.id,
            &title(v.title.as_deref().unwrap_or(&v.id)),
        )
        .in_package(
            &v.pkg_name,
            v.installed_version.as_deref(),
            &ecosystem,
            purl,
        )
        .with_ids(
            std::iter::once(v.id.clone())
                .chain(v.vendor_ids.unwrap_or_default())
                .chain(v.cwe_ids.unwrap_or_default()),
        )
        // trivy lists several fixed versions comma-separated ("1.2.3, 1.3.1").
        .fixed_by(v.fixed_version.as_deref().unwrap_or("").split(','));
        if result.class == "lang-pkgs" {
            // The lock file or archive the package was found in.
            let path = v
                .pkg_path
                .as_deref()
                .filter(|p| !p.is_empty())
                .unwrap_or(&result.target);
            f = f.at(path, None, None);
        }
        f.description = v.description;
        f.help_uri = v.primary_url;
        out.push(f);
    }
    for m in result.misconfigurations.unwrap_or_default() {
        if m.status.as_deref().is_some_and(|s| s != "FAIL") {
            continue;
        }
        let cause = m.cause_metadata.unwrap_or_default();
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
        f.context = match (resource, cause.resource) {
            ("", r) => r.unwrap_or_default(),
            (k8s, r) => format!("{k8s}|{}", r.unwrap_or_default()),
        };
        out.push(f);
    }
    for s in result.secrets.unwrap_or_default() {
        let mut f = RawFinding::new(
            "trivy",
            Category::Secret,
            severity(&s.severity),
            &s.rule_id,
            &title(&s.title),
        )
        .at(&result.target, s.start_line, s.end_line)
        .with_ids(["CWE-798"]);
        f.context = resource.to_string();
        out.push(f);
    }
    for l in result.licenses.unwrap_or_default() {
        let subject = if l.pkg_name.is_empty() {
            l.file_path.clone().unwrap_or_else(|| result.target.clone())
        } else {
            l.pkg_name.clone()
        };
        let mut f = RawFinding::new(
            "trivy",
            Category::License,
            severity(&l.severity),
            &format!("license:{}", l.name),
            &format!("{subject} is licensed {}", l.name),
        );
        match l.file_path.as_deref().filter(|p| !p.is_empty()) {
            Some(path) => f = f.at(path, None, None),
            None if l.pkg_name.is_empty() => f = f.at(&result.target, None, None),
            None => {}
        }
        if !l.pkg_name.is_empty() {
            f = f.in_component(&l.pkg_name, None, &ecosystem);
        }
        out.push(f);
    }
}
