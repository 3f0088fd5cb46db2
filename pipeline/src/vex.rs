//! VEX out and in.
//!
//! Out (`devsecops vex`): OpenVEX 0.2.0 or CycloneDX 1.6 statements from the suppressions of
//! dependency findings. Every such suppression carries a VEX justification (the five labels of
//! CISA's minimum requirements, which OpenVEX uses verbatim), its owner and its expiry; a
//! suppression that has expired states `under_investigation` instead of `not_affected`, so a
//! document never says more than the decision behind it.
//!
//! In (`ingest --tool openvex|cyclonedx-vex`): a vendor's statements, kept with their author and
//! timestamp and applied by the gate as suppressions: `not_affected` and `fixed` accept the
//! findings of that advisory (by id or alias) in that package (by purl; a purl without a version
//! names every version), `affected` and `under_investigation` never do; the newest statement
//! about a finding decides.
//!
//! CycloneDX states map to these statuses as trivy maps them (aquasecurity/trivy
//! `pkg/vex/cyclonedx.go`, commit 17babdaa: resolved and resolved_with_pedigree are fixed,
//! exploitable affected, in_triage under investigation, false_positive and not_affected not
//! affected). Justifications map as CycloneDX/specification discussion #609 proposes; CycloneDX
//! has no "component not present", so both "not present" labels become `code_not_present`, and the
//! exact label travels in the `devsecops:vex-justification` property.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::{Date, OffsetDateTime};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::{normalize_identifier, Finding};
use crate::store::Store;
use crate::suppress::Suppression;

/// The justifications a `not_affected` statement gives, as OpenVEX (and CISA) name them.
pub const JUSTIFICATIONS: [&str; 5] = [
    "component_not_present",
    "vulnerable_code_not_present",
    "vulnerable_code_not_in_execute_path",
    "vulnerable_code_cannot_be_controlled_by_adversary",
    "inline_mitigations_already_exist",
];

const OPENVEX_CONTEXT: &str = "https://openvex.dev/ns/v0.2.0";
/// Properties that carry what the formats have no field for.
const PROPERTY_JUSTIFICATION: &str = "devsecops:vex-justification";
const PROPERTY_OWNER: &str = "devsecops:owner";
const PROPERTY_EXPIRES: &str = "devsecops:expires";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    NotAffected,
    Affected,
    Fixed,
    UnderInvestigation,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::NotAffected => "not_affected",
            Status::Affected => "affected",
            Status::Fixed => "fixed",
            Status::UnderInvestigation => "under_investigation",
        }
    }

    fn from_openvex(text: &str) -> Option<Status> {
        Some(match text {
            "not_affected" => Status::NotAffected,
            "affected" => Status::Affected,
            "fixed" => Status::Fixed,
            "under_investigation" => Status::UnderInvestigation,
            _ => return None,
        })
    }

    fn from_cyclonedx(state: &str) -> Option<Status> {
        Some(match state {
            "not_affected" | "false_positive" => Status::NotAffected,
            "exploitable" => Status::Affected,
            "resolved" | "resolved_with_pedigree" => Status::Fixed,
            "in_triage" => Status::UnderInvestigation,
            _ => return None,
        })
    }

    /// Whether a statement with this status accepts the findings it is about.
    pub fn accepts(self) -> bool {
        matches!(self, Status::NotAffected | Status::Fixed)
    }
}

/// A VEX statement as the gate applies it, whatever format it came in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// The file it was read from, and its position there (0-based).
    pub source: String,
    pub index: usize,
    /// The vulnerability's name as the statement gives it.
    pub vulnerability: String,
    /// Every advisory id it names (name and aliases), normalized.
    pub ids: BTreeSet<String>,
    /// Package URLs of what it is about.
    pub products: Vec<String>,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Who made it (the document's author).
    pub author: String,
    /// When it was known to be true (RFC 3339).
    pub timestamp: String,
    /// The last day it holds (`devsecops:expires`), when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

/// (type, name, version) of a purl, for matching; `None` when it is not one.
fn purl_key(purl: &str) -> Option<(String, String, Option<String>)> {
    crate::ingest::purl_parts(purl.trim())
}

impl Statement {
    /// Whether it is about `finding`: one of its ids is one of the finding's (or its rule), and
    /// its products name every package of the finding (any version when a product names none).
    /// A finding that merged several versions of a crate is decided only by a statement that
    /// covers them all: one about 1.6.0 says nothing about 0.6.13 beside it, and a package
    /// without a purl is never covered.
    pub fn matches(&self, finding: &Finding) -> bool {
        let named = finding.identifiers.iter().any(|id| self.ids.contains(id))
            || self.ids.contains(&finding.rule)
            || finding.rule == self.vulnerability;
        if !named {
            return false;
        }
        let products: Vec<_> = self.products.iter().filter_map(|p| purl_key(p)).collect();
        let mut packages = finding
            .components()
            .map(|c| c.purl.as_deref().and_then(purl_key))
            .peekable();
        packages.peek().is_some()
            && packages.all(|package| {
                package.is_some_and(|(k, n, v)| {
                    products.iter().any(|(kind, name, version)| {
                        k.eq_ignore_ascii_case(kind)
                            && n == *name
                            && (version.is_none() || v == *version)
                    })
                })
            })
    }

    /// The last day it holds, when it says.
    pub fn expiry(&self) -> Option<Date> {
        self.expires.as_deref().and_then(parse_date)
    }

    pub fn is_expired(&self, today: Date) -> bool {
        self.expiry().is_some_and(|d| d < today)
    }

    /// One line for people: what it states, why, whose it is and when.
    pub fn describe(&self) -> String {
        let why = match (&self.justification, &self.impact) {
            (Some(j), Some(i)) => format!(" ({j}): {i}"),
            (Some(j), None) => format!(" ({j})"),
            (None, Some(i)) => format!(": {i}"),
            (None, None) => String::new(),
        };
        format!(
            "VEX {} {}{why}, stated by {} on {} in {}",
            self.vulnerability,
            self.status.as_str(),
            self.author,
            self.timestamp,
            self.source
        )
    }
}

fn parse_date(text: &str) -> Option<Date> {
    Date::parse(
        text.get(..10)?,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()
}

fn timestamp_of(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

/// What a VEX statement decided about a finding, as the reports show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub status: Status,
    pub vulnerability: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impact: Option<String>,
    pub author: String,
    pub timestamp: String,
    pub source: String,
    /// Whether it accepts the finding (not_affected or fixed, and not expired).
    pub accepts: bool,
}

/// The statement that decides about `finding`: of those about it, the newest (a later one in the
/// list wins a tie); with its position in `statements`.
pub fn deciding<'a>(
    statements: &'a [Statement],
    finding: &Finding,
) -> Option<(usize, &'a Statement)> {
    statements
        .iter()
        .enumerate()
        .filter(|(_, s)| s.matches(finding))
        .max_by(|(i, a), (j, b)| {
            match (timestamp_of(&a.timestamp), timestamp_of(&b.timestamp)) {
                (Some(x), Some(y)) => x.cmp(&y),
                _ => a.timestamp.cmp(&b.timestamp),
            }
            .then(i.cmp(j))
        })
}

impl Decision {
    pub fn of(statement: &Statement, today: Date) -> Decision {
        Decision {
            status: statement.status,
            vulnerability: statement.vulnerability.clone(),
            justification: statement.justification.clone(),
            impact: statement.impact.clone(),
            author: statement.author.clone(),
            timestamp: statement.timestamp.clone(),
            source: statement.source.clone(),
            accepts: statement.status.accepts() && !statement.is_expired(today),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// VEX out

/// A dependency finding that a suppression covers, and what to state about it.
struct Covered<'a> {
    finding: &'a Finding,
    suppression: &'a Suppression,
    expired: bool,
}

/// Every dependency finding with an advisory id and a package URL that a suppression covers: the
/// first active suppression, else the first expired one (as the gate picks them). A covering
/// suppression without a VEX justification is an error naming it.
fn covered<'a>(
    findings: &'a [Finding],
    suppressions: &'a [Suppression],
    today: Date,
    file: &Path,
) -> Result<Vec<Covered<'a>>> {
    let mut out = Vec::new();
    let mut missing = BTreeSet::new();
    for finding in findings {
        let has_advisory = finding.identifiers.iter().any(|id| !id.starts_with("CWE-"));
        let has_purl = finding.components().any(|c| c.purl.is_some());
        if !finding.is_dependency() || !has_advisory || !has_purl {
            continue;
        }
        let matching: Vec<&Suppression> =
            suppressions.iter().filter(|s| s.matches(finding)).collect();
        let chosen = matching
            .iter()
            .find(|s| !s.is_expired(today))
            .or_else(|| matching.first());
        let Some(suppression) = chosen else { continue };
        if suppression.vex_justification.is_none() {
            missing.insert(suppression.index);
            continue;
        }
        out.push(Covered {
            finding,
            suppression,
            expired: suppression.is_expired(today),
        });
    }
    if !missing.is_empty() {
        return Err(Error::input(
            file,
            format!(
                "suppression(s) {} accept dependency findings but give no vex_justification (one of {})",
                missing
                    .iter()
                    .map(|i| format!("#{i}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                JUSTIFICATIONS.join(", ")
            ),
        ));
    }
    if out.is_empty() {
        return Err(Error::Usage(format!(
            "no suppression in {} accepts a stored dependency finding (an advisory in a package with a purl): there is no VEX statement to write",
            file.display()
        )));
    }
    Ok(out)
}

/// The id a statement is about (the finding's advisory rule when it is one), and the others.
fn vulnerability_ids(finding: &Finding) -> (String, Vec<String>) {
    let advisories: Vec<&String> = finding
        .identifiers
        .iter()
        .filter(|id| !id.starts_with("CWE-"))
        .collect();
    let name = normalize_identifier(&finding.rule)
        .filter(|id| !id.starts_with("CWE-"))
        .or_else(|| advisories.first().map(|s| s.to_string()))
        .unwrap_or_else(|| finding.rule.clone());
    let aliases = advisories
        .into_iter()
        .filter(|id| **id != name)
        .cloned()
        .collect();
    (name, aliases)
}

fn purls(finding: &Finding) -> Vec<String> {
    let mut out: Vec<String> = finding
        .components()
        .filter_map(|c| c.purl.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

fn notes(c: &Covered, file: &Path) -> String {
    let s = c.suppression;
    if c.expired {
        format!(
            "The acceptance by {} expired on {} (suppression #{} of {}); it stated not_affected ({}): {}",
            s.owner,
            s.expires,
            s.index,
            file.display(),
            s.vex_justification.as_deref().unwrap_or(""),
            s.justification
        )
    } else {
        format!(
            "Accepted by {} until {} (suppression #{} of {}).",
            s.owner,
            s.expires,
            s.index,
            file.display()
        )
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// An OpenVEX 0.2.0 document.
fn openvex(covered: &[Covered], author: &str, now: OffsetDateTime, file: &Path) -> Value {
    let timestamp = rfc3339(now);
    let statements: Vec<Value> = covered
        .iter()
        .map(|c| {
            let (name, aliases) = vulnerability_ids(c.finding);
            let mut vulnerability = json!({"name": name});
            if !aliases.is_empty() {
                vulnerability["aliases"] = json!(aliases);
            }
            if let Some(uri) = c
                .finding
                .help_uri
                .as_deref()
                .filter(|u| u.starts_with("https://"))
            {
                vulnerability["@id"] = json!(uri);
            }
            let products: Vec<Value> = purls(c.finding)
                .into_iter()
                .map(|p| json!({"@id": p, "identifiers": {"purl": p}}))
                .collect();
            let mut statement = json!({
                "vulnerability": vulnerability,
                "timestamp": timestamp,
                "products": products,
                "status_notes": notes(c, file),
            });
            if c.expired {
                statement["status"] = json!(Status::UnderInvestigation.as_str());
            } else {
                statement["status"] = json!(Status::NotAffected.as_str());
                statement["justification"] = json!(c.suppression.vex_justification);
                statement["impact_statement"] = json!(c.suppression.justification);
            }
            statement
        })
        .collect();
    json!({
        "@context": OPENVEX_CONTEXT,
        "@id": crate::sbom::serial(),
        "author": author,
        "timestamp": timestamp,
        "version": 1,
        "tooling": format!("devsecops {}", env!("CARGO_PKG_VERSION")),
        "statements": statements,
    })
}

/// CycloneDX's justification for an OpenVEX one (CycloneDX/specification discussion #609).
fn cyclonedx_justification(label: &str) -> &'static str {
    match label {
        "component_not_present" | "vulnerable_code_not_present" => "code_not_present",
        "vulnerable_code_not_in_execute_path" => "code_not_reachable",
        "inline_mitigations_already_exist" => "protected_by_mitigating_control",
        _ => "requires_environment",
    }
}

/// The OpenVEX justification a CycloneDX one stands for (the same discussion).
fn openvex_justification(cyclonedx: &str) -> Option<&'static str> {
    Some(match cyclonedx {
        "code_not_present" => "vulnerable_code_not_present",
        "code_not_reachable" => "vulnerable_code_not_in_execute_path",
        "protected_by_mitigating_control" | "protected_by_compiler" => {
            "inline_mitigations_already_exist"
        }
        "protected_at_runtime"
        | "protected_at_perimeter"
        | "requires_configuration"
        | "requires_dependency"
        | "requires_environment" => "vulnerable_code_cannot_be_controlled_by_adversary",
        _ => return None,
    })
}

/// Where an advisory id is published, for CycloneDX's `source`.
fn id_source(id: &str) -> Value {
    let (name, url) = if id.starts_with("RUSTSEC-") {
        ("RustSec", format!("https://rustsec.org/advisories/{id}"))
    } else if id.starts_with("CVE-") {
        ("NVD", format!("https://nvd.nist.gov/vuln/detail/{id}"))
    } else if id.starts_with("GHSA-") {
        ("GitHub", format!("https://github.com/advisories/{id}"))
    } else {
        return json!({"name": id.split('-').next().unwrap_or(id)});
    };
    json!({"name": name, "url": url})
}

/// A CycloneDX 1.6 VEX document: the packages as components, one vulnerability per finding.
fn cyclonedx(covered: &[Covered], author: &str, now: OffsetDateTime, file: &Path) -> Value {
    let timestamp = rfc3339(now);
    let mut components: BTreeMap<String, Value> = BTreeMap::new();
    let vulnerabilities: Vec<Value> = covered
        .iter()
        .enumerate()
        .map(|(n, c)| {
            let s = c.suppression;
            for component in c.finding.components() {
                if let Some(purl) = &component.purl {
                    components.entry(purl.clone()).or_insert_with(|| {
                        let mut v = json!({"type": "library", "bom-ref": purl, "name": component.name, "purl": purl});
                        if let Some(version) = &component.version {
                            v["version"] = json!(version);
                        }
                        v
                    });
                }
            }
            let (name, aliases) = vulnerability_ids(c.finding);
            let label = s.vex_justification.clone().unwrap_or_default();
            let analysis = if c.expired {
                json!({"state": "in_triage", "detail": notes(c, file), "lastUpdated": timestamp})
            } else {
                json!({
                    "state": "not_affected",
                    "justification": cyclonedx_justification(&label),
                    "detail": format!("{} {}", s.justification, notes(c, file)),
                    "lastUpdated": timestamp,
                })
            };
            let mut vulnerability = json!({
                "bom-ref": format!("vex-{}", n + 1),
                "id": name,
                "source": id_source(&name),
                "analysis": analysis,
                "affects": purls(c.finding).into_iter().map(|p| json!({"ref": p})).collect::<Vec<_>>(),
                "properties": [
                    {"name": PROPERTY_JUSTIFICATION, "value": label},
                    {"name": PROPERTY_OWNER, "value": s.owner},
                    {"name": PROPERTY_EXPIRES, "value": s.expires.to_string()},
                ],
            });
            if !aliases.is_empty() {
                vulnerability["references"] = json!(aliases
                    .iter()
                    .map(|a| json!({"id": a, "source": id_source(a)}))
                    .collect::<Vec<_>>());
            }
            vulnerability
        })
        .collect();
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": crate::sbom::serial(),
        "version": 1,
        "metadata": {
            "timestamp": timestamp,
            "tools": {"components": [{"type": "application", "name": "devsecops", "version": env!("CARGO_PKG_VERSION")}]},
            "authors": [{"name": author}],
        },
        "components": components.into_values().collect::<Vec<_>>(),
        "vulnerabilities": vulnerabilities,
    })
}

/// The `vex` command: a VEX document from the suppressions of the stored dependency findings.
/// `author` defaults to the suppressions' owners.
pub fn command(
    config: &Config,
    format: &str,
    output: Option<&Path>,
    author: Option<&str>,
) -> Result<u8> {
    let store = Store::load(&config.paths.findings)?;
    let suppressions = crate::suppress::load(&config.paths.suppressions)?;
    let now = OffsetDateTime::now_utc();
    let file = config.paths.suppressions.as_path();
    let covered = covered(&store.findings, &suppressions, now.date(), file)?;
    let author = author.map(str::to_string).unwrap_or_else(|| {
        covered
            .iter()
            .map(|c| c.suppression.owner.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join(", ")
    });
    let document = match format {
        "openvex" => openvex(&covered, &author, now, file),
        "cyclonedx" => cyclonedx(&covered, &author, now, file),
        other => {
            return Err(Error::Usage(format!(
                "unknown VEX format {other:?}; known: openvex, cyclonedx"
            )))
        }
    };
    let text =
        serde_json::to_string_pretty(&document).map_err(|e| Error::Usage(e.to_string()))? + "\n";
    let expired = covered.iter().filter(|c| c.expired).count();
    match output {
        Some(path) => {
            crate::report::write_atomic(path, text.as_bytes())?;
            eprintln!(
                "wrote {} statement(s) to {} ({} not_affected, {expired} under_investigation: their acceptance expired)",
                covered.len(),
                path.display(),
                covered.len() - expired
            );
        }
        None => print!("{text}"),
    }
    Ok(0)
}

// ---------------------------------------------------------------------------------------------
// VEX in

/// The `ingest --tool` names of the VEX formats.
pub const TOOLS: [&str; 2] = ["openvex", "cyclonedx-vex"];

fn text_of(value: Option<&Value>) -> Option<String> {
    value
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Advisory ids in the names given (normalized when they are ids, kept as given otherwise).
fn ids_of<'a>(names: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    names
        .into_iter()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| normalize_identifier(n).unwrap_or_else(|| n.to_string()))
        .collect()
}

fn purl_of(object: &Value) -> Option<String> {
    text_of(object.get("identifiers").and_then(|i| i.get("purl")))
        .or_else(|| text_of(object.get("@id")).filter(|id| id.starts_with("pkg:")))
}

/// The statements of an OpenVEX document (0.2.0, and the 0.0.x form whose vulnerability is a
/// string). A statement that cannot be applied is skipped with a warning naming its index.
pub fn parse_openvex(file: &Path, bytes: &[u8]) -> Result<(Vec<Statement>, Vec<String>)> {
    let doc: Value = crate::ingest::json(file, bytes)?;
    let context = doc.get("@context").and_then(Value::as_str).unwrap_or("");
    if !context.starts_with("https://openvex.dev/ns") {
        return Err(crate::ingest::not_a_report(
            file,
            "OpenVEX",
            "an object whose @context is https://openvex.dev/ns/...",
        ));
    }
    let author = text_of(doc.get("author"))
        .ok_or_else(|| Error::input(file, "the document names no author"))?;
    let timestamp = text_of(doc.get("timestamp"))
        .filter(|t| timestamp_of(t).is_some())
        .ok_or_else(|| Error::input(file, "the document has no RFC 3339 timestamp"))?;
    let items = doc
        .get("statements")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::input(file, "the document has no statements array"))?;
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let skip = |why: &str| format!("statement #{index} skipped: {why}");
        let vulnerability = item.get("vulnerability");
        let (name, aliases): (Option<String>, Vec<&str>) = match vulnerability {
            Some(Value::String(name)) => (Some(name.clone()), Vec::new()),
            Some(v) => (
                text_of(v.get("name")),
                v.get("aliases")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default(),
            ),
            None => (None, Vec::new()),
        };
        let Some(name) = name else {
            warnings.push(skip("no vulnerability name"));
            continue;
        };
        let status_text = item.get("status").and_then(Value::as_str).unwrap_or("");
        let Some(status) = Status::from_openvex(status_text) else {
            warnings.push(skip(&format!("status {status_text:?} is none of not_affected, affected, fixed, under_investigation")));
            continue;
        };
        let justification = text_of(item.get("justification"));
        if let Some(j) = &justification {
            if !JUSTIFICATIONS.contains(&j.as_str()) {
                warnings.push(skip(&format!(
                    "justification {j:?} is not an OpenVEX label"
                )));
                continue;
            }
        }
        let impact = text_of(item.get("impact_statement"));
        if status == Status::NotAffected && justification.is_none() && impact.is_none() {
            warnings.push(skip(
                "not_affected without a justification or impact statement",
            ));
            continue;
        }
        let mut products = Vec::new();
        for product in item
            .get("products")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            // A product with subcomponents is about those packages inside it.
            let subcomponents: Vec<String> = product
                .get("subcomponents")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(purl_of)
                .collect();
            if subcomponents.is_empty() {
                products.extend(purl_of(product));
            } else {
                products.extend(subcomponents);
            }
        }
        if products.iter().all(|p| purl_key(p).is_none()) {
            warnings.push(skip(
                "it names no product by package URL, so no finding can match it",
            ));
            continue;
        }
        let own_timestamp = text_of(item.get("timestamp")).filter(|t| timestamp_of(t).is_some());
        out.push(Statement {
            source: file.display().to_string(),
            index,
            ids: ids_of(std::iter::once(name.as_str()).chain(aliases)),
            vulnerability: name,
            products,
            status,
            justification,
            impact,
            action: text_of(item.get("action_statement")),
            author: author.clone(),
            timestamp: own_timestamp.unwrap_or_else(|| timestamp.clone()),
            expires: text_of(item.get("status_notes"))
                .as_deref()
                .and_then(openvex_expiry),
        });
    }
    finish(file, "OpenVEX", items.len(), out, warnings)
}

/// The expiry `devsecops vex` writes into an OpenVEX statement's `status_notes` (OpenVEX has no
/// field for it and allows no other): "Accepted by OWNER until YYYY-MM-DD (suppression #N of
/// FILE)." Read back, so a round-tripped acceptance still ends when the suppression does.
fn openvex_expiry(notes: &str) -> Option<String> {
    let rest = notes.strip_prefix("Accepted by ")?;
    let (_, after) = rest.rsplit_once(" until ")?;
    let (date, tail) = after.split_once(' ')?;
    (tail.starts_with("(suppression #") && parse_date(date).is_some() && date.len() == 10)
        .then(|| date.to_string())
}

fn finish(
    file: &Path,
    format: &str,
    total: usize,
    statements: Vec<Statement>,
    warnings: Vec<String>,
) -> Result<(Vec<Statement>, Vec<String>)> {
    if statements.is_empty() {
        return Err(Error::input(
            file,
            format!(
                "no applicable {format} statement among {total}{}",
                warnings
                    .first()
                    .map(|w| format!(" ({w})"))
                    .unwrap_or_default()
            ),
        ));
    }
    Ok((statements, warnings))
}

/// Components by bom-ref, nested ones included, with their purls.
fn purls_by_ref(components: Option<&Value>, out: &mut BTreeMap<String, String>) {
    for c in components.and_then(Value::as_array).into_iter().flatten() {
        if let (Some(r), Some(p)) = (text_of(c.get("bom-ref")), text_of(c.get("purl"))) {
            out.insert(r, p);
        }
        purls_by_ref(c.get("components"), out);
    }
}

fn property<'a>(item: &'a Value, name: &str) -> Option<&'a str> {
    item.get("properties")?
        .as_array()?
        .iter()
        .find(|p| p.get("name").and_then(Value::as_str) == Some(name))?
        .get("value")?
        .as_str()
}

/// The statements of a CycloneDX VEX document (JSON, 1.4 or later: the vulnerabilities with an
/// `analysis`). `affects` refs are resolved through the components' bom-refs, a purl, or the
/// fragment of a BOM-Link.
pub fn parse_cyclonedx(file: &Path, bytes: &[u8]) -> Result<(Vec<Statement>, Vec<String>)> {
    let doc: Value = crate::ingest::json(file, bytes)?;
    if doc.get("bomFormat").and_then(Value::as_str) != Some("CycloneDX") {
        return Err(crate::ingest::not_a_report(
            file,
            "CycloneDX VEX",
            "an object with \"bomFormat\": \"CycloneDX\"",
        ));
    }
    let items = doc
        .get("vulnerabilities")
        .and_then(Value::as_array)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Error::input(file, "the document has no vulnerabilities: not a VEX"))?;
    let metadata = doc.get("metadata");
    let author = metadata
        .and_then(|m| m.get("authors"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|a| text_of(a.get("name")))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|a| !a.is_empty())
        .or_else(|| {
            ["manufacturer", "manufacture", "supplier"]
                .iter()
                .find_map(|k| text_of(metadata?.get(k)?.get("name")))
        })
        .ok_or_else(|| {
            Error::input(
                file,
                "the document names no author (metadata.authors, manufacturer or supplier)",
            )
        })?;
    let document_time = text_of(metadata.and_then(|m| m.get("timestamp")));
    let mut refs = BTreeMap::new();
    purls_by_ref(doc.get("components"), &mut refs);
    if let Some(component) = metadata.and_then(|m| m.get("component")) {
        purls_by_ref(Some(&json!([component])), &mut refs);
    }
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let skip = |why: &str| format!("vulnerability #{index} skipped: {why}");
        let Some(name) = text_of(item.get("id")) else {
            warnings.push(skip("no id"));
            continue;
        };
        let analysis = item.get("analysis");
        let state = analysis
            .and_then(|a| a.get("state"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let Some(status) = Status::from_cyclonedx(state) else {
            warnings.push(skip(&format!(
                "analysis.state {state:?} is no VEX state (not a statement, only a listing)"
            )));
            continue;
        };
        let given = analysis
            .and_then(|a| a.get("justification"))
            .and_then(Value::as_str);
        let justification = property(item, PROPERTY_JUSTIFICATION)
            .filter(|j| JUSTIFICATIONS.contains(j))
            .or_else(|| given.and_then(openvex_justification))
            .map(str::to_string);
        // A false positive is its own reason; not_affected needs one, as in OpenVEX.
        let impact = text_of(analysis.and_then(|a| a.get("detail"))).or_else(|| {
            (state == "false_positive").then(|| "false positive (CycloneDX analysis state)".into())
        });
        if status == Status::NotAffected && justification.is_none() && impact.is_none() {
            warnings.push(skip("not_affected without a justification or detail"));
            continue;
        }
        let mut products = Vec::new();
        for affect in item
            .get("affects")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(reference) = text_of(affect.get("ref")) else {
                continue;
            };
            let local = match reference.split_once('#') {
                Some((link, fragment)) if link.starts_with("urn:cdx:") => {
                    crate::ingest::percent_decode(fragment)
                }
                _ => reference,
            };
            let purl = refs
                .get(&local)
                .cloned()
                .or_else(|| local.starts_with("pkg:").then(|| local.clone()));
            products.extend(purl);
        }
        if products.is_empty() {
            warnings.push(skip("none of its affects refs resolves to a package URL"));
            continue;
        }
        let timestamp = ["lastUpdated", "firstIssued"]
            .iter()
            .find_map(|k| text_of(analysis.and_then(|a| a.get(*k))))
            .or_else(|| text_of(item.get("updated")))
            .or_else(|| text_of(item.get("published")))
            .or_else(|| document_time.clone())
            .filter(|t| timestamp_of(t).is_some());
        let Some(timestamp) = timestamp else {
            warnings.push(skip(
                "no RFC 3339 time (analysis.lastUpdated, firstIssued, or the document's)",
            ));
            continue;
        };
        let aliases: Vec<&str> = item
            .get("references")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| r.get("id").and_then(Value::as_str))
            .collect();
        let expires = property(item, PROPERTY_EXPIRES).map(str::to_string);
        if let Some(e) = &expires {
            if parse_date(e).is_none() {
                warnings.push(skip(&format!("{PROPERTY_EXPIRES} {e:?} is not a date")));
                continue;
            }
        }
        out.push(Statement {
            source: file.display().to_string(),
            index,
            ids: ids_of(std::iter::once(name.as_str()).chain(aliases)),
            vulnerability: name,
            products,
            status,
            justification,
            impact,
            action: analysis
                .and_then(|a| a.get("response"))
                .and_then(Value::as_array)
                .map(|r| {
                    r.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .filter(|r| !r.is_empty()),
            author: author.clone(),
            timestamp,
            expires,
        });
    }
    finish(file, "CycloneDX VEX", items.len(), out, warnings)
}

/// `ingest --tool openvex|cyclonedx-vex`: adds the files' statements to the findings file (each
/// once), with the warnings of statements skipped.
pub fn ingest(
    config: &Config,
    tool: &str,
    files: &[std::path::PathBuf],
    replace: bool,
) -> Result<u8> {
    let mut store = if replace {
        Store::default()
    } else {
        Store::load(&config.paths.findings)?
    };
    let mut added = 0;
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    for file in files {
        let bytes = crate::ingest::read_limited(file)?;
        let (statements, warnings) = match tool {
            "openvex" => parse_openvex(file, &bytes)?,
            _ => parse_cyclonedx(file, &bytes)?,
        };
        for w in warnings {
            eprintln!("devsecops: warning: {}: {w}", file.display());
            store.warnings.push(format!("{}: {w}", file.display()));
        }
        for s in statements {
            *by_status.entry(s.status.as_str()).or_default() += 1;
            if !store.vex.contains(&s) {
                store.vex.push(s);
                added += 1;
            }
        }
    }
    store.save(&config.paths.findings)?;
    println!(
        "ingested {added} VEX statement(s) from {} file(s) as {tool} ({}); {} in {}",
        files.len(),
        by_status
            .iter()
            .map(|(s, n)| format!("{n} {s}"))
            .collect::<Vec<_>>()
            .join(", "),
        store.vex.len(),
        config.paths.findings.display()
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{fingerprint_all, Category, RawFinding, Severity};

    fn smallvec(version: &str) -> Finding {
        fingerprint_all(vec![RawFinding::new(
            "cargo-audit",
            Category::Sca,
            Severity::Critical,
            "RUSTSEC-2021-0003",
            "Buffer overflow",
        )
        .in_component("smallvec", Some(version), "cargo")
        .with_ids(["RUSTSEC-2021-0003", "CVE-2021-25900"])])
        .remove(0)
    }

    fn statement(ids: &[&str], product: &str, status: Status, timestamp: &str) -> Statement {
        Statement {
            source: "v.json".into(),
            index: 0,
            vulnerability: ids[0].into(),
            ids: ids_of(ids.iter().copied()),
            products: vec![product.into()],
            status,
            justification: None,
            impact: None,
            action: None,
            author: "vendor".into(),
            timestamp: timestamp.into(),
            expires: None,
        }
    }

    #[test]
    fn statements_match_by_any_advisory_id_and_purl_with_or_without_version() {
        let f = smallvec("1.6.0");
        for (id, product, expected) in [
            ("CVE-2021-25900", "pkg:cargo/smallvec@1.6.0", true),
            ("cve-2021-25900", "pkg:cargo/smallvec", true),
            ("CVE-2021-25900", "pkg:cargo/smallvec@1.6.1", false),
            ("CVE-2021-25900", "pkg:npm/smallvec@1.6.0", false),
            ("CVE-2099-0001", "pkg:cargo/smallvec@1.6.0", false),
        ] {
            let s = statement(&[id], product, Status::NotAffected, "2026-11-01T00:00:00Z");
            assert_eq!(s.matches(&f), expected, "{id} {product}");
        }
    }

    #[test]
    fn a_statement_about_one_version_does_not_decide_a_finding_with_another() {
        let raw = |version: &str| {
            RawFinding::new(
                "cargo-audit",
                Category::Sca,
                Severity::Critical,
                "RUSTSEC-2021-0003",
                "Buffer overflow",
            )
            .in_component("smallvec", Some(version), "cargo")
            .with_ids(["RUSTSEC-2021-0003", "CVE-2021-25900"])
        };
        let merged = crate::model::deduplicate(fingerprint_all(vec![raw("0.6.13"), raw("1.6.0")]));
        assert_eq!(merged.len(), 1, "one advisory, one crate: {merged:#?}");
        assert_eq!(merged[0].components().count(), 2);
        let one = statement(
            &["CVE-2021-25900"],
            "pkg:cargo/smallvec@1.6.0",
            Status::NotAffected,
            "2026-11-01T00:00:00Z",
        );
        assert!(
            !one.matches(&merged[0]),
            "0.6.13 is not the product the statement names"
        );
        let mut both = one.clone();
        both.products.push("pkg:cargo/smallvec@0.6.13".into());
        assert!(both.matches(&merged[0]));
        let any_version = statement(
            &["CVE-2021-25900"],
            "pkg:cargo/smallvec",
            Status::NotAffected,
            "2026-11-01T00:00:00Z",
        );
        assert!(any_version.matches(&merged[0]));
        // Another package of the same name in another ecosystem, or no purl at all: never.
        let mut no_purl = smallvec("1.6.0");
        if let Some(c) = no_purl.component.as_mut() {
            c.purl = None;
        }
        assert!(!any_version.matches(&no_purl));
    }

    #[test]
    fn openvex_written_here_carries_its_expiry_back_in() {
        let doc = |notes: &str| {
            format!(
                r#"{{"@context":"https://openvex.dev/ns/v0.2.0","@id":"urn:x","author":"a","timestamp":"2026-01-01T00:00:00Z","version":1,"statements":[{{"vulnerability":{{"name":"CVE-2021-25900"}},"products":[{{"@id":"pkg:cargo/smallvec@1.6.0"}}],"status":"not_affected","justification":"vulnerable_code_not_in_execute_path","status_notes":{notes}}}]}}"#
            )
        };
        let (ours, _) = parse_openvex(
            Path::new("v.json"),
            doc("\"Accepted by platform-team until 2026-06-30 (suppression #1 of .devsecops/suppressions.toml).\"").as_bytes(),
        )
        .expect("parses");
        assert_eq!(ours[0].expires.as_deref(), Some("2026-06-30"));
        let today = time::macros::date!(2026 - 12 - 01);
        assert!(
            !Decision::of(&ours[0], today).accepts,
            "expired on the way back in"
        );
        for notes in [
            "\"The vendor until 2026-06-30 thinks so\"",
            "\"Accepted by x until soon (suppression #1)\"",
            "null",
        ] {
            let (theirs, _) =
                parse_openvex(Path::new("v.json"), doc(notes).as_bytes()).expect("parses");
            assert_eq!(theirs[0].expires, None, "{notes}");
        }
    }

    #[test]
    fn the_newest_statement_decides_and_only_not_affected_and_fixed_accept() {
        let f = smallvec("1.6.0");
        let p = "pkg:cargo/smallvec@1.6.0";
        let old = statement(
            &["RUSTSEC-2021-0003"],
            p,
            Status::NotAffected,
            "2026-01-01T00:00:00Z",
        );
        let new = statement(
            &["RUSTSEC-2021-0003"],
            p,
            Status::Affected,
            "2026-06-01T00:00:00+02:00",
        );
        let all = [new.clone(), old.clone()];
        let (at, s) = deciding(&all, &f).expect("a statement");
        assert_eq!((at, s.status), (0, Status::Affected));
        let today = time::macros::date!(2026 - 12 - 01);
        assert!(!Decision::of(s, today).accepts);
        assert!(Decision::of(&old, today).accepts);
        let fixed = statement(
            &["RUSTSEC-2021-0003"],
            p,
            Status::Fixed,
            "2026-01-01T00:00:00Z",
        );
        assert!(Decision::of(&fixed, today).accepts);
        let mut expired = old;
        expired.expires = Some("2026-11-30".into());
        assert!(
            !Decision::of(&expired, today).accepts,
            "an expired acceptance accepts nothing"
        );
    }

    #[test]
    fn openvex_statements_that_cannot_apply_are_skipped_and_foreign_documents_refused() {
        let doc = |statements: &str| {
            format!(
                r#"{{"@context":"https://openvex.dev/ns/v0.2.0","@id":"urn:x","author":"Vendor Inc.","timestamp":"2026-11-01T00:00:00Z","version":1,"statements":[{statements}]}}"#
            )
        };
        let good = r#"{"vulnerability":{"name":"CVE-2021-25900"},"products":[{"@id":"pkg:cargo/smallvec@1.6.0"}],"status":"not_affected","justification":"vulnerable_code_not_in_execute_path"}"#;
        let (s, w) = parse_openvex(Path::new("v.json"), doc(good).as_bytes()).expect("parse");
        assert_eq!((s.len(), w.len()), (1, 0));
        assert_eq!(s[0].author, "Vendor Inc.");
        for (bad, why) in [
            (
                r#"{"vulnerability":{"name":"CVE-1"},"products":[{"@id":"pkg:cargo/a@1"}],"status":"maybe"}"#,
                "status",
            ),
            (
                r#"{"vulnerability":{"name":"CVE-1"},"products":[{"@id":"pkg:cargo/a@1"}],"status":"not_affected"}"#,
                "justification or impact",
            ),
            (
                r#"{"vulnerability":{"name":"CVE-1"},"products":[{"@id":"pkg:cargo/a@1"}],"status":"not_affected","justification":"trust_me"}"#,
                "not an OpenVEX label",
            ),
            (
                r#"{"vulnerability":{"name":"CVE-1"},"products":[{"@id":"https://example.com/app"}],"status":"fixed"}"#,
                "package URL",
            ),
        ] {
            let (s, w) = parse_openvex(
                Path::new("v.json"),
                doc(&format!("{good},{bad}")).as_bytes(),
            )
            .expect(why);
            assert_eq!(s.len(), 1, "{why}");
            assert!(
                w[0].contains("statement #1") && w[0].contains(why),
                "{why}: {w:?}"
            );
            let only = parse_openvex(Path::new("v.json"), doc(bad).as_bytes()).expect_err(why);
            assert!(only.to_string().contains("no applicable"), "{only}");
        }
        for foreign in [
            r#"{"statements":[]}"#,
            "[]",
            r#"{"@context":"https://openvex.dev/ns/v0.2.0","statements":[]}"#,
        ] {
            assert!(
                parse_openvex(Path::new("v.json"), foreign.as_bytes()).is_err(),
                "{foreign}"
            );
        }
    }

    #[test]
    fn suppressions_give_only_the_five_justifications() {
        let entry = |label: &str| {
            format!("[[suppression]]\nrule = \"RUSTSEC-2021-0003\"\njustification = \"never called here at all\"\nowner = \"o\"\nexpires = 2099-01-01\nvex_justification = \"{label}\"\n")
        };
        for label in JUSTIFICATIONS {
            let s = crate::suppress::parse(Path::new("s.toml"), &entry(label)).expect(label);
            assert_eq!(s[0].vex_justification.as_deref(), Some(label));
        }
        let err =
            crate::suppress::parse(Path::new("s.toml"), &entry("trust_me")).expect_err("label");
        assert!(
            err.to_string()
                .contains("suppression #1: vex_justification"),
            "{err}"
        );
    }

    #[test]
    fn the_gate_applies_statements_as_suppressions_after_the_file_s() {
        use crate::assess::{assess, RunContext};
        let today = time::macros::datetime!(2026-12-01 00:00 UTC);
        let p = "pkg:cargo/smallvec@1.6.0";
        let mut expired = statement(
            &["RUSTSEC-2021-0003"],
            p,
            Status::NotAffected,
            "2026-01-01T00:00:00Z",
        );
        expired.expires = Some("2026-06-30".into());
        let run = |vex: Vec<Statement>| {
            assess(
                &Config::default(),
                vec![smallvec("1.6.0")],
                None,
                &[],
                &std::collections::HashMap::new(),
                today,
                RunContext {
                    vex,
                    ..RunContext::default()
                },
            )
        };
        let accepted = run(vec![statement(
            &["CVE-2021-25900"],
            p,
            Status::NotAffected,
            "2026-01-01T00:00:00Z",
        )]);
        assert!(!accepted.failed);
        assert_eq!(accepted.findings[0].suppressed_by, Some(1));
        assert_eq!(accepted.suppressions[0].owner, "vendor");
        let late = run(vec![expired]);
        assert!(late.failed && late.findings[0].suppressed_by.is_none());
        assert!(late.suppressions[0].expired);
        let affected = run(vec![statement(
            &["CVE-2021-25900"],
            p,
            Status::Affected,
            "2026-01-01T00:00:00Z",
        )]);
        assert!(affected.failed && affected.suppressions.is_empty());
        assert_eq!(
            affected.findings[0].vex.as_ref().map(|d| d.status),
            Some(Status::Affected)
        );
    }

    #[test]
    fn cyclonedx_states_and_justifications_map_as_documented() {
        let doc = r#"{"bomFormat":"CycloneDX","specVersion":"1.6","metadata":{"timestamp":"2026-11-01T00:00:00Z","manufacturer":{"name":"Vendor Inc."}},
          "components":[{"bom-ref":"c1","type":"library","name":"smallvec","purl":"pkg:cargo/smallvec@1.6.0"}],
          "vulnerabilities":[
            {"id":"CVE-2021-25900","analysis":{"state":"false_positive"},"affects":[{"ref":"c1"}]},
            {"id":"CVE-2021-25900","analysis":{"state":"resolved_with_pedigree"},"affects":[{"ref":"urn:cdx:3e671687-395b-41f5-a30f-a58921a69b79/1#c1"}]},
            {"id":"CVE-2021-25900","analysis":{"state":"not_affected","justification":"protected_at_perimeter"},"affects":[{"ref":"pkg:cargo/smallvec@1.6.0"}]},
            {"id":"CVE-2021-25900","affects":[{"ref":"c1"}]},
            {"id":"CVE-2021-25900","analysis":{"state":"not_affected"},"affects":[{"ref":"c1"}]}
          ]}"#;
        let (s, w) = parse_cyclonedx(Path::new("v.cdx.json"), doc.as_bytes()).expect("parse");
        assert_eq!(
            s.iter().map(|s| s.status).collect::<Vec<_>>(),
            [Status::NotAffected, Status::Fixed, Status::NotAffected]
        );
        assert_eq!(
            s[2].justification.as_deref(),
            Some("vulnerable_code_cannot_be_controlled_by_adversary")
        );
        assert!(s
            .iter()
            .all(|s| s.products == ["pkg:cargo/smallvec@1.6.0"] && s.author == "Vendor Inc."));
        assert!(
            w[0].contains("vulnerability #3") && w[0].contains("no VEX state"),
            "{w:?}"
        );
        assert!(
            w[1].contains("vulnerability #4") && w[1].contains("without a justification"),
            "{w:?}"
        );
        assert_eq!(
            s[0].impact.as_deref(),
            Some("false positive (CycloneDX analysis state)")
        );
        let anonymous = doc.replace(r#","manufacturer":{"name":"Vendor Inc."}"#, "");
        let err =
            parse_cyclonedx(Path::new("v.cdx.json"), anonymous.as_bytes()).expect_err("no author");
        assert!(err.to_string().contains("no author"), "{err}");
    }
}
