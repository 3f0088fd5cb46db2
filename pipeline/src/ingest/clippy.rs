//! `cargo clippy --message-format=json`: compiler messages with a lint code become quality findings.
//! Severity: `error` (a denied lint) medium, `warning` low, anything else info. The primary span gives
//! the location; the code of that span (trimmed) is the stable context.
//!
//! The stream must hold cargo's JSON messages (objects with `reason`); anything else is not cargo
//! output and is an error. A build that failed without a single diagnostic with a code (cargo's
//! `build-finished` with `success: false`) is an error too: clippy did not check the code.

use std::path::Path;

use serde::Deserialize;

use super::{not_a_report, title, Parsed};
use crate::error::{Error, Result};
use crate::model::{Category, RawFinding, Severity};

#[derive(Deserialize)]
struct Record {
    reason: String,
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    success: Option<bool>,
}

#[derive(Deserialize)]
struct Message {
    message: String,
    level: String,
    #[serde(default)]
    code: Option<Code>,
    #[serde(default)]
    spans: Vec<Span>,
}

#[derive(Deserialize)]
struct Code {
    code: String,
}

#[derive(Deserialize)]
struct Span {
    file_name: String,
    line_start: u32,
    line_end: u32,
    is_primary: bool,
    #[serde(default)]
    text: Vec<SpanText>,
}

#[derive(Deserialize)]
struct SpanText {
    text: String,
}

pub fn parse(file: &Path, bytes: &[u8]) -> Result<Parsed> {
    let mut parsed = Parsed::default();
    let records: Vec<(usize, Record)> = super::records(bytes, &mut parsed);
    if records.is_empty() {
        return Err(not_a_report(
            file,
            "cargo JSON messages",
            "lines of JSON objects with \"reason\" (cargo clippy --message-format=json)",
        ));
    }
    let mut failed_build = false;
    for (_, record) in records {
        if record.reason == "build-finished" && record.success == Some(false) {
            failed_build = true;
        }
        if record.reason != "compiler-message" {
            continue;
        }
        parsed.read += 1;
        let Some(message) = record.message else {
            continue;
        };
        let Some(code) = message.code else { continue };
        let severity = match message.level.as_str() {
            "error" => Severity::Medium,
            "warning" => Severity::Low,
            _ => Severity::Info,
        };
        let mut finding = RawFinding::new(
            "clippy",
            Category::Quality,
            severity,
            &code.code,
            &title(&message.message),
        );
        if let Some(span) = message.spans.iter().find(|s| s.is_primary) {
            finding = finding.at(&span.file_name, Some(span.line_start), Some(span.line_end));
            finding.context = span
                .text
                .iter()
                .map(|t| t.text.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect::<Vec<_>>()
                .join("\n");
        }
        if let Some(lint) = code.code.strip_prefix("clippy::") {
            finding.help_uri = Some(format!(
                "https://rust-lang.github.io/rust-clippy/master/index.html#{lint}"
            ));
        }
        parsed.findings.push(finding);
    }
    if failed_build && parsed.findings.is_empty() {
        return Err(Error::input(
            file,
            "the build failed before clippy reported anything (build-finished: success false)",
        ));
    }
    Ok(parsed)
}
