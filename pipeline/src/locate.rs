//! Gives Rust dependency findings that name no file a place in the repository: the `[[package]]`
//! entry of the crate's version in `Cargo.lock`. Code scanning needs a file and line for every
//! result (without one, results of one advisory in several crates collapse into one alert), and a
//! person wants to see which lock entry to change.

use std::collections::HashMap;
use std::path::Path;

use crate::model::{Finding, Location};

/// Line of each `name = "..."` (1-based) by (name, version) in a Cargo.lock text.
fn lock_lines(text: &str) -> HashMap<(String, String), u32> {
    let mut out = HashMap::new();
    let mut name: Option<(String, u32)> = None;
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line == "[[package]]" {
            name = None;
        } else if let Some(value) = line.strip_prefix("name = ") {
            name = Some((value.trim_matches('"').to_string(), index as u32 + 1));
        } else if let Some(value) = line.strip_prefix("version = ") {
            if let Some((n, at)) = name.take() {
                out.entry((n, value.trim_matches('"').to_string()))
                    .or_insert(at);
            }
        }
    }
    out
}

/// Sets `Cargo.lock` and the line of the package's entry as the location of every cargo
/// dependency finding that has none (the lock file in `root`, when there is one).
pub fn in_lock_files(root: &Path, findings: &mut [Finding]) {
    let needs = |f: &Finding| {
        f.location.is_none()
            && f.component
                .as_ref()
                .and_then(|c| c.purl.as_deref())
                .is_some_and(|p| p.starts_with("pkg:cargo/"))
    };
    if !findings.iter().any(needs) {
        return;
    }
    let Ok(text) = std::fs::read_to_string(root.join("Cargo.lock")) else {
        return;
    };
    let lines = lock_lines(&text);
    for finding in findings.iter_mut().filter(|f| needs(f)) {
        let mut places: Vec<Location> = finding
            .components()
            .filter_map(|c| {
                let line = lines.get(&(c.name.clone(), c.version.clone()?))?;
                Some(Location {
                    path: "Cargo.lock".into(),
                    start_line: Some(*line),
                    end_line: Some(*line + 1),
                })
            })
            .collect();
        if places.is_empty() {
            continue;
        }
        finding.location = Some(places.remove(0));
        finding.other_locations.extend(places);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_entries_are_found_by_name_and_version() {
        let lock = "version = 4\n\n[[package]]\nname = \"smallvec\"\nversion = \"0.6.13\"\n\n[[package]]\nname = \"smallvec\"\nversion = \"1.6.0\"\n";
        let lines = lock_lines(lock);
        assert_eq!(lines[&("smallvec".into(), "0.6.13".into())], 4);
        assert_eq!(lines[&("smallvec".into(), "1.6.0".into())], 8);
        assert_eq!(lines.len(), 2, "the file's own version key is no package");
    }
}
