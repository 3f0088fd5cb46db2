//! `--base`: the gate decides with the policy of the base revision, in real git repositories made
//! here (a base commit on `main`, the change in the work tree or on a branch), with approvals
//! signed by the real `ssh-keygen -Y sign`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use devsecops::approval::Approval;
use devsecops::assess::{assess, Assessment, RunContext};
use devsecops::config::Config;
use devsecops::policy_diff::{Change, Governed, Kind, PolicyReport};
use devsecops::report::render;
use proptest::prelude::*;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/real")
        .join(name)
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

const POLICY: &str = r#"[policy]
fail_on = ["critical", "high"]
mode = "all"

[policy.sla_days]
high = 30

[[scanner]]
name = "hadolint"
format = "hadolint"
command = ["cat", "hadolint-report.json"]
rules = [".hadolint.yaml"]

[[scanner]]
name = "empty"
format = "sarif"
command = ["cat", "empty.sarif"]
optional = true
"#;

const SUPPRESSIONS: &str = r#"[[suppression]]
rule = "DL3020"
path = "Dockerfile"
justification = "The image copies a local archive on purpose; reviewed."
owner = "platform"
expires = 2099-01-31
approved_by = "@sec"
"#;

const EMPTY_SARIF: &str =
    r#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"empty"}},"results":[]}]}"#;

const EMPTY_BASELINE: &str = r#"{"version":1,"created":"2026-01-01T00:00:00Z","findings":{}}"#;

/// A git repository whose `main` holds the base; the change is made in the work tree.
struct Repo {
    dir: tempfile::TempDir,
    keys: tempfile::TempDir,
}

impl Repo {
    /// The base: a policy with two scanners, a suppression approved by @sec, CODEOWNERS giving
    /// the policy files to @sec, and the keys of @sec and @dev as allowed signers.
    fn new() -> Repo {
        let repo = Repo::empty();
        let signers = format!(
            "@sec {}\n@dev {}\n",
            repo.public_key("sec"),
            repo.public_key("dev")
        );
        repo.write(".devsecops/allowed_signers", &signers);
        repo.write("devsecops.toml", POLICY);
        repo.write(".devsecops/suppressions.toml", SUPPRESSIONS);
        repo.write(".devsecops/baseline.json", EMPTY_BASELINE);
        repo.write(".hadolint.yaml", "ignored: []\n");
        repo.write(
            ".github/CODEOWNERS",
            "* @dev\n/devsecops.toml @sec\n/.devsecops/ @sec\n/.hadolint.yaml @sec\n/.github/CODEOWNERS @sec\n",
        );
        repo.commit("base");
        repo
    }

    /// A repository with the scanners' reports but no policy.
    fn empty() -> Repo {
        let repo = Repo {
            dir: tempfile::tempdir().expect("tempdir"),
            keys: tempfile::tempdir().expect("tempdir"),
        };
        repo.git(&["init", "-q", "-b", "main"]);
        for (key, value) in [
            ("user.name", "Test"),
            ("user.email", "test@example.com"),
            ("commit.gpgsign", "false"),
        ] {
            repo.git(&["config", key, value]);
        }
        std::fs::copy(
            fixture("hadolint.json"),
            repo.dir.path().join("hadolint-report.json"),
        )
        .expect("copy");
        repo.write("empty.sarif", EMPTY_SARIF);
        repo.write(
            ".gitignore",
            "reports/\n.devsecops/findings.json\n.devsecops/history.db\n.devsecops/raw/\n",
        );
        repo.commit("reports");
        for name in ["sec", "dev", "mallory"] {
            let status = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
                .arg(repo.keys.path().join(name))
                .status()
                .expect("ssh-keygen (openssh-client) is installed");
            assert!(status.success(), "ssh-keygen");
        }
        repo
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(self.path())
            .output()
            .expect("git");
        assert!(out.status.success(), "git {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn write(&self, path: &str, content: &str) {
        let file = self.path().join(path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(file, content).expect("write");
    }

    fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.path().join(path)).expect("read")
    }

    fn edit(&self, path: &str, from: &str, to: &str) {
        let before = self.read(path);
        assert!(before.contains(from), "{path} has no {from:?}");
        self.write(path, &before.replacen(from, to, 1));
    }

    fn commit(&self, message: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
    }

    fn public_key(&self, name: &str) -> String {
        std::fs::read_to_string(self.keys.path().join(format!("{name}.pub")))
            .expect("public key")
            .trim()
            .to_string()
    }

    fn devsecops(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_devsecops"))
            .args(args)
            .current_dir(self.path())
            .env_remove("CI")
            .output()
            .expect("run devsecops")
    }

    /// Signs the change as `devsecops policy --message` prints it, with `name`'s key, into the
    /// change's approvals.
    fn approve(&self, name: &str) {
        let message = self.devsecops(&["policy", "--base", "main", "--message"]);
        assert_eq!(message.status.code(), Some(0), "{}", text(&message));
        let mut sign = Command::new("ssh-keygen")
            .args(["-Y", "sign", "-n", "devsecops-policy", "-f"])
            .arg(self.keys.path().join(name))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ssh-keygen");
        {
            use std::io::Write;
            let mut stdin = sign.stdin.take().expect("stdin");
            stdin.write_all(&message.stdout).expect("sign");
        }
        let signed = sign.wait_with_output().expect("ssh-keygen");
        assert!(signed.status.success(), "{}", text(&signed));
        let out = self.path().join(format!(".devsecops/approvals/{name}.sig"));
        std::fs::create_dir_all(out.parent().expect("parent")).expect("mkdir");
        std::fs::write(out, signed.stdout).expect("write signature");
    }

    /// `devsecops scan --base main`: its exit code, output, and the JSON report's policy.
    fn scan(&self) -> (Option<i32>, String, Value) {
        let out = self.devsecops(&["scan", "--base", "main"]);
        let report = std::fs::read_to_string(self.path().join("reports/devsecops.json"))
            .map(|t| serde_json::from_str(&t).expect("JSON report"))
            .unwrap_or(Value::Null);
        (out.status.code(), text(&out), report)
    }
}

/// The rules of the findings that fail, as a JSON report lists them.
fn failing_rules(report: &Value) -> Vec<&str> {
    report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["fails"] == true)
        .filter_map(|f| f["rule"].as_str())
        .collect()
}

/// The policy changes of a JSON report as (kind, what, approved).
fn changes(report: &Value) -> Vec<(String, String, bool)> {
    report["policy"]["changes"]
        .as_array()
        .map(|changes| {
            changes
                .iter()
                .map(|c| {
                    (
                        c["kind"].as_str().unwrap_or_default().to_string(),
                        c["what"].as_str().unwrap_or_default().to_string(),
                        c.get("approved_by").is_some(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn an_unchanged_policy_passes_and_reports_no_change() {
    let repo = Repo::new();
    let (code, output, report) = repo.scan();
    assert_eq!(code, Some(0), "{output}");
    assert!(changes(&report).is_empty(), "{report}");
    let summary = repo.read("reports/devsecops-summary.md");
    assert!(
        summary.contains("### Policy changes against ` main `"),
        "{summary}"
    );
    assert!(summary.contains("None: the policy"), "{summary}");
}

#[test]
fn every_weakening_change_fails_with_a_clear_list_and_does_not_take_effect() {
    type Change = fn(&Repo);
    let cases: &[(&str, Change, &str)] = &[
        (
            "scanner removed",
            |r| {
                let text = r.read("devsecops.toml");
                let start = text
                    .find("[[scanner]]\nname = \"hadolint\"")
                    .expect("scanner");
                let end = text.find("[[scanner]]\nname = \"empty\"").expect("scanner");
                r.write(
                    "devsecops.toml",
                    &format!("{}{}", &text[..start], &text[end..]),
                );
            },
            "scanner hadolint removed",
        ),
        (
            "scanner made optional",
            |r| {
                r.edit(
                    "devsecops.toml",
                    "rules = [\".hadolint.yaml\"]\n",
                    "rules = [\".hadolint.yaml\"]\noptional = true\n",
                )
            },
            "scanner hadolint made optional",
        ),
        (
            "timeout that makes it time out",
            |r| {
                r.edit(
                    "devsecops.toml",
                    "rules = [\".hadolint.yaml\"]\n",
                    "rules = [\".hadolint.yaml\"]\ntimeout_seconds = 1\n",
                )
            },
            "scanner hadolint: timeout shortened from 300 s to 1 s",
        ),
        (
            "exit codes accepted",
            |r| {
                r.edit(
                    "devsecops.toml",
                    "rules = [\".hadolint.yaml\"]\n",
                    "rules = [\".hadolint.yaml\"]\nok_exit_codes = [0, 1, 2]\n",
                )
            },
            "scanner hadolint: exit codes 2 now count as a successful run",
        ),
        (
            "command changed",
            |r| {
                r.edit(
                    "devsecops.toml",
                    "command = [\"cat\", \"hadolint-report.json\"]",
                    "command = [\"echo\", \"[]\"]",
                )
            },
            "scanner hadolint: command changed",
        ),
        (
            "severity threshold relaxed",
            |r| {
                r.edit(
                    "devsecops.toml",
                    "fail_on = [\"critical\", \"high\"]",
                    "fail_on = [\"critical\"]",
                )
            },
            "policy.fail_on no longer fails on high",
        ),
        (
            "category threshold relaxed",
            |r| {
                r.edit(
                    "devsecops.toml",
                    "[policy.sla_days]",
                    "[policy.categories.iac]\nfail_on = []\n\n[policy.sla_days]",
                )
            },
            "category iac no longer fails on critical, high",
        ),
        (
            "mode loosened",
            |r| r.edit("devsecops.toml", "mode = \"all\"", "mode = \"new\""),
            "policy.mode loosened from \"all\" to \"new\"",
        ),
        (
            "SLA lengthened",
            |r| r.edit("devsecops.toml", "high = 30", "high = 90"),
            "SLA for high lengthened from 30 to 90 days",
        ),
        (
            "SLA breach no longer fails",
            |r| {
                r.edit(
                    "devsecops.toml",
                    "mode = \"all\"",
                    "mode = \"all\"\nfail_on_sla_breach = false",
                )
            },
            "policy.fail_on_sla_breach changed from true to false",
        ),
        (
            "suppression added",
            |r| {
                let more = SUPPRESSIONS
                    .replace("DL3020", "DL3008")
                    .replace("path = \"Dockerfile\"\n", "");
                r.write(
                    ".devsecops/suppressions.toml",
                    &format!("{SUPPRESSIONS}\n{more}"),
                );
            },
            "suppression #2 added: rule DL3008",
        ),
        (
            "suppression widened",
            |r| {
                r.edit(
                    ".devsecops/suppressions.toml",
                    "path = \"Dockerfile\"\n",
                    "",
                )
            },
            "suppression #1 widened: rule DL3020 from path Dockerfile to every path",
        ),
        (
            "suppression extended",
            |r| r.edit(".devsecops/suppressions.toml", "2099-01-31", "2199-01-31"),
            "suppression #1 (rule DL3020 in Dockerfile) extended from 2099-01-31 to 2199-01-31",
        ),
        (
            "baseline grown",
            |r| {
                let out = r.devsecops(&["scan"]);
                assert_eq!(out.status.code(), Some(0), "{}", text(&out));
                assert_eq!(r.devsecops(&["baseline"]).status.code(), Some(0));
            },
            "baseline grown by 7 finding(s)",
        ),
        (
            "rule file of a scanner changed",
            |r| r.write(".hadolint.yaml", "ignored: [DL3020, DL3008]\n"),
            "rule file .hadolint.yaml of scanner hadolint changed",
        ),
        (
            "rule file no longer watched",
            |r| r.edit("devsecops.toml", "rules = [\".hadolint.yaml\"]\n", ""),
            "scanner hadolint: rule files .hadolint.yaml no longer watched",
        ),
        (
            "cargo configuration in a subdirectory capping lints",
            |r| {
                r.write(
                    "app/.cargo/config.toml",
                    "[build]\nrustflags = [\"--cap-lints\", \"allow\"]\n",
                )
            },
            "scanner settings file app/.cargo/config.toml added",
        ),
        (
            "cargo's old configuration file",
            |r| r.write(".cargo/config", "[build]\nrustc-wrapper = \"true\"\n"),
            "scanner settings file .cargo/config added",
        ),
        (
            "shellcheck settings in a subdirectory",
            |r| r.write("scripts/.shellcheckrc", "disable=all\n"),
            "scanner settings file scripts/.shellcheckrc added",
        ),
        (
            "semgrep ignore file",
            |r| r.write("app/.semgrepignore", "*\n"),
            "scanner settings file app/.semgrepignore added",
        ),
        (
            "gitleaks ignore file",
            |r| r.write(".gitleaksignore", "abc:app/key.pem:generic-api-key:1\n"),
            "scanner settings file .gitleaksignore added",
        ),
        (
            "trivy ignore file",
            |r| r.write("k8s/.trivyignore", "AVD-KSV-0001\n"),
            "scanner settings file k8s/.trivyignore added",
        ),
        (
            "toolchain pinned by the change",
            |r| r.write("rust-toolchain.toml", "[toolchain]\nchannel = \"1.0.0\"\n"),
            "scanner settings file rust-toolchain.toml added",
        ),
        (
            "suppressions moved out of their code owners' review",
            |r| {
                r.write("suppressions.toml", SUPPRESSIONS);
                r.edit(
                    "devsecops.toml",
                    "[policy.sla_days]",
                    "[paths]\nsuppressions = \"suppressions.toml\"\n\n[policy.sla_days]",
                );
            },
            "paths.suppressions moved from .devsecops/suppressions.toml to suppressions.toml, out of its code owners' review: main:.github/CODEOWNERS gives it to @dev instead of @sec",
        ),
        (
            "trust root introduced by the change",
            |r| {
                r.git(&["rm", "-q", ".devsecops/allowed_signers"]);
                r.commit("no signers on the base");
                r.write(
                    ".devsecops/allowed_signers",
                    &format!("@sec {}\n", r.public_key("mallory")),
                )
            },
            ".devsecops/allowed_signers introduced",
        ),
        (
            "trust root changed",
            |r| {
                r.write(
                    ".devsecops/allowed_signers",
                    &format!("@mallory {}\n", r.public_key("mallory")),
                )
            },
            ".devsecops/allowed_signers changed",
        ),
    ];
    for (name, change, expect) in cases {
        let repo = Repo::new();
        change(&repo);
        let (code, output, report) = repo.scan();
        assert_eq!(
            code,
            Some(1),
            "{name}: an unapproved weakening fails: {output}"
        );
        let listed = changes(&report);
        assert!(
            listed
                .iter()
                .any(|(kind, what, approved)| kind == "weakening"
                    && what.contains(expect)
                    && !approved),
            "{name}: {expect:?} not listed as unapproved weakening: {listed:?}"
        );
        assert!(
            report["reasons"][0]
                .as_str()
                .is_some_and(|r| r.contains("weakens the policy of main without approval")),
            "{name}: the first reason names the policy: {}",
            report["reasons"]
        );
        let summary = repo.read("reports/devsecops-summary.md");
        assert!(
            summary.contains("❌ weakening, not approved"),
            "{name}: the summary lists it: {summary}"
        );
        // The base's policy still decides: hadolint ran and DL3020 stays suppressed by the base's
        // suppression, so only the policy change fails.
        let findings = report["findings"].as_array().map(Vec::len).unwrap_or(0);
        assert_eq!(findings, 7, "{name}: the base's scanners ran: {output}");
        let failing = failing_rules(&report);
        assert!(
            failing.is_empty(),
            "{name}: nothing fails by the base's policy: {failing:?}"
        );
    }
}

#[test]
fn without_base_the_change_switches_the_gate_off_and_with_it_cannot() {
    // The hole this closes: the change relaxes the policy that then judges the change.
    let repo = Repo::new();
    repo.edit(
        ".devsecops/suppressions.toml",
        "rule = \"DL3020\"",
        "rule = \"DL3007\"",
    );
    repo.edit(
        "devsecops.toml",
        "fail_on = [\"critical\", \"high\"]",
        "fail_on = [\"critical\"]",
    );
    let plain = repo.devsecops(&["scan"]);
    assert_eq!(
        plain.status.code(),
        Some(0),
        "the change's own policy passes it: {}",
        text(&plain)
    );
    let (code, output, report) = repo.scan();
    assert_eq!(code, Some(1), "{output}");
    let failing = failing_rules(&report);
    assert_eq!(
        failing,
        ["DL3020"],
        "the base's threshold and suppressions decide"
    );
}

#[test]
fn strengthening_changes_take_effect_at_once_without_approval() {
    type Change = fn(&Repo);
    /// Name, a tweak of the base, the change, the line expected, the findings that then fail.
    type Case = (
        &'static str,
        Option<Change>,
        Change,
        &'static str,
        &'static [&'static str],
    );
    let cases: &[Case] = &[
        (
            "scanner added",
            None,
            |r| {
                r.write("devsecops.toml", &format!("{POLICY}\n[[scanner]]\nname = \"more\"\nformat = \"sarif\"\ncommand = [\"cat\", \"empty.sarif\"]\n"))
            },
            "scanner more added",
            &[],
        ),
        (
            "scanner made required",
            None,
            |r| r.edit("devsecops.toml", "optional = true\n", ""),
            "scanner empty made required",
            &[],
        ),
        (
            "severity threshold tightened",
            None,
            |r| {
                r.edit(
                    "devsecops.toml",
                    "fail_on = [\"critical\", \"high\"]",
                    "fail_on = [\"critical\", \"high\", \"medium\"]",
                )
            },
            "policy.fail_on now also fails on medium",
            &["DL3007", "DL3008", "DL3002"],
        ),
        (
            "mode tightened",
            Some(|r| r.edit("devsecops.toml", "mode = \"all\"", "mode = \"new\"")),
            |r| r.edit("devsecops.toml", "mode = \"new\"", "mode = \"all\""),
            "policy.mode tightened from \"new\" to \"all\"",
            &[],
        ),
        (
            "SLA shortened",
            None,
            |r| r.edit("devsecops.toml", "high = 30", "high = 7"),
            "SLA for high shortened from 30 to 7 days",
            &[],
        ),
        (
            "suppression removed",
            None,
            |r| r.write(".devsecops/suppressions.toml", ""),
            "suppression rule DL3020 in Dockerfile removed",
            &["DL3020"],
        ),
        (
            "suppression shortened",
            None,
            |r| r.edit(".devsecops/suppressions.toml", "2099-01-31", "2020-01-31"),
            "suppression #1 (rule DL3020 in Dockerfile) shortened from 2099-01-31 to 2020-01-31",
            &["DL3020"],
        ),
        (
            "baseline shrunk",
            Some(|r| {
                let out = r.devsecops(&["scan"]);
                assert_eq!(out.status.code(), Some(0), "{}", text(&out));
                assert_eq!(r.devsecops(&["baseline"]).status.code(), Some(0));
            }),
            |r| r.write(".devsecops/baseline.json", EMPTY_BASELINE),
            "baseline shrunk by 7 finding(s)",
            &[],
        ),
    ];
    for (name, base, change, expect, fail) in cases {
        let repo = Repo::new();
        if let Some(base) = base {
            base(&repo);
            repo.commit("base tweak");
        }
        change(&repo);
        let (code, output, report) = repo.scan();
        let listed = changes(&report);
        assert!(
            listed
                .iter()
                .any(|(kind, what, _)| kind == "strengthening" && what.contains(expect)),
            "{name}: {expect:?} not listed as strengthening: {listed:?}"
        );
        assert!(
            !listed.iter().any(|(kind, _, _)| kind == "weakening"),
            "{name}: {listed:?}"
        );
        let mut failing = failing_rules(&report);
        failing.sort();
        let mut expected = fail.to_vec();
        expected.sort();
        assert_eq!(
            failing, expected,
            "{name}: the stricter policy decides: {output}"
        );
        assert_eq!(code, Some(i32::from(!fail.is_empty())), "{name}: {output}");
        if *name == "scanner added" {
            assert!(output.contains("more: started"), "{name}: it ran: {output}");
        }
    }
}

/// The change relaxes the threshold and drops the suppression it no longer needs: approved, the
/// change's policy decides (DL3020 is high, which no longer fails); unapproved, the base's
/// threshold with the dropped suppression fails DL3020 as well.
fn relaxed(repo: &Repo) {
    repo.edit(
        "devsecops.toml",
        "fail_on = [\"critical\", \"high\"]",
        "fail_on = [\"critical\"]",
    );
    repo.write(".devsecops/suppressions.toml", "");
}

#[test]
fn a_code_owner_signature_on_the_base_approves_and_the_change_decides() {
    let repo = Repo::new();
    relaxed(&repo);
    let (code, output, report) = repo.scan();
    assert_eq!(code, Some(1), "not approved yet: {output}");
    let summary = repo.read("reports/devsecops-summary.md");
    assert!(
        summary.contains("ssh-keygen -Y sign -n devsecops-policy"),
        "{summary}"
    );
    let policy = repo.devsecops(&["policy", "--base", "main"]);
    assert_eq!(policy.status.code(), Some(1), "{}", text(&policy));
    assert!(
        text(&policy).contains("weakening, not approved: policy.fail_on no longer fails on high")
    );
    assert!(report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|f| f["rule"] == "DL3020" && f["fails"] == true));

    repo.approve("sec");
    let (code, output, report) = repo.scan();
    assert_eq!(code, Some(0), "approved by a code owner: {output}");
    let listed = changes(&report);
    assert!(
        listed
            .iter()
            .any(|(kind, what, approved)| kind == "weakening"
                && what.contains("no longer fails on high")
                && *approved),
        "{listed:?}"
    );
    assert_eq!(report["policy"]["changes"][0]["approved_by"][0], "@sec");
    assert_eq!(
        report["policy"]["approvals"][0]["file"],
        ".devsecops/approvals/sec.sig"
    );
    let summary = repo.read("reports/devsecops-summary.md");
    assert!(
        summary.contains("**✅ weakening, approved** by @sec"),
        "{summary}"
    );
    // The same signature no longer counts once the change changes again.
    repo.edit("devsecops.toml", "high = 30", "high = 31");
    let (code, output, report) = repo.scan();
    assert_eq!(
        code,
        Some(1),
        "a signature covers one exact change: {output}"
    );
    assert!(
        report["policy"]["notes"]
            .to_string()
            .contains("does not sign this change"),
        "{}",
        report["policy"]
    );
}

#[test]
fn an_approval_forged_inside_the_change_does_not_count() {
    // The change trusts its own key and names its author a code owner, then signs itself.
    let repo = Repo::new();
    relaxed(&repo);
    repo.write(
        ".devsecops/allowed_signers",
        &format!(
            "@sec {}\n@mallory {}\n",
            repo.public_key("sec"),
            repo.public_key("mallory")
        ),
    );
    repo.write(".github/CODEOWNERS", "* @mallory\n");
    repo.approve("mallory");
    let (code, output, report) = repo.scan();
    assert_eq!(code, Some(1), "{output}");
    let notes = report["policy"]["notes"].to_string();
    assert!(
        notes.contains("which the base's allowed signers do not list"),
        "{notes}"
    );
    let listed = changes(&report);
    for expect in [
        ".devsecops/allowed_signers changed",
        ".github/CODEOWNERS changed",
        "no longer fails on high",
    ] {
        assert!(
            listed
                .iter()
                .any(|(k, w, a)| k == "weakening" && w.contains(expect) && !a),
            "{expect}: {listed:?}"
        );
    }
}

#[test]
fn a_trusted_key_that_does_not_own_the_file_does_not_approve() {
    let repo = Repo::new();
    relaxed(&repo);
    repo.approve("dev");
    let (code, output, report) = repo.scan();
    assert_eq!(
        code,
        Some(1),
        "@dev is trusted but owns only what @sec does not: {output}"
    );
    assert_eq!(report["policy"]["approvals"][0]["principals"], "@dev");
    assert!(changes(&report)
        .iter()
        .any(|(k, _, a)| k == "weakening" && !a));
}

#[test]
fn suppressions_name_a_code_owner_who_signed() {
    let repo = Repo::new();
    // Added, approved by someone who is not a code owner of the suppressions file.
    let more = SUPPRESSIONS
        .replace("DL3020", "DL3008")
        .replace("approved_by = \"@sec\"", "approved_by = \"@dev\"");
    repo.write(
        ".devsecops/suppressions.toml",
        &format!("{SUPPRESSIONS}\n{more}"),
    );
    repo.approve("sec");
    let (code, output, report) = repo.scan();
    assert_eq!(code, Some(1), "{output}");
    assert!(
        report["reasons"].to_string().contains("approved by @dev, who is not a code owner of .devsecops/suppressions.toml on main (@sec)"),
        "{}",
        report["reasons"]
    );
    assert!(
        changes(&report)
            .iter()
            .any(|(k, w, a)| k == "weakening" && w.contains("DL3008") && !a),
        "approved_by names @dev, but @sec signed: {:?}",
        changes(&report)
    );
    // Named and signed by the code owner: it passes, and it suppresses.
    repo.write(
        ".devsecops/suppressions.toml",
        &format!("{SUPPRESSIONS}\n{}", more.replace("@dev", "@sec")),
    );
    repo.approve("sec");
    let (code, output, report) = repo.scan();
    assert_eq!(code, Some(0), "{output}");
    assert!(
        report["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|f| f["rule"] == "DL3008" && f.get("suppressed_by").is_some()),
        "the approved suppression applies"
    );
    // Without approved_by at all.
    repo.write(
        ".devsecops/suppressions.toml",
        &SUPPRESSIONS.replace("approved_by = \"@sec\"\n", ""),
    );
    let (code, _, report) = repo.scan();
    assert_eq!(code, Some(1));
    assert!(
        report["reasons"].to_string().contains("has no approved_by"),
        "{}",
        report["reasons"]
    );
}

#[test]
fn a_base_without_a_policy_is_a_first_adoption() {
    let repo = Repo::empty();
    repo.write(
        "devsecops.toml",
        &POLICY.replace(
            "mode = \"all\"",
            "mode = \"all\"\nfail_on_scanner_error = true",
        ),
    );
    repo.write(
        ".devsecops/suppressions.toml",
        &SUPPRESSIONS.replace("approved_by = \"@sec\"\n", ""),
    );
    let (code, output, report) = repo.scan();
    assert_eq!(
        code,
        Some(0),
        "the change's policy applies as it is: {output}"
    );
    assert_eq!(report["policy"]["first_adoption"], true);
    assert!(
        report["notices"][0]
            .as_str()
            .is_some_and(|n| n.starts_with("first adoption: main has no policy file")),
        "{}",
        report["notices"]
    );
    assert!(report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|f| f["rule"] == "DL3020" && f.get("suppressed_by").is_some()));
}

#[test]
fn a_shallow_clone_without_the_base_is_an_error_naming_the_fetch() {
    let upstream = Repo::new();
    upstream.git(&["checkout", "-q", "-b", "change"]);
    relaxed(&upstream);
    upstream.commit("relax");
    let clones = tempfile::tempdir().expect("tempdir");
    let clone = clones.path().join("clone");
    let url = format!("file://{}", upstream.path().display());
    let out = Command::new("git")
        .args(["clone", "-q", "--depth=1", "--branch", "change", &url])
        .arg(&clone)
        .output()
        .expect("git clone");
    assert!(out.status.success(), "{}", text(&out));
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_devsecops"))
            .args(args)
            .current_dir(&clone)
            .env_remove("CI")
            .output()
            .expect("devsecops")
    };
    let out = run(&["scan", "--base", "origin/main"]);
    let message = text(&out);
    assert_eq!(out.status.code(), Some(2), "never a silent pass: {message}");
    let fetch = "git fetch --no-tags --depth=1 origin +refs/heads/main:refs/remotes/origin/main";
    assert!(
        message.contains("which is shallow") && message.contains(fetch),
        "{message}"
    );
    assert!(!clone.join("reports").exists(), "no report claims a result");
    // The fetch it names is enough.
    let argv: Vec<&str> = fetch.split(' ').collect();
    let fetched = Command::new(argv[0])
        .args(&argv[1..])
        .current_dir(&clone)
        .output()
        .expect("git fetch");
    assert!(fetched.status.success(), "{}", text(&fetched));
    let out = run(&["scan", "--base", "origin/main"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "now decided, by the base: {}",
        text(&out)
    );
    assert!(text(&out).contains("weakens the policy of origin/main without approval"));
    // A revision that does not exist anywhere is an error too.
    let out = run(&["gate", "--base", "no-such-branch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("git fetch"), "{}", text(&out));
}

#[test]
fn gate_with_base_never_passes_on_findings_the_change_moved_away() {
    // CI scans with the change's policy, then gates with the base's: a change that moves
    // paths.findings leaves nothing where the base reads, and that fails even with a base policy
    // that lets an empty scan pass.
    let repo = Repo::new();
    repo.edit(
        "devsecops.toml",
        "mode = \"all\"",
        "mode = \"all\"\nfail_on_nothing_scanned = false",
    );
    repo.commit("the base lets an empty scan pass");
    repo.edit(
        "devsecops.toml",
        "[policy.sla_days]",
        "[paths]\nfindings = \"elsewhere/findings.json\"\n\n[policy.sla_days]",
    );
    let out = repo.devsecops(&["scan"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(repo.path().join("elsewhere/findings.json").is_file());
    for command in ["gate", "report"] {
        let out = repo.devsecops(&[command, "--base", "main"]);
        let output = text(&out);
        let report: Value =
            serde_json::from_str(&repo.read("reports/devsecops.json")).expect("json");
        assert!(
            report["reasons"]
                .to_string()
                .contains(".devsecops/findings.json: no findings file"),
            "{command}: {output}"
        );
        assert!(
            changes(&report)
                .iter()
                .any(|(kind, what, _)| kind == "weakening" && what.contains("paths.findings moved")),
            "{command}: {output}"
        );
        if command == "gate" {
            assert_eq!(out.status.code(), Some(1), "{command}: {output}");
        }
    }
}

#[test]
fn gate_after_ingest_and_a_scanner_the_change_did_not_run() {
    // CI that scans with the change's policy and gates with the base's: a scanner the change
    // removed did not run, which is an error of the scan, not a pass.
    let repo = Repo::new();
    repo.edit("devsecops.toml", "name = \"empty\"", "name = \"other\"");
    let out = repo.devsecops(&["scan"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = repo.devsecops(&["gate", "--base", "main"]);
    let output = text(&out);
    assert_eq!(out.status.code(), Some(1), "{output}");
    let report: Value = serde_json::from_str(&repo.read("reports/devsecops.json")).expect("json");
    assert!(
        report["scanner_errors"]
            .to_string()
            .contains("the policy of main runs it, but this scan did not"),
        "{}",
        report["scanner_errors"]
    );
    for format in [
        "devsecops-junit.xml",
        "devsecops.sarif",
        "security-dashboard.html",
        "devsecops.prom",
    ] {
        let body = repo.read(&format!("reports/{format}"));
        assert!(
            body.contains("scanner empty removed")
                || body
                    .contains("devsecops_policy_changes{kind=\"weakening\",approved=\"false\"} 1"),
            "{format} shows the policy diff: {body}"
        );
    }
}

#[test]
fn bad_policy_files_on_either_side_are_errors_naming_them() {
    let repo = Repo::new();
    repo.write(".github/CODEOWNERS", "!secret @sec\n");
    repo.commit("bad codeowners");
    let out = repo.devsecops(&["gate", "--base", "main"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("main:.github/CODEOWNERS: line 1"),
        "{}",
        text(&out)
    );
    let repo = Repo::new();
    repo.write("devsecops.toml", "[policy]\nfail_onn = []\n");
    let out = repo.devsecops(&["gate", "--base", "main"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("devsecops.toml: line 2"),
        "{}",
        text(&out)
    );
    let repo = Repo::new();
    repo.edit(
        "devsecops.toml",
        "rules = [\".hadolint.yaml\"]",
        "rules = [\".hadolint*\"]",
    );
    let out = repo.devsecops(&["gate", "--base", "main"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("must name a file or directory (no globs)"),
        "{}",
        text(&out)
    );
    let outside = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_devsecops"))
        .args(["gate", "--base", "main"])
        .current_dir(outside.path())
        .output()
        .expect("devsecops");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("not in one"), "{}", text(&out));
}

/// An assessment with every field of the policy diff taken from `text` (the base as given, what
/// changed, the file, the approver): strings a change controls.
fn with_policy(text: &[String; 4]) -> Assessment {
    let mut a = assess(
        &Config::default(),
        Vec::new(),
        None,
        &[],
        &std::collections::HashMap::new(),
        time::macros::datetime!(2026-11-30 12:00 UTC),
        RunContext::default(),
    );
    let [base, what, file, who] = text;
    let mut approved = Change::new(Kind::Weakening, file, what.clone());
    approved.approved_by = vec![who.clone()];
    let report = PolicyReport {
        base: base.clone(),
        base_commit: what.clone(),
        first_adoption: false,
        changes: vec![
            Change::new(Kind::Weakening, file, what.clone()),
            approved,
            Change::new(Kind::Strengthening, file, what.clone()),
            Change::new(Kind::Neutral, file, what.clone()),
        ],
        change_id: what.clone(),
        approvals: vec![Approval {
            file: file.clone(),
            principals: who.clone(),
            key: what.clone(),
        }],
        problems: vec![what.clone()],
        notes: vec![what.clone()],
        codeowners: Some(file.clone()),
    };
    Governed {
        config: Config::default(),
        suppressions: Vec::new(),
        baseline: None,
        report,
        message: String::new(),
    }
    .apply(&mut a);
    a
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Scanner names, commands, rules and paths come from the change: in every field of the
    /// policy diff they never add markup to the summary, elements to the JUnit or tags to the
    /// dashboard.
    #[test]
    fn policy_strings_never_change_a_report_structure(text in proptest::array::uniform4(common::arbitrary_text())) {
        let text: [String; 4] = text;
        let a = with_policy(&text);
        let benign = with_policy(&["main", "scanner semgrep removed", "devsecops.toml", "@sec"].map(String::from));
        let markdown = render(&a, "markdown").expect("markdown");
        let structure = common::markdown_structure(&markdown);
        prop_assert!(!structure.iter().any(|e| e == "HTML" || e.contains("Link") || e.contains("Image")), "{}", markdown);
        prop_assert_eq!(structure, common::markdown_structure(&render(&benign, "markdown").expect("markdown")), "{}", markdown);
        let junit = render(&a, "junit").expect("junit");
        let doc = roxmltree::Document::parse(&junit).map_err(|e| TestCaseError::fail(format!("{e}: {junit}")))?;
        let policy = doc.descendants().find(|n| n.attribute("name") == Some("policy")).expect("policy suite");
        prop_assert_eq!(policy.children().filter(|n| n.has_tag_name("testcase")).count(), 5);
        prop_assert_eq!(policy.descendants().filter(|n| n.has_tag_name("failure")).count(), 2);
        let sarif: Value = serde_json::from_str(&render(&a, "sarif").expect("sarif")).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let notes = sarif["runs"][0]["invocations"][0]["toolExecutionNotifications"].as_array().map(Vec::len);
        prop_assert_eq!(notes, Some(a.reasons.len() + a.notices.len() + 4));
        let html = render(&a, "html").expect("html");
        prop_assert!(!html.contains("<svg onload") && !html.contains("<b>bold") && !html.contains("<testcase"));
    }
}

#[test]
fn an_unowned_suppressions_file_is_noted_naming_the_base_once() {
    let repo = Repo::new();
    repo.write(".github/CODEOWNERS", "/devsecops.toml @sec\n");
    repo.commit("suppressions without an owner");
    let out = repo.devsecops(&["policy", "--base", "main"]);
    let output = text(&out);
    assert!(
        output.contains(
            "note: .devsecops/suppressions.toml has no owner in main:.github/CODEOWNERS: approved_by is not checked"
        ),
        "{output}"
    );
    assert!(!output.contains("main:main:"), "{output}");
}
