//! Scanner outputs in, raw findings out. One module per format; `parse` picks by tool name.
//!
//! Inputs are untrusted: files are size-limited, JSON is parsed with serde's recursion limit, and
//! every error names the file and the line and column where parsing stopped. Parsers fail closed:
//! a document whose envelope is not the tool's documented shape is an error naming what was
//! expected, never zero findings; one malformed result inside a good envelope is skipped with a
//! warning naming its index, so it costs neither the file nor the other results.

mod cargo_audit;
mod cargo_deny;
mod checkov;
mod clippy;
mod cyclonedx;
mod gitleaks;
mod grype;
mod hadolint;
mod kics;
mod osv;
mod sarif;
mod semgrep;
mod shellcheck;
mod trivy;

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::model::{AdvisoryDb, RawFinding};

/// Largest input accepted; larger files are refused before reading, so memory stays bounded.
pub const MAX_INPUT_BYTES: u64 = 512 * 1024 * 1024;

/// The formats `ingest --tool` accepts, with the tool each one is for.
pub const TOOLS: &[(&str, &str)] = &[
    (
        "sarif",
        "SARIF 2.1.0 from any tool (semgrep, checkov, hadolint, trivy, gitleaks, codeql, ...)",
    ),
    ("clippy", "cargo clippy --message-format=json"),
    ("cargo-audit", "cargo audit --json"),
    (
        "cargo-deny",
        "cargo deny --format json check (NDJSON, written to stderr)",
    ),
    (
        "trivy",
        "trivy image|fs|repo|config|sbom|k8s --format json (every report shape since 0.19)",
    ),
    (
        "gitleaks",
        "gitleaks ... --report-format json (v8, v7, or null)",
    ),
    (
        "checkov",
        "checkov -o json (one report, a list of reports, or the empty summary)",
    ),
    ("hadolint", "hadolint -f json"),
    (
        "cyclonedx",
        "CycloneDX 1.2-1.6 with vulnerabilities, JSON or XML",
    ),
    ("shellcheck", "shellcheck -f json1"),
    (
        "semgrep",
        "semgrep scan --json (code and dependency findings)",
    ),
    ("osv-scanner", "osv-scanner --format json"),
    ("grype", "grype -o json"),
    ("kics", "kics scan --report-formats json"),
    (
        "devsecops-audit",
        "devsecops audit --output (the Rust binaries of a Nix closure or an image)",
    ),
];

/// What one report held: its findings, the results that had to be skipped (with why and where),
/// and the advisory databases the tool says it used.
///
/// `read` and `skipped` count the report's results (whatever unit the tool reports in: SARIF
/// results, trivy results and Kubernetes resources, NDJSON records, CycloneDX vulnerability and
/// component pairs, ...): one rule holds for every format, in [`parse_bytes`]: a report that holds
/// results none of which could be read is an error, never "0 findings and some warnings". Every
/// warning is a skipped (or unscanned) result, which `fail_on_skipped_results` can fail on.
#[derive(Debug, Default)]
pub struct Parsed {
    pub findings: Vec<RawFinding>,
    pub warnings: Vec<String>,
    pub databases: Vec<AdvisoryDb>,
    /// Results read.
    pub read: usize,
    /// Results skipped as malformed, or not scanned at all by the tool's own account.
    pub skipped: usize,
}

/// Parses `file` as the output of `tool`.
pub fn parse(tool: &str, file: &Path) -> Result<Parsed> {
    if !TOOLS.iter().any(|(t, _)| *t == tool) {
        return Err(Error::Usage(format!(
            "unknown tool {tool:?}; known: {}; VEX statements: {}",
            TOOLS.iter().map(|(t, _)| *t).collect::<Vec<_>>().join(", "),
            crate::vex::TOOLS.join(", ")
        )));
    }
    let bytes = read_limited(file)?;
    parse_bytes(tool, file, &bytes)
}

/// Parses `bytes` (read from `file`, which errors name) as the output of `tool`. The fuzz targets
/// call this directly.
pub fn parse_bytes(tool: &str, file: &Path, bytes: &[u8]) -> Result<Parsed> {
    let mut parsed = parse_format(tool, file, bytes)?;
    // A result whose rule id is empty is still a result: kept under a rule of its own (findings
    // are keyed and suppressed by rule), never dropped. SARIF results may name their rule by
    // index instead, which the SARIF parser resolves.
    if tool != "sarif" {
        for finding in parsed
            .findings
            .iter_mut()
            .filter(|f| f.rule.trim().is_empty())
        {
            finding.rule = format!("{tool}-unnamed-rule");
        }
    }
    if parsed.read == 0 && parsed.skipped > 0 {
        return Err(none_readable(
            file,
            tool,
            "result",
            parsed.skipped,
            &parsed.warnings,
        ));
    }
    Ok(parsed)
}

fn parse_format(tool: &str, file: &Path, bytes: &[u8]) -> Result<Parsed> {
    match tool {
        "sarif" => sarif::parse(file, bytes),
        "clippy" => clippy::parse(file, bytes),
        "cargo-audit" => cargo_audit::parse(file, bytes),
        "cargo-deny" => cargo_deny::parse(file, bytes),
        "trivy" => trivy::parse(file, bytes),
        "gitleaks" => gitleaks::parse(file, bytes),
        "checkov" => checkov::parse(file, bytes),
        "hadolint" => hadolint::parse(file, bytes),
        "cyclonedx" => cyclonedx::parse(file, bytes),
        "shellcheck" => shellcheck::parse(file, bytes),
        "semgrep" => semgrep::parse(file, bytes),
        "osv-scanner" => osv::parse(file, bytes),
        "grype" => grype::parse(file, bytes),
        "kics" => kics::parse(file, bytes),
        "devsecops-audit" => crate::audit::parse_report(file, bytes),
        other => Err(Error::Usage(format!("unknown tool {other:?}"))),
    }
}

pub fn read_limited(file: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(file).map_err(|e| Error::input(file, e.to_string()))?;
    if meta.len() > MAX_INPUT_BYTES {
        return Err(Error::input(
            file,
            format!(
                "{} bytes is over the {MAX_INPUT_BYTES}-byte input limit",
                meta.len()
            ),
        ));
    }
    std::fs::read(file).map_err(|e| Error::input(file, e.to_string()))
}

pub(crate) fn json<T: DeserializeOwned>(file: &Path, bytes: &[u8]) -> Result<T> {
    utf8(file, bytes)?;
    serde_json::from_slice(bytes).map_err(|e| Error::json(file, &e))
}

/// Like [`json`] for types that borrow from the input (raw results parsed one by one later).
pub(crate) fn json_borrowed<'a, T: serde::Deserialize<'a>>(
    file: &Path,
    bytes: &'a [u8],
) -> Result<T> {
    utf8(file, bytes)?;
    serde_json::from_slice(bytes).map_err(|e| Error::json(file, &e))
}

/// JSON is UTF-8 (RFC 8259 section 8.1). serde_json checks it only in the strings it keeps, so a
/// corrupt byte in a key or value the parser skips (a damaged `list` key) would read as if the
/// field were absent.
fn utf8(file: &Path, bytes: &[u8]) -> Result<()> {
    std::str::from_utf8(bytes).map(|_| ()).map_err(|e| {
        let before = &bytes[..e.valid_up_to()];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let column = before.len()
            - before
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1)
            + 1;
        Error::input(
            file,
            format!("line {line}, column {column}: not UTF-8 text (a JSON report is UTF-8)"),
        )
    })
}

/// The error for a document that is valid JSON but not the tool's report.
pub(crate) fn not_a_report(file: &Path, tool: &str, expected: &str) -> Error {
    Error::input(file, format!("not a {tool} report: expected {expected}"))
}

/// The first byte that is not whitespace: `{`, `[`, `n`(ull), `<`, ...
pub(crate) fn first_byte(bytes: &[u8]) -> Option<u8> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    bytes.iter().copied().find(|b| !b.is_ascii_whitespace())
}

/// Line and column (1-based) of byte `offset` in `bytes`.
fn position(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let column = offset
        - before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1)
        + 1;
    (line, column)
}

/// Parses each raw element on its own. A malformed one is skipped with a warning naming `what`
/// and its index (0-based, as in the file) and the line and column in the file.
pub(crate) fn each<'a, T: serde::Deserialize<'a>>(
    bytes: &[u8],
    items: &[&'a RawValue],
    what: &str,
    warnings: &mut Vec<String>,
) -> Vec<(usize, T)> {
    let mut out = Vec::with_capacity(items.len());
    for (index, raw) in items.iter().enumerate() {
        // Every format's results are objects; serde would also fill a struct from an array by
        // position, turning `["", "x", 0]` into a result with made-up fields.
        if !raw.get().starts_with('{') {
            let offset = (raw.get().as_ptr() as usize).saturating_sub(bytes.as_ptr() as usize);
            let (line, column) = position(bytes, offset);
            warnings.push(format!(
                "{what} #{index} skipped: line {line}, column {column}: expected an object"
            ));
            continue;
        }
        match serde_json::from_str::<T>(raw.get()) {
            Ok(item) => out.push((index, item)),
            Err(e) => warnings.push(element_warning(bytes, raw, what, index, &e)),
        }
    }
    out
}

/// [`each`] for a report's results: counts what was read and what was skipped in `parsed`.
pub(crate) fn results<'a, T: serde::Deserialize<'a>>(
    bytes: &[u8],
    items: &[&'a RawValue],
    what: &str,
    parsed: &mut Parsed,
) -> Vec<(usize, T)> {
    let before = parsed.warnings.len();
    let read = each(bytes, items, what, &mut parsed.warnings);
    parsed.read += read.len();
    parsed.skipped = parsed
        .skipped
        .saturating_add(parsed.warnings.len() - before);
    read
}

/// [`ndjson`] for a stream of records: counts the lines skipped in `parsed`. The caller counts
/// the records it reads as results (diagnostics, compiler messages), not progress or summaries.
pub(crate) fn records<T: DeserializeOwned>(bytes: &[u8], parsed: &mut Parsed) -> Vec<(usize, T)> {
    let before = parsed.warnings.len();
    let read = ndjson(bytes, &mut parsed.warnings);
    parsed.skipped = parsed
        .skipped
        .saturating_add(parsed.warnings.len() - before);
    read
}

/// The error for a list of `total` results none of which could be read: the envelope was probably
/// another format, and zero findings would be a lie.
pub(crate) fn none_readable(
    file: &Path,
    tool: &str,
    what: &str,
    total: usize,
    warnings: &[String],
) -> Error {
    Error::input(
        file,
        format!(
            "not a {tool} report: none of its {total} {what}(s) has the expected shape ({})",
            warnings.first().map(String::as_str).unwrap_or("")
        ),
    )
}

pub(crate) fn element_warning(
    bytes: &[u8],
    raw: &RawValue,
    what: &str,
    index: usize,
    e: &serde_json::Error,
) -> String {
    // The raw slice borrows from `bytes`: its address gives its offset in the file.
    let offset = (raw.get().as_ptr() as usize).saturating_sub(bytes.as_ptr() as usize);
    let (line, column) = position(bytes, offset);
    let (line, column) = if e.line() <= 1 {
        (line, column + e.column().saturating_sub(1))
    } else {
        (line + e.line() - 1, e.column())
    };
    format!(
        "{what} #{index} skipped: line {line}, column {column}: {}",
        short(&e.to_string())
    )
}

/// Parses newline-delimited JSON. A record that is not JSON is skipped with a warning naming its
/// line; lines that are not JSON objects at all (cargo's progress text) are ignored.
pub(crate) fn ndjson<T: DeserializeOwned>(
    bytes: &[u8],
    warnings: &mut Vec<String>,
) -> Vec<(usize, T)> {
    let mut out = Vec::new();
    for (index, line) in bytes.split(|b| *b == b'\n').enumerate() {
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() || trimmed[0] != b'{' {
            continue;
        }
        // A record is UTF-8 JSON; serde_json would skip a corrupt byte in a string it ignores and
        // read a damaged record (a summary, a diagnostic) as if whole.
        if let Err(e) = std::str::from_utf8(trimmed) {
            warnings.push(format!(
                "line {} skipped: column {}: not UTF-8 text",
                index + 1,
                e.valid_up_to() + 1
            ));
            continue;
        }
        match serde_json::from_slice(trimmed) {
            Ok(record) => out.push((index + 1, record)),
            Err(e) => warnings.push(format!(
                "line {} skipped: column {}: {}",
                index + 1,
                e.column(),
                short(&e.to_string())
            )),
        }
    }
    out
}

fn short(message: &str) -> String {
    message
        .split(" at line ")
        .next()
        .unwrap_or(message)
        .chars()
        .take(300)
        .collect()
}

/// First line of a message, bounded: titles stay readable whatever a tool prints.
pub(crate) fn title(text: &str) -> String {
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    if line.chars().count() > 200 {
        format!("{}…", line.chars().take(199).collect::<String>())
    } else {
        line.to_string()
    }
}

/// A RustSec advisory as cargo-audit and cargo-deny both embed it in their JSON.
#[derive(serde::Deserialize)]
pub(crate) struct RustsecAdvisory {
    pub id: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub cvss: Option<String>,
    /// unmaintained, unsound, notice...; absent for vulnerabilities.
    #[serde(default)]
    pub informational: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
}

/// The `versions` beside a RustSec advisory: requirements that are patched.
#[derive(serde::Deserialize, Default)]
pub(crate) struct RustsecVersions {
    #[serde(default)]
    pub patched: Vec<String>,
}

impl RustsecAdvisory {
    /// The sca finding for this advisory; `kind` overrides `informational` (cargo-audit reports the
    /// warning kind beside the advisory), `fallback` titles advisories that carry none.
    pub(crate) fn finding(self, tool: &str, kind: Option<&str>, fallback: &str) -> RawFinding {
        let severity =
            rustsec_severity(kind.or(self.informational.as_deref()), self.cvss.as_deref());
        let mut f = RawFinding::new(
            tool,
            crate::model::Category::Sca,
            severity,
            &self.id,
            &title(self.title.as_deref().unwrap_or(fallback)),
        )
        .with_ids(std::iter::once(self.id.clone()).chain(self.aliases));
        f.description = self.description;
        f.help_uri = self
            .url
            .filter(|u| !u.is_empty())
            .or_else(|| Some(format!("https://rustsec.org/advisories/{}", self.id)));
        f
    }
}

/// Severity of a RustSec advisory (cargo-audit and cargo-deny agree on it): informational kinds
/// unsound medium, others low; vulnerabilities from their CVSS vector (v3.x or v4.0), medium
/// without one.
fn rustsec_severity(informational: Option<&str>, cvss: Option<&str>) -> crate::model::Severity {
    use crate::model::Severity;
    match informational {
        Some("unsound") => Severity::Medium,
        Some(_) => Severity::Low,
        None => cvss
            .and_then(Severity::from_cvss_vector)
            .unwrap_or(Severity::Medium),
    }
}

/// The ecosystem (purl type) of a package manager or language name as tools spell them.
pub(crate) fn purl_type(kind: &str) -> String {
    match kind.to_ascii_lowercase().as_str() {
        "cargo" | "rust-binary" | "rustbinary" | "rust-crate" | "crates.io" | "rust" => "cargo",
        "npm" | "yarn" | "pnpm" | "node-pkg" | "javascript" | "bun" => "npm",
        "pip" | "pipenv" | "poetry" | "python-pkg" | "pypi" | "python" | "uv" => "pypi",
        "gomod" | "gobinary" | "go" | "go-module" => "golang",
        "debian" | "ubuntu" | "deb" => "deb",
        "alpine" | "apk" | "wolfi" | "chainguard" => "apk",
        "redhat" | "centos" | "rocky" | "alma" | "rpm" | "amazon" | "oracle" | "photon"
        | "fedora" | "suse" | "opensuse" | "sles" => "rpm",
        "jar" | "pom" | "gradle" | "maven" | "java-archive" | "sbt" | "java" => "maven",
        "gemspec" | "bundler" | "gem" | "rubygems" | "ruby" => "gem",
        "composer" | "php-composer" | "packagist" | "php" => "composer",
        "nuget" | "dotnet-core" | "dotnet-deps" | "packages-props" | "dotnet" => "nuget",
        "hex" | "erlang-otp" => "hex",
        "pub" | "dart" => "pub",
        "swift" | "cocoapods" => "swift",
        "" => "generic",
        other => return other.to_string(),
    }
    .to_string()
}

/// Parses a `pkg:` URL's type, name and version (enough to merge with other tools' findings).
pub(crate) fn purl_parts(purl: &str) -> Option<(String, String, Option<String>)> {
    let rest = purl.strip_prefix("pkg:")?;
    let rest = rest.split(['?', '#']).next()?;
    let (kind, path) = rest.split_once('/')?;
    let (path, version) = match path.rsplit_once('@') {
        Some((p, v)) => (p, Some(percent_decode(v))),
        None => (path, None),
    };
    let name = percent_decode(path);
    Some((kind.to_ascii_lowercase(), name, version))
}

pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The fail-closed properties of a parse that succeeded, as the property tests and every fuzz
/// target check them: a report holding results none of which was read is never a success; zero
/// findings come only from a document with the tool's envelope (JSON with its key, a stream with
/// one record of it, a CycloneDX XML document); every finding names its tool and (but for SARIF,
/// whose rule id is optional) its rule. Returns what is wrong.
pub fn fail_closed_violation(tool: &str, bytes: &[u8], parsed: &Parsed) -> Option<String> {
    if parsed.read == 0 && parsed.skipped > 0 {
        return Some(format!(
            "{tool}: none of {} result(s) read, yet a success",
            parsed.skipped
        ));
    }
    if parsed.findings.is_empty() {
        let enveloped = match tool {
            "clippy" | "cargo-deny" => bytes.split(|b| *b == b'\n').any(|line| {
                serde_json::from_slice::<serde_json::Value>(line.trim_ascii())
                    .is_ok_and(|v| has_envelope(tool, &v))
            }),
            "cyclonedx" if first_byte(bytes) == Some(b'<') => true,
            _ => serde_json::from_slice::<serde_json::Value>(bytes)
                .is_ok_and(|v| has_envelope(tool, &v)),
        };
        if !enveloped {
            return Some(format!(
                "{tool}: zero findings from a document without its envelope"
            ));
        }
    }
    parsed
        .findings
        .iter()
        .find(|f| f.tool.is_empty() || (f.rule.is_empty() && tool != "sarif"))
        .map(|f| format!("{tool}: a finding without a tool or rule: {f:?}"))
}

/// The key (or shape) that makes a JSON document a report of `tool` at all: the property tests
/// and the `not_a_report` fuzz target check that a parser answers "no findings" only for a
/// document that has it. The parsers themselves do not use it (they check the full envelope).
pub fn has_envelope(tool: &str, value: &serde_json::Value) -> bool {
    use serde_json::Value;
    let has = |key: &str| value.get(key).is_some_and(|v| !v.is_null());
    match tool {
        "sarif" => has("version") && value.get("runs").is_some_and(Value::is_array),
        "trivy" => value.is_array() || has("SchemaVersion") || has("ClusterName"),
        "gitleaks" | "hadolint" => value.is_array() || value.is_null(),
        "shellcheck" => value.is_array() || has("comments"),
        "checkov" => value.is_array() || has("results") || has("passed"),
        "cargo-audit" => has("vulnerabilities"),
        "cyclonedx" => has("vulnerabilities"),
        "semgrep" | "osv-scanner" => has("results"),
        "grype" => has("matches"),
        "kics" => has("queries"),
        "devsecops-audit" => has("devsecops_audit"),
        // Streams: an object with the record key.
        "clippy" => has("reason"),
        "cargo-deny" => value
            .get("type")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|kind| cargo_deny::RECORD_TYPES.contains(&kind)),
        _ => false,
    }
}
