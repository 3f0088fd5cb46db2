//! The RustSec advisory database, read offline from a directory with the `rustsec` crate (no git,
//! no network), and the advisories that apply to the crates of a binary.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use rustsec::advisory::Advisory;
use rustsec::database::Query;

use crate::error::{Error, Result};

/// Where the database is when none is named: `DEVSECOPS_ADVISORY_DB`, else where cargo-audit
/// keeps its copy (`~/.cargo/advisory-db`).
pub fn default_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("DEVSECOPS_ADVISORY_DB") {
        return Some(PathBuf::from(path));
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    Some(home.join("advisory-db"))
}

pub struct Database {
    pub path: PathBuf,
    inner: rustsec::Database,
    /// Advisories in it.
    pub count: usize,
    /// The date of its newest advisory (`YYYY-MM-DD`): the database is at least that recent.
    pub newest: Option<String>,
}

impl Database {
    pub fn open(path: &Path) -> Result<Database> {
        if !path.join("crates").is_dir() {
            return Err(Error::input(
                path,
                "not a RustSec advisory database (no crates/ directory); name one with --db or DEVSECOPS_ADVISORY_DB",
            ));
        }
        let inner = rustsec::Database::open(path).map_err(|e| Error::input(path, e.to_string()))?;
        let count = inner.iter().count();
        if count == 0 {
            return Err(Error::input(
                path,
                "the advisory database holds no advisory",
            ));
        }
        let newest = inner
            .iter()
            .map(|a| a.metadata.date.as_str().to_string())
            .max();
        Ok(Database {
            path: path.to_path_buf(),
            inner,
            count,
            newest,
        })
    }

    /// The advisories (vulnerabilities and informational ones, withdrawn ones excepted) that
    /// affect `name` at `version` on any of `operating_systems` (an advisory limited to other
    /// systems does not apply to the binary).
    pub fn affecting(
        &self,
        name: &str,
        version: &rustsec::Version,
        operating_systems: &[&str],
    ) -> Vec<&Advisory> {
        let Ok(package) = rustsec::package::Name::from_str(name) else {
            return Vec::new();
        };
        let query = Query::new()
            .collection(rustsec::Collection::Crates)
            .withdrawn(false)
            .package_name(package)
            .package_version(version.clone())
            .target_os(operating_systems.iter().map(|s| s.to_string()).collect());
        self.inner.query(&query)
    }
}
