//! Reports of an assessment: SARIF 2.1.0 (all results, and the open ones only), JUnit XML, JSON,
//! Markdown, Prometheus metrics and the HTML dashboard (with its stylesheet and script beside it).
//! Every file is written to a temporary name and renamed into place, so no reader ever sees half a
//! report. Every string a scanner or a pull request controls is escaped for the format it goes
//! into (XML attribute and text, Markdown, HTML, Prometheus label values; JSON by serde).

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
    // Without accepted results (suppressed or baselined), for consumers that ignore SARIF
    // suppressions and baseline states (Jenkins warnings-ng, SonarQube).
    ("sarif-open", "devsecops-open.sarif"),
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
        if format == "html" {
            // The dashboard's stylesheet and script are files beside it, so it works under a CSP
            // that forbids inline styles and scripts (Jenkins serves reports with one).
            jobs.push(("html-css", dir.join(html::STYLESHEET)));
            jobs.push(("html-js", dir.join(html::SCRIPT_FILE)));
        }
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
        "sarif" => sarif::write(assessment, out, sarif::Results::All),
        "sarif-open" => sarif::write(assessment, out, sarif::Results::Open),
        "html-css" => out.write_all(html::STYLE.as_bytes()),
        "html-js" => out.write_all(html::SCRIPT.as_bytes()),
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
        "sarif" => sarif::render(assessment, sarif::Results::All),
        "sarif-open" => sarif::render(assessment, sarif::Results::Open),
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

/// Escapes text for XML and HTML text and attribute values. Characters XML 1.0 forbids even
/// escaped (most C0 controls, U+FFFE, U+FFFF) become U+FFFD; line breaks and tabs inside
/// attribute values are written as character references so parsers keep them.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text for Markdown (CommonMark, GitHub's tables, strikethrough and math): every
/// character that can open inline markup, a link, an image, HTML, an entity, a table cell or math
/// is backslash-escaped (CommonMark allows escaping any ASCII punctuation); line breaks become
/// spaces and `#` is escaped, so it cannot start a block either.
pub(crate) fn markdown_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' | '\r' | '\t' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '!' | '&' | '|' | '~' | '#' | '$' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}
