//! Merged SARIF 2.1.0 for GitHub code scanning: one run, tool `devsecops`, one rule per rule id,
//! `partialFingerprints` with the stable fingerprint, `security-severity`, `baselineState`, and
//! suppressions with their justification.

use std::collections::BTreeMap;

use serde_json::{json, Value};

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

pub fn render(a: &Assessment) -> String {
    let mut rules: BTreeMap<String, (usize, Value)> = BTreeMap::new();
    for item in &a.findings {
        let f = &item.finding;
        if !rules.contains_key(&f.rule) {
            let mut rule = json!({
                "id": f.rule,
                "shortDescription": {"text": f.title},
                "defaultConfiguration": {"level": level(f.severity)},
                "properties": {
                    "security-severity": f.severity.security_severity(),
                    "tags": ["security", f.category.as_str()],
                },
            });
            if let Some(uri) = &f.help_uri {
                rule["helpUri"] = json!(uri);
            }
            let index = rules.len();
            rules.insert(f.rule.clone(), (index, rule));
        }
    }
    let mut ordered: Vec<&(usize, Value)> = rules.values().collect();
    ordered.sort_by_key(|(i, _)| *i);
    let results: Vec<Value> = a
        .findings
        .iter()
        .map(|item| {
            let f = &item.finding;
            let mut text = f.title.clone();
            if let Some(c) = &f.component {
                text.push_str(&format!(" ({} {})", c.name, c.version.as_deref().unwrap_or("")));
            }
            text.push_str(&format!(" [{}]", f.tools.iter().cloned().collect::<Vec<_>>().join(", ")));
            let mut result = json!({
                "ruleId": f.rule,
                "ruleIndex": rules[&f.rule].0,
                "level": level(f.severity),
                "message": {"text": text},
                "partialFingerprints": {"devsecops/v1": f.fingerprint},
                "baselineState": match item.state { State::New => "new", State::Unchanged => "unchanged", State::Fixed => "absent" },
                "properties": {
                    "security-severity": f.severity.security_severity(),
                    "severity": f.severity.as_str(),
                    "category": f.category.as_str(),
                    "tools": f.tools,
                    "identifiers": f.identifiers,
                    "ageDays": item.age_days,
                    "slaBreached": item.sla_breached,
                },
            });
            let location = match (&f.location, &f.component) {
                (Some(l), _) => Some((l.path.clone(), l.start_line, l.end_line)),
                // GitHub needs a file; dependency findings point at the lock file of their ecosystem.
                (None, Some(c)) if c.purl.as_deref().is_some_and(|p| p.starts_with("pkg:cargo/")) => {
                    Some(("Cargo.lock".to_string(), None, None))
                }
                _ => None,
            };
            if let Some((path, start, end)) = location {
                let mut physical = json!({"artifactLocation": {"uri": path}});
                if let Some(start) = start.filter(|s| *s > 0) {
                    physical["region"] = json!({"startLine": start, "endLine": end.unwrap_or(start).max(start)});
                }
                result["locations"] = json!([{"physicalLocation": physical}]);
            }
            if let Some(justification) = &item.suppression_justification {
                result["suppressions"] = json!([{"kind": "external", "status": "accepted", "justification": justification}]);
            }
            result
        })
        .collect();
    let notifications: Vec<Value> = a
        .skipped
        .iter()
        .map(|(tool, why)| json!({"level": "warning", "message": {"text": format!("{tool} skipped: {why}")}}))
        .collect();
    let log = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "devsecops",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/devsecops-platform/devsecops",
                "rules": ordered.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(),
            }},
            "invocations": [{
                "executionSuccessful": true,
                "toolExecutionNotifications": notifications,
            }],
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&log).unwrap_or_default() + "\n"
}
