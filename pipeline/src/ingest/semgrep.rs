//! `semgrep scan --json`: code findings (sast; secrets rules secret) and Semgrep Supply Chain
//! dependency findings (sca: `extra.sca_info.dependency_match.found_dependency` names the package,
//! `metadata.sca-vuln-database-identifier` the advisory, `metadata.sca-fix-versions` the fix, as
//! semgrep's own text formatter reads them). Severity: ERROR/CRITICAL/HIGH high (CRITICAL
//! critical), WARNING/MEDIUM medium, INFO/LOW low, INVENTORY/EXPERIMENT info; dependency findings
//! use `sca-severity`. Semgrep's `errors[]` (files it could not parse, rules that failed) are
//! warnings: the scan was partial. The envelope must have `results`.

use std::path::Path;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::{json_borrowed, none_readable, not_a_report, purl_type, title, Parsed};
use crate::error::Result;
use crate::model::{Category, RawFinding, Severity};

#[derive(Deserialize)]
struct Report<'a> {
    #[serde(borrow)]
    results: Vec<&'a RawValue>,
    #[serde(default)]
    errors: Vec<Value>,
}

#[derive(Deserialize)]
struct Match {
    check_id: String,
    path: String,
    start: Position,
    #[serde(default)]
    end: Option<Position>,
    extra: Extra,
}

#[derive(Deserialize)]
struct Position {
    line: u32,
}

#[derive(Deserialize)]
struct Extra {
    #[serde(default)]
    message: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    metadata: Value,
    #[serde(default)]
    lines: Option<String>,
    #[serde(default)]
    is_ignored: Option<bool>,
    #[serde(default)]
    sca_info: Option<ScaInfo>,
}

#[derive(Deserialize)]
struct ScaInfo {
    dependency_match: DependencyMatch,
}

#[derive(Deserialize)]
struct DependencyMatch {
    found_dependency: FoundDependency,
    #[serde(default)]
    lockfile: Option<String>,
}

#[derive(Deserialize)]
struct FoundDependency {
    package: String,
    version: String,
    ecosystem: String,
    #[serde(default)]
    lockfile_path: Option<String>,
    #[serde(default)]
    line_number: Option<u32>,
}

fn severity(label: &str) -> Severity {
    match label.to_ascii_uppercase().as_str() {
        "CRITICAL" => Severity::Critical,
        "ERROR" | "HIGH" => Severity::High,
        "WARNING" | "MEDIUM" | "MODERATE" => Severity::Medium,
        "INFO" | "LOW" => Severity::Low,
        _ => Severity::Info,
    }
}

/// Strings of a metadata value that is a string or a list of strings.
fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

pub fn parse(file: &Path, bytes: &[u8]) -> Result<Parsed> {
    if super::first_byte(bytes) != Some(b'{') {
        let _: Value = super::json(file, bytes)?;
        return Err(not_a_report(
            file,
            "semgrep JSON",
            "an object with \"results\" (semgrep scan --json)",
        ));
    }
    let report: Report = json_borrowed(file, bytes)?;
    let mut parsed = Parsed::default();
    for (index, error) in report.errors.iter().enumerate() {
        let kind = error.get("type").map(|t| t.to_string()).unwrap_or_default();
        let message = error.get("message").and_then(Value::as_str).unwrap_or("");
        parsed
            .warnings
            .push(format!("semgrep error #{index} {kind}: {}", title(message)));
    }
    let read = super::results::<Match>(bytes, &report.results, "result", &mut parsed);
    if read.is_empty() && !report.results.is_empty() {
        return Err(none_readable(
            file,
            "semgrep",
            "result",
            report.results.len(),
            &parsed.warnings,
        ));
    }
    for (_, m) in read {
        if m.extra.is_ignored == Some(true) {
            continue;
        }
        let meta = &m.extra.metadata;
        let mut ids: Vec<String> = vec![m.check_id.clone()];
        ids.extend(strings(meta.get("cwe")));
        ids.extend(strings(meta.get("sca-vuln-database-identifier")));
        ids.extend(strings(meta.get("cve")));
        let text = if m.extra.message.is_empty() {
            m.check_id.clone()
        } else {
            m.extra.message.clone()
        };
        let end = m.end.as_ref().map(|e| e.line);
        let finding = match m.extra.sca_info {
            Some(sca) => {
                let lockfile = sca.dependency_match.lockfile;
                let dep = sca.dependency_match.found_dependency;
                let advisory = strings(meta.get("sca-vuln-database-identifier"))
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| m.check_id.clone());
                let label = meta
                    .get("sca-severity")
                    .and_then(Value::as_str)
                    .unwrap_or(&m.extra.severity);
                let fixes: Vec<String> = meta
                    .get("sca-fix-versions")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_object)
                    .flat_map(|o| {
                        o.iter()
                            .filter(|(k, _)| **k == dep.package)
                            .filter_map(|(_, v)| v.as_str().map(str::to_string))
                            .collect::<Vec<_>>()
                    })
                    .collect();
                let lockfile = dep
                    .lockfile_path
                    .clone()
                    .or(lockfile)
                    .unwrap_or_else(|| m.path.clone());
                let mut f = RawFinding::new(
                    "semgrep",
                    Category::Sca,
                    severity(label),
                    &advisory,
                    &title(&text),
                )
                .in_component(&dep.package, Some(&dep.version), &purl_type(&dep.ecosystem))
                .with_ids(ids)
                .fixed_by(fixes)
                .at(&lockfile, dep.line_number, dep.line_number);
                if lockfile != m.path {
                    // The reachable call site, when the rule found one.
                    f = f.also_at(&m.path, Some(m.start.line), end);
                }
                f.description = Some(m.extra.message);
                f
            }
            None => {
                let secret = meta.get("category").and_then(Value::as_str) == Some("secrets")
                    || m.check_id.contains("secrets");
                let category = if secret {
                    Category::Secret
                } else {
                    Category::Sast
                };
                let mut f = RawFinding::new(
                    "semgrep",
                    category,
                    severity(&m.extra.severity),
                    &m.check_id,
                    &title(&text),
                )
                .at(&m.path, Some(m.start.line), end)
                .with_ids(ids);
                // OSS semgrep writes "requires login" instead of the matched lines.
                let lines = m.extra.lines.unwrap_or_default();
                if lines != "requires login" {
                    f.context = lines.split_whitespace().collect::<Vec<_>>().join(" ");
                    if secret && !f.context.is_empty() {
                        f.context = crate::model::secret_context(&f.context);
                    }
                }
                f.help_uri = strings(meta.get("source")).into_iter().next();
                f.description = Some(m.extra.message);
                f
            }
        };
        parsed.findings.push(finding);
    }
    Ok(parsed)
}
