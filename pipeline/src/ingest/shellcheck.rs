//! `shellcheck -f json1` (`{"comments": [...]}`) or `-f json` (the bare array): shell script
//! findings, category sast. Severity: error high, warning medium, info low, style info.

use std::path::Path;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{json_borrowed, none_readable, not_a_report, title, Parsed};
use crate::error::Result;
use crate::model::{Category, RawFinding, Severity};

#[derive(Deserialize)]
struct Report<'a> {
    #[serde(borrow)]
    comments: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Comment {
    file: String,
    line: u32,
    end_line: u32,
    level: String,
    code: u32,
    message: String,
}

pub fn parse(file: &Path, bytes: &[u8]) -> Result<Parsed> {
    let comments: Vec<&RawValue> = match super::first_byte(bytes) {
        Some(b'{') => json_borrowed::<Report>(file, bytes)?.comments,
        Some(b'[') => json_borrowed(file, bytes)?,
        _ => {
            let _: serde_json::Value = super::json(file, bytes)?;
            return Err(not_a_report(
                file,
                "shellcheck JSON",
                "{\"comments\": [...]} (json1) or an array of comments (json)",
            ));
        }
    };
    let mut parsed = Parsed::default();
    let read = super::results::<Comment>(bytes, &comments, "comment", &mut parsed);
    if read.is_empty() && !comments.is_empty() {
        return Err(none_readable(
            file,
            "shellcheck",
            "comment",
            comments.len(),
            &parsed.warnings,
        ));
    }
    for (_, c) in read {
        let severity = match c.level.as_str() {
            "error" => Severity::High,
            "warning" => Severity::Medium,
            "info" => Severity::Low,
            _ => Severity::Info,
        };
        let rule = format!("SC{}", c.code);
        let mut f = RawFinding::new(
            "shellcheck",
            Category::Sast,
            severity,
            &rule,
            &title(&c.message),
        )
        .at(&c.file, Some(c.line), Some(c.end_line));
        f.help_uri = Some(format!("https://www.shellcheck.net/wiki/{rule}"));
        parsed.findings.push(f);
    }
    Ok(parsed)
}
