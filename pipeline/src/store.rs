//! The findings file between `ingest`/`scan` and `gate`/`report`: deduplicated findings, the
//! scanners that did not produce a readable result, the warnings of parsing (results skipped) and
//! the advisory databases the tools used.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{AdvisoryDb, Finding};

pub const FORMAT_VERSION: u32 = 2;

/// A configured scanner that produced no readable result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScannerError {
    pub scanner: String,
    pub reason: String,
    /// Optional scanners (devsecops.toml `optional = true`) never fail the gate by failing.
    #[serde(default)]
    pub optional: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Store {
    pub version: u32,
    pub findings: Vec<Finding>,
    #[serde(default)]
    pub scanner_errors: Vec<ScannerError>,
    /// "<file>: <what was skipped and why>", one per malformed result.
    #[serde(default)]
    pub warnings: Vec<String>,
    #[serde(default)]
    pub databases: Vec<AdvisoryDb>,
    /// VEX statements ingested (`ingest --tool openvex|cyclonedx-vex`), applied by the gate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vex: Vec<crate::vex::Statement>,
    /// The scanners `devsecops scan` ran (empty after `ingest`), so `gate --base` can tell when a
    /// scanner the base's policy requires was not run at all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scanned: Vec<String>,
    /// The reports `ingest` and `audit` read, as "<tool>: <file>", so the gate can tell a run
    /// that read nothing from a clean one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingested: Vec<String>,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            version: FORMAT_VERSION,
            findings: Vec::new(),
            scanner_errors: Vec::new(),
            warnings: Vec::new(),
            databases: Vec::new(),
            vex: Vec::new(),
            scanned: Vec::new(),
            ingested: Vec::new(),
        }
    }
}

impl Store {
    pub fn load(path: &Path) -> Result<Store> {
        if !path.exists() {
            return Ok(Store::default());
        }
        let bytes = crate::ingest::read_limited(path)?;
        let store: Store = crate::ingest::json(path, &bytes)?;
        if store.version != FORMAT_VERSION {
            return Err(Error::input(
                path,
                format!(
                    "findings file format {} is not supported ({FORMAT_VERSION} is): run ingest --replace or scan again",
                    store.version
                ),
            ));
        }
        Ok(store)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = serde_json::to_vec(self).map_err(|e| Error::Output {
            file: path.to_path_buf(),
            message: e.to_string(),
        })?;
        crate::report::write_atomic(path, &bytes)
    }

    /// Whether nothing was scanned at all: no report ingested, no audit, and no scanner that
    /// produced a result. A gate on such a store has no findings because it read nothing. (A
    /// store written before reports were recorded counts as scanned when it holds findings.)
    pub fn nothing_scanned(&self) -> bool {
        self.ingested.is_empty()
            && self.findings.is_empty()
            && self
                .scanned
                .iter()
                .all(|s| self.scanner_errors.iter().any(|e| &e.scanner == s))
    }

    /// Adds advisory databases, once each.
    pub fn add_databases(&mut self, databases: Vec<AdvisoryDb>) {
        for db in databases {
            if !self.databases.contains(&db) {
                self.databases.push(db);
            }
        }
    }
}
