//! Suppressions: accepted risks, each with a justification, an owner and an expiry date. A
//! suppression matches by fingerprint, or by rule plus an optional path glob. An expired one stops
//! suppressing and is reported; one that matches nothing is reported too.

use std::path::Path;

use globset::{Glob, GlobMatcher};
use serde::Deserialize;
use time::Date;

use crate::error::{Error, Result};
use crate::model::Finding;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default, rename = "suppression")]
    suppressions: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    #[serde(default)]
    fingerprint: Option<String>,
    #[serde(default)]
    rule: Option<String>,
    #[serde(default)]
    path: Option<String>,
    justification: String,
    owner: String,
    expires: toml::value::Datetime,
    /// Why the dependency is not affected, as a VEX statement says it (`devsecops vex`).
    #[serde(default)]
    vex_justification: Option<String>,
    #[serde(default)]
    approved_by: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Suppression {
    pub index: usize,
    pub fingerprint: Option<String>,
    pub rule: Option<String>,
    pub path: Option<String>,
    matcher: Option<GlobMatcher>,
    pub justification: String,
    pub owner: String,
    pub expires: Date,
    /// One of [`crate::vex::JUSTIFICATIONS`]; required of a suppression that `devsecops vex`
    /// turns into a statement (one that accepts a dependency finding).
    pub vex_justification: Option<String>,
    /// Who accepted the risk (a code owner of the suppressions file on the base revision, which
    /// `gate --base` checks, and the signer of the approval when the change adds or extends it).
    pub approved_by: Option<String>,
}

impl Suppression {
    pub fn matches(&self, finding: &Finding) -> bool {
        if let Some(fp) = &self.fingerprint {
            return *fp == finding.fingerprint;
        }
        let Some(rule) = &self.rule else { return false };
        if !rule.eq_ignore_ascii_case(&finding.rule) && !finding.identifiers.contains(rule) {
            return false;
        }
        match (&self.matcher, &finding.location) {
            (None, _) => true,
            (Some(glob), Some(location)) => glob.is_match(&location.path),
            (Some(_), None) => false,
        }
    }

    pub fn is_expired(&self, today: Date) -> bool {
        self.expires < today
    }

    pub fn describe(&self) -> String {
        match (&self.fingerprint, &self.rule, &self.path) {
            (Some(fp), _, _) => format!("fingerprint {fp}"),
            (None, Some(rule), Some(path)) => format!("rule {rule} in {path}"),
            (None, Some(rule), None) => format!("rule {rule}"),
            _ => "nothing".into(),
        }
    }
}

/// Reads the suppressions file; a missing file means none. Every entry is validated.
pub fn load(path: &Path) -> Result<Vec<Suppression>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::input(path, e.to_string()))?;
    parse(path, &text)
}

pub fn parse(path: &Path, text: &str) -> Result<Vec<Suppression>> {
    let file: File = toml::from_str(text)
        .map_err(|e| Error::input(path, crate::config::toml_error(text, &e)))?;
    let mut out = Vec::new();
    for (i, entry) in file.suppressions.into_iter().enumerate() {
        let n = i + 1;
        let bad = |m: &str| Error::input(path, format!("suppression #{n}: {m}"));
        if entry.fingerprint.is_none() && entry.rule.is_none() {
            return Err(bad(
                "needs a fingerprint, or a rule (with an optional path glob)",
            ));
        }
        if entry.fingerprint.is_some() && (entry.rule.is_some() || entry.path.is_some()) {
            return Err(bad("give a fingerprint or a rule and path, not both"));
        }
        if entry.justification.trim().len() < 10 {
            return Err(bad(
                "justification must explain why (at least 10 characters)",
            ));
        }
        if entry.owner.trim().is_empty() {
            return Err(bad("owner is empty"));
        }
        if let Some(label) = &entry.vex_justification {
            if !crate::vex::JUSTIFICATIONS.contains(&label.as_str()) {
                return Err(bad(&format!(
                    "vex_justification {label:?} is none of {}",
                    crate::vex::JUSTIFICATIONS.join(", ")
                )));
            }
        }
        if entry
            .approved_by
            .as_deref()
            .is_some_and(|a| a.trim().is_empty())
        {
            return Err(bad("approved_by is empty"));
        }
        let expires = match entry.expires.date {
            Some(d) if entry.expires.time.is_none() => Date::from_calendar_date(
                i32::from(d.year),
                time::Month::try_from(d.month).map_err(|_| bad("expires: invalid month"))?,
                d.day,
            )
            .map_err(|e| bad(&format!("expires: {e}")))?,
            _ => return Err(bad("expires must be a date like 2027-01-31")),
        };
        let matcher = match &entry.path {
            Some(glob) => Some(
                Glob::new(glob)
                    .map_err(|e| bad(&format!("path glob {glob:?}: {e}")))?
                    .compile_matcher(),
            ),
            None => None,
        };
        out.push(Suppression {
            index: n,
            fingerprint: entry.fingerprint,
            rule: entry.rule,
            path: entry.path,
            matcher,
            justification: entry.justification,
            owner: entry.owner,
            expires,
            vex_justification: entry.vex_justification,
            approved_by: entry.approved_by,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_required_and_checked() {
        let p = Path::new("s.toml");
        let ok = parse(p, "[[suppression]]\nrule = \"DL3007\"\npath = \"docker/**\"\njustification = \"base image pinned by digest elsewhere\"\nowner = \"platform\"\nexpires = 2027-01-31\n").expect("valid");
        assert_eq!(ok[0].expires, time::macros::date!(2027 - 01 - 31));
        for (text, expect) in [
            ("[[suppression]]\nrule = \"x\"\nowner = \"o\"\nexpires = 2027-01-01\n", "justification"),
            ("[[suppression]]\nrule = \"x\"\njustification = \"long enough reason\"\nexpires = 2027-01-01\n", "owner"),
            ("[[suppression]]\nrule = \"x\"\njustification = \"long enough reason\"\nowner = \"o\"\n", "expires"),
            ("[[suppression]]\njustification = \"long enough reason\"\nowner = \"o\"\nexpires = 2027-01-01\n", "needs a fingerprint"),
            ("[[suppression]]\nrule = \"x\"\njustification = \"short\"\nowner = \"o\"\nexpires = 2027-01-01\n", "at least 10"),
            ("[[suppression]]\nrule = \"x\"\njustification = \"long enough reason\"\nowner = \"o\"\nexpires = \"soon\"\n", "line 5"),
            ("[[suppression]]\nrule = \"x\"\npath = \"[\"\njustification = \"long enough reason\"\nowner = \"o\"\nexpires = 2027-01-01\n", "path glob"),
        ] {
            let err = parse(p, text).expect_err(expect);
            assert!(err.to_string().contains(expect), "{expect}: {err}");
        }
    }
}
