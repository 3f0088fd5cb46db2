//! Every parser on real outputs of the real tools (tests/fixtures/real, produced with the commands in
//! tests/fixtures/README.md), plus hand-made hostile inputs.

use std::path::{Path, PathBuf};

use devsecops::ingest::parse;
use devsecops::model::{deduplicate, fingerprint_all, Category, RawFinding, Severity};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/real")
        .join(name)
}

fn parsed(tool: &str, name: &str) -> Vec<RawFinding> {
    parse(tool, &fixture(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .findings
}

fn rules(findings: &[RawFinding]) -> Vec<String> {
    let mut r: Vec<String> = findings.iter().map(|f| f.rule.clone()).collect();
    r.sort();
    r
}

#[test]
fn cargo_audit_vulnerabilities_and_warnings() {
    let f = parsed("cargo-audit", "cargo-audit.json");
    assert_eq!(
        rules(&f),
        [
            "RUSTSEC-2020-0071",
            "RUSTSEC-2021-0003",
            "RUSTSEC-2021-0139"
        ]
    );
    let smallvec = f
        .iter()
        .find(|f| f.rule == "RUSTSEC-2021-0003")
        .expect("smallvec");
    assert_eq!(smallvec.severity, Severity::Critical, "CVSS 9.8");
    assert_eq!(smallvec.category, Category::Sca);
    let c = smallvec.component.as_ref().expect("component");
    assert_eq!(
        (c.name.as_str(), c.version.as_deref()),
        ("smallvec", Some("0.6.13"))
    );
    assert_eq!(c.purl.as_deref(), Some("pkg:cargo/smallvec@0.6.13"));
    assert!(smallvec.identifiers.contains("CVE-2021-25900"));
    assert!(smallvec.identifiers.contains("GHSA-43w2-9j62-hq99"));
    let unmaintained = f
        .iter()
        .find(|f| f.rule == "RUSTSEC-2021-0139")
        .expect("ansi_term");
    assert_eq!(unmaintained.severity, Severity::Low);
}

#[test]
fn cargo_deny_advisories_match_cargo_audit() {
    let deny = parsed("cargo-deny", "cargo-deny.ndjson");
    assert_eq!(
        rules(&deny),
        [
            "RUSTSEC-2020-0071",
            "RUSTSEC-2021-0003",
            "RUSTSEC-2021-0139"
        ]
    );
    let audit = parsed("cargo-audit", "cargo-audit.json");
    let merged = deduplicate(fingerprint_all(audit.into_iter().chain(deny).collect()));
    assert_eq!(merged.len(), 3, "the same three advisories from two tools");
    assert!(merged.iter().all(|f| f.tools.len() == 2), "{merged:#?}");
    let bans = parsed("cargo-deny", "cargo-deny-bans.ndjson");
    assert!(!bans.is_empty());
    assert_eq!(bans.iter().filter(|f| f.rule == "duplicate").count(), 21);
    assert!(bans.iter().all(
        |f| matches!(f.category, Category::Quality | Category::License)
            && f.severity == Severity::Low
    ));
}

#[test]
fn cargo_deny_log_errors_make_the_report_an_error_not_zero_findings() {
    // Real outputs (tests/fixtures/README.md): no advisory database, and a deny.toml it cannot read.
    for (name, says) in [
        (
            "cargo-deny-no-db.ndjson",
            "failed to get 'FETCH_HEAD' metadata",
        ),
        (
            "cargo-deny-bad-config.ndjson",
            "failed to deserialize config from",
        ),
    ] {
        let err = parse("cargo-deny", &fixture(name))
            .err()
            .unwrap_or_else(|| panic!("{name}: accepted as a report"));
        let message = err.to_string();
        assert!(message.contains(name), "names the file: {message}");
        assert!(
            message.contains("cargo-deny reported an error") && message.contains(says),
            "{message}"
        );
        assert_eq!(err.exit_code(), 2);
    }
    // Logs below ERROR do not cost the report.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("deny.ndjson");
    std::fs::write(
        &file,
        "{\"fields\":{\"level\":\"WARN\",\"message\":\"stale\"},\"type\":\"log\"}\n{\"fields\":{\"advisories\":{\"errors\":0}},\"type\":\"summary\"}\n",
    )
    .expect("write");
    let ok = parse("cargo-deny", &file).expect("a warning log is not a failure");
    assert!(ok.findings.is_empty() && ok.warnings.is_empty());
}

#[test]
fn clippy_lints_with_locations() {
    let f = parsed("clippy", "clippy.ndjson");
    assert_eq!(
        rules(&f),
        [
            "clippy::float_cmp",
            "clippy::len_zero",
            "clippy::must_use_candidate",
            "clippy::must_use_candidate",
            "clippy::ptr_arg"
        ]
    );
    let len_zero = f
        .iter()
        .find(|f| f.rule == "clippy::len_zero")
        .expect("len_zero");
    let loc = len_zero.location.as_ref().expect("location");
    assert_eq!((loc.path.as_str(), loc.start_line), ("src/lib.rs", Some(2)));
    assert_eq!(len_zero.severity, Severity::Low);
    assert!(len_zero.context.contains("v.len() == 0"));
    let fps = fingerprint_all(f);
    let mut unique: Vec<_> = fps.iter().map(|f| &f.fingerprint).collect();
    unique.dedup();
    assert_eq!(
        unique.len(),
        5,
        "two must_use_candidate in one file stay distinct"
    );
}

#[test]
fn gitleaks_json_and_sarif_agree() {
    let json = parsed("gitleaks", "gitleaks.json");
    assert_eq!(json.len(), 1);
    assert_eq!(json[0].category, Category::Secret);
    assert_eq!(json[0].severity, Severity::High);
    assert_eq!(json[0].rule, "github-pat");
    assert_eq!(
        json[0].location.as_ref().map(|l| l.path.as_str()),
        Some("settings.env")
    );
    let sarif = parsed("sarif", "gitleaks.sarif");
    assert_eq!(sarif.len(), 1);
    assert_eq!(sarif[0].category, Category::Secret);
    assert_eq!(sarif[0].rule, "github-pat");
}

#[test]
fn hadolint_json_and_sarif() {
    let json = parsed("hadolint", "hadolint.json");
    assert_eq!(
        rules(&json),
        ["DL3002", "DL3007", "DL3008", "DL3009", "DL3015", "DL3020", "DL3066"]
    );
    assert!(json
        .iter()
        .any(|f| f.rule == "DL3007" && f.severity == Severity::Medium));
    assert!(json.iter().all(|f| f.category == Category::Iac));
    let sarif = parsed("sarif", "hadolint.sarif");
    assert_eq!(rules(&sarif), rules(&json));
}

#[test]
fn checkov_json_and_sarif() {
    let json = parsed("checkov", "checkov.json");
    assert_eq!(json.len(), 24, "20 kubernetes + 4 dockerfile failures");
    assert!(json.iter().any(|f| f.rule == "CKV_K8S_16"
        && f.location
            .as_ref()
            .is_some_and(|l| l.path == "deploy/deployment.yaml")));
    assert!(json
        .iter()
        .all(|f| f.category == Category::Iac && f.severity == Severity::Medium));
    let sarif = parsed("sarif", "checkov.sarif");
    assert_eq!(sarif.len(), json.len());
}

#[test]
fn trivy_misconfigurations_secrets_and_sarif() {
    let config = parsed("trivy", "trivy-config.json");
    assert_eq!(config.len(), 20, "5 Dockerfile + 15 Kubernetes");
    assert!(config.iter().any(|f| f.rule == "DS001"
        && f.severity == Severity::Medium
        && f.location
            .as_ref()
            .is_some_and(|l| l.path == "Dockerfile" && l.start_line == Some(1))));
    assert!(config.iter().all(|f| f.category == Category::Iac));
    let secret = parsed("trivy", "trivy-secret.json");
    assert_eq!(secret.len(), 1);
    assert_eq!(
        (secret[0].category, secret[0].severity),
        (Category::Secret, Severity::Critical)
    );
    let sarif = parsed("sarif", "trivy-config.sarif");
    assert_eq!(sarif.len(), config.len());
}

#[test]
fn hostile_inputs_fail_with_file_and_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        ("sarif", "truncated.sarif", br#"{"version": "2.1.0", "runs": [{"tool""#.to_vec(), "line 1, column"),
        ("sarif", "wrong-version.sarif", br#"{"version": "1.0.0", "runs": []}"#.to_vec(), "not supported"),
        ("cargo-audit", "not-utf8.json", vec![b'{', 0xff, 0xfe, b'}'], "line 1, column"),
        ("gitleaks", "wrong-shape.json", br#"{"RuleID": 1}"#.to_vec(), "not a gitleaks JSON report: expected an array"),
        ("hadolint", "wrong-element.json", br#"[{"code": 1}]"#.to_vec(), "line 1, column"),
        ("sarif", "nested.sarif", format!(r#"{{"version":"2.1.0","runs":[{{"tool":{{"driver":{{"name":"x"}}}},"results":[{{"message":{{"text":"m"}},"properties":{}{}}}]}}]}}"#, "[".repeat(100_000), "]".repeat(100_000)).into_bytes(), "recursion limit"),
        ("cyclonedx", "not-cyclonedx.json", br#"{"bomFormat": "SPDX"}"#.to_vec(), "not CycloneDX"),
        ("checkov", "empty.json", b"".to_vec(), "truncated JSON"),
    ];
    for (tool, name, bytes, expect) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        let err = parse(tool, &path)
            .err()
            .unwrap_or_else(|| panic!("{name} parsed"));
        let text = err.to_string();
        assert!(
            text.starts_with(&path.display().to_string()),
            "{name}: {text}"
        );
        assert!(text.contains(expect), "{name}: {text}");
    }
    // One bad record of a stream costs only itself, with a warning naming its line.
    let path = dir.path().join("bad-line.ndjson");
    std::fs::write(&path, b"{\"reason\":\"compiler-message\"}\n{bad\n").expect("write");
    let parsed = parse("clippy", &path).expect("the good record is read");
    assert!(
        parsed
            .warnings
            .iter()
            .any(|w| w.starts_with("line 2 skipped")),
        "{:?}",
        parsed.warnings
    );
    let missing = parse("sarif", Path::new("/nonexistent/report.sarif")).expect_err("missing file");
    assert!(missing.to_string().contains("/nonexistent/report.sarif"));
    let unknown = parse("nessus", &fixture("hadolint.json")).expect_err("unknown tool");
    assert!(unknown.to_string().contains("unknown tool"));
}

#[test]
fn oversized_inputs_are_refused_before_reading() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("huge.sarif");
    let file = std::fs::File::create(&path).expect("create");
    file.set_len(devsecops::ingest::MAX_INPUT_BYTES + 1)
        .expect("sparse file");
    let err = parse("sarif", &path).expect_err("refused");
    assert!(err.to_string().contains("input limit"), "{err}");
}

#[test]
fn cyclonedx_vulnerabilities_name_their_components() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bom.json");
    std::fs::write(
        &path,
        br#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[{"bom-ref":"c1","type":"library","name":"time","version":"0.1.43","purl":"pkg:cargo/time@0.1.43"}],
            "vulnerabilities":[{"id":"CVE-2020-26235","ratings":[{"severity":"medium"},{"score":8.1}],"affects":[{"ref":"c1"}],"cwes":[362]}]}"#,
    )
    .expect("write");
    let f = parse("cyclonedx", &path).expect("parses").findings;
    assert_eq!(f.len(), 1);
    assert_eq!(
        f[0].severity,
        Severity::High,
        "the higher of the two ratings"
    );
    assert_eq!(
        f[0].component.as_ref().and_then(|c| c.purl.as_deref()),
        Some("pkg:cargo/time@0.1.43")
    );
    assert!(f[0].identifiers.contains("CWE-362"));
}

#[test]
fn shellcheck_json1() {
    let f = parsed("shellcheck", "shellcheck.json");
    assert_eq!(rules(&f), ["SC2012", "SC2035", "SC2086", "SC2164"]);
    let quoting = f.iter().find(|f| f.rule == "SC2086").expect("SC2086");
    assert_eq!(quoting.severity, Severity::Low, "info level");
    let cd = f.iter().find(|f| f.rule == "SC2164").expect("SC2164");
    assert_eq!(cd.severity, Severity::Medium);
    assert_eq!(
        cd.location
            .as_ref()
            .map(|l| (l.path.as_str(), l.start_line)),
        Some(("bad.sh", Some(3)))
    );
}

#[test]
fn semgrep_sarif_with_local_rules() {
    let f = parsed("sarif", "semgrep.sarif");
    assert_eq!(f.len(), 3);
    assert!(f
        .iter()
        .all(|f| f.tool == "semgrep oss" && f.category == Category::Sast));
    let pipe = f
        .iter()
        .find(|f| f.rule.ends_with("shell-pipe-to-shell"))
        .expect("pipe to shell");
    assert_eq!(pipe.severity, Severity::High, "ERROR level");
    assert!(
        pipe.identifiers.contains("CWE-494"),
        "{:?}",
        pipe.identifiers
    );
    assert_eq!(
        pipe.location.as_ref().map(|l| l.path.as_str()),
        Some("install.sh")
    );
}

#[test]
fn trivy_vulnerabilities_and_licenses_merge_with_cargo_audit() {
    // trivy's vulnerability database cannot be downloaded here, so this report is hand-made in the
    // shape trivy 0.59 writes (Results[].Vulnerabilities / Licenses), with the smallvec advisory that
    // cargo-audit reports in the real fixture.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("trivy-fs.json");
    std::fs::write(
        &path,
        br#"{"SchemaVersion":2,"Results":[
          {"Target":"Cargo.lock","Class":"lang-pkgs","Type":"cargo","Vulnerabilities":[
            {"VulnerabilityID":"CVE-2021-25900","VendorIDs":["GHSA-43w2-9j62-hq99"],"PkgName":"smallvec","InstalledVersion":"0.6.13","Severity":"CRITICAL","Title":"smallvec: buffer overflow","CweIDs":["CWE-787"],"PrimaryURL":"https://avd.aquasec.com/nvd/cve-2021-25900"}]},
          {"Target":"usr/lib/os-release","Class":"os-pkgs","Type":"debian","Vulnerabilities":[
            {"VulnerabilityID":"CVE-2024-0001","PkgName":"libc6","InstalledVersion":"2.36-9","Severity":"UNKNOWN"}]},
          {"Target":"Cargo.lock","Class":"license","Licenses":[
            {"Severity":"HIGH","Category":"restricted","PkgName":"some-gpl-crate","Name":"GPL-3.0","FilePath":""}]}]}"#,
    )
    .expect("write");
    let trivy = parse("trivy", &path).expect("parses").findings;
    assert_eq!(trivy.len(), 3);
    let os = trivy
        .iter()
        .find(|f| f.rule == "CVE-2024-0001")
        .expect("os package");
    assert_eq!(
        (os.category, os.severity),
        (Category::Container, Severity::Info)
    );
    assert_eq!(
        os.component.as_ref().and_then(|c| c.purl.as_deref()),
        Some("pkg:deb/libc6@2.36-9")
    );
    let license = trivy
        .iter()
        .find(|f| f.category == Category::License)
        .expect("license");
    assert_eq!(license.severity, Severity::High);
    let audit = parsed("cargo-audit", "cargo-audit.json");
    let merged = deduplicate(
        fingerprint_all(trivy)
            .into_iter()
            .chain(fingerprint_all(audit))
            .collect(),
    );
    let smallvec = merged
        .iter()
        .find(|f| f.identifiers.contains("CVE-2021-25900"))
        .expect("smallvec");
    assert_eq!(
        smallvec.tools.iter().collect::<Vec<_>>(),
        ["cargo-audit", "trivy"],
        "one finding, both tools"
    );
    assert!(
        smallvec.identifiers.contains("CWE-787")
            && smallvec.identifiers.contains("RUSTSEC-2021-0003")
    );
    assert_eq!(
        merged.len(),
        5,
        "smallvec merged; time, ansi_term, libc6 and the license stay apart"
    );
}

/// A damaged cargo-audit report (found by fuzzing): the `list` key lost, or a byte that is not
/// UTF-8 in a key serde would skip. Both read as "no vulnerabilities" before; both are errors.
#[test]
fn damaged_cargo_audit_reports_are_errors_not_zero_findings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: [(&str, &[u8]); 3] = [
        (
            "no-list",
            br#"{"database":{},"lockfile":{"dependency-count":4},"vulnerabilities":{"found":true,"count":2,"li":[]}}"#,
        ),
        (
            "count-mismatch",
            br#"{"database":{},"lockfile":{"dependency-count":4},"vulnerabilities":{"found":true,"count":2,"list":[]}}"#,
        ),
        (
            "invalid-utf8-in-skipped-key",
            b"{\"database\":{},\"vulnerabilities\":{\"found\":false,\"count\":0,\"list\":[]},\"x\x90\":1}",
        ),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        assert!(
            parse("cargo-audit", &path).is_err(),
            "{name}: a damaged report was read"
        );
    }
}

/// A cargo-deny diagnostic whose `fields` key was damaged (found by fuzzing) counted as read and
/// gave no finding; it is a skipped result now, and a report of nothing else is an error.
#[test]
fn a_cargo_deny_diagnostic_without_fields_is_not_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("deny.ndjson");
    std::fs::write(
        &path,
        br#"{"fieldz":{"code":"vulnerability","severity":"error"},"type":"diagnostic"}
"#,
    )
    .expect("write");
    assert!(
        parse("cargo-deny", &path).is_err(),
        "a damaged diagnostic read as a pass"
    );
    // A record with a byte that is not UTF-8 in a string serde skips is damaged, not whole.
    std::fs::write(
        &path,
        b"{\"fields\":{\"advisories\":{\"errors\":3,\"x\x98\":0}},\"type\":\"summary\"}\n",
    )
    .expect("write");
    assert!(
        parse("cargo-deny", &path).is_err(),
        "a damaged summary read as a pass"
    );
}

/// A gitleaks leak with an empty rule id (found by fuzzing) is kept under a rule of its own.
#[test]
fn a_gitleaks_leak_without_a_rule_id_is_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gitleaks.json");
    std::fs::write(
        &path,
        br#"[{"RuleID":"","Description":"a token","File":"a.rs","StartLine":1,"EndLine":1,"Secret":"REDACTED"}]"#,
    )
    .expect("write");
    let findings = parse("gitleaks", &path).expect("read").findings;
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].rule, "gitleaks-unnamed-rule");
}
