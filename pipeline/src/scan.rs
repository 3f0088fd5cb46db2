//! `devsecops scan`: runs the configured scanners in parallel, each with its own timeout, fully
//! offline, and ingests what each produced. A scanner that is missing, fails or times out is recorded
//! as skipped (or, unless optional and missing, stops the scan with how to install it) without losing
//! the other scanners' results.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use crate::config::Scanner;
use crate::error::{Error, Result};
use crate::model::RawFinding;

pub struct ScanOutcome {
    /// Fingerprinted per scanner, so ordinals never mix across scanners.
    pub findings: Vec<crate::model::Finding>,
    pub skipped: Vec<(String, String)>,
    /// (scanner, seconds, findings) for each scanner that ran.
    pub timings: Vec<(String, f64, usize)>,
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
pub fn run(scanners: &[Scanner], root: &Path, work: &Path, parallel: usize) -> Result<ScanOutcome> {
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
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    let results = runtime.block_on(async {
        let mut tasks = Vec::new();
        for scanner in scanners {
            let scanner = scanner.clone();
            let (root, work, permits) = (root.to_path_buf(), work.to_path_buf(), permits.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                run_one(&scanner, &root, &work).await
            }));
        }
        let mut out = Vec::new();
        for task in tasks {
            out.push(task.await);
        }
        out
    });
    let mut outcome = ScanOutcome {
        findings: Vec::new(),
        skipped: Vec::new(),
        timings: Vec::new(),
    };
    for (scanner, result) in scanners.iter().zip(results) {
        match result {
            Ok(Ok((findings, seconds))) => {
                outcome
                    .timings
                    .push((scanner.name.clone(), seconds, findings.len()));
                outcome
                    .findings
                    .extend(crate::model::fingerprint_all(findings));
            }
            Ok(Err(reason)) => outcome.skipped.push((scanner.name.clone(), reason)),
            Err(join) => outcome
                .skipped
                .push((scanner.name.clone(), format!("crashed: {join}"))),
        }
    }
    Ok(outcome)
}

async fn run_one(
    scanner: &Scanner,
    root: &Path,
    work: &Path,
) -> std::result::Result<(Vec<RawFinding>, f64), String> {
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
    let code = status.code().unwrap_or(-1);
    if !scanner.ok_exit_codes.contains(&code) {
        let tail: String = String::from_utf8_lossy(&err)
            .lines()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .join(" | ");
        return Err(format!("exited with {code}: {tail}"));
    }
    let report = match scanner.output.as_str() {
        "stdout" => write_capture(work, &scanner.name, &out)?,
        "stderr" => write_capture(work, &scanner.name, &err)?,
        path => root.join(path),
    };
    let findings = crate::ingest::parse(&scanner.format, &report)
        .map_err(|e| format!("output unreadable: {e}"))?;
    Ok((findings, started.elapsed().as_secs_f64()))
}

fn write_capture(work: &Path, name: &str, bytes: &[u8]) -> std::result::Result<PathBuf, String> {
    let path = work.join(format!("{name}.out"));
    std::fs::write(&path, bytes).map_err(|e| format!("cannot keep its output: {e}"))?;
    Ok(path)
}
