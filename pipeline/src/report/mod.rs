//! Reports of an assessment: SARIF 2.1.0, JUnit XML, JSON, Markdown and Prometheus metrics. Every file
//! is written to a temporary name and renamed into place, so no reader ever sees half a report.

mod html;
mod junit;
mod markdown;
mod metrics;
mod sarif;

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::assess::Assessment;
use crate::error::{Error, Result};

pub const FORMATS: &[(&str, &str)] = &[
    ("sarif", "devsecops.sarif"),
    ("junit", "devsecops-junit.xml"),
    ("json", "devsecops.json"),
    ("markdown", "devsecops-summary.md"),
    ("metrics", "devsecops.prom"),
    ("html", "security-dashboard.html"),
];

/// Writes the requested formats into `dir`; returns the paths written.
pub fn write(assessment: &Assessment, dir: &Path, formats: &[String]) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Output {
        file: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut jobs = Vec::new();
    for format in formats {
        let Some((_, file)) = FORMATS.iter().find(|(f, _)| f == format) else {
            return Err(Error::Usage(format!(
                "unknown report format {format:?}; known: {}",
                FORMATS
                    .iter()
                    .map(|(f, _)| *f)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        jobs.push((format.as_str(), dir.join(file)));
    }
    // Formats render independently: use the cores.
    let results: Vec<Result<PathBuf>> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|(format, path)| {
                scope.spawn(move || {
                    write_atomic_with(&path, |out| render_to(assessment, format, out))?;
                    Ok(path)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Usage("a report renderer panicked".into())))
            })
            .collect()
    });
    results.into_iter().collect()
}

/// Streams a report into `out`: the large formats (SARIF, JSON) are serialized without an
/// intermediate string, so memory stays near the size of the findings themselves.
pub fn render_to(
    assessment: &Assessment,
    format: &str,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    match format {
        "sarif" => sarif::write(assessment, out),
        "json" => {
            serde_json::to_writer_pretty(&mut *out, assessment)?;
            out.write_all(b"\n")
        }
        other => {
            let text =
                render(assessment, other).map_err(|e| std::io::Error::other(e.to_string()))?;
            out.write_all(text.as_bytes())
        }
    }
}

pub fn render(assessment: &Assessment, format: &str) -> Result<String> {
    Ok(match format {
        "sarif" => sarif::render(assessment),
        "junit" => junit::render(assessment),
        "json" => {
            serde_json::to_string_pretty(assessment).map_err(|e| Error::Usage(e.to_string()))?
                + "\n"
        }
        "markdown" => markdown::render(assessment),
        "metrics" => metrics::render(assessment),
        "html" => html::render(assessment),
        other => return Err(Error::Usage(format!("unknown report format {other:?}"))),
    })
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |out| out.write_all(bytes))
}

/// Like [`write_atomic`], with the content produced by `fill` into a buffered writer.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let err = |e: std::io::Error| Error::Output {
        file: path.to_path_buf(),
        message: e.to_string(),
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("report"),
        std::process::id()
    ));
    let file = std::fs::File::create(&tmp).map_err(err)?;
    let mut buffered = std::io::BufWriter::with_capacity(1 << 20, file);
    fill(&mut buffered)
        .and_then(|_| buffered.flush())
        .and_then(|_| buffered.get_ref().sync_all())
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            err(e)
        })?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })
}

/// Escapes text for XML and HTML.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // XML 1.0 forbids most control characters even escaped.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}
