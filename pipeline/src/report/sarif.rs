//! Merged SARIF 2.1.0 for GitHub code scanning: one run, tool `devsecops`, one rule per rule id,
//! `security-severity`, `baselineState`, suppressions with their justification, every location of
//! a finding, its fixed versions, and the run's scanner errors, warnings and advisory databases as
//! notifications and run properties. Serialized from borrowed structures straight into the output,
//! one result at a time (each is built, written and dropped), so 100,000 findings cost no more
//! memory than one, even with both SARIF files rendered at once.
//!
//! Identity on GitHub: code scanning reads only `partialFingerprints.primaryLocationLineHash` and
//! computes that one itself when it is missing, from the text of the primary line
//! (github/codeql-action src/fingerprints.ts), so two dependency results pointing at one line of
//! Cargo.lock would become one alert. The stable fingerprint is therefore put there (as
//! `<fingerprint>:1`, the hash:occurrence form) as well as under `devsecops/v1`, and every result
//! has a region.
//!
//! Artifact URIs: a repository path is a relative reference percent-encoded per RFC 3986 (every
//! byte but unreserved characters and `/`, so spaces, `#`, `%`, `?`, `:` and non-ASCII text stay
//! part of the path) against `uriBaseId` `%SRCROOT%`, which the run declares in
//! `originalUriBaseIds`; an absolute path (a Nix store path) is a `file://` URI.
//!
//! `Results::Open` leaves out what a person accepted (suppressed or baselined) for consumers that
//! import suppressed results as open issues (Jenkins warnings-ng, SonarQube).

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use serde::{Serialize, Serializer};

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
struct Log<'a, R: Serialize> {
    #[serde(rename = "$schema")]
    schema: &'static str,
    version: &'static str,
    runs: [Run<'a, R>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Run<'a, R: Serialize> {
    tool: Tool<'a>,
    original_uri_base_ids: BaseIds,
    invocations: [Invocation; 1],
    results: R,
    properties: RunProperties<'a>,
}

/// A JSON array written from an iterator as it goes, never collected: serialized once.
struct Streamed<I>(RefCell<Option<I>>);

impl<I> Serialize for Streamed<I>
where
    I: Iterator,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let items = self
            .0
            .borrow_mut()
            .take()
            .ok_or_else(|| serde::ser::Error::custom("results serialized twice"))?;
        serializer.collect_seq(items)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RunProperties<'a> {
    advisory_databases: &'a [crate::assess::DatabaseStatus],
    /// Results left out of this file because they are accepted (`Results::Open` only).
    accepted_results_omitted: usize,
}

/// Which results a SARIF file carries.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Results {
    All,
    /// Without suppressed or baselined results.
    Open,
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
struct Fingerprints<'a> {
    #[serde(rename = "devsecops/v1")]
    v1: &'a str,
    #[serde(rename = "primaryLocationLineHash")]
    primary_location_line_hash: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifResult<'a> {
    rule_id: &'a str,
    rule_index: usize,
    level: &'static str,
    message: Message<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    locations: Vec<Location>,
    partial_fingerprints: Fingerprints<'a>,
    baseline_state: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    suppressions: Vec<Suppression<'a>>,
    properties: ResultProperties<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Location {
    physical_location: PhysicalLocation,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PhysicalLocation {
    artifact_location: Artifact,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<Region>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Artifact {
    uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    uri_base_id: Option<&'static str>,
}

/// The base of relative artifact URIs: the root of the scanned repository.
const SRCROOT: &str = "%SRCROOT%";

#[derive(Serialize)]
struct BaseIds {
    #[serde(rename = "%SRCROOT%")]
    srcroot: BaseId,
}

#[derive(Serialize)]
struct BaseId {
    description: Message<'static>,
}

/// `path` as an RFC 3986 URI reference: percent-encoded UTF-8 except unreserved characters and
/// `/`; an absolute path becomes a `file://` URI, a relative one is relative to [`SRCROOT`].
fn artifact(path: &str) -> Artifact {
    let mut uri = String::with_capacity(path.len() + 8);
    let absolute = path.starts_with('/');
    if absolute {
        uri.push_str("file://");
    }
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'/') {
            uri.push(char::from(byte));
        } else {
            let _ = write!(uri, "%{byte:02X}");
        }
    }
    Artifact {
        uri,
        uri_base_id: (!absolute).then_some(SRCROOT),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Region {
    start_line: u32,
    end_line: u32,
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
    fix_available: bool,
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    fixed_versions: &'a BTreeSet<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    affected_versions: Vec<String>,
}

pub fn render(a: &Assessment, which: Results) -> String {
    let mut out = Vec::new();
    let _ = write(a, &mut out, which);
    String::from_utf8(out).unwrap_or_default()
}

fn location(path: &str, start: Option<u32>, end: Option<u32>) -> Location {
    // Every result gets a region: line 1 when the tool gave none.
    let start = start.filter(|s| *s > 0).unwrap_or(1);
    Location {
        physical_location: PhysicalLocation {
            artifact_location: artifact(path),
            region: Some(Region {
                start_line: start,
                end_line: end.unwrap_or(start).max(start),
            }),
        },
    }
}

pub fn write(a: &Assessment, out: &mut dyn std::io::Write, which: Results) -> std::io::Result<()> {
    let included = |item: &&crate::assess::Assessed| which == Results::All || !item.is_accepted();
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut rules = Vec::new();
    for item in a.findings.iter().filter(included) {
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
    let omitted = a.findings.len() - a.findings.iter().filter(included).count();
    let results = a.findings.iter().filter(included).map(|item| {
        let f = &item.finding;
        let mut text = f.title.clone();
        let versions: Vec<String> = f
            .components()
            .map(|c| {
                format!("{} {}", c.name, c.version.as_deref().unwrap_or(""))
                    .trim_end()
                    .to_string()
            })
            .collect();
        if !versions.is_empty() {
            text.push_str(&format!(" ({})", versions.join(", ")));
        }
        let fix = f.fix_text();
        if !fix.is_empty() {
            text.push_str(&format!("; {fix}"));
        }
        if let Some(shipped) = f.shipped_in() {
            text.push_str(&format!(" {shipped}"));
        }
        text.push_str(" [");
        text.push_str(&f.tools.iter().cloned().collect::<Vec<_>>().join(", "));
        text.push(']');
        let mut locations: Vec<Location> = f
            .locations()
            .map(|l| location(&l.path, l.start_line, l.end_line))
            .collect();
        if locations.is_empty()
            && f.component
                .as_ref()
                .and_then(|c| c.purl.as_deref())
                .is_some_and(|p| p.starts_with("pkg:cargo/"))
        {
            // GitHub needs a file; Rust dependency findings point at the lock file.
            locations.push(location("Cargo.lock", None, None));
        }
        SarifResult {
            rule_id: &f.rule,
            rule_index: index[f.rule.as_str()],
            level: level(f.severity),
            message: Message { text: text.into() },
            locations,
            partial_fingerprints: Fingerprints {
                v1: &f.fingerprint,
                primary_location_line_hash: format!("{}:1", f.fingerprint),
            },
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
                fix_available: f.fix_available(),
                fixed_versions: &f.fixed_versions,
                affected_versions: if f.other_components.is_empty() {
                    Vec::new()
                } else {
                    versions
                },
            },
        }
    });
    let results = Streamed(RefCell::new(Some(results)));
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
            original_uri_base_ids: BaseIds {
                srcroot: BaseId {
                    description: Message {
                        text: "The root of the scanned repository".into(),
                    },
                },
            },
            invocations: [Invocation {
                execution_successful: !a.nothing_scanned
                    && a.scanner_errors.iter().all(|e| e.optional),
                tool_execution_notifications: a
                    .reasons
                    .iter()
                    .map(|r| ("error", r))
                    .chain(a.notices.iter().map(|n| ("warning", n)))
                    .chain(a.warnings.iter().map(|w| ("note", w)))
                    .map(|(level, text)| (level, text.clone()))
                    // The policy diff, one notification per change.
                    .chain(a.policy.iter().flat_map(|p| {
                        p.changes.iter().map(|c| {
                            (
                                if c.unapproved() { "error" } else { "note" },
                                format!(
                                    "policy change against {}: {}",
                                    p.base,
                                    crate::policy_diff::PolicyReport::line(c)
                                ),
                            )
                        })
                    }))
                    .map(|(level, text)| Notification {
                        level,
                        message: Message { text: text.into() },
                    })
                    .collect(),
            }],
            results,
            properties: RunProperties {
                advisory_databases: &a.databases,
                accepted_results_omitted: omitted,
            },
        }],
    };
    serde_json::to_writer(&mut *out, &log)?;
    out.write_all(b"\n")
}
