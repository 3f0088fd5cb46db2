//! SARIF 2.1.0 from any tool. The tool is `runs[].tool.driver.name`; the category follows the tool
//! (secret scanners: secret; IaC and Dockerfile scanners: iac; results naming a CVE/GHSA/RUSTSEC:
//! sca; anything else: sast). Severity: a `security-severity` score on the result or rule (CVSS
//! ratings), else the SARIF level (error high, warning medium, note low, none info). The snippet
//! text, or the tool's own partial fingerprint, is the stable context.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::{json, title};
use crate::error::{Error, Result};
use crate::model::{normalize_identifier, Category, RawFinding, Severity};

#[derive(Deserialize)]
struct Log {
    version: String,
    #[serde(default)]
    runs: Vec<Run>,
}

#[derive(Deserialize)]
struct Run {
    tool: Tool,
    #[serde(default)]
    results: Vec<SarifResult>,
}

#[derive(Deserialize)]
struct Tool {
    driver: Driver,
}

#[derive(Deserialize)]
struct Driver {
    name: String,
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    id: String,
    #[serde(default)]
    short_description: Option<Text>,
    #[serde(default)]
    help_uri: Option<String>,
    #[serde(default)]
    properties: Option<Value>,
    #[serde(default)]
    default_configuration: Option<Configuration>,
}

#[derive(Deserialize)]
struct Configuration {
    #[serde(default)]
    level: Option<String>,
}

#[derive(Deserialize)]
struct Text {
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SarifResult {
    #[serde(default)]
    rule_id: Option<String>,
    #[serde(default)]
    rule_index: Option<usize>,
    #[serde(default)]
    level: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    message: Text,
    #[serde(default)]
    locations: Vec<SarifLocation>,
    #[serde(default)]
    partial_fingerprints: HashMap<String, String>,
    #[serde(default)]
    properties: Option<Value>,
    #[serde(default)]
    suppressions: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SarifLocation {
    #[serde(default)]
    physical_location: Option<PhysicalLocation>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PhysicalLocation {
    #[serde(default)]
    artifact_location: Option<ArtifactLocation>,
    #[serde(default)]
    region: Option<Region>,
}

#[derive(Deserialize)]
struct ArtifactLocation {
    #[serde(default)]
    uri: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Region {
    #[serde(default)]
    start_line: Option<u32>,
    #[serde(default)]
    end_line: Option<u32>,
    #[serde(default)]
    snippet: Option<Text>,
}

fn category_for(tool: &str) -> Category {
    let tool = tool.to_ascii_lowercase();
    if ["gitleaks", "trufflehog", "detect-secrets", "ggshield"]
        .iter()
        .any(|t| tool.contains(t))
    {
        Category::Secret
    } else if [
        "checkov",
        "hadolint",
        "kics",
        "tfsec",
        "terrascan",
        "kube-linter",
        "kubesec",
        "trivy",
    ]
    .iter()
    .any(|t| tool.contains(t))
    {
        Category::Iac
    } else if ["clippy"].iter().any(|t| tool.contains(t)) {
        Category::Quality
    } else {
        Category::Sast
    }
}

fn security_severity(properties: Option<&Value>) -> Option<Severity> {
    let value = properties?.get("security-severity")?;
    let score = match value {
        Value::String(s) => s.parse::<f64>().ok()?,
        Value::Number(n) => n.as_f64()?,
        _ => return None,
    };
    Some(Severity::from_cvss(score))
}

fn level_severity(level: &str) -> Severity {
    match level {
        "error" => Severity::High,
        "warning" => Severity::Medium,
        "note" => Severity::Low,
        _ => Severity::Info,
    }
}

fn tags(properties: Option<&Value>) -> Vec<String> {
    properties
        .and_then(|p| p.get("tags"))
        .and_then(Value::as_array)
        .map(|tags| {
            tags.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

pub fn parse(file: &Path, bytes: &[u8]) -> Result<Vec<RawFinding>> {
    let log: Log = json(file, bytes)?;
    if log.version != "2.1.0" {
        return Err(Error::input(
            file,
            format!(
                "SARIF version {:?} is not supported (2.1.0 is)",
                log.version
            ),
        ));
    }
    let mut out = Vec::new();
    for run in log.runs {
        let tool = run.tool.driver.name.to_ascii_lowercase();
        let rules: HashMap<&str, &Rule> = run
            .tool
            .driver
            .rules
            .iter()
            .map(|r| (r.id.as_str(), r))
            .collect();
        for result in &run.results {
            // Results a tool itself marks as suppressed, or that are not problems, are left out.
            if !result.suppressions.is_empty()
                || result
                    .kind
                    .as_deref()
                    .is_some_and(|k| k != "fail" && k != "open")
            {
                continue;
            }
            let rule = result
                .rule_id
                .as_deref()
                .and_then(|id| rules.get(id).copied())
                .or_else(|| result.rule_index.and_then(|i| run.tool.driver.rules.get(i)));
            let rule_id = result
                .rule_id
                .clone()
                .or_else(|| rule.map(|r| r.id.clone()))
                .unwrap_or_else(|| "unknown".to_string());
            let severity = security_severity(result.properties.as_ref())
                .or_else(|| security_severity(rule.and_then(|r| r.properties.as_ref())))
                .or_else(|| result.level.as_deref().map(level_severity))
                .or_else(|| {
                    rule.and_then(|r| r.default_configuration.as_ref())
                        .and_then(|c| c.level.as_deref())
                        .map(level_severity)
                })
                .unwrap_or(Severity::Medium);
            let message = result.message.text.clone().unwrap_or_default();
            let rule_title = rule
                .and_then(|r| r.short_description.as_ref())
                .and_then(|t| t.text.clone())
                .unwrap_or_default();
            let mut ids: Vec<String> = vec![rule_id.clone()];
            for tag in tags(rule.and_then(|r| r.properties.as_ref())) {
                // semgrep and codeql tag CWEs as "CWE-79: ..." or "external/cwe/cwe-79".
                let cwe = tag
                    .split(':')
                    .next()
                    .unwrap_or("")
                    .rsplit('/')
                    .next()
                    .unwrap_or("")
                    .to_string();
                ids.push(cwe);
            }
            let is_advisory = ids
                .iter()
                .filter_map(|i| normalize_identifier(i))
                .any(|i| !i.starts_with("CWE-"));
            let category = if is_advisory && category_for(&tool) != Category::Secret {
                Category::Sca
            } else {
                category_for(&tool)
            };
            let text = if rule_title.is_empty() {
                message.clone()
            } else {
                rule_title
            };
            let mut finding =
                RawFinding::new(&tool, category, severity, &rule_id, &title(&text)).with_ids(ids);
            finding.description = (!message.is_empty()).then_some(message);
            finding.help_uri = rule.and_then(|r| r.help_uri.clone());
            if let Some(physical) = result
                .locations
                .first()
                .and_then(|l| l.physical_location.as_ref())
            {
                let uri = physical
                    .artifact_location
                    .as_ref()
                    .and_then(|a| a.uri.clone())
                    .unwrap_or_default();
                let region = physical.region.as_ref();
                if !uri.is_empty() {
                    let path = uri.trim_start_matches("file://");
                    let path = path.strip_prefix('/').unwrap_or(path);
                    finding = finding.at(
                        path,
                        region.and_then(|r| r.start_line),
                        region.and_then(|r| r.end_line),
                    );
                }
                finding.context = region
                    .and_then(|r| r.snippet.as_ref())
                    .and_then(|s| s.text.as_deref())
                    .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
                    .unwrap_or_default();
            }
            if finding.context.is_empty() {
                // A tool's own stable fingerprint, when it has one that is not line-based.
                if let Some(fp) = result
                    .partial_fingerprints
                    .iter()
                    .find(|(k, _)| !k.contains("line"))
                    .map(|(_, v)| v)
                {
                    finding.context = fp.clone();
                }
            }
            if category == Category::Secret {
                // Secret scanners' snippets contain the secret: keep only a hash of it.
                finding.context = if finding.context.is_empty() {
                    String::new()
                } else {
                    crate::model::secret_context(&finding.context)
                };
            }
            out.push(finding);
        }
    }
    Ok(out)
}
