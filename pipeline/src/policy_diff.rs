//! `--base REF`: the gate decides with the policy of the base revision, never with the one of the
//! change it gates. The policy, scanner list, suppressions, baseline and the scanners' rule files
//! are read from REF with git (no checkout) and compared with the work tree; every difference is
//! classified as weakening, strengthening or neutral.
//!
//! What holds: the base's policy with every strengthening change (they take effect at once) and
//! every neutral one. Weakening changes take effect only when approved: SSH signatures over the
//! change's text (`approval.rs`) by keys the base's `.devsecops/allowed_signers` lists, each from
//! a code owner (the base's CODEOWNERS, `codeowners.rs`) of every file weakened. Without that,
//! the gate fails and lists them. A base without the policy file is a first adoption: the
//! change's policy applies as it is, and every report says so.
//!
//! Every field of the configuration is classified below by exhaustive destructuring: a new field
//! does not compile until someone decides what loosening it means.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::approval::{AllowedSigners, Approval};
use crate::assess::Assessment;
use crate::baseline::Baseline;
use crate::codeowners::{self, CodeOwners};
use crate::config::{CategoryPolicy, Config, Mode, Paths, Policy, Scanner};
use crate::error::{Error, Result};
use crate::git::Repo;
use crate::model::{Category, Severity};
use crate::store::ScannerError;
use crate::suppress::{self, Suppression};

/// Beside the policy file, read from the base: the keys whose signatures approve.
pub const ALLOWED_SIGNERS: &str = ".devsecops/allowed_signers";
/// Beside the policy file, read from the change: the signatures (`*.sig`).
pub const APPROVALS: &str = ".devsecops/approvals";

/// Files the scanners (or the build that makes the gate) read on their own, at any depth, whatever
/// each scanner's `rules` lists: one can cap lints, swap the compiler or a dependency, or ignore
/// findings. A change to any of them is a weakening until approved.
const SETTINGS_FILES: &[&str] = &[
    ".shellcheckrc",
    ".semgrepignore",
    ".gitleaksignore",
    ".trivyignore",
    ".trivyignore.yaml",
    "rust-toolchain",
    "rust-toolchain.toml",
];

/// Whether `path` (from the top of the repository) is a scanner's or the build's settings file:
/// one of [`SETTINGS_FILES`], or cargo's configuration (`.cargo/config.toml`, `.cargo/config`),
/// in any directory.
pub fn is_settings_file(path: &str) -> bool {
    let (dir, name) = match path.rsplit_once('/') {
        Some((d, n)) => (d, n),
        None => ("", path),
    };
    let parent = dir.rsplit('/').next().unwrap_or(dir);
    SETTINGS_FILES.contains(&name)
        || (parent == ".cargo" && matches!(name, "config" | "config.toml"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Lets something pass that the base would fail, or hides what the base would show.
    Weakening,
    /// Fails or shows more than the base.
    Strengthening,
    /// Changes nothing the gate decides (an install hint, where reports go).
    Neutral,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Weakening => "weakening",
            Kind::Strengthening => "strengthening",
            Kind::Neutral => "neutral",
        }
    }
}

/// One difference between the base's policy and the change's.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub kind: Kind,
    /// The file it is in, from the top of the repository.
    pub file: String,
    /// What changed, as a sentence.
    pub what: String,
    /// For weakening changes: the principals of the approvals that cover it; empty when it is
    /// not approved.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub approved_by: Vec<String>,
    /// A suppression's `approved_by`, which must be one of the signers.
    #[serde(skip)]
    approver: Option<Option<String>>,
}

impl Change {
    pub fn new(kind: Kind, file: &str, what: impl Into<String>) -> Change {
        Change {
            kind,
            file: file.to_string(),
            what: what.into(),
            approved_by: Vec::new(),
            approver: None,
        }
    }

    /// A weakening change that takes effect (and so fails the gate) without approval.
    pub fn unapproved(&self) -> bool {
        self.kind == Kind::Weakening && self.approved_by.is_empty()
    }
}

/// The policy diff every report shows.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyReport {
    /// The base as given (`origin/main`, a commit id).
    pub base: String,
    pub base_commit: String,
    /// The base has no policy file: the change's policy applies as it is.
    pub first_adoption: bool,
    pub changes: Vec<Change>,
    /// SHA-256 of the text an approval signs (`devsecops policy --message`).
    pub change_id: String,
    pub approvals: Vec<Approval>,
    /// What fails the gate besides unapproved weakening (a suppression's approver who is not a
    /// code owner).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// What does not count, and why (signatures that do not verify, keys skipped).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The base's CODEOWNERS file, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codeowners: Option<String>,
}

impl PolicyReport {
    pub fn unapproved(&self) -> usize {
        self.changes.iter().filter(|c| c.unapproved()).count()
    }

    pub fn count(&self, kind: Kind) -> usize {
        self.changes.iter().filter(|c| c.kind == kind).count()
    }

    /// One line per change, for the terminal and the reports: "weakening, not approved:
    /// scanner semgrep removed (devsecops.toml)".
    pub fn line(change: &Change) -> String {
        let state = match change.kind {
            Kind::Weakening if change.approved_by.is_empty() => {
                "weakening, not approved".to_string()
            }
            Kind::Weakening => format!(
                "weakening, approved by {}",
                change.approved_by.join(" and ")
            ),
            other => other.as_str().to_string(),
        };
        format!("{state}: {} ({})", change.what, change.file)
    }
}

/// What `gate --base` decides with.
#[derive(Debug, Clone)]
pub struct Governed {
    /// The policy that holds, its paths resolved like the work tree's.
    pub config: Config,
    pub suppressions: Vec<Suppression>,
    pub baseline: Option<Baseline>,
    pub report: PolicyReport,
    /// The text an approval signs.
    pub message: String,
}

/// Where a revision's files come from: git for the base, the work tree for the change.
trait Source {
    /// A file's content; `None` when there is none.
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>>;
    /// Every file at or under `path`, with its content.
    fn files(&self, path: &str) -> Result<Vec<(String, Vec<u8>)>>;
    /// How errors name a file of this revision.
    fn label(&self, path: &str) -> PathBuf;
}

struct BaseTree<'a> {
    repo: &'a Repo,
    rev: &'a str,
    commit: &'a str,
}

impl Source for BaseTree<'_> {
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        self.repo.read(self.commit, path)
    }

    fn files(&self, path: &str) -> Result<Vec<(String, Vec<u8>)>> {
        self.repo
            .files(self.commit, path)?
            .into_iter()
            .map(|f| Ok((f.path, self.repo.blob(&f.blob)?)))
            .collect()
    }

    fn label(&self, path: &str) -> PathBuf {
        PathBuf::from(format!("{}:{path}", self.rev))
    }
}

struct WorkTree<'a> {
    root: &'a Path,
}

impl Source for WorkTree<'_> {
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let file = self.root.join(path);
        match std::fs::symlink_metadata(&file) {
            Err(_) => Ok(None),
            // git keeps a link's target as its content: compare like with like.
            Ok(meta) if meta.file_type().is_symlink() => std::fs::read_link(&file)
                .map(|t| Some(t.to_string_lossy().into_owned().into_bytes()))
                .map_err(|e| Error::input(&file, e.to_string())),
            Ok(meta) if meta.is_dir() => Err(Error::input(&file, "is a directory, not a file")),
            Ok(_) => crate::ingest::read_limited(&file).map(Some),
        }
    }

    fn files(&self, path: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        let mut pending = vec![path.to_string()];
        while let Some(current) = pending.pop() {
            let file = self.root.join(&current);
            let Ok(meta) = std::fs::symlink_metadata(&file) else {
                continue;
            };
            if meta.is_dir() {
                let entries =
                    std::fs::read_dir(&file).map_err(|e| Error::input(&file, e.to_string()))?;
                for entry in entries {
                    let entry = entry.map_err(|e| Error::input(&file, e.to_string()))?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    pending.push(format!("{current}/{name}"));
                }
            } else if let Some(bytes) = self.read(&current)? {
                out.push((current, bytes));
            }
        }
        out.sort();
        Ok(out)
    }

    fn label(&self, path: &str) -> PathBuf {
        PathBuf::from(path)
    }
}

/// One revision's policy.
struct Side {
    present: bool,
    config: Config,
    suppressions_file: String,
    suppressions: Vec<Suppression>,
    baseline_file: String,
    baseline: Option<Baseline>,
}

/// Compares the policy at `base` with the work tree's and decides what holds. `config_path` is
/// the work tree's policy file (it need not exist), `config_root` the directory its paths are
/// relative to (as the work tree's configuration resolves them).
pub fn govern(
    config_path: &Path,
    config_root: &Path,
    base: &str,
    now: OffsetDateTime,
) -> Result<Governed> {
    let repo = Repo::discover(config_root)?;
    let commit = repo.resolve(base)?;
    let config_file = repo.relative(config_path)?;
    let dir = match config_file.rsplit_once('/') {
        Some((d, _)) => d.to_string(),
        None => String::new(),
    };
    let at = |p: &str| {
        if dir.is_empty() {
            p.to_string()
        } else {
            format!("{dir}/{p}")
        }
    };
    let base_tree = BaseTree {
        repo: &repo,
        rev: base,
        commit: &commit,
    };
    let work_tree = WorkTree { root: repo.root() };
    let old = load_side(&base_tree, &repo, &config_file, &dir)?;
    let new = load_side(&work_tree, &repo, &config_file, &dir)?;

    // Every file whose content the decision depends on, with each side's digest.
    let mut watched: BTreeSet<String> = BTreeSet::new();
    watched.insert(config_file.clone());
    for side in [&old, &new] {
        watched.insert(side.suppressions_file.clone());
        watched.insert(side.baseline_file.clone());
    }
    let trust_files: Vec<String> = codeowners::LOCATIONS
        .iter()
        .map(|l| l.to_string())
        .chain([at(ALLOWED_SIGNERS)])
        .collect();
    watched.extend(trust_files.iter().cloned());
    // Scanner and build settings at any depth, on either side.
    let settings_files: BTreeSet<String> = repo
        .all_files(&commit)?
        .into_iter()
        .chain(repo.work_tree_files()?)
        .filter(|p| is_settings_file(p))
        .collect();
    watched.extend(settings_files.iter().cloned());
    // Rule files by scanner, and TOML values (`file#key`) apart.
    let mut rule_entries: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for side in [&old, &new] {
        for scanner in &side.config.scanners {
            for rule in &scanner.rules {
                let (file, key) = match rule.split_once('#') {
                    Some((f, k)) => (f, Some(k)),
                    None => (rule.as_str(), None),
                };
                let path = repo_path(&repo, &dir, file)?;
                let entry = match key {
                    Some(k) => format!("{path}#{k}"),
                    None => path,
                };
                rule_entries
                    .entry(entry)
                    .or_default()
                    .insert(scanner.name.clone());
            }
        }
    }
    let mut digests: BTreeMap<String, (Option<String>, Option<String>)> = BTreeMap::new();
    let approvals_dir = format!("{}/", at(APPROVALS));
    let snapshot = |entry: &str, base_side: bool| -> Result<BTreeMap<String, String>> {
        let source: &dyn Source = if base_side { &base_tree } else { &work_tree };
        match entry.split_once('#') {
            Some((file, key)) => Ok(toml_value(source, file, key)?
                .map(|v| BTreeMap::from([(entry.to_string(), v)]))
                .unwrap_or_default()),
            None => Ok(source
                .files(entry)?
                .into_iter()
                // Approvals sign the digest: they cannot be part of it.
                .filter(|(p, _)| !p.starts_with(&approvals_dir))
                .map(|(p, bytes)| (p, hex(&Sha256::digest(&bytes))))
                .collect()),
        }
    };
    let mut rule_changes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in watched.iter().chain(rule_entries.keys()) {
        let before = snapshot(entry, true)?;
        let after = snapshot(entry, false)?;
        let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        for name in names {
            let pair = (before.get(name).cloned(), after.get(name).cloned());
            if pair.0 != pair.1 {
                if let Some(scanners) = rule_entries.get(entry) {
                    rule_changes
                        .entry(name.clone())
                        .or_default()
                        .extend(scanners.iter().cloned());
                }
                digests.insert(name.clone(), pair);
            }
        }
    }

    let mut changes = Vec::new();
    let first_adoption = !old.present && new.present;
    if first_adoption {
        changes.push(Change::new(
            Kind::Neutral,
            &config_file,
            format!("first adoption: {base} has no {config_file}, so this change's policy applies as it is"),
        ));
    } else {
        diff_config(&config_file, &old.config, &new.config, &mut changes);
        diff_suppressions(
            &new.suppressions_file,
            &old.suppressions,
            &new.suppressions,
            &mut changes,
        );
        diff_baseline(
            &new.baseline_file,
            old.baseline.as_ref(),
            new.baseline.as_ref(),
            &mut changes,
        );
        for (file, scanners) in &rule_changes {
            let (before, after) = digests.get(file).cloned().unwrap_or_default();
            let how = match (before, after) {
                (None, _) => "added",
                (_, None) => "removed",
                _ => "changed",
            };
            changes.push(Change::new(
                Kind::Weakening,
                file.split('#').next().unwrap_or(file),
                format!(
                    "rule file {file} of {} {how}",
                    scanners
                        .iter()
                        .map(|s| format!("scanner {s}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    if !first_adoption {
        for file in settings_files
            .iter()
            .filter(|f| !rule_changes.contains_key(*f))
        {
            if let Some((before, after)) = digests.get(file) {
                let how = match (before, after) {
                    (None, _) => "added",
                    (_, None) => "removed",
                    _ => "changed",
                };
                changes.push(Change::new(
                    Kind::Weakening,
                    file,
                    format!(
                        "scanner settings file {file} {how}: it can switch a scanner, or the checks of the build the gate runs, off"
                    ),
                ));
            }
        }
    }
    for file in &trust_files {
        if let Some((before, after)) = digests.get(file) {
            let signers = *file == at(ALLOWED_SIGNERS);
            let (kind, how) = match (before, after) {
                // The keys that approve: whoever adds them approves every later change, so adding
                // them is approved like any other weakening, by a signer the base already trusts.
                (None, _) if signers => (Kind::Weakening, "introduced: it names who may approve policy changes from the next change on"),
                (None, _) => (Kind::Neutral, "introduced (it decides from the next change on; this one is decided by the base's)"),
                (_, None) => (Kind::Weakening, "removed: who may approve policy changes changes"),
                _ => (Kind::Weakening, "changed: who may approve policy changes changes"),
            };
            changes.push(Change::new(kind, file, format!("{file} {how}")));
        }
    }

    let mut message = String::from("devsecops policy approval v1\n");
    for (file, (before, after)) in &digests {
        // Quoted, so no file name can pass for other lines.
        let _ = writeln!(
            message,
            "{file:?} {} {}",
            before.as_deref().unwrap_or("-"),
            after.as_deref().unwrap_or("-")
        );
    }
    let change_id = format!("sha256:{}", hex(&Sha256::digest(message.as_bytes())));

    // The base decides who may approve.
    let mut notes = Vec::new();
    let codeowners = codeowners::LOCATIONS
        .iter()
        .find_map(|l| match base_tree.read(l) {
            Ok(Some(bytes)) => Some(Ok((l, bytes))),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        })
        .transpose()?
        .map(|(file, bytes)| {
            CodeOwners::parse(&format!("{base}:{file}"), &String::from_utf8_lossy(&bytes))
        })
        .transpose()?;
    let signers = match base_tree.read(&at(ALLOWED_SIGNERS))? {
        Some(bytes) => {
            let parsed = AllowedSigners::parse(
                &format!("{base}:{}", at(ALLOWED_SIGNERS)),
                &String::from_utf8_lossy(&bytes),
                now,
            )
            .map_err(Error::Usage)?;
            notes.extend(parsed.skipped.iter().cloned());
            Some(parsed)
        }
        None => None,
    };
    let mut approvals = Vec::new();
    let approval_dir = repo.root().join(at(APPROVALS));
    let mut signature_files: Vec<PathBuf> = std::fs::read_dir(&approval_dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "sig"))
                .collect()
        })
        .unwrap_or_default();
    signature_files.sort();
    for path in &signature_files {
        let name = format!(
            "{}/{}",
            at(APPROVALS),
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        );
        let Some(signers) = &signers else {
            notes.push(format!(
                "{name} does not count: {base} has no {} to verify it with",
                at(ALLOWED_SIGNERS)
            ));
            continue;
        };
        let bytes = crate::ingest::read_limited(path)?;
        match signers.verify(&name, &bytes, message.as_bytes()) {
            Ok(approval) => approvals.push(approval),
            Err(why) => notes.push(format!("does not count: {why}")),
        }
    }

    // A policy file moved where the base's CODEOWNERS does not reach leaves review: a weakening
    // however its content compares.
    if let (Some(owners), false) = (&codeowners, first_adoption) {
        for (what, before, after) in [
            (
                "paths.suppressions",
                &old.suppressions_file,
                &new.suppressions_file,
            ),
            ("paths.baseline", &old.baseline_file, &new.baseline_file),
        ] {
            let (was, now) = (owners.owners(before), owners.owners(after));
            if before != after && !was.is_empty() && was != now {
                changes.push(Change::new(
                    Kind::Weakening,
                    &config_file,
                    format!(
                        "{what} moved from {before} to {after}, out of its code owners' review: {} gives it to {} instead of {}",
                        owners.file,
                        if now.is_empty() { "nobody".to_string() } else { now.join(", ") },
                        was.join(", ")
                    ),
                ));
            }
        }
    }

    // A weakening change counts as approved when a code owner of its file signed this change.
    for change in changes.iter_mut().filter(|c| c.kind == Kind::Weakening) {
        let owners: &[String] = codeowners
            .as_ref()
            .map(|c| c.owners(&change.file))
            .unwrap_or(&[]);
        let mut by: Vec<&Approval> = approvals
            .iter()
            .filter(|a| owners.is_empty() || owners.iter().any(|o| a.speaks_for(o)))
            .collect();
        if let Some(approver) = &change.approver {
            by.retain(|a| approver.as_deref().is_some_and(|p| a.speaks_for(p)));
        }
        change.approved_by = by.iter().map(|a| a.principals.clone()).collect();
        change.approved_by.sort();
        change.approved_by.dedup();
    }

    // Every suppression names who accepted it; with CODEOWNERS on the base, that is an owner of
    // the suppressions file.
    let mut problems = Vec::new();
    if let Some(owners_file) = &codeowners {
        let owners = owners_file.owners(&new.suppressions_file);
        if owners.is_empty() && !new.suppressions.is_empty() {
            notes.push(format!(
                "{} has no owner in {}: approved_by is not checked",
                new.suppressions_file, owners_file.file
            ));
        } else {
            for s in &new.suppressions {
                match &s.approved_by {
                    None => problems.push(format!(
                        "suppression #{} ({}) in {} has no approved_by; a code owner of it ({}) must approve it",
                        s.index, s.describe(), new.suppressions_file, owners.join(", ")
                    )),
                    Some(who) if !owners.iter().any(|o| codeowners::same_owner(who, o)) => {
                        problems.push(format!(
                            "suppression #{} ({}) is approved by {who}, who is not a code owner of {} on {base} ({})",
                            s.index, s.describe(), new.suppressions_file, owners.join(", ")
                        ))
                    }
                    Some(_) => {}
                }
            }
        }
    }

    let approved = changes.iter().all(|c| !c.unapproved());
    let (mut config, suppressions, baseline) = if first_adoption || approved || !old.present {
        (new.config, new.suppressions, new.baseline)
    } else {
        (
            stricter_config(&old.config, &new.config),
            stricter_suppressions(&old.suppressions, &new.suppressions),
            stricter_baseline(old.baseline.as_ref(), new.baseline.as_ref()),
        )
    };
    config.resolve(config_root);
    Ok(Governed {
        config,
        suppressions,
        baseline,
        report: PolicyReport {
            base: base.to_string(),
            base_commit: commit,
            first_adoption,
            changes,
            change_id,
            approvals,
            problems,
            notes,
            codeowners: codeowners.map(|c| c.file),
        },
        message,
    })
}

impl Governed {
    /// Scanner errors judged by the policy that holds: a scanner it requires is required even if
    /// the change made it optional, and one it requires that the scan did not run at all (the
    /// change removed it) is an error.
    pub fn judge_scanners(&self, errors: &mut Vec<ScannerError>, scanned: &[String]) {
        for e in errors.iter_mut() {
            if let Some(s) = self.config.scanners.iter().find(|s| s.name == e.scanner) {
                e.optional = s.optional;
            }
        }
        if scanned.is_empty() {
            return;
        }
        for s in &self.config.scanners {
            if !scanned.contains(&s.name) && !errors.iter().any(|e| e.scanner == s.name) {
                errors.push(ScannerError {
                    scanner: s.name.clone(),
                    reason: format!(
                        "the policy of {} runs it, but this scan did not",
                        self.report.base
                    ),
                    optional: s.optional,
                });
            }
        }
    }

    /// Adds the policy diff to an assessment: unapproved weakening and problems fail it, first
    /// of all reasons; a first adoption is the first thing it notes.
    pub fn apply(&self, assessment: &mut Assessment) {
        let report = &self.report;
        let mut reasons = Vec::new();
        let unapproved = report.unapproved();
        if unapproved > 0 {
            reasons.push(format!(
                "this change weakens the policy of {} without approval: {unapproved} change(s), listed under policy changes",
                report.base
            ));
        }
        reasons.extend(report.problems.iter().cloned());
        assessment.reasons.splice(0..0, reasons);
        if report.first_adoption {
            assessment.notices.insert(
                0,
                format!(
                    "first adoption: {} has no policy file, so this change's policy applies as it is",
                    report.base
                ),
            );
        }
        assessment.failed = !assessment.reasons.is_empty();
        assessment.policy = Some(report.clone());
    }
}

fn load_side(source: &dyn Source, repo: &Repo, config_file: &str, dir: &str) -> Result<Side> {
    let (present, config) = match source.read(config_file)? {
        Some(bytes) => {
            let label = source.label(config_file);
            let text =
                String::from_utf8(bytes).map_err(|_| Error::input(&label, "is not UTF-8"))?;
            (true, Config::parse(&label, &text)?)
        }
        None => (false, Config::default()),
    };
    let suppressions_file = repo_path(repo, dir, &config.paths.suppressions.to_string_lossy())?;
    let suppressions = match source.read(&suppressions_file)? {
        Some(bytes) => {
            let label = source.label(&suppressions_file);
            let text =
                String::from_utf8(bytes).map_err(|_| Error::input(&label, "is not UTF-8"))?;
            suppress::parse(&label, &text)?
        }
        None => Vec::new(),
    };
    let baseline_file = repo_path(repo, dir, &config.paths.baseline.to_string_lossy())?;
    let baseline = match source.read(&baseline_file)? {
        Some(bytes) => Some(Baseline::parse(&source.label(&baseline_file), &bytes)?),
        None => None,
    };
    Ok(Side {
        present,
        config,
        suppressions_file,
        suppressions,
        baseline_file,
        baseline,
    })
}

/// A path of the policy (relative to the policy file's directory `dir`, or absolute) as a path
/// from the top of the repository.
fn repo_path(repo: &Repo, dir: &str, path: &str) -> Result<String> {
    if Path::new(path).is_absolute() {
        return repo.relative(Path::new(path));
    }
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(Error::Usage(format!(
                        "{path}: outside the repository, so it cannot be read from the base revision"
                    )));
                }
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(Error::Usage(format!(
            "{path:?} names the repository itself, not a file"
        )));
    }
    Ok(parts.join("/"))
}

/// The TOML value at a dotted key of a file, as canonical JSON; `None` when file or key is absent.
fn toml_value(source: &dyn Source, file: &str, key: &str) -> Result<Option<String>> {
    let Some(bytes) = source.read(file)? else {
        return Ok(None);
    };
    let label = source.label(file);
    let text = String::from_utf8(bytes).map_err(|_| Error::input(&label, "is not UTF-8"))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| Error::input(&label, crate::config::toml_error(&text, &e)))?;
    let mut value = toml::Value::Table(table);
    for part in key.split('.') {
        match value {
            toml::Value::Table(mut t) => match t.remove(part) {
                Some(v) => value = v,
                None => return Ok(None),
            },
            _ => return Ok(None),
        }
    }
    serde_json::to_string(&value)
        .map(Some)
        .map_err(|e| Error::input(&label, e.to_string()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn list<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn diff_config(file: &str, base: &Config, head: &Config, out: &mut Vec<Change>) {
    let Config {
        policy: base_policy,
        paths: base_paths,
        scanners: base_scanners,
    } = base;
    let Config {
        policy: head_policy,
        paths: head_paths,
        scanners: head_scanners,
    } = head;
    diff_policy(file, base_policy, head_policy, out);
    diff_paths(file, base_paths, head_paths, out);
    diff_scanners(file, base_scanners, head_scanners, out);
}

fn severity_sets(
    file: &str,
    subject: &str,
    base: &[Severity],
    head: &[Severity],
    out: &mut Vec<Change>,
) {
    let removed: Vec<&Severity> = base.iter().filter(|s| !head.contains(s)).collect();
    let added: Vec<&Severity> = head.iter().filter(|s| !base.contains(s)).collect();
    if !removed.is_empty() {
        out.push(Change::new(
            Kind::Weakening,
            file,
            format!("{subject} no longer fails on {}", list(removed)),
        ));
    }
    if !added.is_empty() {
        out.push(Change::new(
            Kind::Strengthening,
            file,
            format!("{subject} now also fails on {}", list(added)),
        ));
    }
}

fn flag(file: &str, out: &mut Vec<Change>, name: &str, base: bool, head: bool, strict: bool) {
    if base != head {
        let kind = if head == strict {
            Kind::Strengthening
        } else {
            Kind::Weakening
        };
        out.push(Change::new(
            kind,
            file,
            format!("policy.{name} changed from {base} to {head}"),
        ));
    }
}

fn diff_policy(file: &str, base: &Policy, head: &Policy, out: &mut Vec<Change>) {
    let Policy {
        fail_on: b_fail_on,
        mode: b_mode,
        sla_days: b_sla,
        fail_on_sla_breach: b_sla_breach,
        fail_on_expired_suppression: b_expired,
        fail_on_scanner_error: b_scanner_error,
        fail_on_skipped_results: b_skipped,
        fail_on_nothing_scanned: b_nothing,
        ignore_unfixed: b_unfixed,
        max_advisory_db_age_days: b_db_age,
        fail_on_stale_advisory_db: b_stale,
        categories: b_categories,
    } = base;
    let Policy {
        fail_on: h_fail_on,
        mode: h_mode,
        sla_days: h_sla,
        fail_on_sla_breach: h_sla_breach,
        fail_on_expired_suppression: h_expired,
        fail_on_scanner_error: h_scanner_error,
        fail_on_skipped_results: h_skipped,
        fail_on_nothing_scanned: h_nothing,
        ignore_unfixed: h_unfixed,
        max_advisory_db_age_days: h_db_age,
        fail_on_stale_advisory_db: h_stale,
        categories: h_categories,
    } = head;
    severity_sets(file, "policy.fail_on", b_fail_on, h_fail_on, out);
    for category in Category::ALL {
        if b_categories.contains_key(&category) || h_categories.contains_key(&category) {
            let base_set = b_categories
                .get(&category)
                .map(|c: &CategoryPolicy| c.fail_on.as_slice())
                .unwrap_or(b_fail_on);
            let head_set = h_categories
                .get(&category)
                .map(|c: &CategoryPolicy| c.fail_on.as_slice())
                .unwrap_or(h_fail_on);
            severity_sets(
                file,
                &format!("category {category}"),
                base_set,
                head_set,
                out,
            );
        }
    }
    if b_mode != h_mode {
        let (kind, what) = match h_mode {
            Mode::New => (Kind::Weakening, "policy.mode loosened from \"all\" to \"new\": findings in the baseline no longer fail"),
            Mode::All => (Kind::Strengthening, "policy.mode tightened from \"new\" to \"all\""),
        };
        out.push(Change::new(kind, file, what));
    }
    for severity in Severity::ALL {
        match (b_sla.get(&severity), h_sla.get(&severity)) {
            (Some(b), Some(h)) if h > b => out.push(Change::new(
                Kind::Weakening,
                file,
                format!("SLA for {severity} lengthened from {b} to {h} days"),
            )),
            (Some(b), Some(h)) if h < b => out.push(Change::new(
                Kind::Strengthening,
                file,
                format!("SLA for {severity} shortened from {b} to {h} days"),
            )),
            (Some(b), None) => out.push(Change::new(
                Kind::Weakening,
                file,
                format!("SLA for {severity} ({b} days) removed"),
            )),
            (None, Some(h)) => out.push(Change::new(
                Kind::Strengthening,
                file,
                format!("SLA for {severity} of {h} days added"),
            )),
            _ => {}
        }
    }
    flag(
        file,
        out,
        "fail_on_sla_breach",
        *b_sla_breach,
        *h_sla_breach,
        true,
    );
    flag(
        file,
        out,
        "fail_on_expired_suppression",
        *b_expired,
        *h_expired,
        true,
    );
    flag(
        file,
        out,
        "fail_on_scanner_error",
        *b_scanner_error,
        *h_scanner_error,
        true,
    );
    flag(
        file,
        out,
        "fail_on_nothing_scanned",
        *b_nothing,
        *h_nothing,
        true,
    );
    flag(
        file,
        out,
        "fail_on_skipped_results",
        *b_skipped,
        *h_skipped,
        true,
    );
    flag(file, out, "ignore_unfixed", *b_unfixed, *h_unfixed, false);
    flag(
        file,
        out,
        "fail_on_stale_advisory_db",
        *b_stale,
        *h_stale,
        true,
    );
    if h_db_age != b_db_age {
        let kind = if h_db_age > b_db_age {
            Kind::Weakening
        } else {
            Kind::Strengthening
        };
        out.push(Change::new(
            kind,
            file,
            format!("policy.max_advisory_db_age_days changed from {b_db_age} to {h_db_age}"),
        ));
    }
}

fn diff_paths(file: &str, base: &Paths, head: &Paths, out: &mut Vec<Change>) {
    let Paths {
        findings: b_findings,
        baseline: b_baseline,
        suppressions: b_suppressions,
        history: b_history,
        reports: b_reports,
    } = base;
    let Paths {
        findings: h_findings,
        baseline: h_baseline,
        suppressions: h_suppressions,
        history: h_history,
        reports: h_reports,
    } = head;
    let mut path = |name: &str, b: &PathBuf, h: &PathBuf, kind: Kind, why: &str| {
        if b != h {
            out.push(Change::new(
                kind,
                file,
                format!(
                    "paths.{name} moved from {} to {}{why}",
                    b.display(),
                    h.display()
                ),
            ));
        }
    };
    path(
        "findings",
        b_findings,
        h_findings,
        Kind::Weakening,
        ": the gate would read other findings",
    );
    path(
        "history",
        b_history,
        h_history,
        Kind::Weakening,
        ": a new history makes every finding young again, inside its SLA",
    );
    // The files' contents are compared wherever they are.
    path("baseline", b_baseline, h_baseline, Kind::Neutral, "");
    path(
        "suppressions",
        b_suppressions,
        h_suppressions,
        Kind::Neutral,
        "",
    );
    path("reports", b_reports, h_reports, Kind::Neutral, "");
}

fn diff_scanners(file: &str, base: &[Scanner], head: &[Scanner], out: &mut Vec<Change>) {
    for b in base {
        let Some(h) = head.iter().find(|h| h.name == b.name) else {
            out.push(Change::new(
                Kind::Weakening,
                file,
                format!("scanner {} removed", b.name),
            ));
            continue;
        };
        let Scanner {
            name,
            format: b_format,
            command: b_command,
            output: b_output,
            timeout_seconds: b_timeout,
            ok_exit_codes: b_codes,
            optional: b_optional,
            install: b_install,
            rules: b_rules,
        } = b;
        let Scanner {
            name: _,
            format: h_format,
            command: h_command,
            output: h_output,
            timeout_seconds: h_timeout,
            ok_exit_codes: h_codes,
            optional: h_optional,
            install: h_install,
            rules: h_rules,
        } = h;
        // What a scanner reports depends on how it is run: another command, format or output
        // file can report less, and this gate cannot tell how much.
        if b_command != h_command {
            out.push(Change::new(
                Kind::Weakening,
                file,
                format!(
                    "scanner {name}: command changed from {:?} to {:?}",
                    b_command.join(" "),
                    h_command.join(" ")
                ),
            ));
        }
        if b_format != h_format {
            out.push(Change::new(
                Kind::Weakening,
                file,
                format!("scanner {name}: format changed from {b_format} to {h_format}"),
            ));
        }
        if b_output != h_output {
            out.push(Change::new(
                Kind::Weakening,
                file,
                format!("scanner {name}: output changed from {b_output} to {h_output}"),
            ));
        }
        if b_optional != h_optional {
            out.push(if *h_optional {
                Change::new(
                    Kind::Weakening,
                    file,
                    format!("scanner {name} made optional: when it cannot run, it is skipped"),
                )
            } else {
                Change::new(
                    Kind::Strengthening,
                    file,
                    format!("scanner {name} made required"),
                )
            });
        }
        if h_timeout < b_timeout {
            out.push(Change::new(
                Kind::Weakening,
                file,
                format!(
                    "scanner {name}: timeout shortened from {b_timeout} s to {h_timeout} s: it can now time out, and be skipped"
                ),
            ));
        } else if h_timeout > b_timeout {
            out.push(Change::new(
                Kind::Neutral,
                file,
                format!("scanner {name}: timeout lengthened from {b_timeout} s to {h_timeout} s"),
            ));
        }
        let accepted: Vec<&i32> = h_codes.iter().filter(|c| !b_codes.contains(c)).collect();
        let refused: Vec<&i32> = b_codes.iter().filter(|c| !h_codes.contains(c)).collect();
        if !accepted.is_empty() {
            out.push(Change::new(
                Kind::Weakening,
                file,
                format!(
                    "scanner {name}: exit codes {} now count as a successful run",
                    list(accepted)
                ),
            ));
        }
        if !refused.is_empty() {
            out.push(Change::new(
                Kind::Strengthening,
                file,
                format!(
                    "scanner {name}: exit codes {} now count as a failed run",
                    list(refused)
                ),
            ));
        }
        if b_install != h_install {
            out.push(Change::new(
                Kind::Neutral,
                file,
                format!("scanner {name}: install hint changed"),
            ));
        }
        let unwatched: Vec<&String> = b_rules.iter().filter(|r| !h_rules.contains(r)).collect();
        let watched: Vec<&String> = h_rules.iter().filter(|r| !b_rules.contains(r)).collect();
        if !unwatched.is_empty() {
            out.push(Change::new(
                Kind::Weakening,
                file,
                format!(
                    "scanner {name}: rule files {} no longer watched",
                    list(unwatched)
                ),
            ));
        }
        if !watched.is_empty() {
            out.push(Change::new(
                Kind::Strengthening,
                file,
                format!("scanner {name}: rule files {} now watched", list(watched)),
            ));
        }
    }
    for h in head
        .iter()
        .filter(|h| !base.iter().any(|b| b.name == h.name))
    {
        out.push(Change::new(
            Kind::Strengthening,
            file,
            format!("scanner {} added", h.name),
        ));
    }
}

/// What identifies a suppression across revisions: what it matches.
fn key(s: &Suppression) -> (Option<String>, Option<String>, Option<String>) {
    (
        s.fingerprint.clone(),
        s.rule.as_ref().map(|r| r.to_ascii_lowercase()),
        s.path.clone(),
    )
}

/// How one of the change's suppressions relates to the base's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pairing {
    /// The base has one that matches the same findings.
    Same(usize),
    /// The base has one for the same rule on other paths: this one replaces it.
    Moved(usize),
    /// The change adds it.
    New,
}

/// Pairs each of the change's suppressions with a base suppression: first those that match the
/// same findings, then, among the rest, those for the same rule.
fn pair(base: &[Suppression], head: &[Suppression]) -> Vec<Pairing> {
    let mut taken = vec![false; base.len()];
    let mut pairs: Vec<Pairing> = head
        .iter()
        .map(
            |h| match (0..base.len()).find(|&i| !taken[i] && key(&base[i]) == key(h)) {
                Some(i) => {
                    taken[i] = true;
                    Pairing::Same(i)
                }
                None => Pairing::New,
            },
        )
        .collect();
    for (h, pairing) in head.iter().zip(pairs.iter_mut()) {
        let Some(rule) = h.rule.as_ref().filter(|_| *pairing == Pairing::New) else {
            continue;
        };
        if let Some(i) = (0..base.len()).find(|&i| {
            !taken[i]
                && base[i]
                    .rule
                    .as_ref()
                    .is_some_and(|r| r.eq_ignore_ascii_case(rule))
        }) {
            taken[i] = true;
            *pairing = Pairing::Moved(i);
        }
    }
    pairs
}

fn diff_suppressions(
    file: &str,
    base: &[Suppression],
    head: &[Suppression],
    out: &mut Vec<Change>,
) {
    let pairs = pair(base, head);
    let where_ = |s: &Suppression| {
        s.path
            .as_deref()
            .map(|p| format!("path {p}"))
            .unwrap_or_else(|| "every path".into())
    };
    for (h, paired) in head.iter().zip(&pairs) {
        let weakening = |what: String| {
            let mut change = Change::new(Kind::Weakening, file, what);
            change.approver = Some(h.approved_by.clone());
            change
        };
        let b = match *paired {
            Pairing::New => {
                out.push(weakening(format!(
                    "suppression #{} added: {} (expires {}, owner {})",
                    h.index,
                    h.describe(),
                    h.expires,
                    h.owner
                )));
                continue;
            }
            Pairing::Moved(i) => {
                let b = &base[i];
                out.push(weakening(format!(
                    "suppression #{} widened: rule {} from {} to {} (expires {}, owner {})",
                    h.index,
                    h.rule.as_deref().unwrap_or_default(),
                    where_(b),
                    where_(h),
                    h.expires,
                    h.owner
                )));
                b
            }
            Pairing::Same(i) => &base[i],
        };
        if h.expires > b.expires {
            out.push(weakening(format!(
                "suppression #{} ({}) extended from {} to {}",
                h.index,
                h.describe(),
                b.expires,
                h.expires
            )));
        } else if h.expires < b.expires {
            out.push(Change::new(
                Kind::Strengthening,
                file,
                format!(
                    "suppression #{} ({}) shortened from {} to {}",
                    h.index,
                    h.describe(),
                    b.expires,
                    h.expires
                ),
            ));
        }
        if h.approved_by.is_some() && b.approved_by.is_none() {
            // Records who accepted a risk the base already accepted; the base's CODEOWNERS
            // checks the name like any other.
            out.push(Change::new(
                Kind::Neutral,
                file,
                format!(
                    "suppression #{} ({}): approver {} recorded",
                    h.index,
                    h.describe(),
                    h.approved_by.as_deref().unwrap_or_default()
                ),
            ));
        } else if h.approved_by != b.approved_by {
            // Rewrites or erases who accepted it: only the one now named may sign that.
            out.push(weakening(format!(
                "suppression #{} ({}): approved_by changed from {} to {}",
                h.index,
                h.describe(),
                b.approved_by.as_deref().unwrap_or("nobody"),
                h.approved_by.as_deref().unwrap_or("nobody")
            )));
        }
        if h.owner != b.owner || h.justification != b.justification {
            out.push(Change::new(
                Kind::Neutral,
                file,
                format!(
                    "suppression #{} ({}): owner or justification reworded",
                    h.index,
                    h.describe()
                ),
            ));
        }
    }
    for (i, b) in base.iter().enumerate() {
        if !pairs.contains(&Pairing::Same(i)) && !pairs.contains(&Pairing::Moved(i)) {
            out.push(Change::new(
                Kind::Strengthening,
                file,
                format!("suppression {} removed", b.describe()),
            ));
        }
    }
}

fn diff_baseline(
    file: &str,
    base: Option<&Baseline>,
    head: Option<&Baseline>,
    out: &mut Vec<Change>,
) {
    let empty = BTreeMap::new();
    let b = base.map(|b| &b.findings).unwrap_or(&empty);
    let h = head.map(|h| &h.findings).unwrap_or(&empty);
    let grown: Vec<_> = h.iter().filter(|(fp, _)| !b.contains_key(*fp)).collect();
    let shrunk = b.keys().filter(|fp| !h.contains_key(*fp)).count();
    if !grown.is_empty() {
        let sample: Vec<String> = grown
            .iter()
            .take(5)
            .map(|(_, e)| {
                format!(
                    "{} {}{}",
                    e.severity,
                    e.rule,
                    e.path
                        .as_deref()
                        .map(|p| format!(" in {p}"))
                        .unwrap_or_default()
                )
            })
            .collect();
        out.push(Change::new(
            Kind::Weakening,
            file,
            format!(
                "baseline grown by {} finding(s), which no longer fail in new-only mode: {}{}",
                grown.len(),
                sample.join("; "),
                if grown.len() > 5 { "; …" } else { "" }
            ),
        ));
    }
    if shrunk > 0 {
        out.push(Change::new(
            Kind::Strengthening,
            file,
            format!("baseline shrunk by {shrunk} finding(s)"),
        ));
    }
}

/// The base's configuration with the change's strengthening and neutral changes, without its
/// weakening ones.
fn stricter_config(base: &Config, head: &Config) -> Config {
    let (b, h) = (&base.policy, &head.policy);
    let union = |x: &[Severity], y: &[Severity]| -> Vec<Severity> {
        Severity::ALL
            .into_iter()
            .filter(|s| x.contains(s) || y.contains(s))
            .collect()
    };
    let mut categories = BTreeMap::new();
    for category in Category::ALL {
        if b.categories.contains_key(&category) || h.categories.contains_key(&category) {
            let eff = |p: &Policy| {
                p.categories
                    .get(&category)
                    .map(|c| c.fail_on.clone())
                    .unwrap_or_else(|| p.fail_on.clone())
            };
            categories.insert(
                category,
                CategoryPolicy {
                    fail_on: union(&eff(b), &eff(h)),
                },
            );
        }
    }
    let mut sla_days = b.sla_days.clone();
    for (severity, days) in &h.sla_days {
        let entry = sla_days.entry(*severity).or_insert(*days);
        *entry = (*entry).min(*days);
    }
    let policy = Policy {
        fail_on: union(&b.fail_on, &h.fail_on),
        mode: if b.mode == Mode::All || h.mode == Mode::All {
            Mode::All
        } else {
            Mode::New
        },
        sla_days,
        fail_on_sla_breach: b.fail_on_sla_breach || h.fail_on_sla_breach,
        fail_on_expired_suppression: b.fail_on_expired_suppression || h.fail_on_expired_suppression,
        fail_on_scanner_error: b.fail_on_scanner_error || h.fail_on_scanner_error,
        fail_on_skipped_results: b.fail_on_skipped_results || h.fail_on_skipped_results,
        fail_on_nothing_scanned: b.fail_on_nothing_scanned || h.fail_on_nothing_scanned,
        ignore_unfixed: b.ignore_unfixed && h.ignore_unfixed,
        max_advisory_db_age_days: b.max_advisory_db_age_days.min(h.max_advisory_db_age_days),
        fail_on_stale_advisory_db: b.fail_on_stale_advisory_db || h.fail_on_stale_advisory_db,
        categories,
    };
    let mut scanners: Vec<Scanner> = base
        .scanners
        .iter()
        .map(|s| match head.scanners.iter().find(|h| h.name == s.name) {
            None => s.clone(),
            Some(h) => Scanner {
                optional: s.optional && h.optional,
                timeout_seconds: s.timeout_seconds.max(h.timeout_seconds),
                ok_exit_codes: s
                    .ok_exit_codes
                    .iter()
                    .copied()
                    .filter(|c| h.ok_exit_codes.contains(c))
                    .collect(),
                install: h.install.clone(),
                rules: s
                    .rules
                    .iter()
                    .chain(h.rules.iter().filter(|r| !s.rules.contains(r)))
                    .cloned()
                    .collect(),
                ..s.clone()
            },
        })
        .collect();
    scanners.extend(
        head.scanners
            .iter()
            .filter(|h| !base.scanners.iter().any(|b| b.name == h.name))
            .cloned(),
    );
    Config {
        policy,
        paths: Paths {
            reports: head.paths.reports.clone(),
            ..base.paths.clone()
        },
        scanners,
    }
}

/// The change's suppressions that the base already had, each expiring at the earlier date and
/// approved as on the base; one the change moved or widened keeps the base's paths, and the ones
/// it adds do not suppress until approved.
fn stricter_suppressions(base: &[Suppression], head: &[Suppression]) -> Vec<Suppression> {
    head.iter()
        .zip(pair(base, head))
        .filter_map(|(h, paired)| match paired {
            Pairing::New => None,
            Pairing::Moved(i) => {
                let mut kept = base[i].clone();
                kept.index = h.index;
                kept.expires = h.expires.min(base[i].expires);
                Some(kept)
            }
            Pairing::Same(i) => {
                let mut kept = h.clone();
                kept.expires = h.expires.min(base[i].expires);
                kept.approved_by = base[i].approved_by.clone();
                Some(kept)
            }
        })
        .collect()
}

/// The findings both baselines accept.
fn stricter_baseline(base: Option<&Baseline>, head: Option<&Baseline>) -> Option<Baseline> {
    let (base, head) = (base?, head?);
    Some(Baseline {
        findings: base
            .findings
            .iter()
            .filter(|(fp, _)| head.findings.contains_key(*fp))
            .map(|(fp, e)| (fp.clone(), e.clone()))
            .collect(),
        ..base.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config::parse(Path::new("devsecops.toml"), text).expect("valid configuration")
    }

    fn kinds(base: &str, head: &str) -> Vec<(Kind, String)> {
        let mut out = Vec::new();
        diff_config("devsecops.toml", &config(base), &config(head), &mut out);
        out.into_iter().map(|c| (c.kind, c.what)).collect()
    }

    #[test]
    fn category_overrides_compare_what_each_category_fails_on() {
        let changes = kinds(
            "[policy]\nfail_on = [\"critical\", \"high\"]\n",
            "[policy]\nfail_on = [\"critical\", \"high\"]\n[policy.categories.sast]\nfail_on = [\"critical\"]\n",
        );
        assert_eq!(
            changes,
            [(
                Kind::Weakening,
                "category sast no longer fails on high".to_string()
            )]
        );
        let merged = stricter_config(
            &config("[policy]\nfail_on = [\"critical\", \"high\"]\n"),
            &config("[policy]\nfail_on = [\"critical\"]\n[policy.categories.secret]\nfail_on = [\"low\"]\n"),
        );
        assert!(merged.fails(Category::Secret, Severity::High));
        assert!(merged.fails(Category::Secret, Severity::Low));
        assert!(merged.fails(Category::Sast, Severity::High));
    }

    #[test]
    fn settings_files_are_found_at_any_depth() {
        for yes in [
            ".cargo/config.toml",
            "a/b/.cargo/config",
            ".shellcheckrc",
            "x/.semgrepignore",
            "x/.gitleaksignore",
            "x/y/.trivyignore",
            "rust-toolchain",
            "sub/rust-toolchain.toml",
        ] {
            assert!(is_settings_file(yes), "{yes}");
        }
        for no in [
            "config.toml",
            ".cargo/audit.toml",
            "cargo/config.toml",
            "src/shellcheckrc",
        ] {
            assert!(!is_settings_file(no), "{no}");
        }
    }

    #[test]
    fn repo_paths_stay_inside_the_repository() {
        let dir = tempfile::tempdir().expect("tempdir");
        let init = std::process::Command::new("git")
            .args(["init", "-q"])
            .current_dir(dir.path())
            .status()
            .expect("git");
        assert!(init.success());
        let repo = Repo::discover(dir.path()).expect("a git work tree");
        assert_eq!(
            repo_path(&repo, "sub", "../.devsecops/./b.json").expect("inside"),
            ".devsecops/b.json"
        );
        assert!(repo_path(&repo, "", "../x").is_err());
    }
}
