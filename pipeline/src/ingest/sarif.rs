//! SARIF 2.1.0 from any tool. The tool is `runs[].tool.driver.name`; the category follows the tool
//! (secret scanners: secret; IaC and Dockerfile scanners: iac; results naming a CVE/GHSA/RUSTSEC:
//! sca; anything else: sast). Severity: a `security-severity` score on the result or rule (CVSS
//! ratings), else the SARIF level (error high, warning medium, note low, none info). The snippet
//! text, or the tool's own partial fingerprint, is the stable context. Every location is kept.
//!
//! Fail closed (SARIF 2.1.0 §3.14.23, §3.20.14): a run without a `results` array means the tool
//! produced no results, and an invocation with `executionSuccessful: false` means it failed; both
//! are errors, never an empty report.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::{each, json_borrowed, not_a_report, title, Parsed};
use crate::error::{Error, Result};
use crate::model::{identifiers_in, Category, RawFinding, Severity};

#[derive(Deserialize)]
struct Log<'a> {
    version: String,
    #[serde(borrow)]
    runs: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
struct Run<'a> {
    tool: Tool<'a>,
    #[serde(default, borrow)]
    results: Option<Vec<&'a RawValue>>,
    #[serde(default)]
    invocations: Vec<Invocation>,
}

#[derive(Deserialize)]
struct Tool<'a> {
    #[serde(borrow)]
    driver: Driver<'a>,
}

#[derive(Deserialize)]
struct Driver<'a> {
    name: String,
    #[serde(default, borrow)]
    rules: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Invocation {
    execution_successful: bool,
    #[serde(default)]
    tool_execution_notifications: Vec<Notification>,
}

#[derive(Deserialize)]
struct Notification {
    #[serde(default)]
    message: Option<Text>,
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
    rule: Option<RuleReference>,
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
struct RuleReference {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    index: Option<usize>,
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
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        Value::Number(n) => n.as_f64()?,
        _ => return None,
    };
    score.is_finite().then(|| Severity::from_cvss(score))
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

/// The file a SARIF artifact URI names: RFC 3986 percent-encoding decoded (`a%20b.rs` is the
/// file `a b.rs`), so findings merge with other tools' and are encoded once on the way out.
fn path_of(uri: &str) -> String {
    let path = uri.strip_prefix("file://").unwrap_or(uri);
    super::percent_decode(path.strip_prefix('/').unwrap_or(path))
}

pub fn parse(file: &Path, bytes: &[u8]) -> Result<Parsed> {
    const EXPECTED: &str = "a SARIF log: an object with \"version\" and \"runs\"";
    if super::first_byte(bytes) != Some(b'{') {
        // Still report a syntax error at its position when it is not JSON at all.
        let _: Value = super::json(file, bytes)?;
        return Err(not_a_report(file, "SARIF", EXPECTED));
    }
    let log: Log = json_borrowed(file, bytes)?;
    if log.version != "2.1.0" {
        return Err(Error::input(
            file,
            format!(
                "SARIF version {:?} is not supported (2.1.0 is)",
                log.version
            ),
        ));
    }
    let Some(runs) = log.runs else {
        return Err(not_a_report(file, "SARIF", "a \"runs\" array (it is null)"));
    };
    let mut parsed = Parsed::default();
    for (run_index, raw_run) in runs.iter().enumerate() {
        let run: Run = serde_json::from_str(raw_run.get()).map_err(|e| {
            Error::input(
                file,
                super::element_warning(bytes, raw_run, "run", run_index, &e)
                    .replace(" skipped:", ":"),
            )
        })?;
        if let Some(failed) = run.invocations.iter().find(|i| !i.execution_successful) {
            let why: Vec<String> = failed
                .tool_execution_notifications
                .iter()
                .filter_map(|n| n.message.as_ref().and_then(|m| m.text.clone()))
                .take(3)
                .collect();
            return Err(Error::input(
                file,
                format!(
                    "run #{run_index} ({}): the tool reports that it did not run successfully{}",
                    run.tool.driver.name,
                    if why.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", why.join(" | "))
                    }
                ),
            ));
        }
        let Some(results) = run.results else {
            return Err(Error::input(
                file,
                format!(
                    "run #{run_index} ({}) has no \"results\" array: the tool produced no results",
                    run.tool.driver.name
                ),
            ));
        };
        let tool = run.tool.driver.name.to_ascii_lowercase();
        let rule_list: Vec<Rule> = each(
            bytes,
            &run.tool.driver.rules,
            &format!("run #{run_index} rule"),
            &mut parsed.warnings,
        )
        .into_iter()
        .map(|(_, r)| r)
        .collect();
        let rules: HashMap<&str, &Rule> = rule_list.iter().map(|r| (r.id.as_str(), r)).collect();
        let what = format!("run #{run_index} result");
        let read = super::results::<SarifResult>(bytes, &results, &what, &mut parsed);
        if read.is_empty() && !results.is_empty() {
            return Err(super::none_readable(
                file,
                "SARIF",
                "result",
                results.len(),
                &parsed.warnings,
            ));
        }
        for (_, result) in read {
            if let Some(finding) = convert(&tool, &rules, &rule_list, result) {
                parsed.findings.push(finding);
            }
        }
    }
    Ok(parsed)
}

fn convert(
    tool: &str,
    rules: &HashMap<&str, &Rule>,
    rule_list: &[Rule],
    result: SarifResult,
) -> Option<RawFinding> {
    // Results a tool itself marks as suppressed, or that are not problems, are left out.
    if !result.suppressions.is_empty()
        || result
            .kind
            .as_deref()
            .is_some_and(|k| k != "fail" && k != "open")
    {
        return None;
    }
    let rule_id = result
        .rule_id
        .clone()
        .or_else(|| result.rule.as_ref().and_then(|r| r.id.clone()));
    let rule_index = result
        .rule_index
        .or_else(|| result.rule.as_ref().and_then(|r| r.index));
    let rule = rule_id
        .as_deref()
        .and_then(|id| rules.get(id).copied())
        .or_else(|| rule_index.and_then(|i| rule_list.get(i)));
    let rule_id = rule_id
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
    ids.extend(tags(rule.and_then(|r| r.properties.as_ref())));
    let is_advisory = ids
        .iter()
        .flat_map(|i| identifiers_in(i))
        .any(|i| !i.starts_with("CWE-"));
    let category = if is_advisory && category_for(tool) != Category::Secret {
        Category::Sca
    } else {
        category_for(tool)
    };
    let text = if rule_title.is_empty() {
        message.clone()
    } else {
        rule_title
    };
    let mut finding =
        RawFinding::new(tool, category, severity, &rule_id, &title(&text)).with_ids(ids);
    finding.description = (!message.is_empty()).then_some(message);
    finding.help_uri = rule.and_then(|r| r.help_uri.clone());
    let mut physical = result
        .locations
        .iter()
        .filter_map(|l| l.physical_location.as_ref());
    if let Some(first) = physical.next() {
        let uri = first
            .artifact_location
            .as_ref()
            .and_then(|a| a.uri.as_deref())
            .unwrap_or_default();
        let region = first.region.as_ref();
        if !uri.is_empty() {
            finding = finding.at(
                &path_of(uri),
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
    for other in physical {
        if let Some(uri) = other
            .artifact_location
            .as_ref()
            .and_then(|a| a.uri.as_deref())
            .filter(|u| !u.is_empty())
        {
            let region = other.region.as_ref();
            finding = finding.also_at(
                &path_of(uri),
                region.and_then(|r| r.start_line),
                region.and_then(|r| r.end_line),
            );
        }
    }
    if finding.context.is_empty() {
        // A tool's own stable fingerprint, when it has one that is not line-based; the smallest
        // key first, so the choice does not depend on the map's order.
        let mut stable: Vec<(&String, &String)> = result
            .partial_fingerprints
            .iter()
            .filter(|(k, _)| !k.to_ascii_lowercase().contains("line"))
            .collect();
        stable.sort();
        if let Some((_, v)) = stable.first() {
            finding.context = (*v).clone();
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
    Some(finding)
}
