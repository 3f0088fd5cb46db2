//! GitHub's CODEOWNERS: who owns a path. Read from the base revision only, as GitHub does ("the
//! CODEOWNERS file must be on the base branch of the pull request", github/docs
//! content/repositories/.../about-code-owners.md), so a change cannot name its own owners.
//!
//! Semantics, from that page and the cases of hmarr/codeowners-rs
//! (codeowners-rs/src/patternset/matcher.rs, whose crate calls itself unfinished, hence this
//! module): the first file found of `.github/CODEOWNERS`, `CODEOWNERS`, `docs/CODEOWNERS`; one
//! pattern and its owners (`@user`, `@org/team`, an e-mail) per line; the last matching line wins,
//! and a line without owners leaves its paths unowned. Patterns are gitignore's: a single
//! component without a leading slash matches at any depth, anything else from the top; a pattern
//! matches the paths under a directory it names, except one ending in a lone `*`, which matches
//! only direct children; `**` spans directories. gitignore's `!` negation and `[...]` classes do
//! not work on GitHub, which then ignores the whole file; here they are errors, so the gate never
//! decides with a file GitHub would not use.

use globset::{GlobBuilder, GlobMatcher};

use crate::error::{Error, Result};

/// Where GitHub looks, in its order.
pub const LOCATIONS: &[&str] = &[".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS"];

#[derive(Debug, Clone)]
pub struct CodeOwners {
    /// The file it was read from (one of [`LOCATIONS`]).
    pub file: String,
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    matchers: Vec<GlobMatcher>,
    owners: Vec<String>,
}

impl CodeOwners {
    pub fn parse(file: &str, text: &str) -> Result<CodeOwners> {
        let mut rules = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let bad = |m: String| Error::Usage(format!("{file}: line {}: {m}", n + 1));
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut tokens = split_unescaped(line);
            let pattern = tokens.remove(0);
            if pattern.starts_with('!') {
                return Err(bad(format!(
                    "{pattern:?}: GitHub does not support negated patterns"
                )));
            }
            if pattern.contains(['[', ']']) {
                return Err(bad(format!(
                    "{pattern:?}: GitHub does not support character ranges"
                )));
            }
            let mut owners = Vec::new();
            for token in tokens {
                if token.starts_with('#') {
                    break;
                }
                if !is_owner(&token) {
                    return Err(bad(format!(
                        "{token:?} is not an owner (@user, @org/team or an e-mail address)"
                    )));
                }
                owners.push(token);
            }
            let matchers = globs(&pattern)
                .into_iter()
                .map(|g| {
                    GlobBuilder::new(&g)
                        .literal_separator(true)
                        .backslash_escape(true)
                        .build()
                        .map(|g| g.compile_matcher())
                        .map_err(|e| bad(format!("{pattern:?}: {e}")))
                })
                .collect::<Result<Vec<_>>>()?;
            rules.push(Rule { matchers, owners });
        }
        Ok(CodeOwners {
            file: file.to_string(),
            rules,
        })
    }

    /// The owners of `path` (from the top of the repository, `/` separators); empty when
    /// nobody owns it.
    pub fn owners(&self, path: &str) -> &[String] {
        self.rules
            .iter()
            .rev()
            .find(|r| r.matchers.iter().any(|m| m.is_match(path)))
            .map(|r| r.owners.as_slice())
            .unwrap_or(&[])
    }
}

/// Whether `identity` (an owner as CODEOWNERS writes it) is `owner`: GitHub logins and team
/// names are case-insensitive, and so is the domain of an e-mail address (its local part is
/// compared as written, as GitHub cannot know how a mail server folds it).
pub fn same_owner(identity: &str, owner: &str) -> bool {
    match (identity.rsplit_once('@'), owner.rsplit_once('@')) {
        (Some((li, di)), Some((lo, dol))) if !li.is_empty() && !lo.is_empty() => {
            li == lo && di.eq_ignore_ascii_case(dol)
        }
        _ => identity.eq_ignore_ascii_case(owner),
    }
}

fn is_owner(token: &str) -> bool {
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    if let Some(name) = token.strip_prefix('@') {
        return match name.split_once('/') {
            Some((org, team)) => name_ok(org) && name_ok(team),
            None => name_ok(name),
        };
    }
    matches!(token.split_once('@'), Some((local, domain)) if !local.is_empty() && domain.contains('.') && !domain.contains('@'))
}

/// Splits on whitespace not escaped by a backslash (`path\ with\ spaces`).
fn split_unescaped(line: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                current.push('\\');
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            c if c.is_whitespace() => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

/// The globs one CODEOWNERS pattern stands for.
fn globs(pattern: &str) -> Vec<String> {
    let (pattern, anchored) = match pattern.strip_prefix('/') {
        Some(p) => (p, true),
        None => (pattern, false),
    };
    let (pattern, directory) = match pattern.strip_suffix('/') {
        Some(p) => (p, true),
        None => (pattern, false),
    };
    let single = !pattern.contains('/');
    let base = if single && !anchored && pattern != "**" {
        format!("**/{pattern}")
    } else {
        pattern.to_string()
    };
    let last = pattern.rsplit('/').next().unwrap_or(pattern);
    if directory {
        vec![format!("{base}/**")]
    } else if last == "*" {
        vec![base]
    } else {
        vec![base.clone(), format!("{base}/**")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(patterns: &[&str], path: &str) -> Vec<usize> {
        patterns
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                let c = CodeOwners::parse("CODEOWNERS", &format!("{p} @o")).expect("parses");
                !c.owners(path).is_empty()
            })
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn patterns_match_as_on_github() {
        let p = ["/src/parser/mod.rs", "/lib/parser/parse.rs", "mod.rs"];
        assert_eq!(owned(&p, "src/parser/mod.rs"), [0, 2]);
        assert_eq!(owned(&p, "lib/parser/mod.rs"), [2]);
        assert_eq!(owned(&p, "src/parser/mod.go"), Vec::<usize>::new());
        let p = ["src", "src/parser", "src/parser/"];
        assert_eq!(owned(&p, "src/parser/mod.rs"), [0, 1, 2]);
        assert_eq!(owned(&p, "src/parser"), [0, 1]);
        assert_eq!(owned(&p, "foo/src/parser/mod.rs"), [0]);
        let p = ["/script/foo", "script/foo", "/foo", "foo"];
        assert_eq!(owned(&p, "script/foo"), [0, 1, 3]);
        assert_eq!(owned(&p, "bar/script/foo"), [3]);
        let p = [
            "src/*/mod.rs",
            "src/parser/*",
            "*/*/mod.rs",
            "src/parser/*/",
        ];
        assert_eq!(owned(&p, "src/parser/mod.rs"), [0, 1, 2]);
        assert_eq!(owned(&p, "src/parser/subdir/thing.rs"), [3]);
        assert_eq!(owned(&p, "parser/mod.rs"), Vec::<usize>::new());
        let p = ["/mammals/*", "/fish/*/"];
        assert_eq!(owned(&p, "mammals/equus"), [0]);
        assert_eq!(owned(&p, "mammals/equus/zebra"), Vec::<usize>::new());
        assert_eq!(owned(&p, "fish/gaddus"), Vec::<usize>::new());
        assert_eq!(owned(&p, "fish/gaddus/cod"), [1]);
        let p = ["/**/baz", "/foo/**/qux", "foo/**", "**", "*"];
        assert_eq!(owned(&p, "x/y/baz"), [0, 3, 4]);
        // baz is a directory on the way: everything under it is matched too.
        assert_eq!(owned(&p, "foo/bar/baz/qux"), [0, 1, 2, 3, 4]);
        assert_eq!(owned(&p, "foo"), [3, 4]);
        assert_eq!(owned(&p, "*.js"), [3, 4]);
        let p = ["*.toml", "/.devsecops/", "docs/*"];
        assert_eq!(owned(&p, "a/deny.toml"), [0]);
        assert_eq!(owned(&p, ".devsecops/approvals/x.sig"), [1]);
        assert_eq!(owned(&p, "docs/getting-started.md"), [2]);
        assert_eq!(
            owned(&p, "docs/build-app/troubleshooting.md"),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn the_last_match_wins_and_a_line_without_owners_disowns() {
        let c = CodeOwners::parse(
            "CODEOWNERS",
            "# comment\n*  @everyone\n/apps/ @octocat admin@example.com # trailing\n/apps/github\n",
        )
        .expect("parses");
        assert_eq!(c.owners("README.md"), ["@everyone"]);
        assert_eq!(c.owners("apps/x.rs"), ["@octocat", "admin@example.com"]);
        assert!(c.owners("apps/github/y.rs").is_empty());
    }

    #[test]
    fn what_github_would_not_use_is_an_error() {
        for (text, expect) in [
            ("!secret @o\n", "negated"),
            ("[ab].rs @o\n", "character ranges"),
            ("*.rs owner\n", "not an owner"),
            ("*.rs @o @bad/team/x\n", "not an owner"),
        ] {
            let err = CodeOwners::parse("CODEOWNERS", text).expect_err(text);
            assert!(
                err.to_string().contains(expect) && err.to_string().contains("line 1"),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn owners_compare_case_insensitively() {
        assert!(same_owner("@Platform-Team", "@platform-team"));
        assert!(same_owner("@org/Sec", "@ORG/sec"));
        assert!(same_owner("alice@Example.com", "alice@example.COM"));
        assert!(!same_owner("Alice@example.com", "alice@example.com"));
        assert!(!same_owner("@alice", "@alicex"));
    }
}
