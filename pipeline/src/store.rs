//! The findings file between `ingest`/`scan` and `gate`/`report`: deduplicated findings plus the
//! scanners that did not run.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::Finding;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Store {
    pub version: u32,
    pub findings: Vec<Finding>,
    /// (tool, reason) for scanners that were skipped, failed or timed out.
    #[serde(default)]
    pub skipped: Vec<(String, String)>,
}

impl Store {
    pub fn load(path: &Path) -> Result<Store> {
        if !path.exists() {
            return Ok(Store {
                version: 1,
                ..Store::default()
            });
        }
        let bytes = crate::ingest::read_limited(path)?;
        let store: Store = crate::ingest::json(path, &bytes)?;
        if store.version != 1 {
            return Err(Error::input(
                path,
                format!("findings file format {} is not supported", store.version),
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
}
