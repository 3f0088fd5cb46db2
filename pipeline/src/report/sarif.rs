//! Merged SARIF 2.1.0 for GitHub code scanning: one run, tool `devsecops`, one rule per rule id,
//! `partialFingerprints` with the stable fingerprint, `security-severity`, `baselineState`, and
//! suppressions with their justification. Serialized from borrowed structures straight into the
//! output, so 100,000 findings cost tens of megabytes, not a JSON tree per result.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

use crate::assess::Assessment;
use crate::baseline::State;
use crate::model::Severity;

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "note",
        Severity::Info => "none",
    }
}

#[derive(Serialize)]
struct Log<'a> {
    #[serde(rename = "$schema")]
    schema: &'static str,
    version: &'static str,
    runs: [Run<'a>; 1],
}

#[derive(Serialize)]
struct Run<'a> {
    tool: Tool<'a>,
    invocations: [Invocation; 1],
    results: Vec<SarifResult<'a>>,
}

#[derive(Serialize)]
struct Tool<'a> {
    driver: Driver<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Driver<'a> {
    name: &'static str,
    version: &'static str,
    information_uri: &'static str,
    rules: Vec<Rule<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Rule<'a> {
    id: &'a str,
    short_description: Message<'a>,
    default_configuration: Configuration,
    #[serde(skip_serializing_if = "Option::is_none")]
    help_uri: Option<&'a str>,
    properties: RuleProperties<'a>,
}

#[derive(Serialize)]
struct Message<'a> {
    text: std::borrow::Cow<'a, str>,
}

#[derive(Serialize)]
struct Configuration {
    level: &'static str,
}

#[derive(Serialize)]
struct RuleProperties<'a> {
    #[serde(rename = "security-severity")]
    security_severity: &'static str,
    tags: [&'a str; 2],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Invocation {
    execution_successful: bool,
    tool_execution_notifications: Vec<Notification>,
}

#[derive(Serialize)]
struct Notification {
    level: &'static str,
    message: Message<'static>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifResult<'a> {
    rule_id: &'a str,
    rule_index: usize,
    level: &'static str,
    message: Message<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    locations: Vec<Location<'a>>,
    partial_fingerprints: Fingerprints<'a>,
    baseline_state: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    suppressions: Vec<Suppression<'a>>,
    properties: ResultProperties<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Location<'a> {
    physical_location: PhysicalLocation<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PhysicalLocation<'a> {
    artifact_location: Artifact<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<Region>,
}

#[derive(Serialize)]
struct Artifact<'a> {
    uri: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Region {
    start_line: u32,
    end_line: u32,
}

#[derive(Serialize)]
struct Fingerprints<'a> {
    #[serde(rename = "devsecops/v1")]
    v1: &'a str,
}

#[derive(Serialize)]
struct Suppression<'a> {
    kind: &'static str,
    status: &'static str,
    justification: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResultProperties<'a> {
    #[serde(rename = "security-severity")]
    security_severity: &'static str,
    severity: &'static str,
    category: &'static str,
    tools: &'a BTreeSet<String>,
    identifiers: &'a BTreeSet<String>,
    age_days: i64,
    sla_breached: bool,
}

pub fn render(a: &Assessment) -> String {
    let mut out = Vec::new();
    let _ = write(a, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

pub fn write(a: &Assessment, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut rules = Vec::new();
    for item in &a.findings {
        let f = &item.finding;
        if !index.contains_key(f.rule.as_str()) {
            index.insert(f.rule.as_str(), rules.len());
            rules.push(Rule {
                id: &f.rule,
                short_description: Message {
                    text: f.title.as_str().into(),
                },
                default_configuration: Configuration {
                    level: level(f.severity),
                },
                help_uri: f.help_uri.as_deref(),
                properties: RuleProperties {
                    security_severity: f.severity.security_severity(),
                    tags: ["security", f.category.as_str()],
                },
            });
        }
    }
    let results = a
        .findings
        .iter()
        .map(|item| {
            let f = &item.finding;
            let mut text = f.title.clone();
            if let Some(c) = &f.component {
                text.push_str(&format!(
                    " ({} {})",
                    c.name,
                    c.version.as_deref().unwrap_or("")
                ));
            }
            text.push_str(" [");
            text.push_str(&f.tools.iter().cloned().collect::<Vec<_>>().join(", "));
            text.push(']');
            let location = match (&f.location, &f.component) {
                (Some(l), _) => Some(Location {
                    physical_location: PhysicalLocation {
                        artifact_location: Artifact { uri: &l.path },
                        region: l.start_line.filter(|s| *s > 0).map(|start| Region {
                            start_line: start,
                            end_line: l.end_line.unwrap_or(start).max(start),
                        }),
                    },
                }),
                // GitHub needs a file; Rust dependency findings point at the lock file.
                (None, Some(c))
                    if c.purl
                        .as_deref()
                        .is_some_and(|p| p.starts_with("pkg:cargo/")) =>
                {
                    Some(Location {
                        physical_location: PhysicalLocation {
                            artifact_location: Artifact { uri: "Cargo.lock" },
                            region: None,
                        },
                    })
                }
                _ => None,
            };
            SarifResult {
                rule_id: &f.rule,
                rule_index: index[f.rule.as_str()],
                level: level(f.severity),
                message: Message { text: text.into() },
                locations: location.into_iter().collect(),
                partial_fingerprints: Fingerprints { v1: &f.fingerprint },
                baseline_state: match item.state {
                    State::New => "new",
                    State::Unchanged => "unchanged",
                    State::Fixed => "absent",
                },
                suppressions: item
                    .suppression_justification
                    .as_deref()
                    .map(|j| Suppression {
                        kind: "external",
                        status: "accepted",
                        justification: j,
                    })
                    .into_iter()
                    .collect(),
                properties: ResultProperties {
                    security_severity: f.severity.security_severity(),
                    severity: f.severity.as_str(),
                    category: f.category.as_str(),
                    tools: &f.tools,
                    identifiers: &f.identifiers,
                    age_days: item.age_days,
                    sla_breached: item.sla_breached,
                },
            }
        })
        .collect();
    let log = Log {
        schema: "https://json.schemastore.org/sarif-2.1.0.json",
        version: "2.1.0",
        runs: [Run {
            tool: Tool {
                driver: Driver {
                    name: "devsecops",
                    version: env!("CARGO_PKG_VERSION"),
                    information_uri: "https://github.com/devsecops-platform/devsecops",
                    rules,
                },
            },
            invocations: [Invocation {
                execution_successful: true,
                tool_execution_notifications: a
                    .skipped
                    .iter()
                    .map(|(tool, why)| Notification {
                        level: "warning",
                        message: Message {
                            text: format!("{tool} skipped: {why}").into(),
                        },
                    })
                    .collect(),
            }],
            results,
        }],
    };
    serde_json::to_writer(&mut *out, &log)?;
    out.write_all(b"\n")
}
