//! Scanner outputs in, raw findings out. One module per format; `parse` picks by tool name.
//!
//! Inputs are untrusted: files are size-limited, JSON is parsed with serde's recursion limit, and
//! every error names the file and the line and column where parsing stopped.

mod cargo_audit;
mod cargo_deny;
mod checkov;
mod clippy;
mod cyclonedx;
mod gitleaks;
mod hadolint;
mod sarif;
mod shellcheck;
mod trivy;

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::model::RawFinding;

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
        "trivy ... --format json (vulnerabilities, misconfigurations, secrets, licenses)",
    ),
    ("gitleaks", "gitleaks ... --report-format json"),
    ("checkov", "checkov -o json"),
    ("hadolint", "hadolint -f json"),
    ("cyclonedx", "CycloneDX JSON with vulnerabilities"),
    ("shellcheck", "shellcheck -f json1"),
];

/// Parses `file` as the output of `tool`.
pub fn parse(tool: &str, file: &Path) -> Result<Vec<RawFinding>> {
    if !TOOLS.iter().any(|(t, _)| *t == tool) {
        return Err(Error::Usage(format!(
            "unknown tool {tool:?}; known: {}",
            TOOLS.iter().map(|(t, _)| *t).collect::<Vec<_>>().join(", ")
        )));
    }
    let bytes = read_limited(file)?;
    parse_bytes(tool, file, &bytes)
}

/// Parses `bytes` (read from `file`, which errors name) as the output of `tool`. The fuzz targets
/// call this directly.
pub fn parse_bytes(tool: &str, file: &Path, bytes: &[u8]) -> Result<Vec<RawFinding>> {
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
    serde_json::from_slice(bytes).map_err(|e| Error::json(file, &e))
}

/// Parses newline-delimited JSON, naming the line of a bad record.
pub(crate) fn ndjson<T: DeserializeOwned>(file: &Path, bytes: &[u8]) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for (index, line) in bytes.split(|b| *b == b'\n').enumerate() {
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() || trimmed[0] != b'{' {
            // cargo and cargo-deny mix plain progress lines into the stream.
            continue;
        }
        let record = serde_json::from_slice(trimmed).map_err(|e| {
            Error::input(
                file,
                format!(
                    "line {}, column {}: {}",
                    index + 1,
                    e.column(),
                    short(&e.to_string())
                ),
            )
        })?;
        out.push(record);
    }
    Ok(out)
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
/// unsound medium, others low; vulnerabilities from their CVSS v3 vector, medium without one.
fn rustsec_severity(informational: Option<&str>, cvss: Option<&str>) -> crate::model::Severity {
    use crate::model::Severity;
    match informational {
        Some("unsound") => Severity::Medium,
        Some(_) => Severity::Low,
        None => cvss
            .and_then(crate::cvss::base_score)
            .map(Severity::from_cvss)
            .unwrap_or(Severity::Medium),
    }
}
