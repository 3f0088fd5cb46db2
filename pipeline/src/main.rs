//! `devsecops`: scan, ingest, gate, report, baseline. Exit codes: 0 pass, 1 policy failure,
//! 2 usage or input error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use devsecops::assess::{assess, Assessment, RunContext};
use devsecops::baseline::Baseline;
use devsecops::config::Config;
use devsecops::error::{Error, Result};
use devsecops::history::History;
use devsecops::model::{deduplicate, fingerprint_all};
use devsecops::policy_diff::{self, Governed};
use devsecops::store::Store;
use devsecops::{ingest, report, scan, suppress};

/// Every report format; `report`, `gate` and `scan` write them all unless told otherwise.
const DEFAULT_FORMATS: &str = "sarif,sarif-open,junit,json,markdown,metrics,html";

#[derive(Parser)]
#[command(
    name = "devsecops",
    version,
    about = "Turns security scanners' outputs into one finding model, one decision and one report."
)]
struct Cli {
    /// Policy, paths and scanners; paths in it are relative to its directory.
    /// Default: devsecops.toml in the current directory, or the built-in defaults without one.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the configured scanners in parallel, then ingest, gate and report.
    Scan {
        /// Scanners run at once (default: the number of cores; 1 runs them one after another).
        #[arg(long)]
        parallel: Option<usize>,
        /// Decide with the policy, scanners, suppressions and baseline of this git revision (the
        /// target of a pull request), and report every change the work tree makes to them.
        #[arg(long, value_name = "REF")]
        base: Option<String>,
        /// Report formats to write.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = DEFAULT_FORMATS
        )]
        format: Vec<String>,
    },
    /// Add a tool's report to the findings (for CI systems that run the tools themselves).
    Ingest {
        /// The report's format: sarif, clippy, cargo-audit, cargo-deny, trivy, gitleaks, checkov,
        /// hadolint, cyclonedx, shellcheck, semgrep, osv-scanner, grype, kics, devsecops-audit; VEX
        /// statements: openvex, cyclonedx-vex.
        #[arg(long)]
        tool: String,
        /// Start from an empty findings file instead of adding to it.
        #[arg(long)]
        replace: bool,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Decide: exit 1 when the policy fails. Records the run in the history and writes the reports.
    Gate {
        /// Decide with the policy, suppressions and baseline of this git revision (the target of
        /// a pull request), and report every change the work tree makes to them.
        #[arg(long, value_name = "REF")]
        base: Option<String>,
        #[arg(
            long,
            value_delimiter = ',',
            default_value = DEFAULT_FORMATS
        )]
        format: Vec<String>,
    },
    /// Write reports without recording a run.
    Report {
        #[arg(
            long,
            value_delimiter = ',',
            default_value = DEFAULT_FORMATS
        )]
        format: Vec<String>,
        /// Directory for the reports (default: paths.reports of the config).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Judge with the policy of this git revision, as `gate --base` does.
        #[arg(long, value_name = "REF")]
        base: Option<String>,
    },
    /// Show how the work tree's policy differs from a git revision's, and whether the weakening
    /// changes are approved (exit 1 when one is not).
    Policy {
        /// The revision to compare with (the target of a pull request).
        #[arg(long, value_name = "REF")]
        base: String,
        /// Print only the text an approval signs, for `ssh-keygen -Y sign -n devsecops-policy`.
        #[arg(long)]
        message: bool,
    },
    /// Accept the current findings as the baseline.
    Baseline,
    /// Write VEX statements from the suppressions of dependency findings (each suppression needs a
    /// vex_justification): not_affected while a suppression holds, under_investigation once it
    /// has expired.
    Vex {
        /// openvex (OpenVEX 0.2.0) or cyclonedx (CycloneDX 1.6).
        #[arg(long, default_value = "openvex")]
        format: String,
        /// Output file (default: stdout).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// The document's author (default: the suppressions' owners).
        #[arg(long)]
        author: Option<String>,
    },
    /// Audit the Rust binaries a Nix closure or an image ships, offline: the crates cargo-auditable
    /// embedded in each, against the RustSec advisory database. Adds the findings to the findings
    /// file, or writes the audit report with --output. Exit 2 when a file could not be audited.
    Audit {
        /// A store path or a link to one (./result, /run/current-system), the JSON of
        /// `nix path-info --json --recursive`, or a binary cache directory (nix copy --to file://).
        #[arg(long)]
        nix: Option<String>,
        /// Binaries or directories outside a closure (a binary copied out of an image).
        paths: Vec<PathBuf>,
        /// The RustSec advisory database directory (default: DEVSECOPS_ADVISORY_DB, else
        /// ~/.cargo/advisory-db).
        #[arg(long)]
        db: Option<PathBuf>,
        /// Write the report (JSON, read by `ingest --tool devsecops-audit`) here, `-` for stdout,
        /// instead of adding its findings.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Write a CycloneDX 1.5 JSON SBOM: of the Cargo workspace (default), of a Nix closure with
    /// the crates embedded in its Rust binaries, or of a derivation's fixed-output sources.
    Sbom {
        /// A store path or a link to one (needs nix), the JSON of `nix path-info --json
        /// --recursive`, or a binary cache directory.
        #[arg(long)]
        nix: Option<String>,
        /// With --nix: the store paths alone, without reading their binaries (for path info
        /// written on another machine).
        #[arg(long, requires = "nix")]
        paths_only: bool,
        /// A derivation (.drv): the fixed-output derivations of its graph, what its build fetches,
        /// with their URLs and hashes.
        #[arg(long, conflicts_with_all = ["nix", "package"])]
        nix_drv: Option<PathBuf>,
        /// Output file (default: stdout).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Only this workspace member and its dependencies (what its binary or image contains).
        #[arg(long, conflicts_with = "nix")]
        package: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("devsecops: error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

fn load_config(path: &Path) -> Result<(Config, PathBuf)> {
    let mut config = Config::load(path)?;
    let root = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    config.resolve(&root);
    Ok((config, root))
}

fn run(cli: Cli) -> Result<u8> {
    let config_path = match cli.config {
        Some(path) if !path.exists() => {
            return Err(Error::Usage(format!(
                "{}: no such configuration file",
                path.display()
            )))
        }
        Some(path) => path,
        None => PathBuf::from("devsecops.toml"),
    };
    let (config, root) = load_config(&config_path)?;
    let now = time::OffsetDateTime::now_utc();
    let govern = |base: Option<&str>| -> Result<Option<Governed>> {
        base.map(|b| policy_diff::govern(&config_path, &root, b, now))
            .transpose()
    };
    match cli.command {
        Command::Ingest {
            tool,
            replace,
            files,
        } if devsecops::vex::TOOLS.contains(&tool.as_str()) => {
            devsecops::vex::ingest(&config, &tool, &files, replace)
        }
        Command::Ingest {
            tool,
            replace,
            files,
        } => {
            // Fingerprints are computed per report: identical findings within one report get
            // ordinals, while the same finding in two reports (or one report ingested twice) merges.
            let mut added = 0;
            let mut fresh = Vec::new();
            let mut warnings = Vec::new();
            let mut databases = Vec::new();
            for file in &files {
                let parsed = ingest::parse(&tool, file)?;
                added += parsed.findings.len();
                for w in parsed.warnings {
                    eprintln!("devsecops: warning: {}: {w}", file.display());
                    warnings.push(format!("{}: {w}", file.display()));
                }
                databases.extend(parsed.databases);
                fresh.extend(fingerprint_all(parsed.findings));
            }
            let mut store = if replace {
                Store::default()
            } else {
                Store::load(&config.paths.findings)?
            };
            let mut findings = std::mem::take(&mut store.findings);
            findings.extend(fresh);
            store.findings = deduplicate(findings);
            store.warnings.extend(warnings.iter().cloned());
            for file in &files {
                let read = format!("{tool}: {}", file.display());
                if !store.ingested.contains(&read) {
                    store.ingested.push(read);
                }
            }
            store.add_databases(databases);
            store.save(&config.paths.findings)?;
            println!(
                "ingested {added} finding(s) from {} file(s) as {tool}; {} unique in {}{}",
                files.len(),
                store.findings.len(),
                config.paths.findings.display(),
                match warnings.len() {
                    0 => String::new(),
                    n => format!("; {n} malformed result(s) skipped"),
                }
            );
            Ok(0)
        }
        Command::Audit {
            nix,
            paths,
            db,
            output,
        } => devsecops::audit::command(&config, nix.as_deref(), &paths, db, output.as_deref()),
        Command::Vex {
            format,
            output,
            author,
        } => devsecops::vex::command(&config, &format, output.as_deref(), author.as_deref()),
        Command::Baseline => {
            let store = Store::load(&config.paths.findings)?;
            let baseline = Baseline::from_findings(&store.findings);
            let bytes =
                serde_json::to_vec_pretty(&baseline).map_err(|e| Error::Usage(e.to_string()))?;
            report::write_atomic(&config.paths.baseline, &bytes)?;
            println!(
                "baseline of {} finding(s) written to {}",
                baseline.findings.len(),
                config.paths.baseline.display()
            );
            Ok(0)
        }
        Command::Sbom {
            nix,
            paths_only,
            nix_drv,
            output,
            package,
        } => {
            let sbom = match (nix, nix_drv) {
                (Some(source), _) => devsecops::sbom::nix_source(&source, !paths_only)?,
                (None, Some(drv)) => devsecops::sbom::nix_drv(&drv)?,
                (None, None) => devsecops::sbom::cargo(&root, package.as_deref())?,
            };
            let text = serde_json::to_string_pretty(&sbom)
                .map_err(|e| Error::Usage(e.to_string()))?
                + "\n";
            match output {
                Some(path) => {
                    report::write_atomic(&path, text.as_bytes())?;
                    eprintln!("wrote {}", path.display());
                }
                None => print!("{text}"),
            }
            Ok(0)
        }
        Command::Policy { base, message } => {
            let governed = policy_diff::govern(&config_path, &root, &base, now)?;
            if message {
                print!("{}", governed.message);
                return Ok(0);
            }
            print!("{}", policy_summary(&governed));
            let report = &governed.report;
            Ok(u8::from(
                report.unapproved() > 0 || !report.problems.is_empty(),
            ))
        }
        Command::Report { format, out, base } => {
            let governed = govern(base.as_deref())?;
            let assessment = evaluate(&config, &root, false, governed.as_ref())?;
            let dir = out.unwrap_or_else(|| config.paths.reports.clone());
            for path in report::write(&assessment, &dir, &format)? {
                println!("wrote {}", path.display());
            }
            Ok(0)
        }
        Command::Gate { format, base } => {
            let governed = govern(base.as_deref())?;
            let assessment = evaluate(&config, &root, true, governed.as_ref())?;
            finish(&config, &assessment, &format)
        }
        Command::Scan {
            parallel,
            format,
            base,
        } => {
            // With --base the scanners are the ones the base's policy runs (plus those the
            // change adds), never fewer.
            let governed = govern(base.as_deref())?;
            let config = governed.as_ref().map(|g| &g.config).unwrap_or(&config);
            if config.scanners.is_empty() {
                return Err(Error::Usage(format!(
                    "{}: no [[scanner]] configured",
                    config_path.display()
                )));
            }
            let work = config
                .paths
                .findings
                .parent()
                .map(|p| p.join("raw"))
                .unwrap_or_else(|| PathBuf::from("raw"));
            let parallel = parallel.unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            });
            let started = std::time::Instant::now();
            eprintln!(
                "scanning with {} scanner(s), {parallel} at once",
                config.scanners.len()
            );
            let outcome = scan::run(
                &config.scanners,
                &root,
                &work,
                parallel,
                scan::Progress::for_stderr(),
            )?;
            eprintln!(
                "scanned in {:.1} s with {parallel} at once",
                started.elapsed().as_secs_f64()
            );
            let mut store = Store {
                findings: deduplicate(outcome.findings),
                scanner_errors: outcome.scanner_errors,
                warnings: outcome.warnings,
                ..Store::default()
            };
            store.add_databases(outcome.databases);
            store.scanned = config.scanners.iter().map(|s| s.name.clone()).collect();
            store.save(&config.paths.findings)?;
            let assessment = evaluate(config, &root, true, governed.as_ref())?;
            finish(config, &assessment, &format)
        }
    }
}

/// Assesses the stored findings; `record` adds the run to the history. With a policy governed
/// by a base revision, its policy, baseline and suppressions decide, and its diff is reported.
fn evaluate(
    config: &Config,
    root: &Path,
    record: bool,
    governed: Option<&Governed>,
) -> Result<Assessment> {
    let config = governed.map(|g| &g.config).unwrap_or(config);
    // Judged by a base's policy, the findings are where that policy keeps them: a change that
    // moved them (or a scan that wrote none) leaves nothing there, which fails whatever the
    // policy says of an empty scan.
    let missing_findings = governed.is_some() && !config.paths.findings.exists();
    let mut store = Store::load(&config.paths.findings)?;
    let (baseline, suppressions) = match governed {
        Some(g) => {
            g.judge_scanners(&mut store.scanner_errors, &store.scanned);
            (g.baseline.clone(), g.suppressions.clone())
        }
        None => (
            Baseline::load(&config.paths.baseline)?,
            suppress::load(&config.paths.suppressions)?,
        ),
    };
    let now = time::OffsetDateTime::now_utc();
    let history = History::open(&config.paths.history)?;
    let first_seen = if record {
        let current: std::collections::HashSet<&str> = store
            .findings
            .iter()
            .map(|f| f.fingerprint.as_str())
            .collect();
        let new = baseline
            .as_ref()
            .map(|b| {
                store
                    .findings
                    .iter()
                    .filter(|f| !b.findings.contains_key(&f.fingerprint))
                    .count()
            })
            .unwrap_or(store.findings.len());
        let fixed = baseline
            .as_ref()
            .map(|b| {
                b.findings
                    .keys()
                    .filter(|fp| !current.contains(fp.as_str()))
                    .count()
            })
            .unwrap_or(0);
        history.record(now, &store.findings, new, fixed)?
    } else {
        history.lookup(&store.findings)?
    };
    let nothing_scanned = store.nothing_scanned();
    let mut findings = store.findings;
    devsecops::locate::in_lock_files(root, &mut findings);
    let mut assessment = assess(
        config,
        findings,
        baseline.as_ref(),
        &suppressions,
        &first_seen,
        now,
        RunContext {
            scanner_errors: store.scanner_errors,
            warnings: store.warnings,
            databases: store.databases,
            vex: store.vex,
            nothing_scanned,
        },
    );
    assessment.trend = history.trend(60)?;
    if let Some(g) = governed {
        if missing_findings {
            assessment.reasons.insert(
                0,
                format!(
                    "{}: no findings file where the policy of {} keeps them: run `devsecops scan` (or ingest) first",
                    config.paths.findings.display(),
                    g.report.base
                ),
            );
        }
        g.apply(&mut assessment);
    }
    Ok(assessment)
}

/// `devsecops policy`: the diff, the approvals, and how to approve.
fn policy_summary(g: &Governed) -> String {
    use std::fmt::Write;
    let r = &g.report;
    let mut out = format!(
        "policy against {} ({}): {} change(s), {} weakening ({} not approved), {} strengthening\n",
        r.base,
        r.base_commit,
        r.changes.len(),
        r.count(policy_diff::Kind::Weakening),
        r.unapproved(),
        r.count(policy_diff::Kind::Strengthening)
    );
    for change in &r.changes {
        let _ = writeln!(out, "  {}", policy_diff::PolicyReport::line(change));
    }
    for problem in &r.problems {
        let _ = writeln!(out, "  problem: {problem}");
    }
    for approval in &r.approvals {
        let _ = writeln!(
            out,
            "  approved in {} by {} (key {})",
            approval.file, approval.principals, approval.key
        );
    }
    for note in &r.notes {
        let _ = writeln!(out, "  note: {note}");
    }
    let _ = writeln!(out, "change id: {}", r.change_id);
    if r.unapproved() > 0 {
        let _ = writeln!(
            out,
            "to approve, a code owner of the weakened files signs this change with a key listed in {}'s {}:\n  \
             devsecops policy --base {} --message | ssh-keygen -Y sign -n {} -f ~/.ssh/id_ed25519 > {}/NAME.sig",
            r.base,
            policy_diff::ALLOWED_SIGNERS,
            r.base,
            devsecops::approval::NAMESPACE,
            policy_diff::APPROVALS
        );
    }
    out
}

fn finish(config: &Config, assessment: &Assessment, formats: &[String]) -> Result<u8> {
    let written = report::write(assessment, &config.paths.reports, formats)?;
    print!("{}", report::render(assessment, "markdown")?);
    for path in written {
        eprintln!("wrote {}", path.display());
    }
    Ok(u8::from(assessment.failed))
}
