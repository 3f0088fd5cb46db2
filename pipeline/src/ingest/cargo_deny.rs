//! `cargo deny --format json check` (NDJSON on stderr). Diagnostics with an advisory are sca
//! findings (severity from CVSS; medium without one; unmaintained/unsound/yanked low); license
//! diagnostics are license findings; bans and sources are quality. `error` diagnostics without an
//! advisory are high, warnings low. Log and summary records are skipped.

use std::path::Path;

use serde::Deserialize;

use super::{ndjson, title, RustsecAdvisory};
use crate::error::Result;
use crate::model::{Category, RawFinding, Severity};

#[derive(Deserialize)]
struct Record {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    fields: Option<Fields>,
}

#[derive(Deserialize)]
struct Fields {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    advisory: Option<RustsecAdvisory>,
    #[serde(default)]
    graphs: Vec<Graph>,
}

#[derive(Deserialize)]
struct Graph {
    #[serde(rename = "Krate")]
    krate: Krate,
}

#[derive(Deserialize)]
struct Krate {
    name: String,
    version: String,
}

pub fn parse(file: &Path, bytes: &[u8]) -> Result<Vec<RawFinding>> {
    let records: Vec<Record> = ndjson(file, bytes)?;
    let mut out = Vec::new();
    for record in records {
        if record.kind != "diagnostic" {
            continue;
        }
        let Some(fields) = record.fields else {
            continue;
        };
        let code = fields.code.clone().unwrap_or_else(|| "diagnostic".into());
        let krate = fields
            .graphs
            .first()
            .map(|g| (g.krate.name.clone(), g.krate.version.clone()));
        let message = fields.message.clone().unwrap_or_default();
        let finding = if let Some(advisory) = fields.advisory {
            advisory.finding("cargo-deny", None, &message)
        } else {
            let category =
                if code.starts_with("license") || code == "rejected" || code == "unlicensed" {
                    Category::License
                } else {
                    Category::Quality
                };
            let severity = match fields.severity.as_deref() {
                Some("error") => Severity::High,
                Some("warning") => Severity::Low,
                _ => Severity::Info,
            };
            RawFinding::new("cargo-deny", category, severity, &code, &title(&message))
        };
        let finding = match krate {
            Some((name, version)) => finding.in_component(&name, Some(&version), "cargo"),
            None => finding,
        };
        out.push(finding);
    }
    Ok(out)
}
