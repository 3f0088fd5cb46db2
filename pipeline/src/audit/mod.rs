//! `devsecops audit`: the Rust binaries a closure (or an image) ships, audited offline. Every
//! executable is read for the dependency list cargo-auditable embedded (`binary`), each crate from
//! crates.io is matched against the RustSec database (`advisories`), and the result is a report
//! (this module's JSON format, `ingest --tool devsecops-audit`) whose findings name the advisory,
//! the crate, the fixed versions and every binary with its store path and NAR hash. A Rust binary
//! without the embedded list is a finding of its own ("not auditable"): nothing about it passes
//! unseen. Findings share their fingerprint with cargo-audit's and trivy's for the same advisory
//! and crate, so the workspace's and the closure's findings merge.

pub mod advisories;
pub mod binary;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{AdvisoryDb, Artifact, Category, RawFinding, Severity};

/// The tool name findings carry.
pub const TOOL: &str = "devsecops-audit";
/// The report format's version (the value of its `devsecops_audit` key).
pub const FORMAT: u32 = 1;
/// The rule of a Rust binary without an embedded dependency list.
pub const NOT_AUDITABLE: &str = "not-auditable";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatabaseInfo {
    pub path: String,
    pub advisories: usize,
    /// Date of the newest advisory: the database is at least that recent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_advisory: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Binary {
    #[serde(flatten)]
    pub artifact: Artifact,
    /// Crates in its embedded dependency list.
    pub crates: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdvisoryInfo {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvss: Option<String>,
    /// unmaintained, unsound, notice; absent for vulnerabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub informational: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// One advisory that applies to one crate version, with the binaries that embed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Match {
    pub advisory: AdvisoryInfo,
    pub package: String,
    pub version: String,
    /// Version requirements that are patched.
    #[serde(default)]
    pub patched: Vec<String>,
    pub binaries: Vec<Artifact>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadError {
    pub path: String,
    pub message: String,
}

/// What `devsecops audit` found; its JSON is what `ingest --tool devsecops-audit` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The format's version; its presence marks the document as an audit report.
    pub devsecops_audit: u32,
    pub source: String,
    pub database: DatabaseInfo,
    /// Store paths read (0 for plain files).
    pub store_paths: usize,
    pub files: usize,
    pub executables: usize,
    pub binaries: Vec<Binary>,
    pub not_auditable: Vec<Artifact>,
    pub findings: Vec<Match>,
    /// Files that could not be audited (unreadable, a corrupt section, contents that do not
    /// match the closure's NAR hash). A report with errors is not a complete audit.
    #[serde(default)]
    pub errors: Vec<ReadError>,
}

impl Report {
    /// The findings: one per advisory, crate version and binary (deduplication merges them), and
    /// one per binary that is not auditable.
    pub fn findings(&self) -> Vec<RawFinding> {
        let mut out = Vec::new();
        for m in &self.findings {
            let a = &m.advisory;
            for binary in &m.binaries {
                let advisory = crate::ingest::RustsecAdvisory {
                    id: a.id.clone(),
                    title: Some(a.title.clone()),
                    description: Some(a.description.clone()).filter(|d| !d.is_empty()),
                    aliases: a.aliases.clone(),
                    cvss: a.cvss.clone(),
                    informational: a.informational.clone(),
                    url: a.url.clone(),
                };
                let mut f = advisory
                    .finding(TOOL, None, &format!("{} {}", m.package, m.version))
                    .in_component(&m.package, Some(&m.version), "cargo")
                    .fixed_by(&m.patched);
                f.artifacts.push(binary.clone());
                out.push(f);
            }
        }
        for artifact in &self.not_auditable {
            let mut f = RawFinding::new(
                TOOL,
                Category::Sca,
                Severity::Medium,
                NOT_AUDITABLE,
                "Rust binary without an embedded dependency list: its crates cannot be audited",
            );
            f.description = Some(
                "cargo auditable embeds the crates a binary was built from in a `.dep-v0` section; \
                 this Rust binary has none, so no advisory can be matched against it. Build it with \
                 cargo auditable (nixpkgs' buildRustPackage does by default)."
                    .into(),
            );
            f.context = stable_name(artifact);
            f.artifacts.push(artifact.clone());
            out.push(f);
        }
        out
    }

    pub fn database(&self) -> AdvisoryDb {
        AdvisoryDb {
            tool: TOOL.into(),
            name: "RustSec advisory-db".into(),
            commit: None,
            updated: self.database.newest_advisory.clone(),
        }
    }

    /// A few lines for people: what was read and what was found.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "audited {}: {} store path(s), {} file(s), {} executable(s); {} Rust binary(ies) with an embedded dependency list ({} crates), {} not auditable; {} advisory match(es) against {} advisories (newest {})",
            self.source,
            self.store_paths,
            self.files,
            self.executables,
            self.binaries.len(),
            self.binaries.iter().map(|b| b.crates).sum::<usize>(),
            self.not_auditable.len(),
            self.findings.len(),
            self.database.advisories,
            self.database.newest_advisory.as_deref().unwrap_or("undated"),
        );
        for m in &self.findings {
            let fixed = if m.patched.is_empty() {
                "no fixed version".to_string()
            } else {
                format!("fixed in {}", m.patched.join(" or "))
            };
            for b in &m.binaries {
                out.push_str(&format!(
                    "\n  {} {} {} ({fixed}): {}{}",
                    m.advisory.id,
                    m.package,
                    m.version,
                    b.path,
                    b.nar_hash
                        .as_deref()
                        .map(|h| format!(" [{h}]"))
                        .unwrap_or_default()
                ));
            }
        }
        for a in &self.not_auditable {
            out.push_str(&format!("\n  not auditable: {}", a.path));
        }
        for e in &self.errors {
            out.push_str(&format!("\n  error: {}: {}", e.path, e.message));
        }
        out
    }
}

/// A name for a binary that survives rebuilds: the store path's name without hash and version,
/// then the path inside it (`cargo-audit/bin/cargo-audit`); the path itself outside a store.
fn stable_name(artifact: &Artifact) -> String {
    match &artifact.store_path {
        Some(store_path) => {
            let (name, _) = crate::nix::store_name(store_path);
            let inside = artifact
                .path
                .strip_prefix(store_path.as_str())
                .unwrap_or(&artifact.path);
            format!("{name}{inside}")
        }
        None => artifact.path.clone(),
    }
}

/// What to audit.
pub struct Request<'a> {
    /// A closure: a store path or a link to one, path-info JSON, or a binary cache directory.
    pub nix: Option<&'a str>,
    /// Files or directories outside a closure (the binary copied out of an image).
    pub paths: &'a [PathBuf],
    pub db: &'a Path,
}

/// Reads the targets, matches their crates against the database and builds the report.
pub fn run(request: &Request) -> Result<Report> {
    let database = advisories::Database::open(request.db)?;
    match request.nix {
        Some(source) => crate::nix::with_closure(source, |closure| {
            run_with(request, &database, Some(closure))
        }),
        None => run_with(request, &database, None),
    }
}

fn run_with(
    request: &Request,
    database: &advisories::Database,
    closure: Option<&crate::nix::Closure>,
) -> Result<Report> {
    let mut targets = Vec::new();
    let mut errors = Vec::new();
    let mut sources = Vec::new();
    let mut store_paths = 0;
    if let Some(c) = closure {
        store_paths = c.paths.len();
        for info in &c.paths {
            let files = c.files_of(&info.path);
            if std::fs::symlink_metadata(&files).is_err() {
                errors.push(ReadError {
                    path: info.path.clone(),
                    message: "not on this machine: audit where the closure is (or copy it here)"
                        .into(),
                });
                continue;
            }
            targets.push(binary::Target {
                files,
                shown_as: PathBuf::from(&info.path),
                store_path: Some(info.path.clone()),
                nar_hash: info.nar_hash.clone(),
            });
        }
        sources.push(c.source.clone());
    }
    for path in request.paths {
        // A path the user named is resolved once (`./result-bin`, a link to the binary): walking
        // a link itself would audit nothing and pass. Links inside it are never followed.
        let files = match std::fs::canonicalize(path) {
            Ok(resolved) => resolved,
            Err(e) => {
                errors.push(ReadError {
                    path: path.display().to_string(),
                    message: format!("cannot resolve: {e}"),
                });
                continue;
            }
        };
        targets.push(binary::Target {
            files,
            shown_as: path.clone(),
            store_path: None,
            nar_hash: None,
        });
        sources.push(path.display().to_string());
    }
    if targets.is_empty() && errors.is_empty() {
        return Err(Error::Usage(
            "nothing to audit: give --nix CLOSURE or paths".into(),
        ));
    }
    let scan = binary::scan(&targets);
    errors.extend(scan.errors.iter().map(|(p, m)| ReadError {
        path: p.display().to_string(),
        message: m.clone(),
    }));
    // The findings name a store path's NAR hash: it must be the hash of the files read. Checked
    // for the store paths that hold a Rust binary, from their NAR serialization.
    if let Some(closure) = closure {
        let mut checked = BTreeMap::new();
        for artifact in scan
            .audited
            .iter()
            .map(|a| &a.artifact)
            .chain(&scan.not_auditable)
        {
            let (Some(store_path), Some(expected)) = (&artifact.store_path, &artifact.nar_hash)
            else {
                continue;
            };
            if checked.contains_key(store_path) || closure.files.contains_key(store_path) {
                // Unpacked from a NAR whose hash the binary cache reader already checked.
                continue;
            }
            let actual = crate::nix::nar_hash(&closure.files_of(store_path))?;
            if actual != *expected {
                errors.push(ReadError {
                    path: store_path.clone(),
                    message: format!(
                        "its files hash to {actual}, not to the narHash {expected} the closure states"
                    ),
                });
            }
            checked.insert(store_path.clone(), ());
        }
    }
    let mut matches: BTreeMap<(String, String, String), Match> = BTreeMap::new();
    let mut binaries = Vec::new();
    for audited in &scan.audited {
        binaries.push(Binary {
            artifact: audited.artifact.clone(),
            crates: audited.info.packages.len(),
        });
        for package in &audited.info.packages {
            // RustSec covers crates.io; a local or git crate of the same name is another crate.
            if package.source != auditable_serde::Source::CratesIo {
                continue;
            }
            for advisory in database.affecting(
                &package.name,
                &package.version,
                audited.format.operating_systems(),
            ) {
                let key = (
                    advisory.metadata.id.to_string(),
                    package.name.clone(),
                    package.version.to_string(),
                );
                let entry = matches.entry(key).or_insert_with(|| Match {
                    advisory: AdvisoryInfo {
                        id: advisory.metadata.id.to_string(),
                        title: advisory.metadata.title.clone(),
                        description: advisory.metadata.description.clone(),
                        aliases: advisory
                            .metadata
                            .aliases
                            .iter()
                            .map(|a| a.to_string())
                            .collect(),
                        cvss: advisory.metadata.cvss.as_ref().map(|c| c.to_string()),
                        informational: advisory
                            .metadata
                            .informational
                            .as_ref()
                            .map(|i| i.to_string()),
                        url: advisory.metadata.url.as_ref().map(|u| u.to_string()),
                    },
                    package: package.name.clone(),
                    version: package.version.to_string(),
                    patched: advisory
                        .versions
                        .patched()
                        .iter()
                        .map(|r| r.to_string())
                        .collect(),
                    binaries: Vec::new(),
                });
                if !entry.binaries.contains(&audited.artifact) {
                    entry.binaries.push(audited.artifact.clone());
                }
            }
        }
    }
    Ok(Report {
        devsecops_audit: FORMAT,
        source: sources.join(", "),
        database: DatabaseInfo {
            path: database.path.display().to_string(),
            advisories: database.count,
            newest_advisory: database.newest.clone(),
        },
        store_paths,
        files: scan.files,
        executables: scan.executables,
        binaries,
        not_auditable: scan.not_auditable,
        findings: matches.into_values().collect(),
        errors,
    })
}

/// `ingest --tool devsecops-audit`: a report written by `devsecops audit --output`. A report that
/// lists files it could not audit is refused: its findings are incomplete.
pub fn parse_report(file: &Path, bytes: &[u8]) -> Result<crate::ingest::Parsed> {
    let value: serde_json::Value = crate::ingest::json(file, bytes)?;
    match value
        .get("devsecops_audit")
        .and_then(serde_json::Value::as_u64)
    {
        Some(v) if v == u64::from(FORMAT) => {}
        Some(v) => {
            return Err(Error::input(
                file,
                format!("audit report format {v} is not supported ({FORMAT} is)"),
            ))
        }
        None => {
            return Err(crate::ingest::not_a_report(
                file,
                TOOL,
                "an object with \"devsecops_audit\": 1 (devsecops audit --output)",
            ))
        }
    }
    let report: Report =
        serde_json::from_value(value).map_err(|e| Error::input(file, e.to_string()))?;
    if let Some(first) = report.errors.first() {
        return Err(Error::input(
            file,
            format!(
                "the audit could not read {} file(s), so its findings are incomplete; first: {}: {}",
                report.errors.len(),
                first.path,
                first.message
            ),
        ));
    }
    let findings = report.findings();
    Ok(crate::ingest::Parsed {
        read: findings.len(),
        findings,
        warnings: Vec::new(),
        databases: vec![report.database()],
        skipped: 0,
    })
}

/// The `audit` command: runs the audit, then writes its report (`output`, `-` for stdout) or adds
/// its findings and advisory database to the findings file. Files that could not be audited are
/// printed, recorded as a scanner error (so the gate fails) and make the command exit 2.
pub fn command(
    config: &crate::config::Config,
    nix: Option<&str>,
    paths: &[PathBuf],
    db: Option<PathBuf>,
    output: Option<&Path>,
) -> Result<u8> {
    let db = db.or_else(advisories::default_path).ok_or_else(|| {
        Error::Usage("no advisory database: name one with --db or DEVSECOPS_ADVISORY_DB".into())
    })?;
    let report = run(&Request {
        nix,
        paths,
        db: &db,
    })?;
    eprintln!("{}", report.summary());
    match output {
        Some(path) if path.as_os_str() == "-" => {
            let text =
                serde_json::to_string_pretty(&report).map_err(|e| Error::Usage(e.to_string()))?;
            println!("{text}");
        }
        Some(path) => {
            let bytes =
                serde_json::to_vec_pretty(&report).map_err(|e| Error::Usage(e.to_string()))?;
            crate::report::write_atomic(path, &bytes)?;
            eprintln!("wrote {}", path.display());
        }
        None => {
            let mut store = crate::store::Store::load(&config.paths.findings)?;
            let mut findings = std::mem::take(&mut store.findings);
            let fresh = crate::model::fingerprint_all(report.findings());
            let added = fresh.len();
            findings.extend(fresh);
            store.findings = crate::model::deduplicate(findings);
            store.add_databases(vec![report.database()]);
            store.ingested.push(format!("{TOOL}: {}", report.source));
            if !report.errors.is_empty() {
                store.scanner_errors.push(crate::store::ScannerError {
                    scanner: TOOL.into(),
                    reason: format!(
                        "{} file(s) of {} could not be audited: {}",
                        report.errors.len(),
                        report.source,
                        report
                            .errors
                            .iter()
                            .map(|e| format!("{}: {}", e.path, e.message))
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                    optional: false,
                });
            }
            store.save(&config.paths.findings)?;
            println!(
                "added {added} finding(s) from the audit of {}; {} unique in {}",
                report.source,
                store.findings.len(),
                config.paths.findings.display()
            );
        }
    }
    match report.errors.first() {
        None => Ok(0),
        Some(first) => Err(Error::Input {
            file: PathBuf::from(&first.path),
            message: format!(
                "{}{}",
                first.message,
                match report.errors.len() {
                    1 => String::new(),
                    n => format!(" (and {} more file(s) that could not be audited)", n - 1),
                }
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{deduplicate, fingerprint_all};

    fn report() -> Report {
        let binary = |p: &str| Artifact {
            path: format!("/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-tool-0.1.0/bin/{p}"),
            store_path: Some("/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-tool-0.1.0".into()),
            nar_hash: Some("sha256-HDfQGvQL4ugGkd48w99EN3ppmvuxfGjwgJZLL9Bx/BM=".into()),
        };
        Report {
            devsecops_audit: FORMAT,
            source: "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-tool-0.1.0".into(),
            database: DatabaseInfo {
                path: "db".into(),
                advisories: 1,
                newest_advisory: Some("2026-08-18".into()),
            },
            store_paths: 1,
            files: 3,
            executables: 3,
            binaries: vec![Binary {
                artifact: binary("a"),
                crates: 2,
            }],
            not_auditable: vec![binary("c")],
            findings: vec![Match {
                advisory: AdvisoryInfo {
                    id: "RUSTSEC-2021-0003".into(),
                    title: "Buffer overflow in SmallVec::insert_many".into(),
                    description: String::new(),
                    aliases: vec!["CVE-2021-25900".into(), "GHSA-43w2-9j62-hq99".into()],
                    cvss: Some("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H".into()),
                    informational: None,
                    url: None,
                },
                package: "smallvec".into(),
                version: "1.6.0".into(),
                patched: vec![">= 0.6.14, < 1.0.0".into(), ">= 1.6.1".into()],
                binaries: vec![binary("a"), binary("b")],
            }],
            errors: Vec::new(),
        }
    }

    #[test]
    fn a_match_in_two_binaries_is_one_finding_naming_both_and_merges_with_cargo_audit() {
        let findings = deduplicate(fingerprint_all(report().findings()));
        assert_eq!(findings.len(), 2, "{findings:#?}");
        let vuln = findings
            .iter()
            .find(|f| f.rule == "RUSTSEC-2021-0003")
            .expect("vulnerability");
        assert_eq!(vuln.severity, Severity::Critical);
        assert_eq!(vuln.artifacts.len(), 2);
        assert!(vuln.fixed_versions.contains(">= 1.6.1"));
        assert!(
            vuln.place().contains("bin/a and 1 more"),
            "{}",
            vuln.place()
        );
        // cargo-audit on the workspace reports the same advisory for the same crate.
        let workspace = RawFinding::new(
            "cargo-audit",
            Category::Sca,
            Severity::High,
            "RUSTSEC-2021-0003",
            "t",
        )
        .in_component("smallvec", Some("1.6.0"), "cargo")
        .with_ids(["RUSTSEC-2021-0003", "CVE-2021-25900"]);
        let mut all = fingerprint_all(report().findings());
        all.extend(fingerprint_all(vec![workspace]));
        let merged = deduplicate(all);
        let vuln = merged
            .iter()
            .find(|f| f.rule == "RUSTSEC-2021-0003")
            .expect("vulnerability");
        assert_eq!(
            vuln.tools.iter().collect::<Vec<_>>(),
            ["cargo-audit", "devsecops-audit"]
        );
        let not_auditable = merged
            .iter()
            .find(|f| f.rule == NOT_AUDITABLE)
            .expect("not auditable");
        assert_eq!(not_auditable.severity, Severity::Medium);
    }

    #[test]
    fn not_auditable_fingerprints_survive_a_rebuild() {
        let mut rebuilt = report();
        rebuilt.not_auditable[0] = Artifact {
            path: "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-tool-0.2.0/bin/c".into(),
            store_path: Some("/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-tool-0.2.0".into()),
            nar_hash: None,
        };
        let fp = |r: Report| {
            fingerprint_all(r.findings())
                .into_iter()
                .find(|f| f.rule == NOT_AUDITABLE)
                .map(|f| f.fingerprint)
        };
        assert_eq!(fp(report()), fp(rebuilt));
    }

    #[test]
    fn reports_round_trip_and_incomplete_or_foreign_ones_are_refused() {
        let path = Path::new("audit.json");
        let bytes = serde_json::to_vec(&report()).expect("json");
        let parsed = parse_report(path, &bytes).expect("parse");
        assert_eq!(parsed.findings.len(), 3);
        assert_eq!(parsed.databases[0].updated.as_deref(), Some("2026-08-18"));
        let mut broken = report();
        broken.errors.push(ReadError {
            path: "/nix/store/x/bin/y".into(),
            message: "corrupt embedded dependency list (.dep-v0)".into(),
        });
        let err = parse_report(path, &serde_json::to_vec(&broken).expect("json"))
            .expect_err("incomplete");
        assert!(err.to_string().contains("/nix/store/x/bin/y"), "{err}");
        for text in [r#"{"findings": []}"#, r#"{"devsecops_audit": 9}"#, "[]"] {
            assert!(parse_report(path, text.as_bytes()).is_err(), "{text}");
        }
    }
}
