//! The `devsecops` binary end to end: ingest, gate, baseline, suppressions, reports and scan, in a
//! temporary repository. Exit codes: 0 pass, 1 policy failure, 2 usage or input error.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/real")
        .join(name)
}

fn devsecops(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_devsecops"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run devsecops")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn ingest_fixtures(dir: &Path) {
    for (tool, file) in [
        ("cargo-audit", "cargo-audit.json"),
        ("cargo-deny", "cargo-deny.ndjson"),
        ("hadolint", "hadolint.json"),
    ] {
        let out = devsecops(
            dir,
            &[
                "ingest",
                "--tool",
                tool,
                fixture(file).to_str().expect("utf-8"),
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
}

#[test]
fn new_findings_fail_until_baselined_and_all_mode_fails_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    ingest_fixtures(dir.path());
    let gate = devsecops(dir.path(), &["gate"]);
    assert_eq!(gate.status.code(), Some(1), "{}", text(&gate));
    assert!(text(&gate).contains("RUSTSEC-2021-0003"));
    for report in [
        "devsecops.sarif",
        "devsecops-junit.xml",
        "devsecops.json",
        "devsecops-summary.md",
        "devsecops.prom",
    ] {
        assert!(
            dir.path().join("reports").join(report).is_file(),
            "{report}"
        );
    }
    assert_eq!(devsecops(dir.path(), &["baseline"]).status.code(), Some(0));
    let again = devsecops(dir.path(), &["gate"]);
    assert_eq!(
        again.status.code(),
        Some(0),
        "baselined findings pass in new-only mode: {}",
        text(&again)
    );
    std::fs::write(
        dir.path().join("devsecops.toml"),
        "[policy]\nmode = \"all\"\n",
    )
    .expect("config");
    assert_eq!(devsecops(dir.path(), &["gate"]).status.code(), Some(1));
    // A fixed finding is reported as fixed against the baseline.
    std::fs::write(dir.path().join("devsecops.toml"), "").expect("config");
    let out = devsecops(
        dir.path(),
        &[
            "ingest",
            "--replace",
            "--tool",
            "hadolint",
            fixture("hadolint.json").to_str().expect("utf-8"),
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(devsecops(dir.path(), &["gate"]).status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("reports/devsecops.json")).expect("json"),
    )
    .expect("parses");
    assert_eq!(
        json["fixed"].as_array().map(Vec::len),
        Some(3),
        "the three advisories are fixed"
    );
    let metrics =
        std::fs::read_to_string(dir.path().join("reports/devsecops.prom")).expect("metrics");
    assert!(
        metrics.contains(
            "devsecops_findings{severity=\"critical\",category=\"sca\",state=\"fixed\"} 1"
        ),
        "{metrics}"
    );
}

#[test]
fn suppressions_suppress_expire_and_report_unmatched() {
    let dir = tempfile::tempdir().expect("tempdir");
    ingest_fixtures(dir.path());
    std::fs::create_dir_all(dir.path().join(".devsecops")).expect("dir");
    let suppressions = dir.path().join(".devsecops/suppressions.toml");
    let write = |expires: &str| {
        std::fs::write(
            &suppressions,
            format!(
                "[[suppression]]\nrule = \"RUSTSEC-2021-0003\"\njustification = \"insert_many is never called with a lying iterator\"\nowner = \"platform-team\"\nexpires = {expires}\n\n\
                 [[suppression]]\nrule = \"RUSTSEC-2020-0071\"\njustification = \"no environment writes in threads\"\nowner = \"platform-team\"\nexpires = 2099-01-01\n\n\
                 [[suppression]]\nrule = \"DL3020\"\npath = \"Dockerfile\"\njustification = \"ADD of a local directory, reviewed\"\nowner = \"platform-team\"\nexpires = 2099-01-01\n\n\
                 [[suppression]]\nrule = \"CKV_NOTHING\"\njustification = \"matches nothing at all here\"\nowner = \"platform-team\"\nexpires = 2099-01-01\n"
            ),
        )
        .expect("suppressions")
    };
    write("2099-01-01");
    let gate = devsecops(dir.path(), &["gate"]);
    assert_eq!(gate.status.code(), Some(0), "{}", text(&gate));
    let summary = text(&gate);
    assert!(
        summary.contains("\\#4 (rule CKV\\_NOTHING) matches nothing"),
        "{summary}"
    );
    let sarif: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("reports/devsecops.sarif")).expect("sarif"),
    )
    .expect("parses");
    let suppressed: Vec<_> = sarif["runs"][0]["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| r.get("suppressions").is_some())
        .collect();
    assert_eq!(suppressed.len(), 3);
    assert!(suppressed
        .iter()
        .all(|r| r["suppressions"][0]["justification"]
            .as_str()
            .is_some_and(|j| j.len() > 10)));

    write("2020-01-01");
    let expired = devsecops(dir.path(), &["gate"]);
    assert_eq!(
        expired.status.code(),
        Some(1),
        "an expired suppression stops suppressing: {}",
        text(&expired)
    );
    assert!(
        text(&expired).contains("\\#1 (rule RUSTSEC-2021-0003) expired on 2020-01-01"),
        "{}",
        text(&expired)
    );

    std::fs::write(
        &suppressions,
        "[[suppression]]\nrule = \"x\"\nowner = \"o\"\nexpires = 2099-01-01\n",
    )
    .expect("write");
    let invalid = devsecops(dir.path(), &["gate"]);
    assert_eq!(invalid.status.code(), Some(2));
    assert!(
        text(&invalid).contains("suppressions.toml"),
        "{}",
        text(&invalid)
    );
}

#[test]
fn bad_input_and_usage_exit_2_and_lose_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    ingest_fixtures(dir.path());
    let before = std::fs::read(dir.path().join(".devsecops/findings.json")).expect("findings");
    let broken = dir.path().join("broken.sarif");
    std::fs::write(&broken, "{\"version\": \"2.1.0\", \"runs\": [").expect("write");
    let out = devsecops(
        dir.path(),
        &["ingest", "--tool", "sarif", broken.to_str().expect("utf-8")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("broken.sarif: line 1"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read(dir.path().join(".devsecops/findings.json")).expect("findings"),
        before,
        "nothing lost"
    );
    assert_eq!(
        devsecops(dir.path(), &["ingest", "--tool", "nessus", "x"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        devsecops(dir.path(), &["frobnicate"]).status.code(),
        Some(2)
    );
    assert_eq!(
        devsecops(dir.path(), &["--config", "nope.toml", "gate"])
            .status
            .code(),
        Some(2)
    );
    std::fs::write(
        dir.path().join("devsecops.toml"),
        "[policy]\nmode = \"sometimes\"\n",
    )
    .expect("config");
    let bad = devsecops(dir.path(), &["gate"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad).contains("devsecops.toml: line 2"),
        "{}",
        text(&bad)
    );
}

#[test]
fn scan_keeps_results_when_other_scanners_fail_time_out_or_are_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        fixture("hadolint.json"),
        dir.path().join("hadolint-report.json"),
    )
    .expect("copy");
    std::fs::write(
        dir.path().join("devsecops.toml"),
        r#"
[policy]
fail_on = ["critical"]

[[scanner]]
name = "hadolint"
format = "hadolint"
command = ["cat", "hadolint-report.json"]

[[scanner]]
name = "slow"
format = "sarif"
command = ["sleep", "30"]
timeout_seconds = 1

[[scanner]]
name = "broken"
format = "sarif"
command = ["sh", "-c", "echo boom >&2; exit 3"]

[[scanner]]
name = "absent"
format = "sarif"
command = ["no-such-scanner-here"]
optional = true
install = "pip install no-such-scanner"
"#,
    )
    .expect("config");
    let started = std::time::Instant::now();
    let out = devsecops(dir.path(), &["scan"]);
    let output = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "two required scanners gave no result: the gate fails closed: {output}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "the timeout was not enforced"
    );
    // Without a terminal: a plain line when each scanner starts and when it ends.
    for line in [
        "hadolint: started",
        "hadolint: 7 finding(s)",
        "slow: started",
        "slow: FAILED (timed out after 1 s)",
        "broken: FAILED (exited with 3: boom)",
        "absent: SKIPPED (no-such-scanner-here not found (install: pip install no-such-scanner))",
    ] {
        assert!(output.contains(line), "{line:?} missing: {output}");
    }
    assert!(
        output.find("slow: started") < output.find("slow: FAILED"),
        "{output}"
    );
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("reports/devsecops.json")).expect("json"),
    )
    .expect("parses");
    let reasons: Vec<&str> = json["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    assert_eq!(
        reasons,
        [
            "scanner slow produced no readable result: timed out after 1 s",
            "scanner broken produced no readable result: exited with 3: boom"
        ],
        "scanner errors are the reasons, first; the optional one is only a notice"
    );
    assert_eq!(
        json["findings"].as_array().map(Vec::len),
        Some(7),
        "hadolint's results are kept"
    );
    let junit =
        std::fs::read_to_string(dir.path().join("reports/devsecops-junit.xml")).expect("junit");
    assert!(
        junit.contains(
            "<testsuite name=\"run\" tests=\"3\" failures=\"0\" errors=\"2\" skipped=\"1\">"
        ),
        "scanner errors are visible: {junit}"
    );
    let sarif = std::fs::read_to_string(dir.path().join("reports/devsecops.sarif")).expect("sarif");
    assert!(sarif.contains("scanner slow produced no readable result: timed out"));
    let summary =
        std::fs::read_to_string(dir.path().join("reports/devsecops-summary.md")).expect("md");
    let first_item = summary.lines().find(|l| l.starts_with("- ")).unwrap_or("");
    assert!(first_item.contains("scanner slow"), "said first: {summary}");

    // The policy can let scanner errors pass (they stay visible as notices).
    let config = std::fs::read_to_string(dir.path().join("devsecops.toml")).expect("config");
    std::fs::write(
        dir.path().join("devsecops.toml"),
        config.replace("[policy]\n", "[policy]\nfail_on_scanner_error = false\n"),
    )
    .expect("config");
    let lenient = devsecops(dir.path(), &["scan"]);
    assert_eq!(lenient.status.code(), Some(0), "{}", text(&lenient));
    assert!(text(&lenient).contains("scanner broken produced no readable result"));

    // A required scanner that is missing stops the scan and says how to install it.
    std::fs::write(
        dir.path().join("devsecops.toml"),
        "[[scanner]]\nname = \"needed\"\nformat = \"sarif\"\ncommand = [\"no-such-scanner-here\"]\ninstall = \"apt-get install it\"\n",
    )
    .expect("config");
    let missing = devsecops(dir.path(), &["scan"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing).contains("install: apt-get install it"),
        "{}",
        text(&missing)
    );
}

#[test]
fn a_gate_that_read_nothing_fails_and_says_so_first_in_every_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reports = dir.path().join("reports");
    let read = |name: &str| std::fs::read_to_string(reports.join(name)).expect(name);
    let said_first = |what: &str| {
        let json: serde_json::Value = serde_json::from_str(&read("devsecops.json")).expect("json");
        assert_eq!(json["nothing_scanned"], true, "{what}");
        let first = json["reasons"][0]
            .as_str()
            .or(json["notices"][0].as_str())
            .unwrap_or("");
        assert!(first.starts_with("nothing was scanned"), "{what}: {json}");
        let markdown = read("devsecops-summary.md");
        let item = markdown.lines().find(|l| l.starts_with("- ")).unwrap_or("");
        assert!(item.contains("nothing was scanned"), "{what}: {markdown}");
        let sarif: serde_json::Value =
            serde_json::from_str(&read("devsecops.sarif")).expect("sarif");
        let invocation = &sarif["runs"][0]["invocations"][0];
        assert_eq!(invocation["executionSuccessful"], false, "{what}");
        assert!(
            invocation["toolExecutionNotifications"][0]["message"]["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("nothing was scanned")),
            "{what}: {invocation}"
        );
        let junit = read("devsecops-junit.xml");
        assert!(
            junit.contains("name=\"something was scanned\""),
            "{what}: {junit}"
        );
        let html = read("security-dashboard.html");
        assert!(
            html.contains("<li class=\"fails\">nothing was scanned")
                || html.contains("<li>nothing was scanned"),
            "{what}"
        );
        junit
    };
    // No report ingested, no scanner: zero findings mean nothing.
    let gate = devsecops(dir.path(), &["gate"]);
    assert_eq!(gate.status.code(), Some(1), "{}", text(&gate));
    let junit = said_first("empty gate");
    assert!(
        junit.contains("errors=\"1\""),
        "an error, not an empty pass: {junit}"
    );
    // The policy may let it pass, still said first.
    std::fs::write(
        dir.path().join("devsecops.toml"),
        "[policy]\nfail_on_nothing_scanned = false\n",
    )
    .expect("config");
    let lenient = devsecops(dir.path(), &["gate"]);
    assert_eq!(lenient.status.code(), Some(0), "{}", text(&lenient));
    said_first("lenient policy");
    // A scan whose only scanner (optional) did not run read nothing either.
    std::fs::write(
        dir.path().join("devsecops.toml"),
        "[[scanner]]\nname = \"absent\"\nformat = \"sarif\"\ncommand = [\"no-such-scanner-here\"]\noptional = true\n",
    )
    .expect("config");
    let scan = devsecops(dir.path(), &["scan"]);
    assert_eq!(scan.status.code(), Some(1), "{}", text(&scan));
    said_first("scan of an optional scanner that is missing");
    // A clean report that was read is a real pass.
    std::fs::remove_file(dir.path().join("devsecops.toml")).expect("rm");
    let ingest = devsecops(
        dir.path(),
        &[
            "ingest",
            "--replace",
            "--tool",
            "trivy",
            fixture("trivy-empty.json").to_str().expect("utf-8"),
        ],
    );
    assert_eq!(ingest.status.code(), Some(0), "{}", text(&ingest));
    let clean = devsecops(dir.path(), &["gate"]);
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean));
    assert!(!text(&clean).contains("nothing was scanned"));
}

#[test]
fn skipped_results_are_said_first_and_fail_the_gate_when_the_policy_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("hadolint.json"),
        r#"[{"code":"DL3007","file":"Dockerfile","level":"info","line":1,"message":"m"},{"code":5}]"#,
    )
    .expect("report");
    let ingest = devsecops(
        dir.path(),
        &["ingest", "--tool", "hadolint", "hadolint.json"],
    );
    assert_eq!(ingest.status.code(), Some(0), "{}", text(&ingest));
    let gate = devsecops(dir.path(), &["gate"]);
    assert_eq!(
        gate.status.code(),
        Some(0),
        "a notice by default: {}",
        text(&gate)
    );
    assert!(
        text(&gate).contains("1 malformed result(s) skipped"),
        "{}",
        text(&gate)
    );
    std::fs::write(
        dir.path().join("devsecops.toml"),
        "[policy]\nfail_on_skipped_results = true\n",
    )
    .expect("config");
    let strict = devsecops(dir.path(), &["gate"]);
    assert_eq!(strict.status.code(), Some(1), "{}", text(&strict));
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("reports/devsecops.json")).expect("json"),
    )
    .expect("parses");
    assert!(
        json["reasons"][0]
            .as_str()
            .is_some_and(|r| r.contains("1 malformed result(s) skipped")),
        "{}",
        json["reasons"]
    );
}

#[test]
fn a_crashed_scanner_or_unreadable_output_fails_the_gate_and_is_said_first_everywhere() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("devsecops.toml"),
        r#"
[[scanner]]
name = "crashing"
format = "sarif"
command = ["sh", "-c", "echo '{\"version\":\"2.1.0\",\"runs\":[' ; echo segfault >&2; kill -SEGV $$"]

[[scanner]]
name = "garbled"
format = "trivy"
command = ["echo", "{\"SchemaVersion\": 2, \"Results\": [tru"]

[[scanner]]
name = "odd-exit"
format = "hadolint"
command = ["sh", "-c", "echo '[]'; exit 4"]
ok_exit_codes = [0]
"#,
    )
    .expect("config");
    let out = devsecops(
        dir.path(),
        &["scan", "--format", "sarif,junit,json,markdown,html"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let reports = dir.path().join("reports");
    let read = |name: &str| std::fs::read_to_string(reports.join(name)).expect(name);
    let json: serde_json::Value = serde_json::from_str(&read("devsecops.json")).expect("json");
    let reasons: Vec<&str> = json["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    assert!(reasons[0].starts_with("nothing was scanned"), "{reasons:?}");
    for (scanner, why) in [
        ("crashing", "crashed (killed by signal 11): segfault"),
        ("garbled", "output unreadable"),
        ("odd-exit", "exited with 4"),
    ] {
        let line = format!("scanner {scanner} produced no readable result: {why}");
        assert!(
            reasons[1..4].iter().any(|r| r.starts_with(&line)),
            "{line} among the first reasons: {reasons:?}"
        );
        let markdown = read("devsecops-summary.md");
        let items: Vec<&str> = markdown
            .lines()
            .filter(|l| l.starts_with("- "))
            .take(4)
            .collect();
        assert!(
            items
                .iter()
                .any(|i| i.contains(&format!("scanner {scanner} "))),
            "{markdown}"
        );
        let junit = read("devsecops-junit.xml");
        assert!(
            junit.contains(&format!(
                "name=\"{scanner}\">\n      <error message=\"no readable result: "
            )),
            "{junit}"
        );
    }
    let html = read("security-dashboard.html");
    let read_first = html
        .split("<h2>Read first</h2>")
        .nth(1)
        .and_then(|s| s.split("</section>").next())
        .unwrap_or("");
    for scanner in ["crashing", "garbled", "odd-exit"] {
        assert!(
            read_first.contains(&format!("<li class=\"fails\">scanner {scanner} ")),
            "the dashboard's banner: {read_first}"
        );
    }
    let sarif: serde_json::Value = serde_json::from_str(&read("devsecops.sarif")).expect("sarif");
    let invocation = &sarif["runs"][0]["invocations"][0];
    assert_eq!(invocation["executionSuccessful"], false);
    let errors: Vec<&str> = invocation["toolExecutionNotifications"]
        .as_array()
        .expect("notifications")
        .iter()
        .take_while(|n| n["level"] == "error")
        .filter_map(|n| n["message"]["text"].as_str())
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("scanner crashing produced no readable result: crashed")),
        "{errors:?}"
    );
    let junit = read("devsecops-junit.xml");
    assert!(
        junit.contains("errors=\"4\""),
        "three scanners and nothing scanned: {junit}"
    );
}

#[test]
fn the_advisory_database_date_is_in_every_report_and_its_age_is_enforced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = |updated: &str| {
        format!(
            r#"{{"database":{{"last-commit":"3157b0e2","last-updated":{updated}}},"vulnerabilities":{{"list":[]}},"warnings":{{}}}}"#
        )
    };
    std::fs::write(
        dir.path().join("old.json"),
        report("\"2020-01-02T03:04:05Z\""),
    )
    .expect("write");
    let ingest = devsecops(dir.path(), &["ingest", "--tool", "cargo-audit", "old.json"]);
    assert_eq!(ingest.status.code(), Some(0), "{}", text(&ingest));
    let gate = devsecops(
        dir.path(),
        &["gate", "--format", "sarif,junit,json,markdown,html"],
    );
    assert_eq!(
        gate.status.code(),
        Some(0),
        "stale is a notice by default: {}",
        text(&gate)
    );
    let reports = dir.path().join("reports");
    let read = |name: &str| std::fs::read_to_string(reports.join(name)).expect(name);
    for name in [
        "devsecops.json",
        "devsecops.sarif",
        "devsecops-junit.xml",
        "devsecops-summary.md",
        "security-dashboard.html",
    ] {
        let report = read(name);
        assert!(
            report.contains("2020-01-02") && report.contains("3157b0e2"),
            "{name} records the database's date and commit: {report}"
        );
    }
    let json: serde_json::Value = serde_json::from_str(&read("devsecops.json")).expect("json");
    assert_eq!(json["databases"][0]["stale"], true);
    assert!(json["notices"][0]
        .as_str()
        .is_some_and(|n| n.contains("days old (policy: at most 7)")));
    let policy = |text: &str| {
        std::fs::write(dir.path().join("devsecops.toml"), text).expect("config");
        devsecops(dir.path(), &["gate"])
    };
    let strict = policy("[policy]\nfail_on_stale_advisory_db = true\n");
    assert_eq!(strict.status.code(), Some(1), "{}", text(&strict));
    assert!(text(&strict).contains("days old (policy: at most 7)"));
    let junit = read("devsecops-junit.xml");
    assert!(
        junit.contains("failures=\"1\"")
            && junit.contains("<failure type=\"policy\" message=\"older than"),
        "the JUnit fails as the gate does: {junit}"
    );
    let long =
        policy("[policy]\nfail_on_stale_advisory_db = true\nmax_advisory_db_age_days = 100000\n");
    assert_eq!(long.status.code(), Some(0), "{}", text(&long));
    // A database that does not say when it was updated cannot be shown fresh: it fails too.
    std::fs::write(dir.path().join("undated.json"), report("null")).expect("write");
    let ingest = devsecops(
        dir.path(),
        &[
            "ingest",
            "--replace",
            "--tool",
            "cargo-audit",
            "undated.json",
        ],
    );
    assert_eq!(ingest.status.code(), Some(0), "{}", text(&ingest));
    let undated =
        policy("[policy]\nfail_on_stale_advisory_db = true\nmax_advisory_db_age_days = 100000\n");
    assert_eq!(undated.status.code(), Some(1), "{}", text(&undated));
    assert!(text(&undated).contains("does not say when it was updated"));
}

#[test]
fn audit_of_a_link_to_a_binary_reads_the_binary_and_a_dangling_one_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/advisory-db");
    let db = db.to_str().expect("utf-8");
    // This test's own devsecops: a Rust binary built without cargo auditable.
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_devsecops"),
        dir.path().join("result-bin"),
    )
    .expect("symlink");
    let out = devsecops(
        dir.path(),
        &["audit", "--db", db, "--output", "-", "result-bin"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        (
            report["executables"].as_u64(),
            &report["not_auditable"][0]["path"]
        ),
        (Some(1), &serde_json::json!("result-bin")),
        "the binary behind the link is read, under the name given: {report}"
    );
    std::os::unix::fs::symlink(dir.path().join("gone"), dir.path().join("dangling"))
        .expect("symlink");
    let dangling = devsecops(
        dir.path(),
        &["audit", "--db", db, "--output", "-", "dangling"],
    );
    assert_ne!(dangling.status.code(), Some(0), "{}", text(&dangling));
    assert!(
        text(&dangling).contains("cannot resolve"),
        "{}",
        text(&dangling)
    );
}

#[test]
fn the_same_report_ingested_twice_adds_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = fixture("clippy.ndjson");
    let report = report.to_str().expect("utf-8");
    let first = devsecops(dir.path(), &["ingest", "--tool", "clippy", report]);
    assert!(text(&first).contains("5 unique"), "{}", text(&first));
    let again = devsecops(dir.path(), &["ingest", "--tool", "clippy", report, report]);
    assert!(
        text(&again).contains("10 finding(s) from 2 file(s)") && text(&again).contains("5 unique"),
        "{}",
        text(&again)
    );
}

#[test]
fn sbom_of_a_nix_closure_names_store_paths_and_nar_hashes() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Path info written elsewhere: the store paths alone (their files need not be here).
    let out = devsecops(
        dir.path(),
        &[
            "sbom",
            "--nix",
            fixture("nix-path-info.json").to_str().expect("utf-8"),
            "--paths-only",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let bom: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(bom["bomFormat"], "CycloneDX");
    assert_eq!(
        bom["metadata"]["component"]["purl"],
        "pkg:nix/greeter@0.3.1?outputhash=wvbjdqdc3ai65sqqzihgz53yf23df7mk"
    );
    let root = &bom["metadata"]["component"];
    assert_eq!(
        (root["name"].as_str(), root["version"].as_str()),
        (Some("greeter"), Some("0.3.1"))
    );
    let components = bom["components"].as_array().expect("components");
    assert_eq!(components.len(), 1);
    let lib = &components[0];
    assert_eq!(
        (lib["name"].as_str(), lib["version"].as_str()),
        (Some("libgreet"), Some("1.2.0"))
    );
    let props: std::collections::HashMap<&str, &str> = lib["properties"]
        .as_array()
        .expect("properties")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().expect("name"),
                p["value"].as_str().expect("value"),
            )
        })
        .collect();
    assert_eq!(
        props["nix:store_path"],
        "/nix/store/i6manzpcd93f6q6bgz48c7j4qjdaq8w4-libgreet-1.2.0"
    );
    assert_eq!(
        props["nix:nar_hash"],
        "sha256-HDfQGvQL4ugGkd48w99EN3ppmvuxfGjwgJZLL9Bx/BM="
    );
    let deps = bom["dependencies"].as_array().expect("dependencies");
    let greeter = deps
        .iter()
        .find(|d| {
            d["ref"]
                .as_str()
                .is_some_and(|r| r.ends_with("greeter-0.3.1"))
        })
        .expect("root deps");
    assert_eq!(
        greeter["dependsOn"][0],
        "/nix/store/i6manzpcd93f6q6bgz48c7j4qjdaq8w4-libgreet-1.2.0"
    );

    // Without --paths-only every binary is read: a store path that is not here is an error, not
    // an SBOM silently missing the crates inside it.
    let elsewhere = dir.path().join("elsewhere.json");
    std::fs::write(
        &elsewhere,
        r#"[{"path":"/nix/store/00000000000000000000000000000000-elsewhere-1.0","narHash":"sha256-HDfQGvQL4ugGkd48w99EN3ppmvuxfGjwgJZLL9Bx/BM=","references":[]}]"#,
    )
    .expect("write");
    let missing = devsecops(
        dir.path(),
        &["sbom", "--nix", elsewhere.to_str().expect("utf-8")],
    );
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
    assert!(
        text(&missing).contains("elsewhere-1.0") && text(&missing).contains("--paths-only"),
        "{}",
        text(&missing)
    );

    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, "[]").expect("write");
    let bad = devsecops(
        dir.path(),
        &["sbom", "--nix", empty.to_str().expect("utf-8")],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).contains("empty"), "{}", text(&bad));
}

#[test]
fn sbom_of_the_cargo_workspace_lists_locked_crates_with_checksums() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace");
    let out = devsecops(workspace, &["sbom"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let bom: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let components = bom["components"].as_array().expect("components");
    let find = |name: &str| components.iter().find(|c| c["name"] == name);
    let actix = find("actix-web").expect("actix-web");
    assert!(actix["purl"]
        .as_str()
        .is_some_and(|p| p.starts_with("pkg:cargo/actix-web@")));
    assert_eq!(actix["hashes"][0]["alg"], "SHA-256");
    assert_eq!(actix["licenses"][0]["expression"], "MIT OR Apache-2.0");
    assert_eq!(
        find("devsecops-app").expect("member")["type"],
        "application"
    );
    let lock = std::fs::read_to_string(workspace.join("Cargo.lock")).expect("lock");
    assert_eq!(
        components.len(),
        lock.matches("[[package]]").count(),
        "one component per locked package"
    );
}

#[test]
fn sbom_of_one_package_holds_its_dependency_closure_only() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace");
    let out = devsecops(workspace, &["sbom", "--package", "devsecops-app"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let bom: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let names: std::collections::BTreeSet<&str> = bom["components"]
        .as_array()
        .expect("components")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        names.contains("devsecops-app") && names.contains("actix-web") && names.contains("sqlx")
    );
    // Crates only the pipeline uses (the app has its own command line, so clap is shared).
    assert!(
        !names.contains("devsecops") && !names.contains("roxmltree") && !names.contains("rustsec"),
        "the pipeline's crates are not in the app"
    );
    assert!(
        !names.contains("tempfile"),
        "dev-dependencies are not shipped"
    );
    let all = devsecops(workspace, &["sbom"]);
    let everything: serde_json::Value = serde_json::from_slice(&all.stdout).expect("json");
    assert!(
        everything["components"].as_array().map(Vec::len)
            > bom["components"].as_array().map(Vec::len)
    );
    assert_eq!(
        devsecops(workspace, &["sbom", "--package", "nope"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn scan_progress_is_live_on_a_terminal_and_plain_in_ci() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("devsecops.toml"),
        "[[scanner]]\nname = \"slowlint\"\nformat = \"hadolint\"\ncommand = [\"sh\", \"-c\", \"sleep 1; echo '[]'\"]\n",
    )
    .expect("config");
    // util-linux `script` gives the command a terminal, as a developer's shell would.
    let on_terminal = |ci: Option<&str>| {
        let mut command = Command::new("script");
        command
            .args([
                "-qec",
                &format!("{} scan", env!("CARGO_BIN_EXE_devsecops")),
                "/dev/null",
            ])
            .current_dir(dir.path())
            .env_remove("CI");
        if let Some(value) = ci {
            command.env("CI", value);
        }
        let out = command.output().expect("script (util-linux) runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let live = on_terminal(None);
    assert!(
        live.contains("slowlint: running"),
        "a live line with the elapsed time: {live}"
    );
    assert!(live.contains("✔ slowlint: 0 finding(s)"), "{live}");
    assert!(!live.contains("slowlint: started"), "{live}");
    let ci = on_terminal(Some("true"));
    assert!(
        ci.contains("slowlint: started") && ci.contains("slowlint: 0 finding(s)"),
        "{ci}"
    );
    assert!(!ci.contains("running"), "plain lines in CI: {ci}");
}
