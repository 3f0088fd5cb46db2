//! The baseline: findings accepted as the starting point. Against it each current finding is new or
//! unchanged, and each baseline finding no longer reported is fixed.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{Category, Finding, Severity};

pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Baseline {
    pub version: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub created: time::OffsetDateTime,
    /// By fingerprint.
    pub findings: BTreeMap<String, Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub category: Category,
    pub rule: String,
    pub title: String,
    pub severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    New,
    Unchanged,
    Fixed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::New => "new",
            State::Unchanged => "unchanged",
            State::Fixed => "fixed",
        }
    }
}

impl Baseline {
    pub fn from_findings(findings: &[Finding]) -> Baseline {
        Baseline {
            version: FORMAT_VERSION,
            created: time::OffsetDateTime::now_utc(),
            findings: findings
                .iter()
                .map(|f| {
                    (
                        f.fingerprint.clone(),
                        Entry {
                            category: f.category,
                            rule: f.rule.clone(),
                            title: f.title.clone(),
                            severity: f.severity,
                            path: f.location.as_ref().map(|l| l.path.clone()),
                        },
                    )
                })
                .collect(),
        }
    }

    /// Reads a baseline; a missing file is an empty baseline (every finding is new).
    pub fn load(path: &Path) -> Result<Option<Baseline>> {
        if !path.exists() {
            return Ok(None);
        }
        let bytes = crate::ingest::read_limited(path)?;
        Self::parse(path, &bytes).map(Some)
    }

    /// A baseline from its bytes (`path` names it in errors).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Baseline> {
        let baseline: Baseline = crate::ingest::json(path, bytes)?;
        if baseline.version != FORMAT_VERSION {
            return Err(Error::input(
                path,
                format!(
                    "baseline format {} is not supported ({FORMAT_VERSION} is)",
                    baseline.version
                ),
            ));
        }
        Ok(baseline)
    }

    pub fn state_of(&self, fingerprint: &str) -> State {
        if self.findings.contains_key(fingerprint) {
            State::Unchanged
        } else {
            State::New
        }
    }
}
