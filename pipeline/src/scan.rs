//! `devsecops scan`: runs the configured scanners in parallel, each with its own timeout, fully
//! offline, and ingests what each produced. A scanner that is missing, fails, times out or writes
//! output that cannot be read is recorded as a scanner error without losing the other scanners'
//! results; the policy (`fail_on_scanner_error`) decides whether that fails the gate. A required
//! scanner that is not installed stops the scan at once with how to install it.
//!
//! Progress: on a terminal (and without `CI` set) an indicatif line per scanner shows which are
//! running, for how long, and which are done; otherwise a plain line when each starts and ends.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use crate::config::Scanner;
use crate::error::{Error, Result};
use crate::ingest::Parsed;
use crate::model::AdvisoryDb;
use crate::store::ScannerError;

pub struct ScanOutcome {
    /// Fingerprinted per scanner, so ordinals never mix across scanners.
    pub findings: Vec<crate::model::Finding>,
    pub scanner_errors: Vec<ScannerError>,
    pub warnings: Vec<String>,
    pub databases: Vec<AdvisoryDb>,
    /// (scanner, seconds, findings) for each scanner that ran.
    pub timings: Vec<(String, f64, usize)>,
}

/// How scanners' progress is shown.
pub enum Progress {
    /// One line when a scanner starts and one when it ends (CI logs, pipes).
    Lines,
    /// A live line per scanner with its elapsed time (terminals).
    Bars {
        multi: indicatif::MultiProgress,
        bars: Mutex<HashMap<String, indicatif::ProgressBar>>,
    },
}

impl Progress {
    /// Live lines on a terminal, plain lines in CI (`CI` set) or when stderr is not a terminal.
    pub fn for_stderr() -> Progress {
        let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
        if std::io::stderr().is_terminal() && !ci {
            Progress::Bars {
                multi: indicatif::MultiProgress::with_draw_target(
                    indicatif::ProgressDrawTarget::stderr(),
                ),
                bars: Mutex::new(HashMap::new()),
            }
        } else {
            Progress::Lines
        }
    }

    fn started(&self, name: &str) {
        match self {
            Progress::Lines => eprintln!("  {name}: started"),
            Progress::Bars { multi, bars } => {
                let bar = multi.add(indicatif::ProgressBar::new_spinner());
                if let Ok(style) = indicatif::ProgressStyle::with_template(
                    "  {spinner} {prefix}: running {elapsed}",
                ) {
                    bar.set_style(style);
                }
                bar.set_prefix(name.to_string());
                bar.enable_steady_tick(Duration::from_millis(200));
                if let Ok(mut bars) = bars.lock() {
                    bars.insert(name.to_string(), bar);
                }
            }
        }
    }

    fn finished(&self, name: &str, line: &str) {
        match self {
            Progress::Lines => eprintln!("  {name}: {line}"),
            Progress::Bars { bars, .. } => {
                let bar = bars.lock().ok().and_then(|mut b| b.remove(name));
                if let Some(bar) = bar {
                    if let Ok(style) =
                        indicatif::ProgressStyle::with_template("  ✔ {prefix}: {msg}")
                    {
                        bar.set_style(style);
                    }
                    bar.finish_with_message(line.to_string());
                }
            }
        }
    }
}

/// Whether `program` can be run: a path that exists or a name found on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let candidate = Path::new(program);
    if candidate.components().count() > 1 {
        return candidate.is_file().then(|| candidate.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// Runs every scanner (at most `parallel` at once) from `root`, writing outputs into `work`.
pub fn run(
    scanners: &[Scanner],
    root: &Path,
    work: &Path,
    parallel: usize,
    progress: Progress,
) -> Result<ScanOutcome> {
    let mut missing_required = Vec::new();
    for s in scanners {
        if which(&s.command[0]).is_none() && !s.optional {
            missing_required.push(format!(
                "{} ({} not found{})",
                s.name,
                s.command[0],
                s.install
                    .as_ref()
                    .map(|i| format!("; install: {i}"))
                    .unwrap_or_default()
            ));
        }
    }
    if !missing_required.is_empty() {
        return Err(Error::Usage(format!(
            "missing scanners: {}",
            missing_required.join("; ")
        )));
    }
    std::fs::create_dir_all(work).map_err(|e| Error::Output {
        file: work.to_path_buf(),
        message: e.to_string(),
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Usage(e.to_string()))?;
    let permits = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    let progress = Arc::new(progress);
    let results = runtime.block_on(async {
        let mut tasks = Vec::new();
        for scanner in scanners {
            let scanner = scanner.clone();
            let (root, work, permits, progress) = (
                root.to_path_buf(),
                work.to_path_buf(),
                permits.clone(),
                progress.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                progress.started(&scanner.name);
                let result = run_one(&scanner, &root, &work).await;
                let line = match &result {
                    Ok((parsed, seconds)) => format!(
                        "{} finding(s) in {seconds:.1} s{}",
                        parsed.findings.len(),
                        match parsed.warnings.len() {
                            0 => String::new(),
                            n => format!(", {n} malformed result(s) skipped"),
                        }
                    ),
                    Err(why) if scanner.optional => format!("SKIPPED ({why})"),
                    Err(why) => format!("FAILED ({why})"),
                };
                progress.finished(&scanner.name, &line);
                result
            }));
        }
        let mut out = Vec::new();
        for task in tasks {
            out.push(task.await);
        }
        out
    });
    if let Progress::Bars { multi, .. } = progress.as_ref() {
        let _ = multi.clear();
    }
    let mut outcome = ScanOutcome {
        findings: Vec::new(),
        scanner_errors: Vec::new(),
        warnings: Vec::new(),
        databases: Vec::new(),
        timings: Vec::new(),
    };
    for (scanner, result) in scanners.iter().zip(results) {
        let error = |reason: String| ScannerError {
            scanner: scanner.name.clone(),
            reason,
            optional: scanner.optional,
        };
        match result {
            Ok(Ok((parsed, seconds))) => {
                outcome
                    .timings
                    .push((scanner.name.clone(), seconds, parsed.findings.len()));
                outcome.warnings.extend(
                    parsed
                        .warnings
                        .into_iter()
                        .map(|w| format!("{}: {w}", scanner.name)),
                );
                outcome.databases.extend(parsed.databases);
                outcome
                    .findings
                    .extend(crate::model::fingerprint_all(parsed.findings));
            }
            Ok(Err(reason)) => outcome.scanner_errors.push(error(reason)),
            Err(join) => outcome
                .scanner_errors
                .push(error(format!("crashed: {join}"))),
        }
    }
    Ok(outcome)
}

async fn run_one(
    scanner: &Scanner,
    root: &Path,
    work: &Path,
) -> std::result::Result<(Parsed, f64), String> {
    if which(&scanner.command[0]).is_none() {
        return Err(format!(
            "{} not found{}",
            scanner.command[0],
            scanner
                .install
                .as_ref()
                .map(|i| format!(" (install: {i})"))
                .unwrap_or_default()
        ));
    }
    if !matches!(scanner.output.as_str(), "stdout" | "stderr") {
        // A report left by an earlier run must never stand in for this one.
        let stale = root.join(&scanner.output);
        if stale.exists() {
            std::fs::remove_file(&stale)
                .map_err(|e| format!("cannot remove the previous {}: {e}", stale.display()))?;
        }
    }
    let started = Instant::now();
    let mut child = tokio::process::Command::new(&scanner.command[0])
        .args(&scanner.command[1..])
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", scanner.command[0]))?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let mut stderr = child.stderr.take().ok_or("no stderr")?;
    let collect = async {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let (a, b) = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
        a.and(b).map(|_| (out, err))
    };
    let timeout = Duration::from_secs(scanner.timeout_seconds);
    let waited = tokio::time::timeout(timeout, async {
        let streams = collect.await;
        let status = child.wait().await;
        (streams, status)
    })
    .await;
    let ((out, err), status) = match waited {
        Err(_) => {
            return Err(format!("timed out after {} s", scanner.timeout_seconds));
        }
        Ok((Err(e), _)) | Ok((_, Err(e))) => return Err(format!("failed: {e}")),
        Ok((Ok(streams), Ok(status))) => (streams, status),
    };
    let tail: String = String::from_utf8_lossy(&err)
        .lines()
        .rev()
        .take(3)
        .collect::<Vec<_>>()
        .join(" | ");
    let Some(code) = status.code() else {
        // Killed by a signal (a crash, the OOM killer): whatever it wrote is partial.
        use std::os::unix::process::ExitStatusExt;
        return Err(format!(
            "crashed (killed by signal {}): {tail}",
            status.signal().unwrap_or(0)
        ));
    };
    if !scanner.ok_exit_codes.contains(&code) {
        return Err(format!("exited with {code}: {tail}"));
    }
    let report = match scanner.output.as_str() {
        "stdout" => write_capture(work, &scanner.name, &out)?,
        "stderr" => write_capture(work, &scanner.name, &err)?,
        path => root.join(path),
    };
    let parsed = crate::ingest::parse(&scanner.format, &report)
        .map_err(|e| format!("output unreadable: {e}"))?;
    Ok((parsed, started.elapsed().as_secs_f64()))
}

fn write_capture(work: &Path, name: &str, bytes: &[u8]) -> std::result::Result<PathBuf, String> {
    let path = work.join(format!("{name}.out"));
    std::fs::write(&path, bytes).map_err(|e| format!("cannot keep its output: {e}"))?;
    Ok(path)
}
