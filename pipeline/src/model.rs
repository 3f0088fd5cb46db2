//! The one finding model every scanner's output is turned into.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Parses the names scanners use (case-insensitive): CRITICAL, HIGH, error, warning, note, ...
    pub fn from_label(label: &str) -> Option<Severity> {
        match label.trim().to_ascii_lowercase().as_str() {
            "critical" | "blocker" => Some(Severity::Critical),
            "high" | "error" | "major" => Some(Severity::High),
            "medium" | "moderate" | "warning" | "warn" => Some(Severity::Medium),
            "low" | "minor" | "note" => Some(Severity::Low),
            "info" | "informational" | "none" | "unknown" | "style" | "help" => {
                Some(Severity::Info)
            }
            _ => None,
        }
    }

    /// CVSS base score to severity (CVSS v3 qualitative ratings).
    pub fn from_cvss(score: f64) -> Severity {
        match score {
            s if s >= 9.0 => Severity::Critical,
            s if s >= 7.0 => Severity::High,
            s if s >= 4.0 => Severity::Medium,
            s if s > 0.0 => Severity::Low,
            _ => Severity::Info,
        }
    }

    /// The severity of a CVSS vector (v2 `AV:N/...`, `CVSS:3.0/`, `CVSS:3.1/` or `CVSS:4.0/`), by the
    /// qualitative rating of that CVSS version, scored by the RustSec `cvss` crate. `None` for
    /// anything that is not a valid vector.
    pub fn from_cvss_vector(vector: &str) -> Option<Severity> {
        let vector = vector.trim().trim_start_matches('(').trim_end_matches(')');
        let parsed: cvss::Cvss = vector.parse().ok()?;
        Some(match parsed.severity() {
            cvss::Severity::None => Severity::Info,
            cvss::Severity::Low => Severity::Low,
            cvss::Severity::Medium => Severity::Medium,
            cvss::Severity::High => Severity::High,
            cvss::Severity::Critical => Severity::Critical,
        })
    }

    /// The `security-severity` GitHub code scanning reads (a CVSS-like score).
    pub fn security_severity(self) -> &'static str {
        match self {
            Severity::Critical => "9.5",
            Severity::High => "8.0",
            Severity::Medium => "5.5",
            Severity::Low => "2.0",
            Severity::Info => "0.0",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Sast,
    Sca,
    Secret,
    Iac,
    Container,
    License,
    Quality,
}

impl Category {
    pub const ALL: [Category; 7] = [
        Category::Sast,
        Category::Sca,
        Category::Secret,
        Category::Iac,
        Category::Container,
        Category::License,
        Category::Quality,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Sast => "sast",
            Category::Sca => "sca",
            Category::Secret => "secret",
            Category::Iac => "iac",
            Category::Container => "container",
            Category::License => "license",
            Category::Quality => "quality",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a finding is in the source tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// Repository-relative path with `/` separators.
    pub path: String,
    pub start_line: Option<u32>,
    pub end_line: Option<u32>,
}

/// The dependency a finding is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    pub name: String,
    pub version: Option<String>,
    /// Package URL, e.g. pkg:cargo/time@0.1.43.
    pub purl: Option<String>,
}

/// A shipped file a finding was found in: a binary, with the Nix store path that holds it and that
/// path's NAR hash when it came from a Nix closure.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Artifact {
    /// The file's absolute path.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_path: Option<String>,
    /// The store path's NAR hash (SRI), as the closure states it and as its files hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nar_hash: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub fingerprint: String,
    pub category: Category,
    pub severity: Severity,
    /// The scanner's rule or advisory id (the first tool's, after deduplication).
    pub rule: String,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The primary location.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// Every further location: a result's other locations, or where a merged duplicate was.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_locations: Vec<Location>,
    /// The affected package (the first one reported).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<Component>,
    /// Every further affected version or package merged into this finding (one advisory, two
    /// versions of one crate).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_components: Vec<Component>,
    /// Advisory and weakness ids (CVE, GHSA, RUSTSEC, OSV, PYSEC, GO, CWE, ...), sorted.
    pub identifiers: BTreeSet<String>,
    /// Every tool that reported it, sorted.
    pub tools: BTreeSet<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help_uri: Option<String>,
    /// Versions (or version requirements) that fix it, as the tools state them; empty when no
    /// tool knows a fix.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub fixed_versions: BTreeSet<String>,
    /// The shipped binaries it was found in (`devsecops audit`), sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<Artifact>,
}

impl Finding {
    /// Whether a tool reported a version that fixes it.
    pub fn fix_available(&self) -> bool {
        !self.fixed_versions.is_empty()
    }

    /// "fix: 1.2.3, 1.3.0" or "no fix known" for dependency findings; empty for the rest.
    pub fn fix_text(&self) -> String {
        if self.fix_available() {
            format!(
                "fix available: {}",
                self.fixed_versions
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else if self.is_dependency() {
            "no fix known".into()
        } else {
            String::new()
        }
    }

    /// Whether it is about a dependency (a package with a name).
    pub fn is_dependency(&self) -> bool {
        self.component.as_ref().is_some_and(|c| !c.name.is_empty())
    }

    /// Every affected version, primary first.
    pub fn components(&self) -> impl Iterator<Item = &Component> {
        self.component.iter().chain(&self.other_components)
    }

    /// Every location, primary first.
    pub fn locations(&self) -> impl Iterator<Item = &Location> {
        self.location.iter().chain(&self.other_locations)
    }

    /// Where to look, for people: `path:line`, else `package version`, else empty; then the
    /// binary it ships in, if known.
    pub fn place(&self) -> String {
        let mut place = if let Some(l) = &self.location {
            match l.start_line {
                Some(line) => format!("{}:{line}", l.path),
                None => l.path.clone(),
            }
        } else {
            self.component
                .as_ref()
                .map(|c| {
                    format!("{} {}", c.name, c.version.as_deref().unwrap_or(""))
                        .trim_end()
                        .to_string()
                })
                .unwrap_or_default()
        };
        if let Some(shipped) = self.shipped_in() {
            if !place.is_empty() {
                place.push(' ');
            }
            place.push_str(&shipped);
        }
        place
    }

    /// "in <binary>" (and how many more) for a finding in shipped binaries.
    pub fn shipped_in(&self) -> Option<String> {
        let first = self.artifacts.first()?;
        Some(match self.artifacts.len() {
            1 => format!("in {}", first.path),
            n => format!("in {} and {} more", first.path, n - 1),
        })
    }
}

/// What a parser knows about one finding before its fingerprint is computed.
#[derive(Debug, Clone)]
pub struct RawFinding {
    pub tool: String,
    pub category: Category,
    pub severity: Severity,
    pub rule: String,
    pub title: String,
    pub description: Option<String>,
    pub location: Option<Location>,
    pub other_locations: Vec<Location>,
    pub component: Option<Component>,
    pub identifiers: BTreeSet<String>,
    pub help_uri: Option<String>,
    pub fixed_versions: BTreeSet<String>,
    /// Stable text that tells two findings of one rule in one file apart (a code snippet, a hashed
    /// secret); never line numbers. Empty when the tool gives nothing stable.
    pub context: String,
    /// The shipped binaries it was found in.
    pub artifacts: Vec<Artifact>,
}

impl RawFinding {
    pub fn new(
        tool: &str,
        category: Category,
        severity: Severity,
        rule: &str,
        title: &str,
    ) -> Self {
        RawFinding {
            tool: tool.to_string(),
            category,
            severity,
            rule: rule.to_string(),
            title: title.to_string(),
            description: None,
            location: None,
            other_locations: Vec::new(),
            component: None,
            identifiers: BTreeSet::new(),
            help_uri: None,
            fixed_versions: BTreeSet::new(),
            context: String::new(),
            artifacts: Vec::new(),
        }
    }

    /// Adds a further location (a SARIF result's second location, ...).
    pub fn also_at(mut self, path: &str, start: Option<u32>, end: Option<u32>) -> Self {
        self.other_locations.push(Location {
            path: normalize_path(path),
            start_line: start,
            end_line: end.or(start),
        });
        self
    }

    /// Records the versions that fix it; blank entries are ignored.
    pub fn fixed_by<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, versions: I) -> Self {
        for v in versions {
            let v = v.as_ref().trim();
            if !v.is_empty() {
                self.fixed_versions.insert(v.to_string());
            }
        }
        self
    }

    /// Sets the package with the purl a tool gave (kept as given), else one built from the
    /// ecosystem.
    pub fn in_package(
        self,
        name: &str,
        version: Option<&str>,
        ecosystem: &str,
        purl: Option<&str>,
    ) -> Self {
        let mut f = self.in_component(name, version, ecosystem);
        if let (Some(c), Some(p)) = (f.component.as_mut(), purl.filter(|p| p.starts_with("pkg:"))) {
            c.purl = Some(p.to_string());
        }
        f
    }

    pub fn at(mut self, path: &str, start: Option<u32>, end: Option<u32>) -> Self {
        self.location = Some(Location {
            path: normalize_path(path),
            start_line: start,
            end_line: end.or(start),
        });
        self
    }

    pub fn in_component(mut self, name: &str, version: Option<&str>, ecosystem: &str) -> Self {
        let version = version.map(str::trim).filter(|v| !v.is_empty());
        let purl = version
            .filter(|_| !name.is_empty())
            .map(|v| purl(ecosystem, name, v));
        self.component = Some(Component {
            name: name.to_string(),
            version: version.map(str::to_string),
            purl,
        });
        self
    }

    /// Adds every identifier found in the given strings (ids, aliases, tags, rule ids).
    pub fn with_ids<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, ids: I) -> Self {
        for id in ids {
            self.identifiers.extend(identifiers_in(id.as_ref()));
        }
        self
    }
}

/// A package URL (purl spec): `pkg:type/name@version`, with the characters the spec reserves
/// percent-encoded in the name and version; a scoped npm name keeps its `/` as namespace.
pub fn purl(ecosystem: &str, name: &str, version: &str) -> String {
    fn encode(text: &str, keep_slash: bool) -> String {
        let mut out = String::with_capacity(text.len());
        for b in text.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b'~' => {
                    out.push(b as char)
                }
                b'/' if keep_slash => out.push('/'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    }
    let ecosystem = ecosystem.to_ascii_lowercase();
    let keep_slash = matches!(ecosystem.as_str(), "npm" | "golang" | "maven" | "github");
    format!(
        "pkg:{}/{}@{}",
        encode(&ecosystem, false),
        encode(name, keep_slash),
        encode(version, false)
    )
}

/// An advisory database a scanner used, as its report states it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvisoryDb {
    pub tool: String,
    /// What the database is (e.g. "RustSec advisory-db", "grype vulnerability db v5").
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// When it was last updated or built (RFC 3339), if the tool says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
}

/// The documented shapes of advisory and weakness identifiers, each matched as a whole word:
/// CVE (cve.org: `CVE-YYYY-NNNN...`), GHSA (GitHub: three groups of four characters from
/// `23456789cfghjmpqrvwx`), RUSTSEC (`RUSTSEC-YYYY-NNNN`), OSV-native ids (PYSEC, GO, OSV, GSD,
/// MAL), distribution advisories (DSA, DLA, USN, RHSA, ALSA) and CWE. Anything around them (a
/// grype rule id `CVE-2019-12419-cxf-xjc-runtime`, a tag `CWE-79: ...`) is not part of the id.
static ID_PATTERNS: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(concat!(
        r"(?:^|[^A-Za-z0-9])(",
        r"CVE-[0-9]{4}-[0-9]{4,}",
        r"|GHSA(?:-[23456789CFGHJMPQRVWX]{4}){3}",
        r"|RUSTSEC-[0-9]{4}-[0-9]{4}",
        r"|PYSEC-[0-9]{4}-[0-9]+",
        r"|GO-[0-9]{4}-[0-9]{4,}",
        r"|OSV-[0-9]{4}-[0-9]+",
        r"|GSD-[0-9]{4}-[0-9]{4,}",
        r"|MAL-[0-9]{4}-[0-9]+",
        r"|DSA-[0-9]+-[0-9]+|DLA-[0-9]+-[0-9]+|USN-[0-9]+-[0-9]+",
        r"|RHSA-[0-9]{4}:[0-9]+|ALSA-[0-9]{4}:[0-9]+",
        r"|CWE-[0-9]+",
        r")(?:$|[^A-Za-z0-9])"
    ))
    .unwrap_or_else(|e| unreachable!("identifier pattern: {e}"))
});

/// Every identifier in `text`, normalized (upper-case scheme; GHSA bodies lower-case). Schemes
/// are matched without regard to case (on an ASCII upper-case copy, which keeps every offset).
pub fn identifiers_in(text: &str) -> Vec<String> {
    let text = text.to_ascii_uppercase();
    let text = text.as_str();
    let mut out = Vec::new();
    let mut at = 0;
    // Matches share their delimiters, so search again from the end of each id.
    while let Some(caps) = ID_PATTERNS.captures_at(text, at) {
        let Some(id) = caps.get(1) else { break };
        out.push(normalize_id(id.as_str()));
        at = id.end();
    }
    out
}

fn normalize_id(id: &str) -> String {
    if id.len() > 5 && id[..5].eq_ignore_ascii_case("GHSA-") {
        format!("GHSA-{}", id[5..].to_ascii_lowercase())
    } else {
        id.to_ascii_uppercase()
    }
}

/// The identifier `id` is, when the whole string is one; `None` otherwise.
pub fn normalize_identifier(id: &str) -> Option<String> {
    let id = id.trim();
    match identifiers_in(id).as_slice() {
        [only] if only.len() == id.len() => Some(only.clone()),
        _ => None,
    }
}

/// Repository-relative, forward slashes, no leading `./`.
pub fn normalize_path(path: &str) -> String {
    let path = path.replace('\\', "/");
    let path = path.strip_prefix("file://").unwrap_or(&path);
    let mut path = path.trim_start_matches("./").to_string();
    while path.contains("//") {
        path = path.replace("//", "/");
    }
    path
}

/// The identifier two tools most likely both use for one advisory: a CVE, else a GHSA, else
/// RUSTSEC, then the OSV-native schemes.
fn canonical_advisory(ids: &BTreeSet<String>, rule: &str) -> String {
    for prefix in [
        "CVE-", "GHSA-", "RUSTSEC-", "PYSEC-", "GO-", "OSV-", "GSD-", "MAL-",
    ] {
        if let Some(id) = ids.iter().find(|id| id.starts_with(prefix)) {
            return id.clone();
        }
    }
    rule.to_string()
}

fn hex_digest(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    // The first 16 bytes in lowercase hex, written in one go (a format per byte was a tenth of
    // ingesting 100,000 findings).
    let mut hex = format!("{:x}", hasher.finalize());
    hex.truncate(32);
    hex
}

/// Hashes a secret value so it can tell findings apart without being stored.
pub fn secret_context(secret: &str) -> String {
    hex_digest(&["secret", secret])
}

/// Turns raw findings into findings with stable fingerprints.
///
/// The fingerprint holds no line numbers and no message text: for dependencies it is the canonical
/// advisory id and the package (so cargo-audit and trivy agree); otherwise category, rule, path and the
/// stable context, plus the ordinal among identical ones in that file, so moving code does not change it.
pub fn fingerprint_all(mut raw: Vec<RawFinding>) -> Vec<Finding> {
    // Order findings of one (tool, rule, path, context) by line so ordinals are deterministic.
    fn sort_key(f: &RawFinding) -> (&str, &str, Option<&str>, &str, Option<u32>) {
        let location = f.location.as_ref();
        (
            f.tool.as_str(),
            f.rule.as_str(),
            location.map(|l| l.path.as_str()),
            f.context.as_str(),
            location.and_then(|l| l.start_line),
        )
    }
    raw.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
    let mut ordinals: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    raw.into_iter()
        .map(|r| {
            let fingerprint = match (&r.component, r.category) {
                // A nameless package (a license of a loose file) is identified by its path below.
                (Some(component), Category::Sca | Category::Container | Category::License)
                    if !component.name.is_empty() =>
                {
                    let advisory = canonical_advisory(&r.identifiers, &r.rule);
                    hex_digest(&[
                        r.category.as_str(),
                        &advisory,
                        &component.name.to_ascii_lowercase(),
                    ])
                }
                _ => {
                    let path = r.location.as_ref().map(|l| l.path.as_str()).unwrap_or("");
                    let rule = if r.category == Category::Secret && !r.context.is_empty() {
                        // Two secret scanners, one secret: the hashed value identifies it.
                        "secret"
                    } else {
                        r.rule.as_str()
                    };
                    let base = hex_digest(&[r.category.as_str(), rule, path, &r.context]);
                    let n = ordinals.entry(format!("{}|{base}", r.tool)).or_insert(0);
                    *n += 1;
                    hex_digest(&[&base, &n.to_string()])
                }
            };
            let mut tools = BTreeSet::new();
            tools.insert(r.tool);
            let mut artifacts = r.artifacts;
            artifacts.sort();
            artifacts.dedup();
            Finding {
                fingerprint,
                category: r.category,
                severity: r.severity,
                rule: r.rule,
                title: r.title,
                description: r.description,
                location: r.location,
                other_locations: r.other_locations,
                component: r.component,
                other_components: Vec::new(),
                identifiers: r.identifiers,
                tools,
                help_uri: r.help_uri,
                fixed_versions: r.fixed_versions,
                artifacts,
            }
        })
        .collect()
}

/// Folds `other` (same fingerprint) into `into`: tools, identifiers, fixes, every location and
/// every affected version are kept; the highest severity wins.
fn merge(into: &mut Finding, other: Finding) {
    into.tools.extend(other.tools);
    into.identifiers.extend(other.identifiers);
    into.fixed_versions.extend(other.fixed_versions);
    if other.severity > into.severity {
        into.severity = other.severity;
    }
    for location in other.location.into_iter().chain(other.other_locations) {
        if into.location.is_none() {
            into.location = Some(location);
        } else if into.location.as_ref() != Some(&location)
            && !into.other_locations.contains(&location)
        {
            into.other_locations.push(location);
        }
    }
    let same = |a: &Component, b: &Component| a.name == b.name && a.version == b.version;
    for component in other.component.into_iter().chain(other.other_components) {
        match &into.component {
            None => into.component = Some(component),
            Some(primary) if same(primary, &component) => {}
            Some(_) => {
                if !into.other_components.iter().any(|c| same(c, &component)) {
                    into.other_components.push(component);
                }
            }
        }
    }
    for artifact in other.artifacts {
        if let Err(at) = into.artifacts.binary_search(&artifact) {
            into.artifacts.insert(at, artifact);
        }
    }
    if into.description.is_none() {
        into.description = other.description;
    }
    if into.help_uri.is_none() {
        into.help_uri = other.help_uri;
    }
}

/// Merges findings with the same fingerprint (see [`merge`]); the first report's text and primary
/// location are kept. Output is sorted by severity (highest first), then fingerprint, so reports
/// are deterministic.
pub fn deduplicate(findings: Vec<Finding>) -> Vec<Finding> {
    let mut merged: std::collections::HashMap<String, Finding> =
        std::collections::HashMap::with_capacity(findings.len());
    let mut order: Vec<String> = Vec::new();
    for finding in findings {
        match merged.get_mut(&finding.fingerprint) {
            Some(existing) => merge(existing, finding),
            None => {
                order.push(finding.fingerprint.clone());
                merged.insert(finding.fingerprint.clone(), finding);
            }
        }
    }
    let mut out: Vec<Finding> = order
        .into_iter()
        .filter_map(|fp| merged.remove(&fp))
        .collect();
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.fingerprint.cmp(&b.fingerprint))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sast(path: &str, line: u32, context: &str) -> RawFinding {
        RawFinding {
            context: context.to_string(),
            ..RawFinding::new(
                "semgrep",
                Category::Sast,
                Severity::High,
                "rust.unsafe",
                "x",
            )
        }
        .at(path, Some(line), None)
    }

    #[test]
    fn fingerprints_ignore_line_shifts_and_messages() {
        let before = fingerprint_all(vec![sast("src/a.rs", 10, "unsafe { x }")]);
        let mut moved = sast("./src/a.rs", 42, "unsafe { x }");
        moved.title = "a different message".into();
        let after = fingerprint_all(vec![moved]);
        assert_eq!(before[0].fingerprint, after[0].fingerprint);
        let other_file = fingerprint_all(vec![sast("src/b.rs", 10, "unsafe { x }")]);
        assert_ne!(before[0].fingerprint, other_file[0].fingerprint);
    }

    #[test]
    fn identical_findings_in_one_file_stay_distinct() {
        let two = fingerprint_all(vec![sast("src/a.rs", 10, ""), sast("src/a.rs", 20, "")]);
        assert_ne!(two[0].fingerprint, two[1].fingerprint);
        // Inserting code above both shifts lines but not ordinals.
        let shifted = fingerprint_all(vec![sast("src/a.rs", 30, ""), sast("src/a.rs", 15, "")]);
        let mut a: Vec<_> = two.iter().map(|f| f.fingerprint.clone()).collect();
        let mut b: Vec<_> = shifted.iter().map(|f| f.fingerprint.clone()).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }

    #[test]
    fn two_tools_on_one_advisory_become_one_finding() {
        let audit = RawFinding::new(
            "cargo-audit",
            Category::Sca,
            Severity::High,
            "RUSTSEC-2020-0071",
            "t",
        )
        .in_component("time", Some("0.1.43"), "cargo")
        .with_ids(["RUSTSEC-2020-0071", "CVE-2020-26235", "GHSA-wcg3-cvx6-7396"]);
        let trivy = RawFinding::new(
            "trivy",
            Category::Sca,
            Severity::Medium,
            "CVE-2020-26235",
            "t",
        )
        .in_component("time", Some("0.1.43"), "cargo")
        .with_ids(["cve-2020-26235"]);
        let merged = deduplicate(fingerprint_all(vec![audit, trivy]));
        assert_eq!(merged.len(), 1);
        let only = &merged[0];
        assert_eq!(
            only.tools.iter().collect::<Vec<_>>(),
            ["cargo-audit", "trivy"]
        );
        assert_eq!(only.severity, Severity::High);
        assert!(only.identifiers.contains("GHSA-wcg3-cvx6-7396"));
    }

    #[test]
    fn severity_labels_and_cvss_map_as_documented() {
        assert_eq!(Severity::from_label("CRITICAL"), Some(Severity::Critical));
        assert_eq!(Severity::from_label("error"), Some(Severity::High));
        assert_eq!(Severity::from_label("warning"), Some(Severity::Medium));
        assert_eq!(Severity::from_label("note"), Some(Severity::Low));
        assert_eq!(Severity::from_label("bogus"), None);
        assert_eq!(Severity::from_cvss(9.8), Severity::Critical);
        assert_eq!(Severity::from_cvss(7.5), Severity::High);
        assert_eq!(Severity::from_cvss(5.0), Severity::Medium);
        assert_eq!(Severity::from_cvss(0.1), Severity::Low);
    }

    #[test]
    fn identifiers_are_normalized() {
        assert_eq!(
            normalize_identifier("cve-2021-1234"),
            Some("CVE-2021-1234".into())
        );
        assert_eq!(
            normalize_identifier("GHSA-43W2-9j62-HQ99"),
            Some("GHSA-43w2-9j62-hq99".into())
        );
        assert_eq!(normalize_identifier("cwe-79"), Some("CWE-79".into()));
        assert_eq!(normalize_identifier("not-an-id"), None);
        assert_eq!(normalize_path(".\\src\\a.rs"), "src/a.rs");
    }
}
