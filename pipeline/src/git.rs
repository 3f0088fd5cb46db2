//! Reading another revision of the repository without checking it out: `git rev-parse` to resolve
//! it, `git ls-tree` and `git cat-file` to read its files. git is always present where CI runs, and
//! running it keeps its object formats, packs, alternates and partial clones its own business.
//!
//! A revision that is not in the clone is an error naming the fetch that brings it (a shallow
//! clone never has the base of a pull request unless it was fetched), never "no policy".

use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// A git work tree.
#[derive(Debug, Clone)]
pub struct Repo {
    root: PathBuf,
}

/// A file of a revision, as `git ls-tree` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    /// Path from the top of the repository, with `/` separators.
    pub path: String,
    /// Object id of its content.
    pub blob: String,
}

impl Repo {
    /// The work tree `dir` is in.
    pub fn discover(dir: &Path) -> Result<Repo> {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let out = run(dir, &["rev-parse", "--show-toplevel"]).map_err(|e| {
            Error::Usage(format!(
                "--base needs a git work tree, and {} is not in one: {e}",
                dir.display()
            ))
        })?;
        let top = String::from_utf8(out)
            .map_err(|_| Error::Usage("git printed a work tree path that is not UTF-8".into()))?;
        Ok(Repo {
            root: PathBuf::from(top.trim_end_matches(['\n', '\r'])),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The commit `rev` names. A revision missing from the clone is an error that says what to
    /// fetch, and says so first when the clone is shallow.
    pub fn resolve(&self, rev: &str) -> Result<String> {
        if rev.is_empty() || rev.starts_with('-') || rev.contains(['\0', '\n']) {
            return Err(Error::Usage(format!(
                "--base {rev:?} is not a revision (a branch, tag or commit id)"
            )));
        }
        let full = self.full_name(rev)?;
        let spec = format!("{full}^{{commit}}");
        if let Ok(out) = run(
            &self.root,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                "--end-of-options",
                &spec,
            ],
        ) {
            let id = String::from_utf8_lossy(&out).trim().to_string();
            if !id.is_empty() {
                return Ok(id);
            }
        }
        let shallow = run(&self.root, &["rev-parse", "--is-shallow-repository"])
            .map(|o| String::from_utf8_lossy(&o).trim() == "true")
            .unwrap_or(false);
        let fetch = fetch_command(rev);
        Err(Error::Usage(if shallow {
            format!(
                "the base revision {rev} is not in this clone, which is shallow: fetch it with `{fetch}` \
                 (only the base commit itself is needed), then run again"
            )
        } else {
            format!(
                "the base revision {rev} is not in this clone: fetch it with `{fetch}`, then run again"
            )
        }))
    }

    /// What `rev` names without git's guessing: a full ref (`refs/...`) or a commit id as given,
    /// and a short name (`origin/main`, `main`) as the one ref it can name. A short name two refs
    /// answer to (a tag `origin/main` beside the remote branch) is refused, since git would pick
    /// the tag; so is a revision expression (`main~1`).
    fn full_name(&self, rev: &str) -> Result<String> {
        if rev.starts_with("refs/") {
            return Ok(rev.to_string());
        }
        if rev.contains(['~', '^', ':', '@', '{', '}', '*', '?', '[', '\\', ' ']) {
            return Err(Error::Usage(format!(
                "--base {rev:?}: give a branch, a full ref (refs/remotes/origin/main) or a commit id, not a revision expression"
            )));
        }
        // git's order of guesses (gitrevisions(7)), the pseudo-ref in the git directory aside.
        let candidates = [
            format!("refs/{rev}"),
            format!("refs/tags/{rev}"),
            format!("refs/heads/{rev}"),
            format!("refs/remotes/{rev}"),
            format!("refs/remotes/{rev}/HEAD"),
        ];
        let listed = run(&self.root, &["for-each-ref", "--format=%(refname)"])
            .map_err(|e| Error::Usage(format!("cannot list the refs: {e}")))?;
        let listed = String::from_utf8_lossy(&listed);
        let mut found: Vec<String> = listed
            .lines()
            .filter(|r| candidates.iter().any(|c| c == r))
            .map(str::to_string)
            .collect();
        let is_id = rev.len() >= 7 && rev.chars().all(|c| c.is_ascii_hexdigit());
        let pseudo = !rev.is_empty()
            && rev.chars().all(|c| c.is_ascii_uppercase() || c == '_')
            && run(
                &self.root,
                &["rev-parse", "--verify", "--quiet", "--end-of-options", rev],
            )
            .is_ok();
        if is_id || pseudo {
            found.push(rev.to_string());
        }
        match found.len() {
            0 | 1 => Ok(found.pop().unwrap_or_else(|| rev.to_string())),
            _ => Err(Error::Usage(format!(
                "--base {rev} is ambiguous: it names {}; give the full ref (refs/remotes/origin/<branch>) or the commit id",
                found.join(" and ")
            ))),
        }
    }

    /// The content of `path` at `commit`; `None` when the revision has no such file.
    pub fn read(&self, commit: &str, path: &str) -> Result<Option<Vec<u8>>> {
        let listed = self.ls_tree(commit, path, false)?;
        let Some(entry) = listed.into_iter().find(|e| e.path == path) else {
            return Ok(None);
        };
        if entry.kind != "blob" {
            return Err(Error::Usage(format!(
                "{path} at {commit} is a {}, not a file",
                entry.kind
            )));
        }
        self.blob(&entry.id).map(Some)
    }

    /// Every file at or under `path` at `commit` (a file, or a directory read recursively).
    pub fn files(&self, commit: &str, path: &str) -> Result<Vec<TreeFile>> {
        Ok(self
            .ls_tree(commit, path, true)?
            .into_iter()
            .filter(|e| e.kind == "blob")
            .filter(|e| e.path == path || e.path.starts_with(&format!("{path}/")))
            .map(|e| TreeFile {
                path: e.path,
                blob: e.id,
            })
            .collect())
    }

    /// Every file path of the revision `commit`.
    pub fn all_files(&self, commit: &str) -> Result<Vec<String>> {
        let out = run(
            &self.root,
            &[
                "ls-tree",
                "-r",
                "-z",
                "--name-only",
                "--full-tree",
                "--end-of-options",
                commit,
            ],
        )
        .map_err(|e| Error::Usage(format!("cannot list the files of {commit}: {e}")))?;
        Ok(split_paths(&out))
    }

    /// Every file of the work tree git knows or would add: tracked, and untracked but not
    /// ignored.
    pub fn work_tree_files(&self) -> Result<Vec<String>> {
        let out = run(
            &self.root,
            &[
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
                "--full-name",
            ],
        )
        .map_err(|e| Error::Usage(format!("cannot list the work tree's files: {e}")))?;
        Ok(split_paths(&out))
    }

    /// The content of a blob by its id.
    pub fn blob(&self, id: &str) -> Result<Vec<u8>> {
        run(&self.root, &["cat-file", "blob", id])
            .map_err(|e| Error::Usage(format!("cannot read git object {id}: {e}")))
    }

    /// `path` (absolute, or relative to the current directory) as a path from the top of the
    /// repository with `/` separators; an error when it is outside the repository.
    pub fn relative(&self, path: &Path) -> Result<String> {
        let absolute = if path.is_absolute() {
            path.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| Error::Usage(format!("cannot read the current directory: {e}")))?
                .join(path)
        };
        let absolute = normalize(&absolute);
        let root = std::fs::canonicalize(&self.root).unwrap_or_else(|_| self.root.clone());
        // The file may not exist (a policy file the change deletes): canonicalize its directory.
        let resolved = match (absolute.parent(), absolute.file_name()) {
            (Some(dir), Some(name)) => std::fs::canonicalize(dir)
                .map(|d| d.join(name))
                .unwrap_or_else(|_| absolute.clone()),
            _ => absolute.clone(),
        };
        let inside = resolved.strip_prefix(&root).map_err(|_| {
            Error::Usage(format!(
                "{} is outside the repository at {}: it cannot be read from the base revision",
                path.display(),
                self.root.display()
            ))
        })?;
        let parts: Vec<String> = inside
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if parts.is_empty() {
            return Err(Error::Usage(format!(
                "{} is the repository itself, not a file in it",
                path.display()
            )));
        }
        Ok(parts.join("/"))
    }

    fn ls_tree(&self, commit: &str, path: &str, recursive: bool) -> Result<Vec<LsEntry>> {
        let mut args = vec!["ls-tree", "-z", "--full-tree"];
        if recursive {
            args.push("-r");
        }
        args.extend(["--end-of-options", commit, "--", path]);
        let out = run(&self.root, &args)
            .map_err(|e| Error::Usage(format!("cannot list {path} at {commit}: {e}")))?;
        out.split(|b| *b == 0)
            .filter(|r| !r.is_empty())
            .map(|record| {
                let text = String::from_utf8_lossy(record);
                // "<mode> SP <type> SP <object> TAB <file>"
                let (meta, file) = text.split_once('\t').ok_or_else(|| {
                    Error::Usage(format!("unexpected git ls-tree output: {text:?}"))
                })?;
                let mut fields = meta.split(' ');
                let (_mode, kind, id) = match (fields.next(), fields.next(), fields.next()) {
                    (Some(m), Some(k), Some(i)) => (m, k, i),
                    _ => {
                        return Err(Error::Usage(format!(
                            "unexpected git ls-tree output: {text:?}"
                        )))
                    }
                };
                Ok(LsEntry {
                    kind: kind.to_string(),
                    id: id.to_string(),
                    path: file.to_string(),
                })
            })
            .collect()
    }
}

fn split_paths(out: &[u8]) -> Vec<String> {
    out.split(|b| *b == 0)
        .filter(|r| !r.is_empty())
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .collect()
}

struct LsEntry {
    kind: String,
    id: String,
    path: String,
}

/// The command that brings `rev` into a clone, for error messages.
fn fetch_command(rev: &str) -> String {
    let is_commit_id = rev.len() >= 7 && rev.chars().all(|c| c.is_ascii_hexdigit());
    if is_commit_id {
        format!("git fetch --no-tags --depth=1 origin {rev}")
    } else if let Some(branch) = rev.strip_prefix("origin/") {
        format!("git fetch --no-tags --depth=1 origin +refs/heads/{branch}:refs/remotes/origin/{branch}")
    } else {
        format!("git fetch --no-tags --depth=1 origin {rev}")
    }
}

/// Removes `.` and `..` components without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Runs git in `dir`; its standard output, or its error message.
fn run(dir: &Path, args: &[&str]) -> std::result::Result<Vec<u8>, String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "core.quotepath=off"])
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        // Paths come from policy files, some of them the change's: no pathspec magic (`:(glob)`,
        // `:!`) may change what is listed.
        .env("GIT_LITERAL_PATHSPECS", "1")
        // Reading must never take locks another git process in this checkout is waiting for.
        .env("GIT_OPTIONAL_LOCKS", "0")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        let message = String::from_utf8_lossy(&output.stderr);
        let message = message.trim();
        Err(if message.is_empty() {
            format!("git {} exited with {}", args.join(" "), output.status)
        } else {
            message.lines().take(3).collect::<Vec<_>>().join(" | ")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs git in `dir` with a throwaway identity; a failure fails the test.
    fn git_in(dir: &Path) -> impl Fn(&[&str]) + '_ {
        move |args: &[&str]| {
            let status = Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
                .args(args)
                .current_dir(dir)
                .stdout(Stdio::null())
                .status()
                .expect("git");
            assert!(status.success(), "git {args:?}");
        }
    }

    #[test]
    fn fetch_commands_name_what_to_fetch() {
        assert_eq!(
            fetch_command("origin/main"),
            "git fetch --no-tags --depth=1 origin +refs/heads/main:refs/remotes/origin/main"
        );
        assert_eq!(
            fetch_command("0123abcd"),
            "git fetch --no-tags --depth=1 origin 0123abcd"
        );
    }

    #[test]
    fn paths_are_literal_never_pathspec_magic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let git = git_in(dir.path());
        git(&["init", "-q"]);
        std::fs::write(dir.path().join("a.toml"), "a").expect("write");
        std::fs::write(dir.path().join("b.toml"), "b").expect("write");
        git(&["add", "-A"]);
        git(&["commit", "-q", "-m", "x"]);
        let repo = Repo::discover(dir.path()).expect("repo");
        let head = repo.resolve("HEAD").expect("HEAD");
        assert_eq!(repo.files(&head, "b.toml").expect("list").len(), 1);
        // As a pathspec this would list b.toml; as a path it names nothing.
        assert!(repo
            .files(&head, ":(exclude)a.toml")
            .expect("list")
            .is_empty());
        assert_eq!(
            repo.read(&head, "a.toml").expect("read"),
            Some(b"a".to_vec())
        );
        assert_eq!(repo.read(&head, "c.toml").expect("read"), None);
    }

    #[test]
    fn a_short_name_two_refs_answer_to_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let git = git_in(dir.path());
        git(&["init", "-q", "-b", "main"]);
        std::fs::write(dir.path().join("a"), "base").expect("write");
        git(&["add", "-A"]);
        git(&["commit", "-q", "-m", "base"]);
        git(&["update-ref", "refs/remotes/origin/main", "HEAD"]);
        let repo = Repo::discover(dir.path()).expect("repo");
        let base = repo.resolve("origin/main").expect("one ref");
        assert_eq!(
            repo.resolve("refs/remotes/origin/main").expect("full"),
            base
        );
        assert_eq!(repo.resolve(&base).expect("id"), base);
        // The change plants a tag of the same short name on its own commit.
        std::fs::write(dir.path().join("a"), "change").expect("write");
        git(&["commit", "-q", "-am", "change"]);
        git(&["tag", "origin/main"]);
        let err = repo
            .resolve("origin/main")
            .expect_err("ambiguous")
            .to_string();
        assert!(
            err.contains("ambiguous") && err.contains("refs/tags/origin/main"),
            "{err}"
        );
        assert_eq!(
            repo.resolve("refs/remotes/origin/main").expect("full"),
            base
        );
        assert!(repo.resolve("main~1").is_err());
        assert!(repo.resolve("HEAD").is_ok());
    }

    #[test]
    fn normalize_drops_dots() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
    }
}
