//! `kics scan --report-formats json` (Checkmarx/kics pkg/model/summary.go): `queries[]`, each a
//! query (id, name, severity, category, cwe) with the `files[]` it failed in (file name, line,
//! resource). Category iac. Severity: KICS's own (CRITICAL, HIGH, MEDIUM, LOW, INFO, TRACE).
//! `queries_failed_to_execute` above 0 is a warning: the scan was partial.

use std::path::Path;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::{json_borrowed, none_readable, not_a_report, title, Parsed};
use crate::error::Result;
use crate::model::{Category, RawFinding, Severity};

#[derive(Deserialize)]
struct Summary<'a> {
    #[serde(borrow)]
    queries: Option<Vec<&'a RawValue>>,
    #[serde(default)]
    queries_failed_to_execute: Option<u64>,
}

#[derive(Deserialize)]
struct Query {
    query_name: String,
    query_id: String,
    #[serde(default)]
    query_url: Option<String>,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    cwe: Option<Value>,
    #[serde(default)]
    description: Option<String>,
    /// KICS lists a query only with the files it failed in: a query without `files` is damaged,
    /// never a query that found nothing.
    files: Vec<File>,
}

#[derive(Deserialize)]
struct File {
    file_name: String,
    #[serde(default)]
    line: Option<u32>,
    #[serde(default)]
    similarity_id: Option<String>,
    #[serde(default)]
    search_key: Option<String>,
    #[serde(default)]
    actual_value: Option<String>,
}

pub fn parse(file: &Path, bytes: &[u8]) -> Result<Parsed> {
    const EXPECTED: &str = "an object with \"queries\" (kics scan --report-formats json)";
    if super::first_byte(bytes) != Some(b'{') {
        let _: Value = super::json(file, bytes)?;
        return Err(not_a_report(file, "KICS JSON", EXPECTED));
    }
    let summary: Summary = json_borrowed(file, bytes)?;
    let Some(queries) = summary.queries else {
        return Err(not_a_report(file, "KICS JSON", EXPECTED));
    };
    let mut parsed = Parsed::default();
    if let Some(n) = summary.queries_failed_to_execute.filter(|n| *n > 0) {
        parsed.warnings.push(format!(
            "{n} KICS queries failed to execute: the scan was partial"
        ));
        parsed.skipped = parsed
            .skipped
            .saturating_add(usize::try_from(n).unwrap_or(usize::MAX));
    }
    let read = super::results::<Query>(bytes, &queries, "query", &mut parsed);
    if read.is_empty() && !queries.is_empty() {
        return Err(none_readable(
            file,
            "KICS",
            "query",
            queries.len(),
            &parsed.warnings,
        ));
    }
    for (_, q) in read {
        let severity = Severity::from_label(&q.severity)
            .or_else(|| {
                q.severity
                    .eq_ignore_ascii_case("trace")
                    .then_some(Severity::Info)
            })
            .unwrap_or(Severity::Medium);
        let cwe = match &q.cwe {
            Some(Value::String(s)) if !s.is_empty() => {
                Some(format!("CWE-{}", s.trim_start_matches("CWE-")))
            }
            Some(Value::Number(n)) => Some(format!("CWE-{n}")),
            _ => None,
        };
        for f in q.files {
            let mut finding = RawFinding::new(
                "kics",
                Category::Iac,
                severity,
                &q.query_id,
                &title(&q.query_name),
            )
            .at(&f.file_name, f.line, f.line)
            .with_ids(cwe.iter());
            // KICS's search key names the resource path; its similarity id is line-free too.
            finding.context = f.search_key.or(f.similarity_id).unwrap_or_default();
            finding.description = f.actual_value.or_else(|| q.description.clone());
            finding.help_uri = q.query_url.clone();
            parsed.findings.push(finding);
        }
    }
    Ok(parsed)
}
