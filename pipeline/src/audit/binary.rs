//! Reading what cargo-auditable embedded: every executable file (ELF, Mach-O) under the given
//! paths is read, and its `.dep-v0` section decoded with `auditable-info`. A Rust binary without
//! the section is "not auditable"; a section that cannot be decoded is an error naming the file.
//! Other executables (C, C++, Go) are counted and left alone.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use auditable_serde::VersionInfo;

use crate::model::Artifact;

/// Largest executable read; a larger one is an error (it could hide a binary).
pub const MAX_BINARY_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// Largest decompressed dependency list accepted (auditable-info's default is 8 MiB).
const MAX_JSON_BYTES: usize = 64 * 1024 * 1024;

/// Where to look: a file or directory, and the store path it belongs to (if any).
#[derive(Debug, Clone)]
pub struct Target {
    /// Where the files are on this machine.
    pub files: PathBuf,
    /// The path reported for them (the store path, when `files` is an unpacked copy).
    pub shown_as: PathBuf,
    pub store_path: Option<String>,
    pub nar_hash: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Elf,
    MachO,
}

impl Format {
    /// The operating systems a binary of this format runs on, as RustSec names them in an
    /// advisory's `affected.os`.
    pub fn operating_systems(self) -> &'static [&'static str] {
        match self {
            Format::Elf => &[
                "linux",
                "android",
                "freebsd",
                "netbsd",
                "openbsd",
                "dragonfly",
                "solaris",
                "illumos",
            ],
            Format::MachO => &["macos", "ios"],
        }
    }
}

/// A binary with its embedded dependency list.
#[derive(Debug, Clone)]
pub struct Audited {
    pub artifact: Artifact,
    pub format: Format,
    pub info: VersionInfo,
}

/// What reading the targets found.
#[derive(Debug, Default)]
pub struct Scan {
    pub files: usize,
    pub executables: usize,
    pub audited: Vec<Audited>,
    /// Rust binaries without an embedded dependency list.
    pub not_auditable: Vec<Artifact>,
    /// Files that could not be read or whose section is corrupt, with why.
    pub errors: Vec<(PathBuf, String)>,
}

/// The format of an executable from its magic number, if it is one cargo auditable writes a
/// section into (ELF, and thin 32/64-bit Mach-O in either byte order).
pub fn format_of(head: &[u8]) -> Option<Format> {
    match head {
        [0x7f, b'E', b'L', b'F', ..] => Some(Format::Elf),
        [0xfe, 0xed, 0xfa, 0xce | 0xcf, ..] | [0xce | 0xcf, 0xfa, 0xed, 0xfe, ..] => {
            Some(Format::MachO)
        }
        _ => None,
    }
}

/// Whether an executable was written by rustc: its `.comment` section names rustc (rustc 1.73 and
/// later), or the standard library's panic machinery left its marks (the `RUST_BACKTRACE`
/// variable it reads, source paths under `/rustc/<commit>/library/`).
pub fn is_rust(bytes: &[u8]) -> bool {
    if memchr::memmem::find(bytes, b"rustc version ").is_some()
        || memchr::memmem::find(bytes, b"RUST_BACKTRACE").is_some()
    {
        return true;
    }
    memchr::memmem::find_iter(bytes, b"/rustc/").any(|at| {
        bytes
            .get(at + 7..at + 47)
            .is_some_and(|hash| hash.iter().all(u8::is_ascii_hexdigit))
            && bytes.get(at + 47) == Some(&b'/')
    })
}

/// What a file is, for the audit.
#[derive(Debug)]
pub enum Outcome {
    NotExecutable,
    /// An executable that is not Rust (or not recognisably so).
    Other,
    Audited(Format, Box<VersionInfo>),
    NotAuditable,
    Error(String),
}

fn examine(file: &Path) -> Outcome {
    use std::io::Read;
    let mut handle = match std::fs::File::open(file) {
        Ok(h) => h,
        Err(e) => return Outcome::Error(format!("cannot read: {e}")),
    };
    let mut head = [0u8; 4];
    match handle.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Outcome::NotExecutable,
        Err(e) => return Outcome::Error(format!("cannot read: {e}")),
    }
    let Some(format) = format_of(&head) else {
        return Outcome::NotExecutable;
    };
    let size = handle.metadata().map(|m| m.len()).unwrap_or(0);
    if size > MAX_BINARY_BYTES {
        return Outcome::Error(format!(
            "{size} bytes is over the {MAX_BINARY_BYTES}-byte limit for a binary"
        ));
    }
    let mut bytes = head.to_vec();
    if let Err(e) = handle.read_to_end(&mut bytes) {
        return Outcome::Error(format!("cannot read: {e}"));
    }
    classify(format, &bytes)
}

/// What the bytes of an executable of `format` hold: an embedded dependency list, none (Rust or
/// not), or a section that cannot be read. The fuzz target feeds it arbitrary bytes.
pub fn classify(format: Format, bytes: &[u8]) -> Outcome {
    use auditable_info::Error as E;
    match auditable_info::audit_info_from_slice(bytes, MAX_JSON_BYTES) {
        Ok(info) => Outcome::Audited(format, Box::new(info)),
        Err(E::NoAuditData) => rust_or_other(bytes),
        // The container itself could not be parsed: an error only when it names the section
        // (a truncated or tampered Rust binary), else an executable we cannot tell anything about.
        Err(E::BinaryParsing(e)) => {
            if memchr::memmem::find(bytes, b".dep-v0").is_some() {
                Outcome::Error(format!("corrupt embedded dependency list (.dep-v0): {e}"))
            } else {
                rust_or_other(bytes)
            }
        }
        Err(e) => Outcome::Error(format!("corrupt embedded dependency list (.dep-v0): {e}")),
    }
}

fn rust_or_other(bytes: &[u8]) -> Outcome {
    if is_rust(bytes) {
        Outcome::NotAuditable
    } else {
        Outcome::Other
    }
}

/// Every regular file under `root` (itself when it is a file); symbolic links are not followed
/// (in a closure they point into other store paths, which are read on their own).
fn files_under(root: &Path, out: &mut Vec<PathBuf>, errors: &mut Vec<(PathBuf, String)>) {
    let meta = match std::fs::symlink_metadata(root) {
        Ok(m) => m,
        Err(e) => {
            errors.push((root.to_path_buf(), format!("cannot read: {e}")));
            return;
        }
    };
    if meta.is_file() {
        out.push(root.to_path_buf());
    } else if meta.is_dir() {
        let entries = match std::fs::read_dir(root) {
            Ok(e) => e,
            Err(e) => {
                errors.push((root.to_path_buf(), format!("cannot list: {e}")));
                return;
            }
        };
        let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        children.sort();
        for child in children {
            files_under(&child, out, errors);
        }
    }
}

/// Reads every executable under the targets, on all cores.
pub fn scan(targets: &[Target]) -> Scan {
    let mut result = Scan::default();
    // (file on disk, index of its target)
    let mut work: Vec<(PathBuf, usize)> = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        let mut files = Vec::new();
        files_under(&target.files, &mut files, &mut result.errors);
        work.extend(files.into_iter().map(|f| (f, i)));
    }
    result.files = work.len();
    let next = AtomicUsize::new(0);
    let found = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(work.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let at = next.fetch_add(1, Ordering::Relaxed);
                let Some((file, target)) = work.get(at) else {
                    break;
                };
                let outcome = examine(file);
                if !matches!(outcome, Outcome::NotExecutable) {
                    if let Ok(mut found) = found.lock() {
                        found.push((at, *target, outcome));
                    }
                }
            });
        }
    });
    let mut found = found.into_inner().unwrap_or_default();
    found.sort_by_key(|(at, _, _)| *at);
    for (at, target, outcome) in found {
        let file = &work[at].0;
        let target = &targets[target];
        // The path as reported: under the store path, even when read from an unpacked copy.
        let shown = file
            .strip_prefix(&target.files)
            .map(|rest| {
                if rest.as_os_str().is_empty() {
                    target.shown_as.clone()
                } else {
                    target.shown_as.join(rest)
                }
            })
            .unwrap_or_else(|_| file.clone());
        let artifact = Artifact {
            path: shown.display().to_string(),
            store_path: target.store_path.clone(),
            nar_hash: target.nar_hash.clone(),
        };
        result.executables += 1;
        match outcome {
            Outcome::NotExecutable => {}
            Outcome::Other => {}
            Outcome::Audited(format, info) => result.audited.push(Audited {
                artifact,
                format,
                info: *info,
            }),
            Outcome::NotAuditable => result.not_auditable.push(artifact),
            Outcome::Error(message) => result.errors.push((shown, message)),
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_in_a_closure_are_never_followed_out_of_it_or_round_a_loop() {
        // A store path's links point into other store paths, which a complete closure (checked
        // when it is read) lists and audits on their own; anything else is not what it ships.
        let store = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("elsewhere"), b"\x7fELF\x02outside").expect("write");
        let root = store.path().join("pkg");
        std::fs::create_dir_all(root.join("bin")).expect("mkdir");
        std::fs::write(root.join("bin/tool"), b"\x7fELF\x02inside").expect("write");
        let link = |target: &Path, name: &str| {
            std::os::unix::fs::symlink(target, root.join(name)).expect("symlink")
        };
        link(&root, "loop");
        link(Path::new("bin/../loop"), "relative-loop");
        link(outside.path(), "escape-dir");
        link(&outside.path().join("elsewhere"), "escape-file");
        link(Path::new("/etc"), "etc");
        let (mut files, mut errors) = (Vec::new(), Vec::new());
        files_under(&root, &mut files, &mut errors);
        assert_eq!(files, [root.join("bin/tool")]);
        assert!(errors.is_empty(), "{errors:?}");
        // A store path that is itself a link (to another store path) is not followed either;
        // a path named outside a closure is resolved once before the walk (audit::run_with).
        let (mut files, mut errors) = (Vec::new(), Vec::new());
        files_under(&root.join("escape-dir"), &mut files, &mut errors);
        assert!(files.is_empty() && errors.is_empty());
    }

    #[test]
    fn executables_are_told_by_their_magic_numbers() {
        assert_eq!(format_of(b"\x7fELF\x02"), Some(Format::Elf));
        assert_eq!(format_of(b"\xcf\xfa\xed\xfe"), Some(Format::MachO));
        assert_eq!(format_of(b"\xfe\xed\xfa\xce"), Some(Format::MachO));
        // Java class files and fat Mach-O share 0xcafebabe: neither is read.
        assert_eq!(format_of(b"\xca\xfe\xba\xbe"), None);
        assert_eq!(format_of(b"#!/bin/sh"), None);
    }

    #[test]
    fn rust_is_recognised_by_rustc_and_std_markers_only() {
        assert!(is_rust(b"..rustc version 1.95.0 (59807616e 2026-04-14).."));
        assert!(is_rust(b"..RUST_BACKTRACE.."));
        assert!(is_rust(
            b"../rustc/59807616e1b0e4e1ba0ef5d6cf3a4a5ae4e8f4c3/library/core/src/option.rs.."
        ));
        assert!(!is_rust(b"GCC: (GNU) 14.2.0 /rustc/not-a-commit/ RUST_"));
        assert!(!is_rust(b"/rustc/59807616e1b0e4e1ba0ef5d6cf3a4a5ae4e8f4c"));
    }

    #[test]
    fn garbage_behind_an_elf_magic_is_an_error_only_when_it_names_the_section() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"\x7fELF\x02\x01\x01 not really an ELF").expect("write");
        assert!(matches!(examine(&plain), Outcome::Other));
        let rusty = dir.path().join("rusty");
        std::fs::write(&rusty, b"\x7fELF\x02\x01\x01 RUST_BACKTRACE").expect("write");
        assert!(matches!(examine(&rusty), Outcome::NotAuditable));
        let tampered = dir.path().join("tampered");
        std::fs::write(&tampered, b"\x7fELF\x02\x01\x01 .dep-v0 truncated").expect("write");
        match examine(&tampered) {
            Outcome::Error(m) => assert!(m.contains(".dep-v0"), "{m}"),
            _ => panic!("a named but unreadable section is an error"),
        }
        let script = dir.path().join("script");
        std::fs::write(&script, b"#!/bin/sh\nexit 0\n").expect("write");
        assert!(matches!(examine(&script), Outcome::NotExecutable));
    }
}
